//! The cryptographic transforms of SRTP: the AES-CM key derivation (RFC 3711
//! section 4.3, key derivation rate 0; with AES-256, the AES_256_CM_PRF of
//! RFC 6188 section 7), and the per-packet work of the suites on a packet
//! whose layout `mod.rs` has already checked: AES_CM_128_HMAC_SHA1_80
//! (RFC 3711 sections 4.1.1 and 4.2.1), AEAD_AES_128_GCM and
//! AEAD_AES_256_GCM (RFC 7714 sections 8 and 9): AES by RustCrypto (AES-NI
//! when the CPU has it), HMAC-SHA1 by RustCrypto (SHA extensions likewise),
//! AES-GCM by ring. Key material stays in here;
//! nothing is printed.

use aes::cipher::consts::U16;
use aes::cipher::{
    BlockCipher, BlockEncryptMut, BlockSizeUser, InnerIvInit, KeyInit, StreamCipher,
};
use aes::{Aes128Enc, Aes256Enc};
use hmac::{Hmac, Mac};
use ring::aead;
use sha1::Sha1;

use super::{MasterKey, SrtpError, Suite, MAX_KEY_LEN, MAX_SALT_LEN};

/// Length of the HMAC-SHA1 session authentication key (RFC 3711 4.2.1, n_a).
pub(super) const AUTH_KEY_LEN: usize = 20;
/// Length of the truncated HMAC-SHA1 tag of AES_CM_128_HMAC_SHA1_80.
pub(super) const HMAC_TAG_LEN: usize = 10;
/// Length of the AES-GCM tag (RFC 7714 section 12: 16 octets).
pub(super) const GCM_TAG_LEN: usize = 16;
/// Length of the SRTCP trailer word `E || SRTCP index`.
pub(super) const SRTCP_TRAILER_LEN: usize = 4;
/// Length of the part of an RTCP packet that is never encrypted: the first
/// header and the sender's SSRC.
pub(super) const RTCP_HEADER_LEN: usize = 8;

/// The E flag of the SRTCP trailer word.
pub(super) const E_FLAG: u32 = 0x8000_0000;

/// RFC 3711 4.3.2 key derivation labels: SRTP encryption, authentication and
/// salting keys; the SRTCP ones are these plus 3.
const LABEL_ENCRYPTION: u8 = 0;
const LABEL_AUTH: u8 = 1;
const LABEL_SALT: u8 = 2;
const LABEL_RTCP_OFFSET: u8 = 3;

/// AES in counter mode (RFC 3711 4.1.1; RFC 6188 for AES-256): XORs
/// `data` with the keystream of the expanded key `cipher` (AES-128 or
/// AES-256) from the 128-bit counter `iv`.
pub(super) fn ctr_xor<C>(cipher: &C, iv: u128, data: &mut [u8])
where
    C: BlockEncryptMut + BlockCipher + BlockSizeUser<BlockSize = U16> + Clone,
{
    let core = ctr::CtrCore::inner_iv_init(cipher.clone(), &iv.to_be_bytes().into());
    ctr::Ctr128BE::<C>::from_core(core).apply_keystream(data);
}

/// The first `N` octets of `key` (`N` at most [`MAX_KEY_LEN`]).
fn prefix<const N: usize>(key: &[u8; MAX_KEY_LEN]) -> [u8; N] {
    let mut k = [0u8; N];
    for (d, s) in k.iter_mut().zip(key) {
        *d = *s;
    }
    k
}

