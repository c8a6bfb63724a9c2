//! The demo softphone page (`/phone`, `src/control/phone.rs`) through the
//! real binary: the page with its headers (CSP, no caching, nosniff) and
//! links to its own files, the vendored JsSIP byte for byte, the settings
//! built from the config, 404/405 JSON for what it does not serve, and no
//! token or session needed (even with `[ami] token` set).

mod common;

use common::*;

/// (status, lowercase header lines, body) of `GET path` (or another method).
fn fetch(pbx: &Pbx, method: &str, path: &str) -> (u16, Vec<String>, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(pbx.http).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).expect("a UTF-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let headers = head.lines().skip(1).map(str::to_ascii_lowercase).collect();
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}:");
    headers
        .iter()
        .find_map(|h| h.strip_prefix(&prefix))
        .map(str::trim)
}

fn vendored(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/control/phone")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn phone_page_is_served_from_the_binary() {
    let wss_port = free_port();
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: format!("wss_port = {wss_port}\nrealms = [\"pbx.test\", \"127.0.0.1\"]\n"),
        extra_tables: "[ami]\ntoken = \"phone-page-test-token-0123456789\"\n".into(),
        ..PbxOptions::default()
    });

    // The page, at /phone and /phone/, with its headers and no credentials.
    for path in ["/phone", "/phone/"] {
        let (status, headers, body) = fetch(&pbx, "GET", path);
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(
            header(&headers, "content-type"),
            Some("text/html; charset=utf-8")
        );
        let csp = header(&headers, "content-security-policy").expect("a CSP");
        for directive in [
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self' ws: wss:",
            "media-src 'self' blob: mediastream:",
        ] {
            assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
        assert!(
            body.contains("<script src=\"/phone/jssip.min.js\""),
            "{body}"
        );
        assert!(body.contains("<script src=\"/phone/phone.js\""));
        for id in ["reg-state", "call-state", "dial-target", "mute-button"] {
            assert!(body.contains(&format!("id=\"{id}\"")), "no #{id}");
        }
    }

    // The vendored JsSIP, byte for byte, and its license.
    let (status, headers, body) = fetch(&pbx, "GET", "/phone/jssip.min.js");
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type").is_some_and(|t| t.starts_with("application/javascript"))
    );
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    let want = vendored("jssip.min.js");
    assert_eq!(body.len(), want.len());
    assert!(body == want, "/phone/jssip.min.js is not the vendored file");
    let (status, headers, body) = fetch(&pbx, "GET", "/phone/JSSIP-LICENSE");
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").is_some_and(|t| t.starts_with("text/plain")));
    assert_eq!(body, vendored("JSSIP-LICENSE"));
    assert!(body.contains("MIT License"));

    // The page's own script and style.
    for (path, file, kind) in [
        ("/phone/phone.js", "phone.js", "application/javascript"),
        ("/phone/phone.css", "phone.css", "text/css"),
    ] {
        let (status, headers, body) = fetch(&pbx, "GET", path);
        assert_eq!(status, 200, "{path}");
        assert!(header(&headers, "content-type").is_some_and(|t| t.starts_with(kind)));
        assert_eq!(body, vendored(file), "{path}");
    }

    // The settings from the config: the WSS port, no WS port, the first realm.
    let (status, headers, body) = fetch(&pbx, "GET", "/phone/settings.json");
    assert_eq!(status, 200, "{body}");
    assert!(header(&headers, "content-type").is_some_and(|t| t.starts_with("application/json")));
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    let settings: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        settings,
        serde_json::json!({"wss_port": wss_port, "ws_port": null, "realm": "pbx.test"})
    );

    // What it does not serve: the router's JSON errors.
    let (status, headers, body) = fetch(&pbx, "GET", "/phone/x");
    assert_eq!(status, 404, "{body}");
    assert!(header(&headers, "content-type").is_some_and(|t| t.contains("json")));
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(error.is_object(), "{body}");
    let (status, _, body) = fetch(&pbx, "POST", "/phone");
    assert_eq!(status, 405, "{body}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&body).is_ok(),
        "{body}"
    );
}

#[test]
fn settings_without_websocket_listeners_are_null() {
    let pbx = Pbx::start(PbxOptions::default());
    let (status, _, body) = fetch(&pbx, "GET", "/phone/settings.json");
    assert_eq!(status, 200, "{body}");
    let settings: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        settings,
        serde_json::json!({"wss_port": null, "ws_port": null, "realm": "127.0.0.1"})
    );
}
