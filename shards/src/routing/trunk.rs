//! [`Trunk`] and [`TrunkTable`]: validated trunks, looked up by name (routes,
//! REST) and by source address (which trunk an INVITE comes from);
//! `DestError`: why a trunk's `dest` was refused.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use super::error::{check_header_text, check_name, RoutingError};
use super::inbound::{HostPattern, SourceIndex};
use super::limits::{CallPermit, Limit, TrunkLimits};
use super::spec::{Transport, TrunkSpec};
use crate::media::secure::SrtpPolicy;
use crate::sip::{Scheme, Uri};
use crate::transport::tls::TlsDial;

/// A validated trunk.
#[derive(Clone)]
pub struct Trunk {
    pub name: Arc<str>,
    /// The `sip:`/`sips:` URI calls to this trunk go to; `None` = inbound only.
    pub dest: Option<String>,
    pub transport: Transport,
    pub username: String,
    pub password: String,
    pub inbound_hosts: Vec<HostPattern>,
    /// 0 = unlimited.
    pub max_calls: u32,
    /// 0 = unlimited.
    pub max_cps: u32,
    /// How to verify the trunk when calls go over TLS.
    pub tls: Option<TlsDial>,
    /// SRTP with this trunk (only ever over TLS).
    pub srtp: SrtpPolicy,
    /// `sip:host:port` / `sips:host:port` of `dest` without user and parameters,
    /// split as (scheme, host:port).
    target: Option<(&'static str, String)>,
    limits: Arc<TrunkLimits>,
}

impl Trunk {
    /// The call counters every shard shares for this trunk.
    pub fn limits(&self) -> &Arc<TrunkLimits> {
        &self.limits
    }

    /// Starts a call through this trunk (see `TrunkLimits::try_start_call`).
    pub fn try_start_call(&self, now_ms: u64) -> Result<CallPermit, Limit> {
        self.limits.try_start_call(now_ms)
    }

    /// The address calls to this trunk go to, when `dest` names an IP (no
    /// DNS on a shard); without a port, 5061 over TLS and 5060 otherwise.
    pub fn dest_addr(&self) -> Option<SocketAddr> {
        let (_, hp) = self.target.as_ref()?;
        let text = format!("sip:{hp}");
        let uri = Uri::parse(&text).ok()?;
        let ip = uri.host?.ip()?;
        let default = if self.transport == Transport::Tls {
            5061
        } else {
            5060
        };
        Some(SocketAddr::new(ip, uri.port.unwrap_or(default)))
    }

    /// The Request-URI of a call sent to this trunk: `sip:<user>@<host:port of
    /// dest>` (API.md "Local"), `sips:` when dest is. `user` goes in as given, so
    /// it must already be escaped. `None` for an inbound-only trunk.
    pub fn request_uri(&self, user: &str) -> Option<String> {
        let (scheme, hp) = self.target.as_ref()?;
        Some(if user.is_empty() {
            format!("{scheme}:{hp}")
        } else {
            format!("{scheme}:{user}@{hp}")
        })
    }
}

impl fmt::Debug for Trunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trunk")
            .field("name", &self.name)
            .field("dest", &self.dest)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .field("inbound_hosts", &self.inbound_hosts)
            .field("max_calls", &self.max_calls)
            .field("max_cps", &self.max_cps)
            .field("srtp", &self.srtp)
            .finish_non_exhaustive()
    }
}

/// All trunks of a snapshot.
#[derive(Debug, Default)]
pub struct TrunkTable {
    trunks: Vec<Trunk>,
    by_name: HashMap<Arc<str>, usize>,
    sources: SourceIndex,
}

impl TrunkTable {
    /// Validates trunks given as (name, spec); error indexes are positions in `specs`.
    pub fn build(specs: &[(String, TrunkSpec)]) -> Result<TrunkTable, RoutingError> {
        let mut table = TrunkTable::default();
        for (i, (name, spec)) in specs.iter().enumerate() {
            check_name(name).map_err(|e| RoutingError::trunk(i, name, "").because(e))?;
            if let Some(&first) = table.by_name.get(name.as_str()) {
                return Err(RoutingError::trunk(i, name, "").duplicate_of(first));
            }
            let trunk = build_trunk(i, name, spec)?;
            for (j, pattern) in trunk.inbound_hosts.iter().enumerate() {
                if let Err(other) = table.sources.insert(*pattern, i) {
                    return Err(RoutingError::trunk(i, name, format!("inbound_hosts[{j}]"))
                        .because(format!(
                            "\"{pattern}\" is also listed by trunk \"{}\"",
                            table.trunks[other].name
                        )));
                }
            }
            table.by_name.insert(Arc::clone(&trunk.name), i);
            table.trunks.push(trunk);
        }
        Ok(table)
    }

    pub fn by_name(&self, name: &str) -> Option<&Trunk> {
        self.by_name.get(name).map(|&i| &self.trunks[i])
    }

    /// How to verify the TLS trunk whose dest is `addr`.
    pub fn tls_dial(&self, addr: SocketAddr) -> Option<&TlsDial> {
        self.trunks
            .iter()
            .filter(|t| t.transport == Transport::Tls)
            .find(|t| t.dest_addr() == Some(addr))
            .and_then(|t| t.tls.as_ref())
    }

