//! Relay edges with injected time: latching and probation, NAT, RTCP (muxed
//! and not), mute renumbering, the RTP timeout, the CDR report.

use super::*;

fn relay(start: u16) -> MediaRelay {
    relay_pairs(start, 20)
}

fn relay_pairs(start: u16, pairs: u16) -> MediaRelay {
    MediaRelay::new(
        RelayConfig {
            bind_ip: "127.0.0.1".parse().unwrap(),
            advertise: "127.0.0.1".parse().unwrap(),
            port_start: start,
            port_end: start + 2 * pairs,
            rtp_timeout_ms: 5_000,
            recordings_dir: PathBuf::from("/nonexistent"),
            recordings_cdr_dir: PathBuf::from("recordings"),
            recorder: None,
        },
        0,
        1,
    )
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn sig(rtp: &str, mux: bool) -> Signalled {
    let rtp = addr(rtp);
    Signalled {
        rtp: Some(rtp),
        rtcp: Some(SocketAddr::new(rtp.ip(), rtp.port() + 1)),
        rtcp_mux: mux,
        hold: false,
        codecs: vec![(0, "PCMU".into(), 8000)],
    }
}

fn packet(seq: u16, ts: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&[0xffu8; 160]);
    p
}

fn seq_of(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}

/// A session between a caller at 127.0.0.1:7000 and a callee at 127.0.0.1:8000.
fn session(r: &mut MediaRelay, id: u64) -> (u16, u16) {
    let (a, b) = r.create(id, "call-1@test", false).unwrap();
    r.signalled(id, Side::Caller, sig("127.0.0.1:7000", false), Some(false));
    r.signalled(id, Side::Callee, sig("127.0.0.1:8000", false), Some(false));
    r.answered(id, 0);
    (a, b)
}

#[test]
fn forwards_both_ways_out_of_the_other_sides_socket() {
    let mut r = relay(62000);
    let (a, b) = session(&mut r, 1);
    assert_eq!(r.take_opened().len(), 4);
    let mut p = packet(10, 1600);
    let f = r.on_packet(20, a, addr("127.0.0.1:7000"), &mut p).unwrap();
    assert_eq!(f.dest, addr("127.0.0.1:8000"));
    assert_eq!(f.fd, r.sessions[&1].sides[1].rtp_fd);
    let mut p = packet(500, 9000);
    let f = r.on_packet(20, b, addr("127.0.0.1:8000"), &mut p).unwrap();
    assert_eq!(f.dest, addr("127.0.0.1:7000"));
    assert_eq!(f.fd, r.sessions[&1].sides[0].rtp_fd);
    assert_eq!(seq_of(&p), 500, "nothing muted: seq untouched");
    assert_eq!(r.counters.forwarded, 2);
}

#[test]
fn latches_to_the_real_port_and_sends_back_there() {
    let mut r = relay(62100);
    let (a, b) = session(&mut r, 1);
    // The caller signalled 7000 but sends from 7777 (NAT on the same IP).
    let mut p = packet(1, 160);
    assert!(r.on_packet(0, a, addr("127.0.0.1:7777"), &mut p).is_some());
    let mut p = packet(1, 160);
    let f = r.on_packet(5, b, addr("127.0.0.1:8000"), &mut p).unwrap();
    assert_eq!(f.dest, addr("127.0.0.1:7777"));
}

#[test]
fn another_source_is_refused_after_probation_and_another_ip_always() {
    let mut r = relay(62200);
    let (a, _) = session(&mut r, 1);
    let mut p = packet(1, 160);
    assert!(r.on_packet(0, a, addr("127.0.0.1:7000"), &mut p).is_some());
    // Within probation a new source on the same IP re-latches.
    assert!(r
        .on_packet(500, a, addr("127.0.0.1:7002"), &mut p)
        .is_some());
    // After it, the latch holds.
    assert!(r
        .on_packet(PROBATION_MS + 1, a, addr("127.0.0.1:7004"), &mut p)
        .is_none());
    assert!(r
        .on_packet(PROBATION_MS + 2, a, addr("127.0.0.1:7002"), &mut p)
        .is_some());
    // Another IP is never accepted from a side that is not behind NAT.
    assert!(r.on_packet(10, a, addr("127.0.0.2:7000"), &mut p).is_none());
    assert_eq!(r.counters.rejected, 2);
}

