//! The console's resources (API.md section 4, "Resources"; guide 2.2): CRUD
//! of extensions (`/console/extensions`), SIP trunks (`/console/sip-trunk`)
//! and routes (`/console/routing`), stored by `resources_store.rs`.
//!
//! * Extensions are SIP users at once: the shards read them from LMDB on
//!   each lookup. Passwords are write-only; a PUT without `password` keeps
//!   the stored one (a client that read the object cannot send it back).
//! * A trunk or route change is validated together with the file entries
//!   under the `Reloader` lock, stored, and the new snapshot is sent to every
//!   shard, as an AMI reload does: the next call routes with it. A refused
//!   change stores nothing and the snapshot in force stays. Trunk passwords
//!   are write-only like extension passwords (absent on PUT = kept).
//! * File entries (trunk and route files, `memory` users of the config) are
//!   listed with `"source": "file"` and id `file:<name>`; they are read-only
//!   here (409 on PUT/DELETE). A name that a file entry or another console
//!   entry already has is refused with 409.
//! * Errors: 400 for a body that is not JSON, 422 naming the `field` for a
//!   missing or invalid value, 404, 409; `{"error", "message", "field"}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use shards::routing::{RouteSpec, RoutingSnapshot, Subject, TrunkSpec};
use shards::store::{Store, StoreError};

use super::http::HttpState;
use super::resources_store::{Extension, Replaced, ResourcesStore, StoredRoute, StoredTrunk};
use crate::config::routes_files::RoutingSource;
use crate::config::{Config, ConfigError, UserBackend};

/// How console entries are named in routing errors (and in start-up errors).
pub const CONSOLE_LABEL: &str = "console";
/// The id prefix of file entries.
const FILE_ID: &str = "file:";
pub const DEFAULT_PER_PAGE: u64 = 50;
pub const MAX_PER_PAGE: u64 = 500;

/// What the resource handlers read.
pub struct ResourcesState {
    pub store: ResourcesStore,
    /// The `memory` users of the config, listed as read-only extensions.
    pub file_users: Vec<FileUser>,
}

/// A `memory` user of the config as the extensions API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileUser {
    pub username: String,
    pub display_name: Option<String>,
    pub allowed_caller_ids: Vec<String>,
}

impl ResourcesState {
    /// Opens the resource databases; `cfg` gives the file users.
    pub fn open(store: &Store, cfg: &Config) -> Result<ResourcesState, StoreError> {
        let mut file_users: Vec<FileUser> = Vec::new();
        for b in &cfg.proxy.user_backends {
            if let UserBackend::Memory(users) = b.backend() {
                for u in users {
                    if !file_users.iter().any(|f| f.username == u.username) {
                        file_users.push(FileUser {
                            username: u.username,
                            display_name: u.display_name,
                            allowed_caller_ids: u.allowed_caller_ids,
                        });
                    }
                }
            }
        }
        Ok(ResourcesState {
            store: ResourcesStore::open(store, &cfg.proxy.realms)?,
            file_users,
        })
    }

    /// The stored console trunks and routes as a routing source.
    pub fn console_source(&self) -> Result<RoutingSource, StoreError> {
        Ok(console_source(&self.store.trunks()?, &self.store.routes()?))
    }

    fn file_user(&self, username: &str) -> Option<&FileUser> {
        self.file_users.iter().find(|u| u.username == username)
    }
}

/// Console trunks and routes (in creation order) as a routing source.
pub fn console_source(trunks: &[StoredTrunk], routes: &[StoredRoute]) -> RoutingSource {
    RoutingSource::managed(
        CONSOLE_LABEL,
        trunks
            .iter()
            .map(|t| (t.name.clone(), t.spec.clone()))
            .collect(),
        routes.iter().map(|r| r.spec.clone()).collect(),
    )
}

/// The routes of this module, merged into the control core's router.
pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route(
            "/console/extensions",
            get(list_extensions).post(create_extension),
        )
        .route(
            "/console/extensions/{id}",
            get(get_extension)
                .put(replace_extension)
                .delete(delete_extension),
        )
        .route("/console/sip-trunk", get(list_trunks).post(create_trunk))
        .route(
            "/console/sip-trunk/{id}",
            get(get_trunk).put(replace_trunk).delete(delete_trunk),
        )
        .route("/console/routing", get(list_routes).post(create_route))
        .route(
            "/console/routing/{id}",
            get(get_route).put(replace_route).delete(delete_route),
        )
}

// ---- replies ----

