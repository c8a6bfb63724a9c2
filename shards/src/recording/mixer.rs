//! The per-call stereo recorder (sans-IO, injected time): places each
//! relayed packet's decoded audio by RTP timestamp on its channel (caller
//! left, callee right), conceals short losses, turns long gaps into silence,
//! reorders late packets within a small queue and hands out interleaved
//! 8 kHz s16le stereo once the jitter horizon has passed.
//!
//! Positions are absolute sample indices since `start_ms` (8 per ms). Only
//! a window of not-yet-emitted samples is kept: from `base` (everything
//! before it has been returned by `take_ready`) to the furthest sample a
//! packet wrote, which the arrival-time check keeps within about a second
//! of "now".

use std::collections::VecDeque;

use super::codec::{Codec, Decoder};

/// Samples per millisecond at the recording rate.
const PER_MS: u64 = 8;
/// Audio younger than this is held back for late packets.
const HORIZON_MS: u64 = 300;
/// Gaps up to this many samples (100 ms) are concealed, longer ones are silence.
const MAX_CONCEAL: u64 = 800;
/// A timestamp jump beyond this (10 s) starts a new stream.
const MAX_JUMP: i64 = 80_000;
/// A packet placed more than this (1 s) ahead of its arrival time re-anchors.
const MAX_AHEAD: u64 = 8_000;
/// Hard cap on the window (10 s): packets beyond it are dropped.
const MAX_WINDOW: u64 = 80_000;
/// Sequence numbers this far behind the expected one count as late, not as
/// a new stream.
const LATE_SEQ_WINDOW: i64 = 1_000;
/// This many late packets in a row mean the stream's clock left ours: re-anchor.
const MAX_LATE_RUN: u32 = 10;
/// Out-of-order packets held while waiting for a missing one.
const MAX_QUEUE: usize = 64;
/// Frame length assumed before the first decoded packet (20 ms).
const DEFAULT_FRAME: u64 = 160;

/// Which side of the call a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The caller (A leg): left channel.
    Left,
    /// The callee (B leg): right channel.
    Right,
}

/// One relayed RTP packet as the recorder sees it ([`Recorder::on_packet`]).
#[derive(Debug, Clone, Copy)]
pub struct RtpIn<'a> {
    /// Which side sent it.
    pub channel: Channel,
    /// When it arrived, on the clock of [`Recorder::new`]'s `start_ms`.
    pub arrival_ms: u64,
    pub codec: Codec,
    /// The SDP rate of the payload type (ignored for Opus and G.722, whose
    /// RTP clocks are fixed).
    pub clock_rate: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub payload: &'a [u8],
}

/// A packet's timing facts, worked out once per packet for its track.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    codec: Codec,
    /// RTP clock of the timestamp.
    rate: u32,
    /// Where the arrival time places it.
    expected: u64,
    seq: u16,
    ts: u32,
}

/// Counters of what the recorder did with the packets it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Packets passed to `on_packet`.
    pub packets: u64,
    /// Late or duplicate packets ignored.
    pub late: u64,
    /// Samples synthesised by packet-loss concealment.
    pub concealed_samples: u64,
    /// Packets that failed to decode (recorded as silence).
    pub decode_errors: u64,
    /// Times a channel was re-anchored (new SSRC, timestamp jump, codec
    /// change, clock drift).
    pub discontinuities: u64,
    /// Packets of a codec without a decoder (recorded as silence).
    pub undecodable: u64,
    /// Packets dropped because they fell beyond the window cap (the caller
    /// is not calling `take_ready`).
    pub dropped: u64,
}

/// Timing of the RTP stream currently feeding a track.
#[derive(Debug)]
struct Stream {
    codec: Codec,
    /// RTP clock of the stream's timestamps.
    rate: u32,
    /// Position of the anchor packet (extended timestamp 0).
    anchor_pos: i64,
    /// Extended timestamp (relative to the anchor) of the newest packet.
    ext_last: i64,
    /// Raw timestamp of the newest packet.
    last_ts: u32,
    /// Extended sequence number expected next in order.
    next_seq: i64,
    /// Highest extended sequence number seen (the packet `last_ts` is from).
    newest_seq: i64,
}

impl Stream {
    fn position(&self, ext_ts: i64) -> i64 {
        self.anchor_pos + (ext_ts * PER_MS as i64 * 1000).div_euclid(self.rate as i64)
    }
}

/// A packet that arrived ahead of a missing one.
#[derive(Debug)]
struct Pending {
    seq: i64,
    pos: u64,
    payload: Vec<u8>,
}

