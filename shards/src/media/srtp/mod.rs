//! SRTP and SRTCP (RFC 3711) for the relay, sans-IO: the suites we
//! implement (AES_CM_128_HMAC_SHA1_80, and AEAD_AES_128_GCM and
//! AEAD_AES_256_GCM of RFC 7714), master keys, and the cryptographic
//! context of one direction of one session (`Context`: protect or
//! unprotect RTP and RTCP in place, with rollover counters and replay
//! windows per SSRC, bounded). SDES key exchange (`a=crypto`, RFC 4568) is
//! in `sdes`. The crypto itself is in `crypto`, the sequence and replay
//! state in `replay`. No sockets, no clocks: the caller brings the packets
//! and the randomness.

mod crypto;
mod replay;
pub mod sdes;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_vectors;

use std::fmt;

use crypto::{Transform, E_FLAG, GCM_TAG_LEN, HMAC_TAG_LEN, RTCP_HEADER_LEN, SRTCP_TRAILER_LEN};
pub use replay::MAX_SSRCS;
use replay::{SsrcTable, Window};

/// An SRTP protection profile (crypto suite).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    /// AES-128 counter mode, HMAC-SHA1 tag truncated to 80 bits (RFC 3711).
    AesCm128HmacSha1_80,
    /// AES-128-GCM with a 16-octet tag (RFC 7714).
    AeadAes128Gcm,
    /// AES-256-GCM with a 16-octet tag (RFC 7714): a 32-octet master key,
    /// its session keys derived with the AES-256 PRF (RFC 6188 section 7).
    /// What DTLS-SRTP with `dimpl` negotiates first; not offered over SDES
    /// (see [`Suite::ALL`]), but `sdes` reads and writes it.
    AeadAes256Gcm,
}

/// The longest master key of any suite (AEAD_AES_256_GCM), in octets.
const MAX_KEY_LEN: usize = 32;
/// The longest master salt of any suite (AES_CM), in octets.
const MAX_SALT_LEN: usize = 14;

impl Suite {
    /// The suites we offer over SDES (`a=crypto`), AES_CM first; our order
    /// of preference among them is `media::secure::OFFER_ORDER`. Not every
    /// suite: AEAD_AES_256_GCM is only in [`Suite::EVERY`], so a table
    /// with an entry per suite must be sized by `EVERY` and indexed by
    /// [`Suite::index`], not by this.
    pub const ALL: [Suite; 2] = [Suite::AesCm128HmacSha1_80, Suite::AeadAes128Gcm];

    /// Every suite implemented here: [`Suite::ALL`], then AEAD_AES_256_GCM.
    /// `EVERY[s.index()] == s`.
    pub const EVERY: [Suite; 3] = [
        Suite::AesCm128HmacSha1_80,
        Suite::AeadAes128Gcm,
        Suite::AeadAes256Gcm,
    ];

    /// The position of the suite in [`Suite::EVERY`] (below
    /// `Suite::EVERY.len()`): the index of a per-suite table.
    pub const fn index(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 0,
            Suite::AeadAes128Gcm => 1,
            Suite::AeadAes256Gcm => 2,
        }
    }

    /// The RFC 4568 / RFC 7714 name of the suite in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Suite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// The suite of an `a=crypto` name (exact, case-sensitive match), any
    /// of [`Suite::EVERY`].
    pub fn from_name(s: &str) -> Option<Suite> {
        Suite::EVERY.into_iter().find(|suite| suite.name() == s)
    }

    /// Length of the master key, in octets (and of the session encryption
    /// key: 16 for AES-128, 32 for AES-256).
    pub fn key_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 | Suite::AeadAes128Gcm => 16,
            Suite::AeadAes256Gcm => MAX_KEY_LEN,
        }
    }

    /// Length of the master salt, in octets (RFC 7714: 12 for GCM).
    pub fn salt_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => MAX_SALT_LEN,
            Suite::AeadAes128Gcm | Suite::AeadAes256Gcm => 12,
        }
    }

    /// Octets that `protect_rtp` adds to a packet (the tag).
    pub fn rtp_overhead(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => HMAC_TAG_LEN,
            Suite::AeadAes128Gcm | Suite::AeadAes256Gcm => GCM_TAG_LEN,
        }
    }

    /// Octets that `protect_rtcp` adds to a packet (`E || index` and tag).
    pub fn rtcp_overhead(self) -> usize {
        SRTCP_TRAILER_LEN + self.rtp_overhead()
    }
}

