//! The SIP WebSocket codec (`transport::websocket::WsCodec`, RFC 6455 /
//! RFC 7118). Input: `flags`, `n`, `n` big-endian u16 cut points, then the
//! byte stream the client sends, cut into reads at those points (with, on
//! `flags & 1`, an accepted JsSIP-style handshake sent first). Every read
//! is polled until `None` or an error. Checked besides "no panic":
//!
//! - each step of the codec equals that of a reference reader written here
//!   over the whole stream (handshake via `handshake::accept`, frames
//!   parsed, unmasked and reassembled here): the same messages, replies,
//!   close and error, however the stream was cut;
//! - every `Message` is non-empty, not a keep-alive, and at most
//!   `max_head + max_body`;
//! - whenever the codec waits for more (`Ok(None)`), what it still holds
//!   (the unconsumed bytes and the message being reassembled) is at most
//!   one message at the limits plus one frame header (plus one control
//!   frame inside a fragmented message); the handshake at most
//!   `MAX_HANDSHAKE` (rule 3 of the module: a message over the limits ends
//!   the connection before its payload is buffered). What it really keeps
//!   is that plus at most the last read, not yet dropped;
//! - `stalled` is true, some time, exactly when something is partial;
//! - after an error, `poll` returns the same error (also after more bytes);
//! - the `101`, pongs, our close and every farewell are well-formed: an
//!   HTTP response starting `HTTP/1.1 ` and ending in CRLF CRLF (the `101`
//!   with the RFC 6455 accept value of the key), or a server frame (FIN,
//!   no RSV, unmasked, minimal length encoding matching the payload);
//! - `frame_message` of every message and of the raw input parses back
//!   (frame parser here) to the same payload, text exactly when UTF-8.

use std::sync::Arc;

use base64::Engine as _;
use sha1::{Digest, Sha1};
use shards::transport::websocket::{
    frame_message, handshake, OriginPolicy, WsCodec, WsError, WsFrame, MAX_HANDSHAKE,
};
use shards::transport::Limits;

