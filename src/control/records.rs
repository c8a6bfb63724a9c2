//! The call-records REST API (API.md section 4): list and search the stored
//! CDRs (filters from the query string on GET, from a JSON body on POST),
//! one CDR by its callId, and the call's recording as `audio/wav` with HTTP
//! Range support, streamed from the file in bounded chunks.

use std::io::{Seek, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use shards::cdr::{time_fmt, Cdr};
use shards::store::Store;

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

pub const DEFAULT_PER_PAGE: u64 = 50;
pub const MAX_PER_PAGE: u64 = 500;
const DIRECTIONS: [&str; 3] = ["inbound", "outbound", "internal"];
const STATUSES: [&str; 5] = ["completed", "missed", "failed", "rejected", "spam"];
/// The most of a recording held in memory per response at a time.
const CHUNK: usize = 64 * 1024;

fn error(status: StatusCode, field: Option<&str>, message: &str) -> Response {
    let mut body = json!({ "error": super::http::error_code(status), "message": message });
    if let Some(f) = field {
        body["field"] = f.into();
    }
    (status, Json(body)).into_response()
}

fn internal(what: impl std::fmt::Display) -> Response {
    tracing::error!("call records: {what}");
    error(StatusCode::INTERNAL_SERVER_ERROR, None, &what.to_string())
}

/// A filter value that is not acceptable: 422 naming the field.
#[derive(Debug, PartialEq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: format!("{field}: {}", message.into()),
    }
}

/// A list or search request, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Lowercased substrings (matched ASCII case-insensitively).
    pub caller: Option<String>,
    pub callee: Option<String>,
    pub q: Option<String>,
    pub direction: Option<String>,
    pub status: Option<String>,
    /// Unix ms, inclusive.
    pub since_ms: u64,
    /// Unix ms, exclusive.
    pub until_ms: u64,
    /// 1-based.
    pub page: u64,
    pub per_page: u64,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            caller: None,
            callee: None,
            q: None,
            direction: None,
            status: None,
            since_ms: 0,
            until_ms: u64::MAX,
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

/// The filter keys; `pageSize` is another name for `per_page`.
const KEYS: [&str; 10] = [
    "caller",
    "callee",
    "direction",
    "status",
    "since",
    "until",
    "q",
    "page",
    "per_page",
    "pageSize",
];

impl Filter {
    /// From query-string pairs: a key given twice is 422; unknown keys are
    /// ignored; an empty value counts as absent.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Filter, Invalid> {
        let mut map = Map::new();
        for (k, v) in pairs {
            if let Some(key) = KEYS.iter().copied().find(|key| *key == k.as_str()) {
                if map.insert(k.clone(), Value::String(v.clone())).is_some() {
                    return Err(invalid(key, "given more than once"));
                }
            }
        }
        Filter::from_map(&map)
    }

    /// From a JSON object (the POST search body, or the query pairs as
    /// strings). Unknown keys are ignored; null or "" counts as absent.
    pub fn from_map(map: &Map<String, Value>) -> Result<Filter, Invalid> {
        let lower = |key| Ok::<_, Invalid>(text(map, key)?.map(|s| s.to_ascii_lowercase()));
        let mut f = Filter {
            caller: lower("caller")?,
            callee: lower("callee")?,
            q: lower("q")?,
            direction: one_of(map, "direction", &DIRECTIONS)?,
            status: one_of(map, "status", &STATUSES)?,
            ..Filter::default()
        };
        if let Some(ms) = time(map, "since")? {
            f.since_ms = ms;
        }
        if let Some(ms) = time(map, "until")? {
            if ms <= f.since_ms {
                return Err(invalid("until", "must be later than since"));
            }
            f.until_ms = ms;
        }
        if let Some(page) = number(map, "page")? {
            if page == 0 {
                return Err(invalid("page", "pages count from 1"));
            }
            f.page = page;
        }
        let per_page = match (number(map, "per_page")?, number(map, "pageSize")?) {
            (Some(_), Some(_)) => {
                return Err(invalid("per_page", "give per_page or pageSize, not both"))
            }
            (Some(n), None) => Some(("per_page", n)),
            (None, Some(n)) => Some(("pageSize", n)),
            (None, None) => None,
        };
        if let Some((field, n)) = per_page {
            if !(1..=MAX_PER_PAGE).contains(&n) {
                return Err(invalid(field, format!("must be 1 to {MAX_PER_PAGE}")));
            }
            f.per_page = n;
        }
        Ok(f)
    }

    /// Whether `cdr` passes every filter but the time window (the store
    /// scan applies that).
    pub fn matches(&self, cdr: &Cdr) -> bool {
        let has = |hay: &str, needle: &str| hay.to_ascii_lowercase().contains(needle);
        let has_opt =
            |hay: &Option<String>, needle: &str| hay.as_deref().is_some_and(|h| has(h, needle));
        if let Some(d) = &self.direction {
            if cdr.direction.as_str() != d {
                return false;
            }
        }
        if let Some(s) = &self.status {
            if cdr.status.as_str() != s {
                return false;
            }
        }
        if let Some(c) = &self.caller {
            if !has(&cdr.caller, c) && !has(&cdr.from_number, c) {
                return false;
            }
        }
        if let Some(c) = &self.callee {
            if !has(&cdr.callee, c) && !has(&cdr.to_number, c) {
                return false;
            }
        }
        if let Some(q) = &self.q {
            let hit = [
                &cdr.call_id,
                &cdr.caller,
                &cdr.callee,
                &cdr.from_number,
                &cdr.to_number,
            ]
            .iter()
            .any(|h| has(h, q))
                || has_opt(&cdr.route_id, q)
                || has_opt(&cdr.sip_trunk_id, q);
            if !hit {
                return false;
            }
        }
        true
    }
}

