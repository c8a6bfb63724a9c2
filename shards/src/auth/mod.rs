//! Digest authentication (RFC 7616 / RFC 3261 22): challenges, verification, nonces.
//!
//! [`Authenticator`] is the entry point the registrar (401 / `WWW-Authenticate`) and
//! the proxy (407 / `Proxy-Authenticate`) use; one per shard. It is sans-IO: time is
//! an input (`now`, unix seconds) and nothing here reads a clock or does I/O.
//!
//! ```text
//! request --begin(now, header, realm, Call-ID)--> Step::Done(Challenge{..})   -> 401/407
//!                                             \-> Step::Lookup(pending)
//!   (user lookup: memory, LMDB or the HTTP backend via the control core; may await)
//! pending --finish(now, method, secret)--> Ok / Failed / Replay / Challenge{stale}
//! ```
//! [`Authenticator::check`] does both steps with a synchronous lookup.
//!
//! Choices:
//! * Nonces are stateless ([`nonce`]): issue time + HMAC over realm and a binding
//!   (the Call-ID). A Call-ID always lands on the same shard, so the per-shard
//!   nonce-count table ([`replay`]) sees every use of a nonce: replay protection is
//!   complete without shared state. Each shard may draw its own key.
//! * Expired nonces and nonces that are not ours (forged, other key e.g. from before a
//!   restart, other realm or Call-ID) both get a challenge with `stale=true`, so
//!   clients re-challenge transparently without prompting the user. RFC 7616 asks for
//!   `stale=true` only after a valid digest; we skip the user lookup (and its webhook
//!   cost) for nonces we refuse anyway. That reveals nothing: the answer does not
//!   depend on the user or password.
//! * Only `qop=auth` is accepted: responses without qop (RFC 2069) carry no
//!   nonce-count and cannot be replay-protected; `auth-int` is not offered.
//! * Unknown user and wrong password give the same [`AuthOutcome::Failed`], and the
//!   unknown-user path hashes against a dummy secret so it costs the same CPU.
//! * The nonce-count is recorded only after the response verified, so failed
//!   guesses cannot burn a legitimate client's counts.
//! * `opaque` is constant per key and not checked on the way back (it carries no
//!   state); `uri` is exposed in [`AuthOutcome::Ok`] for the caller to compare.

mod challenge;
pub mod client;
pub mod digest;
pub mod nonce;
pub mod params;
pub mod replay;

use std::fmt;

pub use digest::{Algorithm, Secret, UnknownAlgorithm};
pub use nonce::{NonceError, NonceId};
pub use params::{
    credentials_for_realm, parse_credentials, Credentials, DigestCredentials, NonceCount,
    ParseError,
};
pub use replay::{NcVerdict, NonceCounts};

use digest::{verify_response, ResponseInput};
use nonce::NonceMinter;

/// Tunables; the config loader fills them from `[proxy]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Offered in this order, one challenge header each (`digest_algorithms`).
    pub algorithms: Vec<Algorithm>,
    /// Seconds a nonce stays valid.
    pub nonce_lifetime: u64,
    /// Most nonces whose nonce-count a shard tracks at once; beyond that the oldest
    /// is forgotten (its next use gets a `stale=true` challenge).
    pub max_tracked_nonces: usize,
}

impl AuthConfig {
    pub const DEFAULT_NONCE_LIFETIME: u64 = 300;
    pub const DEFAULT_MAX_TRACKED_NONCES: usize = 65_536;

    /// Checks the values; [`Authenticator::new`] calls it.
    pub fn validate(&self) -> Result<(), AuthSetupError> {
        if self.algorithms.is_empty() {
            return Err(AuthSetupError::NoAlgorithms);
        }
        for (i, a) in self.algorithms.iter().enumerate() {
            if self.algorithms[..i].contains(a) {
                return Err(AuthSetupError::DuplicateAlgorithm(*a));
            }
        }
        if self.nonce_lifetime == 0 {
            return Err(AuthSetupError::ZeroNonceLifetime);
        }
        if self.max_tracked_nonces == 0 {
            return Err(AuthSetupError::ZeroMaxTrackedNonces);
        }
        Ok(())
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
            nonce_lifetime: Self::DEFAULT_NONCE_LIFETIME,
            max_tracked_nonces: Self::DEFAULT_MAX_TRACKED_NONCES,
        }
    }
}

/// Why an [`Authenticator`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSetupError {
    NoAlgorithms,
    DuplicateAlgorithm(Algorithm),
    ZeroNonceLifetime,
    ZeroMaxTrackedNonces,
    /// The OS random source failed (`getrandom` error code).
    Random(String),
}

