//! Kernel steering of SIP datagrams (`[runtime] steering = "auto"`): with
//! two shards, everything one peer sends from one socket reaches the shard
//! that owns each Call-ID without a handoff; a Call-ID the kernel program
//! cannot read is still handled (handed on in user space); and where the
//! kernel refuses the program (no CAP_BPF / CAP_SYS_ADMIN), the shards hand
//! datagrams on in user space and say so once.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in metrics:\n{text}"))
}

fn per_shard(text: &str, name: &str) -> [u64; 2] {
    [0, 1].map(|s| metric(text, &format!("shardpbx_{name}_total{{shard=\"{s}\"}}")))
}

/// An OPTIONS whose Call-ID header is spelled `header` (name, colon and
/// spacing), with `pad` bytes of an extra header before it.
fn options_with(uac: &Uac, header: &str, call_id: &str, pad: usize) -> String {
    let padding = if pad > 0 {
        format!("X-Pad: {}\r\n", "p".repeat(pad))
    } else {
        String::new()
    };
    format!(
        "OPTIONS sip:{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\n{padding}From: <sip:probe@{me}>;tag=p1\r\nTo: <sip:{srv}>\r\n{header}{call_id}  \r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        srv = uac.server,
        me = uac.local,
        b = branch()
    )
}

/// Sends every message from one socket and collects one answer per Call-ID.
fn send_all(uac: &Uac, messages: &[(String, String)]) -> HashMap<String, u32> {
    for (_, m) in messages {
        uac.send(m);
    }
    let mut answers: HashMap<String, u32> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let wait = if answers.len() < messages.len() {
            500
        } else {
            150
        };
        let Some(text) = uac.recv(Duration::from_millis(wait)) else {
            if answers.len() >= messages.len() {
                break;
            }
            continue;
        };
        let r = Response::parse(&text);
        assert_eq!(r.code, 200, "{}", r.raw);
        *answers
            .entry(r.header("Call-ID").unwrap().trim().to_string())
            .or_default() += 1;
    }
    answers
}

/// `/metrics` once the handoff counters stopped moving (two reads 200 ms
/// apart agree; at most 3 s): readiness probes that came before the
/// program was attached may still be on their way to their owner.
fn settled_metrics(pbx: &Pbx) -> String {
    let mut m = pbx.http_get("/metrics");
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(200));
        let again = pbx.http_get("/metrics");
        if per_shard(&again, "handoff_in") == per_shard(&m, "handoff_in") {
            return again;
        }
        m = again;
    }
    m
}

#[test]
fn the_kernel_steers_each_datagram_to_its_owner_shard() {
    let pbx = Pbx::start(PbxOptions {
        shards: 2,
        ..PbxOptions::default()
    });
    let m = settled_metrics(&pbx);
    assert_eq!(
        metric(&m, "shardpbx_sip_steering{path=\"kernel\"}"),
        1,
        "the kernel path is on (this machine allows eBPF):\n{}",
        pbx.log_text()
    );
    let before_steered = metric(&m, "shardpbx_sip_kernel_steered_total{result=\"steered\"}");
    let before_handled = per_shard(&m, "handled");
    // Datagrams that came before the program was attached (the harness's
    // readiness probes) were handed on in user space, as they should be.
    let before_handoff = per_shard(&m, "handoff_in");

    // One socket: the kernel's 4-tuple hash alone would send all of it to
    // one shard. Spellings the program must read like the parser does.
    let uac = Uac::new(pbx.sip);
    let spellings = ["Call-ID: ", "call-id:", "i: ", "CALL-ID \t:  ", "I:"];
    let messages: Vec<(String, String)> = (0..60)
        .map(|i| {
            let cid = format!("steer-{i}@host");
            let m = options_with(&uac, spellings[i % spellings.len()], &cid, 0);
            (cid, m)
        })
        .collect();
    let answers = send_all(&uac, &messages);
    assert_eq!(answers.len(), messages.len(), "every OPTIONS answered");
    assert!(answers.values().all(|&n| n == 1), "once each: {answers:?}");

    let m = pbx.http_get("/metrics");
    let handled = per_shard(&m, "handled");
    let new = [0, 1].map(|s| handled[s] - before_handled[s]);
    assert!(
        new.iter().all(|&n| n >= 15),
        "both shards own some of one socket's Call-IDs: {new:?}"
    );
    let handoff = per_shard(&m, "handoff_in");
    assert_eq!(
        [0, 1].map(|s| handoff[s] - before_handoff[s]),
        [0, 0],
        "no datagram handed between shards"
    );
    let steered = metric(&m, "shardpbx_sip_kernel_steered_total{result=\"steered\"}");
    assert!(
        steered - before_steered >= 60,
        "the program counted them: {before_steered} -> {steered}"
    );

    // A Call-ID past the bytes the program reads: the kernel's hash picks a
    // shard, and user space hands each one the program missed to its owner.
    let before_unsteered = metric(
        &m,
        "shardpbx_sip_kernel_steered_total{result=\"unsteered\"}",
    );
    let far: Vec<(String, String)> = (0..12)
        .map(|i| {
            let cid = format!("far-{i}@host");
            let m = options_with(&uac, "Call-ID: ", &cid, 2100);
            (cid, m)
        })
        .collect();
    let answers = send_all(&uac, &far);
    assert_eq!(answers.len(), far.len(), "every far OPTIONS answered once");
    let m = pbx.http_get("/metrics");
    let unsteered = metric(
        &m,
        "shardpbx_sip_kernel_steered_total{result=\"unsteered\"}",
    );
    assert!(
        unsteered - before_unsteered >= 12,
        "{before_unsteered} -> {unsteered}"
    );
    let handed: u64 = per_shard(&m, "handoff_in").iter().sum();
    assert!(
        handed > 0,
        "one socket lands on one shard, so some far ones were handed on"
    );
}

#[test]
fn without_bpf_rights_the_shards_hand_datagrams_on_and_say_so_once() {
    let Ok(capsh) = which("capsh") else {
        panic!("capsh missing: scripts/install-deps.sh installs libcap2-bin");
    };
    let pbx = Pbx::start(PbxOptions {
        shards: 2,
        launcher: vec![
            capsh,
            "--drop=cap_bpf,cap_sys_admin,cap_perfmon,cap_net_admin".into(),
            "--".into(),
            "-c".into(),
            "exec \"$0\" \"$@\"".into(),
        ],
        ..PbxOptions::default()
    });
    let m = pbx.http_get("/metrics");
    assert_eq!(
        metric(&m, "shardpbx_sip_steering{path=\"user\"}"),
        1,
        "{}",
        pbx.log_text()
    );
    let log = pbx.log_text();
    assert_eq!(
        log.matches("handed to their owner shard in user space")
            .count(),
        1,
        "logged once with the reason:\n{log}"
    );
    assert!(log.contains("refused"), "{log}");

    let uac = Uac::new(pbx.sip);
    let messages: Vec<(String, String)> = (0..40)
        .map(|i| {
            let cid = format!("user-{i}@host");
            let m = options_with(&uac, "Call-ID: ", &cid, 0);
            (cid, m)
        })
        .collect();
    let answers = send_all(&uac, &messages);
    assert_eq!(answers.len(), messages.len(), "every OPTIONS answered");
    assert!(answers.values().all(|&n| n == 1), "once each: {answers:?}");
    let m = pbx.http_get("/metrics");
    let handed: u64 = per_shard(&m, "handoff_in").iter().sum();
    assert!(handed >= 10, "one socket, two owners: handoffs {handed}");
}
