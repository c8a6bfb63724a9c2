//! Calls with the RTP relay on (`media_proxy = always`) in virtual time:
//! G.711 RTP between the UAs through the relay's virtual sockets, mute from
//! the control core, the RTP timeout, foreign sources, a refused bind.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::endpoint::{PROXY, RTP_PORTS};
use super::media::{g711_payload, rtp_datagram, OpKind, RtpPacket, Socket, SocketFault};
use super::*;
use crate::cdr::time_fmt::parse_time;
use crate::cdr::Cdr;
use crate::endpoint::SipEndpoint;
use crate::media::relay::{MediaInput, SocketOp};
use crate::runtime::inbox::CallCommand;
use crate::runtime::ShardMsg;

type Rig = Harness<SipEndpoint>;

/// `[proxy] rtp_timeout` of these tests, ms.
const RTP_TIMEOUT_MS: u64 = 5_000;
/// A host that is no party to the call.
const STRANGER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 66)),
    40_000,
);

fn proxied() -> Rig {
    endpoint(Setup {
        media: Media::Proxied {
            rtp_timeout_ms: RTP_TIMEOUT_MS,
        },
        ..Setup::default()
    })
}

/// A proxied call, answered at once, RTP not started yet.
fn proxied_call() -> Rig {
    let mut h = proxied();
    h.ua_mut(CALLER).invite("2000");
    h.run_for(1_000);
    let mut codes = h.ua(CALLER).responses("INVITE");
    codes.retain(|&c| c != 100);
    assert_eq!(codes, [180, 200], "{}", h.ladder());
    assert_eq!(h.ua(CALLEE).requests("ACK").len(), 1, "{}", h.ladder());
    h
}

/// Where `ua` sends its RTP: a relay port on the proxy's IP.
fn relay_port_of(h: &Rig, ua: SocketAddr) -> SocketAddr {
    let to = h.ua(ua).media_peer().expect("an SDP with media");
    assert_eq!(to.ip(), PROXY.ip(), "{:?}", h.ua(ua).sdps());
    assert!(
        RTP_PORTS.contains(&to.port()) && to.port().is_multiple_of(2),
        "{to}"
    );
    to
}

fn the_cdr(h: &Rig) -> &Cdr {
    assert_eq!(h.cdrs.len(), 1, "CDRs: {:?}\n{}", h.cdrs, h.ladder());
    &h.cdrs[0]
}

/// `metadata.tracks[i]` of a CDR.
fn track(cdr: &Cdr, i: usize) -> &Value {
    &cdr.metadata["tracks"][i]
}

/// What `ua` received from the relay port `from` in `(after, until]`.
fn received_between(h: &Rig, ua: SocketAddr, after: u64, until: u64) -> Vec<&RtpPacket> {
    h.ua(ua)
        .rtp_received()
        .iter()
        .filter(|p| p.at_ms > after && p.at_ms <= until)
        .collect()
}

/// Every packet `to` received came from `from` through the relay intact:
/// same payload, timestamp and SSRC as sent, `latency` ms later.
fn assert_relayed_intact(h: &Rig, from: SocketAddr, to: SocketAddr, latency: u64) {
    let sent = h.ua(from).rtp_sent();
    let got = h.ua(to).rtp_received();
    assert!(!got.is_empty());
    for p in got {
        let seq = p.sent_seq().expect("payload carries its seq");
        let orig = sent
            .iter()
            .find(|s| s.seq == seq)
            .unwrap_or_else(|| panic!("{to} got a packet {from} never sent: {p:?}"));
        assert_eq!(
            (&p.payload, p.timestamp, p.ssrc, p.payload_type),
            (&orig.payload, orig.timestamp, orig.ssrc, 0)
        );
        assert_eq!(p.at_ms, orig.at_ms + latency, "seq {seq}");
    }
}

fn command(h: &mut Rig, command: CallCommand) {
    let (reply, answer) = crossbeam_channel::bounded(1);
    let call_id = h.ua(CALLER).call_id().expect("a call").to_string();
    h.message(ShardMsg::CallCommand {
        call_id,
        command,
        reply,
    });
    assert!(matches!(answer.try_recv(), Ok(Ok(()))), "{}", h.ladder());
}

