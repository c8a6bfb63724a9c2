//! Console authentication (API.md section 4): `POST /console/login` and
//! `POST /console/logout` (in-memory sessions behind the `shardpbx_session`
//! cookie), `Authorization: Bearer` API tokens, per-route scopes, and the
//! per-address limit on failed logins. [`require`] is the middleware that
//! guards every path under `/console` except the login itself.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::api_error::ApiError;
use super::console_store::{self, ConsoleStore, Scope};
use super::http::HttpState;

pub const COOKIE: &str = "shardpbx_session";
pub const LOGIN_PATH: &str = "/console/login";
pub const LOGOUT_PATH: &str = "/console/logout";
/// Failed logins allowed per source address within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Beyond this many tracked addresses, forget the ones with no recent failure.
const FAILURE_MAP_PRUNE: usize = 4096;

/// Who made a request under `/console`; the middleware puts it in the
/// request's extensions for handlers that want to know.
#[derive(Clone, Debug, PartialEq)]
pub enum Principal {
    /// A console user, by session (all scopes).
    User { username: String },
    /// An API token (its scopes only).
    Token { id: String, name: String },
}

struct Session {
    username: String,
    /// The user's password hash at login: a session ends when the password
    /// changes or the user is removed (`shardpbx user passwd/remove`).
    password_hash: String,
    expires: Instant,
}

