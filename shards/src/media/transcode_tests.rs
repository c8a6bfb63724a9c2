use super::*;

const PCMU: (Codec, u8, u32) = (Codec::Pcmu, 0, 8000);
const PCMA: (Codec, u8, u32) = (Codec::Pcma, 8, 8000);
const OPUS: (Codec, u8, u32) = (Codec::Opus, 111, 48000);
const SSRC: u32 = 0x1234_5678;
const BUF: usize = 1500;

/// An RTP packet in a 1500-byte buffer, and its length.
fn packet(pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) -> ([u8; BUF], usize) {
    let mut buf = [0u8; BUF];
    buf[0] = 0x80;
    buf[1] = pt | (u8::from(marker) << 7);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&SSRC.to_be_bytes());
    buf[12..12 + payload.len()].copy_from_slice(payload);
    (buf, 12 + payload.len())
}

fn sine(hz: f64, amp: f64, start: usize, n: usize) -> Vec<i16> {
    (start..start + n)
        .map(|i| (amp * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16)
        .collect()
}

/// Goertzel power of `hz` in `x` sampled at 8 kHz.
fn goertzel(x: &[f64], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

fn rms_db(x: &[f64]) -> f64 {
    let p = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    10.0 * p.max(1e-9).log10()
}

fn decode(codec: Codec, payload: &[u8]) -> Vec<f64> {
    let mut dec = Decoder::new(codec).unwrap();
    let mut out = Vec::new();
    dec.decode(payload, &mut out);
    out.into_iter().map(f64::from).collect()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, b: &mut [u8]) {
        for x in b {
            *x = self.next() as u8;
        }
    }
}

#[test]
fn g711_encoders_invert_the_tables() {
    let codes: Vec<u8> = (0..=255).collect();
    let (mu, a) = (decode(Codec::Pcmu, &codes), decode(Codec::Pcma, &codes));
    for c in 0..=255u8 {
        let (m, l) = (mu[c as usize] as i16, a[c as usize] as i16);
        // µ-law has two zeros (0x7f, 0xff); the encoder writes 0xff.
        let want = if c == 0x7f { 0xff } else { c };
        assert_eq!(ulaw_encode(m), want, "µ-law {c:#x} ({m})");
        assert_eq!(alaw_encode(l), c, "A-law {c:#x} ({l})");
    }
    // Every input lands on a nearby level.
    for x in (i16::MIN..=i16::MAX).step_by(7) {
        let tol = i32::from(x).abs() / 16 + 16;
        let m = mu[usize::from(ulaw_encode(x))] as i32;
        let l = a[usize::from(alaw_encode(x))] as i32;
        assert!((m - i32::from(x)).abs() <= tol.max(40), "µ-law {x} -> {m}");
        assert!((l - i32::from(x)).abs() <= tol.max(40), "A-law {x} -> {l}");
    }
}

#[test]
fn new_rejects_what_it_cannot_do() {
    let err = |f, t| Transcoder::new(f, t).unwrap_err();
    assert!(matches!(
        err(OPUS, (Codec::Opus, 96, 48000)),
        TranscodeError::Unsupported { .. }
    ));
    assert!(matches!(
        err((Codec::G722, 9, 8000), PCMU),
        TranscodeError::Unsupported { .. }
    ));
    assert!(matches!(
        err(PCMU, (Codec::G722, 9, 8000)),
        TranscodeError::Unsupported { .. }
    ));
    assert_eq!(
        err((Codec::Pcmu, 0, 16000), OPUS),
        TranscodeError::Clock {
            codec: Codec::Pcmu,
            clock: 16000
        }
    );
    assert_eq!(
        err(PCMU, (Codec::Opus, 128, 48000)),
        TranscodeError::PayloadType(128)
    );
    // The Opus clock is 48 kHz whatever was signalled; 0 is 8 kHz for G.711.
    assert!(Transcoder::new((Codec::Pcmu, 0, 0), (Codec::Opus, 96, 8000)).is_ok());
    assert!(Transcoder::new(PCMU, PCMA).is_ok());
    assert!(Transcoder::new(PCMU, (Codec::Pcmu, 100, 8000)).is_ok());
}

/// A 1 kHz tone, 2 s of 20 ms PCMU packets, through PCMU -> Opus -> PCMA.
#[test]
fn tone_survives_g711_opus_g711() {
    let mut up = Transcoder::new(PCMU, OPUS).unwrap();
    let mut down = Transcoder::new(OPUS, PCMA).unwrap();
    let ts0 = 0xfff0_0000u32;
    let (mut input, mut output) = (Vec::new(), Vec::new());
    let mut opus_bytes = 0;
    for k in 0..100u16 {
        let pcm = sine(1000.0, 8000.0, usize::from(k) * 160, 160);
        let ulaw: Vec<u8> = pcm.iter().map(|&s| ulaw_encode(s)).collect();
        input.extend(decode(Codec::Pcmu, &ulaw));
        let ts = ts0.wrapping_add(u32::from(k) * 160);
        let (mut buf, len) = packet(0, k == 0, 1000 + k, ts, &ulaw);
        let n = up.transcode(&mut buf, len).unwrap();
        let h = parse_rtp(&buf[..n]).unwrap();
        assert_eq!(
            (h.payload_type, h.seq, h.ssrc, h.marker),
            (111, 1000 + k, SSRC, k == 0)
        );
        assert_eq!(h.timestamp, ts0.wrapping_add(u32::from(k) * 960));
        let opus = &buf[h.payload_offset..n];
        assert_eq!(opus::packet::get_nb_samples(opus, 48000).unwrap(), 960);
        opus_bytes += opus.len();
        let n = down.transcode(&mut buf, n).unwrap();
        let h = parse_rtp(&buf[..n]).unwrap();
        assert_eq!(
            (h.payload_type, h.seq, h.ssrc, h.marker),
            (8, 1000 + k, SSRC, k == 0)
        );
        assert_eq!(h.timestamp, ts, "back to the 8 kHz clock");
        assert_eq!(h.payload_len, 160);
        output.extend(decode(Codec::Pcma, &buf[h.payload_offset..n]));
    }
    assert_eq!((up.dropped(), down.dropped()), (0, 0));
    // Skip the codec's start-up (and its few ms of delay).
    let (i, o) = (&input[1600..], &output[1600..]);
    let ratio = goertzel(o, 1000.0) / goertzel(o, 440.0);
    let level = rms_db(o) - rms_db(i);
    let kbps = opus_bytes as f64 * 8.0 / 2.0 / 1000.0;
    eprintln!("1 kHz/440 Hz power ratio {ratio:.3e}, level {level:+.2} dB, Opus {kbps:.1} kbit/s");
    assert!(ratio > 100.0, "ratio {ratio}");
    assert!(level.abs() < 3.0, "level {level} dB");
    // And a 440 Hz tone is not mistaken for 1 kHz either.
    let mut up = Transcoder::new(PCMU, OPUS).unwrap();
    let mut down = Transcoder::new(OPUS, PCMU).unwrap();
    let mut output = Vec::new();
    for k in 0..50u16 {
        let pcm = sine(440.0, 8000.0, usize::from(k) * 160, 160);
        let ulaw: Vec<u8> = pcm.iter().map(|&s| ulaw_encode(s)).collect();
        let (mut buf, len) = packet(0, false, k, u32::from(k) * 160, &ulaw);
        let n = up.transcode(&mut buf, len).unwrap();
        let n = down.transcode(&mut buf, n).unwrap();
        output.extend(decode(Codec::Pcmu, &buf[12..n]));
    }
    let ratio = goertzel(&output[1600..], 440.0) / goertzel(&output[1600..], 1000.0);
    eprintln!("440 Hz/1 kHz power ratio {ratio:.3e}");
    assert!(ratio > 100.0, "ratio {ratio}");
}

/// Opus from a 48 kHz fullband encoder, in 10/20/40/60 ms packets.
#[test]
fn opus_48k_to_pcmu_any_frame_length() {
    let mut enc = opus::Encoder::new(48000, Channels::Mono, Application::Audio).unwrap();
    let mut t = Transcoder::new(OPUS, PCMU).unwrap();
    let mut output = Vec::new();
    let mut ts = 0u32;
    let mut at = 0usize;
    let lengths = [20usize; 30]
        .into_iter()
        .chain([10, 40, 60, 20, 60, 40, 10]);
    for (seq, ms) in (0u16..).zip(lengths) {
        let n48 = ms * 48;
        let pcm48: Vec<i16> = (at * 6..at * 6 + n48)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 48000.0).sin()) as i16
            })
            .collect();
        let opus = enc.encode_vec(&pcm48, 1275).unwrap();
        let (mut buf, len) = packet(111, false, seq, ts, &opus);
        let n = t.transcode(&mut buf, len).unwrap();
        assert_eq!(n - 12, ms * 8, "{ms} ms");
        assert_eq!(u32::from_be_bytes(buf[4..8].try_into().unwrap()), ts / 6);
        output.extend(decode(Codec::Pcmu, &buf[12..n]));
        ts = ts.wrapping_add(n48 as u32);
        at += ms * 8;
    }
    let o = &output[1600..4800];
    let ratio = goertzel(o, 1000.0) / goertzel(o, 440.0);
    let level = rms_db(o) - 10.0 * (8000.0f64 * 8000.0 / 2.0).log10();
    eprintln!("48 kHz Opus -> PCMU: ratio {ratio:.3e}, level {level:+.2} dB");
    assert!(ratio > 100.0 && level.abs() < 3.0, "{ratio} {level}");
}

