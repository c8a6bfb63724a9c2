//! The HTTP router (`[proxy.http_router]`, API.md 2.1) through the real
//! binary against a real HTTP server: the request it gets, every action
//! (forward parallel and sequential with injected headers, record and
//! extensions; reject; abort; spam; not_handled), the fallback to static
//! routes on a router that fails (500, garbage, too slow), 503 without
//! fallback, and the guide's scenario A with a sipp "bot" as the target.

mod common;

use std::time::{Duration, Instant};

use common::media::*;
use common::webhook::{Request, WebhookServer};
use common::*;

/// The router: what it answers depends on the Call-ID's first part (our
/// own callers) or on the dialled user (sipp callers).
fn router(bot_port: u16) -> WebhookServer {
    router_with(bot_port, 0)
}

fn router_with(bot_port: u16, dead_port: u16) -> WebhookServer {
    WebhookServer::start_with(move |r: &Request| {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let call_id = v["call_id"].as_str().unwrap_or("");
        let dialled = v["uri"].as_str().unwrap_or("");
        let kind = if dialled.starts_with("sip:sipp-") {
            dialled[4..].split('@').next().unwrap_or("")
        } else {
            call_id.split('@').next().unwrap_or("")
        };
        let body = match kind {
            "r-fwd" => r#"{"action": "forward", "targets": ["sip:1002@pbx.test"], "strategy": "parallel", "record": true, "headers": {"X-Call-Reason": "ticket-123"}, "extensions": {"crm": "A1"}}"#.to_string(),
            "r-seq" => r#"{"action": "forward", "targets": ["sip:1003@pbx.test", "sip:1002@pbx.test"], "strategy": "sequential", "timeout": 1}"#.to_string(),
            "r-always" => r#"{"action": "forward", "targets": ["sip:1002@pbx.test"], "media_proxy": "always"}"#.to_string(),
            "r-rej" => r#"{"action": "reject", "status": 486, "reason": "Busy Now"}"#.to_string(),
            "r-abort" => r#"{"action": "abort"}"#.to_string(),
            "r-spam" => r#"{"action": "spam"}"#.to_string(),
            "r-nh" => r#"{"action": "not_handled"}"#.to_string(),
            "r-500" => return (500, "{}".into()),
            "r-garbage" => "<html>not json</html>".to_string(),
            "r-slow" => {
                std::thread::sleep(Duration::from_millis(1500));
                r#"{"action": "reject", "status": 403}"#.to_string()
            }
            "r-max" => r#"{"action": "forward", "targets": ["sip:1002@pbx.test"], "max_duration": 1}"#.to_string(),
            "r-cancel" => {
                std::thread::sleep(Duration::from_millis(300));
                r#"{"action": "forward", "targets": ["sip:1002@pbx.test"]}"#.to_string()
            }
            "sipp-seq" => format!(
                r#"{{"action": "forward", "targets": ["sip:gone@127.0.0.1:{dead_port}", "sip:bot@127.0.0.1:{bot_port}"], "strategy": "sequential", "timeout": 1}}"#
            ),
            "sipp-rej" => r#"{"action": "reject", "status": 486, "reason": "Busy Here"}"#.to_string(),
            "r-bot" => format!(
                r#"{{"action": "forward", "targets": ["sip:bot@127.0.0.1:{bot_port}"]}}"#
            ),
            _ => r#"{"action": "reject", "status": 404}"#.to_string(),
        };
        (200, body)
    })
}

fn pbx_with_router(url: &str, fallback: bool) -> Pbx {
    Pbx::start(PbxOptions {
        users: users(&["1001", "1002", "1003"]),
        proxy_extra: format!(
            "[proxy.http_router]\nurl = \"{url}\"\nfallback_to_static = {fallback}\ntimeout_ms = 500\n\
             [proxy.http_router.headers]\nX-API-Key = \"rt\"\n"
        ),
        ..PbxOptions::default()
    })
}

/// An INVITE from 1001 to 1002 with this Call-ID that nobody answers:
/// its final response.
fn final_response(pbx: &Pbx, call_id: &str) -> Response {
    let mut caller = Caller::new(pbx, call_id);
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    caller.call("1002", &offer, || {})
}

