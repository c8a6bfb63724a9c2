//! [`Framer`]: SIP messages cut out of a byte stream (RFC 3261 section
//! 18.3), sans-IO. Bytes go in with [`Framer::push`]; [`Framer::poll`]
//! gives the next whole message, a keep-alive (RFC 5626 section 3.5.1), or
//! the error that ends the connection.
//!
//! Rules, in the order they are applied to what is buffered:
//! 1. `CRLF CRLF` between messages is a ping (the peer wants a `CRLF`
//!    pong); a lone `CRLF` is a pong (or padding) and is skipped.
//! 2. A message is its head up to the empty line, then exactly
//!    `Content-Length` bytes of body. On a stream the header is
//!    mandatory: without it the next message cannot be found, so the
//!    stream is given up ([`FrameError::NoContentLength`]).
//! 3. A head longer than [`Limits::max_head`] or a declared body longer
//!    than [`Limits::max_body`] ends the stream before any of it is
//!    buffered ([`FrameError::TooLarge`]): the buffer never holds more
//!    than one message at its limit plus one read.
//! 4. A message that has been partial for longer than
//!    [`Limits::partial_ms`] (a slow sender) is reported by
//!    [`Framer::stalled`], so its connection can be closed.

use crate::sip::is_content_length_name;

/// How much a stream may hold for one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest head (start line and headers, with the empty line).
    pub max_head: usize,
    /// The largest body a Content-Length may announce.
    pub max_body: usize,
    /// How long one message may take to arrive, from its first byte (ms).
    pub partial_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_body: 48 * 1024,
            partial_ms: 10_000,
        }
    }
}

/// What the stream said next.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// One whole SIP message, head and body.
    Message(&'a [u8]),
    /// `CRLF CRLF`: answer with [`PONG`].
    Ping,
}

/// Why a stream cannot be read on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A message without Content-Length.
    NoContentLength,
    /// A Content-Length that is not a number, or two that differ.
    BadContentLength,
    /// A head or a body over the limits.
    TooLarge,
}

impl FrameError {
    /// A short reason for logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            FrameError::NoContentLength => "no Content-Length on a stream",
            FrameError::BadContentLength => "bad Content-Length",
            FrameError::TooLarge => "message over the stream limits",
        }
    }
}

/// The pong that answers a ping.
pub const PONG: &[u8] = b"\r\n";
/// The ping a client sends (RFC 5626 section 3.5.1).
const PING: &[u8] = b"\r\n\r\n";

/// Empty, or the start of a ping: not (yet) a message.
fn keepalive_prefix(rest: &[u8]) -> bool {
    rest.len() < PING.len() && PING.starts_with(rest)
}

/// The message framer of one stream.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Bytes before this offset were handed out and are dropped on the
    /// next `push` or `poll`.
    consumed: usize,
    /// The head of the partial message, once parsed: its total length.
    pending_total: Option<usize>,
    /// When the partial message's first byte came (mono ms).
    partial_since: Option<u64>,
    /// The stream is broken: nothing more is framed.
    failed: Option<FrameError>,
    limits: Limits,
}

impl Framer {
    pub fn new(limits: Limits) -> Framer {
        Framer {
            buf: Vec::new(),
            consumed: 0,
            pending_total: None,
            partial_since: None,
            failed: None,
            limits,
        }
    }

    /// The most bytes `push` can need to hold at once: one message at its
    /// limit. A reader can size its reads with it.
    pub fn max_message(&self) -> usize {
        self.limits.max_head + self.limits.max_body
    }

    /// Bytes read from the stream at `now_ms`.
    pub fn push(&mut self, now_ms: u64, data: &[u8]) {
        self.compact();
        if data.is_empty() || self.failed.is_some() {
            return;
        }
        if self.buf.is_empty() {
            self.partial_since = Some(now_ms);
        }
        self.buf.extend_from_slice(data);
    }

