//! RFC 3261 25.1 lexical pieces shared by the header parsers: character classes,
//! linear white space, tokens, quoted strings, %-escapes, line unfolding and the
//! comma-separated list splitter.
//!
//! Header values are handed to the parsers raw: a folded value still contains its
//! CRLF + SP/HT continuations. Everything here treats CR and LF as white space, which
//! is exactly LWS since the scanner only keeps a line break inside a value when a
//! continuation follows it. That keeps the parsers zero-copy on folded values.

use std::borrow::Cow;

const TOKEN: u16 = 1;
const UNRESERVED: u16 = 1 << 1;
const USER: u16 = 1 << 2;
const PASSWORD: u16 = 1 << 3;
const PARAM: u16 = 1 << 4;
const HNV: u16 = 1 << 5;
const WORD: u16 = 1 << 6;
const HOST: u16 = 1 << 7;
const URIC: u16 = 1 << 8;
const SCHEME: u16 = 1 << 9;

/// Character class bits for URI user parts (`unreserved / user-unreserved`).
pub(crate) const CLASS_USER: u16 = USER;
/// Character class bits for URI passwords.
pub(crate) const CLASS_PASSWORD: u16 = PASSWORD;
/// Character class bits for URI header names and values (`hnv-unreserved / unreserved`).
pub(crate) const CLASS_HNV: u16 = HNV;
/// Character class bits for opaque parts of URIs of other schemes (`uric`).
pub(crate) const CLASS_URIC: u16 = URIC;

const fn build_classes() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0usize;
    while i < 256 {
        let b = i as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mut c = 0u16;
        if alnum
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            c |= TOKEN;
        }
        let unreserved = alnum
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            );
        if unreserved {
            c |= UNRESERVED | URIC;
        }
        if unreserved || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
            c |= USER;
        }
        if unreserved || matches!(b, b'&' | b'=' | b'+' | b'$' | b',') {
            c |= PASSWORD;
        }
        if unreserved || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            c |= PARAM;
        }
        if unreserved || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$') {
            c |= HNV;
        }
        if alnum
            || matches!(
                b,
                b'-' | b'.'
                    | b'!'
                    | b'%'
                    | b'*'
                    | b'_'
                    | b'+'
                    | b'`'
                    | b'\''
                    | b'~'
                    | b'('
                    | b')'
                    | b'<'
                    | b'>'
                    | b':'
                    | b'\\'
                    | b'"'
                    | b'/'
                    | b'['
                    | b']'
                    | b'?'
                    | b'{'
                    | b'}'
            )
        {
            c |= WORD;
        }
        if alnum || matches!(b, b'-' | b'.' | b'_') {
            c |= HOST;
        }
        if matches!(
            b,
            b';' | b'/'
                | b'?'
                | b':'
                | b'@'
                | b'&'
                | b'='
                | b'+'
                | b'$'
                | b','
                | b'['
                | b']'
                | b'#'
        ) {
            c |= URIC;
        }
        if alnum || matches!(b, b'+' | b'-' | b'.') {
            c |= SCHEME;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CLASSES: [u16; 256] = build_classes();

#[inline]
fn has(b: u8, class: u16) -> bool {
    CLASSES[b as usize] & class != 0
}

/// Whether `b` is in one of the `CLASS_*` sets.
#[inline]
pub(crate) fn has_class(b: u8, class: u16) -> bool {
    has(b, class)
}

/// `ALPHA / DIGIT / "+" / "-" / "."` (scheme characters after the first).
#[inline]
pub(crate) fn is_scheme_char(b: u8) -> bool {
    has(b, SCHEME)
}

/// SP, HT, CR or LF (CR/LF only ever appear inside a value as part of a fold).
#[inline]
pub(crate) const fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

#[inline]
pub(crate) fn is_token_char(b: u8) -> bool {
    has(b, TOKEN)
}

/// `paramchar` of URI parameters, without `%` escapes.
#[inline]
pub(crate) fn is_param_char(b: u8) -> bool {
    has(b, PARAM)
}

/// A non-empty RFC 3261 token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// A non-empty token of bytes (header names in the scanner).
pub(crate) fn is_token_bytes(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token_char(b))
}

/// Characters allowed in a host name (letters, digits, `-`, `.`, `_`).
pub(crate) fn is_host_char(b: u8) -> bool {
    has(b, HOST)
}

