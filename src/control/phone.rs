//! The demo softphone page at `/phone`: static files compiled into the
//! binary (`phone/`: the page, its script and style, the vendored JsSIP
//! bundle and its license; see `phone/VENDORED.md`), so nothing is read
//! from disk or built at run time, and `/phone/settings.json`, what the page
//! needs of the running config (the SIP WebSocket ports and the realm).
//!
//! The page is public: it passes the guard (GET only, not an AMI path) and
//! the console auth (not under `/console`); the SIP digest of the
//! extension is its login. Every reply here carries a Content-Security-Policy
//! that lets the page run only our own scripts and styles and open
//! WebSockets, and no caching, so an upgraded binary's page is the one seen.
//!
//! These are not REST endpoints: they are left out of the OpenAPI document
//! (the routes come from the [`ASSETS`] table, not `.route("<literal>")`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::http::HttpState;

/// Only our own scripts and styles (no inline ones), fetches to ourselves
/// and SIP over WebSocket anywhere (the WSS port differs from ours), remote
/// audio from WebRTC streams.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file of the page.
pub struct Asset {
    /// Where it is served.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "application/javascript; charset=utf-8";

/// The page's files: index.html at `/phone` and `/phone/`, the rest by name.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/phone",
        content_type: HTML,
        body: include_bytes!("phone/index.html"),
    },
    Asset {
        path: "/phone/",
        content_type: HTML,
        body: include_bytes!("phone/index.html"),
    },
    Asset {
        path: "/phone/phone.js",
        content_type: JS,
        body: include_bytes!("phone/phone.js"),
    },
    Asset {
        path: "/phone/phone.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("phone/phone.css"),
    },
    Asset {
        path: "/phone/jssip.min.js",
        content_type: JS,
        body: include_bytes!("phone/jssip.min.js"),
    },
    Asset {
        path: "/phone/JSSIP-LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("phone/JSSIP-LICENSE"),
    },
];

pub const SETTINGS_PATH: &str = "/phone/settings.json";

/// What the page learns of the running config (`/phone/settings.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PhoneSettings {
    /// `[proxy] wss_port`; None when there is no WSS listener (0).
    pub wss_port: Option<u16>,
    /// `[proxy] ws_port`; None when there is no plain WS listener (0).
    pub ws_port: Option<u16>,
    /// The first of `[proxy] realms`: the host part of the phone's SIP URI;
    /// "" when none is configured (the page then uses its own host name).
    pub realm: String,
}

impl PhoneSettings {
    pub fn from_config(proxy: &crate::config::ProxyConfig) -> PhoneSettings {
        PhoneSettings {
            wss_port: (proxy.wss_port != 0).then_some(proxy.wss_port),
            ws_port: (proxy.ws_port != 0).then_some(proxy.ws_port),
            realm: proxy.realms.first().cloned().unwrap_or_default(),
        }
    }
}

/// GET (and HEAD) of every file in [`ASSETS`] and of the settings; other
/// paths under `/phone` fall through to the router's 404.
pub fn routes() -> Router<Arc<HttpState>> {
    let mut router = Router::new();
    for asset in ASSETS {
        router = router.route(asset.path, get(move || async move { serve(asset) }));
    }
    router.route(SETTINGS_PATH, get(settings))
}

/// One file with the page's headers.
fn serve(asset: &'static Asset) -> Response {
    with_page_headers(([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response())
}

/// `GET /phone/settings.json`.
async fn settings(State(state): State<Arc<HttpState>>) -> Response {
    with_page_headers(Json(&state.phone).into_response())
}

/// No caching, no content sniffing, and the page's CSP.
fn with_page_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_config() {
        let mut proxy = crate::config::ProxyConfig::default();
        assert_eq!(
            serde_json::to_value(PhoneSettings::from_config(&proxy)).unwrap(),
            serde_json::json!({"wss_port": null, "ws_port": null, "realm": ""})
        );
        proxy.wss_port = 8443;
        proxy.realms = vec!["pbx.example".into(), "10.0.0.1".into()];
        let s = PhoneSettings::from_config(&proxy);
        assert_eq!(s.wss_port, Some(8443));
        assert_eq!(s.ws_port, None);
        assert_eq!(s.realm, "pbx.example");
    }

    #[test]
    fn the_page_is_public() {
        for a in ASSETS {
            assert!(
                !super::super::console_auth::is_protected(a.path),
                "{}",
                a.path
            );
        }
        assert!(!super::super::console_auth::is_protected(SETTINGS_PATH));
    }

    #[test]
    fn the_page_links_only_its_own_files() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        for src in ["/phone/jssip.min.js", "/phone/phone.js", "/phone/phone.css"] {
            assert!(html.contains(src), "{src}");
        }
        assert!(!html.contains("<script>"), "no inline script (CSP)");
        assert!(!html.contains("style="), "no inline style (CSP)");
    }
}
