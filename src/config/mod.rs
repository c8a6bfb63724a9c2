//! Configuration: loading, the error type, and the module's public surface.
//!
//! `Config::load` reads one TOML file (API.md section 1), rejects unknown keys and
//! wrong types, validates values, and on any problem returns a `ConfigError` whose
//! `Display` is one line: `<file>:<line>: <dotted.key>: <reason>`.
//! `Config::apply_profile` overlays a perf profile's `[runtime]` table.
//!
//! Layout: `schema` (structs and defaults), `validate` (semantic checks),
//! `profile` (perf profiles), `acl` (CIDRs, ACL rules), `syntax` (hostname/URL/
//! header checks), `derived` (helpers the server uses), `locate` (spans -> lines).

mod acl;
mod derived;
mod locate;
mod profile;
pub mod routes_files;
mod schema;
mod syntax;
mod validate;

#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

pub use acl::{Acl, AclNet, AclRule, AllowList, Cidr};
pub use derived::{
    available_cpus, online_cpus, CallRecordTarget, HttpCallRecord, HttpUserBackend, S3CallRecord,
    UserBackend, MAX_SHARDS,
};
pub use schema::{
    AmiConfig, CallRecordConfig, CallRecordType, Config, ConsoleConfig, DigestAlgorithm, Headers,
    HttpRouterConfig, LocatorEvent, LocatorWebhookConfig, LogLevel, MediaConfig, MediaProxyMode,
    MemoryUser, ProxyConfig, RecordingConfig, RuntimeConfig, SecurityConfig, StoreConfig,
    UserBackendConfig, UserBackendType, MAX_DRAIN_TIMEOUT_SECS,
};

use locate::{format_path, one_line, parse_path, SourceDoc};

/// Where the config is read from when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/shardpbx.toml";

/// A config that cannot be used. `Display` is one line:
/// `<file>:<line>: <key>: <reason>` (the line is left out when unknown, e.g. for
/// a file that cannot be read; the key when the problem is not one key's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as it was named to `load`/`apply_profile`.
    pub file: PathBuf,
    /// 1-based.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `proxy.user_backends[0].url`; may be empty.
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    /// The process exit code for a config that refuses to start (API.md section 1).
    pub const EXIT_CODE: i32 = 2;

    pub(crate) fn new(
        file: &Path,
        line: Option<usize>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            line,
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = read(path)?;
        Config::parse(path, &text)
    }

    /// Parses and validates config text; `file` names it in errors.
    pub fn parse(file: impl AsRef<Path>, text: &str) -> Result<Config, ConfigError> {
        let doc = SourceDoc::parse(file.as_ref(), text)?;
        let mut cfg: Config = typed(&doc)?;
        cfg.sources = vec![doc];
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a config and then applies the perf profile, if any.
    pub fn load_with_profile(
        path: impl AsRef<Path>,
        profile: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let mut cfg = Config::load(path)?;
        if let Some(p) = profile {
            cfg.apply_profile(p)?;
        }
        Ok(cfg)
    }

    /// Checks every value (also run by `load`); errors point into the files this
    /// config was read from.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self)
    }

    /// The files this config was read from: the config, then applied profiles.
    pub fn source_files(&self) -> Vec<&Path> {
        self.sources.iter().map(|s| s.file.as_path()).collect()
    }
}

pub(crate) fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path, None, "", format!("cannot read: {e}")))
}

/// Deserializes a parsed document into `T`, turning toml's error into a located one.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(doc: &SourceDoc) -> Result<T, ConfigError> {
    toml::from_str::<T>(doc.text()).map_err(|e| {
        let (line, key) = match e.span() {
            Some(span) => (
                Some(doc.line_of_offset(span.start)),
                format_path(&doc.path_at(span.start)),
            ),
            None => (None, String::new()),
        };
        ConfigError::new(&doc.file, line, key, humanize(e.message()))
    })
}

/// An error about `path` (dotted, see `locate::parse_path`), located in the last
/// source that sets that key; failing that, in the source holding the deepest
/// part of the path (its table), preferring later sources.
pub(crate) fn error_at(
    sources: &[SourceDoc],
    path: &str,
    reason: impl Into<String>,
) -> ConfigError {
    let segs = parse_path(path);
    let mut best: Option<(&SourceDoc, usize, Option<usize>)> = None;
    for doc in sources {
        let (depth, line) = doc.find(&segs);
        if best.is_none_or(|(_, d, _)| depth >= d) {
            best = Some((doc, depth, line));
        }
    }
    match best {
        Some((doc, _, line)) => ConfigError::new(&doc.file, line, path, reason),
        None => ConfigError::new(Path::new("(built-in config)"), None, path, reason),
    }
}

/// Index of the last source that sets `path`.
pub(crate) fn set_in(sources: &[SourceDoc], path: &str) -> Option<usize> {
    let segs = parse_path(path);
    sources.iter().rposition(|d| d.find(&segs).0 == segs.len())
}

/// Rewrites serde/toml messages into config terms, on one line.
fn humanize(msg: &str) -> String {
    let msg = one_line(msg);
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        return match closest(name, &expected) {
            Some(s) => format!("unknown key (did you mean `{s}`?)"),
            None => "unknown key".to_string(),
        };
    }
    let mut out = msg.replacen("unknown variant", "unknown value", 1);
    for (from, to) in [
        ("expected u8", "expected an integer 0-255"),
        ("expected u16", "expected an integer 0-65535"),
        ("expected u32", "expected an integer 0-4294967295"),
        ("expected u64", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        (
            "invalid socket address syntax",
            "invalid socket address (expected ip:port, e.g. 127.0.0.1:8080)",
        ),
        ("invalid IP address syntax", "invalid IP address"),
    ] {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    if let Some(i) = out.find("expected struct ") {
        out.truncate(i);
        out.push_str("expected a table");
    }
    out
}

/// The expected key nearest to `name` (edit distance at most 2, or one contains
/// the other), for "did you mean".
fn closest<'a>(name: &str, expected: &[&'a str]) -> Option<&'a str> {
    expected
        .iter()
        .map(|e| (edit_distance(name, e), *e))
        .filter(|(d, e)| *d <= 2 || (name.len() >= 3 && (e.contains(name) || name.contains(e))))
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
