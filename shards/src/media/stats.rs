//! Per-stream RTP receive statistics ([`StreamStats`]: counters, RFC 3550
//! A.1 extended sequence numbers and loss, A.8 interarrival jitter, sequence
//! and timestamp discontinuities) and the sequence renumbering that hides the
//! gaps the relay itself creates when it drops packets ([`Renumber`]).
//! Both are fed once per packet and never allocate.

use serde::Serialize;

use super::rtp::RtpHeader;

/// A.1: a forward jump smaller than this is in-order progress (with loss).
const MAX_DROPOUT: u16 = 3000;
/// A.1: a backward step of at most this many is reordering/duplication.
const MAX_MISORDER: u16 = 100;
/// Clock rate assumed when the caller passes 0.
const DEFAULT_CLOCK_RATE: u32 = 8000;

/// Receive statistics of one direction of one leg.
///
/// The public counters are read-only by convention; feed the stats with
/// [`StreamStats::on_packet`]. Serializes as its [`StatsSummary`].
#[derive(Debug, Default, Clone, Serialize)]
#[serde(into = "StatsSummary")]
pub struct StreamStats {
    /// Packets seen (all of them, duplicates and resync packets included).
    pub packets: u64,
    /// Bytes seen (whole UDP payloads).
    pub bytes: u64,
    /// Packets lost: expected − received, clamped at 0, summed over the
    /// sources (SSRCs / sequence restarts) seen so far.
    pub lost: u64,
    /// RFC 3550 A.8 interarrival jitter estimate, in timestamp units.
    pub jitter: f64,
    /// Packets whose seq is not the previous packet's seq + 1 (loss,
    /// reordering, duplicates, source changes). The first packet is not.
    pub seq_breaks: u64,
    /// Packets whose timestamp goes backwards relative to the previous packet
    /// or jumps forward implausibly (see [`StreamStats::on_packet`]).
    pub ts_breaks: u64,
    /// SSRC of the last packet.
    pub ssrc: u32,
    /// Arrival time of the first packet, ms.
    pub first_ms: u64,
    /// Arrival time of the last packet, ms.
    pub last_ms: u64,

    // --- bookkeeping of the current source ---
    /// Clock rate of the last packet (0 replaced by 8000).
    clock_rate: u32,
    /// First sequence number of the current source.
    base_seq: u16,
    /// Highest sequence number of the current source (A.1 `max_seq`).
    max_seq: u16,
    /// Wrap count of `max_seq`, times 2^16 (A.1 `cycles`).
    cycles: u64,
    /// Packets of the current source counted for loss (A.1 `received`).
    received: u64,
    /// Loss of the previous sources.
    lost_before: u64,
    /// After a large jump: the seq that would confirm a restart (A.1).
    bad_seq: Option<u16>,
    /// Seq and timestamp of the previous packet.
    last_seq: u16,
    last_ts: u32,
    /// Relative transit time of the previous packet (A.8), timestamp units,
    /// modulo 2^32; `None` right after a source change.
    last_transit: Option<u32>,
}

/// The state a forwarder continues a stream from ([`StreamStats::steady`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Steady {
    pub ssrc: u32,
    pub last_seq: u16,
    pub last_ts: u32,
    /// Arrival of the last packet (the relay's clock, ms).
    pub last_ms: u64,
    pub jitter: f64,
}

/// What the relay reports for a stream (JSON: `packets`, `bytes`, `lost`,
/// `jitterMs`, `seqBreaks`, `tsBreaks`, `ssrc`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSummary {
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
    /// Jitter in ms, rounded to 2 decimals.
    pub jitter_ms: f64,
    pub seq_breaks: u64,
    pub ts_breaks: u64,
    pub ssrc: u32,
}

impl From<StreamStats> for StatsSummary {
    fn from(s: StreamStats) -> Self {
        s.summary()
    }
}

/// `arrival_ms` in units of a `rate` Hz clock, modulo 2^32 (only differences
/// are used). Exact, and free of overflow for any input.
#[inline]
pub(crate) fn to_clock(arrival_ms: u64, rate: u32) -> u32 {
    let rate = u64::from(rate);
    let whole = (arrival_ms / 1000).wrapping_mul(rate);
    let frac = (arrival_ms % 1000) * rate / 1000;
    whole.wrapping_add(frac) as u32
}

