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
    fn classify(
        &mut self,
        codec: Codec,
        rate: u32,
        expected: u64,
        seq: u16,
        ts: u32,
        base: u64,
    ) -> Verdict {
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
    #[allow(clippy::too_many_arguments)]
    fn start_stream(
        &mut self,
        codec: Codec,
        rate: u32,
        expected: u64,
        seq: u16,
        ts: u32,
        base: u64,
        stats: &mut RecorderStats,
    ) {
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

    /// Feeds one relayed RTP packet. `clock_rate` is the SDP rate of the
    /// payload type (ignored for Opus and G.722, whose RTP clocks are fixed).
    #[allow(clippy::too_many_arguments)]
    pub fn on_packet(
        &mut self,
        channel: Channel,
        arrival_ms: u64,
        codec: Codec,
        clock_rate: u32,
        seq: u16,
        timestamp: u32,
        payload: &[u8],
    ) {
        self.stats.packets += 1;
        let expected = self.position_at(arrival_ms);
        let rate = codec.rtp_clock(clock_rate);
        let base = self.base;
        let stats = &mut self.stats;
        let track = &mut self.tracks[channel as usize];
        match track.classify(codec, rate, expected, seq, timestamp, base) {
            Verdict::NewStream => {
                track.start_stream(codec, rate, expected, seq, timestamp, base, stats);
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
mod tests {
    use super::super::codec::{ALAW_TABLE, ULAW_TABLE};
    use super::*;

    const START: u64 = 1_700_000_000_000;

    /// (channel, arrival offset ms, codec, seq, ts, payload)
    type Event = (Channel, u64, Codec, u16, u32, Vec<u8>);

    fn tone(freq: f64, amp: f64, from: usize, n: usize, rate: f64) -> Vec<i16> {
        (from..from + n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as i16)
            .collect()
    }

    /// G.711 encoding by nearest table entry (slow, exact inverse).
    fn encode(table: &[i16; 256], pcm: &[i16]) -> Vec<u8> {
        pcm.iter()
            .map(|&x| {
                (0..=255u8)
                    .min_by_key(|&c| (i32::from(table[c as usize]) - i32::from(x)).abs())
                    .unwrap_or(0)
            })
            .collect()
    }

    fn split(bytes: &[u8]) -> (Vec<i16>, Vec<i16>) {
        assert_eq!(bytes.len() % 4, 0);
        bytes
            .chunks_exact(4)
            .map(|f| {
                (
                    i16::from_le_bytes([f[0], f[1]]),
                    i16::from_le_bytes([f[2], f[3]]),
                )
            })
            .unzip()
    }

    /// Power of `freq` in `x` (Goertzel), normalised by length.
    fn goertzel(x: &[i16], freq: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / 8000.0;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0f64, 0f64);
        for &v in x {
            let s = f64::from(v) + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() as f64).powi(2)
    }

    /// Asserts equal PCM without dumping megabytes on failure.
    fn assert_same(got: &[u8], want: &[u8]) {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        assert!(
            got.len() == want.len() && first.is_none(),
            "lengths {} vs {}, first difference at frame {:?}",
            got.len(),
            want.len(),
            first.map(|i| i / 4)
        );
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    /// 20 ms G.711 packets of `pcm`: (arrival offset ms, seq, ts, payload).
    fn g711_packets(
        table: &[i16; 256],
        pcm: &[i16],
        seq0: u16,
        ts0: u32,
    ) -> Vec<(u64, u16, u32, Vec<u8>)> {
        pcm.chunks(160)
            .enumerate()
            .map(|(k, chunk)| {
                (
                    k as u64 * 20,
                    seq0.wrapping_add(k as u16),
                    ts0.wrapping_add(k as u32 * 160),
                    encode(table, chunk),
                )
            })
            .collect()
    }

    /// Feeds packets in the given order, polling take_ready on the way.
    fn run(rec: &mut Recorder, events: &[Event], end_ms: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut last_poll = START;
        for (ch, at, codec, seq, ts, payload) in events {
            let rate = if *codec == Codec::Opus { 48_000 } else { 8000 };
            rec.on_packet(*ch, START + at, *codec, rate, *seq, *ts, payload);
            if START + at >= last_poll + 100 {
                last_poll = START + at;
                if let Some(chunk) = rec.take_ready(last_poll) {
                    out.extend(chunk);
                }
            }
        }
        out.extend(rec.finish(START + end_ms));
        assert_eq!(rec.bytes_emitted(), out.len() as u64);
        out
    }

    fn merge(mut a: Vec<Event>, b: Vec<Event>) -> Vec<Event> {
        a.extend(b);
        a.sort_by_key(|e| e.1);
        a
    }

    fn on(ch: Channel, codec: Codec, offset: u64, p: Vec<(u64, u16, u32, Vec<u8>)>) -> Vec<Event> {
        p.into_iter()
            .map(|(at, seq, ts, pl)| (ch, at + offset, codec, seq, ts, pl))
            .collect()
    }

    #[test]
    fn two_tones_stay_on_their_channels() {
        let left = tone(440.0, 8000.0, 0, 16_000, 8000.0);
        let right = tone(1000.0, 8000.0, 0, 16_000, 8000.0);
        let events = merge(
            on(
                Channel::Left,
                Codec::Pcmu,
                0,
                g711_packets(&ULAW_TABLE, &left, 100, 12_345),
            ),
            // The callee's media starts 40 ms later, with its own seq/ts bases.
            on(
                Channel::Right,
                Codec::Pcma,
                40,
                g711_packets(&ALAW_TABLE, &right, 65_500, u32::MAX - 800),
            ),
        );
        let mut rec = Recorder::new(START);
        let out = run(&mut rec, &events, 2000);
        let (l, r) = split(&out);
        // Right ends 40 ms after left.
        assert_eq!(l.len(), 16_000 + 320);
        assert!(l[16_000..].iter().all(|&s| s == 0));
        assert!(r[..320].iter().all(|&s| s == 0));
        assert!(goertzel(&l, 440.0) > 1000.0 * goertzel(&l, 1000.0));
        assert!(goertzel(&r, 1000.0) > 1000.0 * goertzel(&r, 440.0));
        // Sample-exact placement: the decoded G.711 is the tone within the
        // quantisation error.
        for i in 0..16_000 {
            assert!(
                (i32::from(l[i]) - i32::from(left[i])).abs() < 300,
                "left {i}"
            );
            assert!(
                (i32::from(r[i + 320]) - i32::from(right[i])).abs() < 300,
                "right {i}"
            );
        }
        let stats = rec.stats();
        assert_eq!(stats.packets, 200);
        assert_eq!(stats.late, 0);
        assert_eq!(stats.discontinuities, 0);
    }

    #[test]
    fn one_way_audio_still_flows() {
        let left = tone(440.0, 8000.0, 0, 8000, 8000.0);
        let mut rec = Recorder::new(START);
        let mut out = Vec::new();
        for (at, seq, ts, pl) in g711_packets(&ULAW_TABLE, &left, 1, 0) {
            rec.on_packet(Channel::Left, START + at, Codec::Pcmu, 8000, seq, ts, &pl);
        }
        let chunk = rec.take_ready(START + 1000).expect("ready");
        assert_eq!(chunk.len(), 700 * 8 * 4);
        out.extend(chunk);
        assert!(rec.take_ready(START + 1000).is_none(), "nothing new");
        // The call goes on without media; the recording still advances.
        out.extend(rec.take_ready(START + 1300).expect("ready"));
        out.extend(rec.finish(START + 1500));
        let (l, r) = split(&out);
        assert_eq!(l.len(), 12_000);
        assert!(r.iter().all(|&s| s == 0));
        assert!(rms(&l[..8000]) > 4000.0);
        assert!(l[8000..].iter().all(|&s| s == 0));

        // No media at all: silence of the right length.
        let mut quiet = Recorder::new(START);
        assert_eq!(quiet.take_ready(START + 200), None);
        assert_eq!(
            quiet.take_ready(START + 500).map(|c| c.len()),
            Some(200 * 8 * 4)
        );
        assert_eq!(quiet.finish(START + 600).len(), 400 * 8 * 4);
        assert_eq!(quiet.bytes_emitted(), 600 * 8 * 4);
    }

    #[test]
    fn silence_suppression_gap_becomes_zeros() {
        let first = tone(440.0, 8000.0, 0, 8000, 8000.0);
        let second = tone(440.0, 8000.0, 24_000, 8000, 8000.0);
        let mut packets = g711_packets(&ULAW_TABLE, &first, 10, 1000);
        // After 2 s without packets the talk spurt resumes: seq continues,
        // the timestamp and the arrival time both jump by the gap.
        for (at, seq, ts, pl) in g711_packets(&ULAW_TABLE, &second, 60, 1000 + 24_000) {
            packets.push((at + 3000, seq, ts, pl));
        }
        let mut rec = Recorder::new(START);
        let out = run(&mut rec, &on(Channel::Left, Codec::Pcmu, 0, packets), 4000);
        let (l, _) = split(&out);
        assert_eq!(l.len(), 32_000);
        assert!(l[8000..24_000].iter().all(|&s| s == 0));
        assert!(rms(&l[..8000]) > 4000.0 && rms(&l[24_000..]) > 4000.0);
        assert_eq!(rec.stats().concealed_samples, 0);
        assert_eq!(rec.stats().discontinuities, 0);
    }

    #[test]
    fn late_duplicate_and_reordered_packets() {
        let pcm = tone(440.0, 8000.0, 0, 16_000, 8000.0);
        let clean = on(
            Channel::Left,
            Codec::Pcmu,
            0,
            g711_packets(&ULAW_TABLE, &pcm, 0, 0),
        );
        let reference = run(&mut Recorder::new(START), &clean, 2000);

        let mut messy = clean.clone();
        // Duplicate of packet 5 right after it.
        messy.insert(6, clean[5].clone());
        // Packets 12 and 11 swapped.
        let i11 = messy.iter().position(|e| e.3 == 11).expect("11");
        messy.swap(i11, i11 + 1);
        // Packet 30 arrives again 600 ms late, long after it was written.
        let mut late = clean[30].clone();
        late.1 += 600;
        messy.push(late);
        messy.sort_by_key(|e| e.1);
        let mut rec = Recorder::new(START);
        let out = run(&mut rec, &messy, 2000);
        // Reordering is undone, late copies are ignored.
        assert_same(&out, &reference);
        assert_eq!(rec.stats().late, 2);

        // A lost packet whose copy arrives after its place was emitted.
        let mut lossy: Vec<_> = clean.iter().filter(|e| e.3 != 40).cloned().collect();
        let mut after = clean[40].clone();
        after.1 += 700;
        lossy.push(after);
        lossy.sort_by_key(|e| e.1);
        let mut rec = Recorder::new(START);
        let out = run(&mut rec, &lossy, 2000);
        let (l, _) = split(&out);
        let (want, _) = split(&reference);
        assert_eq!(l.len(), want.len());
        assert!(
            l[40 * 160..41 * 160].iter().all(|&s| s == 0),
            "G.711 loss is silence"
        );
        assert!(l[..40 * 160] == want[..40 * 160]);
        assert!(l[41 * 160..] == want[41 * 160..]);
        assert_eq!(rec.stats().late, 1);
        assert_eq!(rec.stats().concealed_samples, 160);
    }

    #[test]
    fn network_jitter_does_not_disturb_placement() {
        let pcm = tone(440.0, 8000.0, 0, 24_000, 8000.0);
        let clean = on(
            Channel::Left,
            Codec::Pcmu,
            0,
            g711_packets(&ULAW_TABLE, &pcm, 65_000, 4_000_000_000),
        );
        let reference = run(&mut Recorder::new(START), &clean, 3000);
        // Every packet but the first delayed by 0–250 ms (so some overtake
        // others), fed in arrival order.
        let mut state = 12_345u64;
        let mut jittery: Vec<_> = clean
            .iter()
            .enumerate()
            .map(|(k, e)| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let mut e = e.clone();
                if k > 0 {
                    e.1 += (state >> 33) % 251;
                }
                e
            })
            .collect();
        jittery.sort_by_key(|e| e.1);
        assert!(
            jittery.windows(2).any(|w| w[0].3.wrapping_add(1) != w[1].3),
            "no reordering"
        );
        let mut rec = Recorder::new(START);
        let out = run(&mut rec, &jittery, 3000);
        assert_same(&out, &reference);
        assert_eq!(rec.stats().discontinuities, 0);
        assert_eq!(rec.stats().late, 0);
    }

    #[test]
    fn sequence_gaps_without_time_gaps_do_not_wait() {
        let pcm = tone(440.0, 8000.0, 0, 8000, 8000.0);
        let clean = on(
            Channel::Left,
            Codec::Pcmu,
            0,
            g711_packets(&ULAW_TABLE, &pcm, 0, 0),
        );
        let reference = run(&mut Recorder::new(START), &clean, 1000);
        // Every other sequence number went to packets we are not given.
        let mut rec = Recorder::new(START);
        let mut out = Vec::new();
        for (ch, at, codec, seq, ts, pl) in &clean {
            rec.on_packet(*ch, START + at, *codec, 8000, seq.wrapping_mul(2), *ts, pl);
            assert!(rec.tracks[0].queue.is_empty());
        }
        out.extend(rec.take_ready(START + 1000).unwrap_or_default());
        assert_eq!(out.len(), 700 * 8 * 4, "decoded without waiting");
        out.extend(rec.finish(START + 1000));
        assert_same(&out, &reference);
        assert_eq!(rec.stats().late + rec.stats().concealed_samples, 0);
    }

    #[test]
    fn window_stays_bounded() {
        let pcm = tone(440.0, 8000.0, 0, 160, 8000.0);
        let payload = encode(&ULAW_TABLE, &pcm);
        let mut rec = Recorder::new(START);
        let mut total = 0usize;
        let mut largest = 0usize;
        for k in 0..3000u64 {
            let at = START + k * 20;
            // Every 500th packet carries a bogus timestamp 5 s ahead.
            let ts = (k as u32) * 160 + if k % 500 == 250 { 40_000 } else { 0 };
            rec.on_packet(Channel::Left, at, Codec::Pcmu, 8000, k as u16, ts, &payload);
            rec.on_packet(
                Channel::Right,
                at,
                Codec::Pcmu,
                8000,
                k as u16,
                ts,
                &payload,
            );
            for t in &rec.tracks {
                largest = largest.max(t.samples.len());
                assert!(t.queue.len() <= 1);
            }
            if k % 5 == 4 {
                total += rec.take_ready(at).map_or(0, |c| c.len());
            }
        }
        total += rec.finish(START + 60_000).len();
        // Window: 300 ms horizon + 100 ms between polls + one packet.
        assert!(largest <= 420 * 8, "window grew to {largest} samples");
        assert_eq!(total, 60_000 * 8 * 4);
        assert_eq!(rec.stats().discontinuities, 2 * 6 * 2);
        assert_eq!(rec.stats().late, 0);
    }

    #[test]
    fn clock_drift_and_new_ssrc_reanchor() {
        let payload = encode(&ULAW_TABLE, &tone(440.0, 8000.0, 0, 160, 8000.0));
        let mut rec = Recorder::new(START);
        let mut out = Vec::new();
        // A sender whose clock is 5 % slow: its timeline falls behind
        // arrival; the recorder re-anchors instead of dropping the rest.
        for k in 0..500u64 {
            let at = START + k * 21;
            rec.on_packet(
                Channel::Left,
                at,
                Codec::Pcmu,
                8000,
                k as u16,
                (k as u32) * 160,
                &payload,
            );
            if k % 5 == 0 {
                out.extend(rec.take_ready(at).unwrap_or_default());
            }
        }
        // New SSRC: random seq and timestamp.
        for k in 0..100u64 {
            let at = START + 500 * 21 + k * 20;
            rec.on_packet(
                Channel::Left,
                at,
                Codec::Pcmu,
                8000,
                40_000 + k as u16,
                3_000_000_000 + (k as u32) * 160,
                &payload,
            );
        }
        out.extend(rec.finish(START + 500 * 21 + 2000));
        let (l, _) = split(&out);
        let written = l.chunks(160).filter(|c| rms(c) > 1000.0).count();
        // Every packet is recorded; what the slow clock costs is one ~310 ms
        // gap where the stream was moved forward (and the new SSRC starts
        // at its arrival time, after the old stream's lag).
        assert_eq!(l.len(), (500 * 21 + 2000) * 8);
        assert!(written >= 595, "only {written} of 625 chunks hold audio");
        assert_eq!(rec.stats().discontinuities, 2);
        assert_eq!(rec.stats().late, 0);
    }

    #[test]
    fn opus_tone_with_loss_concealed() {
        let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
            .expect("encoder");
        let pcm = tone(1000.0, 10_000.0, 0, 48_000, 48_000.0);
        let packets: Vec<(u64, u16, u32, Vec<u8>)> = pcm
            .chunks(960)
            .enumerate()
            .map(|(k, frame)| {
                let pkt = enc.encode_vec(frame, 1500).expect("encode");
                (k as u64 * 20, 7 + k as u16, 99 + k as u32 * 960, pkt)
            })
            .collect();
        assert_eq!(packets.len(), 50);

        let full = on(Channel::Left, Codec::Opus, 0, packets.clone());
        let mut rec = Recorder::new(START);
        let (l, r) = split(&run(&mut rec, &full, 1000));
        assert_eq!(l.len(), 8000);
        assert!(r.iter().all(|&s| s == 0));
        let steady = &l[800..];
        let p1k = goertzel(steady, 1000.0);
        assert!(p1k > 100.0 * goertzel(steady, 500.0), "1 kHz vs 500 Hz");
        assert!(p1k > 100.0 * goertzel(steady, 2000.0), "1 kHz vs 2 kHz");
        assert_eq!(rec.stats().decode_errors, 0);

        // Drop packets 25 and 26: PLC fills 40 ms, the length is unchanged.
        let lossy: Vec<_> = full
            .iter()
            .filter(|e| e.3 != 32 && e.3 != 33)
            .cloned()
            .collect();
        let mut rec = Recorder::new(START);
        let (l2, _) = split(&run(&mut rec, &lossy, 1000));
        assert_eq!(l2.len(), 8000);
        assert_eq!(rec.stats().concealed_samples, 320);
        let hole = &l2[25 * 160..27 * 160];
        assert!(
            rms(hole) > 0.2 * rms(steady),
            "PLC output too quiet: {}",
            rms(hole)
        );
        assert!(goertzel(&l2[800..], 1000.0) > 30.0 * goertzel(&l2[800..], 2000.0));
        // Before the loss the output is identical.
        assert!(l2[..25 * 160] == l[..25 * 160]);
    }

    #[test]
    fn codec_change_mid_call() {
        let first = tone(440.0, 8000.0, 0, 8000, 8000.0);
        let mut events = on(
            Channel::Right,
            Codec::Pcmu,
            0,
            g711_packets(&ULAW_TABLE, &first, 500, 0),
        );
        // Re-INVITE to Opus: new seq/ts bases, media continues.
        let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
            .expect("encoder");
        let second = tone(1000.0, 10_000.0, 0, 48_000, 48_000.0);
        for (k, frame) in second.chunks(960).enumerate() {
            let pkt = enc.encode_vec(frame, 1500).expect("encode");
            events.push((
                Channel::Right,
                1000 + k as u64 * 20,
                Codec::Opus,
                9000 + k as u16,
                777 + k as u32 * 960,
                pkt,
            ));
        }
        let mut rec = Recorder::new(START);
        let (_, r) = split(&run(&mut rec, &events, 2000));
        assert_eq!(r.len(), 16_000);
        assert!(goertzel(&r[..8000], 440.0) > 100.0 * goertzel(&r[..8000], 1000.0));
        assert!(goertzel(&r[8800..], 1000.0) > 100.0 * goertzel(&r[8800..], 440.0));
        assert_eq!(rec.stats().discontinuities, 1);
    }
}
