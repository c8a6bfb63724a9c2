//! `shardpbx run`: loads the config, opens the store, starts the control core
//! (store writer, HTTP) and the shards, and stops them all cleanly on SIGINT
//! or SIGTERM (shards first, then the writer flushes and syncs the store).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use shards::auth::{Algorithm, AuthConfig};
use shards::call::MediaMode;
use shards::endpoint::{EndpointSettings, SipEndpoint};
use shards::media::relay::RelayConfig;
use shards::runtime::{Runtime, RuntimeConfig};
use shards::store::{Store, StoreOptions};
use shards::users::{Credential, MemoryBackend, UserDirectory, UserRecord};

use crate::cli::{load_config, store_dir};
use crate::config::{CallRecordTarget, Config, DigestAlgorithm, MediaProxyMode, UserBackend};
use crate::control::ami::{AmiState, Reloader};
use crate::control::{http, writer};

/// Checks what the config file alone cannot: the trunk and route files
/// (exit 2, naming the file and key).
pub fn check_routing_files(cfg: &Config) -> Result<(), ExitCode> {
    // Trunk and route files are validated at start (calls use them later).
    if let Err(e) = crate::config::routes_files::load_routing(cfg, Path::new("")) {
        eprintln!("shardpbx: {e}");
        return Err(ExitCode::from(2));
    }
    Ok(())
}

fn init_logging(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(cfg.log_level.as_str()));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The address we put in Via and Contact: `external_ip`, else the listen
/// address, else (listening on all) the first non-loopback interface address.
fn advertised_host(cfg: &Config) -> String {
    match advertised_ip(cfg) {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    }
}

/// The address we advertise in Via, Contact and SDP: `external_ip`, else the
/// SIP address, else (bound to any) the first non-loopback IPv4 address.
fn advertised_ip(cfg: &Config) -> IpAddr {
    if let Some(ip) = cfg.proxy.external_ip() {
        return ip;
    }
    if cfg.proxy.addr.is_unspecified() {
        crate::netif::interface_addrs()
            .into_iter()
            .find(|ip| ip.is_ipv4() && !ip.is_loopback())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    } else {
        cfg.proxy.addr
    }
}

/// `[media]`, `[recording]` and `[proxy]` as the relay of every shard sees them.
fn relay_config(cfg: &Config, recording: bool) -> RelayConfig {
    let cdr_dir = cfg.recording.path.clone();
    RelayConfig {
        bind_ip: cfg.proxy.addr,
        advertise: advertised_ip(cfg),
        port_start: cfg.media.rtp_port_start,
        port_end: cfg.media.rtp_port_end,
        rtp_timeout_ms: u64::from(cfg.proxy.rtp_timeout) * 1000,
        recordings_dir: recordings_dir(cfg),
        recordings_cdr_dir: cdr_dir,
        recording,
    }
}

/// Where recordings are written: `[recording] path`, under data_dir unless absolute.
fn recordings_dir(cfg: &Config) -> std::path::PathBuf {
    cfg.data_dir.join(&cfg.recording.path)
}

fn media_mode(cfg: &Config) -> MediaMode {
    match cfg.proxy.media_proxy {
        MediaProxyMode::Auto => MediaMode::Auto,
        MediaProxyMode::Always => MediaMode::Always,
        MediaProxyMode::None => MediaMode::None,
        MediaProxyMode::Nat => MediaMode::Nat,
    }
}

/// How shards reach the webhooks they wait for (None: not configured).
struct WebhookLinks {
    user_queries: Option<crossbeam_channel::Sender<shards::users::UserQuery>>,
    router: Option<shards::routing::http_router::RouterLink>,
    /// Failed digests, to the ban book.
    auth_failures: crossbeam_channel::Sender<IpAddr>,
}

