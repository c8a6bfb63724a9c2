//! The resolver against real routing tables and settings (no store: local
//! users have no bindings here; the integration tests cover registered ones).

use std::net::SocketAddr;

use serde_json::json;

use super::*;
use crate::endpoint::settings::test_settings;
use crate::media::secure::SrtpPolicy;
use crate::routing::{RouteSpec, TrunkSpec};

fn now() -> Now {
    Now {
        unix: 1_000,
        mono_ms: 1_000_000,
        unix_ms: 1_000_000,
    }
}

/// Trunks `a` (IP, credentials), `v6` (IPv6, no port), `named` (a host
/// name) and `one` (one call at most).
fn routing(routes: serde_json::Value) -> RoutingSnapshot {
    let trunk = |dest: &str, user: &str, max_calls: u32| TrunkSpec {
        dest: Some(dest.into()),
        username: user.into(),
        password: if user.is_empty() { "" } else { "pw" }.into(),
        max_calls,
        ..TrunkSpec::default()
    };
    let trunks = vec![
        ("a".to_string(), trunk("sip:203.0.113.1:5080", "acct", 0)),
        ("v6".to_string(), trunk("sips:[2001:db8::1]", "", 0)),
        ("named".to_string(), trunk("sip:carrier.example", "", 0)),
        ("one".to_string(), trunk("sip:203.0.113.9", "", 1)),
    ];
    let routes: Vec<RouteSpec> = serde_json::from_value(routes).unwrap();
    RoutingSnapshot::build(&trunks, &routes).unwrap_or_else(|e| panic!("{e}"))
}