/// An error reply: `{"error", "message", "field"}` with its status.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    field: Option<String>,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body =
            json!({ "error": super::http::error_code(self.status), "message": self.message });
        if let Some(f) = self.field {
            body["field"] = f.into();
        }
        (self.status, Json(body)).into_response()
    }
}

fn error(status: StatusCode, field: Option<&str>, message: &str) -> Refusal {
    Refusal {
        status,
        field: field.map(str::to_string),
        message: message.to_string(),
    }
}

fn internal(what: impl std::fmt::Display) -> Refusal {
    tracing::error!("console resources: {what}");
    error(StatusCode::INTERNAL_SERVER_ERROR, None, &what.to_string())
}

/// 422 naming `field`; the message starts with it.
fn invalid(field: &str, reason: impl std::fmt::Display) -> Refusal {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        Some(field),
        &format!("{field}: {reason}"),
    )
}

fn conflict(field: Option<&str>, message: &str) -> Refusal {
    error(StatusCode::CONFLICT, field, message)
}

fn not_found(what: &str, id: &str) -> Refusal {
    error(StatusCode::NOT_FOUND, None, &format!("no {what} {id}"))
}

fn read_only(what: &str, id: &str, file: &str) -> Refusal {
    conflict(
        None,
        &format!("{what} {id} comes from {file} and is read-only here; edit the file instead"),
    )
}

/// Runs store work on the blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, Refusal>
where
    F: FnOnce() -> Result<T, Refusal> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(internal(format!("task failed: {e}"))),
    }
}

// ---- request bodies ----

/// The body as a JSON object: 400 when it is not JSON, 422 when it is not
/// an object.
fn object(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            "the body must be a JSON object",
        )),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            None,
            &format!("body is not JSON: {e}"),
        )),
    }
}

/// Keys every body may carry back from a GET; ignored.
const ECHOED: [&str; 2] = ["id", "source"];

fn unknown_key(key: &str, known: &[&str]) -> Refusal {
    invalid(
        key,
        format!("unknown field (expected one of {})", known.join(", ")),
    )
}

/// `key` as an optional string (absent, null or "" = None).
fn opt_string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, Refusal> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(key, "must be a string")),
    }
}

fn opt_bool(map: &Map<String, Value>, key: &str) -> Result<Option<bool>, Refusal> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(key, "must be true or false")),
    }
}

