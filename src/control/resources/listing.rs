//! Lists and views of the resource API: the list query (`q`, `page`,
//! `per_page`), the text search over the items, one page of a listing, and
//! the JSON view of each kind of entry (passwords never shown).

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use shards::routing::{RouteSpec, TrunkSpec};

use super::input::ECHOED;
use super::{FileUser, FILE_ID};
use crate::control::api_error::ApiError;
use crate::control::paging::{BadPerPage, Paging};
use crate::control::resources_store::Extension;

/// `?q=&page=&per_page=`, validated.
#[derive(Debug, PartialEq)]
pub(super) struct ListQuery {
    /// Lowercased; matched against the items' text values.
    pub(super) q: Option<String>,
    pub(super) paging: Paging,
}

pub(super) fn list_query(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<ListQuery, ApiError> {
    let pairs = match query {
        Ok(Query(p)) => p,
        Err(e) => return Err(ApiError::bad_request(e.body_text())),
    };
    let mut lq = ListQuery {
        q: None,
        paging: Paging::default(),
    };
    for (k, v) in pairs {
        let v = v.trim();
        match k.as_str() {
            "q" if !v.is_empty() => lq.q = Some(v.to_lowercase()),
            "page" if !v.is_empty() => {
                lq.paging.page =
                    v.parse().ok().filter(|p| *p >= 1).ok_or_else(|| {
                        ApiError::invalid("page", "must be a whole number from 1")
                    })?;
            }
            "per_page" if !v.is_empty() => {
                lq.paging.per_page = v
                    .parse()
                    .map_err(|_| BadPerPage)
                    .and_then(Paging::per_page)
                    .map_err(|e| ApiError::invalid("per_page", e))?;
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
pub(super) fn page_of(items: Vec<Value>, lq: &ListQuery) -> Response {
    let passing: Vec<Value> = match &lq.q {
        Some(q) => items.into_iter().filter(|v| hits(v, q, true)).collect(),
        None => items,
    };
    let total = passing.len() as u64;
    Json(lq.paging.reply(lq.paging.window(passing), total)).into_response()
}

pub(super) fn extension_view(e: &Extension) -> Value {
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

pub(super) fn file_user_view(u: &FileUser) -> Value {
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

pub(super) fn trunk_view(id: &str, name: &str, spec: &TrunkSpec, source: &str) -> Value {
    let mut m = object_of(spec);
    m.remove("password");
    m.insert("id".into(), id.into());
    m.insert("name".into(), name.into());
    m.insert("source".into(), source.into());
    Value::Object(m)
}

pub(super) fn route_view(id: &str, spec: &RouteSpec, source: &str) -> Value {
    let mut m = object_of(spec);
    m.insert("id".into(), id.into());
    m.insert("source".into(), source.into());
    Value::Object(m)
}