/// A master key and salt for one suite (what an `a=crypto` `inline:`
/// carries). Its `Debug` does not show the key.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    suite: Suite,
    /// The first `suite.key_len()` octets are the key, the rest zero.
    key: [u8; MAX_KEY_LEN],
    /// The first `suite.salt_len()` octets are the salt, the rest zero.
    salt: [u8; MAX_SALT_LEN],
}

impl MasterKey {
    /// The master key of `suite` from the concatenated key and salt; `None`
    /// unless `key_and_salt` is exactly `key_len() + salt_len()` octets.
    pub fn new(suite: Suite, key_and_salt: &[u8]) -> Option<MasterKey> {
        if key_and_salt.len() != suite.key_len() + suite.salt_len() {
            return None;
        }
        let (k, s) = key_and_salt.split_at_checked(suite.key_len())?;
        let mut key = [0u8; MAX_KEY_LEN];
        key.get_mut(..k.len())?.copy_from_slice(k);
        let mut salt = [0u8; MAX_SALT_LEN];
        salt.get_mut(..s.len())?.copy_from_slice(s);
        Some(MasterKey { suite, key, salt })
    }

    /// A fresh master key of `suite`, from `rng` (which fills the slice it
    /// is given: `getrandom` in production, a fixed pattern in tests).
    pub fn random(suite: Suite, rng: &mut impl FnMut(&mut [u8])) -> MasterKey {
        let mut key = [0u8; MAX_KEY_LEN];
        let mut salt = [0u8; MAX_SALT_LEN];
        rng(&mut key[..suite.key_len()]);
        rng(&mut salt[..suite.salt_len()]);
        MasterKey { suite, key, salt }
    }

    /// The suite this key is for.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Key then salt, as `a=crypto` carries them.
    fn key_and_salt(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(MAX_KEY_LEN + MAX_SALT_LEN);
        v.extend_from_slice(&self.key[..self.suite.key_len()]);
        v.extend_from_slice(&self.salt[..self.suite.salt_len()]);
        v
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// Why a packet was not protected or unprotected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrtpError {
    /// Shorter than its header (and, to unprotect, the trailer).
    TooShort,
    /// The buffer has no room for what protecting adds.
    NoRoom,
    /// The authentication tag is wrong.
    AuthFailed,
    /// A replayed index, or one too old for the replay window. From
    /// `protect_rtcp`: the SSRC's 2^31 SRTCP indexes are used up (rekey).
    Replayed,
}

impl fmt::Display for SrtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SrtpError::TooShort => "packet too short",
            SrtpError::NoRoom => "no room in the buffer for the SRTP trailer",
            SrtpError::AuthFailed => "SRTP authentication failed",
            SrtpError::Replayed => "SRTP replay or index too old",
        })
    }
}

impl std::error::Error for SrtpError {}

/// Largest SRTCP index (31 bits).
const MAX_SRTCP_INDEX: u32 = 0x7fff_ffff;

