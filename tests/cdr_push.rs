//! CDR push (API.md 2.4) through the real binary: over HTTP
//! (`[callrecord] type = "http"`) to a real HTTP server, with the multipart
//! body of the CDR and the recording, retries on failure, the push state on
//! the call record and the webhook metrics; to S3 (`type = "s3"`) on a real
//! S3-compatible server (moto_server), the guide's scenario D. For both,
//! every CDR arrives after an outage that spans a restart of the appliance.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::media::*;
use common::s3::Moto;
use common::webhook::WebhookServer;
use common::*;

fn pbx_pushing_to(url: &str, extra: &str) -> Pbx {
    Pbx::start(PbxOptions {
        extra_tables: format!(
            "{extra}\n[callrecord]\ntype = \"http\"\nurl = \"{url}\"\nwith_media = true\n\
             retry_initial_ms = 200\nretry_max_secs = 1\n\
             [callrecord.headers]\nX-Api-Key = \"k-123\"\n"
        ),
        ..PbxOptions::default()
    })
}

const BUCKET: &str = "cdr-archive";

fn pbx_archiving_to(s3_port: u16, extra: &str) -> Pbx {
    Pbx::start(PbxOptions {
        extra_tables: format!(
            "{extra}\n[callrecord]\ntype = \"s3\"\nbucket = \"{BUCKET}\"\nregion = \"us-east-1\"\n\
             endpoint = \"http://127.0.0.1:{s3_port}\"\naccess_key = \"test\"\nsecret_key = \"test\"\n\
             root = \"calls\"\nkeep_local = false\nretry_initial_ms = 200\nretry_max_secs = 1\n"
        ),
        ..PbxOptions::default()
    })
}

