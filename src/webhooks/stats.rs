//! What `/metrics` shows of each webhook: requests, a latency histogram,
//! errors by kind, and (for queued webhooks) the backlog. Failures are also
//! logged, at most once per [`LOG_EVERY`] per webhook, with the count since.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Why a webhook request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer within the timeout.
    Timeout,
    /// No connection (refused, unreachable, name not found).
    Connect,
    /// An answer with a status that is not a success.
    Status,
    /// An answer that could not be used (body, protocol).
    Protocol,
    /// Our side: a file to send could not be read.
    Local,
    /// Undelivered until its queue gave up on it (too old).
    Expired,
}

const KINDS: [ErrorKind; 6] = [
    ErrorKind::Timeout,
    ErrorKind::Connect,
    ErrorKind::Status,
    ErrorKind::Protocol,
    ErrorKind::Local,
    ErrorKind::Expired,
];

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Status => "status",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Local => "local",
            ErrorKind::Expired => "expired",
        }
    }
}

/// How often a failing webhook is logged.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The counters of one webhook.
pub struct WebhookStats {
    pub name: &'static str,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
    errors: [AtomicU64; KINDS.len()],
    /// (last log, failures not logged since).
    log: Mutex<(Option<Instant>, u64)>,
}

impl WebhookStats {
    pub fn new(name: &'static str) -> WebhookStats {
        WebhookStats {
            name,
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            errors: Default::default(),
            log: Mutex::new((None, 0)),
        }
    }

    /// One request that got an answer or failed after `took`.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// A failure: counted, and logged unless one was logged recently.
    pub fn failed(&self, kind: ErrorKind, what: &str) {
        if let Some(i) = KINDS.iter().position(|k| *k == kind) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
        let Ok(mut log) = self.log.lock() else {
            return;
        };
        let now = Instant::now();
        if log.0.is_some_and(|at| now.duration_since(at) < LOG_EVERY) {
            log.1 += 1;
            return;
        }
        let since = std::mem::take(&mut log.1);
        log.0 = Some(now);
        drop(log);
        tracing::warn!(
            webhook = self.name,
            kind = kind.as_str(),
            more_since_last_log = since,
            "webhook failed: {what}"
        );
    }

    pub fn errors(&self, kind: ErrorKind) -> u64 {
        KINDS
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.errors[i].load(Ordering::Relaxed))
    }

    /// Prometheus text of these counters (HELP/TYPE lines come from
    /// [`render_all`]).
    fn render_series(&self, out: &mut String) {
        let w = self.name;
        let count = self.count.load(Ordering::Relaxed);
        for (i, le) in BUCKETS.iter().enumerate() {
            let n = self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "shardpbx_webhook_latency_seconds_bucket{{webhook=\"{w}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "shardpbx_webhook_latency_seconds_bucket{{webhook=\"{w}\",le=\"+Inf\"}} {count}"
        );
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "shardpbx_webhook_latency_seconds_sum{{webhook=\"{w}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "shardpbx_webhook_latency_seconds_count{{webhook=\"{w}\"}} {count}"
        );
    }
}

/// `/metrics` text for these webhooks; `backlog` gives the queued items of
/// a webhook that has a queue.
pub fn render_all(
    out: &mut String,
    hooks: &[&WebhookStats],
    backlog: impl Fn(&str) -> Option<u64>,
) {
    if hooks.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP shardpbx_webhook_latency_seconds Time from sending a webhook request to its answer or failure"
    );
    let _ = writeln!(out, "# TYPE shardpbx_webhook_latency_seconds histogram");
    for h in hooks {
        h.render_series(out);
    }
    let _ = writeln!(
        out,
        "# HELP shardpbx_webhook_errors_total Failed webhook requests, by kind"
    );
    let _ = writeln!(out, "# TYPE shardpbx_webhook_errors_total counter");
    for h in hooks {
        for kind in KINDS {
            let _ = writeln!(
                out,
                "shardpbx_webhook_errors_total{{webhook=\"{}\",kind=\"{}\"}} {}",
                h.name,
                kind.as_str(),
                h.errors(kind)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP shardpbx_webhook_backlog Items queued for delivery (durable queues only)"
    );
    let _ = writeln!(out, "# TYPE shardpbx_webhook_backlog gauge");
    for h in hooks {
        if let Some(n) = backlog(h.name) {
            let _ = writeln!(
                out,
                "shardpbx_webhook_backlog{{webhook=\"{}\"}} {n}",
                h.name
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let s = WebhookStats::new("cdr_push");
        s.observe(Duration::from_millis(3));
        s.observe(Duration::from_millis(30));
        s.observe(Duration::from_secs(20));
        s.failed(ErrorKind::Connect, "refused");
        s.failed(ErrorKind::Connect, "refused");
        let mut out = String::new();
        render_all(&mut out, &[&s], |_| Some(7));
        assert!(out.contains(
            "shardpbx_webhook_latency_seconds_bucket{webhook=\"cdr_push\",le=\"0.005\"} 1\n"
        ));
        assert!(out.contains(
            "shardpbx_webhook_latency_seconds_bucket{webhook=\"cdr_push\",le=\"0.05\"} 2\n"
        ));
        assert!(out.contains(
            "shardpbx_webhook_latency_seconds_bucket{webhook=\"cdr_push\",le=\"10\"} 2\n"
        ));
        assert!(out.contains(
            "shardpbx_webhook_latency_seconds_bucket{webhook=\"cdr_push\",le=\"+Inf\"} 3\n"
        ));
        assert!(out.contains("shardpbx_webhook_latency_seconds_count{webhook=\"cdr_push\"} 3\n"));
        assert!(out
            .contains("shardpbx_webhook_errors_total{webhook=\"cdr_push\",kind=\"connect\"} 2\n"));
        assert!(out
            .contains("shardpbx_webhook_errors_total{webhook=\"cdr_push\",kind=\"timeout\"} 0\n"));
        assert!(out.contains("shardpbx_webhook_backlog{webhook=\"cdr_push\"} 7\n"));
    }
}
