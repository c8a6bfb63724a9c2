//! `GET /console/openapi.json`: the OpenAPI 3 document of the whole REST
//! surface (`openapi/shardpbx.json`, embedded at build time). It is public,
//! like the login: the console auth middleware lets this one path through.

use axum::http::header;
use axum::response::IntoResponse;

pub const PATH: &str = "/console/openapi.json";

/// The document, as checked in.
pub const DOCUMENT: &str = include_str!("../../openapi/shardpbx.json");

/// `GET /console/openapi.json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// Every (method, path) the router serves, in the document's spelling.
    /// A route added to `router()` (or to a module's routes) must be added
    /// here and to the document; `route_scan_finds_no_undocumented_route`
    /// catches one added only to the code.
    const ROUTES: &[(&str, &str)] = &[
        ("get", "/metrics"),
        ("post", "/console/login"),
        ("post", "/console/logout"),
        ("get", "/console/openapi.json"),
        ("post", "/console/calls"),
        ("get", "/console/calls/active"),
        ("post", "/console/calls/active/{call_id}/commands"),
        ("get", "/console/call-records"),
        ("post", "/console/call-records"),
        ("post", "/console/call-records/search"),
        ("get", "/console/call-records/{id}"),
        ("get", "/console/call-records/{id}/recording"),
        ("get", "/console/call-records/{id}/sip-flow"),
        ("get", "/console/extensions"),
        ("post", "/console/extensions"),
        ("get", "/console/extensions/{id}"),
        ("put", "/console/extensions/{id}"),
        ("delete", "/console/extensions/{id}"),
        ("get", "/console/sip-trunk"),
        ("post", "/console/sip-trunk"),
        ("get", "/console/sip-trunk/{id}"),
        ("put", "/console/sip-trunk/{id}"),
        ("delete", "/console/sip-trunk/{id}"),
        ("get", "/console/routing"),
        ("post", "/console/routing"),
        ("get", "/console/routing/{id}"),
        ("put", "/console/routing/{id}"),
        ("delete", "/console/routing/{id}"),
        ("get", "/ami/v1/health"),
        ("post", "/ami/v1/reload/{what}"),
        ("post", "/ami/v1/shutdown"),
        ("get", "/ami/v1/dialogs"),
        ("get", "/ami/v1/bans"),
        ("delete", "/ami/v1/bans/{ip}"),
    ];

    const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

    fn doc() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi/shardpbx.json is not JSON")
    }

    fn documented(doc: &Value) -> BTreeSet<(String, String)> {
        let paths = doc["paths"].as_object().expect("paths");
        let mut ops = BTreeSet::new();
        for (path, item) in paths {
            for m in METHODS {
                if item.get(m).is_some() {
                    ops.insert((m.to_string(), path.clone()));
                }
            }
        }
        ops
    }

    #[test]
    fn document_is_openapi_3_and_lists_every_route() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.0.3");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        let want: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        let have = documented(&doc);
        let missing: Vec<_> = want.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "routes missing from the document: {missing:?}"
        );
        let extra: Vec<_> = have.difference(&want).collect();
        assert!(
            extra.is_empty(),
            "the document has operations the router does not serve: {extra:?}"
        );
    }

    /// Every `$ref` points at something in the document.
    #[test]
    fn every_reference_resolves() {
        fn walk(v: &Value, doc: &Value, bad: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let target = r
                            .strip_prefix('#')
                            .and_then(|p| doc.pointer(p))
                            .filter(|t| !t.is_null());
                        if target.is_none() {
                            bad.push(r.clone());
                        }
                    }
                    m.values().for_each(|x| walk(x, doc, bad));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc, bad)),
                _ => {}
            }
        }
        let doc = doc();
        let mut bad = Vec::new();
        walk(&doc, &doc, &mut bad);
        assert!(bad.is_empty(), "unresolved $refs: {bad:?}");
    }

    /// Console operations need credentials, but the login and this
    /// document; AMI and /metrics take none (allow-list instead).
    #[test]
    fn security_matches_the_middleware() {
        let doc = doc();
        assert!(!doc["security"].as_array().unwrap().is_empty());
        for (m, p) in ROUTES {
            let op = &doc["paths"][p][m];
            let public = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty);
            let protected = super::super::console_auth::is_protected(p);
            assert_eq!(public, !protected, "{m} {p}: security vs. the middleware");
            if protected {
                assert!(op["responses"].get("401").is_some(), "{m} {p}: no 401");
            }
        }
        assert!(!super::super::console_auth::is_protected(PATH));
    }

    /// `(method, path)` of each `.route("<literal>", get(..).post(..))` in
    /// the control module's sources (read at test time, so new files count).
    fn scanned_routes() -> BTreeSet<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/control");
        let mut found = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut rest = text.as_str();
            while let Some(at) = rest.find(".route(") {
                rest = &rest[at + ".route(".len()..];
                let args = balanced(rest);
                let trimmed = args.trim_start();
                let Some(lit) = trimmed.strip_prefix('"') else {
                    continue;
                };
                let Some(end) = lit.find('"') else {
                    continue;
                };
                let route = &lit[..end];
                if !route.starts_with('/') {
                    continue;
                }
                for m in METHODS {
                    if calls(&lit[end..], m) {
                        found.insert((m.to_string(), route.to_string()));
                    }
                }
            }
        }
        found
    }

    /// The text up to the `)` that closes an opened `(`.
    fn balanced(s: &str) -> &str {
        let mut depth = 1;
        for (i, c) in s.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return &s[..i];
                    }
                }
                _ => {}
            }
        }
        s
    }

    /// Whether `text` calls the method router `m(` (as a word).
    fn calls(text: &str, m: &str) -> bool {
        let pat = format!("{m}(");
        text.match_indices(&pat).any(|(i, _)| {
            text[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
    }

    #[test]
    fn route_scan_finds_no_undocumented_route() {
        let scanned = scanned_routes();
        assert!(
            scanned.contains(&("post".into(), "/console/login".into())),
            "the route scan found nothing: {scanned:?}"
        );
        let have = documented(&doc());
        let missing: Vec<_> = scanned.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "routes in src/control without an entry in openapi/shardpbx.json: {missing:?}"
        );
    }
}
