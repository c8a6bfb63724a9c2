//! Unit tests of the resource API's body checks, list queries, refusals
//! and views.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{json, Map, Value};
use shards::routing::{RouteSpec, Subject, TrunkSpec};

use super::input::*;
use super::listing::*;
use super::routing::{refusal, top_field};
use super::*;
use crate::config::ConfigError;
use crate::control::api_error::{error_code, ApiError};
use crate::control::paging::Paging;
use crate::control::resources_store::Extension;

/// (status, body) of a reply.
fn parts(r: impl IntoResponse) -> (u16, Value) {
    let r = r.into_response();
    let status = r.status().as_u16();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = rt
        .block_on(axum::body::to_bytes(r.into_body(), 1 << 20))
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// (status, field) of an error reply.
fn refused<T: std::fmt::Debug>(r: Result<T, ApiError>) -> (u16, String) {
    let (status, body) = parts(r.unwrap_err());
    assert_eq!(
        body["error"],
        error_code(StatusCode::from_u16(status).unwrap())
    );
    (status, body["field"].as_str().unwrap_or("").to_string())
}

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("{other}"),
    }
}

#[test]
fn extension_bodies_are_checked_field_by_field() {
    let ok = extension_input(&map(json!({
        "username": "2001", "password": "pw", "display_name": "Ann",
        "id": "7", "source": "console"
    })))
    .unwrap();
    assert_eq!(
        ok,
        ExtensionInput {
            username: "2001".into(),
            password: Some("pw".into()),
            display_name: Some("Ann".into()),
            email: None,
            enabled: true,
            allow_guest_calls: false,
            allowed_caller_ids: Vec::new(),
        }
    );
    let no_pw = extension_input(&map(json!({"username": "2001", "enabled": false}))).unwrap();
    assert_eq!((no_pw.password, no_pw.enabled), (None, false));
    let cases = [
        (json!({"password": "x"}), "username"),
        (json!({"username": ""}), "username"),
        (json!({"username": "20 01"}), "username"),
        (json!({"username": 2001}), "username"),
        (json!({"username": "2001", "password": ""}), "password"),
        (json!({"username": "2001", "password": 5}), "password"),
        (json!({"username": "2001", "email": "nobody"}), "email"),
        (json!({"username": "2001", "enabled": "yes"}), "enabled"),
        (
            json!({"username": "2001", "display_name": "a\r\nb"}),
            "display_name",
        ),
        (
            json!({"username": "2001", "displayName": "x"}),
            "displayName",
        ),
    ];
    for (body, field) in cases {
        assert_eq!(
            refused(extension_input(&map(body.clone()))),
            (422, field.to_string()),
            "{body}"
        );
    }
}