    /// The next frame, `Ok(None)` when more bytes are needed. After an
    /// error every call returns it again. What was handed out is dropped
    /// by the next `push` (one move per read, not one per frame: a read
    /// full of tiny pings costs linear time).
    pub fn poll(&mut self, now_ms: u64) -> Result<Option<Frame<'_>>, FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        // Keep-alives between messages.
        if self.pending_total.is_none() {
            loop {
                let rest = &self.buf[self.consumed..];
                if rest.starts_with(PING) {
                    self.consumed += PING.len();
                    self.restart_clock(now_ms);
                    return Ok(Some(Frame::Ping));
                }
                if rest.starts_with(PONG) && rest.len() > 2 && rest[2] != b'\r' {
                    // A lone CRLF (a pong, or padding) before a message.
                    self.consumed += PONG.len();
                    self.restart_clock(now_ms);
                    continue;
                }
                if keepalive_prefix(rest) {
                    // Nothing, or a keep-alive still arriving.
                    return Ok(None);
                }
                break;
            }
        }
        let total = match self.pending_total {
            Some(total) => total,
            None => match self.head_total() {
                Ok(Some(total)) => {
                    self.pending_total = Some(total);
                    total
                }
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.fail(e)),
            },
        };
        let rest = &self.buf[self.consumed..];
        if rest.len() < total {
            return Ok(None);
        }
        let start = self.consumed;
        self.consumed += total;
        self.pending_total = None;
        self.restart_clock(now_ms);
        Ok(Some(Frame::Message(&self.buf[start..start + total])))
    }

    /// True when a partial message has been arriving for longer than the
    /// limit allows (a slow sender).
    pub fn stalled(&self, now_ms: u64) -> bool {
        match self.partial_since {
            Some(since) if !keepalive_prefix(&self.buf[self.consumed..]) => {
                now_ms.saturating_sub(since) > self.limits.partial_ms
            }
            _ => false,
        }
    }

    /// Bytes held (for the connection's memory accounting).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    fn fail(&mut self, e: FrameError) -> FrameError {
        self.failed = Some(e);
        self.buf = Vec::new();
        self.consumed = 0;
        e
    }

    fn restart_clock(&mut self, now_ms: u64) {
        self.partial_since = (!keepalive_prefix(&self.buf[self.consumed..])).then_some(now_ms);
    }

    /// Drops what was handed out; gives memory back once the buffer is
    /// empty and was large.
    fn compact(&mut self) {
        if self.consumed == 0 {
            return;
        }
        self.buf.drain(..self.consumed);
        self.consumed = 0;
        if self.buf.is_empty() && self.buf.capacity() > 64 * 1024 {
            self.buf = Vec::new();
        }
    }

    /// The whole length of the message whose head starts at `consumed`,
    /// once its head is complete.
    fn head_total(&self) -> Result<Option<usize>, FrameError> {
        let rest = &self.buf[self.consumed..];
        let Some(head_len) = find_head_end(rest) else {
            if rest.len() > self.limits.max_head {
                return Err(FrameError::TooLarge);
            }
            return Ok(None);
        };
        if head_len > self.limits.max_head {
            return Err(FrameError::TooLarge);
        }
        let body = content_length(&rest[..head_len])?;
        if body > self.limits.max_body {
            return Err(FrameError::TooLarge);
        }
        Ok(Some(head_len + body))
    }
}

