//! Relay edges with injected time: who may send for a side and when its
//! address is latched (spraying, NAT, renegotiation), RTCP (muxed and
//! not), malformed packets, mute renumbering, the RTP timeout, the CDR
//! report, refused SDP addresses; the sockets asked of the runtime (Bind,
//! Bound, BindFailed, Close, Closed) and recording outputs.

use super::*;
use crate::media::ports::SocketState;

/// Wall clock of the tests' time zero (2023-11-14).
const UNIX0_MS: u64 = 1_700_000_000_000;

/// The clocks `ms` after the tests' zero.
pub(super) fn t(ms: u64) -> Now {
    Now {
        unix: (UNIX0_MS + ms) / 1000,
        mono_ms: ms,
        unix_ms: UNIX0_MS + ms,
    }
}

/// Everything the relay asks for now.
fn outputs(r: &mut MediaRelay) -> Vec<MediaOutput> {
    std::iter::from_fn(|| r.poll_output()).collect()
}

/// The runtime's turn when every bind succeeds and every close is done:
/// returns the ops it performed.
pub(super) fn run_sockets(r: &mut MediaRelay) -> Vec<SocketOp> {
    let mut ops = Vec::new();
    while let Some(o) = r.poll_output() {
        let MediaOutput::Socket(op) = o else {
            continue;
        };
        r.handle(match op {
            SocketOp::Bind { port, .. }
            | SocketOp::Reserve { port, .. }
            | SocketOp::Read { port } => MediaInput::Bound { port },
            SocketOp::Close { port } => MediaInput::Closed { port },
            SocketOp::Send { port, .. } => MediaInput::Sent { port },
        });
        ops.push(op);
    }
    ops
}

fn binds(ops: &[SocketOp]) -> Vec<u16> {
    ops.iter()
        .filter_map(|op| match op {
            SocketOp::Bind { port, .. } => Some(*port),
            _ => None,
        })
        .collect()
}

fn closes(ops: &[SocketOp]) -> Vec<u16> {
    let mut ports: Vec<u16> = ops
        .iter()
        .filter_map(|op| match op {
            SocketOp::Close { port } => Some(*port),
            _ => None,
        })
        .collect();
    ports.sort_unstable();
    ports
}

pub(super) fn relay(start: u16) -> MediaRelay {
    relay_pairs(start, 20)
}

/// A relay that keeps no spares (see `spares_*` for those).
fn relay_pairs(start: u16, pairs: u16) -> MediaRelay {
    let mut r = relay_spares(start, pairs);
    r.spare_target = 0;
    r
}

fn relay_spares(start: u16, pairs: u16) -> MediaRelay {
    MediaRelay::new(
        RelayConfig {
            bind_ip: "127.0.0.1".parse().unwrap(),
            advertise: "127.0.0.1".parse().unwrap(),
            port_start: start,
            port_end: start + 2 * pairs,
            rtp_timeout_ms: 5_000,
            recordings_dir: PathBuf::from("/nonexistent"),
            recordings_cdr_dir: PathBuf::from("recordings"),
            recording: false,
        },
        0,
        1,
        [9; 32],
    )
}

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A setup SDP whose SIP came from 127.0.0.1.
pub(super) fn local() -> SdpOrigin {
    SdpOrigin::Setup("127.0.0.1".parse().unwrap())
}

pub(super) fn sig(rtp: &str, mux: bool) -> Signalled {
    let rtp = addr(rtp);
    Signalled {
        rtp: Some(rtp),
        rtcp: Some(SocketAddr::new(rtp.ip(), rtp.port() + 1)),
        rtcp_mux: mux,
        hold: false,
        codecs: vec![(0, "PCMU".into(), 8000)],
    }
}

pub(super) fn packet(seq: u16, ts: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&[0xffu8; 160]);
    p
}

pub(super) fn seq_of(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}

