//! [`Uri`]: SIP/SIPS URIs (RFC 3261 19.1), `tel:` URIs (RFC 3966) and other
//! absolute URIs (scheme kept, rest opaque), plus [`Host`] (name, IPv4, IPv6).

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::ParseError;
use super::params::Params;
use super::syntax::{
    find_byte, is_escaped_class, is_host_char, is_scheme, split_before, split_byte, unescape,
    CLASS_HNV, CLASS_PASSWORD, CLASS_URIC, CLASS_USER,
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
                .map(Host::V6)
                .map_err(|_| ParseError::header("invalid IPv6 address"));
        }
        if b.iter().all(|&c| c.is_ascii_digit() || c == b'.') {
            return s
                .parse::<Ipv4Addr>()
                .map(Host::V4)
                .map_err(|_| ParseError::header("invalid IPv4 address"));
        }
        if b[0] == b'.' || b[0] == b'-' || !b.iter().all(|&c| is_host_char(c)) {
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
        if s.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(ParseError::header("invalid character (white space?) in URI"));
        }
        if s.starts_with('<') {
            return Err(ParseError::header("URI must not be enclosed in <> here"));
        }
        let colon = find_byte(s, b':').ok_or(ParseError::header("URI without scheme"))?;
        let scheme_str = &s[..colon];
        if !is_scheme(scheme_str) {
            return Err(ParseError::header("invalid URI scheme"));
        }
        let rest = &s[colon + 1..];
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
            raw: s,
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => parse_sip(rest, &mut uri)?,
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
        Ok(uri)
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

fn parse_sip<'a>(rest: &'a str, uri: &mut Uri<'a>) -> Result<(), ParseError> {
    let (userinfo, hostpart) = match split_byte(rest, b'@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    if let Some(ui) = userinfo {
        let (user, password) = match split_byte(ui, b':') {
            Some((u, p)) => (u, Some(p)),
            None => (ui, None),
        };
        if user.is_empty() || !is_escaped_class(user, CLASS_USER) {
            return Err(ParseError::header("invalid user part in URI"));
        }
        if password.is_some_and(|p| !is_escaped_class(p, CLASS_PASSWORD)) {
            return Err(ParseError::header("invalid password in URI"));
        }
        uri.user = Some(user);
        uri.password = password;
    }
    let (hostparams, headers) = match split_byte(hostpart, b'?') {
        Some((hp, h)) => (hp, Some(h)),
        None => (hostpart, None),
    };
    let (hostport, params) = split_before(hostparams, b';');
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

/// Splits `host[:port]` (host may be an `[IPv6]` reference).
pub(crate) fn split_hostport(s: &str) -> Result<(&str, Option<u16>), ParseError> {
    let port_at = if s.starts_with('[') {
        let close = find_byte(s, b']').ok_or(ParseError::header("unbalanced [] in IPv6 reference"))?;
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
        let u = Uri::parse("sip:alice:secret@example.com:5070;transport=tcp;lr?subject=x&h=y").unwrap();
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
    fn tel_and_others() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some("+1-201-555-0123"));
        assert_eq!(u.params.value("phone-context"), Some("example.com"));
        assert!(u.host.is_none());
        let u = Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").unwrap();
        assert!(u.scheme.as_str().eq_ignore_ascii_case("nobodyknowsthisscheme"));
        assert_eq!(u.opaque(), "totallyopaquecontent");
        let u = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(u.scheme, Scheme::Other("soap.beep"));
        assert!(Uri::parse("tel:").is_err());
        assert!(Uri::parse("http:").is_err());
    }

    #[test]
    fn escapes_and_odd_users() {
        let u = Uri::parse("sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(u.user_unescaped().unwrap().as_ref(), b"sips:user@example.com");
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, Some(Host::Name("example.com")));
        let u = Uri::parse(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        )
        .unwrap();
        assert_eq!(u.user, Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"));
        assert_eq!(u.password, Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"));
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
