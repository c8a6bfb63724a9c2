//! The HTTP router (`[proxy.http_router]`, API.md 2.1) on control-core
//! threads: each new INVITE's question (built on its shard) is POSTed as
//! JSON; the answer body is parsed on the shard side's terms
//! ([`RouterDecision::parse`]) and goes back to the asking shard's inbox.
//! A timeout, a connection error, a non-2xx or an unusable body is a
//! `Failed` decision: the shard falls back to static routes or answers 503.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use shards::routing::http_router::{RouterDecision, RouterQuery};
use shards::runtime::{Inbox, ShardMsg};

use super::client::{agent, spawn_pool, Failure};
use super::stats::{ErrorKind, WebhookStats};
use crate::config::HttpRouterConfig;

/// Requests in flight at once.
const WORKERS: usize = 8;
/// The largest answer body read.
const MAX_BODY: u64 = 256 << 10;

struct Router {
    cfg: HttpRouterConfig,
    agent: ureq::Agent,
    inboxes: Arc<Vec<Arc<Inbox>>>,
    stats: Arc<WebhookStats>,
}

pub fn start(
    cfg: HttpRouterConfig,
    queries: Receiver<RouterQuery>,
    inboxes: Arc<Vec<Arc<Inbox>>>,
    stats: Arc<WebhookStats>,
) -> std::io::Result<()> {
    let router = Arc::new(Router {
        agent: agent(Duration::from_millis(cfg.timeout_ms)),
        cfg,
        inboxes,
        stats,
    });
    spawn_pool("router", WORKERS, queries, move |q: RouterQuery| {
        let decision = router.ask(&q);
        if let Some(inbox) = router.inboxes.get(q.shard) {
            inbox.push(ShardMsg::RouteAnswer {
                token: q.token,
                decision,
            });
        }
    })
}

impl Router {
    fn ask(&self, q: &RouterQuery) -> RouterDecision {
        let call_id = q.request["call_id"].as_str().unwrap_or_default();
        let fail = |f: Failure| {
            self.stats.failed(f.kind, &format!("call {call_id}: {f}"));
            RouterDecision::Failed(f.to_string())
        };
        let body = match serde_json::to_vec(&q.request) {
            Ok(b) => b,
            Err(e) => return fail(Failure::new(ErrorKind::Local, e.to_string())),
        };
        let mut req = self
            .agent
            .post(&self.cfg.url)
            .header("Content-Type", "application/json");
        for (name, value) in &self.cfg.headers {
            req = req.header(name, value);
        }
        let started = Instant::now();
        let reply = req.send(&body[..]);
        let mut reply = match reply {
            Ok(r) => r,
            Err(e) => {
                self.stats.observe(started.elapsed());
                return fail(Failure::from(e));
            }
        };
        let status = reply.status();
        let text = reply.body_mut().with_config().limit(MAX_BODY).read_to_vec();
        self.stats.observe(started.elapsed());
        if !status.is_success() {
            return fail(Failure::status(status.as_u16()));
        }
        let text = match text {
            Ok(t) => t,
            Err(e) => return fail(Failure::from(e)),
        };
        match RouterDecision::parse(&text) {
            RouterDecision::Failed(why) => fail(Failure::new(ErrorKind::Protocol, why)),
            decision => decision,
        }
    }
}