/// `extensions` (console-managed users) is asked before the configured
/// backends (API.md section 1); a `type = "extensions"` entry adds nothing.
/// `routing` is the first snapshot (files and console entries).
fn endpoint_settings(
    cfg: &Config,
    store: Store,
    recorder: Option<crossbeam_channel::Sender<shards::recording::RecCmd>>,
    draining: Arc<std::sync::atomic::AtomicBool>,
    extensions: Arc<dyn shards::users::UserBackend>,
    routing: Arc<shards::routing::RoutingSnapshot>,
    links: WebhookLinks,
) -> Result<EndpointSettings, StartError> {
    let mut local_ips: Vec<IpAddr> = if cfg.proxy.addr.is_unspecified() {
        crate::netif::interface_addrs()
    } else {
        vec![cfg.proxy.addr]
    };
    if let Some(ip) = cfg.proxy.external_ip() {
        local_ips.push(ip);
    }
    // Console extensions first, then the configured backends in order.
    let mut users = UserDirectory::new(vec![extensions]);
    let mut user_query_timeout_ms = 0;
    for (i, b) in cfg.proxy.user_backends.iter().enumerate() {
        match b.backend() {
            UserBackend::Memory(list) => users.push_local(Arc::new(MemoryBackend::from_records(
                list.into_iter().map(|u| {
                    let record = UserRecord {
                        username: u.username,
                        credential: Credential::Password(u.password),
                        display_name: u.display_name,
                        allow_guest_calls: false,
                        allowed_caller_ids: u.allowed_caller_ids,
                    };
                    (record, u.realm)
                }),
            ))),
            UserBackend::Http(h) => {
                users.push_remote(i);
                // The control core answers within the backend's timeout;
                // the shard waits that long and a little more.
                user_query_timeout_ms =
                    user_query_timeout_ms.max(h.timeout.as_millis() as u64 + 2000);
            }
            UserBackend::Extensions => {}
        }
    }
    let digest_algorithms: Vec<Algorithm> = cfg
        .proxy
        .digest_algorithms
        .iter()
        .map(|a| match a {
            DigestAlgorithm::Md5 => Algorithm::Md5,
            DigestAlgorithm::Sha256 => Algorithm::Sha256,
        })
        .collect();
    let nonce_ttl_secs = cfg.proxy.nonce_ttl().as_secs().max(1);
    AuthConfig {
        algorithms: digest_algorithms.clone(),
        nonce_lifetime: nonce_ttl_secs,
        ..AuthConfig::default()
    }
    .validate()
    .map_err(StartError::Digest)?;
    let mut nonce_key = [0u8; 32];
    getrandom::getrandom(&mut nonce_key).map_err(StartError::NonceKey)?;
    let acl = cfg.proxy.acl();
    Ok(EndpointSettings {
        realms: cfg
            .proxy
            .realms
            .iter()
            .map(|r| r.to_ascii_lowercase())
            .collect(),
        local_ips,
        registrar_expires: cfg.proxy.registrar_expires,
        min_expires: cfg.proxy.min_expires,
        max_expires: cfg.proxy.max_expires,
        max_contacts_per_aor: cfg.proxy.max_contacts_per_aor as usize,
        digest_algorithms,
        nonce_ttl_secs,
        nonce_key,
        users,
        acl: Arc::new(move |ip| acl.allows(ip)),
        server_name: format!("ShardPBX/{}", env!("CARGO_PKG_VERSION")),
        sip_host: advertised_host(cfg),
        sip_port: cfg.proxy.udp_port,
        sip_tcp_port: cfg.proxy.tcp_port,
        sip_tls_port: cfg.proxy.tls_port,
        sip_ws_port: cfg.proxy.ws_port,
        sip_wss_port: cfg.proxy.wss_port,
        max_ring_ms: u64::from(cfg.proxy.max_ring_time) * 1000,
        max_flow_bytes: cfg.callrecord.max_flow_bytes,
        max_forks: cfg.security.max_forks_per_call as usize,
        max_parked: cfg.security.max_parked_requests as usize,
        store: Some(store),
        routing,
        media: Some(relay_config(cfg, recorder.is_some())),
        recorder,
        media_mode: media_mode(cfg),
        srtp: shards::media::secure::ExtensionSrtp {
            default: cfg.media.srtp,
            by_user: cfg
                .media
                .srtp_extensions
                .iter()
                .map(|(user, policy)| (user.clone(), *policy))
                .collect(),
        },
        record_all: cfg.recording.enabled,
        draining,
        user_queries: links.user_queries,
        user_query_timeout_ms,
        router: links.router,
        security: shards::security::SecuritySettings {
            flood_per_sec: cfg.security.flood_requests_per_sec,
            trusted: cfg
                .security
                .trusted
                .iter()
                .filter_map(|t| shards::routing::HostPattern::parse(t).ok())
                .collect(),
            auth_failures: Some(links.auth_failures),
        },
        admission: shards::endpoint::admission::AdmissionConfig {
            max_delay_ms: u64::from(cfg.proxy.overload_max_delay_ms),
            max_store_queue: cfg.proxy.overload_max_store_queue as usize,
            max_stalled_invites: cfg.proxy.overload_max_stalled_invites as usize,
            retry_after_secs: cfg.proxy.overload_retry_after_secs,
        },
        overload: Default::default(),
    })
}