#[test]
fn trunk_and_route_bodies_name_the_bad_field() {
    let (name, spec, pw) = trunk_input(&map(json!({
        "name": "carrier", "dest": "sip:192.0.2.1:5060", "transport": "tcp",
        "max_calls": 3, "inbound_hosts": ["192.0.2.0/24"], "source": "console"
    })))
    .unwrap();
    assert_eq!(name, "carrier");
    assert_eq!(spec.dest.as_deref(), Some("sip:192.0.2.1:5060"));
    assert_eq!(
        (spec.max_calls, spec.inbound_hosts.len(), pw),
        (3, 1, false)
    );
    assert!(
        trunk_input(&map(json!({"name": "c", "password": "s"})))
            .unwrap()
            .2
    );
    let trunk_cases = [
        (json!({"dest": "sip:x"}), "name"),
        (json!({"name": 1}), "name"),
        (json!({"name": "c", "transport": "sctp"}), "transport"),
        (json!({"name": "c", "max_calls": -1}), "max_calls"),
        (
            json!({"name": "c", "inbound_hosts": "10.0.0.1"}),
            "inbound_hosts",
        ),
        (json!({"name": "c", "max_call": 1}), "max_call"),
    ];
    for (body, field) in trunk_cases {
        assert_eq!(
            refused(trunk_input(&map(body.clone()))),
            (422, field.to_string()),
            "{body}"
        );
    }
    let r = route_input(&map(json!({
        "name": "nines", "priority": 10, "match": {"to.user": "^9"},
        "action": "reject", "reject": {"code": 403}
    })))
    .unwrap();
    assert_eq!((r.name.as_str(), r.priority), ("nines", 10));
    assert_eq!(r.matchers["to.user"], "^9");
    let route_cases = [
        (json!({"action": "reject"}), "name"),
        (json!({"name": "x"}), "action"),
        (json!({"name": "x", "action": "bounce"}), "action"),
        (
            json!({"name": "x", "action": "reject", "priority": "high"}),
            "priority",
        ),
        (
            json!({"name": "x", "action": "reject", "match": {"to.user": 9}}),
            "match",
        ),
        (
            json!({"name": "x", "action": "reject", "reject": {"code": "403"}}),
            "reject",
        ),
        (
            json!({"name": "x", "action": "forward", "dest": "a"}),
            "dest",
        ),
        (
            json!({"name": "x", "action": "reject", "order": 1}),
            "order",
        ),
    ];
    for (body, field) in route_cases {
        assert_eq!(
            refused(route_input(&map(body.clone()))),
            (422, field.to_string()),
            "{body}"
        );
    }
}

#[test]
fn bodies_that_are_not_json_are_400_and_non_objects_422() {
    assert_eq!(refused(object(b"username=1")).0, 400);
    assert_eq!(refused(object(b"")).0, 400);
    assert_eq!(refused(object(b"[1]")).0, 422);
    assert!(object(b"{}").is_ok());
}

#[test]
fn validator_fields_map_to_body_keys() {
    assert_eq!(top_field("dest[0]"), "dest");
    assert_eq!(top_field("match.\"to.user\""), "match");
    assert_eq!(top_field("reject.code"), "reject");
    assert_eq!(top_field("inbound_hosts[1]"), "inbound_hosts");
    assert_eq!(top_field("weights"), "weights");
    assert_eq!(top_field(""), "name");
}

fn pairs(q: &[(&str, &str)]) -> Result<ListQuery, ApiError> {
    list_query(Ok(Query(
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )))
}

#[test]
fn list_queries_and_pages() {
    assert_eq!(
        pairs(&[("q", "Ann"), ("page", "2"), ("per_page", "1"), ("x", "y")]).unwrap(),
        ListQuery {
            q: Some("ann".into()),
            paging: Paging {
                page: 2,
                per_page: 1,
            },
        }
    );
    assert_eq!(pairs(&[("q", "")]).unwrap().q, None);
    assert_eq!(refused(pairs(&[("page", "0")])), (422, "page".into()));
    assert_eq!(
        refused(pairs(&[("per_page", "501")])),
        (422, "per_page".into())
    );
    assert_eq!(
        refused(pairs(&[("per_page", "x")])),
        (422, "per_page".into())
    );

    let items: Vec<Value> = ["2001", "2002", "3001"]
        .iter()
        .map(|u| json!({"id": "1", "username": u, "source": "console"}))
        .collect();
    let lq = ListQuery {
        q: Some("200".into()),
        paging: Paging {
            page: 2,
            per_page: 1,
        },
    };
    let (status, body) = parts(page_of(items.clone(), &lq));
    assert_eq!(status, 200);
    assert_eq!(body["total"], 2);
    assert_eq!(body["items"][0]["username"], "2002");
    assert_eq!(
        (body["page"].as_u64(), body["per_page"].as_u64()),
        (Some(2), Some(1))
    );
    // `source` and `id` are not searched.
    let lq = ListQuery {
        q: Some("console".into()),
        paging: Paging::default(),
    };
    assert_eq!(parts(page_of(items, &lq)).1["total"], 0);
}

