//! The client side of digest: answering a carrier's 401/407 challenge with a
//! trunk's credentials (RFC 7616, qop=auth when offered, RFC 2069 otherwise).

use super::digest::{expected_response, Algorithm, ResponseInput, Secret};
use super::params::{quote, Params};

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// `qop` offered includes `auth`.
    pub qop_auth: bool,
}

/// Parses a Digest challenge; `None` for other schemes or a malformed one.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim_start();
    let (scheme, rest) = value.split_at(value.find(char::is_whitespace)?);
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let (mut realm, mut nonce, mut opaque, mut algorithm, mut qop_auth) =
        (None, None, None, Algorithm::Md5, false);
    for item in Params::new(rest, scheme.len()) {
        let (name, v) = item.ok()?;
        match name.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(v),
            "nonce" => nonce = Some(v),
            "opaque" => opaque = Some(v),
            "algorithm" => algorithm = Algorithm::parse(&v)?,
            "qop" => qop_auth = v.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")),
            _ => {}
        }
    }
    Some(Challenge {
        realm: realm?,
        nonce: nonce?,
        opaque,
        algorithm,
        qop_auth,
    })
}

/// The credentials header value answering `challenge` for a request.
pub fn answer(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> Option<String> {
    let nc = "00000001";
    let qop = if challenge.qop_auth { "auth" } else { "" };
    let input = ResponseInput {
        algorithm: challenge.algorithm,
        username,
        realm: &challenge.realm,
        nonce: &challenge.nonce,
        nc,
        cnonce,
        qop,
        method,
        uri,
    };
    let response = if challenge.qop_auth {
        expected_response(&input, Secret::Password(password))?
    } else {
        // RFC 2069: H(HA1:nonce:HA2), MD5 only.
        use md5::{Digest, Md5};
        let hex = |s: String| super::digest::encode_hex(&Md5::digest(s.as_bytes()));
        let ha1 = hex(format!("{username}:{}:{password}", challenge.realm));
        let ha2 = hex(format!("{method}:{uri}"));
        hex(format!("{ha1}:{}:{ha2}", challenge.nonce))
    };
    let mut v = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
        quote(username),
        quote(&challenge.realm),
        quote(&challenge.nonce),
        quote(uri),
        quote(&response),
        challenge.algorithm.name()
    );
    if challenge.qop_auth {
        v.push_str(&format!(", qop=auth, nc={nc}, cnonce={}", quote(cnonce)));
    }
    if let Some(o) = &challenge.opaque {
        v.push_str(&format!(", opaque={}", quote(o)));
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthConfig, AuthOutcome, Authenticator};

    #[test]
    fn our_answer_passes_our_own_verifier() {
        let mut server = Authenticator::new([9; 32], AuthConfig::default()).unwrap();
        for i in 0..2 {
            // A fresh challenge per algorithm: one nonce answered twice with nc=1 is a replay.
            let ch = server.challenge_headers(100, "carrier.test", "cid", false)[i].clone();
            let c = parse_challenge(&ch).unwrap();
            assert_eq!(c.realm, "carrier.test");
            assert!(c.qop_auth);
            let value = answer(
                &c,
                "trunkuser",
                "trunkpass",
                "INVITE",
                "sip:+4930@carrier.test",
                "abc",
            )
            .unwrap();
            let outcome = server.check(100, "INVITE", Some(&value), "carrier.test", "cid", |u| {
                (u == "trunkuser").then_some(Secret::Password("trunkpass"))
            });
            assert!(
                matches!(outcome, AuthOutcome::Ok { .. }),
                "{ch}: {outcome:?}"
            );
        }
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
        assert!(parse_challenge("Digest nonce=\"n\"").is_none(), "no realm");
    }
}
