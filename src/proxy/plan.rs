//! Plan, then execute: the steps a request may take (its route's plan, or the one its
//! `x-switchyard-llm-group` / `x-switchyard-fallback-groups` headers ask for), walked in order.
//! In each step the tier's strategy picks; candidates the gate refuses are passed over without
//! a call; a failure moves on (to another instance, model or provider of the tier as its
//! rotation says, then to the next step) if the retry policy lets its class go on, after the
//! backoff it asks for; the whole walk stays inside the request's deadline and `max_attempts`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use super::trace::{Outcome, Trace};
use crate::balance::Candidates;
use crate::config::RouteKind;
use crate::error::Error;
use crate::health::{BreakerState, Ejection, GroupBreaker};
use crate::provider::ErrorClass;
use crate::request::ClientRequest;
use crate::route::{Rotate, RouteStats, Step, StepKind, Tier};
use crate::snapshot::Snapshot;
use crate::stats::{clock_ms, clock_ns};
use crate::upstream::{AttemptError, Instance};

/// What one request will walk.
pub(crate) struct Plan<'a> {
    pub name: Arc<str>,
    pub header: Option<HeaderValue>,
    pub steps: Cow<'a, [Step]>,
    pub max_attempts: Option<u32>,
    pub stats: Option<&'a Arc<RouteStats>>,
}

/// The plan for `req`: its route's, or the one its headers name.
pub(crate) fn plan_for<'s>(snap: &'s Snapshot, req: &ClientRequest) -> Result<Plan<'s>, Error> {
    let Some(primary) = &req.options.llm_group else {
        let Some(route) = snap.route(&req.model) else {
            return Err(Error::ModelNotFound(req.model.clone()));
        };
        return Ok(Plan {
            name: Arc::clone(&route.name),
            header: route.header.clone(),
            steps: Cow::Borrowed(&route.steps),
            max_attempts: route.max_attempts,
            stats: Some(&route.stats),
        });
    };
    let mut steps: Vec<Step> = Vec::new();
    let mut first = None;
    for (i, name) in std::iter::once(primary)
        .chain(&req.options.fallback_groups)
        .enumerate()
    {
        let header = if i == 0 {
            "x-switchyard-llm-group"
        } else {
            "x-switchyard-fallback-groups"
        };
        let route = snap.route(name).filter(|r| {
            matches!(
                r.kind,
                RouteKind::TaskGroup | RouteKind::Echelon | RouteKind::Pool | RouteKind::Wrapper
            )
        });
        let Some(route) = route else {
            return Err(Error::BadRequest(format!(
                "{header}: {name:?} is not a task group, group.echelon, pool or wrapper of this config (GET /v1/models lists them)"
            )));
        };
        first.get_or_insert(route);
        // The target's own tiers; what it would fall back to is the request's to say.
        let own = (route.steps.iter())
            .filter(|s| !matches!(s.why, StepKind::GroupFallback | StepKind::PoolFallback));
        for s in own {
            if !steps.iter().any(|x| Arc::ptr_eq(&x.tier, &s.tier)) {
                let why = if i == 0 {
                    s.why
                } else {
                    StepKind::GroupFallback
                };
                steps.push(Step {
                    tier: Arc::clone(&s.tier),
                    why,
                });
            }
        }
    }
    let first =
        first.ok_or_else(|| Error::BadRequest("empty x-switchyard-llm-group".to_owned()))?;
    Ok(Plan {
        name: Arc::clone(&first.name),
        header: first.header.clone(),
        steps: Cow::Owned(steps),
        max_attempts: first.max_attempts,
        stats: None,
    })
}

/// Why the gate turned `inst` away, for the trace.
pub(crate) fn refusal(inst: &Instance, now_ns: u64) -> &'static str {
    let live = &inst.live;
    if live.is_draining() {
        return "draining";
    }
    match live.gate().ejection() {
        Ejection::Ejected { .. } => return "ejected",
        Ejection::CoolingDown { until_ns } if now_ns < until_ns => return "cooling_down",
        Ejection::SlowStart { .. } if !live.is_gated() => return "slow_start",
        _ => {}
    }
    match live.gate().breaker.state() {
        BreakerState::Closed => "gated",
        BreakerState::Open { .. } => "breaker_open",
        BreakerState::HalfOpen { .. } => "breaker_half_open_full",
    }
}