#[test]
fn g711_frame_lengths() {
    let mut t = Transcoder::new(PCMA, OPUS).unwrap();
    for (i, samples) in G711_FRAMES.into_iter().enumerate() {
        let (mut buf, len) = packet(8, false, i as u16, 0, &vec![0xd5; samples]);
        let n = t.transcode(&mut buf, len).unwrap();
        assert_eq!(
            opus::packet::get_nb_samples(&buf[12..n], 48000).unwrap(),
            samples * 6
        );
    }
    for samples in [1, 20, 40, 79, 81, 100, 159, 161, 240, 640, 960] {
        let (mut buf, len) = packet(8, false, 0, 0, &vec![0xd5; samples]);
        assert_eq!(t.transcode(&mut buf, len), None, "{samples}");
    }
    assert_eq!(t.dropped(), 11);
}

#[test]
fn other_payload_type_is_left_alone() {
    for (from, to) in [(PCMU, OPUS), (OPUS, PCMU), (PCMU, PCMA)] {
        let mut t = Transcoder::new(from, to).unwrap();
        // telephone-event, CN, and the `to` payload type itself.
        for pt in [101, 13, to.1] {
            let (mut buf, len) = packet(pt, true, 7, 160, &[0x55; 160]);
            let copy = buf;
            assert_eq!(t.transcode(&mut buf, len), None);
            assert_eq!(buf, copy);
        }
        assert_eq!(t.dropped(), 3);
    }
}

