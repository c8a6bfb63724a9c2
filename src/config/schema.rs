//! The config schema (API.md section 1): one struct per table, every key with its
//! default. Every struct denies unknown keys and defaults missing ones, so a file
//! may set any subset of keys and a misspelt key is an error.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use shards::media::secure::SrtpPolicy;

use super::locate::SourceDoc;

/// HTTP headers added to a webhook request, name -> value.
pub type Headers = BTreeMap<String, String>;

/// The whole config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// REST (console, AMI, metrics) listen address. Default `127.0.0.1:8080`.
    pub http_addr: SocketAddr,
    /// LMDB environment, recordings and spool; relative to the working directory.
    /// Default `./data`.
    pub data_dir: PathBuf,
    /// Default `info`; `RUST_LOG`, when set, wins.
    pub log_level: LogLevel,
    pub runtime: RuntimeConfig,
    pub proxy: ProxyConfig,
    pub media: MediaConfig,
    pub recording: RecordingConfig,
    pub callrecord: CallRecordConfig,
    pub ami: AmiConfig,
    pub console: ConsoleConfig,
    pub store: StoreConfig,
    pub security: SecurityConfig,
    /// The files this config was read from (config, then perf profiles), for
    /// locating validation errors.
    #[serde(skip)]
    pub(crate) sources: Vec<SourceDoc>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            log_level: LogLevel::Info,
            runtime: RuntimeConfig::default(),
            proxy: ProxyConfig::default(),
            media: MediaConfig::default(),
            recording: RecordingConfig::default(),
            callrecord: CallRecordConfig::default(),
            ami: AmiConfig::default(),
            console: ConsoleConfig::default(),
            store: StoreConfig::default(),
            security: SecurityConfig::default(),
            sources: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl From<LogLevel> for tracing::level_filters::LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Error => Self::ERROR,
            LogLevel::Warn => Self::WARN,
            LogLevel::Info => Self::INFO,
            LogLevel::Debug => Self::DEBUG,
            LogLevel::Trace => Self::TRACE,
        }
    }
}

/// `[runtime]`: the data-plane shape. perf profiles override exactly these keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Number of shards; 0 = one per CPU (or one per `cpus` entry). Max 1024.
    pub shards: usize,
    /// CPUs to pin shards to, shard i on `cpus[i]` (any online CPU, including
    /// isolated ones); [] = the CPUs in this process's affinity mask, in order
    /// (0..shards on an unrestricted host).
    pub cpus: Vec<usize>,
    /// Busy-poll this long before an idle shard parks (µs); 0 = park at once.
    pub spin_before_park_us: u64,
    /// While a shard is busy (at least 2 datagrams or messages a beat) it
    /// polls its sockets and inbox on a beat this many µs apart instead of
    /// waking per datagram; 0 = always wake per readiness event. Bounds the
    /// wakes per second under load, adds at most this to a hop then.
    pub poll_interval_us: u64,
    /// glommio io_memory per shard, KiB (64-1048576): file I/O buffers registered
    /// with io_uring, counted against RLIMIT_MEMLOCK once per ring.
    pub io_memory_kib: usize,
    /// io_uring submission queue depth per shard.
    pub ring_depth: usize,
    /// Datagrams per recvmmsg call.
    pub udp_recv_batch: usize,
    /// Datagrams per sendmmsg call.
    pub udp_send_batch: usize,
    /// SO_RCVBUF for SIP and RTP sockets, bytes; 0 = kernel default.
    pub socket_rcvbuf: usize,
    /// SO_SNDBUF for SIP and RTP sockets, bytes; 0 = kernel default.
    pub socket_sndbuf: usize,
    /// How often each shard expires registrations, s.
    pub registrar_sweep_secs: u64,
    /// How SIP datagrams reach the shard owning their Call-ID: `auto` lets
    /// the kernel steer them (an SK_REUSEPORT eBPF program) where it
    /// allows, else the receiving shard hands them on; `off` always hands on.
    pub steering: shards::runtime::KernelMode,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            shards: 0,
            cpus: Vec::new(),
            spin_before_park_us: 0,
            poll_interval_us: 500,
            io_memory_kib: 512,
            ring_depth: 128,
            udp_recv_batch: 32,
            udp_send_batch: 32,
            socket_rcvbuf: 4 << 20,
            socket_sndbuf: 1 << 20,
            registrar_sweep_secs: 5,
            steering: shards::runtime::KernelMode::Auto,
        }
    }
}

