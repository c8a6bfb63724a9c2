//! Every RFC 4475 torture message sent over UDP to the running appliance gets
//! the outcome the torture README gives (or no answer where it says drop),
//! the REGISTERs with odd Contacts are stored exactly as sent, and the
//! server still answers OPTIONS afterwards.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

fn torture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("shards/tests/sip-torture")
        .join(format!("{name}.dat"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fresh branch, so messages that share a transaction key with an earlier
/// one are tested on their own (see the torture README).
fn rebranch(raw: &[u8], tag: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw).into_owned();
    text.replacen("branch=z9hG4bK", &format!("branch=z9hG4bK{tag}"), 1)
        .into_bytes()
}

/// Expected status (None = no response at all).
const EXPECTED: &[(&str, Option<u16>)] = &[
    // 3.1.1 valid: handled as the request they are.
    // wsinv carries a To tag: an INVITE inside a dialog we do not have.
    ("wsinv", Some(481)),
    ("intmeth", Some(405)),
    ("esc01", Some(407)),
    ("escnull", Some(401)),
    ("esc02", Some(405)),
    ("lwsdisp", Some(200)),
    ("longreq", Some(407)),
    ("dblreq", Some(401)),
    ("semiuri", Some(200)),
    ("transports", Some(200)),
    ("mpart01", Some(405)),
    ("unreason", None),
    ("noreason", None),
    // 3.1.2 invalid: 400 when a response can be formed, else dropped.
    ("badinv01", Some(400)),
    ("clerr", Some(400)),
    ("ncl", Some(400)),
    ("scalar02", Some(400)),
    ("scalarlg", None),
    ("quotbal", Some(400)),
    ("ltgtruri", Some(400)),
    ("lwsruri", Some(400)),
    ("lwsstart", Some(400)),
    ("trws", Some(400)),
    ("escruri", Some(400)),
    ("baddate", Some(400)),
    ("regbadct", Some(400)),
    ("badaspec", Some(400)),
    ("baddn", Some(400)),
    ("badvers", Some(505)),
    ("mismatch01", Some(400)),
    ("mismatch02", Some(400)),
    ("bigcode", None),
    // 3.2 transaction layer.
    ("badbranch", Some(200)),
    // 3.3 application layer.
    ("insuf", Some(400)),
    ("unkscm", Some(416)),
    ("novelsc", Some(416)),
    ("unksm2", Some(401)),
    ("bext01", Some(420)),
    ("invut", Some(415)),
    ("regaut01", Some(401)),
    ("multi01", Some(400)),
    ("mcl01", Some(400)),
    ("bcast", None),
    ("zeromf", Some(483)),
    ("cparam01", Some(401)),
    ("cparam02", Some(401)),
    ("regescrt", Some(401)),
    ("sdp01", Some(406)),
    // 3.4 backward compatibility.
    ("inv2543", Some(407)),
];

fn pbx() -> Pbx {
    Pbx::start(PbxOptions {
        users: vec![
            ("watson".into(), "w-pass".into()),
            ("user".into(), "u-pass".into()),
        ],
        proxy_extra: r#"realms = ["127.0.0.1", "example.com", "example.org", "pbx.test"]"#.into(),
        ..PbxOptions::default()
    })
}

#[test]
fn every_torture_message_gets_its_outcome_and_the_server_keeps_answering() {
    let pbx = pbx();
    assert_eq!(EXPECTED.len(), 49);
    let mut wrong = Vec::new();
    for (i, (name, expected)) in EXPECTED.iter().enumerate() {
        let uac = Uac::new(pbx.sip);
        uac.send_bytes(&rebranch(&torture(name), &format!("t{i}")));
        // The first final response (an INVITE gets 100 Trying first).
        let wait = Duration::from_millis(if expected.is_some() { 2000 } else { 400 });
        let mut got = uac.recv(wait);
        while got.as_ref().is_some_and(|r| r.starts_with("SIP/2.0 1")) {
            got = uac.recv(wait);
        }
        let code = got.as_ref().map(|r| Response::parse(r).code);
        if code != *expected {
            wrong.push(format!(
                "{name}: expected {expected:?}, got {code:?}\n{}",
                got.clone().unwrap_or_default()
            ));
        }
        if let (Some(text), Some(_)) = (&got, expected) {
            let r = Response::parse(text);
            match *name {
                "intmeth" | "esc02" | "mpart01" => {
                    assert!(r.header("Allow").is_some(), "{name}: 405 carries Allow");
                }
                "bext01" => assert!(
                    r.header("Unsupported")
                        .is_some_and(|u| u.contains("nothingSupportsThis")),
                    "{name}: {text}"
                ),
                "invut" | "sdp01" => {
                    assert_eq!(
                        r.header("Accept"),
                        Some("application/sdp"),
                        "{name}: {text}"
                    );
                }
                _ => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} torture outcomes differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let uac = Uac::new(pbx.sip);
    assert_eq!(
        uac.request(&options_request(&uac, "after-torture")).code,
        200
    );
    let metrics = pbx.http_get("/metrics");
    assert!(
        metrics.contains("shardpbx_parse_errors_total{shard=\"0\"}"),
        "{metrics}"
    );
}

#[test]
fn a_retransmitted_torture_pair_gets_the_cached_answer() {
    let pbx = pbx();
    let uac = Uac::new(pbx.sip);
    uac.send_bytes(&torture("novelsc"));
    let first = Response::parse(&uac.recv(Duration::from_secs(2)).expect("answer"));
    // unkscm shares novelsc's transaction key: it is a retransmission.
    uac.send_bytes(&torture("unkscm"));
    let second = Response::parse(&uac.recv(Duration::from_secs(2)).expect("answer"));
    assert_eq!(first.raw, second.raw, "the cached response is sent again");
}

/// The REGISTERs with Contact/URI parameters and escaped headers, answered
/// with credentials, are stored exactly as sent.
#[test]
fn odd_contacts_are_stored_exactly_as_sent() {
    let pbx = pbx();
    let cases = [
        (
            "cparam01",
            "watson",
            "w-pass",
            "sip:+19725552222@gw1.example.net;unknownparam",
        ),
        (
            "cparam02",
            "watson",
            "w-pass",
            "<sip:+19725552222@gw1.example.net;unknownparam>",
        ),
        (
            "regescrt",
            "user",
            "u-pass",
            "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
        ),
    ];
    for (i, (name, user, pass, contact)) in cases.iter().enumerate() {
        let uac = Uac::new(pbx.sip);
        let raw = rebranch(&torture(name), &format!("c{i}"));
        uac.send_bytes(&raw);
        let ch = Response::parse(&uac.recv(Duration::from_secs(2)).expect("challenge"));
        assert_eq!(ch.code, 401, "{name}: {}", ch.raw);
        let auth = digest_auth(
            ch.header("WWW-Authenticate").unwrap(),
            user,
            pass,
            "REGISTER",
            "sip:example.com",
            1,
        );
        let text =
            String::from_utf8_lossy(&rebranch(&torture(name), &format!("d{i}"))).into_owned();
        let (first, rest) = text.split_once("\r\n").unwrap();
        let authed = format!("{first}\r\nAuthorization: {auth}\r\n{rest}");
        uac.send(&authed);
        let ok = Response::parse(&uac.recv(Duration::from_secs(2)).expect("answer"));
        assert_eq!(ok.code, 200, "{name}: {}", ok.raw);
        let out = pbx.cli(&[
            "registrations",
            "list",
            "--json",
            "--aor",
            &format!("sip:{user}@example.com"),
        ]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let contacts: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["contact"].as_str())
            .collect();
        assert!(
            contacts.contains(contact),
            "{name}: stored {contacts:?}, sent {contact}"
        );
    }
}

fn torture_ipv6(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("shards/tests/sip-ipv6-torture")
        .join(format!("{name}.dat"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// RFC 5118 (shards/tests/sip-ipv6-torture/README.md), with the PBX serving
/// the domain `[2001:db8::10]`: every message but 4.2 is handled as the request
/// it is (a REGISTER or an INVITE is challenged, a BYE outside any dialog gets
/// 481, an OPTIONS 200); 4.2, whose Request-URI has an IPv6 address without
/// brackets, gets 400; 4.3's `[2001:db8::10:5070]` is another address, not
/// ours with port 5070, so that REGISTER gets 403 where 4.4's gets 401.
const EXPECTED_IPV6: &[(&str, u16)] = &[
    ("ipv6-good", 401),
    ("ipv6-bad", 400),
    ("port-ambiguous", 403),
    ("port-unambiguous", 401),
    ("via-received-param-with-delim", 481),
    ("via-received-param-no-delim", 200),
    ("ipv6-in-sdp", 407),
    ("mult-ip-in-header", 481),
    ("mult-ip-in-sdp", 407),
    ("ipv4-mapped-ipv6", 407),
    ("ipv6-bug-abnf-3-colons", 200),
    ("ipv6-correct-abnf-2-colons", 200),
];

#[test]
fn every_rfc5118_message_gets_its_outcome() {
    let pbx = Pbx::start(PbxOptions {
        users: vec![("user".into(), "u-pass".into())],
        proxy_extra: r#"realms = ["127.0.0.1", "example.com", "2001:db8::10"]"#.into(),
        ..PbxOptions::default()
    });
    let mut wrong = Vec::new();
    for (i, (name, expected)) in EXPECTED_IPV6.iter().enumerate() {
        let uac = Uac::new(pbx.sip);
        uac.send_bytes(&rebranch(&torture_ipv6(name), &format!("v6{i}")));
        let mut got = uac.recv(Duration::from_secs(2));
        while got.as_ref().is_some_and(|r| r.starts_with("SIP/2.0 1")) {
            got = uac.recv(Duration::from_secs(2));
        }
        let Some(text) = got else {
            wrong.push(format!("{name}: expected {expected}, got no answer"));
            continue;
        };
        let r = Response::parse(&text);
        if r.code != *expected {
            wrong.push(format!(
                "{name}: expected {expected}, got {}\n{text}",
                r.code
            ));
            continue;
        }
        // The IPv6 sent-by comes back as written; the source is stamped.
        let via = r.headers_named("Via")[0];
        assert!(via.contains("received=127.0.0.1"), "{name}: {via}");
        if *name == "ipv6-bad" {
            assert!(via.starts_with("SIP/2.0/UDP [2001:db8::9:1]"), "{via}");
        }
    }
    assert!(
        wrong.is_empty(),
        "{} RFC 5118 outcomes differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let uac = Uac::new(pbx.sip);
    assert_eq!(uac.request(&options_request(&uac, "after-ipv6")).code, 200);
}

/// Found by fuzzing: a CR inside a header value ends the line for parsers
/// that split on CR, so a request could smuggle a header (here a second
/// Content-Length in the From, copied into every response) past us. Such a
/// request gets 400, the 400 carries no bare CR, and the same request without
/// the CR is answered as usual.
#[test]
fn a_bare_cr_cannot_smuggle_a_header() {
    let pbx = pbx();
    let uac = Uac::new(pbx.sip);
    let clean = options_request(&uac, "bare-cr");
    let from = format!("From: <sip:probe@{}>;tag=p1", uac.local);
    let smuggling = clean.replacen(&from, &format!("{from}\rContent-Length: 999"), 1);
    assert_ne!(smuggling, clean);
    uac.send(&smuggling);
    let text = uac.recv(Duration::from_secs(2)).expect("an answer");
    assert_eq!(Response::parse(&text).code, 400, "{text}");
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        assert!(
            b != b'\r' || bytes.get(i + 1) == Some(&b'\n'),
            "bare CR in {text:?}"
        );
    }
    assert_eq!(uac.request(&options_request(&uac, "no-cr")).code, 200);
}
