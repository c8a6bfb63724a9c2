//! The first check of every HTTP request, before routing: a state-changing
//! request (POST, PUT, PATCH, DELETE) that a browser sent from another site
//! is refused (a foreign `Origin` or `Sec-Fetch-Site`: 403; a body of a
//! type browsers send cross-site without a preflight: 415), and when
//! `[ami] token` is set, AMI and `/metrics` need it as a bearer token
//! (after the allow-list). Requests from curl, the CLI and scripts carry no
//! `Origin` and pass.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::api_error::ApiError;
use super::console_store::constant_time_eq;
use super::http::HttpState;

/// What the guard knows of the server.
pub struct Guard {
    /// `http_addr`: an `Origin` naming it is ours too.
    http_addr: SocketAddr,
    /// SHA-256 of `[ami] token`; None: AMI needs no token.
    ami_token: Option<[u8; 32]>,
}

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// A browser sent it from another origin (403).
    CrossSite(&'static str),
    /// A body type a browser may send cross-site without asking (415).
    SimpleBody(String),
}

impl Guard {
    /// `ami_token` "" = no token required.
    pub fn new(http_addr: SocketAddr, ami_token: &str) -> Guard {
        Guard {
            http_addr,
            ami_token: (!ami_token.is_empty()).then(|| Sha256::digest(ami_token).into()),
        }
    }

    /// The cross-site checks of a state-changing request.
    fn check_cross_site(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        if !matches!(
            *method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        ) {
            return Ok(());
        }
        // Fetch metadata: anything but our own origin or the user's own
        // action (typing the URL) is another site (a sibling port or
        // subdomain counts: "same-site" is not "same-origin").
        if let Some(site) = headers.get("sec-fetch-site") {
            let site = site.to_str().unwrap_or("");
            if !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none") {
                return Err(Refusal::CrossSite(
                    "request from another site (Sec-Fetch-Site)",
                ));
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            if !origin
                .to_str()
                .is_ok_and(|o| is_own_origin(o, host, self.http_addr))
            {
                return Err(Refusal::CrossSite(
                    "request from another origin (Origin is not this server)",
                ));
            }
        }
        if let Some(ct) = headers.get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            let media = ct.split(';').next().unwrap_or("").trim();
            if [
                "application/x-www-form-urlencoded",
                "multipart/form-data",
                "text/plain",
            ]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
            {
                return Err(Refusal::SimpleBody(format!(
                    "Content-Type {media} is not accepted; send application/json"
                )));
            }
        } else if has_body(headers) {
            return Err(Refusal::SimpleBody(
                "a body needs Content-Type: application/json".into(),
            ));
        }
        Ok(())
    }

    /// True when `headers` carry `Authorization: Bearer <[ami] token>` or no
    /// token is configured.
    fn ami_token_ok(&self, headers: &HeaderMap) -> bool {
        let Some(want) = &self.ami_token else {
            return true;
        };
        let got = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .unwrap_or("");
        // Hashes compared, so the time says nothing of the token's length.
        let got: [u8; 32] = Sha256::digest(got).into();
        constant_time_eq(&got, want)
    }
}

/// A request with a body: a non-zero Content-Length or any Transfer-Encoding.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// (scheme, lowercase host, port) of `scheme://host[:port]`; None for
/// anything else (`null`, a path, userinfo).
fn parse_origin(origin: &str) -> Option<(&str, String, u16)> {
    let (scheme, rest) = origin.trim().split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (host, port) = split_host_port(rest, default)?;
    Some((scheme, host, port))
}

/// (lowercase host, port) of `host[:port]` (IPv6 in brackets).
fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// True when `origin` is this server: the host and port the client reached
/// (`Host`, defaulting to the origin scheme's port, so an `https://` origin
/// through a TLS-terminating proxy matches), or `http_addr` itself.
fn is_own_origin(origin: &str, host: Option<&str>, http_addr: SocketAddr) -> bool {
    let Some((scheme, o_host, o_port)) = parse_origin(origin) else {
        return false; // "null", opaque or malformed: never ours
    };
    let default = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    if let Some((h, p)) = host.and_then(|h| split_host_port(h.trim(), default)) {
        if h == o_host && p == o_port {
            return true;
        }
    }
    let ours = http_addr.ip();
    scheme.eq_ignore_ascii_case("http")
        && !ours.is_unspecified()
        && o_port == http_addr.port()
        && o_host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip == ours)
}

/// True for the paths `[ami] token` covers.
fn is_ami_path(path: &str) -> bool {
    path == "/metrics" || path == "/ami" || path.starts_with("/ami/")
}

