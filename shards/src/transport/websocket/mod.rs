//! SIP over WebSocket (RFC 7118) on one accepted connection, sans-IO:
//! [`WsCodec`] takes the bytes the client sends (plaintext, after TLS on
//! WSS), runs the opening handshake ([`handshake`]), then cuts frames
//! (RFC 6455 section 5) and gives each whole data message: one SIP
//! message. [`frame_message`] wraps what we send.
//!
//! Rules, in the order they apply:
//! 1. The handshake head may be at most [`MAX_HANDSHAKE`] bytes; a refused
//!    one is answered with its HTTP status ([`WsError::farewell`]) and the
//!    connection ends.
//! 2. Every client frame is masked; no extension bits; control frames
//!    (close, ping, pong) are whole and at most 125 bytes; a continuation
//!    only continues a data message, and a data frame never interrupts one.
//! 3. A message (all its fragments) over the SIP limits
//!    ([`Limits::max_head`] + [`Limits::max_body`]) ends the connection
//!    before its payload is buffered (close 1009).
//! 4. Ping is answered with pong, close with close (then the connection
//!    ends); pongs and empty or blank messages (keep-alives) are skipped.
//! 5. A handshake, frame or message partial for longer than
//!    [`Limits::partial_ms`] is reported by [`WsCodec::stalled`].

pub mod handshake;
#[cfg(test)]
mod tests;

pub use handshake::{OriginPolicy, Refusal};

use super::Limits;

/// The longest opening handshake taken.
pub const MAX_HANDSHAKE: usize = 8 * 1024;

const OP_CONTINUATION: u8 = 0;
const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;
const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
const OP_PONG: u8 = 10;

/// What the client said next.
#[derive(Debug, PartialEq, Eq)]
pub enum WsFrame<'a> {
    /// One whole data message: a SIP message.
    Message(&'a [u8]),
    /// Bytes to write back as they are (the `101`, a pong).
    Reply(&'a [u8]),
    /// The client closed: write this close frame back, then end the
    /// connection.
    Close(&'a [u8]),
}

/// Why the connection cannot go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsError {
    /// The handshake was refused.
    Handshake(Refusal),
    /// A frame broke RFC 6455 (close 1002).
    Protocol,
    /// A message over the limits (close 1009).
    TooLarge,
}

impl WsError {
    /// A short reason for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            WsError::Handshake(r) => r.as_str(),
            WsError::Protocol => "WebSocket protocol error",
            WsError::TooLarge => "WebSocket message over the limits",
        }
    }

    /// What to write before closing: the HTTP refusal, or a close frame
    /// with the status code.
    pub fn farewell(self) -> Vec<u8> {
        match self {
            WsError::Handshake(r) => r.response().to_vec(),
            WsError::Protocol => close_frame(1002),
            WsError::TooLarge => close_frame(1009),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Handshake,
    Open,
    /// Closed by the client or broken: nothing more is read.
    Done,
}

/// The WebSocket side of one SIP connection.
#[derive(Debug)]
pub struct WsCodec {
    state: State,
    policy: std::sync::Arc<OriginPolicy>,
    buf: Vec<u8>,
    /// Bytes before this offset were handed out and are dropped next time.
    consumed: usize,
    /// The data message being reassembled from fragments.
    message: Vec<u8>,
    in_message: bool,
    /// The reply handed out last (a pong or the `101`).
    reply: Vec<u8>,
    /// When the partial handshake, frame or message began (mono ms).
    partial_since: Option<u64>,
    failed: Option<WsError>,
    limits: Limits,
}

impl WsCodec {
    pub fn new(limits: Limits, policy: std::sync::Arc<OriginPolicy>) -> WsCodec {
        WsCodec {
            state: State::Handshake,
            policy,
            buf: Vec::new(),
            consumed: 0,
            message: Vec::new(),
            in_message: false,
            reply: Vec::new(),
            partial_since: None,
            failed: None,
            limits,
        }
    }

    /// Whether the handshake is done (a SIP message may be sent).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Bytes read from the connection at `now_ms`.
    pub fn push(&mut self, now_ms: u64, data: &[u8]) {
        self.compact();
        if data.is_empty() || self.state == State::Done {
            return;
        }
        if self.buf.is_empty() && !self.in_message {
            self.partial_since = Some(now_ms);
        }
        self.buf.extend_from_slice(data);
    }

    /// The next thing the client said, `Ok(None)` when more bytes are
    /// needed. After an error every call returns it again. What was handed
    /// out is dropped by the next `push` (one move per read, not one per
    /// frame: a read full of tiny pings costs linear time).
    pub fn poll(&mut self, now_ms: u64) -> Result<Option<WsFrame<'_>>, WsError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let step = match self.state {
            State::Done => return Ok(None),
            State::Handshake => self.handshake(),
            State::Open => self.frame(),
        };
        match step {
            Err(e) => {
                self.failed = Some(e);
                self.state = State::Done;
                Err(e)
            }
            Ok(None) => {
                // Keep-alives and pongs read whole: nothing is partial.
                if self.buf.len() == self.consumed && !self.in_message {
                    self.partial_since = None;
                }
                Ok(None)
            }
            Ok(Some(what)) => {
                self.partial_since =
                    (self.buf.len() > self.consumed || self.in_message).then_some(now_ms);
                Ok(Some(match what {
                    Step::Message(range) => WsFrame::Message(&self.buf[range]),
                    Step::Reassembled => WsFrame::Message(&self.message),
                    Step::Reply => WsFrame::Reply(&self.reply),
                    Step::Close => WsFrame::Close(&self.reply),
                }))
            }
        }
    }

    /// A handshake, frame or message has been partial for too long.
    pub fn stalled(&self, now_ms: u64) -> bool {
        self.partial_since
            .is_some_and(|t| now_ms.saturating_sub(t) > self.limits.partial_ms)
    }

    fn max_message(&self) -> usize {
        self.limits.max_head + self.limits.max_body
    }

    /// Drops what was handed out; gives memory back once the buffers are
    /// empty and were large.
    fn compact(&mut self) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > 64 * 1024 {
            self.buf = Vec::new();
        }
        if !self.in_message && self.message.capacity() > 64 * 1024 {
            self.message = Vec::new();
        }
    }

    fn handshake(&mut self) -> Result<Option<Step>, WsError> {
        let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if self.buf.len() > MAX_HANDSHAKE {
                return Err(WsError::Handshake(Refusal::BadRequest));
            }
            return Ok(None);
        };
        let head_len = end + 4;
        if head_len > MAX_HANDSHAKE {
            return Err(WsError::Handshake(Refusal::BadRequest));
        }
        self.reply =
            handshake::accept(&self.buf[..head_len], &self.policy).map_err(WsError::Handshake)?;
        self.consumed = head_len;
        self.state = State::Open;
        Ok(Some(Step::Reply))
    }

    /// Reads frames until one gives something to hand out.
    fn frame(&mut self) -> Result<Option<Step>, WsError> {
        loop {
            let Some(f) = parse_header(&self.buf[self.consumed..])? else {
                return Ok(None);
            };
            if f.len > self.max_message() as u64 {
                return Err(WsError::TooLarge);
            }
            // What the frame may be is known from its header: refused
            // before its payload is buffered.
            match f.opcode {
                OP_CLOSE | OP_PING | OP_PONG => {}
                OP_TEXT | OP_BINARY if !self.in_message => {}
                OP_CONTINUATION if self.in_message => {
                    if self.message.len() as u64 + f.len > self.max_message() as u64 {
                        return Err(WsError::TooLarge);
                    }
                }
                _ => return Err(WsError::Protocol),
            }
            let total = f.header_len + f.len as usize;
            let start = self.consumed;
            if self.buf.len() - start < total {
                return Ok(None);
            }
            let payload = start + f.header_len..start + total;
            unmask(&mut self.buf[payload.clone()], f.mask);
            self.consumed = start + total;
            match f.opcode {
                OP_PING => {
                    self.reply.clear();
                    push_frame(&mut self.reply, OP_PONG, &self.buf[payload]);
                    return Ok(Some(Step::Reply));
                }
                OP_PONG => continue,
                OP_CLOSE => {
                    // Our close answers theirs (section 5.5.1): normal.
                    self.reply = close_frame(1000);
                    self.state = State::Done;
                    return Ok(Some(Step::Close));
                }
                OP_TEXT | OP_BINARY if !self.in_message => {
                    if f.fin {
                        if is_keepalive(&self.buf[payload.clone()]) {
                            continue;
                        }
                        return Ok(Some(Step::Message(payload)));
                    }
                    self.in_message = true;
                    self.message.clear();
                    self.message.extend_from_slice(&self.buf[payload]);
                }
                OP_CONTINUATION if self.in_message => {
                    self.message.extend_from_slice(&self.buf[payload]);
                    if f.fin {
                        self.in_message = false;
                        if is_keepalive(&self.message) {
                            continue;
                        }
                        return Ok(Some(Step::Reassembled));
                    }
                }
                _ => return Err(WsError::Protocol),
            }
        }
    }
}

