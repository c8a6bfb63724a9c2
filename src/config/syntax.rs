//! Syntax checks for config values that are not plain numbers: hostnames and
//! realms, HTTP(S) URLs, HTTP header names and values. Each refusal is a
//! [`SyntaxError`] whose text fits after `<key>: ` in a config error.

use std::fmt;
use std::net::IpAddr;

/// Why a value is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SyntaxError {
    Empty,
    /// In brackets but not an IPv6 address.
    Ipv6(String),
    Host(String),
    Url(String, UrlFault),
    HeaderName(String),
    /// A header value with CR, LF or NUL.
    HeaderValue,
}

/// What is wrong with an HTTP(S) URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UrlFault {
    Whitespace,
    NoScheme,
    Scheme,
    MissingHost,
    JunkAfterIpv6,
    UnclosedBracket,
    Host,
    Port,
}

impl fmt::Display for UrlFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlFault::Whitespace => "contains whitespace or control characters",
            UrlFault::NoScheme => "expected http:// or https://",
            UrlFault::Scheme => "scheme must be http or https",
            UrlFault::MissingHost => "missing host",
            UrlFault::JunkAfterIpv6 => "junk after IPv6 address",
            UrlFault::UnclosedBracket => "unclosed '['",
            UrlFault::Host => "invalid host",
            UrlFault::Port => "port must be 1-65535",
        })
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyntaxError::Empty => f.write_str("must not be empty"),
            SyntaxError::Ipv6(s) => write!(f, "\"{s}\" is not a valid IPv6 address"),
            SyntaxError::Host(s) => write!(f, "\"{s}\" is not a valid hostname or IP address"),
            SyntaxError::Url(s, why) => write!(f, "\"{s}\" is not a valid http(s) URL: {why}"),
            SyntaxError::HeaderName(s) => write!(f, "\"{s}\" is not a valid HTTP header name"),
            SyntaxError::HeaderValue => f.write_str("header value must not contain CR, LF or NUL"),
        }
    }
}

impl std::error::Error for SyntaxError {}

/// A DNS hostname (RFC 1123 labels, optional trailing dot), or an IPv4/IPv6
/// address (IPv6 optionally in brackets). No port.
pub(super) fn check_host(s: &str) -> Result<(), SyntaxError> {
    if s.is_empty() {
        return Err(SyntaxError::Empty);
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return match inner.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(SyntaxError::Ipv6(s.to_string())),
        };
    }
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let bad = || SyntaxError::Host(s.to_string());
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(bad());
        }
    }
    // All-numeric names look like IPv4 addresses, and this one did not parse.
    if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad());
    }
    Ok(())
}

/// An absolute `http://` or `https://` URL with a valid host and an optional
/// port 1-65535; no whitespace or control characters.
pub(super) fn check_http_url(s: &str) -> Result<(), SyntaxError> {
    if s.is_empty() {
        return Err(SyntaxError::Empty);
    }
    let bad = |why: UrlFault| SyntaxError::Url(s.to_string(), why);
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(UrlFault::Whitespace));
    }
    let (scheme, rest) = s.split_once("://").ok_or_else(|| bad(UrlFault::NoScheme))?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(bad(UrlFault::Scheme));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let hostport = match authority.rsplit_once('@') {
        Some((_userinfo, hp)) => hp,
        None => authority,
    };
    if hostport.is_empty() {
        return Err(bad(UrlFault::MissingHost));
    }
    let (host, port) = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(close) => {
                let host = &hostport[..=close];
                let after = &hostport[close + 1..];
                match after.strip_prefix(':') {
                    Some(p) => (host, Some(p)),
                    None if after.is_empty() => (host, None),
                    None => return Err(bad(UrlFault::JunkAfterIpv6)),
                }
            }
            None => return Err(bad(UrlFault::UnclosedBracket)),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    check_host(host).map_err(|_| bad(UrlFault::Host))?;
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p >= 1 => {}
            _ => return Err(bad(UrlFault::Port)),
        }
    }
    Ok(())
}

/// An HTTP header name (an RFC 9110 token).
pub(super) fn check_header_name(name: &str) -> Result<(), SyntaxError> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(SyntaxError::HeaderName(name.to_string()));
    }
    Ok(())
}

/// An HTTP header value: no CR, LF or NUL.
pub(super) fn check_header_value(value: &str) -> Result<(), SyntaxError> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(SyntaxError::HeaderValue);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "localhost",
            "pbx.example.com",
            "pbx.example.com.",
            "a-b.c1",
            "127.0.0.1",
            "::1",
            "[2001:db8::1]",
            "xn--bcher-kva.example",
        ] {
            assert!(check_host(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "pbx example.com",
            "-pbx.com",
            "pbx-.com",
            "a..b",
            "1.2.3.999",
            "pbx.com:5060",
            "[::1",
            "[1.2.3.4]",
            "under_score.com",
            ".",
            &"a".repeat(64),
        ] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        for ok in [
            "http://127.0.0.1:9000/route",
            "https://api.example.com/pbx/auth?x=1",
            "HTTP://[::1]:8080",
            "https://user:pw@example.com",
            "http://localhost",
        ] {
            assert!(check_http_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "127.0.0.1:9000/route",
            "ftp://example.com",
            "http://",
            "http:///path",
            "http://exa mple.com",
            "http://example.com:0",
            "http://example.com:99999",
            "http://[::1",
            "http://bad_host/",
        ] {
            assert!(check_http_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers() {
        assert!(check_header_name("X-API-Key").is_ok());
        assert!(check_header_name("").is_err());
        assert!(check_header_name("Bad Header").is_err());
        assert!(check_header_name("Bad:Header").is_err());
        assert!(check_header_value("token 123").is_ok());
        assert!(check_header_value("a\r\nInjected: 1").is_err());
    }

    #[test]
    fn reasons_read_as_before() {
        assert_eq!(check_host("").unwrap_err().to_string(), "must not be empty");
        assert_eq!(
            check_host("[1.2.3.4]").unwrap_err().to_string(),
            "\"[1.2.3.4]\" is not a valid IPv6 address"
        );
        assert_eq!(
            check_host("a..b").unwrap_err().to_string(),
            "\"a..b\" is not a valid hostname or IP address"
        );
        assert_eq!(
            check_http_url("http://example.com:0")
                .unwrap_err()
                .to_string(),
            "\"http://example.com:0\" is not a valid http(s) URL: port must be 1-65535"
        );
        assert_eq!(
            check_http_url("ftp://x").unwrap_err().to_string(),
            "\"ftp://x\" is not a valid http(s) URL: scheme must be http or https"
        );
        assert_eq!(
            check_header_name("Bad Header").unwrap_err().to_string(),
            "\"Bad Header\" is not a valid HTTP header name"
        );
        assert_eq!(
            check_header_value("a\nb").unwrap_err().to_string(),
            "header value must not contain CR, LF or NUL"
        );
    }
}
