//! Parsing of `Authorization` / `Proxy-Authorization` header values (RFC 3261
//! section 25.1 `credentials`, RFC 7616 section 3.4): the scheme, and for Digest the
//! parameters we use. Never panics; anything malformed is a [`ParseError`].

use std::fmt;

use super::digest::Algorithm;

/// A parsed credentials header value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "a short-lived return value; boxing would cost an allocation per request"
)]
pub enum Credentials {
    /// `Digest ...` (scheme name matched case-insensitively).
    Digest(DigestCredentials),
    /// Any other scheme (e.g. `Basic`, or torture test regaut01's
    /// `NoOneKnowsThisScheme`): the server re-challenges with Digest. Its
    /// parameters are not looked at.
    Other { scheme: String },
}

/// The `nc` parameter: exactly 8 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceCount {
    pub value: u32,
    /// As sent; this is what goes into the response hash.
    pub text: String,
}

/// The parameters of `Digest` credentials, unquoted and unescaped.
/// Unknown parameters are ignored (RFC 7616 `auth-param`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    /// `uri` (`digest-uri`); compare it with the Request-URI if you want to.
    pub uri: String,
    /// Hex digest as sent.
    pub response: String,
    /// Defaults to MD5 when absent.
    pub algorithm: Algorithm,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    /// As sent (we only accept `auth`, compared case-insensitively).
    pub qop: Option<String>,
    pub nc: Option<NonceCount>,
    /// `userhash=true` was sent. We never offer it, so such credentials are refused.
    pub userhash: bool,
}

