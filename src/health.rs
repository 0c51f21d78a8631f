//! Health: which instances may take traffic, and why (seed 000 §2.3, seed 001's
//! ModelHealthChecker and recovery detection, seed 004's `health_check` and
//! `circuit_breaker`).
//!
//! - Passive checks on real traffic ([`Health::observe`]): `failure_threshold` consecutive
//!   failures, or an error rate over `error_window` above `error_rate` (once `min_requests`
//!   were seen), eject an instance. Only failures that are the instance's count: a client's
//!   own 4xx never does, and a 429 cools the instance down for as long as the provider asked
//!   ([`Health::cool_down`]) instead.
//! - Ejection lasts `recovery_time × 2^(n-1)` for the n-th ejection (Envoy's
//!   base_ejection_time), capped at `max_ejection_time`, after which the next passing probe
//!   brings the instance back with a slow start. At most `max_ejection_percent` of any tier
//!   is ejected at once; when a route has no admitted instance left the proxy sends the
//!   request to the least-bad one (panic mode, an event) rather than fail it.
//! - Circuit breakers per instance and per task group ([`breaker`]).
//! - Active probes ([`checker`]): `GET /models` (free) or a one-token chat (billed, opt-in)
//!   per instance every `interval`, jittered.
//! - Every state change is an [`Event`] in a bounded history, and a log line.
//!
//! The decisions are atomics in each instance's `Live` ([`Gate`]); a shared store (Redis) can
//! later publish transitions between replicas through the same calls.

mod breaker;
pub mod checker;
pub mod cooldown;
mod events;
mod gate;
mod policy;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use breaker::{Admit, BreakerCell, BreakerState, Change};
pub use events::{Event, EventKind, Events};
pub use gate::{Ejection, Gate};
pub use policy::{BreakerPolicy, HealthPolicy, MAX_HALF_OPEN, Probe};

use crate::provider::ErrorClass;
use crate::shared::{Cell, MemoryStore, Store};
use crate::snapshot::Snapshot;
use crate::stats::Outcome;
use crate::upstream::Instance;

/// What an operator sees for an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Healthy,
    /// Two failures in a row, a failed probe, cooling down after a 429, or an error rate above
    /// half the threshold: still in rotation.
    Degraded,
    /// At its failure threshold but not ejected (the tier is at `max_ejection_percent`), or
    /// its breaker is not closed.
    Unhealthy,
    Ejected,
}

impl State {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Degraded,
            2 => Self::Unhealthy,
            3 => Self::Ejected,
            _ => Self::Healthy,
        }
    }
}

/// Per-instance bookkeeping that only transitions touch (kept in `Live`'s cold part).
#[derive(Debug, Default)]
pub struct Track {
    ejections: AtomicU32,
    recovered_ns: AtomicU64,
    probe_failures: AtomicU32,
    probe_at_ms: AtomicU64,
    /// 0 never probed, 1 passed, 2 failed.
    probe_ok: AtomicU8,
    state: AtomicU8,
    /// An ejection refusal was reported for the current failure streak.
    refused: AtomicBool,
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub ok: bool,
    /// Why it failed.
    pub class: Option<ErrorClass>,
    pub detail: String,
    /// The instance answered 429: rest this long.
    pub cooldown: Option<Duration>,
}

impl Verdict {
    pub fn pass() -> Self {
        Self {
            ok: true,
            class: None,
            detail: String::new(),
            cooldown: None,
        }
    }

    pub fn fail(class: ErrorClass, detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            class: Some(class),
            detail: detail.into(),
            cooldown: None,
        }
    }
}

/// A task group's breaker, shared by the tiers of its echelons. Its state outlives snapshots
/// (kept by group name in [`Health`]); the policy is the current config's.
#[derive(Debug)]
pub struct GroupBreaker {
    pub name: String,
    pub policy: BreakerPolicy,
    cell: BreakerCell,
    /// Consecutive requests the group could not serve.
    failures: Arc<dyn Cell>,
}

