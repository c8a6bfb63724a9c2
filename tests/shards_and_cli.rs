//! Two shards steering in user space (`steering = "off"`; the kernel path is
//! tests/steering.rs): traffic arriving on either socket is handled by the
//! Call-ID's owner and every transaction is answered exactly once. And the CLI: bad
//! configs exit 2 naming the key, --version, check-config, SIGTERM stops clean.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn metric(text: &str, name: &str, shard: usize) -> u64 {
    let key = format!("shardpbx_{name}_total{{shard=\"{shard}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in metrics"))
}

#[test]
fn two_shards_hand_messages_to_the_owner_and_answer_each_once() {
    let pbx = Pbx::start(PbxOptions {
        shards: 2,
        runtime_extra: "steering = \"off\"".into(),
        ..PbxOptions::default()
    });
    // Many source ports spread over both SO_REUSEPORT sockets; many Call-IDs
    // spread over both owners.
    let clients: Vec<Uac> = (0..24).map(|_| Uac::new(pbx.sip)).collect();
    let mut sent = 0;
    for (i, uac) in clients.iter().enumerate() {
        for j in 0..5 {
            let cid = format!("owner-{i}-{j}");
            if j % 2 == 0 {
                uac.send(&options_request(uac, &cid));
            } else {
                let reg = Register {
                    user: "1001",
                    call_id: &cid,
                    cseq: 1,
                    contact: Some(format!("<sip:1001@{}>", uac.local)),
                    expires: None,
                    authorization: None,
                };
                uac.send(&reg.build(uac));
            }
            sent += 1;
        }
    }
    let mut answers: HashMap<String, u32> = HashMap::new();
    for uac in &clients {
        // Five answers expected per client; then a short wait catches duplicates.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut got = 0;
        while Instant::now() < deadline {
            let wait = if got < 5 { 500 } else { 100 };
            match uac.recv(Duration::from_millis(wait)) {
                Some(text) => {
                    got += 1;
                    let r = Response::parse(&text);
                    assert!(r.code == 200 || r.code == 401, "{}", r.raw);
                    *answers
                        .entry(r.header("Call-ID").unwrap().to_string())
                        .or_default() += 1;
                }
                None if got >= 5 => break,
                None => {}
            }
        }
    }
    let missing: Vec<String> = (0..24)
        .flat_map(|i| (0..5).map(move |j| format!("owner-{i}-{j}")))
        .filter(|c| !answers.contains_key(c))
        .collect();
    assert_eq!(
        answers.len(),
        sent,
        "every transaction answered; missing {missing:?}\n{}",
        pbx.http_get("/metrics")
    );
    assert!(
        answers.values().all(|&n| n == 1),
        "answered exactly once: {answers:?}"
    );

    let m = pbx.http_get("/metrics");
    let rx: Vec<u64> = (0..2).map(|s| metric(&m, "rx_datagrams", s)).collect();
    let handled: Vec<u64> = (0..2).map(|s| metric(&m, "handled", s)).collect();
    let handoff_out: u64 = (0..2).map(|s| metric(&m, "handoff_out", s)).sum();
    let handoff_in: u64 = (0..2).map(|s| metric(&m, "handoff_in", s)).sum();
    assert!(
        rx.iter().all(|&n| n > 0),
        "both sockets received traffic: {rx:?}"
    );
    assert!(
        handled.iter().all(|&n| n > 0),
        "both shards own calls: {handled:?}"
    );
    assert!(
        handoff_out > 0 && handoff_out == handoff_in,
        "handed off {handoff_out}, taken {handoff_in}"
    );
    // Each message is handled once, by its owner, plus the readiness probes.
    assert!(handled.iter().sum::<u64>() >= sent as u64);
}

#[test]
fn bad_configs_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown.toml",
            "[proxy]\nudp_portt = 5060\n",
            "proxy.udp_portt",
        ),
        (
            "range.toml",
            "[proxy]\nmin_expires = 9000\n",
            "proxy.min_expires",
        ),
        (
            "acl.toml",
            "[proxy]\nacl_rules = [\"allow everything\"]\n",
            "proxy.acl_rules",
        ),
        (
            "type.toml",
            "[runtime]\nshards = \"two\"\n",
            "runtime.shards",
        ),
        ("http.toml", "http_addr = \"nowhere\"\n", "http_addr"),
        (
            "steering.toml",
            "[runtime]\nsteering = \"sometimes\"\n",
            "runtime.steering",
        ),
        (
            "forwarding.toml",
            "[media]\nkernel_forwarding = \"sometimes\"\n",
            "media.kernel_forwarding",
        ),
    ];
    for (file, text, key) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        for sub in [&["check-config"][..], &["run"][..]] {
            let out = Command::new(BIN)
                .args(sub)
                .arg("--config")
                .arg(&path)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{file} {sub:?}: {err}");
            assert!(
                err.contains(key) && err.contains(file),
                "{file}: message names file and key: {err}"
            );
        }
    }
    let out = Command::new(BIN)
        .args(["check-config", "--config", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_shipped_config_checks_and_version_and_help_print() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/shardpbx.toml");
    let out = Command::new(BIN)
        .args(["check-config", "--config", shipped])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every profile shipped in perf/ is valid with the shipped config.
    let mut profiles: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/perf"))
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".toml"))
        .collect();
    profiles.sort();
    assert!(profiles.len() >= 3, "{profiles:?}");
    for profile in profiles {
        let p = profile.clone();
        let out = Command::new(BIN)
            .args(["check-config", "--config", shipped, "--perf", &p])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{profile}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-profile.toml");
    std::fs::write(&bad, "[runtime]\nudp_recv_batch = 0\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config", shipped, "--perf"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("runtime.udp_recv_batch"));
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["run", "check-config", "registrations"] {
        assert!(help.contains(sub), "{help}");
    }
}

#[test]
fn a_port_in_use_refuses_to_start() {
    let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.toml");
    std::fs::write(
        &path,
        format!(
            "http_addr = \"127.0.0.1:{}\"\ndata_dir = \"{}\"\n[proxy]\naddr = \"127.0.0.1\"\nudp_port = {port}\n[media]\nrtp_port_start = 61000\nrtp_port_end = 61998\n",
            free_port(),
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("proxy.udp_port"));
}
