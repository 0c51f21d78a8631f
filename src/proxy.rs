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
use crate::health::GroupBreaker;
use crate::provider::ErrorClass;
use crate::request::ClientRequest;
use crate::route::{Route, Tier};
use crate::snapshot::Snapshot;
use crate::stats::{Attempt, Outcome, clock_ns};
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
    /// Instances this request may not pick again: attempted, or turned away by their gate.
    pub tried: Vec<usize>,
    /// Of `tried`, the ones turned away without an attempt.
    pub skipped: Vec<usize>,
}

impl Trace {
    fn attempted(&self, instance: usize) -> bool {
        self.tried.contains(&instance) && !self.skipped.contains(&instance)
    }
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
        skipped: Vec::new(),
    };
    let mut last: Option<(Arc<Instance>, AttemptError)> = None;
    // Echelons of one group are adjacent tiers: its breaker admits the request once.
    let mut admitted: Option<&Arc<GroupBreaker>> = None;
    let mut refused_groups = false;
    for tier in &route.tiers {
        if let Some(group) = &tier.group {
            if !admitted.is_some_and(|a| Arc::ptr_eq(a, group)) {
                if !snap.health.group_admit(group, clock_ns()) {
                    refused_groups = true;
                    continue;
                }
                admitted = Some(group);
            }
        }
        let mut made = 0;
        while made < tier.max_attempts {
            let now = clock_ns();
            let pick = tier.strategy.pick(&Candidates {
                members: &tier.members,
                tried: &trace.tried,
                retry: made > 0,
                now_ns: now,
            });
            let Some(instance) = pick.and_then(|p| snap.instances.get(tier.members[p].instance))
            else {
                break;
            };
            let instance = Arc::clone(instance);
            trace.tried.push(instance.index);
            // The gate's last word: a half-open breaker's trial permit, a slow start's ramp.
            if !snap.health.admit(&instance, now) {
                trace.skipped.push(instance.index);
                continue;
            }
            made += 1;
            let tried = try_instance(upstream, &snap, &req, tier, &instance, &mut trace).await;
            match tried {
                Ok(response) => return Ok(response),
                Err(e) => last = Some((instance, e)),
            }
        }
    }
    if trace.attempts == 0 && !refused_groups {
        // Nothing admitted anywhere: rather than fail, the least-bad instance (panic mode).
        let least = least_bad(&snap, &route, &trace);
        let least = least.filter(|(_, i)| snap.health.admit_breaker(i, clock_ns()));
        if let Some((tier, instance)) = least {
            if instance.live.is_gated() {
                snap.health.panic(&route.name, &instance.spec.id);
            }
            trace.tried.push(instance.index);
            let tried = try_instance(upstream, &snap, &req, tier, &instance, &mut trace).await;
            match tried {
                Ok(response) => return Ok(response),
                Err(e) => last = Some((instance, e)),
            }
        }
    }
    Err(final_error(&snap, &route, &trace, last))
}

/// One attempt, with everything it teaches: failure recorded (health included), a 429's
/// cool-down, the task group breaker's verdict.
async fn try_instance(
    upstream: &Upstream,
    snap: &Arc<Snapshot>,
    req: &ClientRequest,
    tier: &Tier,
    instance: &Arc<Instance>,
    trace: &mut Trace,
) -> Result<Response, AttemptError> {
    trace.attempts += 1;
    let timeout = tier.timeout.unwrap_or(instance.spec.timeout);
    let attempt_started = Instant::now();
    match attempt(upstream, snap, req, instance, timeout, trace).await {
        Ok(response) => {
            if let Some(group) = &tier.group {
                snap.health.group_outcome(group, false, clock_ns());
            }
            Ok(response)
        }
        // Client faults come back as responses, so every error here is the instance's.
        Err(e) => {
            record(
                snap,
                instance,
                Outcome::Failure(e.class),
                attempt_started,
                None,
            );
            let now = clock_ns();
            if let Some(rest) = e.cooldown {
                snap.health.cool_down(instance, rest, now);
            }
            if let Some(group) = &tier.group {
                snap.health
                    .group_outcome(group, e.class.counts_against_instance(), now);
            }
            tracing::warn!(
                route = %trace.route,
                tier = %tier.label,
                instance = %instance.spec.id,
                class = e.class.as_str(),
                detail = %e.detail,
                "attempt failed"
            );
            Err(e)
        }
    }
}