impl GroupBreaker {
    pub fn state(&self) -> BreakerState {
        self.cell.state()
    }
}

/// The health hub: the store the decisions live in, events, and the checker's wake-up. One
/// per gateway, carried from snapshot to snapshot.
#[derive(Debug)]
pub struct Health {
    /// Where ejection and breaker words live (keyed by instance id and group name).
    pub store: Arc<dyn Store>,
    pub events: Events,
    /// Routes' last panic event (ms), so a route in panic logs once a second, not per request.
    panics: Mutex<HashMap<Arc<str>, u64>>,
    wake: tokio::sync::Notify,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn secs(ns: u64) -> f64 {
    (ns as f64 / 1e9 * 10.0).round() / 10.0
}

impl Default for Health {
    fn default() -> Self {
        Self::new(Arc::new(MemoryStore::default()))
    }
}

impl Health {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            events: Events::default(),
            panics: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The breaker of task group `name` with `policy`, keeping its state if it had one.
    pub fn group(&self, name: &str, policy: BreakerPolicy) -> Arc<GroupBreaker> {
        let key = |k: &str| format!("health/group/{name}/{k}");
        let cell = BreakerCell::new(self.store.cell(&key("breaker")));
        if !policy.enabled {
            cell.reset();
        }
        Arc::new(GroupBreaker {
            name: name.to_owned(),
            policy,
            cell,
            failures: self.store.cell(&key("failures")),
        })
    }

    /// Wake the checker (a timed state began, or the config changed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// After a pick: may this request go to `inst`? Reads the gate words (the truth behind
    /// the gated bit strategies saw), takes a half-open breaker's trial permit, and turns a
    /// slow-starting instance away with the probability its ramp says.
    pub fn admit(&self, inst: &Instance, now_ns: u64) -> bool {
        let gate = inst.live.gate();
        if gate.is_open() {
            return true;
        }
        match gate.ejection() {
            Ejection::Ejected { .. } => return self.refuse(inst, now_ns),
            Ejection::CoolingDown { until_ns } if now_ns < until_ns => {
                return self.refuse(inst, now_ns);
            }
            Ejection::SlowStart { .. } if fastrand::f64() >= gate.share(now_ns) => return false,
            _ => {}
        }
        self.admit_breaker(inst, now_ns)
    }

    /// The breaker's part of [`Health::admit`] (panic mode skips the rest): a half-open
    /// breaker's trial permit, or no.
    pub fn admit_breaker(&self, inst: &Instance, now_ns: u64) -> bool {
        let gate = inst.live.gate();
        if gate.breaker.is_closed() {
            return true;
        }
        let (admit, change) = gate.breaker.admit(&inst.spec.breaker, now_ns);
        if change == Some(Change::HalfOpened) {
            let half = BreakerState::HalfOpen {
                admitted: 0,
                succeeded: 0,
            };
            self.breaker_event(inst, half);
        }
        match admit {
            Admit::Refused => self.refuse(inst, now_ns),
            Admit::Trial => {
                // The last permit taken: refuse the others until a verdict.
                sync(inst, now_ns);
                true
            }
            Admit::Free => true,
        }
    }

    fn refuse(&self, inst: &Instance, now_ns: u64) -> bool {
        sync(inst, now_ns);
        false
    }

