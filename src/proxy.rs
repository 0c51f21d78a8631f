//! The request path: walk a route's tiers, pick an instance with the tier's strategy, send,
//! and fail over to another instance on a retryable error. Nothing has been sent to the client
//! until an attempt succeeds, so failover is invisible to it.
//!
//! - `stream`: Server-Sent Events passed through chunk by chunk, with accounting.
//! - `reply`: reading and checking a whole (non-streamed) upstream reply.

mod history;
mod plan;
mod reply;
mod stream;
mod trace;
mod translate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use crate::error::Error;
use crate::limit::Permits;
use crate::provider::ErrorClass;
use crate::request::ClientRequest;
use crate::route::{Step, Tier};
use crate::snapshot::Snapshot;
use crate::stats::{Attempt, Outcome, clock_ms, clock_ns};
use crate::upstream::{AttemptError, Instance, Upstream};

/// With `enable_response_logging`, at most this much of a reply is logged.
const RESPONSE_LOG_BYTES: usize = 2048;

/// Largest non-streamed upstream reply accepted (64 MiB: far above any chat or embedding reply).
const MAX_REPLY_BYTES: usize = 64 << 20;

const ROUTE_HEADER: http::HeaderName = http::HeaderName::from_static("x-switchyard-route");
const INSTANCE_HEADER: http::HeaderName = http::HeaderName::from_static("x-switchyard-instance");
const ATTEMPTS_HEADER: http::HeaderName = http::HeaderName::from_static("x-switchyard-attempts");
const TRACE_HEADER: http::HeaderName = http::HeaderName::from_static("x-switchyard-trace");

pub use history::{FallbackLog, FallbackRecord};
pub use trace::AttemptReport;
pub(crate) use trace::Trace;

pub async fn forward(
    upstream: &Upstream,
    snap: Arc<Snapshot>,
    req: ClientRequest,
) -> Result<Response, Error> {
    let plan = plan::plan_for(&snap, &req)?;
    // The calling client's own limits, once per request (held until its response ends).
    let mut client = Permits::waking(&snap.queue);
    if let Some(limits) = snap.clients.get(req.options.client.as_deref()) {
        let now_ms = clock_ms();
        if let Err(r) = limits.admit(req.estimate_tokens(), now_ms, &mut client) {
            let secs = r.retry_after.as_secs_f64().ceil().max(1.0) as u64;
            return Err(Error::Upstream {
                route: plan.name.to_string(),
                class: ErrorClass::RateLimited,
                detail: format!(
                    "{} is over its limit ({}); retry in {secs} s",
                    limits.name, r.what
                ),
                retry_after: Some(HeaderValue::from(secs)),
                attempts: Vec::new(),
                headroom: Some(Box::new(r.headroom)),
            });
        }
    }
    let deadline = plan::deadline(&snap, &req);
    // With a queue, a route that is simply full waits for room (never past the deadline).
    let queue_until = snap.config.queue.map(|q| {
        let until = tokio::time::Instant::now() + q.timeout;
        deadline.map_or(until, |d| d.min(until))
    });
    loop {
        let failed = match walk(upstream, &snap, &req, &plan, deadline, &mut client).await {
            Ok(response) => return Ok(response),
            Err(failed) => failed,
        };
        let full = failed.trace.attempts == 0 && failed.walk.retry_limited.is_some();
        let now = tokio::time::Instant::now();
        if let (true, Some(until)) = (full, queue_until.filter(|u| now < *u)) {
            let hint = failed
                .walk
                .retry_limited
                .unwrap_or(Duration::from_millis(10));
            let client_name = req.options.client.as_deref().unwrap_or("anonymous");
            if let Some(ticket) = snap.queue.join(client_name) {
                ticket.wait(hint.min(until - now)).await;
                continue;
            }
        }
        client.settle_tokens(0, clock_ms());
        if let Some(stats) = plan.stats {
            stats.failed();
        }
        return Err(final_error(&snap, &plan, &failed.trace, failed.walk));
    }
}

/// What a walk that served nothing leaves for the error.
struct Failed {
    trace: Trace,
    walk: plan::Walk,
}

