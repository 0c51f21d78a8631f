//! The error every request can end in, and its OpenAI-style JSON at the edge:
//! `{"error":{"message","type","code"}}` with the status that says whose fault it was.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::provider::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client's request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No routing name matches the requested model.
    #[error(
        "the model {0:?} does not exist: it is not a wrapper, pool, task group, group.echelon, provider:model or instance id (GET /v1/models lists them)"
    )]
    ModelNotFound(String),
    #[error("request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// The client did not send the whole body within `[server] body_timeout`.
    #[error("the request body did not arrive within {} s ([server] body_timeout)", .0.as_secs_f64())]
    RequestTimeout(std::time::Duration),
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("no endpoint {method} {path}")]
    NotFound { method: String, path: String },
    /// An admin call without the right token, or to a gateway whose admin API is off.
    #[error("{0}")]
    Unauthorized(String),
    /// An admin call naming an instance or tier that does not exist.
    #[error("{0}")]
    Missing(String),
    /// An admin change that cannot be made in the current state (nothing changed).
    #[error("{0}")]
    Conflict(String),
    /// Every attempt on the route failed.
    #[error("route {route:?}: {detail}")]
    Upstream {
        route: String,
        class: ErrorClass,
        detail: String,
        retry_after: Option<HeaderValue>,
        /// Every attempt, in order (and with `x-switchyard-trace: 1` every candidate passed
        /// over), as the error body's `attempts`.
        attempts: Vec<crate::proxy::AttemptReport>,
        /// A 429 from switchyard's own limits: the `x-ratelimit-*` headers OpenAI sends.
        headroom: Option<Box<crate::limit::Headroom>>,
    },
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::ModelNotFound(_) | Self::NotFound { .. } | Self::Missing(_) => {
                StatusCode::NOT_FOUND
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Upstream { class, .. } => match class {
                ErrorClass::Connect => StatusCode::SERVICE_UNAVAILABLE,
                ErrorClass::Timeout => StatusCode::GATEWAY_TIMEOUT,
                ErrorClass::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                ErrorClass::Auth
                | ErrorClass::Server
                | ErrorClass::Malformed
                | ErrorClass::Client => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// OpenAI's `error.type`.
    fn kind(&self) -> &'static str {
        match self {
            Self::Upstream {
                class: ErrorClass::RateLimited,
                ..
            } => "rate_limit_error",
            Self::Upstream { .. } => "upstream_error",
            Self::Unauthorized(_) => "authentication_error",
            _ => "invalid_request_error",
        }
    }

    /// OpenAI's `error.code`.
    fn code(&self) -> Option<&'static str> {
        match self {
            Self::BadRequest(_) => None,
            Self::ModelNotFound(_) => Some("model_not_found"),
            Self::PayloadTooLarge(_) => Some("payload_too_large"),
            Self::RequestTimeout(_) => Some("request_timeout"),
            Self::MethodNotAllowed { .. } => Some("method_not_allowed"),
            Self::NotFound { .. } | Self::Missing(_) => Some("not_found"),
            Self::Unauthorized(_) => Some("invalid_admin_token"),
            Self::Conflict(_) => Some("conflict"),
            Self::Upstream { class, .. } => Some(match class {
                ErrorClass::Connect => "upstream_unavailable",
                ErrorClass::Timeout => "upstream_timeout",
                ErrorClass::RateLimited => "upstream_rate_limited",
                ErrorClass::Auth => "upstream_auth_failed",
                ErrorClass::Server | ErrorClass::Client => "upstream_error",
                ErrorClass::Malformed => "upstream_bad_response",
            }),
        }
    }

    /// The JSON body, also used for errors sent inside an SSE stream.
    pub fn body(&self) -> Bytes {
        #[derive(Serialize)]
        struct Envelope<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            message: String,
            #[serde(rename = "type")]
            kind: &'a str,
            code: Option<&'a str>,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            attempts: &'a [crate::proxy::AttemptReport],
        }
        let attempts = match self {
            Self::Upstream { attempts, .. } => attempts.as_slice(),
            _ => &[],
        };
        let envelope = Envelope {
            error: Inner {
                message: self.to_string(),
                kind: self.kind(),
                code: self.code(),
                attempts,
            },
        };
        serde_json::to_vec(&envelope)
            .map(Bytes::from)
            .unwrap_or_else(|_| {
                Bytes::from_static(
                    br#"{"error":{"message":"error","type":"server_error","code":null}}"#,
                )
            })
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Self::Upstream {
            retry_after,
            headroom,
            ..
        } = self
        {
            if let Some(v) = retry_after {
                headers.insert(header::RETRY_AFTER, v);
            }
            if let Some(h) = headroom {
                h.write(headers);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openai_shape_with_status_type_and_code() {
        let e = Error::ModelNotFound("nope".into());
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("\"nope\""));

        let e = Error::Upstream {
            route: "fast_pool".into(),
            class: ErrorClass::Connect,
            detail: "all 3 attempts failed".into(),
            retry_after: None,
            headroom: None,
            attempts: vec![crate::proxy::AttemptReport {
                instance: "a".into(),
                tier: "fast_pool".into(),
                step: "primary",
                outcome: "connect",
                reason: Some("refused".into()),
                latency_ms: 0.5,
            }],
        };
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "upstream_unavailable");
        assert_eq!(v["error"]["attempts"][0]["instance"], "a");
        assert_eq!(v["error"]["attempts"][0]["outcome"], "connect");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("fast_pool")
        );
    }
}