    /// The trunk an INVITE from `src` comes from: the one with the most specific
    /// `inbound_hosts` entry covering it (ip:port, then IP, then longest CIDR).
    pub fn for_source(&self, src: SocketAddr) -> Option<&Trunk> {
        self.sources.lookup(src).map(|i| &self.trunks[i])
    }

    /// In the order given to `build`.
    pub fn iter(&self) -> impl Iterator<Item = &Trunk> {
        self.trunks.iter()
    }

    pub fn len(&self) -> usize {
        self.trunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.trunks.is_empty()
    }

    /// Gives same-named trunks of `previous` limits to this table (see
    /// `RoutingSnapshot::carry_limits_from`).
    pub(crate) fn carry_limits_from(&mut self, previous: &TrunkTable) {
        for t in &mut self.trunks {
            if let Some(old) = previous.by_name(&t.name) {
                old.limits.set(t.max_calls, t.max_cps);
                t.limits = Arc::clone(&old.limits);
            }
        }
    }
}

fn build_trunk(i: usize, name: &str, spec: &TrunkSpec) -> Result<Trunk, RoutingError> {
    let err = |field: &str, reason: String| RoutingError::trunk(i, name, field).because(reason);
    let dest = spec.dest.clone().filter(|d| !d.trim().is_empty());
    let target = match &dest {
        Some(d) => Some(parse_dest(d).map_err(|e| err("dest", e.to_string()))?),
        None => None,
    };
    check_header_text(&spec.username).map_err(|e| err("username", e.to_string()))?;
    check_header_text(&spec.password).map_err(|e| err("password", e.to_string()))?;
    let inbound_hosts = spec
        .inbound_hosts
        .iter()
        .enumerate()
        .map(|(j, h)| {
            HostPattern::parse(h).map_err(|e| err(&format!("inbound_hosts[{j}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tls = match (spec.transport, &target) {
        (Transport::Tls, Some((_, host_port))) => {
            Some(tls_dial(spec, host_port).map_err(|(field, reason)| err(field, reason))?)
        }
        _ => None,
    };
    if spec.srtp == SrtpPolicy::Required && spec.transport != Transport::Tls {
        return Err(err(
            "srtp",
            "\"required\" needs transport = \"tls\" (SRTP keys never cross UDP or TCP in clear)"
                .to_string(),
        ));
    }
    Ok(Trunk {
        name: name.into(),
        dest,
        tls,
        srtp: spec.srtp,
        transport: spec.transport,
        username: spec.username.clone(),
        password: spec.password.clone(),
        inbound_hosts,
        max_calls: spec.max_calls,
        max_cps: spec.max_cps,
        target,
        limits: TrunkLimits::new(spec.max_calls, spec.max_cps),
    })
}

/// How to verify a TLS trunk: its `tls_ca` (read here, on the control
/// core) or the web PKI, as `tls_name` or the host of its dest.
fn tls_dial(spec: &TrunkSpec, host_port: &str) -> Result<TlsDial, (&'static str, String)> {
    let ca = if spec.tls_ca.is_empty() {
        None
    } else {
        Some(
            std::fs::read(&spec.tls_ca)
                .map_err(|e| ("tls_ca", format!("cannot read {}: {e}", spec.tls_ca)))?,
        )
    };
    let (name, field) = if spec.tls_name.is_empty() {
        (host_of(host_port), "dest")
    } else {
        (spec.tls_name.as_str(), "tls_name")
    };
    if rustls::pki_types::ServerName::try_from(name).is_err() {
        return Err((
            field,
            format!("\"{name}\" is not a DNS name or an IP address to verify"),
        ));
    }
    TlsDial::new(ca.as_deref(), name).map_err(|e| ("tls_ca", e.to_string()))
}

/// The host of `host[:port]` (an IPv6 literal without its brackets).
fn host_of(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
}

/// Why a trunk's `dest` is not a usable URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DestError {
    /// Not a URI at all: the dest as written and the URI parser's reason.
    NotUri { dest: String, reason: String },
    /// A URI of another scheme (`tel:`, ...).
    NotSip(String),
    /// A URI without a host.
    NoHost(String),
}

impl fmt::Display for DestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestError::NotUri { dest, reason } => write!(
                f,
                "\"{dest}\" is not a SIP URI ({reason}); e.g. \"sip:203.0.113.10:5060\""
            ),
            DestError::NotSip(d) => write!(f, "\"{d}\" must be a sip: or sips: URI"),
            DestError::NoHost(d) => write!(f, "\"{d}\" has no host"),
        }
    }
}

impl std::error::Error for DestError {}

