//! Routing as a whole: route order, matching, rewrites, actions, target
//! selection, validation errors and snapshot limits carry-over. Specs are
//! written as JSON (the REST form; files use the same fields).

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;

fn trunks() -> Vec<(String, TrunkSpec)> {
    ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let spec = TrunkSpec {
                dest: Some(format!("sip:203.0.113.{}:5060", i + 1)),
                ..TrunkSpec::default()
            };
            (n.to_string(), spec)
        })
        .chain([(
            "inbound".to_string(),
            TrunkSpec {
                inbound_hosts: vec!["198.51.100.0/24".into()],
                ..TrunkSpec::default()
            },
        )])
        .collect()
}

fn specs(routes: Value) -> Vec<RouteSpec> {
    serde_json::from_value(routes).unwrap()
}

fn table(routes: Value) -> RoutingSnapshot {
    RoutingSnapshot::build(&trunks(), &specs(routes)).unwrap_or_else(|e| panic!("{e}"))
}

fn error(routes: Value) -> String {
    RoutingSnapshot::build(&trunks(), &specs(routes))
        .unwrap_err()
        .to_string()
}

fn to(user: &str) -> RequestFields<'_> {
    RequestFields {
        from_user: Some("1001"),
        from_host: Some("pbx.example.com"),
        to_user: Some(user),
        to_host: Some("pbx.example.com"),
        request_uri_user: Some(user),
        request_uri_host: Some("pbx.example.com"),
        source: Some(crate::routing::SOURCE_EXTENSION),
        headers: &[],
    }
}

fn targets(d: &Decision) -> (Vec<&str>, bool) {
    match &d.outcome {
        Outcome::Forward { targets, parallel } => {
            (targets.iter().map(|t| &**t).collect(), *parallel)
        }
        other => panic!("expected forward, got {other:?}"),
    }
}

fn fwd(name: &str, priority: i32, matchers: Value) -> Value {
    json!({"name": name, "priority": priority, "match": matchers,
           "action": "forward", "dest": ["a"]})
}

fn route_of(s: &RoutingSnapshot, input: &RequestFields) -> Option<String> {
    s.routes
        .decide(input, &mut SelectState::new())
        .map(|d| d.route.to_string())
}

#[test]
fn empty_snapshot_routes_nothing() {
    let s = RoutingSnapshot::empty();
    assert!(s.routes.is_empty() && s.trunks.is_empty());
    assert_eq!(s.routes.decide(&to("1"), &mut SelectState::new()), None);
}

#[test]
fn exact_and_regex_matching() {
    let s = table(json!([
        fwd("exact", 10, json!({"to.user": "1001"})),
        fwd("regex", 5, json!({"to.user": "^00(\\d+)$"})),
        fwd("e164", 1, json!({"to.user": "+4930"})),
    ]));
    assert_eq!(route_of(&s, &to("1001")).as_deref(), Some("exact"));
    assert_eq!(route_of(&s, &to("10010")), None);
    assert_eq!(route_of(&s, &to("0049301")).as_deref(), Some("regex"));
    assert_eq!(route_of(&s, &to("0049x")), None);
    assert_eq!(route_of(&s, &to("+4930")).as_deref(), Some("e164"));
    assert_eq!(route_of(&s, &to("+49301")), None);
}

#[test]
fn hosts_ignore_case_users_do_not() {
    let s = table(json!([fwd(
        "host",
        10,
        json!({"to.host": "PBX.Example.COM", "to.user": "alice"})
    ),]));
    assert_eq!(route_of(&s, &to("alice")).as_deref(), Some("host"));
    assert_eq!(route_of(&s, &to("Alice")), None);
}

#[test]
fn header_matching() {
    let s = table(json!([fwd(
        "tenant",
        10,
        json!({"header.X-Tenant": "^acme$"})
    )]));
    let headers = [("x-tenant", "acme")];
    let input = RequestFields {
        headers: &headers,
        ..to("1")
    };
    assert_eq!(route_of(&s, &input).as_deref(), Some("tenant"));
    let other = [("X-Tenant", "acme-2")];
    assert_eq!(
        route_of(
            &s,
            &RequestFields {
                headers: &other,
                ..to("1")
            }
        ),
        None
    );
    // No such header: no match.
    assert_eq!(route_of(&s, &to("1")), None);
}

