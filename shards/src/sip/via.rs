//! [`Via`]: one Via element (`SIP/2.0/UDP host:port;branch=..`), where a response
//! to it goes (RFC 3261 18.2.2, RFC 3581) and how to stamp `received`/`rport` on it.

use std::net::{IpAddr, SocketAddr};

use super::build::{put_clean, put_ip, put_uint};
use super::error::ParseError;
use super::params::scan_header_params;
use super::params::{Param, Params};
use super::syntax::{is_host_char, is_lws, is_token_char, trim_lws_end, trim_lws_start};
use super::uri::{parse_port, Host};

/// The RFC 3261 branch magic cookie.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// A Via transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    /// UDP
    Udp,
    /// TCP
    Tcp,
    /// TLS
    Tls,
    /// SCTP
    Sctp,
    /// WebSocket (RFC 7118)
    Ws,
    /// Secure WebSocket (RFC 7118)
    Wss,
    /// Anything else, as written.
    Other(&'a str),
}

impl<'a> Transport<'a> {
    /// Case-insensitive mapping of a transport token.
    pub fn parse(s: &'a str) -> Self {
        const ALL: [(&str, Transport<'static>); 6] = [
            ("UDP", Transport::Udp),
            ("TCP", Transport::Tcp),
            ("TLS", Transport::Tls),
            ("SCTP", Transport::Sctp),
            ("WS", Transport::Ws),
            ("WSS", Transport::Wss),
        ];
        ALL.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map_or(Transport::Other(s), |(_, t)| *t)
    }

    /// The transport token (upper case for known ones).
    pub fn as_str(&self) -> &'a str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
            Transport::Other(s) => s,
        }
    }

    /// Connection-oriented: responses go back over the request's connection.
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Transport::Udp | Transport::Other(_))
    }

    /// Default port when sent-by has none: 5061 for TLS, else 5060.
    pub fn default_port(&self) -> u16 {
        match self {
            Transport::Tls => 5061,
            _ => 5060,
        }
    }
}

/// One Via element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol name, normally `SIP`.
    pub protocol: &'a str,
    /// Protocol version, normally `2.0`.
    pub version: &'a str,
    /// Transport.
    pub transport: Transport<'a>,
    /// sent-by host.
    pub host: Host<'a>,
    /// sent-by port, if written.
    pub port: Option<u16>,
    /// Parameters (branch, received, rport, maddr, ttl, ...).
    pub params: Params<'a>,
    raw: &'a str,
    branch: Option<&'a str>,
    received: Option<&'a str>,
    maddr: Option<&'a str>,
    rport: Option<Option<u16>>,
    ttl: Option<u8>,
}

/// Where to send a response (RFC 3261 18.2.2, RFC 3581 4).
///
/// For reliable transports the response goes over the request's connection when
/// it is still open; this is the address to use otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseDest<'a> {
    /// Send to this address.
    Addr(SocketAddr),
    /// `maddr` names a host: resolve it (off the shard) and use this port.
    Resolve {
        /// Host name from `maddr`.
        host: &'a str,
        /// sent-by port or the transport default.
        port: u16,
    },
}

