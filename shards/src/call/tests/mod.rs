//! The B2BUA as a state machine: transaction table + call engine, messages
//! in, messages out, time injected. No sockets.

use std::net::SocketAddr;

use super::engine::{CallEngine, EngineConfig, Handled, Input, Output};
use super::ids::IdGen;
use super::model::{NewCall, Target};
use super::MediaPolicy;
use crate::cdr::{Cdr, Direction, HangupReason};
use crate::media::relay::MediaRelay;
use crate::sip::Message;
use crate::time::Now;
use crate::transaction::TxId;

const CALLER: &str = "127.0.0.1:5071";
const CALLEE: &str = "127.0.0.1:5072";

fn at(ms: u64) -> Now {
    Now {
        unix: 1_000 + ms / 1000,
        mono_ms: ms,
        unix_ms: 1_000_000 + ms,
    }
}

/// The engine (and a relay to lend it) driven through its surface.
struct Rig {
    engine: CallEngine,
    relay: Option<MediaRelay>,
    cdrs: Vec<Cdr>,
}

impl Rig {
    fn new() -> Rig {
        Rig::with_ring(30_000)
    }

    /// A rig whose calls ring at most `max_ring_ms`.
    fn with_ring(max_ring_ms: u64) -> Rig {
        Rig {
            engine: CallEngine::new(
                EngineConfig {
                    host: "127.0.0.1".into(),
                    port: 5060,
                    tcp_port: 5060,
                    tls_port: 5061,
                    ws_port: 0,
                    wss_port: 8443,
                    max_ring_ms,
                    server_name: "test".into(),
                    max_flow_bytes: crate::call::flow::DEFAULT_MAX_BYTES,
                    max_forks: 4,
                },
                IdGen::from_seed([1; 32], 0, 1),
            ),
            relay: None,
            cdrs: Vec::new(),
        }
    }

    /// Finds our 200 to the caller in `sent` and ACKs it as the caller
    /// would; returns our tag.
    fn ack_our_200(&mut self, sent: &[(SocketAddr, String)], call_id: &str) -> String {
        let (_, ok) = sent
            .iter()
            .find(|(d, m)| d.to_string() == CALLER && m.starts_with("SIP/2.0 200"))
            .expect("the caller's 200");
        let m = Message::parse(ok.as_bytes()).unwrap();
        let tag = m.to().unwrap().tag().unwrap().to_string();
        let ack = format!("ACK sip:shardpbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKack1\r\nFrom: <sip:1001@pbx>;tag=ca\r\nTo: <sip:1002@pbx>;tag={tag}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
        self.receive(at(20), &ack, CALLER);
        self.sent();
        tag
    }

    /// Datagrams sent since the last call; CDRs are kept in `cdrs`.
    fn sent(&mut self) -> Vec<(SocketAddr, String)> {
        let mut out = Vec::new();
        while let Some(o) = self.engine.poll_output() {
            match o {
                Output::Transmit { dest, data } => {
                    out.push((dest.addr, String::from_utf8_lossy(&data).into_owned()));
                }
                Output::Cdr(cdr) => self.cdrs.push(*cdr),
                Output::Flow { .. } => {}
            }
        }
        out
    }

    fn feed(&mut self, now: Now, msg: &Message<'_>, src: &str) -> Handled {
        let src: crate::transport::Peer = src.parse().unwrap();
        self.engine
            .handle(now, Input::Sip { msg, src }, self.relay.as_mut())
    }

    fn receive(&mut self, now: Now, raw: &str, src: &str) {
        let msg = Message::parse(raw.as_bytes()).unwrap();
        self.feed(now, &msg, src);
    }

    /// A new INVITE from the caller: its server transaction.
    fn invite_tx(&mut self, msg: &Message<'_>) -> TxId {
        match self.feed(at(0), msg, CALLER) {
            Handled::Request(tx) => tx,
            other => panic!("{other:?}"),
        }
    }

    fn start_call(&mut self, now: Now, new: NewCall<'_>) {
        self.engine
            .handle(now, Input::Call(new), self.relay.as_mut());
    }

    /// Time passes to `ms`: whatever is due fires.
    fn tick(&mut self, ms: u64) {
        self.engine.handle_timeout(at(ms), self.relay.as_mut());
    }
}

fn invite() -> String {
    format!("INVITE sip:1002@pbx SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKc1\r\nFrom: <sip:1001@pbx>;tag=ca\r\nTo: <sip:1002@pbx>\r\nCall-ID: call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@{CALLER}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n")
}

/// A response from the callee to the request it got (`req`).
fn answer(req: &str, code: u16, tag: &str) -> String {
    let msg = Message::parse(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut w = crate::sip::Writer::response_to(&mut buf, &msg, code, None, Some(tag), None);
    w.header("Contact", &format!("<sip:1002@{CALLEE}>"));
    w.finish(b"");
    String::from_utf8(buf).unwrap()
}

/// The callee sipp at [`CALLEE`] as a target.
fn callee_target() -> Target {
    Target::new(format!("sip:1002@{CALLEE}"), CALLEE.parse().unwrap())
}

/// A call from [`CALLER`]'s INVITE `msg` (its transaction `tx`) to
/// `targets` in parallel, internal, no route or trunk.
fn new_call<'m>(
    msg: &'m Message<'m>,
    tx: TxId,
    targets: Vec<Target>,
    media: MediaPolicy,
) -> NewCall<'m> {
    NewCall {
        invite: msg,
        src: CALLER.parse().unwrap(),
        tx,
        targets,
        sequential: false,
        per_target_ms: None,
        direction: Direction::Internal,
        ring_ms: None,
        route: None,
        trunk: None,
        media,
        extras: Default::default(),
        auth_user: None,
        caller_srtp: Default::default(),
    }
}

