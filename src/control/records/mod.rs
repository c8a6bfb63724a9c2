//! The call-records REST API (API.md section 4): list and search the stored
//! CDRs (filters from the query string on GET, from a JSON body on POST),
//! one CDR by its callId, and the call's recording as `audio/wav` with HTTP
//! Range support, streamed from the file in bounded chunks.
//!
//! This module owns the state, the routes and the list, search, one-record
//! and SIP-flow handlers; the filters and the store scan are in
//! `filter.rs`, the recording download in `recording.rs`.

mod filter;
mod recording;

pub use filter::{run, Filter, Invalid};
pub use recording::{plan, recording, Span};

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use shards::cdr::Cdr;
use shards::store::Store;

use super::api_error::ApiError;
use super::http::HttpState;

/// What the call-records handlers read.
pub struct RecordsState {
    pub store: Store,
    /// `data_dir` (absolute): recording paths in CDRs are relative to it.
    pub data_dir: PathBuf,
}

/// The routes of this module, merged into the control core's router.
pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/console/call-records", get(list).post(search))
        .route("/console/call-records/search", post(search))
        .route("/console/call-records/{id}", get(one))
        .route("/console/call-records/{id}/recording", get(recording))
        .route("/console/call-records/{id}/sip-flow", get(sip_flow))
}

fn internal(what: impl std::fmt::Display) -> ApiError {
    tracing::error!("call records: {what}");
    ApiError::internal(what.to_string())
}

/// A handler's answer: the reply, or the error reply.
type Reply = Result<Response, ApiError>;

async fn answer_list(state: &HttpState, filter: Filter) -> Reply {
    let store = state.records.store.clone();
    let f = filter.clone();
    match tokio::task::spawn_blocking(move || run(&store, &f)).await {
        Ok(Ok((items, total))) => Ok(Json(filter.paging.reply(items, total)).into_response()),
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(internal(format!("store scan failed: {e}"))),
    }
}

/// `GET /console/call-records?caller=&callee=&direction=&status=&since=&until=&q=&page=&per_page=`.
pub async fn list(
    State(state): State<Arc<HttpState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Reply {
    let pairs = match query {
        Ok(Query(p)) => p,
        Err(e) => return Err(ApiError::bad_request(e.body_text())),
    };
    answer_list(&state, Filter::from_pairs(&pairs)?).await
}

/// `POST /console/call-records` (and `/search`): the same filters as a JSON
/// object. An empty body is no filter.
pub async fn search(State(state): State<Arc<HttpState>>, body: Bytes) -> Reply {
    let map = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(ApiError::unprocessable(
                    "the body must be a JSON object of filters",
                ))
            }
            Err(e) => return Err(ApiError::bad_request(format!("body is not JSON: {e}"))),
        }
    };
    answer_list(&state, Filter::from_map(&map)?).await
}

/// The stored CDR of call `id` (404 without one).
async fn find(state: &HttpState, id: String) -> Result<Cdr, ApiError> {
    let store = state.records.store.clone();
    let shown = id.clone();
    match tokio::task::spawn_blocking(move || store.cdr(&id)).await {
        Ok(Ok(Some(cdr))) => Ok(cdr),
        Ok(Ok(None)) => Err(ApiError::not_found(format!("no call record {shown}"))),
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(internal(format!("store read failed: {e}"))),
    }
}

/// `GET /console/call-records/{id}` (`id` = callId, URL-decoded), with
/// `push: {state, attempts, last_error}` when the CDR is pushed (API.md 2.4).
pub async fn one(State(state): State<Arc<HttpState>>, Path(id): Path<String>) -> Reply {
    let views = state.webhooks.clone();
    let call_id = id.clone();
    let cdr = find(&state, id).await?;
    let push = tokio::task::spawn_blocking(move || views.push_state(&call_id))
        .await
        .ok()
        .flatten();
    let mut body = serde_json::to_value(&cdr).map_err(internal)?;
    if let (Some(push), Some(map)) = (push, body.as_object_mut()) {
        map.insert("push".into(), json!(push));
    }
    Ok(Json(body).into_response())
}

/// `GET /console/call-records/{id}/sip-flow`: every SIP message of both
/// legs, in time order, as the owner shard captured them (`messages` of
/// {ts, direction, src, dst, leg, method or status, summary, raw};
/// `dropped` counts messages past the per-call cap).
pub async fn sip_flow(State(state): State<Arc<HttpState>>, Path(id): Path<String>) -> Reply {
    let cdr = find(&state, id).await?;
    let store = state.records.store.clone();
    let call_id = cdr.call_id.clone();
    match tokio::task::spawn_blocking(move || store.flow(&call_id)).await {
        Ok(Ok(Some(raw))) => match shards::call::flow::to_json(&raw) {
            Some(mut v) => {
                v["callId"] = cdr.call_id.into();
                Ok(Json(v).into_response())
            }
            None => Err(internal("stored SIP flow unreadable")),
        },
        Ok(Ok(None)) => Err(ApiError::not_found(format!(
            "no SIP flow kept for {}",
            cdr.call_id
        ))),
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(internal(format!("store read failed: {e}"))),
    }
}
