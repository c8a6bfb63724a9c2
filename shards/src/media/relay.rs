//! The RTP relay of one shard, sans-IO: one session per proxied call, two
//! sides each (caller = `audio-0`, callee = `audio-1`), each side with its
//! own RTP/RTCP port pair from the shard's [`PortPool`], drawn at random. A packet that arrives on one side's port is
//! checked against what that side signalled, counted, optionally recorded,
//! and forwarded out of the other side's port.
//!
//! Who may send for a side (the "RTP bleed" class of attacks): only its
//! expected IP, the address its SDP names, or its SIP source when that SDP
//! address is private or missing ([`expected_ip`]). Packets from there are
//! relayed; the address media is sent back to is learnt (latched) only
//! after [`LATCH_PACKETS`] consecutive RTP packets of one SSRC from one
//! address, and once latched it moves only when the side renegotiates
//! ([`SdpOrigin::Renegotiation`]). Everything else is dropped and counted
//! by reason in [`RelayCounters`]; only datagrams that parse as RTP or
//! RTCP are relayed at all.
//!
//! The relay owns no socket and reads no clock: the runtime (`media_io`)
//! owns every socket and fd, and the relay only names ports. Poll order:
//!
//! 1. The engine drives sessions ([`MediaRelay::create`],
//!    [`MediaRelay::signalled`], [`MediaRelay::close`], ...,
//!    [`MediaRelay::on_tick`]); each queues outputs.
//! 2. After every turn of the logic, and before that turn's SIP datagrams
//!    leave, the runtime drains [`MediaRelay::poll_output`] until `None`:
//!    it performs each [`SocketOp`] at once and answers it with
//!    [`MediaRelay::handle`] (`Bound`, `BindFailed`, `Closed`); the glue
//!    sends [`MediaOutput::Recording`] to the recording writer and hangs up
//!    the call of a [`MediaOutput::SessionFailed`]. Answers may queue more
//!    outputs, so the runtime drains until `None`.
//! 3. Every datagram on a media port goes through [`MediaRelay::on_packet`]
//!    (the hot path), which says out of which of our ports and to where it
//!    goes ([`Forward`]); the runtime maps that port to its socket and drops
//!    (and counts) a packet for a port that has no socket.
//!
//! Ports: the relay keeps `SPARE_PAIRS` pairs bound ahead of need
//! ([`SocketOp::Reserve`]: bound, not read, drawn at random like any pair).
//! A pair another program holds is found there, before any SDP names it:
//! it goes to the back of the pool and another is asked for (at most
//! `MAX_BUSY_TRIES` in a row until the next tick), so no call notices.
//! [`MediaRelay::create`] takes two pairs: spares when there are (their
//! sockets are then only to be read, [`SocketOp::Read`]), else from the
//! pool ([`SocketOp::Bind`], when a burst used the spares up); the SDP
//! written in the same turn already carries them. Should a bind or read
//! of a session's port fail after all, the runtime answers `BindFailed`:
//! the session is marked failed and [`MediaOutput::SessionFailed`] is
//! queued once (the glue hangs the call up with the reason "no media
//! port", so the call ends with a CDR like any other); its ports are
//! released when the engine closes the session, and the pair that failed
//! goes to the back of the pool like any released pair. Closing asks for
//! [`SocketOp::Close`]; a pair returns to the pool only once the runtime
//! answered `Closed` for each socket it had (at once for socket work never
//! taken), so the relay never asks for one of its own ports twice.
//!
//! Fast path ([`MediaRelay::set_fast_path`], the kernel's where it allows):
//! on each tick, a side whose stream is steady (latched, unmuted,
//! unrecorded, statistics and renumbering in step: `SideState::handover`)
//! is handed over, and what the forwarder relayed since is read into the
//! side's statistics and the session's last-RTP time. A packet of a
//! handed-over stream that reaches [`MediaRelay::on_packet`] (the forwarder
//! left it to us) takes the stream back first; so do mute, new SDP and
//! close. Foreign packets and RTCP do not.