    /// One finished attempt on `inst` (after `Live::record` counted it).
    pub fn observe(&self, snap: &Snapshot, inst: &Instance, outcome: &Outcome, now_ns: u64) {
        let live = &inst.live;
        let track = live.track();
        match outcome {
            Outcome::Success { .. } | Outcome::Failure(ErrorClass::Client) => {
                if !live.gate().breaker.is_closed()
                    && live.gate().breaker.on_success(&inst.spec.breaker) == Some(Change::Closed)
                {
                    self.breaker_event(inst, BreakerState::Closed);
                    sync(inst, now_ns);
                }
                track.refused.store(false, Relaxed);
                if track.state.load(Relaxed) == State::Healthy as u8 {
                    return;
                }
            }
            // Not broken, just busy: the proxy cools it down with the provider's Retry-After.
            Outcome::Failure(ErrorClass::RateLimited) => return,
            Outcome::Failure(class) => {
                let n = live.consecutive_failures();
                let bp = &inst.spec.breaker;
                if live.gate().breaker.on_failure(bp, n, now_ns) == Some(Change::Opened) {
                    self.breaker_event(inst, BreakerState::Open { until_ns: 0 });
                    sync(inst, now_ns);
                    self.wake();
                }
                let hp = &inst.spec.health;
                if !live.gate().is_ejected() {
                    if *class == ErrorClass::Auth {
                        // A rejected key does not heal by itself: out now, back when a probe
                        // (with the same key) passes.
                        let why = "the upstream rejected this instance's credentials (401/403)";
                        self.eject(snap, inst, why, now_ns);
                    } else if n >= hp.failure_threshold {
                        let why = format!("{n} consecutive failures (last: {})", class.as_str());
                        self.eject(snap, inst, &why, now_ns);
                    } else {
                        let since = track.recovered_ns.load(Relaxed);
                        let (requests, failed) = live.health_window(now_ns, hp.error_window, since);
                        if requests >= hp.min_requests.max(1)
                            && failed as f64 >= hp.error_rate * requests as f64
                        {
                            let why = format!(
                                "error rate {:.0} % ({failed} of {requests} in {} s) is over {:.0} %",
                                100.0 * failed as f64 / requests as f64,
                                hp.error_window.as_secs(),
                                100.0 * hp.error_rate
                            );
                            self.eject(snap, inst, &why, now_ns);
                        }
                    }
                }
            }
        }
        self.update_state(inst, now_ns);
    }

    /// Rest `inst` for `rest` (a 429): no traffic until then, and not counted as broken.
    pub fn cool_down(&self, inst: &Instance, rest: Duration, now_ns: u64) {
        let until = now_ns.saturating_add(rest.as_nanos() as u64);
        if inst.live.gate().cool_down(until) {
            self.events.push(
                "instance",
                &inst.spec.id,
                EventKind::CooledDown,
                format!("rate limited: no traffic for {:.1} s", rest.as_secs_f64()),
            );
            sync(inst, now_ns);
            self.wake();
        }
        self.update_state(inst, now_ns);
    }

    /// A probe of `inst` finished.
    pub fn on_probe(&self, snap: &Snapshot, inst: &Instance, v: &Verdict, now_ns: u64) {
        let live = &inst.live;
        let track = live.track();
        track.probe_at_ms.store(unix_ms(), Relaxed);
        track.probe_ok.store(if v.ok { 1 } else { 2 }, Relaxed);
        if let Some(rest) = v.cooldown {
            self.cool_down(inst, rest, now_ns);
        }
        let hp = &inst.spec.health;
        match live.gate().ejection() {
            Ejection::Ejected { until_ns } => {
                if v.ok && now_ns >= until_ns && live.gate().recover(now_ns, hp.slow_start) {
                    live.reset_failures();
                    track.probe_failures.store(0, Relaxed);
                    track.recovered_ns.store(now_ns, Relaxed);
                    track.refused.store(false, Relaxed);
                    track.state.store(State::Healthy as u8, Relaxed);
                    let ramp = if hp.slow_start.is_zero() {
                        String::new()
                    } else {
                        format!("; slow start over {} s", hp.slow_start.as_secs())
                    };
                    self.events.push(
                        "instance",
                        &inst.spec.id,
                        EventKind::Recovered,
                        format!(
                            "probe passed after ejection {}{ramp}",
                            track.ejections.load(Relaxed)
                        ),
                    );
                    sync(inst, now_ns);
                    self.wake();
                } else if !v.ok {
                    tracing::debug!(instance = %inst.spec.id, detail = %v.detail, "probe failed; stays ejected");
                }
            }
            _ if v.ok => {
                track.probe_failures.store(0, Relaxed);
            }
            _ => {
                let n = track.probe_failures.fetch_add(1, Relaxed) + 1;
                if n >= hp.failure_threshold {
                    let class = v.class.map_or("unknown", ErrorClass::as_str);
                    let why = format!(
                        "{n} consecutive failed probes (last: {class}: {})",
                        v.detail
                    );
                    self.eject(snap, inst, &why, now_ns);
                }
            }
        }
        self.update_state(inst, now_ns);
    }