impl StreamStats {
    /// Accounts one received RTP packet. `arrival_ms` is a monotonic arrival
    /// time, `clock_rate` the RTP clock of its payload type (0 = 8000) and
    /// `bytes` the size of the whole UDP payload.
    ///
    /// - Sequence numbers follow RFC 3550 A.1 without probation: a forward
    ///   step below 3000 advances (wrapping), a step back of at most 100 is
    ///   reordering or a duplicate, anything else is a jump, and two
    ///   consecutive packets after a jump restart the sequence tracking (the
    ///   loss so far is kept). A new SSRC restarts the tracking at once and
    ///   counts one seq break.
    /// - A timestamp break is a timestamp going backwards (wrapping i32
    ///   difference < 0), or moving forward by more than
    ///   `max(seq_delta, 1) * clock_rate` (over a second per packet). For a
    ///   marker packet (start of a talkspurt after silence suppression) a
    ///   forward jump up to the elapsed arrival time plus one second is also
    ///   plausible. Not checked across an SSRC change.
    /// - Jitter is RFC 3550 A.8, with the arrival time converted to the
    ///   stream's clock. Telephone-event packets (timestamp held for the whole
    ///   event) raise it, as in any RFC 3550 receiver.
    pub fn on_packet(&mut self, hdr: &RtpHeader, arrival_ms: u64, clock_rate: u32, bytes: usize) {
        let rate = if clock_rate == 0 {
            DEFAULT_CLOCK_RATE
        } else {
            clock_rate
        };
        let seq = hdr.seq;
        let first = self.packets == 0;
        self.packets += 1;
        self.bytes = self.bytes.saturating_add(bytes as u64);

        if first {
            self.first_ms = arrival_ms;
            self.ssrc = hdr.ssrc;
            self.restart(seq);
        } else if hdr.ssrc != self.ssrc {
            self.ssrc = hdr.ssrc;
            self.seq_breaks += 1;
            self.restart(seq);
        } else {
            let seq_delta = seq.wrapping_sub(self.last_seq);
            if seq_delta != 1 {
                self.seq_breaks += 1;
            }
            let ts_delta = hdr.timestamp.wrapping_sub(self.last_ts) as i32;
            if ts_delta < 0 {
                self.ts_breaks += 1;
            } else {
                let steps = u64::from((seq_delta as i16).max(1) as u16);
                let limit = steps * u64::from(rate);
                let jump = ts_delta as u64;
                if jump > limit {
                    let plausible = hdr.marker && {
                        let elapsed = arrival_ms.saturating_sub(self.last_ms);
                        jump <= elapsed.saturating_mul(u64::from(rate)) / 1000 + u64::from(rate)
                    };
                    if !plausible {
                        self.ts_breaks += 1;
                    }
                }
            }
        }
        self.update_seq(seq);
        self.lost = self.lost_before + self.expected().saturating_sub(self.received);

        // A.8 interarrival jitter.
        let transit = to_clock(arrival_ms, rate).wrapping_sub(hdr.timestamp);
        if let Some(prev) = self.last_transit {
            let d = f64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);

        self.clock_rate = rate;
        self.last_seq = seq;
        self.last_ts = hdr.timestamp;
        self.last_ms = arrival_ms;
    }

    /// Starts tracking a new source whose first packet has sequence `seq`
    /// (not yet counted: `update_seq` follows); the loss so far is kept.
    fn restart(&mut self, seq: u16) {
        self.lost_before = self.lost;
        self.base_seq = seq;
        self.max_seq = seq;
        self.cycles = 0;
        self.received = 0;
        self.bad_seq = None;
        self.last_transit = None;
    }

