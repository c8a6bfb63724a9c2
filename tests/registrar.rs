//! Registrar through the real binary: sipp registering 1,000 users with digest
//! auth, persistence across a restart, failures that must look alike,
//! unregister, wildcard, 423, replay, stale nonces and expiry; MD5 alone by
//! default, so a stock baresip registers (SHA-256 an opt-in, still tested).

mod common;

use std::time::Duration;

use common::*;

fn users(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("u{i:06}"), format!("pw{i:06}x")))
        .collect()
}

fn list_json(pbx: &Pbx, aor: Option<&str>) -> Vec<serde_json::Value> {
    let mut args = vec!["registrations", "list", "--json"];
    if let Some(a) = aor {
        args.extend(["--aor", a]);
    }
    let out = pbx.cli(&args);
    assert!(
        out.status.success(),
        "registrations list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .expect("JSON array")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn sipp_registers_1000_users_and_bindings_survive_a_restart() {
    let users = users(1000);
    let mut pbx = Pbx::start(PbxOptions {
        shards: 2,
        users: users.clone(),
        ..PbxOptions::default()
    });
    let dir = pbx.dir().to_path_buf();
    let mut csv = String::from("SEQUENTIAL\n");
    for (u, p) in &users {
        csv.push_str(&format!(
            "{u};{p};pbx.test;[authentication username={u} password={p}]\n"
        ));
    }
    std::fs::write(dir.join("users.csv"), csv).unwrap();
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/bench-scenarios/register_auth.xml"
    );
    let target = pbx.sip.to_string();
    let out = std::process::Command::new("sipp")
        .current_dir(&dir)
        .args([
            target.as_str(),
            "-sf",
            scenario,
            "-inf",
            "users.csv",
            "-m",
            "1000",
            "-r",
            "250",
            "-l",
            "200",
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-nostdin",
            "-timeout",
            "60s",
            "-timeout_error",
            "-trace_err",
        ])
        .output()
        .expect("sipp (scripts/install-deps.sh installs sip-tester)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sipp failed ({}):\n{}\n{}",
        out.status,
        stdout.lines().rev().take(40).collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    let live = list_json(&pbx, None);
    assert_eq!(
        live.len(),
        1000,
        "all 1000 bindings listed while the server runs"
    );
    let b = live
        .iter()
        .find(|b| b["aor"] == "sip:u000007@pbx.test")
        .expect("u000007 bound");
    assert_eq!(b["transport"], "UDP");
    assert!(b["source"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(b["contact"].as_str().unwrap().contains("u000007@127.0.0.1"));
    assert_eq!(b["user_agent"], "sipp");
    let exp = b["expires"].as_u64().unwrap();
    assert!((3500..=3600).contains(&exp), "expires {exp}");

    pbx.restart();
    assert_eq!(
        list_json(&pbx, None).len(),
        1000,
        "bindings survive a restart"
    );
    assert_eq!(list_json(&pbx, Some("u000999")).len(), 1);
    assert_eq!(list_json(&pbx, Some("sip:u000999@pbx.test")).len(), 1);
}

#[test]
fn wrong_password_and_unknown_user_get_identical_answers() {
    let pbx = Pbx::start(PbxOptions::default());
    let mut answers = Vec::new();
    for (user, pass) in [("1001", "wrong"), ("7777", "whatever")] {
        let uac = Uac::new(pbx.sip);
        let cid = format!("bad-{user}");
        let mut reg = Register {
            user,
            call_id: &cid,
            cseq: 1,
            contact: Some(format!("<sip:{user}@{}>", uac.local)),
            expires: None,
            authorization: None,
        };
        let ch = uac.request(&reg.build(&uac));
        assert_eq!(ch.code, 401);
        let challenges = ch.headers_named("WWW-Authenticate");
        // The default: MD5 alone (libre-based phones give up on a SHA-256 challenge).
        assert_eq!(challenges.len(), 1, "only MD5 offered by default");
        assert!(challenges[0].contains("algorithm=MD5"));
        reg.cseq = 2;
        reg.authorization = Some(digest_auth(
            challenges[0],
            user,
            pass,
            "REGISTER",
            "sip:pbx.test",
            1,
        ));
        let fin = uac.request(&reg.build(&uac));
        // The challenge, with the per-request nonce and opaque blanked.
        let shape: Vec<String> = challenges
            .iter()
            .map(|c| {
                c.replace(&param(c, "nonce").unwrap(), "N")
                    .replace(&param(c, "opaque").unwrap(), "O")
            })
            .collect();
        answers.push((
            shape,
            fin.code,
            fin.reason.clone(),
            fin.header("WWW-Authenticate").map(str::to_string),
        ));
    }
    assert_eq!(
        answers[0], answers[1],
        "a known user with a wrong password looks like an unknown user"
    );
    assert_eq!(answers[0].1, 403);
    assert!(list_json(&pbx, None).is_empty(), "no binding was stored");
}

#[test]
fn unregister_wildcard_min_expires_replay_stale_nonce_and_expiry() {
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: "min_expires = 2\nnonce_ttl_secs = 2".into(),
        runtime_extra: "registrar_sweep_secs = 1".into(),
        ..PbxOptions::default()
    });
    let uac = Uac::new(pbx.sip);
    let a = format!("<sip:1001@{}>", uac.local);
    let b = "<sip:1001@192.0.2.7:5062;transport=udp>".to_string();

    let r = register_with_auth(&uac, "1001", "secret1001", "reg-a", 1, &a, Some(3600));
    assert_eq!(r.code, 200, "{}", r.raw);
    assert_eq!(r.headers_named("Contact").len(), 1);
    let r = register_with_auth(&uac, "1001", "secret1001", "reg-b", 1, &b, Some(3600));
    assert_eq!(r.code, 200);
    let contacts = r.headers_named("Contact");
    assert_eq!(
        contacts.len(),
        2,
        "the 200 OK lists every binding: {contacts:?}"
    );
    assert!(contacts.iter().all(|c| c.contains(";expires=")));
    assert_eq!(list_json(&pbx, Some("1001")).len(), 2);

    // Too brief.
    let uac2 = Uac::new(pbx.sip);
    let r = register_with_auth(
        &uac2,
        "1001",
        "secret1001",
        "reg-brief",
        1,
        &format!("{b};expires=1"),
        None,
    );
    assert_eq!(r.code, 423);
    assert_eq!(r.header("Min-Expires"), Some("2"));

    // Remove one contact.
    let r = register_with_auth(
        &uac,
        "1001",
        "secret1001",
        "reg-a",
        10,
        &format!("{a};expires=0"),
        None,
    );
    assert_eq!(r.code, 200);
    assert_eq!(r.headers_named("Contact").len(), 1);
    assert!(r.headers_named("Contact")[0].contains("192.0.2.7"));

    // Replay: the same credentials (same nonce, same nc) in a new transaction.
    let mut reg = Register {
        user: "1001",
        call_id: "reg-replay",
        cseq: 1,
        contact: Some(b.clone()),
        expires: Some(60),
        authorization: None,
    };
    let ch = uac.request(&reg.build(&uac));
    let ch = ch.header("WWW-Authenticate").unwrap().to_string();
    reg.cseq = 2;
    reg.authorization = Some(digest_auth(
        &ch,
        "1001",
        "secret1001",
        "REGISTER",
        "sip:pbx.test",
        1,
    ));
    assert_eq!(uac.request(&reg.build(&uac)).code, 200);
    reg.cseq = 3;
    assert_eq!(
        uac.request(&reg.build(&uac)).code,
        403,
        "a repeated nonce-count is refused"
    );
    reg.cseq = 4;
    reg.authorization = Some(digest_auth(
        &ch,
        "1001",
        "secret1001",
        "REGISTER",
        "sip:pbx.test",
        2,
    ));
    assert_eq!(
        uac.request(&reg.build(&uac)).code,
        200,
        "the next nonce-count is fine"
    );

    // Stale nonce after nonce_ttl_secs.
    std::thread::sleep(Duration::from_millis(2500));
    reg.cseq = 5;
    reg.authorization = Some(digest_auth(
        &ch,
        "1001",
        "secret1001",
        "REGISTER",
        "sip:pbx.test",
        3,
    ));
    let r = uac.request(&reg.build(&uac));
    assert_eq!(r.code, 401);
    assert!(r
        .headers_named("WWW-Authenticate")
        .iter()
        .all(|c| c.contains("stale=true")));

    // Wildcard removal.
    let mut star = Register {
        user: "1001",
        call_id: "reg-star",
        cseq: 1,
        contact: Some("*".into()),
        expires: Some(0),
        authorization: None,
    };
    let ch = uac.request(&star.build(&uac));
    star.cseq = 2;
    star.authorization = Some(digest_auth(
        ch.header("WWW-Authenticate").unwrap(),
        "1001",
        "secret1001",
        "REGISTER",
        "sip:pbx.test",
        1,
    ));
    let r = uac.request(&star.build(&uac));
    assert_eq!(r.code, 200);
    assert!(r.headers_named("Contact").is_empty());
    assert!(list_json(&pbx, Some("1001")).is_empty());

    // Expiry: a 2 s binding is gone after the sweep.
    let r = register_with_auth(
        &uac,
        "1002",
        "secret1002",
        "reg-exp",
        1,
        &format!("<sip:1002@{}>", uac.local),
        Some(2),
    );
    assert_eq!(r.code, 200);
    assert_eq!(list_json(&pbx, Some("1002")).len(), 1);
    std::thread::sleep(Duration::from_millis(3500));
    assert!(list_json(&pbx, Some("1002")).is_empty());
    assert!(
        pbx.log_text().contains("binding expired"),
        "the sweep removed it"
    );
}

#[test]
fn sha256_digest_registers_when_configured() {
    // SHA-256 is an opt-in: offered after MD5, one challenge header each.
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: "digest_algorithms = [\"MD5\", \"SHA-256\"]".into(),
        ..PbxOptions::default()
    });
    let uac = Uac::new(pbx.sip);
    let mut reg = Register {
        user: "1002",
        call_id: "sha-1",
        cseq: 1,
        contact: Some(format!("<sip:1002@{}>", uac.local)),
        expires: Some(600),
        authorization: None,
    };
    let ch = uac.request(&reg.build(&uac));
    let challenges = ch.headers_named("WWW-Authenticate");
    assert_eq!(challenges.len(), 2, "{}", ch.raw);
    assert!(challenges[0].contains("algorithm=MD5"), "MD5 first");
    let sha = challenges[1].to_string();
    assert!(sha.contains("algorithm=SHA-256"), "{sha}");
    reg.cseq = 2;
    reg.authorization = Some(digest_auth_with(
        sha256_hex,
        "SHA-256",
        &sha,
        "1002",
        "wrong",
        "REGISTER",
        "sip:pbx.test",
        1,
    ));
    assert_eq!(uac.request(&reg.build(&uac)).code, 403);
    reg.cseq = 3;
    reg.authorization = Some(digest_auth_with(
        sha256_hex,
        "SHA-256",
        &sha,
        "1002",
        "secret1002",
        "REGISTER",
        "sip:pbx.test",
        2,
    ));
    let ok = uac.request(&reg.build(&uac));
    assert_eq!(ok.code, 200, "{}", ok.raw);
    assert!(ok.header("Contact").unwrap().contains(";expires=600"));
}

