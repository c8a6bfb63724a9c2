//! Media on the harness's network: the virtual socket table that answers
//! the logic's [`SocketOp`]s as the runtime's `media_io` does (bind, reserve,
//! read, close; a port bound twice is refused as the kernel would), socket
//! faults on request, and the G.711 RTP a UA sends and records
//! ([`RtpStream`], [`RtpPacket`]).

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};

use crate::media::relay::{MediaInput, SocketOp};
use crate::media::rtp;

/// Payload bytes of one 20 ms G.711 packet (8000 Hz).
pub(crate) const G711_PAYLOAD: usize = 160;
/// Packet interval of the UAs' streams, ms.
pub(crate) const PTIME_MS: u64 = 20;

/// Which socket operations a [`SocketFault`] refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// `Bind` (a session's pair taken from the pool).
    Bind,
    /// `Reserve` (a spare pair).
    Reserve,
    /// `Read` (a spare pair taken by a session).
    Read,
}

impl OpKind {
    fn matches(self, op: &SocketOp) -> bool {
        matches!(
            (self, op),
            (OpKind::Bind, SocketOp::Bind { .. })
                | (OpKind::Reserve, SocketOp::Reserve { .. })
                | (OpKind::Read, SocketOp::Read { .. })
        )
    }
}

/// A rule: the next `left` operations of a kind fail (`AddrInUse` for a
/// bind: another program holds the port).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SocketFault {
    pub(crate) kind: OpKind,
    pub(crate) left: u32,
}

/// Where a socket stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Socket {
    /// Bound, not read (a spare): what arrives for it is not relayed.
    Held,
    /// Bound and read: what arrives goes to `on_media`.
    Reading,
}

/// The media sockets of the logic under test, by port: what the runtime's
/// `MediaIo` would hold, without a kernel.
#[derive(Debug)]
pub(crate) struct Sockets {
    /// The logic's IP (where binds may go; unspecified is accepted too).
    ip: IpAddr,
    open: BTreeMap<u16, Socket>,
    faults: Vec<SocketFault>,
    /// Every operation and its answer, in order.
    pub(crate) log: Vec<(SocketOp, MediaInput)>,
}

impl Sockets {
    pub(crate) fn new(ip: IpAddr) -> Sockets {
        Sockets {
            ip,
            open: BTreeMap::new(),
            faults: Vec::new(),
            log: Vec::new(),
        }
    }

    pub(crate) fn fault(&mut self, fault: SocketFault) {
        self.faults.push(fault);
    }

    /// The socket of `port`, if any.
    pub(crate) fn get(&self, port: u16) -> Option<Socket> {
        self.open.get(&port).copied()
    }

    /// Ports with a socket, and how each stands.
    pub(crate) fn open(&self) -> &BTreeMap<u16, Socket> {
        &self.open
    }

    /// Whether a fault rule refuses `op` (and counts it).
    fn refused(&mut self, op: &SocketOp) -> bool {
        let Some(rule) = self
            .faults
            .iter_mut()
            .find(|r| r.left > 0 && r.kind.matches(op))
        else {
            return false;
        };
        rule.left -= 1;
        true
    }

    fn bind(&mut self, port: u16, addr: SocketAddr, state: Socket, refused: bool) -> MediaInput {
        let error = if addr.port() != port {
            Some(ErrorKind::InvalidInput)
        } else if addr.ip() != self.ip && !addr.ip().is_unspecified() {
            Some(ErrorKind::AddrNotAvailable)
        } else if refused || self.open.contains_key(&port) {
            Some(ErrorKind::AddrInUse)
        } else {
            None
        };
        match error {
            Some(error) => MediaInput::BindFailed { port, error },
            None => {
                self.open.insert(port, state);
                MediaInput::Bound { port }
            }
        }
    }

    /// Does what the logic asked, as `MediaIo::apply` does; the answer goes
    /// back to the logic.
    pub(crate) fn apply(&mut self, op: SocketOp) -> MediaInput {
        let refused = self.refused(&op);
        let answer = match op {
            SocketOp::Bind { port, addr } => self.bind(port, addr, Socket::Reading, refused),
            SocketOp::Reserve { port, addr } => self.bind(port, addr, Socket::Held, refused),
            SocketOp::Read { port } => match self.open.get_mut(&port) {
                None => MediaInput::BindFailed {
                    port,
                    error: ErrorKind::NotFound,
                },
                Some(_) if refused => {
                    // The runtime drops a socket it could not start reading.
                    self.open.remove(&port);
                    MediaInput::BindFailed {
                        port,
                        error: ErrorKind::Other,
                    }
                }
                Some(state) => {
                    *state = Socket::Reading;
                    MediaInput::Bound { port }
                }
            },
            SocketOp::Close { port } => {
                self.open.remove(&port);
                MediaInput::Closed { port }
            }
            SocketOp::Send { port, .. } => MediaInput::Sent { port },
        };
        self.log.push((op, answer));
        answer
    }
}

