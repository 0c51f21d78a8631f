//! `GET /admin/status`: what the gateway is doing, in one reading. The dashboard polls it once a
//! second; an operator's `curl` gets the same picture. Nothing here is on the request path: it
//! reads the counters the requests already keep.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::balance::StrategyKind;
use crate::config::RouteKind;
use crate::gateway::Gateway;
use crate::health::Health;
use crate::stats::{LatencyCounts, clock_ns, quantile, since};
use crate::upstream::Instance;

/// Latency quantiles cover about this much of the recent past (from the sampled history).
const RECENT_MS: u64 = 5 * 60 * 1000;
/// Events included.
const EVENTS: usize = 20;

#[derive(Serialize)]
struct InstanceStatus<'a> {
    id: &'a str,
    model: &'a str,
    provider: &'a str,
    /// One word for the operator: `healthy`, `degraded`, `unhealthy`, `ejected`,
    /// `breaker_open`, `breaker_half_open` or `draining`.
    state: &'static str,
    /// Why, when it is not `healthy` (e.g. "3 failures in a row").
    reason: Option<String>,
    weight: u32,
    in_flight: u64,
    /// Attempts in the last 60 s.
    rpm: u64,
    /// Share of the last 60 s's attempts that failed (0 without attempts).
    error_rate: f64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    /// What the quantiles cover, seconds (`null`: everything since the instance started).
    latency_window_s: Option<f64>,
    requests: u64,
    failures: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost: f64,
}

#[derive(Serialize)]
struct TierStatus<'a> {
    name: &'a str,
    strategy: &'static str,
    members: Vec<&'a str>,
}

#[derive(Serialize)]
struct GroupStatus<'a> {
    name: &'a str,
    /// The task group breaker: `closed`, `open` or `half_open`.
    breaker: &'static str,
    echelons: Vec<TierStatus<'a>>,
}

#[derive(Serialize, Default)]
struct Totals {
    instances: usize,
    healthy: usize,
    in_flight: u64,
    rpm: u64,
    requests: u64,
    failures: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost: f64,
}

pub(super) async fn status(State(gw): State<Arc<Gateway>>) -> Response {
    let snap = gw.snapshot();
    let now = clock_ns();
    let now_ms = crate::gateway::unix_ms();
    let draining = gw.draining();
    let mut totals = Totals::default();
    let instances: Vec<InstanceStatus<'_>> = (snap.instances.iter().map(|i| (i, false)))
        .chain(draining.iter().map(|i| (i, true)))
        .map(|(i, draining)| {
            let s = instance(i, draining, &snap.health, now, now_ms);
            totals.add(&s);
            s
        })
        .collect();
    let tier = |name: &str| {
        snap.routes.tier(name).map(|t| TierStatus {
            name: &t.label,
            strategy: t.strategy_kind.as_str(),
            members: (t.members.iter())
                .filter_map(|m| snap.instances.get(m.instance))
                .map(|i| i.spec.id.as_str())
                .collect(),
        })
    };
    let pools: Vec<TierStatus<'_>> = (snap.routes.iter())
        .filter(|r| r.kind == RouteKind::Pool)
        .filter_map(|r| tier(&r.name))
        .collect();
    let mut groups = Vec::new();
    for route in snap
        .routes
        .iter()
        .filter(|r| r.kind == RouteKind::TaskGroup)
    {
        let own =
            |s: &&crate::route::Step| s.tier.group.as_ref().is_some_and(|g| g.name == *route.name);
        let Some(breaker) = route
            .steps
            .iter()
            .find(own)
            .and_then(|s| s.tier.group.as_ref())
        else {
            continue;
        };
        groups.push(GroupStatus {
            name: &route.name,
            breaker: Health::group_view(breaker, now).state,
            echelons: (route.steps.iter().filter(own))
                .filter_map(|s| tier(&s.tier.label))
                .collect(),
        });
    }
    let mut routes: BTreeMap<&str, &'static str> = BTreeMap::new();
    for r in snap.routes.iter() {
        routes.insert(&r.name, r.kind.as_str());
    }
    Json(serde_json::json!({
        "at_ms": now_ms,
        "config_version": gw.config_status().version,
        "strategies": StrategyKind::ALL.map(StrategyKind::as_str),
        "totals": totals,
        "instances": instances,
        "pools": pools,
        "task_groups": groups,
        "routes": routes,
        "recent_events": snap.health.events.after(0, EVENTS),
    }))
    .into_response()
}