impl<'a> Via<'a> {
    /// Parses and checks one Via element (the whole text).
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let (via, rest) = Self::parse_prefix(s, true)?;
        if rest.is_empty() {
            Ok(via)
        } else {
            Err(ParseError::header("several values"))
        }
    }

    /// Parses the Via element at the start of `s`; returns it and the rest, which
    /// is empty or starts with `,`. Not `strict`: the parameters are only looked
    /// at, not checked (enough to answer a Via whose parameters are garbage).
    pub(crate) fn parse_prefix(s: &'a str, strict: bool) -> Result<(Self, &'a str), ParseError> {
        let (mut via, after) = Self::parse_head(s)?;
        let tail = &via.raw[after..];
        let (params, rest) = scan_header_params(tail, strict, |p| via.note_param(p, strict))?;
        if !rest.is_empty() && !rest.starts_with(',') {
            return Err(ParseError::header("unexpected text after sent-by"));
        }
        via.params = params;
        via.raw = trim_lws_end(&via.raw[..via.raw.len() - rest.len()]);
        Ok((via, rest))
    }

    /// Records a well-known parameter; `strict` rejects bad values.
    fn note_param(&mut self, p: Param<'a>, strict: bool) -> Result<(), ParseError> {
        let n = p.name.as_bytes();
        let is = |name: &str| n.eq_ignore_ascii_case(name.as_bytes());
        if n.is_empty() {
            return Ok(());
        }
        match n[0] | 0x20 {
            b'b' if is("branch") && self.branch.is_none() => match p.value {
                Some(v) => self.branch = Some(v),
                None if strict => return Err(ParseError::header("branch without value")),
                None => {}
            },
            b'r' if is("received") && self.received.is_none() => {
                let ip = p.value.and_then(|r| {
                    let r = r
                        .strip_prefix('[')
                        .and_then(|r| r.strip_suffix(']'))
                        .unwrap_or(r);
                    r.parse::<IpAddr>().ok()
                });
                match ip {
                    Some(_) => self.received = p.value,
                    None if strict => {
                        return Err(ParseError::header("received is not an IP address"))
                    }
                    None => {}
                }
            }
            b'r' if is("rport") && self.rport.is_none() => match p.value {
                None => self.rport = Some(None),
                Some(v) => match parse_port(v) {
                    Ok(port) => self.rport = Some(Some(port)),
                    Err(_) if strict => return Err(ParseError::header("invalid rport")),
                    Err(_) => self.rport = Some(None),
                },
            },
            b'm' if is("maddr") && self.maddr.is_none() => match p.value.map(Host::parse) {
                Some(Ok(_)) => self.maddr = p.value,
                _ if strict => return Err(ParseError::header("invalid maddr")),
                _ => {}
            },
            b't' if is("ttl") && self.ttl.is_none() => {
                match p.value.map(super::fields::parse_max_forwards) {
                    Some(Ok(t)) => self.ttl = Some(t),
                    _ if strict => return Err(ParseError::header("invalid ttl")),
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Lenient [`Via::parse_prefix`] of the first element.
    pub(crate) fn parse_sent_by(s: &'a str) -> Result<Self, ParseError> {
        Self::parse_prefix(s, false).map(|(v, _)| v)
    }

    /// Protocol, transport, sent-by; parameters kept raw and not looked at.
    /// Returns the Via (raw = the rest of `s`) and where its parameters start.
    fn parse_head(s: &'a str) -> Result<(Self, usize), ParseError> {
        const BAD: ParseError = ParseError::header("expected SIP/2.0/<transport> <host>");
        let s = trim_lws_start(s);
        let b = s.as_bytes();
        let mut i = 0;
        let skip_lws = |i: &mut usize| {
            while *i < b.len() && is_lws(b[*i]) {
                *i += 1;
            }
        };
        let token = |i: &mut usize| {
            let start = *i;
            while *i < b.len() && is_token_char(b[*i]) {
                *i += 1;
            }
            (*i > start).then(|| &s[start..*i])
        };
        let slash = |i: &mut usize| {
            skip_lws(i);
            let ok = b.get(*i) == Some(&b'/');
            *i += 1;
            skip_lws(i);
            ok
        };
        let protocol = token(&mut i).ok_or(BAD)?;
        if !slash(&mut i) {
            return Err(BAD);
        }
        let version = token(&mut i).ok_or(BAD)?;
        if !slash(&mut i) {
            return Err(BAD);
        }
        let transport = token(&mut i).ok_or(BAD)?;
        if !b.get(i).is_some_and(|&c| is_lws(c)) {
            return Err(BAD);
        }
        skip_lws(&mut i);
        let host_start = i;
        if b.get(i) == Some(&b'[') {
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
            i = (i + 1).min(b.len());
        } else {
            while i < b.len() && is_host_char(b[i]) {
                i += 1;
            }
        }
        let host = Host::parse(&s[host_start..i])?;
        skip_lws(&mut i);
        let mut port = None;
        if b.get(i) == Some(&b':') {
            i += 1;
            skip_lws(&mut i);
            let ps = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            port = Some(parse_port(&s[ps..i])?);
            skip_lws(&mut i);
        }
        Ok((
            Via {
                protocol,
                version,
                transport: Transport::parse(transport),
                host,
                port,
                params: Params::default(),
                raw: s,
                branch: None,
                received: None,
                maddr: None,
                rport: None,
                ttl: None,
            },
            i,
        ))
    }

    /// The element as written (trimmed).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.branch
    }

    /// Whether the branch starts with the RFC 3261 magic cookie (and has more
    /// after it). When false, match transactions with RFC 2543 rules.
    pub fn is_rfc3261(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.received
    }

    /// The `rport` parameter: `None` when absent, `Some(None)` when present
    /// without a value (a request asking for RFC 3581), `Some(Some(p))` with one.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.rport
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.maddr
    }

    /// The `ttl` parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.ttl
    }

    /// sent-by port, or the transport's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(self.transport.default_port())
    }

    /// Where the response to a request carrying this (top) Via goes, given the
    /// request's source address.
    ///
    /// * `rport` present: the source address and port (RFC 3581).
    /// * `maddr` present: that address (or host to resolve), sent-by port.
    /// * otherwise: the source IP (the server stamps `received` with it whenever
    ///   sent-by differs, RFC 3261 18.2.1, and a `received` that came in the
    ///   request is replaced by that stamp) and the sent-by port or default.
    ///
    /// The sent-by host is never resolved, so a Via naming an unknown host does
    /// not block anything.
    pub fn response_dest(&self, source: SocketAddr) -> ResponseDest<'a> {
        if self.rport.is_some() {
            return ResponseDest::Addr(source);
        }
        let port = self.port_or_default();
        if let Some(m) = self.maddr() {
            match Host::parse(m) {
                Ok(Host::Name(host)) => return ResponseDest::Resolve { host, port },
                Ok(h) => {
                    if let Some(ip) = h.ip() {
                        return ResponseDest::Addr(SocketAddr::new(ip, port));
                    }
                }
                Err(_) => {}
            }
        }
        ResponseDest::Addr(SocketAddr::new(source.ip(), port))
    }

    /// Writes this Via element with `received` (and `rport=<port>` when `rport`
    /// is present) set for a request that arrived from `source`:
    /// RFC 3261 18.2.1 (received when sent-by differs from the source IP) and
    /// RFC 3581 (rport requested: fill it in and always add received).
    pub fn write_stamped(&self, out: &mut Vec<u8>, source: SocketAddr) {
        let has_rport = self.rport.is_some();
        let need_received = has_rport || self.host.ip() != Some(source.ip());
        out.extend_from_slice(self.protocol.as_bytes());
        out.push(b'/');
        out.extend_from_slice(self.version.as_bytes());
        out.push(b'/');
        out.extend_from_slice(self.transport.as_str().as_bytes());
        out.push(b' ');
        match self.host {
            Host::Name(n) => out.extend_from_slice(n.as_bytes()),
            Host::V4(a) => put_ip(out, IpAddr::V4(a)),
            Host::V6(a) => {
                out.push(b'[');
                put_ip(out, IpAddr::V6(a));
                out.push(b']');
            }
        }
        if let Some(p) = self.port {
            out.push(b':');
            put_uint(out, u64::from(p));
        }
        let mut wrote_received = false;
        for p in self.params.iter() {
            if p.name.is_empty() || p.name.eq_ignore_ascii_case("received") {
                continue;
            }
            if p.name.eq_ignore_ascii_case("rport") {
                out.extend_from_slice(b";received=");
                put_ip(out, source.ip());
                out.extend_from_slice(b";rport=");
                put_uint(out, u64::from(source.port()));
                wrote_received = true;
                continue;
            }
            out.push(b';');
            put_clean(out, p.name);
            if let Some(v) = p.value {
                out.push(b'=');
                put_clean(out, v);
            }
        }
        if need_received && !wrote_received {
            out.extend_from_slice(b";received=");
            put_ip(out, source.ip());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn src(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_plain_and_lws() {
        let v = Via::parse("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKabc;rport").unwrap();
        assert_eq!(v.transport, Transport::Udp);
        assert_eq!(v.host, Host::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.branch(), Some("z9hG4bKabc"));
        assert_eq!(v.rport(), Some(None));
        assert!(v.is_rfc3261());
        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!((v.protocol, v.version), ("SIP", "2.0"));
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.is_rfc3261());
        let v = Via::parse(
            "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        )
        .unwrap();
        assert_eq!(v.host, Host::Name("spindle.example.com"));
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        let v = Via::parse("SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bKx;received=2001:db8::1")
            .unwrap();
        assert_eq!(v.host, Host::V6("2001:db8::9".parse().unwrap()));
        assert_eq!(v.port_or_default(), 5061);
        let v = Via::parse("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en").unwrap();
        assert_eq!(v.transport, Transport::Other("UNKNOWN"));
        let v = Via::parse("SIP/2.0/UDP host : 5062 ;ttl=16;maddr=224.0.0.1").unwrap();
        assert_eq!(v.port, Some(5062));
        assert_eq!(v.ttl(), Some(16));
        assert!(!Via::parse("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK")
            .unwrap()
            .is_rfc3261());
    }

    #[test]
    fn rejects() {
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse_sent_by("SIP/2.0/UDP 192.0.2.15;;").is_ok());
        assert!(Via::parse("SIP/2.0 192.0.2.15").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("SIP/2.0/UDP [::1").is_err());
        assert!(Via::parse("SIP/2.0/UDP host:").is_err());
        assert!(Via::parse("SIP/2.0/UDP host/x").is_err());
        assert!(Via::parse("SIP/2.0/UDP host;received=example.com").is_err());
        assert!(Via::parse("SIP/2.0/UDP host;rport=x").is_err());
        assert!(Via::parse("SIP/2.0/UDP host;ttl=300").is_err());
        assert!(Via::parse("SIP/2.0/UDP host;branch").is_err());
        assert!(Via::parse("").is_err());
    }

    #[test]
    fn response_destination() {
        let s = src("203.0.113.7:40000");
        let rport = Via::parse("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;rport").unwrap();
        assert_eq!(rport.response_dest(s), ResponseDest::Addr(s));
        let plain = Via::parse("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa").unwrap();
        assert_eq!(
            plain.response_dest(s),
            ResponseDest::Addr(src("203.0.113.7:5062"))
        );
        let noport = Via::parse("SIP/2.0/UDP host.example.com;branch=z9hG4bKa").unwrap();
        assert_eq!(
            noport.response_dest(s),
            ResponseDest::Addr(src("203.0.113.7:5060"))
        );
        let tls = Via::parse("SIP/2.0/TLS host.example.com;branch=z9hG4bKa").unwrap();
        assert_eq!(
            tls.response_dest(s),
            ResponseDest::Addr(src("203.0.113.7:5061"))
        );
        assert!(tls.transport.is_reliable());
        let maddr = Via::parse("SIP/2.0/UDP h:5070;maddr=239.1.1.1;ttl=1").unwrap();
        assert_eq!(
            maddr.response_dest(s),
            ResponseDest::Addr(src("239.1.1.1:5070"))
        );
        let mname = Via::parse("SIP/2.0/UDP h;maddr=relay.example.com").unwrap();
        assert_eq!(
            mname.response_dest(s),
            ResponseDest::Resolve {
                host: "relay.example.com",
                port: 5060
            }
        );
        let v6 = Via::parse("SIP/2.0/UDP [2001:db8::1];branch=z9hG4bKa").unwrap();
        let s6 = src("[2001:db8::2]:7000");
        assert_eq!(
            v6.response_dest(s6),
            ResponseDest::Addr(src("[2001:db8::2]:5060"))
        );
    }

    #[test]
    fn stamping() {
        let s = src("203.0.113.7:40000");
        let mut out = Vec::new();
        Via::parse("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;rport")
            .unwrap()
            .write_stamped(&mut out, s);
        assert_eq!(
            out,
            b"SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;received=203.0.113.7;rport=40000"
        );
        out.clear();
        Via::parse("SIP/2.0/UDP 203.0.113.7;branch=z9hG4bKa")
            .unwrap()
            .write_stamped(&mut out, s);
        assert_eq!(out, b"SIP/2.0/UDP 203.0.113.7;branch=z9hG4bKa");
        out.clear();
        Via::parse("SIP/2.0/tcp host.example.com;branch=z9hG4bKa;received=1.1.1.1")
            .unwrap()
            .write_stamped(&mut out, s);
        assert_eq!(
            out,
            b"SIP/2.0/TCP host.example.com;branch=z9hG4bKa;received=203.0.113.7"
        );
        out.clear();
        Via::parse("SIP/2.0/UDP [2001:db8::1];rport;branch=z9hG4bKb")
            .unwrap()
            .write_stamped(&mut out, src("[2001:db8::2]:7000"));
        assert_eq!(
            out,
            b"SIP/2.0/UDP [2001:db8::1];received=2001:db8::2;rport=7000;branch=z9hG4bKb"
        );
    }
}