use std::collections::VecDeque;

use crate::idmap::IdMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};

use super::bridge::SideCodec;
use super::fastpath::FastPath;
use super::ports::{PortPool, PortTable, SocketState};
use super::rtp;
use super::session::{Recording, Session};
use super::side::canonical;
pub use super::side::{
    expected_ip, from_expected_ip, is_private, media_address_allowed, SdpOrigin, Side, Signalled,
};
use super::side_state::{Admit, SideState};
use super::transcode::Transcoder;
use crate::cdr::RecorderEntry;
use crate::media::webrtc::Kind as WebRtcKind;
use crate::recording::{recording_path, RecCmd};
use crate::time::Now;

/// Consecutive RTP packets of one SSRC from one address before the relay
/// sends that side's media there.
pub const LATCH_PACKETS: u8 = 3;
/// Pairs kept bound ahead of need, so that a port another program holds is
/// found before any SDP names it.
const SPARE_PAIRS: usize = 2;
/// Spare pairs in a row found held by another program before the relay
/// stops asking for more until the next tick.
const MAX_BUSY_TRIES: u32 = 16;

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
    /// Is there a recording writer (false: recording off)? Recording
    /// commands leave as [`MediaOutput::Recording`].
    pub recording: bool,
}

/// Where a packet goes: out of our port `out_port` to `dest`, now `len`
/// bytes long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub out_port: u16,
    pub dest: SocketAddr,
    pub len: usize,
}

/// What the relay asks of the runtime's sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketOp {
    /// Bind a UDP socket on `addr` (whose port is `port`) and read it;
    /// answer [`MediaInput::Bound`] or [`MediaInput::BindFailed`].
    Bind { port: u16, addr: SocketAddr },
    /// Bind a UDP socket on `addr` but do not read it yet (a spare);
    /// answer [`MediaInput::Bound`] or [`MediaInput::BindFailed`].
    Reserve { port: u16, addr: SocketAddr },
    /// Start reading the socket reserved on `port`; answer
    /// [`MediaInput::Bound`], or [`MediaInput::BindFailed`] (the socket is
    /// then closed).
    Read { port: u16 },
    /// Close the socket of `port`; answer [`MediaInput::Closed`].
    Close { port: u16 },
    /// Send `data` out of the socket of `port` to `dest` (the relay's own
    /// datagrams: STUN answers and DTLS of a WebRTC side); answer
    /// [`MediaInput::Sent`].
    Send {
        port: u16,
        dest: SocketAddr,
        data: Vec<u8>,
    },
}

/// The runtime's answers to [`SocketOp`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaInput {
    Bound {
        port: u16,
    },
    BindFailed {
        port: u16,
        error: ErrorKind,
    },
    Closed {
        port: u16,
    },
    /// A [`SocketOp::Send`] was done (or its datagram lost, as any may be).
    Sent {
        port: u16,
    },
}

/// What the relay asks of the world, from [`MediaRelay::poll_output`].
#[derive(Debug, PartialEq, Eq)]
pub enum MediaOutput {
    /// For the runtime, which answers through [`MediaRelay::handle`].
    Socket(SocketOp),
    /// For the recording writer.
    Recording(RecCmd),
    /// Session `id` (call `call_id`) cannot carry media (it lost a port;
    /// SRTP that cannot be done): the call is to be hung up, `reason`
    /// going into its CDR.
    SessionFailed {
        id: u64,
        call_id: String,
        reason: &'static str,
    },
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
    /// Packets dropped: the sum of the reasons below and packets for no
    /// session.
    pub rejected: u64,
    /// From an IP that is not the side's expected one (spraying, bleed).
    pub foreign_source: u64,
    /// From the expected IP but another address than the latched one.
    pub unlatched_source: u64,
    /// Not RTP or RTCP.
    pub malformed: u64,
    /// Packets not forwarded because their track is muted.
    pub muted: u64,
    /// Packets with nowhere to go (the other side signalled nothing yet).
    pub no_destination: u64,
    /// Packets lost before they reached us (sequence gaps) in ended sessions.
    pub lost: u64,
    /// Of `forwarded`, the packets a [`FastPath`] relayed (counted when the
    /// relay reads its progress: on the tick, on taking a stream back).
    pub fast_forwarded: u64,
    /// From an SRTP side, not authentic or replayed.
    pub srtp_rejected: u64,
    /// In a transcoded stream, packets not of the transcoded codec (DTMF,
    /// comfort noise), not decodable, or over the rate a sender may have
    /// transcoded.
    pub untranscodable: u64,
}

