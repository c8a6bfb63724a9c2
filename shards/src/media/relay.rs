//! The RTP relay of one shard (sans-IO but for binding its sockets): one
//! session per proxied call, two sides each (caller = `audio-0`, callee =
//! `audio-1`), each side with its own RTP/RTCP port pair from the shard's
//! [`PortPool`]. A packet that arrives on one side's port is checked against
//! what that side signalled (symmetric latching with a short probation),
//! counted, optionally recorded, and forwarded out of the other side's port.
//!
//! The shard shell owns the glommio sockets: it takes the sockets bound here
//! from [`MediaRelay::take_opened`], feeds every datagram to
//! [`MediaRelay::on_packet`] and sends what that returns; ports of ended
//! sessions come back through [`MediaRelay::take_closed`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

use serde_json::{json, Value};

use super::ports::PortPool;
use super::rtp;
use super::sdp::AudioStream;
use super::stats::{Renumber, StreamStats};
use crate::cdr::RecorderEntry;
use crate::recording::{recording_path, Channel, Codec, RecCmd, Recorder};

/// A source may re-latch this long after a side's first packet (ms).
pub const PROBATION_MS: u64 = 1_000;
/// Pairs found held by another program that one session setup skips before
/// it gives up (each costs two failed binds).
const MAX_BUSY_TRIES: usize = 16;

/// One side of a call's media.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Caller = 0,
    Callee = 1,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }

    /// The track id of the REST API (`audio-0` caller, `audio-1` callee).
    pub fn track_id(self) -> &'static str {
        match self {
            Side::Caller => "audio-0",
            Side::Callee => "audio-1",
        }
    }

    pub fn from_track(track: &str) -> Option<Side> {
        match track {
            "audio-0" => Some(Side::Caller),
            "audio-1" => Some(Side::Callee),
            _ => None,
        }
    }
}

/// How the relay of every shard is set up (from `[proxy]`, `[media]`,
/// `[recording]`).
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Where RTP sockets bind.
    pub bind_ip: IpAddr,
    /// What we put in SDP (`external_ip`, else the SIP address).
    pub advertise: IpAddr,
    pub port_start: u16,
    pub port_end: u16,
    /// RTP silence on an answered call before it is hung up, ms; 0 = never.
    pub rtp_timeout_ms: u64,
    /// Where recordings go (absolute, for the writer).
    pub recordings_dir: PathBuf,
    /// The same, as CDRs show it (relative to data_dir unless absolute).
    pub recordings_cdr_dir: PathBuf,
    /// The recording writer on the control core (None: recording off).
    pub recorder: Option<crossbeam_channel::Sender<RecCmd>>,
}

/// What a side signalled in its last SDP.
#[derive(Clone, Debug, Default)]
pub struct Signalled {
    pub rtp: Option<SocketAddr>,
    pub rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    pub hold: bool,
    /// (payload type, encoding name, clock rate).
    pub codecs: Vec<(u8, String, u32)>,
}

impl Signalled {
    /// The media description of one side's SDP.
    pub fn from_audio(a: &AudioStream) -> Signalled {
        let ip = a.conn.filter(|ip| !ip.is_unspecified());
        let rtp = ip
            .filter(|_| a.port != 0)
            .map(|ip| SocketAddr::new(ip, a.port));
        let rtcp = ip
            .filter(|_| a.port != 0)
            .map(|ip| SocketAddr::new(ip, a.rtcp_port.unwrap_or(a.port.saturating_add(1))));
        let codecs = a
            .payload_types
            .iter()
            .filter_map(|pt| {
                a.codec_of(*pt)
                    .map(|(name, clock)| (*pt, name.to_string(), clock))
            })
            .collect();
        Signalled {
            rtp,
            rtcp,
            rtcp_mux: a.rtcp_mux,
            hold: a.is_hold(),
            codecs,
        }
    }
}

/// Where a packet goes: out of `fd` (a socket of this relay) to `dest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub fd: RawFd,
    pub dest: SocketAddr,
}

/// A socket the shell must start reading.
pub struct Opened {
    pub port: u16,
    pub socket: UdpSocket,
}

/// Why a session could not be made.
#[derive(Debug, PartialEq, Eq)]
pub enum RelayError {
    /// Every port of this shard's share is in use.
    NoPorts,
}

