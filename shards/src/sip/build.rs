//! The serializer: [`Writer`] writes requests and responses into a reusable
//! `Vec<u8>` (no per-header allocation); [`Writer::response_to`] copies what a
//! response must echo from a request; [`reason_phrase`] gives default phrases.

use std::fmt;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use super::header::HeaderName;
use super::message::{Message, StartLine};
use super::name_addr::tag_only;
use super::via::Via;

/// Writes one SIP message: start line, headers, then [`Writer::finish`] adds
/// `Content-Length` (always) and the body. Header values are written with any
/// CR or LF replaced by a space, so a value cannot inject header lines.
#[must_use = "call finish() to terminate the message"]
pub struct Writer<'v> {
    out: &'v mut Vec<u8>,
}

impl<'v> Writer<'v> {
    /// Clears `out` and writes a request line.
    pub fn request(out: &'v mut Vec<u8>, method: &str, uri: &str) -> Self {
        out.clear();
        put_clean(out, method);
        out.push(b' ');
        put_clean(out, uri);
        out.extend_from_slice(b" SIP/2.0\r\n");
        Writer { out }
    }

    /// Clears `out` and writes a status line; `reason` defaults to
    /// [`reason_phrase`].
    pub fn response(out: &'v mut Vec<u8>, code: u16, reason: Option<&str>) -> Self {
        out.clear();
        out.extend_from_slice(b"SIP/2.0 ");
        put_uint(out, u64::from(code));
        out.push(b' ');
        put_clean(out, reason.unwrap_or(reason_phrase(code)));
        out.extend_from_slice(b"\r\n");
        Writer { out }
    }

    /// Starts a response to `req`: the status line, then every Via (in order),
    /// From, To, Call-ID and CSeq copied from the request (the first of each
    /// single header; absent ones skipped, so a 400 can answer a request that
    /// lacks some).
    ///
    /// * `to_tag`: appended as `;tag=` when the To has no tag yet.
    /// * `source`: the request's source address; stamps the top Via with
    ///   `received` / `rport=<port>` ([`Via::write_stamped`]).
    ///
    /// Add more headers with [`Writer::header`], then [`Writer::finish`].
    pub fn response_to(
        out: &'v mut Vec<u8>,
        req: &Message<'_>,
        code: u16,
        reason: Option<&str>,
        to_tag: Option<&str>,
        source: Option<SocketAddr>,
    ) -> Self {
        let w = Self::response(out, code, reason);
        response_head(w.out, req, to_tag, source);
        w
    }

    /// A response whose copied lines ([`response_head`] of its request)
    /// were written before: a call answers its INVITE several times (180,
    /// 183, 200) from one head.
    pub fn response_with_head(
        out: &'v mut Vec<u8>,
        code: u16,
        reason: Option<&str>,
        head: &[u8],
    ) -> Self {
        let w = Self::response(out, code, reason);
        w.out.extend_from_slice(head);
        w
    }