/// How the walk is going.
#[derive(Default)]
pub(crate) struct Walk {
    pub last: Option<(Arc<Instance>, AttemptError)>,
    /// Backoff waits so far (the exponent).
    pub waits: u32,
    /// The failure the next attempt may have to wait after.
    pub pending: Option<ErrorClass>,
    pub refused_groups: bool,
    /// Stopped early: a class the policy does not retry, the deadline, or max_attempts.
    pub stopped: Option<&'static str>,
    /// The soonest a limit that refused a candidate has room again.
    pub retry_limited: Option<Duration>,
    /// That limit's headroom, for the 429's `x-ratelimit-*` headers.
    pub headroom: Option<crate::limit::Headroom>,
    /// Why a candidate could not serve this request at all (its model's capabilities).
    pub unfit: Option<&'static str>,
}

impl Walk {
    pub fn limited(&mut self, r: &crate::limit::Refusal) {
        if self.retry_limited.is_none_or(|w| r.retry_after < w) {
            self.retry_limited = Some(r.retry_after);
            self.headroom = Some(r.headroom);
        }
    }
}

/// A limit refused: which, and whether it was the tier's own (then every other member of the
/// tier would be refused too).
pub(crate) struct LimitRefusal {
    pub refusal: crate::limit::Refusal,
    pub tier_wide: bool,
}

/// Take the limits one attempt passes, broadest first: its task group's, its tier's, its
/// model's, its instance's. All or nothing: a refusal gives back what the others took.
pub(crate) fn admit_limits(
    tier: &Tier,
    inst: &Instance,
    req: &ClientRequest,
    queue: &Arc<crate::limit::Queue>,
) -> Result<crate::limit::Permits, LimitRefusal> {
    let mut permits = crate::limit::Permits::waking(queue);
    let levels = [
        tier.group_limits.as_ref(),
        tier.limits.as_ref(),
        inst.model_limits.as_ref(),
        inst.limits.as_ref(),
    ];
    if levels.iter().all(Option::is_none) {
        return Ok(permits);
    }
    crate::limit::admit_all(&levels, req.estimate_tokens(), clock_ms(), &mut permits).map_err(
        |(level, refusal)| LimitRefusal {
            refusal,
            // The group's and the tier's own limits (the first two) cover every member.
            tier_wide: level < 2,
        },
    )?;
    Ok(permits)
}

