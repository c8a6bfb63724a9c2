//! What a route looks at: [`MatchKey`] (the request field), [`RouteInput`] (how
//! the B2BUA hands the fields over) and [`Matcher`] (exact value or regex);
//! [`MatchError`]: why a key, a match value or a rewrite template was refused.
//!
//! A match value is a regex when it contains one of `\ ^ $ * ? ( ) [ ] { } |`;
//! otherwise it is compared exactly. `.` and `+` alone do not make a regex,
//! because host names, IP addresses and E.164 numbers (`+4930...`) contain them
//! and are meant literally (`"+4930"` as a regex would not even compile).
//! Regexes are anchored only as written (`^666` = starts with 666). Users and
//! header values compare case-sensitively, hosts case-insensitively (exact and
//! regex alike); header names are case-insensitive. A field the request does not
//! have (no such header, a URI without user) matches nothing.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};

/// Why a key, a match value or a rewrite [`Template`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchError {
    /// A key that is none of `from.user`, ..., `header.<Name>`.
    UnknownKey(String),
    /// `header.` followed by an empty or non-token name (the whole key).
    InvalidHeaderName(String),
    /// A match value that does not compile as a regex (the regex crate's
    /// message, one line).
    InvalidRegex(String),
    /// `{` not followed by digits and `}` (the text after `{` up to `}`).
    BadGroup(String),
    /// A `}` that closes nothing.
    LoneBrace,
}

impl fmt::Display for MatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchError::UnknownKey(s) => write!(
                f,
                "unknown key \"{s}\" (expected from.user, from.host, to.user, to.host, \
                 request_uri.user, request_uri.host, source or header.<Name>)"
            ),
            MatchError::InvalidHeaderName(s) => write!(f, "\"{s}\": invalid header name"),
            MatchError::InvalidRegex(why) => write!(f, "invalid regex: {why}"),
            MatchError::BadGroup(digits) => write!(
                f,
                "\"{{{digits}\": expected {{n}} (a capture number) \
                 or {{{{ for a literal brace"
            ),
            MatchError::LoneBrace => f.write_str("a lone \"}\"; write }} for a literal brace"),
        }
    }
}

impl std::error::Error for MatchError {}

/// A request field a route can match and rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MatchKey {
    FromUser,
    FromHost,
    ToUser,
    ToHost,
    RequestUriUser,
    RequestUriHost,
    /// `source`: where the call comes from, a trunk's name or
    /// [`SOURCE_EXTENSION`]. Matched, never rewritten.
    Source,
    /// `header.<Name>`; the name in lowercase.
    Header(Arc<str>),
}

/// The `source` of a call placed by an extension (digest-authenticated).
pub const SOURCE_EXTENSION: &str = "extension";

impl MatchKey {
    /// Parses `from.user`, ..., `header.<Name>`.
    pub fn parse(s: &str) -> Result<MatchKey, MatchError> {
        Ok(match s {
            "from.user" => MatchKey::FromUser,
            "from.host" => MatchKey::FromHost,
            "to.user" => MatchKey::ToUser,
            "to.host" => MatchKey::ToHost,
            "request_uri.user" => MatchKey::RequestUriUser,
            "request_uri.host" => MatchKey::RequestUriHost,
            "source" => MatchKey::Source,
            _ => match s.strip_prefix("header.") {
                Some(name) if !name.is_empty() && name.bytes().all(is_token_char) => {
                    MatchKey::Header(name.to_ascii_lowercase().into())
                }
                Some(_) => return Err(MatchError::InvalidHeaderName(s.to_string())),
                None => return Err(MatchError::UnknownKey(s.to_string())),
            },
        })
    }

    /// Hosts compare case-insensitively.
    pub fn is_host(&self) -> bool {
        matches!(
            self,
            MatchKey::FromHost | MatchKey::ToHost | MatchKey::RequestUriHost
        )
    }
}

impl fmt::Display for MatchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchKey::FromUser => "from.user",
            MatchKey::FromHost => "from.host",
            MatchKey::ToUser => "to.user",
            MatchKey::ToHost => "to.host",
            MatchKey::RequestUriUser => "request_uri.user",
            MatchKey::RequestUriHost => "request_uri.host",
            MatchKey::Source => "source",
            MatchKey::Header(name) => return write!(f, "header.{name}"),
        })
    }
}

/// RFC 3261 token characters (header names).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// The request fields a route looks at, as the B2BUA sees them.
pub trait RouteInput {
    /// The value of `key`, `None` when the request has no such field. Users as
    /// the B2BUA matches them (it decides about %-unescaping), hosts without
    /// port (IPv6 as written in the URI). For `MatchKey::Header(name)` (`name` is
    /// lowercase) the implementation compares header names case-insensitively,
    /// knows compact forms, and joins a header that occurs several times with
    /// ", " in order.
    fn value(&self, key: &MatchKey) -> Option<Cow<'_, str>>;
}

