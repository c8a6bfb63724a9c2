//! Issue 12, hole 6, through the real binary: password guessing gets the
//! guessing address banned (and only it: the user goes on registering from
//! elsewhere), AMI lists and lifts bans, a flood from one address is
//! dropped before it costs a transaction, and a challenge is one datagram
//! per request with nothing retransmitted toward a spoofable address.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;

/// A UAC on another loopback address (the attacker's).
fn uac_on(ip: &str, pbx: &Pbx) -> Uac {
    let sock = UdpSocket::bind((ip, 0)).expect("127.0.0.0/8 is loopback on Linux");
    let local = sock.local_addr().unwrap();
    Uac {
        sock,
        local,
        server: pbx.sip,
    }
}

/// One REGISTER for 1001 with `password`, answering the challenge; the
/// final response, or None when nothing came back.
fn register(uac: &Uac, password: &str, call_id: &str) -> Option<Response> {
    let reg = |cseq: u32, auth: Option<&str>| {
        Register {
            user: "1001",
            call_id,
            cseq,
            contact: Some(format!("<sip:1001@{}>", uac.local)),
            expires: Some(60),
            authorization: auth.map(String::from),
        }
        .build(uac)
    };
    uac.send(&reg(1, None));
    let ch = Response::parse(&uac.recv(Duration::from_millis(700))?);
    assert_eq!(ch.code, 401, "{}", ch.raw);
    let auth = digest_auth(
        ch.header("WWW-Authenticate").unwrap(),
        "1001",
        password,
        "REGISTER",
        "sip:pbx.test",
        1,
    );
    uac.send(&reg(2, Some(&auth)));
    let deadline = Instant::now() + Duration::from_millis(700);
    while Instant::now() < deadline {
        let r = Response::parse(&uac.recv(Duration::from_millis(700))?);
        if r.header("CSeq").is_some_and(|c| c.starts_with("2 ")) {
            return Some(r);
        }
    }
    None
}

#[test]
fn guessing_bans_the_address_not_the_user_and_ami_lifts_it() {
    let pbx = Pbx::start(PbxOptions {
        extra_tables: "[security]\nban_after_failures = 5\nban_window_secs = 60\nban_secs = 600\n"
            .into(),
        ..PbxOptions::default()
    });
    let evil = uac_on("127.0.0.2", &pbx);
    for i in 0..5 {
        let r = register(&evil, &format!("guess{i}"), &format!("guess-{i}")).expect("an answer");
        assert_eq!(r.code, 403, "{}", r.raw);
    }
    // Banned (the ban book tells the shards within moments): even the
    // right password gets no answer from that address.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        register(&evil, "secret1001", "guess-right").is_none(),
        "banned"
    );
    let ami = |method: &str, path: &str| http_request(&pbx, method, path, "", "");
    let (code, body) = ami("GET", "/ami/v1/bans");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["items"][0]["ip"], "127.0.0.2", "{v}");
    assert_eq!(v["items"][0]["failures"], 5, "{v}");
    assert!(pbx.metric_sum("shardpbx_banned_dropped_total") >= 1);
    // The user is not locked out: from its own address it registers.
    let phone = Uac::new(pbx.sip);
    let r = register(&phone, "secret1001", "phone-1").expect("answered");
    assert_eq!(r.code, 200, "{}", r.raw);
    // Lifted over AMI: the address works again.
    assert_eq!(ami("DELETE", "/ami/v1/bans/127.0.0.2").0, 204);
    assert_eq!(ami("DELETE", "/ami/v1/bans/127.0.0.2").0, 404);
    assert_eq!(ami("DELETE", "/ami/v1/bans/not-an-ip").0, 400);
    std::thread::sleep(Duration::from_millis(100));
    let r = register(&evil, "secret1001", "after-lift").expect("answered after the lift");
    assert_eq!(r.code, 200, "{}", r.raw);
}

#[test]
fn a_flood_from_one_address_is_dropped_before_it_costs_a_transaction() {
    let pbx = Pbx::start(PbxOptions {
        extra_tables: "[security]\nflood_requests_per_sec = 20\n".into(),
        ..PbxOptions::default()
    });
    let flood = uac_on("127.0.0.3", &pbx);
    flood.sock.set_nonblocking(true).unwrap();
    let handled_before = pbx.metric_sum("shardpbx_handled_total");
    for i in 0..300 {
        let invite = format!(
            "INVITE sip:1002@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-flood{i}\r\nMax-Forwards: 70\r\nFrom: <sip:x@pbx.test>;tag=f{i}\r\nTo: <sip:1002@pbx.test>\r\nCall-ID: flood-{i}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            me = flood.local
        );
        flood.send(&invite);
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut answers = 0;
    let mut buf = [0u8; 4096];
    while flood.sock.recv_from(&mut buf).is_ok() {
        answers += 1;
    }
    // A burst of twice the rate passes (and a few more as time goes on).
    assert!(
        (40..=60).contains(&answers),
        "{answers} answers to 300 INVITEs"
    );
    let dropped = pbx.metric_sum("shardpbx_flood_dropped_total");
    assert!(dropped >= 240, "{dropped}");
    let handled = pbx.metric_sum("shardpbx_handled_total") - handled_before;
    assert!(
        handled <= 60,
        "only admitted requests were handled: {handled}"
    );
    // Another address is served as usual.
    let other = Uac::new(pbx.sip);
    let r = other.request(&options_request(&other, "other-1"));
    assert_eq!(r.code, 200);
}

#[test]
fn an_invite_without_credentials_gets_one_stateless_challenge() {
    let pbx = Pbx::start(PbxOptions::default());
    let uac = Uac::new(pbx.sip);
    let invite = format!(
        "INVITE sip:1002@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-stateless1\r\nMax-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=s1\r\nTo: <sip:1002@pbx.test>\r\nCall-ID: stateless-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        me = uac.local
    );
    uac.send(&invite);
    let first = Response::parse(&uac.recv(Duration::from_secs(2)).expect("a challenge"));
    assert_eq!(first.code, 407, "no 100 Trying first: {}", first.raw);
    // Never ACKed, yet nothing comes again (a transaction would resend
    // the 407 at 0.5 s, 1 s, 2 s...).
    assert!(
        uac.recv(Duration::from_millis(2500)).is_none(),
        "the challenge was retransmitted"
    );
    // A retransmitted INVITE gets one answer, with the same To tag.
    uac.send(&invite);
    let again = Response::parse(&uac.recv(Duration::from_secs(2)).expect("answered"));
    assert_eq!(again.code, 407);
    assert_eq!(again.header("To"), first.header("To"));
    assert!(uac.recv(Duration::from_millis(700)).is_none());
    assert_eq!(pbx.metric_sum("shardpbx_stateless_challenges_total"), 2);
    // The legitimate call beside it still goes through its challenge.
    let r = call_by_hand(&pbx, "1002", "stateless-legit");
    assert_eq!(r.code, 480, "1002 is not registered: {}", r.raw);
}