/// `[proxy]`: SIP listener, registrar, auth and routing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// SIP listen address. Default `0.0.0.0`.
    pub addr: IpAddr,
    /// SIP UDP port. Default 5060.
    pub udp_port: u16,
    /// SIP TCP port (RFC 3261 section 18); 0 = no TCP listener. Default 0
    /// (the shipped `config/shardpbx.toml` sets 5060).
    pub tcp_port: u16,
    /// SIP TCP connections one shard keeps at once; more are closed at
    /// accept. Default 10000.
    pub tcp_max_connections: u32,
    /// SIP TCP connections one source IP may hold on one shard. Default 64.
    pub tcp_max_connections_per_ip: u32,
    /// A SIP TCP connection with no traffic (CRLF keep-alives count) for
    /// this long is closed, s. Default 300. TLS connections too.
    pub tcp_idle_secs: u32,
    /// SIP TLS port (RFC 3261 section 26); 0 = no TLS listener. Default 0
    /// (the shipped `config/shardpbx.toml` sets 5061).
    pub tls_port: u16,
    /// PEM certificate chain for TLS, under `data_dir` unless absolute;
    /// "" = a self-signed certificate made on first start and kept in
    /// `data_dir/tls/`. Reloaded by `POST /ami/v1/reload/tls`. Default "".
    pub tls_cert: PathBuf,
    /// PEM private key of `tls_cert`; "" with `tls_cert` "". Default "".
    pub tls_key: PathBuf,
    /// SIP over WebSocket (RFC 7118), plain; 0 = no listener. Default 0.
    /// For tests and a TLS-terminating proxy in front: browsers only speak
    /// WSS from a page served over HTTPS.
    pub ws_port: u16,
    /// SIP over secure WebSocket (RFC 7118) with `tls_cert`/`tls_key`;
    /// 0 = no listener. Default 0 (the shipped `config/shardpbx.toml` sets
    /// 8443). The `/phone` page registers here.
    pub wss_port: u16,
    /// Origins (`scheme://host[:port]`) whose pages may open a SIP
    /// WebSocket; `*` = any; a handshake without Origin (not a browser) is
    /// always taken. Default [] = same host: the Origin's host must be the
    /// host the browser connected to (the handshake's `Host`), as for the
    /// control core's own `/phone` page; a page of another site is refused
    /// (403).
    pub ws_origins: Vec<String>,
    /// Domains we are (hostnames or IPs). Default [].
    pub realms: Vec<String>,
    /// Digest algorithms offered, in this order. Default [MD5] (SHA-256 is
    /// an opt-in: libre-based phones give up on any non-MD5 challenge).
    pub digest_algorithms: Vec<DigestAlgorithm>,
    /// Advertised in SDP/Contact when behind NAT; "" = none. Default "".
    pub external_ip: String,
    /// Default binding lifetime, s. Default 3600.
    pub registrar_expires: u32,
    /// Shorter requested expiry -> 423 Interval Too Brief. Default 60.
    pub min_expires: u32,
    /// Longer requested expiry is capped to this. Default 7200.
    pub max_expires: u32,
    /// Most live contacts one AOR may have; a REGISTER that would add more
    /// is refused (403). Default 10.
    pub max_contacts_per_aor: u32,
    /// Ring timeout when nothing else sets one, s. Default 60.
    pub max_ring_time: u32,
    /// RTP silence on an answered, proxied call before hangup, s; 0 = never.
    /// Default 60.
    pub rtp_timeout: u32,
    /// Lifetime of a digest nonce, s (older -> stale=true challenge). Default 300.
    pub nonce_ttl_secs: u32,
    /// Default `auto`.
    pub media_proxy: MediaProxyMode,
    /// `"allow|deny <ip|cidr|all>"`, first match wins. Default ["allow all"].
    pub acl_rules: Vec<String>,
    /// Glob patterns of static route files. Default ["config/routes/*.toml"].
    pub routes_files: Vec<String>,
    /// Glob patterns of static trunk files. Default ["config/trunks/*.toml"].
    pub trunks_files: Vec<String>,
    /// User sources, consulted in order after console-managed extensions.
    pub user_backends: Vec<UserBackendConfig>,
    /// Per-INVITE routing webhook; absent = static routes only.
    pub http_router: Option<HttpRouterConfig>,
    /// Registration event webhook; absent = no events.
    pub locator_webhook: Option<LocatorWebhookConfig>,
    /// Overload: new INVITEs are answered 503 (stateless, no call, no CDR)
    /// while datagrams wait longer than this in a shard's socket, ms;
    /// 0 = never on this signal. Default 100.
    pub overload_max_delay_ms: u32,
    /// Overload: new INVITEs are answered 503 while more records than this
    /// wait for the store writer; 0 = never on this signal. Default 20000.
    pub overload_max_store_queue: u32,
    /// Overload: new INVITEs are answered 503 while more than this many of a
    /// shard's INVITE transactions were resent without the peer answering
    /// (callees silent to our INVITE, callers not ACKing our final: the
    /// peers are not keeping up); 0 = never on this signal. Default 200.
    pub overload_max_stalled_invites: u32,
    /// The Retry-After of an overload 503, s. Default 2.
    pub overload_retry_after_secs: u32,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            udp_port: 5060,
            tcp_port: 0,
            tcp_max_connections: 10_000,
            tcp_max_connections_per_ip: 64,
            tcp_idle_secs: 300,
            tls_port: 0,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            ws_port: 0,
            wss_port: 0,
            ws_origins: Vec::new(),
            realms: Vec::new(),
            digest_algorithms: vec![DigestAlgorithm::Md5],
            external_ip: String::new(),
            registrar_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            max_contacts_per_aor: 10,
            max_ring_time: 60,
            rtp_timeout: 60,
            nonce_ttl_secs: 300,
            media_proxy: MediaProxyMode::Auto,
            acl_rules: vec!["allow all".into()],
            routes_files: vec!["config/routes/*.toml".into()],
            trunks_files: vec!["config/trunks/*.toml".into()],
            user_backends: Vec::new(),
            http_router: None,
            locator_webhook: None,
            overload_max_delay_ms: 100,
            overload_max_store_queue: 20_000,
            overload_max_stalled_invites: 200,
            overload_retry_after_secs: 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DigestAlgorithm {
    #[serde(rename = "MD5")]
    Md5,
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl DigestAlgorithm {
    /// The token used in `algorithm=` (RFC 8760).
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaProxyMode {
    #[default]
    Auto,
    Always,
    None,
    Nat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserBackendType {
    Memory,
    Http,
    Extensions,
}

/// One `[[proxy.user_backends]]` entry. Keys that belong to another `type` are
/// rejected by validation; `UserBackendConfig::backend()` gives the typed view.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserBackendConfig {
    /// memory | http | extensions. Required.
    #[serde(rename = "type")]
    pub kind: Option<UserBackendType>,
    /// memory: the users.
    pub users: Option<Vec<MemoryUser>>,
    /// http: GET `url?{username_field}=<user>&{realm_field}=<realm>`.
    pub url: Option<String>,
    /// http: default "username".
    pub username_field: Option<String>,
    /// http: default "realm".
    pub realm_field: Option<String>,
    /// http: added to each request.
    pub headers: Option<Headers>,
    /// http: the returned password is already HA1 (hex MD5 of user:realm:password).
    /// Default false.
    pub password_is_ha1: Option<bool>,
    /// http: how long an answer is cached per (user, realm), s. Default 30.
    pub cache_ttl_secs: Option<u64>,
    /// http: how long "unknown user" (404) is cached, s. Default
    /// `cache_ttl_secs` (alike, so timing tells no user from a stranger).
    pub negative_cache_ttl_secs: Option<u64>,
    /// http: request timeout, ms. Default 5000.
    pub timeout_ms: Option<u64>,
}

/// A user of a `memory` backend.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryUser {
    pub username: String,
    /// Required unless `generate_password`.
    pub password: String,
    /// A random password made on first start and kept in
    /// `data_dir/generated-passwords` (mode 0600) instead of `password`.
    /// Default false.
    pub generate_password: bool,
    /// Restricts the user to this realm; absent = any of `realms`.
    pub realm: Option<String>,
    pub display_name: Option<String>,
    /// From users this user may call as besides its own username (a main
    /// number); any other From is refused with 403. Default [].
    pub allowed_caller_ids: Vec<String>,
}

/// `[proxy.http_router]` (guide 1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpRouterConfig {
    /// Required.
    pub url: String,
    /// On timeout/failure use the static routes (else 503). Default true.
    pub fallback_to_static: bool,
    /// Default 5000.
    pub timeout_ms: u64,
    pub headers: Headers,
}

