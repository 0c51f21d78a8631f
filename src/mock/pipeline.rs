//! The path of every API request, in every dialect: read the body, count it, then apply the
//! failure modes in order — `die_after`, `hang`, latency + jitter, `status`, `fail_rate`,
//! `garbage` — and only then validate the request and build the normal reply. Errors are
//! written in the request's dialect ([`Dialect`]).

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use http::StatusCode;

use super::behavior::Behavior;
use super::call::{Call, Dialect};
use super::error::{
    api_error, bad_request, error_response, injected_status, json_response, mock_failure,
    raw_response, with_name,
};
use super::lifecycle::ConnId;
use super::reply::{self, Length};
use super::request::{self, GenerateRequest};
use super::state::{Admission, LastRequest, Shared};
use super::stats::InFlight;
use super::stream::{StreamKind, StreamPlan, sse_response};
use super::{anthropic, embeddings, gemini};

/// Largest request body read; larger ones get 413.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The body `garbage` sends.
pub(crate) const GARBAGE_BODY: &str = "this is not json <<<";

/// Handles one API request on connection `conn`.
pub(crate) async fn serve_api(
    shared: Arc<Shared>,
    conn: ConnId,
    call: Call,
    req: Request,
) -> Response {
    let in_flight = shared.stats.in_flight(call.endpoint());
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await;
    let admission = shared.admit(call.endpoint());
    if let Ok(bytes) = &body {
        shared.record_last(LastRequest::capture(&parts, bytes));
    }
    let Admission {
        behavior,
        number,
        jitter,
        fail,
    } = admission;
    let dialect = call.dialect();

    if let Some(limit) = behavior.die_after {
        if number > limit {
            // Past the limit (it raced the stop): die without answering.
            tracing::debug!(number, limit, "mock: die_after reached, dropping request");
            shared.stats.count_failed();
            shared.life.stop_graceful();
            shared.life.kill(conn);
            return dropped();
        }
        if number == limit {
            tracing::debug!(number, "mock: die_after reached, stopping after this reply");
            shared.life.stop_graceful();
        }
    }
    if behavior.hang {
        shared.life.stopping().await;
        shared.life.kill(conn);
        return dropped();
    }
    let delay = behavior.latency() + jitter;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let name = behavior.label();
    if let Some(status) = behavior.injected_status() {
        shared.stats.count_failed();
        return with_name(
            injected_status(dialect, status, behavior.retry_after_s),
            name,
        );
    }
    if fail {
        shared.stats.count_failed();
        return with_name(mock_failure(dialect), name);
    }
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(_) => {
            let response = api_error(
                dialect,
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request body is too large or could not be read",
            );
            return with_name(response, name);
        }
    };
    if behavior.garbage {
        let content_type = if call.wants_stream(&bytes) && call.streams_sse() {
            "text/event-stream"
        } else {
            "application/json"
        };
        return with_name(
            raw_response(StatusCode::OK, content_type, GARBAGE_BODY),
            name,
        );
    }

    let text = |parsed, kind| generate(&shared, &behavior, dialect, parsed, kind, in_flight);
    let json_or_400 = |value: Result<serde_json::Value, String>| match value {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(message) => bad_request(dialect, &message),
    };
    let response = match call {
        Call::Chat => text(request::parse_chat(&bytes), StreamKind::Chat),
        Call::Completions => text(request::parse_completion(&bytes), StreamKind::Completion),
        Call::Embeddings => {
            json_or_400(request::parse_embedding(&bytes).map(|r| embeddings::reply(&r)))
        }
        Call::Models(Dialect::Anthropic) => json_response(StatusCode::OK, &anthropic::models(name)),
        Call::Models(_) => json_response(StatusCode::OK, &reply::models(name)),
        Call::Messages => text(
            anthropic::parse(&parts.headers, &bytes),
            StreamKind::Messages,
        ),
        Call::GeminiGenerate { model, stream, sse } => text(
            gemini::parse_generate(&model, stream, &bytes),
            StreamKind::Gemini { sse },
        ),
        Call::GeminiEmbed { batch } => json_or_400(gemini::embed(batch, &bytes)),
        Call::GeminiModels(None) => json_response(StatusCode::OK, &gemini::models(name)),
        Call::GeminiModels(Some(model)) => json_response(StatusCode::OK, &gemini::model(&model)),
    };
    let mut response = with_name(response, name);
    if let Some(left) = behavior
        .ratelimit_remaining
        .filter(|_| response.status().is_success())
    {
        let headers = response.headers_mut();
        match dialect {
            Dialect::OpenAi => {
                headers.insert("x-ratelimit-remaining-requests", left.into());
                headers.insert(
                    "x-ratelimit-reset-requests",
                    http::HeaderValue::from_static("2s"),
                );
            }
            Dialect::Anthropic => {
                headers.insert("anthropic-ratelimit-requests-remaining", left.into());
            }
            // Gemini sends no headroom headers.
            Dialect::Gemini => {}
        }
    }
    response
}

/// The normal reply to a request for text, in `kind`'s dialect; a stream takes over the
/// in-flight guard.
fn generate(
    shared: &Shared,
    behavior: &Behavior,
    dialect: Dialect,
    parsed: Result<GenerateRequest, String>,
    kind: StreamKind,
    in_flight: InFlight,
) -> Response {
    let req = match parsed {
        Ok(req) => req,
        Err(message) => return bad_request(dialect, &message),
    };
    let n = shared.next_id();
    let id = match kind {
        StreamKind::Chat => reply::chat_id(n),
        StreamKind::Completion => reply::completion_id(n),
        StreamKind::Messages => anthropic::message_id(n),
        StreamKind::Gemini { .. } => gemini::response_id(n),
    };
    let name = behavior.label();
    let length = Length::new(behavior.chunks(), req.max_tokens);
    if req.stream {
        let plan = StreamPlan {
            kind,
            id,
            model: req.model,
            name: name.to_owned(),
            length,
            interval: behavior.chunk_interval(),
            include_usage: req.include_usage,
            prompt_tokens: req.prompt_tokens,
            fault: behavior.stream_fault(),
            stamp: behavior.stamp_chunks,
        };
        let (stats, life) = (Arc::clone(&shared.stats), Arc::clone(&shared.life));
        return sse_response(plan, stats, life, in_flight);
    }
    let (model, prompt) = (req.model.as_str(), req.prompt_tokens);
    let value = match kind {
        StreamKind::Chat => Ok(reply::chat_completion(&id, model, name, length, prompt)),
        StreamKind::Completion => Ok(reply::text_completion(&id, model, name, length, prompt)),
        StreamKind::Messages => anthropic::message(&id, model, name, length, prompt),
        StreamKind::Gemini { .. } => Ok(gemini::reply(&id, model, name, length, prompt)),
    };
    match value {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(message) => api_error(
            dialect,
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            &format!("mock could not build its reply: {message}"),
        ),
    }
}

/// What a handler returns after killing its connection; the client never sees it.
fn dropped() -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "mock stopped",
    )
}
