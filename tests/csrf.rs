//! AMI and the console against cross-site requests, through the real binary
//! over real HTTP: what a page in an operator's browser can send (a foreign
//! or `null` Origin, `Sec-Fetch-Site: cross-site`, form, multipart and
//! text/plain bodies) is refused and the server keeps running, while JSON
//! bodies, bodyless `curl -X POST` and same-origin requests work; an
//! overflowing `drain_timeout_secs` gets 422; `[ami] token` guards AMI and
//! /metrics when set.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;

struct Resp {
    code: u16,
    head: String,
    body: String,
}

impl Resp {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {:?}", self.code, self.body))
    }
}

/// One request with exactly these headers (no Content-Type added) and a
/// Content-Length when `body` is not empty.
fn http(pbx: &Pbx, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut s = std::net::TcpStream::connect(pbx.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Resp {
        code: head[9..12].parse().unwrap(),
        head: head.to_string(),
        body: body.to_string(),
    }
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// The server is up and not draining: AMI health says "ok" and SIP answers.
fn assert_running(pbx: &Pbx) {
    let h = http(pbx, "GET", "/ami/v1/health", &[], "");
    assert_eq!(h.code, 200, "{}", h.body);
    assert_eq!(h.json()["status"], "ok", "{}", h.body);
    let uac = Uac::new(pbx.sip);
    uac.send(&options_request(&uac, "still-up"));
    assert!(uac.recv(Duration::from_secs(2)).is_some(), "SIP is down");
}

#[test]
fn a_cross_site_shutdown_is_refused_and_the_server_keeps_running() {
    let mut pbx = Pbx::start(PbxOptions::default());
    let body = r#"{"drain_timeout_secs": 0}"#;
    // What a page elsewhere can make the operator's browser send.
    for headers in [
        vec![("Origin", "http://evil.example"), JSON],
        vec![("Origin", "null"), JSON],
        vec![("Origin", "http://x:8081"), JSON],
        vec![("Origin", "https://x.evil.example"), JSON],
        vec![("Sec-Fetch-Site", "cross-site"), JSON],
        vec![("Sec-Fetch-Site", "same-site"), JSON],
    ] {
        let r = http(&pbx, "POST", "/ami/v1/shutdown", &headers, body);
        assert_eq!(r.code, 403, "{headers:?}: {}", r.body);
        assert_eq!(r.json()["error"], "forbidden");
        let r = http(&pbx, "POST", "/ami/v1/shutdown", &headers, "");
        assert_eq!(r.code, 403, "bodyless {headers:?}: {}", r.body);
        let r = http(&pbx, "POST", "/ami/v1/reload/acl", &headers, "");
        assert_eq!(r.code, 403, "{headers:?}: {}", r.body);
    }
    // Bodies a browser sends cross-site without a preflight, no Origin at all.
    for ct in [
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=b",
    ] {
        let r = http(
            &pbx,
            "POST",
            "/ami/v1/shutdown",
            &[("Content-Type", ct)],
            body,
        );
        assert_eq!(r.code, 415, "{ct}: {}", r.body);
        assert_eq!(r.json()["error"], "unsupported_media_type");
    }
    // A body with no type at all (a fetch() of a Blob) is not JSON either.
    let r = http(&pbx, "POST", "/ami/v1/shutdown", &[], body);
    assert_eq!(r.code, 415, "{}", r.body);
    std::thread::sleep(Duration::from_millis(300));
    assert_running(&pbx);

    // The legitimate ones: bodyless curl -X POST, JSON, same origin.
    let r = http(&pbx, "POST", "/ami/v1/reload/routes", &[], "");
    assert_eq!(r.code, 200, "{}", r.body);
    let r = http(
        &pbx,
        "POST",
        "/ami/v1/reload/routes",
        &[("Origin", "http://x"), ("Sec-Fetch-Site", "same-origin")],
        "",
    );
    assert_eq!(r.code, 200, "{}", r.body);
    let own = format!("http://{}", pbx.http);
    let r = http(
        &pbx,
        "POST",
        "/ami/v1/reload/routes",
        &[("Origin", &own)],
        "",
    );
    assert_eq!(r.code, 200, "http_addr is our origin too: {}", r.body);
    assert_running(&pbx);
    let r = http(
        &pbx,
        "POST",
        "/ami/v1/shutdown",
        &[("Origin", "http://x"), JSON],
        r#"{"drain_timeout_secs": 5}"#,
    );
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.json()["drainTimeoutSecs"], 5);
    assert!(pbx.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn an_overflowing_drain_timeout_is_refused_and_the_server_stays_up() {
    let mut pbx = Pbx::start(PbxOptions::default());
    for n in ["18446744073709551615", "86401"] {
        let body = format!(r#"{{"drain_timeout_secs": {n}}}"#);
        let r = http(&pbx, "POST", "/ami/v1/shutdown", &[JSON], &body);
        assert_eq!(r.code, 422, "{n}: {}", r.body);
        assert_eq!(r.json()["field"], "drain_timeout_secs");
        assert!(r.body.contains("86400"), "{}", r.body);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_running(&pbx);
    assert!(!pbx.log_text().contains("panic"), "{}", pbx.log_text());
    // The largest allowed value is taken, and the idle server stops at once.
    let r = http(
        &pbx,
        "POST",
        "/ami/v1/shutdown",
        &[JSON],
        r#"{"drain_timeout_secs": 86400}"#,
    );
    assert_eq!(r.code, 200, "{}", r.body);
    assert!(pbx.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn the_console_refuses_cross_site_writes_and_login() {
    let pbx = Pbx::start(PbxOptions::default());
    let out = pbx.cli(&["user", "add", "--username", "admin", "--password", "pw one"]);
    assert!(out.status.success());
    let token = api_token(&pbx, "read,write,calls");
    let bearer = format!("Bearer {token}");
    let creds = r#"{"username": "admin", "password": "pw one"}"#;

    // Login CSRF: a foreign page cannot log the browser in.
    let r = http(
        &pbx,
        "POST",
        "/console/login",
        &[("Origin", "http://evil.example"), JSON],
        creds,
    );
    assert_eq!(r.code, 403, "{}", r.body);
    assert!(!r.head.to_ascii_lowercase().contains("set-cookie"));
    let r = http(
        &pbx,
        "POST",
        "/console/login",
        &[("Content-Type", "text/plain")],
        creds,
    );
    assert_eq!(r.code, 415, "{}", r.body);
    let r = http(
        &pbx,
        "POST",
        "/console/login",
        &[("Origin", "http://x"), JSON],
        creds,
    );
    assert_eq!(r.code, 200, "same-origin login: {}", r.body);
    let cookie = r
        .head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("set-cookie").then(|| v.trim())
        })
        .and_then(|v| v.split(';').next())
        .expect("Set-Cookie")
        .to_string();

    // A write with the session cookie (as a browser would attach it).
    let ext = r#"{"username": "3001", "password": "a-long-password-3001"}"#;
    for headers in [
        vec![
            ("Cookie", cookie.as_str()),
            ("Origin", "http://evil.example"),
            JSON,
        ],
        vec![("Cookie", cookie.as_str()), ("Origin", "null"), JSON],
        vec![
            ("Authorization", bearer.as_str()),
            ("Origin", "http://evil.example"),
            JSON,
        ],
    ] {
        let r = http(&pbx, "POST", "/console/extensions", &headers, ext);
        assert_eq!(r.code, 403, "{headers:?}: {}", r.body);
    }
    let r = http(
        &pbx,
        "POST",
        "/console/extensions",
        &[
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "username=3001&password=a-long-password-3001",
    );
    assert_eq!(r.code, 415, "{}", r.body);
    let listed = http(
        &pbx,
        "GET",
        "/console/extensions",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(listed.code, 200, "{}", listed.body);
    assert!(!listed.body.contains("3001"), "{}", listed.body);

    // Reads stay readable; the same write from our own origin works.
    let r = http(
        &pbx,
        "GET",
        "/console/extensions",
        &[("Cookie", &cookie), ("Origin", "http://evil.example")],
        "",
    );
    assert_eq!(r.code, 200, "{}", r.body);
    let r = http(
        &pbx,
        "POST",
        "/console/extensions",
        &[("Cookie", &cookie), ("Origin", "http://x"), JSON],
        ext,
    );
    assert_eq!(r.code, 201, "{}", r.body);
    let r = http(
        &pbx,
        "POST",
        "/console/logout",
        &[("Cookie", &cookie), ("Origin", "http://evil.example")],
        "",
    );
    assert_eq!(r.code, 403, "{}", r.body);
}

#[test]
fn ami_token_is_required_when_set_and_the_allow_list_still_applies() {
    const TOKEN: &str = "ami-token-0123456789abcdef";
    let mut pbx = Pbx::start(PbxOptions {
        extra_tables: format!("[ami]\ntoken = \"{TOKEN}\"\n"),
        ..PbxOptions::default()
    });
    let good = format!("Bearer {TOKEN}");
    for path in ["/ami/v1/health", "/ami/v1/dialogs", "/metrics"] {
        for headers in [
            vec![],
            vec![("Authorization", "Bearer wrong-token-0123456789abcdef")],
            vec![("Authorization", "Bearer ami-token-0123456789abcde")],
            vec![("Authorization", TOKEN)],
        ] {
            let r = http(&pbx, "GET", path, &headers, "");
            assert_eq!(r.code, 401, "{path} {headers:?}: {}", r.body);
            assert_eq!(r.json()["error"], "unauthorized");
        }
        let r = http(&pbx, "GET", path, &[("Authorization", &good)], "");
        assert_eq!(r.code, 200, "{path}: {}", r.body);
    }
    for (path, body) in [
        ("/ami/v1/shutdown", r#"{"drain_timeout_secs": 0}"#),
        ("/ami/v1/reload/routes", ""),
    ] {
        let r = http(&pbx, "POST", path, &[JSON], body);
        assert_eq!(r.code, 401, "{path}: {}", r.body);
    }
    assert_running_with(&pbx, &good);
    let r = http(
        &pbx,
        "POST",
        "/ami/v1/reload/routes",
        &[("Authorization", &good)],
        "",
    );
    assert_eq!(r.code, 200, "{}", r.body);

    // The right token from a peer outside the allow-list: still 403.
    let text = std::fs::read_to_string(&pbx.config).unwrap();
    std::fs::write(
        &pbx.config,
        text.replace("[ami]\n", "[ami]\nallows = [\"127.0.0.2\"]\n"),
    )
    .unwrap();
    pbx.restart();
    let r = http(
        &pbx,
        "GET",
        "/ami/v1/health",
        &[("Authorization", &good)],
        "",
    );
    assert_eq!(r.code, 403, "{}", r.body);
}

fn assert_running_with(pbx: &Pbx, auth: &str) {
    let h = http(pbx, "GET", "/ami/v1/health", &[("Authorization", auth)], "");
    assert_eq!(h.code, 200, "{}", h.body);
    assert_eq!(h.json()["status"], "ok");
}