fn decide(r: &RoutingSnapshot, user: &str) -> Decision {
    let fields = RequestFields {
        from_user: None,
        from_host: None,
        to_user: Some(user),
        to_host: Some("pbx.test"),
        request_uri_user: Some(user),
        request_uri_host: Some("pbx.test"),
        source: Some(SOURCE_EXTENSION),
        headers: &[],
    };
    r.routes
        .decide(&fields, &mut SelectState::new())
        .expect("a route")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn a_route_forward_becomes_one_leg_per_usable_trunk() {
    let settings = test_settings();
    let routing = routing(json!([{"name": "out", "match": {"to.user": "^0(\\d+)$"},
        "rewrite": {"to.user": "{1}"}, "action": "forward",
        "dest": ["named", "a", "v6"], "select": "parallel"}]));
    let r = Resolver {
        settings: &settings,
        routing: &routing,
        now: now(),
    };
    let found = r.route_trunks(&decide(&routing, "0555"), "0555");
    let legs: Vec<_> = found
        .targets
        .iter()
        .map(|t| {
            (
                t.uri.as_str(),
                t.dest.addr,
                t.credentials.clone(),
                t.to.clone(),
            )
        })
        .collect();
    assert_eq!(
        legs,
        vec![
            (
                "sip:555@203.0.113.1:5080",
                addr("203.0.113.1:5080"),
                Some(("acct".to_string(), "pw".to_string())),
                None
            ),
            // No port: 5060 whatever the scheme, as before.
            (
                "sips:555@[2001:db8::1]",
                addr("[2001:db8::1]:5060"),
                None,
                None
            ),
        ],
        "the host-name trunk is skipped, the rewrite applies"
    );
    assert!(found.targets.iter().all(|t| t.permit.is_some()));
    assert_eq!(found.trunk.as_deref(), Some("a"));
    assert!(!found.limited);
}

#[test]
fn a_trunk_at_its_limit_is_skipped_and_said_so() {
    let settings = test_settings();
    let routing = routing(json!([{"name": "r", "action": "forward", "dest": ["one"]}]));
    let r = Resolver {
        settings: &settings,
        routing: &routing,
        now: now(),
    };
    let decision = decide(&routing, "1");
    let first = r.route_trunks(&decision, "1");
    assert_eq!(first.targets.len(), 1);
    let second = r.route_trunks(&decision, "1");
    assert!(second.targets.is_empty() && second.limited && second.trunk.is_none());
    drop(first);
    assert_eq!(
        r.route_trunks(&decision, "1").targets.len(),
        1,
        "permit freed"
    );
}

#[test]
fn the_dialled_user_is_escaped_in_the_trunk_uri() {
    let settings = test_settings();
    let routing = routing(json!([{"name": "r", "action": "forward", "dest": ["a"]}]));
    let r = Resolver {
        settings: &settings,
        routing: &routing,
        now: now(),
    };
    let found = r.route_trunks(&decide(&routing, "a b"), "a b");
    assert_eq!(found.targets[0].uri, "sip:a%20b@203.0.113.1:5080");
}

#[test]
fn command_targets_go_through_routes_then_take_the_uri_as_given() {
    let settings = test_settings();
    let routing = routing(json!([
        {"name": "pstn", "match": {"to.user": "^00"}, "action": "forward", "dest": ["named", "a"]},
        {"name": "blocked", "match": {"to.user": "^900"}, "action": "reject",
         "reject": {"code": 403}},
        {"name": "dead", "match": {"to.user": "^77"}, "action": "forward", "dest": ["named"]}
    ]));
    let r = Resolver {
        settings: &settings,
        routing: &routing,
        now: now(),
    };
    let mut select = SelectState::new();
    let t = r.command_target(" 0049301 ", &mut select).unwrap();
    assert_eq!(t.uri, "sip:0049301@203.0.113.1:5080");
    assert_eq!(t.to.as_deref(), Some("<sip:0049301@203.0.113.1:5080>"));
    assert!(t.permit.is_some() && t.credentials.is_some());

    let t = r
        .command_target("sip:2002@198.51.100.7:5070;transport=udp", &mut select)
        .unwrap();
    assert_eq!(t.uri, "sip:2002@198.51.100.7:5070;transport=udp");
    assert_eq!(t.dest, addr("198.51.100.7:5070").into());
    assert_eq!(
        t.to.as_deref(),
        Some("<sip:2002@198.51.100.7:5070;transport=udp>")
    );
    assert!(t.permit.is_none());

    let t = r.command_target("SIPS:[2001:db8::5]", &mut select).unwrap();
    assert_eq!(t.dest, addr("[2001:db8::5]:5060").into());

    let err = |t: &str, select: &mut SelectState| r.command_target(t, select).unwrap_err();
    assert_eq!(
        err("900123", &mut select),
        TargetError::Refused("blocked".into(), 403)
    );
    assert_eq!(
        err("7700", &mut select),
        TargetError::NoTrunk("dead".into())
    );
    assert_eq!(
        err("sip:1@carrier.example", &mut select),
        TargetError::NotAnAddress("carrier.example".into())
    );
    assert_eq!(
        err("1001", &mut select),
        TargetError::NotRegistered("1001".into()),
        "a number is a local user at our first realm"
    );
    assert_eq!(
        err("sip:%2500@pbx.test", &mut select),
        TargetError::NotDialable("sip:%2500@pbx.test".into())
    );
    assert_eq!(
        err("1%", &mut select),
        TargetError::NotDialable("1%".into())
    );
    for bad in ["", "a@b", "<sip:1@x>", "tel:+1555", "sip:bad host"] {
        assert!(
            matches!(
                err(bad, &mut select),
                TargetError::Unreadable(_) | TargetError::NotDialable(_)
            ),
            "{bad}"
        );
    }
    assert_eq!(
        TargetError::NotRegistered("1001".into()).describe("to"),
        "to: 1001 has no registered contact"
    );
    assert_eq!(
        TargetError::Unreadable("x y".into()).to_string(),
        "target: 'x y' is not a number or a sip: URI"
    );
}

#[test]
fn router_targets_dial_other_hosts_as_given() {
    let settings = test_settings();
    let routing = RoutingSnapshot::empty();
    let r = Resolver {
        settings: &settings,
        routing: &routing,
        now: now(),
    };
    let (t, natted) = r.router_target(" sip:+1555@203.0.113.7:5099;user=phone ");
    assert!(!natted);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].uri, "sip:+1555@203.0.113.7:5099;user=phone");
    assert_eq!(t[0].dest, addr("203.0.113.7:5099").into());
    assert_eq!(
        t[0].to.as_deref(),
        Some("<sip:+1555@203.0.113.7:5099;user=phone>")
    );
    // Our own address with another port is another server.
    let (t, _) = r.router_target("sip:1001@127.0.0.1:5070");
    assert_eq!(t[0].dest, addr("127.0.0.1:5070").into());
    // Our own address and port: a local user (none registered here).
    assert!(r.router_target("sip:1001@127.0.0.1:5060").0.is_empty());
    assert!(r.router_target("sip:1001@pbx.test").0.is_empty());
    for skipped in ["tel:+1555", "sip:1@carrier.example", "1001", "sip:"] {
        assert!(r.router_target(skipped).0.is_empty(), "{skipped}");
    }
}