/// One direction of one SRTP session: everything sent with one master key
/// (the RFC 3711 "cryptographic context"), for any number of SSRCs, with
/// state for at most [`MAX_SSRCS`] of them at a time (beyond, the least
/// recently used SSRC's state is evicted). Use one context to protect what
/// we send and another to unprotect what we receive.
pub struct Context {
    suite: Suite,
    rtp: Transform,
    rtcp: Transform,
    /// Sender: ROC and highest sequence number sent, per SSRC.
    rtp_tx: SsrcTable<Window>,
    /// Receiver: ROC, highest sequence number and replay window, per SSRC.
    rtp_rx: SsrcTable<Window>,
    /// Sender: the next SRTCP index, per SSRC.
    rtcp_tx: SsrcTable<u32>,
    /// The next SRTCP index for an SSRC without one: one past the highest
    /// index sent on any SSRC, so that an SSRC evicted from `rtcp_tx` and
    /// seen again never reuses an index.
    rtcp_tx_next: u32,
    /// Receiver: SRTCP replay window, per SSRC.
    rtcp_rx: SsrcTable<Window>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("suite", &self.suite)
            .field("rtp_tx_ssrcs", &self.rtp_tx.len())
            .field("rtp_rx_ssrcs", &self.rtp_rx.len())
            .field("rtcp_tx_ssrcs", &self.rtcp_tx.len())
            .field("rtcp_rx_ssrcs", &self.rtcp_rx.len())
            .finish_non_exhaustive()
    }
}

/// The length of the RTP header of `pkt`: 12 octets, the CSRCs, and the
/// header extension when the X bit is set. `TooShort` if the packet is
/// shorter than its header.
fn rtp_header_len(pkt: &[u8]) -> Result<usize, SrtpError> {
    let [b0, ..] = *pkt else {
        return Err(SrtpError::TooShort);
    };
    let mut len = 12 + 4 * usize::from(b0 & 0x0f);
    if b0 & 0x10 != 0 {
        let Some(&[l0, l1]) = pkt.get(len + 2..len + 4) else {
            return Err(SrtpError::TooShort);
        };
        len += 4 + 4 * usize::from(u16::from_be_bytes([l0, l1]));
    }
    if len > pkt.len() {
        return Err(SrtpError::TooShort);
    }
    Ok(len)
}

/// The big-endian `u32` at `at` (in bounds: checked by the caller).
fn be32(pkt: &[u8], at: usize) -> Result<u32, SrtpError> {
    match pkt.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(SrtpError::TooShort),
    }
}

/// Sequence number and SSRC of an RTP packet at least 12 octets long.
fn rtp_seq_ssrc(pkt: &[u8]) -> Result<(u16, u32), SrtpError> {
    let Some(&[s0, s1]) = pkt.get(2..4) else {
        return Err(SrtpError::TooShort);
    };
    Ok((u16::from_be_bytes([s0, s1]), be32(pkt, 8)?))
}

impl Context {
    /// The context of `master`: derives the SRTP and SRTCP session keys
    /// (RFC 3711 4.3, key derivation rate 0; with AES-256 for
    /// AEAD_AES_256_GCM, RFC 6188 7).
    pub fn new(master: &MasterKey) -> Context {
        Context::with_transforms(
            master.suite,
            Transform::derive(master, false),
            Transform::derive(master, true),
        )
    }

    fn with_transforms(suite: Suite, rtp: Transform, rtcp: Transform) -> Context {
        Context {
            suite,
            rtp,
            rtcp,
            rtp_tx: SsrcTable::new(),
            rtp_rx: SsrcTable::new(),
            rtcp_tx: SsrcTable::new(),
            rtcp_tx_next: 0,
            rtcp_rx: SsrcTable::new(),
        }
    }

