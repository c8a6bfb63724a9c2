//! One relay session (a proxied call): its two sides, its recording, and
//! its dealings with the fast path: handing steady streams over on the
//! tick, reading what was relayed meanwhile, taking streams back.

use super::fastpath::{FastPath, Progress};
use super::relay::RelayCounters;
use super::rtp::RtpHeader;
use super::side::Side;
use super::side_state::SideState;
use crate::recording::{Channel, Codec, Recorder, RtpIn};
use std::path::PathBuf;

/// How long a side whose stream the fast path refused stays with the relay
/// before it is offered again.
const REFUSED_RETRY_MS: u64 = 5_000;

pub(super) struct Recording {
    pub(super) id: u64,
    pub(super) recorder: Recorder,
    pub(super) cdr_path: PathBuf,
    pub(super) bytes: u64,
}

impl Recording {
    pub(super) fn new(id: u64, now_ms: u64, cdr_path: PathBuf) -> Recording {
        Recording {
            id,
            recorder: Recorder::new(now_ms),
            cdr_path,
            bytes: 0,
        }
    }

    /// One RTP packet of `side` (header `hdr`, `payload`) into the mix:
    /// the caller left, the callee right.
    pub(super) fn record(
        &mut self,
        side: Side,
        now_ms: u64,
        codec: Codec,
        clock_rate: u32,
        hdr: &RtpHeader,
        payload: &[u8],
    ) {
        let channel = match side {
            Side::Caller => Channel::Left,
            Side::Callee => Channel::Right,
        };
        self.recorder.on_packet(RtpIn {
            channel,
            arrival_ms: now_ms,
            codec,
            clock_rate,
            seq: hdr.seq,
            timestamp: hdr.timestamp,
            payload,
        });
    }
}

pub(super) struct Session {
    pub(super) call_id: String,
    pub(super) sides: [SideState; 2],
    pub(super) answered: bool,
    pub(super) last_rtp_ms: u64,
    pub(super) record: bool,
    pub(super) recording: Option<Recording>,
    /// A bind of one of its ports failed (reported once).
    pub(super) failed: bool,
}

impl Session {
    /// Takes `side`'s stream back from the fast path, accounting what it
    /// relayed. A no-op when it was not handed over.
    pub(super) fn take_back(
        &mut self,
        side: usize,
        fast: &mut Option<Box<dyn FastPath>>,
        counters: &mut RelayCounters,
    ) {
        let st = &mut self.sides[side];
        if st.handed.is_none() {
            return;
        }
        let progress = fast.as_mut().and_then(|f| f.take(st.port));
        if let Some(p) = progress {
            self.absorb(side, p, counters);
        }
        self.sides[side].handed = None;
    }

    pub(super) fn take_back_both(
        &mut self,
        fast: &mut Option<Box<dyn FastPath>>,
        counters: &mut RelayCounters,
    ) {
        self.take_back(0, fast, counters);
        self.take_back(1, fast, counters);
    }

    /// The tick's fast path work: what it relayed is accounted, steady
    /// streams are handed over, and streams that stopped being steady are
    /// taken back.
    pub(super) fn sync_fast_path(
        &mut self,
        now_ms: u64,
        fast: &mut Box<dyn FastPath>,
        counters: &mut RelayCounters,
    ) {
        for side in 0..2 {
            let port = self.sides[side].port;
            if self.sides[side].handed.is_some() {
                match fast.progress(port) {
                    Some(p) => self.absorb(side, p, counters),
                    // The forwarder lost it (never the case for the
                    // kernel's map): user space has it again.
                    None => self.sides[side].handed = None,
                }
                continue;
            }
            if self.record || self.failed || now_ms < self.sides[side].hand_over_after_ms {
                continue;
            }
            let Some(h) = self.sides[side].handover(&self.sides[1 - side]) else {
                continue;
            };
            let st = &mut self.sides[side];
            if fast.hand_over(port, &h) {
                st.handed = Some(Progress::at_handover(&h));
            } else {
                // Refused (no route, full): not asked again every tick.
                st.hand_over_after_ms = now_ms + REFUSED_RETRY_MS;
            }
        }
    }

    /// Accounts what the fast path relayed for `side` since it was last
    /// read: the side's statistics, the relay's counters, the session's
    /// last RTP.
    fn absorb(&mut self, side: usize, p: Progress, counters: &mut RelayCounters) {
        let n = self.sides[side].absorb(p);
        counters.forwarded += n;
        counters.fast_forwarded += n;
        self.last_rtp_ms = self.last_rtp_ms.max(p.last_ms);
    }
}
