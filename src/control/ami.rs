//! AMI (`/ami/v1`, API.md section 5): health, reload of trunks, routes, the
//! SIP TLS certificate and
//! the ACL, graceful shutdown, dialogs. Only TCP peers in `[ami] allows` may
//! use it; forwarded-for headers are ignored. Blocking work (file reads,
//! waiting on shards) runs on tokio's blocking pool, never on the listener.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use shards::routing::RoutingSnapshot;
use shards::runtime::inbox::AclCheck;
use shards::runtime::{ShardGauges, ShardMsg};
use shards::store::Store;

use super::api_error::ApiError;
use super::http::HttpState;
use crate::config::routes_files::{
    build_routing, read_route_files, read_trunk_files, RoutingSource,
};
use crate::config::{Config, ConfigError, MAX_DRAIN_TIMEOUT_SECS};

/// How long a shard may take to describe its dialogs.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What AMI needs beyond the shards' inboxes and counters.
pub struct AmiState {
    pub started: Instant,
    /// Set by `/shutdown`; the shards refuse new INVITEs while it is.
    pub draining: Arc<AtomicBool>,
    /// Ends the HTTP listener, which then stops everything (as SIGTERM does).
    pub stop: Arc<tokio::sync::Notify>,
    pub drain_timeout: Duration,
    /// CPU each shard is pinned to.
    pub cpus: Vec<Option<usize>>,
    pub store: Store,
    pub reloader: Mutex<Reloader>,
    /// Per shard: (when, CPU ticks) of the last health sample, for `load`.
    samples: Mutex<Vec<(Instant, u64)>>,
}

impl AmiState {
    pub fn new(
        draining: Arc<AtomicBool>,
        stop: Arc<tokio::sync::Notify>,
        drain_timeout: Duration,
        cpus: Vec<Option<usize>>,
        store: Store,
        reloader: Reloader,
    ) -> AmiState {
        AmiState {
            started: Instant::now(),
            draining,
            stop,
            drain_timeout,
            cpus,
            store,
            reloader: Mutex::new(reloader),
            samples: Mutex::new(Vec::new()),
        }
    }
}

/// Re-reads trunk files, route files or the ACL and hands the result to
/// every shard. Keeps the sources of the tables in force, so reloading
/// trunks leaves the routes as they are (and the other way round), and the
/// console-managed (REST) trunks and routes, which every snapshot includes
/// after the file ones (`resources.rs` replaces them on each change). Each
/// new snapshot carries the trunk call counts of the one in force.
pub struct Reloader {
    config_path: PathBuf,
    perf_path: Option<PathBuf>,
    cfg: Config,
    trunks: Vec<RoutingSource>,
    routes: Vec<RoutingSource>,
    console: RoutingSource,
    current: Arc<RoutingSnapshot>,
}

impl Reloader {
    /// Reads the files and builds the first snapshot with `console`.
    pub fn new(
        config_path: PathBuf,
        perf_path: Option<PathBuf>,
        cfg: Config,
        console: RoutingSource,
    ) -> Result<Reloader, ConfigError> {
        let base = std::path::Path::new("");
        let trunks = read_trunk_files(&cfg, base)?;
        let routes = read_route_files(&cfg, base)?;
        let mut sources = trunks.clone();
        sources.extend(routes.iter().cloned());
        sources.push(console.clone());
        let current = Arc::new(build_routing(&sources)?);
        Ok(Reloader {
            config_path,
            perf_path,
            cfg,
            trunks,
            routes,
            console,
            current,
        })
    }

    /// The snapshot in force (what the shards start with).
    pub fn current(&self) -> Arc<RoutingSnapshot> {
        self.current.clone()
    }

    /// The file sources in force: trunk files, then route files.
    pub fn file_sources(&self) -> Vec<RoutingSource> {
        let mut sources = self.trunks.clone();
        sources.extend(self.routes.iter().cloned());
        sources
    }

    /// Validates the file sources with `console` in place of the console
    /// entries in force; nothing changes.
    pub fn build_with_console(
        &self,
        console: &RoutingSource,
    ) -> Result<RoutingSnapshot, ConfigError> {
        let mut sources = self.file_sources();
        sources.push(console.clone());
        build_routing(&sources)
    }

