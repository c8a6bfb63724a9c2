//! The store's room through the real binary (`[store]`): the LMDB map grows
//! past its initial size up to the disk budget; near the budget new INVITEs
//! get 503 while REGISTER still works and every call that happened keeps
//! its CDR; retention deletes old SIP flows, then old CDRs; `/metrics` and
//! AMI health show the figures.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

fn header_line<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split("\r\n").find(|l| {
        l.split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
    })
}

/// A response to `req` copying Via, From, Call-ID and CSeq.
fn response_to(req: &str, code: u16, reason: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for l in req.split("\r\n") {
        if let Some((n, _)) = l.split_once(':') {
            let n = n.trim();
            if ["Via", "From", "Call-ID", "CSeq"]
                .iter()
                .any(|h| h.eq_ignore_ascii_case(n))
            {
                out.push_str(l);
                out.push_str("\r\n");
            }
        }
    }
    let to = header_line(req, "To").unwrap_or("To: <sip:x@x>");
    out.push_str(to);
    if !to.contains("tag=") {
        out.push_str(";tag=busy");
    }
    out.push_str("\r\nContent-Length: 0\r\n\r\n");
    out
}

/// 1002 registered from a socket that answers every INVITE 486, so each
/// call ends at once with a CDR and a SIP flow.
struct BusyPhone {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BusyPhone {
    fn register(pbx: &Pbx) -> BusyPhone {
        let uac = Uac::new(pbx.sip);
        let r = register_with_auth(
            &uac,
            "1002",
            "secret1002",
            "busy-reg",
            1,
            &format!("<sip:1002@{}>", uac.local),
            Some(600),
        );
        assert_eq!(r.code, 200, "{}", r.raw);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sock: UdpSocket = uac.sock;
        let thread = std::thread::spawn(move || {
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut buf = vec![0u8; 65536];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.starts_with("INVITE ") {
                    let _ = sock.send_to(response_to(&text, 486, "Busy Here").as_bytes(), from);
                }
            }
        });
        BusyPhone {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BusyPhone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The ACK of a non-2xx final answer to `invite`.
fn ack_for(uac: &Uac, invite: &str, resp: &Response) {
    let first = |name: &str| header_line(invite, name).unwrap_or_default().to_string();
    let ruri = invite
        .split("\r\n")
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_default();
    let to = resp.header("To").unwrap_or_default();
    let seq = resp
        .header("CSeq")
        .and_then(|c| c.split(' ').next())
        .unwrap_or("1");
    uac.send(&format!(
        "ACK {ruri} SIP/2.0\r\n{}\r\nMax-Forwards: 70\r\n{}\r\nTo: {to}\r\n{}\r\nCSeq: {seq} ACK\r\nContent-Length: 0\r\n\r\n",
        first("Via"),
        first("From"),
        first("Call-ID"),
    ));
}

/// `len` letters no compressor shrinks (stored SIP flows are compressed),
/// different for each call.
fn noise(len: usize, seed: &str) -> String {
    let mut x = seed.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// A call from 1001 to `to` with a padded INVITE (so its SIP flow is
/// large); returns the final answer's code (503 when refused before auth).
fn call(uac: &Uac, to: &str, call_id: &str, pad: usize) -> u16 {
    let invite = |cseq: u32, auth: Option<String>| {
        format!(
            "INVITE sip:{to}@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=s{cseq}\r\nTo: <sip:{to}@pbx.test>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:1001@{me}>\r\nSubject: {pad}\r\n{auth}Content-Length: 0\r\n\r\n",
            me = uac.local,
            b = branch(),
            pad = noise(pad, call_id),
            auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default()
        )
    };
    let first = invite(1, None);
    let ch = uac.request(&first);
    ack_for(uac, &first, &ch);
    if ch.code != 407 {
        return ch.code;
    }
    let auth = digest_auth(
        ch.header("Proxy-Authenticate").unwrap(),
        "1001",
        "secret1001",
        "INVITE",
        &format!("sip:{to}@pbx.test"),
        1,
    );
    let second = invite(2, Some(auth));
    uac.send(&second);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(text) = uac.recv(Duration::from_millis(500)) {
            let r = Response::parse(&text);
            if r.code >= 200 && r.header("CSeq").is_some_and(|c| c.starts_with("2 ")) {
                ack_for(uac, &second, &r);
                return r.code;
            }
        }
    }
    panic!("no final answer to the INVITE of {call_id}");
}

/// A gauge's value in `/metrics`.
fn metric(pbx: &Pbx, name: &str) -> u64 {
    let text = pbx.http_get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

fn cdr_ids(pbx: &Pbx) -> Vec<String> {
    let out = pbx.cli(&["cdr", "list", "--json", "--limit", "100000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.iter()
        .filter_map(|c| c["callId"].as_str().map(str::to_string))
        .collect()
}

/// Calls 1002 (busy) with ~11 KB of SIP flow per call until a new INVITE
/// gets 503; returns the Call-IDs of the calls that happened. The tests
/// that fill trust 127.0.0.0/8: hundreds of requests a second from one
/// address is otherwise a flood ([security] flood_requests_per_sec), whose
/// source is banned (dropped) part-way. Bounded:
/// rounds of 100 calls, at most 8 rounds or 45 s; a shard hands flows over
/// a few seconds after their calls end, so each round waits for them (or
/// for the refusal). About two rounds fill 2 MiB.
fn fill_until_refused(pbx: &Pbx, uac: &Uac, tag: &str) -> Vec<String> {
    let mut accepted = Vec::new();
    // A call that arrives in the instant the writer grows the map finds
    // the store busy: 503 "Store Busy" with Retry-After (never 480: the
    // callee is registered). Told apart from the store refusing calls.
    let mut busy = 0;
    let deadline = Instant::now() + Duration::from_secs(45);
    for round in 0..8 {
        for i in 0..100 {
            assert!(Instant::now() < deadline, "still no 503 in round {round}");
            let id = format!("{tag}-{round}-{i}@test");
            match call(uac, "1002", &id, 8000) {
                486 => accepted.push(id),
                503 if busy < 5 && metric(pbx, "shardpbx_store_refusing_calls") == 0 => busy += 1,
                503 => {
                    assert!(
                        accepted.len() > 50,
                        "refused after only {} calls",
                        accepted.len()
                    );
                    return accepted;
                }
                other => panic!("call {id}: unexpected {other}"),
            }
        }
        let used = metric(pbx, "shardpbx_store_used_bytes");
        wait_until(Duration::from_secs(8), || {
            (metric(pbx, "shardpbx_store_used_bytes") > used + (500 << 10)
                || metric(pbx, "shardpbx_store_refusing_calls") == 1)
                .then_some(())
        });
    }
    panic!("the store never filled");
}

#[test]
fn the_map_grows_to_the_budget_then_new_calls_get_503_while_register_and_every_cdr_survive() {
    let mut pbx = Pbx::start(PbxOptions {
        extra_tables:
            "[store]\nmap_size_mib = 1\nmax_disk_mib = 2\n[security]\ntrusted = [\"127.0.0.0/8\"]\n"
                .into(),
        ..PbxOptions::default()
    });
    assert_eq!(metric(&pbx, "shardpbx_store_map_bytes"), 1 << 20);
    assert_eq!(metric(&pbx, "shardpbx_store_budget_bytes"), 2 << 20);
    assert_eq!(metric(&pbx, "shardpbx_store_refusing_calls"), 0);
    let _phone = BusyPhone::register(&pbx);
    let uac = Uac::new(pbx.sip);
    let accepted = fill_until_refused(&pbx, &uac, "fill");
    // The map grew past its initial size, to the budget and not beyond.
    assert_eq!(metric(&pbx, "shardpbx_store_map_bytes"), 2 << 20);
    assert_eq!(metric(&pbx, "shardpbx_store_refusing_calls"), 1);
    let live = metric(&pbx, "shardpbx_store_live_bytes");
    assert!(live >= (2 << 20) / 8 * 6, "live {live}");
    assert!(metric(&pbx, "shardpbx_store_used_bytes") <= 2 << 20);
    let health: serde_json::Value = {
        let raw = pbx.http_get("/ami/v1/health");
        serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap()
    };
    assert_eq!(health["store"]["mapBytes"], 2 << 20);
    assert_eq!(health["store"]["budgetBytes"], 2 << 20);
    assert_eq!(health["store"]["refusingCalls"], true);
    assert!(health["store"]["usedBytes"].as_u64().unwrap() > 1 << 20);

    // New calls keep being refused, with a Retry-After; the log says why.
    let again = uac.request(&format!(
        "INVITE sip:1002@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=x\r\nTo: <sip:1002@pbx.test>\r\nCall-ID: refused@test\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@{me}>\r\nContent-Length: 0\r\n\r\n",
        me = uac.local,
        b = branch()
    ));
    assert_eq!(again.code, 503, "{}", again.raw);
    assert!(again.header("Retry-After").is_some());
    let log = pbx.log_text();
    assert!(log.contains("new calls are refused"), "{log}");
    assert!(log.contains("store: map grown"), "{log}");

    // The CLI opening the store read-write (a token) with the configured
    // 1 MiB map leaves the grown file whole under the running server.
    let data = pbx.dir().join("data/lmdb/data.mdb");
    assert_eq!(std::fs::metadata(&data).unwrap().len(), 2 << 20);
    let _token = api_token(&pbx, "read");
    assert_eq!(std::fs::metadata(&data).unwrap().len(), 2 << 20);

    // Registrations still work: a new contact is stored and listed.
    let reg = Uac::new(pbx.sip);
    let r = register_with_auth(
        &reg,
        "1001",
        "secret1001",
        "reg-when-full",
        1,
        &format!("<sip:1001@{}>", reg.local),
        Some(600),
    );
    assert_eq!(r.code, 200, "{}", r.raw);
    let out = pbx.cli(&[
        "registrations",
        "list",
        "--json",
        "--aor",
        "sip:1001@pbx.test",
    ]);
    let regs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        regs.iter().any(|b| b["contact"]
            .as_str()
            .is_some_and(|c| c.contains(&reg.local.to_string()))),
        "{regs:?}"
    );

    // Every call that happened kept its CDR; the refused ones made none.
    let ids = cdr_ids(&pbx);
    let missing: Vec<&String> = accepted.iter().filter(|id| !ids.contains(id)).collect();
    assert!(missing.is_empty(), "CDRs lost: {missing:?}");
    assert!(!ids.iter().any(|id| id == "refused@test"));
    assert!(!pbx.log_text().contains("CDR(s) not stored"));
    // The flows of the last calls, handed over after the store filled, are
    // dropped (counted) rather than take the room kept for records.
    wait_until(Duration::from_secs(8), || {
        (metric(&pbx, "shardpbx_store_flows_dropped_total") > 0).then_some(())
    })
    .expect("flows dropped when full");
    assert!(metric(&pbx, "shardpbx_store_used_bytes") <= 2 << 20);
    assert!(!pbx.log_text().contains("CDR(s) not stored"));

    // After a restart the map keeps its grown size and calls stay refused.
    pbx.restart();
    assert_eq!(metric(&pbx, "shardpbx_store_map_bytes"), 2 << 20);
    assert_eq!(metric(&pbx, "shardpbx_store_refusing_calls"), 1);
    assert_eq!(cdr_ids(&pbx).len(), ids.len());
}

#[test]
fn retention_deletes_old_flows_then_old_cdrs() {
    // 0.0001 days = 8.6 s for flows, 0.0002 days = 17 s for CDRs: room for
    // a flow to be stored (it lingers 4 s for late messages first) and
    // seen before it goes, even on a loaded machine.
    let pbx = Pbx::start(PbxOptions {
        extra_tables: "[store]\ncdr_retention_days = 0.0002\nflow_retention_days = 0.0001\n".into(),
        ..PbxOptions::default()
    });
    let _phone = BusyPhone::register(&pbx);
    let uac = Uac::new(pbx.sip);
    assert_eq!(call(&uac, "1002", "old@test", 100), 486);
    let token = api_token(&pbx, "read");
    let auth = format!("Authorization: Bearer {token}\r\n");
    let flow = |id: &str| {
        http_request(
            &pbx,
            "GET",
            &format!("/console/call-records/{id}/sip-flow"),
            &auth,
            "",
        )
        .0
    };
    let stored = Instant::now();
    wait_until(Duration::from_secs(8), || {
        (flow("old%40test") == 200).then_some(())
    })
    .expect("the flow is stored");
    assert!(cdr_ids(&pbx).contains(&"old@test".to_string()));
    // The flow goes after ~8.6 s; its CDR stays.
    wait_until(Duration::from_secs(15), || {
        (flow("old%40test") == 404).then_some(())
    })
    .expect("the old flow was not deleted");
    assert!(stored.elapsed() >= Duration::from_secs(2));
    assert!(
        cdr_ids(&pbx).contains(&"old@test".to_string()),
        "CDR kept longer"
    );
    // A newer call keeps both while the old CDR goes after ~17 s.
    assert_eq!(call(&uac, "1002", "new@test", 100), 486);
    wait_until(Duration::from_secs(25), || {
        (!cdr_ids(&pbx).contains(&"old@test".to_string())).then_some(())
    })
    .expect("the old CDR was not deleted");
    assert!(stored.elapsed() >= Duration::from_secs(8));
    let ids = cdr_ids(&pbx);
    assert!(ids.contains(&"new@test".to_string()), "{ids:?}");
    assert!(pbx.log_text().contains("retention: old CDRs deleted"));
}

#[test]
fn when_retention_frees_room_new_calls_are_admitted_again() {
    // 0.0002 days = 17.3 s for CDRs and flows alike.
    let pbx = Pbx::start(PbxOptions {
        extra_tables: "[store]\nmap_size_mib = 1\nmax_disk_mib = 2\ncdr_retention_days = 0.0002\nflow_retention_days = 0.0002\n[security]\ntrusted = [\"127.0.0.0/8\"]\n".into(),
        ..PbxOptions::default()
    });
    let _phone = BusyPhone::register(&pbx);
    let uac = Uac::new(pbx.sip);
    let accepted = fill_until_refused(&pbx, &uac, "early");
    assert_eq!(metric(&pbx, "shardpbx_store_refusing_calls"), 1);
    // The oldest calls age out, live data falls under 3/4 of the budget,
    // and calls are admitted again (with the map still at the budget).
    wait_until(Duration::from_secs(25), || {
        (metric(&pbx, "shardpbx_store_refusing_calls") == 0).then_some(())
    })
    .expect("calls never admitted again");
    assert!(pbx
        .log_text()
        .contains("store: room again; new calls admitted"));
    assert_eq!(call(&uac, "1002", "later@test", 100), 486);
    assert_eq!(metric(&pbx, "shardpbx_store_map_bytes"), 2 << 20);
    let ids = cdr_ids(&pbx);
    assert!(!ids.contains(&accepted[0]), "the oldest CDR aged out");
    wait_until(Duration::from_secs(5), || {
        cdr_ids(&pbx)
            .contains(&"later@test".to_string())
            .then_some(())
    })
    .expect("the new call's CDR");
}
