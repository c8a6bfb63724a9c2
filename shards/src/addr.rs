//! Which IP addresses count as private, for the two questions a shard asks
//! about an address someone else wrote down:
//!
//! * [`is_private`]: media (an SDP `c=` line): can a public host reach it?
//!   RFC 1918, shared (RFC 6598), link-local, unique-local, unspecified.
//!   Loopback is not private here: a loopback media address is a question
//!   of where the relay may send (`media::relay::media_address_allowed`).
//! * `contact_behind_nat`: a registered Contact: does it name an address
//!   only the phone's own network knows, so that calls go to the address
//!   its REGISTER came from instead? RFC 1918, IPv4 link-local and
//!   loopback, IPv6 loopback and unique-local.
//!
//! The two sets differ (loopback, shared space, IPv6 link-local,
//! unspecified) because the rules were tuned separately; they are kept as
//! they are, side by side, so that a change to either is made here.

use std::net::IpAddr;

/// An address a public host cannot reach: private (RFC 1918), shared
/// (RFC 6598), link-local, unique-local, unspecified.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// A Contact address that is only meaningful inside the phone's network:
/// private (RFC 1918), IPv4 link-local, loopback, IPv6 unique-local.
pub(crate) fn contact_behind_nat(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn media_private_set() {
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.0.1",
            "100.64.0.1",
            "0.0.0.0",
            "fd00::1",
            "fe80::1",
            "::",
        ] {
            assert!(is_private(ip(a)), "{a}");
        }
        for a in [
            "203.0.113.5",
            "127.0.0.1",
            "::1",
            "100.128.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_private(ip(a)), "{a}");
        }
    }

    #[test]
    fn contact_set_counts_loopback_but_not_shared_space() {
        for a in [
            "10.1.2.3",
            "192.168.1.1",
            "169.254.0.1",
            "127.0.0.1",
            "::1",
            "fc00::1",
        ] {
            assert!(contact_behind_nat(ip(a)), "{a}");
        }
        for a in [
            "203.0.113.5",
            "100.64.0.1",
            "fe80::1",
            "0.0.0.0",
            "2001:db8::1",
        ] {
            assert!(!contact_behind_nat(ip(a)), "{a}");
        }
    }
}