    /// Eject `inst` unless a tier it is in already has `max_ejection_percent` out.
    fn eject(&self, snap: &Snapshot, inst: &Instance, why: &str, now_ns: u64) {
        let live = &inst.live;
        let track = live.track();
        let hp = &inst.spec.health;
        let full = snap.tiers_of(inst.index).iter().find(|tier| {
            let n = tier.members.len();
            let out = (tier.members.iter())
                .filter(|m| m.instance != inst.index && m.live.gate().is_ejected())
                .count();
            out > 0 && (out + 1) * 100 > hp.max_ejection_percent as usize * n
        });
        if let Some(tier) = full {
            if !track.refused.swap(true, Relaxed) {
                self.events.push(
                    "instance",
                    &inst.spec.id,
                    EventKind::EjectionRefused,
                    format!(
                        "{why}, but tier {:?} already has max_ejection_percent = {} % ejected; it stays in",
                        tier.label, hp.max_ejection_percent
                    ),
                );
            }
            return;
        }
        let recovered = track.recovered_ns.load(Relaxed);
        if recovered != 0
            && now_ns.saturating_sub(recovered) >= hp.max_ejection_time.as_nanos() as u64
        {
            // Clean for a whole max_ejection_time since it came back: forgive the past.
            track.ejections.store(0, Relaxed);
        }
        let n = track.ejections.load(Relaxed) + 1;
        let length = hp.ejection_time(n);
        if !live
            .gate()
            .eject(now_ns.saturating_add(length.as_nanos() as u64))
        {
            return;
        }
        track.ejections.store(n, Relaxed);
        track.state.store(State::Ejected as u8, Relaxed);
        self.events.push(
            "instance",
            &inst.spec.id,
            EventKind::Ejected,
            format!(
                "{why}; ejection {n} for {} s, then a probe decides",
                length.as_secs_f64()
            ),
        );
        sync(inst, now_ns);
        self.wake();
    }

    /// Emit Degraded / Unhealthy / Healthy when the state moved between them.
    fn update_state(&self, inst: &Instance, now_ns: u64) {
        let state = self.state(inst, now_ns);
        let track = inst.live.track();
        let before = State::from_u8(track.state.swap(state as u8, Relaxed));
        if before == state || before == State::Ejected || state == State::Ejected {
            return;
        }
        let kind = match state {
            State::Healthy => EventKind::Healthy,
            State::Degraded => EventKind::Degraded,
            State::Unhealthy | State::Ejected => EventKind::Unhealthy,
        };
        let live = &inst.live;
        let detail = format!(
            "{} consecutive failures, {} failed probes, breaker {}",
            live.consecutive_failures(),
            track.probe_failures.load(Relaxed),
            live.gate().breaker.state().as_str()
        );
        self.events.push("instance", &inst.spec.id, kind, detail);
    }

    /// The instance's state now.
    pub fn state(&self, inst: &Instance, now_ns: u64) -> State {
        let live = &inst.live;
        let gate = live.gate();
        if gate.is_ejected() {
            return State::Ejected;
        }
        let hp = &inst.spec.health;
        let track = live.track();
        let failures = live.consecutive_failures();
        let probes = track.probe_failures.load(Relaxed);
        if failures >= hp.failure_threshold
            || probes >= hp.failure_threshold
            || !gate.breaker.is_closed()
        {
            return State::Unhealthy;
        }
        let cooling =
            matches!(gate.ejection(), Ejection::CoolingDown { until_ns } if now_ns < until_ns);
        // One failure in a while is noise, not a state change.
        if failures >= 2 || probes > 0 || cooling {
            return State::Degraded;
        }
        let since = track.recovered_ns.load(Relaxed);
        let (requests, failed) = live.health_window(now_ns, hp.error_window, since);
        if requests >= (hp.min_requests / 2).max(1)
            && failed as f64 >= hp.error_rate / 2.0 * requests as f64
            && failed > 0
        {
            return State::Degraded;
        }
        State::Healthy
    }

