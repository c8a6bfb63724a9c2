//! Redaction of credentials in a SIP message before it is kept in a call's
//! stored flow: in `Authorization` and `Proxy-Authorization` headers (any
//! case, folded or not) a Digest `response` and any password-like
//! parameter lose their value, and the credentials of any other scheme
//! (Bearer, Basic) are hidden whole; in the body, the key of every SDES
//! `inline:` (an SDP `a=crypto`, RFC 4568) and every ICE password
//! (`a=ice-pwd`) is hidden, so a stored flow never gives away what
//! decrypts a call's SRTP or steers a browser leg's media. The rest of the message
//! stays as it was. Sans-IO: bytes in, bytes out.

use std::borrow::Cow;

/// What replaces a hidden value.
pub const REDACTED: &str = "<redacted>";

/// `data` with its credentials hidden; borrowed when there are none (no
/// allocation then: this runs for every message a call captures).
pub fn credentials(data: &[u8]) -> Cow<'_, [u8]> {
    let mut spans: Vec<(usize, usize, bool)> = Vec::new();
    for_each_header(data, |start, end| {
        credential_spans(data, start, end, &mut spans);
    });
    key_spans(data, &mut spans);
    if spans.is_empty() {
        return Cow::Borrowed(data);
    }
    spans.sort_unstable();
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    for (from, to, quoted) in spans {
        out.extend_from_slice(&data[at..from]);
        if quoted {
            out.push(b'"');
            out.extend_from_slice(REDACTED.as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(REDACTED.as_bytes());
        }
        at = to;
    }
    out.extend_from_slice(&data[at..]);
    Cow::Owned(out)
}

/// Adds to `spans` the secrets of the body (after the first empty line):
/// the key material of every SDES `inline:` (up to a `|` (lifetime, MKI),
/// a space, `;` or the end of the line) and every ICE password
/// (`a=ice-pwd:`, whose holder can steer a browser leg's media).
fn key_spans(data: &[u8], spans: &mut Vec<(usize, usize, bool)>) {
    for marker in [&b"inline:"[..], &b"a=ice-pwd:"[..]] {
        marker_spans(data, marker, spans);
    }
}

/// The values after each `marker` in the body of `data`.
fn marker_spans(data: &[u8], marker: &[u8], spans: &mut Vec<(usize, usize, bool)>) {
    let body = match data.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => at + 4,
        None => match data.windows(2).position(|w| w == b"\n\n") {
            Some(at) => at + 2,
            None => return,
        },
    };
    let mut i = body;
    while i + marker.len() <= data.len() {
        if !data[i..i + marker.len()].eq_ignore_ascii_case(marker) {
            i += 1;
            continue;
        }
        let from = i + marker.len();
        let mut to = from;
        while to < data.len() && !matches!(data[to], b'|' | b' ' | b'\t' | b'\r' | b'\n' | b';') {
            to += 1;
        }
        if to > from {
            spans.push((from, to, false));
        }
        i = to.max(i + 1);
    }
}

