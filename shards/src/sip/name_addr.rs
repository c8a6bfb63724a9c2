//! [`NameAddr`]: `name-addr / addr-spec` values with header parameters (From, To,
//! Contact, Route, Record-Route, Refer-To, ...), and [`Contact`] (which may be `*`).

use std::borrow::Cow;

use super::error::ParseError;
use super::params::Params;
use super::syntax::{
    find_byte, is_lws, is_token_char, quoted_end, trim_lws, trim_lws_start, unquote,
};
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
    /// Parses and checks one name-addr / addr-spec value.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let s = trim_lws(s);
        let b = s.as_bytes();
        let (display_name, open) = if b.first() == Some(&b'"') {
            let end = quoted_end(b, 0).ok_or(ParseError::header("unterminated quoted string"))?;
            let after = trim_lws_start(&s[end..]);
            if !after.starts_with('<') {
                return Err(ParseError::header("quoted display name without <URI>"));
            }
            (Some(&s[..end]), Some(s.len() - after.len()))
        } else {
            match find_unquoted(b, b'<') {
                Some(lt) => {
                    let name = trim_lws(&s[..lt]);
                    if find_byte(name, b'"').is_some() {
                        return Err(ParseError::header("unbalanced quotes"));
                    }
                    if !name.bytes().all(|c| is_token_char(c) || is_lws(c)) {
                        return Err(ParseError::header("invalid display name (quote it)"));
                    }
                    ((!name.is_empty()).then_some(name), Some(lt))
                }
                None => (None, None),
            }
        };
        let (uri, rest, bracketed) = match open {
            Some(lt) => {
                let inner = &s[lt + 1..];
                let gt = find_byte(inner, b'>')
                    .ok_or(ParseError::header("missing > after URI"))?;
                let text = &inner[..gt];
                if text.bytes().next().is_some_and(is_lws) || text.bytes().last().is_some_and(is_lws)
                {
                    return Err(ParseError::header("white space inside <>"));
                }
                (Uri::parse(text)?, &inner[gt + 1..], true)
            }
            None => {
                let end = s
                    .bytes()
                    .position(|c| is_lws(c) || c == b';' || c == b',')
                    .unwrap_or(s.len());
                let uri = Uri::parse(&s[..end])?;
                if uri.headers.is_some() {
                    return Err(ParseError::header("URI with headers must be enclosed in <>"));
                }
                (uri, &s[end..], false)
            }
        };
        let rest = trim_lws_start(rest);
        if !rest.is_empty() && !rest.starts_with(';') {
            return Err(ParseError::header(if rest.starts_with(',') {
                "several values"
            } else {
                "unexpected text after URI"
            }));
        }
        let params = Params::new(rest);
        let mut tag = None;
        params.check_header_with(|p| {
            if tag.is_none() && p.name.eq_ignore_ascii_case("tag") {
                tag = p.value;
            }
            Ok(())
        })?;
        Ok(NameAddr {
            display_name,
            uri,
            params,
            bracketed,
            tag,
        })
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
    /// Parses one Contact list element.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        if trim_lws(s) == "*" {
            Ok(Contact::Star)
        } else {
            NameAddr::parse(s).map(Contact::Addr)
        }
    }
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
        let n = NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
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
    fn contact_star() {
        assert_eq!(Contact::parse(" * ").unwrap(), Contact::Star);
        assert!(matches!(Contact::parse("<sip:a@b>;expires=0"), Ok(Contact::Addr(_))));
    }
}