/// Why the endpoint settings or the webhooks could not be set up at start.
#[derive(Debug)]
enum StartError {
    /// `proxy.digest_algorithms` is refused by the digest layer.
    Digest(shards::auth::AuthSetupError),
    /// The OS gave no randomness for the nonce key.
    NonceKey(getrandom::Error),
    /// `[callrecord]` does not describe a usable bucket.
    S3(crate::webhooks::s3::S3ConfigError),
    /// A webhook's queue could not be opened.
    Store(shards::store::StoreError),
    /// A webhook's thread did not start.
    Thread {
        what: &'static str,
        source: std::io::Error,
    },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Digest(e) => write!(f, "proxy.digest_algorithms: {e:?}"),
            StartError::NonceKey(e) => write!(f, "cannot draw a nonce key: {e}"),
            StartError::S3(e) => e.fmt(f),
            StartError::Store(e) => e.fmt(f),
            StartError::Thread { what, source } => write!(f, "cannot start {what}: {source}"),
        }
    }
}

fn runtime_config(cfg: &Config, tls: Option<Arc<rustls::ServerConfig>>) -> RuntimeConfig {
    let shards = cfg.shard_count();
    let r = &cfg.runtime;
    RuntimeConfig {
        shards,
        cpus: (0..shards).map(|i| cfg.cpu_for_shard(i)).collect(),
        sip_addr: SocketAddr::new(cfg.proxy.addr, cfg.proxy.udp_port),
        recv_batch: r.udp_recv_batch,
        send_batch: r.udp_send_batch,
        rcvbuf: r.socket_rcvbuf,
        sndbuf: r.socket_sndbuf,
        spin_before_park: Duration::from_micros(r.spin_before_park_us),
        poll_interval: Duration::from_micros(r.poll_interval_us),
        io_memory: (r.io_memory_kib) << 10,
        ring_depth: r.ring_depth,
        tick: Duration::from_secs(1),
        steering: r.steering,
        streams: stream_listeners(cfg, tls),
        kernel_rtp: Some(shards::runtime::kernel_rtp::KernelRtpConfig {
            mode: cfg.media.kernel_forwarding,
            bind_ip: cfg.proxy.addr,
            port_start: cfg.media.rtp_port_start,
            port_end: cfg.media.rtp_port_end,
        }),
    }
}

