//! Issue 14, overload, through the real binary: a burst of new INVITEs far
//! faster than the shard can serve them (each makes a call to a callee that
//! never answers) gets the excess answered 503 with Retry-After, statelessly
//! (no call made for them), while OPTIONS and requests that finish calls
//! (here a BYE) are still answered; `/metrics` counts what was shed; and
//! once the burst is worked off new calls are taken again. The shed delay
//! is configured small so that a test-sized burst triggers it. And callees
//! that stop answering (their INVITEs resent, unanswered) shed new calls
//! until they answer again.

mod common;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// INVITEs in the burst.
const BURST: usize = 1_000;

fn invite(me: std::net::SocketAddr, call_id: &str) -> String {
    format!(
        "INVITE sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:load@127.0.0.1>;tag=f-{call_id}\r\nTo: <sip:1002@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:load@{me}>\r\nContent-Length: 0\r\n\r\n",
        b = branch()
    )
}

/// Room for every answer of the burst in the load socket (as a real load
/// generator has): SO_RCVBUFFORCE where allowed, else SO_RCVBUF.
fn big_receive_buffer(sock: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let bytes: libc::c_int = 16 << 20;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: an int option on a socket this test owns.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// Everything the load socket receives, by Call-ID: the responses in order.
type Seen = Arc<Mutex<HashMap<String, Vec<Response>>>>;

/// Reads the socket until `stop`, filing responses by Call-ID.
fn reader(sock: UdpSocket, seen: Seen, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("SIP/2.0 ") {
                continue;
            }
            let r = Response::parse(&text);
            let cid = r.header("Call-ID").unwrap_or_default().to_string();
            seen.lock().unwrap().entry(cid).or_default().push(r);
        }
    })
}

/// The first response to `call_id` with a code in `codes`, waiting up to `limit`.
fn wait_for(seen: &Seen, call_id: &str, codes: &[u16], limit: Duration) -> Option<Response> {
    wait_until(limit, || {
        seen.lock()
            .unwrap()
            .get(call_id)?
            .iter()
            .find(|r| codes.contains(&r.code))
            .cloned()
    })
}

#[test]
fn a_burst_of_new_calls_is_shed_with_503_and_calls_are_taken_again_after_it() {
    burst_against(1);
}

/// Two shards: all the burst comes in on one shard's socket (one source),
/// which hands half of it to the other; the owner of each INVITE judges it.
#[test]
fn with_two_shards_the_owner_of_a_handed_over_invite_sheds_it_too() {
    burst_against(2);
}

fn burst_against(shards: usize) {
    let trunks = tempfile::tempdir().unwrap();
    let trunk_file = trunks.path().join("load.toml");
    std::fs::write(
        &trunk_file,
        "[trunks.loadgen]\ninbound_hosts = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    let pbx = Pbx::start(PbxOptions {
        shards,
        proxy_extra: format!(
            "routes_files = []\ntrunks_files = [\"{}\"]\nmedia_proxy = \"none\"\noverload_max_delay_ms = 5\noverload_max_stalled_invites = 0\noverload_retry_after_secs = 7",
            trunk_file.display()
        ),
        extra_tables: "[security]\ntrusted = [\"127.0.0.0/8\"]\n".into(),
        ..PbxOptions::default()
    });
    // The callee: registered, never answers (its INVITEs ring until the test ends).
    let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
    register_contact(
        &pbx,
        "1002",
        "secret1002",
        callee.local_addr().unwrap().port(),
    );

    let load = Uac::new(pbx.sip);
    big_receive_buffer(&load.sock);
    let me = load.local;
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let read = reader(load.sock.try_clone().unwrap(), seen.clone(), stop.clone());

    let burst: Vec<String> = (0..BURST)
        .map(|i| invite(me, &format!("ovl-{i}")))
        .collect();
    for msg in &burst {
        load.send(msg);
    }
    // Behind the burst in the same socket: an OPTIONS and a BYE (of no
    // dialog) must be answered, not shed.
    load.send(&options_request(&load, "ovl-options"));
    load.send(&format!(
        "BYE sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:load@127.0.0.1>;tag=f-bye\r\nTo: <sip:1002@127.0.0.1>;tag=gone\r\nCall-ID: ovl-bye\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        b = branch()
    ));

    // Every INVITE of the burst gets an answer: 100 Trying (taken) or 503.
    let answered = wait_until(Duration::from_secs(60), || {
        let s = seen.lock().unwrap();
        let n = (0..BURST)
            .filter(|i| s.contains_key(&format!("ovl-{i}")))
            .count();
        (n == BURST).then_some(n)
    });
    let options = wait_for(&seen, "ovl-options", &[200, 503], Duration::from_secs(10));
    let bye = wait_for(&seen, "ovl-bye", &[481, 503], Duration::from_secs(10));
    let (mut shed, mut taken) = (0u64, 0u64);
    {
        let s = seen.lock().unwrap();
        for i in 0..BURST {
            let Some(rs) = s.get(&format!("ovl-{i}")) else {
                continue;
            };
            let refused: Vec<&Response> = rs.iter().filter(|r| r.code == 503).collect();
            let tried = rs.iter().any(|r| r.code == 100);
            assert!(
                refused.is_empty() || !tried,
                "one INVITE both taken and shed: {rs:?}"
            );
            for r in &refused {
                assert_eq!(r.header("Retry-After"), Some("7"), "{}", r.raw);
            }
            shed += u64::from(!refused.is_empty());
            taken += u64::from(tried);
        }
    }
    assert_eq!(
        answered,
        Some(BURST),
        "INVITEs without an answer; shed {shed}, taken {taken}"
    );
    eprintln!("{shards} shard(s), burst of {BURST}: shed {shed}, taken {taken}");
    assert!(
        shed > 0,
        "nothing was shed: the burst did not overload the shard (taken {taken})"
    );
    assert!(taken > 0, "nothing was taken");
    assert_eq!(shed + taken, BURST as u64);
    assert_eq!(
        options.map(|r| r.code),
        Some(200),
        "OPTIONS during the burst"
    );
    assert_eq!(bye.map(|r| r.code), Some(481), "a BYE is never shed");

    // What was shed cost no call: the shard holds exactly the calls it took.
    assert_eq!(
        pbx.metric_sum("shardpbx_overload_shed_recv_backlog_total"),
        shed
    );
    assert_eq!(pbx.metric_sum("shardpbx_active_calls"), taken);

    // The burst is over: a new call is taken at once.
    load.send(&invite(me, "ovl-after"));
    let after = wait_for(&seen, "ovl-after", &[100, 503], Duration::from_secs(5));
    assert_eq!(
        after.map(|r| r.code),
        Some(100),
        "a new call after the burst"
    );
    let health = pbx.http_get("/ami/v1/health");
    let body = &health[health.find("\r\n\r\n").map_or(0, |i| i + 4)..];
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    for shard in 0..shards {
        let s = &json["shards"][shard];
        assert_eq!(s["shedding"], serde_json::Value::Null, "{json}");
        assert!(s["recvDelayMs"].is_u64(), "{json}");
    }

    stop.store(true, Ordering::Relaxed);
    read.join().unwrap();
    drop(callee);
}