fn start(rig: &mut Rig) -> String {
    let raw = invite();
    let msg = Message::parse(raw.as_bytes()).unwrap();
    let tx = rig.invite_tx(&msg);
    let new = new_call(&msg, tx, vec![callee_target()], MediaPolicy::default());
    rig.start_call(at(0), new);
    let sent = rig.sent();
    let b_invite = sent
        .iter()
        .find(|(d, m)| d.to_string() == CALLEE && m.starts_with("INVITE "))
        .expect("callee INVITE");
    assert!(b_invite.1.contains("Max-Forwards: 69"), "decremented");
    assert!(
        !b_invite.1.contains("Call-ID: call-1"),
        "the callee leg has its own Call-ID"
    );
    assert!(sent
        .iter()
        .any(|(d, m)| d.to_string() == CALLER && m.starts_with("SIP/2.0 100")));
    b_invite.1.clone()
}

#[test]
fn ringing_answer_ack_and_a_missing_caller_ack_hangs_up() {
    let mut rig = Rig::new();
    let b_invite = start(&mut rig);
    rig.receive(at(10), &answer(&b_invite, 180, "cb"), CALLEE);
    let sent = rig.sent();
    assert!(
        sent.iter()
            .any(|(d, m)| d.to_string() == CALLER && m.starts_with("SIP/2.0 180")),
        "{sent:?}"
    );
    rig.receive(at(20), &answer(&b_invite, 200, "cb"), CALLEE);
    let sent = rig.sent();
    assert!(
        sent.iter()
            .any(|(d, m)| d.to_string() == CALLEE && m.starts_with("ACK ")),
        "callee ACKed"
    );
    assert!(
        sent.iter()
            .any(|(d, m)| d.to_string() == CALLER && m.starts_with("SIP/2.0 200")),
        "caller answered"
    );
    // The caller never ACKs: the 2xx is retransmitted, then timer L gives up.
    rig.tick(600);
    assert!(
        rig.sent()
            .iter()
            .any(|(d, m)| d.to_string() == CALLER && m.starts_with("SIP/2.0 200")),
        "2xx retransmitted"
    );
    let mut bye = false;
    for t in (1_000..=40_000).step_by(1_000) {
        rig.tick(t);
        bye |= rig
            .sent()
            .iter()
            .any(|(d, m)| d.to_string() == CALLEE && m.starts_with("BYE "));
    }
    assert!(bye, "the callee got BYE when the caller never ACKed");
    let cdr = rig.cdrs.pop().expect("a CDR");
    assert_eq!(cdr.hangup_reason, HangupReason::BySystem);
    assert_eq!(rig.engine.active_calls(), 0);
}

#[test]
fn ring_timeout_cancels_the_callee_and_answers_408() {
    let mut rig = Rig::new();
    let b_invite = start(&mut rig);
    rig.receive(at(10), &answer(&b_invite, 180, "cb"), CALLEE);
    rig.sent();
    rig.tick(29_999);
    assert!(
        rig.sent()
            .iter()
            .all(|(_, m)| !m.starts_with("SIP/2.0 408")),
        "not before max_ring"
    );
    rig.tick(30_000);
    let sent = rig.sent();
    assert!(
        sent.iter()
            .any(|(d, m)| d.to_string() == CALLEE && m.starts_with("CANCEL ")),
        "{sent:?}"
    );
    assert!(sent
        .iter()
        .any(|(d, m)| d.to_string() == CALLER && m.starts_with("SIP/2.0 408")));
    let cdr = rig.cdrs.pop().unwrap();
    assert_eq!(
        (cdr.status.as_str(), cdr.hangup_reason.as_str()),
        ("missed", "noAnswer")
    );
}