fn main() {
    afl::fuzz!(|data: &[u8]| run(data));
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// RFC 6455 section 1.3: the accept value of [`KEY`].
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// What JsSIP sends (with the RFC 6455 sample key): accepted by every
/// policy used here.
const HANDSHAKE: &[u8] = b"GET / HTTP/1.1\r\nHost: pbx.example.com\r\nConnection: Upgrade\r\n\
Pragma: no-cache\r\nCache-Control: no-cache\r\nUpgrade: websocket\r\n\
Origin: https://pbx.example.com\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
Sec-WebSocket-Protocol: sip\r\n\r\n";

/// The longest client frame header: 2, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;
/// The longest control frame payload.
const MAX_CONTROL: usize = 125;

fn limits(sel: u8) -> Limits {
    let (max_head, max_body) = match sel & 3 {
        0 => (64, 64),
        1 => (1000, 1000),
        2 => (16 * 1024, 48 * 1024),
        _ => (5, 0),
    };
    Limits {
        max_head,
        max_body,
        partial_ms: 1_000,
    }
}

fn policy(sel: u8) -> OriginPolicy {
    match sel & 3 {
        0 | 3 => OriginPolicy::default(),
        1 => OriginPolicy::new(&["*".to_owned()]),
        _ => OriginPolicy::new(&["https://PBX.example.com/".to_owned()]),
    }
}

fn run(data: &[u8]) {
    let [flags, n, rest @ ..] = data else { return };
    let n = usize::from(n % 16);
    let Some(cuts) = rest.get(..2 * n) else {
        return;
    };
    let stream = &rest[2 * n..];
    check_frame_message(stream);

    let mut input = Vec::new();
    let mut reads: Vec<&[u8]> = Vec::new();
    let prefixed = flags & 1 != 0;
    if prefixed {
        input.extend_from_slice(HANDSHAKE);
    }
    let mut points: Vec<usize> = cuts
        .chunks(2)
        .map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    points.sort_unstable();
    let mut at = 0;
    if prefixed {
        reads.push(HANDSHAKE);
    }
    for p in points.into_iter().chain([stream.len()]) {
        reads.push(&stream[at..p]);
        at = p;
    }
    input.extend_from_slice(stream);

    let limits = limits(flags >> 1);
    let policy = Arc::new(policy(flags >> 3));
    let max = limits.max_head + limits.max_body;
    let mut codec = WsCodec::new(limits, policy.clone());
    let mut model = Model::new(max, policy);
    let mut now = 0u64;
    let mut first_reply = true;
    for read in reads {
        now += 3;
        codec.push(now, read);
        model.push(read);
        loop {
            let got = codec.poll(now);
            let want = model.next();
            match (got, want) {
                (Ok(Some(f)), Ok(Some(w))) => {
                    let ev = match f {
                        WsFrame::Message(m) => {
                            assert!(!m.is_empty(), "empty message");
                            assert!(m.len() <= max, "message of {} over {max}", m.len());
                            assert!(!m.iter().all(|b| matches!(b, b'\r' | b'\n' | b' ')));
                            check_frame_message(m);
                            Ev::Message(m.to_vec())
                        }
                        WsFrame::Reply(r) => {
                            if first_reply {
                                check_101(r, prefixed);
                            } else {
                                assert_eq!(server_frame(r).0, 10, "a reply that is not a pong");
                            }
                            Ev::Reply(r.to_vec())
                        }
                        WsFrame::Close(c) => {
                            assert_eq!(server_frame(c), (8, &1000u16.to_be_bytes()[..]));
                            Ev::Close(c.to_vec())
                        }
                    };
                    first_reply = false;
                    assert_eq!(ev, w, "codec and reference differ");
                }
                (Ok(None), Ok(None)) => {
                    model.check_held(read.len());
                    if model.state != MState::Done {
                        assert_eq!(
                            codec.stalled(u64::MAX),
                            model.partial(),
                            "stalled without anything partial, or the reverse"
                        );
                    }
                    break;
                }
                (Err(e), Err(w)) => {
                    assert_eq!(e, w, "codec and reference differ");
                    check_farewell(e);
                    assert_eq!(codec.poll(now + 1), Err(e), "error not repeated");
                    codec.push(now + 2, b"\x81\x80\0\0\0\0 more");
                    assert_eq!(codec.poll(now + 3), Err(e), "error not repeated");
                    return;
                }
                (got, want) => panic!("codec {got:?}, reference {want:?}"),
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Message(Vec<u8>),
    Reply(Vec<u8>),
    Close(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MState {
    Handshake,
    Open,
    Done,
}

/// The reference reader: the whole stream so far, and where it is.
struct Model {
    stream: Vec<u8>,
    pos: usize,
    state: MState,
    in_msg: bool,
    msg: Vec<u8>,
    failed: Option<WsError>,
    max: usize,
    policy: Arc<OriginPolicy>,
}

impl Model {
    fn new(max: usize, policy: Arc<OriginPolicy>) -> Model {
        Model {
            stream: Vec::new(),
            pos: 0,
            state: MState::Handshake,
            in_msg: false,
            msg: Vec::new(),
            failed: None,
            max,
            policy,
        }
    }

    fn push(&mut self, read: &[u8]) {
        // Once closed or broken, nothing more is read.
        if self.state != MState::Done {
            self.stream.extend_from_slice(read);
        }
    }

    fn partial(&self) -> bool {
        self.stream.len() > self.pos || self.in_msg
    }

    /// What the codec may hold while waiting for more, checked.
    fn check_held(&self, last_read: usize) {
        if self.state == MState::Done {
            return;
        }
        let pending = &self.stream[self.pos..];
        let held = pending.len() + self.msg.len() * usize::from(self.in_msg);
        let bound = match self.state {
            MState::Handshake => MAX_HANDSHAKE,
            // A control frame may come between fragments.
            _ if self.in_msg && pending.first().is_some_and(|b| b & 0x08 != 0) => {
                self.max + MAX_HEADER + MAX_CONTROL
            }
            _ => self.max + MAX_HEADER,
        };
        assert!(
            held <= bound,
            "holds {held} (pending frame {} bytes, message {} bytes, in message {}) \
             over {bound}, last read {last_read}",
            pending.len(),
            self.msg.len(),
            self.in_msg
        );
    }

    fn next(&mut self) -> Result<Option<Ev>, WsError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let r = match self.state {
            MState::Done => return Ok(None),
            MState::Handshake => self.handshake(),
            MState::Open => self.frame(),
        };
        if let Err(e) = r {
            self.failed = Some(e);
            self.state = MState::Done;
        }
        r
    }

    fn handshake(&mut self) -> Result<Option<Ev>, WsError> {
        let bad = WsError::Handshake(handshake::Refusal::BadRequest);
        let Some(end) = self.stream.windows(4).position(|w| w == b"\r\n\r\n") else {
            return if self.stream.len() > MAX_HANDSHAKE {
                Err(bad)
            } else {
                Ok(None)
            };
        };
        let head = end + 4;
        if head > MAX_HANDSHAKE {
            return Err(bad);
        }
        let reply =
            handshake::accept(&self.stream[..head], &self.policy).map_err(WsError::Handshake)?;
        self.pos = head;
        self.state = MState::Open;
        Ok(Some(Ev::Reply(reply)))
    }

    fn frame(&mut self) -> Result<Option<Ev>, WsError> {
        loop {
            let b = &self.stream[self.pos..];
            let [b0, b1, ..] = *b else { return Ok(None) };
            if b0 & 0x70 != 0 || b1 & 0x80 == 0 {
                return Err(WsError::Protocol);
            }
            let fin = b0 & 0x80 != 0;
            let op = b0 & 0x0f;
            let (len, hl) = match b1 & 0x7f {
                126 if b.len() < 4 => return Ok(None),
                126 => (u64::from(b[2]) << 8 | u64::from(b[3]), 4),
                127 if b.len() < 10 => return Ok(None),
                127 => (b[2..10].iter().fold(0u64, |a, x| a << 8 | u64::from(*x)), 10),
                n => (u64::from(n), 2),
            };
            if op >= 8 && (!fin || len > MAX_CONTROL as u64) {
                return Err(WsError::Protocol);
            }
            if b.len() < hl + 4 {
                return Ok(None);
            }
            if len > self.max as u64 {
                return Err(WsError::TooLarge);
            }
            // What the frame may be is known from its header (rule 2 and
            // 3): refused before its payload.
            match op {
                8..=10 => {}
                1 | 2 if !self.in_msg => {}
                0 if self.in_msg => {
                    if self.msg.len() as u64 + len > self.max as u64 {
                        return Err(WsError::TooLarge);
                    }
                }
                _ => return Err(WsError::Protocol),
            }
            let total = hl + 4 + len as usize;
            if b.len() < total {
                return Ok(None);
            }
            let mask = [b[hl], b[hl + 1], b[hl + 2], b[hl + 3]];
            let payload: Vec<u8> = b[hl + 4..total]
                .iter()
                .zip(mask.iter().cycle())
                .map(|(x, m)| x ^ m)
                .collect();
            self.pos += total;
            let keepalive = |m: &[u8]| m.iter().all(|c| matches!(c, b'\r' | b'\n' | b' '));
            match op {
                9 => return Ok(Some(Ev::Reply(server(10, &payload)))),
                10 => {}
                8 => {
                    self.state = MState::Done;
                    return Ok(Some(Ev::Close(server(8, &[0x03, 0xe8]))));
                }
                1 | 2 if !self.in_msg => {
                    if fin {
                        if !keepalive(&payload) {
                            return Ok(Some(Ev::Message(payload)));
                        }
                    } else {
                        self.in_msg = true;
                        self.msg = payload;
                    }
                }
                0 if self.in_msg => {
                    if self.msg.len() + payload.len() > self.max {
                        return Err(WsError::TooLarge);
                    }
                    self.msg.extend_from_slice(&payload);
                    if fin {
                        self.in_msg = false;
                        let m = std::mem::take(&mut self.msg);
                        if !keepalive(&m) {
                            return Ok(Some(Ev::Message(m)));
                        }
                    }
                }
                _ => return Err(WsError::Protocol),
            }
        }
    }
}

/// A server frame written here (FIN, unmasked, minimal length).
fn server(op: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | op];
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
    out
}

/// Parses one whole server frame: FIN, no RSV, unmasked, the minimal
/// length encoding, the length exactly the rest. Returns opcode, payload.
fn server_frame(f: &[u8]) -> (u8, &[u8]) {
    let [b0, b1, ..] = *f else {
        panic!("server frame of {} bytes", f.len())
    };
    assert_eq!(b0 & 0xf0, 0x80, "FIN not set or RSV bits in {b0:#x}");
    assert_eq!(b1 & 0x80, 0, "server frame masked");
    let (len, at) = match b1 & 0x7f {
        126 => {
            let l = u64::from(u16::from_be_bytes([f[2], f[3]]));
            assert!(l >= 126, "length {l} not minimally encoded");
            (l, 4)
        }
        127 => {
            let l = u64::from_be_bytes(f[2..10].try_into().expect("8 bytes"));
            assert!(l > 0xffff && l >> 63 == 0, "length {l} not minimally encoded");
            (l, 10)
        }
        n => (u64::from(n), 2),
    };
    assert_eq!(f.len() as u64, at as u64 + len, "frame length field");
    let op = b0 & 0x0f;
    if op >= 8 {
        assert!(len <= MAX_CONTROL as u64, "control frame of {len}");
    }
    (op, &f[at..])
}

fn check_frame_message(msg: &[u8]) {
    let mut out = b"kept".to_vec();
    frame_message(msg, &mut out);
    assert_eq!(&out[..4], b"kept", "frame_message overwrote the buffer");
    let (op, payload) = server_frame(&out[4..]);
    let want = if std::str::from_utf8(msg).is_ok() { 1 } else { 2 };
    assert_eq!(op, want, "opcode of a message");
    assert_eq!(payload, msg, "frame_message payload");
}

fn check_101(r: &[u8], prefixed: bool) {
    let text = std::str::from_utf8(r).expect("the 101 is text");
    assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "{text}");
    assert_eq!(text.matches("\r\n\r\n").count(), 1, "{text}");
    assert!(text.contains("\r\nSec-WebSocket-Protocol: sip\r\n"), "{text}");
    let accept = text
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Accept: "))
        .expect("accept header");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(accept)
        .expect("accept is base64");
    assert_eq!(raw.len(), 20, "accept is a SHA-1");
    if prefixed {
        assert_eq!(accept, ACCEPT);
        let mut sha = Sha1::new();
        sha.update(KEY.as_bytes());
        sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
        assert_eq!(raw, sha.finalize().to_vec());
    }
}

fn check_farewell(e: WsError) {
    let f = e.farewell();
    match e {
        WsError::Handshake(_) => {
            let text = std::str::from_utf8(&f).expect("an HTTP refusal is text");
            assert!(text.starts_with("HTTP/1.1 "), "{text}");
            let status = &text[9..12];
            assert!(
                matches!(status, "400" | "403" | "426"),
                "refused with {status}"
            );
            assert!(text.ends_with("\r\n\r\n") && text.contains("\r\nConnection: close\r\n"));
        }
        WsError::Protocol => assert_eq!(server_frame(&f), (8, &1002u16.to_be_bytes()[..])),
        WsError::TooLarge => assert_eq!(server_frame(&f), (8, &1009u16.to_be_bytes()[..])),
    }
}
