//! Semantic validation of a deserialized config: ranges, relations between keys,
//! syntax of strings (realms, URLs, ACL rules), and the type-specific keys of
//! user backends and callrecord. The first problem found is returned, named by
//! its dotted key and located in the file that set it.

use std::collections::HashSet;

use super::acl::{Acl, AllowList};
use super::derived::{online_cpus, MAX_SHARDS};
use super::locate::{format_path, parse_path, Seg};
use super::schema::{
    CallRecordConfig, CallRecordType, Config, Headers, UserBackendConfig, UserBackendType,
    MAX_DRAIN_TIMEOUT_SECS,
};
use super::syntax::{check_header_name, check_header_value, check_host, check_http_url};
use super::{error_at, set_in, ConfigError};

type Check = Result<(), ConfigError>;

/// The shortest `[ami] token` accepted: a guessable token is no token.
const MIN_AMI_TOKEN_LEN: usize = 16;

pub(crate) fn validate(cfg: &Config) -> Check {
    let c = Checker { cfg };
    c.top()?;
    c.runtime()?;
    c.proxy()?;
    c.user_backends()?;
    c.webhooks()?;
    c.media()?;
    c.callrecord()?;
    c.rest()?;
    Ok(())
}

struct Checker<'a> {
    cfg: &'a Config,
}

/// `prefix.key`, quoting the key when needed (header names may hold dots).
fn child(prefix: &str, key: &str) -> String {
    let mut segs = parse_path(prefix);
    segs.push(Seg::Key(key.to_string()));
    format_path(&segs)
}

