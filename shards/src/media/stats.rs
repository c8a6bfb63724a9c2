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
fn to_clock(arrival_ms: u64, rate: u32) -> u32 {
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
mod tests {
    use super::*;

    fn hdr(seq: u16, ts: u32) -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: 0,
            seq,
            timestamp: ts,
            ssrc: 0x1111,
            payload_offset: 12,
            payload_len: 160,
        }
    }

    /// Feeds `n` in-order PCMU packets 20 ms apart starting at `seq`/`ts`/`t`.
    fn feed(s: &mut StreamStats, seq: u16, ts: u32, t: u64, n: u16) {
        for i in 0..n {
            let h = hdr(seq.wrapping_add(i), ts.wrapping_add(160 * u32::from(i)));
            s.on_packet(&h, t + 20 * u64::from(i), 8000, 172);
        }
    }

    #[test]
    fn in_order_stream() {
        let mut s = StreamStats::default();
        feed(&mut s, 1000, 0xffff_ff00, 5_000, 100);
        assert_eq!(s.packets, 100);
        assert_eq!(s.bytes, 17_200);
        assert_eq!(s.lost, 0);
        assert_eq!(s.seq_breaks, 0);
        assert_eq!(s.ts_breaks, 0);
        assert_eq!(s.jitter, 0.0);
        assert_eq!(s.jitter_ms(), 0.0);
        assert_eq!(s.extended_max_seq(), 1099);
        assert_eq!(
            (s.first_ms, s.last_ms, s.ssrc),
            (5_000, 5_000 + 99 * 20, 0x1111)
        );
    }

    #[test]
    fn gap_of_three() {
        let mut s = StreamStats::default();
        feed(&mut s, 10, 0, 0, 10); // 10..=19
        feed(&mut s, 23, 13 * 160, 13 * 20, 10); // 20, 21, 22 lost
        assert_eq!(s.lost, 3);
        assert_eq!(s.seq_breaks, 1);
        assert_eq!(s.ts_breaks, 0);
        assert_eq!(s.jitter, 0.0);
        assert_eq!(s.summary().lost, 3);
    }

    #[test]
    fn seq_wrap() {
        let mut s = StreamStats::default();
        for (i, seq) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
            let i = i as u32;
            s.on_packet(&hdr(seq, 160 * i), 20 * u64::from(i), 8000, 172);
        }
        assert_eq!(s.seq_breaks, 0);
        assert_eq!(s.lost, 0);
        assert_eq!(s.extended_max_seq(), 65536 + 1);
        // and loss across the wrap
        s.on_packet(&hdr(3, 160 * 5), 100, 8000, 172);
        assert_eq!(s.lost, 1);
        assert_eq!(s.extended_max_seq(), 65536 + 3);
    }

    #[test]
    fn duplicate_packet() {
        let mut s = StreamStats::default();
        feed(&mut s, 1, 0, 0, 5);
        s.on_packet(&hdr(5, 4 * 160), 90, 8000, 172); // duplicate of the last
        feed(&mut s, 6, 5 * 160, 100, 5);
        assert_eq!(s.packets, 11);
        assert_eq!(s.seq_breaks, 1); // the duplicate; 6 follows 5 again
        assert_eq!(s.ts_breaks, 0);
        assert_eq!(s.lost, 0); // clamped, not negative
        assert_eq!(s.extended_max_seq(), 10);
    }

    #[test]
    fn reordering() {
        let mut s = StreamStats::default();
        for (i, seq) in [1u16, 3, 2, 4].into_iter().enumerate() {
            s.on_packet(&hdr(seq, 160 * u32::from(seq)), 20 * i as u64, 8000, 172);
        }
        assert_eq!(s.seq_breaks, 3); // 1→3, 3→2, 2→4
        assert_eq!(s.ts_breaks, 1); // 2 goes back
        assert_eq!(s.lost, 0);
        assert_eq!(s.extended_max_seq(), 4);
    }

    #[test]
    fn alternating_jitter() {
        let mut s = StreamStats::default();
        let mut expected = 0.0f64;
        let mut prev_transit: Option<f64> = None;
        for i in 0..100u16 {
            let dev: i64 = if i % 2 == 0 { 5 } else { -5 };
            let arrival = (1_000 + 20 * i64::from(i) + dev) as u64;
            let ts = 160 * u32::from(i);
            s.on_packet(&hdr(i, ts), arrival, 8000, 172);
            // independent float model, in ms
            let transit = arrival as f64 - f64::from(ts) / 8.0;
            if let Some(p) = prev_transit {
                expected += ((transit - p).abs() - expected) / 16.0;
            }
            prev_transit = Some(transit);
        }
        // converges towards |D| = 10 ms
        assert!(expected > 9.5 && expected < 10.0, "{expected}");
        let got = s.jitter_ms();
        assert!(
            (got - expected).abs() < expected * 0.1,
            "{got} vs {expected}"
        );
        assert!((s.jitter - got * 8.0).abs() < 1e-9);
        assert_eq!(s.jitter_rtcp(), s.jitter as u32);
        assert_eq!(s.summary().jitter_ms, (got * 100.0).round() / 100.0);
        assert_eq!(s.ts_breaks, 0);
        assert_eq!(s.seq_breaks, 0);
    }

    #[test]
    fn jitter_with_wideband_clock_and_zero_rate() {
        let mut s = StreamStats::default();
        // clock_rate 0 is treated as 8000: 20 ms apart with ts +160 → 0
        for i in 0..10u16 {
            s.on_packet(&hdr(i, 160 * u32::from(i)), 20 * u64::from(i), 0, 172);
        }
        assert_eq!(s.jitter, 0.0);
        assert_eq!(s.jitter_ms(), 0.0);
        // a 48 kHz stream on a large (epoch-like) clock
        let mut s = StreamStats::default();
        let t0 = 1_700_000_000_000u64;
        for i in 0..10u16 {
            s.on_packet(
                &hdr(i, 960 * u32::from(i)),
                t0 + 20 * u64::from(i),
                48_000,
                172,
            );
        }
        assert_eq!(s.jitter, 0.0);
    }

    #[test]
    fn timestamp_backwards() {
        let mut s = StreamStats::default();
        feed(&mut s, 1, 10_000, 0, 5);
        s.on_packet(&hdr(6, 10_000), 100, 8000, 172);
        assert_eq!(s.ts_breaks, 1);
        assert_eq!(s.seq_breaks, 0);
    }

    #[test]
    fn silence_suppression_jump() {
        let mut s = StreamStats::default();
        feed(&mut s, 1, 0, 0, 5); // last: seq 5, ts 640, t 80
        let mut h = hdr(6, 640 + 8000);
        h.marker = true;
        s.on_packet(&h, 80 + 1000, 8000, 172);
        assert_eq!(s.ts_breaks, 0);
        // +9000 for one packet: a break, marker or not, with 20 ms elapsed
        s.on_packet(&hdr(7, 640 + 8000 + 9000), 1100, 8000, 172);
        assert_eq!(s.ts_breaks, 1);
        let mut h = hdr(8, 640 + 8000 + 18_000);
        h.marker = true;
        s.on_packet(&h, 1120, 8000, 172);
        assert_eq!(s.ts_breaks, 2);
        // a long silence (10 s) ended by a marker packet is plausible
        let mut h = hdr(9, 640 + 8000 + 18_000 + 80_000);
        h.marker = true;
        s.on_packet(&h, 11_120, 8000, 172);
        assert_eq!(s.ts_breaks, 2);
        // a jump spread over lost packets is plausible: 3 packets, 2.5 s
        s.on_packet(
            &hdr(12, 640 + 8000 + 18_000 + 80_000 + 20_000),
            11_180,
            8000,
            172,
        );
        assert_eq!(s.ts_breaks, 2);
        assert_eq!(s.seq_breaks, 1);
    }

    #[test]
    fn new_ssrc_restarts_tracking() {
        let mut s = StreamStats::default();
        feed(&mut s, 100, 0, 0, 10); // 100..=109
        s.on_packet(&hdr(112, 12 * 160), 240, 8000, 172); // 2 lost
        assert_eq!(s.lost, 2);
        let mut h = hdr(40_000, 123_456_789);
        h.ssrc = 0x2222;
        s.on_packet(&h, 260, 8000, 172);
        assert_eq!(s.ssrc, 0x2222);
        assert_eq!(s.seq_breaks, 2);
        assert_eq!(s.ts_breaks, 0);
        assert_eq!(s.lost, 2);
        assert_eq!(s.extended_max_seq(), 40_000);
        assert_eq!(s.jitter, 0.0);
        for i in 1..10u16 {
            let mut h = hdr(40_000 + i, 123_456_789 + 160 * u32::from(i));
            h.ssrc = 0x2222;
            s.on_packet(&h, 260 + 20 * u64::from(i), 8000, 172);
        }
        assert_eq!(s.seq_breaks, 2);
        assert_eq!(s.lost, 2);
        assert_eq!(s.extended_max_seq(), 40_009);
        assert_eq!(s.jitter, 0.0);
        assert_eq!(s.packets, 21);
    }

    #[test]
    fn seq_restart_same_ssrc() {
        let mut s = StreamStats::default();
        feed(&mut s, 100, 0, 0, 10); // 100..=109
        feed(&mut s, 30_000, 1600, 200, 5); // jump, confirmed by the next packet
        assert_eq!(s.lost, 0);
        assert_eq!(s.extended_max_seq(), 30_004);
        assert_eq!(s.seq_breaks, 1);
        // a single stray packet does not restart
        s.on_packet(&hdr(5, 2400), 300, 8000, 172);
        s.on_packet(&hdr(30_005, 2400), 320, 8000, 172);
        assert_eq!(s.extended_max_seq(), 30_005);
        assert_eq!(s.lost, 0);
    }

    #[test]
    fn summary_json() {
        let mut s = StreamStats::default();
        feed(&mut s, 1, 0, 0, 3);
        let v = serde_json::to_value(s.summary()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "packets": 3, "bytes": 516, "lost": 0, "jitterMs": 0.0,
                "seqBreaks": 0, "tsBreaks": 0, "ssrc": 0x1111
            })
        );
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
    }

    /// Runs `(seq, forward?)` through a Renumber: the forwarded outputs.
    fn run(r: &mut Renumber, input: &[(u16, bool)]) -> Vec<(u16, bool)> {
        let mut out = Vec::new();
        for &(seq, fwd) in input {
            if fwd {
                out.push(r.forward(seq));
            } else {
                r.drop_packet(seq);
            }
        }
        out
    }

    #[test]
    fn renumber_hides_drops() {
        let mut r = Renumber::new();
        let input: Vec<(u16, bool)> = (100..130u16)
            .map(|s| (s, !(110..115).contains(&s)))
            .collect();
        let out = run(&mut r, &input);
        assert_eq!(out.len(), 25);
        let seqs: Vec<u16> = out.iter().map(|o| o.0).collect();
        assert_eq!(seqs, (100..125u16).collect::<Vec<_>>());
        let resumed: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, o)| o.1)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(resumed, vec![10]); // the packet with input seq 115
                                       // a second mute period
        let input: Vec<(u16, bool)> = (130..140u16)
            .map(|s| (s, !(132..=134).contains(&s)))
            .collect();
        let out = run(&mut r, &input);
        let seqs: Vec<u16> = out.iter().map(|o| o.0).collect();
        assert_eq!(seqs, vec![125, 126, 127, 128, 129, 130, 131]);
        assert_eq!(out.iter().filter(|o| o.1).count(), 1);
        assert!(out[2].1);
    }

    #[test]
    fn renumber_keeps_network_loss() {
        let mut r = Renumber::default();
        let out = run(&mut r, &[(10, true), (11, true), (14, true), (15, true)]);
        assert_eq!(
            out,
            vec![(10, false), (11, false), (14, false), (15, false)]
        );
        // loss just before and just after a mute still shows
        let out = run(&mut r, &[(17, false), (18, false), (20, true), (21, true)]);
        // 16 lost before the gap and 19 after it: two missing output seqs
        assert_eq!(out, vec![(18, true), (19, false)]);
    }

    #[test]
    fn renumber_output_wraps() {
        let mut r = Renumber::new();
        let mut input = vec![(65530u16, true), (65531, true)];
        input.extend((65532..=65535u16).map(|s| (s, false)));
        input.extend((0..6u16).map(|s| (s, true)));
        let out = run(&mut r, &input);
        let seqs: Vec<u16> = out.iter().map(|o| o.0).collect();
        assert_eq!(seqs, vec![65530, 65531, 65532, 65533, 65534, 65535, 0, 1]);
        assert_eq!(out.iter().filter(|o| o.1).count(), 1);
        // the output wraps at a different point than the input
        let more = run(&mut r, &(6..10u16).map(|s| (s, true)).collect::<Vec<_>>());
        assert_eq!(
            more.iter().map(|o| o.0).collect::<Vec<_>>(),
            vec![2, 3, 4, 5]
        );
    }

    #[test]
    fn renumber_drops_before_start_are_no_gap() {
        let mut r = Renumber::new();
        let out = run(&mut r, &[(5, false), (6, false), (7, true), (8, true)]);
        assert_eq!(out, vec![(7, false), (8, false)]);
    }

    #[test]
    fn renumber_reordering_around_gap() {
        let mut r = Renumber::new();
        // forwarded 1..=10, dropped 12, 11, 13 (reordered start), 14 arrives
        // before the late 15 and 16; a late 9 and a stale 12 copy come in.
        let out = run(
            &mut r,
            &[
                (1, true),
                (2, true),
                (3, true),
                (5, true),
                (6, true),
                (7, true),
                (8, true),
                (10, true),
            ],
        );
        assert_eq!(out.last(), Some(&(10, false)));
        run(&mut r, &[(12, false), (11, false), (13, false)]);
        assert!(r.is_stale(11) && r.is_stale(13));
        assert!(!r.is_stale(9) && !r.is_stale(14) && !r.is_stale(10));
        let resumed = r.forward(16);
        assert_eq!(resumed, (13, true)); // 14 and 15 not here yet: gap of 2
        assert_eq!(r.forward(14), (11, false));
        assert_eq!(r.forward(9), (9, false)); // from before the gap: old offset
        assert!(r.is_stale(12));
        assert_eq!(r.forward(15), (12, false));
        assert_eq!(r.forward(17), (14, false));
        // outputs so far are unique
        let mut all = vec![1u16, 2, 3, 5, 6, 7, 8, 10, 13, 11, 9, 12, 14];
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 13);
        // a stale packet forwarded anyway reuses the seq before the gap
        assert_eq!(r.forward(12), (10, false));
        // drops of stale or old packets do not open a gap
        r.drop_packet(12);
        r.drop_packet(16);
        assert_eq!(r.forward(18), (15, false));
    }

    #[test]
    fn renumber_long_mute() {
        let mut r = Renumber::new();
        assert_eq!(r.forward(1000), (1000, false));
        let mut seq = 1000u16;
        for _ in 0..100_000 {
            seq = seq.wrapping_add(1);
            r.drop_packet(seq);
        }
        assert_eq!(r.forward(seq.wrapping_add(1)), (1001, true));
        assert_eq!(r.forward(seq.wrapping_add(2)), (1002, false));
        // far past the gap, nothing is stale any more
        let mut s = seq.wrapping_add(2);
        for _ in 0..70_000 {
            s = s.wrapping_add(1);
            let (out, resumed) = r.forward(s);
            assert!(!resumed);
            assert_eq!(out, s.wrapping_sub(seq.wrapping_sub(1000)));
        }
    }
}
