//! [`Uri`]: SIP/SIPS URIs (RFC 3261 19.1), `tel:` URIs (RFC 3966) and other
//! absolute URIs (scheme kept, rest opaque), plus [`Host`] (name, IPv4, IPv6).

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::ParseError;
use super::params::Params;
use super::syntax::{
    find_byte, has_class, is_escaped_class, is_host_char, is_scheme_char, split_before, split_byte,
    unescape, CLASS_HNV, CLASS_PASSWORD, CLASS_URIC, CLASS_USER,
};

/// A URI scheme. `Other` keeps the scheme as written (answer 416 for those).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme<'a> {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:`
    Tel,
    /// Any other scheme, as written (compare case-insensitively).
    Other(&'a str),
}

impl<'a> Scheme<'a> {
    /// `sip`, `sips`, `tel` or the other scheme as written.
    pub fn as_str(&self) -> &'a str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

/// The host of a SIP URI or of a Via sent-by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// A host name as written.
    Name(&'a str),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference (written `[...]`).
    V6(Ipv6Addr),
}

impl<'a> Host<'a> {
    /// Parses a host name, IPv4 address or `[IPv6]` reference.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(ParseError::header("missing host"));
        }
        if b[0] == b'[' {
            let inner = s
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .ok_or(ParseError::header("unbalanced [] in IPv6 reference"))?;
            return inner
                .parse::<Ipv6Addr>()
                .ok()
                .or_else(|| extra_colon_ipv6(inner))
                .map(Host::V6)
                .ok_or(ParseError::header("invalid IPv6 address"));
        }
        let mut numeric = true;
        for &c in b {
            if !is_host_char(c) {
                return Err(ParseError::header("invalid host name"));
            }
            numeric &= c.is_ascii_digit() || c == b'.';
        }
        if numeric {
            return parse_ipv4(b)
                .map(Host::V4)
                .ok_or(ParseError::header("invalid IPv4 address"));
        }
        if b[0] == b'.' || b[0] == b'-' {
            return Err(ParseError::header("invalid host name"));
        }
        Ok(Host::Name(s))
    }

    /// The address, when the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Host::Name(_) => None,
            Host::V4(a) => Some(IpAddr::V4(a)),
            Host::V6(a) => Some(IpAddr::V6(a)),
        }
    }
}

/// RFC 5118 4.10: RFC 3261's `IPv6reference` ABNF lets `hexpart ":" IPv4address`
/// produce three colons before an IPv4 tail (`2001:db8:::192.0.2.1`). Such a
/// reference is read as the address meant (`2001:db8::192.0.2.1`); nothing else
/// is repaired.
fn extra_colon_ipv6(inner: &str) -> Option<Ipv6Addr> {
    let (head, tail) = inner.split_once(":::")?;
    if tail.contains(':') || !tail.contains('.') {
        return None;
    }
    format!("{head}::{tail}").parse().ok()
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A parsed URI, borrowing the message.
///
/// * `sip:`/`sips:`: every field as written (user and password keep their
///   %-escapes, see [`Uri::user_unescaped`]).
/// * `tel:`: `user` holds the number, `params` its parameters, no host.
/// * other schemes: only `scheme`; the rest is [`Uri::opaque`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The scheme.
    pub scheme: Scheme<'a>,
    /// User part (sip/sips) or number (tel), %-escaped as written.
    pub user: Option<&'a str>,
    /// Password (sip/sips), as written.
    pub password: Option<&'a str>,
    /// Host (sip/sips only).
    pub host: Option<Host<'a>>,
    /// Explicit port.
    pub port: Option<u16>,
    /// URI parameters (`;lr`, `;transport=tcp`, ...).
    pub params: Params<'a>,
    /// URI headers after `?` (without the `?`), as written.
    pub headers: Option<&'a str>,
    raw: &'a str,
}

