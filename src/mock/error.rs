//! JSON responses and the error bodies of each [`Dialect`], for bad requests and injected
//! failures:
//! - OpenAI: `{"error":{"message":..,"type":..,"code":null}}`, `type` given by the caller;
//! - Anthropic: `{"type":"error","error":{"type":..,"message":..}}`, `type` by status
//!   (529 `overloaded_error`, 429 `rate_limit_error`, 5xx `api_error`, ...);
//! - Gemini: `{"error":{"code":..,"message":..,"status":..}}`, `status` the gRPC name of the
//!   HTTP status (429 `RESOURCE_EXHAUSTED`, 503 `UNAVAILABLE`, ...).

use axum::body::Body;
use axum::response::Response;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::json;

use super::call::Dialect;

/// Header naming the instance that answered.
pub(crate) const MOCK_NAME_HEADER: &str = "x-mock-name";

/// `value` as a JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => raw_response(status, "application/json", bytes),
        Err(err) => raw_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("mock could not encode its reply: {err}").into_bytes(),
        ),
    }
}

/// A response with a fixed body and content type.
pub(crate) fn raw_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An OpenAI-style error reply.
pub(crate) fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    json_response(
        status,
        &serde_json::json!({
            "error": { "message": message, "type": kind, "code": null }
        }),
    )
}

/// 400 `invalid_request_error`.
pub(crate) fn invalid_request(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

/// An error reply in `dialect`'s shape. `kind` is the OpenAI `error.type`; the other dialects
/// name the error after `status`.
pub(crate) fn api_error(
    dialect: Dialect,
    status: StatusCode,
    kind: &str,
    message: &str,
) -> Response {
    match dialect {
        Dialect::OpenAi => error_response(status, kind, message),
        Dialect::Anthropic => json_response(
            status,
            &json!({
                "type": "error",
                "error": { "type": anthropic_type(status), "message": message },
            }),
        ),
        Dialect::Gemini => json_response(status, &gemini_error(status, message)),
    }
}

/// A 400 for a request the mock cannot answer, in `dialect`'s shape.
pub(crate) fn bad_request(dialect: Dialect, message: &str) -> Response {
    api_error(
        dialect,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
    )
}

/// Anthropic's `error.type` for a status.
fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// Gemini's `error.status` (a gRPC status name) for an HTTP status.
fn gemini_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        502 | 503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        400..=499 => "FAILED_PRECONDITION",
        500..=599 => "INTERNAL",
        _ => "UNKNOWN",
    }
}

/// A Gemini error body (also sent as a stream's error event).
pub(crate) fn gemini_error(status: StatusCode, message: &str) -> serde_json::Value {
    json!({
        "error": { "code": status.as_u16(), "message": message, "status": gemini_status(status) }
    })
}

/// The 500 that `fail_rate` injects.
pub(crate) fn mock_failure(dialect: Dialect) -> Response {
    api_error(
        dialect,
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "mock failure",
    )
}

/// The reply `status` injects, with `Retry-After` on 429 when configured (and, for Gemini,
/// the `RetryInfo` detail Google sends instead).
pub(crate) fn injected_status(
    dialect: Dialect,
    status: StatusCode,
    retry_after_s: Option<u64>,
) -> Response {
    let kind = match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    };
    let message = format!("mock status {}", status.as_u16());
    let retry_after = retry_after_s.filter(|_| status == StatusCode::TOO_MANY_REQUESTS);
    let mut response = match (dialect, retry_after) {
        (Dialect::Gemini, Some(seconds)) => json_response(
            status,
            &json!({ "error": {
                "code": status.as_u16(),
                "message": message,
                "status": gemini_status(status),
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": format!("{seconds}s"),
                }],
            }}),
        ),
        _ => api_error(dialect, status, kind, &message),
    };
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Adds `x-mock-name: <name>` (skipped if the name is not a valid header value).
pub(crate) fn with_name(mut response: Response, name: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(name) {
        response.headers_mut().insert(MOCK_NAME_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_only_on_429() {
        for dialect in [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini] {
            let r = injected_status(dialect, StatusCode::TOO_MANY_REQUESTS, Some(3));
            assert_eq!(r.headers()[RETRY_AFTER], "3");
            let r = injected_status(dialect, StatusCode::SERVICE_UNAVAILABLE, Some(3));
            assert!(r.headers().get(RETRY_AFTER).is_none());
            let r = injected_status(dialect, StatusCode::TOO_MANY_REQUESTS, None);
            assert!(r.headers().get(RETRY_AFTER).is_none());
        }
    }

    #[test]
    fn dialect_error_names() {
        let code = |n| StatusCode::from_u16(n).unwrap();
        let anthropic: Vec<_> = [400, 401, 403, 404, 429, 500, 503, 529]
            .into_iter()
            .map(|n| anthropic_type(code(n)))
            .collect();
        assert_eq!(
            anthropic,
            [
                "invalid_request_error",
                "authentication_error",
                "permission_error",
                "not_found_error",
                "rate_limit_error",
                "api_error",
                "api_error",
                "overloaded_error",
            ]
        );
        let gemini: Vec<_> = [400, 401, 403, 429, 500, 503, 529, 200]
            .into_iter()
            .map(|n| gemini_status(code(n)))
            .collect();
        assert_eq!(
            gemini,
            [
                "INVALID_ARGUMENT",
                "UNAUTHENTICATED",
                "PERMISSION_DENIED",
                "RESOURCE_EXHAUSTED",
                "INTERNAL",
                "UNAVAILABLE",
                "INTERNAL",
                "UNKNOWN",
            ]
        );
    }

    #[test]
    fn name_header_skips_bad_values() {
        let r = with_name(invalid_request("x"), "a\nb");
        assert!(r.headers().get(MOCK_NAME_HEADER).is_none());
        let r = with_name(invalid_request("x"), "east-1");
        assert_eq!(r.headers()[MOCK_NAME_HEADER], "east-1");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
}
