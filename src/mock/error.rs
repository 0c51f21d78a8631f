//! JSON responses and OpenAI-style error bodies
//! (`{"error":{"message":..,"type":..,"code":null}}`) for bad requests and injected failures.

use axum::body::Body;
use axum::response::Response;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use serde::Serialize;

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

/// The 500 that `fail_rate` injects.
pub(crate) fn mock_failure() -> Response {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "mock failure",
    )
}

/// The reply `status` injects, with `Retry-After` on 429 when configured.
pub(crate) fn injected_status(status: StatusCode, retry_after_s: Option<u64>) -> Response {
    let kind = match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    };
    let mut response = error_response(status, kind, &format!("mock status {}", status.as_u16()));
    if status == StatusCode::TOO_MANY_REQUESTS
        && let Some(seconds) = retry_after_s
    {
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
        let r = injected_status(StatusCode::TOO_MANY_REQUESTS, Some(3));
        assert_eq!(r.headers()[RETRY_AFTER], "3");
        let r = injected_status(StatusCode::SERVICE_UNAVAILABLE, Some(3));
        assert!(r.headers().get(RETRY_AFTER).is_none());
        let r = injected_status(StatusCode::TOO_MANY_REQUESTS, None);
        assert!(r.headers().get(RETRY_AFTER).is_none());
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
