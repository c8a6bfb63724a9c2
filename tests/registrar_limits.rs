//! Registrar limits through the real binary (raw UDP with digest auth): an
//! AOR holds at most `[proxy] max_contacts_per_aor` (default 10) live
//! contacts, and contacts at unspecified, multicast or broadcast addresses
//! are refused, while ordinary registration, refresh and `Contact: *`
//! unregister-all keep working.

mod common;

use common::*;

fn contacts(pbx: &Pbx) -> Vec<String> {
    let out = pbx.cli(&[
        "registrations",
        "list",
        "--json",
        "--aor",
        "sip:1001@pbx.test",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.iter()
        .filter_map(|b| b["contact"].as_str().map(str::to_string))
        .collect()
}

fn register(uac: &Uac, call_id: &str, contact: &str, expires: Option<u32>) -> Response {
    register_with_auth(uac, "1001", "secret1001", call_id, 1, contact, expires)
}

/// A later REGISTER of the same device (same Call-ID, higher CSeq).
fn again(uac: &Uac, call_id: &str, contact: &str, expires: Option<u32>) -> Response {
    register_with_auth(uac, "1001", "secret1001", call_id, 3, contact, expires)
}

#[test]
fn an_aor_takes_ten_contacts_and_no_more_and_no_unusable_addresses() {
    let pbx = Pbx::start(PbxOptions::default());
    let uac = Uac::new(pbx.sip);
    let contact = |i: u32| format!("<sip:1001@127.0.0.1:{}>", 40000 + i);
    for i in 0..10 {
        let r = register(&uac, &format!("dev-{i}"), &contact(i), Some(600));
        assert_eq!(r.code, 200, "contact {i}: {}", r.raw);
    }
    assert_eq!(contacts(&pbx).len(), 10);

    // The attack: an eleventh contact (an attacker with the password, or a
    // script registering forever-new contacts to grow the store and fork
    // every call) is refused and changes nothing.
    let r = register(&uac, "dev-10", &contact(10), Some(600));
    assert_eq!(
        (r.code, r.reason.as_str()),
        (403, "Too many contacts"),
        "{}",
        r.raw
    );
    let now = contacts(&pbx);
    assert_eq!(now.len(), 10);
    assert!(!now.iter().any(|c| c.contains(":40010")), "{now:?}");

    // Refreshing one of the ten still works, and so does replacing one.
    let r = again(&uac, "dev-3", &contact(3), Some(900));
    assert_eq!(r.code, 200, "{}", r.raw);
    let r = again(&uac, "dev-4", &contact(4), Some(0));
    assert_eq!(r.code, 200, "{}", r.raw);
    let r = register(&uac, "dev-10", &contact(10), Some(600));
    assert_eq!(r.code, 200, "{}", r.raw);
    assert_eq!(contacts(&pbx).len(), 10);

    // Contacts nobody can be reached at, or that would fan out: refused.
    for (i, bad) in [
        "<sip:1001@224.0.0.1:5060>",
        "<sip:1001@239.255.255.250:1900>",
        "<sip:1001@255.255.255.255:5060>",
        "<sip:1001@0.0.0.0:5060>",
        "<sip:1001@[::]:5060>",
        "<sip:1001@[ff02::1]:5060>",
    ]
    .iter()
    .enumerate()
    {
        let r = register(&uac, &format!("bad-{i}"), bad, Some(600));
        assert_eq!(
            (r.code, r.reason.as_str()),
            (400, "Contact address not usable"),
            "{bad}: {}",
            r.raw
        );
    }
    let now = contacts(&pbx);
    assert_eq!(now.len(), 10);
    assert!(!now
        .iter()
        .any(|c| c.contains("224.") || c.contains("255.") || c.contains("0.0.0.0")));

    // `Contact: *` with Expires: 0 still removes them all.
    let r = again(&uac, "dev-0", "*", Some(0));
    assert_eq!(r.code, 200, "{}", r.raw);
    assert!(contacts(&pbx).is_empty());

    // One REGISTER carrying eleven contacts is refused whole.
    let eleven: Vec<String> = (20..31).map(contact).collect();
    let r = register(&uac, "many", &eleven.join(", "), Some(600));
    assert_eq!(
        (r.code, r.reason.as_str()),
        (403, "Too many contacts"),
        "{}",
        r.raw
    );
    assert!(contacts(&pbx).is_empty());

    // And an ordinary registration works as ever.
    let r = register(&uac, "plain", &contact(1), Some(600));
    assert_eq!(r.code, 200, "{}", r.raw);
    assert_eq!(contacts(&pbx).len(), 1);
}