/// A session between a caller at 127.0.0.1:7000 and a callee at 127.0.0.1:8000.
pub(super) fn session(r: &mut MediaRelay, id: u64) -> (u16, u16) {
    let (a, b) = r.create(id, "call-1@test", false).unwrap();
    r.signalled(id, Side::Caller, sig("127.0.0.1:7000", false), local());
    r.signalled(id, Side::Callee, sig("127.0.0.1:8000", false), local());
    r.answered(id, 0);
    (a, b)
}

#[test]
fn forwards_both_ways_out_of_the_other_sides_socket() {
    let mut r = relay(62000);
    let (a, b) = session(&mut r, 1);
    assert_eq!(run_sockets(&mut r).len(), 4);
    let mut p = packet(10, 1600);
    let f = r
        .on_packet(t(20), a, addr("127.0.0.1:7000"), &mut p)
        .unwrap();
    assert_eq!(
        f,
        Forward {
            out_port: b,
            dest: addr("127.0.0.1:8000"),
            len: p.len(),
        }
    );
    let mut p = packet(500, 9000);
    let f = r
        .on_packet(t(20), b, addr("127.0.0.1:8000"), &mut p)
        .unwrap();
    assert_eq!(
        f,
        Forward {
            out_port: a,
            dest: addr("127.0.0.1:7000"),
            len: p.len(),
        }
    );
    assert_eq!(seq_of(&p), 500, "nothing muted: seq untouched");
    assert_eq!(r.counters.forwarded, 2);
}

#[test]
fn latches_to_the_real_port_after_a_few_packets_and_sends_back_there() {
    let mut r = relay(62100);
    let (a, b) = session(&mut r, 1);
    // The caller signalled 7000 but sends from 7777 (NAT on the same IP):
    // relayed at once, but learnt only after LATCH_PACKETS in a row.
    for seq in 1..u16::from(LATCH_PACKETS) {
        let mut p = packet(seq, 160);
        assert!(r
            .on_packet(t(0), a, addr("127.0.0.1:7777"), &mut p)
            .is_some());
        let mut back = packet(seq, 160);
        let f = r
            .on_packet(t(5), b, addr("127.0.0.1:8000"), &mut back)
            .unwrap();
        assert_eq!(f.dest, addr("127.0.0.1:7000"), "not latched yet");
    }
    let mut p = packet(9, 160);
    assert!(r
        .on_packet(t(0), a, addr("127.0.0.1:7777"), &mut p)
        .is_some());
    let mut p = packet(1, 160);
    let f = r
        .on_packet(t(5), b, addr("127.0.0.1:8000"), &mut p)
        .unwrap();
    assert_eq!(f.dest, addr("127.0.0.1:7777"));
}

/// A phone on the relay's own host signals 127.0.0.1 but, sending to our
/// advertised address, its packets come from that address: still its
/// own. Another loopback address is not.
#[test]
fn a_phone_on_this_host_may_send_from_our_advertised_address() {
    let mut r = MediaRelay::new(
        RelayConfig {
            bind_ip: "0.0.0.0".parse().unwrap(),
            advertise: "192.0.2.2".parse().unwrap(),
            port_start: 62900,
            port_end: 62940,
            rtp_timeout_ms: 5_000,
            recordings_dir: PathBuf::from("/nonexistent"),
            recordings_cdr_dir: PathBuf::from("recordings"),
            recording: false,
        },
        0,
        1,
        [9; 32],
    );
    r.spare_target = 0;
    let (a, _) = session(&mut r, 1);
    let mut p = packet(1, 160);
    assert!(r
        .on_packet(t(10), a, addr("192.0.2.2:7000"), &mut p)
        .is_some());
    let mut p = packet(2, 320);
    assert!(r
        .on_packet(t(20), a, addr("127.0.0.66:7000"), &mut p)
        .is_none());
    let mut p = packet(3, 480);
    assert!(r
        .on_packet(t(30), a, addr("192.0.2.3:7000"), &mut p)
        .is_none());
    assert_eq!(r.counters.foreign_source, 2);
}