/// What a session leaves for its CDR.
#[derive(Debug, Default)]
pub struct MediaReport {
    /// `metadata.rtp`: per-track statistics.
    pub stats: Value,
    pub recorder: Vec<RecorderEntry>,
}

/// Who uses a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortUse {
    /// A spare pair, bound ahead of need.
    Spare,
    /// A side of a session.
    Call(u64, Side),
}

/// The relay of one shard.
pub struct MediaRelay {
    cfg: RelayConfig,
    /// Who uses each port, and where its socket stands.
    ports: PortTable<PortUse>,
    /// Spare pairs whose sockets are bound (RTP ports), oldest first.
    spares: VecDeque<u16>,
    /// Spare pairs asked for and not answered yet.
    warming: usize,
    /// How many spares to keep ([`SPARE_PAIRS`]; tests set 0).
    spare_target: usize,
    /// Spare pairs in a row whose bind failed, since the last tick.
    busy_streak: u32,
    sessions: IdMap<u64, Session>,
    out: VecDeque<MediaOutput>,
    next_recording: u64,
    shard: usize,
    /// Where steady streams are relayed without us (the kernel), if anywhere.
    fast: Option<Box<dyn FastPath>>,
    /// Makes our SRTP keys and ICE credentials (a CSPRNG seeded from the
    /// relay's seed).
    keys: ChaCha20Rng,
    /// Our DTLS certificate for WebRTC sides, made on first use.
    identity: Option<std::sync::Arc<crate::media::webrtc::Identity>>,
    pub counters: RelayCounters,
}

impl MediaRelay {
    /// The relay of shard `shard`; `seed` (from the OS) drives the port draws.
    pub fn new(cfg: RelayConfig, shard: usize, shards: usize, seed: [u8; 32]) -> MediaRelay {
        let pool = PortPool::for_shard(cfg.port_start, cfg.port_end, shard, shards, seed);
        MediaRelay {
            ports: PortTable::new(pool, cfg.port_start),
            spares: VecDeque::new(),
            warming: 0,
            spare_target: SPARE_PAIRS,
            busy_streak: 0,
            cfg,
            sessions: IdMap::default(),
            out: VecDeque::new(),
            next_recording: 1,
            shard,
            fast: None,
            keys: ChaCha20Rng::from_seed(key_seed(&seed)),
            identity: None,
            counters: RelayCounters::default(),
        }
    }

    /// Steady streams are handed to `fast` from the next tick on.
    pub fn set_fast_path(&mut self, fast: Box<dyn FastPath>) {
        self.fast = Some(fast);
    }

    /// The address we advertise in SDP.
    pub fn advertise(&self) -> IpAddr {
        self.cfg.advertise
    }

    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// A session for call `id`: two port pairs, whose sockets the runtime
    /// is asked to bind. Returns (caller-side port, callee-side port): the
    /// caller is sent SDP with the first, the callee with the second.
    pub fn create(
        &mut self,
        id: u64,
        call_id: &str,
        record: bool,
    ) -> Result<(u16, u16), RelayError> {
        let a = self
            .take_for(PortUse::Call(id, Side::Caller))
            .ok_or(RelayError::NoPorts)?;
        let Some(b) = self.take_for(PortUse::Call(id, Side::Callee)) else {
            self.release(a);
            return Err(RelayError::NoPorts);
        };
        self.sessions.insert(
            id,
            Session {
                call_id: call_id.to_string(),
                sides: [SideState::new(a), SideState::new(b)],
                answered: false,
                last_rtp_ms: 0,
                record: record && self.cfg.recording,
                recording: None,
                failed: false,
            },
        );
        Ok((a, b))
    }