#[test]
fn best_final_prefers_6xx_then_the_lowest_class() {
    use super::engine::best_final;
    assert_eq!(best_final([486, 603, 404].into_iter()), 603);
    assert_eq!(best_final([503, 486].into_iter()), 486);
    assert_eq!(best_final([408, 404].into_iter()), 404);
    assert_eq!(best_final(std::iter::empty()), 480);
}

#[test]
fn a_second_2xx_from_another_fork_gets_ack_and_bye() {
    const OTHER: &str = "127.0.0.1:5073";
    let mut rig = Rig::new();
    let raw = invite();
    let msg = Message::parse(raw.as_bytes()).unwrap();
    let tx = rig.invite_tx(&msg);
    let targets = vec![
        Target::new(format!("sip:1002@{CALLEE}"), CALLEE.parse().unwrap()),
        Target::new(format!("sip:1002@{OTHER}"), OTHER.parse().unwrap()),
    ];
    let new = new_call(&msg, tx, targets, MediaPolicy::default());
    rig.start_call(at(0), new);
    let sent = rig.sent();
    let to = |dest: &str| {
        sent.iter()
            .find(|(d, m)| d.to_string() == dest && m.starts_with("INVITE "))
            .map(|(_, m)| m.clone())
            .unwrap()
    };
    let (first, second) = (to(CALLEE), to(OTHER));
    rig.receive(at(10), &answer(&first, 200, "one"), CALLEE);
    let sent = rig.sent();
    assert!(sent
        .iter()
        .any(|(d, m)| d.to_string() == CALLER && m.starts_with("SIP/2.0 200")));
    // Both answered at once: the late one is ACKed and hung up.
    rig.receive(at(11), &answer(&second, 200, "two"), OTHER);
    let sent = rig.sent();
    assert!(
        sent.iter()
            .any(|(d, m)| d.to_string() == OTHER && m.starts_with("ACK ")),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|(d, m)| d.to_string() == OTHER && m.starts_with("BYE ")),
        "{sent:?}"
    );
    assert!(
        !sent.iter().any(|(d, _)| d.to_string() == CALLER),
        "the caller sees one answer"
    );
}

mod media_decisions {
    //! When media is proxied (media_proxy modes) and what the callee is sent.

    use super::*;
    use crate::call::MediaMode;
    use crate::media::relay::RelayConfig;

    pub(super) fn rig_with_relay(base: u16) -> Rig {
        relay_on(Rig::new(), base)
    }

    /// `rig` with a relay on ports `base..base+20`.
    pub(super) fn relay_on(mut rig: Rig, base: u16) -> Rig {
        rig.relay = Some(MediaRelay::new(
            RelayConfig {
                bind_ip: "127.0.0.1".parse().unwrap(),
                advertise: "198.51.100.7".parse().unwrap(),
                port_start: base,
                port_end: base + 20,
                rtp_timeout_ms: 0,
                recordings_dir: "/nonexistent".into(),
                recordings_cdr_dir: "recordings".into(),
                recording: false,
            },
            0,
            1,
            [5; 32],
        ));
        rig
    }

