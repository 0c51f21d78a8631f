//! Anthropic's native Messages API (`POST /v1/messages`), sans-I/O: pure translations between
//! the OpenAI shapes switchyard serves and Anthropic's, over `serde_json::Value` and bytes.
//! Nothing here does networking.
//!
//! Egress (an OpenAI client, an Anthropic upstream):
//! - `request`: a `chat.completions` request → a Messages request ([`to_messages_request`]).
//! - `response`: a Messages reply → a `chat.completion` ([`from_messages_response`]).
//! - `stream`: Messages SSE events → `chat.completion.chunk`s ([`StreamTranslator`]).
//!
//! Ingress (an Anthropic client such as Claude Code, an OpenAI-shaped upstream):
//! - `ingress`: a Messages request → a `chat.completions` request ([`messages_to_openai`]),
//!   and a `chat.completion` → a Messages reply ([`openai_to_messages_response`]).
//! - `ingress_stream`: `chat.completion.chunk`s → Messages SSE events
//!   ([`MessagesStreamWriter`], [`encode_sse`]).
//!
//! Here: [`classify`], [`error_message`] and the one error type, [`TranslateError`].

mod adapter;
mod ingress;
mod ingress_stream;
mod request;
mod response;
mod stream;

#[cfg(test)]
mod tests;

use http::StatusCode;
use serde_json::Value;

pub use adapter::Anthropic;
pub use ingress::{messages_to_openai, openai_to_messages_response};
pub use ingress_stream::{MessagesStreamWriter, encode_sse};
pub use request::to_messages_request;
pub use response::from_messages_response;
pub use stream::StreamTranslator;

use super::ErrorClass;

/// The `anthropic-version` header value these translations follow.
pub const API_VERSION: &str = "2023-06-01";

/// Why a translation failed, saying what and where (`messages[3].content: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The client's request is invalid or cannot be said in the other API's terms: the
    /// client's fault (a 400), never retried elsewhere.
    #[error("{at}: {reason}")]
    Request { at: String, reason: String },
    /// A 2xx upstream body (or stream event) that is not what its API promises.
    #[error("upstream response {at}: {reason}")]
    Response { at: String, reason: String },
    /// The upstream sent an error object, in a 2xx body or as a stream `error` event.
    /// `kind` is its `error.type`, e.g. `overloaded_error`.
    #[error("upstream error {kind}: {message}")]
    Upstream { kind: String, message: String },
}

impl TranslateError {
    /// The class health checks and retries reason about.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Request { .. } => ErrorClass::Client,
            Self::Response { .. } => ErrorClass::Malformed,
            Self::Upstream { kind, .. } => class_of_error_type(kind).unwrap_or(ErrorClass::Server),
        }
    }

    pub(crate) fn request(at: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Request {
            at: at.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn response(at: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Response {
            at: at.into(),
            reason: reason.into(),
        }
    }

    /// From an `error` object, `{"type": ..., "message": ...}`; a missing type reads as
    /// `api_error`, Anthropic's name for an internal error.
    pub(crate) fn upstream(error: Option<&Value>) -> Self {
        let field = |key| error.and_then(|e| e.get(key)).and_then(Value::as_str);
        Self::Upstream {
            kind: field("type").unwrap_or("api_error").to_owned(),
            message: field("message").unwrap_or_default().to_owned(),
        }
    }
}

/// Classify a non-2xx Messages reply by its status and `error.type`.
///
/// 529 and `overloaded_error` (whatever the status) mean Anthropic is out of capacity: Server,
/// so the attempt is retried elsewhere. `billing_error` says our key's account cannot pay,
/// which is the instance's credential, not the client's request.
pub fn classify(status: StatusCode, body: &[u8]) -> ErrorClass {
    let kind = error_field(body, "type");
    if status.as_u16() == 529 || kind.as_deref() == Some("overloaded_error") {
        return ErrorClass::Server;
    }
    match status.as_u16() {
        401 | 403 => ErrorClass::Auth,
        408 => ErrorClass::Timeout,
        429 => ErrorClass::RateLimited,
        413 => ErrorClass::Client,
        400..=499 => match kind.as_deref() {
            Some(kind @ ("billing_error" | "authentication_error" | "permission_error")) => {
                class_of_error_type(kind).unwrap_or(ErrorClass::Client)
            }
            Some("rate_limit_error") => ErrorClass::RateLimited,
            _ => ErrorClass::Client,
        },
        _ => ErrorClass::Server,
    }
}

/// `error.message` of an Anthropic error body, for logs and the client's error.
pub fn error_message(body: &[u8]) -> Option<String> {
    error_field(body, "message")
}

fn error_field(body: &[u8], key: &str) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(value.get("error")?.get(key)?.as_str()?.to_owned())
}

/// The class of an Anthropic `error.type` (the documented ones), `None` for others.
fn class_of_error_type(kind: &str) -> Option<ErrorClass> {
    Some(match kind {
        "overloaded_error" | "api_error" => ErrorClass::Server,
        "rate_limit_error" => ErrorClass::RateLimited,
        "authentication_error" | "permission_error" | "billing_error" => ErrorClass::Auth,
        "invalid_request_error" | "request_too_large" | "not_found_error" => ErrorClass::Client,
        "timeout_error" => ErrorClass::Timeout,
        _ => return None,
    })
}

/// A JSON value's kind, for error messages ("expected an object, got an array").
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