impl fmt::Display for AuthSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthSetupError::NoAlgorithms => f.write_str("digest_algorithms is empty"),
            AuthSetupError::DuplicateAlgorithm(a) => {
                write!(f, "digest_algorithms lists {a} twice")
            }
            AuthSetupError::ZeroNonceLifetime => f.write_str("nonce lifetime must be > 0"),
            AuthSetupError::ZeroMaxTrackedNonces => f.write_str("max tracked nonces must be > 0"),
            AuthSetupError::Random(e) => write!(f, "cannot draw the nonce key: {e}"),
        }
    }
}

impl std::error::Error for AuthSetupError {}

/// Why a request gets a (new) challenge. For logs; the client only sees `stale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeReason {
    /// No credentials header.
    NoCredentials,
    /// A scheme other than Digest.
    OtherScheme,
    /// Digest credentials that do not parse.
    Malformed,
    /// Credentials for another realm.
    RealmMismatch,
    /// An algorithm we did not offer.
    AlgorithmNotOffered,
    /// `userhash=true` (never offered).
    UserhashUnsupported,
    /// No `qop=auth` with `cnonce` and `nc` (RFC 2069 style, or `auth-int`).
    QopNotAuth,
    /// The nonce is not ours for this realm and binding (stale=true).
    InvalidNonce,
    /// The nonce expired (stale=true).
    ExpiredNonce,
    /// The nonce's count history was evicted for capacity (stale=true).
    ForgottenNonce,
}

impl ChallengeReason {
    /// Whether the challenge carries `stale=true`.
    pub fn is_stale(self) -> bool {
        matches!(
            self,
            ChallengeReason::InvalidNonce
                | ChallengeReason::ExpiredNonce
                | ChallengeReason::ForgottenNonce
        )
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated. `uri` is the credentials' `uri` parameter, for the caller to
    /// compare with the Request-URI if it wants.
    Ok { username: String, uri: String },
    /// Answer 401/407 with [`Authenticator::challenge_headers`] using this `stale`.
    Challenge {
        stale: bool,
        reason: ChallengeReason,
    },
    /// Wrong password or unknown user, deliberately indistinguishable (403 after a
    /// failed response to our challenge). `username` is the one the client sent.
    Failed { username: String },
    /// Correct response, but the nonce-count was already used (repeated or went
    /// backwards): a replayed request. Refuse it; a fresh `stale=true` challenge
    /// lets a confused legitimate client recover and gives an attacker nothing.
    Replay { username: String },
}

impl AuthOutcome {
    fn challenge(reason: ChallengeReason) -> Self {
        AuthOutcome::Challenge {
            stale: reason.is_stale(),
            reason,
        }
    }
}

/// Credentials that passed every check that needs no secret; next comes the user
/// lookup and [`Authenticator::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAuth {
    credentials: DigestCredentials,
    nonce: NonceId,
    nc: NonceCount,
    cnonce: String,
    qop: String,
}

impl PendingAuth {
    /// The username to look up.
    pub fn username(&self) -> &str {
        &self.credentials.username
    }

    /// The realm (equal to the one challenged).
    pub fn realm(&self) -> &str {
        &self.credentials.realm
    }

    /// Everything the client sent.
    pub fn credentials(&self) -> &DigestCredentials {
        &self.credentials
    }
}

/// The first half of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "a short-lived return value; boxing would cost an allocation per request"
)]
pub enum Step {
    /// Decided without a secret (always a challenge).
    Done(AuthOutcome),
    /// Look the user up, then call [`Authenticator::finish`].
    Lookup(PendingAuth),
}

/// Per-shard digest authentication state: the nonce key and the nonce-count table.
#[derive(Debug)]
pub struct Authenticator {
    config: AuthConfig,
    minter: NonceMinter,
    counts: NonceCounts,
}

impl Authenticator {
    /// An authenticator with the given nonce key (tests, or a key shared on purpose).
    pub fn new(key: [u8; 32], config: AuthConfig) -> Result<Self, AuthSetupError> {
        config.validate()?;
        Ok(Authenticator {
            minter: NonceMinter::new(&key, config.nonce_lifetime),
            counts: NonceCounts::new(config.max_tracked_nonces, config.nonce_lifetime),
            config,
        })
    }