/// Text that may end up in SIP headers or logs: bounded, no control characters.
fn check_text(key: &str, s: &str, max: usize) -> Result<(), Refusal> {
    if s.chars().count() > max {
        return Err(invalid(key, format!("longer than {max} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(key, "must not contain control characters"));
    }
    Ok(())
}

/// An extension body, validated.
#[derive(Debug, PartialEq)]
struct ExtensionInput {
    username: String,
    /// None: not given (on PUT the stored one stays).
    password: Option<String>,
    display_name: Option<String>,
    email: Option<String>,
    enabled: bool,
    allow_guest_calls: bool,
    allowed_caller_ids: Vec<String>,
}

/// At most this many `allowed_caller_ids` per extension.
const MAX_CALLER_IDS: usize = 64;

const EXTENSION_KEYS: [&str; 7] = [
    "username",
    "password",
    "display_name",
    "email",
    "enabled",
    "allow_guest_calls",
    "allowed_caller_ids",
];

/// Characters of an extension number besides ASCII letters and digits (a
/// safe subset of the SIP user part).
const USERNAME_EXTRA: &str = "-_.!~*+";

fn extension_input(map: &Map<String, Value>) -> Result<ExtensionInput, Refusal> {
    if let Some(k) = map
        .keys()
        .find(|k| !EXTENSION_KEYS.contains(&k.as_str()) && !ECHOED.contains(&k.as_str()))
    {
        return Err(unknown_key(k, &EXTENSION_KEYS));
    }
    let username = opt_string(map, "username")?.ok_or_else(|| invalid("username", "required"))?;
    check_number("username", &username)?;
    let allowed_caller_ids = match map.get("allowed_caller_ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) if ids.len() > MAX_CALLER_IDS => {
            return Err(invalid(
                "allowed_caller_ids",
                format!("at most {MAX_CALLER_IDS} entries"),
            ))
        }
        Some(Value::Array(ids)) => {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let Value::String(id) = id else {
                    return Err(invalid("allowed_caller_ids", "must be an array of strings"));
                };
                check_number("allowed_caller_ids", id)?;
                out.push(id.clone());
            }
            out
        }
        Some(_) => return Err(invalid("allowed_caller_ids", "must be an array of strings")),
    };
    let password = match map.get("password") {
        None => None,
        Some(Value::String(p)) if p.is_empty() => {
            return Err(invalid("password", "must not be empty"))
        }
        Some(Value::String(p)) => {
            check_text("password", p, 128)?;
            Some(p.clone())
        }
        Some(_) => return Err(invalid("password", "must be a string")),
    };
    let display_name = opt_string(map, "display_name")?;
    if let Some(d) = &display_name {
        check_text("display_name", d, 128)?;
    }
    let email = opt_string(map, "email")?;
    if let Some(e) = &email {
        check_text("email", e, 254)?;
        let ok = e
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'))
            && !e.contains(char::is_whitespace);
        if !ok {
            return Err(invalid("email", format!("{e:?} is not an email address")));
        }
    }
    Ok(ExtensionInput {
        username,
        password,
        display_name,
        email,
        enabled: opt_bool(map, "enabled")?.unwrap_or(true),
        allow_guest_calls: opt_bool(map, "allow_guest_calls")?.unwrap_or(false),
        allowed_caller_ids,
    })
}

/// An extension number (or a caller id): 1-64 letters, digits and
/// [`USERNAME_EXTRA`], a safe subset of the SIP user part.
fn check_number(field: &str, value: &str) -> Result<(), Refusal> {
    if value.is_empty() || value.len() > 64 {
        return Err(invalid(field, "must be 1 to 64 characters"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || USERNAME_EXTRA.contains(c))
    {
        return Err(invalid(
            field,
            format!("{value:?}: only letters, digits and {USERNAME_EXTRA} are allowed"),
        ));
    }
    Ok(())
}

const TRUNK_KEYS: [&str; 8] = [
    "name",
    "dest",
    "transport",
    "username",
    "password",
    "inbound_hosts",
    "max_calls",
    "max_cps",
];

const ROUTE_KEYS: [&str; 9] = [
    "name", "priority", "match", "rewrite", "action", "dest", "select", "weights", "reject",
];

/// Checks each key of `map` on its own, so a type error names its field:
/// `base` plus that one key must deserialize as `T`. Unknown keys are 422;
/// `outside` keys are known but not `T`'s (checked by the caller). The keys
/// that are `T`'s.
fn check_keys<T: DeserializeOwned>(
    map: &Map<String, Value>,
    known: &[&str],
    outside: &[&str],
    base: &Map<String, Value>,
) -> Result<Map<String, Value>, Refusal> {
    let mut kept = Map::new();
    for (k, v) in map {
        if ECHOED.contains(&k.as_str()) || outside.contains(&k.as_str()) {
            continue;
        }
        if !known.contains(&k.as_str()) {
            return Err(unknown_key(k, known));
        }
        let mut one = base.clone();
        one.insert(k.clone(), v.clone());
        if let Err(e) = serde_json::from_value::<T>(Value::Object(one)) {
            return Err(invalid(k, e));
        }
        kept.insert(k.clone(), v.clone());
    }
    Ok(kept)
}

fn from_checked<T: DeserializeOwned>(map: Map<String, Value>) -> Result<T, Refusal> {
    serde_json::from_value(Value::Object(map)).map_err(|e| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            &format!("invalid body: {e}"),
        )
    })
}

/// A trunk body: (name, spec, whether `password` was given).
fn trunk_input(map: &Map<String, Value>) -> Result<(String, TrunkSpec, bool), Refusal> {
    let kept = check_keys::<TrunkSpec>(map, &TRUNK_KEYS, &["name"], &Map::new())?;
    let name = match map.get("name") {
        None | Some(Value::Null) => return Err(invalid("name", "required")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid("name", "must be a string")),
    };
    let spec = from_checked::<TrunkSpec>(kept)?;
    Ok((name, spec, map.contains_key("password")))
}

fn route_input(map: &Map<String, Value>) -> Result<RouteSpec, Refusal> {
    let mut base = Map::new();
    base.insert("name".into(), "x".into());
    base.insert("action".into(), "reject".into());
    let kept = check_keys::<RouteSpec>(map, &ROUTE_KEYS, &[], &base)?;
    for required in ["name", "action"] {
        if matches!(map.get(required), None | Some(Value::Null)) {
            return Err(invalid(required, "required"));
        }
    }
    from_checked::<RouteSpec>(kept)
}

// ---- lists ----

/// `?q=&page=&per_page=`, validated.
#[derive(Debug, PartialEq)]
struct ListQuery {
    /// Lowercased; matched against the items' text values.
    q: Option<String>,
    /// 1-based.
    page: u64,
    per_page: u64,
}

fn list_query(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<ListQuery, Refusal> {
    let pairs = match query {
        Ok(Query(p)) => p,
        Err(e) => return Err(error(StatusCode::BAD_REQUEST, None, &e.body_text())),
    };
    let mut lq = ListQuery {
        q: None,
        page: 1,
        per_page: DEFAULT_PER_PAGE,
    };
    for (k, v) in pairs {
        let v = v.trim();
        match k.as_str() {
            "q" if !v.is_empty() => lq.q = Some(v.to_lowercase()),
            "page" if !v.is_empty() => {
                lq.page = v
                    .parse()
                    .ok()
                    .filter(|p| *p >= 1)
                    .ok_or_else(|| invalid("page", "must be a whole number from 1"))?;
            }
            "per_page" if !v.is_empty() => {
                lq.per_page = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PER_PAGE).contains(n))
                    .ok_or_else(|| invalid("per_page", format!("must be 1 to {MAX_PER_PAGE}")))?;
            }
            _ => {}
        }
    }
    Ok(lq)
}

