//! `inbound_hosts`: which source addresses belong to a trunk. A pattern is an IP
//! (`203.0.113.10`, `2001:db8::1`), a CIDR (`203.0.113.0/24`, `2001:db8::/32`) or
//! an exact `ip:port` (`203.0.113.10:5060`, `[2001:db8::1]:5060`). Host names are
//! not accepted (no DNS on the call path). IPv4-mapped IPv6 sources
//! (`::ffff:a.b.c.d`, from dual-stack sockets) count as their IPv4 form.
//!
//! `SourceIndex` answers "which trunk is this source" with the most specific
//! pattern: an exact ip:port beats an IP, which beats a shorter CIDR.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// One parsed `inbound_hosts` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Exactly this address and port.
    Addr(SocketAddr),
    /// A network; an IP is a /32 (/128). Host bits are cleared.
    Net { addr: IpAddr, prefix: u8 },
}

/// Why an `inbound_hosts` (or `trusted`) entry is not a [`HostPattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPatternError {
    /// Neither an IP, a CIDR nor an ip:port (e.g. a host name).
    NotAddress(String),
    /// A CIDR whose prefix length is not a number.
    PrefixNotNumber { pattern: String, len: String },
    /// A CIDR whose prefix is longer than the address (/33 for IPv4).
    PrefixTooLong {
        pattern: String,
        prefix: u8,
        max: u8,
    },
}

impl fmt::Display for HostPatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPatternError::NotAddress(s) => write!(
                f,
                "\"{s}\" is not an IP, CIDR or ip:port (host names are not resolved)"
            ),
            HostPatternError::PrefixNotNumber { pattern, len } => {
                write!(f, "\"{pattern}\": prefix length \"{len}\" is not a number")
            }
            HostPatternError::PrefixTooLong {
                pattern,
                prefix,
                max,
            } => write!(f, "\"{pattern}\": prefix /{prefix} is longer than /{max}"),
        }
    }
}

impl std::error::Error for HostPatternError {}

