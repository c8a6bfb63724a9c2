//! [`NameAddr`]: `name-addr / addr-spec` values with header parameters (From, To,
//! Contact, Route, Record-Route, Refer-To, ...), and [`Contact`] (which may be `*`).

use std::borrow::Cow;

use super::error::ParseError;
use super::params::{scan_header_params, Params};
use super::scan::{find2_from, find_from};
use super::syntax::{is_lws, is_token_char, quoted_end, trim_lws, trim_lws_start, unquote};
use super::uri::Uri;

/// `[display-name] <uri> *(;param)` or a bare `uri *(;param)`.
///
/// With a bare addr-spec the parameters after the URI belong to the header
/// (`From: sip:a@b;tag=1` has tag `1` and a URI without parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written: a quoted string (with its quotes) or token words.
    pub display_name: Option<&'a str>,
    /// The URI.
    pub uri: Uri<'a>,
    /// Header parameters (`tag`, `expires`, `q`, `+sip.instance`, `reg-id`, ...).
    pub params: Params<'a>,
    /// Whether the URI was written in `<>`.
    pub bracketed: bool,
    tag: Option<&'a str>,
}

impl<'a> NameAddr<'a> {
    /// Parses and checks one name-addr / addr-spec value (the whole text).
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let (na, rest) = Self::parse_prefix(s)?;
        if rest.is_empty() {
            Ok(na)
        } else {
            Err(ParseError::header("several values"))
        }
    }

    /// Parses one list element at the start of `s`; returns it and the rest,
    /// which is empty or starts with `,`.
    pub(crate) fn parse_prefix(s: &'a str) -> Result<(Self, &'a str), ParseError> {
        let s = trim_lws_start(s);
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(ParseError::header("empty value"));
        }
        let (display_name, open) = if b[0] == b'"' {
            let end = quoted_end(b, 0).ok_or(ParseError::header("unterminated quoted string"))?;
            let mut lt = end;
            while lt < b.len() && is_lws(b[lt]) {
                lt += 1;
            }
            if b.get(lt) != Some(&b'<') {
                return Err(ParseError::header("quoted display name without <URI>"));
            }
            (Some(&s[..end]), Some(lt))
        } else {
            let mut i = 0;
            while i < b.len() && (is_token_char(b[i]) || is_lws(b[i])) {
                i += 1;
            }
            if b.get(i) == Some(&b'<') {
                let name = trim_lws(&s[..i]);
                ((!name.is_empty()).then_some(name), Some(i))
            } else {
                (None, None)
            }
        };
        let (uri, after, bracketed) = match open {
            Some(lt) => {
                let start = lt + 1;
                if b.get(start).is_some_and(|&c| is_lws(c)) {
                    return Err(ParseError::header("white space inside <>"));
                }
                let (uri, n) = Uri::scan(&s[start..], false)?;
                let close = start + n;
                match b.get(close) {
                    Some(b'>') => (uri, close + 1, true),
                    Some(&c) if is_lws(c) => {
                        return Err(ParseError::header("white space inside <>"))
                    }
                    Some(_) => return Err(ParseError::header("invalid character in URI")),
                    None => return Err(ParseError::header("missing > after URI")),
                }
            }
            None => {
                let (uri, n) = Uri::scan(s, true).map_err(|e| {
                    if find_unquoted(b, b'<').is_some() {
                        ParseError::header("invalid display name (quote it)")
                    } else if b.contains(&b'"') {
                        ParseError::header("unbalanced quotes")
                    } else {
                        e
                    }
                })?;
                if uri.headers.is_some() {
                    return Err(ParseError::header(
                        "URI with headers must be enclosed in <>",
                    ));
                }
                (uri, n, false)
            }
        };
        let mut tag = None;
        let (params, rest) = scan_header_params(&s[after..], true, |p| {
            if tag.is_none() && p.name.eq_ignore_ascii_case("tag") {
                tag = p.value;
            }
            Ok(())
        })?;
        if !rest.is_empty() && !rest.starts_with(',') {
            return Err(ParseError::header("unexpected text after URI"));
        }
        Ok((
            NameAddr {
                display_name,
                uri,
                params,
                bracketed,
                tag,
            },
            rest,
        ))
    }

    /// The display name without quotes, escapes or folds.
    pub fn display_name_unquoted(&self) -> Option<Cow<'a, str>> {
        self.display_name.map(unquote)
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&'a str> {
        self.tag
    }
}

/// A Contact value: `*` (REGISTER removal of all bindings) or an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *`
    Star,
    /// An address with its parameters (`expires`, `q`, `+sip.instance`, ...).
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    /// Parses one Contact value (the whole text).
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let (c, rest) = Self::parse_prefix(s)?;
        if rest.is_empty() {
            Ok(c)
        } else {
            Err(ParseError::header("several values"))
        }
    }

    /// Parses one list element at the start of `s` (see `NameAddr::parse_prefix`).
    pub(crate) fn parse_prefix(s: &'a str) -> Result<(Self, &'a str), ParseError> {
        let t = trim_lws_start(s);
        if let Some(after) = t.strip_prefix('*') {
            let rest = trim_lws_start(after);
            if rest.is_empty() || rest.starts_with(',') {
                return Ok((Contact::Star, rest));
            }
        }
        NameAddr::parse_prefix(t).map(|(n, rest)| (Contact::Addr(n), rest))
    }
}