/// A present, non-empty value of `key` (string, or a number taken as text).
fn text(map: &Map<String, Value>, key: &'static str) -> Result<Option<String>, Invalid> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(invalid(key, "must be a string")),
    }
}

fn one_of(
    map: &Map<String, Value>,
    key: &'static str,
    allowed: &[&str],
) -> Result<Option<String>, Invalid> {
    let Some(v) = text(map, key)? else {
        return Ok(None);
    };
    let v = v.to_ascii_lowercase();
    if allowed.contains(&v.as_str()) {
        Ok(Some(v))
    } else {
        Err(invalid(
            key,
            format!("'{v}' is not one of {}", allowed.join(", ")),
        ))
    }
}

/// RFC 3339 text or unix seconds (a digit string or a JSON integer), as unix ms.
fn time(map: &Map<String, Value>, key: &'static str) -> Result<Option<u64>, Invalid> {
    let bad = || invalid(key, "must be an RFC 3339 time or unix seconds");
    match map.get(key) {
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|s| Some(s.saturating_mul(1000)))
            .ok_or_else(bad),
        _ => match text(map, key)? {
            None => Ok(None),
            // parse_time slices by byte offsets: it gets ASCII only.
            Some(t) if !t.is_ascii() => Err(bad()),
            Some(t) => time_fmt::parse_time(&t).map(Some).ok_or_else(bad),
        },
    }
}

/// A non-negative integer (a JSON integer or a digit string).
fn number(map: &Map<String, Value>, key: &'static str) -> Result<Option<u64>, Invalid> {
    let bad = || invalid(key, "must be a non-negative integer");
    match map.get(key) {
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
        _ => match text(map, key)? {
            None => Ok(None),
            Some(t) => t.trim().parse::<u64>().map(Some).map_err(|_| bad()),
        },
    }
}

/// One page of the CDRs that pass `f`, newest first, and how many pass.
pub fn run(store: &Store, f: &Filter) -> Result<(Vec<Cdr>, u64), shards::store::StoreError> {
    let skip = (f.page - 1).saturating_mul(f.per_page);
    let mut total = 0u64;
    let mut items = Vec::new();
    store.cdrs_newest_first(f.since_ms, f.until_ms, |cdr| {
        if f.matches(&cdr) {
            if total >= skip && (items.len() as u64) < f.per_page {
                items.push(cdr);
            }
            total += 1;
        }
        true
    })?;
    Ok((items, total))
}

async fn answer_list(state: &HttpState, filter: Filter) -> Response {
    let store = state.records.store.clone();
    let f = filter.clone();
    match tokio::task::spawn_blocking(move || run(&store, &f)).await {
        Ok(Ok((items, total))) => Json(json!({
            "items": items,
            "total": total,
            "page": filter.page,
            "per_page": filter.per_page,
        }))
        .into_response(),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(format!("store scan failed: {e}")),
    }
}

fn unprocessable(bad: Invalid) -> Response {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        Some(bad.field),
        &bad.message,
    )
}

/// `GET /console/call-records?caller=&callee=&direction=&status=&since=&until=&q=&page=&per_page=`.
pub async fn list(
    State(state): State<Arc<HttpState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let pairs = match query {
        Ok(Query(p)) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, None, &e.body_text()),
    };
    match Filter::from_pairs(&pairs) {
        Ok(f) => answer_list(&state, f).await,
        Err(bad) => unprocessable(bad),
    }
}