fn route(name: &str, dest: &[&str]) -> RouteSpec {
    route_input(&map(json!({
        "name": name, "action": "forward", "dest": dest
    })))
    .unwrap()
}

#[test]
fn refusals_blame_the_changed_entry_or_report_a_conflict() {
    let file = RoutingSource::managed(
        "config/trunks/a.toml",
        vec![(
            "carrier-a".into(),
            TrunkSpec {
                dest: Some("sip:192.0.2.1".into()),
                ..TrunkSpec::default()
            },
        )],
        Vec::new(),
    );
    let files = vec![file];
    let cause = ConfigError {
        file: "console".into(),
        line: None,
        key: String::new(),
        reason: String::new(),
    };
    // The new route names an unknown trunk: 422 on dest.
    let console = RoutingSource::managed(
        CONSOLE_LABEL,
        Vec::new(),
        vec![route("ok", &["carrier-a"]), route("bad", &["nope"])],
    );
    let (status, body) = parts(refusal(&files, &console, Some((Subject::Route, 1)), &cause));
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("dest")),
        "{body}"
    );
    assert_eq!(body["message"], "dest[0]: unknown trunk \"nope\"");
    // A trunk delete that leaves a route without its trunk: 409.
    let console = RoutingSource::managed(CONSOLE_LABEL, Vec::new(), vec![route("uses", &["gone"])]);
    let (status, body) = parts(refusal(&files, &console, None, &cause));
    assert_eq!(status, 409);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown trunk \"gone\""),
        "{body}"
    );
    // A bad trunk of its own: 422 on the field; a bad name: on `name`.
    let bad = TrunkSpec {
        dest: Some("http://x".into()),
        ..TrunkSpec::default()
    };
    let console = RoutingSource::managed(CONSOLE_LABEL, vec![("t".into(), bad)], Vec::new());
    let (status, body) = parts(refusal(&files, &console, Some((Subject::Trunk, 0)), &cause));
    assert_eq!((status, body["field"].as_str()), (422, Some("dest")));
    let console = RoutingSource::managed(
        CONSOLE_LABEL,
        vec![(" ".into(), TrunkSpec::default())],
        Vec::new(),
    );
    let (status, body) = parts(refusal(&files, &console, Some((Subject::Trunk, 0)), &cause));
    assert_eq!((status, body["field"].as_str()), (422, Some("name")));
}

#[test]
fn views_never_show_passwords() {
    let spec = TrunkSpec {
        username: "u".into(),
        password: "very-secret".into(),
        ..TrunkSpec::default()
    };
    let v = trunk_view("3", "t", &spec, "console");
    assert_eq!(
        (v["id"].as_str(), v["name"].as_str()),
        (Some("3"), Some("t"))
    );
    assert_eq!(
        (v["username"].as_str(), v["source"].as_str()),
        (Some("u"), Some("console"))
    );
    assert!(!v.to_string().contains("very-secret"), "{v}");
    let e = Extension {
        id: "1".into(),
        username: "2001".into(),
        password: "pw-2001".into(),
        ha1: [(
            "pbx.test".to_string(),
            crate::control::resources_store::RealmHa1 {
                md5: "m".repeat(32),
                sha256: "s".repeat(64),
            },
        )]
        .into(),
        display_name: None,
        allowed_caller_ids: Vec::new(),
        email: Some("a@b.c".into()),
        enabled: true,
        allow_guest_calls: true,
    };
    let v = extension_view(&e);
    assert!(!v.to_string().contains("pw-2001"), "{v}");
    assert!(!v.to_string().contains("mmmm"), "{v}");
    assert!(v.get("password").is_none());
    assert!(v.get("ha1").is_none());
    assert_eq!(
        (v["email"].as_str(), v["allow_guest_calls"].as_bool()),
        (Some("a@b.c"), Some(true))
    );
}
