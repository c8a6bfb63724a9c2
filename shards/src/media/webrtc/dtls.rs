//! DTLS-SRTP (RFC 5763/5764) for one leg, over the sans-IO `dimpl`: owns
//! our identity (a self-signed ECDSA P-256 certificate and key, made once
//! per shard and shared by `Arc`, and its fingerprint for SDP), the DTLS
//! role, feeding datagrams and draining what `dimpl` has to send, its
//! timers, checking the peer's certificate against the fingerprint of its
//! SDP, and the SRTP master keys exported on completion (RFC 5764 4.2).
//!
//! Time: `dimpl` wants `std::time::Instant`s. The leg is given
//! milliseconds (`now_ms`, monotonic) and turns them into instants from
//! one process-wide anchor, `ANCHOR`, read from the clock once, the first
//! time this module needs it (`instant_at(ms) = ANCHOR + ms`). This is the
//! only clock read here; only differences between instants matter to
//! `dimpl` (it also puts a wall-clock time in its hello randoms, which is
//! its own business).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dimpl::{Config, Dtls, DtlsCertificate, Output, SrtpProfile};

use super::sdp::{Fingerprint, Setup};
use super::transport::{Error, Failure};
use crate::media::srtp::{MasterKey, Suite};

/// The DTLS role of our end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We wait for the peer's ClientHello (`a=setup:passive`).
    Server,
    /// We send the ClientHello once ICE has selected an address
    /// (`a=setup:active`).
    Client,
}

impl Role {
    /// The `a=setup` to answer with in this role.
    pub fn setup(self) -> Setup {
        match self {
            Role::Server => Setup::Passive,
            Role::Client => Setup::Active,
        }
    }
}

static ANCHOR: OnceLock<Instant> = OnceLock::new();

/// Milliseconds beyond which `now_ms` is not taken literally (a century).
const MAX_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// The instant of `now_ms` (see the module doc).
fn instant_at(now_ms: u64) -> Instant {
    let anchor = *ANCHOR.get_or_init(Instant::now);
    anchor
        .checked_add(Duration::from_millis(now_ms.min(MAX_MS)))
        .unwrap_or(anchor)
}

/// `t` in milliseconds of `now_ms`, rounded up (a timer is never due
/// before its instant).
fn ms_at(t: Instant) -> u64 {
    let anchor = *ANCHOR.get_or_init(Instant::now);
    let nanos = t.saturating_duration_since(anchor).as_nanos();
    u64::try_from(nanos.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// Our DTLS identity: certificate, key and `dimpl` configuration. Make one
/// per shard and share it by `Arc` between legs.
pub struct Identity {
    cert: DtlsCertificate,
    fingerprint: Fingerprint,
    config: Arc<Config>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// How long `dimpl` lets a handshake run (the transport has its own
/// deadline of the same length; whichever fires first fails the leg).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Identity {
    /// A fresh self-signed ECDSA P-256 certificate (valid 1975 to 4096, as
    /// WebRTC certificates are pinned by fingerprint, not validated) with a
    /// serial number from `rng`; the key comes from the system's random
    /// source (through ring).
    pub fn generate(rng: &mut impl FnMut(&mut [u8])) -> Result<Identity, Error> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|_| Error::Certificate)?;
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|_| Error::Certificate)?;
        let mut name = rcgen::DistinguishedName::new();
        name.push(rcgen::DnType::CommonName, "ShardPBX");
        params.distinguished_name = name;
        // A positive, non-zero 16-octet serial: unique per certificate
        // (Firefox refuses two certificates with one serial).
        let mut serial = [0u8; 16];
        rng(&mut serial);
        serial[0] = (serial[0] & 0x7f) | 0x01;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let cert = params.self_signed(&key).map_err(|_| Error::Certificate)?;
        Identity::from_der(cert.der().to_vec(), key.serialize_der())
    }

    /// An identity from a DER certificate and its PKCS#8 DER key (ECDSA
    /// P-256 or P-384).
    pub fn from_der(certificate: Vec<u8>, private_key: Vec<u8>) -> Result<Identity, Error> {
        let config = Config::builder()
            .handshake_timeout(HANDSHAKE_TIMEOUT)
            .build()
            .map_err(|_| Error::Config)?;
        // Refuse a key dimpl cannot sign with now, not at the first call.
        config
            .crypto_provider()
            .key_provider
            .load_private_key(&private_key)
            .map_err(|_| Error::Certificate)?;
        Ok(Identity {
            fingerprint: Fingerprint::of_der(&certificate),
            cert: DtlsCertificate {
                certificate,
                private_key,
            },
            config: Arc::new(config),
        })
    }

    /// The certificate's fingerprint, for `a=fingerprint`.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }
}