/// The `tag` parameter of a From/To value, found without parsing or checking
/// the rest of it (the proxy fast path; `Message::check` does the checking).
pub(crate) fn tag_only(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    // The first '<' outside a quoted display name opens the URI.
    let mut i = 0;
    let open = loop {
        match find2_from(b, i, b'<', b'"') {
            Some(q) if b[q] == b'"' => i = quoted_end(b, q)?,
            other => break other,
        }
    };
    let params_at = match open {
        Some(lt) => find_from(b, lt, b'>')? + 1,
        None => find_from(b, 0, b';')?,
    };
    let mut tag = None;
    let _ = scan_header_params(&s[params_at..], false, |p| {
        if tag.is_none() && p.name.eq_ignore_ascii_case("tag") {
            tag = p.value;
        }
        Ok(())
    });
    tag
}

fn find_unquoted(b: &[u8], needle: u8) -> Option<usize> {
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = quoted_end(b, i)?,
            c if c == needle => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::uri::{Host, Scheme};

    #[test]
    fn forms() {
        let n = NameAddr::parse("\"A. G. Bell\" <sip:agb@bell-telephone.com> ;tag=a48s").unwrap();
        assert_eq!(n.display_name, Some("\"A. G. Bell\""));
        assert_eq!(n.display_name_unquoted().unwrap(), "A. G. Bell");
        assert_eq!(n.tag(), Some("a48s"));
        assert!(n.bracketed);
        let n = NameAddr::parse("sip:caller@example.org;tag=33242").unwrap();
        assert_eq!(n.tag(), Some("33242"));
        assert!(n.uri.params.is_empty());
        assert!(!n.bracketed);
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name, Some("caller"));
        let n = NameAddr::parse("<sip:+1@gw1.example.net;unknownparam>").unwrap();
        assert!(n.uri.params.contains("unknownparam"));
        assert!(n.params.is_empty());
        let n = NameAddr::parse("sip:+1@gw1.example.net;unknownparam").unwrap();
        assert!(n.params.contains("unknownparam"));
        let n = NameAddr::parse("isbn:2983792873").unwrap();
        assert_eq!(n.uri.scheme, Scheme::Other("isbn"));
    }

    #[test]
    fn folded_and_escaped() {
        let n = NameAddr::parse(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(n.display_name_unquoted().unwrap(), "J Rosenberg \\\"");
        assert_eq!(n.tag(), Some("98asjd8"));
        let n =
            NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(n.tag(), Some("1918181833n"));
        assert_eq!(n.uri.host, Some(Host::Name("chair-dnrc.example.com")));
        let n = NameAddr::parse(
            "<sip:u@h>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1",
        )
        .unwrap();
        assert_eq!(
            n.params.value("+sip.instance"),
            Some("\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"")
        );
        assert_eq!(n.params.value("reg-id"), Some("1"));
        let n = NameAddr::parse("sip:u@h;+sip.instance=\"<urn:uuid:1>\"").unwrap();
        assert_eq!(n.params.value("+sip.instance"), Some("\"<urn:uuid:1>\""));
    }

    #[test]
    fn rejects() {
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert!(NameAddr::parse("\"Watson, Thomas\" < sip:t.watson@example.org >").is_err());
        assert!(NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(NameAddr::parse("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>").is_ok());
        assert!(NameAddr::parse("\"Joe\" <sip:joe@example.org>;;;;").is_err());
        assert!(NameAddr::parse("sip:a@b, sip:c@d").is_err());
        assert!(NameAddr::parse("<sip:a@b").is_err());
        assert!(NameAddr::parse("<sip:a@b> junk").is_err());
        assert!(NameAddr::parse("").is_err());
    }

    #[test]
    fn tag_fast_path() {
        assert_eq!(
            tag_only("\"A;tag=no\" <sip:a@b;tag=no>;tag=yes"),
            Some("yes")
        );
        assert_eq!(tag_only("sip:a@b;x;TAG=1"), Some("1"));
        assert_eq!(tag_only("sip:a@b"), None);
        assert_eq!(tag_only("<sip:a@b;tag=x>"), None);
        assert_eq!(tag_only("\"unterminated <sip:a@b>;tag=1"), None);
    }

    #[test]
    fn contact_star() {
        assert_eq!(Contact::parse(" * ").unwrap(), Contact::Star);
        assert!(Contact::parse("*;expires=0").is_err());
        let (c, rest) = Contact::parse_prefix("<sip:a@b>;q=1 , *").unwrap();
        assert!(matches!(c, Contact::Addr(_)));
        assert_eq!(rest, ", *");
        assert!(matches!(
            Contact::parse("<sip:a@b>;expires=0"),
            Ok(Contact::Addr(_))
        ));
    }
}
