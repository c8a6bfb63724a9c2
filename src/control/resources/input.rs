//! Request bodies of the resource API: the body as a JSON object (400 when
//! it is not JSON), an extension body checked key by key, and trunk and
//! route bodies checked so that a type error names its field (422).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use shards::routing::{RouteSpec, TrunkSpec};

use crate::control::api_error::ApiError;

/// The body as a JSON object: 400 when it is not JSON, 422 when it is not
/// an object.
pub(super) fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::unprocessable("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("body is not JSON: {e}"))),
    }
}

/// Keys every body may carry back from a GET; ignored.
pub(super) const ECHOED: [&str; 2] = ["id", "source"];

pub(super) fn unknown_key(key: &str, known: &[&str]) -> ApiError {
    ApiError::invalid(
        key,
        format!("unknown field (expected one of {})", known.join(", ")),
    )
}

/// `key` as an optional string (absent, null or "" = None).
pub(super) fn opt_string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(key, "must be a string")),
    }
}

pub(super) fn opt_bool(map: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(key, "must be true or false")),
    }
}

/// Text that may end up in SIP headers or logs: bounded, no control characters.
pub(super) fn check_text(key: &str, s: &str, max: usize) -> Result<(), ApiError> {
    if s.chars().count() > max {
        return Err(ApiError::invalid(
            key,
            format!("longer than {max} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            key,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// An extension body, validated.
#[derive(Debug, PartialEq)]
pub(super) struct ExtensionInput {
    pub(super) username: String,
    /// None: not given (on PUT the stored one stays).
    pub(super) password: Option<String>,
    pub(super) display_name: Option<String>,
    pub(super) email: Option<String>,
    pub(super) enabled: bool,
    pub(super) allow_guest_calls: bool,
    pub(super) allowed_caller_ids: Vec<String>,
}

/// At most this many `allowed_caller_ids` per extension.
pub(super) const MAX_CALLER_IDS: usize = 64;

pub(super) const EXTENSION_KEYS: [&str; 7] = [
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
pub(super) const USERNAME_EXTRA: &str = "-_.!~*+";

pub(super) fn extension_input(map: &Map<String, Value>) -> Result<ExtensionInput, ApiError> {
    if let Some(k) = map
        .keys()
        .find(|k| !EXTENSION_KEYS.contains(&k.as_str()) && !ECHOED.contains(&k.as_str()))
    {
        return Err(unknown_key(k, &EXTENSION_KEYS));
    }
    let username =
        opt_string(map, "username")?.ok_or_else(|| ApiError::invalid("username", "required"))?;
    check_number("username", &username)?;
    let allowed_caller_ids = match map.get("allowed_caller_ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) if ids.len() > MAX_CALLER_IDS => {
            return Err(ApiError::invalid(
                "allowed_caller_ids",
                format!("at most {MAX_CALLER_IDS} entries"),
            ))
        }
        Some(Value::Array(ids)) => {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let Value::String(id) = id else {
                    return Err(ApiError::invalid(
                        "allowed_caller_ids",
                        "must be an array of strings",
                    ));
                };
                check_number("allowed_caller_ids", id)?;
                out.push(id.clone());
            }
            out
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "allowed_caller_ids",
                "must be an array of strings",
            ))
        }
    };
    let password = match map.get("password") {
        None => None,
        Some(Value::String(p)) if p.is_empty() => {
            return Err(ApiError::invalid("password", "must not be empty"))
        }
        Some(Value::String(p)) => {
            check_text("password", p, 128)?;
            Some(p.clone())
        }
        Some(_) => return Err(ApiError::invalid("password", "must be a string")),
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
            return Err(ApiError::invalid(
                "email",
                format!("{e:?} is not an email address"),
            ));
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
pub(super) fn check_number(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > 64 {
        return Err(ApiError::invalid(field, "must be 1 to 64 characters"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || USERNAME_EXTRA.contains(c))
    {
        return Err(ApiError::invalid(
            field,
            format!("{value:?}: only letters, digits and {USERNAME_EXTRA} are allowed"),
        ));
    }
    Ok(())
}

pub(super) const TRUNK_KEYS: [&str; 8] = [
    "name",
    "dest",
    "transport",
    "username",
    "password",
    "inbound_hosts",
    "max_calls",
    "max_cps",
];

pub(super) const ROUTE_KEYS: [&str; 9] = [
    "name", "priority", "match", "rewrite", "action", "dest", "select", "weights", "reject",
];

/// Checks each key of `map` on its own, so a type error names its field:
/// `base` plus that one key must deserialize as `T`. Unknown keys are 422;
/// `outside` keys are known but not `T`'s (checked by the caller). The keys
/// that are `T`'s.
pub(super) fn check_keys<T: DeserializeOwned>(
    map: &Map<String, Value>,
    known: &[&str],
    outside: &[&str],
    base: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
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
            return Err(ApiError::invalid(k, e));
        }
        kept.insert(k.clone(), v.clone());
    }
    Ok(kept)
}

pub(super) fn from_checked<T: DeserializeOwned>(map: Map<String, Value>) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(map))
        .map_err(|e| ApiError::unprocessable(format!("invalid body: {e}")))
}

/// A trunk body: (name, spec, whether `password` was given).
pub(super) fn trunk_input(map: &Map<String, Value>) -> Result<(String, TrunkSpec, bool), ApiError> {
    let kept = check_keys::<TrunkSpec>(map, &TRUNK_KEYS, &["name"], &Map::new())?;
    let name = match map.get("name") {
        None | Some(Value::Null) => return Err(ApiError::invalid("name", "required")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::invalid("name", "must be a string")),
    };
    let spec = from_checked::<TrunkSpec>(kept)?;
    Ok((name, spec, map.contains_key("password")))
}

pub(super) fn route_input(map: &Map<String, Value>) -> Result<RouteSpec, ApiError> {
    let mut base = Map::new();
    base.insert("name".into(), "x".into());
    base.insert("action".into(), "reject".into());
    let kept = check_keys::<RouteSpec>(map, &ROUTE_KEYS, &[], &base)?;
    for required in ["name", "action"] {
        if matches!(map.get(required), None | Some(Value::Null)) {
            return Err(ApiError::invalid(required, "required"));
        }
    }
    from_checked::<RouteSpec>(kept)
}