#[test]
fn spraying_the_ports_from_elsewhere_steals_nothing() {
    let mut r = relay(62150);
    let (a, b) = r.create(1, "c", false).unwrap();
    // Ringing: the callee has not answered, the caller's RTP has not come.
    r.signalled(1, Side::Caller, sig("127.0.0.1:7000", false), local());
    // An attacker on another IP sprays both ports first.
    for seq in 0..50u16 {
        for port in [a, a + 1, b, b + 1] {
            let mut p = packet(seq, 160);
            assert!(r
                .on_packet(t(u64::from(seq)), port, addr("127.0.0.66:4000"), &mut p)
                .is_none());
        }
    }
    assert_eq!(r.counters.foreign_source, 200);
    assert_eq!(r.counters.forwarded, 0);
    // The callee answers; both sides' media flows between them only.
    r.signalled(1, Side::Callee, sig("127.0.0.1:8000", false), local());
    for seq in 0..5u16 {
        let mut p = packet(seq, 160);
        let f = r
            .on_packet(t(100), a, addr("127.0.0.1:7000"), &mut p)
            .unwrap();
        assert_eq!(f.dest, addr("127.0.0.1:8000"));
        let mut p = packet(seq, 160);
        let f = r
            .on_packet(t(100), b, addr("127.0.0.1:8000"), &mut p)
            .unwrap();
        assert_eq!(f.dest, addr("127.0.0.1:7000"));
    }
}

#[test]
fn a_latch_holds_until_the_side_renegotiates_and_other_ips_never_count() {
    let mut r = relay(62200);
    let (a, b) = session(&mut r, 1);
    for seq in 0..u16::from(LATCH_PACKETS) {
        let mut p = packet(seq, 160);
        assert!(r
            .on_packet(t(0), a, addr("127.0.0.1:7000"), &mut p)
            .is_some());
    }
    // Latched: another port on the same IP is refused, however long.
    let mut p = packet(50, 160);
    for ms in [1, 500, 100_000] {
        assert!(r
            .on_packet(t(ms), a, addr("127.0.0.1:7002"), &mut p)
            .is_none());
    }
    assert_eq!(r.counters.unlatched_source, 3);
    // Another IP is never accepted.
    assert!(r
        .on_packet(t(10), a, addr("127.0.0.2:7000"), &mut p)
        .is_none());
    assert_eq!(r.counters.foreign_source, 1);
    // A setup SDP that says the same (a 200 OK retransmitted) keeps the latch.
    r.signalled(1, Side::Caller, sig("127.0.0.1:7000", false), local());
    assert!(r
        .on_packet(t(11), a, addr("127.0.0.1:7002"), &mut p)
        .is_none());
    // A re-INVITE from the caller: it may have moved.
    r.signalled(
        1,
        Side::Caller,
        sig("127.0.0.1:7000", false),
        SdpOrigin::Renegotiation,
    );
    for seq in 60..60 + u16::from(LATCH_PACKETS) {
        let mut p = packet(seq, 160);
        assert!(r
            .on_packet(t(12), a, addr("127.0.0.1:7002"), &mut p)
            .is_some());
    }
    let mut back = packet(1, 160);
    let f = r
        .on_packet(t(13), b, addr("127.0.0.1:8000"), &mut back)
        .unwrap();
    assert_eq!(f.dest, addr("127.0.0.1:7002"));
    assert_eq!(r.counters.rejected, 5);
}

#[test]
fn a_side_behind_nat_is_learned_from_its_sip_source_ip_only() {
    let mut r = relay(62300);
    let (a, b) = r.create(1, "c", false).unwrap();
    // Private SDP address; its SIP came from 127.0.0.9.
    r.signalled(
        1,
        Side::Caller,
        sig("192.168.1.20:7000", false),
        SdpOrigin::Setup("127.0.0.9".parse().unwrap()),
    );
    r.signalled(1, Side::Callee, sig("127.0.0.1:8000", false), local());
    let mut p = packet(1, 160);
    assert!(
        r.on_packet(t(0), a, addr("127.0.0.66:40000"), &mut p)
            .is_none(),
        "not its IP"
    );
    for seq in 0..u16::from(LATCH_PACKETS) {
        let mut p = packet(seq, 160);
        assert!(r
            .on_packet(t(0), a, addr("127.0.0.9:40000"), &mut p)
            .is_some());
    }
    let f = r
        .on_packet(t(1), b, addr("127.0.0.1:8000"), &mut p)
        .unwrap();
    assert_eq!(f.dest, addr("127.0.0.9:40000"));
}