/// Sessions, failed-login counters and the credential store.
pub struct ConsoleAuth {
    store: ConsoleStore,
    ttl: Duration,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

/// The outcome of looking at a request's credentials.
enum Auth {
    Ok(Principal, Vec<Scope>),
    /// No credentials, or ones that are not (or no longer) valid.
    Unauthenticated(&'static str),
    /// The store could not be read.
    Unavailable(String),
}

impl ConsoleAuth {
    pub fn new(store: ConsoleStore, session_ttl: Duration) -> ConsoleAuth {
        ConsoleAuth {
            store,
            ttl: session_ttl,
            sessions: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VecDeque<Instant>>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session for `username`, whose hash is `password_hash`; its id.
    fn open_session(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<String, console_store::SecretError> {
        let id = console_store::hex(&console_store::random_bytes::<32>()?);
        let now = Instant::now();
        let mut sessions = self.sessions();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            id.clone(),
            Session {
                username: username.to_string(),
                password_hash: password_hash.to_string(),
                expires: now + self.ttl,
            },
        );
        Ok(id)
    }

    /// The user of a live session (and its password hash at login).
    fn session_user(&self, id: &str) -> Option<(String, String)> {
        let mut sessions = self.sessions();
        let s = sessions.get(id)?;
        if s.expires <= Instant::now() {
            sessions.remove(id);
            return None;
        }
        Some((s.username.clone(), s.password_hash.clone()))
    }

    fn close_session(&self, id: &str) -> bool {
        self.sessions().remove(id).is_some()
    }

    /// Some(seconds to wait) while `ip` has used up its failed logins.
    fn limited(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let mut failures = self.failures();
        let list = failures.get_mut(&ip)?;
        while list
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            list.pop_front();
        }
        if list.len() < MAX_FAILURES {
            return None;
        }
        let oldest = list.front().copied().unwrap_or(now);
        let wait = FAILURE_WINDOW.saturating_sub(now.duration_since(oldest));
        Some((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
    }

    /// Counts an attempt as failed before it is checked (so parallel guesses
    /// cannot slip past the limit while the hash runs); a success clears the
    /// address with [`Self::login_succeeded`]. Some(seconds) when limited.
    fn begin_attempt(&self, ip: IpAddr) -> Option<u64> {
        let now = Instant::now();
        if let Some(wait) = self.limited(ip, now) {
            return Some(wait);
        }
        let mut failures = self.failures();
        if failures.len() > FAILURE_MAP_PRUNE {
            failures.retain(|_, l| {
                l.back()
                    .is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
        }
        failures.entry(ip).or_default().push_back(now);
        None
    }

    fn login_succeeded(&self, ip: IpAddr) {
        self.failures().remove(&ip);
    }

    /// The credentials of a request: a Bearer token when there is an
    /// Authorization header, else the session cookie.
    fn authenticate(&self, headers: &HeaderMap) -> Auth {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let Some(token) = value.to_str().ok().and_then(bearer) else {
                return Auth::Unauthenticated("Authorization: expected 'Bearer <token>'");
            };
            let Some((id, secret)) = console_store::split_token(token) else {
                return Auth::Unauthenticated("invalid or revoked token");
            };
            return match self.store.token(id) {
                Ok(Some(rec)) if rec.verify(secret) => Auth::Ok(
                    Principal::Token {
                        id: rec.id.clone(),
                        name: rec.name.clone(),
                    },
                    rec.scopes,
                ),
                Ok(_) => Auth::Unauthenticated("invalid or revoked token"),
                Err(e) => Auth::Unavailable(e.to_string()),
            };
        }
        let no_session = "log in (POST /console/login) or send an API token";
        let Some(id) = session_cookie(headers) else {
            return Auth::Unauthenticated(no_session);
        };
        let Some((username, hash)) = self.session_user(id) else {
            return Auth::Unauthenticated(no_session);
        };
        match self.store.user(&username) {
            Ok(Some(user)) if user.password_hash == hash => {
                Auth::Ok(Principal::User { username }, Scope::ALL.to_vec())
            }
            Ok(_) => {
                self.close_session(id);
                Auth::Unauthenticated("session ended: the user was removed or its password changed")
            }
            Err(e) => Auth::Unavailable(e.to_string()),
        }
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The `shardpbx_session` cookie's value, when it looks like one of ours.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// True for the paths the middleware guards: all of `/console` but login
/// and the (public) OpenAPI document.
pub fn is_protected(path: &str) -> bool {
    (path == "/console" || path.starts_with("/console/"))
        && path != LOGIN_PATH
        && path != super::openapi::PATH
}

/// The scope a request under `/console` needs; None: any valid credential.
pub fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    if path == LOGOUT_PATH {
        return None;
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Some(Scope::Read);
    }
    if path == "/console/calls" || path.starts_with("/console/calls/") {
        return Some(Scope::Calls);
    }
    // A search whose filters come as a JSON body: reading, not writing.
    if *method == Method::POST
        && (path == "/console/call-records" || path == "/console/call-records/search")
    {
        return Some(Scope::Read);
    }
    Some(Scope::Write)
}

/// The middleware: every request under `/console` except the login needs a
/// live session or a valid token with the route's scope (401 without, 403
/// with a token that lacks the scope). Other paths pass untouched.
pub async fn require(
    State(state): State<Arc<HttpState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if !is_protected(path) {
        return next.run(req).await;
    }
    let needed = required_scope(req.method(), path);
    match state.console_auth.authenticate(req.headers()) {
        Auth::Ok(principal, scopes) => {
            if let Some(scope) = needed.filter(|s| !scopes.contains(s)) {
                return ApiError::forbidden(format!(
                    "this token lacks the '{}' scope",
                    scope.as_str()
                ))
                .into_response();
            }
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Auth::Unauthenticated(message) => ApiError::unauthorized(message).into_response(),
        Auth::Unavailable(e) => {
            tracing::error!("console auth: {e}");
            ApiError::unavailable("credential store unavailable").into_response()
        }
    }
}

fn too_many(wait_secs: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many failed logins from this address; retry in {wait_secs} s"),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(wait_secs))
}

/// A hash to check unknown usernames against, so they take as long as
/// wrong passwords.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| console_store::hash_password("not a real password").unwrap_or_default())
}

/// `POST /console/login` `{"username", "password"}`.
pub async fn login(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let auth = &state.console_auth;
    let ip = peer.ip().to_canonical();
    if let Some(wait) = auth.limited(ip, Instant::now()) {
        return Err(too_many(wait));
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("body is not JSON: {e}")))?;
    let field = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (username, password) = match (field("username"), field("password")) {
        (Some(u), Some(p)) => (u, p),
        (u, _) => {
            let name = if u.is_none() { "username" } else { "password" };
            return Err(ApiError::invalid(name, "a non-empty string is required"));
        }
    };
    if let Some(wait) = auth.begin_attempt(ip) {
        return Err(too_many(wait));
    }
    let phc = match auth.store.user(&username) {
        Ok(u) => u.map(|u| u.password_hash),
        Err(e) => {
            tracing::error!("console login: {e}");
            return Err(ApiError::unavailable("credential store unavailable"));
        }
    };
    let checked = phc.clone();
    let ok = tokio::task::spawn_blocking(move || match checked {
        Some(phc) => console_store::verify_password(&phc, &password),
        None => {
            let _ = console_store::verify_password(dummy_hash(), &password);
            false
        }
    })
    .await
    .unwrap_or(false);
    let Some(phc) = phc.filter(|_| ok) else {
        tracing::info!(%ip, "console login failed");
        return Err(ApiError::unauthorized("invalid username or password"));
    };
    auth.login_succeeded(ip);
    let id = match auth.open_session(&username, &phc) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!("console login: {e}");
            return Err(ApiError::unavailable(e.to_string()));
        }
    };
    tracing::info!(%ip, username, "console login");
    // No `Secure`: the listener is plain HTTP (add it once it serves TLS).
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}",
        auth.ttl.as_secs()
    );
    let mut r = (StatusCode::OK, Json(json!({ "username": username }))).into_response();
    match HeaderValue::from_str(&cookie) {
        Ok(v) => {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        Err(e) => return Err(ApiError::unavailable(e.to_string())),
    }
    Ok(r)
}

/// `POST /console/logout`: ends the session of the cookie (204); with a
/// token there is no session to end, still 204.
pub async fn logout(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        state.console_auth.close_session(id);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "shardpbx_session=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0",
        ),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_under_console_but_login_is_protected() {
        assert!(is_protected("/console"));
        assert!(is_protected("/console/calls/active/x/commands"));
        assert!(is_protected("/console/logout"));
        assert!(is_protected("/console/login/extra"));
        assert!(!is_protected("/console/login"));
        assert!(!is_protected("/consoles"));
        assert!(!is_protected("/ami/v1/health"));
        assert!(!is_protected("/metrics"));
    }