#[test]
fn all_matchers_must_match() {
    let s = table(json!([fwd(
        "both",
        1,
        json!({"from.user": "^666", "to.user": "1002"})
    )]));
    let mut input = to("1002");
    assert_eq!(route_of(&s, &input), None);
    input.from_user = Some("666123");
    assert_eq!(route_of(&s, &input).as_deref(), Some("both"));
    input.to_user = Some("1003");
    assert_eq!(route_of(&s, &input), None);
}

#[test]
fn priority_order_and_ties() {
    let s = table(json!([
        fwd("low", 1, json!({})),
        fwd("tie-first", 50, json!({"to.user": "^1"})),
        fwd("high", 100, json!({"to.user": "^2"})),
        fwd("tie-second", 50, json!({"to.user": "^1"})),
    ]));
    let order: Vec<&str> = s.routes.routes().iter().map(|r| &*r.name).collect();
    assert_eq!(order, ["high", "tie-first", "tie-second", "low"]);
    assert_eq!(route_of(&s, &to("1")).as_deref(), Some("tie-first"));
    assert_eq!(route_of(&s, &to("2")).as_deref(), Some("high"));
    assert_eq!(route_of(&s, &to("3")).as_deref(), Some("low"));
}

#[test]
fn rewrite_with_captures() {
    let s = table(json!([{
        "name": "international", "priority": 100,
        "match": {"to.user": "^00(\\d+)$", "request_uri.user": "^00(\\d+)$"},
        "rewrite": {"to.user": "+{1}", "request_uri.user": "{0}", "header.X-Route": "intl"},
        "action": "forward", "dest": ["a", "b"], "select": "failover"
    }]));
    let d = s
        .routes
        .decide(&to("004930123456"), &mut SelectState::new())
        .unwrap();
    assert_eq!(&*d.route, "international");
    let mut rewrites = d.rewrites.clone();
    rewrites.sort_by_key(|(k, _)| k.to_string());
    assert_eq!(
        rewrites,
        [
            (MatchKey::Header("x-route".into()), "intl".to_string()),
            (MatchKey::RequestUriUser, "004930123456".to_string()),
            (MatchKey::ToUser, "+4930123456".to_string()),
        ]
    );
    assert_eq!(targets(&d), (vec!["a", "b"], false));
    // The trunk's Request-URI with the rewritten user.
    let a = s.trunks.by_name("a").unwrap();
    assert_eq!(
        a.request_uri(&rewrites[2].1).as_deref(),
        Some("sip:+4930123456@203.0.113.1:5060")
    );
}

#[test]
fn reject_action() {
    let s = table(json!([
        {"name": "blocklist", "priority": 200, "match": {"from.user": "^666"},
         "action": "reject", "reject": {"code": 403, "reason": "Blocked"}},
        {"name": "nope", "match": {"from.user": "^777"},
         "action": "reject", "reject": {"code": 603}},
    ]));
    let mut input = to("1002");
    input.from_user = Some("666");
    let d = s.routes.decide(&input, &mut SelectState::new()).unwrap();
    assert_eq!(
        d.outcome,
        Outcome::Reject {
            code: 403,
            reason: "Blocked".into()
        }
    );
    input.from_user = Some("777");
    let d = s.routes.decide(&input, &mut SelectState::new()).unwrap();
    assert_eq!(
        d.outcome,
        Outcome::Reject {
            code: 603,
            reason: "Decline".into()
        }
    );
}

fn select_route(select: &str, weights: Option<Value>) -> RoutingSnapshot {
    let mut r =
        json!({"name": "r", "action": "forward", "dest": ["a", "b", "c"], "select": select});
    if let Some(w) = weights {
        r["weights"] = w;
    }
    table(json!([r]))
}

