//! Digest hashing and response verification (RFC 7616 section 3.4.1-3.4.3,
//! RFC 2617 section 3.2.2): the algorithms we know, where a user's secret comes
//! from, HA1 / HA2 / response computation and the constant-time comparison.

use std::fmt;
use std::str::FromStr;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// A digest algorithm as named in the `algorithm` parameter (RFC 7616 section 6.1).
///
/// The `-sess` variants hash the cnonce into HA1 (RFC 7616 section 3.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
    Sha512_256,
    Sha512_256Sess,
}

impl Algorithm {
    /// Every algorithm, for config validation messages.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Md5,
        Algorithm::Md5Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Sha512_256,
        Algorithm::Sha512_256Sess,
    ];

    /// The name as written on the wire and in the config (`digest_algorithms`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Case-insensitive lookup by wire name; `None` for anything unknown.
    pub fn parse(name: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// True for the `-sess` variants.
    pub fn is_session(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// True when the hash function is MD5 (so an MD5 HA1 can serve it).
    pub fn is_md5(self) -> bool {
        matches!(self, Algorithm::Md5 | Algorithm::Md5Sess)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of [`Algorithm::from_str`]: the name is not a known digest algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown digest algorithm {:?} (known:", self.0)?;
        for a in Algorithm::ALL {
            write!(f, " {a}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::parse(s).ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

/// Where a user's secret comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Secret<'a> {
    /// The plaintext SIP password: every algorithm can be verified.
    Password(&'a str),
    /// A precomputed `hex(MD5(user:realm:password))` (e.g. the `ha1` of the HTTP user
    /// backend). Only MD5 and MD5-sess responses can be verified with it; any other
    /// algorithm fails. Upper or lower case hex; anything but 32 hex digits fails.
    Md5Ha1(&'a str),
    /// Precomputed HA1s for one realm: `hex(MD5(user:realm:password))` and
    /// `hex(SHA-256(user:realm:password))` (the console's extensions, which
    /// keep no password). Each serves its own algorithms.
    Ha1 { md5: &'a str, sha256: &'a str },
}

impl fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets into logs.
        match self {
            Secret::Password(_) => f.write_str("Password(..)"),
            Secret::Md5Ha1(_) => f.write_str("Md5Ha1(..)"),
            Secret::Ha1 { .. } => f.write_str("Ha1(..)"),
        }
    }
}

/// The inputs of a qop=auth response (RFC 7616 section 3.4.1), as sent by the client.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInput<'a> {
    pub algorithm: Algorithm,
    pub username: &'a str,
    pub realm: &'a str,
    pub nonce: &'a str,
    /// The 8 hex digits exactly as sent.
    pub nc: &'a str,
    pub cnonce: &'a str,
    /// The qop value as sent (we only accept `auth`).
    pub qop: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
}

/// The expected `response` value as lowercase hex, or `None` when `secret` cannot
/// serve `input.algorithm` (an MD5 HA1 for a SHA-2 algorithm, or a malformed HA1).
pub fn expected_response(input: &ResponseInput<'_>, secret: Secret<'_>) -> Option<String> {
    match input.algorithm {
        Algorithm::Md5 | Algorithm::Md5Sess => compute::<Md5>(input, secret),
        Algorithm::Sha256 | Algorithm::Sha256Sess => compute::<Sha256>(input, secret),
        Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => compute::<Sha512_256>(input, secret),
    }
}

/// True when `response` (hex, any case) is the right answer for `input` and `secret`.
/// The digest bytes are compared in constant time.
pub fn verify_response(input: &ResponseInput<'_>, secret: Secret<'_>, response: &str) -> bool {
    let Some(expected) = expected_response(input, secret) else {
        return false;
    };
    let Some(got) = decode_hex(response) else {
        return false;
    };
    let Some(want) = decode_hex(&expected) else {
        return false;
    };
    constant_time_eq(&got, &want)
}

fn compute<D: Digest>(input: &ResponseInput<'_>, secret: Secret<'_>) -> Option<String> {
    let base_ha1 = match secret {
        Secret::Password(password) => hash_hex::<D>(&[input.username, input.realm, password]),
        Secret::Md5Ha1(ha1) => {
            if !input.algorithm.is_md5() || ha1.len() != 32 {
                return None;
            }
            decode_hex(ha1)?;
            ha1.to_ascii_lowercase()
        }
        Secret::Ha1 { md5, sha256 } => {
            let (ha1, len) = match input.algorithm {
                Algorithm::Md5 | Algorithm::Md5Sess => (md5, 32),
                Algorithm::Sha256 | Algorithm::Sha256Sess => (sha256, 64),
                Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => return None,
            };
            if ha1.len() != len {
                return None;
            }
            decode_hex(ha1)?;
            ha1.to_ascii_lowercase()
        }
    };
    let ha1 = if input.algorithm.is_session() {
        hash_hex::<D>(&[&base_ha1, input.nonce, input.cnonce])
    } else {
        base_ha1
    };
    let ha2 = hash_hex::<D>(&[input.method, input.uri]);
    Some(hash_hex::<D>(&[
        &ha1,
        input.nonce,
        input.nc,
        input.cnonce,
        input.qop,
        &ha2,
    ]))
}

/// `hex(H(parts[0] ":" parts[1] ":" ...))` in lowercase.
fn hash_hex<D: Digest>(parts: &[&str]) -> String {
    let mut hasher = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(part.as_bytes());
    }
    encode_hex(&hasher.finalize())
}

/// Lowercase hex of `bytes`.
pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends the lowercase hex of `bytes` to `out`.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Bytes of an even-length hex string (any case); `None` if it is not one.
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some((hex_value(pair[0])? << 4) | hex_value(pair[1])?))
        .collect()
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Compares two byte strings without an early exit on the first difference.
/// The lengths are not secret (they follow from the algorithm).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc2617_input(algorithm: Algorithm) -> ResponseInput<'static> {
        ResponseInput {
            algorithm,
            username: "Mufasa",
            realm: "testrealm@host.com",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            nc: "00000001",
            cnonce: "0a4f113b",
            qop: "auth",
            method: "GET",
            uri: "/dir/index.html",
        }
    }

    fn rfc7616_input(algorithm: Algorithm) -> ResponseInput<'static> {
        ResponseInput {
            algorithm,
            username: "Mufasa",
            realm: "http-auth@example.org",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            nc: "00000001",
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            qop: "auth",
            method: "GET",
            uri: "/dir/index.html",
        }
    }

    #[test]
    fn rfc2617_section_3_5_md5_known_answer() {
        let input = rfc2617_input(Algorithm::Md5);
        let secret = Secret::Password("Circle Of Life");
        assert_eq!(
            expected_response(&input, secret).as_deref(),
            Some("6629fae49393a05397450978507c4ef1")
        );
        assert!(verify_response(
            &input,
            secret,
            "6629fae49393a05397450978507c4ef1"
        ));
        // Upper-case hex from a client is the same digest.
        assert!(verify_response(
            &input,
            secret,
            "6629FAE49393A05397450978507C4EF1"
        ));
        assert!(!verify_response(
            &input,
            Secret::Password("Circle of Life"),
            "6629fae49393a05397450978507c4ef1"
        ));
    }

    #[test]
    fn rfc2617_md5_with_precomputed_ha1() {
        // HA1 = MD5("Mufasa:testrealm@host.com:Circle Of Life")
        let ha1 = hash_hex::<Md5>(&["Mufasa", "testrealm@host.com", "Circle Of Life"]);
        let upper = ha1.to_ascii_uppercase();
        let input = rfc2617_input(Algorithm::Md5);
        for h in [ha1.as_str(), upper.as_str()] {
            assert!(verify_response(
                &input,
                Secret::Md5Ha1(h),
                "6629fae49393a05397450978507c4ef1"
            ));
        }
        assert!(!verify_response(
            &input,
            Secret::Md5Ha1("not-hex-not-hex-not-hex-not-hex!"),
            "6629fae49393a05397450978507c4ef1"
        ));
        assert!(!verify_response(
            &input,
            Secret::Md5Ha1("abcd"),
            "6629fae49393a05397450978507c4ef1"
        ));
    }

    #[test]
    fn rfc7616_section_3_9_1_sha256_known_answer() {
        let input = rfc7616_input(Algorithm::Sha256);
        let secret = Secret::Password("Circle of Life");
        let want = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1";
        assert_eq!(expected_response(&input, secret).as_deref(), Some(want));
        assert!(verify_response(&input, secret, want));
        assert!(!verify_response(
            &input,
            Secret::Password("circle of life"),
            want
        ));
    }

    #[test]
    fn rfc7616_section_3_9_1_md5_known_answer() {
        let input = rfc7616_input(Algorithm::Md5);
        assert_eq!(
            expected_response(&input, Secret::Password("Circle of Life")).as_deref(),
            Some("8ca523f5e9506fed4657c9700eebdbec")
        );
    }

    #[test]
    fn sha256_response_with_only_md5_ha1_fails() {
        let input = rfc7616_input(Algorithm::Sha256);
        let ha1 = hash_hex::<Md5>(&["Mufasa", "http-auth@example.org", "Circle of Life"]);
        assert_eq!(expected_response(&input, Secret::Md5Ha1(&ha1)), None);
        assert!(!verify_response(
            &input,
            Secret::Md5Ha1(&ha1),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        ));
    }

    #[test]
    fn session_variant_hashes_cnonce_into_ha1() {
        let input = rfc2617_input(Algorithm::Md5Sess);
        let ha1 = hash_hex::<Md5>(&["Mufasa", "testrealm@host.com", "Circle Of Life"]);
        let sess = hash_hex::<Md5>(&[&ha1, input.nonce, input.cnonce]);
        let ha2 = hash_hex::<Md5>(&["GET", "/dir/index.html"]);
        let want = hash_hex::<Md5>(&[&sess, input.nonce, "00000001", input.cnonce, "auth", &ha2]);
        let from_password = expected_response(&input, Secret::Password("Circle Of Life"));
        let from_ha1 = expected_response(&input, Secret::Md5Ha1(&ha1));
        assert_eq!(from_password.as_deref(), Some(want.as_str()));
        assert_eq!(from_ha1.as_deref(), Some(want.as_str()));
    }

    #[test]
    fn wrong_length_or_non_hex_response_is_a_mismatch() {
        let input = rfc2617_input(Algorithm::Md5);
        let secret = Secret::Password("Circle Of Life");
        for bad in [
            "",
            "6629fae4",
            "6629fae49393a05397450978507c4ef",
            "6629fae49393a05397450978507c4ef1ff",
            "zz29fae49393a05397450978507c4ef1",
            "6629fae49393a05397450978507c4éf",
        ] {
            assert!(!verify_response(&input, secret, bad), "{bad}");
        }
    }

    #[test]
    fn algorithm_names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::parse(a.name()), Some(a));
            assert_eq!(a.name().to_ascii_lowercase().parse::<Algorithm>(), Ok(a));
        }
        assert_eq!(Algorithm::parse("SHA-1"), None);
        assert!("md4".parse::<Algorithm>().is_err());
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(encode_hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(decode_hex("00ABff"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("gg"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn secrets_are_not_printed() {
        assert_eq!(format!("{:?}", Secret::Password("hunter2")), "Password(..)");
        assert_eq!(format!("{:?}", Secret::Md5Ha1("abc")), "Md5Ha1(..)");
    }

    #[test]
    fn precomputed_ha1s_verify_both_algorithms() {
        use sha2::Digest as _;
        let md5 = format!(
            "{:x}",
            md5::Md5::digest(b"Mufasa:testrealm@host.com:Circle Of Life")
        );
        let sha = format!(
            "{:x}",
            sha2::Sha256::digest(b"Mufasa:testrealm@host.com:Circle Of Life")
        );
        for algorithm in [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha256Sess] {
            let input = rfc2617_input(algorithm);
            let want = expected_response(&input, Secret::Password("Circle Of Life"));
            assert!(want.is_some());
            let got = expected_response(
                &input,
                Secret::Ha1 {
                    md5: &md5,
                    sha256: &sha,
                },
            );
            assert_eq!(got, want, "{algorithm}");
        }
        // Each hash only serves its own algorithm.
        let input = rfc2617_input(Algorithm::Sha256);
        let swapped = Secret::Ha1 {
            md5: &sha,
            sha256: &md5,
        };
        assert_eq!(expected_response(&input, swapped), None);
    }
}
