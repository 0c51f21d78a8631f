//! What a request did, for its response headers, its access log line, its error body and the
//! fallback history: every attempt (instance, tier, outcome, latency) and, when the client
//! asked with `x-switchyard-trace: 1`, every candidate passed over and why.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;
use serde::Serialize;

use crate::provider::ErrorClass;
use crate::route::Step;
use crate::snapshot::Snapshot;

/// How one candidate fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Served,
    Failed(ErrorClass),
    /// Not called: ejected, breaker open, cooling down, slow start, draining.
    Skipped(&'static str),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Index into the plan's steps.
    pub step: usize,
    /// Snapshot index of the instance.
    pub instance: usize,
    pub outcome: Outcome,
    pub ms: f64,
    pub detail: Option<String>,
}

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
    /// Attempts always; skipped candidates when `verbose`.
    pub entries: Vec<Entry>,
    pub verbose: bool,
    /// The request's id, in its log lines.
    pub request_id: Arc<str>,
    /// `[global.logging] enable_request_logging`: write the access line.
    pub log_requests: bool,
    /// The route's statistics, where a served request's tokens and cost are added.
    pub spend: Option<Arc<crate::route::RouteStats>>,
    /// The calling client's spend, when it is named.
    pub client_spend: Option<Arc<crate::stats::SpendCounter>>,
}

impl Trace {
    pub fn new(
        route: Arc<str>,
        route_header: Option<HeaderValue>,
        verbose: bool,
        request_id: Arc<str>,
        log_requests: bool,
        spend: Option<Arc<crate::route::RouteStats>>,
    ) -> Self {
        Self {
            request_id,
            log_requests,
            spend,
            client_spend: None,
            route,
            route_header,
            started: Instant::now(),
            attempts: 0,
            tried: Vec::with_capacity(4),
            skipped: Vec::new(),
            entries: Vec::new(),
            verbose,
        }
    }

    /// A copy for a committed stream's accounting (no lists).
    pub fn for_stream(&self) -> Self {
        Self {
            route: Arc::clone(&self.route),
            route_header: None,
            started: self.started,
            attempts: self.attempts,
            tried: Vec::new(),
            skipped: Vec::new(),
            entries: Vec::new(),
            verbose: false,
            request_id: Arc::clone(&self.request_id),
            log_requests: self.log_requests,
            spend: self.spend.clone(),
            client_spend: self.client_spend.clone(),
        }
    }

    pub fn attempted(&self, instance: usize) -> bool {
        self.tried.contains(&instance) && !self.skipped.contains(&instance)
    }

    pub fn skip(&mut self, step: usize, instance: usize, why: &'static str) {
        if self.verbose {
            self.entries.push(Entry {
                step,
                instance,
                outcome: Outcome::Skipped(why),
                ms: 0.0,
                detail: None,
            });
        }
    }

    pub fn attempt(
        &mut self,
        step: usize,
        instance: usize,
        outcome: Outcome,
        since: Instant,
        detail: Option<String>,
    ) {
        self.entries.push(Entry {
            step,
            instance,
            outcome,
            ms: super::millis(since.elapsed()),
            detail,
        });
    }

    /// `x-switchyard-trace`: `tier/instance=outcome(ms)` per entry, `;`-separated.
    pub fn header(&self, snap: &Snapshot, steps: &[Step]) -> Option<HeaderValue> {
        let mut out = String::new();
        for e in &self.entries {
            if !out.is_empty() {
                out.push_str("; ");
            }
            let tier = steps.get(e.step).map_or("?", |s| s.tier.label.as_str());
            let id = snap
                .instances
                .get(e.instance)
                .map_or("?", |i| i.spec.id.as_str());
            let _ = match e.outcome {
                Outcome::Served => write!(out, "{tier}/{id}=ok({:.1}ms)", e.ms),
                Outcome::Failed(c) => write!(out, "{tier}/{id}={}({:.1}ms)", c.as_str(), e.ms),
                Outcome::Skipped(why) => write!(out, "{tier}/{id}=skipped:{why}"),
            };
        }
        HeaderValue::from_str(&out).ok()
    }

    /// The entries for an error body.
    pub fn report(&self, snap: &Snapshot, steps: &[Step]) -> Vec<AttemptReport> {
        (self.entries.iter())
            .map(|e| {
                let step = steps.get(e.step);
                AttemptReport {
                    instance: snap
                        .instances
                        .get(e.instance)
                        .map_or_else(String::new, |i| i.spec.id.clone()),
                    tier: step.map_or_else(String::new, |s| s.tier.label.clone()),
                    step: step.map_or("primary", |s| s.why.as_str()),
                    outcome: match e.outcome {
                        Outcome::Served => "ok",
                        Outcome::Failed(c) => c.as_str(),
                        Outcome::Skipped(_) => "skipped",
                    },
                    reason: match e.outcome {
                        Outcome::Skipped(why) => Some(why.to_owned()),
                        _ => e.detail.clone(),
                    },
                    latency_ms: e.ms,
                }
            })
            .collect()
    }
}

/// One line of an error body's `attempts`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptReport {
    pub instance: String,
    pub tier: String,
    /// Why the tier was in the plan (`primary`, `echelon_down`, ...).
    pub step: &'static str,
    /// `ok`, an error class, or `skipped`.
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub latency_ms: f64,
}