#[test]
fn pcmu_to_pcma_by_table() {
    let pcm = sine(1000.0, 8000.0, 0, 160);
    let ulaw: Vec<u8> = pcm.iter().map(|&s| ulaw_encode(s)).collect();
    let mut t = Transcoder::new(PCMU, PCMA).unwrap();
    let (mut buf, len) = packet(0, false, 1, 4242, &ulaw);
    assert_eq!(t.transcode(&mut buf, len), Some(len));
    assert_eq!(
        (buf[1], u32::from_be_bytes(buf[4..8].try_into().unwrap())),
        (8, 4242)
    );
    let back = decode(Codec::Pcma, &buf[12..len]);
    for (&x, &y) in pcm.iter().zip(&back) {
        assert!(
            (f64::from(x) - y).abs() <= f64::from(x).abs() / 16.0 + 16.0,
            "{x} {y}"
        );
    }
    // Same law, another payload type: the payload is unchanged.
    let mut t = Transcoder::new(PCMU, (Codec::Pcmu, 96, 8000)).unwrap();
    let (mut buf, len) = packet(0, false, 1, 0, &ulaw);
    assert_eq!(t.transcode(&mut buf, len), Some(len));
    assert_eq!((buf[1], &buf[12..len]), (96, &ulaw[..]));
}

