//! The endpoint as a state machine: datagrams in, datagrams and store
//! requests out, with time injected. No sockets.

use std::sync::Arc;

use super::*;
use crate::control_link::{ControlRequest, ControlSender};
use crate::endpoint::settings::test_settings;
use crate::routing::{RoutingSnapshot, TrunkSpec};
use crate::runtime::{Backlog, Inbox, ShardGauges, ShardLogic, ShardMsg};

const SRC: &str = "127.0.0.1:5070";

fn endpoint(
    id: usize,
    shards: usize,
) -> (SipEndpoint, crossbeam_channel::Receiver<ControlRequest>) {
    let inboxes = (0..shards)
        .map(|_| Arc::new(Inbox::new().unwrap()))
        .collect();
    let ctx = ShardContext {
        id,
        shards,
        stats: Arc::default(),
        inboxes: Arc::new(inboxes),
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    (
        SipEndpoint::new(ctx, Arc::new(test_settings()), tx).unwrap(),
        rx,
    )
}

/// Shard 0 of 1 with `settings`, its records going to `control`.
fn one_shard(settings: EndpointSettings, control: ControlSender) -> SipEndpoint {
    let ctx = ShardContext {
        id: 0,
        shards: 1,
        stats: Arc::default(),
        inboxes: Arc::new(vec![Arc::new(Inbox::new().unwrap())]),
    };
    SipEndpoint::new(ctx, Arc::new(settings), control).unwrap()
}

/// Routing with one trunk whose inbound host is [`SRC`]: its INVITEs are
/// taken without a challenge.
fn carrier_from_src() -> Arc<RoutingSnapshot> {
    let trunk = TrunkSpec {
        inbound_hosts: vec![SRC.into()],
        ..TrunkSpec::default()
    };
    Arc::new(RoutingSnapshot::build(&[("carrier".into(), trunk)], &[]).unwrap())
}

fn now(unix: u64) -> Now {
    Now {
        unix,
        mono_ms: unix * 1000,
        unix_ms: unix * 1000,
    }
}

fn options(call_id: &str, branch: &str) -> Vec<u8> {
    format!("OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:pbx.test>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

fn register(call_id: &str, branch: &str, cseq: u32, auth: Option<&str>) -> Vec<u8> {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!("REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\nFrom: <sip:1001@pbx.test>;tag=1\r\nTo: <sip:1001@pbx.test>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1001@127.0.0.1:5070>\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n").into_bytes()
}

fn sent(out: &Output) -> Vec<String> {
    (0..out.sends.len())
        .map(|i| String::from_utf8_lossy(out.sends.item(i).1).into_owned())
        .collect()
}

fn src() -> crate::transport::Peer {
    SRC.parse().unwrap()
}

#[test]
fn a_message_for_another_shard_is_handed_off_untouched() {
    let (mut ep, _rx) = endpoint(0, 2);
    let mut handed = 0;
    for i in 0..20 {
        let raw = options(&format!("cid-{i}"), &format!("z9hG4bK{i}"));
        let mut out = Output::default();
        ep.on_datagram(now(1), &raw, src(), false, &mut out);
        if let Some((owner, data, from)) = out.handoffs.first() {
            assert_eq!(*owner, 1);
            assert_eq!(data, &raw);
            assert_eq!(*from, src());
            assert!(out.sends.is_empty());
            handed += 1;
            // The owner handles what it is handed, without handing it back.
            let (mut owner_ep, _) = endpoint(1, 2);
            let mut out = Output::default();
            owner_ep.on_datagram(now(1), data, *from, true, &mut out);
            assert!(sent(&out)[0].starts_with("SIP/2.0 200 OK"));
        } else {
            assert!(sent(&out)[0].starts_with("SIP/2.0 200 OK"));
        }
    }
    assert!(
        handed > 0 && handed < 20,
        "Call-IDs spread over both shards"
    );
}

#[test]
fn retransmission_is_answered_from_the_cache_until_timer_j() {
    let (mut ep, _rx) = endpoint(0, 1);
    let raw = options("c", "z9hG4bKx");
    let mut out = Output::default();
    ep.on_datagram(now(10), &raw, src(), false, &mut out);
    ep.on_datagram(now(11), &raw, src(), false, &mut out);
    let s = sent(&out);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0], s[1]);
    assert_eq!(
        ep.stats()
            .retransmissions
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // After 64*T1 the same key is a new transaction (still answered).
    ep.handle_timeout(now(10 + 33), &mut out);
    assert!(ep.txs.is_empty());
}

#[test]
fn register_challenge_store_request_and_reply_after_the_writer() {
    let (mut ep, rx) = endpoint(0, 1);
    let mut out = Output::default();
    ep.on_datagram(
        now(100),
        &register("r1", "z9hG4bK1", 1, None),
        src(),
        false,
        &mut out,
    );
    let challenge = sent(&out).remove(0);
    assert!(challenge.starts_with("SIP/2.0 401"));
    let line = challenge
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate:"))
        .unwrap();
    let nonce = line
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let ha1 = md5_hex("1001:pbx.test:secret");
    let ha2 = md5_hex("REGISTER:sip:pbx.test");
    let resp = md5_hex(&format!("{ha1}:{nonce}:00000001:cn:auth:{ha2}"));
    let auth = format!("Digest username=\"1001\", realm=\"pbx.test\", nonce=\"{nonce}\", uri=\"sip:pbx.test\", response=\"{resp}\", algorithm=MD5, cnonce=\"cn\", qop=auth, nc=00000001");

    let mut out = Output::default();
    let authed = register("r1", "z9hG4bK2", 2, Some(&auth));
    ep.on_datagram(now(101), &authed, src(), false, &mut out);
    assert!(out.sends.is_empty(), "no answer before the store");
    // A retransmission while the store works is absorbed.
    ep.on_datagram(now(101), &authed, src(), false, &mut out);
    assert!(out.sends.is_empty());
    let ControlRequest::ApplyBindings {
        shard,
        token,
        change,
    } = rx.try_recv().unwrap()
    else {
        panic!("expected a binding change")
    };
    assert_eq!(shard, 0);
    assert_eq!(change.aor, "sip:1001@pbx.test");
    let outcome = crate::registrar::apply(vec![], &change).unwrap();
    ep.on_message(
        now(101),
        ShardMsg::Registered {
            token,
            result: Ok(outcome),
        },
        &mut out,
    );
    let ok = sent(&out).remove(0);
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert!(ok.contains("Contact: <sip:1001@127.0.0.1:5070>;expires=3600"));
    assert!(ok.contains("received=127.0.0.1;rport=5070"));
}

#[test]
fn garbage_is_dropped_and_counted_and_keepalives_are_not() {
    let (mut ep, _rx) = endpoint(0, 1);
    let mut out = Output::default();
    ep.on_datagram(now(1), b"\r\n\r\n", src(), false, &mut out);
    ep.on_datagram(now(1), b"\x00\xffgarbage", src(), false, &mut out);
    assert!(out.sends.is_empty());
    assert_eq!(
        ep.stats()
            .parse_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        ep.stats()
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_routing_snapshot_swap_steers_the_next_call() {
    use crate::routing::{RouteSpec, RoutingSnapshot, TrunkSpec};
    let (mut ep, _rx) = endpoint(0, 1);
    let invite = |cid: &str, branch: &str| {
        format!("INVITE sip:666@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\nFrom: <sip:+4930@carrier>;tag=1\r\nTo: <sip:666@pbx.test>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").into_bytes()
    };
    let finals = |out: &Output| -> Vec<String> {
        sent(out)
            .into_iter()
            .filter(|m| !m.starts_with("SIP/2.0 1"))
            .collect()
    };
    // Before: the caller is no trunk, so it is challenged.
    let mut out = Output::default();
    ep.on_datagram(
        now(1),
        &invite("before", "z9hG4bKa"),
        src(),
        false,
        &mut out,
    );
    assert!(finals(&out)[0].starts_with("SIP/2.0 407"));

    // Swap in a trunk for the caller and a route that rejects 666.
    let trunk: TrunkSpec = serde_json::from_value(serde_json::json!({
        "transport": "udp", "username": "", "password": "", "max_calls": 0, "max_cps": 0,
        "inbound_hosts": [SRC]
    }))
    .unwrap();
    let route: RouteSpec = serde_json::from_value(serde_json::json!({
        "name": "block", "action": "reject", "match": {"to.user": "666"},
        "reject": {"code": 403, "reason": "Blocked"}
    }))
    .unwrap();
    let snapshot = RoutingSnapshot::build(&[("pstn".to_string(), trunk)], &[route]).unwrap();
    ep.on_message(
        now(2),
        ShardMsg::Routing(Arc::new(snapshot)),
        &mut Output::default(),
    );
    let mut out = Output::default();
    ep.on_datagram(now(2), &invite("after", "z9hG4bKb"), src(), false, &mut out);
    let f = finals(&out);
    assert!(f[0].starts_with("SIP/2.0 403 Blocked"), "{f:?}");
}

/// An endpoint with the HTTP router (answers wait `wait_ms`), at most
/// `max_parked` parked requests, and the test source as a trunk (no auth).
fn router_endpoint(
    wait_ms: u64,
    max_parked: usize,
) -> (
    SipEndpoint,
    crossbeam_channel::Receiver<crate::routing::http_router::RouterQuery>,
) {
    let (queries, asked) = crossbeam_channel::unbounded();
    let settings = EndpointSettings {
        router: Some(crate::routing::http_router::RouterLink {
            queries,
            fallback_to_static: false,
            wait_ms,
        }),
        max_parked,
        routing: carrier_from_src(),
        ..test_settings()
    };
    let (control, _rx) = crossbeam_channel::unbounded();
    (one_shard(settings, control), asked)
}

fn at_ms(mono_ms: u64) -> Now {
    Now {
        unix: mono_ms / 1000,
        mono_ms,
        unix_ms: mono_ms,
    }
}

fn invite_to(user: &str, cid: &str, branch: &str) -> Vec<u8> {
    format!("INVITE sip:{user}@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\nFrom: <sip:+4930@carrier>;tag=1\r\nTo: <sip:{user}@pbx.test>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

fn finals(out: &Output) -> Vec<String> {
    sent(out)
        .into_iter()
        .filter(|m| !m.starts_with("SIP/2.0 1"))
        .collect()
}

#[test]
fn an_invite_parked_for_the_router_fails_just_after_its_wait() {
    let (mut ep, asked) = router_endpoint(1_000, 8);
    let mut out = Output::default();
    ep.on_datagram(
        at_ms(5_000),
        &invite_to("555", "r1", "z9hG4bKr1"),
        src(),
        false,
        &mut out,
    );
    assert!(finals(&out).is_empty(), "waits for the router");
    let query = asked.try_recv().expect("the router is asked");
    // Exactly the wait: still waiting.
    let mut out = Output::default();
    ep.handle_timeout(at_ms(6_000), &mut out);
    assert!(finals(&out).is_empty(), "{:?}", finals(&out));
    // Just after: a router failure, 503 without fallback.
    ep.handle_timeout(at_ms(6_001), &mut out);
    let f = finals(&out);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].starts_with("SIP/2.0 503 Router Unavailable"), "{f:?}");
    // A late answer finds nothing parked.
    let mut out = Output::default();
    ep.on_message(
        at_ms(6_002),
        ShardMsg::RouteAnswer {
            token: query.token,
            decision: crate::routing::http_router::RouterDecision::Reject {
                status: 486,
                reason: None,
            },
        },
        &mut out,
    );
    assert!(finals(&out).is_empty());
}

#[test]
fn the_router_answer_goes_to_its_own_invite_and_the_bound_holds() {
    let (mut ep, asked) = router_endpoint(10_000, 2);
    let mut out = Output::default();
    for (i, user) in ["601", "602"].iter().enumerate() {
        let invite = invite_to(user, &format!("b{i}"), &format!("z9hG4bKb{i}"));
        ep.on_datagram(at_ms(1_000), &invite, src(), false, &mut out);
    }
    assert!(finals(&out).is_empty());
    let tokens: Vec<u64> = asked.try_iter().map(|q| q.token).collect();
    assert_eq!(tokens.len(), 2);
    // Full: the third is not parked; without fallback that is a 503.
    let invite = invite_to("603", "b2", "z9hG4bKb2");
    ep.on_datagram(at_ms(1_001), &invite, src(), false, &mut out);
    let f = finals(&out);
    assert!(f.len() == 1 && f[0].starts_with("SIP/2.0 503"), "{f:?}");
    assert!(f[0].contains("Call-ID: b2"), "{f:?}");
    assert!(asked.try_recv().is_err(), "the router is not asked");
    // The second INVITE's answer ends the second INVITE, not the first.
    let mut out = Output::default();
    ep.on_message(
        at_ms(1_002),
        ShardMsg::RouteAnswer {
            token: tokens[1],
            decision: crate::routing::http_router::RouterDecision::Reject {
                status: 486,
                reason: Some("Busy Here".into()),
            },
        },
        &mut out,
    );
    let f = finals(&out);
    assert!(
        f.len() == 1 && f[0].starts_with("SIP/2.0 486 Busy Here"),
        "{f:?}"
    );
    assert!(f[0].contains("Call-ID: b1"), "{f:?}");
    // Room again: a new INVITE is parked and asked about.
    let mut out = Output::default();
    let invite = invite_to("604", "b3", "z9hG4bKb3");
    ep.on_datagram(at_ms(1_003), &invite, src(), false, &mut out);
    assert!(finals(&out).is_empty());
    assert!(asked.try_recv().is_ok());
}

/// An endpoint whose users only a remote backend knows (a 2 s wait):
/// the endpoint, the backend's questions, what goes to the control core.
fn remote_user_endpoint() -> (
    SipEndpoint,
    crossbeam_channel::Receiver<crate::users::UserQuery>,
    crossbeam_channel::Receiver<ControlRequest>,
) {
    let (queries, asked) = crossbeam_channel::unbounded();
    let mut users = crate::users::UserDirectory::new(vec![]);
    users.push_remote(0);
    let settings = EndpointSettings {
        users,
        user_queries: Some(queries),
        user_query_timeout_ms: 2_000,
        ..test_settings()
    };
    let (control, records) = crossbeam_channel::unbounded();
    let ep = one_shard(settings, control);
    (ep, asked, records)
}

#[test]
fn requests_parked_for_one_user_backend_question_end_with_the_first() {
    let (mut ep, asked, _records) = remote_user_endpoint();

    // A nonce first (bound to the Call-ID), then the REGISTER with
    // credentials; two of them wait for one question.
    let mut out = Output::default();
    let authed = |ep: &mut SipEndpoint, at: u64, cid: &str, out: &mut Output| {
        let mut first = Output::default();
        let raw = register(cid, &format!("z9hG4bK{cid}a"), 1, None);
        ep.on_datagram(at_ms(at), &raw, src(), false, &mut first);
        let challenge = sent(&first).remove(0);
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string();
        let auth = format!("Digest username=\"1001\", realm=\"pbx.test\", nonce=\"{nonce}\", uri=\"sip:pbx.test\", response=\"00000000000000000000000000000000\", algorithm=MD5, cnonce=\"cn\", qop=auth, nc=00000001");
        let raw = register(cid, &format!("z9hG4bK{cid}b"), 2, Some(&auth));
        ep.on_datagram(at_ms(at), &raw, src(), false, out);
    };
    authed(&mut ep, 10_000, "u1", &mut out);
    authed(&mut ep, 11_500, "u2", &mut out);
    assert!(out.sends.is_empty(), "both wait: {:?}", sent(&out));
    assert_eq!(asked.try_iter().count(), 1, "one question for both");

    // The first's wait is over: both get 503 together.
    ep.handle_timeout(at_ms(12_000), &mut out);
    assert!(out.sends.is_empty(), "{:?}", sent(&out));
    ep.handle_timeout(at_ms(12_001), &mut out);
    let answers = sent(&out);
    assert_eq!(answers.len(), 2, "{answers:?}");
    for (a, cid) in answers.iter().zip(["u1", "u2"]) {
        assert!(a.starts_with("SIP/2.0 503 User Backend Unavailable"), "{a}");
        assert!(a.contains(&format!("Call-ID: {cid}")), "{a}");
        assert!(a.contains("Retry-After: 5"), "{a}");
    }
}

#[test]
fn a_cancel_while_the_user_backend_is_asked_ends_the_invite_for_good() {
    let (mut ep, asked, records) = remote_user_endpoint();
    let invite = |auth: &str, cseq: u32, method: &str| {
        format!("{method} sip:1002@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKpc{cseq};rport\r\nFrom: <sip:1001@pbx.test>;tag=1\r\nTo: <sip:1002@pbx.test>\r\nCall-ID: parked-cancel\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n").into_bytes()
    };
    // The stateless challenge, then the INVITE with credentials: the user
    // is the backend's to say, so it waits.
    let mut out = Output::default();
    ep.on_datagram(
        at_ms(10_000),
        &invite("", 1, "INVITE"),
        src(),
        false,
        &mut out,
    );
    let challenge = sent(&out).remove(0);
    assert!(challenge.starts_with("SIP/2.0 407"), "{challenge}");
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let auth = format!("Proxy-Authorization: Digest username=\"1001\", realm=\"pbx.test\", nonce=\"{nonce}\", uri=\"sip:1002@pbx.test\", response=\"00000000000000000000000000000000\", algorithm=MD5, cnonce=\"cn\", qop=auth, nc=00000001\r\n");
    let mut out = Output::default();
    ep.on_datagram(
        at_ms(10_100),
        &invite(&auth, 2, "INVITE"),
        src(),
        false,
        &mut out,
    );
    assert!(finals(&out).is_empty(), "waits: {:?}", sent(&out));
    assert_eq!(asked.try_iter().count(), 1, "the backend is asked");

    // The caller gives up: 200 for the CANCEL, 487 for the INVITE.
    let mut out = Output::default();
    ep.on_datagram(
        at_ms(10_200),
        &invite(&auth, 2, "CANCEL"),
        src(),
        false,
        &mut out,
    );
    let answers = finals(&out);
    assert!(
        answers
            .iter()
            .any(|a| a.starts_with("SIP/2.0 200") && a.contains("CSeq: 2 CANCEL")),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|a| a.starts_with("SIP/2.0 487") && a.contains("CSeq: 2 INVITE")),
        "{answers:?}"
    );
    // Its wait running out later answers nothing new (the 487 is only
    // retransmitted until ACKed: no 503) and places no call.
    let mut out = Output::default();
    ep.handle_timeout(at_ms(13_000), &mut out);
    assert!(
        finals(&out).iter().all(|a| a.starts_with("SIP/2.0 487")),
        "{:?}",
        sent(&out)
    );
    assert!(
        !sent(&out).iter().any(|m| m.starts_with("INVITE ")),
        "no callee is rung"
    );
    assert!(records
        .try_iter()
        .all(|r| !matches!(r, ControlRequest::StoreCdr(_))));
}

/// Overload (`admission`): while the shard's socket is behind, a new INVITE
/// gets a stateless 503 with Retry-After (no transaction: no 100 Trying, no
/// call, no record); a retransmission of one it took, OPTIONS and a BYE
/// still get their answers; a drained batch takes new calls again at once.
#[test]
fn a_shard_behind_sheds_new_invites_and_takes_them_again_once_drained() {
    // Callers from a trunk: an INVITE is taken without a challenge.
    let settings = EndpointSettings {
        routing: carrier_from_src(),
        ..test_settings()
    };
    let (control, rx) = crossbeam_channel::unbounded();
    let mut ep = one_shard(settings, control);
    let t = at_ms(1_796_000_000_000);
    let run = |ep: &mut SipEndpoint, raw: &[u8]| {
        let mut out = Output::default();
        ep.on_datagram(t, raw, src(), false, &mut out);
        sent(&out)
    };
    let taken = invite_to("1002", "taken", "z9hG4bKtaken");
    let first = run(&mut ep, &taken);
    assert!(first[0].starts_with("SIP/2.0 100"), "{first:?}");
    // A full batch whose last datagram waited 500 ms (the limit is 100).
    ep.on_backlog(
        t,
        Backlog::Behind {
            stamp_unix_ms: t.unix_ms - 500,
        },
    );
    let shed = run(&mut ep, &invite_to("1002", "shed", "z9hG4bKshed"));
    assert_eq!(shed.len(), 1, "only the 503: {shed:?}");
    assert!(shed[0].starts_with("SIP/2.0 503 "), "{shed:?}");
    assert!(shed[0].contains("\r\nRetry-After: 2\r\n"), "{shed:?}");
    assert!(shed[0].contains("Call-ID: shed\r\n"), "{shed:?}");
    let stats = ep.ctx.stats.clone();
    assert_eq!(
        stats
            .overload_shed_recv_backlog
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(ShardGauges::get(&stats.gauges.shedding), 1);
    assert_eq!(ShardGauges::get(&stats.gauges.recv_delay_ms), 500);
    assert!(!ep.calls.had_call_id("shed"), "no call for it");
    // The INVITE taken before: its retransmission is not refused.
    let again = run(&mut ep, &taken);
    assert!(
        !again.is_empty() && again.iter().all(|m| !m.starts_with("SIP/2.0 503")),
        "{again:?}"
    );
    assert!(
        again.iter().all(|m| !m.starts_with("SIP/2.0 503")),
        "{again:?}"
    );
    // Requests that are not new INVITEs pass.
    let ok = run(&mut ep, &options("opt", "z9hG4bKopt"));
    assert!(ok[0].starts_with("SIP/2.0 200"), "{ok:?}");
    let bye = format!("BYE sip:1002@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {SRC};branch=z9hG4bKbye;rport\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:1002@pbx.test>;tag=2\r\nCall-ID: nodialog\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    let bye = run(&mut ep, bye.as_bytes());
    assert!(bye[0].starts_with("SIP/2.0 481"), "{bye:?}");
    assert_eq!(
        stats
            .overload_shed_recv_backlog
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // Hysteresis: 60 ms is under the limit but over half of it.
    ep.on_backlog(
        t,
        Backlog::Behind {
            stamp_unix_ms: t.unix_ms - 60,
        },
    );
    let still = run(&mut ep, &invite_to("1002", "still", "z9hG4bKstill"));
    assert!(still[0].starts_with("SIP/2.0 503"), "{still:?}");
    // The socket drained: taken again at once.
    ep.on_backlog(t, Backlog::Drained);
    let back = run(&mut ep, &invite_to("1002", "back", "z9hG4bKback"));
    assert!(
        back.iter().all(|m| !m.starts_with("SIP/2.0 503")),
        "{back:?}"
    );
    assert_eq!(
        stats
            .overload_shed_recv_backlog
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(ShardGauges::get(&stats.gauges.shedding), 0);
    // Nothing shed reached the store writer.
    while let Ok(req) = rx.try_recv() {
        if let ControlRequest::StoreCdr(cdr) = req {
            assert!(!["shed", "still"].contains(&cdr.call_id.as_str()));
        }
    }
}

/// Overload: while more records than `max_store_queue` wait for the store
/// writer, new INVITEs are shed too (counted apart), and taken again once
/// the writer caught up.
#[test]
fn a_store_writer_behind_sheds_new_invites() {
    let settings = EndpointSettings {
        admission: super::admission::AdmissionConfig {
            max_store_queue: 2,
            ..Default::default()
        },
        ..test_settings()
    };
    let (control, writer) = crossbeam_channel::unbounded();
    let others = control.clone();
    let mut ep = one_shard(settings, control);
    let t = at_ms(1_796_000_000_000);
    for i in 0..2 {
        others
            .send(ControlRequest::StoreFlow(format!("f{i}"), Vec::new()))
            .unwrap();
    }
    let mut out = Output::default();
    ep.on_datagram(
        t,
        &invite_to("1002", "s1", "z9hG4bKs1"),
        src(),
        false,
        &mut out,
    );
    let s = sent(&out);
    assert!(s[0].starts_with("SIP/2.0 503 "), "{s:?}");
    assert!(s[0].contains("\r\nRetry-After: 2\r\n"), "{s:?}");
    let stats = ep.ctx.stats.clone();
    let shed = |o: &std::sync::atomic::AtomicU64| o.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(shed(&stats.overload_shed_store_backlog), 1);
    assert_eq!(shed(&stats.overload_shed_recv_backlog), 0);
    assert_eq!(ShardGauges::get(&stats.gauges.shedding), 2);
    // The writer took one: under the limit again.
    writer.try_recv().unwrap();
    let mut out = Output::default();
    ep.on_datagram(
        t,
        &invite_to("1002", "s2", "z9hG4bKs2"),
        src(),
        false,
        &mut out,
    );
    assert!(sent(&out).iter().all(|m| !m.starts_with("SIP/2.0 503")));
    assert_eq!(shed(&stats.overload_shed_store_backlog), 1);
}