enum Verdict {
    NewStream,
    InOrder(u64),
    Future(i64, u64),
    Late,
}

/// One channel: its stream timing, decoder and not-yet-emitted samples.
#[derive(Debug, Default)]
struct Track {
    stream: Option<Stream>,
    decoder: Option<Decoder>,
    /// `samples[i]` is position `base + i`; positions past the end are silence.
    samples: Vec<i16>,
    /// Everything before this position is final for this track.
    next: u64,
    /// End of the last decoded packet.
    real_end: u64,
    /// Whether a gap right after `next` may be concealed (same stream).
    concealable: bool,
    /// Samples in the last decoded packet.
    frame: u64,
    queue: VecDeque<Pending>,
    late_run: u32,
    scratch: Vec<i16>,
}

impl Track {
    fn classify(&mut self, a: &Arrival, base: u64) -> Verdict {
        let Arrival {
            codec,
            rate,
            expected,
            seq,
            ts,
        } = *a;
        let Some(s) = &self.stream else {
            return Verdict::NewStream;
        };
        if s.codec != codec || s.rate != rate {
            return Verdict::NewStream;
        }
        let dseq = i64::from(seq.wrapping_sub(s.next_seq as u16) as i16);
        let dts = i64::from(ts.wrapping_sub(s.last_ts) as i32);
        let dts_samples = dts * (PER_MS as i64 * 1000) / rate as i64;
        if !(-MAX_JUMP..=MAX_JUMP).contains(&dts_samples) {
            return Verdict::NewStream;
        }
        if dseq < 0 {
            if dseq < -LATE_SEQ_WINDOW {
                return Verdict::NewStream;
            }
            return self.late();
        }
        let frame = self.frame.max(DEFAULT_FRAME) as i64;
        if s.next_seq + dseq > s.newest_seq && dts_samples < -frame {
            // Newer by sequence number but earlier by more than a frame.
            return Verdict::NewStream;
        }
        let pos = s.position(s.ext_last + dts);
        if pos < 0 {
            return self.late();
        }
        let pos = pos as u64;
        if pos > expected + MAX_AHEAD {
            return Verdict::NewStream;
        }
        // A packet placed further behind its arrival than the jitter
        // horizon is (about to be) too late. A run of them means the
        // stream's clock is slower than ours, or its timing changed.
        if pos + HORIZON_MS * PER_MS < expected {
            if self.late_run >= MAX_LATE_RUN {
                return Verdict::NewStream;
            }
            self.late_run += 1;
        } else {
            self.late_run = 0;
        }
        let ext_seq = s.next_seq + dseq;
        if dseq == 0 {
            // Even a packet (partly) before what was emitted is decoded, to
            // keep the decoder and the sequence in step.
            Verdict::InOrder(pos)
        } else if pos < base {
            Verdict::Late
        } else if self.concealable && pos == self.real_end {
            // Sequence numbers skipped but no audio missing (packets of
            // another payload type, e.g. DTMF, were not passed to us).
            if let Some(s) = &mut self.stream {
                s.next_seq = ext_seq;
            }
            Verdict::InOrder(pos)
        } else {
            Verdict::Future(ext_seq, pos)
        }
    }

    fn late(&mut self) -> Verdict {
        if self.late_run >= MAX_LATE_RUN {
            return Verdict::NewStream;
        }
        self.late_run += 1;
        Verdict::Late
    }

    /// Notes the packet as the newest if its sequence number is.
    fn advance(&mut self, seq: i64, ts: u32) {
        if let Some(s) = &mut self.stream {
            if seq > s.newest_seq {
                s.newest_seq = seq;
                s.ext_last += i64::from(ts.wrapping_sub(s.last_ts) as i32);
                s.last_ts = ts;
            }
        }
    }

    /// Starts a new stream with this packet as anchor.
    fn start_stream(&mut self, a: &Arrival, base: u64, stats: &mut RecorderStats) {
        let Arrival {
            codec,
            rate,
            expected,
            seq,
            ts,
        } = *a;
        self.flush_queue(base, stats);
        if self.stream.is_some() {
            stats.discontinuities += 1;
        }
        if self.decoder.as_ref().map(Decoder::codec) != Some(codec) {
            if let Some(old) = self.decoder.take() {
                stats.decode_errors += old.errors();
            }
            match Decoder::new(codec) {
                Ok(d) => self.decoder = Some(d),
                Err(e) => tracing::warn!(error = %e, "recording: channel recorded as silence"),
            }
        }
        let mut anchor = expected.max(base);
        if self.next > anchor {
            if self.next - anchor <= MAX_AHEAD {
                // Carry on right after what this track already holds.
                anchor = self.next;
            } else {
                // The old stream ran far ahead of real time: cut it back.
                self.samples.truncate((anchor - base) as usize);
                self.next = anchor;
                self.real_end = self.real_end.min(anchor);
            }
        }
        self.stream = Some(Stream {
            codec,
            rate,
            anchor_pos: anchor as i64,
            ext_last: 0,
            last_ts: ts,
            next_seq: i64::from(seq),
            newest_seq: i64::from(seq),
        });
        self.concealable = false;
        self.late_run = 0;
    }