/// A response to `request` (the raw text a callee got) with `code`.
fn answer(request: &str, code: u16, reason: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for line in request.split("\r\n").skip(1) {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" => out.push_str(&format!("{line}\r\n")),
            "to" => out.push_str(&format!("{line};tag=callee\r\n")),
            _ => {}
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

#[test]
fn callees_that_stop_answering_shed_new_calls_until_they_answer_again() {
    let trunks = tempfile::tempdir().unwrap();
    let trunk_file = trunks.path().join("load.toml");
    std::fs::write(
        &trunk_file,
        "[trunks.loadgen]\ninbound_hosts = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: format!(
            "routes_files = []\ntrunks_files = [\"{}\"]\nmedia_proxy = \"none\"\noverload_max_delay_ms = 0\noverload_max_stalled_invites = 5\noverload_retry_after_secs = 7",
            trunk_file.display()
        ),
        extra_tables: "[security]\ntrusted = [\"127.0.0.0/8\"]\n".into(),
        ..PbxOptions::default()
    });
    // The callee: registered, silent for now.
    let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
    callee
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    register_contact(
        &pbx,
        "1002",
        "secret1002",
        callee.local_addr().unwrap().port(),
    );
    let load = Uac::new(pbx.sip);
    let me = load.local;
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let read = reader(load.sock.try_clone().unwrap(), seen.clone(), stop.clone());

    // Eight calls are taken; their INVITEs to the callee go unanswered.
    for i in 0..8 {
        let id = format!("stall-{i}");
        load.send(&invite(me, &id));
        let r = wait_for(&seen, &id, &[100, 503], Duration::from_secs(5));
        assert_eq!(r.map(|r| r.code), Some(100), "call {i} is taken");
    }
    // Past T1 every one of them is resent: the callees are behind.
    let mut invites: HashMap<String, String> = HashMap::new();
    let mut copies: HashMap<String, u32> = HashMap::new();
    let resent = wait_until(Duration::from_secs(5), || {
        let mut buf = vec![0u8; 65536];
        if let Ok((n, _)) = callee.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("INVITE ") {
                let cid = text
                    .split("\r\n")
                    .find_map(|l| l.strip_prefix("Call-ID: "))
                    .unwrap_or_default()
                    .to_string();
                *copies.entry(cid.clone()).or_default() += 1;
                invites.insert(cid, text);
            }
        }
        (copies.len() == 8 && copies.values().all(|&n| n >= 2)).then_some(())
    });
    assert!(
        resent.is_some(),
        "every INVITE to the callee resent: {copies:?}"
    );
    load.send(&invite(me, "stall-new"));
    let shed = wait_for(&seen, "stall-new", &[100, 503], Duration::from_secs(5))
        .expect("an answer to the new INVITE");
    assert_eq!(shed.code, 503, "{}", shed.raw);
    assert_eq!(shed.header("Retry-After"), Some("7"));
    assert!(pbx.metric_sum("shardpbx_overload_shed_peer_backlog_total") >= 1);
    let health = pbx.http_get("/ami/v1/health");
    assert!(health.contains("\"peerBacklog\""), "{health}");

    // The callee answers every INVITE it got: new calls are taken again.
    assert_eq!(invites.len(), 8, "the callee got the eight INVITEs");
    for text in invites.values() {
        callee
            .send_to(answer(text, 180, "Ringing").as_bytes(), pbx.sip)
            .unwrap();
    }
    // The shard reads them before the next INVITE on its socket.
    std::thread::sleep(Duration::from_millis(200));
    load.send(&invite(me, "stall-after"));
    let after = wait_for(&seen, "stall-after", &[100, 503], Duration::from_secs(5));
    assert_eq!(
        after.map(|r| r.code),
        Some(100),
        "taken once the callee answers"
    );

    stop.store(true, Ordering::Relaxed);
    read.join().unwrap();
}