fn binding(uri: &str, source: &str) -> Binding {
    Binding {
        aor: "sip:1001@pbx.test".into(),
        contact: format!("<{uri}>"),
        uri: uri.into(),
        source: source.into(),
        transport: "UDP".into(),
        conn: None,
        expires_at: 2_000,
        q: None,
        instance: None,
        reg_id: None,
        user_agent: None,
        path: vec![],
        call_id: "c".into(),
        cseq: 1,
        updated_at: 0,
    }
}

#[test]
fn a_binding_is_called_at_its_contact_unless_that_is_private_elsewhere() {
    let cases = [
        // Contact = source, public contact: the contact.
        (
            "sip:1@192.168.1.5:5062",
            "192.168.1.5:5062",
            "192.168.1.5:5062",
        ),
        ("sip:1@203.0.113.5", "198.51.100.1:4000", "203.0.113.5:5060"),
        // Private, loopback or a name elsewhere: the source (NAT).
        (
            "sip:1@192.168.1.5:5062",
            "198.51.100.1:4000",
            "198.51.100.1:4000",
        ),
        (
            "sip:1@127.0.0.1:5062",
            "198.51.100.1:4000",
            "198.51.100.1:4000",
        ),
        ("sip:1@[fd00::1]", "198.51.100.1:4000", "198.51.100.1:4000"),
        ("sip:1@phone.lan", "198.51.100.1:4000", "198.51.100.1:4000"),
        // Shared address space is not private for a Contact.
        ("sip:1@100.64.0.1", "198.51.100.1:4000", "100.64.0.1:5060"),
    ];
    for (uri, source, dest) in cases {
        assert_eq!(
            binding_dest(&binding(uri, source)),
            Some(addr(dest).into()),
            "{uri}"
        );
    }
    assert_eq!(
        binding_dest(&binding("sip:1@1.2.3.4", "not an address")),
        None
    );

    let (targets, natted) = binding_targets(
        &[
            binding("sip:1@192.168.1.5", "198.51.100.1:4000"),
            binding("sip:1@203.0.113.5", "203.0.113.5:5060"),
        ],
        SrtpPolicy::Off,
    );
    assert!(natted, "a contact other than its source");
    assert_eq!(
        targets.iter().map(|t| t.dest.addr).collect::<Vec<_>>(),
        vec![addr("198.51.100.1:4000"), addr("203.0.113.5:5060")]
    );
    let (_, natted) = binding_targets(
        &[binding("sip:1@203.0.113.5", "203.0.113.5:5060")],
        SrtpPolicy::Off,
    );
    assert!(!natted);
}

#[test]
fn dialled_reads_the_request_uri_decoded() {
    let raw = b"INVITE sip:%31001@PBX.test:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let msg = Message::parse(raw).unwrap();
    assert_eq!(dialled(&msg), ("PBX.test".to_string(), "1001".to_string()));
}
