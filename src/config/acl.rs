//! Address lists: the `Cidr` type (address + prefix length), SIP ACL rules
//! (`"allow|deny <ip|cidr|all>"`, first match wins) and the AMI allow list.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network: an address and a prefix length. Host bits are cleared, so
/// `10.1.2.3/8` is `10.0.0.0/8`. A bare address is a /32 (IPv4) or /128 (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a text is not a [`Cidr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// Not an address (the text as given).
    NotAnAddress(String),
    /// The part after `/` is not a number (the text as given).
    BadPrefix(String),
    /// Longer than the address family allows.
    PrefixTooLong { prefix: u8, max: u8, ipv4: bool },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::NotAnAddress(s) => write!(f, "\"{s}\" is not an IP address or CIDR"),
            CidrError::BadPrefix(s) => write!(f, "\"{s}\" has an invalid prefix length"),
            CidrError::PrefixTooLong { prefix, max, ipv4 } => write!(
                f,
                "prefix /{prefix} is longer than /{max} for {}",
                if *ipv4 { "IPv4" } else { "IPv6" }
            ),
        }
    }
}

impl std::error::Error for CidrError {}

/// Why a text is not an [`AclRule`]; both name the rule as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclRuleError {
    /// Not `allow|deny <target>`.
    Syntax(String),
    /// The target is not `all` or an address or CIDR.
    Net(String, CidrError),
}

impl fmt::Display for AclRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclRuleError::Syntax(s) => write!(f, "\"{s}\" is not \"allow|deny <ip|cidr|all>\""),
            AclRuleError::Net(s, e) => {
                write!(f, "\"{s}\" is not \"allow|deny <ip|cidr|all>\": {e}")
            }
        }
    }
}

impl std::error::Error for AclRuleError {}

impl Cidr {
    /// Fails when `prefix` is longer than the address family allows.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let max = max_prefix(addr);
        if prefix > max {
            return Err(CidrError::PrefixTooLong {
                prefix,
                max,
                ipv4: addr.is_ipv4(),
            });
        }
        Ok(Cidr {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// The network address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// True when `ip` is in this network. IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`, as seen on dual-stack sockets) count as their IPv4 form.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let net = self.addr.to_canonical();
        let prefix = if net != self.addr {
            // A mapped network written in IPv6 form: compare as IPv4.
            self.prefix.saturating_sub(96)
        } else {
            self.prefix
        };
        ip.is_ipv4() == net.is_ipv4() && mask(ip, prefix) == net
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `192.0.2.7`, `192.0.2.0/24`, `2001:db8::/32`, `::1`.
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::NotAnAddress(s.to_string()))?;
        let prefix = match prefix {
            None => max_prefix(addr),
            Some(p) => p
                .parse::<u8>()
                .map_err(|_| CidrError::BadPrefix(s.to_string()))?,
        };
        Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What an ACL rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclNet {
    /// `all`: every address of either family.
    All,
    Cidr(Cidr),
}

impl AclNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match self {
            AclNet::All => true,
            AclNet::Cidr(c) => c.contains(ip),
        }
    }
}

/// One `[proxy] acl_rules` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclRule {
    pub allow: bool,
    pub net: AclNet,
}

impl FromStr for AclRule {
    type Err = AclRuleError;

    /// `"allow all"`, `"deny 203.0.113.0/24"`, `"allow ::1"`; keywords are
    /// case-insensitive.
    fn from_str(s: &str) -> Result<AclRule, AclRuleError> {
        let bad = || AclRuleError::Syntax(s.to_string());
        let mut words = s.split_whitespace();
        let (Some(verb), Some(target), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad());
        };
        let allow = if verb.eq_ignore_ascii_case("allow") {
            true
        } else if verb.eq_ignore_ascii_case("deny") {
            false
        } else {
            return Err(bad());
        };
        let net = if target.eq_ignore_ascii_case("all") {
            AclNet::All
        } else {
            AclNet::Cidr(
                target
                    .parse()
                    .map_err(|e| AclRuleError::Net(s.to_string(), e))?,
            )
        };
        Ok(AclRule { allow, net })
    }
}