impl Totals {
    fn add(&mut self, s: &InstanceStatus<'_>) {
        self.instances += 1;
        self.healthy += usize::from(s.state == "healthy");
        self.in_flight += s.in_flight;
        self.rpm += s.rpm;
        self.requests += s.requests;
        self.failures += s.failures;
        self.prompt_tokens += s.prompt_tokens;
        self.completion_tokens += s.completion_tokens;
        self.cost += s.cost;
    }
}

fn instance<'a>(
    i: &'a Instance,
    draining: bool,
    health: &Health,
    now_ns: u64,
    now_ms: u64,
) -> InstanceStatus<'a> {
    let live = i.live.view(now_ns);
    let h = health.view(i, now_ns);
    let (state, reason) = if draining || live.draining {
        (
            "draining",
            Some("deregistered: finishing its requests".to_owned()),
        )
    } else if h.ejection == "ejected" {
        let until = h
            .until_s
            .map_or(String::new(), |s| format!(" for {s:.0} s more"));
        (
            "ejected",
            Some(format!("ejected{until} (ejection {})", h.ejections)),
        )
    } else if h.breaker.state == "open" {
        ("breaker_open", Some("circuit breaker open".to_owned()))
    } else if h.breaker.state == "half_open" {
        (
            "breaker_half_open",
            Some("circuit breaker half-open: trial requests".to_owned()),
        )
    } else {
        let state = match h.state {
            crate::health::State::Healthy => "healthy",
            crate::health::State::Degraded => "degraded",
            crate::health::State::Unhealthy => "unhealthy",
            crate::health::State::Ejected => "ejected",
        };
        let reason = (state != "healthy").then(|| {
            if h.ejection == "cooling_down" {
                "cooling down (rate limited upstream)".to_owned()
            } else if h.consecutive_failures > 0 {
                format!("{} failures in a row", h.consecutive_failures)
            } else if h.probe_failures > 0 {
                format!("{} failed probes", h.probe_failures)
            } else {
                format!(
                    "{} of {} requests failed in {} s",
                    h.window.failures, h.window.requests, h.window.seconds
                )
            }
        });
        (state, reason)
    };
    let minute = live.last_minute;
    let (counts, window_ms) = recent_latency(i, now_ms);
    let ms = |q| quantile(&counts, q).map(|s| (s * 1e3 * 10.0).round() / 10.0);
    InstanceStatus {
        id: &i.spec.id,
        model: &i.spec.model_ref,
        provider: &i.spec.provider,
        state,
        reason,
        weight: i.spec.weight.get(),
        in_flight: live.in_flight,
        rpm: minute.requests,
        error_rate: if minute.requests == 0 {
            0.0
        } else {
            minute.failures as f64 / minute.requests as f64
        },
        p50_ms: ms(0.5),
        p95_ms: ms(0.95),
        latency_window_s: window_ms.map(|ms| ms as f64 / 1e3),
        requests: live.requests,
        failures: live.failures,
        prompt_tokens: live.prompt_tokens,
        completion_tokens: live.completion_tokens,
        cost: live.cost,
    }
}

/// Latency counts since the oldest sample of the last [`RECENT_MS`] and the span they cover;
/// before there is such a sample, every count and `None`.
fn recent_latency(i: &Instance, now_ms: u64) -> (LatencyCounts, Option<u64>) {
    let now = i.live.latency_counts();
    let history = i.live.history();
    match history.iter().find(|p| p.at_ms + RECENT_MS >= now_ms) {
        Some(p) => (
            since(&now, &p.latency),
            Some(now_ms.saturating_sub(p.at_ms)),
        ),
        None => (now, None),
    }
}
