//! The trunk and route handlers of the resource API (`/console/sip-trunk`,
//! `/console/routing`): a change is validated with the file entries under
//! the `Reloader` lock, stored, and the new routing snapshot sent to every
//! shard; a refused change stores nothing. File entries are listed beside
//! the console ones, read-only.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::Value;
use shards::routing::{RouteSpec, RoutingSnapshot, Subject, TrunkSpec};

use super::input::{object, route_input, trunk_input};
use super::listing::{list_query, page_of, route_view, trunk_view};
use super::{blocking, console_source, internal, not_found, read_only, Reply, FILE_ID};
use crate::config::routes_files::RoutingSource;
use crate::config::ConfigError;
use crate::control::api_error::ApiError;
use crate::control::http::HttpState;
use crate::control::resources_store::{StoredRoute, StoredTrunk};
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

pub(super) fn kind_name(subject: Subject) -> &'static str {
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
) -> Result<(), ApiError> {
    let what = kind_name(subject);
    let in_file = files.iter().find(|src| match subject {
        Subject::Trunk => src.trunks.iter().any(|(n, _)| n == name),
        Subject::Route => src.routes.iter().any(|r| r.name == name),
    });
    if let Some(src) = in_file {
        return Err(ApiError::conflict(format!(
            "name: {what} {name:?} is defined in {}",
            src.file.display()
        ))
        .with_field("name"));
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
        Some(id) => Err(
            ApiError::conflict(format!("name: {what} {name:?} exists (id {id})"))
                .with_field("name"),
        ),
        None => Ok(()),
    }
}

/// The body key a validator field (`dest[0]`, `match."to.user"`, `` for a
/// trunk's name) belongs to.
pub(super) fn top_field(field: &str) -> &str {
    match field.split(['.', '[']).next() {
        Some("") | None => "name",
        Some(f) => f,
    }
}

/// Why `console` (with the changed entry at `changed`) was refused: 422
/// naming the field when the changed entry is at fault, 409 when the change
/// breaks another entry (a route still using a deleted trunk, ...).
pub(super) fn refusal(
    files: &[RoutingSource],
    console: &RoutingSource,
    changed: Option<(Subject, usize)>,
    cause: &ConfigError,
) -> ApiError {
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
    let Err(e) = RoutingSnapshot::build(&trunks, &routes) else {
        return ApiError::unprocessable(cause.to_string());
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
        ApiError::new(status, format!("{detail}: {}", e.reason)).with_field(field)
    } else {
        ApiError::conflict(format!("the change would break another entry: {e}"))
    }
}

/// Applies `op` under the `Reloader` lock: validates the console entries
/// with it against the file entries, stores it, and sends the new snapshot
/// to every shard. The stored entry's view (None after a delete).
fn apply(state: &HttpState, op: Op) -> Result<Option<Value>, ApiError> {
    let mut reloader = state
        .ami
        .reloader
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
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
    let st = state.clone();
    let view = blocking(move || apply(&st, op)).await?;
    crate::control::ami::in_force(&state).await;
    Ok(match view {
        Some(v) if created => (StatusCode::CREATED, Json(v)).into_response(),
        Some(v) => Json(v).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Every trunk (file ones first as found, then console ones), as views.
fn trunk_views(state: &HttpState) -> Result<Vec<(String, Value)>, ApiError> {
    let files = state
        .ami
        .reloader
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
fn route_views(state: &HttpState) -> Result<Vec<(String, Value)>, ApiError> {
    let files = state
        .ami
        .reloader
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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

type Views = fn(&HttpState) -> Result<Vec<(String, Value)>, ApiError>;

pub(super) async fn list_with(
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
) -> Result<(), ApiError> {
    let Some(name) = id.strip_prefix(FILE_ID).map(str::to_string) else {
        return Ok(());
    };
    let st = state.clone();
    let found = blocking(move || {
        let files = st
            .ami
            .reloader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

pub(super) async fn list_trunks(
    State(state): State<Arc<HttpState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Reply {
    list_with(state, query, trunk_views, true).await
}

pub(super) async fn get_trunk(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Reply {
    one_with(state, id, "trunk", trunk_views).await
}

pub(super) async fn create_trunk(State(state): State<Arc<HttpState>>, body: Bytes) -> Reply {
    let (name, spec, _) = trunk_input(&object(&body)?)?;
    run_op(state, Op::CreateTrunk(name, spec), true).await
}

pub(super) async fn replace_trunk(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    refuse_file_entry(&state, &id, Subject::Trunk).await?;
    let (name, spec, password_given) = trunk_input(&object(&body)?)?;
    let op = Op::ReplaceTrunk(id, name, spec, password_given);
    run_op(state, op, false).await
}

pub(super) async fn delete_trunk(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Reply {
    refuse_file_entry(&state, &id, Subject::Trunk).await?;
    run_op(state, Op::DeleteTrunk(id), false).await
}

pub(super) async fn list_routes(
    State(state): State<Arc<HttpState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Reply {
    list_with(state, query, route_views, false).await
}

pub(super) async fn get_route(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Reply {
    one_with(state, id, "route", route_views).await
}

pub(super) async fn create_route(State(state): State<Arc<HttpState>>, body: Bytes) -> Reply {
    let spec = route_input(&object(&body)?)?;
    run_op(state, Op::CreateRoute(spec), true).await
}

pub(super) async fn replace_route(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    refuse_file_entry(&state, &id, Subject::Route).await?;
    let spec = route_input(&object(&body)?)?;
    run_op(state, Op::ReplaceRoute(id, spec), false).await
}

pub(super) async fn delete_route(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Reply {
    refuse_file_entry(&state, &id, Subject::Route).await?;
    run_op(state, Op::DeleteRoute(id), false).await
}
