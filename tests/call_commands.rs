//! Active call commands over REST on live calls (real binary, real HTTP):
//! hangup of an answered call (both legs get BYE) and of a ringing one (the
//! caller gets 487, the callee CANCEL), with the CDR saying `bySystem`.

mod common;

use std::time::{Duration, Instant};

use common::media::*;
use common::*;

fn command(pbx: &Pbx, call_id: &str, body: &str) -> (u16, String) {
    call_command(pbx, call_id, body)
}

#[test]
fn hangup_of_an_answered_call_sends_bye_to_both_legs() {
    let pbx = Pbx::start(PbxOptions::default());
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let caller = answered_call(&pbx, &mut phone, "hangup-answered@test");
    let (code, body) = command(
        &pbx,
        "hangup-answered@test",
        r#"{"action":"hangup","reason":"billing limit reached"}"#,
    );
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ok"}"#));
    let phone_bye = std::thread::spawn(move || phone.accept_bye(Duration::from_secs(5)));
    assert!(
        caller.accept_bye(Duration::from_secs(5)),
        "caller got no BYE"
    );
    assert!(phone_bye.join().unwrap(), "callee got no BYE");
    let c = wait_cdr(&pbx, "hangup-answered@test");
    assert_eq!(c["hangupReason"], "bySystem", "{c}");
    assert_eq!(c["status"], "completed");
    assert_eq!(c["metadata"]["hangupMessage"], "billing limit reached");
    // The call is gone: a second hangup is 404.
    assert_eq!(
        command(&pbx, "hangup-answered@test", r#"{"action":"hangup"}"#).0,
        404
    );
    let (code, body) = command(&pbx, "x@test", r#"{"action":"hangup","reason":5}"#);
    assert_eq!(code, 400);
    assert!(body.contains("reason"), "{body}");
}

#[test]
fn hangup_while_ringing_cancels_the_callee_and_answers_the_caller_487() {
    let pbx = Pbx::start(PbxOptions::default());
    let phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = Caller::new(&pbx, "hangup-ringing@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let r = caller.call("1002", &offer, || {
        // The phone rings (never answers); the operator hangs up.
        let invite = phone
            .wait_request("INVITE", Duration::from_secs(5))
            .expect("INVITE to the phone");
        phone.ring(&invite);
        std::thread::sleep(Duration::from_millis(100));
        let (code, _) = command(&pbx, "hangup-ringing@test", r#"{"action":"hangup"}"#);
        assert_eq!(code, 200);
        let cancel = phone
            .wait_request("CANCEL", Duration::from_secs(5))
            .expect("the callee got no CANCEL");
        assert!(cancel.contains("CSeq: 1 CANCEL"), "{cancel}");
    });
    assert_eq!(r.code, 487, "{}", r.raw);
    let c = wait_cdr(&pbx, "hangup-ringing@test");
    assert_eq!(c["hangupReason"], "bySystem", "{c}");
    assert_eq!(c["status"], "missed");
}

fn active_calls(pbx: &Pbx) -> Vec<serde_json::Value> {
    let auth = format!("Authorization: Bearer {}\r\n", api_token(pbx, "read"));
    let (code, body) = http_request(pbx, "GET", "/console/calls/active", &auth, "");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["items"].as_array().unwrap().clone()
}

#[test]
fn accept_answers_a_ringing_call_with_the_given_sdp_and_cancels_the_callee() {
    let pbx = Pbx::start(PbxOptions {
        shards: 2,
        ..PbxOptions::default()
    });
    let phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = Caller::new(&pbx, "accept@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let bot_sdp = sdp(40404, &[PCMU], "a=sendrecv\r\n");
    let bot = bot_sdp.clone();
    let r = caller.call("1002", &offer, || {
        let invite = phone
            .wait_request("INVITE", Duration::from_secs(5))
            .unwrap();
        phone.ring(&invite);
        std::thread::sleep(Duration::from_millis(100));
        let live = active_calls(&pbx);
        assert_eq!(live.len(), 1, "{live:?}");
        assert_eq!(live[0]["callId"], "accept@test");
        assert_eq!(live[0]["state"], "ringing");
        assert_eq!(live[0]["tracks"][1]["id"], "audio-1");
        let body = serde_json::json!({"action": "accept", "sdp": bot}).to_string();
        let (code, resp) = command(&pbx, "accept@test", &body);
        assert_eq!(code, 200, "{resp}");
        assert!(phone
            .wait_request("CANCEL", Duration::from_secs(5))
            .is_some());
    });
    assert_eq!(r.code, 200, "{}", r.raw);
    assert_eq!(
        caller.answer, bot_sdp,
        "media end to end: the given SDP unchanged"
    );
    let live = active_calls(&pbx);
    assert_eq!(live[0]["state"], "answered");
    // Accepting twice is a conflict.
    assert_eq!(
        command(
            &pbx,
            "accept@test",
            r#"{"action":"accept","sdp":"v=0\r\n"}"#
        )
        .0,
        409
    );
    assert_eq!(caller.bye().code, 200);
    let c = wait_cdr(&pbx, "accept@test");
    assert_eq!(c["status"], "completed", "{c}");
    assert_eq!(c["hangupReason"], "byCaller");
    // The listing may be up to 100 ms old (it is cached for polling dashboards).
    let deadline = Instant::now() + Duration::from_secs(1);
    while !active_calls(&pbx).is_empty() {
        assert!(Instant::now() < deadline, "the call is still listed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn accept_without_sdp_answers_with_the_relays_own() {
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: r#"media_proxy = "always""#.into(),
        ..PbxOptions::default()
    });
    let phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = Caller::new(&pbx, "accept-relay@test");
    let offer = sdp(
        caller.rtp_port(),
        &[PCMA, (101, "telephone-event/8000")],
        "",
    );
    let r = caller.call("1002", &offer, || {
        let invite = phone
            .wait_request("INVITE", Duration::from_secs(5))
            .unwrap();
        phone.ring(&invite);
        std::thread::sleep(Duration::from_millis(100));
        let (code, resp) = command(&pbx, "accept-relay@test", r#"{"action":"accept"}"#);
        assert_eq!(code, 200, "{resp}");
    });
    assert_eq!(r.code, 200, "{}", r.raw);
    let relay = sdp_audio(&caller.answer);
    assert!((61000..61998).contains(&relay.port()), "{}", caller.answer);
    assert!(caller.answer.contains("m=audio"));
    assert!(
        caller.answer.contains("a=rtpmap:8 PCMA/8000"),
        "{}",
        caller.answer
    );
    assert!(caller.answer.contains("a=rtpmap:101 telephone-event/8000"));
    assert_eq!(caller.bye().code, 200);
}

#[test]
fn accept_without_sdp_on_direct_media_is_409() {
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: r#"media_proxy = "none""#.into(),
        ..PbxOptions::default()
    });
    let phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = Caller::new(&pbx, "accept-direct@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let answer = sdp(phone.rtp_port(), &[PCMU], "");
    caller.call("1002", &offer, || {
        let invite = phone
            .wait_request("INVITE", Duration::from_secs(5))
            .unwrap();
        phone.ring(&invite);
        std::thread::sleep(Duration::from_millis(100));
        let (code, resp) = command(&pbx, "accept-direct@test", r#"{"action":"accept"}"#);
        assert_eq!(code, 409, "{resp}");
        let (code, resp) = command(
            &pbx,
            "accept-direct@test",
            r#"{"action":"accept","sdp":"not sdp"}"#,
        );
        assert_eq!(code, 400, "{resp}");
        assert!(resp.contains("sdp"), "{resp}");
        phone.sip.send(&ok_with_sdp(&invite, &answer));
        let _ = phone.wait_request("ACK", Duration::from_secs(3));
    });
    assert_eq!(caller.bye().code, 200);
}

#[test]
fn blind_transfer_rings_the_target_then_releases_the_old_callee_and_media_follows() {
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: r#"media_proxy = "always""#.into(),
        users: users(&["1001", "1002", "1003"]),
        ..PbxOptions::default()
    });
    let mut first = Phone::register(&pbx, "1002", "secret1002");
    let mut target = Phone::register(&pbx, "1003", "secret1003");
    let mut caller = answered_call(&pbx, &mut first, "transfer@test");
    let to_relay = sdp_audio(&caller.answer);

    // Errors first: no target, unknown target.
    let (code, body) = command(&pbx, "transfer@test", r#"{"action":"transfer"}"#);
    assert_eq!(code, 400);
    assert!(body.contains("target"), "{body}");
    let (code, body) = command(
        &pbx,
        "transfer@test",
        r#"{"action":"transfer","target":"9999"}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("target"), "{body}");

    let (code, body) = command(
        &pbx,
        "transfer@test",
        r#"{"action":"transfer","target":"1003"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let target_sdp = sdp(target.rtp_port(), &[PCMU], "");
    let invite = target.answer(&target_sdp);
    assert!(invite.contains("To: <sip:1003@"), "{invite}");
    let target_sends_to = sdp_audio(invite.split_once("\r\n\r\n").unwrap().1);
    assert!(
        first.accept_bye(Duration::from_secs(5)),
        "the old callee got no BYE"
    );

    // The caller keeps its relay port; audio now flows to and from 1003.
    let (at_caller, at_target) = exchange(
        &caller.rtp,
        to_relay,
        0,
        tone_frames(440.0, 30, ulaw),
        &target.rtp,
        target_sends_to,
        0,
        tone_frames(1000.0, 30, ulaw),
        160,
        Duration::from_millis(10),
    );
    assert_eq!(at_target.len(), 30, "caller -> new callee");
    assert_eq!(at_caller.len(), 30, "new callee -> caller");
    assert!(first
        .rtp
        .set_read_timeout(Some(Duration::from_millis(200)))
        .is_ok());
    let mut buf = [0u8; 256];
    assert!(
        first.rtp.recv_from(&mut buf).is_err(),
        "the old callee still gets audio"
    );

    assert_eq!(caller.bye().code, 200);
    assert!(target.accept_bye(Duration::from_secs(3)));
    let c = wait_cdr(&pbx, "transfer@test");
    assert_eq!(c["status"], "completed", "{c}");
    assert_eq!(c["hangupReason"], "byCaller");
}

#[test]
fn transfer_of_a_ringing_call_is_409() {
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: r#"media_proxy = "always""#.into(),
        ..PbxOptions::default()
    });
    let phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = Caller::new(&pbx, "transfer-ringing@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let r = caller.call("1002", &offer, || {
        let invite = phone
            .wait_request("INVITE", Duration::from_secs(5))
            .unwrap();
        phone.ring(&invite);
        std::thread::sleep(Duration::from_millis(100));
        let (code, body) = command(
            &pbx,
            "transfer-ringing@test",
            r#"{"action":"transfer","target":"1001"}"#,
        );
        assert_eq!(code, 409, "{body}");
        let (code, _) = command(&pbx, "transfer-ringing@test", r#"{"action":"hangup"}"#);
        assert_eq!(code, 200);
    });
    assert_eq!(r.code, 487);
}

fn dial(pbx: &Pbx, body: &str) -> (u16, String) {
    let auth = format!("Authorization: Bearer {}\r\n", api_token(pbx, "calls"));
    http_request(pbx, "POST", "/console/calls", &auth, body)
}

#[test]
fn click_to_dial_rings_the_extension_then_the_target_and_bridges_them() {
    let pbx = Pbx::start(PbxOptions {
        users: users(&["1001", "1002", "1003"]),
        ..PbxOptions::default()
    });
    let mut a = Phone::register(&pbx, "1002", "secret1002");
    let mut b = Phone::register(&pbx, "1003", "secret1003");
    // Errors first: an extension that is not registered, an unknown target,
    // a missing field.
    let (code, body) = dial(&pbx, r#"{"from":"1001","to":"1003"}"#);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("\"field\":\"from\""), "{body}");
    let (code, body) = dial(&pbx, r#"{"from":"1002","to":"9999"}"#);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("\"field\":\"to\""), "{body}");
    assert_eq!(dial(&pbx, r#"{"from":"1002"}"#).0, 422);
    assert_eq!(dial(&pbx, "nope").0, 400);

    let (code, body) = dial(&pbx, r#"{"from":"1002","to":"1003"}"#);
    assert_eq!(code, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let call_id = v["callId"].as_str().unwrap().to_string();
    // The extension rings first, showing who it will be connected to.
    let invite_a = a.answer(&sdp(a.rtp_port(), &[PCMU], ""));
    assert!(
        invite_a
            .lines()
            .any(|l| l.starts_with("From:") && l.contains("1003")),
        "{invite_a}"
    );
    let a_sends_to = sdp_audio(invite_a.split_once("\r\n\r\n").unwrap().1);
    // Then the target, showing the extension.
    let invite_b = b.answer(&sdp(b.rtp_port(), &[PCMU], ""));
    assert!(
        invite_b
            .lines()
            .any(|l| l.starts_with("From:") && l.contains("1002")),
        "{invite_b}"
    );
    let b_sends_to = sdp_audio(invite_b.split_once("\r\n\r\n").unwrap().1);
    let (at_a, at_b) = exchange(
        &a.rtp,
        a_sends_to,
        0,
        tone_frames(440.0, 25, ulaw),
        &b.rtp,
        b_sends_to,
        0,
        tone_frames(1000.0, 25, ulaw),
        160,
        Duration::from_millis(10),
    );
    assert_eq!((at_a.len(), at_b.len()), (25, 25), "bridged both ways");
    let live = active_calls(&pbx);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["callId"], call_id.as_str());
    assert_eq!(live[0]["state"], "answered");

    let (code, _) = command(&pbx, &call_id, r#"{"action":"hangup"}"#);
    assert_eq!(code, 200);
    assert!(a.accept_bye(Duration::from_secs(3)), "extension got no BYE");
    assert!(b.accept_bye(Duration::from_secs(3)), "target got no BYE");
    let c = wait_cdr(&pbx, &call_id);
    assert_eq!(c["status"], "completed", "{c}");
    assert_eq!(c["fromNumber"], "1002");
    assert_eq!(c["toNumber"], "1003");
    assert_eq!(c["metadata"]["media"], "proxied");
}