/// Counters of one shard's relay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayCounters {
    pub forwarded: u64,
    /// Packets from a source that is not the latched one, or not RTP.
    pub rejected: u64,
    /// Packets not forwarded because their track is muted.
    pub muted: u64,
    /// Packets with nowhere to go (the other side signalled nothing yet).
    pub no_destination: u64,
    /// Packets lost before they reached us (sequence gaps) in ended sessions.
    pub lost: u64,
}

struct SideState {
    port: u16,
    rtp_fd: RawFd,
    rtcp_fd: RawFd,
    sig: Signalled,
    /// Accept packets from any IP (the side is behind NAT).
    nat: bool,
    latched_rtp: Option<SocketAddr>,
    latched_rtcp: Option<SocketAddr>,
    /// Mono ms after which the latch is fixed.
    probation_until: Option<u64>,
    muted: bool,
    renumber: Renumber,
    stats: StreamStats,
    rtcp_packets: u64,
}

impl SideState {
    fn new(port: u16, rtp_fd: RawFd, rtcp_fd: RawFd) -> SideState {
        SideState {
            port,
            rtp_fd,
            rtcp_fd,
            sig: Signalled::default(),
            nat: false,
            latched_rtp: None,
            latched_rtcp: None,
            probation_until: None,
            muted: false,
            renumber: Renumber::default(),
            stats: StreamStats::default(),
            rtcp_packets: 0,
        }
    }

    /// May a packet from `src` come from this side? Latches when it may.
    fn admit(&mut self, now_ms: u64, src: SocketAddr, rtcp: bool) -> bool {
        let ip_ok = self.nat
            || match (rtcp, &self.sig) {
                (false, s) => s.rtp.is_none_or(|a| a.ip() == src.ip()),
                (true, s) => s.rtcp.or(s.rtp).is_none_or(|a| a.ip() == src.ip()),
            };
        let latch = if rtcp {
            &mut self.latched_rtcp
        } else {
            &mut self.latched_rtp
        };
        if *latch == Some(src) {
            return true;
        }
        let probation = *self.probation_until.get_or_insert(now_ms + PROBATION_MS);
        if !ip_ok || (latch.is_some() && now_ms > probation) {
            return false;
        }
        *latch = Some(src);
        true
    }

    /// Where RTP (or RTCP) for this side goes.
    fn rtp_dest(&self) -> Option<SocketAddr> {
        if self.sig.rtp.is_none() && self.latched_rtp.is_none() {
            return None;
        }
        self.latched_rtp.or(self.sig.rtp)
    }

    fn rtcp_dest(&self) -> Option<(RawFd, SocketAddr)> {
        if self.sig.rtcp_mux {
            return self.rtp_dest().map(|d| (self.rtp_fd, d));
        }
        let dest = self.latched_rtcp.or(self.sig.rtcp).or_else(|| {
            self.latched_rtp
                .map(|a| SocketAddr::new(a.ip(), a.port().saturating_add(1)))
        })?;
        Some((self.rtcp_fd, dest))
    }

    fn clock_of(&self, pt: u8) -> (Option<Codec>, u32) {
        match self.sig.codecs.iter().find(|(p, _, _)| *p == pt) {
            Some((_, name, clock)) => (Codec::from_name(name), *clock),
            None => match pt {
                0 => (Some(Codec::Pcmu), 8000),
                8 => (Some(Codec::Pcma), 8000),
                _ => (None, 8000),
            },
        }
    }
}

struct Recording {
    id: u64,
    recorder: Recorder,
    cdr_path: PathBuf,
    bytes: u64,
}

struct Session {
    call_id: String,
    sides: [SideState; 2],
    answered: bool,
    last_rtp_ms: u64,
    record: bool,
    recording: Option<Recording>,
}

/// What a session leaves for its CDR.
#[derive(Debug, Default)]
pub struct MediaReport {
    /// `metadata.rtp`: per-track statistics.
    pub stats: Value,
    pub recorder: Vec<RecorderEntry>,
}

