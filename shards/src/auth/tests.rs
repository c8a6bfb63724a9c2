//! Tests of the [`Authenticator`] entry point: a scripted client answers our
//! challenges; time is injected.

use super::digest::{expected_response, ResponseInput};
use super::params::Params;
use super::*;

const KEY: [u8; 32] = [42; 32];
const T0: u64 = 1_700_000_000;
const REALM: &str = "pbx.example.com";
const CALL: &str = "a84b4c76e66710@pc33.atlanta.com";
const URI: &str = "sip:pbx.example.com";

fn auth() -> Authenticator {
    Authenticator::new(KEY, AuthConfig::default()).unwrap()
}

/// Parameters of a challenge value.
fn challenge_params(value: &str) -> Vec<(String, String)> {
    let rest = value.strip_prefix("Digest ").unwrap();
    Params::new(rest, 0)
        .map(|p| p.map(|(n, v)| (n.to_owned(), v)).unwrap())
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A client that answers a challenge.
#[derive(Clone)]
struct Client {
    user: String,
    password: String,
    nonce: String,
    algorithm: Algorithm,
    realm: String,
    opaque: String,
}

impl Client {
    fn answering(challenge: &str, user: &str, password: &str) -> Client {
        let p = challenge_params(challenge);
        Client {
            user: user.into(),
            password: password.into(),
            nonce: param(&p, "nonce").unwrap().into(),
            algorithm: Algorithm::parse(param(&p, "algorithm").unwrap()).unwrap(),
            realm: param(&p, "realm").unwrap().into(),
            opaque: param(&p, "opaque").unwrap().into(),
        }
    }

    fn header(&self, method: &str, nc: u32) -> String {
        let nc = format!("{nc:08x}");
        let cnonce = "0a4f113b";
        let response = expected_response(
            &ResponseInput {
                algorithm: self.algorithm,
                username: &self.user,
                realm: &self.realm,
                nonce: &self.nonce,
                nc: &nc,
                cnonce,
                qop: "auth",
                method,
                uri: URI,
            },
            Secret::Password(&self.password),
        )
        .unwrap();
        format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{URI}\", \
             response=\"{response}\", algorithm={}, cnonce=\"{cnonce}\", \
             opaque=\"{}\", qop=auth, nc={nc}",
            self.user, self.realm, self.nonce, self.algorithm, self.opaque
        )
    }
}

fn users(name: &str) -> Option<Secret<'static>> {
    match name {
        "1001" => Some(Secret::Password("secret1001")),
        "1002" => Some(Secret::Password("pa\"ss\\word")),
        _ => None,
    }
}

fn ok(user: &str) -> AuthOutcome {
    AuthOutcome::Ok {
        username: user.into(),
        uri: URI.into(),
    }
}

fn challenge(reason: ChallengeReason) -> AuthOutcome {
    AuthOutcome::Challenge {
        stale: reason.is_stale(),
        reason,
    }
}

/// A challenge at `now` for `binding`, answered by `user` with the algorithm at
/// position `which`.
fn answer(
    a: &mut Authenticator,
    now: u64,
    binding: &str,
    which: usize,
    user: &str,
    pw: &str,
) -> Client {
    let values = a.challenge_headers(now, REALM, binding, false);
    Client::answering(&values[which], user, pw)
}