/// Why a credentials value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Nothing but whitespace.
    Empty,
    /// The scheme is not a token.
    BadScheme,
    /// Expected a parameter name at this byte offset.
    ExpectedName(usize),
    /// Expected `=` after a parameter name at this byte offset.
    ExpectedEquals(usize),
    /// Expected a value after `=` at this byte offset.
    ExpectedValue(usize),
    /// A quoted string has no closing quote.
    UnterminatedQuote,
    /// A parameter we use appears twice.
    Duplicate(&'static str),
    /// A required parameter is missing.
    Missing(&'static str),
    /// `nc` is not 8 hex digits.
    BadNonceCount,
    /// `algorithm` names no algorithm we know.
    UnknownAlgorithm(String),
    /// `userhash` is neither `true` nor `false`.
    BadUserhash,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("empty credentials"),
            ParseError::BadScheme => f.write_str("authentication scheme is not a token"),
            ParseError::ExpectedName(at) => write!(f, "expected a parameter name at byte {at}"),
            ParseError::ExpectedEquals(at) => write!(f, "expected '=' at byte {at}"),
            ParseError::ExpectedValue(at) => write!(f, "expected a value at byte {at}"),
            ParseError::UnterminatedQuote => f.write_str("unterminated quoted string"),
            ParseError::Duplicate(name) => write!(f, "parameter {name} given twice"),
            ParseError::Missing(name) => write!(f, "parameter {name} missing"),
            ParseError::BadNonceCount => f.write_str("nc is not 8 hex digits"),
            ParseError::UnknownAlgorithm(a) => write!(f, "unknown algorithm {a:?}"),
            ParseError::BadUserhash => f.write_str("userhash is not true or false"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses an `Authorization` / `Proxy-Authorization` header value.
pub fn parse_credentials(value: &str) -> Result<Credentials, ParseError> {
    let value = value.trim_start_matches(is_lws);
    if value.is_empty() {
        return Err(ParseError::Empty);
    }
    let scheme_end = value.find(is_lws).unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.bytes().all(is_token_byte) {
        return Err(ParseError::BadScheme);
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Ok(Credentials::Other {
            scheme: scheme.to_owned(),
        });
    }
    let offset = scheme_end;
    parse_digest(rest, offset).map(Credentials::Digest)
}

/// Picks, among several credentials header values of one request, the Digest one
/// for `realm`; if there is none, the first value (so that an unknown scheme or
/// malformed credentials still get a challenge rather than "no credentials").
pub fn credentials_for_realm<'a>(
    values: impl IntoIterator<Item = &'a str>,
    realm: &str,
) -> Option<&'a str> {
    let mut first = None;
    for value in values {
        if let Ok(Credentials::Digest(d)) = parse_credentials(value) {
            if d.realm == realm {
                return Some(value);
            }
        }
        first = first.or(Some(value));
    }
    first
}

fn parse_digest(text: &str, offset: usize) -> Result<DigestCredentials, ParseError> {
    let mut username = None;
    let mut realm = None;
    let mut nonce = None;
    let mut uri = None;
    let mut response = None;
    let mut algorithm = None;
    let mut cnonce = None;
    let mut opaque = None;
    let mut qop = None;
    let mut nc = None;
    let mut userhash = None;

    for param in Params::new(text, offset) {
        let (name, value) = param?;
        let (slot, key): (&mut Option<String>, &'static str) = match name {
            n if n.eq_ignore_ascii_case("username") => (&mut username, "username"),
            n if n.eq_ignore_ascii_case("realm") => (&mut realm, "realm"),
            n if n.eq_ignore_ascii_case("nonce") => (&mut nonce, "nonce"),
            n if n.eq_ignore_ascii_case("uri") => (&mut uri, "uri"),
            n if n.eq_ignore_ascii_case("response") => (&mut response, "response"),
            n if n.eq_ignore_ascii_case("algorithm") => (&mut algorithm, "algorithm"),
            n if n.eq_ignore_ascii_case("cnonce") => (&mut cnonce, "cnonce"),
            n if n.eq_ignore_ascii_case("opaque") => (&mut opaque, "opaque"),
            n if n.eq_ignore_ascii_case("qop") => (&mut qop, "qop"),
            n if n.eq_ignore_ascii_case("nc") => (&mut nc, "nc"),
            n if n.eq_ignore_ascii_case("userhash") => (&mut userhash, "userhash"),
            _ => continue,
        };
        if slot.is_some() {
            return Err(ParseError::Duplicate(key));
        }
        *slot = Some(value);
    }

    let algorithm = match algorithm {
        None => Algorithm::Md5,
        Some(name) => Algorithm::parse(&name).ok_or(ParseError::UnknownAlgorithm(name))?,
    };
    let nc = match nc {
        None => None,
        Some(text) => Some(parse_nonce_count(text)?),
    };
    let userhash = match userhash {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err(ParseError::BadUserhash),
    };
    Ok(DigestCredentials {
        username: username.ok_or(ParseError::Missing("username"))?,
        realm: realm.ok_or(ParseError::Missing("realm"))?,
        nonce: nonce.ok_or(ParseError::Missing("nonce"))?,
        uri: uri.ok_or(ParseError::Missing("uri"))?,
        response: response.ok_or(ParseError::Missing("response"))?,
        algorithm,
        cnonce,
        opaque,
        qop,
        nc,
        userhash,
    })
}

fn parse_nonce_count(text: String) -> Result<NonceCount, ParseError> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ParseError::BadNonceCount);
    }
    let value = u32::from_str_radix(&text, 16).map_err(|_| ParseError::BadNonceCount)?;
    Ok(NonceCount { value, text })
}

/// Iterator over `name=value` pairs separated by commas and/or whitespace.
/// Values are tokens (anything up to whitespace or a comma, leniently) or quoted
/// strings with backslash escapes (unescaped here). Names are returned as sent.
pub(crate) struct Params<'a> {
    text: &'a str,
    pos: usize,
    /// Byte offset of `text` in the full header value, for error positions.
    offset: usize,
    failed: bool,
}