/// Whether a text value of `v` (but `id` and `source`) contains `q`.
fn hits(v: &Value, q: &str, top: bool) -> bool {
    match v {
        Value::String(s) => s.to_lowercase().contains(q),
        Value::Array(a) => a.iter().any(|x| hits(x, q, false)),
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| !top || !ECHOED.contains(&k.as_str()))
            .any(|(_, x)| hits(x, q, false)),
        _ => false,
    }
}

/// One page of `items` (already in order) that pass `q`.
fn page_of(items: Vec<Value>, lq: &ListQuery) -> Response {
    let passing: Vec<Value> = match &lq.q {
        Some(q) => items.into_iter().filter(|v| hits(v, q, true)).collect(),
        None => items,
    };
    let total = passing.len() as u64;
    let skip = (lq.page - 1).saturating_mul(lq.per_page);
    let items: Vec<Value> = passing
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(usize::try_from(lq.per_page).unwrap_or(usize::MAX))
        .collect();
    Json(json!({
        "items": items,
        "page": lq.page,
        "per_page": lq.per_page,
        "total": total,
    }))
    .into_response()
}

// ---- views ----

fn extension_view(e: &Extension) -> Value {
    json!({
        "id": e.id,
        "username": e.username,
        "display_name": e.display_name,
        "email": e.email,
        "enabled": e.enabled,
        "allow_guest_calls": e.allow_guest_calls,
        "allowed_caller_ids": e.allowed_caller_ids,
        "source": "console",
    })
}

fn file_user_view(u: &FileUser) -> Value {
    json!({
        "id": format!("{FILE_ID}{}", u.username),
        "username": u.username,
        "display_name": u.display_name,
        "email": null,
        "enabled": true,
        "allow_guest_calls": false,
        "allowed_caller_ids": u.allowed_caller_ids,
        "source": "file",
    })
}

fn object_of<T: serde::Serialize>(v: &T) -> Map<String, Value> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn trunk_view(id: &str, name: &str, spec: &TrunkSpec, source: &str) -> Value {
    let mut m = object_of(spec);
    m.remove("password");
    m.insert("id".into(), id.into());
    m.insert("name".into(), name.into());
    m.insert("source".into(), source.into());
    Value::Object(m)
}

fn route_view(id: &str, spec: &RouteSpec, source: &str) -> Value {
    let mut m = object_of(spec);
    m.insert("id".into(), id.into());
    m.insert("source".into(), source.into());
    Value::Object(m)
}

// ---- extensions ----

type Reply = Result<Response, Refusal>;

