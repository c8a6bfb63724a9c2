//! The filters of a call-records list or search (query pairs or a JSON
//! object, validated into a [`Filter`]) and the store scan that applies
//! them one page at a time, newest first.

use serde_json::{Map, Value};
use shards::cdr::{time_fmt, Cdr};
use shards::store::Store;

use crate::control::api_error::ApiError;
use crate::control::paging::Paging;

const DIRECTIONS: [&str; 3] = ["inbound", "outbound", "internal"];
const STATUSES: [&str; 5] = ["completed", "missed", "failed", "rejected", "spam"];

/// A filter value that is not acceptable: 422 naming the field.
#[derive(Debug, PartialEq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Invalid {}

impl From<Invalid> for ApiError {
    fn from(bad: Invalid) -> ApiError {
        ApiError::unprocessable(bad.message).with_field(bad.field)
    }
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
    pub paging: Paging,
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
            paging: Paging::default(),
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
            f.paging.page = page;
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
            f.paging.per_page = Paging::per_page(n).map_err(|e| invalid(field, e.to_string()))?;
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
    let mut total = 0u64;
    let mut items = Vec::new();
    store.cdrs_newest_first(f.since_ms, f.until_ms, |cdr| {
        if f.matches(&cdr) {
            if f.paging.keeps(total, items.len()) {
                items.push(cdr);
            }
            total += 1;
        }
        true
    })?;
    Ok((items, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!((q.paging.page, q.paging.per_page), (3, 20));
        let d = pairs(&[]).unwrap();
        assert_eq!(
            (d.paging.page, d.paging.per_page, d.since_ms, d.until_ms),
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
}
