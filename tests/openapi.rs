//! The OpenAPI document against the real binary: it is served (without
//! credentials) at `/console/openapi.json` exactly as checked in, and
//! schemathesis (PyPI; `scripts/install-deps.sh` installs it) fuzzes every
//! `/console` operation of it with an API token holding every scope,
//! finding no 5xx and no response that breaks the document.
//!
//! AMI and /metrics stay out of the run: `/ami/v1/shutdown` would stop the
//! server and `/ami/v1/reload/*` would swap its tables under the run.
//! `POST /console/logout` stays in: with a token it ends no session.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::media;
use common::*;

/// How long the whole schemathesis run may take before it is killed.
const RUN_LIMIT: Duration = Duration::from_secs(420);

/// Test cases per operation and phase (`--max-examples`);
/// `SCHEMATHESIS_MAX_EXAMPLES` overrides for a deeper run.
const MAX_EXAMPLES: &str = "10";

/// No 5xx, and every response as the document says (its status code
/// documented: its body matches the schema). `SCHEMATHESIS_CHECKS` overrides.
const CHECKS: &str = "not_a_server_error,response_schema_conformance";

/// Fixed so that a failure reproduces; `SCHEMATHESIS_SEED` overrides.
const SEED: &str = "20261123";

/// The callId of the document's examples (API.md section 3's): the run
/// starts with a CDR and a SIP flow under it, so the examples phase gets
/// real records to check against the document.
const EXAMPLE_CALL_ID: &str = "a84b4c76e66710@10.0.0.5";

/// `GET path` with these extra header lines: (status, head, body; a
/// binary body as lossy text).
fn get_with(pbx: &Pbx, path: &str, extra: &str) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(pbx.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let out = String::from_utf8_lossy(&raw);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head[9..12].parse().unwrap(),
        head.to_string(),
        body.to_string(),
    )
}

/// `GET path` without credentials.
fn get(pbx: &Pbx, path: &str) -> (u16, String, String) {
    get_with(pbx, path, "")
}

/// The schemathesis executable (see `common::python_tool`).
fn schemathesis() -> Option<PathBuf> {
    python_tool("SCHEMATHESIS", "schemathesis", "schemathesis")
}

#[test]
fn the_document_is_served_without_credentials() {
    let pbx = Pbx::start(PbxOptions::default());
    let (code, head, body) = get(&pbx, "/console/openapi.json");
    assert_eq!(code, 200, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/openapi/shardpbx.json"
    ))
    .unwrap();
    assert_eq!(body, file, "the served document is not the checked-in one");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    // Its neighbours still need credentials.
    let (code, _, _) = get(&pbx, "/console/calls/active");
    assert_eq!(code, 401);
}

#[test]
fn schemathesis_finds_no_server_error_and_no_response_off_the_document() {
    let bin = schemathesis().unwrap_or_else(|| {
        panic!("schemathesis not found (not in $SCHEMATHESIS, target/schemathesis/bin or PATH): run scripts/install-deps.sh")
    });
    let pbx = Pbx::start(PbxOptions {
        extra_tables: "[recording]\nenabled = true\n".into(),
        ..PbxOptions::default()
    });
    let token = api_token(&pbx, "read,write,calls");
    // Records to check against the document: a completed, recorded call
    // under the examples' callId (CDR, recording and, once the flow's
    // linger is over, its SIP flow), a failed one (404), and a call that
    // stays up during the run.
    let mut phone = media::Phone::register(&pbx, "1002", "secret1002");
    let answer = media::sdp(phone.rtp_port(), &[media::PCMU], "");
    let mut done = media::Caller::new(&pbx, EXAMPLE_CALL_ID);
    let offer = media::sdp(done.rtp_port(), &[media::PCMU], "");
    let mut invite = String::new();
    let r = done.call("1002", &offer, || invite = phone.answer(&answer));
    assert_eq!(r.code, 200);
    // A little audio each way, so there is a recording.
    let tone = media::tone_frames(440.0, 10, media::ulaw);
    media::exchange(
        &done.rtp,
        media::sdp_audio(&done.answer),
        0,
        tone.clone(),
        &phone.rtp,
        media::sdp_audio(invite.split_once("\r\n\r\n").unwrap().1),
        0,
        tone,
        160,
        Duration::from_millis(20),
    );
    assert_eq!(done.bye().code, 200);
    assert!(phone.accept_bye(Duration::from_secs(3)));
    assert_eq!(call_by_hand(&pbx, "9999", "openapi-404@test").code, 404);
    let mut live = media::Caller::new(&pbx, "openapi-live@test");
    let offer = media::sdp(live.rtp_port(), &[media::PCMU], "");
    let r = live.call("1002", &offer, || {
        phone.answer(&answer);
    });
    assert_eq!(r.code, 200);
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let (code, _, body) = get_with(&pbx, "/console/calls/active", &bearer);
    assert!(
        code == 200 && body.contains("openapi-live@test"),
        "{code} {body}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    for what in ["sip-flow", "recording"] {
        let path = format!("/console/call-records/{EXAMPLE_CALL_ID}/{what}");
        loop {
            let (code, _, body) = get_with(&pbx, &path, &bearer);
            if code == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within 20 s: {code} {body}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    let work = pbx.dir().join("schemathesis");
    std::fs::create_dir_all(&work).unwrap();
    let out_path = work.join("output.txt");
    let out = std::fs::File::create(&out_path).unwrap();
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| SEED.to_string());
    let checks = std::env::var("SCHEMATHESIS_CHECKS").unwrap_or_else(|_| CHECKS.to_string());
    let examples =
        std::env::var("SCHEMATHESIS_MAX_EXAMPLES").unwrap_or_else(|_| MAX_EXAMPLES.to_string());
    let url = format!("http://{}/console/openapi.json", pbx.http);
    let started = Instant::now();
    let mut child = Command::new(&bin)
        .arg("run")
        .arg(&url)
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            &checks,
            "--include-path-regex",
            "^/console/",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            &examples,
            "--seed",
            &seed,
            // One worker: CPython 3.11's ast module is not thread-safe, and
            // hypothesis parses sources in each worker thread.
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
        ])
        // Anything it writes lands in the server's temp dir.
        .current_dir(&work)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let took = started.elapsed().as_secs_f64();
    eprintln!("schemathesis ran {took:.1} s");
    match status {
        Some(st) if st.success() => eprintln!("{output}"),
        Some(st) => panic!(
            "schemathesis failed ({st}) after {took:.1} s:\n{output}\n--- server log ---\n{}",
            tail(&pbx.log_text(), 60)
        ),
        None => panic!("schemathesis did not finish within {RUN_LIMIT:?}; its output:\n{output}"),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