    /// Puts `console` and its `snapshot` (from [`Reloader::build_with_console`])
    /// in force; the message to send to every shard.
    pub fn install_console(
        &mut self,
        console: RoutingSource,
        mut snapshot: RoutingSnapshot,
    ) -> ShardMsgFactory {
        snapshot.carry_limits_from(&self.current);
        let snapshot = Arc::new(snapshot);
        self.console = console;
        self.current = snapshot.clone();
        ShardMsgFactory::Routing(snapshot)
    }

    /// Reloads `what`; the message to send to every shard, or the reason
    /// it was refused (the old tables stay).
    pub fn reload(&mut self, what: &str) -> Result<(ShardMsgFactory, String), ReloadError> {
        let base = std::path::Path::new("");
        match what {
            "trunks" | "routes" => {
                let (trunks, routes) = if what == "trunks" {
                    (read_trunk_files(&self.cfg, base)?, self.routes.clone())
                } else {
                    (self.trunks.clone(), read_route_files(&self.cfg, base)?)
                };
                let mut sources = trunks.clone();
                sources.extend(routes.iter().cloned());
                sources.push(self.console.clone());
                let mut snapshot = build_routing(&sources)?;
                snapshot.carry_limits_from(&self.current);
                let snapshot = Arc::new(snapshot);
                let summary = format!(
                    "{} trunk(s), {} route(s)",
                    snapshot.trunks.len(),
                    snapshot.routes.len()
                );
                self.trunks = trunks;
                self.routes = routes;
                self.current = snapshot.clone();
                Ok((ShardMsgFactory::Routing(snapshot), summary))
            }
            "acl" => {
                let cfg = Config::load_with_profile(&self.config_path, self.perf_path.as_deref())?;
                let rules = cfg.proxy.acl_rules.len();
                let acl = cfg.proxy.acl();
                self.cfg.proxy.acl_rules = cfg.proxy.acl_rules.clone();
                Ok((
                    ShardMsgFactory::Acl(AclCheck(Arc::new(move |ip| acl.allows(ip)))),
                    format!("{rules} rule(s)"),
                ))
            }
            "tls" => {
                let cfg = Config::load_with_profile(&self.config_path, self.perf_path.as_deref())?;
                if self.cfg.proxy.tls_port == 0 && self.cfg.proxy.wss_port == 0 {
                    return Err(ReloadError::NoTls);
                }
                let loaded = crate::tls_files::load(&cfg).map_err(ReloadError::Tls)?;
                self.cfg.proxy.tls_cert = cfg.proxy.tls_cert.clone();
                self.cfg.proxy.tls_key = cfg.proxy.tls_key.clone();
                Ok((
                    ShardMsgFactory::Tls(loaded.config),
                    format!(
                        "{} (sha256 {})",
                        loaded.cert_path.display(),
                        loaded.fingerprint
                    ),
                ))
            }
            _ => Err(ReloadError::UnknownTable(what.to_string())),
        }
    }
}

/// Why a reload was refused (the old tables stay).
#[derive(Debug)]
pub enum ReloadError {
    /// A file, or the tables built from it, is not acceptable.
    Config(ConfigError),
    /// Not `trunks`, `routes`, `acl` or `tls`.
    UnknownTable(String),
    /// The certificate or key cannot be used (the old one stays).
    Tls(crate::tls_files::TlsFileError),
    /// `tls` asked of a server without a TLS listener.
    NoTls,
}

impl From<ConfigError> for ReloadError {
    fn from(e: ConfigError) -> ReloadError {
        ReloadError::Config(e)
    }
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Config(e) => e.fmt(f),
            ReloadError::UnknownTable(what) => {
                write!(f, "unknown table '{what}' (trunks, routes, acl or tls)")
            }
            ReloadError::Tls(e) => e.fmt(f),
            ReloadError::NoTls => {
                f.write_str("proxy.tls_port and proxy.wss_port are 0: there is no TLS listener")
            }
        }
    }
}

impl std::error::Error for ReloadError {}