async fn list_extensions(
    State(state): State<Arc<HttpState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Reply {
    let lq = list_query(query)?;
    let st = state.clone();
    let stored = blocking(move || st.resources.store.extensions().map_err(internal)).await?;
    let mut items: Vec<(String, Value)> = stored
        .iter()
        .map(|e| (e.username.clone(), extension_view(e)))
        .collect();
    items.extend(
        state
            .resources
            .file_users
            .iter()
            .map(|u| (u.username.clone(), file_user_view(u))),
    );
    items.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(page_of(items.into_iter().map(|(_, v)| v).collect(), &lq))
}

/// 409 when the config file has a user `username`.
fn file_user_clash(state: &HttpState, username: &str) -> Result<(), Refusal> {
    match state.resources.file_user(username) {
        Some(_) => Err(conflict(
            Some("username"),
            &format!("username: {username:?} is a user of the config file"),
        )),
        None => Ok(()),
    }
}

fn taken(username: &str) -> Refusal {
    conflict(
        Some("username"),
        &format!("username: extension {username:?} exists"),
    )
}

/// The stored form of a body (id and, on PUT, password filled in by the store).
fn extension_of(input: ExtensionInput) -> (Extension, Option<String>) {
    let ext = Extension {
        id: String::new(),
        username: input.username,
        password: String::new(),
        ha1: Default::default(),
        display_name: input.display_name,
        email: input.email,
        enabled: input.enabled,
        allow_guest_calls: input.allow_guest_calls,
        allowed_caller_ids: input.allowed_caller_ids,
    };
    (ext, input.password)
}

async fn create_extension(State(state): State<Arc<HttpState>>, body: Bytes) -> Reply {
    let input = extension_input(&object(&body)?)?;
    file_user_clash(&state, &input.username)?;
    let (ext, password) = extension_of(input);
    let Some(password) = password else {
        return Err(invalid("password", "required"));
    };
    let ext = Extension { password, ..ext };
    let username = ext.username.clone();
    let st = state.clone();
    let added = blocking(move || st.resources.store.add_extension(ext).map_err(internal)).await?;
    let e = added.ok_or_else(|| taken(&username))?;
    tracing::info!(id = %e.id, username = %e.username, "extension created");
    Ok((StatusCode::CREATED, Json(extension_view(&e))).into_response())
}

async fn get_extension(State(state): State<Arc<HttpState>>, Path(id): Path<String>) -> Reply {
    if let Some(name) = id.strip_prefix(FILE_ID) {
        let u = state
            .resources
            .file_user(name)
            .ok_or_else(|| not_found("extension", &id))?;
        return Ok(Json(file_user_view(u)).into_response());
    }
    let st = state.clone();
    let wanted = id.clone();
    let found = blocking(move || st.resources.store.extension(&wanted).map_err(internal)).await?;
    let e = found.ok_or_else(|| not_found("extension", &id))?;
    Ok(Json(extension_view(&e)).into_response())
}

/// For a `file:` id: 409 when the config has that user, else 404.
fn refuse_file_extension(state: &HttpState, id: &str) -> Result<(), Refusal> {
    match id.strip_prefix(FILE_ID) {
        None => Ok(()),
        Some(name) if state.resources.file_user(name).is_some() => {
            Err(read_only("extension", id, "the config file"))
        }
        Some(_) => Err(not_found("extension", id)),
    }
}

async fn replace_extension(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    refuse_file_extension(&state, &id)?;
    let input = extension_input(&object(&body)?)?;
    file_user_clash(&state, &input.username)?;
    let (ext, password) = extension_of(input);
    let username = ext.username.clone();
    let st = state.clone();
    let wanted = id.clone();
    let replaced = blocking(move || {
        st.resources
            .store
            .replace_extension(&wanted, ext, password)
            .map_err(internal)
    })
    .await?;
    match replaced {
        Replaced::Done(e) => {
            tracing::info!(id = %e.id, username = %e.username, "extension replaced");
            Ok(Json(extension_view(&e)).into_response())
        }
        Replaced::Missing => Err(not_found("extension", &id)),
        Replaced::Taken => Err(taken(&username)),
        Replaced::NeedsPassword => Err(invalid(
            "password",
            "required when the username changes (the stored digest secrets hash the old name)",
        )),
    }
}

async fn delete_extension(State(state): State<Arc<HttpState>>, Path(id): Path<String>) -> Reply {
    refuse_file_extension(&state, &id)?;
    let st = state.clone();
    let wanted = id.clone();
    let removed = blocking(move || {
        st.resources
            .store
            .remove_extension(&wanted)
            .map_err(internal)
    })
    .await?;
    if !removed {
        return Err(not_found("extension", &id));
    }
    tracing::info!(%id, "extension deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- trunks and routes ----

/// A change to the console's trunks or routes.
enum Op {
    CreateTrunk(String, TrunkSpec),
    /// id, name, spec, whether the body gave a password.
    ReplaceTrunk(String, String, TrunkSpec, bool),
    DeleteTrunk(String),
    CreateRoute(RouteSpec),
    ReplaceRoute(String, RouteSpec),
    DeleteRoute(String),
}

/// What to write once the change validated.
enum Write {
    PutTrunk(Option<String>, String, TrunkSpec),
    DeleteTrunk(String),
    PutRoute(Option<String>, RouteSpec),
    DeleteRoute(String),
}

fn kind_name(subject: Subject) -> &'static str {
    match subject {
        Subject::Trunk => "trunk",
        Subject::Route => "route",
    }
}

/// 409 when a file entry or another console entry (not `own_id`) has `name`.
fn name_clash(
    subject: Subject,
    name: &str,
    own_id: Option<&str>,
    files: &[RoutingSource],
    trunks: &[StoredTrunk],
    routes: &[StoredRoute],
) -> Result<(), Refusal> {
    let what = kind_name(subject);
    let in_file = files.iter().find(|src| match subject {
        Subject::Trunk => src.trunks.iter().any(|(n, _)| n == name),
        Subject::Route => src.routes.iter().any(|r| r.name == name),
    });
    if let Some(src) = in_file {
        return Err(conflict(
            Some("name"),
            &format!("name: {what} {name:?} is defined in {}", src.file.display()),
        ));
    }
    let other = match subject {
        Subject::Trunk => trunks
            .iter()
            .find(|t| t.name == name && Some(t.id.as_str()) != own_id)
            .map(|t| t.id.clone()),
        Subject::Route => routes
            .iter()
            .find(|r| r.spec.name == name && Some(r.id.as_str()) != own_id)
            .map(|r| r.id.clone()),
    };
    match other {
        Some(id) => Err(conflict(
            Some("name"),
            &format!("name: {what} {name:?} exists (id {id})"),
        )),
        None => Ok(()),
    }
}

/// The body key a validator field (`dest[0]`, `match."to.user"`, `` for a
/// trunk's name) belongs to.
fn top_field(field: &str) -> &str {
    match field.split(['.', '[']).next() {
        Some("") | None => "name",
        Some(f) => f,
    }
}

/// Why `console` (with the changed entry at `changed`) was refused: 422
/// naming the field when the changed entry is at fault, 409 when the change
/// breaks another entry (a route still using a deleted trunk, ...).
fn refusal(
    files: &[RoutingSource],
    console: &RoutingSource,
    changed: Option<(Subject, usize)>,
    cause: &ConfigError,
) -> Refusal {
    // Flattened as build_routing does, to find the entry at fault.
    let mut all = files.to_vec();
    all.push(console.clone());
    let at_console = all.len() - 1;
    let (mut trunks, mut trunk_at, mut routes, mut route_at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (s, src) in all.iter().enumerate() {
        for (j, t) in src.trunks.iter().enumerate() {
            trunks.push(t.clone());
            trunk_at.push((s, j));
        }
        for (j, r) in src.routes.iter().enumerate() {
            routes.push(r.clone());
            route_at.push((s, j));
        }
    }
    let e = match RoutingSnapshot::build(&trunks, &routes) {
        Err(e) => e,
        Ok(_) => return error(StatusCode::UNPROCESSABLE_ENTITY, None, &cause.to_string()),
    };
    let at = match e.subject {
        Subject::Trunk => trunk_at.get(e.index),
        Subject::Route => route_at.get(e.index),
    };
    let ours = matches!((changed, at), (Some((subject, pos)), Some(&(s, j)))
        if subject == e.subject && s == at_console && j == pos);
    if ours {
        let field = top_field(&e.field);
        let status = if e.first.is_some() {
            StatusCode::CONFLICT
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let detail = if e.field.is_empty() {
            "name".to_string()
        } else {
            e.field.clone()
        };
        error(status, Some(field), &format!("{detail}: {}", e.reason))
    } else {
        conflict(None, &format!("the change would break another entry: {e}"))
    }
}

/// Applies `op` under the `Reloader` lock: validates the console entries
/// with it against the file entries, stores it, and sends the new snapshot
/// to every shard. The stored entry's view (None after a delete).
fn apply(state: &HttpState, op: Op) -> Result<Option<Value>, Refusal> {
    let mut reloader = state.ami.reloader.lock().unwrap_or_else(|p| p.into_inner());
    let store = &state.resources.store;
    let mut trunks = store.trunks().map_err(internal)?;
    let mut routes = store.routes().map_err(internal)?;
    let files = reloader.file_sources();
    let trunk_pos = |trunks: &[StoredTrunk], id: &str| {
        trunks
            .iter()
            .position(|t| t.id == id)
            .ok_or_else(|| not_found("trunk", id))
    };
    let route_pos = |routes: &[StoredRoute], id: &str| {
        routes
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(|| not_found("route", id))
    };
    let (changed, write) = match op {
        Op::CreateTrunk(name, spec) => {
            name_clash(Subject::Trunk, &name, None, &files, &trunks, &routes)?;
            trunks.push(StoredTrunk {
                id: String::new(),
                name: name.clone(),
                spec: spec.clone(),
            });
            (
                Some((Subject::Trunk, trunks.len() - 1)),
                Write::PutTrunk(None, name, spec),
            )
        }
        Op::ReplaceTrunk(id, name, mut spec, password_given) => {
            let pos = trunk_pos(&trunks, &id)?;
            name_clash(Subject::Trunk, &name, Some(&id), &files, &trunks, &routes)?;
            if !password_given {
                spec.password = trunks[pos].spec.password.clone();
            }
            trunks[pos] = StoredTrunk {
                id: id.clone(),
                name: name.clone(),
                spec: spec.clone(),
            };
            (
                Some((Subject::Trunk, pos)),
                Write::PutTrunk(Some(id), name, spec),
            )
        }
        Op::DeleteTrunk(id) => {
            let pos = trunk_pos(&trunks, &id)?;
            trunks.remove(pos);
            (None, Write::DeleteTrunk(id))
        }
        Op::CreateRoute(spec) => {
            name_clash(Subject::Route, &spec.name, None, &files, &trunks, &routes)?;
            routes.push(StoredRoute {
                id: String::new(),
                spec: spec.clone(),
            });
            (
                Some((Subject::Route, routes.len() - 1)),
                Write::PutRoute(None, spec),
            )
        }
        Op::ReplaceRoute(id, spec) => {
            let pos = route_pos(&routes, &id)?;
            name_clash(
                Subject::Route,
                &spec.name,
                Some(&id),
                &files,
                &trunks,
                &routes,
            )?;
            routes[pos] = StoredRoute {
                id: id.clone(),
                spec: spec.clone(),
            };
            (Some((Subject::Route, pos)), Write::PutRoute(Some(id), spec))
        }
        Op::DeleteRoute(id) => {
            let pos = route_pos(&routes, &id)?;
            routes.remove(pos);
            (None, Write::DeleteRoute(id))
        }
    };
    let console = console_source(&trunks, &routes);
    let snapshot = reloader
        .build_with_console(&console)
        .map_err(|e| refusal(&files, &console, changed, &e))?;
    let view = match write {
        Write::PutTrunk(id, name, spec) => {
            let t = store
                .put_trunk(id.as_deref(), name, spec)
                .map_err(internal)?;
            tracing::info!(id = %t.id, name = %t.name, "console trunk stored");
            Some(trunk_view(&t.id, &t.name, &t.spec, "console"))
        }
        Write::PutRoute(id, spec) => {
            let r = store.put_route(id.as_deref(), spec).map_err(internal)?;
            tracing::info!(id = %r.id, name = %r.spec.name, "console route stored");
            Some(route_view(&r.id, &r.spec, "console"))
        }
        Write::DeleteTrunk(id) => {
            store.delete_trunk(&id).map_err(internal)?;
            tracing::info!(%id, "console trunk deleted");
            None
        }
        Write::DeleteRoute(id) => {
            store.delete_route(&id).map_err(internal)?;
            tracing::info!(%id, "console route deleted");
            None
        }
    };
    let msg = reloader.install_console(console, snapshot);
    // Under the lock, so shards get snapshots in the order they were built.
    for inbox in state.inboxes.iter() {
        inbox.push(msg.make());
    }
    Ok(view)
}

async fn run_op(state: Arc<HttpState>, op: Op, created: bool) -> Reply {
    let view = blocking(move || apply(&state, op)).await?;
    Ok(match view {
        Some(v) if created => (StatusCode::CREATED, Json(v)).into_response(),
        Some(v) => Json(v).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Every trunk (file ones first as found, then console ones), as views.
fn trunk_views(state: &HttpState) -> Result<Vec<(String, Value)>, Refusal> {
    let files = state
        .ami
        .reloader
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .file_sources();
    let mut out = Vec::new();
    for src in &files {
        for (name, spec) in &src.trunks {
            let id = format!("{FILE_ID}{name}");
            out.push((id.clone(), trunk_view(&id, name, spec, "file")));
        }
    }
    for t in state.resources.store.trunks().map_err(internal)? {
        out.push((t.id.clone(), trunk_view(&t.id, &t.name, &t.spec, "console")));
    }
    Ok(out)
}

/// Every route in the order they are tried (priority, then files, then
/// console entries by creation), as views.
fn route_views(state: &HttpState) -> Result<Vec<(String, Value)>, Refusal> {
    let files = state
        .ami
        .reloader
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .file_sources();
    let mut out = Vec::new();
    for src in &files {
        for spec in &src.routes {
            let id = format!("{FILE_ID}{}", spec.name);
            out.push((spec.priority, id.clone(), route_view(&id, spec, "file")));
        }
    }
    for r in state.resources.store.routes().map_err(internal)? {
        out.push((
            r.spec.priority,
            r.id.clone(),
            route_view(&r.id, &r.spec, "console"),
        ));
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.0));
    Ok(out.into_iter().map(|(_, id, v)| (id, v)).collect())
}

type Views = fn(&HttpState) -> Result<Vec<(String, Value)>, Refusal>;

async fn list_with(
    state: Arc<HttpState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    views: Views,
    by_name: bool,
) -> Reply {
    let lq = list_query(query)?;
    let mut items = blocking(move || views(&state)).await?;
    if by_name {
        let name = |v: &Value| v["name"].as_str().unwrap_or_default().to_string();
        items.sort_by_key(|(_, v)| name(v));
    }
    Ok(page_of(items.into_iter().map(|(_, v)| v).collect(), &lq))
}

async fn one_with(state: Arc<HttpState>, id: String, what: &'static str, views: Views) -> Reply {
    let items = blocking(move || views(&state)).await?;
    match items.into_iter().find(|(i, _)| *i == id) {
        Some((_, v)) => Ok(Json(v).into_response()),
        None => Err(not_found(what, &id)),
    }
}

/// For a `file:` id: 409 when that file entry exists, else 404.
async fn refuse_file_entry(
    state: &Arc<HttpState>,
    id: &str,
    subject: Subject,
) -> Result<(), Refusal> {
    let Some(name) = id.strip_prefix(FILE_ID).map(str::to_string) else {
        return Ok(());
    };
    let st = state.clone();
    let found = blocking(move || {
        let files = st
            .ami
            .reloader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .file_sources();
        Ok(files.into_iter().find_map(|src| {
            let has = match subject {
                Subject::Trunk => src.trunks.iter().any(|(n, _)| *n == name),
                Subject::Route => src.routes.iter().any(|r| r.name == name),
            };
            has.then(|| src.file.display().to_string())
        }))
    })
    .await?;
    let what = kind_name(subject);
    Err(match found {
        Some(file) => read_only(what, id, &file),
        None => not_found(what, id),
    })
}

async fn list_trunks(
    State(state): State<Arc<HttpState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Reply {
    list_with(state, query, trunk_views, true).await
}

async fn get_trunk(State(state): State<Arc<HttpState>>, Path(id): Path<String>) -> Reply {
    one_with(state, id, "trunk", trunk_views).await
}

async fn create_trunk(State(state): State<Arc<HttpState>>, body: Bytes) -> Reply {
    let (name, spec, _) = trunk_input(&object(&body)?)?;
    run_op(state, Op::CreateTrunk(name, spec), true).await
}

async fn replace_trunk(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    refuse_file_entry(&state, &id, Subject::Trunk).await?;
    let (name, spec, password_given) = trunk_input(&object(&body)?)?;
    let op = Op::ReplaceTrunk(id, name, spec, password_given);
    run_op(state, op, false).await
}

async fn delete_trunk(State(state): State<Arc<HttpState>>, Path(id): Path<String>) -> Reply {
    refuse_file_entry(&state, &id, Subject::Trunk).await?;
    run_op(state, Op::DeleteTrunk(id), false).await
}

async fn list_routes(
    State(state): State<Arc<HttpState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Reply {
    list_with(state, query, route_views, false).await
}

async fn get_route(State(state): State<Arc<HttpState>>, Path(id): Path<String>) -> Reply {
    one_with(state, id, "route", route_views).await
}

async fn create_route(State(state): State<Arc<HttpState>>, body: Bytes) -> Reply {
    let spec = route_input(&object(&body)?)?;
    run_op(state, Op::CreateRoute(spec), true).await
}

async fn replace_route(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    refuse_file_entry(&state, &id, Subject::Route).await?;
    let spec = route_input(&object(&body)?)?;
    run_op(state, Op::ReplaceRoute(id, spec), false).await
}

async fn delete_route(State(state): State<Arc<HttpState>>, Path(id): Path<String>) -> Reply {
    refuse_file_entry(&state, &id, Subject::Route).await?;
    run_op(state, Op::DeleteRoute(id), false).await
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn refused<T: std::fmt::Debug>(r: Result<T, Refusal>) -> (u16, String) {
        let (status, body) = parts(r.unwrap_err());
        assert_eq!(
            body["error"],
            super::super::http::error_code(StatusCode::from_u16(status).unwrap())
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

    fn pairs(q: &[(&str, &str)]) -> Result<ListQuery, Refusal> {
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
                page: 2,
                per_page: 1
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
            page: 2,
            per_page: 1,
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
            page: 1,
            per_page: 50,
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
        let console =
            RoutingSource::managed(CONSOLE_LABEL, Vec::new(), vec![route("uses", &["gone"])]);
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
                super::super::resources_store::RealmHa1 {
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
}