    /// A.1 `update_seq`, minus probation.
    fn update_seq(&mut self, seq: u16) {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            self.advance(seq);
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // Large jump: restart if the previous packet jumped too and this
            // one follows it, else wait for confirmation (not counted).
            if self.bad_seq == Some(seq) {
                self.restart(seq.wrapping_sub(1));
                self.advance(seq.wrapping_sub(1));
                self.advance(seq);
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
            }
        } else {
            // Duplicate or reordered packet.
            self.received += 1;
        }
    }

    /// In-order progress to `seq` (within `MAX_DROPOUT` of `max_seq`).
    #[inline]
    fn advance(&mut self, seq: u16) {
        if seq < self.max_seq {
            self.cycles += 1 << 16;
        }
        self.max_seq = seq;
        self.received += 1;
        self.bad_seq = None;
    }

    /// Where a steady stream stands, for a forwarder to continue it: `None`
    /// unless the last packet was the highest so far with no restart pending
    /// (so the next one in order changes nothing but the counters).
    pub fn steady(&self) -> Option<Steady> {
        let in_step = self.packets > 0 && self.last_seq == self.max_seq && self.bad_seq.is_none();
        in_step.then_some(Steady {
            ssrc: self.ssrc,
            last_seq: self.last_seq,
            last_ts: self.last_ts,
            last_ms: self.last_ms,
            jitter: self.jitter,
        })
    }

    /// Accounts `packets` in-order packets a forwarder relayed after
    /// [`StreamStats::steady`] (no break, no loss), ending with `last_seq`
    /// and `last_ts` at `last_ms`, its jitter now `jitter`: the next packet
    /// here continues from there as if this relay had seen them all.
    pub fn absorb(&mut self, packets: u64, bytes: u64, last: (u16, u32, u64), jitter: f64) {
        if packets == 0 {
            return;
        }
        let (last_seq, last_ts, last_ms) = last;
        let extended = u64::from(self.max_seq) + packets;
        self.cycles += extended >> 16 << 16;
        self.max_seq = last_seq;
        self.received += packets;
        self.packets += packets;
        self.bytes = self.bytes.saturating_add(bytes);
        self.lost = self.lost_before + self.expected().saturating_sub(self.received);
        self.jitter = jitter;
        self.last_transit = Some(to_clock(last_ms, self.clock_rate).wrapping_sub(last_ts));
        self.last_seq = last_seq;
        self.last_ts = last_ts;
        self.last_ms = last_ms;
    }

    /// Extended highest sequence number of the current source (A.1 `cycles +
    /// max_seq`); the first source starts with cycles 0.
    pub fn extended_max_seq(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    /// Packets expected from the current source: extended max − base + 1.
    fn expected(&self) -> u64 {
        (self.extended_max_seq() + 1).saturating_sub(u64::from(self.base_seq))
    }

    /// Jitter in ms (`jitter / clock_rate * 1000`).
    pub fn jitter_ms(&self) -> f64 {
        let rate = if self.clock_rate == 0 {
            DEFAULT_CLOCK_RATE
        } else {
            self.clock_rate
        };
        self.jitter * 1000.0 / f64::from(rate)
    }

    /// Jitter in timestamp units as an RTCP report block carries it.
    pub fn jitter_rtcp(&self) -> u32 {
        self.jitter as u32
    }

    /// The reported figures.
    pub fn summary(&self) -> StatsSummary {
        StatsSummary {
            packets: self.packets,
            bytes: self.bytes,
            lost: self.lost,
            jitter_ms: (self.jitter_ms() * 100.0).round() / 100.0,
            seq_breaks: self.seq_breaks,
            ts_breaks: self.ts_breaks,
            ssrc: self.ssrc,
        }
    }
}

/// Dropped input sequence numbers `(hi - span, hi]` (modulo 2^16), with the
/// offset that applied before them.
#[derive(Debug, Clone, Copy)]
struct Gap {
    hi: u16,
    span: u32,
    offset_before: u16,
}

/// Where an input seq lies relative to a [`Gap`].
enum Pos {
    Before,
    Inside,
    After,
}

impl Gap {
    #[inline]
    fn pos(&self, seq: u16) -> Pos {
        if ahead(seq, self.hi) {
            Pos::After
        } else if u32::from(self.hi.wrapping_sub(seq)) < self.span {
            Pos::Inside
        } else {
            Pos::Before
        }
    }

    /// Input seq just before the gap.
    #[inline]
    fn before_lo(&self) -> u16 {
        self.hi.wrapping_sub(self.span as u16)
    }
}

/// `a` is after `b` in RTP sequence space (within half the space).
#[inline]
fn ahead(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) > 0
}

/// Forgets the last closed gap once the stream is this far past it.
const GAP_MEMORY: u16 = 0x4000;
/// A gap whose low end may still move back (reordered drops at its start).
const GAP_YOUNG: u32 = 0x4000;

