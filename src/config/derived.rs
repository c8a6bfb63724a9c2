//! Values derived from a loaded config for the server: resolved paths, shard
//! count and CPU pinning, per-shard RTP port slices, parsed address lists, and
//! typed views of the `type`-tagged tables (user backends, callrecord).

use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use super::acl::{Acl, AllowList};
use super::schema::{
    CallRecordConfig, CallRecordType, Config, Headers, MemoryUser, ProxyConfig, UserBackendConfig,
    UserBackendType,
};

/// Most shards a config may ask for.
pub const MAX_SHARDS: usize = 1024;

/// The CPUs this process may run on (its affinity mask), ascending: where shards
/// go when `cpus` is not set. Falls back to `0..available_parallelism` where the
/// mask cannot be read. With `isolcpus=`, isolated CPUs are not in this mask.
pub fn available_cpus() -> &'static [usize] {
    static CPUS: OnceLock<Vec<usize>> = OnceLock::new();
    CPUS.get_or_init(|| {
        let mut cpus = crate::os::affinity_cpus();
        if cpus.is_empty() {
            let n = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
            cpus = (0..n).collect();
        }
        cpus
    })
}

/// The CPUs that exist and are online, ascending: what `cpus` may name (this
/// includes CPUs isolated with `isolcpus=`, which a shard may be pinned to).
/// Read from /sys/devices/system/cpu/online; falls back to `available_cpus()`.
pub fn online_cpus() -> &'static [usize] {
    static CPUS: OnceLock<Vec<usize>> = OnceLock::new();
    CPUS.get_or_init(|| {
        let mut cpus = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| parse_cpu_list(&s))
            .unwrap_or_default();
        for &c in available_cpus() {
            if !cpus.contains(&c) {
                cpus.push(c);
            }
        }
        cpus.sort_unstable();
        cpus
    })
}

/// Parses the kernel's CPU list format, e.g. "0-3,8,10-11".
pub(crate) fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1 << 16 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

impl Config {
    /// `data_dir`, made absolute against the process working directory.
    pub fn data_dir(&self) -> PathBuf {
        absolute(&self.data_dir)
    }

    /// Where recordings go: `recording.path` under `data_dir()` unless absolute.
    pub fn recording_path(&self) -> PathBuf {
        if self.recording.path.is_absolute() {
            self.recording.path.clone()
        } else {
            self.data_dir().join(&self.recording.path)
        }
    }

    /// A path of the config under `data_dir()` unless absolute.
    pub fn under_data_dir(&self, path: &std::path::Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.data_dir().join(path)
        }
    }

    /// Number of shards to start: `runtime.shards`, or when 0 the number of `cpus`
    /// entries, or when that is empty too one per available CPU. At most 1024.
    pub fn shard_count(&self) -> usize {
        let rt = &self.runtime;
        let n = if rt.shards != 0 {
            rt.shards
        } else if !rt.cpus.is_empty() {
            rt.cpus.len()
        } else {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        };
        n.clamp(1, MAX_SHARDS)
    }

    /// The CPU shard `i` is pinned to: `cpus[i]` when `cpus` is set, else the i-th
    /// CPU this process may run on (wrapping when there are more shards than CPUs).
    pub fn cpu_for_shard(&self, i: usize) -> usize {
        match self.runtime.cpus.get(i) {
            Some(&cpu) => cpu,
            None => {
                let cpus = available_cpus();
                cpus[i % cpus.len()]
            }
        }
    }

    /// Even-sized, even-aligned RTP ports (`start..end`) of shard `i` of
    /// `shard_count()`. Validation guarantees at least one pair per shard.
    pub fn rtp_ports_for_shard(&self, i: usize) -> Range<u16> {
        let per = self.rtp_ports_per_shard();
        let start = u32::from(self.media.rtp_port_start) + per * i as u32;
        let end = start + per;
        clamp_port(start)..clamp_port(end)
    }

    /// RTP ports each shard gets (even; the leftover at the top is unused).
    pub fn rtp_ports_per_shard(&self) -> u32 {
        let span =
            u32::from(self.media.rtp_port_end).saturating_sub(u32::from(self.media.rtp_port_start));
        (span / self.shard_count() as u32) & !1
    }

    pub fn ami_allow_list(&self) -> AllowList {
        AllowList::parse(&self.ami.allows).unwrap_or_default()
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.ami.drain_timeout_secs)
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.console.session_ttl_secs)
    }
}

fn clamp_port(p: u32) -> u16 {
    u16::try_from(p).unwrap_or(u16::MAX)
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match std::env::current_dir() {
        Ok(cwd) => {
            // Drop a leading "./" so paths print cleanly.
            let rel = p.strip_prefix(".").unwrap_or(p);
            cwd.join(rel)
        }
        Err(_) => p.to_path_buf(),
    }
}

impl ProxyConfig {
    /// The parsed `acl_rules` (validated at load, so nothing is dropped then).
    pub fn acl(&self) -> Acl {
        Acl::parse(&self.acl_rules).unwrap_or_default()
    }