    /// A pair for `user`: a spare when there is one (its sockets are bound
    /// already: they are only to be read), else one from the pool, to be
    /// bound.
    fn take_for(&mut self, user: PortUse) -> Option<u16> {
        if let Some(port) = self.spares.pop_front() {
            self.ports.assign(port, user);
            for port in [port, port + 1] {
                self.out
                    .push_back(MediaOutput::Socket(SocketOp::Read { port }));
            }
            return Some(port);
        }
        let port = self.ports.take_pair(user, false)?;
        for port in [port, port + 1] {
            let addr = SocketAddr::new(self.cfg.bind_ip, port);
            self.out
                .push_back(MediaOutput::Socket(SocketOp::Bind { port, addr }));
        }
        Some(port)
    }

    /// Asks for spare pairs up to the target, unless too many in a row
    /// were held by other programs since the last tick.
    fn top_up(&mut self) {
        while self.spares.len() + self.warming < self.spare_target
            && self.busy_streak < MAX_BUSY_TRIES
        {
            let Some(port) = self.ports.take_pair(PortUse::Spare, true) else {
                return;
            };
            self.warming += 1;
            for port in [port, port + 1] {
                let addr = SocketAddr::new(self.cfg.bind_ip, port);
                self.out
                    .push_back(MediaOutput::Socket(SocketOp::Reserve { port, addr }));
            }
        }
    }

    /// The pair of `port` is no longer used: socket work not yet taken by
    /// the runtime is dropped, sockets are asked closed.
    fn release(&mut self, port: u16) {
        let mut unsent = Vec::new();
        self.out.retain(|o| match o {
            MediaOutput::Socket(
                op @ (SocketOp::Bind { port: p, .. }
                | SocketOp::Reserve { port: p, .. }
                | SocketOp::Read { port: p }),
            ) if *p & !1 == port => {
                unsent.push((*p, matches!(op, SocketOp::Read { .. })));
                false
            }
            _ => true,
        });
        for (p, read) in unsent {
            if read {
                // Still a bound spare socket: closed below.
                self.ports.cancel_read(p);
            } else {
                self.ports.cancel_bind(p);
            }
        }
        for p in self.ports.release(port) {
            self.out
                .push_back(MediaOutput::Socket(SocketOp::Close { port: p }));
        }
    }

    /// The runtime's answer to a [`SocketOp`].
    pub fn handle(&mut self, input: MediaInput) {
        match input {
            MediaInput::Bound { port } => {
                if self.ports.bound(port) {
                    // Its session ended while it was being bound.
                    self.out
                        .push_back(MediaOutput::Socket(SocketOp::Close { port }));
                    return;
                }
                let pair = port & !1;
                let reserved = [pair, pair + 1]
                    .iter()
                    .all(|&p| self.ports.socket(p) == SocketState::Reserved);
                if reserved && self.ports.owner(pair) == Some(PortUse::Spare) {
                    self.warming -= 1;
                    self.busy_streak = 0;
                    self.spares.push_back(pair);
                }
            }
            MediaInput::BindFailed { port, error } => {
                let id = match self.ports.bind_failed(port) {
                    None => return,
                    Some(PortUse::Spare) => {
                        // Found before any SDP named it: the pair goes to
                        // the back of the pool and another is asked for.
                        tracing::debug!(
                            shard = self.shard,
                            port,
                            "spare media port in use by another program: {error}"
                        );
                        self.warming -= 1;
                        self.busy_streak += 1;
                        if self.busy_streak == MAX_BUSY_TRIES {
                            tracing::warn!(
                                shard = self.shard,
                                "{MAX_BUSY_TRIES} media port pairs in a row are held by other programs"
                            );
                        }
                        self.release(port & !1);
                        return;
                    }
                    Some(PortUse::Call(id, _)) => id,
                };
                let Some(s) = self.sessions.get_mut(&id) else {
                    return;
                };
                tracing::warn!(
                    shard = self.shard,
                    port,
                    call_id = %s.call_id,
                    "media port not bound ({error}): the call has no media"
                );
                self.fail_session(id, "no media port");
            }
            MediaInput::Closed { port } => self.ports.closed(port),
            MediaInput::Sent { .. } => {}
        }
    }