#[test]
fn the_router_decides_each_call() {
    let hook = router(0);
    let pbx = pbx_with_router(&hook.url("/route"), true);
    let mut phone = Phone::register(&pbx, "1002", "secret1002");

    // forward: the callee gets the injected header; record and extensions hold.
    let invite = call_with_tones(&pbx, &mut phone, "r-fwd@test", 10);
    assert!(
        invite.contains("\r\nX-Call-Reason: ticket-123\r\n"),
        "{invite}"
    );
    let cdr = wait_cdr(&pbx, "r-fwd@test");
    assert_eq!(cdr["status"], "completed", "{cdr}");
    assert_eq!(cdr["metadata"]["crm"], "A1", "{cdr}");
    assert_eq!(
        cdr["recorder"][0]["trackId"], "mixed",
        "record: true records: {cdr}"
    );

    // What the router was asked.
    let asked = hook.received();
    let q: serde_json::Value = serde_json::from_slice(&asked[0].body).unwrap();
    assert_eq!(asked[0].header("x-api-key"), Some("rt"));
    assert_eq!(q["call_id"], "r-fwd@test");
    assert_eq!(q["direction"], "internal");
    assert_eq!(q["method"], "INVITE");
    assert_eq!(q["uri"], "sip:1002@pbx.test");
    assert!(
        q["from"].as_str().unwrap().contains("sip:1001@pbx.test"),
        "{q}"
    );
    assert!(
        q["source_addr"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{q}"
    );
    assert!(q["body"].as_str().unwrap().starts_with("v=0"), "{q}");
    assert!(
        q["headers"]["Proxy-Authorization"].is_null(),
        "credentials are not passed on: {q}"
    );
    assert!(q["headers"]["Call-ID"].is_string(), "{q}");
    assert_eq!(q["authUser"], "1001", "who authenticated: {q}");
    assert_eq!(cdr["authUser"], "1001", "{cdr}");

    // reject, abort: their status (and reason) reach the caller; CDRs say so.
    let rej = final_response(&pbx, "r-rej@test");
    assert!(
        rej.raw.starts_with("SIP/2.0 486 Busy Now\r\n"),
        "{}",
        rej.raw
    );
    assert_eq!(wait_cdr(&pbx, "r-rej@test")["status"], "rejected");
    assert_eq!(final_response(&pbx, "r-abort@test").code, 500);

    // spam: no final response at all, and a CDR that says spam.
    let caller = Caller::new(&pbx, "r-spam@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let auth = credentials_after_407(&caller, &offer);
    caller.sip.send(&spam_invite(&caller, &offer, Some(&auth)));
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        if let Some(text) = caller.sip.recv(Duration::from_millis(100)) {
            // (The 407 of the first INVITE may come again: it was not ACKed.)
            let r = Response::parse(&text);
            if r.header("CSeq").is_some_and(|c| c.starts_with("2 ")) {
                assert!(r.code < 200, "spam got a final response: {text}");
            }
        }
    }
    assert_eq!(wait_cdr(&pbx, "r-spam@test")["status"], "spam");

    // not_handled, and failures with fallback_to_static: the static way
    // (1002's binding) answers.
    let answer = sdp(phone.rtp_port(), &[PCMU], "");
    // media_proxy from the router: "always" puts the relay in a call the
    // config (auto, no NAT, not recorded) would have left end to end.
    let mut caller = Caller::new(&pbx, "r-always@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let mut invite = String::new();
    let r = caller.call("1002", &offer, || invite = phone.answer(&answer));
    assert_eq!(r.code, 200, "{}", r.raw);
    let seen = sdp_audio(invite.split_once("\r\n\r\n").unwrap().1);
    assert!(
        (61000..62000).contains(&seen.port()),
        "not the relay: {invite}"
    );
    assert_eq!(caller.bye().code, 200);
    phone.accept_bye(Duration::from_secs(3));
    for id in ["r-nh@test", "r-500@test", "r-garbage@test", "r-slow@test"] {
        let mut caller = Caller::new(&pbx, id);
        let offer = sdp(caller.rtp_port(), &[PCMU], "");
        let r = caller.call("1002", &offer, || {
            phone.answer(&answer);
        });
        assert_eq!(r.code, 200, "{id}: {}", r.raw);
        assert_eq!(caller.bye().code, 200);
        phone.accept_bye(Duration::from_secs(3));
    }
    let metrics = pbx.http_get("/metrics");
    for kind in ["status", "protocol", "timeout"] {
        let series =
            format!("shardpbx_webhook_errors_total{{webhook=\"router\",kind=\"{kind}\"}} 1\n");
        assert!(metrics.contains(&series), "{series}{metrics}");
    }
}

/// Sends the INVITE without credentials and answers its 407: the
/// Proxy-Authorization value for the INVITE that follows (CSeq 2).
fn credentials_after_407(caller: &Caller, offer: &str) -> String {
    let ch = caller.sip.request(&spam_invite(caller, offer, None));
    assert_eq!(ch.code, 407, "{}", ch.raw);
    digest_auth(
        ch.header("Proxy-Authenticate").unwrap(),
        "1001",
        "secret1001",
        "INVITE",
        "sip:1002@pbx.test",
        1,
    )
}

fn spam_invite(caller: &Caller, offer: &str, auth: Option<&str>) -> String {
    invite_with_branch(caller, offer, auth, &branch())
}

fn invite_with_branch(caller: &Caller, offer: &str, auth: Option<&str>, b: &str) -> String {
    format!(
        "INVITE sip:1002@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=s1\r\nTo: <sip:1002@pbx.test>\r\nCall-ID: {cid}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:1001@{me}>\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{offer}",
        me = caller.sip.local,
        cid = caller.call_id,
        cseq = if auth.is_some() { 2 } else { 1 },
        auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default(),
        len = offer.len(),
    )
}

#[test]
fn sequential_targets_fail_over_after_their_timeout() {
    let hook = router(0);
    let pbx = pbx_with_router(&hook.url("/route"), true);
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    // 1003 is registered but never answers.
    let _silent = Phone::register(&pbx, "1003", "secret1003");
    let mut caller = Caller::new(&pbx, "r-seq@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let answer = sdp(phone.rtp_port(), &[PCMU], "");
    let started = Instant::now();
    let r = caller.call("1002", &offer, || {
        phone.answer(&answer);
    });
    assert_eq!(r.code, 200, "{}", r.raw);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "1003 had its second"
    );
    assert_eq!(caller.bye().code, 200);
    phone.accept_bye(Duration::from_secs(3));
}

#[test]
fn a_router_that_is_down_means_503_without_fallback_and_static_routes_with() {
    let pbx = pbx_with_router(&format!("http://127.0.0.1:{}/route", free_port()), false);
    let _phone = Phone::register(&pbx, "1002", "secret1002");
    let r = final_response(&pbx, "r-down@test");
    assert_eq!(r.code, 503, "{}", r.raw);
    assert!(r.header("Retry-After").is_some(), "{}", r.raw);
    assert_eq!(wait_cdr(&pbx, "r-down@test")["statusCode"], 503);

    // The same router down with fallback_to_static: the static way answers.
    let pbx = pbx_with_router(&format!("http://127.0.0.1:{}/route", free_port()), true);
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = answered_call(&pbx, &mut phone, "r-down-fb@test");
    assert_eq!(caller.bye().code, 200);
    phone.accept_bye(Duration::from_secs(3));
}

/// Scenario A: the router sends the call to a bot (a sipp UAS), which
/// answers; the caller hangs up.
#[test]
fn scenario_a_the_router_sends_the_call_to_a_bot() {
    let bot_port = free_port();
    let hook = router(bot_port);
    let pbx = pbx_with_router(&hook.url("/route"), false);
    let dir = tempfile::tempdir().unwrap();
    let bot = sipp_peer(bot_port, dir.path(), "uas");
    std::thread::sleep(Duration::from_millis(300));
    let mut caller = Caller::new(&pbx, "r-bot@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let r = caller.call("ai-bot", &offer, || {});
    assert_eq!(r.code, 200, "{}", r.raw);
    assert_eq!(caller.bye().code, 200);
    assert!(
        bot.wait(Duration::from_secs(20)).success(),
        "the bot's sipp failed"
    );
    let cdr = wait_cdr(&pbx, "r-bot@test");
    assert_eq!(cdr["status"], "completed", "{cdr}");
}

#[test]
fn max_duration_hangs_up_and_cancel_reaches_an_invite_the_router_holds() {
    let hook = router(0);
    let pbx = pbx_with_router(&hook.url("/route"), true);
    let mut phone = Phone::register(&pbx, "1002", "secret1002");

    // max_duration 1: the system hangs up both legs about a second after the answer.
    let caller = answered_call(&pbx, &mut phone, "r-max@test");
    assert!(
        phone.accept_bye(Duration::from_secs(4)),
        "callee got no BYE"
    );
    assert!(
        caller.accept_bye(Duration::from_secs(4)),
        "caller got no BYE"
    );
    let cdr = wait_cdr(&pbx, "r-max@test");
    assert_eq!(cdr["hangupReason"], "bySystem", "{cdr}");
    assert_eq!(cdr["metadata"]["hangupMessage"], "max_duration", "{cdr}");

    // CANCEL while the router thinks: 200 for the CANCEL, 487 for the INVITE.
    let caller = Caller::new(&pbx, "r-cancel@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let auth = credentials_after_407(&caller, &offer);
    let b = branch();
    caller
        .sip
        .send(&invite_with_branch(&caller, &offer, Some(&auth), &b));
    std::thread::sleep(Duration::from_millis(50));
    caller.sip.send(&format!(
        "CANCEL sip:1002@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=s1\r\nTo: <sip:1002@pbx.test>\r\nCall-ID: r-cancel@test\r\nCSeq: 2 CANCEL\r\nContent-Length: 0\r\n\r\n",
        me = caller.sip.local
    ));
    let (mut cancel_ok, mut invite_487, mut trying) = (false, false, false);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until && !(cancel_ok && invite_487) {
        let Some(text) = caller.sip.recv(Duration::from_millis(100)) else {
            continue;
        };
        let r = Response::parse(&text);
        let cseq = r.header("CSeq").unwrap_or_default().to_string();
        cancel_ok |= r.code == 200 && cseq == "2 CANCEL";
        trying |= r.code == 100 && cseq == "2 INVITE";
        invite_487 |= r.code == 487 && cseq == "2 INVITE";
    }
    assert!(
        cancel_ok && invite_487,
        "CANCEL 200: {cancel_ok}, INVITE 487: {invite_487}"
    );
    assert!(
        trying,
        "the caller had its 100 Trying while the router thought"
    );
    // The router's late answer rings nobody.
    assert!(phone
        .wait_request("INVITE", Duration::from_millis(600))
        .is_none());
}

/// sipp on both sides: a sequential forward whose first target never
/// answers fails over to a sipp UAS after its timeout; a reject reaches a
/// sipp caller as 486.
#[test]
fn sipp_calls_fail_over_and_get_rejected_as_the_router_says() {
    let (bot_port, dead_port) = (free_port(), free_port());
    let hook = router_with(bot_port, dead_port);
    let pbx = pbx_with_router(&hook.url("/route"), false);
    let dir = tempfile::tempdir().unwrap();
    let bot = sipp_peer(bot_port, dir.path(), "uas");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let out = sipp_caller(&pbx, UAC_AUTH, "sipp-seq");
    assert_sipp_ok(&out, "caller (sequential forward)");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the dead target had its second"
    );
    assert!(
        bot.wait(Duration::from_secs(20)).success(),
        "the UAS's sipp failed"
    );
    let out = sipp_caller(&pbx, &scenario("uac_rejected.xml"), "sipp-rej");
    assert_sipp_ok(&out, "caller (reject)");
    assert_eq!(hook.received().len(), 2);
}