impl<'a> Uri<'a> {
    /// Parses an absolute URI. It must not contain white space or `<>` around it.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        if s.starts_with('<') {
            return Err(ParseError::header("URI must not be enclosed in <> here"));
        }
        match Self::scan(s, false) {
            Ok((uri, end)) if end == s.len() => Ok(uri),
            _ if s.bytes().any(|b| b <= b' ' || b >= 0x7f) => Err(ParseError::header(
                "invalid character (white space?) in URI",
            )),
            Ok(_) => Err(ParseError::header("invalid character in URI")),
            Err(e) => Err(e),
        }
    }

    /// Parses the URI at the start of `s`, which ends before the first white
    /// space, control character, `<`, `>` or `"`, and when `bare` (an addr-spec
    /// outside `<>`, whose parameters belong to the header) also before `;` and
    /// `,`. Returns the URI and where it ended.
    pub(crate) fn scan(s: &'a str, bare: bool) -> Result<(Self, usize), ParseError> {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() && is_scheme_char(b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b':') {
            return Err(ParseError::header("URI without scheme"));
        }
        if i == 0 || !b[0].is_ascii_alphabetic() {
            return Err(ParseError::header("invalid URI scheme"));
        }
        let scheme_str = &s[..i];
        let rest_start = i + 1;
        // One pass: where the URI ends, its first '@', and the first ';' and '?'
        // after that '@' (or from the start when there is none).
        let mut marks = Marks::default();
        let mut end = rest_start;
        while end < b.len() {
            let code = URI_SCAN[b[end] as usize];
            if code != 0 {
                let at = end - rest_start;
                match code {
                    SCAN_STOP => break,
                    SCAN_COMMA | SCAN_SEMI if bare => break,
                    SCAN_AT if marks.at.is_none() => {
                        marks = Marks {
                            at: Some(at),
                            ..Marks::default()
                        }
                    }
                    SCAN_SEMI if marks.semi.is_none() => marks.semi = Some(at),
                    SCAN_QUERY if marks.query.is_none() => marks.query = Some(at),
                    _ => {}
                }
            }
            end += 1;
        }
        let rest = &s[rest_start..end];
        let scheme = if scheme_str.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_str.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_str.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme_str)
        };
        let mut uri = Uri {
            scheme,
            user: None,
            password: None,
            host: None,
            port: None,
            params: Params::default(),
            headers: None,
            raw: &s[..end],
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => parse_sip(rest, marks, &mut uri)?,
            Scheme::Tel => {
                let (number, params) = split_before(rest, b';');
                let ok = !number.is_empty()
                    && number.bytes().all(|b| {
                        b.is_ascii_alphanumeric()
                            || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#' | b'%')
                    });
                if !ok {
                    return Err(ParseError::header("invalid tel: number"));
                }
                uri.user = Some(number);
                uri.params = Params::new(params);
                uri.params.check_uri()?;
            }
            Scheme::Other(_) => {
                if rest.is_empty() || !is_escaped_class(rest, CLASS_URIC) {
                    return Err(ParseError::header("invalid absolute URI"));
                }
            }
        }
        Ok((uri, end))
    }

    /// The URI as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Everything after `scheme:`.
    pub fn opaque(&self) -> &'a str {
        split_byte(self.raw, b':').map_or("", |(_, r)| r)
    }

    /// The user part with %-escapes decoded (may contain any byte, even NUL).
    pub fn user_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.user.map(unescape)
    }

    /// The explicit port, or the scheme's default (5061 for sips, else 5060).
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.scheme {
            Scheme::Sips => 5061,
            _ => 5060,
        })
    }
}

const SCAN_STOP: u8 = 1;
const SCAN_AT: u8 = 2;
const SCAN_SEMI: u8 = 3;
const SCAN_QUERY: u8 = 4;
const SCAN_COMMA: u8 = 5;

