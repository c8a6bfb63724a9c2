//! AMI through the real binary: health, reload of routes (a broken file keeps
//! the old table) and of the ACL, dialogs of a live call, the allow-list
//! (forwarded-for ignored), and a graceful shutdown that lets a live call
//! finish, refuses new ones with 503 and exits 0.

mod common;

use std::time::{Duration, Instant};

use common::media::*;
use common::*;

/// (status, body) of one HTTP request.
fn http(pbx: &Pbx, method: &str, path: &str, extra_headers: &str, body: &str) -> (u16, String) {
    http_request(pbx, method, path, extra_headers, body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// A server whose route file is `routes.toml` in its directory (initially `routes`).
fn pbx_with_routes(routes: &str) -> (Pbx, std::path::PathBuf) {
    let mut pbx = Pbx::start(PbxOptions::default());
    let file = pbx.dir.path().join("routes.toml");
    std::fs::write(&file, routes).unwrap();
    let text = std::fs::read_to_string(&pbx.config).unwrap().replace(
        "routes_files = []",
        &format!("routes_files = [\"{}\"]", file.display()),
    );
    std::fs::write(&pbx.config, text).unwrap();
    pbx.restart();
    (pbx, file)
}

const REJECT_9: &str = r#"
[[routes]]
name = "no-nines"
priority = 10
match = { "to.user" = "^9" }
action = "reject"
reject = { code = 403, reason = "Nines barred" }
"#;

#[test]
fn health_reports_shards_calls_and_registrations() {
    let pbx = Pbx::start(PbxOptions {
        shards: 2,
        ..PbxOptions::default()
    });
    let _phone = Phone::register(&pbx, "1002", "secret1002");
    let (code, body) = http(&pbx, "GET", "/ami/v1/health", "", "");
    assert_eq!(code, 200, "{body}");
    let h = json(&body);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(h["activeCalls"], 0);
    assert_eq!(h["registrations"], 1);
    assert_eq!(h["webhookBacklog"], 0);
    let shards = h["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(s["id"], i);
        assert!(s["cpu"].is_u64(), "{s}");
        let load = s["load"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&load), "{s}");
    }
}

#[test]
fn reload_routes_swaps_the_table_and_a_broken_file_keeps_the_old_one() {
    let (pbx, file) = pbx_with_routes("");
    // No route yet: 9000 is an unknown extension.
    assert_eq!(call_by_hand(&pbx, "9000", "reload-1@test").code, 404);
    std::fs::write(&file, REJECT_9).unwrap();
    let (code, body) = http(&pbx, "POST", "/ami/v1/reload/routes", "", "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["summary"], "0 trunk(s), 1 route(s)");
    assert_eq!(call_by_hand(&pbx, "9000", "reload-2@test").code, 403);
    // A broken file: 422 naming the problem, and the old route still works.
    std::fs::write(&file, "[[routes]]\nname = \"x\"\npriority = \"high\"\n").unwrap();
    let (code, body) = http(&pbx, "POST", "/ami/v1/reload/routes", "", "");
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("priority"), "{body}");
    assert_eq!(call_by_hand(&pbx, "9000", "reload-3@test").code, 403);
    assert_eq!(
        http(&pbx, "POST", "/ami/v1/reload/everything", "", "").0,
        404
    );
}

#[test]
fn reload_acl_applies_the_new_rules_at_once() {
    let pbx = Pbx::start(PbxOptions::default());
    let uac = Uac::new(pbx.sip);
    uac.send(&options_request(&uac, "acl-1"));
    assert!(uac.recv(Duration::from_secs(1)).is_some());
    let text = std::fs::read_to_string(&pbx.config).unwrap();
    let denied = text.replace(
        "routes_files = []",
        "acl_rules = [\"deny 127.0.0.1\", \"allow all\"]\nroutes_files = []",
    );
    std::fs::write(&pbx.config, &denied).unwrap();
    let (code, body) = http(&pbx, "POST", "/ami/v1/reload/acl", "", "");
    assert_eq!(code, 200, "{body}");
    uac.send(&options_request(&uac, "acl-2"));
    assert!(
        uac.recv(Duration::from_millis(700)).is_none(),
        "denied source answered"
    );
    // A config that no longer parses: 422, the deny stays.
    std::fs::write(
        &pbx.config,
        denied.replace("acl_rules = [", "acl_rules = [ \"maybe 1.2.3.4\", "),
    )
    .unwrap();
    assert_eq!(http(&pbx, "POST", "/ami/v1/reload/acl", "", "").0, 422);
    uac.send(&options_request(&uac, "acl-3"));
    assert!(uac.recv(Duration::from_millis(700)).is_none());
    std::fs::write(&pbx.config, &text).unwrap();
    assert_eq!(http(&pbx, "POST", "/ami/v1/reload/acl", "", "").0, 200);
    uac.send(&options_request(&uac, "acl-4"));
    assert!(uac.recv(Duration::from_secs(1)).is_some());
}

#[test]
fn ami_refuses_peers_outside_the_allow_list_whatever_they_claim() {
    let pbx = Pbx::start(PbxOptions {
        extra_tables: "[ami]\nallows = [\"127.0.0.2\"]\n".into(),
        ..PbxOptions::default()
    });
    for path in ["/ami/v1/health", "/ami/v1/dialogs", "/metrics"] {
        let (code, _) = http(
            &pbx,
            "GET",
            path,
            "X-Forwarded-For: 127.0.0.2\r\nX-Real-IP: 127.0.0.2\r\n",
            "",
        );
        assert_eq!(code, 403, "{path}");
    }
    assert_eq!(http(&pbx, "POST", "/ami/v1/shutdown", "", "").0, 403);
    assert_eq!(http(&pbx, "POST", "/ami/v1/reload/routes", "", "").0, 403);
}

#[test]
fn dialogs_lists_both_legs_of_a_live_call_and_shutdown_drains_it() {
    let mut pbx = Pbx::start(PbxOptions::default());
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = answered_call(&pbx, &mut phone, "drain@test");

    let (code, body) = http(&pbx, "GET", "/ami/v1/dialogs", "", "");
    assert_eq!(code, 200, "{body}");
    let items = json(&body)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2, "{body}");
    let caller_leg = items.iter().find(|d| d["leg"] == "caller").unwrap();
    let callee_leg = items.iter().find(|d| d["leg"] == "callee").unwrap();
    assert_eq!(caller_leg["callId"], "drain@test");
    assert_eq!(caller_leg["remoteTag"], "c1");
    assert_eq!(callee_leg["call"], "drain@test");
    assert_eq!(callee_leg["remoteTag"], "ph1");
    assert_ne!(
        callee_leg["callId"], "drain@test",
        "the callee leg has its own Call-ID"
    );
    for d in [caller_leg, callee_leg] {
        assert_eq!(d["state"], "confirmed");
        assert!(d["id"]
            .as_str()
            .unwrap()
            .starts_with(d["callId"].as_str().unwrap()));
    }

    let (code, body) = http(
        &pbx,
        "POST",
        "/ami/v1/shutdown",
        "",
        r#"{"drain_timeout_secs": 20}"#,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["status"], "draining");
    assert_eq!(
        json(&http(&pbx, "GET", "/ami/v1/health", "", "").1)["status"],
        "draining"
    );
    // A new call is refused; registrations still work.
    let uac = Uac::new(pbx.sip);
    let r = uac.request(&format!(
        "INVITE sip:1002@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=l1\r\nTo: <sip:1002@pbx.test>\r\nCall-ID: late@test\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@{me}>\r\nContent-Length: 0\r\n\r\n",
        me = uac.local,
        b = branch()
    ));
    assert_eq!(r.code, 503, "{}", r.raw);
    assert!(r.header("Retry-After").is_some());
    let reg_uac = Uac::new(pbx.sip);
    let r = register_with_auth(
        &reg_uac,
        "1001",
        "secret1001",
        "drain-reg",
        1,
        &format!("<sip:1001@{}>", reg_uac.local),
        Some(300),
    );
    assert_eq!(r.code, 200);
    // The live call goes on until the caller hangs up; then the process exits 0.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(caller.bye().code, 200);
    assert!(phone.accept_bye(Duration::from_secs(3)));
    let started = Instant::now();
    let status = pbx.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit {status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not stop once drained"
    );
    assert!(pbx.log_text().contains("drain"), "{}", pbx.log_text());
}

#[test]
fn calls_still_up_when_the_drain_times_out_are_hung_up_with_a_cdr() {
    let mut pbx = Pbx::start(PbxOptions::default());
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let caller = answered_call(&pbx, &mut phone, "drain-timeout@test");
    let (code, _) = http(
        &pbx,
        "POST",
        "/ami/v1/shutdown",
        "",
        r#"{"drain_timeout_secs": 1}"#,
    );
    assert_eq!(code, 200);
    let phone_bye = std::thread::spawn(move || phone.accept_bye(Duration::from_secs(6)));
    assert!(
        caller.accept_bye(Duration::from_secs(6)),
        "caller got no BYE"
    );
    assert!(phone_bye.join().unwrap(), "callee got no BYE");
    assert!(pbx.wait_exit(Duration::from_secs(10)).success());
    // The CDR made it to the store before the exit.
    let out = pbx.cli(&["cdr", "list", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let c = list
        .iter()
        .find(|c| c["callId"] == "drain-timeout@test")
        .expect("CDR");
    assert_eq!(c["hangupReason"], "bySystem", "{c}");
    assert_eq!(c["metadata"]["hangupMessage"], "shutdown");
}

#[test]
fn metrics_count_calls_by_status_sip_by_method_and_code_and_show_levels() {
    let pbx = Pbx::start(PbxOptions::default());
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = answered_call(&pbx, &mut phone, "metrics@test");
    let during = http(&pbx, "GET", "/metrics", "", "").1;
    assert_eq!(
        metric(&during, "shardpbx_active_calls{shard=\"0\"}"),
        1,
        "{during}"
    );
    assert_eq!(caller.bye().code, 200);
    assert!(phone.accept_bye(Duration::from_secs(3)));
    assert_eq!(call_by_hand(&pbx, "7777", "metrics-404@test").code, 404);
    std::thread::sleep(Duration::from_millis(300));
    let (code, text) = http(&pbx, "GET", "/metrics", "", "");
    assert_eq!(code, 200);
    let m = |series: &str| metric(&text, series);
    assert_eq!(
        m("shardpbx_calls_completed_total{shard=\"0\"}"),
        1,
        "{text}"
    );
    assert_eq!(m("shardpbx_calls_failed_total{shard=\"0\"}"), 1);
    assert_eq!(m("shardpbx_active_calls{shard=\"0\"}"), 0);
    assert_eq!(m("shardpbx_registrations"), 1);
    // INVITEs: two per call from the caller (407 first), one to the phone.
    assert_eq!(
        m("shardpbx_sip_requests_received_total{shard=\"0\",method=\"INVITE\"}"),
        4
    );
    assert_eq!(
        m("shardpbx_sip_requests_sent_total{shard=\"0\",method=\"INVITE\"}"),
        1
    );
    assert!(m("shardpbx_sip_responses_sent_total{shard=\"0\",code=\"407\"}") >= 2);
    assert!(m("shardpbx_sip_responses_sent_total{shard=\"0\",code=\"404\"}") >= 1);
    assert!(m("shardpbx_sip_responses_received_total{shard=\"0\",code=\"200\"}") >= 2);
    assert!(text.contains("shardpbx_shard_cpu_seconds_total{shard=\"0\"}"));
}

/// The value of one series in a Prometheus text page.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .filter(|r| r.starts_with(' '))
                .map(str::trim)
        })
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("{series}: {e}")) as u64
}