/// What the harness did with media datagrams (what `media_io` counts, and
/// what the kernel would have dropped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MediaCounts {
    /// Given to `on_media`.
    pub(crate) received: u64,
    /// Sent on by the logic.
    pub(crate) relayed: u64,
    /// For a port without a socket (ICMP unreachable in real life).
    pub(crate) unreachable: u64,
    /// For a bound socket nobody reads (a spare).
    pub(crate) unread: u64,
    /// Forwarded out of a port without a socket.
    pub(crate) no_socket: u64,
}

/// One RTP packet a UA sent or received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RtpPacket {
    pub(crate) at_ms: u64,
    /// The other end (destination when sent, source when received).
    pub(crate) peer: SocketAddr,
    pub(crate) marker: bool,
    pub(crate) payload_type: u8,
    pub(crate) seq: u16,
    pub(crate) timestamp: u32,
    pub(crate) ssrc: u32,
    pub(crate) payload: Vec<u8>,
}

impl RtpPacket {
    /// The sequence number its sender wrote into the payload (the relay may
    /// renumber the header's).
    pub(crate) fn sent_seq(&self) -> Option<u16> {
        Some(u16::from_be_bytes([
            *self.payload.first()?,
            *self.payload.get(1)?,
        ]))
    }
}

/// A G.711 payload that says who sent it and which packet it was: the
/// original seq, the SSRC, then bytes derived from both.
pub(crate) fn g711_payload(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(G711_PAYLOAD);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    let mix = ssrc.to_be_bytes()[3] ^ seq.to_be_bytes()[1];
    p.extend((p.len()..G711_PAYLOAD).map(|i| mix.wrapping_add(i as u8)));
    p
}

/// An RTP datagram: version 2, no padding, extension or CSRC.
pub(crate) fn rtp_datagram(
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut d = Vec::with_capacity(12 + payload.len());
    d.push(0x80);
    d.push((u8::from(marker) << 7) | (pt & 0x7f));
    d.extend_from_slice(&seq.to_be_bytes());
    d.extend_from_slice(&ts.to_be_bytes());
    d.extend_from_slice(&ssrc.to_be_bytes());
    d.extend_from_slice(payload);
    d
}

/// A datagram a UA received on its RTP port, if it parses as RTP.
pub(crate) fn parse_received(at_ms: u64, from: SocketAddr, data: &[u8]) -> Option<RtpPacket> {
    let h = rtp::parse_rtp(data)?;
    Some(RtpPacket {
        at_ms,
        peer: from,
        marker: h.marker,
        payload_type: h.payload_type,
        seq: h.seq,
        timestamp: h.timestamp,
        ssrc: h.ssrc,
        payload: data
            .get(h.payload_offset..h.payload_offset + h.payload_len)?
            .to_vec(),
    })
}

/// A UA's outgoing PCMU stream: one packet every [`PTIME_MS`] while on,
/// seq +1 and timestamp +160 a packet (the clock runs on while paused).
#[derive(Debug)]
pub(crate) struct RtpStream {
    pub(crate) ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// When the next packet leaves (None: not sending).
    next_at: Option<u64>,
    pub(crate) sent: Vec<RtpPacket>,
    pub(crate) received: Vec<RtpPacket>,
    /// Datagrams on the RTP port that were not RTP.
    pub(crate) garbage: usize,
}

impl RtpStream {
    pub(crate) fn new(ssrc: u32) -> RtpStream {
        RtpStream {
            ssrc,
            // Arbitrary starting points, as RFC 3550 wants.
            seq: (ssrc >> 3) as u16,
            timestamp: ssrc.rotate_left(7),
            next_at: None,
            sent: Vec::new(),
            received: Vec::new(),
            garbage: 0,
        }
    }

    /// Sends from `now_ms` on (the first packet at once).
    pub(crate) fn start(&mut self, now_ms: u64) {
        self.next_at.get_or_insert(now_ms);
    }

    pub(crate) fn stop(&mut self) {
        self.next_at = None;
    }

    pub(crate) fn poll_timeout(&self) -> Option<u64> {
        self.next_at
    }

    /// The packets due by `now_ms`, for `dest` (None: nowhere to send yet,
    /// the stream's clock runs on and nothing leaves).
    pub(crate) fn due(&mut self, now_ms: u64, dest: Option<SocketAddr>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(at) = self.next_at.filter(|&at| at <= now_ms) {
            self.next_at = Some(at + PTIME_MS);
            let (seq, ts) = (self.seq, self.timestamp);
            self.seq = seq.wrapping_add(1);
            self.timestamp = ts.wrapping_add(G711_PAYLOAD as u32);
            let Some(dest) = dest else { continue };
            let payload = g711_payload(self.ssrc, seq);
            out.push(rtp_datagram(0, false, seq, ts, self.ssrc, &payload));
            self.sent.push(RtpPacket {
                at_ms: at,
                peer: dest,
                marker: false,
                payload_type: 0,
                seq,
                timestamp: ts,
                ssrc: self.ssrc,
                payload,
            });
        }
        out
    }

    /// A datagram on the RTP port.
    pub(crate) fn on_datagram(&mut self, now_ms: u64, from: SocketAddr, data: &[u8]) {
        match parse_received(now_ms, from, data) {
            Some(p) => self.received.push(p),
            None => self.garbage += 1,
        }
    }
}