#[test]
fn only_rtp_and_rtcp_are_relayed() {
    let mut r = relay(62350);
    let (a, _) = session(&mut r, 1);
    let from = addr("127.0.0.1:7000");
    for junk in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0x80; 4],
        vec![0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        // RTCP whose length runs past the datagram.
        vec![0x80, 200, 0, 9, 0, 0, 0, 1],
    ] {
        let mut p = junk.clone();
        assert!(r.on_packet(t(0), a, from, &mut p).is_none(), "{junk:?}");
        let mut p = junk;
        assert!(r
            .on_packet(t(0), a + 1, addr("127.0.0.1:7001"), &mut p)
            .is_none());
    }
    assert_eq!(r.counters.malformed, 8);
    assert_eq!(r.counters.forwarded, 0);
}

#[test]
fn sdp_addresses_the_relay_must_not_send_to() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let ours = |a: IpAddr| a == ip("198.51.100.7");
    let public_leg = ip("203.0.113.5");
    for bad in [
        "224.0.0.1",
        "255.255.255.255",
        "ff02::1",
        "127.0.0.1",
        "::1",
        "198.51.100.7",
        "::ffff:127.0.0.1",
    ] {
        assert!(
            !media_address_allowed(ip(bad), public_leg, ours, true),
            "{bad}"
        );
        assert!(
            !media_address_allowed(ip(bad), public_leg, ours, false),
            "{bad}"
        );
    }
    // 0.0.0.0: refused in a setup, RFC 2543 hold in a re-INVITE.
    assert!(!media_address_allowed(
        ip("0.0.0.0"),
        public_leg,
        ours,
        true
    ));
    assert!(media_address_allowed(
        ip("0.0.0.0"),
        public_leg,
        ours,
        false
    ));
    // Loopback and our own address are fine for a leg on this host.
    assert!(media_address_allowed(
        ip("127.0.0.1"),
        ip("127.0.0.1"),
        ours,
        true
    ));
    assert!(media_address_allowed(
        ip("198.51.100.7"),
        ip("198.51.100.7"),
        ours,
        true
    ));
    for good in ["203.0.113.9", "192.168.1.20", "2001:db8::1"] {
        assert!(
            media_address_allowed(ip(good), public_leg, ours, true),
            "{good}"
        );
    }
}

#[test]
fn the_expected_ip_is_the_sdp_address_or_the_sip_source_behind_nat() {
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    assert_eq!(
        expected_ip(ip("203.0.113.9"), ip("198.51.100.1")),
        ip("203.0.113.9")
    );
    assert_eq!(
        expected_ip(ip("10.0.0.5"), ip("198.51.100.1")),
        ip("198.51.100.1")
    );
    assert_eq!(
        expected_ip(ip("0.0.0.0"), ip("198.51.100.1")),
        ip("198.51.100.1")
    );
    assert_eq!(expected_ip(None, ip("198.51.100.1")), ip("198.51.100.1"));
    assert_eq!(
        expected_ip(ip("::ffff:203.0.113.9"), None),
        ip("203.0.113.9")
    );
}