/// One walk over the plan: the response of the first attempt that succeeds.
async fn walk(
    upstream: &Upstream,
    snap: &Arc<Snapshot>,
    req: &ClientRequest,
    plan: &plan::Plan<'_>,
    deadline: Option<tokio::time::Instant>,
    client: &mut Permits,
) -> Result<Response, Failed> {
    let mut trace = Trace::new(
        Arc::clone(&plan.name),
        plan.header.clone(),
        req.options.trace,
        Arc::clone(&req.options.request_id),
        snap.config.telemetry.log_requests,
        plan.stats.cloned(),
    );
    trace.client_spend = (req.options.client.as_deref()).map(|c| snap.client_spend.of(c));
    let mut walk = plan::Walk::default();
    let limit = plan.max_attempts.unwrap_or(u32::MAX);
    let mut groups = plan::GroupRun::default();
    'steps: for (si, step) in plan.steps.iter().enumerate() {
        let tier = &*step.tier;
        if !groups.enter(snap, tier) {
            walk.refused_groups = true;
            continue;
        }
        plan::note_refused(snap, tier, si, &mut trace);
        let (mut made, mut round) = (0, 1);
        let mut local: Vec<usize> = Vec::new();
        while made < tier.max_attempts {
            if trace.attempts >= limit {
                walk.stopped = Some("max_attempts reached");
                break 'steps;
            }
            let Some(instance) = plan::pick(snap, tier, &trace, &local, made > 0) else {
                if round < tier.max_instance_attempts && plan::new_round(tier, &mut trace) {
                    round += 1;
                    // The round starts anywhere but where the last one ended.
                    local.clear();
                    local.extend(walk.last.as_ref().map(|(i, _)| i.index));
                    continue;
                }
                break;
            };
            if round > 1 && tier.rotate == crate::route::Rotate::Instance {
                local.clear();
            }
            trace.tried.push(instance.index);
            // What the model cannot do (tools, images, context, the operation) is passed over.
            if let Some(why) = instance.spec.caps.refuses(req) {
                trace.skipped.push(instance.index);
                trace.skip(si, instance.index, why);
                walk.unfit = Some(why);
                continue;
            }
            // The gate's last word: a half-open breaker's trial permit, a slow start's ramp.
            let now = clock_ns();
            if !snap.health.admit(&instance, now) {
                trace.skipped.push(instance.index);
                trace.skip(si, instance.index, plan::refusal(&instance, now));
                continue;
            }
            if !plan::backoff(snap, tier, &mut walk, deadline).await {
                break 'steps;
            }
            let Some(timeout) = plan::attempt_timeout(tier, &instance, deadline) else {
                walk.stopped = Some("the request's deadline passed");
                break 'steps;
            };
            // Limits: the tier's and the instance's, all or nothing; a full one is passed over.
            let permits = match plan::admit_limits(tier, &instance, req, &snap.queue) {
                Ok(p) => p,
                Err(r) => {
                    trace.skipped.push(instance.index);
                    trace.skip(si, instance.index, r.refusal.what);
                    walk.limited(&r.refusal);
                    if r.tier_wide {
                        // The tier is full: its other members would be refused too.
                        break;
                    }
                    continue;
                }
            };
            made += 1;
            let since = Instant::now();
            let call = Call {
                upstream,
                snap,
                req,
                tier,
                instance: &instance,
                timeout,
            };
            let tried = try_instance(call, &mut trace, permits, client).await;
            match tried {
                Ok(response) => {
                    // The happy path (first attempt, first step) needs no entry.
                    if trace.verbose || trace.attempts > 1 || si > 0 {
                        plan::note(&mut trace, si, &instance, Ok(()), since);
                    }
                    groups.served(snap);
                    client.settle_tokens(0, clock_ms());
                    return Ok(served(snap, plan, step, si, &trace, response));
                }
                Err(e) => {
                    plan::note(&mut trace, si, &instance, Err(&e), since);
                    groups.failed(e.class);
                    let goes_on = snap.config.retry.goes_on(e.class);
                    if tier.rotate != crate::route::Rotate::Instance {
                        plan::rotate_away(snap, tier, &instance, &trace.tried, &mut local);
                    }
                    walk.pending = Some(e.class);
                    walk.last = Some((instance, e));
                    if !goes_on {
                        walk.stopped = Some("its error class is not in retry_on_errors");
                        break 'steps;
                    }
                }
            }
        }
    }
    groups.leave(snap);
    // Limits are hard: panic mode is for health, not for a route that is simply full.
    let full = walk.retry_limited.is_some();
    if trace.attempts == 0 && !walk.refused_groups && walk.stopped.is_none() && !full {
        // Nothing admitted anywhere: rather than fail, the least-bad instance (panic mode).
        let least = least_bad(snap, &plan.steps, &trace, req);
        let least = least.filter(|(_, _, i)| snap.health.admit_breaker(i, clock_ns()));
        if let Some((si, tier, instance)) = least {
            if instance.live.is_gated() {
                snap.health.panic(&plan.name, &instance.spec.id);
            }
            trace.tried.push(instance.index);
            let permits = plan::admit_limits(tier, &instance, req, &snap.queue);
            if let Err(r) = &permits {
                walk.limited(&r.refusal);
            }
            let timeout = plan::attempt_timeout(tier, &instance, deadline);
            if let (Some(timeout), Ok(permits)) = (timeout, permits) {
                let since = Instant::now();
                let call = Call {
                    upstream,
                    snap,
                    req,
                    tier,
                    instance: &instance,
                    timeout,
                };
                let tried = try_instance(call, &mut trace, permits, client).await;
                match tried {
                    Ok(response) => {
                        plan::note(&mut trace, si, &instance, Ok(()), since);
                        let step = &plan.steps[si];
                        client.settle_tokens(0, clock_ms());
                        return Ok(served(snap, plan, step, si, &trace, response));
                    }
                    Err(e) => {
                        plan::note(&mut trace, si, &instance, Err(&e), since);
                        walk.last = Some((instance, e));
                    }
                }
            }
        }
    }
    Err(Failed { trace, walk })
}

