//! Digest parameters: `parse_credentials`, `credentials_for_realm` and the
//! trunk client's `parse_challenge` never panic; credentials that parse, written
//! again with every value quoted, parse to the same thing.

use shards::auth::client::{answer, parse_challenge};
use shards::auth::{credentials_for_realm, parse_credentials, Credentials, DigestCredentials};

fn main() {
    afl::fuzz!(|data: &[u8]| run(data));
}

fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(c) = parse_challenge(text) {
        // What the trunk client answers parses as the credentials it means.
        if let Some(v) = answer(
            &c,
            "alice",
            "pw",
            "INVITE",
            "sip:bob@example.com",
            "0a4f113b",
        ) {
            match parse_credentials(&v) {
                Ok(Credentials::Digest(d)) => {
                    assert_eq!(
                        (&d.realm, &d.nonce, &d.opaque),
                        (&c.realm, &c.nonce, &c.opaque)
                    );
                    assert_eq!(d.algorithm, c.algorithm);
                    assert_eq!(d.username, "alice");
                }
                other => panic!("our answer {v:?} to {c:?} gives {other:?}"),
            }
        }
    }
    let _ = credentials_for_realm(text.split('\n'), "example.com");
    if let Ok(Credentials::Digest(d)) = parse_credentials(text) {
        let again = write(&d);
        match parse_credentials(&again) {
            Ok(Credentials::Digest(e)) => assert_eq!(d, e, "round trip of {again:?}"),
            other => panic!("rewritten credentials {again:?} give {other:?}"),
        }
    }
}

fn write(d: &DigestCredentials) -> String {
    let mut out = format!(
        "Digest username={},realm={},nonce={},uri={},response={},algorithm={}",
        quote(&d.username),
        quote(&d.realm),
        quote(&d.nonce),
        quote(&d.uri),
        quote(&d.response),
        d.algorithm.name(),
    );
    for (name, v) in [
        ("cnonce", &d.cnonce),
        ("opaque", &d.opaque),
        ("qop", &d.qop),
    ] {
        if let Some(v) = v {
            out.push_str(&format!(", {name}={}", quote(v)));
        }
    }
    if let Some(nc) = &d.nc {
        out.push_str(&format!(", nc={}", nc.text));
    }
    if d.userhash {
        out.push_str(", userhash=true");
    }
    out
}

fn quote(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