/// Sockets being read (a session's; spares are only held).
fn read_ports(h: &Rig) -> Vec<u16> {
    h.sockets
        .open()
        .iter()
        .filter(|(_, s)| **s == Socket::Reading)
        .map(|(p, _)| *p)
        .collect()
}

#[test]
fn a_proxied_call_carries_rtp_both_ways_through_the_relay_intact_and_counted() {
    let mut h = proxied_call();
    // Each UA sees the relay, on its own port, never the other UA.
    let a = relay_port_of(&h, CALLER);
    let b = relay_port_of(&h, CALLEE);
    assert_ne!(a, b);
    for (ua, other) in [(CALLER, CALLEE), (CALLEE, CALLER)] {
        let sdp = &h.ua(ua).sdps()[0];
        assert!(sdp.contains("c=IN IP4 127.0.0.1"), "{sdp}");
        assert!(!sdp.contains(&other.ip().to_string()), "{sdp}");
    }
    // The session's four sockets are read.
    assert_eq!(read_ports(&h), {
        let mut p = vec![a.port(), a.port() + 1, b.port(), b.port() + 1];
        p.sort_unstable();
        p
    });

    h.start_rtp(CALLER);
    h.start_rtp(CALLEE);
    h.run_for(2_000);
    h.ua_mut(CALLER).stop_rtp();
    h.ua_mut(CALLEE).stop_rtp();
    h.settle();
    let sent = (h.ua(CALLER).rtp_sent().len(), h.ua(CALLEE).rtp_sent().len());
    assert_eq!(sent, (101, 101), "a packet every 20 ms for 2 s, both ends");
    assert!(h.ua(CALLER).rtp_sent().iter().all(|p| p.peer == a));
    // All of it arrives, from the relay's port of the receiving side, two
    // hops (10 ms each) later, in order and unrenumbered.
    for (from, to, relay) in [(CALLER, CALLEE, b), (CALLEE, CALLER, a)] {
        let got = h.ua(to).rtp_received();
        assert_eq!(got.len(), 101, "{from} -> {to}");
        assert!(got.iter().all(|p| p.peer == relay && !p.marker));
        let seqs: Vec<u16> = got.iter().map(|p| p.seq).collect();
        let sent: Vec<u16> = h.ua(from).rtp_sent().iter().map(|p| p.seq).collect();
        assert_eq!(seqs, sent);
        assert_relayed_intact(&h, from, to, 20);
        assert_eq!(h.ua(to).rtp_garbage(), 0);
    }
    assert_eq!(h.media.received, 202);
    assert_eq!(h.media.relayed, 202);
    assert_eq!(h.stats.rtp_tx.load(Ordering::Relaxed), 202);

    h.ua_mut(CALLER).bye();
    h.settle();
    let cdr = the_cdr(&h);
    assert_eq!(cdr.metadata["media"], "proxied");
    for (i, ua, track_id) in [(0, CALLER, "audio-0"), (1, CALLEE, "audio-1")] {
        let t = track(cdr, i);
        assert_eq!(t["trackId"], track_id, "{t}");
        assert_eq!(t["rtp"]["packets"], 101, "{t}");
        assert_eq!(t["rtp"]["bytes"], 101 * (12 + 160), "{t}");
        assert_eq!(t["rtp"]["lost"], 0, "{t}");
        assert_eq!(t["rtp"]["ssrc"], h.ua(ua).ssrc(), "{t}");
        assert_eq!(t["latched"], h.ua(ua).rtp_addr().to_string(), "{t}");
    }
    // The session's sockets are closed with the call (spares stay held).
    assert_eq!(read_ports(&h), Vec::<u16>::new());
    for port in [a.port(), a.port() + 1, b.port(), b.port() + 1] {
        assert_eq!(h.sockets.get(port), None, "port {port}");
    }
}