/// The request's deadline on tokio's clock.
pub(crate) fn deadline(snap: &Snapshot, req: &ClientRequest) -> Option<tokio::time::Instant> {
    let budget = match (snap.config.request_timeout, req.options.timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    budget.map(|d| tokio::time::Instant::now() + d)
}

/// Candidates of `tier` to pass over after `failed` failed, by the tier's rotation: the rest
/// of its model, or of its provider (and, with a `provider_chain`, every provider but the next
/// one in the chain that still has a candidate).
pub(crate) fn rotate_away(
    snap: &Snapshot,
    tier: &Tier,
    failed: &Instance,
    excluded: &[usize],
    out: &mut Vec<usize>,
) {
    let same = |i: &Instance| match tier.rotate {
        Rotate::Instance => false,
        Rotate::Model => i.spec.model_ref == failed.spec.model_ref,
        Rotate::Provider => i.spec.provider == failed.spec.provider,
    };
    let member = |m: &crate::balance::Member| snap.instances.get(m.instance);
    for m in &tier.members {
        if member(m).is_some_and(|i| same(i)) {
            out.push(m.instance);
        }
    }
    let chain = &snap.config.provider_chain;
    if tier.rotate != Rotate::Provider || chain.is_empty() {
        return;
    }
    let open = |provider: &str| {
        tier.members.iter().any(|m| {
            !excluded.contains(&m.instance)
                && !out.contains(&m.instance)
                && member(m).is_some_and(|i| i.spec.provider == provider)
        })
    };
    let at = chain.iter().position(|p| *p == failed.spec.provider);
    let after = at.map_or(0, |i| i + 1);
    let next = (chain.iter().skip(after))
        .chain(chain.iter().take(after))
        .find(|p| open(p));
    if let Some(next) = next {
        for m in &tier.members {
            if member(m).is_some_and(|i| i.spec.provider != *next) {
                out.push(m.instance);
            }
        }
    }
}

/// Members of `tier` the strategy will not see (gated or draining), for a verbose trace.
pub(crate) fn note_refused(snap: &Snapshot, tier: &Tier, step: usize, trace: &mut Trace) {
    if !trace.verbose {
        return;
    }
    let now = clock_ns();
    for m in &tier.members {
        if !m.live.admits() && !trace.tried.contains(&m.instance) {
            if let Some(i) = snap.instances.get(m.instance) {
                trace.skip(step, m.instance, refusal(i, now));
            }
        }
    }
}

/// Pick the next candidate of `tier` for this request, `local` passed over too.
pub(crate) fn pick(
    snap: &Snapshot,
    tier: &Tier,
    trace: &Trace,
    local: &[usize],
    retry: bool,
) -> Option<Arc<Instance>> {
    let excluded: Cow<'_, [usize]> = if local.is_empty() {
        Cow::Borrowed(&trace.tried)
    } else {
        Cow::Owned(trace.tried.iter().chain(local).copied().collect())
    };
    let p = tier.strategy.pick(&Candidates {
        members: &tier.members,
        tried: &excluded,
        retry,
        now_ns: clock_ns(),
    })?;
    snap.instances.get(tier.members[p].instance).cloned()
}

/// Start another round over `tier` (`max_instance_attempts`): its attempted members may be
/// picked again. False when there is nothing to go round again.
pub(crate) fn new_round(tier: &Tier, trace: &mut Trace) -> bool {
    let before = trace.tried.len();
    let skipped = &trace.skipped;
    trace
        .tried
        .retain(|i| skipped.contains(i) || !tier.members.iter().any(|m| m.instance == *i));
    trace.tried.len() < before
}

/// The task group a request is walking through, for its breaker: the group admits the
/// request once (its echelons are adjacent steps), and counts it once: served, or failed when
/// the request leaves the group's tiers with only failed attempts there. One dead echelon
/// whose next echelon serves is no failure of the group.
#[derive(Default)]
pub(crate) struct GroupRun<'t> {
    current: Option<&'t Arc<GroupBreaker>>,
    failures: u32,
}

impl<'t> GroupRun<'t> {
    /// Entering `tier`; false if its group's breaker refuses the request.
    pub fn enter(&mut self, snap: &Snapshot, tier: &'t Tier) -> bool {
        match &tier.group {
            Some(g) if self.current.is_some_and(|c| Arc::ptr_eq(c, g)) => true,
            Some(g) => {
                self.leave(snap);
                if !snap.health.group_admit(g, clock_ns()) {
                    return false;
                }
                self.current = Some(g);
                true
            }
            None => {
                self.leave(snap);
                true
            }
        }
    }

    pub fn failed(&mut self, class: ErrorClass) {
        if self.current.is_some() && class.counts_against_instance() {
            self.failures += 1;
        }
    }

    pub fn served(&mut self, snap: &Snapshot) {
        if let Some(g) = self.current.take() {
            snap.health.group_outcome(g, false, clock_ns());
        }
        self.failures = 0;
    }

    pub fn leave(&mut self, snap: &Snapshot) {
        if let Some(g) = self.current.take() {
            if self.failures > 0 {
                snap.health.group_outcome(g, true, clock_ns());
            }
        }
        self.failures = 0;
    }
}

/// Wait out the backoff the last failure asks for, unless that passes the deadline (then
/// false: stop).
pub(crate) async fn backoff(
    snap: &Snapshot,
    tier: &Tier,
    walk: &mut Walk,
    deadline: Option<tokio::time::Instant>,
) -> bool {
    let Some(class) = walk.pending.take() else {
        return true;
    };
    let wait = snap
        .config
        .retry
        .delay(class, walk.waits + 1, tier.retry_delay, fastrand::f64());
    if wait.is_zero() {
        return true;
    }
    if deadline.is_some_and(|d| tokio::time::Instant::now() + wait >= d) {
        walk.stopped = Some("the deadline leaves no time for the backoff");
        return false;
    }
    walk.waits += 1;
    tokio::time::sleep(wait).await;
    true
}