    /// An authenticator with a key of 32 bytes from the OS random source.
    pub fn with_random_key(config: AuthConfig) -> Result<Self, AuthSetupError> {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(|e| AuthSetupError::Random(e.to_string()))?;
        Self::new(key, config)
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Challenge header values, one per configured algorithm in order, sharing one
    /// fresh nonce bound to `realm` and `binding` (the Call-ID). Use them as
    /// `WWW-Authenticate` (401) or `Proxy-Authenticate` (407).
    pub fn challenge_headers(
        &mut self,
        now: u64,
        realm: &str,
        binding: &str,
        stale: bool,
    ) -> Vec<String> {
        let nonce = self.minter.mint(now, realm, binding);
        self.config
            .algorithms
            .iter()
            .map(|&a| challenge::challenge_value(realm, &nonce, self.minter.opaque(), a, stale))
            .collect()
    }

    /// Checks everything that needs no secret: scheme, syntax, realm, algorithm,
    /// qop, and the nonce (ours for `realm` + `binding`, not expired).
    /// `header_value` is the `Authorization` / `Proxy-Authorization` value (see
    /// [`credentials_for_realm`] when there are several).
    pub fn begin(&self, now: u64, header_value: Option<&str>, realm: &str, binding: &str) -> Step {
        use ChallengeReason as R;
        let done = |reason| Step::Done(AuthOutcome::challenge(reason));
        let Some(value) = header_value else {
            return done(R::NoCredentials);
        };
        let credentials = match parse_credentials(value) {
            Ok(Credentials::Digest(d)) => d,
            Ok(Credentials::Other { .. }) => return done(R::OtherScheme),
            Err(_) => return done(R::Malformed),
        };
        if credentials.realm != realm {
            return done(R::RealmMismatch);
        }
        if !self.config.algorithms.contains(&credentials.algorithm) {
            return done(R::AlgorithmNotOffered);
        }
        if credentials.userhash {
            return done(R::UserhashUnsupported);
        }
        let (Some(qop), Some(cnonce), Some(nc)) = (
            credentials.qop.clone(),
            credentials.cnonce.clone(),
            credentials.nc.clone(),
        ) else {
            return done(R::QopNotAuth);
        };
        if !qop.eq_ignore_ascii_case("auth") {
            return done(R::QopNotAuth);
        }
        let nonce = match self.minter.verify(now, &credentials.nonce, realm, binding) {
            Ok(id) => id,
            Err(NonceError::Expired) => return done(R::ExpiredNonce),
            Err(NonceError::Invalid) => return done(R::InvalidNonce),
        };
        Step::Lookup(PendingAuth {
            credentials,
            nonce,
            nc,
            cnonce,
            qop,
        })
    }

    /// Verifies the response of `pending` for request `method` against `secret`
    /// (`None` = unknown user) and, when it is right, records its nonce-count.
    pub fn finish(
        &mut self,
        now: u64,
        method: &str,
        pending: PendingAuth,
        secret: Option<Secret<'_>>,
    ) -> AuthOutcome {
        if pending.nonce.expired(now, self.config.nonce_lifetime) {
            // The lookup took us past the nonce's lifetime.
            return AuthOutcome::challenge(ChallengeReason::ExpiredNonce);
        }
        let c = &pending.credentials;
        let input = ResponseInput {
            algorithm: c.algorithm,
            username: &c.username,
            realm: &c.realm,
            nonce: &c.nonce,
            nc: &pending.nc.text,
            cnonce: &pending.cnonce,
            qop: &pending.qop,
            method,
            uri: &c.uri,
        };
        let verified = match secret {
            Some(secret) => verify_response(&input, secret, &c.response),
            None => {
                // Same work as a known user, same answer as a wrong password.
                std::hint::black_box(verify_response(&input, Secret::Password(""), &c.response));
                false
            }
        };
        let PendingAuth {
            credentials,
            nonce,
            nc,
            ..
        } = pending;
        if !verified {
            return AuthOutcome::Failed {
                username: credentials.username,
            };
        }
        match self.counts.record(now, nonce, nc.value) {
            NcVerdict::Accepted => AuthOutcome::Ok {
                username: credentials.username,
                uri: credentials.uri,
            },
            NcVerdict::Replay => AuthOutcome::Replay {
                username: credentials.username,
            },
            NcVerdict::Forgotten => AuthOutcome::challenge(ChallengeReason::ForgottenNonce),
        }
    }

    /// [`begin`](Self::begin) + [`finish`](Self::finish) with a synchronous lookup,
    /// called with the username only when the credentials got that far.
    pub fn check<'s>(
        &mut self,
        now: u64,
        method: &str,
        header_value: Option<&str>,
        realm: &str,
        binding: &str,
        lookup: impl FnOnce(&str) -> Option<Secret<'s>>,
    ) -> AuthOutcome {
        match self.begin(now, header_value, realm, binding) {
            Step::Done(outcome) => outcome,
            Step::Lookup(pending) => {
                let secret = lookup(pending.username());
                self.finish(now, method, pending, secret)
            }
        }
    }

    /// Frees the nonce-count entries of nonces expired at `now`; call it from a
    /// periodic shard timer (use also trims as it goes).
    pub fn sweep(&mut self, now: u64) {
        self.counts.sweep(now);
    }

    /// Nonces whose count is tracked now.
    pub fn tracked_nonces(&self) -> usize {
        self.counts.len()
    }
}

#[cfg(test)]
mod tests;