#[test]
fn muting_audio_0_stops_the_callers_packets_at_the_relay_and_unmuting_resumes_them() {
    let mut h = proxied_call();
    h.start_rtp(CALLER);
    h.start_rtp(CALLEE);
    h.run_for(1_000);
    assert!(h.ua(CALLEE).rtp_received().len() >= 45);

    command(
        &mut h,
        CallCommand::Mute {
            track: "audio-0".into(),
        },
    );
    let muted_at = h.now_ms();
    h.run_for(1_000);
    // Packets already past the relay still land (one hop, 10 ms); nothing
    // after. The callee's own audio still reaches the caller.
    assert_eq!(
        received_between(&h, CALLEE, muted_at + 10, muted_at + 1_000).len(),
        0
    );
    assert!(received_between(&h, CALLER, muted_at + 10, muted_at + 1_000).len() >= 49);

    command(
        &mut h,
        CallCommand::Unmute {
            track: "audio-0".into(),
        },
    );
    let unmuted_at = h.now_ms();
    h.run_for(1_000);
    let resumed = received_between(&h, CALLEE, unmuted_at, unmuted_at + 1_000);
    assert!(resumed.len() >= 49, "{}", resumed.len());
    // The first packet after the gap has the marker; the callee sees no
    // sequence gap (the relay renumbers), the payload says what was skipped.
    assert!(resumed[0].marker && resumed[1..].iter().all(|p| !p.marker));
    let got = h.ua(CALLEE).rtp_received();
    let seqs: Vec<u16> = got.iter().map(|p| p.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{seqs:?}"
    );
    let skipped = resumed[0].sent_seq().unwrap().wrapping_sub(seqs[0])
        - u16::try_from(got.len() - resumed.len()).unwrap();
    assert!((49..=51).contains(&skipped), "{skipped}");
    assert_relayed_intact(&h, CALLEE, CALLER, 20);

    h.ua_mut(CALLER).stop_rtp();
    h.ua_mut(CALLEE).stop_rtp();
    h.settle();
    h.ua_mut(CALLER).bye();
    h.settle();
    // The muted packets reached the relay and are in the track's count.
    let sent = h.ua(CALLER).rtp_sent().len() as u64;
    let cdr = the_cdr(&h);
    assert_eq!(track(cdr, 0)["rtp"]["packets"], sent);
    let dropped = sent - h.ua(CALLEE).rtp_received().len() as u64;
    assert_eq!(u64::from(skipped), dropped);
    assert_eq!(h.stats.rtp_dropped.load(Ordering::Relaxed), dropped);
}

#[test]
fn rtp_silence_past_rtp_timeout_hangs_up_the_answered_call() {
    let mut h = proxied_call();
    // RTP for longer than the timeout: the call stays.
    h.start_rtp(CALLER);
    h.start_rtp(CALLEE);
    h.run_for(2 * RTP_TIMEOUT_MS);
    assert!(h.cdrs.is_empty(), "{}", h.ladder());
    h.ua_mut(CALLER).stop_rtp();
    h.ua_mut(CALLEE).stop_rtp();
    let last_rtp = h.ua(CALLEE).rtp_sent().last().unwrap().at_ms + 10;
    h.run_until(last_rtp + RTP_TIMEOUT_MS - 100);
    assert!(h.cdrs.is_empty(), "{}", h.ladder());
    assert!(h.ua(CALLER).requests("BYE").is_empty());
    h.run_for(60_000);
    assert_eq!(h.ua(CALLER).requests("BYE").len(), 1, "{}", h.ladder());
    assert_eq!(h.ua(CALLEE).requests("BYE").len(), 1);
    let cdr = the_cdr(&h);
    assert_eq!(
        (cdr.status.as_str(), cdr.hangup_reason.as_str()),
        ("completed", "bySystem")
    );
    assert_eq!(cdr.metadata["hangupMessage"], "rtp timeout");
    // On the relay's first upkeep (100 ms apart) past the timeout.
    let ended = parse_time(&cdr.end_time).unwrap() - clock::EPOCH_UNIX_MS;
    let late = ended - (last_rtp + RTP_TIMEOUT_MS);
    assert!(late <= 100, "ended {late} ms after the timeout");
    assert!(track(cdr, 0)["rtp"]["packets"].as_u64() > Some(400));
    assert_eq!(read_ports(&h), Vec::<u16>::new());
}