/// Time left for one attempt: the tier's (or instance's) timeout, within the deadline. None
/// when the deadline has passed.
pub(crate) fn attempt_timeout(
    tier: &Tier,
    inst: &Instance,
    deadline: Option<tokio::time::Instant>,
) -> Option<Duration> {
    let own = tier.timeout.unwrap_or(inst.spec.timeout);
    match deadline {
        None => Some(own),
        Some(d) => {
            let left = d.saturating_duration_since(tokio::time::Instant::now());
            (!left.is_zero()).then(|| own.min(left))
        }
    }
}

/// Record one attempt's ending in the trace.
pub(crate) fn note(
    trace: &mut Trace,
    step: usize,
    inst: &Instance,
    result: Result<(), &AttemptError>,
    since: std::time::Instant,
) {
    let (outcome, detail) = match result {
        Ok(()) => (Outcome::Served, None),
        Err(e) => (Outcome::Failed(e.class), Some(e.detail.clone())),
    };
    trace.attempt(step, inst.index, outcome, since, detail);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::collections::HashMap;

    use super::*;
    use crate::config::{Config, MemorySource};

    fn snapshot() -> Snapshot {
        let files = [
            (
                "_registry.toml",
                "[global.error_handling]\nretry_delay = 1\nbackoff_factor = 2\nmax_retry_delay = 5\n[providers]\nup = { file = \"up.toml\" }\n[task_groups]\ng = { file = \"g.toml\" }\n",
            ),
            (
                "up.toml",
                "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.m]\n",
            ),
            (
                "g.toml",
                "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\n",
            ),
        ];
        let config = Config::load_with_env(&MemorySource::new(files), &|_| None).unwrap();
        Snapshot::build(Arc::new(config), &HashMap::new(), None)
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_waits_follow_the_configured_schedule_on_the_paused_clock() {
        let snap = snapshot();
        let tier = snap.routes.tier("g.e1").unwrap();
        let mut w = Walk::default();
        let mut waited = Vec::new();
        for _ in 0..5 {
            w.pending = Some(ErrorClass::Server);
            let t0 = tokio::time::Instant::now();
            assert!(backoff(&snap, tier, &mut w, None).await);
            waited.push(t0.elapsed().as_secs_f64());
        }
        // retry_delay 1 s × 2^(k-1), capped at 5 s, jittered into the upper half.
        for (got, full) in waited.iter().zip([1.0, 2.0, 4.0, 5.0, 5.0]) {
            assert!(*got >= full / 2.0 && *got <= full, "{waited:?}");
        }
        // Connect errors move on at once; no wait counted.
        w.pending = Some(ErrorClass::Connect);
        let t0 = tokio::time::Instant::now();
        assert!(backoff(&snap, tier, &mut w, None).await);
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert_eq!(w.waits, 5);
        // A wait that would pass the deadline is not started: the walk stops.
        w.pending = Some(ErrorClass::Timeout);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let t0 = tokio::time::Instant::now();
        assert!(!backoff(&snap, tier, &mut w, Some(deadline)).await);
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert!(w.stopped.is_some());
    }

    #[test]
    fn the_deadline_bounds_each_attempt() {
        let snap = snapshot();
        let tier = snap.routes.tier("g.e1").unwrap();
        let inst = &snap.instances[0];
        assert_eq!(attempt_timeout(tier, inst, None), Some(inst.spec.timeout));
        let soon = tokio::time::Instant::now() + Duration::from_millis(50);
        assert!(attempt_timeout(tier, inst, Some(soon)).unwrap() <= Duration::from_millis(50));
        let past = tokio::time::Instant::now() - Duration::from_millis(1);
        assert_eq!(attempt_timeout(tier, inst, Some(past)), None);
    }
}