/// What `poll` hands out, by where it lies.
enum Step {
    Message(std::ops::Range<usize>),
    Reassembled,
    Reply,
    Close,
}

/// One frame's header.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    len: u64,
    header_len: usize,
}

/// The header at the start of `b`, `None` until it is all there.
fn parse_header(b: &[u8]) -> Result<Option<Header>, WsError> {
    let (Some(&b0), Some(&b1)) = (b.first(), b.get(1)) else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    // No extension was negotiated; the client masks every frame.
    if b0 & 0x70 != 0 || b1 & 0x80 == 0 {
        return Err(WsError::Protocol);
    }
    let (len, at) = match b1 & 0x7f {
        126 => match b.get(2..4) {
            Some(l) => (u64::from(u16::from_be_bytes([l[0], l[1]])), 4),
            None => return Ok(None),
        },
        127 => match b.get(2..10) {
            Some(l) => {
                let mut v = [0u8; 8];
                v.copy_from_slice(l);
                (u64::from_be_bytes(v), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode >= OP_CLOSE && (!fin || len > 125) {
        return Err(WsError::Protocol);
    }
    let Some(m) = b.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: [m[0], m[1], m[2], m[3]],
        len,
        header_len: at + 4,
    }))
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// An empty message, or only CR/LF/space: a keep-alive, not SIP.
fn is_keepalive(m: &[u8]) -> bool {
    m.iter().all(|b| matches!(b, b'\r' | b'\n' | b' '))
}

/// Appends one unmasked frame (server to client).
fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// Appends one SIP message as a WebSocket message: text when it is UTF-8
/// (as SIP is), binary otherwise.
pub fn frame_message(msg: &[u8], out: &mut Vec<u8>) {
    let op = if std::str::from_utf8(msg).is_ok() {
        OP_TEXT
    } else {
        OP_BINARY
    };
    push_frame(out, op, msg);
}

/// A close frame with `code`.
fn close_frame(code: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(4);
    push_frame(&mut out, OP_CLOSE, &code.to_be_bytes());
    out
}
