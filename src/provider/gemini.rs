//! Google's native Gemini API (`https://generativelanguage.googleapis.com/v1beta`), sans-I/O:
//! pure translations between the OpenAI shapes switchyard serves and Gemini's, over
//! `serde_json::Value` and bytes. Nothing here does networking.
//!
//! Auth is the header `x-goog-api-key: <key>` ([`API_KEY_HEADER`]), not a bearer token; the
//! key never goes in the URL. URLs are `{base}{path(..)}` with a base such as
//! `https://generativelanguage.googleapis.com/v1beta`.
//!
//! Members:
//! - `request`: an OpenAI `chat.completions` request → a `generateContent` body
//!   ([`to_generate_request`]); `config` builds its `generationConfig`, `tools` and
//!   `toolConfig`.
//! - `response`: a `generateContent` reply → a `chat.completion` ([`from_generate_response`]).
//! - `stream`: `streamGenerateContent?alt=sse` events → `chat.completion.chunk`s
//!   ([`StreamTranslator`]).
//! - `embed`: OpenAI embeddings ↔ `embedContent` / `batchEmbedContents`.
//! - here: [`path`], [`classify`], [`error_message`] and the one error type,
//!   [`TranslateError`].

mod adapter;
mod config;
mod embed;
mod request;
mod response;
mod stream;

#[cfg(test)]
mod tests_embed;
#[cfg(test)]
pub(crate) mod tests_proptest;
#[cfg(test)]
mod tests_request;
#[cfg(test)]
mod tests_response;
#[cfg(test)]
mod tests_robust;
#[cfg(test)]
mod tests_stream;

use http::StatusCode;
use serde_json::{Map, Value};

pub use adapter::Gemini;
pub use embed::{embed_path, from_embed_response, to_embed_request};
pub use request::to_generate_request;
pub use response::from_generate_response;
pub use stream::StreamTranslator;

use super::{ErrorClass, Operation};

/// The header that carries the API key.
pub const API_KEY_HEADER: &str = "x-goog-api-key";

/// Why a translation failed, saying what and where (`messages[2].content: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The client's OpenAI request is invalid or cannot be said in Gemini's terms: the
    /// client's fault (a 400), never retried elsewhere.
    #[error("{at}: {reason}")]
    Request { at: String, reason: String },
    /// A 2xx Gemini body (or stream event) that is not what the API promises.
    #[error("gemini response {at}: {reason}")]
    Response { at: String, reason: String },
    /// Gemini sent an `error` object, in a body or as a stream event.
    #[error("gemini error{}: {message}", label(*.code, .status.as_deref()))]
    Upstream {
        /// `error.code`: the HTTP status Gemini meant.
        code: Option<u16>,
        /// `error.status`: the gRPC status name, e.g. `RESOURCE_EXHAUSTED`.
        status: Option<String>,
        message: String,
    },
}

impl TranslateError {
    /// The class health checks and retries reason about.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Request { .. } => ErrorClass::Client,
            Self::Response { .. } => ErrorClass::Malformed,
            Self::Upstream { code, status, .. } => class_of(*code, status.as_deref(), false),
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
}

/// ` 429 RESOURCE_EXHAUSTED`, ` 503`, or nothing.
fn label(code: Option<u16>, status: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(code) = code {
        out.push_str(&format!(" {code}"));
    }
    if let Some(status) = status {
        out.push(' ');
        out.push_str(status);
    }
    out
}

/// The URL path of `op` below the API base. Chat streams use `alt=sse` so that each event is
/// one `data:` line holding a whole `GenerateContentResponse`. Legacy completions have no
/// Gemini endpoint of their own: they share chat's. Embeddings give `:embedContent`; a list
/// input needs [`embed_path`] with `batch = true`. `Models` lists models (`GET /models`).
pub fn path(upstream_model: &str, op: Operation, stream: bool) -> String {
    let model = encode_path(&resource_name(upstream_model));
    match op {
        Operation::Chat | Operation::Completions if stream => {
            format!("/{model}:streamGenerateContent?alt=sse")
        }
        Operation::Chat | Operation::Completions => format!("/{model}:generateContent"),
        Operation::Embeddings => format!("/{model}:embedContent"),
        Operation::Models => "/models".to_owned(),
    }
}