/// Panic mode's choice: of the route's members not yet tried, not draining and not behind an
/// open breaker, the one with the fewest consecutive failures (not ejected before ejected).
fn least_bad<'r>(
    snap: &Snapshot,
    route: &'r Route,
    trace: &Trace,
) -> Option<(&'r Tier, Arc<Instance>)> {
    let now = clock_ns();
    route
        .tiers
        .iter()
        .flat_map(|tier| tier.members.iter().map(move |m| (&**tier, m)))
        .filter(|(_, m)| !m.live.is_draining() && !trace.attempted(m.instance))
        .filter_map(|(tier, m)| Some((tier, snap.instances.get(m.instance)?)))
        .filter(|(_, i)| !i.live.gate().breaker.refuses(&i.spec.breaker, now))
        .min_by_key(|(_, i)| (i.live.gate().is_ejected(), i.live.consecutive_failures()))
        .map(|(tier, i)| (tier, Arc::clone(i)))
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
        let cooldown = (class == ErrorClass::RateLimited)
            .then(|| crate::health::cooldown::from_headers(&head.headers));
        let body = reply::read_body(body, MAX_REPLY_BYTES, deadline)
            .await
            .unwrap_or_default();
        if class == ErrorClass::Client {
            // The client's own mistake: hand the provider's answer back unchanged.
            record(snap, instance, Outcome::Failure(class), started, None);
            log_done(trace, instance, status, false, None, None, "client_error");
            return Ok(respond(status, content_type, body.into(), trace, instance));
        }
        return Err(AttemptError {
            class,
            detail: format!("upstream answered {status}: {}", reply::snippet(&body)),
            retry_after,
            cooldown,
        });
    }
    if req.stream && reply::is_event_stream(&head.headers) {
        return stream::start(status, body, guard, snap, trace, deadline, timeout, None).await;
    }
    let body = reply::read_body(body, MAX_REPLY_BYTES, deadline).await?;
    let usage = reply::check(&body)?;
    record(snap, instance, usage.outcome(), started, None);
    log_done(trace, instance, status, false, Some(usage), None, "ok");
    drop(guard);
    Ok(respond(status, content_type, body.into(), trace, instance))
}

/// Report one finished attempt to the snapshot's recorder, then to health (which may eject
/// the instance or move its breaker).
pub(crate) fn record(
    snap: &Snapshot,
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
    let now = clock_ns();
    snap.recorder
        .record(&instance.live, instance.spec.price, &attempt, now);
    snap.health.observe(snap, instance, &outcome, now);
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
    route: &Route,
    trace: &Trace,
    last: Option<(Arc<Instance>, AttemptError)>,
) -> Error {
    let Some((instance, e)) = last else {
        // Nothing was attempted: every breaker on the way is open. Say when to come back.
        let now = clock_ns();
        let groups = route.tiers.iter().filter_map(|t| t.group.as_ref());
        let reopen = (groups.map(|g| match g.state() {
            crate::health::BreakerState::Open { until_ns } => until_ns,
            _ => now,
        }))
        .chain(
            route
                .tiers
                .iter()
                .flat_map(|t| &t.members)
                .filter_map(|m| m.live.gate().next_change()),
        )
        .filter(|&t| t > now)
        .min();
        let retry_after = reopen
            .map(|t| (t - now).div_ceil(1_000_000_000))
            .map(HeaderValue::from);
        return Error::Upstream {
            route: trace.route.to_string(),
            class: ErrorClass::Connect,
            detail: "no instance is available: every instance is ejected or behind an open circuit breaker".to_owned(),
            retry_after,
        };
    };
    let tried: Vec<&str> = trace
        .tried
        .iter()
        .filter(|&&i| trace.attempted(i))
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