/// The suite of our SRTP for a DTLS-SRTP profile. `dimpl` cannot be told
/// which profiles to offer or accept: it offers AEAD_AES_256_GCM,
/// AEAD_AES_128_GCM and AES128_CM_SHA1_80, and as a DTLS 1.2 server
/// prefers them in that order (two of our transports back to back settle
/// on AEAD_AES_256_GCM); `srtp` has all three. `None` (a profile a later
/// `dimpl` might add) fails the leg (`Failure::DtlsError`).
fn suite_of(profile: SrtpProfile) -> Option<Suite> {
    match profile {
        SrtpProfile::AEAD_AES_256_GCM => Some(Suite::AeadAes256Gcm),
        SrtpProfile::AEAD_AES_128_GCM => Some(Suite::AeadAes128Gcm),
        SrtpProfile::AES128_CM_SHA1_80 => Some(Suite::AesCm128HmacSha1_80),
        // `SrtpProfile` is non-exhaustive.
        _ => None,
    }
}

/// Our key to send with and the peer's (to receive with), from the keying
/// material (RFC 5764 4.2: client_write_key | server_write_key |
/// client_write_salt | server_write_salt). `None` for another length.
pub(super) fn srtp_keys(role: Role, suite: Suite, km: &[u8]) -> Option<(MasterKey, MasterKey)> {
    let (k, s) = (suite.key_len(), suite.salt_len());
    if km.len() != 2 * (k + s) {
        return None;
    }
    let (client_key, rest) = km.split_at_checked(k)?;
    let (server_key, rest) = rest.split_at_checked(k)?;
    let (client_salt, server_salt) = rest.split_at_checked(s)?;
    let client = MasterKey::new(suite, &[client_key, client_salt].concat())?;
    let server = MasterKey::new(suite, &[server_key, server_salt].concat())?;
    Some(match role {
        Role::Server => (server, client),
        Role::Client => (client, server),
    })
}

/// Largest output buffer `dimpl` may ask for (its MTU is 1150).
const MAX_OUT: usize = 16 * 1024;
/// Most outputs drained in one go (a flight is a handful of datagrams).
const MAX_OUTPUTS: usize = 64;

/// The DTLS association of one leg.
pub(super) struct Leg {
    dtls: Dtls,
    role: Role,
    /// The peer's fingerprint, from its SDP.
    expected: Fingerprint,
    /// The handshake has begun (client: ClientHello sent; server: the
    /// first datagram fed). Until then `dimpl` is given no time.
    started: bool,
    /// The peer's certificate matched `expected`.
    cert_ok: bool,
    connected: bool,
    keys: Option<(MasterKey, MasterKey)>,
    keys_taken: bool,
    /// `dimpl`'s next timer.
    timeout_ms: Option<u64>,
    /// The latest `now_ms` seen: `dimpl` is never taken back in time.
    last_ms: u64,
    out: Vec<u8>,
    /// Test hook: the raw keying material and its profile.
    #[cfg(test)]
    pub(super) exported: Option<(Vec<u8>, SrtpProfile)>,
}

/// Maps a `dimpl` error (always fatal) to why the leg failed.
fn failure_of(e: &dimpl::Error) -> Failure {
    match e {
        dimpl::Error::Timeout(_) => Failure::DtlsTimeout,
        _ => Failure::DtlsError,
    }
}

impl Leg {
    pub(super) fn new(now_ms: u64, identity: &Identity, role: Role, expected: Fingerprint) -> Leg {
        let now = instant_at(now_ms);
        let (config, cert) = (Arc::clone(&identity.config), identity.cert.clone());
        let dtls = match role {
            // The server follows the peer's ClientHello: DTLS 1.3 if it
            // offers it, else 1.2.
            Role::Server => Dtls::new_auto(config, cert, now),
            // The client speaks DTLS 1.2, which every browser answers.
            Role::Client => {
                let mut d = Dtls::new_12(config, cert, now);
                d.set_active(true);
                d
            }
        };
        Leg {
            dtls,
            role,
            expected,
            started: false,
            cert_ok: false,
            connected: false,
            keys: None,
            keys_taken: false,
            timeout_ms: None,
            last_ms: now_ms,
            out: vec![0; 2048],
            #[cfg(test)]
            exported: None,
        }
    }

    pub(super) fn role(&self) -> Role {
        self.role
    }

    /// The instant of `now_ms`, or of the latest time seen if later.
    fn at(&mut self, now_ms: u64) -> Instant {
        self.last_ms = self.last_ms.max(now_ms);
        instant_at(self.last_ms)
    }