impl fmt::Display for AclRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.allow { "allow " } else { "deny " })?;
        match self.net {
            AclNet::All => f.write_str("all"),
            AclNet::Cidr(c) => write!(f, "{c}"),
        }
    }
}

/// An ordered rule list. First match wins; an address no rule matches is denied;
/// an empty list allows everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    pub rules: Vec<AclRule>,
}

impl Acl {
    /// Parses every rule; the error carries the index of the first bad one.
    pub fn parse<S: AsRef<str>>(rules: &[S]) -> Result<Acl, (usize, AclRuleError)> {
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| r.as_ref().parse::<AclRule>().map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()
            .map(|rules| Acl { rules })
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        self.rules
            .iter()
            .find(|r| r.net.contains(ip))
            .is_some_and(|r| r.allow)
    }
}

/// An allow list of networks (`[ami] allows`): an address is allowed when one
/// entry contains it; an empty list allows nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    pub nets: Vec<Cidr>,
}

impl AllowList {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, (usize, CidrError)> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| e.as_ref().parse::<Cidr>().map_err(|err| (i, err)))
            .collect::<Result<Vec<_>, _>>()
            .map(|nets| AllowList { nets })
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.200.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.9.9.9")));
        assert!(!c.contains(ip("::1")));

        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.prefix_len(), 32);
        assert!(host.contains(ip("192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.8")));

        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::5")));
        assert!(!v6.contains(ip("10.0.0.1")));

        let zero: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(zero.contains(ip("203.0.113.9")));
        assert!(!zero.contains(ip("2001:db8::1")));

        let mapped: Cidr = "::ffff:192.0.2.0/120".parse().unwrap();
        assert!(mapped.contains(ip("192.0.2.55")));

        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("::/129".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        assert!("10.0.0.0/x".parse::<Cidr>().is_err());
        assert!("example.com".parse::<Cidr>().is_err());
    }

    #[test]
    fn acl_rules_parse() {
        assert_eq!(
            "allow all".parse::<AclRule>().unwrap(),
            AclRule {
                allow: true,
                net: AclNet::All
            }
        );
        let r: AclRule = "DENY 203.0.113.0/24".parse().unwrap();
        assert!(!r.allow);
        assert_eq!(r.to_string(), "deny 203.0.113.0/24");
        for bad in [
            "",
            "allow",
            "permit all",
            "allow 1.2.3.4 extra",
            "deny 1.2.3.4/40",
        ] {
            assert!(bad.parse::<AclRule>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn first_match_wins() {
        let acl = Acl::parse(&["deny 10.0.0.5", "allow 10.0.0.0/8", "deny all"]).unwrap();
        assert!(!acl.allows(ip("10.0.0.5")));
        assert!(acl.allows(ip("10.0.0.6")));
        assert!(!acl.allows(ip("192.0.2.1")));

        let only_deny = Acl::parse(&["deny 10.0.0.5"]).unwrap();
        assert!(!only_deny.allows(ip("192.0.2.1")), "no match means deny");
        assert!(Acl::default().allows(ip("192.0.2.1")), "empty list allows");

        assert_eq!(Acl::parse(&["allow all", "oops"]).unwrap_err().0, 1);
    }

    #[test]
    fn allow_list() {
        let l = AllowList::parse(&["127.0.0.1", "::1", "10.0.0.0/8"]).unwrap();
        assert!(l.allows(ip("127.0.0.1")));
        assert!(l.allows(ip("::ffff:127.0.0.1")));
        assert!(l.allows(ip("::1")));
        assert!(l.allows(ip("10.3.3.3")));
        assert!(!l.allows(ip("192.0.2.1")));
        assert!(!AllowList::default().allows(ip("127.0.0.1")));
        assert_eq!(AllowList::parse(&["127.0.0.1", "all"]).unwrap_err().0, 1);
    }
}