impl Default for HttpRouterConfig {
    fn default() -> Self {
        HttpRouterConfig {
            url: String::new(),
            fallback_to_static: true,
            timeout_ms: 5000,
            headers: Headers::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocatorEvent {
    Registered,
    Unregistered,
    Offline,
}

impl LocatorEvent {
    /// The `event` value of the webhook's payload.
    pub fn as_str(self) -> &'static str {
        match self {
            LocatorEvent::Registered => "registered",
            LocatorEvent::Unregistered => "unregistered",
            LocatorEvent::Offline => "offline",
        }
    }
}

/// `[proxy.locator_webhook]` (guide 1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocatorWebhookConfig {
    /// Required.
    pub url: String,
    /// Default all three.
    pub events: Vec<LocatorEvent>,
    /// Undelivered events are retried until this old, s. Default 3600.
    pub max_age_secs: u64,
    /// Per-attempt timeout, ms. Default 5000.
    pub timeout_ms: u64,
    /// Wait after the first failed attempt, ms; doubled per failure. Default 1000.
    pub retry_initial_ms: u64,
    /// Longest wait between two attempts, s. Default 60.
    pub retry_max_secs: u64,
    pub headers: Headers,
}

impl Default for LocatorWebhookConfig {
    fn default() -> Self {
        LocatorWebhookConfig {
            url: String::new(),
            events: vec![
                LocatorEvent::Registered,
                LocatorEvent::Unregistered,
                LocatorEvent::Offline,
            ],
            max_age_secs: 3600,
            timeout_ms: 5000,
            retry_initial_ms: 1000,
            retry_max_secs: 60,
            headers: Headers::new(),
        }
    }
}

/// `[media]`: the RTP port range, `rtp_port_start..rtp_port_end` (end exclusive),
/// split evenly between shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// First RTP port, even. Default 20000.
    pub rtp_port_start: u16,
    /// One past the last RTP port. Default 40000.
    pub rtp_port_end: u16,
    /// `auto` (default): steady RTP streams (latched, unmuted, unrecorded,
    /// IPv4) are relayed inside the kernel by an eBPF program where the
    /// kernel allows it (root or CAP_BPF + CAP_NET_ADMIN, kernel 6.6+),
    /// else in user space (logged once); `off`: always in user space.
    pub kernel_forwarding: shards::runtime::KernelMode,
    /// SRTP (SDES) with extensions: `optional` (default: SRTP when the
    /// phone offers it over TLS; phones on TLS are offered it best effort),
    /// `required` (SRTP over TLS or no call), `off`. Trunks have their own
    /// `srtp` (default `off`).
    pub srtp: SrtpPolicy,
    /// Per-extension exceptions to `srtp`, by username.
    pub srtp_extensions: BTreeMap<String, SrtpPolicy>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_port_start: 20000,
            rtp_port_end: 40000,
            kernel_forwarding: shards::runtime::KernelMode::Auto,
            srtp: SrtpPolicy::Optional,
            srtp_extensions: BTreeMap::new(),
        }
    }
}

