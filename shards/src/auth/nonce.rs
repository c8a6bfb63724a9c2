//! Stateless nonces: minting and checking `hex(issued || counter || tag)` where
//! `tag = HMAC-SHA256(key, issued || counter || len(realm) || realm || binding)`
//! truncated to 128 bits, plus the `opaque` value derived from the same key.
//!
//! * `issued` (u64, unix seconds) lets any holder of the key tell the nonce's age
//!   without storing it; `counter` (u32, per minter) makes two nonces minted in the
//!   same second for the same realm and binding differ, so a client that is
//!   re-challenged always starts a fresh nonce-count sequence.
//! * `binding` is a caller-chosen string (ShardPBX passes the Call-ID): a nonce only
//!   verifies for the realm and binding it was minted for.
//! * A 128-bit truncated HMAC tag (RFC 2104 section 5 allows truncation to half the
//!   output) keeps the nonce at 56 hex characters.

use std::fmt;

use hmac::digest::generic_array::GenericArray;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::digest::{decode_hex, encode_hex};

/// How far in the future (seconds) an authentic `issued` time may lie before the
/// nonce is refused; absorbs a `now` cached slightly behind the clock.
pub const MAX_FUTURE_SKEW: u64 = 2;

const TAG_LEN: usize = 16;
const RAW_LEN: usize = 8 + 4 + TAG_LEN;
/// Length of a nonce on the wire (hex).
pub const NONCE_LEN: usize = RAW_LEN * 2;

/// The identity of an authentic nonce: ordered by issue time first, which is what
/// the replay table uses for expiry and eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NonceId {
    /// Unix seconds at which it was minted.
    pub issued: u64,
    pub counter: u32,
    pub tag: [u8; TAG_LEN],
}

impl NonceId {
    /// True once `lifetime` seconds have passed since issue: a nonce issued at `t`
    /// is valid for `now` in `t..t + lifetime` and expired from `t + lifetime` on.
    pub fn expired(&self, now: u64, lifetime: u64) -> bool {
        now >= self.issued.saturating_add(lifetime)
    }
}

/// Why a nonce was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceError {
    /// Not one of ours for this realm and binding: malformed, forged, minted with
    /// another key (e.g. before a restart), for another realm or binding, or with an
    /// issue time more than [`MAX_FUTURE_SKEW`] ahead of `now`.
    Invalid,
    /// Ours, but older than the lifetime.
    Expired,
}

impl fmt::Display for NonceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NonceError::Invalid => "nonce invalid",
            NonceError::Expired => "nonce expired",
        })
    }
}

impl std::error::Error for NonceError {}

/// Mints and checks nonces with one secret key.
#[derive(Clone)]
pub struct NonceMinter {
    /// HMAC state with the key already absorbed; cloned per use.
    mac: Hmac<Sha256>,
    counter: u32,
    lifetime: u64,
    opaque: String,
}

