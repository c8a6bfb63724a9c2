//! SIP over TCP (RFC 3261 section 18) through the real binary: sipp over
//! TCP registers and calls, a phone registered over TCP is called over the
//! very connection it registered on and goes `offline` when that
//! connection closes, and hostile streams (garbage, a 2 GB Content-Length,
//! a slow sender, a flood of idle connections) cost their own connection
//! only.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::stream_phone::*;
use common::webhook::WebhookServer;
use common::*;

/// A server with TCP on its own port (2 shards: messages cross shards).
fn pbx_tcp(extra: &str) -> (Pbx, SocketAddr) {
    let tcp = free_port();
    let pbx = Pbx::start(PbxOptions {
        shards: 2,
        proxy_extra: format!("tcp_port = {tcp}\n{extra}"),
        ..PbxOptions::default()
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], tcp));
    (pbx, addr)
}

#[test]
fn sipp_registers_and_calls_over_tcp() {
    let (pbx, tcp) = pbx_tcp("");
    let target = tcp.to_string();
    let reg = sipp_register_to(pbx.dir(), &target, &["-t", "t1"], "127.0.0.1");
    assert_sipp_ok(&reg, "register over tcp");
    // A TCP caller to a UDP callee: the legs mix transports.
    let uas_port = free_port();
    let uas = sipp_peer(uas_port, pbx.dir(), "uas");
    register_contact(&pbx, "1002", "secret1002", uas_port);
    let out = sipp_caller_to(&target, &["-t", "t1"], UAC_AUTH, "1002");
    assert_sipp_ok(&out, "caller over tcp");
    assert!(uas.wait(Duration::from_secs(10)).success(), "udp callee");
    let cdr = first_cdr(&pbx);
    assert_eq!(cdr["status"], "completed", "{cdr}");
    assert!(pbx.metric_sum("shardpbx_rx_stream_messages_total") >= 7);
}

#[test]
fn a_tcp_phone_is_called_over_its_connection_and_goes_offline_when_it_closes() {
    let hook = WebhookServer::start();
    let (pbx, tcp) = pbx_tcp(&format!(
        "[proxy.locator_webhook]\nurl = \"{}\"\nretry_initial_ms = 100\nretry_max_secs = 1\n",
        hook.url("/locator")
    ));
    let mut phone = StreamPhone::connect(tcp);
    // The Contact names a port nobody listens on: only the connection
    // reaches the phone.
    let r = phone.register("1002", "<sip:1002@127.0.0.1:9;transport=tcp>");
    assert_eq!(r.code, 200, "{}", r.raw);
    let answering = phone.answer_a_call();
    let out = sipp_caller(&pbx, UAC_AUTH, "1002");
    assert_sipp_ok(&out, "udp caller");
    let (phone, got) = answering.join().unwrap();
    let got: Vec<&str> = got.iter().map(|m| m.lines().next().unwrap_or("")).collect();
    assert!(got[0].starts_with("INVITE sip:1002@127.0.0.1:9"), "{got:?}");
    assert!(got.iter().any(|l| l.starts_with("ACK ")), "{got:?}");
    assert!(got.iter().any(|l| l.starts_with("BYE ")), "{got:?}");
    // The connection goes: so does the binding, and the webhook hears it.
    drop(phone);
    let events = hook.wait_for(Duration::from_secs(10), |reqs| {
        reqs.iter().any(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body)
                .is_ok_and(|b| b["event"] == "offline")
        })
    });
    let offline: Vec<serde_json::Value> = events
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .filter(|b| b["event"] == "offline")
        .collect();
    assert_eq!(offline.len(), 1, "{offline:?}");
    assert_eq!(offline[0]["location"]["transport"], "TCP");
    assert_eq!(offline[0]["location"]["aor"], "sip:1002@pbx.test");
    let r = call_by_hand(&pbx, "1002", "after-close");
    assert_eq!(r.code, 480, "the binding is gone: {}", r.raw);
}

