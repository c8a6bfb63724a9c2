//! One stream connection: its socket, its TLS session (server side when
//! accepted, client side when dialled), how messages are cut out of it
//! ([`Framing`]: the SIP framer, or WebSocket frames) and its write queue,
//! and the two steps of TLS as sans-IO (ciphertext in, plaintext to the
//! framing; what the session writes to the queue).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use rustls::Connection;

use crate::transport::websocket;
use crate::transport::StreamKind;

pub(super) use super::framing::Framing;

use super::CloseReason;

pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    /// The TLS session of a TLS connection.
    pub(super) tls: Option<Box<Connection>>,
    pub(super) kind: StreamKind,
    pub(super) framing: Framing,
    /// Bytes for the socket (ciphertext on a TLS connection).
    pub(super) queued: Vec<u8>,
    pub(super) opened_ms: u64,
    pub(super) last_ms: u64,
    pub(super) watching_out: bool,
    /// We dialled it (a trunk), and the connect may still be under way.
    pub(super) dialled: bool,
    pub(super) connecting: bool,
    /// In the shard's list of connections to write at the end of the turn.
    pub(super) dirty: bool,
}

impl Conn {
    /// Queues one SIP message for the socket: in a WebSocket message on a
    /// WebSocket connection. False when the session refuses it.
    pub(super) fn queue_message(&mut self, msg: &[u8], scratch: &mut Vec<u8>) -> bool {
        if let Framing::Ws(_) = self.framing {
            scratch.clear();
            websocket::frame_message(msg, scratch);
            return self.queue(scratch);
        }
        self.queue(msg)
    }

    /// Queues bytes for the socket as they are (a pong, a handshake
    /// reply), through the TLS session when there is one. False when the
    /// session refuses them.
    pub(super) fn queue(&mut self, data: &[u8]) -> bool {
        queue_bytes(&mut self.tls, &mut self.queued, data)
    }
}

/// Queues bytes for the socket, through the TLS session when there is one
/// (the fields of a [`Conn`], for when its framing is borrowed).
pub(super) fn queue_bytes(
    tls: &mut Option<Box<Connection>>,
    queued: &mut Vec<u8>,
    data: &[u8],
) -> bool {
    match tls {
        None => {
            queued.extend_from_slice(data);
            true
        }
        Some(tls) => {
            if tls.writer().write_all(data).is_err() {
                return false;
            }
            drain_tls(tls, queued)
        }
    }
}

/// Moves what the TLS session wants to send into `queued`.
pub(super) fn drain_tls(tls: &mut Connection, queued: &mut Vec<u8>) -> bool {
    while tls.wants_write() {
        if tls.write_tls(queued).is_err() {
            return false;
        }
    }
    true
}

/// Feeds ciphertext read from the socket to a TLS session; the plaintext
/// goes to the framer, what the session answers (handshake) to `queued`.
/// A protocol error ends the connection (its alert is queued first).
pub(super) fn open_tls(
    tls: &mut Connection,
    mut cipher: &[u8],
    plain: &mut [u8],
    framing: &mut Framing,
    queued: &mut Vec<u8>,
    now_ms: u64,
) -> Result<(), CloseReason> {
    while !cipher.is_empty() {
        if tls.read_tls(&mut cipher).is_err() {
            return Err(CloseReason::Framing);
        }
        if let Err(e) = tls.process_new_packets() {
            tracing::debug!("tls: {e}");
            drain_tls(tls, queued);
            return Err(CloseReason::Framing);
        }
        loop {
            match tls.reader().read(plain) {
                Ok(0) => return Err(CloseReason::Peer),
                Ok(n) => framing.push(now_ms, &plain[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Err(CloseReason::Framing),
            }
        }
    }
    if drain_tls(tls, queued) {
        Ok(())
    } else {
        Err(CloseReason::Peer)
    }
}