/// Calls `f(start, end)` for each header field of the header section, in
/// order, a folded one with its continuation lines; `end` excludes the
/// line break.
fn for_each_header(data: &[u8], mut f: impl FnMut(usize, usize)) {
    use crate::sip::scan::find_from;
    // Skip the start line.
    let Some(first) = find_from(data, 0, b'\n') else {
        return;
    };
    let mut current: Option<(usize, usize)> = None;
    let mut pos = first + 1;
    while pos < data.len() {
        let nl = find_from(data, pos, b'\n').unwrap_or(data.len());
        let line_end = if nl > pos && data[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        if line_end == pos {
            break; // the empty line: the body follows
        }
        if matches!(data[pos], b' ' | b'\t') {
            if let Some(h) = current.as_mut() {
                h.1 = line_end;
            }
        } else {
            if let Some((s, e)) = current.take() {
                f(s, e);
            }
            current = Some((pos, line_end));
        }
        pos = nl + 1;
    }
    if let Some((s, e)) = current {
        f(s, e);
    }
}

/// Adds to `spans` the values to hide in the header field `data[start..end]`
/// when it is an (Proxy-)Authorization header; spans come in order.
fn credential_spans(data: &[u8], start: usize, end: usize, spans: &mut Vec<(usize, usize, bool)>) {
    let field = &data[start..end];
    if !matches!(field.first(), Some(b'A' | b'a' | b'P' | b'p')) {
        return;
    }
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return;
    };
    let name = field[..colon].trim_ascii();
    if !name.eq_ignore_ascii_case(b"authorization")
        && !name.eq_ignore_ascii_case(b"proxy-authorization")
    {
        return;
    }
    let mut i = start + colon + 1;
    skip_ws(data, &mut i, end);
    let scheme_start = i;
    while i < end && !is_ws(data[i]) {
        i += 1;
    }
    if data[scheme_start..i].eq_ignore_ascii_case(b"digest") {
        digest_spans(data, i, end, spans);
        return;
    }
    // Bearer, Basic or a scheme we do not know: all of its credentials.
    skip_ws(data, &mut i, end);
    let mut value_end = end;
    while value_end > i && is_ws(data[value_end - 1]) {
        value_end -= 1;
    }
    if value_end > i {
        spans.push((i, value_end, false));
    }
}