fn call_record(pbx: &Pbx, token: &str, call_id: &str) -> serde_json::Value {
    let (code, body) = http_request(
        pbx,
        "GET",
        &format!("/console/call-records/{call_id}"),
        &format!("Authorization: Bearer {token}\r\n"),
        "",
    );
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn ami_health(pbx: &Pbx) -> serde_json::Value {
    let raw = pbx.http_get("/ami/v1/health");
    serde_json::from_str(raw.split_once("\r\n\r\n").map_or("", |(_, b)| b)).unwrap()
}

fn metric(pbx: &Pbx, series: &str) -> u64 {
    let text = pbx.http_get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The callIds of the `calllog.json` parts pushed so far.
fn pushed_ids(reqs: &[common::webhook::Request]) -> Vec<String> {
    reqs.iter()
        .filter_map(|r| {
            let parts = r.multipart();
            let (_, _, json) = parts.iter().find(|(n, _, _)| n == "calllog.json")?;
            let cdr: serde_json::Value = serde_json::from_slice(json).ok()?;
            cdr["callId"].as_str().map(String::from)
        })
        .collect()
}

#[test]
fn a_recorded_call_is_pushed_with_its_wav_after_the_target_recovers() {
    let hook = WebhookServer::start();
    hook.status.store(500, Ordering::Relaxed);
    let pbx = pbx_pushing_to(&hook.url("/cdr"), "[recording]\nenabled = true\n");
    let token = api_token(&pbx, "read");
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    call_with_tones(&pbx, &mut phone, "push-rec@test", 40);

    // The target fails twice (HTTP 500); the push is retried, then delivered.
    let failed = hook.wait_for(Duration::from_secs(10), |r| r.len() >= 2);
    assert!(failed.len() >= 2, "no retry after a 500: {}", failed.len());
    let pending = call_record(&pbx, &token, "push-rec@test");
    assert_eq!(pending["push"]["state"], "pending", "{pending}");
    assert!(
        pending["push"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("500"),
        "{pending}"
    );
    assert!(
        metric(
            &pbx,
            "shardpbx_webhook_errors_total{webhook=\"cdr_push\",kind=\"status\"}"
        ) >= 2
    );
    hook.status.store(200, Ordering::Relaxed);
    let n = failed.len();
    let all = hook.wait_for(Duration::from_secs(10), |r| r.len() > n);
    let delivered = common::wait_until(Duration::from_secs(5), || {
        let c = call_record(&pbx, &token, "push-rec@test");
        (c["push"]["state"] == "delivered").then_some(c)
    })
    .expect("push state never became delivered");
    let all = hook.wait_for(Duration::from_secs(1), |r| r.len() >= all.len());
    assert_eq!(
        delivered["push"]["attempts"].as_u64(),
        Some(all.len() as u64),
        "{delivered}"
    );

    // What arrived: the configured header, the CDR, and the recording's bytes.
    let last = all.last().unwrap();
    assert_eq!((last.method.as_str(), last.path.as_str()), ("POST", "/cdr"));
    assert_eq!(last.header("x-api-key"), Some("k-123"));
    let parts = last.multipart();
    let names: Vec<&str> = parts.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["calllog.json", "media_audio-0"]);
    let cdr: serde_json::Value = serde_json::from_slice(&parts[0].2).unwrap();
    assert_eq!(cdr["callId"], "push-rec@test");
    assert_eq!(cdr["status"], "completed");
    let rel = cdr["recorder"][0]["path"].as_str().unwrap();
    let local = std::fs::read(pbx.dir.path().join("data").join(rel)).unwrap();
    assert_eq!(parts[1].2.len(), local.len());
    assert!(parts[1].2 == local, "the pushed WAV is not the recording");
    assert!(parts[1].1.ends_with(".wav"), "filename {}", parts[1].1);
    assert_eq!(&parts[1].2[..4], b"RIFF");
    assert_eq!(
        metric(&pbx, "shardpbx_webhook_backlog{webhook=\"cdr_push\"}"),
        0
    );
}

fn short_call(pbx: &Pbx, phone: &mut Phone, call_id: &str) {
    let mut caller = answered_call(pbx, phone, call_id);
    let r = caller.bye();
    assert_eq!(r.code, 200, "{}", r.raw);
    phone.accept_bye(Duration::from_secs(3));
}

#[test]
fn every_cdr_arrives_after_an_outage_that_spans_a_restart() {
    let hook = WebhookServer::on(free_port());
    let mut pbx = pbx_pushing_to(&hook.url("/cdr"), "");
    let token = api_token(&pbx, "read");
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let ids: Vec<String> = (0..10).map(|i| format!("outage-{i}@test")).collect();
    for id in &ids[..5] {
        short_call(&pbx, &mut phone, id);
    }
    // The target is down: the pushes fail with connection errors and wait.
    let first = common::wait_until(Duration::from_secs(10), || {
        let c = call_record(&pbx, &token, &ids[0]);
        (c["push"]["attempts"].as_u64() >= Some(2)).then_some(c)
    })
    .expect("no retried attempt while the target is down");
    assert_eq!(first["push"]["state"], "pending", "{first}");
    assert!(
        first["push"]["last_error"]
            .as_str()
            .unwrap_or("")
            .starts_with("connect"),
        "{first}"
    );
    assert!(
        metric(
            &pbx,
            "shardpbx_webhook_errors_total{webhook=\"cdr_push\",kind=\"connect\"}"
        ) >= 2
    );
    let health = ami_health(&pbx);
    assert_eq!(health["webhookBacklog"], 5, "{health}");

    pbx.restart();
    for id in &ids[5..] {
        short_call(&pbx, &mut phone, id);
    }
    hook.listen();
    let got = hook.wait_for(Duration::from_secs(20), |r| {
        pushed_ids(r).into_iter().collect::<BTreeSet<_>>().len() >= 10
    });
    let got: BTreeSet<String> = pushed_ids(&got).into_iter().collect();
    let want: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(got, want);
    for id in &ids {
        let delivered = common::wait_until(Duration::from_secs(5), || {
            let c = call_record(&pbx, &token, id);
            (c["push"]["state"] == "delivered").then_some(c)
        });
        assert!(delivered.is_some(), "{id} never marked delivered");
    }
    let health = ami_health(&pbx);
    assert_eq!(health["webhookBacklog"], 0, "{health}");
}

#[test]
fn a_recorded_call_is_archived_to_s3_and_its_local_file_removed() {
    let moto = Moto::start(free_port(), BUCKET);
    let pbx = pbx_archiving_to(moto.port, "[recording]\nenabled = true\n");
    let token = api_token(&pbx, "read");
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    call_with_tones(&pbx, &mut phone, "s3-rec@test", 40);
    let record = common::wait_until(Duration::from_secs(15), || {
        let c = call_record(&pbx, &token, "s3-rec@test");
        (c["push"]["state"] == "delivered").then_some(c)
    })
    .expect("never archived");
    let rec = &record["recorder"][0];
    let rel = rec["path"].as_str().unwrap();
    let day = rel.split('/').nth(1).unwrap();
    let wav_name = rel.rsplit('/').next().unwrap();
    let mut keys = moto.keys(BUCKET);
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("calls/{day}/s3-rec@test.json"),
            format!("calls/{day}/{wav_name}"),
        ]
    );
    let cdr: serde_json::Value = serde_json::from_slice(&moto.object(BUCKET, &keys[0])).unwrap();
    assert_eq!(cdr["callId"], "s3-rec@test");
    assert_eq!(cdr["status"], "completed");
    let wav = moto.object(BUCKET, &keys[1]);
    assert_eq!(wav.len() as u64, rec["size"].as_u64().unwrap());
    assert_eq!(&wav[..4], b"RIFF");
    // keep_local = false: the upload took the local copy's place.
    assert!(!pbx.dir.path().join("data").join(rel).exists());
}

#[test]
fn every_cdr_reaches_s3_after_an_outage_that_spans_a_restart() {
    let s3_port = free_port();
    let mut pbx = pbx_archiving_to(s3_port, "");
    let token = api_token(&pbx, "read");
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let ids: Vec<String> = (0..10).map(|i| format!("s3-outage-{i}@test")).collect();
    for id in &ids[..5] {
        short_call(&pbx, &mut phone, id);
    }
    let first = common::wait_until(Duration::from_secs(10), || {
        let c = call_record(&pbx, &token, &ids[0]);
        (c["push"]["attempts"].as_u64() >= Some(2)).then_some(c)
    })
    .expect("no retried attempt while S3 is down");
    assert_eq!(first["push"]["state"], "pending", "{first}");
    pbx.restart();
    for id in &ids[5..] {
        short_call(&pbx, &mut phone, id);
    }
    let moto = Moto::start(s3_port, BUCKET);
    let archived = || -> BTreeSet<String> {
        moto.keys(BUCKET)
            .iter()
            .filter_map(|k| {
                k.rsplit('/')
                    .next()?
                    .strip_suffix(".json")
                    .map(String::from)
            })
            .collect()
    };
    let got = common::wait_until(Duration::from_secs(20), || {
        let got = archived();
        (got.len() >= 10).then_some(got)
    })
    .unwrap_or_else(archived);
    let want: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(got, want);
}
