//! What the SIP endpoint of every shard needs to know, built once from the
//! config by the binary and shared read-only by all shards.

use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::Algorithm;
use crate::users::UserDirectory;

/// Shared, immutable endpoint settings.
pub struct EndpointSettings {
    /// Domains we are (`[proxy] realms`), lower-case.
    pub realms: Vec<String>,
    /// Addresses we listen on or advertise (any port is ours).
    pub local_ips: Vec<IpAddr>,
    pub registrar_expires: u32,
    pub min_expires: u32,
    pub max_expires: u32,
    /// `[proxy] max_contacts_per_aor`: most live bindings per AOR.
    pub max_contacts_per_aor: usize,
    pub digest_algorithms: Vec<Algorithm>,
    pub nonce_ttl_secs: u64,
    /// Key of the stateless nonces, made at start.
    pub nonce_key: [u8; 32],
    pub users: UserDirectory,
    /// `[proxy] acl_rules`: may this source talk to us at all?
    pub acl: Arc<dyn Fn(IpAddr) -> bool + Send + Sync>,
    /// `User-Agent`/`Server` value.
    pub server_name: String,
    /// Host and port we put in Via and Contact of what we originate.
    pub sip_host: String,
    pub sip_port: u16,
    /// Our SIP TCP port (`[proxy] tcp_port`), 0 without TCP.
    pub sip_tcp_port: u16,
    /// Our SIP TLS port (`[proxy] tls_port`), 0 without TLS.
    pub sip_tls_port: u16,
    /// Our SIP WebSocket ports (`[proxy] ws_port`, `wss_port`), 0 = none.
    pub sip_ws_port: u16,
    pub sip_wss_port: u16,
    /// Ring timeout when nothing else sets one, ms.
    pub max_ring_ms: u64,
    /// Most bytes of a call's stored SIP flow.
    pub max_flow_bytes: usize,
    /// `[security] max_forks_per_call`.
    pub max_forks: usize,
    /// `[security] max_parked_requests`: requests one shard holds while it
    /// waits for a webhook (user backend, router); beyond, 503.
    pub max_parked: usize,
    /// The store, read for bindings (shards never write it).
    pub store: Option<crate::store::Store>,
    /// Static routes and trunks at start; reloads arrive as `ShardMsg::Routing`.
    pub routing: Arc<crate::routing::RoutingSnapshot>,
    /// The RTP relay's set-up (None: no relay, media always end to end).
    pub media: Option<crate::media::relay::RelayConfig>,
    /// The recording writer on the control core (None: recording off).
    pub recorder: Option<crossbeam_channel::Sender<crate::recording::RecCmd>>,
    /// `[proxy] media_proxy`.
    pub media_mode: crate::call::MediaMode,
    /// `[media] srtp`, `srtp_extensions`: SRTP with extensions.
    pub srtp: crate::media::secure::ExtensionSrtp,
    /// `[recording] enabled`: record every call (needs proxied media).
    pub record_all: bool,
    /// Set by a graceful shutdown: new INVITEs get 503.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// Where questions for remote (HTTP) user backends go (the control
    /// core); None when there is no such backend.
    pub user_queries: Option<crossbeam_channel::Sender<crate::users::UserQuery>>,
    /// How long a request waits for a remote backend's answer before 503.
    pub user_query_timeout_ms: u64,
    /// The HTTP router, when `[proxy.http_router]` is set.
    pub router: Option<crate::routing::http_router::RouterLink>,
    /// `[security]`: flood limit, trusted sources, where failed digests go.
    pub security: crate::security::SecuritySettings,
    /// `[proxy] overload_*`: when new INVITEs are shed (`admission`).
    pub admission: super::admission::AdmissionConfig,
    /// Which shards' sockets are behind (shared by all shards).
    pub overload: super::admission::Pressure,
}

impl EndpointSettings {
    /// Is `host` (of a URI) one of ours? Hostnames compare case-insensitively;
    /// IP literals (IPv6 with or without brackets) by value.
    pub fn is_local_host(&self, host: &str) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.local_ips.contains(&ip)
                || self
                    .realms
                    .iter()
                    .any(|r| r.parse::<IpAddr>().ok() == Some(ip));
        }
        self.realms.iter().any(|r| r.eq_ignore_ascii_case(host))
    }

    /// The realm to challenge for a request to `host`: the host itself when it
    /// is one of our realms, else the first realm (or the host when none).
    pub fn realm_for<'a>(&'a self, host: &'a str) -> &'a str {
        // Our own spelling of a realm, whatever case the request used: the
        // realm is part of what digest HA1s hash.
        if let Some(r) = self.realms.iter().find(|r| r.eq_ignore_ascii_case(host)) {
            return r;
        }
        self.realms.first().map(String::as_str).unwrap_or(host)
    }
}

#[cfg(test)]
pub(crate) fn test_settings() -> EndpointSettings {
    use crate::users::MemoryBackend;
    EndpointSettings {
        realms: vec!["pbx.test".into(), "127.0.0.1".into()],
        local_ips: vec!["127.0.0.1".parse().unwrap()],
        registrar_expires: 3600,
        min_expires: 60,
        max_expires: 7200,
        max_contacts_per_aor: 3,
        digest_algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
        nonce_ttl_secs: 300,
        nonce_key: [7; 32],
        users: UserDirectory::new(vec![Arc::new(MemoryBackend::new([(
            "1001".to_string(),
            "secret".to_string(),
            None,
        )]))]),
        acl: Arc::new(|_| true),
        server_name: "ShardPBX-test".into(),
        sip_host: "127.0.0.1".into(),
        sip_port: 5060,
        sip_tcp_port: 0,
        sip_tls_port: 0,
        sip_ws_port: 0,
        sip_wss_port: 0,
        max_ring_ms: 60_000,
        max_flow_bytes: crate::call::flow::DEFAULT_MAX_BYTES,
        max_forks: 16,
        max_parked: 4096,
        store: None,
        routing: Arc::new(crate::routing::RoutingSnapshot::empty()),
        media: None,
        recorder: None,
        media_mode: crate::call::MediaMode::Auto,
        srtp: crate::media::secure::ExtensionSrtp::default(),
        record_all: false,
        draining: Arc::default(),
        user_queries: None,
        user_query_timeout_ms: 5000,
        router: None,
        security: Default::default(),
        admission: Default::default(),
        overload: Default::default(),
    }
}