    /// Adds a header line. Do not add Content-Length: `finish` does.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        put_clean(self.out, name);
        self.out.extend_from_slice(b": ");
        put_clean(self.out, value);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Adds a header line whose value is `parts` one after another (no
    /// intermediate String, no formatting).
    pub fn header_parts(&mut self, name: &str, parts: &[&str]) -> &mut Self {
        put_clean(self.out, name);
        self.out.extend_from_slice(b": ");
        for part in parts {
            put_clean(self.out, part);
        }
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Adds `CSeq: <seq> <method>`.
    pub fn cseq(&mut self, seq: u32, method: &str) -> &mut Self {
        self.out.extend_from_slice(b"CSeq: ");
        put_uint(self.out, u64::from(seq));
        self.out.push(b' ');
        put_clean(self.out, method);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Adds a header line with a number for its value.
    pub fn header_uint(&mut self, name: &str, value: u64) -> &mut Self {
        put_clean(self.out, name);
        self.out.extend_from_slice(b": ");
        put_uint(self.out, value);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Adds a header line with a formatted value (`format_args!`), without an
    /// intermediate String.
    pub fn header_fmt(&mut self, name: &str, value: fmt::Arguments<'_>) -> &mut Self {
        put_clean(self.out, name);
        self.out.extend_from_slice(b": ");
        let start = self.out.len();
        let _ = self.out.write_fmt(value);
        for b in &mut self.out[start..] {
            if *b == b'\r' || *b == b'\n' {
                *b = b' ';
            }
        }
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Writes `Content-Length`, the blank line and the body; returns the
    /// message length.
    pub fn finish(self, body: &[u8]) -> usize {
        self.out.extend_from_slice(b"Content-Length: ");
        put_uint(self.out, body.len() as u64);
        self.out.extend_from_slice(b"\r\n\r\n");
        self.out.extend_from_slice(body);
        self.out.len()
    }
}

/// Writes a whole request: request line, `headers` in order, Content-Length and
/// `body`. Returns the message length.
pub fn write_request(
    out: &mut Vec<u8>,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> usize {
    let mut w = Writer::request(out, method, uri);
    for (name, value) in headers {
        w.header(name, value);
    }
    w.finish(body)
}

/// Writes `msg` without its body: the start line, every header but
/// Content-Type and Content-Length, then `Content-Length: 0`. What a
/// transaction keeps of a request once only its headers still matter.
pub fn write_head_only(out: &mut Vec<u8>, msg: &Message<'_>) {
    out.clear();
    match msg.start_line() {
        StartLine::Request {
            method,
            uri,
            version,
        } => {
            let _ = write!(out, "{} {uri} {version}\r\n", method.as_str());
        }
        StartLine::Response {
            version,
            code,
            reason,
        } => {
            let _ = write!(out, "{version} {code} {reason}\r\n");
        }
    }
    for h in msg.headers() {
        if matches!(h.name, HeaderName::ContentLength | HeaderName::ContentType) {
            continue;
        }
        out.extend_from_slice(h.raw_name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.raw_value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
}

/// The lines of a response to `req` that come from the request, as
/// [`Writer::response_to`] writes them after the status line: every Via
/// (the top one stamped with `received`/`rport` when `source` is given),
/// From, To (with `;tag=to_tag` when it has none), Call-ID and CSeq.
pub fn response_head(
    out: &mut Vec<u8>,
    req: &Message<'_>,
    to_tag: Option<&str>,
    source: Option<SocketAddr>,
) {
    for (n, via) in req.headers_named(HeaderName::Via).enumerate() {
        out.extend_from_slice(b"Via: ");
        match source {
            Some(src) if n == 0 => match Via::parse_prefix(via.raw_value, false) {
                Ok((top, rest)) => {
                    top.write_stamped(out, src);
                    put_value(out, rest, via.is_folded());
                }
                Err(_) => put_value(out, via.raw_value, via.is_folded()),
            },
            _ => put_value(out, via.raw_value, via.is_folded()),
        }
        out.extend_from_slice(b"\r\n");
    }
    copy_first(out, req, HeaderName::From, b"From: ");
    if let Some(to) = req.headers_named(HeaderName::To).next() {
        out.extend_from_slice(b"To: ");
        put_value(out, to.raw_value, to.is_folded());
        if let Some(tag) = to_tag {
            if tag_only(to.raw_value).is_none() {
                out.extend_from_slice(b";tag=");
                put_clean(out, tag);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    copy_first(out, req, HeaderName::CallId, b"Call-ID: ");
    copy_first(out, req, HeaderName::CSeq, b"CSeq: ");
}

fn copy_first(out: &mut Vec<u8>, req: &Message<'_>, name: HeaderName<'_>, prefix: &[u8]) {
    if let Some(h) = req.headers_named(name).next() {
        out.extend_from_slice(prefix);
        put_value(out, h.raw_value, h.is_folded());
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `s` with CR and LF replaced by spaces.
pub(crate) fn put_clean(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if !b.iter().any(|&c| c == b'\r' || c == b'\n') {
        out.extend_from_slice(b);
        return;
    }
    out.extend(
        b.iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
    );
}

/// Appends a decimal number.
pub(crate) fn put_uint(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends an IP address as in `received=` (IPv6 without brackets).
pub(crate) fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                put_uint(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends a copied header value, unfolding it when it is folded; a stray CR
/// (which `check` refuses, but a 400 still copies) becomes a space.
fn put_value(out: &mut Vec<u8>, s: &str, folded: bool) {
    if folded {
        put_unfolded(out, s);
    } else {
        put_clean(out, s);
    }
}

/// Appends `s` with each fold (line break and surrounding white space) replaced
/// by one space.
fn put_unfolded(out: &mut Vec<u8>, s: &str) {
    let mut rest = s.as_bytes();
    while let Some(i) = rest.iter().position(|&c| c == b'\r' || c == b'\n') {
        let mut keep = i;
        while keep > 0 && matches!(rest[keep - 1], b' ' | b'\t') {
            keep -= 1;
        }
        out.extend_from_slice(&rest[..keep]);
        out.push(b' ');
        let mut j = i;
        while j < rest.len() && matches!(rest[j], b'\r' | b'\n' | b' ' | b'\t') {
            j += 1;
        }
        rest = &rest[j..];
    }
    out.extend_from_slice(rest);
}

/// The RFC 3261 (and extensions') reason phrase for a status code, or a generic
/// one for its class.
pub fn reason_phrase(code: u16) -> &'static str {
    let known = match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    };
    if !known.is_empty() {
        return known;
    }
    match code / 100 {
        1 => "Session Progress",
        2 => "OK",
        3 => "Redirection",
        4 => "Client Error",
        5 => "Server Error",
        _ => "Global Failure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::method::Method;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKtop;rport, SIP/2.0/UDP proxy.example.com;branch=z9hG4bKmid\r\n\
Via: SIP/2.0/TCP\r\n  first.example.com;branch=z9hG4bKlast\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=fromtag\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: abc123@10.0.0.1\r\n\
CSeq: 7 INVITE\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn a_response_from_a_written_head_is_the_one_response_to_writes() {
        let req = Message::parse(INVITE).unwrap();
        let src: SocketAddr = "203.0.113.5:40000".parse().unwrap();
        let mut head = Vec::new();
        response_head(&mut head, &req, Some("ours"), Some(src));
        for (code, reason) in [(180, None), (200, Some("OK")), (486, None)] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let mut w = Writer::response_to(&mut a, &req, code, reason, Some("ours"), Some(src));
            w.header("Server", "x");
            w.finish(b"");
            let mut w = Writer::response_with_head(&mut b, code, reason, &head);
            w.header("Server", "x");
            w.finish(b"");
            assert_eq!(a, b);
        }
    }

    #[test]
    fn response_round_trip() {
        let req = Message::parse(INVITE).unwrap();
        let src: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        let mut out = Vec::new();
        let mut w = Writer::response_to(&mut out, &req, 180, None, Some("totag"), Some(src));
        w.header("Contact", "<sip:pbx@192.0.2.10>");
        w.header_fmt("Allow-Events", format_args!("{}, {}", "talk", "hold"));
        let n = w.finish(b"");
        assert_eq!(n, out.len());
        let resp = Message::parse(&out).unwrap();
        resp.check().unwrap();
        assert_eq!(resp.status_code(), Some(180));
        assert_eq!(resp.reason(), Some("Ringing"));
        assert_eq!(resp.call_id(), req.call_id());
        assert_eq!(resp.cseq().unwrap(), req.cseq().unwrap());
        assert_eq!(resp.to().unwrap().tag(), Some("totag"));
        assert_eq!(resp.from().unwrap().tag(), Some("fromtag"));
        let vias: Vec<_> = resp.vias().map(Result::unwrap).collect();
        let orig: Vec<_> = req.vias().map(Result::unwrap).collect();
        assert_eq!(vias.len(), 3);
        for (a, b) in vias.iter().zip(&orig) {
            assert_eq!(a.branch(), b.branch());
            assert_eq!(a.host, b.host);
        }
        assert_eq!(vias[0].received(), Some("203.0.113.7"));
        assert_eq!(vias[0].rport(), Some(Some(40000)));
        assert_eq!(resp.header_count(HeaderName::Via), 2);
        assert_eq!(resp.content_length(), Some(0));
        assert_eq!(resp.header(HeaderName::AllowEvents).unwrap(), "talk, hold");
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains("Via: SIP/2.0/TCP first.example.com;branch=z9hG4bKlast\r\n"));
    }

    #[test]
    fn existing_to_tag_is_kept() {
        let with_tag = String::from_utf8(INVITE.to_vec()).unwrap().replace(
            "To: <sip:bob@example.com>",
            "To: <sip:bob@example.com>;tag=old",
        );
        let req = Message::parse(with_tag.as_bytes()).unwrap();
        let mut out = Vec::new();
        Writer::response_to(&mut out, &req, 200, Some("OK"), Some("new"), None).finish(b"");
        let resp = Message::parse(&out).unwrap();
        assert_eq!(resp.to().unwrap().tag(), Some("old"));
        assert_eq!(resp.top_via().unwrap().received(), None);
    }

    #[test]
    fn request_round_trip_and_reuse() {
        let mut out = Vec::with_capacity(512);
        let sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n";
        for _ in 0..2 {
            let n = write_request(
                &mut out,
                "INVITE",
                "sip:bob@[2001:db8::5]:5070;transport=udp",
                &[
                    ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKnew;rport"),
                    ("From", "<sip:pbx@example.com>;tag=x"),
                    ("To", "<sip:bob@example.com>"),
                    ("Call-ID", "b-leg-1"),
                    ("CSeq", "1 INVITE"),
                    ("Max-Forwards", "69"),
                    ("Content-Type", "application/sdp"),
                    ("Subject", "inject\r\nVia: evil"),
                ],
                sdp,
            );
            assert_eq!(n, out.len());
        }
        let m = Message::parse(&out).unwrap();
        m.check().unwrap();
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.body(), sdp);
        assert_eq!(m.request_uri().unwrap().port, Some(5070));
        assert_eq!(m.header_count(HeaderName::Via), 1);
        assert_eq!(m.header(HeaderName::Subject).unwrap(), "inject  Via: evil");
    }

    #[test]
    fn bad_request_without_headers() {
        let req = Message::parse(
            b"INVITE sip:u@example.com SIP/2.0\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKx\r\n\r\n",
        )
        .unwrap();
        let e = req.check().unwrap_err();
        assert_eq!(e.status(), Some(400));
        let mut out = Vec::new();
        Writer::response_to(&mut out, &req, 400, Some(&e.to_string()), Some("t"), None).finish(b"");
        let resp = Message::parse(&out).unwrap();
        assert_eq!(resp.reason(), Some("From: missing"));
        assert_eq!(resp.cseq().unwrap().seq, 1);
        assert!(resp.header(HeaderName::To).is_none());
    }

    #[test]
    fn numbers_and_addresses() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 5060, 65535, u64::MAX] {
            out.clear();
            put_uint(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        out.clear();
        put_ip(&mut out, "192.0.2.255".parse().unwrap());
        assert_eq!(out, b"192.0.2.255");
        out.clear();
        put_ip(&mut out, "2001:db8::1".parse().unwrap());
        assert_eq!(out, b"2001:db8::1");
    }

    #[test]
    fn phrases() {
        assert_eq!(reason_phrase(486), "Busy Here");
        assert_eq!(reason_phrase(499), "Client Error");
        assert_eq!(reason_phrase(699), "Global Failure");
    }
}