#[test]
fn rtcp_goes_between_rtcp_ports_or_over_the_rtp_port_when_muxed() {
    let mut r = relay(62400);
    let (a, b) = session(&mut r, 1);
    let mut sr = vec![0x80, 200, 0, 6, 0, 0, 0, 1];
    sr.resize(28, 0);
    let f = r
        .on_packet(t(0), a + 1, addr("127.0.0.1:7001"), &mut sr)
        .unwrap();
    assert_eq!(f.dest, addr("127.0.0.1:8001"));
    assert_eq!(f.out_port, b + 1);
    // Both sides mux: RTCP arrives on and leaves by the RTP ports.
    r.signalled(1, Side::Caller, sig("127.0.0.1:7000", true), local());
    r.signalled(1, Side::Callee, sig("127.0.0.1:8000", true), local());
    let f = r
        .on_packet(t(1), a, addr("127.0.0.1:7000"), &mut sr)
        .unwrap();
    assert_eq!(f.dest, addr("127.0.0.1:8000"));
    assert_eq!(f.out_port, b);
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
        if r.on_packet(t(seq as u64 * 20), a, src, &mut p).is_some() {
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
    r.signalled(1, Side::Caller, sig("127.0.0.1:7000", false), local());
    assert!(r.on_tick(10_000).is_empty(), "not answered: no timeout");
    r.answered(1, 10_000);
    let mut p = packet(1, 160);
    r.on_packet(t(12_000), a, addr("127.0.0.1:7000"), &mut p);
    assert!(r.on_tick(16_999).is_empty());
    assert_eq!(r.on_tick(17_000), vec![1]);
    let mut held = sig("127.0.0.1:7000", false);
    held.hold = true;
    r.signalled(1, Side::Caller, held, SdpOrigin::Renegotiation);
    assert!(r.on_tick(60_000).is_empty(), "on hold: silence is expected");
    // Resumed: the timeout runs from the last tick on hold.
    r.signalled(
        1,
        Side::Caller,
        sig("127.0.0.1:7000", false),
        SdpOrigin::Renegotiation,
    );
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
        r.on_packet(t(seq as u64 * 20), a, addr("127.0.0.1:7000"), &mut p);
    }
    run_sockets(&mut r);
    let report = r.close(1, 200).unwrap();
    assert_eq!(report.stats[0]["trackId"], "audio-0");
    assert_eq!(report.stats[0]["rtp"]["packets"], 5);
    assert_eq!(report.stats[1]["rtp"]["packets"], 0);
    assert!(report.recorder.is_empty());
    let mut want = vec![a, a + 1, b, b + 1];
    want.sort_unstable();
    assert_eq!(closes(&run_sockets(&mut r)), want);
    let mut p = packet(9, 0);
    assert!(r
        .on_packet(t(300), a, addr("127.0.0.1:7000"), &mut p)
        .is_none());
    assert_eq!(r.sessions(), 0);
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
        [9; 32],
    );
    r.spare_target = 0;
    assert!(r.create(1, "c", false).is_ok());
    assert_eq!(r.create(2, "d", false), Err(RelayError::NoPorts));
}

#[test]
fn create_asks_for_four_sockets_on_the_bind_address_and_binds_nothing() {
    let mut r = relay(63100);
    let (a, b) = r.create(1, "c", false).unwrap();
    let ops = run_sockets(&mut r);
    let want: Vec<SocketOp> = [a, a + 1, b, b + 1]
        .into_iter()
        .map(|port| SocketOp::Bind {
            port,
            addr: SocketAddr::new("127.0.0.1".parse().unwrap(), port),
        })
        .collect();
    assert_eq!(ops, want);
    assert_eq!(r.ports.socket(a + 1), SocketState::Open);
    // Nothing was bound by the relay itself: the ports are free.
    for port in [a, a + 1, b, b + 1] {
        std::net::UdpSocket::bind(("127.0.0.1", port)).expect("the relay holds no socket");
    }
    assert!(r.poll_output().is_none());
}

