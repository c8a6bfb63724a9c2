//! One stream connection: its socket, its TLS session (server side when
//! accepted, client side when dialled), framer and write queue, and the
//! two steps of TLS as sans-IO (ciphertext in, plaintext to the framer;
//! what the session writes to the queue).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use rustls::Connection;

use crate::transport::{Framer, StreamKind};

use super::CloseReason;

pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    /// The TLS session of a TLS connection.
    pub(super) tls: Option<Box<Connection>>,
    pub(super) framer: Framer,
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
    pub(super) fn kind(&self) -> StreamKind {
        if self.tls.is_some() {
            StreamKind::Tls
        } else {
            StreamKind::Tcp
        }
    }

    /// Queues one message (or a pong) for the socket, through the TLS
    /// session when there is one. False when the session refuses it.
    pub(super) fn queue(&mut self, data: &[u8]) -> bool {
        match &mut self.tls {
            None => {
                self.queued.extend_from_slice(data);
                true
            }
            Some(tls) => {
                if tls.writer().write_all(data).is_err() {
                    return false;
                }
                drain_tls(tls, &mut self.queued)
            }
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
    framer: &mut Framer,
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
                Ok(n) => framer.push(now_ms, &plain[..n]),
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