    /// Session `id` cannot carry media: the call is to be hung up (once).
    pub fn fail_session(&mut self, id: u64, reason: &'static str) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if !s.failed {
            s.failed = true;
            self.out.push_back(MediaOutput::SessionFailed {
                id,
                call_id: s.call_id.clone(),
                reason,
            });
        }
    }

    /// The next thing the relay asks for (see the module doc for the order).
    pub fn poll_output(&mut self) -> Option<MediaOutput> {
        if self.out.is_empty() {
            self.top_up();
        }
        self.out.pop_front()
    }

    /// The port our SDP to `side` carries.
    pub fn port_of(&self, id: u64, side: Side) -> Option<u16> {
        self.sessions.get(&id).map(|s| s.sides[side as usize].port)
    }

    /// `side` sent an SDP (offer or answer). The side is learnt again when
    /// it renegotiates, or when its addresses changed.
    pub fn signalled(&mut self, id: u64, side: Side, sig: Signalled, origin: SdpOrigin) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        // Where this side sends and receives may change: user space has
        // both directions again until the next tick.
        s.take_back_both(&mut self.fast, &mut self.counters);
        let st = &mut s.sides[side as usize];
        if st.webrtc.is_some() {
            // Where a browser's media comes from and goes is what ICE
            // selected, whatever its SDP says (it names no usable address).
            let selected = st.sig.rtp.filter(|_| st.latched_rtp.is_some());
            st.sig = sig;
            st.sig.rtp = selected;
            st.sig.rtcp = None;
            st.sig.rtcp_mux = true;
            return;
        }
        let moved =
            st.sig.rtp != sig.rtp || st.sig.rtcp != sig.rtcp || st.sig.rtcp_mux != sig.rtcp_mux;
        if let SdpOrigin::Setup(ip) = origin {
            st.sip_ip = Some(ip);
        }
        let expect = expected_ip(sig.rtp.map(|a| a.ip()), st.sip_ip);
        if moved || origin == SdpOrigin::Renegotiation || expect != st.expect_ip {
            st.latched_rtp = None;
            st.latched_rtcp = None;
            st.candidate = None;
        }
        st.expect_ip = expect;
        st.sig = sig;
    }

    /// Whether `ip` is one of the relay's own addresses.
    pub fn is_own(&self, ip: IpAddr) -> bool {
        own_ip(&self.cfg, ip)
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
                s.take_back(side as usize, &mut self.fast, &mut self.counters);
                s.sides[side as usize].muted = muted;
                true
            }
            None => false,
        }
    }

    /// One datagram on one of our ports, `buf[..len]` (`buf` has room for
    /// the SRTP tag a plain packet may gain). Rewrites it in place when
    /// needed (renumbering, SRTP decrypted from one side and encrypted for
    /// the other) and says where it goes and how long it now is.
    pub fn on_datagram(
        &mut self,
        now: Now,
        port: u16,
        src: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Option<Forward> {
        let now_ms = now.mono_ms;
        let Some(PortUse::Call(id, side)) = self.ports.owner(port) else {
            self.counters.rejected += 1;
            return None;
        };
        let Some(s) = self.sessions.get_mut(&id) else {
            self.counters.rejected += 1;
            return None;
        };
        let rtcp_port = port % 2 == 1;
        let packet = buf.get(..len)?;
        if s.sides[side as usize].webrtc.is_some() {
            match crate::media::webrtc::classify(packet) {
                WebRtcKind::Stun | WebRtcKind::Dtls => {
                    self.webrtc_datagram(now_ms, id, side, src, packet);
                    return None;
                }
                WebRtcKind::Rtp | WebRtcKind::Rtcp
                    if !s.sides[side as usize].webrtc_pending() && !rtcp_port => {}
                _ => {
                    // Nothing but STUN and DTLS before the keys are out.
                    self.counters.rejected += 1;
                    return None;
                }
            }
        }
        if s.sides[side as usize].handed.is_some()
            && s.sides[side as usize].latched_rtp == Some(src)
            && !rtcp_port
            && !rtp::is_rtcp(packet)
        {
            // A packet of a handed-over stream the fast path left to us:
            // its counters first, then this packet by the full rules.
            s.take_back(side as usize, &mut self.fast, &mut self.counters);
        }
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
        if !from_expected_ip(from.expect_ip, src.ip(), |ip| own_ip(&self.cfg, ip)) {
            self.counters.foreign_source += 1;
            self.counters.rejected += 1;
            return None;
        }
        let is_rtcp = rtcp_port || rtp::is_rtcp(packet);
        // An SRTP side's packets count only once authentic: nothing a
        // forger sends latches, counts or reaches the other side.
        let len = match from.crypto.inbound() {
            None => len,
            Some(c) => {
                let plain = if is_rtcp {
                    c.unprotect_rtcp(buf, len)
                } else {
                    c.unprotect_rtp(buf, len)
                };
                match plain {
                    Ok(n) => n,
                    Err(_) => {
                        self.counters.srtp_rejected += 1;
                        self.counters.rejected += 1;
                        return None;
                    }
                }
            }
        };
        let packet = buf.get_mut(..len)?;
        let hdr = if is_rtcp {
            None
        } else {
            rtp::parse_rtp(packet)
        };
        if (is_rtcp && !rtp::is_valid_rtcp(packet)) || (!is_rtcp && hdr.is_none()) {
            self.counters.malformed += 1;
            self.counters.rejected += 1;
            return None;
        }
        match from.admit(src, hdr.map(|h| h.ssrc), true) {
            Admit::Relay => {}
            Admit::ForeignSource => {
                self.counters.foreign_source += 1;
                self.counters.rejected += 1;
                return None;
            }
            Admit::UnlatchedSource => {
                self.counters.unlatched_source += 1;
                self.counters.rejected += 1;
                return None;
            }
        }
        if to.webrtc_pending() {
            // A browser is sent nothing in clear.
            self.counters.no_destination += 1;
            return None;
        }
        if is_rtcp {
            from.rtcp_packets += 1;
            let Some((out_port, dest)) = to.rtcp_dest() else {
                self.counters.no_destination += 1;
                return None;
            };
            let len = seal_with(&mut self.counters, to, buf, len, true)?;
            self.counters.forwarded += 1;
            return Some(Forward {
                out_port,
                dest,
                len,
            });
        }
        // Checked above: an RTP packet that did not parse was dropped.
        let hdr = hdr?;
        let (codec, clock) = from.clock_of(hdr.payload_type);
        from.stats.on_packet(&hdr, now_ms, clock, packet.len());
        from.last_pt = hdr.payload_type;
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
        let out_port = to.port;
        if s.record {
            if let Some(codec) = codec {
                let payload = packet
                    .get(hdr.payload_offset..hdr.payload_offset + hdr.payload_len)
                    .unwrap_or(&[]);
                let rec = s.recording.get_or_insert_with(|| {
                    let rec_id = self.next_recording;
                    self.next_recording += 1;
                    let abs = recording_path(&self.cfg.recordings_dir, now.unix_ms, &s.call_id);
                    let rel = recording_path(&self.cfg.recordings_cdr_dir, now.unix_ms, &s.call_id);
                    self.out.push_back(MediaOutput::Recording(RecCmd::Open {
                        id: rec_id,
                        path: abs,
                    }));
                    Recording::new(rec_id, now_ms, rel)
                });
                rec.record(side, now_ms, codec, clock, &hdr, payload);
            }
        }
        let len = transcode_with(&mut self.counters, from, now_ms, buf, len)?;
        let len = seal_with(&mut self.counters, to, buf, len, false)?;
        self.counters.forwarded += 1;
        Some(Forward {
            out_port,
            dest,
            len,
        })
    }

    /// Periodic work: recordings flushed to the writer. Returns the calls
    /// whose media timed out (answered, not on hold, no RTP from either side
    /// for `rtp_timeout`).
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<u64> {
        // Spares held by other programs are looked for again.
        self.busy_streak = 0;
        self.webrtc_tick(now_ms);
        let mut timed_out = Vec::new();
        for (id, s) in &mut self.sessions {
            if let Some(fast) = self.fast.as_mut() {
                s.sync_fast_path(now_ms, fast, &mut self.counters);
            }
            if let Some(rec) = &mut s.recording {
                if let Some(pcm) = rec.recorder.take_ready(now_ms) {
                    rec.bytes += pcm.len() as u64;
                    self.out
                        .push_back(MediaOutput::Recording(RecCmd::Append { id: rec.id, pcm }));
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
        s.take_back_both(&mut self.fast, &mut self.counters);
        self.counters.lost += s.sides.iter().map(|side| side.stats.lost).sum::<u64>();
        for side in &s.sides {
            let port = side.port;
            self.release(port);
        }
        let mut recorder = Vec::new();
        if let Some(rec) = &mut s.recording {
            let pcm = rec.recorder.finish(now_ms);
            rec.bytes += pcm.len() as u64;
            if !pcm.is_empty() {
                self.out
                    .push_back(MediaOutput::Recording(RecCmd::Append { id: rec.id, pcm }));
            }
            self.out
                .push_back(MediaOutput::Recording(RecCmd::Close { id: rec.id }));
            recorder.push(RecorderEntry {
                track_id: "mixed".into(),
                path: rec.cdr_path.to_string_lossy().into_owned(),
                size: 44 + rec.bytes,
            });
        }
        Some(MediaReport {
            stats: json!([
                s.sides[0].track_report(Side::Caller),
                s.sides[1].track_report(Side::Callee)
            ]),
            recorder,
        })
    }
}

/// Whether `ip` is one of the relay's own addresses (advertised, bound).
fn own_ip(cfg: &RelayConfig, ip: IpAddr) -> bool {
    let ip = canonical(ip);
    ip == canonical(cfg.advertise)
        || (!cfg.bind_ip.is_unspecified() && ip == canonical(cfg.bind_ip))
}

#[path = "relay_webrtc.rs"]
mod webrtc_sides;
pub(crate) use webrtc_sides::WebRtcSide;
pub use webrtc_sides::{WebRtcError, WebRtcLocal};

#[path = "relay_transcode.rs"]
mod transcode_sides;
use transcode_sides::transcode_with;

#[path = "relay_srtp.rs"]
mod srtp_sides;
pub use srtp_sides::SrtpAnswer;
use srtp_sides::{key_seed, seal_with};

#[cfg(test)]
impl MediaRelay {
    /// [`MediaRelay::on_datagram`] for a packet that stays its length.
    pub(crate) fn on_packet(
        &mut self,
        now: Now,
        port: u16,
        src: SocketAddr,
        packet: &mut [u8],
    ) -> Option<Forward> {
        let len = packet.len();
        self.on_datagram(now, port, src, packet, len)
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "relay_fast_tests.rs"]
mod fast_tests;

#[cfg(test)]
#[path = "relay_srtp_tests.rs"]
mod srtp_tests;