#[test]
fn csrc_extension_and_padding() {
    let mut t = Transcoder::new(PCMU, OPUS).unwrap();
    let mut buf = [0u8; BUF];
    // P, X, two CSRCs; a one-word extension; 160 bytes of PCMU; 4 padding.
    buf[0] = 0x80 | 0x20 | 0x10 | 2;
    buf[1] = 0x80;
    buf[4..8].copy_from_slice(&100u32.to_be_bytes());
    buf[12..20].copy_from_slice(&[0xcc; 8]);
    buf[20..28].copy_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
    buf[28..188].fill(0xff);
    buf[188..192].copy_from_slice(&[0, 0, 0, 4]);
    let n = t.transcode(&mut buf, 192).unwrap();
    let h = parse_rtp(&buf[..n]).unwrap();
    assert_eq!(buf[0], 0x80 | 0x10 | 2, "P cleared, X and CC kept");
    assert_eq!((h.marker, h.payload_type, h.timestamp), (true, 111, 100));
    assert_eq!(
        &buf[12..28],
        &[0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]
    );
    assert_eq!(
        (h.payload_offset, h.payload_offset + h.payload_len),
        (28, n)
    );
    // And back, from a padded Opus packet.
    let mut down = Transcoder::new(OPUS, PCMU).unwrap();
    buf[0] |= 0x20;
    buf[n..n + 3].copy_from_slice(&[0, 0, 3]);
    let m = down.transcode(&mut buf, n + 3).unwrap();
    assert_eq!((m, buf[0]), (28 + 160, 0x80 | 0x10 | 2));
}

#[test]
fn timestamps_wrap_jump_and_reorder() {
    // G.711 -> Opus: *6, wrapping.
    let mut t = Transcoder::new(PCMU, OPUS).unwrap();
    let ts_out = |t: &mut Transcoder, ts: u32| {
        let (mut buf, len) = packet(0, false, 0, ts, &[0xff; 160]);
        t.transcode(&mut buf, len).unwrap();
        u32::from_be_bytes(buf[4..8].try_into().unwrap())
    };
    let base = u32::MAX - 319;
    assert_eq!(ts_out(&mut t, base), base);
    assert_eq!(
        ts_out(&mut t, base.wrapping_add(160)),
        base.wrapping_add(960)
    );
    assert_eq!(
        ts_out(&mut t, base.wrapping_add(320)),
        base.wrapping_add(1920)
    );
    assert_eq!(
        ts_out(&mut t, base.wrapping_add(480)),
        base.wrapping_add(2880)
    );
    // reordered, then a jump of 10 s
    assert_eq!(
        ts_out(&mut t, base.wrapping_add(160)),
        base.wrapping_add(960)
    );
    assert_eq!(
        ts_out(&mut t, base.wrapping_add(80_480)),
        base.wrapping_add(482_880)
    );
    // Opus -> G.711: /6, exact across the 32-bit wrap.
    let mut enc = opus::Encoder::new(48000, Channels::Mono, Application::Voip).unwrap();
    let opus = enc.encode_vec(&[0; 960], 400).unwrap();
    let mut t = Transcoder::new(OPUS, PCMU).unwrap();
    let ts_out = |t: &mut Transcoder, ssrc: u32, ts: u32| {
        let (mut buf, len) = packet(111, false, 0, ts, &opus);
        buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
        t.transcode(&mut buf, len).unwrap();
        u32::from_be_bytes(buf[4..8].try_into().unwrap())
    };
    let base = u32::MAX - 959 * 3;
    for k in 0..8000u32 {
        let ts = base.wrapping_add(k * 960);
        assert_eq!(ts_out(&mut t, 1, ts), base.wrapping_add(k * 160), "{k}");
    }
    // Many times round the 32-bit input clock (~25 h each) in 2^31-1 steps.
    let mut ts = base;
    let mut out = base.wrapping_add(8000 * 160);
    ts_out(&mut t, 1, base.wrapping_add(8000 * 960));
    ts = ts.wrapping_add(8000 * 960);
    let step = (i32::MAX as u32) / 960 * 960;
    for _ in 0..100 {
        ts = ts.wrapping_add(step);
        out = out.wrapping_add(step / 6);
        assert_eq!(ts_out(&mut t, 1, ts), out);
    }
    // Reordering and a non-multiple-of-6 step stay exact (floor).
    assert_eq!(
        ts_out(&mut t, 1, ts.wrapping_sub(960)),
        out.wrapping_sub(160)
    );
    assert_eq!(ts_out(&mut t, 1, ts.wrapping_add(7)), out.wrapping_add(1));
    assert_eq!(ts_out(&mut t, 1, ts.wrapping_add(5)), out);
    // A new SSRC starts over at its own first timestamp.
    assert_eq!(ts_out(&mut t, 2, 12_345), 12_345);
    assert_eq!(ts_out(&mut t, 2, 12_345 + 960), 12_345 + 160);
    assert_eq!(t.dropped(), 0);
}

