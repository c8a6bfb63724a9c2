//! Throughput of the HTTP router's dispatcher (issue: at least 5,000 router
//! requests/s on this machine): `RouterQuery`s go through the real control
//! core pool (`shardpbx::webhooks::router`: JSON, ureq with connection
//! reuse, answer parsing) to a router that answers at once
//! (`perf/router_hook.rs`, in this process), and the decisions are taken
//! from a shard inbox as a shard would. Reports requests/s and the CPU of
//! the whole process per request (the router stand-in included).
//!
//! cargo bench --bench router_dispatch
#![allow(unsafe_code)] // Reads CPU clocks with libc.

#[path = "../perf/router_hook.rs"]
#[allow(dead_code)]
mod hook;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use shardpbx::config::HttpRouterConfig;
use shardpbx::webhooks::{router, stats::WebhookStats};
use shards::routing::http_router::{RouterDecision, RouterQuery};
use shards::runtime::{Inbox, ShardMsg};

const PER_ROUND: u64 = 20_000;

fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: plain libc query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let body =
        r#"{"action": "forward", "targets": ["sip:1002@127.0.0.1"], "strategy": "parallel"}"#;
    std::thread::spawn(move || hook::serve(listener, body.to_string()));

    let inbox = Arc::new(Inbox::new().expect("inbox"));
    let (tx, rx) = crossbeam_channel::bounded(65_536);
    let cfg = HttpRouterConfig {
        url: format!("http://127.0.0.1:{port}/route"),
        fallback_to_static: true,
        timeout_ms: 2000,
        headers: Default::default(),
    };
    let stats = Arc::new(WebhookStats::new("router"));
    router::start(cfg, rx, Arc::new(vec![inbox.clone()]), stats).expect("router pool");
    let request = json!({
        "call_id": "a84b4c76e66710@10.0.0.5", "from": "<sip:1001@pbx.test>;tag=1928301774",
        "to": "<sip:1002@pbx.test>", "source_addr": "127.0.0.1:5070", "direction": "internal",
        "method": "INVITE", "uri": "sip:1002@pbx.test",
        "headers": {"Via": "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds", "User-Agent": "sipp",
                    "Max-Forwards": "70", "Contact": "<sip:1001@127.0.0.1:5070>", "Content-Type": "application/sdp"},
        "body": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n",
    });
    for round in 0..3 {
        let (t0, c0) = (Instant::now(), cpu_secs());
        let sender = {
            let (tx, request) = (tx.clone(), request.clone());
            std::thread::spawn(move || {
                for token in 0..PER_ROUND {
                    let q = RouterQuery {
                        shard: 0,
                        token,
                        request: request.clone(),
                    };
                    if tx.send(q).is_err() {
                        return;
                    }
                }
            })
        };
        let (mut answered, mut forwards) = (0u64, 0u64);
        let deadline = t0 + Duration::from_secs(60);
        while answered < PER_ROUND && Instant::now() < deadline {
            match inbox.pop() {
                Some(ShardMsg::RouteAnswer { decision, .. }) => {
                    answered += 1;
                    forwards += u64::from(matches!(decision, RouterDecision::Forward(_)));
                }
                Some(_) => {}
                None => std::thread::sleep(Duration::from_micros(200)),
            }
        }
        let _ = sender.join();
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_secs() - c0;
        println!(
            "round {round}: {answered} answers ({forwards} forward) in {secs:.2} s = {:.0} router requests/s; process CPU {:.1} us per request",
            answered as f64 / secs,
            cpu * 1e6 / answered.max(1) as f64
        );
    }
}
