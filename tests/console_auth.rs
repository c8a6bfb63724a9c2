//! Console authentication against the real binary over real HTTP: login and
//! logout with the session cookie, the failed-login limit, API tokens and
//! their scopes, revocation, `user passwd` / `user remove`, and that AMI and
//! /metrics stay on the allow-list alone.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;

/// A call command that answers 404 once a request gets through the auth.
const COMMAND: &str = "/console/calls/active/nope@test/commands";
const MUTE: &str = r#"{"action":"mute","track_id":"audio-0"}"#;

struct Resp {
    code: u16,
    head: String,
    body: String,
}

impl Resp {
    /// The value of the first header with this name (case-insensitive).
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn http(pbx: &Pbx, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut s = std::net::TcpStream::connect(pbx.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
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

fn login(pbx: &Pbx, user: &str, password: &str) -> Resp {
    let body = serde_json::json!({"username": user, "password": password}).to_string();
    http(pbx, "POST", "/console/login", &[], &body)
}

/// `shardpbx_session=<id>` of a successful login.
fn session_cookie(r: &Resp) -> String {
    assert_eq!(r.code, 200, "{}", r.body);
    let set = r.header("set-cookie").expect("Set-Cookie");
    set.split(';').next().unwrap().trim().to_string()
}

fn command_with(pbx: &Pbx, headers: &[(&str, &str)]) -> Resp {
    http(pbx, "POST", COMMAND, headers, MUTE)
}

fn cli_ok(pbx: &Pbx, args: &[&str]) -> String {
    let out = pbx.cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sessions_log_in_and_out_and_unauthenticated_requests_are_refused() {
    let pbx = Pbx::start(PbxOptions::default());
    cli_ok(
        &pbx,
        &["user", "add", "--username", "admin", "--password", "pw one"],
    );

    // Nothing under /console without credentials, known routes or not.
    let r = command_with(&pbx, &[]);
    assert_eq!(r.code, 401, "{}", r.body);
    assert_eq!(r.json()["error"], "unauthorized");
    assert_eq!(
        http(&pbx, "GET", "/console/nothing-here", &[], "").code,
        401
    );
    assert_eq!(http(&pbx, "POST", "/console/logout", &[], "").code, 401);
    // A cookie that is not a session does not help either.
    let fake = format!("shardpbx_session={}", "ab".repeat(32));
    assert_eq!(command_with(&pbx, &[("Cookie", &fake)]).code, 401);

    // A bad pair: the same answer for a wrong password and an unknown user.
    let wrong = login(&pbx, "admin", "pw two");
    assert_eq!(wrong.code, 401, "{}", wrong.body);
    assert!(wrong.header("set-cookie").is_none());
    let unknown = login(&pbx, "nobody", "pw one");
    assert_eq!(unknown.code, 401);
    assert_eq!(wrong.body, unknown.body);

    // Bodies that are not logins.
    let r = http(&pbx, "POST", "/console/login", &[], "not json");
    assert_eq!(r.code, 400, "{}", r.body);
    let r = http(
        &pbx,
        "POST",
        "/console/login",
        &[],
        r#"{"username":"admin"}"#,
    );
    assert_eq!(r.code, 422, "{}", r.body);
    assert_eq!(r.json()["field"], "password");
    let r = http(&pbx, "POST", "/console/login", &[], r#"{"password":"x"}"#);
    assert_eq!(r.code, 422);
    assert_eq!(r.json()["field"], "username");

    // The right pair: a session cookie that gets through.
    let ok = login(&pbx, "admin", "pw one");
    assert_eq!(ok.code, 200, "{}", ok.body);
    assert_eq!(ok.json()["username"], "admin");
    let set = ok.header("set-cookie").unwrap();
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(set.contains(attr), "{attr} missing in {set}");
    }
    let cookie = session_cookie(&ok);
    assert!(cookie.starts_with("shardpbx_session="), "{cookie}");
    let r = command_with(&pbx, &[("Cookie", &cookie)]);
    assert_eq!(r.code, 404, "{}", r.body);
    assert!(r.body.contains("nope@test"), "{}", r.body);

    // Logout ends it.
    let r = http(&pbx, "POST", "/console/logout", &[("Cookie", &cookie)], "");
    assert_eq!(r.code, 204, "{}", r.body);
    assert_eq!(command_with(&pbx, &[("Cookie", &cookie)]).code, 401);

    // AMI and /metrics: the allow-list alone, no console credentials.
    let r = http(&pbx, "GET", "/ami/v1/health", &[], "");
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "ok");
    let r = http(&pbx, "GET", "/metrics", &[], "");
    assert_eq!(r.code, 200);
    assert!(r.body.contains("shardpbx_"), "{}", r.body);
}

#[test]
fn failed_logins_are_limited_per_address() {
    let pbx = Pbx::start(PbxOptions::default());
    cli_ok(
        &pbx,
        &["user", "add", "--username", "admin", "--password", "right"],
    );
    for i in 0..5 {
        let r = login(&pbx, "admin", &format!("wrong{i}"));
        assert_eq!(r.code, 401, "attempt {i}: {}", r.body);
    }
    // The 6th within the minute is refused before the password is looked
    // at: even the right one.
    for password in ["wrong5", "right"] {
        let r = login(&pbx, "admin", password);
        assert_eq!(r.code, 429, "{}", r.body);
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
    }
    // Other requests from the address are not affected.
    let token = api_token(&pbx, "calls");
    let auth = format!("Bearer {token}");
    assert_eq!(command_with(&pbx, &[("Authorization", &auth)]).code, 404);
}

#[test]
fn api_tokens_carry_scopes_and_can_be_revoked() {
    let pbx = Pbx::start(PbxOptions::default());

    // Printed once, alone on the last line.
    let out = cli_ok(
        &pbx,
        &["token", "create", "--name", "grafana", "--scopes", "read"],
    );
    let lines: Vec<&str> = out.lines().collect();
    let read = lines.last().unwrap().to_string();
    assert!(read.starts_with("spbx_"), "{out}");
    assert_eq!(read.split_whitespace().count(), 1, "{out}");
    assert_eq!(out.matches(read.as_str()).count(), 1, "{out}");
    let secret = read.rsplit('_').next().unwrap().to_string();
    assert_eq!(secret.len(), 64);

    let bearer = |t: &str| format!("Bearer {t}");
    let r = command_with(&pbx, &[("Authorization", &bearer(&read))]);
    assert_eq!(r.code, 403, "{}", r.body);
    assert!(r.body.contains("calls"), "{}", r.body);
    // A read token reads (the unknown path gets past auth to the 404).
    let r = http(
        &pbx,
        "GET",
        "/console/nothing-here",
        &[("Authorization", &bearer(&read))],
        "",
    );
    assert_eq!(r.code, 404);
    // But a write-only token may not even read.
    let write = api_token(&pbx, "write");
    let r = http(
        &pbx,
        "GET",
        "/console/nothing-here",
        &[("Authorization", &bearer(&write))],
        "",
    );
    assert_eq!(r.code, 403);
    assert_eq!(
        command_with(&pbx, &[("Authorization", &bearer(&write))]).code,
        403
    );

    let calls = api_token(&pbx, "read,calls");
    let r = command_with(&pbx, &[("Authorization", &bearer(&calls))]);
    assert_eq!(r.code, 404, "{}", r.body);

    // Tampered or malformed tokens.
    let mut tampered = calls.clone();
    let last = if tampered.ends_with('0') { "1" } else { "0" };
    tampered.replace_range(tampered.len() - 1.., last);
    assert_eq!(
        command_with(&pbx, &[("Authorization", &bearer(&tampered))]).code,
        401
    );
    assert_eq!(
        command_with(&pbx, &[("Authorization", "Bearer nonsense")]).code,
        401
    );
    assert_eq!(
        command_with(&pbx, &[("Authorization", "Basic YTpi")]).code,
        401
    );

    // The list shows ids, names and scopes, never a secret.
    let list = cli_ok(&pbx, &["token", "list"]);
    assert!(list.contains("grafana"), "{list}");
    assert!(list.contains("read,calls"), "{list}");
    assert!(list.contains("3 token(s)"), "{list}");
    for t in [&read, &write, &calls] {
        let secret = t.rsplit('_').next().unwrap();
        assert!(!list.contains(secret), "secret shown: {list}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(&pbx, &["token", "list", "--json"])).unwrap();
    let items = json.as_array().unwrap();
    assert_eq!(items.len(), 3);
    let calls_id = calls.split('_').nth(1).unwrap();
    let entry = items.iter().find(|t| t["id"] == calls_id).unwrap();
    assert_eq!(entry["scopes"], serde_json::json!(["read", "calls"]));
    assert!(entry.get("hash").is_none());

    // Revoked: refused.
    cli_ok(&pbx, &["token", "revoke", "--id", calls_id]);
    assert_eq!(
        command_with(&pbx, &[("Authorization", &bearer(&calls))]).code,
        401
    );
    let again = pbx.cli(&["token", "revoke", "--id", calls_id]);
    assert_eq!(again.status.code(), Some(2));

    // An unknown scope is refused, naming the flag.
    let bad = pbx.cli(&["token", "create", "--name", "x", "--scopes", "read,admin"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--scopes"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn passwd_and_remove_change_who_can_log_in() {
    let mut pbx = Pbx::start(PbxOptions::default());
    cli_ok(
        &pbx,
        &["user", "add", "--username", "ops", "--password", "old-pw"],
    );
    let dup = pbx.cli(&["user", "add", "--username", "ops", "--password", "x"]);
    assert_eq!(dup.status.code(), Some(2));
    let cookie = session_cookie(&login(&pbx, "ops", "old-pw"));
    assert_eq!(command_with(&pbx, &[("Cookie", &cookie)]).code, 404);

    cli_ok(
        &pbx,
        &[
            "user",
            "passwd",
            "--username",
            "ops",
            "--password",
            "new-pw",
        ],
    );
    assert_eq!(login(&pbx, "ops", "old-pw").code, 401);
    // The session made with the old password ended with it.
    assert_eq!(command_with(&pbx, &[("Cookie", &cookie)]).code, 401);
    let cookie = session_cookie(&login(&pbx, "ops", "new-pw"));
    assert_eq!(command_with(&pbx, &[("Cookie", &cookie)]).code, 404);

    cli_ok(&pbx, &["user", "remove", "--username", "ops"]);
    assert_eq!(login(&pbx, "ops", "new-pw").code, 401);
    assert_eq!(command_with(&pbx, &[("Cookie", &cookie)]).code, 401);
    let gone = pbx.cli(&["user", "remove", "--username", "ops"]);
    assert_eq!(gone.status.code(), Some(2));

    // The CLI works while the server is down too; the server sees it after.
    let st = pbx.stop();
    assert!(st.success(), "{st}");
    cli_ok(
        &pbx,
        &["user", "add", "--username", "later", "--password", "pw"],
    );
    pbx.start_again();
    assert_eq!(login(&pbx, "later", "pw").code, 200);
}
