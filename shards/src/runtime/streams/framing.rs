//! How one stream connection's plaintext becomes SIP messages: the SIP
//! framer (TCP, TLS) or WebSocket frames (WS, WSS), and handing out what
//! each has whole, with the replies they make (pongs, the WebSocket
//! handshake, the answer to a close, a refusal) queued on the connection.

use rustls::Connection;

use super::conn::queue_bytes;
use super::CloseReason;
use crate::runtime::stats::ShardStats;
use crate::transport::websocket::{WsCodec, WsError, WsFrame};
use crate::transport::{Frame, Framer, PONG};

/// How messages are cut out of a connection's plaintext.
pub(super) enum Framing {
    /// SIP framing (TCP, TLS).
    Sip(Framer),
    /// WebSocket frames, one SIP message each (WS, WSS).
    Ws(Box<WsCodec>),
}

impl Framing {
    pub(super) fn push(&mut self, now_ms: u64, data: &[u8]) {
        match self {
            Framing::Sip(f) => f.push(now_ms, data),
            Framing::Ws(w) => w.push(now_ms, data),
        }
    }

    /// A message has been partial for too long.
    pub(super) fn stalled(&self, now_ms: u64) -> bool {
        match self {
            Framing::Sip(f) => f.stalled(now_ms),
            Framing::Ws(w) => w.stalled(now_ms),
        }
    }
}

/// Hands out (`deliver`) the SIP messages a SIP framer has whole and
/// answers its pings; how many were delivered, and why the stream ends if
/// it does.
pub(super) fn frame_sip(
    framer: &mut Framer,
    tls: &mut Option<Box<Connection>>,
    queued: &mut Vec<u8>,
    now_ms: u64,
    stats: &ShardStats,
    mut deliver: impl FnMut(&[u8]),
) -> Result<usize, (usize, CloseReason)> {
    let mut got = 0;
    loop {
        match framer.poll(now_ms) {
            Ok(Some(Frame::Message(m))) => {
                got += 1;
                deliver(m);
            }
            Ok(Some(Frame::Ping)) => {
                if !queue_bytes(tls, queued, PONG) {
                    return Err((got, CloseReason::Peer));
                }
            }
            Ok(None) => return Ok(got),
            Err(e) => {
                tracing::debug!("sip stream: {}", e.as_str());
                ShardStats::add(&stats.tcp_frame_errors, 1);
                return Err((got, CloseReason::Framing));
            }
        }
    }
}

/// The same for a WebSocket: the handshake's reply, pongs and the answer
/// to a close are queued; a refused handshake or a broken frame queues
/// its farewell and ends the connection.
pub(super) fn frame_ws(
    codec: &mut WsCodec,
    tls: &mut Option<Box<Connection>>,
    queued: &mut Vec<u8>,
    now_ms: u64,
    stats: &ShardStats,
    mut deliver: impl FnMut(&[u8]),
) -> Result<usize, (usize, CloseReason)> {
    let mut got = 0;
    loop {
        match codec.poll(now_ms) {
            Ok(Some(WsFrame::Message(m))) => {
                got += 1;
                deliver(m);
            }
            Ok(Some(WsFrame::Reply(r))) => {
                if !queue_bytes(tls, queued, r) {
                    return Err((got, CloseReason::Peer));
                }
            }
            Ok(Some(WsFrame::Close(r))) => {
                queue_bytes(tls, queued, r);
                return Err((got, CloseReason::Peer));
            }
            Ok(None) => return Ok(got),
            Err(e) => {
                tracing::debug!("sip websocket: {}", e.as_str());
                let counter = match e {
                    WsError::Handshake(_) => &stats.ws_refused,
                    WsError::Protocol | WsError::TooLarge => &stats.ws_protocol_errors,
                };
                ShardStats::add(counter, 1);
                queue_bytes(tls, queued, &e.farewell());
                return Err((got, CloseReason::Framing));
            }
        }
    }
}
