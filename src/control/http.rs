//! The control core's HTTP listener (axum on a tokio current-thread runtime):
//! `/metrics` in Prometheus text format and AMI (`ami.rs`), both behind the
//! AMI allow-list, and the active-call commands of `calls.rs`. The rest of
//! the console REST API joins this router as it lands. Every request passes
//! `guard.rs` first (cross-site refusal, the optional AMI token).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use shards::runtime::{Inbox, ShardStats};

use super::api_error::ApiError;

/// What the HTTP handlers read.
pub struct HttpState {
    pub shard_stats: Vec<Arc<ShardStats>>,
    /// How SIP datagrams reach their owner shard (kernel or user space).
    pub steering: Arc<shards::runtime::steer::Steering>,
    pub rtp_path: Arc<shards::runtime::kernel_rtp::RtpPath>,
    /// The AMI allow-list: true when this TCP peer may use AMI and /metrics.
    pub ami_allowed: Box<dyn Fn(IpAddr) -> bool + Send + Sync>,
    /// Every shard's inbox, for commands to the shard that owns a call.
    pub inboxes: Arc<Vec<Arc<Inbox>>>,
    pub ami: super::ami::AmiState,
    /// The last active-calls listing and when it was gathered.
    pub active_cache: std::sync::Mutex<Option<(std::time::Instant, axum::body::Bytes)>>,
    /// Console sessions, API tokens and the login rate limit.
    pub console_auth: super::console_auth::ConsoleAuth,
    /// The CDR store and data_dir, for the call-records API.
    pub records: super::records::RecordsState,
    /// Console-managed extensions, trunks and routes.
    pub resources: super::resources::ResourcesState,
    /// The running webhooks: metrics, backlog, push states.
    pub webhooks: crate::webhooks::WebhookViews,
    /// Cross-site refusal and the optional AMI token (`guard.rs`).
    pub guard: super::guard::Guard,
    /// Bans of sources that failed digest authentication (`bans.rs`).
    pub bans: Arc<super::bans::Guard>,
    /// What the `/phone` page learns of the config (`phone.rs`).
    pub phone: super::phone::PhoneSettings,
}

pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/console/login", post(super::console_auth::login))
        .route("/console/logout", post(super::console_auth::logout))
        .route(super::openapi::PATH, get(super::openapi::document))
        .route("/console/calls", post(super::calls::dial))
        .route("/console/calls/active", get(super::calls::active))
        .route(
            "/console/calls/active/{call_id}/commands",
            post(super::calls::command),
        )
        .route("/ami/v1/health", get(super::ami::health))
        .route("/ami/v1/reload/{what}", post(super::ami::reload))
        .route("/ami/v1/shutdown", post(super::ami::shutdown))
        .route("/ami/v1/dialogs", get(super::ami::dialogs))
        .merge(super::bans::routes())
        .merge(super::records::routes())
        .merge(super::resources::routes())
        .merge(super::phone::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        // Keep last: guards every /console path (routes and fallback alike)
        // except the login and the OpenAPI document; other paths pass through.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::console_auth::require,
        ))
        // Outermost: cross-site refusal and the AMI token come before
        // anything else, the console login included.
        .layer(axum::middleware::from_fn_with_state(
            state,
            super::guard::check,
        ))
}

/// Any path no route knows: the JSON error shape, not an empty body.
async fn not_found() -> ApiError {
    ApiError::not_found("no such path")
}