/// The relay of one shard.
pub struct MediaRelay {
    cfg: RelayConfig,
    pool: PortPool,
    sessions: HashMap<u64, Session>,
    /// Session and side of each port, indexed by `port - port_start` (no
    /// hashing on the packet path).
    by_port: Vec<Option<(u64, Side)>>,
    opened: Vec<Opened>,
    /// Ports whose sockets the shell must close, in pairs (RTP, RTCP).
    closed: Vec<u16>,
    next_recording: u64,
    shard: usize,
    pub counters: RelayCounters,
}

impl MediaRelay {
    pub fn new(cfg: RelayConfig, shard: usize, shards: usize) -> MediaRelay {
        let pool = PortPool::for_shard(cfg.port_start, cfg.port_end, shard, shards);
        MediaRelay {
            cfg,
            pool,
            sessions: HashMap::new(),
            by_port: Vec::new(),
            opened: Vec::new(),
            closed: Vec::new(),
            next_recording: 1,
            shard,
            counters: RelayCounters::default(),
        }
    }

    /// The address we advertise in SDP.
    pub fn advertise(&self) -> IpAddr {
        self.cfg.advertise
    }

    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Binds an RTP/RTCP pair from the pool. A pair another program holds
    /// goes to the back of the pool; after `MAX_BUSY_TRIES` such pairs the
    /// call gets no media rather than a scan of the whole range.
    fn bind_pair(&mut self) -> Result<(u16, RawFd, RawFd), RelayError> {
        for _ in 0..MAX_BUSY_TRIES {
            let port = self.pool.take().ok_or(RelayError::NoPorts)?;
            let rtp = UdpSocket::bind(SocketAddr::new(self.cfg.bind_ip, port));
            let rtcp = UdpSocket::bind(SocketAddr::new(self.cfg.bind_ip, port + 1));
            match (rtp, rtcp) {
                (Ok(rtp), Ok(rtcp)) => {
                    let fds = (rtp.as_raw_fd(), rtcp.as_raw_fd());
                    self.opened.push(Opened { port, socket: rtp });
                    self.opened.push(Opened {
                        port: port + 1,
                        socket: rtcp,
                    });
                    return Ok((port, fds.0, fds.1));
                }
                (rtp, rtcp) => {
                    tracing::debug!(
                        shard = self.shard,
                        port,
                        "media port pair in use by another program: {:?} {:?}",
                        rtp.err(),
                        rtcp.err()
                    );
                    // Try it again later, behind every other pair.
                    self.pool.give_back(port);
                }
            }
        }
        tracing::warn!(
            shard = self.shard,
            "{MAX_BUSY_TRIES} media port pairs in a row are held by other programs"
        );
        Err(RelayError::NoPorts)
    }

    /// A session for call `id`: two port pairs. Returns (caller-side port,
    /// callee-side port): the caller is sent SDP with the first, the callee
    /// with the second.
    pub fn create(
        &mut self,
        id: u64,
        call_id: &str,
        record: bool,
    ) -> Result<(u16, u16), RelayError> {
        let a = self.bind_pair()?;
        let b = match self.bind_pair() {
            Ok(b) => b,
            Err(e) => {
                self.release(a.0);
                return Err(e);
            }
        };
        for (port, side) in [(a.0, Side::Caller), (b.0, Side::Callee)] {
            self.set_port(port, Some((id, side)));
            self.set_port(port + 1, Some((id, side)));
        }
        self.sessions.insert(
            id,
            Session {
                call_id: call_id.to_string(),
                sides: [SideState::new(a.0, a.1, a.2), SideState::new(b.0, b.1, b.2)],
                answered: false,
                last_rtp_ms: 0,
                record: record && self.cfg.recorder.is_some(),
                recording: None,
            },
        );
        Ok((a.0, b.0))
    }

    fn release(&mut self, port: u16) {
        self.set_port(port, None);
        self.set_port(port + 1, None);
        // Sockets the shell has not taken yet are closed here and now; the
        // others when the shell takes `closed`. Either way the pair goes back
        // to the pool only once both sockets are gone, so binding it again
        // never collides with our own socket.
        let before = self.opened.len();
        self.opened.retain(|o| o.port != port && o.port != port + 1);
        if self.opened.len() == before {
            self.closed.push(port);
            self.closed.push(port + 1);
        } else {
            self.pool.give_back(port);
        }
    }