/// The SIP stream listeners that are on (TCP, TLS, WS, WSS), `None` when
/// none is. TLS and WSS share the certificate.
fn stream_listeners(
    cfg: &Config,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Option<shards::runtime::StreamListeners> {
    use shards::transport::StreamKind;
    let px = &cfg.proxy;
    let listen: Vec<_> = [
        (px.tcp_port, StreamKind::Tcp, "proxy.tcp_port"),
        (px.tls_port, StreamKind::Tls, "proxy.tls_port"),
        (px.ws_port, StreamKind::Ws, "proxy.ws_port"),
        (px.wss_port, StreamKind::Wss, "proxy.wss_port"),
    ]
    .into_iter()
    .filter(|&(port, _, _)| port != 0)
    .map(|(port, kind, key)| (SocketAddr::new(px.addr, port), kind, key))
    .collect();
    (!listen.is_empty()).then(|| shards::runtime::StreamListeners {
        listen,
        tls,
        ws_origins: Arc::new(shards::transport::websocket::OriginPolicy::new(
            &px.ws_origins,
        )),
        limits: stream_config(px),
    })
}

/// The limits of SIP TCP connections: `[proxy] tcp_*`. One message may
/// take 10 s to arrive, or the idle time when that is shorter.
fn stream_config(px: &crate::config::ProxyConfig) -> shards::runtime::StreamConfig {
    let idle_ms = u64::from(px.tcp_idle_secs) * 1000;
    let defaults = shards::runtime::StreamConfig::default();
    shards::runtime::StreamConfig {
        max_conns: px.tcp_max_connections as usize,
        max_per_ip: px.tcp_max_connections_per_ip as usize,
        idle_ms,
        limits: shards::transport::Limits {
            partial_ms: defaults.limits.partial_ms.min(idle_ms),
            ..defaults.limits
        },
        ..defaults
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("shardpbx: {msg}");
    tracing::error!("{msg}");
    ExitCode::from(2)
}

pub fn run(path: &Path, perf: Option<&Path>) -> ExitCode {
    // A stop during start-up waits for the HTTP thread's handler.
    crate::os::hold_stop_signals();
    let mut cfg = match load_config(path, perf).and_then(|c| check_routing_files(&c).map(|_| c)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_logging(&cfg);
    // Nobody else reads what the appliance keeps (store, recordings, passwords).
    match crate::private_files::private_dir(&cfg.data_dir()) {
        Ok(Some(old)) => tracing::warn!(
            data_dir = %cfg.data_dir().display(),
            "data_dir was mode {old:o}; now 0700"
        ),
        Ok(None) => {}
        Err(e) => return fail(format!("data_dir: {e}")),
    }
    if let Err(e) = crate::private_files::fill_generated_passwords(&mut cfg) {
        return fail(e);
    }

    let store = match Store::open(
        &store_dir(&cfg),
        &StoreOptions {
            map_size: (cfg.store.map_size_mib as usize) << 20,
            read_only: false,
        },
    ) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    store.set_budget(cfg.store.max_disk_mib << 20);
    // Whether new calls are refused for room is known before the first
    // INVITE can arrive (the writer looks again as it starts).
    if let Err(e) = store.tend_space() {
        tracing::error!("store: cannot measure the map: {e}");
    }
    let console_store = match crate::control::console_store::ConsoleStore::open(&store) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let http_listener = match std::net::TcpListener::bind(cfg.http_addr) {
        Ok(l) => l,
        Err(e) => {
            return fail(format!(
                "{}: http_addr: cannot bind {}: {e}",
                path.display(),
                cfg.http_addr
            ))
        }
    };
    // Recordings: fix the headers a crash left behind, then start the writer.
    let rec_dir = recordings_dir(&cfg);
    let repaired = shards::recording::repair_dir(&rec_dir);
    if repaired > 0 {
        tracing::warn!(repaired, dir = %rec_dir.display(), "repaired recordings a crash left unfinished");
    }
    let (rec_tx, rec_rx) = crossbeam_channel::unbounded();
    let rec_writer = match shards::recording::spawn_writer(rec_rx) {
        Ok(h) => h,
        Err(e) => return fail(format!("cannot start the recording writer: {e}")),
    };
    let draining: Arc<std::sync::atomic::AtomicBool> = Arc::default();
    let resources = match crate::control::resources::ResourcesState::open(&store, &cfg) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let console_routing = match resources.console_source() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let reloader = match Reloader::new(
        path.to_path_buf(),
        perf.map(Path::to_path_buf),
        cfg.clone(),
        console_routing,
    ) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let http_users: Vec<(usize, crate::config::HttpUserBackend)> = cfg
        .proxy
        .user_backends
        .iter()
        .enumerate()
        .filter_map(|(i, b)| match b.backend() {
            UserBackend::Http(h) => Some((i, h)),
            _ => None,
        })
        .collect();
    // Shards ask, the control core answers; bounded, so a backend that hangs
    // turns into 503s rather than an ever longer queue.
    let (user_tx, user_rx) = crossbeam_channel::bounded(4096);
    let (router_tx, router_rx) = crossbeam_channel::bounded(8192);
    // Failed digests, from the shards to the ban book; a full queue drops
    // reports (the flood is banned by the ones that got through).
    let (failures_tx, failures_rx) = crossbeam_channel::bounded(4096);
    let router_link = cfg.proxy.http_router.as_ref().map(|r| {
        shards::routing::http_router::RouterLink {
            queries: router_tx,
            fallback_to_static: r.fallback_to_static,
            // The control core answers within the router's timeout.
            wait_ms: r.timeout_ms + 2000,
        }
    });
    let settings = match endpoint_settings(
        &cfg,
        store.clone(),
        Some(rec_tx),
        draining.clone(),
        Arc::new(resources.store.backend()),
        reloader.current(),
        WebhookLinks {
            user_queries: (!http_users.is_empty()).then_some(user_tx),
            router: router_link,
            auth_failures: failures_tx,
        },
    ) {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(e),
    };

    let (control_tx, control_rx) = crossbeam_channel::unbounded();
    let tls = if cfg.proxy.tls_port == 0 && cfg.proxy.wss_port == 0 {
        None
    } else {
        match crate::tls_files::load(&cfg) {
            Ok(l) => {
                tracing::info!(
                    port = cfg.proxy.tls_port,
                    wss_port = cfg.proxy.wss_port,
                    cert = %l.cert_path.display(),
                    sha256 = %l.fingerprint,
                    self_signed = l.self_signed,
                    "SIP over TLS"
                );
                Some(l.config)
            }
            Err(e) => return fail(e),
        }
    };
    if cfg.proxy.ws_port != 0 {
        tracing::warn!(
            port = cfg.proxy.ws_port,
            "SIP over plain WebSocket: digests, dialled numbers and the ICE passwords of \
             browser calls cross the network in clear (meant for a TLS-terminating proxy \
             in front, or tests); browsers elsewhere want wss_port"
        );
    }
    let rt_cfg = runtime_config(&cfg, tls);
    let factory_tx = control_tx.clone();
    let runtime = match Runtime::start(&rt_cfg, move |ctx| {
        let id = ctx.id;
        match SipEndpoint::new(ctx, settings.clone(), factory_tx.clone()) {
            Ok(e) => e,
            // Unreachable: endpoint_settings validated the same AuthConfig.
            Err(e) => panic!("shard {id}: {e}"),
        }
    }) {
        Ok(r) => r,
        Err(e) => return fail(format!("{}: {e}", path.display())),
    };
    drop(control_tx);

    let writer_cfg = writer::WriterConfig {
        batch: cfg.store.writer_batch,
        fsync_interval: Duration::from_millis(cfg.store.fsync_interval_ms),
        sweep_interval: Duration::from_secs(cfg.runtime.registrar_sweep_secs.max(1)),
        retention: crate::control::upkeep::Retention::from_days(
            cfg.store.cdr_retention_days,
            cfg.store.flow_retention_days,
        ),
    };
    let (dispatchers, queues, mut webhooks) = match start_webhooks(&cfg, &store) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if !http_users.is_empty() {
        let stats = Arc::new(crate::webhooks::stats::WebhookStats::new("user_backend"));
        let started = crate::webhooks::user_backend::start(
            http_users,
            user_rx,
            runtime.inboxes.clone(),
            stats.clone(),
        );
        if let Err(e) = started {
            return fail(format!("cannot start the HTTP user backend: {e}"));
        }
        webhooks.user_backend = Some(stats);
    }
    if let Some(r) = &cfg.proxy.http_router {
        let stats = Arc::new(crate::webhooks::stats::WebhookStats::new("router"));
        let started = crate::webhooks::router::start(
            r.clone(),
            router_rx,
            runtime.inboxes.clone(),
            stats.clone(),
        );
        if let Err(e) = started {
            return fail(format!("cannot start the HTTP router: {e}"));
        }
        webhooks.router = Some(stats);
    }
    let bans = match crate::control::bans::Guard::start(
        &cfg.security,
        runtime.inboxes.clone(),
        failures_rx,
    ) {
        Ok(g) => g,
        Err(e) => return fail(format!("cannot start the ban book: {e}")),
    };
    let writer_inboxes = runtime.inboxes.clone();
    let writer_store = store.clone();
    let writer = match std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || writer::run(writer_store, control_rx, writer_inboxes, writer_cfg, queues))
    {
        Ok(h) => h,
        Err(e) => return fail(format!("cannot start the store writer: {e}")),
    };

    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        shards = rt_cfg.shards,
        sip = %rt_cfg.sip_addr,
        http = %cfg.http_addr,
        "ShardPBX running"
    );

    let allow = cfg.ami_allow_list();
    let stop = Arc::new(tokio::sync::Notify::new());
    let state = Arc::new(http::HttpState {
        shard_stats: runtime.stats.clone(),
        steering: runtime.steering.clone(),
        rtp_path: runtime.rtp_path.clone(),
        ami_allowed: Box::new(move |ip| allow.allows(ip)),
        inboxes: runtime.inboxes.clone(),
        active_cache: Default::default(),
        ami: AmiState::new(
            draining,
            stop.clone(),
            cfg.drain_timeout(),
            rt_cfg.cpus.iter().map(|c| Some(*c)).collect(),
            store.clone(),
            reloader,
        ),
        console_auth: crate::control::console_auth::ConsoleAuth::new(
            console_store,
            cfg.session_ttl(),
        ),
        records: crate::control::records::RecordsState {
            store: store.clone(),
            data_dir: cfg.data_dir(),
        },
        resources,
        webhooks,
        guard: crate::control::guard::Guard::new(cfg.http_addr, &cfg.ami.token),
        bans,
        phone: crate::control::phone::PhoneSettings::from_config(&cfg.proxy),
    });
    let served = serve_http(http_listener, state, stop);

    tracing::info!("stopping: shards");
    runtime.stop();
    tracing::info!("stopping: recording writer");
    // The shards held the only senders: the writer drains and ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !rec_writer.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if rec_writer.is_finished() {
        let _ = rec_writer.join();
    } else {
        tracing::error!("recording writer still busy after 10 s; leaving it");
    }
    tracing::info!("stopping: store writer");
    if writer.join().is_err() {
        return fail("store writer panicked");
    }
    tracing::info!("stopping: webhooks");
    for d in dispatchers {
        d.stop();
    }
    if let Err(e) = store.sync() {
        return fail(e);
    }
    match served {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("http: {e}")),
    }
}