/// The `response` and password-like parameter values of Digest
/// credentials in `data[i..end]`.
fn digest_spans(data: &[u8], mut i: usize, end: usize, spans: &mut Vec<(usize, usize, bool)>) {
    while i < end {
        while i < end && (is_ws(data[i]) || data[i] == b',') {
            i += 1;
        }
        let name_start = i;
        while i < end && !matches!(data[i], b'=' | b',') && !is_ws(data[i]) {
            i += 1;
        }
        let name = &data[name_start..i];
        skip_ws(data, &mut i, end);
        if i >= end || data[i] != b'=' {
            // A bare word: nothing to hide; step past it.
            if i == name_start {
                i += 1;
            }
            continue;
        }
        i += 1;
        skip_ws(data, &mut i, end);
        let value_start = i;
        let quoted = i < end && data[i] == b'"';
        if quoted {
            i += 1;
            while i < end && data[i] != b'"' {
                i += if data[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(end);
        } else {
            while i < end && data[i] != b',' && !is_ws(data[i]) {
                i += 1;
            }
        }
        if is_secret(name) && i > value_start {
            spans.push((value_start, i, quoted));
        }
    }
}

/// `response`, or a name that says it holds a password.
fn is_secret(name: &[u8]) -> bool {
    let has = |needle: &[u8]| {
        name.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    name.eq_ignore_ascii_case(b"response") || has(b"pass") || has(b"pwd")
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_ws(data: &[u8], i: &mut usize, end: usize) {
    while *i < end && is_ws(data[*i]) {
        *i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(s: &str) -> String {
        String::from_utf8(credentials(s.as_bytes()).into_owned()).unwrap()
    }

    const RESP: &str = "6629fae49393a05397450978507c4ef1";

    #[test]
    fn digest_response_is_hidden_and_the_rest_kept() {
        let msg = format!(
            "INVITE sip:1002@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nProxy-Authorization: Digest username=\"1001\", realm=\"pbx\", nonce=\"abc\", uri=\"sip:1002@pbx\", response=\"{RESP}\", algorithm=MD5, cnonce=\"c1\", qop=auth, nc=00000001\r\nContent-Length: 4\r\n\r\nv=0\n"
        );
        let out = redact(&msg);
        assert!(!out.contains(RESP), "{out}");
        assert_eq!(out, msg.replace(&format!("\"{RESP}\""), "\"<redacted>\""));
    }

    #[test]
    fn sdes_keys_in_the_body_are_hidden() {
        let key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        let msg = format!(
            "INVITE sip:1002@pbx SIP/2.0\r\nX-Inline: inline:{key}\r\nContent-Length: 9\r\n\r\nv=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4\r\na=crypto:2 AEAD_AES_128_GCM INLINE:{key}\r\n"
        );
        let out = redact(&msg);
        assert_eq!(
            out.matches(key).count(),
            1,
            "only the header's (not SDP) stays: {out}"
        );
        assert!(out.contains("inline:<redacted>|2^20|1:4\r\n"), "{out}");
        assert!(out.contains("INLINE:<redacted>\r\n"), "{out}");
        // A message without a body, or a body without keys, is untouched.
        let plain = "OPTIONS sip:pbx SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(credentials(plain.as_bytes()), Cow::Borrowed(_)));
        assert!(matches!(credentials(b"inline:abc"), Cow::Borrowed(_)));
    }

    #[test]
    fn any_case_folding_unquoted_and_several_headers() {
        let msg = format!(
            "REGISTER sip:pbx SIP/2.0\r\nauthorization : digest username=\"1001\",\r\n  RESPONSE={RESP} ,nonce=\"n\"\r\nPROXY-AUTHORIZATION:Digest response=\"{RESP}\",password=\"hunter2\"\r\nX-Note: response=\"{RESP}\"\r\n\r\n"
        );
        let out = redact(&msg);
        assert_eq!(out.matches(RESP).count(), 1, "{out}");
        assert!(
            out.contains("X-Note: response=\"6629"),
            "other headers untouched"
        );
        assert!(out.contains("RESPONSE=<redacted> ,nonce=\"n\""), "{out}");
        assert!(out.contains("password=\"<redacted>\""), "{out}");
        assert!(!out.contains("hunter2"));
        assert!(out.contains("username=\"1001\",\r\n  "), "{out}");
    }

    #[test]
    fn ice_passwords_and_keys_are_hidden_in_any_order() {
        let out = redact(
            "INVITE sip:x SIP/2.0\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\
             a=ice-pwd:asd88fgpdd777uzjYhagZg\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=ice-ufrag:8hhY\r\na=ice-pwd:second0password0here00\r\n",
        );
        assert!(!out.contains("asd88fg"), "{out}");
        assert!(!out.contains("second0password"), "{out}");
        assert!(!out.contains("WVNfX19z"), "{out}");
        assert!(
            out.contains(
                "a=ice-pwd:<redacted>\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<redacted>|2^20"
            ),
            "{out}"
        );
        assert!(
            out.contains("a=ice-ufrag:8hhY"),
            "the ufrag is no secret: {out}"
        );
    }

    #[test]
    fn other_schemes_are_hidden_whole() {
        let out = redact(
            "BYE sip:x SIP/2.0\r\nAuthorization: Bearer eyJhbGciOi.secret.sig \r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n",
        );
        assert!(
            out.contains("Authorization: Bearer <redacted> \r\n"),
            "{out}"
        );
        assert!(
            out.contains("Proxy-Authorization: Basic <redacted>\r\n"),
            "{out}"
        );
    }

    #[test]
    fn the_body_and_messages_without_credentials_are_left_alone() {
        let body = format!("OPTIONS sip:x SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\nAuthorization: Digest response=\"{RESP}\"");
        assert!(matches!(credentials(body.as_bytes()), Cow::Borrowed(_)));
        for odd in [
            "",
            "x",
            "A\r\nAuthorization",
            "A\r\nAuthorization:",
            "A\r\nAuthorization: Digest response=\"unterminated",
            "A\r\nAuthorization: Digest response=",
            "A\r\nAuthorization: Digest ,,,=,=\"\\",
            "A\nProxy-Authorization: Digest response=\"x\\\"y\", a=b\n\n",
        ] {
            let out = credentials(odd.as_bytes());
            assert!(
                !String::from_utf8_lossy(&out).contains("response=\"x"),
                "{odd}"
            );
        }
        assert_eq!(
            redact("A\nProxy-Authorization: Digest response=\"x\\\"y\", a=b\n\n"),
            "A\nProxy-Authorization: Digest response=\"<redacted>\", a=b\n\n"
        );
    }
}