const fn build_uri_scan() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = match c {
            0..=b' ' | 0x7f..=0xff | b'<' | b'>' | b'"' => SCAN_STOP,
            b'@' => SCAN_AT,
            b';' => SCAN_SEMI,
            b'?' => SCAN_QUERY,
            b',' => SCAN_COMMA,
            _ => 0,
        };
        i += 1;
    }
    t
}

static URI_SCAN: [u8; 256] = build_uri_scan();

/// Positions (relative to the text after `scheme:`) found by the URI scan.
#[derive(Clone, Copy, Default)]
struct Marks {
    at: Option<usize>,
    semi: Option<usize>,
    query: Option<usize>,
}

fn parse_sip<'a>(rest: &'a str, marks: Marks, uri: &mut Uri<'a>) -> Result<(), ParseError> {
    let host_start = marks.at.map_or(0, |a| a + 1);
    if let Some(at) = marks.at {
        {
            let ui = rest.as_bytes();
            let mut colon = None;
            let mut k = 0;
            while k < at {
                let c = ui[k];
                if c == b'%' {
                    if !(k + 2 < at
                        && ui[k + 1].is_ascii_hexdigit()
                        && ui[k + 2].is_ascii_hexdigit())
                    {
                        return Err(ParseError::header("invalid escape in URI user part"));
                    }
                    k += 3;
                    continue;
                }
                if c == b':' && colon.is_none() {
                    colon = Some(k);
                } else if !has_class(
                    c,
                    if colon.is_none() {
                        CLASS_USER
                    } else {
                        CLASS_PASSWORD
                    },
                ) {
                    return Err(ParseError::header(if colon.is_none() {
                        "invalid user part in URI"
                    } else {
                        "invalid password in URI"
                    }));
                }
                k += 1;
            }
            let user_end = colon.unwrap_or(at);
            if user_end == 0 {
                return Err(ParseError::header("invalid user part in URI"));
            }
            uri.user = Some(&rest[..user_end]);
            uri.password = colon.map(|c| &rest[c + 1..at]);
        }
    }
    let headers_at = marks.query.unwrap_or(rest.len());
    let params_at = marks.semi.filter(|&p| p < headers_at).unwrap_or(headers_at);
    let hostport = rest.get(host_start..params_at).unwrap_or("");
    let params = rest.get(params_at..headers_at).unwrap_or("");
    let headers = marks.query.map(|q| &rest[q + 1..]);
    let (host, port) = split_hostport(hostport)?;
    uri.host = Some(Host::parse(host)?);
    uri.port = port;
    uri.params = Params::new(params);
    uri.params.check_uri()?;
    if let Some(h) = headers {
        let ok = h.split('&').all(|hv| match split_byte(hv, b'=') {
            Some((n, v)) => {
                !n.is_empty() && is_escaped_class(n, CLASS_HNV) && is_escaped_class(v, CLASS_HNV)
            }
            None => false,
        });
        if !ok {
            return Err(ParseError::header("invalid URI headers"));
        }
        uri.headers = Some(h);
    }
    Ok(())
}