impl<'a> Params<'a> {
    pub(crate) fn new(text: &'a str, offset: usize) -> Self {
        Params {
            text,
            pos: 0,
            offset,
            failed: false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_while(&mut self, pred: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
    }

    /// The text between two byte positions that sit next to ASCII delimiters
    /// (so they are char boundaries); empty if not.
    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.text.get(start..end).unwrap_or("")
    }

    fn next_param(&mut self) -> Option<Result<(&'a str, String), ParseError>> {
        self.skip_while(|b| is_lws_byte(b) || b == b',');
        self.peek()?;
        let start = self.pos;
        self.skip_while(is_token_byte);
        if self.pos == start {
            return Some(Err(ParseError::ExpectedName(self.offset + start)));
        }
        let name = self.slice(start, self.pos);
        self.skip_while(is_lws_byte);
        if self.peek() != Some(b'=') {
            return Some(Err(ParseError::ExpectedEquals(self.offset + self.pos)));
        }
        self.pos += 1;
        self.skip_while(is_lws_byte);
        let value = match self.peek() {
            Some(b'"') => match self.quoted() {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            },
            _ => {
                let start = self.pos;
                self.skip_while(|b| !is_lws_byte(b) && b != b',' && b != b'"');
                if self.pos == start {
                    return Some(Err(ParseError::ExpectedValue(self.offset + start)));
                }
                self.slice(start, self.pos).to_owned()
            }
        };
        Some(Ok((name, value)))
    }

    /// Reads a quoted string starting at the opening quote; unescapes `\x` to `x`.
    fn quoted(&mut self) -> Result<String, ParseError> {
        let body_start = self.pos + 1;
        let body = self.text.get(body_start..).unwrap_or("");
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos = body_start + i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => out.push(escaped),
                    None => return Err(ParseError::UnterminatedQuote),
                },
                c => out.push(c),
            }
        }
        Err(ParseError::UnterminatedQuote)
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<(&'a str, String), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.next_param();
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}

