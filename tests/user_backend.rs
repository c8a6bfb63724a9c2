//! The HTTP user backend (`[[proxy.user_backends]] type = "http"`, API.md
//! 2.2) through the real binary against a real HTTP server: users known
//! only to the backend register (plaintext and HA1) and call, answers are
//! cached, and refused, unknown and unreachable users get 403, 403 and 503.
//! With the CDR push, the guide's scenario C (billing).

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::media::*;
use common::webhook::{Request, WebhookServer};
use common::*;

/// The backend: 1001 with a plaintext password, 1002 with an HA1, `locked`
/// refused, anyone else unknown.
fn backend() -> WebhookServer {
    WebhookServer::start_with(|r: &Request| match r.query("u") {
        Some("1001") => (
            200,
            r#"{"id": 1001, "username": "1001", "password": "secret1001", "display_name": "Ann"}"#
                .into(),
        ),
        Some("1002") => {
            let ha1 = md5_hex("1002:pbx.test:secret1002");
            (200, format!(r#"{{"username": "1002", "ha1": "{ha1}"}}"#))
        }
        Some("slow") => {
            std::thread::sleep(Duration::from_millis(1500));
            (200, r#"{"password": "x"}"#.into())
        }
        Some("2003") => (200, r#"{"username": "2003", "password": "pw2003"}"#.into()),
        Some("locked") => (
            403,
            r#"{"reason": "invalid_password", "message": "Account locked"}"#.into(),
        ),
        _ => (404, "{}".into()),
    })
}

fn pbx_with_backend(url: &str) -> Pbx {
    pbx_with_backend_and(url, "")
}

fn pbx_with_backend_and(url: &str, extra_tables: &str) -> Pbx {
    Pbx::start(PbxOptions {
        extra_tables: extra_tables.into(),
        // No user in the config: the HTTP backend knows them all.
        users: vec![],
        proxy_extra: format!(
            "[[proxy.user_backends]]\ntype = \"http\"\nurl = \"{url}\"\n\
             username_field = \"u\"\nrealm_field = \"r\"\ntimeout_ms = 1000\n\
             [proxy.user_backends.headers]\nX-Api-Key = \"ub\"\n"
        ),
        ..PbxOptions::default()
    })
}

fn asked_for<'a>(reqs: &'a [Request], user: &str) -> Vec<&'a Request> {
    reqs.iter().filter(|r| r.query("u") == Some(user)).collect()
}

#[test]
fn users_known_only_to_the_http_backend_register_and_call() {
    let hook = backend();
    let pbx = pbx_with_backend(&hook.url("/auth"));
    // 1002 by HA1, twice: the second registration is answered from the cache.
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let _again = Phone::register(&pbx, "1002", "secret1002");
    // 1001 (plaintext password) calls 1002: the INVITE waits for the backend.
    let mut caller = answered_call(&pbx, &mut phone, "ub-call@test");
    assert_eq!(caller.bye().code, 200);
    phone.accept_bye(Duration::from_secs(3));

    let reqs = hook.received();
    let ask_1002 = asked_for(&reqs, "1002");
    assert_eq!(ask_1002.len(), 1, "the cache answers the second time");
    let ask = ask_1002[0];
    assert_eq!(ask.method, "GET");
    assert!(ask.path.starts_with("/auth?"), "{}", ask.path);
    assert_eq!(ask.query("r"), Some("pbx.test"));
    assert_eq!(ask.header("x-api-key"), Some("ub"));
    assert_eq!(asked_for(&reqs, "1001").len(), 1);
    let cdr = wait_cdr(&pbx, "ub-call@test");
    assert_eq!(cdr["status"], "completed", "{cdr}");
    let metrics = pbx.http_get("/metrics");
    assert!(
        metrics.contains("shardpbx_webhook_latency_seconds_count{webhook=\"user_backend\"} 2\n"),
        "{metrics}"
    );
}

fn register_as(pbx: &Pbx, user: &str, pass: &str) -> Response {
    let uac = Uac::new(pbx.sip);
    register_with_auth(
        &uac,
        user,
        pass,
        &format!("ub-{user}"),
        1,
        &format!("<sip:{user}@{}>", uac.local),
        Some(300),
    )
}

#[test]
fn refused_unknown_and_unreachable_users() {
    let hook = backend();
    let pbx = pbx_with_backend(&hook.url("/auth"));
    let locked = register_as(&pbx, "locked", "whatever");
    assert_eq!(locked.code, 403, "{}", locked.raw);
    assert!(
        locked.raw.starts_with("SIP/2.0 403 Account locked\r\n"),
        "{}",
        locked.raw
    );
    let unknown = register_as(&pbx, "nobody", "x");
    assert_eq!(unknown.code, 403, "{}", unknown.raw);
    let wrong = register_as(&pbx, "1001", "not-the-password");
    assert_eq!(wrong.code, 403, "{}", wrong.raw);
    // A backend slower than timeout_ms (1 s): 503, not a guess.
    let slow = register_as(&pbx, "slow", "x");
    assert_eq!(slow.code, 503, "{}", slow.raw);

    // A backend nobody listens on: 503 with Retry-After, never a guess.
    let down = pbx_with_backend(&format!("http://127.0.0.1:{}/auth", free_port()));
    let r = register_as(&down, "1001", "secret1001");
    assert_eq!(r.code, 503, "{}", r.raw);
    assert!(r.header("Retry-After").is_some(), "{}", r.raw);
    let metrics = down.http_get("/metrics");
    assert!(
        metrics.contains(
            "shardpbx_webhook_errors_total{webhook=\"user_backend\",kind=\"connect\"} 1\n"
        ),
        "{metrics}"
    );
}

/// Scenario C: the user backend authenticates, the call proceeds, the CDR
/// push reaches the billing system, which bills the duration it computes
/// from the pushed CDR.
#[test]
fn scenario_c_billing_from_the_pushed_cdr() {
    let hook = backend();
    let billing = WebhookServer::start();
    let pbx = pbx_with_backend_and(
        &hook.url("/auth"),
        &format!(
            "[callrecord]\ntype = \"http\"\nurl = \"{}\"\nwith_media = false\n",
            billing.url("/cdr")
        ),
    );
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = answered_call(&pbx, &mut phone, "bill-1@test");
    let talk = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(caller.bye().code, 200);
    let talked = talk.elapsed();
    phone.accept_bye(Duration::from_secs(3));

    let got = billing.wait_for(Duration::from_secs(10), |r| !r.is_empty());
    let parts = got.first().expect("no CDR pushed").multipart();
    assert_eq!(parts.len(), 1, "with_media = false: the CDR alone");
    let cdr: serde_json::Value = serde_json::from_slice(&parts[0].2).unwrap();
    assert_eq!(cdr["callId"], "bill-1@test");
    assert_eq!(cdr["fromNumber"], "1001");
    assert_eq!(cdr["status"], "completed");
    // The billing system's own arithmetic: answer to end, per started second.
    let ms = |k: &str| {
        let t = cdr[k].as_str().unwrap();
        jiff::Timestamp::from_str(t).unwrap().as_millisecond()
    };
    let billed_ms = ms("endTime") - ms("answerTime");
    let billed_secs = (billed_ms + 999) / 1000;
    assert!(
        (2000..=talked.as_millis() as i64 + 1000).contains(&billed_ms),
        "billed {billed_ms} ms for {talked:?} of talk"
    );
    assert!(
        (cdr["durationSecs"].as_i64().unwrap() - billed_secs).abs() <= 1,
        "{cdr}"
    );
    let rate_per_min = 0.06;
    let cost = billed_secs as f64 * rate_per_min / 60.0;
    assert!(cost > 0.0019 && cost < 0.01, "{cost}");
}

/// A callee with no binding: 480 when only the HTTP backend knows it (the
/// INVITE waits for the backend's answer), 404 when nobody does.
#[test]
fn a_callee_only_the_backend_knows_is_480_and_a_stranger_404() {
    let hook = backend();
    let pbx = pbx_with_backend(&hook.url("/auth"));
    let call = |to: &str, call_id: &str| {
        let mut caller = Caller::new(&pbx, call_id);
        let offer = sdp(caller.rtp_port(), &[PCMU], "");
        caller.call(to, &offer, || {})
    };
    let known = call("2003", "ub-480@test");
    assert_eq!(known.code, 480, "{}", known.raw);
    let stranger = call("ghost", "ub-404@test");
    assert_eq!(stranger.code, 404, "{}", stranger.raw);
    assert_eq!(asked_for(&hook.received(), "2003").len(), 1);
    assert_eq!(wait_cdr(&pbx, "ub-480@test")["statusCode"], 480);
}