/// The middleware (outermost layer of the router).
pub async fn check(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let guard = &state.guard;
    match guard.check_cross_site(req.method(), req.headers()) {
        Ok(()) => {}
        Err(Refusal::CrossSite(why)) => {
            tracing::warn!(%peer, path = req.uri().path(), "refused: {why}");
            return ApiError::forbidden(why).into_response();
        }
        Err(Refusal::SimpleBody(why)) => {
            return ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, why).into_response();
        }
    }
    if is_ami_path(req.uri().path()) {
        if !(state.ami_allowed)(peer.ip()) {
            return ApiError::not_ami_peer().into_response();
        }
        if !guard.ami_token_ok(req.headers()) {
            return ApiError::unauthorized("AMI needs Authorization: Bearer <[ami] token>")
                .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn addr() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn own_origin_is_the_host_reached_or_http_addr() {
        let a = addr();
        assert!(is_own_origin("http://x", Some("x"), a));
        assert!(is_own_origin("http://X:80", Some("x"), a));
        assert!(is_own_origin(
            "http://pbx.example:8080",
            Some("pbx.example:8080"),
            a
        ));
        assert!(is_own_origin("https://pbx.example", Some("pbx.example"), a));
        assert!(is_own_origin("http://[::1]:8080", Some("[::1]:8080"), a));
        assert!(is_own_origin("http://127.0.0.1:8080", None, a));
        assert!(is_own_origin("http://127.0.0.1:8080", Some("other"), a));
        assert!(!is_own_origin("http://evil.example", Some("x"), a));
        assert!(!is_own_origin("http://x:8081", Some("x:8080"), a));
        assert!(!is_own_origin("https://x:8080", Some("x"), a));
        assert!(!is_own_origin("null", Some("x"), a));
        assert!(!is_own_origin("", Some("x"), a));
        assert!(!is_own_origin("http://x/", Some("x"), a));
        assert!(!is_own_origin("http://u@x", Some("x"), a));
        assert!(!is_own_origin("file://x", Some("x"), a));
        assert!(!is_own_origin(
            "http://0.0.0.0:8080",
            None,
            "0.0.0.0:8080".parse().unwrap()
        ));
    }

    #[test]
    fn cross_site_and_simple_bodies_are_refused_on_writes_only() {
        let g = Guard::new(addr(), "");
        let post = Method::POST;
        assert_eq!(g.check_cross_site(&post, &headers(&[])), Ok(()));
        assert_eq!(
            g.check_cross_site(
                &post,
                &headers(&[
                    ("content-type", "application/json"),
                    ("content-length", "2")
                ])
            ),
            Ok(())
        );
        assert_eq!(
            g.check_cross_site(&post, &headers(&[("host", "x"), ("origin", "http://x")])),
            Ok(())
        );
        assert!(matches!(
            g.check_cross_site(&post, &headers(&[("origin", "null")])),
            Err(Refusal::CrossSite(_))
        ));
        assert!(matches!(
            g.check_cross_site(
                &Method::DELETE,
                &headers(&[("sec-fetch-site", "same-site")])
            ),
            Err(Refusal::CrossSite(_))
        ));
        assert_eq!(
            g.check_cross_site(&post, &headers(&[("sec-fetch-site", "same-origin")])),
            Ok(())
        );
        for ct in [
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "Multipart/Form-Data; boundary=x",
        ] {
            let h = headers(&[("content-type", ct)]);
            assert!(
                matches!(
                    g.check_cross_site(&Method::PUT, &h),
                    Err(Refusal::SimpleBody(_))
                ),
                "{ct}"
            );
            assert_eq!(g.check_cross_site(&Method::GET, &h), Ok(()), "{ct}");
        }
        assert!(matches!(
            g.check_cross_site(&post, &headers(&[("content-length", "5")])),
            Err(Refusal::SimpleBody(_))
        ));
        assert_eq!(
            g.check_cross_site(&post, &headers(&[("content-length", "0")])),
            Ok(())
        );
        assert_eq!(
            g.check_cross_site(&Method::GET, &headers(&[("origin", "http://evil.example")])),
            Ok(())
        );
    }

    #[test]
    fn ami_token_is_compared_when_set() {
        let open = Guard::new(addr(), "");
        assert!(open.ami_token_ok(&headers(&[])));
        let g = Guard::new(addr(), "s3cret-token-0123456789");
        assert!(!g.ami_token_ok(&headers(&[])));
        assert!(!g.ami_token_ok(&headers(&[("authorization", "Bearer nope")])));
        assert!(!g.ami_token_ok(&headers(&[(
            "authorization",
            "Basic s3cret-token-0123456789"
        )])));
        assert!(g.ami_token_ok(&headers(&[(
            "authorization",
            "Bearer s3cret-token-0123456789"
        )])));
        assert!(g.ami_token_ok(&headers(&[(
            "authorization",
            "bearer  s3cret-token-0123456789 "
        )])));
    }

    #[test]
    fn ami_paths() {
        assert!(is_ami_path("/metrics"));
        assert!(is_ami_path("/ami/v1/shutdown"));
        assert!(is_ami_path("/ami/v2/x"));
        assert!(!is_ami_path("/amix"));
        assert!(!is_ami_path("/console/login"));
    }
}