#[test]
fn rtp_from_a_foreign_or_unlatched_source_is_not_relayed() {
    let mut h = proxied_call();
    let a = relay_port_of(&h, CALLER);
    h.start_rtp(CALLER);
    h.start_rtp(CALLEE);
    h.run_for(500);
    let before = h.ua(CALLEE).rtp_received().len();

    // A stranger sprays the caller's relay port; then a host on the
    // caller's IP but another port than the latched one.
    let spoof = |ssrc| rtp_datagram(0, false, 7, 7 * 160, ssrc, &g711_payload(ssrc, 7));
    h.inject(STRANGER, a, spoof(0xbad0_0001));
    let sibling = SocketAddr::new(CALLER.ip(), 40_999);
    h.inject(sibling, a, spoof(0xbad0_0002));
    h.run_for(500);

    let got = h.ua(CALLEE).rtp_received();
    assert!(got.len() >= before + 24, "the caller's own RTP still flows");
    assert!(
        got.iter().all(|p| p.ssrc == h.ua(CALLER).ssrc()),
        "{:?}",
        got.iter().find(|p| p.ssrc != h.ua(CALLER).ssrc())
    );
    assert_relayed_intact(&h, CALLER, CALLEE, 20);
    assert_eq!(h.stats.rtp_foreign_source.load(Ordering::Relaxed), 1);
    assert_eq!(h.stats.rtp_unlatched_source.load(Ordering::Relaxed), 1);
    assert_eq!(h.stats.rtp_dropped.load(Ordering::Relaxed), 2);

    h.ua_mut(CALLER).stop_rtp();
    h.ua_mut(CALLEE).stop_rtp();
    h.settle();
    h.ua_mut(CALLER).bye();
    h.settle();
    let cdr = the_cdr(&h);
    assert_eq!(
        track(cdr, 0)["latched"],
        h.ua(CALLER).rtp_addr().to_string()
    );
    assert_eq!(
        track(cdr, 0)["rtp"]["packets"],
        h.ua(CALLER).rtp_sent().len()
    );
}

/// A proxied call to a callee that rings, a session socket refused as
/// `fault` says: the call is hung up at once with "no media port" (the
/// callee's INVITE cancelled), and no socket of the session stays open.
fn refused_session_socket(faults: &[SocketFault]) -> Rig {
    let mut h = endpoint(Setup {
        callee: Answering::Ring,
        media: Media::Proxied {
            rtp_timeout_ms: RTP_TIMEOUT_MS,
        },
        ..Setup::default()
    });
    for f in faults {
        h.socket_fault(*f);
    }
    h.ua_mut(CALLER).invite("2000");
    h.run_for(5_000);
    let session_refused = h
        .sockets
        .log
        .iter()
        .filter(|(op, a)| {
            matches!(op, SocketOp::Bind { .. } | SocketOp::Read { .. })
                && matches!(a, MediaInput::BindFailed { .. })
        })
        .count();
    assert_eq!(session_refused, 1, "{:?}", h.sockets.log);
    let mut codes = h.ua(CALLER).responses("INVITE");
    codes.retain(|&c| c != 100 && c != 180);
    assert_eq!(codes, [487], "{}", h.ladder());
    assert_eq!(h.ua(CALLEE).requests("CANCEL").len(), 1, "{}", h.ladder());
    assert_eq!(h.ua(CALLEE).requests("ACK").len(), 1, "its 487 is ACKed");
    assert!(!h.ua(CALLER).in_dialog() && !h.ua(CALLEE).in_dialog());
    let cdr = the_cdr(&h);
    assert_eq!(
        (cdr.status.as_str(), cdr.hangup_reason.as_str()),
        ("missed", "bySystem")
    );
    assert_eq!(cdr.metadata["hangupMessage"], "no media port");
    assert_eq!(read_ports(&h), Vec::<u16>::new(), "{:?}", h.sockets.log);
    h
}

#[test]
fn a_refused_read_of_a_spare_hangs_the_call_up_with_no_media_port() {
    // Spares are bound from the first tick on: the call takes two pairs of
    // them and asks for them to be read.
    let h = refused_session_socket(&[SocketFault {
        kind: OpKind::Read,
        left: 1,
    }]);
    // The pair whose read failed lost its socket; the other three are closed.
    let closed = h
        .sockets
        .log
        .iter()
        .filter(|(op, _)| matches!(op, SocketOp::Close { .. }))
        .count();
    assert_eq!(closed, 3, "{:?}", h.sockets.log);
}

#[test]
fn a_refused_bind_hangs_the_call_up_with_no_media_port() {
    // Every spare port is held by another program, so the call's ports are
    // bound from the pool, and the first of those binds fails too.
    let h = refused_session_socket(&[
        SocketFault {
            kind: OpKind::Reserve,
            left: u32::MAX,
        },
        SocketFault {
            kind: OpKind::Bind,
            left: 1,
        },
    ]);
    assert!(h
        .sockets
        .log
        .iter()
        .any(|(op, _)| matches!(op, SocketOp::Bind { .. })));
}