/// (scheme, host[:port]) of a trunk's dest URI.
fn parse_dest(d: &str) -> Result<(&'static str, String), DestError> {
    let uri = Uri::parse(d.trim()).map_err(|e| DestError::NotUri {
        dest: d.to_string(),
        reason: e.to_string(),
    })?;
    let scheme = match uri.scheme {
        Scheme::Sip => "sip",
        Scheme::Sips => "sips",
        _ => return Err(DestError::NotSip(d.to_string())),
    };
    let host = uri.host.ok_or_else(|| DestError::NoHost(d.to_string()))?;
    Ok(match uri.port {
        Some(p) => (scheme, format!("{host}:{p}")),
        None => (scheme, host.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dest: &str, hosts: &[&str]) -> TrunkSpec {
        TrunkSpec {
            dest: (!dest.is_empty()).then(|| dest.to_string()),
            inbound_hosts: hosts.iter().map(std::string::ToString::to_string).collect(),
            ..TrunkSpec::default()
        }
    }

    #[test]
    fn lookups_and_request_uri() {
        let t = TrunkTable::build(&[
            (
                "a".into(),
                spec("sip:203.0.113.10:5060", &["203.0.113.0/24"]),
            ),
            (
                "b".into(),
                spec(
                    "sips:[2001:db8::1]",
                    &["203.0.113.10:5060", "2001:db8::/48"],
                ),
            ),
            ("in".into(), spec("", &["198.51.100.7"])),
        ])
        .unwrap();
        assert_eq!(t.len(), 3);
        let a = t.by_name("a").unwrap();
        assert_eq!(
            a.request_uri("+4930123").as_deref(),
            Some("sip:+4930123@203.0.113.10:5060")
        );
        let b = t.by_name("b").unwrap();
        assert_eq!(b.request_uri("1").as_deref(), Some("sips:1@[2001:db8::1]"));
        assert_eq!(t.by_name("in").unwrap().request_uri("1"), None);
        assert!(t.by_name("c").is_none());
        let src = |s: &str| t.for_source(s.parse().unwrap()).map(|t| &*t.name);
        assert_eq!(src("203.0.113.10:5060"), Some("b"));
        assert_eq!(src("203.0.113.10:5062"), Some("a"));
        assert_eq!(src("[2001:db8::99]:5060"), Some("b"));
        assert_eq!(src("198.51.100.7:5060"), Some("in"));
        assert_eq!(src("192.0.2.1:5060"), None);
    }

    #[test]
    fn rejects_bad_trunks() {
        let e = |specs: &[(String, TrunkSpec)]| TrunkTable::build(specs).unwrap_err().to_string();
        assert_eq!(
            e(&[("a".into(), spec("http://x", &[]))]),
            "trunk \"a\": dest: \"http://x\" must be a sip: or sips: URI"
        );
        assert!(e(&[("a".into(), spec("sip:", &[]))])
            .starts_with("trunk \"a\": dest: \"sip:\" is not a SIP URI"));
        assert_eq!(
            e(&[("a".into(), spec("", &["10.0.0.1", "pbx.example.com"]))]),
            "trunk \"a\": inbound_hosts[1]: \"pbx.example.com\" is not an IP, CIDR or ip:port (host names are not resolved)"
        );
        assert_eq!(
            e(&[
                ("a".into(), spec("", &["10.0.0.0/8"])),
                ("b".into(), spec("", &["10.0.0.0/8"]))
            ]),
            "trunk \"b\": inbound_hosts[0]: \"10.0.0.0/8\" is also listed by trunk \"a\""
        );
        let dup = TrunkTable::build(&[("a".into(), spec("", &[])), ("a".into(), spec("", &[]))])
            .unwrap_err();
        assert_eq!(
            (dup.index, dup.first, dup.to_string().as_str()),
            (1, Some(0), "trunk \"a\": defined twice")
        );
        let mut s = spec("", &[]);
        s.password = "x\r\nVia: evil".into();
        assert_eq!(
            e(&[("a".into(), s)]),
            "trunk \"a\": password: must not contain control characters (CR, LF, ...)"
        );
        assert_eq!(
            e(&[(" ".into(), spec("", &[]))]),
            "trunk \" \": must not be empty"
        );
    }

    #[test]
    fn srtp_required_only_over_tls() {
        let e = |transport| {
            let s = TrunkSpec {
                transport,
                srtp: SrtpPolicy::Required,
                ..spec("sip:203.0.113.10", &[])
            };
            TrunkTable::build(&[("a".into(), s)]).map(|t| t.by_name("a").map(|t| t.srtp))
        };
        for t in [Transport::Udp, Transport::Tcp] {
            let err = e(t).unwrap_err().to_string();
            assert!(
                err.starts_with("trunk \"a\": srtp: \"required\" needs transport = \"tls\""),
                "{err}"
            );
        }
        assert_eq!(e(Transport::Tls).unwrap(), Some(SrtpPolicy::Required));
        // Off unless set; optional is allowed on any transport (keys only
        // ever go over TLS anyway).
        let t = TrunkTable::build(&[("a".into(), spec("sip:203.0.113.10", &[]))]).unwrap();
        assert_eq!(t.by_name("a").unwrap().srtp, SrtpPolicy::Off);
    }

    #[test]
    fn password_is_not_in_debug() {
        let mut s = spec("sip:10.0.0.1", &[]);
        s.password = "hunter2".into();
        let t = TrunkTable::build(&[("a".into(), s)]).unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