#[test]
fn failover_and_parallel() {
    let mut st = SelectState::new();
    let s = select_route("failover", None);
    for _ in 0..3 {
        let d = s.routes.decide(&to("1"), &mut st).unwrap();
        assert_eq!(targets(&d), (vec!["a", "b", "c"], false));
    }
    let s = select_route("parallel", None);
    let d = s.routes.decide(&to("1"), &mut st).unwrap();
    assert_eq!(targets(&d), (vec!["a", "b", "c"], true));
}

#[test]
fn round_robin_rotates_the_start() {
    let s = select_route("round_robin", None);
    let mut st = SelectState::new();
    let picks: Vec<Vec<String>> = (0..4)
        .map(|_| {
            let d = s.routes.decide(&to("1"), &mut st).unwrap();
            targets(&d)
                .0
                .iter()
                .map(std::string::ToString::to_string)
                .collect()
        })
        .collect();
    assert_eq!(
        picks,
        [
            ["a", "b", "c"],
            ["b", "c", "a"],
            ["c", "a", "b"],
            ["a", "b", "c"]
        ]
    );
    // A new table (reload) starts the rotation afresh.
    let s2 = select_route("round_robin", None);
    let d = s2.routes.decide(&to("1"), &mut st).unwrap();
    assert_eq!(targets(&d).0, ["a", "b", "c"]);
}

#[test]
fn weighted_distribution_follows_weights() {
    let s = select_route("weighted", Some(json!([5, 3, 2])));
    let mut st = SelectState::new();
    let mut counts = std::collections::HashMap::new();
    let mut first_ten = Vec::new();
    for i in 0..1000 {
        let d = s.routes.decide(&to("1"), &mut st).unwrap();
        let (t, parallel) = targets(&d);
        assert!(!parallel);
        // The rest follow by weight as failover.
        let mut rest: Vec<&str> = vec!["a", "b", "c"];
        rest.retain(|x| *x != t[0]);
        assert_eq!(&t[1..], &rest[..]);
        if i < 10 {
            first_ten.push(t[0].to_string());
        }
        *counts.entry(t[0].to_string()).or_insert(0) += 1;
    }
    assert_eq!((counts["a"], counts["b"], counts["c"]), (500, 300, 200));
    // Smooth: spread out, not a a a a a b b b c c.
    assert_eq!(
        first_ten,
        ["a", "b", "c", "a", "a", "b", "a", "c", "b", "a"]
    );

    // Equal weights by default; 0 = fallback only.
    let s = select_route("weighted", None);
    let firsts: Vec<String> = (0..3)
        .map(|_| targets(&s.routes.decide(&to("1"), &mut st).unwrap()).0[0].to_string())
        .collect();
    assert_eq!(firsts, ["a", "b", "c"]);
    let s = select_route("weighted", Some(json!([0, 1, 3])));
    for _ in 0..20 {
        let d = s.routes.decide(&to("1"), &mut st).unwrap();
        let t = targets(&d).0;
        assert_ne!(t[0], "a");
        assert_eq!(t[2], "a");
    }
}