/// `models/<m>`, unless the name already names its collection (`models/x`, `tunedModels/x`).
pub(crate) fn resource_name(upstream_model: &str) -> String {
    if upstream_model.contains('/') {
        upstream_model.to_owned()
    } else {
        format!("models/{upstream_model}")
    }
}

/// Percent-encodes everything but unreserved characters and `/`, so that a model name can
/// never add a query or a fragment to the URL.
fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Classify a non-2xx Gemini reply, preferring the gRPC status name in the body
/// (`{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", ...}}`) over the HTTP status.
/// A bad key is `400 INVALID_ARGUMENT` with reason `API_KEY_INVALID`: that is Auth.
pub fn classify(status: StatusCode, body: &[u8]) -> ErrorClass {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let error = parsed.as_ref().and_then(error_object);
    let grpc = error.and_then(|e| e.get("status")).and_then(Value::as_str);
    let key_rejected = error.is_some_and(key_rejected);
    class_of(Some(status.as_u16()), grpc, key_rejected)
}

/// `error.message` of a Gemini error body, if it has one.
pub fn error_message(body: &[u8]) -> Option<String> {
    let parsed = serde_json::from_slice::<Value>(body).ok()?;
    let error = error_object(&parsed)?;
    error.get("message")?.as_str().map(str::to_owned)
}

fn class_of(http: Option<u16>, grpc: Option<&str>, key_rejected: bool) -> ErrorClass {
    if key_rejected {
        return ErrorClass::Auth;
    }
    match grpc {
        Some("RESOURCE_EXHAUSTED") => ErrorClass::RateLimited,
        Some("PERMISSION_DENIED" | "UNAUTHENTICATED") => ErrorClass::Auth,
        Some(
            "INVALID_ARGUMENT"
            | "FAILED_PRECONDITION"
            | "NOT_FOUND"
            | "OUT_OF_RANGE"
            | "ALREADY_EXISTS",
        ) => ErrorClass::Client,
        Some("DEADLINE_EXCEEDED") => ErrorClass::Timeout,
        Some("UNAVAILABLE" | "INTERNAL" | "UNKNOWN" | "ABORTED" | "DATA_LOSS") => {
            ErrorClass::Server
        }
        _ => match http {
            Some(401 | 403) => ErrorClass::Auth,
            Some(408 | 504) => ErrorClass::Timeout,
            Some(429) => ErrorClass::RateLimited,
            Some(400..=499) => ErrorClass::Client,
            _ => ErrorClass::Server,
        },
    }
}

/// The `error` object of a body: `{"error": {...}}`, or the `[{"error": {...}}]` that
/// streaming endpoints without `alt=sse` send.
fn error_object(v: &Value) -> Option<&Map<String, Value>> {
    let v = match v {
        Value::Array(items) => items.first()?,
        other => other,
    };
    v.get("error")?.as_object()
}

/// Whether `error.details` has an `ErrorInfo` whose reason is about the API key
/// (`API_KEY_INVALID`, `API_KEY_SERVICE_BLOCKED`, ...).
fn key_rejected(error: &Map<String, Value>) -> bool {
    let Some(Value::Array(details)) = error.get("details") else {
        return false;
    };
    details.iter().any(|d| {
        d.get("reason")
            .and_then(Value::as_str)
            .is_some_and(|r| r.starts_with("API_KEY_"))
    })
}

/// An [`TranslateError::Upstream`] if `v` is (or wraps) a Gemini error object.
pub(crate) fn upstream_error(v: &Value) -> Option<TranslateError> {
    let error = error_object(v)?;
    let code = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok());
    let status = error
        .get("status")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)")
        .to_owned();
    Some(TranslateError::Upstream {
        code,
        status,
        message,
    })
}

/// Parses a Gemini reply body into its top-level object, turning an `error` object into
/// [`TranslateError::Upstream`].
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::response("body", format!("not JSON: {e}")))?;
    if let Some(e) = upstream_error(&v) {
        return Err(e);
    }
    match v {
        Value::Object(map) => Ok(map),
        _ => Err(TranslateError::response("body", "expected a JSON object")),
    }
}
