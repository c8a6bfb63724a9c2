//! Console resources through the real binary over HTTP with a Bearer token:
//! extensions (CRUD, a new one registers at once, a deleted one cannot),
//! SIP trunks and routes (CRUD, a route added by REST steers the next call,
//! validation names the field, file entries are listed and read-only, name
//! clashes are refused, console entries survive a restart and an AMI reload),
//! and guests reach only an extension with `allow_guest_calls`.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// (status, body as JSON; Null when empty) of one request with `token`.
fn http(pbx: &Pbx, token: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(pbx.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().unwrap();
    let text = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (code, v)
}

fn send(pbx: &Pbx, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    http(pbx, token, method, path, &body.to_string())
}

/// The `field` and `error` of an error reply, checked against its status.
fn fault(reply: &(u16, Value)) -> &str {
    let code = match reply.0 {
        400 => "bad_request",
        404 => "not_found",
        409 => "conflict",
        422 => "invalid",
        other => panic!("not an error reply: {other} {}", reply.1),
    };
    assert_eq!(reply.1["error"], code, "{}", reply.1);
    assert!(reply.1["message"].is_string(), "{}", reply.1);
    reply.1["field"].as_str().unwrap_or("")
}

fn usernames(list: &Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["username"].as_str().unwrap().to_string(),
                i["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn names(list: &Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// REGISTER `user` with `pass`: the final code after the challenge.
fn register(pbx: &Pbx, user: &str, pass: &str, call_id: &str) -> u16 {
    let uac = Uac::new(pbx.sip);
    let contact = format!("<sip:{user}@{}>", uac.local);
    register_with_auth(&uac, user, pass, call_id, 1, &contact, Some(600)).code
}

#[test]
fn extensions_crud_and_they_register_at_once() {
    let pbx = Pbx::start(PbxOptions {
        extra_tables: "[[proxy.user_backends]]\ntype = \"extensions\"\n".into(),
        ..PbxOptions::default()
    });
    let t = api_token(&pbx, "read,write");

    // Unknown before it exists.
    assert_eq!(register(&pbx, "2001", "pw-2001", "ext-0@test"), 403);
    assert_eq!(call_by_hand(&pbx, "2002", "ext-call-0@test").code, 404);

    let created = send(
        &pbx,
        &t,
        "POST",
        "/console/extensions",
        json!({"username": "2001", "password": "pw-2001", "display_name": "Ann Lee",
               "email": "ann@example.com"}),
    );
    assert_eq!(created.0, 201, "{}", created.1);
    let ann = created.1;
    let ann_id = ann["id"].as_str().unwrap().to_string();
    assert!(!ann_id.is_empty());
    assert_eq!(ann["username"], "2001");
    assert_eq!(ann["display_name"], "Ann Lee");
    assert_eq!(ann["email"], "ann@example.com");
    assert_eq!(ann["enabled"], true);
    assert_eq!(ann["allow_guest_calls"], false);
    assert_eq!(ann["source"], "console");
    assert!(ann.get("password").is_none(), "{ann}");
    assert!(!ann.to_string().contains("pw-2001"), "{ann}");

    // A SIP user at once, with that password; a wrong one is refused.
    assert_eq!(register(&pbx, "2001", "pw-2001", "ext-1@test"), 200);
    assert_eq!(register(&pbx, "2001", "wrong", "ext-2@test"), 403);

    let bob = send(
        &pbx,
        &t,
        "POST",
        "/console/extensions",
        json!({"username": "2002", "password": "pw-2002"}),
    );
    assert_eq!(bob.0, 201, "{}", bob.1);
    assert_ne!(bob.1["id"], ann["id"]);
    // Known but not registered: 480, no longer 404.
    assert_eq!(call_by_hand(&pbx, "2002", "ext-call-1@test").code, 480);
    // Disabled: not a SIP user; enabled again: it is.
    let bob_path = format!("/console/extensions/{}", bob.1["id"].as_str().unwrap());
    let off = send(
        &pbx,
        &t,
        "PUT",
        &bob_path,
        json!({"username": "2002", "enabled": false}),
    );
    assert_eq!(
        (off.0, &off.1["enabled"]),
        (200, &json!(false)),
        "{}",
        off.1
    );
    assert_eq!(register(&pbx, "2002", "pw-2002", "ext-d1@test"), 403);
    let on = send(&pbx, &t, "PUT", &bob_path, json!({"username": "2002"}));
    assert_eq!((on.0, &on.1["enabled"]), (200, &json!(true)), "{}", on.1);
    assert_eq!(register(&pbx, "2002", "pw-2002", "ext-d2@test"), 200);

    // Refusals: duplicate (console or config user) 409, bad values 422, not JSON 400.
    let dup = send(
        &pbx,
        &t,
        "POST",
        "/console/extensions",
        json!({"username": "2001", "password": "x"}),
    );
    assert_eq!((dup.0, fault(&dup)), (409, "username"), "{}", dup.1);
    let file_dup = send(
        &pbx,
        &t,
        "POST",
        "/console/extensions",
        json!({"username": "1001", "password": "x"}),
    );
    assert_eq!((file_dup.0, fault(&file_dup)), (409, "username"));
    let no_user = send(
        &pbx,
        &t,
        "POST",
        "/console/extensions",
        json!({"password": "x"}),
    );
    assert_eq!((no_user.0, fault(&no_user)), (422, "username"));
    let no_pw = send(
        &pbx,
        &t,
        "POST",
        "/console/extensions",
        json!({"username": "2003"}),
    );
    assert_eq!((no_pw.0, fault(&no_pw)), (422, "password"));
    let bad_email = send(
        &pbx,
        &t,
        "POST",
        "/console/extensions",
        json!({"username": "2003", "password": "x", "email": "nope"}),
    );
    assert_eq!((bad_email.0, fault(&bad_email)), (422, "email"));
    let not_json = http(&pbx, &t, "POST", "/console/extensions", "username=2003");
    assert_eq!((not_json.0, fault(&not_json)), (400, ""));

    // Lists: console and config users, by username, with q and pages.
    let (code, all) = http(&pbx, &t, "GET", "/console/extensions", "");
    assert_eq!(code, 200, "{all}");
    assert_eq!(
        usernames(&all),
        [
            ("1001".into(), "file".into()),
            ("1002".into(), "file".into()),
            ("2001".into(), "console".into()),
            ("2002".into(), "console".into()),
        ]
    );
    assert_eq!(
        (all["total"].as_u64(), all["page"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(all["per_page"], 50);
    assert!(!all.to_string().contains("pw-200"), "{all}");
    assert!(!all.to_string().contains("secret100"), "{all}");
    let (_, q) = http(&pbx, &t, "GET", "/console/extensions?q=ann", "");
    assert_eq!(usernames(&q), [("2001".into(), "console".into())]);
    assert_eq!(q["total"], 1);
    let (_, p) = http(&pbx, &t, "GET", "/console/extensions?per_page=1&page=3", "");
    assert_eq!(usernames(&p), [("2001".into(), "console".into())]);
    assert_eq!(
        (p["total"].as_u64(), p["page"].as_u64()),
        (Some(4), Some(3))
    );
    let bad_page = http(&pbx, &t, "GET", "/console/extensions?page=0", "");
    assert_eq!((bad_page.0, fault(&bad_page)), (422, "page"));

    // One.
    let one = http(
        &pbx,
        &t,
        "GET",
        &format!("/console/extensions/{ann_id}"),
        "",
    );
    assert_eq!(one, (200, ann.clone()));
    let file_one = http(&pbx, &t, "GET", "/console/extensions/file:1001", "");
    assert_eq!(file_one.0, 200, "{}", file_one.1);
    assert_eq!(
        (&file_one.1["username"], &file_one.1["source"]),
        (&json!("1001"), &json!("file"))
    );
    assert_eq!(http(&pbx, &t, "GET", "/console/extensions/999", "").0, 404);

    // PUT replaces the object; without a password the stored one stays.
    let put = send(
        &pbx,
        &t,
        "PUT",
        &format!("/console/extensions/{ann_id}"),
        json!({"username": "2001", "display_name": "Ann B"}),
    );
    assert_eq!(put.0, 200, "{}", put.1);
    assert_eq!(put.1["id"], ann["id"]);
    assert_eq!(put.1["display_name"], "Ann B");
    assert_eq!(put.1["email"], Value::Null, "replaced, not merged");
    assert_eq!(register(&pbx, "2001", "pw-2001", "ext-3@test"), 200);
    let put = send(
        &pbx,
        &t,
        "PUT",
        &format!("/console/extensions/{ann_id}"),
        json!({"username": "2001", "password": "pw-new"}),
    );
    assert_eq!(put.0, 200, "{}", put.1);
    assert_eq!(register(&pbx, "2001", "pw-new", "ext-4@test"), 200);
    assert_eq!(register(&pbx, "2001", "pw-2001", "ext-5@test"), 403);
    let clash = send(
        &pbx,
        &t,
        "PUT",
        &format!("/console/extensions/{ann_id}"),
        json!({"username": "2002"}),
    );
    assert_eq!((clash.0, fault(&clash)), (409, "username"));
    // Only digest HA1s are stored, and they hash the name: a rename needs
    // the password again, and then the new name registers with it.
    let rename = send(
        &pbx,
        &t,
        "PUT",
        &format!("/console/extensions/{ann_id}"),
        json!({"username": "2011"}),
    );
    assert_eq!((rename.0, fault(&rename)), (422, "password"));
    let rename = send(
        &pbx,
        &t,
        "PUT",
        &format!("/console/extensions/{ann_id}"),
        json!({"username": "2011", "password": "pw-2011"}),
    );
    assert_eq!(rename.0, 200, "{}", rename.1);
    assert_eq!(register(&pbx, "2011", "pw-2011", "ext-6@test"), 200);
    assert_eq!(register(&pbx, "2001", "pw-new", "ext-7@test"), 403);
    let missing = send(
        &pbx,
        &t,
        "PUT",
        "/console/extensions/999",
        json!({"username": "2009"}),
    );
    assert_eq!(missing.0, 404);

    // Config users are read-only here.
    let ro = send(
        &pbx,
        &t,
        "PUT",
        "/console/extensions/file:1001",
        json!({"username": "1001", "password": "x"}),
    );
    assert_eq!(ro.0, 409, "{}", ro.1);
    assert_eq!(
        http(&pbx, &t, "DELETE", "/console/extensions/file:1001", "").0,
        409
    );

    // A read-only token may list but not change.
    let r = api_token(&pbx, "read");
    assert_eq!(http(&pbx, &r, "GET", "/console/extensions", "").0, 200);
    let denied = send(
        &pbx,
        &r,
        "POST",
        "/console/extensions",
        json!({"username": "2005", "password": "x"}),
    );
    assert_eq!(denied.0, 403);

    // DELETE: 204, then 404; the SIP user is gone at once.
    let path = format!("/console/extensions/{ann_id}");
    assert_eq!(http(&pbx, &t, "DELETE", &path, ""), (204, Value::Null));
    assert_eq!(http(&pbx, &t, "GET", &path, "").0, 404);
    assert_eq!(http(&pbx, &t, "DELETE", &path, "").0, 404);
    assert_eq!(register(&pbx, "2001", "pw-new", "ext-6@test"), 403);
    // Config users still work beside them.
    assert_eq!(register(&pbx, "1002", "secret1002", "ext-7@test"), 200);
}

const FILE_ROUTES: &str = r#"
[[routes]]
name = "file-block"
priority = 50
match = { "to.user" = "^8" }
action = "reject"
reject = { code = 486, reason = "File says busy" }
"#;

const FILE_TRUNKS: &str = r#"
[trunks.file-carrier]
dest = "sip:127.0.0.1:9"
"#;

/// A server with one route file and one trunk file; their paths.
fn pbx_with_files() -> (Pbx, PathBuf, PathBuf) {
    let mut pbx = Pbx::start(PbxOptions::default());
    let routes = pbx.dir().join("routes.toml");
    let trunks = pbx.dir().join("trunks.toml");
    std::fs::write(&routes, FILE_ROUTES).unwrap();
    std::fs::write(&trunks, FILE_TRUNKS).unwrap();
    let text = std::fs::read_to_string(&pbx.config)
        .unwrap()
        .replace(
            "routes_files = []",
            &format!("routes_files = [\"{}\"]", routes.display()),
        )
        .replace(
            "trunks_files = []",
            &format!("trunks_files = [\"{}\"]", trunks.display()),
        );
    std::fs::write(&pbx.config, text).unwrap();
    pbx.restart();
    (pbx, routes, trunks)
}

fn reject_nines(code: u16, reason: &str) -> Value {
    json!({"name": "no-nines", "priority": 10, "match": {"to.user": "^9"},
           "action": "reject", "reject": {"code": code, "reason": reason}})
}

#[test]
fn routes_and_trunks_by_rest_steer_the_next_call() {
    let (mut pbx, routes_file, _) = pbx_with_files();
    let t = api_token(&pbx, "read,write");

    assert_eq!(call_by_hand(&pbx, "9000", "rt-0@test").code, 404);
    assert_eq!(call_by_hand(&pbx, "8000", "rt-f@test").code, 486);

    // A route added by REST steers the next call.
    let created = send(
        &pbx,
        &t,
        "POST",
        "/console/routing",
        reject_nines(403, "Nines barred"),
    );
    assert_eq!(created.0, 201, "{}", created.1);
    let id = created.1["id"].as_str().unwrap().to_string();
    assert_eq!(created.1["name"], "no-nines");
    assert_eq!(created.1["priority"], 10);
    assert_eq!(created.1["match"], json!({"to.user": "^9"}));
    assert_eq!(
        created.1["reject"],
        json!({"code": 403, "reason": "Nines barred"})
    );
    assert_eq!(created.1["source"], "console");
    let r = call_by_hand(&pbx, "9000", "rt-1@test");
    assert_eq!((r.code, r.reason.as_str()), (403, "Nines barred"));

    // PUT replaces it: the next call sees the new code.
    let path = format!("/console/routing/{id}");
    let put = send(&pbx, &t, "PUT", &path, reject_nines(488, "Not here"));
    assert_eq!(put.0, 200, "{}", put.1);
    assert_eq!(put.1["id"], created.1["id"]);
    assert_eq!(call_by_hand(&pbx, "9000", "rt-2@test").code, 488);
    assert_eq!(http(&pbx, &t, "GET", &path, "").1["reject"]["code"], 488);

    // Invalid routes: 422 naming the field; nothing stored, the table stays.
    let unknown_trunk = send(
        &pbx,
        &t,
        "POST",
        "/console/routing",
        json!({"name": "out", "match": {"to.user": "^7"}, "action": "forward",
               "dest": ["nope"]}),
    );
    assert_eq!(
        (unknown_trunk.0, fault(&unknown_trunk)),
        (422, "dest"),
        "{}",
        unknown_trunk.1
    );
    assert!(
        unknown_trunk.1["message"]
            .as_str()
            .unwrap()
            .contains("unknown trunk \"nope\""),
        "{}",
        unknown_trunk.1
    );
    let bad_regex = send(
        &pbx,
        &t,
        "POST",
        "/console/routing",
        json!({"name": "re", "match": {"to.user": "^(7"}, "action": "reject",
               "reject": {"code": 403}}),
    );
    assert_eq!(
        (bad_regex.0, fault(&bad_regex)),
        (422, "match"),
        "{}",
        bad_regex.1
    );
    let bad_code = send(
        &pbx,
        &t,
        "POST",
        "/console/routing",
        json!({"name": "rc", "action": "reject", "reject": {"code": 200}}),
    );
    assert_eq!(
        (bad_code.0, fault(&bad_code)),
        (422, "reject"),
        "{}",
        bad_code.1
    );
    let no_action = send(&pbx, &t, "POST", "/console/routing", json!({"name": "x"}));
    assert_eq!((no_action.0, fault(&no_action)), (422, "action"));
    let not_json = http(&pbx, &t, "POST", "/console/routing", "{name");
    assert_eq!(not_json.0, 400);
    assert_eq!(call_by_hand(&pbx, "9000", "rt-3@test").code, 488);

    // Name clashes with the file entries: 409.
    let clash = send(
        &pbx,
        &t,
        "POST",
        "/console/routing",
        json!({"name": "file-block", "action": "reject", "reject": {"code": 403}}),
    );
    assert_eq!((clash.0, fault(&clash)), (409, "name"), "{}", clash.1);
    let clash = send(
        &pbx,
        &t,
        "POST",
        "/console/sip-trunk",
        json!({"name": "file-carrier", "dest": "sip:127.0.0.1:5999"}),
    );
    assert_eq!((clash.0, fault(&clash)), (409, "name"), "{}", clash.1);

    // File entries: listed, readable, read-only.
    let (code, list) = http(&pbx, &t, "GET", "/console/routing", "");
    assert_eq!(code, 200, "{list}");
    assert_eq!(
        names(&list),
        [
            ("file-block".into(), "file".into()),
            ("no-nines".into(), "console".into()),
        ],
        "by priority"
    );
    assert_eq!(list["total"], 2);
    let file_route = http(&pbx, &t, "GET", "/console/routing/file:file-block", "");
    assert_eq!(file_route.0, 200);
    assert_eq!(file_route.1["reject"]["code"], 486);
    let ro = send(
        &pbx,
        &t,
        "PUT",
        "/console/routing/file:file-block",
        reject_nines(403, "x"),
    );
    assert_eq!(ro.0, 409, "{}", ro.1);
    assert_eq!(
        http(&pbx, &t, "DELETE", "/console/routing/file:file-block", "").0,
        409
    );
    assert_eq!(
        http(
            &pbx,
            &t,
            "DELETE",
            "/console/sip-trunk/file:file-carrier",
            ""
        )
        .0,
        409
    );
    assert_eq!(
        http(&pbx, &t, "DELETE", "/console/routing/file:nothing", "").0,
        404
    );
    assert_eq!(call_by_hand(&pbx, "8000", "rt-f2@test").code, 486);

    // Trunks: CRUD, the password is write-only, bad values name the field.
    let trunk = send(
        &pbx,
        &t,
        "POST",
        "/console/sip-trunk",
        json!({"name": "carrier-b", "dest": "sip:127.0.0.1:5999", "transport": "udp",
               "username": "tu", "password": "trunk-secret", "max_calls": 2}),
    );
    assert_eq!(trunk.0, 201, "{}", trunk.1);
    let trunk_id = trunk.1["id"].as_str().unwrap().to_string();
    assert_eq!(
        (
            &trunk.1["dest"],
            &trunk.1["username"],
            &trunk.1["max_calls"]
        ),
        (&json!("sip:127.0.0.1:5999"), &json!("tu"), &json!(2))
    );
    assert!(!trunk.1.to_string().contains("trunk-secret"), "{}", trunk.1);
    let bad = send(
        &pbx,
        &t,
        "POST",
        "/console/sip-trunk",
        json!({"name": "t2", "transport": "sctp"}),
    );
    assert_eq!((bad.0, fault(&bad)), (422, "transport"));
    let bad = send(
        &pbx,
        &t,
        "POST",
        "/console/sip-trunk",
        json!({"name": "t2", "dest": "http://x"}),
    );
    assert_eq!((bad.0, fault(&bad)), (422, "dest"), "{}", bad.1);
    let bad = send(
        &pbx,
        &t,
        "POST",
        "/console/sip-trunk",
        json!({"dest": "sip:127.0.0.1:5999"}),
    );
    assert_eq!((bad.0, fault(&bad)), (422, "name"));
    let (_, trunks) = http(&pbx, &t, "GET", "/console/sip-trunk", "");
    assert_eq!(
        names(&trunks),
        [
            ("carrier-b".into(), "console".into()),
            ("file-carrier".into(), "file".into()),
        ]
    );
    let (_, q) = http(&pbx, &t, "GET", "/console/sip-trunk?q=5999", "");
    assert_eq!(names(&q), [("carrier-b".into(), "console".into())]);

    // A console route through the console trunk; the trunk in use cannot go.
    let out = send(
        &pbx,
        &t,
        "POST",
        "/console/routing",
        json!({"name": "out", "match": {"to.user": "^7"}, "action": "forward",
               "dest": ["carrier-b", "file-carrier"]}),
    );
    assert_eq!(out.0, 201, "{}", out.1);
    let trunk_path = format!("/console/sip-trunk/{trunk_id}");
    let in_use = http(&pbx, &t, "DELETE", &trunk_path, "");
    assert_eq!(in_use.0, 409, "{}", in_use.1);
    assert!(
        in_use.1["message"].as_str().unwrap().contains("carrier-b"),
        "{}",
        in_use.1
    );
    // Renaming it would break the route too.
    let rename = send(
        &pbx,
        &t,
        "PUT",
        &trunk_path,
        json!({"name": "carrier-c", "dest": "sip:127.0.0.1:5999"}),
    );
    assert_eq!(rename.0, 409, "{}", rename.1);
    // PUT without a password keeps it; the rest is replaced.
    let put = send(
        &pbx,
        &t,
        "PUT",
        &trunk_path,
        json!({"name": "carrier-b", "dest": "sip:127.0.0.1:5998"}),
    );
    assert_eq!(put.0, 200, "{}", put.1);
    assert_eq!(
        (&put.1["dest"], &put.1["username"]),
        (&json!("sip:127.0.0.1:5998"), &json!(""))
    );
    assert_eq!(put.1["max_calls"], 0);

    // Console entries are part of every snapshot: an AMI reload keeps them,
    // and a file route that takes a console name is refused there.
    let (code, body) = http(&pbx, "", "POST", "/ami/v1/reload/routes", "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["summary"], "2 trunk(s), 3 route(s)");
    assert_eq!(call_by_hand(&pbx, "9000", "rt-4@test").code, 488);
    std::fs::write(
        &routes_file,
        format!("{FILE_ROUTES}\n[[routes]]\nname = \"no-nines\"\naction = \"reject\"\nreject = {{ code = 404 }}\n"),
    )
    .unwrap();
    let (code, body) = http(&pbx, "", "POST", "/ami/v1/reload/routes", "");
    assert_eq!(code, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("defined twice"),
        "{body}"
    );
    std::fs::write(&routes_file, FILE_ROUTES).unwrap();

    // They survive a restart, and still steer calls.
    pbx.restart();
    let (_, list) = http(&pbx, &t, "GET", "/console/routing", "");
    assert_eq!(
        names(&list),
        [
            ("file-block".into(), "file".into()),
            ("no-nines".into(), "console".into()),
            ("out".into(), "console".into()),
        ]
    );
    assert_eq!(call_by_hand(&pbx, "9000", "rt-5@test").code, 488);

    // DELETE: the route first, then its trunk; the next call is unrouted again.
    let out_path = format!("/console/routing/{}", out.1["id"].as_str().unwrap());
    assert_eq!(http(&pbx, &t, "DELETE", &out_path, "").0, 204);
    assert_eq!(http(&pbx, &t, "DELETE", &trunk_path, "").0, 204);
    assert_eq!(http(&pbx, &t, "GET", &trunk_path, "").0, 404);
    assert_eq!(http(&pbx, &t, "DELETE", &path, ""), (204, Value::Null));
    assert_eq!(http(&pbx, &t, "GET", &path, "").0, 404);
    assert_eq!(call_by_hand(&pbx, "9000", "rt-6@test").code, 404);
    let (_, list) = http(&pbx, &t, "GET", "/console/routing", "");
    assert_eq!(names(&list), [("file-block".into(), "file".into())]);
}

#[test]
fn a_file_entry_that_takes_a_console_name_refuses_to_start() {
    let (mut pbx, routes_file, _) = pbx_with_files();
    let t = api_token(&pbx, "write");
    let created = send(
        &pbx,
        &t,
        "POST",
        "/console/routing",
        reject_nines(403, "Nines barred"),
    );
    assert_eq!(created.0, 201, "{}", created.1);
    let st = pbx.stop();
    assert!(st.success(), "{st}");
    std::fs::write(
        &routes_file,
        format!("{FILE_ROUTES}\n[[routes]]\nname = \"no-nines\"\naction = \"reject\"\nreject = {{ code = 404 }}\n"),
    )
    .unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&pbx.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started despite the clash");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("console: routes[0].name: defined twice"),
        "{err}"
    );
}

/// An INVITE with no credentials from a visitor: the first 180 or final.
fn guest_invite(pbx: &Pbx, to: &str, call_id: &str) -> Response {
    let uac = Uac::new(pbx.sip);
    uac.send(&format!(
        "INVITE sip:{to}@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:visitor@example.org>;tag=g1\r\nTo: <sip:{to}@pbx.test>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:visitor@{me}>\r\nContent-Length: 0\r\n\r\n",
        me = uac.local,
        b = branch(),
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(text) = uac.recv(Duration::from_millis(500)) {
            let r = Response::parse(&text);
            if r.code >= 180 {
                return r;
            }
        }
    }
    panic!("no answer to the guest INVITE");
}

#[test]
fn a_guest_may_call_only_an_extension_that_allows_it() {
    let pbx = Pbx::start(PbxOptions {
        extra_tables: "[[proxy.user_backends]]\ntype = \"extensions\"\n".into(),
        ..PbxOptions::default()
    });
    let t = api_token(&pbx, "read,write");
    for (user, guests) in [("2005", true), ("2006", false)] {
        let made = send(
            &pbx,
            &t,
            "POST",
            "/console/extensions",
            json!({"username": user, "password": format!("pw-{user}"), "allow_guest_calls": guests}),
        );
        assert_eq!(made.0, 201, "{}", made.1);
    }
    // A route that would send 20xx elsewhere: a guest never reaches routes.
    let barred = json!({"name": "no-20", "priority": 10, "match": {"to.user": "^20"},
                        "action": "reject", "reject": {"code": 403, "reason": "Barred"}});
    assert_eq!(send(&pbx, &t, "POST", "/console/routing", barred).0, 201);
    let phone = common::media::Phone::register(&pbx, "2005", "pw-2005");

    // Guests get through to 2005 (it rings), not to 2006 (challenged).
    let (tx, rx) = std::sync::mpsc::channel();
    let ringing = std::thread::scope(|s| {
        s.spawn(|| {
            let invite = phone
                .wait_request("INVITE", Duration::from_secs(10))
                .expect("the guest call reaches the extension");
            phone.ring(&invite);
            tx.send(invite).unwrap();
        });
        guest_invite(&pbx, "2005", "guest-1@test")
    });
    assert_eq!(ringing.code, 180, "{}", ringing.raw);
    let invite = rx.recv().unwrap();
    assert!(invite.contains("visitor@example.org"), "{invite}");
    assert_eq!(guest_invite(&pbx, "2006", "guest-2@test").code, 407);
    // Authenticated callers go through the routes as always.
    assert_eq!(call_by_hand(&pbx, "2006", "guest-3@test").code, 403);
}