#[test]
fn validation_errors_name_route_and_field() {
    let cases = [
        (
            json!([{"name": "intl", "match": {"to.user": "^00(\\d+$"}, "action": "forward", "dest": ["a"]}]),
            "route \"intl\": match.\"to.user\": invalid regex: unclosed group",
        ),
        (
            json!([fwd("x", 0, json!({})), {"name": "y", "action": "forward", "dest": ["carrier-z"]}]),
            "route \"y\": dest[0]: unknown trunk \"carrier-z\"",
        ),
        (
            json!([{"name": "y", "action": "forward", "dest": ["inbound"]}]),
            "route \"y\": dest[0]: trunk \"inbound\" is inbound-only (it has no dest)",
        ),
        (
            json!([{"name": "y", "action": "forward", "dest": ["a", "a"]}]),
            "route \"y\": dest[1]: trunk \"a\" is listed twice",
        ),
        (
            json!([fwd("x", 0, json!({})), fwd("x", 1, json!({}))]),
            "route \"x\": name: defined twice",
        ),
        (
            json!([{"name": "w", "action": "forward", "dest": ["a", "b"], "select": "weighted", "weights": [1]}]),
            "route \"w\": weights: has 1 entries, dest has 2: one weight per trunk",
        ),
        (
            json!([{"name": "w", "action": "forward", "dest": ["a"], "weights": [1]}]),
            "route \"w\": weights: only for select = \"weighted\"",
        ),
        (
            json!([{"name": "w", "action": "forward", "dest": ["a", "b"], "select": "weighted", "weights": [0, 0]}]),
            "route \"w\": weights: at least one weight must be above 0",
        ),
        (
            json!([{"name": "f", "action": "forward", "dest": []}]),
            "route \"f\": dest: must name at least one trunk",
        ),
        (
            json!([{"name": "r", "action": "reject", "reject": {"code": 302}}]),
            "route \"r\": reject.code: 302 is not 400-699",
        ),
        (
            json!([{"name": "r", "action": "reject"}]),
            "route \"r\": reject: action = \"reject\" needs reject = { code = 403, reason = \"...\" }",
        ),
        (
            json!([{"name": "r", "action": "reject", "dest": ["a"], "reject": {"code": 403}}]),
            "route \"r\": dest: only for action = \"forward\"",
        ),
        (
            json!([{"name": "r", "action": "reject", "reject": {"code": 403, "reason": "a\r\nb"}}]),
            "route \"r\": reject.reason: must not contain control characters (CR, LF, ...)",
        ),
        (
            json!([fwd("k", 0, json!({"to.uri": "1"}))]),
            "route \"k\": match.\"to.uri\": unknown key \"to.uri\" (expected from.user, from.host, to.user, to.host, request_uri.user, request_uri.host, source or header.<Name>)",
        ),
        (
            json!([fwd("k", 0, json!({"header.X-A": "1", "header.x-a": "2"}))]),
            "route \"k\": match.\"header.x-a\": header.x-a is matched twice",
        ),
        (
            json!([{"name": "t", "match": {"to.user": "^00\\d+$"}, "rewrite": {"to.user": "+{1}"}, "action": "forward", "dest": ["a"]}]),
            "route \"t\": rewrite.\"to.user\": {1}: the match on to.user has no capture groups (only {0}, the whole value)",
        ),
        (
            json!([{"name": "t", "match": {"to.user": "^00(\\d+)$"}, "rewrite": {"to.user": "+{2}"}, "action": "forward", "dest": ["a"]}]),
            "route \"t\": rewrite.\"to.user\": {2}: the match on to.user has only 1 capture group(s)",
        ),
        (
            json!([{"name": "t", "match": {"to.user": "^00(\\d+)$"}, "rewrite": {"request_uri.user": "{1}"}, "action": "forward", "dest": ["a"]}]),
            "route \"t\": rewrite.\"request_uri.user\": {1} needs a match on request_uri.user to take it from",
        ),
        (
            json!([{"name": "", "action": "forward", "dest": ["a"]}]),
            "route \"\": name: must not be empty",
        ),
    ];
    for (routes, want) in cases {
        assert_eq!(error(routes), want);
    }
    // The typed error carries the position for the loader.
    let e = RoutingSnapshot::build(
        &trunks(),
        &specs(json!([fwd("x", 0, json!({})), fwd("x", 1, json!({}))])),
    )
    .unwrap_err();
    assert_eq!((e.subject, e.index, e.first), (Subject::Route, 1, Some(0)));
    assert_eq!(e.field, "name");
}

#[test]
fn trunk_for_source_and_limits_carry_over() {
    let old = table(json!([]));
    assert_eq!(
        old.trunks
            .for_source("198.51.100.9:5060".parse().unwrap())
            .map(|t| &*t.name),
        Some("inbound")
    );
    let permit = old.trunks.by_name("a").unwrap().try_start_call(0).unwrap();

    let mut specs = trunks();
    specs[0].1.max_calls = 1;
    let mut new = RoutingSnapshot::build(&specs, &[]).unwrap();
    new.carry_limits_from(&old);
    let a = new.trunks.by_name("a").unwrap();
    assert!(Arc::ptr_eq(
        a.limits(),
        old.trunks.by_name("a").unwrap().limits()
    ));
    assert_eq!(a.limits().max_calls(), 1);
    assert_eq!(a.try_start_call(0).unwrap_err(), Limit::MaxCalls);
    drop(permit);
    assert!(a.try_start_call(0).is_ok());
}

