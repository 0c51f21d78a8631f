//! The path of every API request (`/v1/*`): read the body, count it, then apply the failure
//! modes in order — `die_after`, `hang`, latency + jitter, `status`, `fail_rate`, `garbage` —
//! and only then validate the request and build the normal reply.

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use http::StatusCode;

use super::behavior::Behavior;
use super::embeddings;
use super::error::{
    error_response, injected_status, invalid_request, json_response, mock_failure, raw_response,
    with_name,
};
use super::lifecycle::ConnId;
use super::reply;
use super::request::{self, Endpoint, GenerateRequest};
use super::state::{Admission, LastRequest, Shared};
use super::stats::InFlight;
use super::stream::{StreamKind, StreamPlan, sse_response};

/// Largest request body read; larger ones get 413.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The body `garbage` sends.
pub(crate) const GARBAGE_BODY: &str = "this is not json <<<";

/// Handles one API request on connection `conn`.
pub(crate) async fn serve_api(
    shared: Arc<Shared>,
    conn: ConnId,
    endpoint: Endpoint,
    req: Request,
) -> Response {
    let in_flight = shared.stats.in_flight();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await;
    let admission = shared.admit(endpoint);
    if let Ok(bytes) = &body {
        shared.record_last(LastRequest::capture(&parts, bytes));
    }
    let Admission {
        behavior,
        number,
        jitter,
        fail,
    } = admission;

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
        return with_name(injected_status(status, behavior.retry_after_s), name);
    }
    if fail {
        shared.stats.count_failed();
        return with_name(mock_failure(), name);
    }
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(_) => {
            let response = error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request body is too large or could not be read",
            );
            return with_name(response, name);
        }
    };
    if behavior.garbage {
        let content_type = if request::wants_stream(&bytes) {
            "text/event-stream"
        } else {
            "application/json"
        };
        return with_name(
            raw_response(StatusCode::OK, content_type, GARBAGE_BODY),
            name,
        );
    }

    let response = match endpoint {
        Endpoint::Chat => generate(
            &shared,
            &behavior,
            request::parse_chat(&bytes),
            StreamKind::Chat,
            in_flight,
        ),
        Endpoint::Completions => generate(
            &shared,
            &behavior,
            request::parse_completion(&bytes),
            StreamKind::Completion,
            in_flight,
        ),
        Endpoint::Embeddings => match request::parse_embedding(&bytes) {
            Ok(req) => json_response(StatusCode::OK, &embeddings::reply(&req)),
            Err(message) => invalid_request(&message),
        },
        Endpoint::Models => json_response(StatusCode::OK, &reply::models(name)),
    };
    let mut response = with_name(response, name);
    if let Some(left) = behavior
        .ratelimit_remaining
        .filter(|_| response.status().is_success())
    {
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-remaining-requests", left.into());
        headers.insert(
            "x-ratelimit-reset-requests",
            http::HeaderValue::from_static("2s"),
        );
    }
    response
}

/// The normal chat or completion reply; a stream takes over the in-flight guard.
fn generate(
    shared: &Shared,
    behavior: &Behavior,
    parsed: Result<GenerateRequest, String>,
    kind: StreamKind,
    in_flight: InFlight,
) -> Response {
    let req = match parsed {
        Ok(req) => req,
        Err(message) => return invalid_request(&message),
    };
    let n = shared.next_id();
    let id = match kind {
        StreamKind::Chat => reply::chat_id(n),
        StreamKind::Completion => reply::completion_id(n),
    };
    let name = behavior.label();
    let chunks = behavior.chunks();
    if req.stream {
        let plan = StreamPlan {
            kind,
            id,
            model: req.model,
            name: name.to_owned(),
            chunks,
            interval: behavior.chunk_interval(),
            include_usage: req.include_usage,
            prompt_tokens: req.prompt_tokens,
            fault: behavior.stream_fault(),
        };
        let (stats, life) = (Arc::clone(&shared.stats), Arc::clone(&shared.life));
        return sse_response(plan, stats, life, in_flight);
    }
    let value = match kind {
        StreamKind::Chat => {
            reply::chat_completion(&id, &req.model, name, chunks, req.prompt_tokens)
        }
        StreamKind::Completion => {
            reply::text_completion(&id, &req.model, name, chunks, req.prompt_tokens)
        }
    };
    json_response(StatusCode::OK, &value)
}

/// What a handler returns after killing its connection; the client never sees it.
fn dropped() -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "mock stopped",
    )
}