    /// Timed changes due by `now_ns` on every instance of `snap` (cool-downs and ramps ending,
    /// open breakers half-opening). Returns the next time something changes by itself.
    pub fn tick(&self, snap: &Snapshot, now_ns: u64) -> Option<u64> {
        let mut next: Option<u64> = None;
        for inst in &snap.instances {
            let gate = inst.live.gate();
            if gate.is_open() && !inst.live.is_gated() {
                continue;
            }
            let expired = gate.expire(now_ns);
            if gate.breaker.half_open_if_due(now_ns) == Some(Change::HalfOpened) {
                self.breaker_event(
                    inst,
                    BreakerState::HalfOpen {
                        admitted: 0,
                        succeeded: 0,
                    },
                );
            }
            sync(inst, now_ns);
            if expired {
                self.update_state(inst, now_ns);
            }
            if let Some(t) = gate.next_change().filter(|&t| t > now_ns) {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    /// Every tier of a route refused: the request goes to the least-bad instance.
    pub fn panic(&self, route: &Arc<str>, instance: &str) {
        let now = unix_ms();
        let mut panics = self.panics.lock().unwrap_or_else(|e| e.into_inner());
        let last = panics.entry(Arc::clone(route)).or_insert(0);
        if now.saturating_sub(*last) < 1000 {
            return;
        }
        *last = now;
        drop(panics);
        self.events.push(
            "route",
            route,
            EventKind::Panic,
            format!(
                "every instance is ejected or resting; sending to the least-bad one, {instance:?}"
            ),
        );
    }

    /// May a request use `g`'s echelons? Half-open: takes a trial permit.
    pub fn group_admit(&self, g: &GroupBreaker, now_ns: u64) -> bool {
        let (admit, change) = g.cell.admit(&g.policy, now_ns);
        if change == Some(Change::HalfOpened) {
            self.events.push(
                "task_group",
                &g.name,
                EventKind::BreakerHalfOpen,
                format!("admitting {} trial request(s)", g.policy.half_open_requests),
            );
        }
        admit != Admit::Refused
    }

    /// A request through `g` finished with it: `failed` when the group could not serve it.
    pub fn group_outcome(&self, g: &GroupBreaker, failed: bool, now_ns: u64) {
        if !failed {
            if g.failures.load() != 0 {
                g.failures.store(0);
            }
            if !g.cell.is_closed() && g.cell.on_success(&g.policy) == Some(Change::Closed) {
                self.events.push(
                    "task_group",
                    &g.name,
                    EventKind::BreakerClosed,
                    "every trial request succeeded".into(),
                );
            }
            return;
        }
        let n = u32::try_from(g.failures.fetch_add(1) + 1).unwrap_or(u32::MAX);
        if g.cell.on_failure(&g.policy, n, now_ns) == Some(Change::Opened) {
            self.events.push(
                "task_group",
                &g.name,
                EventKind::BreakerOpened,
                format!(
                    "{n} consecutive failed attempts; half-open in {} s",
                    g.policy.recovery_time.as_secs()
                ),
            );
        }
    }

    fn breaker_event(&self, inst: &Instance, to: BreakerState) {
        let p = &inst.spec.breaker;
        let (kind, detail) = match to {
            BreakerState::Open { .. } => (
                EventKind::BreakerOpened,
                format!(
                    "{} consecutive failures; half-open in {} s",
                    inst.live.consecutive_failures(),
                    p.recovery_time.as_secs()
                ),
            ),
            BreakerState::HalfOpen { .. } => (
                EventKind::BreakerHalfOpen,
                format!("admitting {} trial request(s)", p.half_open_requests),
            ),
            BreakerState::Closed => (
                EventKind::BreakerClosed,
                "every trial request succeeded".to_owned(),
            ),
        };
        self.events.push("instance", &inst.spec.id, kind, detail);
    }

    /// Everything about `inst`'s health, for the admin API.
    pub fn view(&self, inst: &Instance, now_ns: u64) -> InstanceHealth {
        let live = &inst.live;
        let track = live.track();
        let hp = &inst.spec.health;
        let in_s = |t: u64| secs(t.saturating_sub(now_ns));
        let (ejection, until_s) = match live.gate().ejection() {
            Ejection::In => ("in", None),
            Ejection::CoolingDown { until_ns } => ("cooling_down", Some(in_s(until_ns))),
            Ejection::Ejected { until_ns } => ("ejected", Some(in_s(until_ns))),
            Ejection::SlowStart { .. } => ("slow_start", None),
        };
        let breaker = live.gate().breaker.state();
        let (requests, failures) =
            live.health_window(now_ns, hp.error_window, track.recovered_ns.load(Relaxed));
        InstanceHealth {
            id: inst.spec.id.clone(),
            state: self.state(inst, now_ns),
            admitted: !live.is_gated(),
            ejection,
            until_s,
            ejections: track.ejections.load(Relaxed),
            share: live.gate().share(now_ns),
            consecutive_failures: live.consecutive_failures(),
            probe_failures: track.probe_failures.load(Relaxed),
            last_probe: match track.probe_ok.load(Relaxed) {
                0 => None,
                ok => Some(ProbeView {
                    at_ms: track.probe_at_ms.load(Relaxed),
                    ok: ok == 1,
                }),
            },
            window: WindowView {
                seconds: hp.error_window.as_secs(),
                requests,
                failures,
            },
            breaker: BreakerView::of(breaker, now_ns),
        }
    }

    /// A task group breaker, for the admin API.
    pub fn group_view(g: &GroupBreaker, now_ns: u64) -> BreakerView {
        BreakerView::of(g.state(), now_ns)
    }
}

/// Set or clear the gated bit so it says what the gate says now.
fn sync(inst: &Instance, now_ns: u64) {
    let live = &inst.live;
    live.set_gated(|| live.gate().refuses(&inst.spec.breaker, now_ns));
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceHealth {
    pub id: String,
    pub state: State,
    /// Strategies may pick it now.
    pub admitted: bool,
    /// `in`, `cooling_down`, `ejected` or `slow_start`.
    pub ejection: &'static str,
    /// Seconds until a cool-down or ejection ends.
    pub until_s: Option<f64>,
    /// Ejections so far (the backoff exponent).
    pub ejections: u32,
    /// Share of its normal traffic (below 1 during slow start).
    pub share: f64,
    pub consecutive_failures: u32,
    pub probe_failures: u32,
    pub last_probe: Option<ProbeView>,
    pub window: WindowView,
    pub breaker: BreakerView,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeView {
    pub at_ms: u64,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowView {
    pub seconds: u64,
    pub requests: u64,
    pub failures: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BreakerView {
    pub state: &'static str,
    /// Seconds until an open breaker half-opens.
    pub half_open_in_s: Option<f64>,
    pub trials_admitted: Option<u32>,
    pub trials_succeeded: Option<u32>,
}

impl BreakerView {
    fn of(s: BreakerState, now_ns: u64) -> Self {
        let (half_open_in_s, trials_admitted, trials_succeeded) = match s {
            BreakerState::Open { until_ns } => {
                (Some(secs(until_ns.saturating_sub(now_ns))), None, None)
            }
            BreakerState::HalfOpen {
                admitted,
                succeeded,
            } => (None, Some(admitted), Some(succeeded)),
            BreakerState::Closed => (None, None, None),
        };
        Self {
            state: s.as_str(),
            half_open_in_s,
            trials_admitted,
            trials_succeeded,
        }
    }
}

#[cfg(test)]
mod tests;