#[test]
fn a_side_behind_nat_is_learned_from_any_ip() {
    let mut r = relay(62300);
    let (a, b) = r.create(1, "c", false).unwrap();
    r.signalled(1, Side::Caller, sig("192.168.1.20:7000", false), Some(true));
    r.signalled(1, Side::Callee, sig("127.0.0.1:8000", false), Some(false));
    let mut p = packet(1, 160);
    assert!(r.on_packet(0, a, addr("127.0.0.9:40000"), &mut p).is_some());
    let f = r.on_packet(1, b, addr("127.0.0.1:8000"), &mut p).unwrap();
    assert_eq!(f.dest, addr("127.0.0.9:40000"));
}

#[test]
fn rtcp_goes_between_rtcp_ports_or_over_the_rtp_port_when_muxed() {
    let mut r = relay(62400);
    let (a, b) = session(&mut r, 1);
    let mut sr = vec![0x80, 200, 0, 6, 0, 0, 0, 1];
    sr.resize(28, 0);
    let f = r
        .on_packet(0, a + 1, addr("127.0.0.1:7001"), &mut sr)
        .unwrap();
    assert_eq!(f.dest, addr("127.0.0.1:8001"));
    assert_eq!(f.fd, r.sessions[&1].sides[1].rtcp_fd);
    // Both sides mux: RTCP arrives on and leaves by the RTP ports.
    r.signalled(1, Side::Caller, sig("127.0.0.1:7000", true), Some(false));
    r.signalled(1, Side::Callee, sig("127.0.0.1:8000", true), Some(false));
    let f = r.on_packet(1, a, addr("127.0.0.1:7000"), &mut sr).unwrap();
    assert_eq!(f.dest, addr("127.0.0.1:8000"));
    assert_eq!(f.fd, r.sessions[&1].sides[1].rtp_fd);
    let _ = b;
    let report = r.close(1, 10).unwrap();
    assert_eq!(report.stats[0]["rtcpPackets"], 2);
    assert_eq!(
        report.stats[0]["rtp"]["packets"], 0,
        "RTCP is not counted as RTP"
    );
}

#[test]
fn mute_drops_and_unmute_resumes_with_continuous_seq_and_a_marker() {
    let mut r = relay(62500);
    let (a, _) = session(&mut r, 1);
    let src = addr("127.0.0.1:7000");
    let mut out = Vec::new();
    for seq in 100..110u16 {
        if seq == 103 {
            assert!(r.set_muted(1, Side::Caller, true));
        }
        if seq == 107 {
            assert!(r.set_muted(1, Side::Caller, false));
        }
        let mut p = packet(seq, seq as u32 * 160);
        if r.on_packet(seq as u64 * 20, a, src, &mut p).is_some() {
            out.push((seq_of(&p), p[1] & 0x80 != 0));
        }
    }
    assert_eq!(
        out,
        vec![
            (100, false),
            (101, false),
            (102, false),
            (103, true),
            (104, false),
            (105, false)
        ]
    );
    assert_eq!(r.counters.muted, 4);
    assert!(!r.set_muted(99, Side::Caller, true));
}

