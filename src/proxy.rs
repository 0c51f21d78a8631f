//! The request path: walk a route's tiers, pick an instance with the tier's strategy, send,
//! and fail over to another instance on a retryable error. Nothing has been sent to the client
//! until an attempt succeeds, so failover is invisible to it.
//!
//! - `stream`: Server-Sent Events passed through chunk by chunk, with accounting.
//! - `reply`: reading and checking a whole (non-streamed) upstream reply.

mod reply;
mod stream;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use crate::balance::Candidates;
use crate::error::Error;
use crate::provider::ErrorClass;
use crate::request::ClientRequest;
use crate::snapshot::Snapshot;
use crate::stats::{Attempt, Outcome, Recorder, clock_ns};
use crate::upstream::{AttemptError, Instance, Upstream};

/// Largest non-streamed upstream reply accepted (64 MiB: far above any chat or embedding reply).
const MAX_REPLY_BYTES: usize = 64 << 20;

const ROUTE_HEADER: http::HeaderName = http::HeaderName::from_static("x-switchyard-route");
const INSTANCE_HEADER: http::HeaderName = http::HeaderName::from_static("x-switchyard-instance");
const ATTEMPTS_HEADER: http::HeaderName = http::HeaderName::from_static("x-switchyard-attempts");

/// What the access log line and response headers say about a request.
pub(crate) struct Trace {
    pub route: Arc<str>,
    pub route_header: Option<HeaderValue>,
    pub started: Instant,
    pub attempts: u32,
    pub tried: Vec<usize>,
}

pub async fn forward(
    upstream: &Upstream,
    snap: Arc<Snapshot>,
    req: ClientRequest,
) -> Result<Response, Error> {
    let Some(route) = snap.route(&req.model).cloned() else {
        return Err(Error::ModelNotFound(req.model));
    };
    let mut trace = Trace {
        route: Arc::clone(&route.name),
        route_header: route.header.clone(),
        started: Instant::now(),
        attempts: 0,
        tried: Vec::with_capacity(4),
    };
    let mut last: Option<(Arc<Instance>, AttemptError)> = None;
    for tier in &route.tiers {
        for attempt_in_tier in 0..tier.max_attempts {
            let pick = tier.strategy.pick(&Candidates {
                members: &tier.members,
                tried: &trace.tried,
                retry: attempt_in_tier > 0,
                now_ns: clock_ns(),
            });
            let Some(instance) = pick.and_then(|p| snap.instances.get(tier.members[p].instance))
            else {
                break;
            };
            let instance = Arc::clone(instance);
            trace.tried.push(instance.index);
            trace.attempts += 1;
            let timeout = tier.timeout.unwrap_or(instance.spec.timeout);
            let attempt_started = Instant::now();
            match attempt(upstream, &snap, &req, &instance, timeout, &trace).await {
                Ok(response) => return Ok(response),
                // Client faults come back as responses, so every error here is the instance's.
                Err(e) => {
                    record(
                        &*snap.recorder,
                        &instance,
                        Outcome::Failure(e.class),
                        attempt_started,
                        None,
                    );
                    tracing::warn!(
                        route = %trace.route,
                        tier = %tier.label,
                        instance = %instance.spec.id,
                        class = e.class.as_str(),
                        detail = %e.detail,
                        "attempt failed"
                    );
                    last = Some((instance, e));
                }
            }
        }
    }
    Err(final_error(&snap, &trace, last))
}