#[test]
fn no_room_for_the_output() {
    let mut enc = opus::Encoder::new(8000, Channels::Mono, Application::Voip).unwrap();
    let opus = enc.encode_vec(&sine(1000.0, 8000.0, 0, 160), 400).unwrap();
    let mut t = Transcoder::new(OPUS, PCMU).unwrap();
    let (buf, len) = packet(111, false, 0, 0, &opus);
    let mut tight = buf[..len].to_vec();
    assert_eq!(t.transcode(&mut tight, len), None);
    let mut just = buf[..172].to_vec();
    assert_eq!(t.transcode(&mut just, len), Some(172));
    // len beyond the buffer
    assert_eq!(t.transcode(&mut just, 173), None);
    assert_eq!(t.dropped(), 2);
}

#[test]
fn garbage_never_panics() {
    let mut enc = opus::Encoder::new(8000, Channels::Mono, Application::Voip).unwrap();
    let good_opus = enc.encode_vec(&sine(1000.0, 8000.0, 0, 160), 400).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ok = [0u64; 3];
    for (i, (from, to)) in [(PCMU, OPUS), (OPUS, PCMA), (PCMA, PCMU)]
        .into_iter()
        .enumerate()
    {
        let mut t = Transcoder::new(from, to).unwrap();
        let mut count = 0u64;
        // Every prefix of a valid packet.
        let payload: Vec<u8> = if from.0 == Codec::Opus {
            good_opus.clone()
        } else {
            vec![0xd5; 160]
        };
        let (full, len) = packet(from.1, false, 0, 0, &payload);
        for cut in 0..=len {
            let mut buf = full;
            count += 1;
            if t.transcode(&mut buf, cut).is_some() {
                ok[i] += 1;
            }
        }
        // Random bytes of every length 0..64, raw and behind a valid header,
        // in roomy and in exact-size buffers.
        for _ in 0..200 {
            for n in 0..64 {
                let mut bytes = [0u8; 64];
                rng.fill(&mut bytes[..n]);
                let (mut buf, len) = packet(
                    from.1,
                    rng.next() & 1 == 0,
                    0,
                    rng.next() as u32,
                    &bytes[..n],
                );
                for r in [len, BUF] {
                    count += 2;
                    if t.transcode(&mut buf[..r], len).is_some() {
                        ok[i] += 1;
                    }
                    let mut raw = [0u8; BUF];
                    raw[..n].copy_from_slice(&bytes[..n]);
                    raw[0] = (raw[0] & 0x3f) | 0x80;
                    if t.transcode(&mut raw[..r.max(n)], n).is_some() {
                        ok[i] += 1;
                    }
                }
            }
        }
        assert_eq!(t.dropped() + ok[i], count);
    }
    eprintln!("garbage transcoded (not dropped): {ok:?}");
}

#[test]
fn the_budget_allows_a_burst_then_the_rate() {
    let mut b = Budget::default();
    let burst = (0..1000).take_while(|_| b.take(0)).count();
    assert_eq!(burst, 50);
    // One second later, 100 more; not 101.
    let next = (0..1000).take_while(|_| b.take(1000)).count();
    assert_eq!(next, 50, "refilled to the burst, not beyond");
    let mut b = Budget::default();
    let sent = (0..10_000u64).filter(|i| b.take(i / 10)).count();
    // 10 000 packets in one second: the burst and one second's rate.
    assert!((140..=151).contains(&sent), "{sent}");
}

#[test]
fn opus_packets_over_60_ms_are_dropped_before_decoding() {
    // TOC code 3 (arbitrary frames), config 0 (SILK NB 10 ms), 12 frames:
    // 120 ms in 3 bytes.
    let payload = [0x03, 0x0c, 0x00];
    let mut t = Transcoder::new(OPUS, PCMU).unwrap();
    let (mut buf, len) = packet(111, false, 1, 960, &payload);
    assert_eq!(
        opus::packet::get_nb_samples(&payload, 48_000).ok(),
        Some(5760)
    );
    assert_eq!(t.transcode(&mut buf, len), None);
    assert_eq!(t.dropped(), 1);
}