/// A plain [`RouteInput`]: the fields, borrowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFields<'a> {
    pub from_user: Option<&'a str>,
    pub from_host: Option<&'a str>,
    pub to_user: Option<&'a str>,
    pub to_host: Option<&'a str>,
    pub request_uri_user: Option<&'a str>,
    pub request_uri_host: Option<&'a str>,
    /// A trunk's name or [`SOURCE_EXTENSION`].
    pub source: Option<&'a str>,
    /// (name, value) in message order; names compared case-insensitively.
    pub headers: &'a [(&'a str, &'a str)],
}

impl RouteInput for RequestFields<'_> {
    fn value(&self, key: &MatchKey) -> Option<Cow<'_, str>> {
        let plain = match key {
            MatchKey::FromUser => self.from_user,
            MatchKey::FromHost => self.from_host,
            MatchKey::ToUser => self.to_user,
            MatchKey::ToHost => self.to_host,
            MatchKey::RequestUriUser => self.request_uri_user,
            MatchKey::RequestUriHost => self.request_uri_host,
            MatchKey::Source => self.source,
            MatchKey::Header(name) => {
                let mut values = self
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| *v);
                let first = values.next()?;
                return Some(match values.next() {
                    None => Cow::Borrowed(first),
                    Some(second) => {
                        let mut all = format!("{first}, {second}");
                        for v in values {
                            all.push_str(", ");
                            all.push_str(v);
                        }
                        Cow::Owned(all)
                    }
                });
            }
        };
        plain.map(Cow::Borrowed)
    }
}

/// True when `value` is meant as a regex (see the module doc).
pub fn is_regex(value: &str) -> bool {
    value.bytes().any(|b| b"\\^$*?()[]{}|".contains(&b))
}

/// How a matcher compares.
#[derive(Debug, Clone)]
pub enum Pattern {
    Exact(String),
    Regex(Regex),
}

/// One `match` entry of a route.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub key: MatchKey,
    pub pattern: Pattern,
}

impl Matcher {
    /// Compiles `value` for `key`; the error is one line.
    pub fn new(key: MatchKey, value: &str) -> Result<Matcher, MatchError> {
        let pattern = if is_regex(value) {
            let re = RegexBuilder::new(value)
                .case_insensitive(key.is_host())
                .size_limit(1 << 20)
                .build()
                .map_err(|e| MatchError::InvalidRegex(regex_error(&e)))?;
            Pattern::Regex(re)
        } else {
            Pattern::Exact(value.to_string())
        };
        Ok(Matcher { key, pattern })
    }

    /// Whether `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        match &self.pattern {
            Pattern::Exact(s) if self.key.is_host() => s.eq_ignore_ascii_case(value),
            Pattern::Exact(s) => s == value,
            Pattern::Regex(re) => re.is_match(value),
        }
    }

    /// Whether `value` matches; if so, `template` expanded with this match.
    pub fn match_and_expand(&self, value: &str, template: &Template) -> Option<String> {
        match &self.pattern {
            Pattern::Regex(re) => {
                let caps = re.captures(value)?;
                Some(template.expand(|n| caps.get(n).map_or("", |m| m.as_str())))
            }
            Pattern::Exact(_) => self.is_match(value).then(|| template.expand(|_| value)),
        }
    }

    /// The highest `{n}` a rewrite of this key may use.
    pub fn max_group(&self) -> usize {
        match &self.pattern {
            Pattern::Exact(_) => 0,
            Pattern::Regex(re) => re.captures_len() - 1,
        }
    }
}

/// The regex crate's message without its multi-line pointer diagram.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        })
}