    #[test]
    fn scopes_per_route() {
        let cmd = "/console/calls/active/a@b/commands";
        assert_eq!(required_scope(&Method::POST, cmd), Some(Scope::Calls));
        assert_eq!(
            required_scope(&Method::GET, "/console/calls/active"),
            Some(Scope::Read)
        );
        assert_eq!(
            required_scope(&Method::POST, "/console/extensions"),
            Some(Scope::Write)
        );
        assert_eq!(
            required_scope(&Method::DELETE, "/console/routing/3"),
            Some(Scope::Write)
        );
        assert_eq!(
            required_scope(&Method::PUT, "/console/sip-trunk/1"),
            Some(Scope::Write)
        );
        assert_eq!(
            required_scope(&Method::POST, "/console/call-records"),
            Some(Scope::Read)
        );
        assert_eq!(
            required_scope(&Method::POST, "/console/call-records/search"),
            Some(Scope::Read)
        );
        assert_eq!(required_scope(&Method::POST, LOGOUT_PATH), None);
    }

    #[test]
    fn bearer_and_cookie_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        let id = "ab".repeat(32);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=1; {COOKIE}={id}; b=2")).unwrap(),
        );
        assert_eq!(session_cookie(&h), Some(id.as_str()));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("shardpbx_session=short"),
        );
        assert_eq!(session_cookie(&h), None);
    }

    fn auth() -> (tempfile::TempDir, ConsoleAuth) {
        let dir = tempfile::tempdir().unwrap();
        let store = shards::store::Store::open(
            dir.path(),
            &shards::store::StoreOptions {
                map_size: 16 << 20,
                read_only: false,
            },
        )
        .unwrap();
        let cs = ConsoleStore::open(&store).unwrap();
        (dir, ConsoleAuth::new(cs, Duration::from_secs(60)))
    }

    #[test]
    fn failed_logins_are_limited_per_address_and_success_resets() {
        let (_d, a) = auth();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert_eq!(a.begin_attempt(ip), None);
        }
        let wait = a.begin_attempt(ip).unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(a.begin_attempt(other), None, "other addresses unaffected");
        // After the window the address may try again.
        assert_eq!(a.limited(ip, Instant::now() + FAILURE_WINDOW), None);
        a.login_succeeded(ip);
        assert_eq!(a.limited(ip, Instant::now()), None);
    }

    #[test]
    fn sessions_resolve_and_end_on_logout_or_password_change() {
        let (_d, a) = auth();
        let user = console_store::ConsoleUser {
            username: "admin".into(),
            password_hash: "h1".into(),
            created: console_store::now_rfc3339(),
        };
        assert!(a.store.add_user(&user).unwrap());
        let cookie = |id: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("{COOKIE}={id}")).unwrap(),
            );
            h
        };
        let id = a.open_session("admin", "h1").unwrap();
        assert!(matches!(
            a.authenticate(&cookie(&id)),
            Auth::Ok(Principal::User { ref username }, ref s) if username == "admin" && s.len() == 3
        ));
        assert!(a.close_session(&id));
        assert!(matches!(
            a.authenticate(&cookie(&id)),
            Auth::Unauthenticated(_)
        ));

        let id = a.open_session("admin", "h1").unwrap();
        assert!(a.store.set_password("admin", "h2").unwrap());
        assert!(matches!(
            a.authenticate(&cookie(&id)),
            Auth::Unauthenticated(_)
        ));
        assert!(a.session_user(&id).is_none(), "stale session dropped");
    }
}