/// A message every shard gets a copy of.
pub enum ShardMsgFactory {
    Routing(Arc<shards::routing::RoutingSnapshot>),
    Acl(AclCheck),
    Tls(Arc<rustls::ServerConfig>),
}

impl ShardMsgFactory {
    pub fn make(&self) -> ShardMsg {
        match self {
            ShardMsgFactory::Routing(s) => ShardMsg::Routing(s.clone()),
            ShardMsgFactory::Acl(a) => ShardMsg::Acl(a.clone()),
            ShardMsgFactory::Tls(c) => ShardMsg::TlsConfig(c.clone()),
        }
    }
}

/// 403 unless the TCP peer is in `[ami] allows`.
fn allowed(state: &HttpState, peer: std::net::SocketAddr) -> Result<(), ApiError> {
    if (state.ami_allowed)(peer.ip()) {
        Ok(())
    } else {
        Err(ApiError::not_ami_peer())
    }
}

/// utime + stime of one thread, in clock ticks.
pub(crate) fn thread_ticks(tid: u64) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // Fields after the parenthesised name: state is field 3; utime 14, stime 15.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub(crate) fn clock_ticks_per_sec() -> f64 {
    crate::os::clock_ticks_per_sec()
}

/// `GET /ami/v1/health`.
pub async fn health(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
) -> Result<Response, ApiError> {
    allowed(&state, peer)?;
    let ami = &state.ami;
    let now = Instant::now();
    let hz = clock_ticks_per_sec();
    let mut shards = Vec::new();
    let mut active = 0;
    {
        let mut samples = ami
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        samples.resize(state.shard_stats.len(), (ami.started, 0));
        for (id, stats) in state.shard_stats.iter().enumerate() {
            let g = &stats.gauges;
            let calls = ShardGauges::get(&g.active_calls);
            active += calls;
            let ticks = thread_ticks(ShardGauges::get(&g.tid));
            // CPU share of the shard thread since the previous sample.
            let load = ticks.map(|t| {
                let (then, before) = samples[id];
                let wall = now.duration_since(then).as_secs_f64().max(1e-3);
                samples[id] = (now, t);
                (((t.saturating_sub(before)) as f64 / hz) / wall).min(1.0)
            });
            shards.push(json!({
                "id": id,
                "cpu": ami.cpus.get(id).copied().flatten(),
                "activeCalls": calls,
                "rtpSessions": ShardGauges::get(&g.rtp_sessions),
                "shedding": match ShardGauges::get(&g.shedding) {
                    1 => Some("recvBacklog"),
                    2 => Some("storeBacklog"),
                    3 => Some("peerBacklog"),
                    _ => None,
                },
                "recvDelayMs": ShardGauges::get(&g.recv_delay_ms),
                "load": load.map(|l| (l * 1000.0).round() / 1000.0),
            }));
        }
    }
    let registrations = ami.store.aor_count().unwrap_or(0);
    let backlog = state.webhooks.backlog();
    let room = ami.store.space().usage();
    Ok(Json(json!({
        "status": if ami.draining.load(Ordering::Relaxed) { "draining" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSecs": ami.started.elapsed().as_secs(),
        "activeCalls": active,
        "registrations": registrations,
        "shards": shards,
        "webhookBacklog": backlog,
        "store": {
            "mapBytes": room.map,
            "usedBytes": room.used,
            "liveBytes": room.live,
            "budgetBytes": room.budget,
            "refusingCalls": room.refusing_calls,
        },
    }))
    .into_response())
}

/// `POST /ami/v1/reload/{trunks|routes|acl|tls}`.
pub async fn reload(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(what): Path<String>,
) -> Result<Response, ApiError> {
    allowed(&state, peer)?;
    if !matches!(what.as_str(), "trunks" | "routes" | "acl" | "tls") {
        return Err(ApiError::not_found("reload trunks, routes, acl or tls"));
    }
    let st = state.clone();
    let what2 = what.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut r = st
            .ami
            .reloader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let reloaded = r.reload(&what2);
        // Sent under the lock, so shards get snapshots in the order they
        // were built (REST changes to trunks and routes take the lock too).
        if let Ok((msg, _)) = &reloaded {
            for inbox in st.inboxes.iter() {
                inbox.push(msg.make());
            }
        }
        reloaded
    })
    .await;
    match result {
        Ok(Ok((_, summary))) => {
            in_force(&state).await;
            tracing::info!(table = %what, %summary, "reloaded");
            Ok(Json(json!({"status": "ok", "reloaded": what, "summary": summary})).into_response())
        }
        Ok(Err(reason)) => {
            tracing::warn!(table = %what, %reason, "reload refused; the old table stays");
            Err(ApiError::unprocessable(reason.to_string()))
        }
        Err(e) => Err(ApiError::internal(format!("reload failed: {e}"))),
    }
}