/// `POST /console/call-records` (and `/search`): the same filters as a JSON
/// object. An empty body is no filter.
pub async fn search(State(state): State<Arc<HttpState>>, body: Bytes) -> Response {
    let map = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    "the body must be a JSON object of filters",
                )
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    None,
                    &format!("body is not JSON: {e}"),
                )
            }
        }
    };
    match Filter::from_map(&map) {
        Ok(f) => answer_list(&state, f).await,
        Err(bad) => unprocessable(bad),
    }
}

async fn find(state: &HttpState, id: String) -> Result<Cdr, Response> {
    let store = state.records.store.clone();
    let shown = id.clone();
    match tokio::task::spawn_blocking(move || store.cdr(&id)).await {
        Ok(Ok(Some(cdr))) => Ok(cdr),
        Ok(Ok(None)) => Err(error(
            StatusCode::NOT_FOUND,
            None,
            &format!("no call record {shown}"),
        )),
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(internal(format!("store read failed: {e}"))),
    }
}

/// `GET /console/call-records/{id}` (`id` = callId, URL-decoded), with
/// `push: {state, attempts, last_error}` when the CDR is pushed (API.md 2.4).
pub async fn one(State(state): State<Arc<HttpState>>, Path(id): Path<String>) -> Response {
    let views = state.webhooks.clone();
    let call_id = id.clone();
    let cdr = match find(&state, id).await {
        Ok(cdr) => cdr,
        Err(r) => return r,
    };
    let push = tokio::task::spawn_blocking(move || views.push_state(&call_id))
        .await
        .ok()
        .flatten();
    let mut body = match serde_json::to_value(&cdr) {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    if let (Some(push), Some(map)) = (push, body.as_object_mut()) {
        map.insert("push".into(), json!(push));
    }
    Json(body).into_response()
}

/// `GET /console/call-records/{id}/sip-flow`: every SIP message of both
/// legs, in time order, as the owner shard captured them (`messages` of
/// {ts, direction, src, dst, leg, method or status, summary, raw};
/// `dropped` counts messages past the per-call cap).
pub async fn sip_flow(State(state): State<Arc<HttpState>>, Path(id): Path<String>) -> Response {
    let cdr = match find(&state, id).await {
        Ok(cdr) => cdr,
        Err(r) => return r,
    };
    let store = state.records.store.clone();
    let call_id = cdr.call_id.clone();
    match tokio::task::spawn_blocking(move || store.flow(&call_id)).await {
        Ok(Ok(Some(raw))) => match shards::call::flow::to_json(&raw) {
            Some(mut v) => {
                v["callId"] = cdr.call_id.into();
                Json(v).into_response()
            }
            None => internal("stored SIP flow unreadable"),
        },
        Ok(Ok(None)) => error(
            StatusCode::NOT_FOUND,
            None,
            &format!("no SIP flow kept for {}", cdr.call_id),
        ),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(format!("store read failed: {e}")),
    }
}

/// What a Range header asks of a file of a given size.
#[derive(Debug, PartialEq)]
pub enum Span {
    /// No (usable) Range: the whole file, 200.
    Full,
    /// First and last byte, inclusive: 206.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Reads a Range header value (RFC 9110 14.2). Anything that is not one
/// `bytes` range is ignored (whole file): other units, bad syntax, and
/// several ranges (answered 200 with the whole file, not multipart).
pub fn plan(range: Option<&str>, size: u64) -> Span {
    let Some((unit, set)) = range.and_then(|r| r.split_once('=')) else {
        return Span::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Span::Full;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [spec] = specs.as_slice() else {
        return Span::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Span::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    // Digits only; too many for u64 is as good as u64::MAX here.
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().unwrap_or(u64::MAX))
    };
    if first.is_empty() {
        // Suffix: the last n bytes.
        return match num(last) {
            None => Span::Full,
            Some(0) => Span::Unsatisfiable,
            Some(_) if size == 0 => Span::Unsatisfiable,
            Some(n) => Span::Part(size - n.min(size), size - 1),
        };
    }
    let Some(a) = num(first) else {
        return Span::Full;
    };
    let b = if last.is_empty() {
        None
    } else {
        match num(last) {
            Some(b) if b >= a => Some(b),
            _ => return Span::Full,
        }
    };
    if a >= size {
        return Span::Unsatisfiable;
    }
    Span::Part(a, b.map_or(size - 1, |b| b.min(size - 1)))
}

/// `GET /console/call-records/{id}/recording`: the call's WAV.
pub async fn recording(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let cdr = match find(&state, id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(entry) = cdr
        .recorder
        .iter()
        .find(|r| r.track_id == "mixed")
        .or(cdr.recorder.first())
    else {
        return error(
            StatusCode::NOT_FOUND,
            None,
            &format!("call {} has no recording", cdr.call_id),
        );
    };
    // Relative to data_dir unless absolute (join keeps an absolute path).
    let path = state.records.data_dir.join(&entry.path);
    // Without validators to compare If-Range against, a conditional range
    // gets the whole file (RFC 9110 13.1.5).
    let range = match headers.contains_key(header::IF_RANGE) {
        true => None,
        false => headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let opened = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        let size = meta.len();
        let span = plan(range.as_deref(), size);
        if let Span::Part(a, _) = span {
            file.seek(SeekFrom::Start(a))?;
        }
        Ok((file, size, span))
    })
    .await;
    let (file, size, span) = match opened {
        Ok(Ok(v)) => v,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return error(
                StatusCode::NOT_FOUND,
                None,
                &format!("the recording of call {} is gone", cdr.call_id),
            )
        }
        Ok(Err(e)) => return internal(format!("recording of {}: {e}", cdr.call_id)),
        Err(e) => return internal(format!("recording open failed: {e}")),
    };
    let (status, len, content_range) = match span {
        Span::Full => (StatusCode::OK, size, None),
        Span::Part(a, b) => (
            StatusCode::PARTIAL_CONTENT,
            b - a + 1,
            Some(format!("bytes {a}-{b}/{size}")),
        ),
        Span::Unsatisfiable => {
            let mut r = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                None,
                &format!("the recording has {size} bytes"),
            );
            let h = r.headers_mut();
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let body = FileBody {
        file: tokio::fs::File::from_std(file),
        remaining: len,
        buf: vec![0; CHUNK].into_boxed_slice(),
    };
    let mut r = Response::new(Body::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(v) = content_range.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    r
}

/// `remaining` bytes of an open file (already at the start of the range),
/// read CHUNK at a time as the client takes them.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: Box<[u8]>,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        use tokio::io::AsyncRead;
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining)
            .unwrap_or(usize::MAX)
            .min(this.buf.len());
        let mut rb = tokio::io::ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let got = rb.filled();
                if got.is_empty() {
                    // The file shrank under us: end the response short.
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "recording shrank while being sent",
                    ))));
                }
                this.remaining -= got.len() as u64;
                Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::copy_from_slice(
                    got,
                )))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdr(id: &str, caller: &str, to: &str, direction: &str, status: &str) -> Cdr {
        Cdr {
            call_id: id.into(),
            start_time: time_fmt::rfc3339_ms(1_000),
            ring_time: None,
            answer_time: None,
            end_time: time_fmt::rfc3339_ms(2_000),
            duration_secs: 0,
            caller: format!("sip:{caller}@pbx.test"),
            callee: format!("sip:{to}@pbx.test"),
            from_number: caller.into(),
            to_number: to.into(),
            direction: shards::cdr::Direction::parse(direction).expect("a direction"),
            status: shards::cdr::CallStatus::parse(status).expect("a status"),
            status_code: 200,
            hangup_reason: shards::cdr::HangupReason::ByCaller,
            sip_trunk_id: None,
            route_id: Some("Blocklist".into()),
            auth_user: None,
            recorder: vec![],
            recording_url: None,
            metadata: Default::default(),
        }
    }

    fn pairs(q: &[(&str, &str)]) -> Result<Filter, Invalid> {
        let v: Vec<(String, String)> = q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Filter::from_pairs(&v)
    }

    fn body(v: Value) -> Result<Filter, Invalid> {
        match v {
            Value::Object(m) => Filter::from_map(&m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn filters_parse_from_query_and_json_alike() {
        let q = pairs(&[
            ("caller", "1001"),
            ("direction", "Inbound"),
            ("status", "failed"),
            ("since", "2026-11-23T23:12:05Z"),
            ("until", "1795475600"),
            ("page", "3"),
            ("per_page", "20"),
            ("unknown", "ignored"),
            ("callee", ""),
        ])
        .unwrap();
        let j = body(
            json!({"caller": 1001, "direction": "inbound", "status": "failed",
            "since": "2026-11-23T23:12:05Z", "until": 1_795_475_600u64, "page": 3,
            "pageSize": "20", "callee": null}),
        )
        .unwrap();
        assert_eq!(q, j);
        assert_eq!(q.caller.as_deref(), Some("1001"));
        assert_eq!(q.callee, None);
        assert_eq!(q.direction.as_deref(), Some("inbound"));
        assert_eq!(q.since_ms, 1_795_475_525_000);
        assert_eq!(q.until_ms, 1_795_475_600_000);
        assert_eq!((q.page, q.per_page), (3, 20));
        let d = pairs(&[]).unwrap();
        assert_eq!(
            (d.page, d.per_page, d.since_ms, d.until_ms),
            (1, 50, 0, u64::MAX)
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let field = |r: Result<Filter, Invalid>| r.err().map(|e| e.field);
        assert_eq!(
            field(pairs(&[("direction", "sideways")])),
            Some("direction")
        );
        assert_eq!(field(pairs(&[("status", "ok")])), Some("status"));
        assert_eq!(field(pairs(&[("since", "yesterday")])), Some("since"));
        assert_eq!(
            field(pairs(&[("since", "2026-11-23T23:12:05+é0")])),
            Some("since")
        );
        assert_eq!(
            field(pairs(&[("until", "2026-13-01T00:00:00Z")])),
            Some("until")
        );
        assert_eq!(
            field(pairs(&[("since", "20"), ("until", "10")])),
            Some("until")
        );
        assert_eq!(field(pairs(&[("page", "0")])), Some("page"));
        assert_eq!(field(pairs(&[("page", "-1")])), Some("page"));
        assert_eq!(field(pairs(&[("per_page", "0")])), Some("per_page"));
        assert_eq!(field(pairs(&[("per_page", "501")])), Some("per_page"));
        assert_eq!(field(pairs(&[("pageSize", "1000")])), Some("pageSize"));
        assert_eq!(field(pairs(&[("q", "a"), ("q", "b")])), Some("q"));
        assert_eq!(field(body(json!({"caller": ["x"]}))), Some("caller"));
        assert_eq!(field(body(json!({"since": -5}))), Some("since"));
        assert_eq!(field(body(json!({"page": 1.5}))), Some("page"));
        assert!(pairs(&[("per_page", "500")]).is_ok());
    }

    #[test]
    fn matching_is_substring_and_case_insensitive() {
        let c = cdr("abc@host", "1001", "1002", "internal", "completed");
        let f = |q: &[(&str, &str)]| pairs(q).unwrap().matches(&c);
        assert!(f(&[]));
        assert!(f(&[("caller", "100")]));
        assert!(f(&[("caller", "SIP:1001")]));
        assert!(!f(&[("caller", "1002")]));
        assert!(f(&[("callee", "1002")]));
        assert!(f(&[("direction", "internal"), ("status", "completed")]));
        assert!(!f(&[("direction", "inbound")]));
        assert!(!f(&[("status", "failed")]));
        assert!(f(&[("q", "ABC@")]));
        assert!(f(&[("q", "blocklist")]));
        assert!(!f(&[("q", "carrier")]));
    }

    #[test]
    fn ranges() {
        let p = |r: &str, size| plan(Some(r), size);
        assert_eq!(plan(None, 100), Span::Full);
        assert_eq!(p("bytes=0-43", 100), Span::Part(0, 43));
        assert_eq!(p("bytes=0-43", 10), Span::Part(0, 9));
        assert_eq!(p("bytes=50-", 100), Span::Part(50, 99));
        assert_eq!(p("bytes=-10", 100), Span::Part(90, 99));
        assert_eq!(p("bytes=-1000", 100), Span::Part(0, 99));
        assert_eq!(p("BYTES = 5-5", 100), Span::Part(5, 5));
        assert_eq!(p("bytes=100-", 100), Span::Unsatisfiable);
        assert_eq!(
            p("bytes=999999999999999999999999-", 100),
            Span::Unsatisfiable
        );
        assert_eq!(p("bytes=-0", 100), Span::Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), Span::Unsatisfiable);
        assert_eq!(p("bytes=-5", 0), Span::Unsatisfiable);
        // Ignored: several ranges, bad syntax, other units.
        assert_eq!(p("bytes=0-1,5-6", 100), Span::Full);
        assert_eq!(p("bytes=5-1", 100), Span::Full);
        assert_eq!(p("bytes=a-b", 100), Span::Full);
        assert_eq!(p("bytes=-", 100), Span::Full);
        assert_eq!(p("items=0-1", 100), Span::Full);
        assert_eq!(p("bytes 0-1", 100), Span::Full);
    }
}
