//! Calls through the real binary with sipp on both sides: the caller
//! authenticates (407), the callee is a registered sipp UAS; CDRs land in
//! the store with the right status and hangup reason.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn cdrs(pbx: &Pbx) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = pbx.cli(&["cdr", "list", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if !list.is_empty() || Instant::now() > deadline {
            return list;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn basic_call_to_a_registered_extension() {
    let pbx = Pbx::start(PbxOptions::default());
    let uas_port = free_port();
    let uas = sipp_peer(uas_port, pbx.dir(), "uas");
    register_contact(&pbx, "1002", "secret1002", uas_port);
    let out = sipp_caller(&pbx, UAC_AUTH, "1002");
    assert_sipp_ok(&out, "caller");
    assert!(
        uas.wait(Duration::from_secs(10)).success(),
        "callee sipp failed"
    );
    let list = cdrs(&pbx);
    assert_eq!(list.len(), 1, "{list:?}");
    let cdr = &list[0];
    assert_eq!(cdr["status"], "completed");
    assert_eq!(cdr["statusCode"], 200);
    assert_eq!(cdr["hangupReason"], "byCaller");
    assert_eq!(cdr["fromNumber"], "1001");
    assert_eq!(cdr["toNumber"], "1002");
    assert!(cdr["answerTime"].is_string());
}

/// `perf/frugal.toml`'s polling shard: the SIP socket, the inbox (the store
/// writer's answers to REGISTER) and the relay are read on the beat instead
/// of on readiness, and calls and registrations work the same.
#[test]
fn calls_and_registrations_work_on_a_polling_shard() {
    let pbx = Pbx::start(PbxOptions {
        runtime_extra: "poll_interval_us = 1000".into(),
        proxy_extra: r#"media_proxy = "always""#.into(),
        ..PbxOptions::default()
    });
    for i in 0..3 {
        let uas_port = free_port();
        let uas = sipp_peer(uas_port, pbx.dir(), "uas");
        register_contact(&pbx, "1002", "secret1002", uas_port);
        let out = sipp_caller(&pbx, UAC_AUTH, "1002");
        assert_sipp_ok(&out, &format!("caller {i}"));
        assert!(uas.wait(Duration::from_secs(10)).success(), "callee {i}");
    }
    let list = cdrs(&pbx);
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list.iter().all(|c| c["status"] == "completed"), "{list:?}");
    assert!(
        list.iter().all(|c| c["metadata"]["media"] == "proxied"),
        "{list:?}"
    );
}

#[test]
fn unknown_extension_gets_404_and_a_failed_cdr() {
    let pbx = Pbx::start(PbxOptions::default());
    let r = call_by_hand(&pbx, "4444", "unknown-ext");
    assert_eq!(r.code, 404);
    let list = cdrs(&pbx);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "failed");
    assert_eq!(list[0]["statusCode"], 404);
}

#[test]
fn busy_callee_gives_486_to_the_caller() {
    let pbx = Pbx::start(PbxOptions::default());
    let port = free_port();
    let uas = sipp_peer(port, pbx.dir(), "uas_busy.xml");
    register_contact(&pbx, "1002", "secret1002", port);
    let r = call_by_hand(&pbx, "1002", "busy-1");
    assert_eq!(r.code, 486, "{}", r.raw);
    assert!(
        uas.wait(Duration::from_secs(10)).success(),
        "callee got its ACK"
    );
    let list = cdrs(&pbx);
    assert_eq!(list[0]["statusCode"], 486);
    assert_eq!(list[0]["status"], "failed");
}

#[test]
fn no_answer_times_out_with_408_and_cancels_the_callee() {
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: "max_ring_time = 2".into(),
        ..PbxOptions::default()
    });
    let port = free_port();
    let uas = sipp_peer(port, pbx.dir(), "uas_ring.xml");
    register_contact(&pbx, "1002", "secret1002", port);
    let started = Instant::now();
    let r = call_by_hand(&pbx, "1002", "noanswer-1");
    assert_eq!(r.code, 408, "{}", r.raw);
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert!(
        uas.wait(Duration::from_secs(10)).success(),
        "callee got CANCEL, answered 487, got ACK"
    );
    let list = cdrs(&pbx);
    assert_eq!(list[0]["status"], "missed");
    assert_eq!(list[0]["hangupReason"], "noAnswer");
}

#[test]
fn caller_cancels_while_ringing() {
    let pbx = Pbx::start(PbxOptions::default());
    let port = free_port();
    let uas = sipp_peer(port, pbx.dir(), "uas_ring.xml");
    register_contact(&pbx, "1002", "secret1002", port);
    let out = sipp_caller(&pbx, &scenario("uac_cancel.xml"), "1002");
    assert_sipp_ok(&out, "caller");
    assert!(
        uas.wait(Duration::from_secs(10)).success(),
        "callee got CANCEL"
    );
    let list = cdrs(&pbx);
    assert_eq!(list[0]["status"], "missed");
    assert_eq!(list[0]["hangupReason"], "canceled");
    assert_eq!(list[0]["statusCode"], 487);
}