#[test]
fn a_pair_comes_back_only_once_its_sockets_are_closed() {
    let mut r = relay_pairs(63000, 2);
    r.create(1, "c", false).unwrap();
    run_sockets(&mut r);
    assert!(matches!(r.create(2, "c", false), Err(RelayError::NoPorts)));
    r.close(1, 0);
    let closing: Vec<u16> = outputs(&mut r)
        .into_iter()
        .filter_map(|o| match o {
            MediaOutput::Socket(SocketOp::Close { port }) => Some(port),
            _ => None,
        })
        .collect();
    assert_eq!(closing.len(), 4);
    // The runtime has not closed them yet: no pair is free.
    assert!(matches!(r.create(3, "c", false), Err(RelayError::NoPorts)));
    for port in &closing[..3] {
        r.handle(MediaInput::Closed { port: *port });
    }
    // One pair is closed; the other still has a socket open.
    assert!(
        matches!(r.create(4, "c", false), Err(RelayError::NoPorts)),
        "both pairs are needed for a session"
    );
    assert!(
        r.poll_output().is_none(),
        "nothing asked for a failed create"
    );
    r.handle(MediaInput::Closed { port: closing[3] });
    r.create(5, "c", false).unwrap();
    assert_eq!(binds(&run_sockets(&mut r)).len(), 4);
}

#[test]
fn a_session_that_fails_half_way_asks_for_no_socket() {
    let mut r = relay_pairs(63010, 3);
    r.create(1, "c", false).unwrap();
    run_sockets(&mut r);
    // One pair left: the second side finds none, and the first is let go.
    assert!(matches!(r.create(2, "c", false), Err(RelayError::NoPorts)));
    assert!(r.poll_output().is_none());
    assert_eq!(r.ports.available(), 1);
}

#[test]
fn a_failed_bind_fails_the_session_once_and_its_pair_goes_to_the_back() {
    let mut r = relay_pairs(63200, 8);
    let (a, b) = r.create(7, "failing@test", false).unwrap();
    let mut events = Vec::new();
    while let Some(o) = r.poll_output() {
        let MediaOutput::Socket(SocketOp::Bind { port, .. }) = o else {
            panic!("{o:?}");
        };
        // Another program holds the caller side's pair (both ports).
        events.push(if port == a || port == a + 1 {
            MediaInput::BindFailed {
                port,
                error: ErrorKind::AddrInUse,
            }
        } else {
            MediaInput::Bound { port }
        });
    }
    for e in events {
        r.handle(e);
    }
    assert_eq!(
        outputs(&mut r),
        vec![MediaOutput::SessionFailed {
            id: 7,
            call_id: "failing@test".into(),
            reason: "no media port",
        }],
        "reported once"
    );
    assert_eq!(r.ports.socket(a), SocketState::None);
    // Until the engine hangs up, the other side's packets have nowhere to
    // go but a port without a socket (which the runtime drops).
    r.signalled(7, Side::Caller, sig("127.0.0.1:7000", false), local());
    r.signalled(7, Side::Callee, sig("127.0.0.1:8000", false), local());
    let mut p = packet(1, 160);
    let f = r
        .on_packet(t(0), b, addr("127.0.0.1:8000"), &mut p)
        .unwrap();
    assert_eq!(f.out_port, a);
    // The hangup closes the session: only the bound sockets are closed.
    assert!(r.close(7, 10).is_some());
    assert_eq!(closes(&run_sockets(&mut r)), vec![b, b + 1]);
    assert_eq!(r.ports.available(), 8);
    // Both released pairs cool: the six others are drawn first.
    let mut drawn = Vec::new();
    for id in 10..13 {
        let (x, y) = r.create(id, "c", false).unwrap();
        drawn.extend([x, y]);
    }
    assert!(!drawn.contains(&a) && !drawn.contains(&b), "{drawn:?}");
    let (x, y) = r.create(13, "c", false).unwrap();
    assert_eq!((x.min(y), x.max(y)), (a.min(b), a.max(b)));
}

