//! Tests of the receive statistics (loss, reordering, duplicates, jitter,
//! wrap-around, SSRC and sequence restarts, the JSON summary) and of the
//! renumbering that hides the relay's own drops.

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