/// A rewrite value: literal text and `{n}` (capture n of the match on the same
/// key; `{0}` = the whole match). `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, MatchError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut digits = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        digits.push(c);
                    }
                    let n = digits
                        .parse::<usize>()
                        .ok()
                        .filter(|_| closed && digits.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| MatchError::BadGroup(digits.clone()))?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Group(n));
                }
                '}' => return Err(MatchError::LoneBrace),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// The highest `{n}` used, `None` for literal text.
    pub fn max_group(&self) -> Option<usize> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Group(n) => Some(*n),
                Piece::Text(_) => None,
            })
            .max()
    }

    /// The text, with `{n}` replaced by `group(n)`.
    pub fn expand<'v>(&self, group: impl Fn(usize) -> &'v str) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Group(n) => out.push_str(group(*n)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(key: &str, value: &str) -> Matcher {
        Matcher::new(MatchKey::parse(key).unwrap(), value).unwrap()
    }

    #[test]
    fn exact_or_regex() {
        assert!(!is_regex("1001"));
        assert!(!is_regex("pbx.example.com"));
        assert!(!is_regex("+4930123"));
        assert!(is_regex("^666"));
        assert!(is_regex("^00(\\d+)$"));
        assert!(is_regex("10[0-9]"));

        let exact = m("to.user", "1001");
        assert!(matches!(exact.pattern, Pattern::Exact(_)));
        assert!(exact.is_match("1001"));
        assert!(!exact.is_match("10010"));
        assert!(m("to.user", "+4930").is_match("+4930"));
        assert!(!m("to.user", "alice").is_match("Alice"));
        assert!(!m("to.host", "a.b").is_match("axb"));

        let re = m("from.user", "^666");
        assert!(re.is_match("666123"));
        assert!(!re.is_match("1666"));
        // Anchored only as written.
        assert!(m("from.user", "66(6)").is_match("1666"));
        assert!(!m("from.user", "^bob$").is_match("BOB"));
    }

    #[test]
    fn hosts_are_case_insensitive() {
        assert!(m("to.host", "PBX.example.com").is_match("pbx.EXAMPLE.com"));
        assert!(m("request_uri.host", "^pbx\\.example\\.com$").is_match("PBX.Example.Com"));
        assert!(!m("from.host", "pbx.example.com").is_match("pbx.example.org"));
    }

    #[test]
    fn keys_parse_and_print() {
        for k in [
            "from.user",
            "from.host",
            "to.user",
            "to.host",
            "request_uri.user",
            "request_uri.host",
        ] {
            assert_eq!(MatchKey::parse(k).unwrap().to_string(), k);
        }
        assert_eq!(
            MatchKey::parse("header.X-Tenant").unwrap(),
            MatchKey::Header("x-tenant".into())
        );
        assert!(MatchKey::parse("header.").is_err());
        assert!(MatchKey::parse("header.a b").is_err());
        assert_eq!(
            MatchKey::parse("header.a b"),
            Err(MatchError::InvalidHeaderName("header.a b".into()))
        );
        assert!(MatchKey::parse("to.uri")
            .unwrap_err()
            .to_string()
            .starts_with("unknown key \"to.uri\""));
    }

    #[test]
    fn headers_from_request_fields() {
        let headers = [("X-Tenant", "acme"), ("Via", "a"), ("via", "b")];
        let f = RequestFields {
            headers: &headers,
            to_user: Some("1001"),
            ..Default::default()
        };
        assert_eq!(
            f.value(&MatchKey::parse("header.x-TENANT").unwrap())
                .as_deref(),
            Some("acme")
        );
        assert_eq!(
            f.value(&MatchKey::parse("header.Via").unwrap()).as_deref(),
            Some("a, b")
        );
        assert_eq!(f.value(&MatchKey::parse("header.Subject").unwrap()), None);
        assert_eq!(f.value(&MatchKey::ToUser).as_deref(), Some("1001"));
        assert_eq!(f.value(&MatchKey::FromUser), None);
    }

    #[test]
    fn regex_errors_are_one_line() {
        let e = Matcher::new(MatchKey::ToUser, "^00(\\d+$").unwrap_err();
        assert_eq!(e, MatchError::InvalidRegex("unclosed group".into()));
        assert_eq!(e.to_string(), "invalid regex: unclosed group");
    }

    #[test]
    fn templates() {
        let t = Template::parse("+{1}").unwrap();
        assert_eq!(t.max_group(), Some(1));
        let re = m("to.user", "^00(\\d+)$");
        assert_eq!(
            re.match_and_expand("004930123", &t).as_deref(),
            Some("+4930123")
        );
        assert_eq!(re.match_and_expand("4930123", &t), None);
        let t = Template::parse("{{x}}{0}-{2}").unwrap();
        assert_eq!(
            m("to.user", "^(a)|(b)$")
                .match_and_expand("a", &t)
                .as_deref(),
            Some("{x}a-")
        );
        assert_eq!(
            m("to.user", "1001")
                .match_and_expand("1001", &Template::parse("9{0}").unwrap())
                .as_deref(),
            Some("91001")
        );
        assert_eq!(Template::parse("lit").unwrap().max_group(), None);
        assert!(Template::parse("{x}").is_err());
        assert!(Template::parse("{1").is_err());
        assert!(Template::parse("a}").is_err());
        assert!(Template::parse("{+1}").is_err());
    }
}