    /// Decodes one in-order packet at `pos`, filling the gap before it.
    fn deliver(&mut self, pos: u64, payload: &[u8], base: u64, stats: &mut RecorderStats) {
        if let Some(s) = &mut self.stream {
            s.next_seq += 1;
        }
        let Some(dec) = self.decoder.as_mut() else {
            stats.undecodable += 1;
            self.concealable = false;
            return;
        };
        if pos >= base + MAX_WINDOW {
            stats.dropped += 1;
            self.concealable = false;
            return;
        }
        if pos > self.next {
            let gap = pos - self.next;
            if self.concealable && self.next == self.real_end && gap <= MAX_CONCEAL {
                self.scratch.clear();
                dec.conceal(gap as usize, &mut self.scratch);
                stats.concealed_samples += gap;
                let from = self.next;
                write(&mut self.samples, base, from, &self.scratch, from);
            }
            self.next = pos;
        }
        self.scratch.clear();
        dec.decode(payload, &mut self.scratch);
        let len = self.scratch.len() as u64;
        write(
            &mut self.samples,
            base,
            pos,
            &self.scratch,
            self.next.max(base),
        );
        let end = (pos + len).min(base + MAX_WINDOW);
        if len > 0 && end <= base {
            stats.late += 1;
        }
        self.next = self.next.max(end);
        self.real_end = end;
        self.concealable = true;
        if len > 0 {
            self.frame = len;
        }
    }

    /// Delivers queued packets that are next in sequence.
    fn drain_in_order(&mut self, base: u64, stats: &mut RecorderStats) {
        loop {
            let Some(want) = self.stream.as_ref().map(|s| s.next_seq) else {
                return;
            };
            while self.queue.front().is_some_and(|p| p.seq < want) {
                self.queue.pop_front();
            }
            match self.queue.front() {
                Some(p) if p.seq == want => {}
                _ => return,
            }
            if let Some(p) = self.queue.pop_front() {
                self.deliver(p.pos, &p.payload, base, stats);
            }
        }
    }

    /// Gives up on the missing packet(s) before the head of the queue.
    fn skip_to_queue_head(&mut self, base: u64, stats: &mut RecorderStats) {
        if let Some(p) = self.queue.pop_front() {
            if let Some(s) = &mut self.stream {
                s.next_seq = p.seq;
            }
            self.deliver(p.pos, &p.payload, base, stats);
            self.drain_in_order(base, stats);
        }
    }

    fn flush_queue(&mut self, base: u64, stats: &mut RecorderStats) {
        while !self.queue.is_empty() {
            self.skip_to_queue_head(base, stats);
        }
    }

    fn enqueue(
        &mut self,
        seq: i64,
        pos: u64,
        payload: &[u8],
        base: u64,
        stats: &mut RecorderStats,
    ) {
        let at = self.queue.partition_point(|p| p.seq < seq);
        if self.queue.get(at).is_some_and(|p| p.seq == seq) {
            stats.late += 1;
            return;
        }
        self.queue.insert(
            at,
            Pending {
                seq,
                pos,
                payload: payload.to_vec(),
            },
        );
        if self.queue.len() > MAX_QUEUE {
            self.skip_to_queue_head(base, stats);
        }
    }
}

/// Copies `data` (which starts at position `pos`) into the window, skipping
/// positions before `from` and beyond the window cap.
fn write(samples: &mut Vec<i16>, base: u64, pos: u64, data: &[i16], from: u64) {
    let start = pos.max(from).max(base);
    let end = (pos + data.len() as u64).min(base + MAX_WINDOW);
    if start >= end {
        return;
    }
    let need = (end - base) as usize;
    if samples.len() < need {
        samples.resize(need, 0);
    }
    let dst = &mut samples[(start - base) as usize..need];
    dst.copy_from_slice(&data[(start - pos) as usize..(end - pos) as usize]);
}

