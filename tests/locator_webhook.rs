//! The locator webhook (API.md 2.3) through the real binary to a real HTTP
//! server: which binding changes make which events, their payload, the
//! event id, and at-least-once delivery in order per AOR across an outage
//! of the target and a restart of the appliance.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::webhook::{Request, WebhookServer};
use common::*;

fn pbx_with_locator(url: &str) -> Pbx {
    Pbx::start(PbxOptions {
        users: users(&["1001", "1002"]),
        proxy_extra: format!(
            "min_expires = 2\n[proxy.locator_webhook]\nurl = \"{url}\"\n\
             retry_initial_ms = 100\nretry_max_secs = 1\n\
             [proxy.locator_webhook.headers]\nX-Api-Key = \"loc\"\n"
        ),
        runtime_extra: "registrar_sweep_secs = 1".into(),
        ..PbxOptions::default()
    })
}

fn register(uac: &Uac, user: &str, call_id: &str, cseq: u32, port: u16, expires: u32) {
    let contact = format!("<sip:{user}@127.0.0.1:{port}>");
    let r = register_with_auth(
        uac,
        user,
        &format!("secret{user}"),
        call_id,
        cseq,
        &contact,
        Some(expires),
    );
    assert_eq!(r.code, 200, "{}", r.raw);
}

fn body(r: &Request) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap()
}

/// (event, contact) per AOR in the order first received, duplicates (same
/// event id) dropped.
fn per_aor(reqs: &[Request]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut seen = HashSet::new();
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for r in reqs {
        let id = r
            .header("x-shardpbx-event-id")
            .unwrap_or_default()
            .to_string();
        if !seen.insert(id) {
            continue;
        }
        let b = body(r);
        out.entry(b["location"]["aor"].as_str().unwrap_or("").into())
            .or_default()
            .push((
                b["event"].as_str().unwrap_or("").into(),
                b["location"]["contact"].as_str().unwrap_or("").into(),
            ));
    }
    out
}

#[test]
fn binding_changes_make_the_events_in_order() {
    let hook = WebhookServer::start();
    let pbx = pbx_with_locator(&hook.url("/events"));
    let a = Uac::new(pbx.sip);
    register(&a, "1001", "loc-1", 1, 5070, 60);
    // A refresh that changes nothing: no event.
    register(&a, "1001", "loc-1", 2, 5070, 60);
    // The same contact from another source address: changed, so registered.
    let b = Uac::new(pbx.sip);
    register(&b, "1001", "loc-1", 3, 5070, 60);
    register(&b, "1001", "loc-1", 4, 5070, 0);
    // A short binding that lapses: offline.
    register(&b, "1001", "loc-2", 1, 5071, 2);
    let got = hook.wait_for(Duration::from_secs(10), |r| r.len() >= 5);
    let aor = "sip:1001@pbx.test";
    let events: Vec<(String, String)> = per_aor(&got).remove(aor).unwrap_or_default();
    let want: Vec<(String, String)> = [
        ("registered", 5070),
        ("registered", 5070),
        ("unregistered", 5070),
        ("registered", 5071),
        ("offline", 5071),
    ]
    .iter()
    .map(|(e, p)| (e.to_string(), format!("sip:1001@127.0.0.1:{p}")))
    .collect();
    assert_eq!(events, want, "{got:#?}");
    // No sixth event (the unchanged refresh made none).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hook.received().len(), 5);

    let first = &got[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/events")
    );
    assert_eq!(first.header("x-api-key"), Some("loc"));
    assert_eq!(first.header("content-type"), Some("application/json"));
    let b0 = body(first);
    assert_eq!(b0["location"]["destination"], a.local.to_string());
    assert_eq!(b0["location"]["transport"], "UDP");
    let exp = b0["location"]["expires"].as_u64().unwrap();
    assert!((58..=60).contains(&exp), "{b0}");
    assert!(b0["timestamp"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        body(&got[1])["location"]["destination"],
        b.local.to_string()
    );
    assert_eq!(body(&got[2])["location"]["expires"], 0);
    let ids: HashSet<&str> = got
        .iter()
        .filter_map(|r| r.header("x-shardpbx-event-id"))
        .collect();
    assert_eq!(ids.len(), 5, "one distinct id per event");
}

#[test]
fn events_queued_while_the_target_is_down_for_30_s_all_arrive_in_order() {
    let hook = WebhookServer::on(free_port());
    let mut pbx = pbx_with_locator(&hook.url("/events"));
    let outage = std::time::Instant::now();
    let a = Uac::new(pbx.sip);
    let b = Uac::new(pbx.sip);
    register(&a, "1001", "down-a", 1, 6001, 60);
    register(&b, "1002", "down-b", 1, 6002, 60);
    register(&a, "1001", "down-a", 2, 6001, 0);
    register(&b, "1002", "down-b", 2, 6003, 60);
    register(&a, "1001", "down-a", 3, 6004, 60);
    // Nothing can be delivered: failures are counted and the queue holds all.
    let backlog = common::wait_until(Duration::from_secs(5), || {
        let m = pbx.http_get("/metrics");
        let errors = m
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "shardpbx_webhook_errors_total{webhook=\"locator\",kind=\"connect\"}",
                )?
                .trim()
                .parse::<u64>()
                .ok()
            })
            .unwrap_or(0);
        let backlog = m.lines().find_map(|l| {
            l.strip_prefix("shardpbx_webhook_backlog{webhook=\"locator\"}")?
                .trim()
                .parse::<u64>()
                .ok()
        });
        (errors >= 2).then_some(backlog)
    })
    .expect("no connection errors counted");
    assert_eq!(backlog, Some(5));
    // The queue is durable: a restart in the middle loses nothing.
    pbx.restart();
    register(&b, "1002", "down-b", 3, 6003, 0);
    // The target stays down for 30 s in all (retries back off meanwhile).
    std::thread::sleep(Duration::from_secs(30).saturating_sub(outage.elapsed()));
    hook.listen();
    let got = hook.wait_for(Duration::from_secs(15), |r| {
        per_aor(r).values().map(Vec::len).sum::<usize>() >= 6
    });
    let ev = |e: &str, user: &str, p: u16| (e.to_string(), format!("sip:{user}@127.0.0.1:{p}"));
    let mut want = BTreeMap::new();
    want.insert(
        "sip:1001@pbx.test".to_string(),
        vec![
            ev("registered", "1001", 6001),
            ev("unregistered", "1001", 6001),
            ev("registered", "1001", 6004),
        ],
    );
    want.insert(
        "sip:1002@pbx.test".to_string(),
        vec![
            ev("registered", "1002", 6002),
            ev("registered", "1002", 6003),
            ev("unregistered", "1002", 6003),
        ],
    );
    assert_eq!(per_aor(&got), want);
}
