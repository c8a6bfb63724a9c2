//! Call commands and click-to-dial with sipp as both SIP peers (real binary,
//! real UDP, real HTTP). Each sipp scenario ends only when the message the
//! command should cause reaches it (a BYE, a CANCEL, a new INVITE), so a
//! sipp exit status of 0 is the effect seen by the peer. Media details
//! (mute, re-anchoring) are checked with RTP in `call_commands.rs`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn pbx() -> Pbx {
    Pbx::start(PbxOptions {
        proxy_extra: r#"media_proxy = "always""#.into(),
        users: users(&["1001", "1002", "1003"]),
        ..PbxOptions::default()
    })
}

/// A sipp callee (`scenario`) registered as `user`.
fn callee(pbx: &Pbx, user: &str, scenario: &str) -> Peer {
    let port = free_port();
    let peer = sipp_peer(port, pbx.dir(), scenario);
    register_contact(pbx, user, &format!("secret{user}"), port);
    peer
}

fn active_calls(pbx: &Pbx) -> Vec<Value> {
    let auth = format!("Authorization: Bearer {}\r\n", api_token(pbx, "read"));
    let (code, body) = http_request(pbx, "GET", "/console/calls/active", &auth, "");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["items"].as_array().cloned().unwrap_or_default()
}

/// The id of the one live call once it is in `state`.
fn wait_call(pbx: &Pbx, state: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let calls = active_calls(pbx);
        if let Some(c) = calls.iter().find(|c| c["state"] == state) {
            return c["callId"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no {state} call: {calls:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hangup_reaches_both_sipp_peers() {
    let pbx = pbx();
    let uas = callee(&pbx, "1002", "uas");
    std::thread::scope(|s| {
        let caller = s.spawn(|| sipp_caller(&pbx, &scenario("uac_wait_bye.xml"), "1002"));
        let id = wait_call(&pbx, "answered");
        let (code, body) = call_command(&pbx, &id, r#"{"action":"hangup","reason":"ops"}"#);
        assert_eq!(code, 200, "{body}");
        assert_sipp_ok(&caller.join().unwrap(), "caller");
        assert!(uas.wait(Duration::from_secs(10)).success(), "callee sipp");
        let cdr = wait_cdr(&pbx, &id);
        assert_eq!(cdr["hangupReason"], "bySystem", "{cdr}");
        assert_eq!(cdr["metadata"]["hangupMessage"], "ops", "{cdr}");
    });
}

#[test]
fn blind_transfer_rings_the_new_sipp_callee_and_releases_the_old_one() {
    let pbx = pbx();
    let first = callee(&pbx, "1002", "uas");
    let target = callee(&pbx, "1003", "uas");
    std::thread::scope(|s| {
        let caller = s.spawn(|| sipp_caller(&pbx, &scenario("uac_wait_bye.xml"), "1002"));
        let id = wait_call(&pbx, "answered");
        let (code, body) = call_command(&pbx, &id, r#"{"action":"transfer","target":"1003"}"#);
        assert_eq!(code, 200, "{body}");
        // The old callee's scenario ends with the BYE it gets once 1003 answers.
        assert!(first.wait(Duration::from_secs(15)).success(), "old callee");
        let calls = active_calls(&pbx);
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(
            calls[0]["callee"]
                .as_str()
                .unwrap_or_default()
                .contains("1003"),
            "{calls:?}"
        );
        // The caller stayed: a hangup now reaches it and the new callee.
        let (code, body) = call_command(&pbx, &id, r#"{"action":"hangup"}"#);
        assert_eq!(code, 200, "{body}");
        assert_sipp_ok(&caller.join().unwrap(), "caller");
        assert!(target.wait(Duration::from_secs(10)).success(), "new callee");
    });
}

#[test]
fn accept_answers_the_sipp_caller_and_cancels_the_ringing_sipp_callee() {
    let pbx = pbx();
    let ringing = callee(&pbx, "1002", "uas_ring.xml");
    std::thread::scope(|s| {
        let caller = s.spawn(|| sipp_caller(&pbx, &scenario("uac_wait_bye.xml"), "1002"));
        let id = wait_call(&pbx, "ringing");
        let (code, body) = call_command(&pbx, &id, r#"{"action":"accept"}"#);
        assert_eq!(code, 200, "{body}");
        assert!(
            ringing.wait(Duration::from_secs(10)).success(),
            "callee got no CANCEL"
        );
        wait_call(&pbx, "answered");
        let (code, body) = call_command(&pbx, &id, r#"{"action":"hangup"}"#);
        assert_eq!(code, 200, "{body}");
        assert_sipp_ok(&caller.join().unwrap(), "caller");
    });
}

#[test]
fn click_to_dial_bridges_two_sipp_peers() {
    let pbx = pbx();
    let from = callee(&pbx, "1001", "uas");
    let to = callee(&pbx, "1002", "uas");
    let auth = format!("Authorization: Bearer {}\r\n", api_token(&pbx, "calls"));
    let (code, body) = http_request(
        &pbx,
        "POST",
        "/console/calls",
        &auth,
        r#"{"from":"1001","to":"1002"}"#,
    );
    assert!(code == 200 || code == 201, "{code} {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let id = v["callId"].as_str().expect("the new call's id").to_string();
    // Both sipp peers answered: the call is up between them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let calls = active_calls(&pbx);
        if calls
            .iter()
            .any(|c| c["callId"] == id.as_str() && c["state"] == "answered")
        {
            break;
        }
        assert!(Instant::now() < deadline, "not bridged: {calls:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, body) = call_command(&pbx, &id, r#"{"action":"hangup"}"#);
    assert_eq!(code, 200, "{body}");
    assert!(
        from.wait(Duration::from_secs(10)).success(),
        "extension side"
    );
    assert!(to.wait(Duration::from_secs(10)).success(), "dialled side");
    let cdr = wait_cdr(&pbx, &id);
    assert_eq!(cdr["hangupReason"], "bySystem", "{cdr}");
}