#[test]
fn trunk_calls_are_forwarded_only_by_routes_for_their_source() {
    let s = table(json!([
        json!({"name": "block", "priority": 30, "match": {"to.user": "^900"},
               "action": "reject", "reject": {"code": 403}}),
        fwd("from-a", 20, json!({"source": "inbound", "to.user": "^49"})),
        fwd("out", 10, json!({"to.user": "^\\d+$"})),
    ]));
    let from = |source: &'static str, user: &'static str| RequestFields {
        source: Some(source),
        ..to(user)
    };
    // Extensions: the routes without a source.
    assert_eq!(
        route_of(&s, &from(SOURCE_EXTENSION, "555")).as_deref(),
        Some("out")
    );
    assert_eq!(
        route_of(&s, &from(SOURCE_EXTENSION, "49555")).as_deref(),
        Some("out")
    );
    // A trunk: only routes naming it forward; no hairpin through "out".
    assert_eq!(route_of(&s, &from("inbound", "555")), None);
    assert_eq!(route_of(&s, &from("other-trunk", "49555")), None);
    assert_eq!(
        route_of(&s, &from("inbound", "49555")).as_deref(),
        Some("from-a")
    );
    // Rejects apply to every source.
    assert_eq!(
        route_of(&s, &from("inbound", "900")).as_deref(),
        Some("block")
    );
    // The source is matched, never rewritten.
    let e = error(json!([
        json!({"name": "x", "priority": 1, "match": {"to.user": "1"},
        "rewrite": {"source": "extension"}, "action": "forward", "dest": ["a"]})
    ]));
    assert!(e.contains("source"), "{e}");
}

/// The typed errors of the parsers keep the text config errors and REST
/// error bodies quote.
#[test]
fn parser_errors_say_what_they_said_as_strings() {
    let check = |spec: Value, want: &str| {
        let route: RouteSpec = serde_json::from_value(spec).unwrap();
        let err = RoutingSnapshot::build(&trunks(), &[route]).unwrap_err();
        assert_eq!(err.to_string(), want);
    };
    check(
        json!({"name": "r", "match": {"header.a b": "x"}, "action": "reject"}),
        "route \"r\": match.\"header.a b\": \"header.a b\": invalid header name",
    );
    check(
        json!({"name": "r", "match": {"to.user": "1"}, "rewrite": {"to.user": "{1"}, "action": "reject"}),
        "route \"r\": rewrite.\"to.user\": \"{1\": expected {n} (a capture number) or {{ for a literal brace",
    );
    check(
        json!({"name": "r", "match": {"to.user": "1"}, "rewrite": {"to.user": "a}"}, "action": "reject"}),
        "route \"r\": rewrite.\"to.user\": a lone \"}\"; write }} for a literal brace",
    );
    check(
        json!({"name": "x".repeat(129), "action": "reject"}),
        &format!(
            "route \"{}\": name: longer than 128 characters",
            "x".repeat(129)
        ),
    );
    let host = |s: &str| HostPattern::parse(s).unwrap_err().to_string();
    assert_eq!(
        host("10.0.0.0/x"),
        "\"10.0.0.0/x\": prefix length \"x\" is not a number"
    );
    assert_eq!(
        host("10.0.0.0/33"),
        "\"10.0.0.0/33\": prefix /33 is longer than /32"
    );
    let dest = |d: &str| {
        let spec = TrunkSpec {
            dest: Some(d.to_string()),
            ..TrunkSpec::default()
        };
        TrunkTable::build(&[("t".to_string(), spec)])
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        dest("tel:+4930"),
        "trunk \"t\": dest: \"tel:+4930\" must be a sip: or sips: URI"
    );
    assert_eq!(
        http_router::RouterDecision::parse(
            br#"{"action": "forward", "targets": ["sip:a@b"], "media_proxy": "x"}"#
        ),
        http_router::RouterDecision::Failed("media_proxy: unknown 'x'".into())
    );
}