/// A served response: statistics, the fallback history, the trace header.
fn served(
    snap: &Snapshot,
    plan: &plan::Plan<'_>,
    step: &Step,
    si: usize,
    trace: &Trace,
    mut response: Response,
) -> Response {
    if let Some(stats) = plan.stats {
        stats.served_by(step.why);
    }
    if si > 0 || trace.attempts > 1 {
        snap.fallbacks.push(
            &plan.name,
            Some((&step.tier.label, step.why)),
            trace,
            snap,
            &plan.steps,
        );
    }
    if trace.verbose {
        if let Some(v) = trace.header(snap, &plan.steps) {
            response.headers_mut().insert(TRACE_HEADER, v);
        }
    }
    response
}

/// One attempt's inputs.
#[derive(Clone, Copy)]
struct Call<'a> {
    upstream: &'a Upstream,
    snap: &'a Arc<Snapshot>,
    req: &'a ClientRequest,
    tier: &'a Tier,
    instance: &'a Arc<Instance>,
    timeout: Duration,
}

/// One attempt, with what a failure teaches: recorded (health included), a 429's cool-down.
async fn try_instance(
    call: Call<'_>,
    trace: &mut Trace,
    permits: Permits,
    client: &mut Permits,
) -> Result<Response, AttemptError> {
    let Call {
        snap,
        tier,
        instance,
        ..
    } = call;
    trace.attempts += 1;
    let attempt_started = Instant::now();
    match attempt(call, trace, permits, client).await {
        Ok(response) => Ok(response),
        // Client faults come back as responses, so every error here is the instance's, except
        // the gateway's own resource exhaustion (`local`), which is not held against it.
        Err(e) => {
            if !e.local {
                record(
                    snap,
                    instance,
                    Outcome::Failure(e.class),
                    attempt_started,
                    None,
                );
            }
            let now = clock_ns();
            if let Some(rest) = e.cooldown {
                snap.health.cool_down(instance, rest, now);
            }
            tracing::warn!(
                request_id = %trace.request_id,
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

/// Panic mode's choice: of the plan's members not yet tried, not draining and not behind an
/// open breaker, the one with the fewest consecutive failures (not ejected before ejected).
fn least_bad<'r>(
    snap: &Snapshot,
    steps: &'r [Step],
    trace: &Trace,
    req: &ClientRequest,
) -> Option<(usize, &'r Tier, Arc<Instance>)> {
    let now = clock_ns();
    (steps.iter().enumerate())
        .flat_map(|(si, s)| s.tier.members.iter().map(move |m| (si, &*s.tier, m)))
        .filter(|(_, _, m)| !m.live.is_draining() && !trace.attempted(m.instance))
        .filter_map(|(si, tier, m)| Some((si, tier, snap.instances.get(m.instance)?)))
        .filter(|(_, _, i)| !i.live.gate().breaker.refuses(&i.spec.breaker, now))
        .filter(|(_, _, i)| i.spec.caps.refuses(req).is_none())
        .min_by_key(|(_, _, i)| (i.live.gate().is_ejected(), i.live.consecutive_failures()))
        .map(|(si, tier, i)| (si, tier, Arc::clone(i)))
}

/// One attempt on one instance: a finished response, or why this instance failed.
async fn attempt(
    call: Call<'_>,
    trace: &Trace,
    permits: Permits,
    client: &mut Permits,
) -> Result<Response, AttemptError> {
    let Call {
        upstream,
        snap,
        req,
        tier,
        instance,
        timeout,
    } = call;
    let mut guard = instance.start(permits);
    let started = guard.since();
    let (body, url) = match instance.adapter.encode(req, &instance.spec, &tier.defaults) {
        Ok(encoded) => encoded,
        Err(refusal) => return refused(refusal, snap, instance, trace, started),
    };
    let request = instance.request(req.op, req.stream, body, url)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let (head, body) = upstream.send(request, timeout).await?.into_parts();
    let status = head.status;
    if status.is_success() {
        // The provider's own headroom: nearly out means full now, not after its first 429.
        let others = instance.live.in_flight().saturating_sub(1);
        if let Some(rest) = crate::health::cooldown::exhausted(&head.headers, others) {
            snap.health.cool_down(instance, rest, clock_ns());
        }
    }
    let content_type = head.headers.get(header::CONTENT_TYPE).cloned();
    if !status.is_success() {
        let retry_after = head.headers.get(header::RETRY_AFTER).cloned();
        let body = reply::read_body(body, MAX_REPLY_BYTES, deadline)
            .await
            .unwrap_or_default();
        let class = instance.adapter.classify_reply(status, &body);
        let cooldown = (class == ErrorClass::RateLimited)
            .then(|| crate::health::cooldown::from_headers(&head.headers));
        if class == ErrorClass::Client {
            // The client's own mistake: hand the provider's answer back (in OpenAI's shape).
            record(snap, instance, Outcome::Failure(class), started, None);
            log_done(trace, instance, status, false, None, None, "client_error");
            let (content_type, body) = match instance.adapter.client_error(status, &body) {
                Some(openai) => (None, openai),
                None => (content_type, body),
            };
            return Ok(respond(status, content_type, body.into(), trace, instance));
        }
        return Err(AttemptError {
            class,
            detail: format!("upstream answered {status}: {}", reply::snippet(&body)),
            retry_after,
            cooldown,
            local: false,
        });
    }
    if req.stream && reply::is_event_stream(&head.headers) {
        let ttft = tier.ttft_timeout;
        // The client's permits last as long as the stream it is served.
        guard.absorb(std::mem::take(client));
        let body = match instance.adapter.stream_decoder(&instance.spec) {
            Some(decoder) => translate::UpBody::decoded(body, decoder, req.include_usage),
            None => translate::UpBody::Raw(body),
        };
        return stream::start(status, body, guard, snap, trace, deadline, timeout, ttft).await;
    }
    let body = reply::read_body(body, MAX_REPLY_BYTES, deadline).await?;
    let body = match instance.adapter.decode(req, &instance.spec, &body) {
        Ok(None) => body,
        Ok(Some(openai)) => openai,
        Err((class, detail)) => return Err(AttemptError::new(class, detail)),
    };
    if snap.config.telemetry.log_responses {
        tracing::info!(
            target: "switchyard::response",
            request_id = &*trace.request_id,
            instance = instance.spec.id.as_str(),
            body = %String::from_utf8_lossy(&body[..body.len().min(RESPONSE_LOG_BYTES)]),
            "response"
        );
    }
    let content_type = if instance.spec.api.is_native() {
        None
    } else {
        content_type
    };
    let usage = reply::check(&body)?;
    record(snap, instance, usage.outcome(), started, None);
    guard.absorb(std::mem::take(client));
    guard.settle(usage.prompt_tokens + usage.completion_tokens);
    log_done(trace, instance, status, false, Some(usage), None, "ok");
    drop(guard);
    Ok(respond(status, content_type, body.into(), trace, instance))
}

/// A request its adapter cannot send (the client's request does not translate, or the API has
/// no such operation): a 400 naming the instance and why, like an upstream refusing it. The
/// instance's health is untouched.
fn refused(
    refusal: crate::provider::Refusal,
    snap: &Snapshot,
    instance: &Instance,
    trace: &Trace,
    started: Instant,
) -> Result<Response, AttemptError> {
    let (crate::provider::Refusal::Client(reason) | crate::provider::Refusal::Unsupported(reason)) =
        refusal;
    record(
        snap,
        instance,
        Outcome::Failure(ErrorClass::Client),
        started,
        None,
    );
    let status = StatusCode::BAD_REQUEST;
    log_done(trace, instance, status, false, None, None, "client_error");
    let detail = format!(
        "{} ({}): {reason}",
        instance.spec.id,
        instance.spec.api.as_str()
    );
    let body = crate::provider::openai_error(&detail, "invalid_request_error");
    Ok(respond(status, None, body.into(), trace, instance))
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
    let price = instance.spec.price;
    for spend in [
        trace.spend.as_ref().map(|r| &r.spend),
        trace.client_spend.as_deref(),
    ]
    .into_iter()
    .flatten()
    {
        spend.spent(price, usage.prompt_tokens, usage.completion_tokens);
    }
    if !trace.log_requests {
        return;
    }
    tracing::info!(
        target: "switchyard::access",
        request_id = &*trace.request_id,
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

fn final_error(snap: &Snapshot, plan: &plan::Plan<'_>, trace: &Trace, walk: plan::Walk) -> Error {
    let attempts = trace.report(snap, &plan.steps);
    snap.fallbacks
        .push(&plan.name, None, trace, snap, &plan.steps);
    let Some((instance, e)) = walk.last else {
        if let Some(wait) = walk.retry_limited {
            // Every candidate is at its limits: come back when the first has room.
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            return Error::Upstream {
                route: trace.route.to_string(),
                class: ErrorClass::RateLimited,
                detail: format!(
                    "every instance of the route is at its rate or concurrency limit; retry in {secs} s"
                ),
                retry_after: Some(HeaderValue::from(secs)),
                headroom: walk.headroom.map(Box::new),
                attempts,
            };
        }
        if let (Some(why), None) = (walk.unfit, walk.stopped) {
            // Nothing tried because nothing on the route can serve this request.
            return Error::BadRequest(format!(
                "no instance of {:?} can serve this request: {why}",
                trace.route
            ));
        }
        if let Some(why) = walk.stopped {
            return Error::Upstream {
                route: trace.route.to_string(),
                class: ErrorClass::Timeout,
                detail: format!("no attempt was made: {why}"),
                retry_after: None,
                headroom: None,
                attempts,
            };
        }
        // Nothing was attempted: every breaker on the way is open. Say when to come back.
        let now = clock_ns();
        let tiers = || plan.steps.iter().map(|s| &*s.tier);
        let reopen = (tiers()
            .filter_map(|t| t.group.as_ref())
            .map(|g| match g.state() {
                crate::health::BreakerState::Open { until_ns } => until_ns,
                _ => now,
            }))
        .chain(
            tiers()
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
            attempts,
            headroom: None,
        };
    };
    let tried: Vec<&str> = trace
        .tried
        .iter()
        .filter(|&&i| trace.attempted(i))
        .filter_map(|&i| snap.instances.get(i))
        .map(|i| i.spec.id.as_str())
        .collect();
    let stopped = walk
        .stopped
        .map(|why| format!(" (stopped: {why})"))
        .unwrap_or_default();
    let error = Error::Upstream {
        route: trace.route.to_string(),
        class: e.class,
        detail: format!(
            "all {} attempts failed (tried {}){stopped}; last: instance {:?}: {} ({})",
            trace.attempts,
            tried.join(", "),
            instance.spec.id,
            e.detail,
            e.class.as_str()
        ),
        retry_after: e.retry_after,
        headroom: None,
        attempts,
    };
    tracing::warn!(
        target: "switchyard::access",
        request_id = %trace.request_id,
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
