//! Challenge header values for `WWW-Authenticate` (401, registrar) and
//! `Proxy-Authenticate` (407, proxy); both carry the same value (RFC 7616 section 3.3).

use super::digest::Algorithm;
use super::params::quote;

/// `Digest realm="..", nonce="..", opaque="..", algorithm=.., qop="auth"[, stale=true]`
pub(crate) fn challenge_value(
    realm: &str,
    nonce: &str,
    opaque: &str,
    algorithm: Algorithm,
    stale: bool,
) -> String {
    let mut value = format!(
        "Digest realm={}, nonce={}, opaque={}, algorithm={}, qop=\"auth\"",
        quote(realm),
        quote(nonce),
        quote(opaque),
        algorithm.name()
    );
    if stale {
        value.push_str(", stale=true");
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_rfc7616() {
        assert_eq!(
            challenge_value("example.com", "abc", "0f", Algorithm::Sha256, false),
            r#"Digest realm="example.com", nonce="abc", opaque="0f", algorithm=SHA-256, qop="auth""#
        );
        assert_eq!(
            challenge_value(r#"a"b"#, "n", "o", Algorithm::Md5, true),
            r#"Digest realm="a\"b", nonce="n", opaque="o", algorithm=MD5, qop="auth", stale=true"#
        );
    }
}