/// `[recording]` (guide scenario D).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Record every call unless the router says otherwise. Default false.
    pub enabled: bool,
    /// Under data_dir unless absolute. Default "recordings".
    pub path: PathBuf,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            enabled: false,
            path: PathBuf::from("recordings"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallRecordType {
    #[default]
    Local,
    Http,
    S3,
}

/// `[callrecord]` (guide 1.4). Keys that belong to another `type` are rejected by
/// validation; `CallRecordConfig::target()` gives the typed view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallRecordConfig {
    /// local | http | s3. Default local (LMDB only).
    #[serde(rename = "type")]
    pub kind: CallRecordType,
    /// http: POST target. Required for http.
    pub url: Option<String>,
    /// http: attach recordings. Default true.
    pub with_media: Option<bool>,
    /// http: added to each request.
    pub headers: Option<Headers>,
    /// s3: required.
    pub bucket: Option<String>,
    /// s3: required.
    pub region: Option<String>,
    /// s3: custom endpoint (MinIO etc.; path-style). Default AWS.
    pub endpoint: Option<String>,
    /// s3: credentials, set both or neither.
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// s3: key prefix. Default "cdr".
    pub root: Option<String>,
    /// http, s3: per-attempt timeout, ms. Default 30000.
    pub timeout_ms: Option<u64>,
    /// s3: keep the local recordings after their upload. Default true.
    pub keep_local: Option<bool>,
    /// http, s3: wait after the first failed push, ms; doubled per failure.
    /// Default 1000.
    pub retry_initial_ms: Option<u64>,
    /// http, s3: longest wait between two attempts, s. Default 300.
    pub retry_max_secs: Option<u64>,
    /// Every type: most bytes of SIP messages kept in a call's stored flow;
    /// past it the flow ends with a "truncated" marker. Default 65536.
    pub max_flow_bytes: usize,
}