impl HostPattern {
    /// Parses an IP, CIDR or ip:port.
    pub fn parse(s: &str) -> Result<HostPattern, HostPatternError> {
        let s = s.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            let ip = ip.to_canonical();
            return Ok(HostPattern::Net {
                addr: ip,
                prefix: max_prefix(ip),
            });
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(HostPattern::Addr(SocketAddr::new(
                sa.ip().to_canonical(),
                sa.port(),
            )));
        }
        let bad = || HostPatternError::NotAddress(s.to_string());
        let (ip, len) = s.split_once('/').ok_or_else(bad)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| HostPatternError::PrefixNotNumber {
            pattern: s.to_string(),
            len: len.to_string(),
        })?;
        if prefix > max_prefix(ip) {
            return Err(HostPatternError::PrefixTooLong {
                pattern: s.to_string(),
                prefix,
                max: max_prefix(ip),
            });
        }
        // A mapped IPv4 network written in IPv6 form becomes the IPv4 network.
        let (ip, prefix) = match ip {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (ip, prefix),
            },
            _ => (ip, prefix),
        };
        Ok(HostPattern::Net {
            addr: mask(ip, prefix),
            prefix,
        })
    }

    /// True when `src` is covered by this pattern.
    pub fn matches(&self, src: SocketAddr) -> bool {
        let ip = src.ip().to_canonical();
        match *self {
            HostPattern::Addr(a) => a.ip() == ip && a.port() == src.port(),
            HostPattern::Net { addr, prefix } => {
                ip.is_ipv4() == addr.is_ipv4() && mask(ip, prefix) == addr
            }
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HostPattern::Addr(a) => write!(f, "{a}"),
            HostPattern::Net { addr, prefix } if prefix == max_prefix(addr) => write!(f, "{addr}"),
            HostPattern::Net { addr, prefix } => write!(f, "{addr}/{prefix}"),
        }
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

/// Source address -> index of the trunk with the most specific pattern for it.
#[derive(Debug, Default)]
pub(crate) struct SourceIndex {
    addrs: HashMap<SocketAddr, usize>,
    hosts: HashMap<IpAddr, usize>,
    /// Shorter-than-host networks, longest prefix first.
    nets: Vec<(IpAddr, u8, usize)>,
}

impl SourceIndex {
    /// Adds a pattern for trunk `owner`; `Err(other)` when trunk `other` already
    /// has the same pattern (the same pattern twice in one trunk is harmless).
    pub(crate) fn insert(&mut self, pattern: HostPattern, owner: usize) -> Result<(), usize> {
        let prev = match pattern {
            HostPattern::Addr(a) => *self.addrs.entry(a).or_insert(owner),
            HostPattern::Net { addr, prefix } if prefix == max_prefix(addr) => {
                *self.hosts.entry(addr).or_insert(owner)
            }
            HostPattern::Net { addr, prefix } => {
                match self.nets.iter().find(|n| n.0 == addr && n.1 == prefix) {
                    Some(n) => n.2,
                    None => {
                        // Keep longest prefix first; stable for equal lengths.
                        let at = self.nets.partition_point(|n| n.1 >= prefix);
                        self.nets.insert(at, (addr, prefix, owner));
                        owner
                    }
                }
            }
        };
        if prev == owner {
            Ok(())
        } else {
            Err(prev)
        }
    }

    pub(crate) fn lookup(&self, src: SocketAddr) -> Option<usize> {
        let ip = src.ip().to_canonical();
        if let Some(&i) = self.addrs.get(&SocketAddr::new(ip, src.port())) {
            return Some(i);
        }
        if let Some(&i) = self.hosts.get(&ip) {
            return Some(i);
        }
        self.nets
            .iter()
            .find(|(addr, prefix, _)| ip.is_ipv4() == addr.is_ipv4() && mask(ip, *prefix) == *addr)
            .map(|n| n.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_ip_cidr_and_ip_port() {
        let p = |s: &str| HostPattern::parse(s).unwrap().to_string();
        assert_eq!(p("203.0.113.10"), "203.0.113.10");
        assert_eq!(p("203.0.113.7/24"), "203.0.113.0/24");
        assert_eq!(p("203.0.113.10:5060"), "203.0.113.10:5060");
        assert_eq!(p("2001:db8::1"), "2001:db8::1");
        assert_eq!(p("2001:db8::/32"), "2001:db8::/32");
        assert_eq!(p("[2001:db8::1]:5060"), "[2001:db8::1]:5060");
        assert_eq!(p("::ffff:10.0.0.0/104"), "10.0.0.0/8");
        assert_eq!(p("0.0.0.0/0"), "0.0.0.0/0");
        for bad in [
            "carrier.example.com",
            "10.0.0.0/33",
            "10.0.0.0/x",
            "",
            "1.2.3.4:99999",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_sources() {
        let p = |s: &str| HostPattern::parse(s).unwrap();
        assert!(p("203.0.113.0/24").matches(sa("203.0.113.99:5060")));
        assert!(!p("203.0.113.0/24").matches(sa("203.0.114.1:5060")));
        assert!(p("203.0.113.10").matches(sa("203.0.113.10:1234")));
        assert!(p("203.0.113.10:5060").matches(sa("203.0.113.10:5060")));
        assert!(!p("203.0.113.10:5060").matches(sa("203.0.113.10:5061")));
        assert!(p("2001:db8::/32").matches(sa("[2001:db8:1::5]:5060")));
        assert!(!p("2001:db8::/32").matches(sa("[2001:db9::5]:5060")));
        // Dual-stack sockets report IPv4 peers as mapped IPv6.
        assert!(p("203.0.113.0/24").matches(sa("[::ffff:203.0.113.5]:5060")));
        assert!(p("203.0.113.5:5060").matches(sa("[::ffff:203.0.113.5]:5060")));
        assert!(!p("0.0.0.0/0").matches(sa("[2001:db8::1]:5060")));
    }

    #[test]
    fn most_specific_wins() {
        let mut idx = SourceIndex::default();
        idx.insert(HostPattern::parse("10.0.0.0/8").unwrap(), 0)
            .unwrap();
        idx.insert(HostPattern::parse("10.1.0.0/16").unwrap(), 1)
            .unwrap();
        idx.insert(HostPattern::parse("10.1.2.3").unwrap(), 2)
            .unwrap();
        idx.insert(HostPattern::parse("10.1.2.3:5070").unwrap(), 3)
            .unwrap();
        idx.insert(HostPattern::parse("2001:db8::/32").unwrap(), 4)
            .unwrap();
        assert_eq!(idx.lookup(sa("10.9.9.9:5060")), Some(0));
        assert_eq!(idx.lookup(sa("10.1.9.9:5060")), Some(1));
        assert_eq!(idx.lookup(sa("10.1.2.3:5060")), Some(2));
        assert_eq!(idx.lookup(sa("10.1.2.3:5070")), Some(3));
        assert_eq!(idx.lookup(sa("[2001:db8::7]:5060")), Some(4));
        assert_eq!(idx.lookup(sa("192.0.2.1:5060")), None);
        // The same pattern in two trunks is ambiguous; twice in one is not.
        assert_eq!(
            idx.insert(HostPattern::parse("10.1.0.0/16").unwrap(), 5),
            Err(1)
        );
        assert_eq!(
            idx.insert(HostPattern::parse("10.1.2.3").unwrap(), 2),
            Ok(())
        );
    }
}