/// Escapes `"` and `\` for use inside a quoted string.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn is_lws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_lws_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 `token` characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC2617: &str = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;

    fn digest(value: &str) -> DigestCredentials {
        match parse_credentials(value) {
            Ok(Credentials::Digest(d)) => d,
            other => panic!("not digest: {other:?}"),
        }
    }

    #[test]
    fn parses_rfc2617_example_with_folding() {
        let d = digest(RFC2617);
        assert_eq!(d.username, "Mufasa");
        assert_eq!(d.realm, "testrealm@host.com");
        assert_eq!(d.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
        assert_eq!(d.uri, "/dir/index.html");
        assert_eq!(d.qop.as_deref(), Some("auth"));
        assert_eq!(
            d.nc,
            Some(NonceCount {
                value: 1,
                text: "00000001".into()
            })
        );
        assert_eq!(d.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(d.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(
            d.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(d.algorithm, Algorithm::Md5);
        assert!(!d.userhash);
    }

    #[test]
    fn unknown_scheme_is_other_not_an_error() {
        assert_eq!(
            parse_credentials("NoOneKnowsThisScheme opaque-data=here"),
            Ok(Credentials::Other {
                scheme: "NoOneKnowsThisScheme".into()
            })
        );
        assert_eq!(
            parse_credentials("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Ok(Credentials::Other {
                scheme: "Basic".into()
            })
        );
        assert_eq!(
            parse_credentials("  Bearer"),
            Ok(Credentials::Other {
                scheme: "Bearer".into()
            })
        );
    }

    #[test]
    fn scheme_and_names_are_case_insensitive_values_keep_case() {
        let d = digest(
            r#"dIgEsT USERNAME="Bob", Realm="R", NONCE="n", Uri="sip:a@b", RESPONSE="AB", Algorithm=sha-256, QOP="auth", NC=0000000A, CNonce="c""#,
        );
        assert_eq!(d.username, "Bob");
        assert_eq!(d.realm, "R");
        assert_eq!(d.algorithm, Algorithm::Sha256);
        assert_eq!(d.qop.as_deref(), Some("auth"));
        assert_eq!(d.nc.as_ref().map(|n| n.value), Some(10));
        assert_eq!(d.nc.as_ref().map(|n| n.text.as_str()), Some("0000000A"));
        assert_eq!(d.response, "AB");
    }

    #[test]
    fn quoted_strings_unescape_and_may_hold_commas_and_spaces() {
        let d = digest(
            r#"Digest username="a\"b\\c, d", realm="x y", nonce="n", uri="sip:u@h;p=1,2", response="00""#,
        );
        assert_eq!(d.username, r#"a"b\c, d"#);
        assert_eq!(d.realm, "x y");
        assert_eq!(d.uri, "sip:u@h;p=1,2");
    }

    #[test]
    fn tolerates_whitespace_and_extra_commas_and_unknown_params() {
        let d = digest(
            "Digest ,, username = \"u\" ,realm=\"r\",,\tnonce=\"n\" , uri=sip:x@y,response=\"ff\", \
             foo=bar, baz=\"q,ux\" , algorithm=\"MD5-sess\",",
        );
        assert_eq!(d.username, "u");
        assert_eq!(d.uri, "sip:x@y");
        assert_eq!(d.algorithm, Algorithm::Md5Sess);
    }

    #[test]
    fn whitespace_alone_separates_params() {
        let d = digest(r#"Digest username="u" realm="r" nonce="n" uri="x" response="ff""#);
        assert_eq!(d.realm, "r");
    }

    #[test]
    fn utf8_in_quoted_values_survives() {
        let d = digest(r#"Digest username="jürgen", realm="r", nonce="n", uri="x", response="ff""#);
        assert_eq!(d.username, "jürgen");
    }

    #[test]
    fn malformed_values_are_errors() {
        let cases: &[(&str, ParseError)] = &[
            ("", ParseError::Empty),
            ("   \t", ParseError::Empty),
            ("Dig\"est x=y", ParseError::BadScheme),
            ("Digest", ParseError::Missing("username")),
            ("Digest username", ParseError::ExpectedEquals(15)),
            ("Digest username=", ParseError::ExpectedValue(16)),
            ("Digest username=,", ParseError::ExpectedValue(16)),
            ("Digest =\"x\"", ParseError::ExpectedName(7)),
            ("Digest username=\"abc", ParseError::UnterminatedQuote),
            ("Digest username=\"abc\\", ParseError::UnterminatedQuote),
            (
                r#"Digest username="a", username="b""#,
                ParseError::Duplicate("username"),
            ),
            (
                r#"Digest username="a", realm="r", nonce="n", uri="u""#,
                ParseError::Missing("response"),
            ),
            (
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="f", nc=1"#,
                ParseError::BadNonceCount,
            ),
            (
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="f", nc=0000000g"#,
                ParseError::BadNonceCount,
            ),
            (
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="f", nc=+0000001"#,
                ParseError::BadNonceCount,
            ),
            (
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="f", algorithm=SHA-1"#,
                ParseError::UnknownAlgorithm("SHA-1".into()),
            ),
            (
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="f", userhash=maybe"#,
                ParseError::BadUserhash,
            ),
        ];
        for (value, want) in cases {
            assert_eq!(parse_credentials(value), Err(want.clone()), "{value}");
        }
    }

    #[test]
    fn userhash_and_missing_qop_parse() {
        let d = digest(
            r#"Digest username="a", realm="r", nonce="n", uri="u", response="f", userhash=TRUE"#,
        );
        assert!(d.userhash);
        assert_eq!(d.qop, None);
        assert_eq!(d.nc, None);
        assert_eq!(d.cnonce, None);
    }

    #[test]
    fn garbage_never_panics() {
        let samples = [
            "Digest \"",
            "Digest a=\"\\",
            "Digest ,,,,",
            "Digest a==b",
            "Digest é=1",
            "Digest a=b\"c\"",
            "\u{0}",
            "Digest\u{0}",
            "Digest a=\"\u{10ffff}\"",
        ];
        for s in samples {
            let _ = parse_credentials(s);
        }
        // Every prefix of a real header.
        for end in 0..=RFC2617.len() {
            if let Some(prefix) = RFC2617.get(..end) {
                let _ = parse_credentials(prefix);
            }
        }
    }

    #[test]
    fn picks_credentials_for_our_realm() {
        let a = r#"Digest username="u", realm="a", nonce="n", uri="x", response="f""#;
        let b = r#"Digest username="u", realm="b", nonce="n", uri="x", response="f""#;
        assert_eq!(credentials_for_realm([a, b], "b"), Some(b));
        assert_eq!(credentials_for_realm([a, b], "c"), Some(a));
        assert_eq!(credentials_for_realm(["Basic x", b], "b"), Some(b));
        assert_eq!(credentials_for_realm(["Basic x"], "b"), Some("Basic x"));
        assert_eq!(credentials_for_realm([], "b"), None);
    }

    #[test]
    fn quote_escapes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        let d = digest(&format!(
            "Digest username={}, realm=r, nonce=n, uri=u, response=f",
            quote(r#"x"\y"#)
        ));
        assert_eq!(d.username, r#"x"\y"#);
    }
}
