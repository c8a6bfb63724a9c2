//! SDES (RFC 4568): the value of an SDP `a=crypto:` attribute, parsed into
//! a tag, a suite and a master key, and formatted from them. Only what we
//! can honour is accepted: one `inline:` key without MKI, and no session
//! parameter that changes the transform (UNENCRYPTED_*, UNAUTHENTICATED_*,
//! a key derivation rate other than 0, or an unknown one not marked
//! ignorable with `-`).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};

use super::{MasterKey, Suite};

/// Longest suite name kept (the registered ones are at most 28 octets).
const MAX_SUITE_NAME: usize = 64;
/// Longest base64 key-salt accepted (AES-256 with a 14-octet salt is 64).
const MAX_KEY_B64: usize = 128;

/// Standard base64 (RFC 4648 section 4), padding optional on input.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One `a=crypto` attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crypto {
    /// The tag (1..=999999999) that the answer echoes.
    pub tag: u32,
    /// The suite, `None` for one we do not support.
    pub suite: Option<Suite>,
    /// The suite as written (at most 64 octets of `[A-Za-z0-9_]`).
    pub suite_name: String,
    /// The master key; `None` when the suite is not supported.
    pub key: Option<MasterKey>,
}

/// Parses the value after `a=crypto:`, e.g.
/// `1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4`
/// (that one is `None`: it has an MKI). `None` on a bad tag (not
/// 1..=999999999 in decimal), missing parts, bad base64, a key of the wrong
/// length for a known suite, more than one key-param, a key method other
/// than `inline`, an MKI, a bad lifetime, or a session parameter that we
/// cannot honour: UNENCRYPTED_SRTP, UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP,
/// KDR other than 0, or an unknown one without the `-` that marks it
/// ignorable (RFC 4568 6.3.7). FEC_ORDER, FEC_KEY and WSH are ignored, and
/// so is a lifetime (`2^31` or decimal). An unknown suite with a
/// syntactically valid `inline:` key gives `suite` and `key` `None`.
pub fn parse(value: &str) -> Option<Crypto> {
    let mut parts = value.split_ascii_whitespace();
    let tag = parse_tag(parts.next()?)?;
    let suite_name = parts.next()?;
    if suite_name.is_empty()
        || suite_name.len() > MAX_SUITE_NAME
        || !suite_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return None;
    }
    let key_params = parts.next()?;
    if key_params.contains(';') {
        return None;
    }
    let key_salt = parse_key_param(key_params)?;
    if !parts.all(ignorable) {
        return None;
    }
    let suite = Suite::from_name(suite_name);
    let key = match suite {
        Some(s) => Some(MasterKey::new(s, &key_salt)?),
        None => None,
    };
    Some(Crypto {
        tag,
        suite,
        suite_name: suite_name.to_owned(),
        key,
    })
}

/// `"<tag> <suite> inline:<base64 of key || salt>"`, standard base64 with
/// padding as in the examples of RFC 4568.
pub fn format(tag: u32, key: &MasterKey) -> String {
    format!(
        "{tag} {} inline:{}",
        key.suite.name(),
        STANDARD.encode(key.key_and_salt())
    )
}

/// `tag = 1*9DIGIT`, and not 0.
fn parse_tag(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let tag: u32 = s.parse().ok()?;
    (tag != 0).then_some(tag)
}

/// `inline:<key||salt>["|" lifetime]["|" mki ":" length]`: the decoded
/// key-salt; `None` with an MKI or anything malformed.
fn parse_key_param(s: &str) -> Option<Vec<u8>> {
    let (method, info) = s.split_once(':')?;
    if !method.eq_ignore_ascii_case("inline") {
        return None;
    }
    let mut fields = info.split('|');
    let b64 = fields.next()?;
    if b64.is_empty() || b64.len() > MAX_KEY_B64 {
        return None;
    }
    let key_salt = LENIENT.decode(b64).ok()?;
    let mut lifetime_seen = false;
    for field in fields {
        if field.contains(':') {
            // An MKI: valid or not, we do not support it.
            return None;
        }
        if lifetime_seen || !valid_lifetime(field) {
            return None;
        }
        lifetime_seen = true;
    }
    Some(key_salt)
}

/// `lifetime = ["2^"] 1*(DIGIT)`, bounded so the value fits in 48 bits.
fn valid_lifetime(s: &str) -> bool {
    let digits = |d: &str, max: usize| {
        !d.is_empty() && d.len() <= max && d.bytes().all(|b| b.is_ascii_digit())
    };
    match s.strip_prefix("2^") {
        Some(exp) => digits(exp, 2),
        None => digits(s, 15),
    }
}

/// Whether a session parameter may be ignored: `false` for one that we
/// cannot honour, or do not know and is not marked ignorable with `-`.
fn ignorable(param: &str) -> bool {
    let named = |p: &str| {
        param
            .get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p))
    };
    if param.starts_with('-') {
        return true;
    }
    if let Some(v) = named("KDR=").then(|| param.get(4..)).flatten() {
        // The key derivation rate is 2^KDR; only "no re-derivation" (0,
        // as we do it) is honoured.
        return !v.is_empty() && v.len() <= 2 && v.bytes().all(|b| b == b'0');
    }
    // UNENCRYPTED_SRTP, UNENCRYPTED_SRTCP and UNAUTHENTICATED_SRTP fall
    // here: not ignorable.
    named("FEC_ORDER=") || named("FEC_KEY=") || named("WSH=")
}

#[cfg(test)]
#[path = "sdes_tests.rs"]
mod tests;