/// The AES-CM PRF of RFC 3711 4.3.3 with a key derivation rate of 0: `out`
/// is the keystream of the master key from the IV `x * 2^16`, where `x` is
/// the master salt XOR the label in the 7th octet from the right of the
/// 112-bit salt. A 96-bit (GCM) salt is the first 12 of the 14 octets, the
/// other two zero (RFC 7714 section 11, as libsrtp does it). The AES is
/// that of the suite: AES-256 with a 32-octet master key (AES_256_CM_PRF,
/// RFC 6188 section 7, which RFC 7714 section 11 names for
/// AEAD_AES_256_GCM).
pub(super) fn derive(master: &MasterKey, label: u8, out: &mut [u8]) {
    let mut x = [0u8; 16];
    x[..MAX_SALT_LEN].copy_from_slice(&master.salt);
    x[7] ^= label;
    let iv = u128::from_be_bytes(x);
    out.fill(0);
    match master.suite {
        Suite::AesCm128HmacSha1_80 | Suite::AeadAes128Gcm => {
            ctr_xor(&Aes128Enc::new(&prefix::<16>(&master.key).into()), iv, out);
        }
        Suite::AeadAes256Gcm => ctr_xor(&Aes256Enc::new(&master.key.into()), iv, out),
    }
}

/// The session keys of one of SRTP and SRTCP, ready to use (expanded AES
/// key schedules, HMAC pads). Two per context, built once and never moved
/// in the packet path: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Transform {
    /// AES-CM encryption, HMAC-SHA1 authentication; `salt` is the 112-bit
    /// session salt times 2^16, ready to XOR into the counter.
    AesCm {
        cipher: Aes128Enc,
        salt: u128,
        auth: Hmac<Sha1>,
    },
    /// AES-GCM (128 or 256); `salt` is the 96-bit session salt.
    Gcm { key: aead::LessSafeKey, salt: u128 },
}

impl Transform {
    /// Derives the SRTP (`rtcp` false) or SRTCP session keys of `master`.
    pub(super) fn derive(master: &MasterKey, rtcp: bool) -> Transform {
        let offset = if rtcp { LABEL_RTCP_OFFSET } else { 0 };
        let suite = master.suite;
        let mut key = [0u8; MAX_KEY_LEN];
        let mut salt = [0u8; MAX_SALT_LEN];
        let mut auth = [0u8; AUTH_KEY_LEN];
        derive(
            master,
            LABEL_ENCRYPTION + offset,
            &mut key[..suite.key_len()],
        );
        derive(master, LABEL_SALT + offset, &mut salt[..suite.salt_len()]);
        if suite == Suite::AesCm128HmacSha1_80 {
            derive(master, LABEL_AUTH + offset, &mut auth);
        }
        Transform::from_session_keys(suite, &key, &salt[..suite.salt_len()], &auth)
    }

    /// The transform of `suite` with the given session keys (`key` in its
    /// first `suite.key_len()` octets, the rest unused; `salt` is
    /// `suite.salt_len()` octets; `auth` is not used by GCM).
    pub(super) fn from_session_keys(
        suite: Suite,
        key: &[u8; MAX_KEY_LEN],
        salt: &[u8],
        auth: &[u8; AUTH_KEY_LEN],
    ) -> Transform {
        match suite {
            Suite::AesCm128HmacSha1_80 => {
                // The salt occupies the first 14 octets of the counter.
                let mut s = [0u8; 16];
                for (d, b) in s.iter_mut().zip(salt) {
                    *d = *b;
                }
                Transform::AesCm {
                    cipher: Aes128Enc::new(&prefix::<16>(key).into()),
                    salt: u128::from_be_bytes(s),
                    auth: hmac_key(auth),
                }
            }
            Suite::AeadAes128Gcm => {
                Transform::gcm(gcm_key(&aead::AES_128_GCM, &prefix::<16>(key)), salt)
            }
            Suite::AeadAes256Gcm => Transform::gcm(gcm_key(&aead::AES_256_GCM, key), salt),
        }
    }

    /// The GCM transform of `key` with the 96-bit session salt `salt`.
    fn gcm(key: aead::LessSafeKey, salt: &[u8]) -> Transform {
        // The salt is the 96-bit IV mask: the last 12 octets.
        let mut s = [0u8; 16];
        for (d, b) in s.iter_mut().skip(4).zip(salt) {
            *d = *b;
        }
        Transform::Gcm {
            key,
            salt: u128::from_be_bytes(s),
        }
    }

