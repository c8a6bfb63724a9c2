//! Active call control over REST (API.md section 4): a command for a call
//! goes to the shard that owns it (hash of the caller's Call-ID) as a
//! `ShardMsg::CallCommand`; the reply comes after that shard ran it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use shards::call::CommandError;
use shards::runtime::inbox::CallCommand;
use shards::runtime::owner::owner_of;
use shards::runtime::ShardMsg;

use super::api_error::ApiError;
use super::http::HttpState;

/// How long a listing of the active calls is served from the cache.
const ACTIVE_CACHE: Duration = Duration::from_millis(100);

/// How long a shard may take to answer a command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// A body that is not a command: the field at fault (None: not JSON).
struct BadBody {
    field: Option<&'static str>,
    message: String,
}

impl From<BadBody> for ApiError {
    fn from(bad: BadBody) -> ApiError {
        ApiError::bad_request(bad.message).with_field_opt(bad.field)
    }
}

/// A shard's refusal of a command; `invalid` is the status of a bad
/// request (its field is the message's first word before a colon).
fn refused(e: CommandError, invalid: StatusCode, not_found: &str) -> ApiError {
    match e {
        CommandError::BadRequest(m) => {
            let field = m.split(':').next().filter(|f| !f.contains(' '));
            ApiError::new(invalid, m.as_str()).with_field_opt(field)
        }
        CommandError::Conflict(m) => ApiError::conflict(m),
        CommandError::Unavailable(m) => ApiError::unavailable(m),
        CommandError::NotFound => ApiError::not_found(not_found),
    }
}

/// The command a body asks for.
fn parse_command(body: &[u8]) -> Result<CallCommand, BadBody> {
    let v: Value = serde_json::from_slice(body).map_err(|e| BadBody {
        field: None,
        message: format!("body is not JSON: {e}"),
    })?;
    let action = v.get("action").and_then(Value::as_str).ok_or(BadBody {
        field: Some("action"),
        message: "action: a string is required".into(),
    })?;
    let track = || {
        v.get("track_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(BadBody {
                field: Some("track_id"),
                message: "track_id: a string is required (audio-0 caller, audio-1 callee)".into(),
            })
    };
    let text = |field: &'static str| -> Result<Option<String>, BadBody> {
        match v.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(BadBody {
                field: Some(field),
                message: format!("{field}: must be a string"),
            }),
        }
    };
    match action {
        "accept" => Ok(CallCommand::Accept { sdp: text("sdp")? }),
        "transfer" => match text("target")? {
            Some(target) if !target.trim().is_empty() => Ok(CallCommand::Transfer { target }),
            _ => Err(BadBody {
                field: Some("target"),
                message: "target: a number or sip: URI is required".into(),
            }),
        },
        "hangup" => Ok(CallCommand::Hangup {
            reason: match v.get("reason") {
                None | Some(Value::Null) => None,
                Some(Value::String(r)) => Some(r.clone()),
                Some(_) => {
                    return Err(BadBody {
                        field: Some("reason"),
                        message: "reason: must be a string".into(),
                    })
                }
            },
        }),
        "mute" => Ok(CallCommand::Mute { track: track()? }),
        "unmute" => Ok(CallCommand::Unmute { track: track()? }),
        other => Err(BadBody {
            field: Some("action"),
            message: format!(
                "action: '{other}' is not one of accept, hangup, mute, transfer, unmute"
            ),
        }),
    }
}

