//! Webhooks out (API.md section 2), all on control-core threads: the HTTP
//! client they share, their `/metrics` counters, and the CDR push with its
//! durable outbox in LMDB.

pub mod cdr_push;
pub mod client;
pub mod multipart;
pub mod outbox;
pub mod s3;
pub mod stats;

use std::sync::Arc;

use outbox::{Outbox, PushState};
use stats::WebhookStats;

/// What the rest of the control core sees of the running webhooks:
/// `/metrics`, AMI health's backlog and the push state on call records.
#[derive(Clone, Default)]
pub struct WebhookViews {
    /// The CDR push's counters and outbox, when `[callrecord]` pushes.
    pub cdr_push: Option<(Arc<WebhookStats>, Outbox)>,
}

impl WebhookViews {
    pub fn render_metrics(&self, out: &mut String) {
        let hooks: Vec<&WebhookStats> = self.cdr_push.iter().map(|(s, _)| &**s).collect();
        stats::render_all(out, &hooks, |name| match &self.cdr_push {
            Some((s, outbox)) if s.name == name => outbox.backlog().ok(),
            _ => None,
        });
    }

    /// Items waiting in every durable webhook queue.
    pub fn backlog(&self) -> u64 {
        self.cdr_push
            .as_ref()
            .and_then(|(_, o)| o.backlog().ok())
            .unwrap_or(0)
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