    /// Encrypts `pkt[header_len..]` and writes the tag into `tag` (exactly
    /// the suite's RTP overhead). `index` is the 48-bit packet index.
    pub(super) fn protect_rtp(
        &self,
        pkt: &mut [u8],
        header_len: usize,
        tag: &mut [u8],
        ssrc: u32,
        index: u64,
    ) -> Result<(), SrtpError> {
        let (header, payload) = pkt
            .split_at_mut_checked(header_len)
            .ok_or(SrtpError::TooShort)?;
        match self {
            Transform::AesCm { cipher, salt, auth } => {
                ctr_xor(cipher, cm_iv(*salt, ssrc, index), payload);
                put(tag, &hmac_rtp(auth, header, payload, roc(index)))?;
            }
            Transform::Gcm { key, salt } => {
                let nonce = gcm_nonce(*salt, ssrc, index);
                let t = key
                    .seal_in_place_separate_tag(nonce, aead::Aad::from(&*header), payload)
                    .map_err(|_| SrtpError::NoRoom)?;
                put(tag, t.as_ref())?;
            }
        }
        Ok(())
    }

    /// Verifies and decrypts `pkt` (header, encrypted payload, tag); returns
    /// the plaintext length. Nothing is decrypted unless the tag is good.
    pub(super) fn unprotect_rtp(
        &self,
        pkt: &mut [u8],
        header_len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<usize, SrtpError> {
        let (header, rest) = pkt
            .split_at_mut_checked(header_len)
            .ok_or(SrtpError::TooShort)?;
        match self {
            Transform::AesCm { cipher, salt, auth } => {
                let at = rest
                    .len()
                    .checked_sub(HMAC_TAG_LEN)
                    .ok_or(SrtpError::TooShort)?;
                let (payload, tag) = rest.split_at_mut_checked(at).ok_or(SrtpError::TooShort)?;
                if !ct_eq(&hmac_rtp(auth, header, payload, roc(index)), tag) {
                    return Err(SrtpError::AuthFailed);
                }
                ctr_xor(cipher, cm_iv(*salt, ssrc, index), payload);
                Ok(header_len + at)
            }
            Transform::Gcm { key, salt } => {
                let plain = key
                    .open_in_place(
                        gcm_nonce(*salt, ssrc, index),
                        aead::Aad::from(&*header),
                        rest,
                    )
                    .map_err(|_| SrtpError::AuthFailed)?;
                Ok(header_len + plain.len())
            }
        }
    }

    /// SRTCP protection of `pkt` (a whole RTCP packet, at least the 8-byte
    /// header); `trailer` receives, per the suite's layout, `E || index`
    /// and the tag (exactly the suite's RTCP overhead).
    pub(super) fn protect_rtcp(
        &self,
        pkt: &mut [u8],
        trailer: &mut [u8],
        ssrc: u32,
        index: u32,
    ) -> Result<(), SrtpError> {
        let word = (E_FLAG | index).to_be_bytes();
        let (header, payload) = pkt
            .split_at_mut_checked(RTCP_HEADER_LEN)
            .ok_or(SrtpError::TooShort)?;
        match self {
            Transform::AesCm { cipher, salt, auth } => {
                // RFC 3711 3.4: ... || E || SRTCP index || authentication tag.
                ctr_xor(cipher, cm_iv(*salt, ssrc, u64::from(index)), payload);
                let (w, tag) = trailer
                    .split_at_mut_checked(SRTCP_TRAILER_LEN)
                    .ok_or(SrtpError::NoRoom)?;
                put(w, &word)?;
                put(tag, &hmac_tag(auth, &[header, payload, &word]))?;
            }
            Transform::Gcm { key, salt } => {
                // RFC 7714 9.1: AAD = header || E || index; the tag, then
                // the E || index word, follow the ciphertext.
                let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_TRAILER_LEN];
                aad[..RTCP_HEADER_LEN].copy_from_slice(header);
                aad[RTCP_HEADER_LEN..].copy_from_slice(&word);
                let nonce = gcm_nonce(*salt, ssrc, u64::from(index));
                let t = key
                    .seal_in_place_separate_tag(nonce, aead::Aad::from(aad), payload)
                    .map_err(|_| SrtpError::NoRoom)?;
                let (tag, w) = trailer
                    .split_at_mut_checked(GCM_TAG_LEN)
                    .ok_or(SrtpError::NoRoom)?;
                put(tag, t.as_ref())?;
                put(w, &word)?;
            }
        }
        Ok(())
    }