#[test]
fn a_spare_port_held_by_another_program_goes_unnoticed() {
    let mut h = proxied();
    h.socket_fault(SocketFault {
        kind: OpKind::Reserve,
        left: 2,
    });
    h.ua_mut(CALLER).invite("2000");
    h.run_for(1_000);
    assert_eq!(h.ua(CALLEE).requests("ACK").len(), 1, "{}", h.ladder());
    h.start_rtp(CALLER);
    h.run_for(200);
    assert!(h.ua(CALLEE).rtp_received().len() >= 9);
    assert_eq!(
        h.sockets
            .open()
            .values()
            .filter(|s| **s == Socket::Held)
            .count(),
        4,
        "two spare pairs held after all: {:?}",
        h.sockets.log
    );
}

#[test]
fn an_answered_call_that_never_sends_rtp_times_out_from_the_answer() {
    let mut h = proxied_call();
    let answered = h
        .ua(CALLER)
        .seen()
        .iter()
        .find(|s| s.status() == Some(200))
        .map(|s| s.at_ms - 10)
        .unwrap();
    h.run_until(answered + RTP_TIMEOUT_MS - 100);
    assert!(h.cdrs.is_empty(), "{}", h.ladder());
    h.run_for(1_000);
    let cdr = the_cdr(&h);
    assert_eq!(cdr.metadata["hangupMessage"], "rtp timeout");
    assert_eq!(track(cdr, 0)["rtp"]["packets"], 0);
    assert_eq!(track(cdr, 0)["latched"], Value::Null);
}

#[test]
fn many_calls_in_a_row_never_ask_for_a_port_twice_and_close_every_session_socket() {
    // 30 calls take 60 pairs of a 50-pair range: pairs come back and are
    // drawn again; the harness refuses a bind of a port it already holds.
    let mut h = proxied();
    let mut pairs = std::collections::HashSet::new();
    for n in 1..=30 {
        h.ua_mut(CALLER).invite("2000");
        h.run_for(500);
        assert!(h.ua(CALLER).in_dialog(), "call {n}\n{}", h.ladder());
        pairs.insert(relay_port_of(&h, CALLER).port());
        pairs.insert(relay_port_of(&h, CALLEE).port());
        h.start_rtp(CALLER);
        h.start_rtp(CALLEE);
        h.run_for(200);
        h.ua_mut(CALLER).stop_rtp();
        h.ua_mut(CALLEE).stop_rtp();
        h.ua_mut(CALLER).bye();
        h.settle();
        assert_eq!(h.cdrs.len(), n, "{}", h.ladder());
        assert_eq!(read_ports(&h), Vec::<u16>::new(), "call {n}");
    }
    assert!(pairs.len() > 30, "{} pairs used", pairs.len());
    let refused: Vec<_> = h
        .sockets
        .log
        .iter()
        .filter(|(_, a)| matches!(a, MediaInput::BindFailed { .. }))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    // Only the spares are left: two pairs, held.
    assert_eq!(h.sockets.open().len(), 4, "{:?}", h.sockets.open());
    assert!(h
        .cdrs
        .iter()
        .all(|c| c.metadata["tracks"][1]["rtp"]["packets"] == 11));
}

#[test]
fn stopping_the_shard_closes_the_sockets_of_calls_still_up() {
    let mut h = proxied_call();
    h.start_rtp(CALLER);
    h.run_for(100);
    assert_eq!(read_ports(&h).len(), 4);
    h.ua_mut(CALLER).stop_rtp();
    let stop_at = h.now_ms();
    // The packet sent just now is still on its way to the relay.
    let arrived = h
        .ua(CALLER)
        .rtp_sent()
        .iter()
        .filter(|p| p.at_ms + 10 <= stop_at)
        .count();
    h.stop();
    assert_eq!(h.ua(CALLEE).requests("BYE").len(), 1, "{}", h.ladder());
    assert_eq!(the_cdr(&h).metadata["hangupMessage"], "shutdown");
    assert_eq!(track(the_cdr(&h), 0)["rtp"]["packets"], arrived);
    assert_eq!(arrived, 5);
    assert_eq!(read_ports(&h), Vec::<u16>::new(), "{:?}", h.sockets.log);
}