/// A Call-ID: `word [ "@" word ]`.
pub(crate) fn is_callid(s: &str) -> bool {
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| has(b, WORD));
    match split_byte(s, b'@') {
        Some((a, b)) => word(a) && word(b),
        None => word(s),
    }
}

/// Every byte is in `class` or part of a valid `%HH` escape. Empty is allowed.
pub(crate) fn is_escaped_class(s: &str, class: u16) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else if has(b[i], class) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

pub(crate) fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let (mut i, mut j) = (0, b.len());
    while i < j && is_lws(b[i]) {
        i += 1;
    }
    while j > i && is_lws(b[j - 1]) {
        j -= 1;
    }
    // i and j sit next to ASCII bytes: always char boundaries.
    s.get(i..j).unwrap_or("")
}

pub(crate) fn trim_lws_start(s: &str) -> &str {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_lws(b[i]) {
        i += 1;
    }
    s.get(i..).unwrap_or("")
}

pub(crate) fn trim_lws_end(s: &str) -> &str {
    let b = s.as_bytes();
    let mut j = b.len();
    while j > 0 && is_lws(b[j - 1]) {
        j -= 1;
    }
    s.get(..j).unwrap_or("")
}

/// Position of the first byte `c` (a plain loop: cheaper than memchr on the
/// short strings parsed here).
#[inline]
pub(crate) fn find_byte(s: &str, c: u8) -> Option<usize> {
    s.bytes().position(|b| b == c)
}

/// Splits at the first byte `c` (which is dropped).
#[inline]
pub(crate) fn split_byte(s: &str, c: u8) -> Option<(&str, &str)> {
    let i = find_byte(s, c)?;
    Some((&s[..i], &s[i + 1..]))
}

/// Splits before the first byte `c` (kept in the second part), or `(s, "")`.
#[inline]
pub(crate) fn split_before(s: &str, c: u8) -> (&str, &str) {
    match find_byte(s, c) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    }
}

/// Index just past the closing quote of the quoted string starting at `start`
/// (which must be a `"`), or `None` when it is not terminated.
pub(crate) fn quoted_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Removes the quotes and `\` escapes of a quoted string and turns folds into a
/// single space. A value that is not quoted is returned as is (unfolded).
pub fn unquote(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    if b.len() < 2 || b[0] != b'"' || b[b.len() - 1] != b'"' {
        return unfold(s);
    }
    let inner = &s[1..s.len() - 1];
    if !inner
        .bytes()
        .any(|c| c == b'\\' || c == b'\r' || c == b'\n')
    {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '\r' | '\n' => {
                let trimmed = out.trim_end_matches([' ', '\t']).len();
                out.truncate(trimmed);
                let rest = chars.as_str().trim_start_matches(['\r', '\n', ' ', '\t']);
                chars = rest.chars();
                out.push(' ');
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Replaces every line fold (CRLF or LF plus the white space around it) with a
/// single space. Borrows when there is nothing to unfold.
pub fn unfold(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|c| c == b'\r' || c == b'\n') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['\r', '\n']) {
        out.push_str(rest[..i].trim_end_matches([' ', '\t']));
        out.push(' ');
        rest = rest[i..].trim_start_matches(['\r', '\n', ' ', '\t']);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether a decoded URI user part is one a dial plan may route: 1-128
/// bytes, each in the user grammar (`unreserved / user-unreserved`). A
/// space, `@`, `<`, `%`, a control byte or non-ASCII is not (484).
pub fn is_dialable_user(user: &[u8]) -> bool {
    !user.is_empty() && user.len() <= 128 && user.iter().all(|&b| CLASSES[b as usize] & USER != 0)
}

/// Escapes a decoded user part for a URI we build: unreserved characters
/// and `+` stay, everything else becomes `%HH`, so `;`, `?`, `@` or `>` in
/// a number cannot add parameters, headers or a host to the URI.
pub fn escape_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for &b in user.as_bytes() {
        if CLASSES[b as usize] & UNRESERVED != 0 || b == b'+' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%HH` escapes (URI user parts, parameters, headers). Invalid escapes
/// are kept literally. The result may contain any byte (`%00` gives NUL), hence
/// bytes. Borrows when there is no escape.
pub fn unescape(s: &str) -> Cow<'_, [u8]> {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// Splits a header value into its comma-separated elements, honouring quoted
/// strings and `<...>`. Elements are trimmed of LWS; empty elements are yielded
/// (so that strict parsers can reject them); an empty value yields nothing.
#[derive(Clone, Debug)]
pub(crate) struct ListItems<'a> {
    rest: Option<&'a str>,
}

