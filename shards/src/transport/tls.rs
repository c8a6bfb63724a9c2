//! SIP over TLS (RFC 3261 section 26.2, TLS 1.2/1.3 through rustls with
//! the ring provider): the server configuration from PEM files, and what
//! a shard needs to dial a trunk over TLS ([`TlsDial`]: the client
//! configuration that verifies the trunk, and the name it must have).
//!
//! Loading reads files, so it runs on the control core (at start and on an
//! AMI reload), never on a shard; shards get the finished
//! `Arc<ServerConfig>`.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// How to dial one TLS destination: verify its certificate with
/// `config`'s roots, as `name`.
#[derive(Clone, Debug)]
pub struct TlsDial {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

impl TlsDial {
    /// Trusts the CA certificates of `ca_pem` only (a pinned CA), or the
    /// public web PKI roots when `None`; verifies the peer as `name` (a DNS
    /// name or an IP address).
    pub fn new(ca_pem: Option<&[u8]>, name: &str) -> Result<TlsDial, TlsError> {
        let mut roots = RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                let mut n = 0;
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert =
                        cert.map_err(|e| TlsError::Cert(format!("not a PEM CA certificate: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| TlsError::Cert(format!("not a usable CA certificate: {e}")))?;
                    n += 1;
                }
                if n == 0 {
                    return Err(TlsError::Cert("no CERTIFICATE block".into()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let name = ServerName::try_from(name.to_string()).map_err(|_| {
            TlsError::Cert(format!("\"{name}\" is not a DNS name or an IP address"))
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Cert(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsDial {
            config: Arc::new(config),
            name,
        })
    }
}

/// A server configuration from a PEM certificate chain and a PEM private
/// key (PKCS#8, PKCS#1 or SEC1). The error says what is wrong, for the
/// `proxy.tls_cert` / `proxy.tls_key` message.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert(format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Cert("no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError::Key(format!("not a PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Cert(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Key(format!("does not fit the certificate: {e}")))?;
    Ok(Arc::new(config))
}

/// Why a certificate or key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// The certificate chain.
    Cert(String),
    /// The private key (or the pair).
    Key(String),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Cert(e) | TlsError::Key(e) => f.write_str(e),
        }
    }
}

/// The SHA-256 fingerprint of the first certificate of a PEM chain, as
/// `AB:CD:...` (what a phone shows and asks to trust).
pub fn fingerprint(cert_pem: &[u8]) -> Option<String> {
    use sha2::{Digest, Sha256};
    let first = CertificateDer::pem_slice_iter(cert_pem).next()?.ok()?;
    let digest = Sha256::digest(first.as_ref());
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    Some(hex.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A throwaway P-256 pair for pbx.test (made with openssl for these
    // tests only; it protects nothing).
    const CERT: &str = include_str!("testdata/test_cert.pem");
    const KEY: &str = include_str!("testdata/test_key.pem");

    #[test]
    fn a_pem_pair_makes_a_config() {
        server_config(CERT.as_bytes(), KEY.as_bytes()).unwrap();
        let fp = fingerprint(CERT.as_bytes()).unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        assert!(matches!(
            server_config(b"garbage", KEY.as_bytes()),
            Err(TlsError::Cert(_))
        ));
        assert!(matches!(
            server_config(
                CERT.as_bytes(),
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            ),
            Err(TlsError::Key(_))
        ));
        // A key of another pair.
        let other = include_str!("testdata/test_other_key.pem");
        assert!(matches!(
            server_config(CERT.as_bytes(), other.as_bytes()),
            Err(TlsError::Key(_))
        ));
    }
}