/// Stereo recorder of one call. See the module documentation.
#[derive(Debug)]
pub struct Recorder {
    start_ms: u64,
    /// Position of the first sample not yet emitted.
    base: u64,
    tracks: [Track; 2],
    emitted: u64,
    stats: RecorderStats,
}

impl Recorder {
    /// `start_ms`: when the call's media started (arrival time of its first
    /// relayed packet); the same clock as the later `arrival_ms`/`now_ms`.
    pub fn new(start_ms: u64) -> Recorder {
        Recorder {
            start_ms,
            base: 0,
            tracks: [Track::default(), Track::default()],
            emitted: 0,
            stats: RecorderStats::default(),
        }
    }

    fn position_at(&self, ms: u64) -> u64 {
        ms.saturating_sub(self.start_ms).saturating_mul(PER_MS)
    }

    /// Feeds one relayed RTP packet.
    pub fn on_packet(&mut self, packet: RtpIn<'_>) {
        let RtpIn {
            channel,
            arrival_ms,
            codec,
            clock_rate,
            seq,
            timestamp,
            payload,
        } = packet;
        self.stats.packets += 1;
        let expected = self.position_at(arrival_ms);
        let arrival = Arrival {
            codec,
            rate: codec.rtp_clock(clock_rate),
            expected,
            seq,
            ts: timestamp,
        };
        let base = self.base;
        let stats = &mut self.stats;
        let track = &mut self.tracks[channel as usize];
        match track.classify(&arrival, base) {
            Verdict::NewStream => {
                track.start_stream(&arrival, base, stats);
                let pos = track
                    .stream
                    .as_ref()
                    .map_or(expected, |s| s.anchor_pos as u64);
                track.deliver(pos, payload, base, stats);
                track.drain_in_order(base, stats);
            }
            Verdict::InOrder(pos) => {
                let seq = track.stream.as_ref().map_or(0, |s| s.next_seq);
                track.advance(seq, timestamp);
                track.deliver(pos, payload, base, stats);
                track.drain_in_order(base, stats);
            }
            Verdict::Future(seq, pos) => {
                track.advance(seq, timestamp);
                track.enqueue(seq, pos, payload, base, stats);
            }
            Verdict::Late => stats.late += 1,
        }
    }

    /// Interleaved s16le stereo for everything older than `now_ms` minus the
    /// 300 ms jitter horizon that was not returned before; `None` if nothing.
    pub fn take_ready(&mut self, now_ms: u64) -> Option<Vec<u8>> {
        let horizon = self.position_at(now_ms.saturating_sub(HORIZON_MS));
        if horizon <= self.base {
            return None;
        }
        let base = self.base;
        for track in &mut self.tracks {
            // The audio at `next` is about to go out: stop waiting for
            // whatever is missing there.
            while track.next < horizon && !track.queue.is_empty() {
                track.skip_to_queue_head(base, &mut self.stats);
            }
        }
        Some(self.emit(horizon))
    }

    /// Everything that is left, up to the later of `end_ms` and the last
    /// written sample. The recorder can be dropped afterwards.
    pub fn finish(&mut self, end_ms: u64) -> Vec<u8> {
        let base = self.base;
        for track in &mut self.tracks {
            track.flush_queue(base, &mut self.stats);
        }
        let end = self
            .tracks
            .iter()
            .map(|t| t.next)
            .fold(self.position_at(end_ms), u64::max);
        if end <= self.base {
            return Vec::new();
        }
        self.emit(end)
    }

    /// Bytes of PCM handed out so far (the WAV data size).
    pub fn bytes_emitted(&self) -> u64 {
        self.emitted
    }

    pub fn stats(&self) -> RecorderStats {
        let mut stats = self.stats;
        for track in &self.tracks {
            stats.decode_errors += track.decoder.as_ref().map_or(0, Decoder::errors);
        }
        stats
    }

    fn emit(&mut self, upto: u64) -> Vec<u8> {
        let n = (upto - self.base) as usize;
        let mut out = Vec::with_capacity(n * 4);
        let [left, right] = &mut self.tracks;
        for i in 0..n {
            let l = left.samples.get(i).copied().unwrap_or(0);
            let r = right.samples.get(i).copied().unwrap_or(0);
            out.extend_from_slice(&l.to_le_bytes());
            out.extend_from_slice(&r.to_le_bytes());
        }
        for track in &mut self.tracks {
            let k = n.min(track.samples.len());
            track.samples.drain(..k);
            track.next = track.next.max(upto);
        }
        self.base = upto;
        self.emitted += out.len() as u64;
        out
    }
}

#[cfg(test)]
#[path = "mixer_tests.rs"]
mod tests;