/// Dotted-quad IPv4 (as `Ipv4Addr::from_str`: four decimal octets, no leading
/// zeros), without the generic address parser's overhead.
fn parse_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = b.split(|&c| c == b'.');
    for o in &mut octets {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || (p.len() > 1 && p[0] == b'0') {
            return None;
        }
        let mut v = 0u16;
        for &d in p {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u16::from(d - b'0');
        }
        *o = u8::try_from(v).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// Splits `host[:port]` (host may be an `[IPv6]` reference).
pub(crate) fn split_hostport(s: &str) -> Result<(&str, Option<u16>), ParseError> {
    let port_at = if s.starts_with('[') {
        let close =
            find_byte(s, b']').ok_or(ParseError::header("unbalanced [] in IPv6 reference"))?;
        match &s[close + 1..] {
            "" => None,
            r if r.starts_with(':') => Some(close + 1),
            _ => return Err(ParseError::header("text after IPv6 reference")),
        }
    } else {
        find_byte(s, b':')
    };
    match port_at {
        None => Ok((s, None)),
        Some(i) => Ok((&s[..i], Some(parse_port(&s[i + 1..])?))),
    }
}

pub(crate) fn parse_port(p: &str) -> Result<u16, ParseError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::header("invalid port"));
    }
    p.parse::<u16>()
        .map_err(|_| ParseError::header("port out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u =
            Uri::parse("sip:alice:secret@example.com:5070;transport=tcp;lr?subject=x&h=y").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Some(Host::Name("example.com")));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.params.value("transport"), Some("tcp"));
        assert!(u.params.contains("lr"));
        assert_eq!(u.headers, Some("subject=x&h=y"));
        let u = Uri::parse("SIPS:example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.port_or_default(), 5061);
        assert_eq!(u.user, None);
    }

    #[test]
    fn ip_hosts() {
        let u = Uri::parse("sip:[2001:db8::10]:5070;lr").unwrap();
        assert_eq!(u.host, Some(Host::V6("2001:db8::10".parse().unwrap())));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.host.unwrap().to_string(), "[2001:db8::10]");
        let u = Uri::parse("sip:bob@[::1]").unwrap();
        assert_eq!(u.host.and_then(|h| h.ip()), Some("::1".parse().unwrap()));
        let u = Uri::parse("sip:192.0.2.1:5060").unwrap();
        assert_eq!(u.host, Some(Host::V4(Ipv4Addr::new(192, 0, 2, 1))));
        assert!(Uri::parse("sip:[2001:db8::10").is_err());
        assert!(Uri::parse("sip:[zz]").is_err());
        assert!(Uri::parse("sip:192.0.2").is_err());
        assert!(Uri::parse("sip:a@host:").is_err());
        assert!(Uri::parse("sip:a@host:99999").is_err());
        assert!(Uri::parse("sip:a@").is_err());
    }

    #[test]
    fn ipv4_like_std() {
        for s in [
            "192.0.2.1",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.",
            ".1.2.3",
            "1234.1.1.1",
            "",
            "1.2.3.04",
            "10.0.0.0",
        ] {
            assert_eq!(parse_ipv4(s.as_bytes()), s.parse::<Ipv4Addr>().ok(), "{s}");
        }
    }

    #[test]
    fn tel_and_others() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some("+1-201-555-0123"));
        assert_eq!(u.params.value("phone-context"), Some("example.com"));
        assert!(u.host.is_none());
        let u = Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").unwrap();
        assert!(u
            .scheme
            .as_str()
            .eq_ignore_ascii_case("nobodyknowsthisscheme"));
        assert_eq!(u.opaque(), "totallyopaquecontent");
        let u = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(u.scheme, Scheme::Other("soap.beep"));
        assert!(Uri::parse("tel:").is_err());
        assert!(Uri::parse("http:").is_err());
    }

    #[test]
    fn escapes_and_odd_users() {
        let u = Uri::parse("sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(
            u.user_unescaped().unwrap().as_ref(),
            b"sips:user@example.com"
        );
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, Some(Host::Name("example.com")));
        let u = Uri::parse(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        )
        .unwrap();
        assert_eq!(
            u.user,
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert!(Uri::parse("sip:a%zz@example.com").is_err());
    }

    #[test]
    fn rejects() {
        assert!(Uri::parse("<sip:user@example.com>").is_err());
        assert!(Uri::parse("sip:user@example.com; lr").is_err());
        assert!(Uri::parse("sip:user@exa mple.com").is_err());
        assert!(Uri::parse("sip:user@example.com;").is_err());
        assert!(Uri::parse("nocolon").is_err());
        assert!(Uri::parse("1sip:x").is_err());
        assert!(Uri::parse("sip:user@example.com?Route").is_err());
        let u = Uri::parse("sip:user@example.com?Route=%3Csip:example.com%3E").unwrap();
        assert_eq!(u.headers, Some("Route=%3Csip:example.com%3E"));
    }
}