/// A known path with a method it does not take.
async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this path",
    )
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn metrics(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if !(state.ami_allowed)(peer.ip()) {
        return ApiError::not_ami_peer().into_response();
    }
    let mut text = render(&state.shard_stats);
    render_levels(&mut text, &state);
    state.webhooks.render_metrics(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// One metric family whose series differ by one label: `# HELP`, `# TYPE`,
/// then `name{label="value"} n` for each of `series`.
fn render_family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    series: &[(&str, u64)],
) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (value, n) in series {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}

/// Which path (`kernel` or `user`) does the work of a kernel program.
fn render_path(out: &mut String, name: &str, help: &str, kind: &str) {
    let series = ["kernel", "user"].map(|k| (k, u64::from(kind == k)));
    render_family(out, name, "gauge", help, "path", &series);
}

/// Which path relays steady RTP streams, and what the kernel program
/// counted.
fn render_rtp_path(out: &mut String, path: &shards::runtime::kernel_rtp::RtpPath) {
    render_path(
        out,
        "shardpbx_rtp_forwarding",
        "1 for the path that relays steady RTP streams: kernel (eBPF) or user",
        path.kind(),
    );
    if let Some(c) = path.counts() {
        render_family(
            out,
            "shardpbx_rtp_kernel_packets_total",
            "counter",
            "packets the kernel program saw on handed-over ports: relayed to a local address, relayed out of an interface, or left to user space (unsteady: not the next packet of the steady stream)",
            "way",
            &[("local", c.local), ("out", c.out), ("unsteady", c.unsteady)],
        );
    }
}

/// Which path steers SIP datagrams to their owner shard, and what the
/// kernel program counted.
fn render_steering(out: &mut String, steering: &shards::runtime::steer::Steering) {
    render_path(
        out,
        "shardpbx_sip_steering",
        "1 for the path that steers SIP datagrams to their owner shard: kernel (eBPF) or user (handoffs)",
        steering.kind(),
    );
    if let Some(c) = steering.counts() {
        render_family(
            out,
            "shardpbx_sip_kernel_steered_total",
            "counter",
            "SIP datagrams the kernel delivered to their owner shard's socket (steered) or left to its 4-tuple hash (unsteered: no readable Call-ID)",
            "result",
            &[("steered", c.steered), ("unsteered", c.unsteered)],
        );
    }
}

/// Gauges and labelled series beside the plain counters: active calls and
/// RTP sessions per shard, registrations, shard CPU time (its rate is the
/// shard loop's utilisation), SIP requests by method and responses by code.
fn render_levels(out: &mut String, state: &HttpState) {
    use shards::runtime::stats::METHODS;
    use shards::runtime::ShardGauges;
    use std::fmt::Write;
    let stats = &state.shard_stats;
    let gauge = |out: &mut String, name: &str, help: &str, get: &dyn Fn(&ShardStats) -> u64| {
        let _ = writeln!(out, "# HELP shardpbx_{name} {help}");
        let _ = writeln!(out, "# TYPE shardpbx_{name} gauge");
        for (shard, s) in stats.iter().enumerate() {
            let _ = writeln!(out, "shardpbx_{name}{{shard=\"{shard}\"}} {}", get(s));
        }
    };
    gauge(out, "active_calls", "calls the shard owns now", &|s| {
        ShardGauges::get(&s.gauges.active_calls)
    });
    gauge(
        out,
        "rtp_sessions",
        "proxied calls (media sessions) of the shard now",
        &|s| ShardGauges::get(&s.gauges.rtp_sessions),
    );
    gauge(
        out,
        "tcp_connections",
        "SIP TCP connections the shard holds now",
        &|s| ShardGauges::get(&s.gauges.tcp_connections),
    );
    gauge(
        out,
        "overload_shedding",
        "why the shard answers new INVITEs 503 now: 0 it takes them, 1 receive backlog, 2 store writer backlog",
        &|s| ShardGauges::get(&s.gauges.shedding),
    );
    gauge(
        out,
        "recv_delay_ms",
        "how long the shard's last full receive batch had waited in its socket, ms (0 = drained)",
        &|s| ShardGauges::get(&s.gauges.recv_delay_ms),
    );
    let _ = writeln!(
        out,
        "# HELP shardpbx_registrations AORs with stored bindings"
    );
    let _ = writeln!(out, "# TYPE shardpbx_registrations gauge");
    let _ = writeln!(
        out,
        "shardpbx_registrations {}",
        state.ami.store.aor_count().unwrap_or(0)
    );
    render_store(out, &state.ami.store);
    render_steering(out, &state.steering);
    render_rtp_path(out, &state.rtp_path);
    let hz = super::ami::clock_ticks_per_sec();
    let _ = writeln!(
        out,
        "# HELP shardpbx_shard_cpu_seconds_total CPU time of the shard thread; rate() = loop utilisation"
    );
    let _ = writeln!(out, "# TYPE shardpbx_shard_cpu_seconds_total counter");
    for (shard, s) in stats.iter().enumerate() {
        if let Some(t) = super::ami::thread_ticks(ShardGauges::get(&s.gauges.tid)) {
            let _ = writeln!(
                out,
                "shardpbx_shard_cpu_seconds_total{{shard=\"{shard}\"}} {:.2}",
                t as f64 / hz
            );
        }
    }
    for (dir, name) in [(true, "received"), (false, "sent")] {
        let _ = writeln!(
            out,
            "# HELP shardpbx_sip_requests_{name}_total SIP requests {name}, by method"
        );
        let _ = writeln!(out, "# TYPE shardpbx_sip_requests_{name}_total counter");
        for (shard, s) in stats.iter().enumerate() {
            let table = if dir {
                &s.sip.requests_in
            } else {
                &s.sip.requests_out
            };
            for (m, c) in METHODS.iter().zip(table.iter()) {
                let n = c.load(std::sync::atomic::Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "shardpbx_sip_requests_{name}_total{{shard=\"{shard}\",method=\"{m}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP shardpbx_sip_responses_{name}_total SIP responses {name}, by status code (codes seen)"
        );
        let _ = writeln!(out, "# TYPE shardpbx_sip_responses_{name}_total counter");
        for (shard, s) in stats.iter().enumerate() {
            let table = if dir {
                &s.sip.responses_in
            } else {
                &s.sip.responses_out
            };
            for (i, c) in table.iter().enumerate() {
                let n = c.load(std::sync::atomic::Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "shardpbx_sip_responses_{name}_total{{shard=\"{shard}\",code=\"{}\"}} {n}",
                        i + 100
                    );
                }
            }
        }
    }
}

/// The store's room (`[store]`): map, high-water mark, live data, budget,
/// whether new calls are refused, SIP flows dropped for lack of room.
fn render_store(out: &mut String, store: &shards::store::Store) {
    use std::fmt::Write;
    let space = store.space();
    let u = space.usage();
    for (name, help, v) in [
        (
            "store_map_bytes",
            "LMDB map size (grows up to the budget)",
            u.map,
        ),
        (
            "store_used_bytes",
            "LMDB pages ever used: the size data.mdb takes on disk",
            u.used,
        ),
        (
            "store_live_bytes",
            "LMDB pages holding data now (the rest of used is reused)",
            u.live,
        ),
        (
            "store_budget_bytes",
            "the disk budget, [store] max_disk_mib",
            u.budget,
        ),
        (
            "store_refusing_calls",
            "1 while new calls get 503 because the store is nearly full",
            u64::from(u.refusing_calls),
        ),
    ] {
        let _ = writeln!(out, "# HELP shardpbx_{name} {help}");
        let _ = writeln!(out, "# TYPE shardpbx_{name} gauge");
        let _ = writeln!(out, "shardpbx_{name} {v}");
    }
    let _ = writeln!(out, "# HELP shardpbx_store_flows_dropped_total SIP flows not stored because the store was nearly full");
    let _ = writeln!(out, "# TYPE shardpbx_store_flows_dropped_total counter");
    let _ = writeln!(
        out,
        "shardpbx_store_flows_dropped_total {}",
        space.flows_dropped()
    );
}

/// Prometheus text exposition of the shard counters.
pub fn render(stats: &[Arc<ShardStats>]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let snaps: Vec<_> = stats.iter().map(|s| s.snapshot()).collect();
    let Some(first) = snaps.first() else {
        return out;
    };
    for (i, (name, help, _)) in first.iter().enumerate() {
        let _ = writeln!(out, "# HELP shardpbx_{name}_total {help}");
        let _ = writeln!(out, "# TYPE shardpbx_{name}_total counter");
        for (shard, snap) in snaps.iter().enumerate() {
            let _ = writeln!(
                out,
                "shardpbx_{name}_total{{shard=\"{shard}\"}} {}",
                snap[i].2
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_series_per_shard() {
        let stats: Vec<Arc<ShardStats>> = (0..2).map(|_| Arc::default()).collect();
        ShardStats::add(&stats[1].rx_datagrams, 7);
        let text = render(&stats);
        assert!(text.contains("shardpbx_rx_datagrams_total{shard=\"0\"} 0\n"));
        assert!(text.contains("shardpbx_rx_datagrams_total{shard=\"1\"} 7\n"));
        assert!(text.contains("# TYPE shardpbx_options_total counter"));
    }
}