/// One attempt on one instance: a finished response, or why this instance failed.
async fn attempt(
    upstream: &Upstream,
    snap: &Arc<Snapshot>,
    req: &ClientRequest,
    instance: &Arc<Instance>,
    timeout: std::time::Duration,
    trace: &Trace,
) -> Result<Response, AttemptError> {
    let guard = instance.start();
    let started = guard.since();
    let request = instance.request(req.op, req.body_for(&instance.spec.upstream_model))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let (head, body) = upstream.send(request, timeout).await?.into_parts();
    let status = head.status;
    let content_type = head.headers.get(header::CONTENT_TYPE).cloned();
    if !status.is_success() {
        let class = instance.adapter.classify(status);
        let retry_after = head.headers.get(header::RETRY_AFTER).cloned();
        let body = reply::read_body(body, MAX_REPLY_BYTES, deadline)
            .await
            .unwrap_or_default();
        if class == ErrorClass::Client {
            // The client's own mistake: hand the provider's answer back unchanged.
            record(
                &*snap.recorder,
                instance,
                Outcome::Failure(class),
                started,
                None,
            );
            log_done(trace, instance, status, false, None, None, "client_error");
            return Ok(respond(status, content_type, body.into(), trace, instance));
        }
        return Err(AttemptError {
            class,
            detail: format!("upstream answered {status}: {}", reply::snippet(&body)),
            retry_after,
        });
    }
    if req.stream && reply::is_event_stream(&head.headers) {
        return stream::start(status, body, guard, snap, trace, deadline, timeout).await;
    }
    let body = reply::read_body(body, MAX_REPLY_BYTES, deadline).await?;
    let usage = reply::check(&body)?;
    record(&*snap.recorder, instance, usage.outcome(), started, None);
    log_done(trace, instance, status, false, Some(usage), None, "ok");
    drop(guard);
    Ok(respond(status, content_type, body.into(), trace, instance))
}

/// Report one finished attempt to `recorder` (the snapshot's).
pub(crate) fn record(
    recorder: &dyn Recorder,
    instance: &Instance,
    outcome: Outcome,
    started: Instant,
    ttft: Option<std::time::Duration>,
) {
    let attempt = Attempt {
        outcome,
        latency: started.elapsed(),
        ttft,
    };
    recorder.record(&instance.live, instance.spec.price, &attempt, clock_ns());
}

fn respond(
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Body,
    trace: &Trace,
    instance: &Instance,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("application/json")),
    );
    add_trace_headers(headers, trace, instance);
    response
}

pub(crate) fn add_trace_headers(headers: &mut http::HeaderMap, trace: &Trace, instance: &Instance) {
    if let Some(v) = &trace.route_header {
        headers.insert(ROUTE_HEADER, v.clone());
    }
    if let Some(v) = &instance.id_header {
        headers.insert(INSTANCE_HEADER, v.clone());
    }
    headers.insert(ATTEMPTS_HEADER, HeaderValue::from(trace.attempts));
}

pub(crate) fn log_done(
    trace: &Trace,
    instance: &Instance,
    status: StatusCode,
    stream: bool,
    usage: Option<reply::Usage>,
    ttft: Option<std::time::Duration>,
    outcome: &str,
) {
    let usage = usage.unwrap_or_default();
    tracing::info!(
        target: "switchyard::access",
        route = &*trace.route,
        instance = instance.spec.id.as_str(),
        attempts = trace.attempts,
        status = status.as_u16(),
        latency_ms = millis(trace.started.elapsed()),
        stream,
        ttft_ms = ttft.map(millis),
        prompt_tokens = usage.prompt_tokens,
        completion_tokens = usage.completion_tokens,
        outcome,
        "request"
    );
}

fn final_error(
    snap: &Snapshot,
    trace: &Trace,
    last: Option<(Arc<Instance>, AttemptError)>,
) -> Error {
    let Some((instance, e)) = last else {
        return Error::Upstream {
            route: trace.route.to_string(),
            class: ErrorClass::Connect,
            detail: "no instance is available".to_owned(),
            retry_after: None,
        };
    };
    let tried: Vec<&str> = trace
        .tried
        .iter()
        .filter_map(|&i| snap.instances.get(i))
        .map(|i| i.spec.id.as_str())
        .collect();
    let error = Error::Upstream {
        route: trace.route.to_string(),
        class: e.class,
        detail: format!(
            "all {} attempts failed (tried {}); last: instance {:?}: {} ({})",
            trace.attempts,
            tried.join(", "),
            instance.spec.id,
            e.detail,
            e.class.as_str()
        ),
        retry_after: e.retry_after,
    };
    tracing::warn!(
        target: "switchyard::access",
        route = %trace.route,
        instance = %instance.spec.id,
        attempts = trace.attempts,
        status = error.status().as_u16(),
        latency_ms = millis(trace.started.elapsed()),
        class = e.class.as_str(),
        outcome = "failed",
        "request"
    );
    error
}

/// Milliseconds with microsecond precision, printed short (`46.867`, not `46.866783000000005`).
pub(crate) fn millis(d: std::time::Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}