/// Keeps an outgoing stream's sequence numbers continuous when the relay
/// drops packets (mute, no destination yet).
///
/// Output seq = input seq − offset (wrapping). The relay calls
/// [`forward`](Renumber::forward) for each packet it sends and
/// [`drop_packet`](Renumber::drop_packet) for each one it does not. The
/// dropped input seqs, from the lowest to the highest dropped since the last
/// forwarded packet, form a gap; the first forwarded packet after it adds its
/// size to the offset and is flagged `resumed` (set the marker bit).
///
/// - Network loss outside a gap (before its first or after its last dropped
///   packet) keeps showing as an output gap; loss inside it is hidden with it.
/// - Drops before anything was forwarded are not a gap (the receiver has no
///   reference yet): the stream starts with offset 0 and no `resumed` flag.
/// - Reordering around a gap: a late packet from before the gap keeps the old
///   offset, a late one from between the gap and the resume point the new
///   one; both land in seqs never used, so no duplicates. A late packet from
///   inside the gap has no output seq of its own: [`is_stale`](Renumber::is_stale)
///   says so and the relay should drop it (calling `drop_packet` is fine).
///   If it is forwarded anyway it gets the output seq of the packet just
///   before the gap, which receivers discard as a duplicate (or, if that one
///   was lost, take as its late arrival).
/// - Only the last gap is remembered for late packets, and only until the
///   stream is 16384 packets past it.
/// - Timestamps are not rewritten: a timestamp jump after a dropped period is
///   valid RTP, like silence suppression.
#[derive(Debug, Default, Clone)]
pub struct Renumber {
    started: bool,
    /// Highest input seq forwarded.
    fwd_max: u16,
    /// Current offset (input − output).
    offset: u16,
    /// Drops since the last forwarded packet.
    pending: Option<Gap>,
    /// The last gap already compensated.
    closed: Option<Gap>,
}

impl Renumber {
    pub const fn new() -> Self {
        Renumber {
            started: false,
            fwd_max: 0,
            offset: 0,
            pending: None,
            closed: None,
        }
    }

    /// The output seq of a packet being forwarded, and whether it is the
    /// first one after a gap the relay made (set the RTP marker bit then).
    pub fn forward(&mut self, seq: u16) -> (u16, bool) {
        if !self.started {
            self.started = true;
            self.fwd_max = seq;
            self.pending = None;
            return (seq.wrapping_sub(self.offset), false);
        }
        let mut resumed = false;
        if let Some(gap) = self.pending {
            match gap.pos(seq) {
                Pos::After => {
                    self.offset = self.offset.wrapping_add(gap.span as u16);
                    self.closed = Some(gap);
                    self.pending = None;
                    resumed = true;
                }
                Pos::Inside => return (gap.before_lo().wrapping_sub(gap.offset_before), false),
                Pos::Before => {}
            }
        }
        let offset = match self.closed {
            Some(gap) if !resumed => match gap.pos(seq) {
                Pos::After => self.offset,
                Pos::Inside => return (gap.before_lo().wrapping_sub(gap.offset_before), false),
                Pos::Before => gap.offset_before,
            },
            _ => self.offset,
        };
        if ahead(seq, self.fwd_max) {
            self.fwd_max = seq;
            if let Some(gap) = self.closed {
                if self.fwd_max.wrapping_sub(gap.hi) >= GAP_MEMORY {
                    self.closed = None;
                }
            }
        }
        (seq.wrapping_sub(offset), resumed)
    }

    /// The offset every in-order packet gets while no gap the relay made
    /// is open (`None` before the first forwarded packet or with a gap
    /// pending: those packets need the rules above).
    pub fn steady_offset(&self) -> Option<u16> {
        (self.started && self.pending.is_none()).then_some(self.offset)
    }

    /// Records a packet the relay did not forward.
    pub fn drop_packet(&mut self, seq: u16) {
        if !self.started {
            return;
        }
        match &mut self.pending {
            Some(gap) => {
                if ahead(seq, gap.hi) {
                    gap.span = gap.span.saturating_add(u32::from(seq.wrapping_sub(gap.hi)));
                    gap.hi = seq;
                } else {
                    let back = u32::from(gap.hi.wrapping_sub(seq));
                    // A late drop just before the gap's start: extend it back.
                    if back >= gap.span && gap.span < GAP_YOUNG && ahead(seq, self.fwd_max) {
                        gap.span = back + 1;
                    }
                }
            }
            None => {
                if ahead(seq, self.fwd_max) {
                    self.pending = Some(Gap {
                        hi: seq,
                        span: 1,
                        offset_before: self.offset,
                    });
                }
            }
        }
    }

    /// Whether `seq` is a late packet from inside a gap the relay made: it
    /// has no output seq of its own and should be dropped, not forwarded.
    pub fn is_stale(&self, seq: u16) -> bool {
        if !self.started {
            return false;
        }
        if let Some(gap) = self.pending {
            match gap.pos(seq) {
                Pos::Inside => return true,
                Pos::After => return false,
                Pos::Before => {}
            }
        }
        matches!(self.closed.map(|g| g.pos(seq)), Some(Pos::Inside))
    }
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