type Webhooks = (
    Vec<crate::webhooks::dispatch::Dispatcher>,
    writer::Queues,
    crate::webhooks::WebhookViews,
);

/// The durable webhooks the config asks for: the CDR push (`[callrecord]`
/// http or s3) and the locator webhook. Each resumes whatever an earlier run
/// left queued.
fn start_webhooks(cfg: &Config, store: &Store) -> Result<Webhooks, StartError> {
    use crate::webhooks::{cdr_push, locator, outbox, stats::WebhookStats};
    let (mut dispatchers, mut queues, mut views) = (
        Vec::new(),
        writer::Queues::default(),
        crate::webhooks::WebhookViews::default(),
    );
    let push = match cfg.callrecord.target() {
        CallRecordTarget::Local => None,
        CallRecordTarget::Http(h) => {
            let timeout = h.timeout;
            Some((cdr_push::Target::Http(h), timeout, "cdr_push"))
        }
        CallRecordTarget::S3(s) => Some((
            cdr_push::Target::S3 {
                archive: crate::webhooks::s3::S3Archive::new(&s).map_err(StartError::S3)?,
                keep_local: s.keep_local,
            },
            s.timeout,
            "s3_archive",
        )),
    };
    if let Some((target, timeout, name)) = push {
        let outbox = outbox::Outbox::open(store).map_err(StartError::Store)?;
        let (initial, max) = cfg.callrecord.retry();
        let stats = Arc::new(WebhookStats::new(name));
        let pusher = cdr_push::start(
            store.clone(),
            outbox.clone(),
            cdr_push::PushConfig {
                target,
                timeout,
                backoff: outbox::Backoff { initial, max },
                data_dir: cfg.data_dir(),
            },
            stats.clone(),
        )
        .map_err(|source| StartError::Thread {
            what: "the CDR push",
            source,
        })?;
        queues.cdr = Some(writer::PushQueue {
            outbox: outbox.clone(),
            wake: pusher.waker(),
        });
        views.cdr_push = Some((stats, outbox));
        dispatchers.push(pusher);
    }
    if let Some(l) = &cfg.proxy.locator_webhook {
        let queue = locator::EventQueue::open(store, &l.events).map_err(StartError::Store)?;
        let stats = Arc::new(WebhookStats::new("locator"));
        let d = locator::start(queue.clone(), l.clone(), stats.clone()).map_err(|source| {
            StartError::Thread {
                what: "the locator webhook",
                source,
            }
        })?;
        queues.locator = Some(writer::EventQueue {
            queue: queue.clone(),
            wake: d.waker(),
        });
        views.locator = Some((stats, queue));
        dispatchers.push(d);
    }
    Ok((dispatchers, queues, views))
}