/// A headless baresip (Debian's, built on libre) in `dir`, registering
/// 1001 (password `pass`) with this server every 60 s; ends after 30 s at
/// the latest, and is killed when dropped.
fn baresip(pbx: &Pbx, dir: &std::path::Path, pass: &str) -> Peer {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config"),
        "poll_method epoll\nsip_listen 127.0.0.1:0\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule_app account.so\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!("<sip:1001@{}>;auth_pass={pass};regint=60\n", pbx.sip),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
    std::process::Command::new("baresip")
        .arg("-f")
        .arg(dir)
        .args(["-s", "-t", "30"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(|c| Peer(Some(c)))
        .expect("baresip (scripts/install-deps.sh installs baresip-core)")
}

/// The binding of 1001 once there is one, within `limit`.
fn binding_of_1001(pbx: &Pbx, limit: Duration) -> Option<serde_json::Value> {
    wait_until(limit, || {
        list_json(pbx, None).into_iter().find(|b| {
            b["aor"]
                .as_str()
                .is_some_and(|a| a.starts_with("sip:1001@"))
        })
    })
}

#[test]
fn baresip_registers_with_the_default_config_but_not_when_sha256_is_offered() {
    // The default offers MD5 alone: a stock libre phone registers.
    let pbx = Pbx::start(PbxOptions::default());
    let dir = pbx.dir().join("baresip");
    let phone = baresip(&pbx, &dir, "secret1001");
    let b = binding_of_1001(&pbx, Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "baresip did not register:\n{}",
            std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default()
        )
    });
    assert!(
        b["user_agent"].as_str().unwrap_or("").contains("baresip"),
        "{b}"
    );
    assert!(
        b["contact"].as_str().unwrap().contains("@127.0.0.1:"),
        "{b}"
    );
    drop(phone);

    // With SHA-256 offered too (the old default), the same phone gives up
    // (its log says the algorithm is unsupported) and never registers.
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: "digest_algorithms = [\"MD5\", \"SHA-256\"]".into(),
        ..PbxOptions::default()
    });
    let dir = pbx.dir().join("baresip");
    let phone = baresip(&pbx, &dir, "secret1001");
    let log = dir.join("baresip.log");
    let gave_up = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("Register: "))
    })
    .expect("baresip reported nothing about its REGISTER");
    assert!(binding_of_1001(&pbx, Duration::from_millis(500)).is_none());
    assert!(!gave_up.contains("200 OK"), "{gave_up}");
    drop(phone);
}