#[test]
fn a_bind_answer_after_the_session_ended_is_cleaned_up() {
    let mut r = relay_pairs(63300, 2);
    let (a, b) = r.create(1, "c", false).unwrap();
    // The runtime took the four binds; the session ends before it answers.
    let taken = outputs(&mut r);
    assert_eq!(taken.len(), 4);
    r.close(1, 0);
    assert!(r.poll_output().is_none());
    r.handle(MediaInput::Bound { port: a });
    r.handle(MediaInput::Bound { port: a + 1 });
    r.handle(MediaInput::BindFailed {
        port: b,
        error: ErrorKind::AddrInUse,
    });
    r.handle(MediaInput::Bound { port: b + 1 });
    // Bound for nobody: closed again; failed: nothing to do, no report.
    let ops = run_sockets(&mut r);
    let mut want = vec![a, a + 1, b + 1];
    want.sort_unstable();
    assert_eq!(closes(&ops), want);
    assert_eq!(binds(&ops).len(), 0);
    assert_eq!(r.ports.available(), 2);
    // Stray answers change nothing.
    r.handle(MediaInput::Closed { port: a });
    r.handle(MediaInput::Bound { port: a });
    assert!(r.poll_output().is_none());
    assert_eq!(r.ports.available(), 2);
}

#[test]
fn a_session_closed_before_the_runtime_turn_asks_for_nothing() {
    let mut r = relay_pairs(63400, 2);
    r.create(1, "c", false).unwrap();
    // The engine let it go in the same turn (an offer without usable media).
    r.close(1, 0);
    assert!(r.poll_output().is_none());
    assert_eq!(r.ports.available(), 2);
    r.create(2, "c", false).unwrap();
}

#[test]
fn recording_leaves_as_outputs_named_by_the_wall_clock() {
    let mut r = MediaRelay::new(
        RelayConfig {
            recording: true,
            ..relay(63500).cfg
        },
        0,
        1,
        [9; 32],
    );
    r.spare_target = 0;
    let (a, _) = r.create(1, "rec-1@test", true).unwrap();
    r.signalled(1, Side::Caller, sig("127.0.0.1:7000", false), local());
    r.signalled(1, Side::Callee, sig("127.0.0.1:8000", false), local());
    run_sockets(&mut r);
    for seq in 0..50u16 {
        let mut p = packet(seq, u32::from(seq) * 160);
        r.on_packet(t(u64::from(seq) * 20), a, addr("127.0.0.1:7000"), &mut p);
    }
    let opened = outputs(&mut r);
    assert_eq!(
        opened,
        vec![MediaOutput::Recording(RecCmd::Open {
            id: 1,
            path: PathBuf::from("/nonexistent/20231114/rec-1@test.wav")
        })]
    );
    assert!(r.on_tick(2_000).is_empty());
    let appended = outputs(&mut r);
    assert!(
        matches!(&appended[..], [MediaOutput::Recording(RecCmd::Append { id: 1, pcm })] if !pcm.is_empty()),
        "{appended:?}"
    );
    let report = r.close(1, 2_100).unwrap();
    assert_eq!(
        report.recorder[0].path,
        "recordings/20231114/rec-1@test.wav"
    );
    let closed = outputs(&mut r);
    assert!(
        closed.contains(&MediaOutput::Recording(RecCmd::Close { id: 1 })),
        "{closed:?}"
    );
}