#[test]
fn rtp_timeout_only_after_answer_and_not_on_hold() {
    let mut r = relay(62600);
    let (a, _) = r.create(1, "c", false).unwrap();
    r.signalled(1, Side::Caller, sig("127.0.0.1:7000", false), Some(false));
    assert!(r.on_tick(10_000).is_empty(), "not answered: no timeout");
    r.answered(1, 10_000);
    let mut p = packet(1, 160);
    r.on_packet(12_000, a, addr("127.0.0.1:7000"), &mut p);
    assert!(r.on_tick(16_999).is_empty());
    assert_eq!(r.on_tick(17_000), vec![1]);
    let mut held = sig("127.0.0.1:7000", false);
    held.hold = true;
    r.signalled(1, Side::Caller, held, None);
    assert!(r.on_tick(60_000).is_empty(), "on hold: silence is expected");
    // Resumed: the timeout runs from the last tick on hold.
    r.signalled(1, Side::Caller, sig("127.0.0.1:7000", false), None);
    assert!(
        r.on_tick(64_999).is_empty(),
        "resumed: the timeout starts over"
    );
    assert_eq!(r.on_tick(65_000), vec![1]);
}

#[test]
fn close_releases_the_ports_and_reports_per_track_stats() {
    let mut r = relay(62700);
    let (a, b) = session(&mut r, 1);
    for seq in 0..5u16 {
        let mut p = packet(seq, seq as u32 * 160);
        r.on_packet(seq as u64 * 20, a, addr("127.0.0.1:7000"), &mut p);
    }
    let _sockets = r.take_opened();
    let report = r.close(1, 200).unwrap();
    assert_eq!(report.stats[0]["trackId"], "audio-0");
    assert_eq!(report.stats[0]["rtp"]["packets"], 5);
    assert_eq!(report.stats[1]["rtp"]["packets"], 0);
    assert!(report.recorder.is_empty());
    let mut closed = r.take_closed();
    closed.sort();
    assert_eq!(closed, vec![a, a + 1, b, b + 1]);
    let mut p = packet(9, 0);
    assert!(r
        .on_packet(300, a, addr("127.0.0.1:7000"), &mut p)
        .is_none());
    assert_eq!(r.sessions(), 0);
}

#[test]
fn a_port_held_by_another_program_is_skipped() {
    let base = 62800;
    let _squatter = UdpSocket::bind(("127.0.0.1", base)).unwrap();
    let mut r = relay(base);
    let (a, b) = r.create(1, "c", false).unwrap();
    assert_ne!(a, base);
    assert_ne!(b, base);
}

#[test]
fn no_ports_left_is_an_error() {
    let mut r = MediaRelay::new(
        RelayConfig {
            port_end: 62904,
            ..relay(62900).cfg
        },
        0,
        1,
    );
    assert!(r.create(1, "c", false).is_ok());
    assert_eq!(r.create(2, "d", false), Err(RelayError::NoPorts));
}

#[test]
fn a_pair_comes_back_only_once_its_sockets_are_closed() {
    let mut r = relay_pairs(63000, 2);
    r.create(1, "c", false).unwrap();
    let sockets = r.take_opened();
    assert!(matches!(r.create(2, "c", false), Err(RelayError::NoPorts)));
    r.close(1, 0);
    // The shell still holds the sockets: no pair is free yet.
    assert!(matches!(r.create(3, "c", false), Err(RelayError::NoPorts)));
    assert_eq!(r.take_closed().len(), 4);
    drop(sockets); // what the shell does with the ports it took
    r.create(4, "c", false).unwrap();
    assert_eq!(r.take_opened().len(), 4);
}

#[test]
fn a_session_that_fails_half_way_leaks_no_socket() {
    let mut r = relay_pairs(63010, 3);
    r.create(1, "c", false).unwrap();
    let _sockets = r.take_opened();
    // One pair left: the second side finds none, and the first is let go.
    assert!(matches!(r.create(2, "c", false), Err(RelayError::NoPorts)));
    assert!(r.take_opened().is_empty());
    assert!(r.take_closed().is_empty());
    let free = r.pool.take().unwrap();
    UdpSocket::bind(("127.0.0.1", free)).expect("the pair's socket is closed");
    UdpSocket::bind(("127.0.0.1", free + 1)).expect("and its RTCP socket");
}