    pub(super) fn is_started(&self) -> bool {
        self.started
    }

    /// Whether to feed `buf` to `dimpl`. As server before the version is
    /// known, only what looks like a ClientHello record (handshake, DTLS,
    /// epoch 0, message type 1): `dimpl` keeps those datagrams until the
    /// ClientHello is whole and fails the leg past 64 of them, so stray
    /// or spoofed datagrams must not count. As client, nothing before we
    /// have started (a ClientHello to a client is not ours).
    pub(super) fn accepts(&self, buf: &[u8]) -> bool {
        match self.role {
            Role::Client => self.started,
            Role::Server if self.dtls.protocol_version().is_some() => true,
            Role::Server => matches!(buf, [22, 0xfe, _, 0, 0, _, _, _, _, _, _, _, _, 1, ..]),
        }
    }

    /// Starts the handshake (as client: the ClientHello goes out).
    pub(super) fn start(
        &mut self,
        now_ms: u64,
        send: &mut impl FnMut(&[u8]),
    ) -> Result<Option<(MasterKey, MasterKey)>, Failure> {
        self.started = true;
        self.handle_timeout(now_ms, send)
    }

    /// Feeds one datagram from the peer.
    pub(super) fn handle_packet(
        &mut self,
        now_ms: u64,
        buf: &[u8],
        send: &mut impl FnMut(&[u8]),
    ) -> Result<Option<(MasterKey, MasterKey)>, Failure> {
        self.started = true;
        // dimpl wants its clock refreshed before a packet at a new instant.
        let now = self.at(now_ms);
        self.dtls.handle_timeout(now).map_err(|e| failure_of(&e))?;
        self.dtls.handle_packet(buf).map_err(|e| failure_of(&e))?;
        self.drain(send)
    }

    /// Gives `dimpl` the time (retransmissions, its deadline).
    pub(super) fn handle_timeout(
        &mut self,
        now_ms: u64,
        send: &mut impl FnMut(&[u8]),
    ) -> Result<Option<(MasterKey, MasterKey)>, Failure> {
        if !self.started {
            return Ok(None);
        }
        let now = self.at(now_ms);
        self.dtls.handle_timeout(now).map_err(|e| failure_of(&e))?;
        self.drain(send)
    }

    /// When `dimpl` wants `handle_timeout` next.
    pub(super) fn poll_timeout(&self) -> Option<u64> {
        self.timeout_ms.filter(|_| self.started)
    }

    /// Drains `dimpl`'s output: datagrams to `send`, the timer, the peer's
    /// certificate (checked now), the keys. Returns the keys once, when
    /// the handshake is complete and the certificate matched.
    fn drain(
        &mut self,
        send: &mut impl FnMut(&[u8]),
    ) -> Result<Option<(MasterKey, MasterKey)>, Failure> {
        for _ in 0..MAX_OUTPUTS {
            let mut grow = None;
            match self.dtls.poll_output(&mut self.out) {
                Output::Packet(p) => send(p),
                Output::BufferTooSmall { needed } => grow = Some(needed),
                Output::Timeout(t) => {
                    self.timeout_ms = Some(ms_at(t));
                    break;
                }
                Output::Connected => self.connected = true,
                Output::PeerCert(der) => {
                    if Fingerprint::of_der(der) != self.expected {
                        return Err(Failure::Fingerprint);
                    }
                    self.cert_ok = true;
                }
                Output::KeyingMaterial(km, profile) => {
                    #[cfg(test)]
                    {
                        self.exported = Some((km.to_vec(), profile));
                    }
                    if !self.cert_ok {
                        return Err(Failure::Fingerprint);
                    }
                    let suite = suite_of(profile).ok_or_else(|| {
                        tracing::warn!(%profile, "DTLS-SRTP profile without an SRTP suite here");
                        Failure::DtlsError
                    })?;
                    self.keys = Some(srtp_keys(self.role, suite, &km).ok_or(Failure::DtlsError)?);
                }
                // Data channels are not ours; a close_notify after the
                // handshake leaves the media to consent freshness.
                _ => {}
            }
            if let Some(needed) = grow {
                if needed > MAX_OUT {
                    return Err(Failure::DtlsError);
                }
                self.out.resize(needed, 0);
            }
        }
        if self.connected && !self.keys_taken {
            if !self.cert_ok {
                return Err(Failure::Fingerprint);
            }
            if let Some(keys) = self.keys.take() {
                self.keys_taken = true;
                return Ok(Some(keys));
            }
        }
        Ok(None)
    }
}