    /// The suite of this context.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// `buf[..len]` is an RTP packet: encrypts and authenticates it in
    /// place, appending the tag; returns the new length. Needs
    /// `len + suite.rtp_overhead() <= buf.len()`, else `NoRoom`. The ROC
    /// is tracked per SSRC from the sequence numbers sent (RFC 3711 3.3.1,
    /// estimated as a receiver would, so reordered packets keep theirs).
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let overhead = self.suite.rtp_overhead();
        let out = buf
            .get_mut(..len.saturating_add(overhead))
            .ok_or(SrtpError::NoRoom)?;
        let (pkt, tag) = out.split_at_mut_checked(len).ok_or(SrtpError::NoRoom)?;
        let header_len = rtp_header_len(pkt)?;
        let (seq, ssrc) = rtp_seq_ssrc(pkt)?;
        let mut state = self
            .rtp_tx
            .get(ssrc)
            .unwrap_or(Window::starting_at(u64::from(seq)));
        let index = state.estimate(seq);
        self.rtp.protect_rtp(pkt, header_len, tag, ssrc, index)?;
        state.accept(index);
        self.rtp_tx.put(ssrc, state);
        Ok(len + overhead)
    }

    /// Verifies and decrypts the SRTP packet `buf[..len]` in place; returns
    /// the plaintext length. The index comes from RFC 3711 Appendix A and
    /// goes through the SSRC's 64-packet replay window (a replayed or too
    /// old index is `Replayed`). State (a new SSRC, ROC, window) changes
    /// only after the tag is verified: `AuthFailed` changes nothing.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let pkt = buf.get_mut(..len).ok_or(SrtpError::TooShort)?;
        let header_len = rtp_header_len(pkt)?;
        if len < header_len + self.suite.rtp_overhead() {
            return Err(SrtpError::TooShort);
        }
        let (seq, ssrc) = rtp_seq_ssrc(pkt)?;
        let mut state = self
            .rtp_rx
            .get(ssrc)
            .unwrap_or(Window::starting_at(u64::from(seq)));
        let index = state.estimate(seq);
        state.check(index)?;
        let plain = self.rtp.unprotect_rtp(pkt, header_len, ssrc, index)?;
        state.accept(index);
        self.rtp_rx.put(ssrc, state);
        Ok(plain)
    }

    /// SRTCP (RFC 3711 3.4): encrypts `buf[..len]` (an RTCP packet, at
    /// least 8 octets: everything after them is encrypted, E = 1) with the
    /// next SRTCP index of the sender SSRC (octets 4..8), appends
    /// `E || index` and the tag (for GCM the tag, then `E || index`, RFC
    /// 7714 9.1); returns the new length. Needs
    /// `len + suite.rtcp_overhead() <= buf.len()`, else `NoRoom`.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let overhead = self.suite.rtcp_overhead();
        let out = buf
            .get_mut(..len.saturating_add(overhead))
            .ok_or(SrtpError::NoRoom)?;
        let (pkt, trailer) = out.split_at_mut_checked(len).ok_or(SrtpError::NoRoom)?;
        if len < RTCP_HEADER_LEN {
            return Err(SrtpError::TooShort);
        }
        let ssrc = be32(pkt, 4)?;
        let index = self.rtcp_tx.get(ssrc).unwrap_or(self.rtcp_tx_next);
        if index > MAX_SRTCP_INDEX {
            return Err(SrtpError::Replayed);
        }
        self.rtcp.protect_rtcp(pkt, trailer, ssrc, index)?;
        self.rtcp_tx.put(ssrc, index + 1);
        self.rtcp_tx_next = self.rtcp_tx_next.max(index + 1);
        Ok(len + overhead)
    }

    /// Verifies the SRTCP packet `buf[..len]` (replay window on the SRTCP
    /// index, per SSRC) and decrypts it in place when E = 1 (E = 0,
    /// authenticated but not encrypted, is accepted too); returns the
    /// length of the plain RTCP. As for RTP, state changes only after the
    /// tag is verified.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let pkt = buf.get_mut(..len).ok_or(SrtpError::TooShort)?;
        let (word, body) = self.rtcp.rtcp_trailer(pkt)?;
        let ssrc = be32(pkt, 4)?;
        let index = u64::from(word & !E_FLAG);
        let mut state = self.rtcp_rx.get(ssrc).unwrap_or(Window::starting_at(index));
        state.check(index)?;
        self.rtcp.unprotect_rtcp(pkt, word, body, ssrc)?;
        state.accept(index);
        self.rtcp_rx.put(ssrc, state);
        Ok(body)
    }
}