    /// The `E || SRTCP index` word of a protected RTCP packet of this
    /// suite, and the length of everything before the word and the tag.
    pub(super) fn rtcp_trailer(&self, pkt: &[u8]) -> Result<(u32, usize), SrtpError> {
        let (word_at, rest) = match self {
            Transform::AesCm { .. } => (pkt.len().checked_sub(SRTCP_TRAILER_LEN + HMAC_TAG_LEN), 0),
            Transform::Gcm { .. } => (pkt.len().checked_sub(SRTCP_TRAILER_LEN), GCM_TAG_LEN),
        };
        let word_at = word_at.ok_or(SrtpError::TooShort)?;
        let body = word_at.checked_sub(rest).ok_or(SrtpError::TooShort)?;
        if body < RTCP_HEADER_LEN {
            return Err(SrtpError::TooShort);
        }
        let w = pkt
            .get(word_at..word_at + SRTCP_TRAILER_LEN)
            .ok_or(SrtpError::TooShort)?;
        let [a, b, c, d] = *w else {
            return Err(SrtpError::TooShort);
        };
        Ok((u32::from_be_bytes([a, b, c, d]), body))
    }

    /// Verifies and (E set) decrypts a protected RTCP packet whose trailer
    /// word is `word` and plain part is `body` octets long (from
    /// [`Transform::rtcp_trailer`]).
    pub(super) fn unprotect_rtcp(
        &self,
        pkt: &mut [u8],
        word: u32,
        body: usize,
        ssrc: u32,
    ) -> Result<(), SrtpError> {
        let index = word & !E_FLAG;
        let encrypted = word & E_FLAG != 0;
        match self {
            Transform::AesCm { cipher, salt, auth } => {
                let at = body + SRTCP_TRAILER_LEN;
                let (signed, tag) = pkt.split_at_mut_checked(at).ok_or(SrtpError::TooShort)?;
                if !ct_eq(&hmac_tag(auth, &[signed]), tag) {
                    return Err(SrtpError::AuthFailed);
                }
                if encrypted {
                    let payload = signed
                        .get_mut(RTCP_HEADER_LEN..body)
                        .ok_or(SrtpError::TooShort)?;
                    ctr_xor(cipher, cm_iv(*salt, ssrc, u64::from(index)), payload);
                }
                Ok(())
            }
            Transform::Gcm { key, salt } => {
                let nonce = gcm_nonce(*salt, ssrc, u64::from(index));
                let word = word.to_be_bytes();
                if encrypted {
                    let (header, rest) = pkt
                        .split_at_mut_checked(RTCP_HEADER_LEN)
                        .ok_or(SrtpError::TooShort)?;
                    let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_TRAILER_LEN];
                    aad[..RTCP_HEADER_LEN].copy_from_slice(header);
                    aad[RTCP_HEADER_LEN..].copy_from_slice(&word);
                    let sealed_len = body
                        .checked_sub(RTCP_HEADER_LEN)
                        .ok_or(SrtpError::TooShort)?
                        + GCM_TAG_LEN;
                    let sealed = rest.get_mut(..sealed_len).ok_or(SrtpError::TooShort)?;
                    key.open_in_place(nonce, aead::Aad::from(aad), sealed)
                        .map_err(|_| SrtpError::AuthFailed)?;
                    return Ok(());
                }
                // E = 0 (RFC 7714 9.2): the AAD is the whole packet then
                // the word, which sits after the tag. Move the tag aside,
                // put the word after the packet, check, put the tag back.
                let mut tag = [0u8; GCM_TAG_LEN];
                let tag_bytes = pkt
                    .get(body..body + GCM_TAG_LEN)
                    .ok_or(SrtpError::TooShort)?;
                tag.copy_from_slice(tag_bytes);
                let aad_end = body + SRTCP_TRAILER_LEN;
                put(
                    pkt.get_mut(body..aad_end).ok_or(SrtpError::TooShort)?,
                    &word,
                )?;
                let aad = pkt.get(..aad_end).ok_or(SrtpError::TooShort)?;
                let mut check = tag;
                let ok = key
                    .open_in_place(nonce, aead::Aad::from(aad), &mut check)
                    .is_ok();
                put(pkt.get_mut(body..).unwrap_or_default(), &tag)?;
                if ok {
                    Ok(())
                } else {
                    Err(SrtpError::AuthFailed)
                }
            }
        }
    }
}