    /// Starts a call from an INVITE whose SDP says `conn` as `c=`; returns
    /// what the engine sent.
    pub(super) fn start_call(
        rig: &mut Rig,
        conn: &str,
        policy: MediaPolicy,
    ) -> Vec<(SocketAddr, String)> {
        let body = format!("v=0\r\no=- 1 1 IN IP4 {conn}\r\ns=-\r\nc=IN IP4 {conn}\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n");
        let raw = format!("INVITE sip:1002@pbx SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKm1\r\nFrom: <sip:1001@pbx>;tag=ca\r\nTo: <sip:1002@pbx>\r\nCall-ID: media-1\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@{CALLER}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        let msg = Message::parse(raw.as_bytes()).unwrap();
        let tx = rig.invite_tx(&msg);
        let new = new_call(&msg, tx, vec![callee_target()], policy);
        rig.start_call(at(0), new);
        rig.sent()
    }

    /// The SDP body the callee got for a call whose offer says `conn`.
    fn offer_seen(rig: &mut Rig, conn: &str, policy: MediaPolicy) -> String {
        let sent = start_call(rig, conn, policy);
        let (_, invite) = sent.iter().find(|(_, m)| m.starts_with("INVITE")).unwrap();
        invite.split_once("\r\n\r\n").unwrap().1.to_string()
    }

    pub(super) fn policy(mode: MediaMode) -> MediaPolicy {
        MediaPolicy {
            mode,
            ..MediaPolicy::default()
        }
    }

    #[test]
    fn nat_mode_proxies_a_private_or_foreign_sdp_address_only() {
        let mut rig = rig_with_relay(63000);
        let body = offer_seen(&mut rig, "127.0.0.1", policy(MediaMode::Nat));
        assert!(
            body.contains("c=IN IP4 127.0.0.1\r\n"),
            "same address, public: direct\n{body}"
        );
        let mut rig = rig_with_relay(63100);
        let body = offer_seen(&mut rig, "192.168.1.5", policy(MediaMode::Nat));
        assert!(body.contains("c=IN IP4 198.51.100.7\r\n"), "{body}");
        let port: u16 = body
            .split("m=audio ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap();
        assert!(
            (63100..63120).contains(&port) && port.is_multiple_of(2),
            "a port of the relay's range\n{body}"
        );
    }

    #[test]
    fn auto_proxies_recorded_and_trunk_calls_and_none_never() {
        for (p, proxied) in [
            (policy(MediaMode::Auto), false),
            (
                MediaPolicy {
                    record: true,
                    ..policy(MediaMode::Auto)
                },
                true,
            ),
            (
                MediaPolicy {
                    via_trunk: true,
                    ..policy(MediaMode::Auto)
                },
                true,
            ),
            (
                MediaPolicy {
                    callee_natted: true,
                    ..policy(MediaMode::Auto)
                },
                true,
            ),
            (
                MediaPolicy {
                    callee_natted: true,
                    ..policy(MediaMode::Nat)
                },
                true,
            ),
            (policy(MediaMode::Always), true),
            (
                MediaPolicy {
                    record: true,
                    via_trunk: true,
                    ..policy(MediaMode::None)
                },
                false,
            ),
        ] {
            let mut rig = rig_with_relay(63200);
            let body = offer_seen(&mut rig, "127.0.0.1", p);
            assert_eq!(body.contains("198.51.100.7"), proxied, "{p:?}\n{body}");
        }
    }

    #[test]
    fn a_call_without_a_relay_port_left_gets_503() {
        let mut rig = rig_with_relay(63300);
        if let Some(r) = rig.relay.as_mut() {
            // Take every pair of the tiny range.
            for i in 0..10 {
                let _ = r.create(100 + i, "x", false);
            }
        }
        let sent = start_call(&mut rig, "127.0.0.1", policy(MediaMode::Always));
        assert!(
            sent.iter().any(|(_, m)| m.starts_with("SIP/2.0 503")),
            "{sent:?}"
        );
        assert!(!sent.iter().any(|(_, m)| m.starts_with("INVITE")));
        assert_eq!(rig.cdrs[0].status_code, 503);
    }
}

#[test]
fn a_call_rings_at_most_max_forks_targets() {
    // The rig's engine allows 4 forks; a router (or a crowded AOR) gives 20.
    let mut rig = Rig::new();
    let raw = invite();
    let msg = Message::parse(raw.as_bytes()).unwrap();
    let tx = rig.invite_tx(&msg);
    let targets = (0..20)
        .map(|i| {
            Target::new(
                format!("sip:1002@10.0.0.{i}"),
                format!("10.0.0.{i}:5060").parse().unwrap(),
            )
        })
        .collect();
    let new = NewCall::new(
        &msg,
        CALLER.parse().unwrap(),
        tx,
        targets,
        Direction::Internal,
        Default::default(),
    );
    rig.start_call(at(0), new);
    let invites = rig
        .sent()
        .iter()
        .filter(|(_, m)| m.starts_with("INVITE "))
        .count();
    assert_eq!(invites, 4);
}

mod flows_and_order;

/// In-dialog requests relayed between the legs: what happens when the other
/// leg is silent, and what a long call keeps of them.
mod relayed_requests {
    use super::*;

    /// An answered call (callee tag `cb`); returns the tag the caller sees.
    fn answered(rig: &mut Rig) -> String {
        let b_invite = start(rig);
        rig.receive(at(10), &answer(&b_invite, 200, "cb"), CALLEE);
        let sent = rig.sent();
        rig.ack_our_200(&sent, "call-1")
    }

    fn info(cseq: u32, our_tag: &str) -> String {
        format!("INFO sip:shardpbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKinfo{cseq}\r\nFrom: <sip:1001@pbx>;tag=ca\r\nTo: <sip:1002@pbx>;tag={our_tag}\r\nCall-ID: call-1\r\nCSeq: {cseq} INFO\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    }

    #[test]
    fn a_request_the_other_leg_never_answers_gets_408() {
        let mut rig = Rig::new();
        let tag = answered(&mut rig);
        rig.receive(at(100), &info(2, &tag), CALLER);
        let sent = rig.sent();
        assert!(
            sent.iter()
                .any(|(d, m)| d.to_string() == CALLEE && m.starts_with("INFO ")),
            "relayed: {sent:?}"
        );
        let mut to_caller = Vec::new();
        for t in (500..=33_000).step_by(500) {
            rig.tick(t);
            to_caller.extend(
                rig.sent()
                    .into_iter()
                    .filter(|(d, m)| d.to_string() == CALLER && m.contains("CSeq: 2 INFO")),
            );
        }
        assert!(
            to_caller.iter().any(|(_, m)| m.starts_with("SIP/2.0 408")),
            "the sender hears why: {to_caller:?}"
        );
        assert_eq!(rig.engine.active_calls(), 1, "the call stays");
    }

    #[test]
    fn a_long_call_keeps_only_its_live_transactions() {
        let mut rig = Rig::new();
        let tag = answered(&mut rig);
        for cseq in 2..52 {
            rig.receive(at(u64::from(cseq) * 10), &info(cseq, &tag), CALLER);
            let sent = rig.sent();
            let (_, relayed) = sent
                .iter()
                .find(|(d, m)| d.to_string() == CALLEE && m.starts_with("INFO "))
                .expect("relayed");
            let relayed = relayed.clone();
            rig.receive(
                at(u64::from(cseq) * 10 + 1),
                &answer(&relayed, 200, "cb"),
                CALLEE,
            );
            rig.sent();
        }
        let watched = |rig: &Rig| rig.engine.txs_of.values().map(Vec::len).sum::<usize>();
        assert!(watched(&rig) >= 50, "all still in flight");
        // Every transaction has ended (timers K and M): none is kept.
        for t in (1_000..=70_000).step_by(1_000) {
            rig.tick(t);
            rig.sent();
        }
        assert_eq!(rig.engine.active_calls(), 1);
        assert_eq!(watched(&rig), 0);
    }
}

/// A transfer target that never answers at all (timer B before the
/// transfer's own deadline) leaves the call transferable again.
mod transfer_timeouts {
    use super::*;
    use crate::call::commands::Command;
    use crate::call::MediaMode;

    #[test]
    fn a_silent_transfer_target_frees_the_call_at_timer_b() {
        // Its own deadline (max ring 60 s) comes after timer B (32 s).
        let mut rig = media_decisions::relay_on(Rig::with_ring(60_000), 64000);
        let policy = media_decisions::policy(MediaMode::Always);
        let sent = media_decisions::start_call(&mut rig, "127.0.0.1", policy);
        let (_, b_invite) = sent
            .iter()
            .find(|(_, m)| m.starts_with("INVITE"))
            .unwrap()
            .clone();
        rig.receive(at(10), &answer(&b_invite, 200, "cb"), CALLEE);
        let sent = rig.sent();
        rig.ack_our_200(&sent, "media-1");
        let target = Target::new(
            "sip:3000@127.0.0.1:5080".into(),
            "127.0.0.1:5080".parse().unwrap(),
        );
        let input = Input::Command {
            call_id: "media-1",
            command: Command::Transfer { target },
        };
        let r = rig.engine.handle(at(100), input, rig.relay.as_mut());
        assert_eq!(r, Handled::Command(Ok(())));
        for t in (500..=32_000).step_by(500) {
            rig.tick(t);
            rig.sent();
        }
        assert!(
            rig.engine.transfer_check("media-1").is_err(),
            "still ringing"
        );
        for t in (32_500..=70_000).step_by(500) {
            rig.tick(t);
            rig.sent();
        }
        assert_eq!(
            rig.engine.transfer_check("media-1"),
            Ok(()),
            "a silent transfer target leaves the call transferable again"
        );
    }
}