impl Checker<'_> {
    fn err(&self, path: &str, reason: impl Into<String>) -> ConfigError {
        error_at(&self.cfg.sources, path, reason)
    }

    fn fail(&self, path: &str, reason: impl Into<String>) -> Check {
        Err(self.err(path, reason))
    }

    /// Of keys that conflict, the one to blame: the one set in the latest file
    /// (a profile over the config), earlier in `paths` on a tie, else the first.
    fn blame<'p>(&self, paths: &[&'p str]) -> &'p str {
        let mut best: Option<(usize, &str)> = None;
        for p in paths {
            if let Some(i) = set_in(&self.cfg.sources, p) {
                if best.is_none_or(|(b, _)| i > b) {
                    best = Some((i, p));
                }
            }
        }
        best.map_or(paths[0], |(_, p)| p)
    }

    fn range<T: PartialOrd + Copy + std::fmt::Display>(
        &self,
        path: &str,
        v: T,
        min: T,
        max: T,
    ) -> Check {
        if v < min || v > max {
            return self.fail(path, format!("must be {min}-{max}, not {v}"));
        }
        Ok(())
    }

    fn at_least<T: PartialOrd + Copy + std::fmt::Display>(
        &self,
        path: &str,
        v: T,
        min: T,
    ) -> Check {
        if v < min {
            return self.fail(path, format!("must be at least {min}"));
        }
        Ok(())
    }

    fn url(&self, path: &str, url: &str) -> Check {
        check_http_url(url).map_err(|e| self.err(path, e.to_string()))
    }

    fn headers(&self, path: &str, headers: &Headers) -> Check {
        for (name, value) in headers {
            let p = child(path, name);
            check_header_name(name).map_err(|e| self.err(&p, e.to_string()))?;
            check_header_value(value).map_err(|e| self.err(&p, e.to_string()))?;
        }
        Ok(())
    }

    fn top(&self) -> Check {
        let cfg = self.cfg;
        if cfg.http_addr.port() == 0 {
            return self.fail("http_addr", "port must be 1-65535");
        }
        if cfg.data_dir.as_os_str().is_empty() {
            return self.fail("data_dir", "must not be empty");
        }
        Ok(())
    }

    fn runtime(&self) -> Check {
        let rt = &self.cfg.runtime;
        if rt.shards > MAX_SHARDS {
            return self.fail(
                "runtime.shards",
                format!("must be at most {MAX_SHARDS} (0 = one per CPU)"),
            );
        }
        let online = online_cpus();
        let mut seen = HashSet::new();
        for (i, &cpu) in rt.cpus.iter().enumerate() {
            let p = format!("runtime.cpus[{i}]");
            if !online.contains(&cpu) {
                return self.fail(
                    &p,
                    format!(
                        "CPU {cpu} does not exist or is offline (online: {})",
                        cpu_list(online)
                    ),
                );
            }
            if !seen.insert(cpu) {
                return self.fail(&p, format!("CPU {cpu} is listed twice"));
            }
        }
        if rt.shards != 0 && !rt.cpus.is_empty() && rt.cpus.len() != rt.shards {
            let n = rt.cpus.len();
            let entries = format!("{n} {}", if n == 1 { "entry" } else { "entries" });
            let shards = rt.shards;
            return match self.blame(&["runtime.cpus", "runtime.shards"]) {
                "runtime.cpus" => self.fail(
                    "runtime.cpus",
                    format!("has {entries} but runtime.shards = {shards} (one CPU per shard, or shards = 0)"),
                ),
                p => self.fail(
                    p,
                    format!("is {shards} but runtime.cpus has {entries} (one CPU per shard, or shards = 0)"),
                ),
            };
        }
        self.range(
            "runtime.spin_before_park_us",
            rt.spin_before_park_us,
            0,
            1_000_000,
        )?;
        self.range("runtime.poll_interval_us", rt.poll_interval_us, 0, 100_000)?;
        self.range("runtime.io_memory_kib", rt.io_memory_kib, 64, 1 << 20)?;
        self.range("runtime.ring_depth", rt.ring_depth, 1, 32768)?;
        self.range("runtime.udp_recv_batch", rt.udp_recv_batch, 1, 1024)?;
        self.range("runtime.udp_send_batch", rt.udp_send_batch, 1, 1024)?;
        self.range("runtime.socket_rcvbuf", rt.socket_rcvbuf, 0, 1 << 30)?;
        self.range("runtime.socket_sndbuf", rt.socket_sndbuf, 0, 1 << 30)?;
        self.range(
            "runtime.registrar_sweep_secs",
            rt.registrar_sweep_secs,
            1,
            3600,
        )?;
        Ok(())
    }

    fn proxy(&self) -> Check {
        let px = &self.cfg.proxy;
        if px.udp_port == 0 {
            return self.fail("proxy.udp_port", "must be 1-65535");
        }
        if px.tcp_max_connections == 0 {
            return self.fail("proxy.tcp_max_connections", "must be at least 1");
        }
        if px.tcp_max_connections_per_ip == 0 {
            return self.fail("proxy.tcp_max_connections_per_ip", "must be at least 1");
        }
        if !(1..=86_400).contains(&px.tcp_idle_secs) {
            return self.fail("proxy.tcp_idle_secs", "must be 1-86400");
        }
        // Two stream listeners on one port would share its connections
        // (SO_REUSEPORT): each kind needs its own.
        let streams = [
            ("proxy.tcp_port", px.tcp_port),
            ("proxy.tls_port", px.tls_port),
            ("proxy.ws_port", px.ws_port),
            ("proxy.wss_port", px.wss_port),
        ];
        for (i, &(key, port)) in streams.iter().enumerate() {
            if let Some((other, _)) = streams[..i].iter().find(|&&(_, p)| p != 0 && p == port) {
                return self.fail(key, format!("{port} is {other} already"));
            }
        }
        for (i, origin) in px.ws_origins.iter().enumerate() {
            let o = origin.trim();
            let scheme_ok = o.starts_with("http://") || o.starts_with("https://");
            let host = o
                .split_once("://")
                .map_or("", |(_, h)| h.trim_end_matches('/'));
            if o != "*" && (!scheme_ok || host.is_empty() || host.contains('/')) {
                return self.fail(
                    &format!("proxy.ws_origins[{i}]"),
                    format!("\"{origin}\": an origin (http[s]://host[:port]) or \"*\""),
                );
            }
        }
        let (cert, key) = (px.tls_cert.as_os_str(), px.tls_key.as_os_str());
        if cert.is_empty() != key.is_empty() {
            let (given, missing) = if cert.is_empty() {
                ("proxy.tls_key", "tls_cert")
            } else {
                ("proxy.tls_cert", "tls_key")
            };
            return self.fail(
                given,
                format!("needs {missing} too (give both, or neither for a self-signed pair)"),
            );
        }
        for (i, realm) in px.realms.iter().enumerate() {
            check_host(realm)
                .map_err(|e| self.err(&format!("proxy.realms[{i}]"), e.to_string()))?;
        }
        if px.digest_algorithms.is_empty() {
            return self.fail(
                "proxy.digest_algorithms",
                "must offer at least one of \"MD5\", \"SHA-256\"",
            );
        }
        for (i, alg) in px.digest_algorithms.iter().enumerate() {
            if px.digest_algorithms[..i].contains(alg) {
                return self.fail(
                    &format!("proxy.digest_algorithms[{i}]"),
                    format!("{} is listed twice", alg.as_str()),
                );
            }
        }
        if !px.external_ip.is_empty() && px.external_ip.parse::<std::net::IpAddr>().is_err() {
            return self.fail(
                "proxy.external_ip",
                format!("\"{}\" is not an IP address (\"\" = none)", px.external_ip),
            );
        }
        self.expires()?;
        self.at_least("proxy.max_ring_time", px.max_ring_time, 1)?;
        self.at_least("proxy.nonce_ttl_secs", px.nonce_ttl_secs, 1)?;
        self.range(
            "proxy.overload_max_delay_ms",
            px.overload_max_delay_ms,
            0,
            30_000,
        )?;
        self.range(
            "proxy.overload_max_store_queue",
            px.overload_max_store_queue,
            0,
            10_000_000,
        )?;
        self.range(
            "proxy.overload_max_stalled_invites",
            px.overload_max_stalled_invites,
            0,
            1_000_000,
        )?;
        self.range(
            "proxy.overload_retry_after_secs",
            px.overload_retry_after_secs,
            1,
            3_600,
        )?;
        if let Err((i, e)) = Acl::parse(&px.acl_rules) {
            return self.fail(&format!("proxy.acl_rules[{i}]"), e.to_string());
        }
        for (key, patterns) in [
            ("proxy.routes_files", &px.routes_files),
            ("proxy.trunks_files", &px.trunks_files),
        ] {
            for (i, p) in patterns.iter().enumerate() {
                if p.trim().is_empty() {
                    return self.fail(&format!("{key}[{i}]"), "must not be empty");
                }
            }
        }
        Ok(())
    }

    fn expires(&self) -> Check {
        let px = &self.cfg.proxy;
        self.range(
            "proxy.max_contacts_per_aor",
            px.max_contacts_per_aor,
            1,
            1000,
        )?;
        let (min, reg, max) = (px.min_expires, px.registrar_expires, px.max_expires);
        if min < 1 {
            return self.fail("proxy.min_expires", "must be at least 1");
        }
        if min > max {
            return match self.blame(&["proxy.min_expires", "proxy.max_expires"]) {
                "proxy.min_expires" => self.fail(
                    "proxy.min_expires",
                    format!("must not exceed proxy.max_expires ({max})"),
                ),
                p => self.fail(
                    p,
                    format!("must not be less than proxy.min_expires ({min})"),
                ),
            };
        }
        if reg < min {
            return match self.blame(&["proxy.registrar_expires", "proxy.min_expires"]) {
                "proxy.registrar_expires" => self.fail(
                    "proxy.registrar_expires",
                    format!("must be at least proxy.min_expires ({min})"),
                ),
                p => self.fail(
                    p,
                    format!("must not exceed proxy.registrar_expires ({reg})"),
                ),
            };
        }
        if reg > max {
            return match self.blame(&["proxy.registrar_expires", "proxy.max_expires"]) {
                "proxy.registrar_expires" => self.fail(
                    "proxy.registrar_expires",
                    format!("must not exceed proxy.max_expires ({max})"),
                ),
                p => self.fail(
                    p,
                    format!("must not be less than proxy.registrar_expires ({reg})"),
                ),
            };
        }
        Ok(())
    }

    fn user_backends(&self) -> Check {
        for (i, b) in self.cfg.proxy.user_backends.iter().enumerate() {
            self.user_backend(&format!("proxy.user_backends[{i}]"), b)?;
        }
        Ok(())
    }

    fn user_backend(&self, at: &str, b: &UserBackendConfig) -> Check {
        let Some(kind) = b.kind else {
            return self.fail(
                &child(at, "type"),
                "missing; one of \"memory\", \"http\", \"extensions\"",
            );
        };
        let kind_name = match kind {
            UserBackendType::Memory => "memory",
            UserBackendType::Http => "http",
            UserBackendType::Extensions => "extensions",
        };
        use UserBackendType::{Http, Memory};
        let keys: [(&str, bool, Option<UserBackendType>); 9] = [
            ("users", b.users.is_some(), Some(Memory)),
            ("url", b.url.is_some(), Some(Http)),
            ("username_field", b.username_field.is_some(), Some(Http)),
            ("realm_field", b.realm_field.is_some(), Some(Http)),
            ("headers", b.headers.is_some(), Some(Http)),
            ("password_is_ha1", b.password_is_ha1.is_some(), Some(Http)),
            ("cache_ttl_secs", b.cache_ttl_secs.is_some(), Some(Http)),
            (
                "negative_cache_ttl_secs",
                b.negative_cache_ttl_secs.is_some(),
                Some(Http),
            ),
            ("timeout_ms", b.timeout_ms.is_some(), Some(Http)),
        ];
        for (key, present, owner) in keys {
            if present && owner != Some(kind) {
                let owner = if owner == Some(Memory) {
                    "memory"
                } else {
                    "http"
                };
                return self.fail(
                    &child(at, key),
                    format!("not a key of type = \"{kind_name}\" (only of type = \"{owner}\")"),
                );
            }
        }
        match kind {
            UserBackendType::Memory => {
                let users = b.users.as_deref().unwrap_or_default();
                let mut seen = HashSet::new();
                for (j, u) in users.iter().enumerate() {
                    let up = format!("{at}.users[{j}]");
                    if u.username.trim().is_empty() {
                        return self.fail(&child(&up, "username"), "must not be empty");
                    }
                    if u.generate_password && !u.password.is_empty() {
                        return self.fail(
                            &child(&up, "password"),
                            "set password or generate_password = true, not both",
                        );
                    }
                    if !u.generate_password && u.password.is_empty() {
                        return self.fail(
                            &child(&up, "password"),
                            "must not be empty (or set generate_password = true)",
                        );
                    }
                    if let Some(realm) = &u.realm {
                        check_host(realm)
                            .map_err(|e| self.err(&child(&up, "realm"), e.to_string()))?;
                    }
                    for (k, id) in u.allowed_caller_ids.iter().enumerate() {
                        let ok = !id.is_empty()
                            && id.len() <= 64
                            && id
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || "-_.!~*+".contains(c));
                        if !ok {
                            return self.fail(
                                &format!("{up}.allowed_caller_ids[{k}]"),
                                format!("{id:?}: 1-64 letters, digits and -_.!~*+"),
                            );
                        }
                    }
                    let realm = u.realm.as_deref().unwrap_or("").to_ascii_lowercase();
                    if !seen.insert((u.username.clone(), realm)) {
                        return self.fail(
                            &child(&up, "username"),
                            format!("\"{}\" appears twice in this backend", u.username),
                        );
                    }
                }
            }
            UserBackendType::Http => {
                match &b.url {
                    None => return self.fail(&child(at, "url"), "required for type = \"http\""),
                    Some(url) => self.url(&child(at, "url"), url)?,
                }
                for (key, v) in [
                    ("username_field", &b.username_field),
                    ("realm_field", &b.realm_field),
                ] {
                    if v.as_deref().is_some_and(|f| f.trim().is_empty()) {
                        return self.fail(&child(at, key), "must not be empty");
                    }
                }
                if let Some(h) = &b.headers {
                    self.headers(&child(at, "headers"), h)?;
                }
                if let Some(t) = b.timeout_ms {
                    self.at_least(&child(at, "timeout_ms"), t, 1)?;
                }
            }
            UserBackendType::Extensions => {}
        }
        Ok(())
    }

    fn webhooks(&self) -> Check {
        if let Some(r) = &self.cfg.proxy.http_router {
            if r.url.is_empty() {
                return self.fail("proxy.http_router.url", "required");
            }
            self.url("proxy.http_router.url", &r.url)?;
            self.at_least("proxy.http_router.timeout_ms", r.timeout_ms, 1)?;
            self.headers("proxy.http_router.headers", &r.headers)?;
        }
        if let Some(l) = &self.cfg.proxy.locator_webhook {
            if l.url.is_empty() {
                return self.fail("proxy.locator_webhook.url", "required");
            }
            self.url("proxy.locator_webhook.url", &l.url)?;
            if l.events.is_empty() {
                return self.fail(
                    "proxy.locator_webhook.events",
                    "must list at least one of \"registered\", \"unregistered\", \"offline\"",
                );
            }
            self.at_least("proxy.locator_webhook.max_age_secs", l.max_age_secs, 1)?;
            self.at_least("proxy.locator_webhook.timeout_ms", l.timeout_ms, 1)?;
            self.at_least(
                "proxy.locator_webhook.retry_initial_ms",
                l.retry_initial_ms,
                1,
            )?;
            self.at_least("proxy.locator_webhook.retry_max_secs", l.retry_max_secs, 1)?;
            self.headers("proxy.locator_webhook.headers", &l.headers)?;
        }
        Ok(())
    }

    fn media(&self) -> Check {
        let m = &self.cfg.media;
        let (start, end) = (m.rtp_port_start, m.rtp_port_end);
        if start == 0 {
            return self.fail("media.rtp_port_start", "must be 1-65535");
        }
        if start % 2 != 0 {
            return self.fail(
                "media.rtp_port_start",
                format!("must be even (RTP on even ports, RTCP on the next), not {start}"),
            );
        }
        if start >= end {
            return match self.blame(&["media.rtp_port_end", "media.rtp_port_start"]) {
                "media.rtp_port_end" => self.fail(
                    "media.rtp_port_end",
                    format!("must be greater than media.rtp_port_start ({start})"),
                ),
                p => self.fail(p, format!("must be less than media.rtp_port_end ({end})")),
            };
        }
        let shards = self.cfg.shard_count();
        if self.cfg.rtp_ports_per_shard() < 2 {
            let p = self.blame(&[
                "media.rtp_port_end",
                "media.rtp_port_start",
                "runtime.shards",
            ]);
            return self.fail(
                p,
                format!(
                    "the RTP range {start}..{end} has {} ports, fewer than 2 per shard for {shards} shards",
                    end - start
                ),
            );
        }
        let sip = self.cfg.proxy.udp_port;
        if (start..end).contains(&sip) {
            let p = self.blame(&[
                "media.rtp_port_start",
                "media.rtp_port_end",
                "proxy.udp_port",
            ]);
            return self.fail(
                p,
                format!(
                    "the RTP range {start}..{end} contains the SIP port proxy.udp_port ({sip})"
                ),
            );
        }
        if self.cfg.recording.path.as_os_str().is_empty() {
            return self.fail("recording.path", "must not be empty");
        }
        Ok(())
    }

    fn callrecord(&self) -> Check {
        let cr: &CallRecordConfig = &self.cfg.callrecord;
        self.range(
            "callrecord.max_flow_bytes",
            cr.max_flow_bytes,
            4096,
            16 << 20,
        )?;
        let kind_name = match cr.kind {
            CallRecordType::Local => "local",
            CallRecordType::Http => "http",
            CallRecordType::S3 => "s3",
        };
        use CallRecordType::{Http, S3};
        let keys: [(&str, bool, &[CallRecordType]); 13] = [
            ("url", cr.url.is_some(), &[Http]),
            ("with_media", cr.with_media.is_some(), &[Http]),
            ("headers", cr.headers.is_some(), &[Http]),
            ("bucket", cr.bucket.is_some(), &[S3]),
            ("region", cr.region.is_some(), &[S3]),
            ("endpoint", cr.endpoint.is_some(), &[S3]),
            ("access_key", cr.access_key.is_some(), &[S3]),
            ("secret_key", cr.secret_key.is_some(), &[S3]),
            ("root", cr.root.is_some(), &[S3]),
            ("keep_local", cr.keep_local.is_some(), &[S3]),
            ("timeout_ms", cr.timeout_ms.is_some(), &[Http, S3]),
            (
                "retry_initial_ms",
                cr.retry_initial_ms.is_some(),
                &[Http, S3],
            ),
            ("retry_max_secs", cr.retry_max_secs.is_some(), &[Http, S3]),
        ];
        for (key, present, owners) in keys {
            if present && !owners.contains(&cr.kind) {
                let owners: Vec<String> = owners
                    .iter()
                    .map(|o| format!("\"{}\"", if *o == Http { "http" } else { "s3" }))
                    .collect();
                return self.fail(
                    &format!("callrecord.{key}"),
                    format!(
                        "not a key of type = \"{kind_name}\" (only of type = {})",
                        owners.join(" or ")
                    ),
                );
            }
        }
        match cr.kind {
            CallRecordType::Local => {}
            CallRecordType::Http => {
                match cr.url.as_deref() {
                    None | Some("") => {
                        return self.fail("callrecord.url", "required for type = \"http\"")
                    }
                    Some(url) => self.url("callrecord.url", url)?,
                }
                if let Some(h) = &cr.headers {
                    self.headers("callrecord.headers", h)?;
                }
            }
            CallRecordType::S3 => {
                match cr.bucket.as_deref() {
                    None | Some("") => {
                        return self.fail("callrecord.bucket", "required for type = \"s3\"")
                    }
                    Some(b) => {
                        if !valid_bucket(b) {
                            return self.fail(
                                "callrecord.bucket",
                                format!(
                                    "\"{b}\" is not a valid S3 bucket name (3-63 of a-z 0-9 . -)"
                                ),
                            );
                        }
                    }
                }
                match cr.region.as_deref() {
                    None | Some("") => {
                        return self.fail("callrecord.region", "required for type = \"s3\"")
                    }
                    Some(r) if r.chars().any(|c| c.is_whitespace() || c == '/') => {
                        return self.fail("callrecord.region", format!("\"{r}\" is not a region"))
                    }
                    Some(_) => {}
                }
                if let Some(e) = cr.endpoint.as_deref().filter(|e| !e.is_empty()) {
                    self.url("callrecord.endpoint", e)?;
                }
                let has = |k: &Option<String>| k.as_deref().is_some_and(|k| !k.is_empty());
                if has(&cr.access_key) != has(&cr.secret_key) {
                    let missing = if has(&cr.access_key) {
                        "callrecord.secret_key"
                    } else {
                        "callrecord.access_key"
                    };
                    return self.fail(
                        missing,
                        "access_key and secret_key must be set together (or neither)",
                    );
                }
            }
        }
        if let Some(t) = cr.timeout_ms {
            self.at_least("callrecord.timeout_ms", t, 1)?;
        }
        if let Some(t) = cr.retry_initial_ms {
            self.at_least("callrecord.retry_initial_ms", t, 1)?;
        }
        if let Some(t) = cr.retry_max_secs {
            self.at_least("callrecord.retry_max_secs", t, 1)?;
        }
        Ok(())
    }

    fn rest(&self) -> Check {
        if let Err((i, e)) = AllowList::parse(&self.cfg.ami.allows) {
            return self.fail(&format!("ami.allows[{i}]"), e.to_string());
        }
        self.range(
            "ami.drain_timeout_secs",
            self.cfg.ami.drain_timeout_secs,
            0,
            MAX_DRAIN_TIMEOUT_SECS,
        )?;
        let token = &self.cfg.ami.token;
        if !token.is_empty() {
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return self.fail(
                    "ami.token",
                    "must be printable ASCII without spaces (\"\" = no token)",
                );
            }
            if token.len() < MIN_AMI_TOKEN_LEN {
                return self.fail(
                    "ami.token",
                    format!("must be at least {MIN_AMI_TOKEN_LEN} characters (\"\" = no token)"),
                );
            }
        }
        self.at_least(
            "console.session_ttl_secs",
            self.cfg.console.session_ttl_secs,
            1,
        )?;
        self.range(
            "store.map_size_mib",
            self.cfg.store.map_size_mib,
            1,
            1 << 24,
        )?;
        self.at_least("store.writer_batch", self.cfg.store.writer_batch, 1)?;
        self.security()?;
        self.store_room()
    }

    /// `[security]`.
    fn security(&self) -> Check {
        let sec = &self.cfg.security;
        self.range("security.ban_window_secs", sec.ban_window_secs, 1, 86_400)?;
        self.range("security.ban_secs", sec.ban_secs, 1, 365 * 86_400)?;
        self.range(
            "security.flood_requests_per_sec",
            sec.flood_requests_per_sec,
            0,
            1_000_000,
        )?;
        self.range(
            "security.max_forks_per_call",
            sec.max_forks_per_call,
            1,
            1024,
        )?;
        self.range(
            "security.max_parked_requests",
            sec.max_parked_requests,
            1,
            1_000_000,
        )?;
        for (i, t) in sec.trusted.iter().enumerate() {
            let at = format!("security.trusted[{i}]");
            match shards::routing::HostPattern::parse(t) {
                Ok(shards::routing::HostPattern::Net { .. }) => {}
                Ok(shards::routing::HostPattern::Addr(_)) => {
                    return self.fail(&at, format!("\"{t}\": an IP or CIDR, without a port"))
                }
                Err(e) => return self.fail(&at, e.to_string()),
            }
        }
        Ok(())
    }

    /// `[store]` growth, budget and retention.
    fn store_room(&self) -> Check {
        let st = &self.cfg.store;
        self.range("store.max_disk_mib", st.max_disk_mib, 1, 1 << 24)?;
        if st.max_disk_mib < st.map_size_mib {
            return self.fail(
                self.blame(&["store.max_disk_mib", "store.map_size_mib"]),
                format!(
                    "the disk budget ({} MiB) is below the initial map size (store.map_size_mib = {} MiB)",
                    st.max_disk_mib, st.map_size_mib
                ),
            );
        }
        for (key, days) in [
            ("store.cdr_retention_days", st.cdr_retention_days),
            ("store.flow_retention_days", st.flow_retention_days),
        ] {
            if !days.is_finite() || !(0.0..=36500.0).contains(&days) {
                return self.fail(key, format!("must be 0-36500 days (0 = keep), not {days}"));
            }
        }
        Ok(())
    }
}

/// S3 bucket naming rules (also what MinIO accepts).
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
        && !b.contains("..")
}

/// "0-3,6" style list.
fn cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list(&[0, 1, 2, 3]), "0-3");
        assert_eq!(cpu_list(&[0, 2, 3, 7]), "0,2-3,7");
        assert_eq!(cpu_list(&[5]), "5");
    }

    #[test]
    fn cpu_list_round_trip() {
        use super::super::derived::parse_cpu_list;
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n").unwrap(),
            [0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(
            cpu_list(&parse_cpu_list("0-3,8,10-11").unwrap()),
            "0-3,8,10-11"
        );
        assert!(parse_cpu_list("3-1").is_none());
        assert!(parse_cpu_list("x").is_none());
    }

    #[test]
    fn buckets() {
        assert!(valid_bucket("cdr-archive.2026"));
        assert!(!valid_bucket("ab"));
        assert!(!valid_bucket("Upper"));
        assert!(!valid_bucket("-x-"));
        assert!(!valid_bucket("a..b"));
    }
}
