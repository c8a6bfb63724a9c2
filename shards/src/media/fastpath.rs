//! The contract between the relay and a forwarder it does not run: the
//! kernel's (`runtime::kernel_rtp`, `shards/bpf/rtp_fwd.bpf.c`), or a map
//! in tests.
//!
//! The relay hands over one direction of a call once it is steady (a
//! latched, unmuted, unrecorded RTP stream whose statistics are in step:
//! [`Handover`]). The forwarder relays only the packets that change
//! nothing but the counters (the next sequence number from the latched
//! address, same SSRC and payload type, no marker, a plausible timestamp
//! step), keeps the counters and the stream state ([`Progress`]), and lets
//! every other packet reach the relay's socket. The relay reads the
//! progress on its tick, and takes the stream back ([`FastPath::take`])
//! before it handles any packet of that stream itself, or when the
//! stream stops being steady (mute, recording, new SDP, call end).
//!
//! Calls are plain, synchronous and never block (one `bpf()` system call
//! each in the kernel's case); a refused handover just leaves the stream
//! in user space.

use std::net::SocketAddrV4;

/// What the forwarder needs to continue a stream exactly as the relay
/// would.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Handover {
    /// The latched peer: the only source relayed.
    pub from: SocketAddrV4,
    /// Where the stream goes (the other side).
    pub to: SocketAddrV4,
    /// Our port it leaves from (the other side's).
    pub out_port: u16,
    pub ssrc: u32,
    pub payload_type: u8,
    pub clock_rate: u32,
    /// Input seq − output seq ([`super::stats::Renumber`]).
    pub seq_offset: u16,
    /// The last packet handled: the forwarder relays `last_seq + 1` next.
    pub last_seq: u16,
    pub last_ts: u32,
    /// When it arrived, in the relay's clock (`Now::mono_ms`): the
    /// forwarder's first jitter sample is taken against it.
    pub last_ms: u64,
    /// RFC 3550 A.8 jitter so far, in timestamp units.
    pub jitter: f64,
}

/// What the forwarder did since the handover (cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Progress {
    pub packets: u64,
    /// UDP payload bytes.
    pub bytes: u64,
    /// The last packet relayed (the handover's when none was).
    pub last_seq: u16,
    pub last_ts: u32,
    /// When it arrived, in the relay's clock (`Now::mono_ms`).
    pub last_ms: u64,
    pub jitter: f64,
}

impl Progress {
    /// Where a stream stands when it is handed over: nothing relayed yet.
    pub fn at_handover(h: &Handover) -> Progress {
        Progress {
            last_seq: h.last_seq,
            last_ts: h.last_ts,
            last_ms: h.last_ms,
            jitter: h.jitter,
            ..Progress::default()
        }
    }
}

/// A forwarder of steady streams, keyed by the relay port they arrive on.
pub trait FastPath {
    /// Hands the stream arriving on `port` over. False: the forwarder
    /// refused (full, gone): the relay keeps it.
    fn hand_over(&mut self, port: u16, handover: &Handover) -> bool;
    /// What was relayed since the handover, the stream staying handed over.
    fn progress(&mut self, port: u16) -> Option<Progress>;
    /// Takes the stream back: nothing more is relayed for `port` once
    /// this returns, and what was is reported.
    fn take(&mut self, port: u16) -> Option<Progress>;
}
