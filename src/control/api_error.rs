//! The one error reply of the control core's HTTP API (API.md section 4):
//! `{"error": "<code>", "message": "...", "field": "..."}` with its HTTP
//! status. Every handler (console REST, active call control, AMI, the
//! guards and the router's fallbacks) answers its errors with [`ApiError`];
//! the `error` code follows from the status ([`error_code`]).

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The machine-readable `error` code of an error reply for its HTTP status.
pub fn error_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        415 => "unsupported_media_type",
        416 => "range_not_satisfiable",
        422 => "invalid",
        429 => "too_many_requests",
        503 => "unavailable",
        504 => "timeout",
        _ => "internal",
    }
}

/// An error reply: status, message, the request field at fault if any, and
/// extra response headers (`WWW-Authenticate`, `Retry-After`, ...).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: None,
            headers: Vec::new(),
        }
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// Names the request field at fault, if any.
    pub fn with_field_opt(self, field: Option<&str>) -> ApiError {
        match field {
            Some(f) => self.with_field(f),
            None => self,
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// 403 for a peer outside `[ami] allows`.
    pub fn not_ami_peer() -> ApiError {
        ApiError::forbidden("peer address not in ami.allows")
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 422 without a field.
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 422 naming `field`; the message starts with it (`"<field>: <reason>"`).
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError::unprocessable(format!("{field}: {reason}")).with_field(field)
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 500 (the caller logs the cause).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": error_code(self.status), "message": self.message });
        if let Some(f) = self.field {
            body["field"] = f.into();
        }
        let mut r = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            r.headers_mut().insert(name, value);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn parts(e: ApiError) -> (StatusCode, axum::http::HeaderMap, String) {
        let r = e.into_response();
        let (parts, body) = r.into_parts();
        let bytes = to_bytes(body, 1 << 16).await.expect("body");
        (
            parts.status,
            parts.headers,
            String::from_utf8(bytes.to_vec()).expect("utf-8"),
        )
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn body_is_code_message_and_field_in_key_order() {
        let (status, headers, body) = run(parts(ApiError::invalid("page", "must be 1 to 500")));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            r#"{"error":"invalid","field":"page","message":"page: must be 1 to 500"}"#
        );
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn without_field_and_with_headers() {
        let (status, headers, body) = run(parts(ApiError::unauthorized("who are you")));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, r#"{"error":"unauthorized","message":"who are you"}"#);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn codes_follow_the_status() {
        assert_eq!(
            error_code(StatusCode::METHOD_NOT_ALLOWED),
            "method_not_allowed"
        );
        assert_eq!(error_code(StatusCode::GATEWAY_TIMEOUT), "timeout");
        assert_eq!(error_code(StatusCode::INTERNAL_SERVER_ERROR), "internal");
        assert_eq!(error_code(StatusCode::BAD_GATEWAY), "internal");
    }
}