/// `POST /ami/v1/shutdown`, body optionally `{"drain_timeout_secs": N}`.
pub async fn shutdown(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    allowed(&state, peer)?;
    let mut timeout = state.ami.drain_timeout;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return Err(ApiError::bad_request(format!("body is not JSON: {e}"))),
        };
        match v.get("drain_timeout_secs") {
            None | Some(Value::Null) => {}
            Some(n) => match n.as_u64() {
                Some(n) if n <= MAX_DRAIN_TIMEOUT_SECS => timeout = Duration::from_secs(n),
                Some(_) => {
                    return Err(ApiError::invalid(
                        "drain_timeout_secs",
                        format!("at most {MAX_DRAIN_TIMEOUT_SECS} s"),
                    ))
                }
                None => {
                    return Err(ApiError::invalid(
                        "drain_timeout_secs",
                        "a whole number of seconds is required",
                    ))
                }
            },
        }
    }
    let already = state.ami.draining.swap(true, Ordering::SeqCst);
    if !already {
        tracing::info!(
            drain_timeout_secs = timeout.as_secs(),
            "graceful shutdown: draining"
        );
        let st = state.clone();
        tokio::spawn(async move {
            // Bounded above, but never trusted not to overflow.
            let deadline = Instant::now().checked_add(timeout);
            loop {
                let active: u64 = st
                    .shard_stats
                    .iter()
                    .map(|s| ShardGauges::get(&s.gauges.active_calls))
                    .sum();
                if active == 0 || deadline.is_some_and(|d| Instant::now() >= d) {
                    tracing::info!(active, "drain over: stopping");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            st.ami.stop.notify_one();
        });
    }
    Ok(Json(json!({"status": "draining", "drainTimeoutSecs": timeout.as_secs()})).into_response())
}

/// `GET /ami/v1/dialogs`: every dialog of every shard.
pub async fn dialogs(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
) -> Result<Response, ApiError> {
    allowed(&state, peer)?;
    match gather_with(&state, |reply| ShardMsg::ListDialogs { reply }).await {
        Some(dialogs) => {
            let items: Vec<Value> = dialogs.iter().map(super::views::dialog_json).collect();
            Ok(Json(json!({ "items": items })).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "a shard did not answer in 2 s",
        )),
    }
}

/// Sends every shard the message `ask` makes around a reply channel and
/// gathers the answers (None when a shard does not answer within 2 s).
/// Waits (at most [`INSPECT_TIMEOUT`]) until every shard has handled
/// what was queued for it so far, so that a 200 for a change means the
/// change is in force: the next datagram meets the new rules.
pub async fn in_force(state: &HttpState) {
    if gather_with(state, |reply| ShardMsg::Sync { reply })
        .await
        .is_none()
    {
        tracing::warn!(
            "a shard did not confirm a change in time; it applies it when it catches up"
        );
    }
}

pub async fn gather_with<T: Send + 'static>(
    state: &HttpState,
    ask: impl Fn(crossbeam_channel::Sender<Vec<T>>) -> ShardMsg,
) -> Option<Vec<T>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut asked = 0;
    for inbox in state.inboxes.iter() {
        if inbox.push(ask(tx.clone())) {
            asked += 1;
        }
    }
    drop(tx);
    let gathered = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + INSPECT_TIMEOUT;
        let mut items = Vec::new();
        for _ in 0..asked {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(mut v) => items.append(&mut v),
                Err(_) => return None,
            }
        }
        Some(items)
    })
    .await;
    gathered.ok().flatten()
}