impl fmt::Debug for NonceMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceMinter")
            .field("counter", &self.counter)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl NonceMinter {
    /// A minter whose nonces live `lifetime` seconds.
    pub fn new(key: &[u8; 32], lifetime: u64) -> Self {
        // HMAC zero-pads keys shorter than the hash block (64 bytes for SHA-256), so
        // this is exactly HMAC with the 32-byte key, built without a fallible call.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(key);
        let mac = <Hmac<Sha256> as KeyInit>::new(&GenericArray::from(block));
        let mut opaque_mac = mac.clone();
        opaque_mac.update(b"opaque");
        let opaque_tag = opaque_mac.finalize().into_bytes();
        let opaque = encode_hex(opaque_tag.get(..8).unwrap_or_default());
        NonceMinter {
            mac,
            counter: 0,
            lifetime,
            opaque,
        }
    }

    /// Seconds a nonce stays valid.
    pub fn lifetime(&self) -> u64 {
        self.lifetime
    }

    /// The `opaque` value sent in challenges (constant per key; not checked on
    /// the way back, since it carries no state).
    pub fn opaque(&self) -> &str {
        &self.opaque
    }

    /// A fresh nonce for `realm` and `binding`, issued at `now`.
    pub fn mint(&mut self, now: u64, realm: &str, binding: &str) -> String {
        self.counter = self.counter.wrapping_add(1);
        let tag = self.tag(now, self.counter, realm, binding);
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&now.to_be_bytes());
        raw[8..12].copy_from_slice(&self.counter.to_be_bytes());
        raw[12..].copy_from_slice(&tag);
        encode_hex(&raw)
    }

    /// Checks that `nonce` was minted by this key for `realm` and `binding` and is
    /// not expired at `now`. The tag is compared in constant time.
    pub fn verify(
        &self,
        now: u64,
        nonce: &str,
        realm: &str,
        binding: &str,
    ) -> Result<NonceId, NonceError> {
        if nonce.len() != NONCE_LEN {
            return Err(NonceError::Invalid);
        }
        let raw = decode_hex(nonce).ok_or(NonceError::Invalid)?;
        let (issued, rest) = raw.split_first_chunk::<8>().ok_or(NonceError::Invalid)?;
        let (counter, tag) = rest.split_first_chunk::<4>().ok_or(NonceError::Invalid)?;
        let issued = u64::from_be_bytes(*issued);
        let counter = u32::from_be_bytes(*counter);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| NonceError::Invalid)?;
        self.keyed(issued, counter, realm, binding)
            .verify_truncated_left(&tag)
            .map_err(|_| NonceError::Invalid)?;
        if issued > now.saturating_add(MAX_FUTURE_SKEW) {
            return Err(NonceError::Invalid);
        }
        let id = NonceId {
            issued,
            counter,
            tag,
        };
        if id.expired(now, self.lifetime) {
            return Err(NonceError::Expired);
        }
        Ok(id)
    }

    fn keyed(&self, issued: u64, counter: u32, realm: &str, binding: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(&issued.to_be_bytes());
        mac.update(&counter.to_be_bytes());
        // Length prefix: realm "a" + binding "bc" must differ from "ab" + "c".
        mac.update(&(realm.len() as u64).to_be_bytes());
        mac.update(realm.as_bytes());
        mac.update(binding.as_bytes());
        mac
    }

    fn tag(&self, issued: u64, counter: u32, realm: &str, binding: &str) -> [u8; TAG_LEN] {
        let full = self
            .keyed(issued, counter, realm, binding)
            .finalize()
            .into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const T0: u64 = 1_700_000_000;

    #[test]
    fn padded_key_equals_plain_hmac_key() {
        let mut a = <Hmac<Sha256> as KeyInit>::new_from_slice(&KEY).unwrap();
        let mut b = NonceMinter::new(&KEY, 300).mac;
        a.update(b"x");
        b.update(b"x");
        assert_eq!(a.finalize().into_bytes(), b.finalize().into_bytes());
    }

    #[test]
    fn round_trip() {
        let mut m = NonceMinter::new(&KEY, 300);
        let n = m.mint(T0, "example.com", "call-1@host");
        assert_eq!(n.len(), NONCE_LEN);
        assert!(n.bytes().all(|b| b.is_ascii_hexdigit()));
        let id = m.verify(T0 + 10, &n, "example.com", "call-1@host").unwrap();
        assert_eq!(id.issued, T0);
        assert_eq!(id.counter, 1);
    }

    #[test]
    fn same_second_nonces_differ() {
        let mut m = NonceMinter::new(&KEY, 300);
        let a = m.mint(T0, "r", "b");
        let b = m.mint(T0, "r", "b");
        assert_ne!(a, b);
        assert!(m.verify(T0, &a, "r", "b").unwrap() < m.verify(T0, &b, "r", "b").unwrap());
    }

    #[test]
    fn expiry_at_the_exact_boundary() {
        let mut m = NonceMinter::new(&KEY, 300);
        let n = m.mint(T0, "r", "b");
        assert!(m.verify(T0, &n, "r", "b").is_ok());
        assert!(m.verify(T0 + 299, &n, "r", "b").is_ok());
        assert_eq!(m.verify(T0 + 300, &n, "r", "b"), Err(NonceError::Expired));
        assert_eq!(m.verify(u64::MAX, &n, "r", "b"), Err(NonceError::Expired));
    }

    #[test]
    fn future_issue_time_tolerates_small_skew_only() {
        let mut m = NonceMinter::new(&KEY, 300);
        let n = m.mint(T0, "r", "b");
        assert!(m.verify(T0 - MAX_FUTURE_SKEW, &n, "r", "b").is_ok());
        assert_eq!(
            m.verify(T0 - MAX_FUTURE_SKEW - 1, &n, "r", "b"),
            Err(NonceError::Invalid)
        );
    }

    #[test]
    fn binding_and_realm_mismatch_are_invalid() {
        let mut m = NonceMinter::new(&KEY, 300);
        let n = m.mint(T0, "r", "call-1");
        assert_eq!(m.verify(T0, &n, "r", "call-2"), Err(NonceError::Invalid));
        assert_eq!(m.verify(T0, &n, "r2", "call-1"), Err(NonceError::Invalid));
        // Moving bytes between realm and binding does not help.
        let n = m.mint(T0, "ab", "c");
        assert_eq!(m.verify(T0, &n, "a", "bc"), Err(NonceError::Invalid));
    }

    #[test]
    fn forged_and_foreign_nonces_are_invalid() {
        let mut m = NonceMinter::new(&KEY, 300);
        let other = NonceMinter::new(&[8; 32], 300).mint(T0, "r", "b");
        assert_eq!(m.verify(T0, &other, "r", "b"), Err(NonceError::Invalid));

        let n = m.mint(T0, "r", "b");
        // Flip one tag digit.
        let mut bytes = n.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(m.verify(T0, &flipped, "r", "b"), Err(NonceError::Invalid));
        // Re-dated: a newer issue time with the old tag.
        let redated = format!("{}{}", encode_hex(&(T0 + 100).to_be_bytes()), &n[16..]);
        assert_eq!(
            m.verify(T0 + 100, &redated, "r", "b"),
            Err(NonceError::Invalid)
        );

        for junk in [
            "",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            &"z".repeat(NONCE_LEN),
            &"é".repeat(NONCE_LEN / 2),
            &n[..NONCE_LEN - 2],
        ] {
            assert_eq!(
                m.verify(T0, junk, "r", "b"),
                Err(NonceError::Invalid),
                "{junk}"
            );
        }
        // Upper-case hex of a genuine nonce decodes to the same bytes: fine.
        assert!(m.verify(T0, &n.to_ascii_uppercase(), "r", "b").is_ok());
    }

    #[test]
    fn opaque_depends_on_key_only() {
        let a = NonceMinter::new(&KEY, 300);
        let b = NonceMinter::new(&KEY, 10);
        let c = NonceMinter::new(&[1; 32], 300);
        assert_eq!(a.opaque(), b.opaque());
        assert_ne!(a.opaque(), c.opaque());
        assert_eq!(a.opaque().len(), 16);
    }
}