    /// `external_ip` as an address; None when empty.
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.external_ip.parse().ok()
    }

    /// True when `host` (no port; IPv6 with or without brackets) is one of
    /// `realms` or `external_ip`, compared case-insensitively. Listen addresses
    /// also make a URI local; the caller knows those.
    pub fn is_realm(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.strip_suffix('.').unwrap_or(host);
        self.realms.iter().any(|r| {
            let r = r.trim_start_matches('[').trim_end_matches(']');
            r.strip_suffix('.').unwrap_or(r).eq_ignore_ascii_case(host)
        }) || (!self.external_ip.is_empty() && self.external_ip.eq_ignore_ascii_case(host))
    }

    pub fn nonce_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.nonce_ttl_secs))
    }
}

/// A user backend with its type-specific settings and defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub enum UserBackend {
    Memory(Vec<MemoryUser>),
    Http(HttpUserBackend),
    /// Console-managed extensions in LMDB.
    Extensions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUserBackend {
    pub url: String,
    pub username_field: String,
    pub realm_field: String,
    pub headers: Headers,
    pub password_is_ha1: bool,
    pub cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
    pub timeout: Duration,
}

impl UserBackendConfig {
    /// The typed backend. `type` is required by validation; an entry without one
    /// (only possible in an unvalidated config) reads as an empty memory backend.
    pub fn backend(&self) -> UserBackend {
        match self.kind {
            Some(UserBackendType::Memory) | None => {
                UserBackend::Memory(self.users.clone().unwrap_or_default())
            }
            Some(UserBackendType::Extensions) => UserBackend::Extensions,
            Some(UserBackendType::Http) => UserBackend::Http(HttpUserBackend {
                url: self.url.clone().unwrap_or_default(),
                username_field: self
                    .username_field
                    .clone()
                    .unwrap_or_else(|| "username".into()),
                realm_field: self.realm_field.clone().unwrap_or_else(|| "realm".into()),
                headers: self.headers.clone().unwrap_or_default(),
                password_is_ha1: self.password_is_ha1.unwrap_or(false),
                cache_ttl: Duration::from_secs(self.cache_ttl_secs.unwrap_or(30)),
                // Known and unknown users cached alike by default: a shorter
                // life for "unknown" lets a guesser tell them apart by timing.
                negative_cache_ttl: Duration::from_secs(
                    self.negative_cache_ttl_secs
                        .or(self.cache_ttl_secs)
                        .unwrap_or(30),
                ),
                timeout: Duration::from_millis(self.timeout_ms.unwrap_or(5000)),
            }),
        }
    }
}

/// Where CDRs are pushed, with defaults applied. CDRs are always kept in LMDB too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallRecordTarget {
    Local,
    Http(HttpCallRecord),
    S3(S3CallRecord),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCallRecord {
    pub url: String,
    pub with_media: bool,
    pub headers: Headers,
    pub timeout: Duration,
}

/// The retry schedule of CDR pushes (http and s3), with defaults applied:
/// (first wait, longest wait).
impl CallRecordConfig {
    pub fn retry(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.retry_initial_ms.unwrap_or(1000)),
            Duration::from_secs(self.retry_max_secs.unwrap_or(300)),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3CallRecord {
    pub bucket: String,
    pub region: String,
    /// None = AWS; Some = that endpoint, path-style.
    pub endpoint: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// Key prefix without leading or trailing '/'; may be empty.
    pub root: String,
    pub timeout: Duration,
    /// Keep local recordings once uploaded.
    pub keep_local: bool,
}

/// Default per-attempt timeout of a CDR push, ms.
pub(super) const CALLRECORD_TIMEOUT_MS: u64 = 30_000;

impl CallRecordConfig {
    pub fn target(&self) -> CallRecordTarget {
        let timeout = Duration::from_millis(self.timeout_ms.unwrap_or(CALLRECORD_TIMEOUT_MS));
        match self.kind {
            CallRecordType::Local => CallRecordTarget::Local,
            CallRecordType::Http => CallRecordTarget::Http(HttpCallRecord {
                url: self.url.clone().unwrap_or_default(),
                with_media: self.with_media.unwrap_or(true),
                headers: self.headers.clone().unwrap_or_default(),
                timeout,
            }),
            CallRecordType::S3 => CallRecordTarget::S3(S3CallRecord {
                bucket: self.bucket.clone().unwrap_or_default(),
                region: self.region.clone().unwrap_or_default(),
                endpoint: self.endpoint.clone().filter(|e| !e.is_empty()),
                access_key: self.access_key.clone().filter(|k| !k.is_empty()),
                secret_key: self.secret_key.clone().filter(|k| !k.is_empty()),
                root: self
                    .root
                    .as_deref()
                    .unwrap_or("cdr")
                    .trim_matches('/')
                    .to_string(),
                timeout,
                keep_local: self.keep_local.unwrap_or(true),
            }),
        }
    }
}