#[test]
fn callee_hangs_up_and_two_shards_keep_the_call_on_its_owner() {
    let pbx = Pbx::start(PbxOptions {
        shards: 2,
        ..PbxOptions::default()
    });
    let port = free_port();
    let uas = sipp_peer(port, pbx.dir(), "uas_bye.xml");
    register_contact(&pbx, "1002", "secret1002", port);
    let out = sipp_caller(&pbx, &scenario("uac_wait_bye.xml"), "1002");
    assert_sipp_ok(&out, "caller");
    assert!(
        uas.wait(Duration::from_secs(10)).success(),
        "callee's BYE answered"
    );
    let list = cdrs(&pbx);
    assert_eq!(list[0]["status"], "completed");
    assert_eq!(list[0]["hangupReason"], "byCallee");
}

#[test]
fn hold_and_resume_re_invites_are_relayed_mid_call() {
    let pbx = Pbx::start(PbxOptions::default());
    let port = free_port();
    let uas = sipp_peer(port, pbx.dir(), "uas_reinvite.xml");
    register_contact(&pbx, "1002", "secret1002", port);
    let out = sipp_caller(&pbx, &scenario("uac_reinvite.xml"), "1002");
    assert_sipp_ok(&out, "caller");
    assert!(
        uas.wait(Duration::from_secs(10)).success(),
        "callee saw hold (sendonly) and resume (sendrecv)"
    );
    assert_eq!(cdrs(&pbx)[0]["status"], "completed");
}

#[test]
fn parallel_fork_to_two_bindings_one_answers_the_other_is_cancelled() {
    let pbx = Pbx::start(PbxOptions::default());
    let (answering, ringing) = (free_port(), free_port());
    let a = sipp_peer(answering, pbx.dir(), "uas");
    let b = sipp_peer(ringing, pbx.dir(), "uas_ring.xml");
    register_contact(&pbx, "1002", "secret1002", ringing);
    register_contact(&pbx, "1002", "secret1002", answering);
    let out = sipp_caller(&pbx, UAC_AUTH, "1002");
    assert!(out.status.success(), "caller failed");
    assert!(
        a.wait(Duration::from_secs(10)).success(),
        "answering binding"
    );
    assert!(
        b.wait(Duration::from_secs(10)).success(),
        "the other binding got CANCEL"
    );
}

#[test]
fn a_retransmitted_invite_is_absorbed_not_called_twice() {
    let pbx = Pbx::start(PbxOptions::default());
    let port = free_port();
    let callee = sipp_peer(port, pbx.dir(), "uas");
    register_contact(&pbx, "1002", "secret1002", port);
    let uac = Uac::new(pbx.sip);
    let branch2 = branch();
    let invite = |cseq: u32, br: &str, auth: Option<String>| {
        format!(
            "INVITE sip:1002@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={br};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=rt\r\nTo: <sip:1002@pbx.test>\r\nCall-ID: retrans-1\r\nCSeq: {cseq} INVITE\r\nContact: <sip:1001@{me}>\r\n{auth}Content-Length: 0\r\n\r\n",
            me = uac.local,
            auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default()
        )
    };
    let ch = uac.request(&invite(1, &branch(), None));
    let auth = digest_auth(
        ch.header("Proxy-Authenticate").unwrap(),
        "1001",
        "secret1001",
        "INVITE",
        "sip:1002@pbx.test",
        1,
    );
    let second = invite(2, &branch2, Some(auth));
    for _ in 0..3 {
        uac.send(&second); // the original and two retransmissions
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let ok = loop {
        assert!(Instant::now() < deadline, "no 200");
        if let Some(text) = uac.recv(Duration::from_millis(500)) {
            let r = Response::parse(&text);
            if r.code == 200 && r.header("CSeq") == Some("2 INVITE") {
                break r;
            }
        }
    };
    let to = ok.header("To").unwrap().to_string();
    for (method, cseq) in [("ACK", 2), ("BYE", 3)] {
        uac.send(&format!(
            "{method} sip:shardpbx@{pbx} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=rt\r\nTo: {to}\r\nCall-ID: retrans-1\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            pbx = pbx.sip,
            me = uac.local,
            b = if method == "ACK" { branch2.clone() } else { branch() }
        ));
    }
    assert!(
        callee.wait(Duration::from_secs(10)).success(),
        "the callee saw one call"
    );
    let list = cdrs(&pbx);
    assert_eq!(list.len(), 1, "one call, not three: {list:?}");
    assert_eq!(list[0]["hangupReason"], "byCaller");
    let m = pbx.http_get("/metrics");
    let retrans: u64 = m
        .lines()
        .filter(|l| l.starts_with("shardpbx_retransmissions_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(retrans >= 2, "both retransmissions absorbed: {retrans}");
}

#[test]
fn a_known_extension_without_a_binding_gets_480() {
    let pbx = Pbx::start(PbxOptions::default());
    let r = call_by_hand(&pbx, "1002", "unregistered-1");
    assert_eq!(r.code, 480, "{}", r.raw);
    let list = cdrs(&pbx);
    assert_eq!(list[0]["statusCode"], 480);
    assert_eq!(list[0]["status"], "failed");
}