/// An AES-GCM key of `alg` (AES_128_GCM or AES_256_GCM); the length is
/// right by construction (16 or 32 octets, from the callers' arrays).
fn gcm_key(alg: &'static aead::Algorithm, key: &[u8]) -> aead::LessSafeKey {
    // AES_128_GCM takes any 16-byte key, AES_256_GCM any 32-byte one.
    let Ok(unbound) = aead::UnboundKey::new(alg, key) else {
        unreachable!("AES-GCM key of the algorithm's length")
    };
    aead::LessSafeKey::new(unbound)
}

/// The ROC of a packet index.
fn roc(index: u64) -> u32 {
    (index >> 16) as u32
}

/// RFC 3711 4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16).
fn cm_iv(salt: u128, ssrc: u32, index: u64) -> u128 {
    salt ^ (u128::from(ssrc) << 64) ^ (u128::from(index) << 16)
}

/// RFC 7714 8.1 / 9.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt for RTP,
/// (00 00 || SSRC || 00 00 || index) XOR salt for RTCP: both are
/// `SSRC * 2^48 + index`.
fn gcm_nonce(salt: u128, ssrc: u32, index: u64) -> aead::Nonce {
    let iv = (salt ^ (u128::from(ssrc) << 48) ^ u128::from(index)).to_be_bytes();
    let mut n = [0u8; 12];
    n.copy_from_slice(&iv[4..]);
    aead::Nonce::assume_unique_for_key(n)
}

/// An HMAC-SHA1 key (the pads hashed once, here). RustCrypto's SHA-1 uses
/// the SHA extensions of the CPU when it has them: about 4 times faster
/// than ring's portable SHA-1 on the machines we run on.
fn hmac_key(auth: &[u8; AUTH_KEY_LEN]) -> Hmac<Sha1> {
    // HMAC takes keys of any length.
    let Ok(mac) = <Hmac<Sha1> as Mac>::new_from_slice(auth) else {
        unreachable!("HMAC key of 20 bytes")
    };
    mac
}

/// The HMAC-SHA1 of the concatenated `parts`, truncated to 80 bits.
fn hmac_tag(auth: &Hmac<Sha1>, parts: &[&[u8]]) -> [u8; HMAC_TAG_LEN] {
    let mut mac = auth.clone();
    for part in parts {
        mac.update(part);
    }
    let full = mac.finalize().into_bytes();
    let mut tag = [0u8; HMAC_TAG_LEN];
    for (t, b) in tag.iter_mut().zip(full) {
        *t = b;
    }
    tag
}

/// The HMAC-SHA1 tag of an SRTP packet: over the authenticated portion and
/// the ROC (RFC 3711 4.2: M = header || encrypted payload || ROC).
fn hmac_rtp(auth: &Hmac<Sha1>, header: &[u8], payload: &[u8], roc: u32) -> [u8; HMAC_TAG_LEN] {
    hmac_tag(auth, &[header, payload, &roc.to_be_bytes()])
}

/// Copies `src` to the start of `dst`; `NoRoom` if `dst` is shorter.
fn put(dst: &mut [u8], src: &[u8]) -> Result<(), SrtpError> {
    dst.get_mut(..src.len())
        .ok_or(SrtpError::NoRoom)?
        .copy_from_slice(src);
    Ok(())
}

/// Constant-time equality of two tags.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