#[test]
fn challenge_headers_one_per_algorithm_in_order_sharing_a_nonce() {
    let mut a = auth();
    let values = a.challenge_headers(T0, REALM, CALL, false);
    assert_eq!(values.len(), 2);
    let md5 = challenge_params(&values[0]);
    let sha = challenge_params(&values[1]);
    let names: Vec<&str> = md5.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["realm", "nonce", "opaque", "algorithm", "qop"]);
    assert_eq!(param(&md5, "realm"), Some(REALM));
    assert_eq!(param(&md5, "algorithm"), Some("MD5"));
    assert_eq!(param(&sha, "algorithm"), Some("SHA-256"));
    assert_eq!(param(&md5, "qop"), Some("auth"));
    assert_eq!(param(&md5, "nonce"), param(&sha, "nonce"));
    assert_eq!(param(&md5, "opaque"), param(&sha, "opaque"));
    assert!(values[0].contains(r#"qop="auth""#));
    assert!(!values[0].contains("stale"));

    let stale = a.challenge_headers(T0, REALM, CALL, true);
    assert!(stale.iter().all(|v| v.ends_with(", stale=true")));
    assert_ne!(
        param(&challenge_params(&stale[0]), "nonce"),
        param(&md5, "nonce"),
        "every challenge has a fresh nonce"
    );

    let mut only_sha = Authenticator::new(
        KEY,
        AuthConfig {
            algorithms: vec![Algorithm::Sha256],
            ..AuthConfig::default()
        },
    )
    .unwrap();
    let values = only_sha.challenge_headers(T0, REALM, CALL, false);
    assert_eq!(values.len(), 1);
    assert!(values[0].contains("algorithm=SHA-256"));
}

#[test]
fn md5_and_sha256_round_trips() {
    let mut a = auth();
    for which in 0..2 {
        let c = answer(&mut a, T0, CALL, which, "1001", "secret1001");
        let h = c.header("REGISTER", 1);
        assert_eq!(
            a.check(T0 + 1, "REGISTER", Some(&h), REALM, CALL, users),
            ok("1001")
        );
    }
    // Quotes and backslashes in the password hash as is.
    let c = answer(&mut a, T0, CALL, 1, "1002", "pa\"ss\\word");
    let h = c.header("INVITE", 1);
    assert_eq!(
        a.check(T0, "INVITE", Some(&h), REALM, CALL, users),
        ok("1002")
    );
}

#[test]
fn md5_ha1_secret_verifies_md5_only() {
    let ha1 = digest::encode_hex(&{
        use md5::{Digest, Md5};
        Md5::digest(format!("1001:{REALM}:secret1001").as_bytes())
    });
    let lookup = |_: &str| Some(Secret::Md5Ha1(&ha1));
    let mut a = auth();
    let c = answer(&mut a, T0, CALL, 0, "1001", "secret1001");
    let h = c.header("REGISTER", 1);
    assert_eq!(
        a.check(T0, "REGISTER", Some(&h), REALM, CALL, lookup),
        ok("1001")
    );

    let c = answer(&mut a, T0, CALL, 1, "1001", "secret1001");
    let h = c.header("REGISTER", 1);
    assert_eq!(
        a.check(T0, "REGISTER", Some(&h), REALM, CALL, lookup),
        AuthOutcome::Failed {
            username: "1001".into()
        }
    );
}

#[test]
fn missing_unknown_scheme_and_malformed_credentials_get_a_plain_challenge() {
    let mut a = auth();
    let never = |_: &str| -> Option<Secret<'static>> { panic!("no lookup expected") };
    assert_eq!(
        a.check(T0, "REGISTER", None, REALM, CALL, never),
        challenge(ChallengeReason::NoCredentials)
    );
    // Torture test regaut01.
    assert_eq!(
        a.check(
            T0,
            "REGISTER",
            Some("NoOneKnowsThisScheme opaque-data=here"),
            REALM,
            CALL,
            never
        ),
        challenge(ChallengeReason::OtherScheme)
    );
    for bad in [
        "",
        "Digest",
        "Digest username=\"x",
        "Digest realm=\"r\", realm=\"r\"",
    ] {
        assert_eq!(
            a.check(T0, "REGISTER", Some(bad), REALM, CALL, never),
            challenge(ChallengeReason::Malformed),
            "{bad}"
        );
    }
    assert_eq!(
        challenge(ChallengeReason::Malformed),
        AuthOutcome::Challenge {
            stale: false,
            reason: ChallengeReason::Malformed
        }
    );
}

#[test]
fn credentials_we_did_not_ask_for_get_a_plain_challenge() {
    let mut a = auth();
    let never = |_: &str| -> Option<Secret<'static>> { panic!("no lookup expected") };
    let c = answer(&mut a, T0, CALL, 0, "1001", "secret1001");
    let good = c.header("REGISTER", 1);

    let other_realm = good.replace(REALM, "evil.example.com");
    assert_eq!(
        a.check(T0, "REGISTER", Some(&other_realm), REALM, CALL, never),
        challenge(ChallengeReason::RealmMismatch)
    );
    let sess = good.replace("algorithm=MD5", "algorithm=MD5-sess");
    assert_eq!(
        a.check(T0, "REGISTER", Some(&sess), REALM, CALL, never),
        challenge(ChallengeReason::AlgorithmNotOffered)
    );
    let hashed = format!("{good}, userhash=true");
    assert_eq!(
        a.check(T0, "REGISTER", Some(&hashed), REALM, CALL, never),
        challenge(ChallengeReason::UserhashUnsupported)
    );
    let auth_int = good.replace("qop=auth", "qop=auth-int");
    assert_eq!(
        a.check(T0, "REGISTER", Some(&auth_int), REALM, CALL, never),
        challenge(ChallengeReason::QopNotAuth)
    );
    // RFC 2069 style: no qop, cnonce or nc.
    let nonce = &c.nonce;
    let rfc2069 = format!(
        r#"Digest username="1001", realm="{REALM}", nonce="{nonce}", uri="{URI}", response="00112233445566778899aabbccddeeff""#
    );
    assert_eq!(
        a.check(T0, "REGISTER", Some(&rfc2069), REALM, CALL, never),
        challenge(ChallengeReason::QopNotAuth)
    );
    let no_nc = good.replace(", nc=00000001", "");
    assert_eq!(
        a.check(T0, "REGISTER", Some(&no_nc), REALM, CALL, never),
        challenge(ChallengeReason::QopNotAuth)
    );

    let mut md5_only = Authenticator::new(
        KEY,
        AuthConfig {
            algorithms: vec![Algorithm::Md5],
            ..AuthConfig::default()
        },
    )
    .unwrap();
    let c = answer(&mut a, T0, CALL, 1, "1001", "secret1001");
    let h = c.header("REGISTER", 1);
    assert_eq!(
        md5_only.check(T0, "REGISTER", Some(&h), REALM, CALL, never),
        challenge(ChallengeReason::AlgorithmNotOffered)
    );
}

#[test]
fn wrong_password_and_unknown_user_are_indistinguishable() {
    let mut a = auth();
    let c = answer(&mut a, T0, CALL, 0, "1001", "wrong");
    let wrong_pw = a.check(
        T0,
        "REGISTER",
        Some(&c.header("REGISTER", 1)),
        REALM,
        CALL,
        users,
    );
    let mut b = auth();
    let c = answer(&mut b, T0, CALL, 0, "1001", "wrong");
    let h = c.header("REGISTER", 1);
    let unknown = b.check(T0, "REGISTER", Some(&h), REALM, CALL, |_| None);
    assert_eq!(
        wrong_pw,
        AuthOutcome::Failed {
            username: "1001".into()
        }
    );
    assert_eq!(wrong_pw, unknown);
    // And the challenges that preceded them were the same (same key, same clock).
    assert_eq!(
        auth().challenge_headers(T0, REALM, CALL, false),
        auth().challenge_headers(T0, REALM, CALL, false)
    );
}

#[test]
fn failed_attempts_do_not_record_the_nonce_count() {
    let mut a = auth();
    let bad = answer(&mut a, T0, CALL, 0, "1001", "guess");
    let good = Client {
        password: "secret1001".into(),
        ..bad.clone()
    };
    let h = bad.header("REGISTER", 1);
    assert!(matches!(
        a.check(T0, "REGISTER", Some(&h), REALM, CALL, users),
        AuthOutcome::Failed { .. }
    ));
    assert_eq!(a.tracked_nonces(), 0);
    let h = good.header("REGISTER", 1);
    assert_eq!(
        a.check(T0, "REGISTER", Some(&h), REALM, CALL, users),
        ok("1001")
    );
}

#[test]
fn nonce_count_replay_is_refused() {
    let mut a = auth();
    let c = answer(&mut a, T0, CALL, 1, "1001", "secret1001");
    let check = |a: &mut Authenticator, nc: u32| {
        let h = c.header("REGISTER", nc);
        a.check(T0 + 5, "REGISTER", Some(&h), REALM, CALL, users)
    };
    let replay = AuthOutcome::Replay {
        username: "1001".into(),
    };
    assert_eq!(check(&mut a, 1), ok("1001"));
    assert_eq!(check(&mut a, 1), replay, "same nc twice");
    assert_eq!(check(&mut a, 2), ok("1001"));
    assert_eq!(check(&mut a, 3), ok("1001"));
    assert_eq!(check(&mut a, 2), replay, "nc went backwards");
    assert_eq!(check(&mut a, 7), ok("1001"), "increasing with a gap");
    assert_eq!(check(&mut a, 0), replay);
    assert_eq!(a.tracked_nonces(), 1);
}

#[test]
fn expiry_at_the_exact_boundary_gives_stale() {
    let mut a = auth();
    let c = answer(&mut a, T0, CALL, 0, "1001", "secret1001");
    let lifetime = AuthConfig::DEFAULT_NONCE_LIFETIME;
    let h = c.header("REGISTER", 1);
    assert_eq!(
        a.check(T0 + lifetime - 1, "REGISTER", Some(&h), REALM, CALL, users),
        ok("1001")
    );
    let h = c.header("REGISTER", 2);
    assert_eq!(
        a.check(T0 + lifetime, "REGISTER", Some(&h), REALM, CALL, users),
        AuthOutcome::Challenge {
            stale: true,
            reason: ChallengeReason::ExpiredNonce
        }
    );
}

#[test]
fn lookup_that_outlives_the_nonce_gives_stale() {
    let mut a = auth();
    let c = answer(&mut a, T0, CALL, 0, "1001", "secret1001");
    let h = c.header("REGISTER", 1);
    let Step::Lookup(pending) = a.begin(T0 + 299, Some(&h), REALM, CALL) else {
        panic!("expected a lookup");
    };
    assert_eq!(pending.username(), "1001");
    assert_eq!(pending.realm(), REALM);
    assert_eq!(pending.credentials().uri, URI);
    let outcome = a.finish(T0 + 300, "REGISTER", pending.clone(), users("1001"));
    assert_eq!(outcome, challenge(ChallengeReason::ExpiredNonce));
    assert_eq!(
        a.finish(T0 + 299, "REGISTER", pending, users("1001")),
        ok("1001")
    );
}

#[test]
fn binding_mismatch_forged_and_foreign_nonces_give_stale() {
    let mut a = auth();
    let never = |_: &str| -> Option<Secret<'static>> { panic!("no lookup expected") };
    let c = answer(&mut a, T0, CALL, 0, "1001", "secret1001");
    let h = c.header("REGISTER", 1);
    let stale_invalid = AuthOutcome::Challenge {
        stale: true,
        reason: ChallengeReason::InvalidNonce,
    };
    // Same credentials, other Call-ID.
    assert_eq!(
        a.check(T0, "REGISTER", Some(&h), REALM, "other-call-id", never),
        stale_invalid
    );
    // A nonce we never made (the RFC 2617 one), with a correct response for it.
    let forged = Client {
        nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
        ..Client::answering(
            &a.challenge_headers(T0, REALM, CALL, false)[0],
            "1001",
            "secret1001",
        )
    };
    let h = forged.header("REGISTER", 1);
    assert_eq!(
        a.check(T0, "REGISTER", Some(&h), REALM, CALL, never),
        stale_invalid
    );
    // A nonce from another key, e.g. before a restart.
    let mut before_restart = Authenticator::with_random_key(AuthConfig::default()).unwrap();
    let c = answer(&mut before_restart, T0, CALL, 0, "1001", "secret1001");
    let h = c.header("REGISTER", 1);
    assert_eq!(
        a.check(T0, "REGISTER", Some(&h), REALM, CALL, never),
        stale_invalid
    );
    assert_eq!(
        before_restart.check(T0, "REGISTER", Some(&h), REALM, CALL, users),
        ok("1001")
    );
}

#[test]
fn random_keys_differ() {
    let mut a = Authenticator::with_random_key(AuthConfig::default()).unwrap();
    let b = Authenticator::with_random_key(AuthConfig::default()).unwrap();
    let c = answer(&mut a, T0, CALL, 0, "1001", "secret1001");
    let h = c.header("REGISTER", 1);
    assert_eq!(
        b.begin(T0, Some(&h), REALM, CALL),
        Step::Done(challenge(ChallengeReason::InvalidNonce))
    );
}

#[test]
fn sweep_frees_memory() {
    let mut a = auth();
    for i in 0..20 {
        let call = format!("call-{i}");
        let c = answer(&mut a, T0 + i, &call, 0, "1001", "secret1001");
        let h = c.header("REGISTER", 1);
        assert_eq!(
            a.check(T0 + i, "REGISTER", Some(&h), REALM, &call, users),
            ok("1001")
        );
    }
    assert_eq!(a.tracked_nonces(), 20);
    a.sweep(T0 + 299);
    assert_eq!(a.tracked_nonces(), 20);
    a.sweep(T0 + 310);
    assert_eq!(a.tracked_nonces(), 9);
    a.sweep(T0 + 320);
    assert_eq!(a.tracked_nonces(), 0);
}

#[test]
fn capacity_cap_evicts_oldest_which_then_gets_stale() {
    let mut a = Authenticator::new(
        KEY,
        AuthConfig {
            max_tracked_nonces: 2,
            ..AuthConfig::default()
        },
    )
    .unwrap();
    let clients: Vec<(String, Client)> = (0..3)
        .map(|i| {
            let call = format!("call-{i}");
            let c = answer(&mut a, T0 + i, &call, 0, "1001", "secret1001");
            (call, c)
        })
        .collect();
    for (call, c) in &clients {
        let h = c.header("REGISTER", 1);
        assert_eq!(
            a.check(T0 + 5, "REGISTER", Some(&h), REALM, call, users),
            ok("1001")
        );
        assert!(a.tracked_nonces() <= 2);
    }
    // call-0's nonce was evicted: replaying it must not work, even with nc=1.
    let (call, c) = &clients[0];
    for nc in [1, 2] {
        let h = c.header("REGISTER", nc);
        assert_eq!(
            a.check(T0 + 5, "REGISTER", Some(&h), REALM, call, users),
            challenge(ChallengeReason::ForgottenNonce)
        );
    }
    // The others keep their history.
    let (call, c) = &clients[2];
    let h = c.header("REGISTER", 1);
    assert_eq!(
        a.check(T0 + 5, "REGISTER", Some(&h), REALM, call, users),
        AuthOutcome::Replay {
            username: "1001".into()
        }
    );
    let h = c.header("REGISTER", 2);
    assert_eq!(
        a.check(T0 + 5, "REGISTER", Some(&h), REALM, call, users),
        ok("1001")
    );
}

#[test]
fn picks_our_realm_among_several_credentials() {
    let mut a = auth();
    let c = answer(&mut a, T0, CALL, 0, "1001", "secret1001");
    let ours = c.header("INVITE", 1);
    let theirs = ours.replace(REALM, "upstream.example.net");
    let chosen = credentials_for_realm([theirs.as_str(), ours.as_str()], REALM);
    assert_eq!(
        a.check(T0, "INVITE", chosen, REALM, CALL, users),
        ok("1001")
    );
}

#[test]
fn config_is_validated() {
    let bad = |config: AuthConfig| Authenticator::new(KEY, config).unwrap_err();
    assert_eq!(
        bad(AuthConfig {
            algorithms: vec![],
            ..AuthConfig::default()
        }),
        AuthSetupError::NoAlgorithms
    );
    assert_eq!(
        bad(AuthConfig {
            algorithms: vec![Algorithm::Md5, Algorithm::Sha256, Algorithm::Md5],
            ..AuthConfig::default()
        }),
        AuthSetupError::DuplicateAlgorithm(Algorithm::Md5)
    );
    assert_eq!(
        bad(AuthConfig {
            nonce_lifetime: 0,
            ..AuthConfig::default()
        }),
        AuthSetupError::ZeroNonceLifetime
    );
    assert_eq!(
        bad(AuthConfig {
            max_tracked_nonces: 0,
            ..AuthConfig::default()
        }),
        AuthSetupError::ZeroMaxTrackedNonces
    );
    assert_eq!(
        AuthConfig::default().algorithms,
        ["MD5", "SHA-256"].map(|n| n.parse::<Algorithm>().unwrap())
    );
}