impl Default for CallRecordConfig {
    fn default() -> Self {
        CallRecordConfig {
            kind: CallRecordType::default(),
            url: None,
            with_media: None,
            headers: None,
            bucket: None,
            region: None,
            endpoint: None,
            access_key: None,
            secret_key: None,
            root: None,
            timeout_ms: None,
            keep_local: None,
            retry_initial_ms: None,
            retry_max_secs: None,
            max_flow_bytes: shards::call::flow::DEFAULT_MAX_BYTES,
        }
    }
}

/// `[ami]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmiConfig {
    /// IPs/CIDRs allowed to use /ami/v1 and /metrics. Default ["127.0.0.1", "::1"].
    pub allows: Vec<String>,
    /// Graceful shutdown waits this long for answered calls, s (at most
    /// [`MAX_DRAIN_TIMEOUT_SECS`]). Default 300.
    pub drain_timeout_secs: u64,
    /// When set, AMI and /metrics need `Authorization: Bearer <token>`
    /// besides the allow-list. Default "" (no token).
    pub token: String,
}

/// The longest drain an AMI shutdown or the config may ask for: one day.
pub const MAX_DRAIN_TIMEOUT_SECS: u64 = 86_400;

impl Default for AmiConfig {
    fn default() -> Self {
        AmiConfig {
            allows: vec!["127.0.0.1".into(), "::1".into()],
            drain_timeout_secs: 300,
            token: String::new(),
        }
    }
}

/// `[console]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Login session lifetime, s. Default 43200 (12 h).
    pub session_ttl_secs: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            session_ttl_secs: 43200,
        }
    }
}

/// `[security]`: what slows password guessing and floods (Kamailio's pike
/// plus fail2ban, built in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Failed digest responses from one source address within
    /// `ban_window_secs` that get it banned; 0 = never ban. Default 10.
    pub ban_after_failures: u32,
    /// Default 60.
    pub ban_window_secs: u64,
    /// How long a ban lasts, s. Default 900.
    pub ban_secs: u64,
    /// SIP requests per second one source address may send (bursts of
    /// twice that); beyond, requests are dropped unanswered. 0 = no limit.
    /// Default 200.
    pub flood_requests_per_sec: u32,
    /// IPs/CIDRs never banned nor throttled (your SBC, a load generator).
    /// Default [].
    pub trusted: Vec<String>,
    /// Most callee legs one call rings (router targets, bindings, route
    /// destinations); the rest are not dialled. Default 16.
    pub max_forks_per_call: u32,
    /// Requests a shard holds while a webhook decides (user backend,
    /// router); beyond, 503 with Retry-After. Default 4096.
    pub max_parked_requests: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            ban_after_failures: 10,
            ban_window_secs: 60,
            ban_secs: 900,
            flood_requests_per_sec: 200,
            trusted: Vec::new(),
            max_forks_per_call: 16,
            max_parked_requests: 4096,
        }
    }
}

/// `[store]`: the LMDB environment, its growth, disk budget and retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// LMDB map size at start, MiB; the map grows (doubling) as data needs,
    /// up to `max_disk_mib`. Default 1024.
    pub map_size_mib: u64,
    /// The disk budget: the most the map (and so data.mdb) may grow to, MiB.
    /// When live data nears it, new calls are refused (503) so the records
    /// of calls that happened and registrations still fit. Default 16384.
    pub max_disk_mib: u64,
    /// CDRs older than this are deleted, days (fractions allowed); 0 = kept
    /// for ever. A CDR whose push is still pending is kept. Default 90.
    pub cdr_retention_days: f64,
    /// SIP flows older than this are deleted, days (fractions allowed);
    /// 0 = kept as long as their CDR. Default 30.
    pub flow_retention_days: f64,
    /// fsync interval of the writer, ms; 0 = fsync every commit. Default 1000.
    pub fsync_interval_ms: u64,
    /// Most writes per write transaction. Default 256.
    pub writer_batch: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            map_size_mib: 1024,
            max_disk_mib: 16384,
            cdr_retention_days: 90.0,
            flow_retention_days: 30.0,
            fsync_interval_ms: 1000,
            writer_batch: 256,
        }
    }
}