impl<'a> ListItems<'a> {
    pub(crate) fn new(value: &'a str) -> Self {
        let v = trim_lws(value);
        ListItems {
            rest: if v.is_empty() { None } else { Some(v) },
        }
    }
}

impl<'a> Iterator for ListItems<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let b = s.as_bytes();
        let mut i = 0;
        let mut in_angle = false;
        while i < b.len() {
            match b[i] {
                b'"' => match quoted_end(b, i) {
                    Some(e) => {
                        i = e;
                        continue;
                    }
                    None => break,
                },
                b'<' => in_angle = true,
                b'>' => in_angle = false,
                b',' if !in_angle => {
                    self.rest = Some(&s[i + 1..]);
                    return Some(trim_lws(&s[..i]));
                }
                _ => {}
            }
            i += 1;
        }
        self.rest = None;
        Some(trim_lws(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_words() {
        assert!(is_token("!interesting-Method0123456789_*+`.%indeed'~"));
        assert!(!is_token("a b"));
        assert!(!is_token(""));
        assert!(is_callid("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"));
        assert!(!is_callid("a@b@c"));
        assert!(!is_callid("a b"));
        assert!(!is_callid("a,b"));
    }

    #[test]
    fn dialable_users_and_their_escaping() {
        assert!(is_dialable_user(b"+4930123"));
        assert!(is_dialable_user(b"900;x"));
        for bad in [
            &b""[..],
            b"9 00",
            b"900@evil",
            b"<900>",
            b"9%00",
            b"9\x00",
            "é".as_bytes(),
        ] {
            assert!(!is_dialable_user(bad), "{bad:?}");
        }
        assert_eq!(escape_user("+4930-1.2"), "+4930-1.2");
        assert_eq!(
            escape_user("900;maddr=evil?X=1"),
            "900%3Bmaddr%3Devil%3FX%3D1"
        );
        assert_eq!(unescape(&escape_user("a;b?c@d")).as_ref(), b"a;b?c@d");
    }

    #[test]
    fn escapes() {
        assert!(is_escaped_class("a%41b", CLASS_USER));
        assert!(!is_escaped_class("a%4", CLASS_USER));
        assert!(!is_escaped_class("a%", CLASS_USER));
        assert!(!is_escaped_class("a%zz", CLASS_USER));
        assert!(!is_escaped_class("a b", CLASS_USER));
        assert_eq!(
            &*unescape("sips%3Auser%40example.com"),
            b"sips:user@example.com"
        );
        assert_eq!(&*unescape("null-%00-null"), b"null-\0-null");
        assert_eq!(&*unescape("bad%zz%4"), b"bad%zz%4");
        assert_eq!(&*unescape("end%"), b"end%");
        assert!(matches!(unescape("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn quoting_and_folding() {
        assert_eq!(unquote(r#""J Rosenberg \\\"""#), r#"J Rosenberg \""#);
        assert_eq!(unquote("\"a\r\n  b\""), "a b");
        assert_eq!(unquote("plain"), "plain");
        assert!(matches!(unquote("\"x\""), Cow::Borrowed("x")));
        assert_eq!(
            unfold("newfangled value\r\n continued newfangled value"),
            "newfangled value continued newfangled value"
        );
        assert_eq!(unfold("a  \n\t b"), "a b");
        assert!(matches!(unfold("a b"), Cow::Borrowed(_)));
        assert_eq!(quoted_end(br#""a\"b" x"#, 0), Some(6));
        assert_eq!(quoted_end(br#""abc"#, 0), None);
        assert_eq!(quoted_end(b"\"a\\", 0), None);
    }

    #[test]
    fn list_items() {
        let v: Vec<_> = ListItems::new(r#""a, b" <sip:x@y;p=1,2>;q=1 , c ,, d"#).collect();
        assert_eq!(v, [r#""a, b" <sip:x@y;p=1,2>;q=1"#, "c", "", "d"]);
        assert_eq!(ListItems::new("  ").count(), 0);
        let v: Vec<_> = ListItems::new("application/sdp,\r\n  message/sip").collect();
        assert_eq!(v, ["application/sdp", "message/sip"]);
        let v: Vec<_> = ListItems::new("\"unterminated, x").collect();
        assert_eq!(v, ["\"unterminated, x"]);
    }
}
