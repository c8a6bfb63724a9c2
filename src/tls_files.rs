//! The SIP listener's TLS certificate on disk: the PEM pair `[proxy]
//! tls_cert` / `tls_key` names, or, when neither is given, a self-signed
//! pair made on first start and kept in `data_dir/tls/` (key mode 0600), so
//! the shipped config works before anyone has a certificate. Read at start
//! and on `POST /ami/v1/reload/tls`; never on a shard.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;

/// The self-signed pair's files under `data_dir`.
const SELF_CERT: &str = "tls/self-signed.crt";
const SELF_KEY: &str = "tls/self-signed.key";

/// A loaded certificate: the configuration the shards take, and what the
/// log says about it.
pub struct Loaded {
    pub config: Arc<rustls::ServerConfig>,
    pub cert_path: PathBuf,
    /// SHA-256 of the certificate, `AB:CD:..`.
    pub fingerprint: String,
    pub self_signed: bool,
}

/// Why there is no certificate: the config key and the reason.
#[derive(Debug)]
pub struct TlsFileError {
    pub key: &'static str,
    pub reason: String,
}

impl std::fmt::Display for TlsFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for TlsFileError {}

fn err(key: &'static str, reason: impl Into<String>) -> TlsFileError {
    TlsFileError {
        key,
        reason: reason.into(),
    }
}

/// Loads the configured pair, or the self-signed one (made if missing).
pub fn load(cfg: &Config) -> Result<Loaded, TlsFileError> {
    let px = &cfg.proxy;
    let self_signed = px.tls_cert.as_os_str().is_empty();
    let (cert_path, key_path) = if self_signed {
        let (c, k) = (
            cfg.data_dir().join(SELF_CERT),
            cfg.data_dir().join(SELF_KEY),
        );
        if !c.exists() || !k.exists() {
            make_self_signed(cfg, &c, &k)?;
        }
        (c, k)
    } else {
        (
            cfg.under_data_dir(&px.tls_cert),
            cfg.under_data_dir(&px.tls_key),
        )
    };
    let cert = read(&cert_path, "proxy.tls_cert")?;
    let key = read(&key_path, "proxy.tls_key")?;
    let config = shards::transport::tls::server_config(&cert, &key).map_err(|e| match e {
        shards::transport::tls::TlsError::Cert(r) => {
            err("proxy.tls_cert", format!("{}: {r}", cert_path.display()))
        }
        shards::transport::tls::TlsError::Key(r) => {
            err("proxy.tls_key", format!("{}: {r}", key_path.display()))
        }
    })?;
    let fingerprint = shards::transport::tls::fingerprint(&cert).unwrap_or_default();
    Ok(Loaded {
        config,
        cert_path,
        fingerprint,
        self_signed,
    })
}

fn read(path: &Path, key: &'static str) -> Result<Vec<u8>, TlsFileError> {
    fs::read(path).map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))
}

/// A self-signed ECDSA P-256 pair for the names a phone may dial: the
/// realms, `external_ip`, the listen address when it is one, `localhost`
/// and 127.0.0.1. Valid ten years; replace it with a real one for phones
/// that verify.
fn make_self_signed(cfg: &Config, cert: &Path, key: &Path) -> Result<(), TlsFileError> {
    const KEY: &str = "proxy.tls_cert";
    let px = &cfg.proxy;
    let mut names: Vec<String> = px.realms.clone();
    if !px.external_ip.is_empty() {
        names.push(px.external_ip.clone());
    }
    if !px.addr.is_unspecified() {
        names.push(px.addr.to_string());
    }
    for n in ["localhost", "127.0.0.1"] {
        names.push(n.to_string());
    }
    names.dedup();
    let pair =
        rcgen::KeyPair::generate().map_err(|e| err(KEY, format!("cannot make a key: {e}")))?;
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| err(KEY, format!("cannot name the certificate: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ShardPBX self-signed");
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let made = params
        .self_signed(&pair)
        .map_err(|e| err(KEY, format!("cannot sign: {e}")))?;
    if let Some(dir) = cert.parent() {
        crate::private_files::private_dir(dir).map_err(|e| err(KEY, e.to_string()))?;
    }
    write_new(key, pair.serialize_pem().as_bytes(), 0o600).map_err(|e| {
        err(
            "proxy.tls_key",
            format!("cannot write {}: {e}", key.display()),
        )
    })?;
    write_new(cert, made.pem().as_bytes(), 0o644)
        .map_err(|e| err(KEY, format!("cannot write {}: {e}", cert.display())))?;
    tracing::info!(cert = %cert.display(), "made a self-signed TLS certificate (set proxy.tls_cert and tls_key for a real one)");
    Ok(())
}

/// Writes `data` to a new file with `mode` (replacing a half-made one).
fn write_new(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}