/// `POST /console/calls` `{"from": "<extension>", "to": "<number or sip: URI>"}`:
/// click-to-dial. Rings the extension; when it answers, calls `to` through
/// the normal routing and bridges them. 201 `{"callId", "state": "ringing"}`
/// once the first INVITE is out; the call then shows in the active calls.
pub async fn dial(
    State(state): State<Arc<HttpState>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("body is not JSON: {e}")))?;
    let field = |name: &'static str| -> Option<String> {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (from, to) = match (field("from"), field("to")) {
        (Some(f), Some(t)) => (f, t),
        (f, _) => {
            let name = if f.is_none() { "from" } else { "to" };
            return Err(
                ApiError::unprocessable(format!("{name}: a non-empty string is required"))
                    .with_field(name),
            );
        }
    };
    let shards = state.inboxes.len().max(1);
    let Some(inbox) = state
        .inboxes
        .get(owner_of(from.as_bytes(), shards))
        .cloned()
    else {
        return Err(ApiError::unavailable("no shards running"));
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    if !inbox.push(ShardMsg::Originate {
        from,
        to,
        reply: tx,
    }) {
        return Err(ApiError::unavailable("the shard's inbox is full"));
    }
    let answer = tokio::task::spawn_blocking(move || rx.recv_timeout(COMMAND_TIMEOUT)).await;
    match answer {
        Ok(Ok(Ok(call_id))) => {
            if let Ok(mut c) = state.active_cache.lock() {
                *c = None;
            }
            Ok((
                StatusCode::CREATED,
                Json(json!({"callId": call_id, "state": "ringing"})),
            )
                .into_response())
        }
        Ok(Ok(Err(e))) => Err(refused(e, StatusCode::UNPROCESSABLE_ENTITY, "not found")),
        _ => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "the shard did not answer in 2 s",
        )),
    }
}

/// `GET /console/calls/active`: the live calls of every shard.
pub async fn active(State(state): State<Arc<HttpState>>) -> Result<Response, ApiError> {
    // Requests within ACTIVE_CACHE of each other share one round of shard
    // queries and one serialization: a dashboard polling hard must not cost
    // the shards (or the control core) a JSON dump of every call per request.
    let cached = state.active_cache.lock().ok().and_then(|c| {
        c.as_ref()
            .filter(|(at, _)| at.elapsed() < ACTIVE_CACHE)
            .map(|(_, body)| body.clone())
    });
    if let Some(body) = cached {
        return Ok(json_body(body));
    }
    let gathered = super::ami::gather_with(&state, |reply| ShardMsg::ListCalls { reply }).await;
    match gathered {
        Some(mut calls) => {
            calls.sort_by(|a, b| (a.start_ms, &a.call_id).cmp(&(b.start_ms, &b.call_id)));
            let items: Vec<Value> = calls.iter().map(super::views::call_json).collect();
            let body = axum::body::Bytes::from(
                serde_json::to_vec(&json!({ "items": items })).unwrap_or_default(),
            );
            if let Ok(mut c) = state.active_cache.lock() {
                *c = Some((std::time::Instant::now(), body.clone()));
            }
            Ok(json_body(body))
        }
        None => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "a shard did not answer in 2 s",
        )),
    }
}

fn json_body(body: axum::body::Bytes) -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// `POST /console/calls/active/{call_id}/commands`.
pub async fn command(
    State(state): State<Arc<HttpState>>,
    Path(call_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let command = parse_command(&body)?;
    let shards = state.inboxes.len();
    let Some(inbox) = state
        .inboxes
        .get(owner_of(call_id.trim().as_bytes(), shards.max(1)))
        .cloned()
    else {
        return Err(ApiError::unavailable("no shards running"));
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    if !inbox.push(ShardMsg::CallCommand {
        call_id: call_id.clone(),
        command,
        reply: tx,
    }) {
        return Err(ApiError::unavailable("the owner shard's inbox is full"));
    }
    let answer = tokio::task::spawn_blocking(move || rx.recv_timeout(COMMAND_TIMEOUT)).await;
    match answer {
        Ok(Ok(Ok(()))) => {
            // The call changed: the next listing must show it.
            if let Ok(mut c) = state.active_cache.lock() {
                *c = None;
            }
            Ok((StatusCode::OK, Json(json!({"status": "ok"}))).into_response())
        }
        Ok(Ok(Err(e))) => Err(refused(
            e,
            StatusCode::BAD_REQUEST,
            &format!("no active call {call_id}"),
        )),
        _ => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "the owner shard did not answer in 2 s",
        )),
    }
}