    fn set_port(&mut self, port: u16, owner: Option<(u64, Side)>) {
        let slot = usize::from(port.wrapping_sub(self.cfg.port_start));
        if slot >= self.by_port.len() {
            self.by_port.resize(slot + 1, None);
        }
        self.by_port[slot] = owner;
    }

    /// The port our SDP to `side` carries.
    pub fn port_of(&self, id: u64, side: Side) -> Option<u16> {
        self.sessions.get(&id).map(|s| s.sides[side as usize].port)
    }

    /// `side` sent an SDP (offer or answer). `nat`: accept its packets from
    /// any IP (None: as before). A new address resets the latch.
    pub fn signalled(&mut self, id: u64, side: Side, sig: Signalled, nat: Option<bool>) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let st = &mut s.sides[side as usize];
        if st.sig.rtp != sig.rtp || st.sig.rtcp != sig.rtcp {
            st.latched_rtp = None;
            st.latched_rtcp = None;
            st.probation_until = None;
        }
        st.sig = sig;
        if let Some(nat) = nat {
            st.nat = nat;
        }
    }

    /// The call was answered: the RTP timeout runs from now.
    pub fn answered(&mut self, id: u64, now_ms: u64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.answered = true;
            s.last_rtp_ms = now_ms;
        }
    }

    /// Mutes (or unmutes) what `side` sends. False when there is no such session.
    pub fn set_muted(&mut self, id: u64, side: Side, muted: bool) -> bool {
        match self.sessions.get_mut(&id) {
            Some(s) => {
                s.sides[side as usize].muted = muted;
                true
            }
            None => false,
        }
    }

    /// One datagram on one of our ports. Rewrites it in place when needed
    /// and says where it goes.
    pub fn on_packet(
        &mut self,
        now_ms: u64,
        port: u16,
        src: SocketAddr,
        packet: &mut [u8],
    ) -> Option<Forward> {
        let slot = usize::from(port.wrapping_sub(self.cfg.port_start));
        let Some(&Some((id, side))) = self.by_port.get(slot) else {
            self.counters.rejected += 1;
            return None;
        };
        let Some(s) = self.sessions.get_mut(&id) else {
            self.counters.rejected += 1;
            return None;
        };
        let rtcp_port = port % 2 == 1;
        let (from, to) = match side {
            Side::Caller => {
                let [a, b] = &mut s.sides;
                (a, b)
            }
            Side::Callee => {
                let [a, b] = &mut s.sides;
                (b, a)
            }
        };
        let is_rtcp = rtcp_port || rtp::is_rtcp(packet);
        if !from.admit(now_ms, src, is_rtcp) {
            self.counters.rejected += 1;
            return None;
        }
        if is_rtcp {
            from.rtcp_packets += 1;
            let Some((fd, dest)) = to.rtcp_dest() else {
                self.counters.no_destination += 1;
                return None;
            };
            self.counters.forwarded += 1;
            return Some(Forward { fd, dest });
        }
        let Some(hdr) = rtp::parse_rtp(packet) else {
            self.counters.rejected += 1;
            return None;
        };
        let (codec, clock) = from.clock_of(hdr.payload_type);
        from.stats.on_packet(&hdr, now_ms, clock, packet.len());
        s.last_rtp_ms = now_ms;
        // Muted, or a late packet from inside a gap the mute made (it has
        // no free output seq): not forwarded.
        if from.muted || from.renumber.is_stale(hdr.seq) {
            from.renumber.drop_packet(hdr.seq);
            self.counters.muted += 1;
            return None;
        }
        let Some(dest) = to.rtp_dest() else {
            from.renumber.drop_packet(hdr.seq);
            self.counters.no_destination += 1;
            return None;
        };
        let (seq, resumed) = from.renumber.forward(hdr.seq);
        if seq != hdr.seq {
            rtp::set_seq(packet, seq);
        }
        if resumed {
            rtp::set_marker(packet, true);
        }
        let fd = to.rtp_fd;
        if s.record {
            if let Some(codec) = codec {
                let payload = packet
                    .get(hdr.payload_offset..hdr.payload_offset + hdr.payload_len)
                    .unwrap_or(&[]);
                let channel = match side {
                    Side::Caller => Channel::Left,
                    Side::Callee => Channel::Right,
                };
                let rec = s.recording.get_or_insert_with(|| {
                    let rec_id = self.next_recording;
                    self.next_recording += 1;
                    let unix_ms = crate::time::Now::read().unix_ms;
                    let abs = recording_path(&self.cfg.recordings_dir, unix_ms, &s.call_id);
                    let rel = recording_path(&self.cfg.recordings_cdr_dir, unix_ms, &s.call_id);
                    if let Some(tx) = &self.cfg.recorder {
                        let _ = tx.send(RecCmd::Open {
                            id: rec_id,
                            path: abs,
                        });
                    }
                    Recording {
                        id: rec_id,
                        recorder: Recorder::new(now_ms),
                        cdr_path: rel,
                        bytes: 0,
                    }
                });
                rec.recorder.on_packet(
                    channel,
                    now_ms,
                    codec,
                    clock,
                    hdr.seq,
                    hdr.timestamp,
                    payload,
                );
            }
        }
        self.counters.forwarded += 1;
        Some(Forward { fd, dest })
    }

    /// Periodic work: recordings flushed to the writer. Returns the calls
    /// whose media timed out (answered, not on hold, no RTP from either side
    /// for `rtp_timeout`).
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<u64> {
        let mut timed_out = Vec::new();
        for (id, s) in &mut self.sessions {
            if let Some(rec) = &mut s.recording {
                if let Some(pcm) = rec.recorder.take_ready(now_ms) {
                    rec.bytes += pcm.len() as u64;
                    if let Some(tx) = &self.cfg.recorder {
                        let _ = tx.send(RecCmd::Append { id: rec.id, pcm });
                    }
                }
            }
            let on_hold = s.sides.iter().any(|side| side.sig.hold);
            if on_hold {
                // Silence is expected on hold; after resume the timeout
                // starts over.
                s.last_rtp_ms = now_ms;
            }
            if self.cfg.rtp_timeout_ms > 0
                && s.answered
                && !on_hold
                && now_ms.saturating_sub(s.last_rtp_ms) >= self.cfg.rtp_timeout_ms
            {
                timed_out.push(*id);
            }
        }
        timed_out
    }

    /// Ends a session: its ports go back, its recording is closed. The
    /// report goes into the call's CDR.
    pub fn close(&mut self, id: u64, now_ms: u64) -> Option<MediaReport> {
        let mut s = self.sessions.remove(&id)?;
        self.counters.lost += s.sides.iter().map(|side| side.stats.lost).sum::<u64>();
        for side in &s.sides {
            let port = side.port;
            self.release(port);
        }
        let mut recorder = Vec::new();
        if let Some(rec) = &mut s.recording {
            let pcm = rec.recorder.finish(now_ms);
            rec.bytes += pcm.len() as u64;
            if let Some(tx) = &self.cfg.recorder {
                if !pcm.is_empty() {
                    let _ = tx.send(RecCmd::Append { id: rec.id, pcm });
                }
                let _ = tx.send(RecCmd::Close { id: rec.id });
            }
            recorder.push(RecorderEntry {
                track_id: "mixed".into(),
                path: rec.cdr_path.to_string_lossy().into_owned(),
                size: 44 + rec.bytes,
            });
        }
        let track = |side: &SideState, id: Side| {
            json!({
                "trackId": id.track_id(),
                "rtp": side.stats.summary(),
                "rtcpPackets": side.rtcp_packets,
                "latched": side.latched_rtp.map(|a| a.to_string()),
            })
        };
        Some(MediaReport {
            stats: json!([
                track(&s.sides[0], Side::Caller),
                track(&s.sides[1], Side::Callee)
            ]),
            recorder,
        })
    }

    /// Sockets bound since the last call, for the shell to read.
    pub fn take_opened(&mut self) -> Vec<Opened> {
        std::mem::take(&mut self.opened)
    }

    /// Ports whose sockets the shell must close (now: their pairs are
    /// free for new sessions from here on).
    pub fn take_closed(&mut self) -> Vec<u16> {
        let closed = std::mem::take(&mut self.closed);
        for pair in closed.chunks(2) {
            self.pool.give_back(pair[0]);
        }
        closed
    }

    /// Are there sockets to open or close?
    pub fn has_changes(&self) -> bool {
        !self.opened.is_empty() || !self.closed.is_empty()
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