#[test]
fn hostile_streams_cost_only_their_own_connection() {
    let (pbx, tcp) = pbx_tcp("tcp_idle_secs = 3\ntcp_max_connections_per_ip = 20");

    // Garbage: no Content-Length can be found, the connection is closed.
    let mut garbage = StreamPhone::connect(tcp);
    garbage.send("GARBAGE sip:x SIP/2.0\r\nX: y\r\n\r\n\0\0\0\u{7f}");
    assert!(garbage.closed_within(Duration::from_secs(3)), "garbage");

    // A 2 GB Content-Length: closed before any body is read.
    let mut huge = StreamPhone::connect(tcp);
    huge.send("INVITE sip:1002@pbx.test SIP/2.0\r\nContent-Length: 2147483648\r\n\r\n");
    assert!(huge.closed_within(Duration::from_secs(3)), "2 GB body");

    // A slow sender: a byte every 300 ms keeps the connection busy but
    // the message never completes; closed after the message time (here
    // the 3 s idle time).
    let mut slow = StreamPhone::connect(tcp);
    let started = Instant::now();
    let mut closed = false;
    let partial =
        b"OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/TCP 1.2.3.4;branch=z9hG4bKslow\r\n";
    for b in partial {
        if slow.wire.write_all(&[*b]).is_err() || slow.closed_within(Duration::from_millis(300)) {
            closed = true;
            break;
        }
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    assert!(
        closed,
        "slow sender still connected after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "closed too early"
    );

    // A phone that behaves, then a flood of 10 000 idle connections from
    // the same source: past the per-source limit (per shard) they are
    // closed at once, and the shard is not held up by them.
    let mut good = StreamPhone::connect(tcp);
    raise_fd_limit(10_200);
    let flood: Vec<StreamPhone> = (0..10_000).map(|_| StreamPhone::connect(tcp)).collect();
    let refused = wait_until(Duration::from_secs(10), || {
        let n = pbx.metric_sum("shardpbx_tcp_refused_total");
        (n >= 10_000 - 2 * 20).then_some(n)
    });
    assert!(
        refused.is_some(),
        "per-source limit: {} refused",
        pbx.metric_sum("shardpbx_tcp_refused_total")
    );

    // Meanwhile the phone and UDP are answered.
    let r = good.register("1001", "<sip:1001@127.0.0.1:9;transport=tcp>");
    assert_eq!(r.code, 200, "{}", r.raw);
    let uac = Uac::new(pbx.sip);
    let r = uac.request(&options_request(&uac, "udp-during-flood"));
    assert_eq!(r.code, 200);

    // CRLF keep-alives are answered and keep the phone's connection up
    // past the idle time, while the idle flood is closed.
    for _ in 0..5 {
        good.send("\r\n\r\n");
        let mut pong = [0u8; 2];
        good.wire
            .tcp()
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        good.wire.read_exact(&mut pong).expect("pong");
        assert_eq!(&pong, b"\r\n");
        std::thread::sleep(Duration::from_millis(1000));
    }
    let idle_closed = wait_until(Duration::from_secs(5), || {
        (pbx.metric_sum("shardpbx_tcp_timed_out_total") >= 30).then_some(())
    });
    assert!(
        idle_closed.is_some(),
        "idle connections were not closed: {}",
        pbx.metric_sum("shardpbx_tcp_timed_out_total")
    );
    drop(flood);
    let r = good.options("tcp-opt-1");
    assert_eq!(r.code, 200, "{}", r.raw);
}

#[test]
fn bindings_on_connections_do_not_survive_a_restart() {
    let (mut pbx, tcp) = pbx_tcp("");
    let mut phone = StreamPhone::connect(tcp);
    let r = phone.register("1002", "<sip:1002@127.0.0.1:9;transport=tcp>");
    assert_eq!(r.code, 200, "{}", r.raw);
    let udp_port = free_port();
    register_contact(&pbx, "1001", "secret1001", udp_port);
    pbx.crash();
    drop(phone);
    pbx.start_again();
    // The connection died with the process: the phone is not reachable
    // until it registers again; the UDP binding stays.
    let r = call_by_hand(&pbx, "1002", "after-restart");
    assert_eq!(r.code, 480, "{}", r.raw);
    let out = pbx.cli(&["registrations", "list", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sip:1001@"), "{text}");
    assert!(!text.contains("sip:1002@"), "{text}");
}

#[test]
fn a_register_replayed_over_other_connections_or_udp_is_refused() {
    // A stream's REGISTER is answered on the shard of its connection; nonces
    // are per shard, so a captured REGISTER does not pass on another shard.
    let (pbx, tcp) = pbx_tcp("");
    let mut phone = StreamPhone::connect(tcp);
    let r = phone.register("1001", "<sip:1001@127.0.0.1:9;transport=tcp>");
    assert_eq!(r.code, 200, "{}", r.raw);
    let captured = phone.last_sent.clone();
    assert!(captured.contains("Authorization: Digest"));
    // Over new connections (spread over both shards by the kernel) and over
    // UDP (the Call-ID's owner shard): never a 200. On the shard that
    // answered it, the copy is a retransmission (its cached answer goes to
    // the phone, not to the thief); elsewhere the nonce is not that shard's
    // (401 stale).
    let refused = |r: Option<String>, what: &str| {
        if let Some(text) = r {
            assert!(!text.starts_with("SIP/2.0 200"), "{what}: {text}");
        }
    };
    for i in 0..8 {
        let mut thief = StreamPhone::connect(tcp);
        thief.send(&captured);
        refused(thief.recv(Duration::from_secs(1)), &format!("replay {i}"));
    }
    let uac = Uac::new(pbx.sip);
    uac.send(&captured.replace("SIP/2.0/TCP", "SIP/2.0/UDP"));
    refused(uac.recv(Duration::from_secs(2)), "replay over udp");
    // One binding, the phone's, as registered.
    let out = pbx.cli(&["registrations", "list", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["transport"], "TCP", "{list:?}");
}

/// Lets this test process hold `want` descriptors (the soft limit up to
/// the hard one), for the flood's client side.
#[allow(unsafe_code)]
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    assert!(
        lim.rlim_cur >= want,
        "the flood needs {want} descriptors; the hard limit is {}",
        lim.rlim_max
    );
}