/// Nice value of the control core's HTTP thread (shards run at 0): the
/// lowest, so REST load only ever uses CPU the data plane leaves.
const CONTROL_NICE: libc::c_int = 19;

/// Runs the control core's HTTP listener on this thread until SIGINT/SIGTERM.
fn serve_http(
    listener: std::net::TcpListener,
    state: Arc<http::HttpState>,
    stop: Arc<tokio::sync::Notify>,
) -> std::io::Result<()> {
    // The data plane first: the control core's HTTP (and the blocking pool
    // threads it starts, which inherit this) yields the CPU to the shards
    // when both want it, so REST load does not delay calls.
    if let Err(e) = crate::os::set_thread_nice(CONTROL_NICE) {
        tracing::warn!("cannot lower the HTTP thread's priority: {e}");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let signals = StopSignals::watch();
        crate::os::release_stop_signals();
        let shutdown = async move {
            tokio::select! {
                _ = signals.recv() => {}
                _ = stop.notified() => tracing::info!("AMI shutdown: drained"),
            }
        };
        http::serve(listener, state, shutdown).await
    })
}

/// SIGTERM and SIGINT, watched from the moment this is made.
struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn watch() -> StopSignals {
        use tokio::signal::unix::{signal, SignalKind};
        let watch = |kind: SignalKind, name: &str| {
            signal(kind)
                .map_err(|e| tracing::error!("cannot watch {name}: {e}"))
                .ok()
        };
        StopSignals {
            term: watch(SignalKind::terminate(), "SIGTERM"),
            int: watch(SignalKind::interrupt(), "SIGINT"),
        }
    }

    async fn recv(mut self) {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.term) => tracing::info!("SIGTERM received"),
            _ = next(&mut self.int) => tracing::info!("SIGINT received"),
        }
    }
}
