//! Tests of the stereo recorder: tones placed per channel, loss, jitter,
//! reordering, re-anchoring and codec changes, all in injected time.

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
        rec.on_packet(RtpIn {
            channel: *ch,
            arrival_ms: START + at,
            codec: *codec,
            clock_rate: rate,
            seq: *seq,
            timestamp: *ts,
            payload,
        });
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
        rec.on_packet(RtpIn {
            channel: Channel::Left,
            arrival_ms: START + at,
            codec: Codec::Pcmu,
            clock_rate: 8000,
            seq,
            timestamp: ts,
            payload: &pl,
        });
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
        rec.on_packet(RtpIn {
            channel: *ch,
            arrival_ms: START + at,
            codec: *codec,
            clock_rate: 8000,
            seq: seq.wrapping_mul(2),
            timestamp: *ts,
            payload: pl,
        });
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
        rec.on_packet(RtpIn {
            channel: Channel::Left,
            arrival_ms: at,
            codec: Codec::Pcmu,
            clock_rate: 8000,
            seq: k as u16,
            timestamp: ts,
            payload: &payload,
        });
        rec.on_packet(RtpIn {
            channel: Channel::Right,
            arrival_ms: at,
            codec: Codec::Pcmu,
            clock_rate: 8000,
            seq: k as u16,
            timestamp: ts,
            payload: &payload,
        });
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
        rec.on_packet(RtpIn {
            channel: Channel::Left,
            arrival_ms: at,
            codec: Codec::Pcmu,
            clock_rate: 8000,
            seq: k as u16,
            timestamp: (k as u32) * 160,
            payload: &payload,
        });
        if k % 5 == 0 {
            out.extend(rec.take_ready(at).unwrap_or_default());
        }
    }
    // New SSRC: random seq and timestamp.
    for k in 0..100u64 {
        let at = START + 500 * 21 + k * 20;
        rec.on_packet(RtpIn {
            channel: Channel::Left,
            arrival_ms: at,
            codec: Codec::Pcmu,
            clock_rate: 8000,
            seq: 40_000 + k as u16,
            timestamp: 3_000_000_000 + (k as u32) * 160,
            payload: &payload,
        });
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
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).expect("encoder");
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
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).expect("encoder");
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