/// The length of the head including its empty line (`\r\n\r\n`), or
/// `None` while it is incomplete.
fn find_head_end(data: &[u8]) -> Option<usize> {
    data.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The Content-Length of a head (long or compact name, folded lines
/// allowed); every copy must agree.
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let mut found: Option<usize> = None;
    // Header lines start after a CRLF that is not followed by a space or
    // tab (those continue the previous line).
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim(&line[..colon]);
        if !is_content_length_name(name) {
            continue;
        }
        let value = trim(&line[colon + 1..]);
        let n = parse_len(value).ok_or(FrameError::BadContentLength)?;
        if found.is_some_and(|f| f != n) {
            return Err(FrameError::BadContentLength);
        }
        found = Some(n);
    }
    found.ok_or(FrameError::NoContentLength)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Decimal digits only, at most 9 of them (no overflow, no sign).
fn parse_len(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 3\r\n\r\nabc";

    fn all(f: &mut Framer, now: u64) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut out = Vec::new();
        loop {
            match f.poll(now) {
                Ok(Some(Frame::Message(m))) => out.push(Ok(m.to_vec())),
                Ok(Some(Frame::Ping)) => out.push(Ok(b"PING".to_vec())),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    #[test]
    fn messages_split_anywhere_come_out_whole() {
        let mut stream = Vec::new();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(MSG);
        for cut in 1..stream.len() {
            let mut f = Framer::new(Limits::default());
            f.push(0, &stream[..cut]);
            let mut got = all(&mut f, 0);
            f.push(0, &stream[cut..]);
            got.extend(all(&mut f, 0));
            assert_eq!(
                got,
                vec![Ok(MSG.to_vec()), Ok(b"PING".to_vec()), Ok(MSG.to_vec())],
                "cut at {cut}"
            );
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut f = Framer::new(Limits::default());
        let mut got = Vec::new();
        for b in MSG.iter().chain(MSG) {
            f.push(0, std::slice::from_ref(b));
            got.extend(all(&mut f, 0));
        }
        assert_eq!(got, vec![Ok(MSG.to_vec()), Ok(MSG.to_vec())]);
    }

    #[test]
    fn compact_and_folded_content_length() {
        let m = b"MESSAGE sip:a@b SIP/2.0\r\nl :\r\n 2\r\nX: y\r\n\r\nhiNEXT";
        let mut f = Framer::new(Limits::default());
        f.push(0, m);
        // The folded value is on the continuation line: not a number on
        // the header's own line.
        assert_eq!(all(&mut f, 0), vec![Err(FrameError::BadContentLength)]);
        let m = b"MESSAGE sip:a@b SIP/2.0\r\nl :  2 \r\n\r\nhi";
        let mut f = Framer::new(Limits::default());
        f.push(0, m);
        assert_eq!(all(&mut f, 0), vec![Ok(m.to_vec())]);
    }

    #[test]
    fn a_message_without_content_length_ends_the_stream() {
        let mut f = Framer::new(Limits::default());
        f.push(0, b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(all(&mut f, 0), vec![Err(FrameError::NoContentLength)]);
        // And stays ended: more bytes are not read.
        f.push(0, MSG);
        assert_eq!(f.poll(0), Err(FrameError::NoContentLength));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn conflicting_or_hostile_lengths_end_the_stream() {
        for head in [
            &b"A sip:a SIP/2.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            b"A sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n",
            b"A sip:a SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"A sip:a SIP/2.0\r\nContent-Length: 0x10\r\n\r\n",
        ] {
            let mut f = Framer::new(Limits::default());
            f.push(0, head);
            assert_eq!(all(&mut f, 0), vec![Err(FrameError::BadContentLength)]);
        }
    }

    #[test]
    fn a_two_gigabyte_content_length_is_refused_before_the_body() {
        let mut f = Framer::new(Limits::default());
        f.push(
            0,
            b"INVITE sip:a SIP/2.0\r\nContent-Length: 2147483648\r\n\r\n",
        );
        assert_eq!(all(&mut f, 0), vec![Err(FrameError::BadContentLength)]);
        let mut f = Framer::new(Limits::default());
        f.push(0, b"INVITE sip:a SIP/2.0\r\nContent-Length: 49153\r\n\r\n");
        assert_eq!(all(&mut f, 0), vec![Err(FrameError::TooLarge)]);
    }

    #[test]
    fn an_endless_head_is_refused_at_the_limit() {
        let limits = Limits::default();
        let mut f = Framer::new(limits);
        f.push(0, b"INVITE sip:a SIP/2.0\r\n");
        let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let mut got = Vec::new();
        for _ in 0..(limits.max_head / line.len() + 2) {
            f.push(0, line);
            got.extend(all(&mut f, 0));
            if !got.is_empty() {
                break;
            }
        }
        assert_eq!(got, vec![Err(FrameError::TooLarge)]);
        assert!(f.buffered() <= limits.max_head + line.len());
    }

    #[test]
    fn a_slow_sender_stalls_and_keepalives_do_not() {
        let limits = Limits {
            partial_ms: 1_000,
            ..Limits::default()
        };
        let mut f = Framer::new(limits);
        f.push(0, b"\r\n\r\n");
        assert_eq!(f.poll(0), Ok(Some(Frame::Ping)));
        assert!(!f.stalled(5_000));
        f.push(5_000, &MSG[..10]);
        assert_eq!(f.poll(5_000), Ok(None));
        assert!(!f.stalled(6_000));
        f.push(6_000, &MSG[10..20]);
        assert!(
            f.stalled(6_001),
            "the clock runs from the message's first byte"
        );
        f.push(6_001, &MSG[20..]);
        assert_eq!(f.poll(6_001), Ok(Some(Frame::Message(MSG))));
        assert!(!f.stalled(60_000));
    }

    #[test]
    fn lone_crlf_is_a_pong_not_a_message_and_a_split_ping_is_a_ping() {
        let mut f = Framer::new(Limits::default());
        f.push(0, b"\r\n");
        assert_eq!(f.poll(0), Ok(None));
        assert!(!f.stalled(1_000_000));
        f.push(0, MSG);
        assert_eq!(all(&mut f, 0), vec![Ok(MSG.to_vec())]);
        f.push(0, b"\r\n");
        assert_eq!(f.poll(0), Ok(None));
        f.push(0, b"\r\n");
        assert_eq!(f.poll(0), Ok(Some(Frame::Ping)));
        assert_eq!(f.buffered(), 0);
    }
}
