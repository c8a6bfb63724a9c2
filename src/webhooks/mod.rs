//! Webhooks out (API.md section 2), all on control-core threads: the HTTP
//! client they share, their `/metrics` counters, the dispatcher that
//! delivers from a durable LMDB queue, and the webhooks that use it: the
//! CDR push (HTTP or S3) and the locator events; and the two webhooks a
//! shard waits for, the user backend and the router.

pub mod cdr_push;
pub mod client;
pub mod dispatch;
pub mod locator;
pub mod multipart;
pub mod outbox;
pub mod router;
pub mod s3;
pub mod stats;
pub mod user_backend;

use std::sync::Arc;

use locator::EventQueue;
use outbox::{Outbox, PushState};
use stats::WebhookStats;

/// What the rest of the control core sees of the running webhooks:
/// `/metrics`, AMI health's backlog and the push state on call records.
#[derive(Clone, Default)]
pub struct WebhookViews {
    /// The CDR push's counters and outbox, when `[callrecord]` pushes.
    pub cdr_push: Option<(Arc<WebhookStats>, Outbox)>,
    /// The locator webhook's counters and queue, when configured.
    pub locator: Option<(Arc<WebhookStats>, EventQueue)>,
    /// The HTTP user backends' counters, when there are any.
    pub user_backend: Option<Arc<WebhookStats>>,
    /// The HTTP router's counters, when there is one.
    pub router: Option<Arc<WebhookStats>>,
}

impl WebhookViews {
    pub fn render_metrics(&self, out: &mut String) {
        let mut hooks: Vec<&WebhookStats> = Vec::new();
        hooks.extend(self.cdr_push.iter().map(|(s, _)| &**s));
        hooks.extend(self.locator.iter().map(|(s, _)| &**s));
        hooks.extend(self.user_backend.iter().map(|s| &**s));
        hooks.extend(self.router.iter().map(|s| &**s));
        stats::render_all(out, &hooks, |name| self.backlog_of(name));
    }

    fn backlog_of(&self, name: &str) -> Option<u64> {
        if let Some((s, outbox)) = &self.cdr_push {
            if s.name == name {
                return outbox.backlog().ok();
            }
        }
        if let Some((s, queue)) = &self.locator {
            if s.name == name {
                return queue.backlog().ok();
            }
        }
        None
    }

    /// Items waiting in every durable webhook queue.
    pub fn backlog(&self) -> u64 {
        let cdr = self.cdr_push.as_ref().and_then(|(_, o)| o.backlog().ok());
        let loc = self.locator.as_ref().and_then(|(_, q)| q.backlog().ok());
        cdr.unwrap_or(0) + loc.unwrap_or(0)
    }

    /// The push state of a call's CDR, when it was queued for a push.
    pub fn push_state(&self, call_id: &str) -> Option<PushState> {
        let (_, outbox) = self.cdr_push.as_ref()?;
        match outbox.state(call_id) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(call_id, "push state unreadable: {e}");
                None
            }
        }
    }
}