#[test]
fn spares_are_bound_ahead_and_a_held_one_is_replaced_before_any_call() {
    let mut r = relay_spares(63600, 8);
    // The first turn asks for two spare pairs, bound but not read.
    let mut ops = Vec::new();
    let mut held = None;
    while let Some(o) = r.poll_output() {
        let MediaOutput::Socket(op) = o else {
            panic!("{o:?}");
        };
        ops.push(op.clone());
        if let SocketOp::Close { port } = op {
            r.handle(MediaInput::Closed { port });
            continue;
        }
        let SocketOp::Reserve { port, addr } = op else {
            panic!("{op:?}");
        };
        assert_eq!(addr, SocketAddr::new("127.0.0.1".parse().unwrap(), port));
        // Another program holds the first pair's RTCP port.
        let held_pair = *held.get_or_insert(port & !1);
        r.handle(if port == held_pair + 1 {
            MediaInput::BindFailed {
                port,
                error: ErrorKind::AddrInUse,
            }
        } else {
            MediaInput::Bound { port }
        });
    }
    let held = held.unwrap();
    // The held pair's RTP socket is closed again, a third pair replaces it.
    let reserves = ops
        .iter()
        .filter(|op| matches!(op, SocketOp::Reserve { .. }))
        .count();
    assert_eq!(reserves, 6, "{ops:?}");
    assert!(ops.contains(&SocketOp::Close { port: held }), "{ops:?}");
    assert_eq!(r.spares.len(), 2);
    assert!(!r.spares.contains(&held));
    // A call takes both spares: nothing to bind, only to read; no failure.
    let (a, b) = r.create(1, "c", false).unwrap();
    assert!(![a, b].contains(&held));
    let ops = run_sockets(&mut r);
    let reads: Vec<SocketOp> = ops
        .iter()
        .filter(|op| matches!(op, SocketOp::Read { .. }))
        .cloned()
        .collect();
    assert_eq!(
        reads,
        [a, a + 1, b, b + 1].map(|port| SocketOp::Read { port }),
        "{ops:?}"
    );
    assert!(binds(&ops).is_empty());
    assert_eq!(r.ports.socket(a), SocketState::Open);
    // ... and the spares are topped up again for the next call.
    assert_eq!(r.spares.len(), 2);
    let mut p = packet(1, 160);
    r.signalled(1, Side::Caller, sig("127.0.0.1:7000", false), local());
    r.signalled(1, Side::Callee, sig("127.0.0.1:8000", false), local());
    assert_eq!(
        r.on_packet(t(0), a, addr("127.0.0.1:7000"), &mut p),
        Some(Forward {
            out_port: b,
            dest: addr("127.0.0.1:8000"),
            len: p.len(),
        })
    );
    // A packet on a spare's port belongs to no call.
    let spare = r.spares[0];
    assert!(r
        .on_packet(t(0), spare, addr("127.0.0.1:7000"), &mut p)
        .is_none());
}

#[test]
fn a_burst_beyond_the_spares_binds_from_the_pool_and_a_closed_read_is_closed() {
    let mut r = relay_spares(63700, 8);
    run_sockets(&mut r);
    let (a, b) = r.create(1, "c", false).unwrap();
    let (c, d) = r.create(2, "d", false).unwrap();
    assert!(r.spares.is_empty());
    // The first call had the spares (read), the second binds from the pool.
    let queued = outputs(&mut r);
    let reads = queued
        .iter()
        .filter(|o| matches!(o, MediaOutput::Socket(SocketOp::Read { .. })))
        .count();
    assert_eq!(reads, 4);
    let bound: Vec<u16> = queued
        .iter()
        .filter_map(|o| match o {
            MediaOutput::Socket(SocketOp::Bind { port, .. }) => Some(*port),
            _ => None,
        })
        .collect();
    assert_eq!(bound, vec![c, c + 1, d, d + 1]);
    let _ = (a, b);
    // A call that ends before its spares are read: they are closed, not
    // forgotten.
    let mut r = relay_spares(63800, 8);
    run_sockets(&mut r);
    let (a, b) = r.create(1, "c", false).unwrap();
    r.close(1, 0);
    let ops = run_sockets(&mut r);
    let mut want = vec![a, a + 1, b, b + 1];
    want.sort_unstable();
    assert_eq!(closes(&ops), want, "{ops:?}");
    assert!(!ops.iter().any(|op| matches!(op, SocketOp::Read { .. })));
}

#[test]
fn spares_held_everywhere_stop_after_a_few_tries_until_the_next_tick() {
    let mut r = relay_spares(63900, 40);
    let mut tries = 0;
    while let Some(o) = r.poll_output() {
        if let MediaOutput::Socket(SocketOp::Reserve { port, .. }) = o {
            tries += 1;
            r.handle(MediaInput::BindFailed {
                port,
                error: ErrorKind::AddrInUse,
            });
        }
    }
    // Two spares asked at a time, each failing pair counted once.
    assert!(tries <= 2 * (MAX_BUSY_TRIES as usize + 2), "{tries}");
    assert!(r.spares.is_empty());
    r.on_tick(1_000);
    assert!(r.poll_output().is_some(), "tried again after a tick");
}
