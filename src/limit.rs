//! Limits: how much an instance, a tier (pool or echelon) may be sent, so switchyard never
//! sends a provider more than it allows and one route cannot starve another (seed 003's
//! ConcurrencyController, seed 004's `concurrency_limit`, `rpm_limit`, `[pool.rate_limiting]`).
//!
//! - [`rate`]: token bucket, fixed window, sliding window (weighted counter).
//! - [`Concurrency`]: in-flight permits, returned when the response ends (stream end, error,
//!   client gone: the permit is a guard held with the request's in-flight guard).
//! - [`Limits`]: what one tier or instance enforces; [`Limits::admit`] takes from each in turn
//!   and gives back what it took if a later one refuses.
//!
//! State lives in `shared` cells (keyed `limit/{scope}/{name}/{kind}`), so a shared store can
//! hold it for every replica.

mod queue;
pub mod rate;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

pub use queue::{Queue, Ticket};
pub use rate::{Algorithm, Rate};

use crate::shared::{Cell, Store};

/// A limit as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitSpec {
    pub concurrency: Option<u32>,
    /// Requests.
    pub requests: Option<Algorithm>,
    /// Tokens (prompt estimate + `max_tokens`, corrected by reported usage).
    pub tokens: Option<Algorithm>,
}

impl Default for LimitSpec {
    fn default() -> Self {
        Self::NONE
    }
}

impl LimitSpec {
    /// From `rpm_limit` / `tpm_limit` / `concurrency_limit` values (0 or none: no limit).
    pub fn from_keys(rpm: Option<u32>, tpm: Option<u32>, concurrency: Option<u32>) -> Self {
        Self {
            concurrency: concurrency.filter(|n| *n > 0),
            requests: rpm.filter(|n| *n > 0).map(Self::per_minute),
            tokens: tpm.filter(|n| *n > 0).map(Self::per_minute),
        }
    }

    pub const NONE: Self = Self {
        concurrency: None,
        requests: None,
        tokens: None,
    };

    pub fn is_none(&self) -> bool {
        self.concurrency.is_none() && self.requests.is_none() && self.tokens.is_none()
    }

    /// `rpm_limit` / `tpm_limit`: at most `n` in any minute (an exact sliding log up to
    /// `rate::LOG_MAX`, the weighted sliding window above).
    pub fn per_minute(n: u32) -> Algorithm {
        let (window, max) = (Duration::from_secs(60), u64::from(n));
        if max <= rate::LOG_MAX {
            Algorithm::SlidingLog { window, max }
        } else {
            Algorithm::SlidingWindow {
                window,
                max: max.min(rate::SLIDING_MAX),
            }
        }
    }
}

/// In-flight permits up to `max`.
#[derive(Debug)]
pub struct Concurrency {
    pub max: u64,
    cell: Arc<dyn Cell>,
}

impl Concurrency {
    fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut n = self.cell.load();
        loop {
            if n >= self.max {
                return None;
            }
            match self.cell.compare_exchange(n, n + 1) {
                Ok(_) => return Some(Permit(Arc::clone(self))),
                Err(seen) => n = seen,
            }
        }
    }

    pub fn in_flight(&self) -> u64 {
        self.cell.load()
    }
}

/// One in-flight slot; dropped, it is returned.
#[derive(Debug)]
pub struct Permit(Arc<Concurrency>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.cell.fetch_sub(1);
    }
}

/// Why a limit refused, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub what: &'static str,
    pub retry_after: Duration,
    pub headroom: Headroom,
}

/// What OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headroom {
    /// `requests` or `tokens`.
    pub kind: &'static str,
    pub limit: u64,
    pub remaining: u64,
    pub reset: Duration,
}

impl Headroom {
    /// Add the three headers (`reset` in OpenAI's form: `1.5s`, `20ms`, `6m0s`).
    pub fn write(&self, headers: &mut http::HeaderMap) {
        let name = |what: &str| {
            http::HeaderName::from_bytes(format!("x-ratelimit-{what}-{}", self.kind).as_bytes())
                .ok()
        };
        let ms = self.reset.as_millis();
        let reset = if ms < 1000 {
            format!("{ms}ms")
        } else if ms < 60_000 {
            let secs = format!("{:.3}", ms as f64 / 1e3);
            format!("{}s", secs.trim_end_matches('0').trim_end_matches('.'))
        } else {
            format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
        };
        for (what, value) in [
            ("limit", self.limit.to_string()),
            ("remaining", self.remaining.to_string()),
            ("reset", reset),
        ] {
            if let (Some(n), Ok(v)) = (name(what), http::HeaderValue::from_str(&value)) {
                headers.insert(n, v);
            }
        }
    }
}

/// What one tier or instance enforces.
#[derive(Debug)]
pub struct Limits {
    /// `tier g.e1`, `instance a`: for the admin API and logs.
    pub name: String,
    concurrency: Option<Arc<Concurrency>>,
    requests: Option<Rate>,
    tokens: Option<Rate>,
    refused: AtomicU64,
    admitted: AtomicU64,
}

/// Everything a request holds from the limits that admitted it; dropped at the end of the
/// response.
#[derive(Debug, Default)]
pub struct Permits {
    held: Vec<Permit>,
    /// Token reservations `(limits, tokens)`, corrected when usage is known.
    reserved: Vec<(Arc<Limits>, u64)>,
    /// Told when the held permits come back (requests waiting for room).
    waker: Option<Arc<Queue>>,
}

impl Drop for Permits {
    fn drop(&mut self) {
        if !self.held.is_empty() {
            self.held.clear();
            if let Some(q) = &self.waker {
                q.release();
            }
        }
    }
}

impl Permits {
    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.reserved.is_empty()
    }

    /// Permits that tell `queue` when they come back.
    pub fn waking(queue: &Arc<Queue>) -> Self {
        Self {
            held: Vec::new(),
            reserved: Vec::new(),
            waker: Some(Arc::clone(queue)),
        }
    }

    /// Take over `other`'s permits and reservations (a client's, joining its attempt's).
    pub fn absorb(&mut self, mut other: Permits) {
        self.held.append(&mut other.held);
        self.reserved.append(&mut other.reserved);
        if self.waker.is_none() {
            self.waker = other.waker.take();
        }
    }

    /// The reply reported `used` tokens: give back what the estimate over-reserved, or take
    /// the shortfall (it may push a bucket into debt-free zero; never refuses now).
    pub fn settle_tokens(&mut self, used: u64, now_ms: u64) {
        for (limits, reserved) in self.reserved.drain(..) {
            if let Some(t) = &limits.tokens {
                if used < reserved {
                    t.give_back(reserved - used, now_ms);
                } else if used > reserved {
                    let _ = t.take(used - reserved, now_ms);
                }
            }
        }
    }
}

impl Limits {
    /// `spec` for `scope`/`name`, its state in `store`.
    pub fn new(store: &dyn Store, scope: &str, name: &str, spec: &LimitSpec) -> Option<Arc<Self>> {
        if spec.is_none() {
            return None;
        }
        let key = |k: &str| format!("limit/{scope}/{name}/{k}");
        let rate = |a: Algorithm, k: &str| {
            let ring = match a {
                Algorithm::SlidingLog { max, .. } => (0..max)
                    .map(|i| store.cell(&format!("{}/{i}", key(k))))
                    .collect(),
                _ => Vec::new(),
            };
            Rate::new(a, store.cell(&key(k)), ring)
        };
        Some(Arc::new(Self {
            name: format!("{scope} {name}"),
            concurrency: spec.concurrency.map(|max| {
                Arc::new(Concurrency {
                    max: u64::from(max),
                    cell: store.cell(&key("in_flight")),
                })
            }),
            requests: spec.requests.map(|a| rate(a, "requests")),
            tokens: spec.tokens.map(|a| rate(a, "tokens")),
            refused: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
        }))
    }

    /// Take one request (and `tokens` estimated tokens) into `permits`, or refuse, giving back
    /// whatever this call took.
    pub fn admit(
        self: &Arc<Self>,
        tokens: u64,
        now_ms: u64,
        permits: &mut Permits,
    ) -> Result<(), Refusal> {
        let refuse = |what, retry_after, headroom| {
            self.refused.fetch_add(1, Relaxed);
            Err(Refusal {
                what,
                retry_after,
                headroom,
            })
        };
        let permit = match &self.concurrency {
            None => None,
            Some(c) => match c.try_acquire() {
                Some(p) => Some(p),
                // When a slot frees is unknowable: come back soon.
                None => {
                    let wait = Duration::from_secs(1);
                    let headroom = Headroom {
                        kind: "requests",
                        limit: c.max,
                        remaining: 0,
                        reset: wait,
                    };
                    return refuse("concurrency_full", wait, headroom);
                }
            },
        };
        if let Some(r) = &self.requests {
            if let Err(wait) = r.take(1, now_ms) {
                let headroom = headroom("requests", r, now_ms);
                return refuse("rate_limited", wait, headroom);
            }
        }
        if let Some(t) = &self.tokens {
            if let Err(wait) = t.take(tokens, now_ms) {
                if let Some(r) = &self.requests {
                    r.give_back(1, now_ms);
                }
                let headroom = headroom("tokens", t, now_ms);
                return refuse("token_limited", wait, headroom);
            }
            permits.reserved.push((Arc::clone(self), tokens));
        }
        permits.held.extend(permit);
        self.admitted.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Undo an [`Limits::admit`] whose request never went out (a later level refused).
    pub fn undo(&self, tokens: u64, now_ms: u64) {
        if let Some(r) = &self.requests {
            r.give_back(1, now_ms);
        }
        if let Some(t) = &self.tokens {
            t.give_back(tokens, now_ms);
        }
        self.admitted.fetch_sub(1, Relaxed);
    }

    /// For the admin API (seed 003's get_status).
    pub fn view(&self, now_ms: u64) -> LimitsView {
        let rate = |r: &Rate| {
            let (used, remaining, reset) = r.status(now_ms);
            RateView {
                algorithm: r.algorithm.as_str(),
                capacity: r.algorithm.capacity(),
                used,
                remaining,
                reset_s: reset.as_secs_f64(),
            }
        };
        LimitsView {
            name: self.name.clone(),
            concurrency: self.concurrency.as_ref().map(|c| ConcurrencyView {
                max: c.max,
                in_flight: c.in_flight(),
            }),
            requests: self.requests.as_ref().map(rate),
            tokens: self.tokens.as_ref().map(rate),
            admitted: self.admitted.load(Relaxed),
            refused: self.refused.load(Relaxed),
        }
    }

    /// `x-ratelimit-*` values of the requests limit: `(limit, remaining, reset)`.
    pub fn request_headroom(&self, now_ms: u64) -> Option<(u64, u64, Duration)> {
        let r = self.requests.as_ref()?;
        let (_, remaining, reset) = r.status(now_ms);
        Some((r.algorithm.capacity(), remaining, reset))
    }
}

fn headroom(kind: &'static str, r: &Rate, now_ms: u64) -> Headroom {
    let (_, remaining, reset) = r.status(now_ms);
    Headroom {
        kind,
        limit: r.algorithm.capacity(),
        remaining,
        reset,
    }
}

/// Limits per calling client, made on first sight of each client (state in the store, so a
/// new snapshot's table finds the same counts).
#[derive(Debug)]
pub struct ClientTable {
    spec: crate::config::ClientLimits,
    store: Arc<dyn Store>,
    made: std::sync::Mutex<std::collections::HashMap<String, Option<Arc<Limits>>>>,
}

/// Distinct clients kept; past it, a client's limits are made per request (same state).
const CLIENTS_KEPT: usize = 10_000;

impl ClientTable {
    pub fn new(spec: crate::config::ClientLimits, store: Arc<dyn Store>) -> Self {
        Self {
            spec,
            store,
            made: std::sync::Mutex::default(),
        }
    }

    /// Whether any client limit is configured.
    pub fn enabled(&self) -> bool {
        !(self.spec.default.is_none() && self.spec.keys.is_empty())
    }

    /// The limits of `client` (`anonymous` when unnamed), if any apply.
    pub fn get(&self, client: Option<&str>) -> Option<Arc<Limits>> {
        if !self.enabled() {
            return None;
        }
        let name = client.unwrap_or("anonymous");
        let make = || Limits::new(&*self.store, "client", name, self.spec.for_client(name));
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = made.get(name) {
            return found.clone();
        }
        let limits = make();
        if made.len() < CLIENTS_KEPT {
            made.insert(name.to_owned(), limits.clone());
        }
        limits
    }

    /// Every client seen so far, for the admin API.
    pub fn all(&self) -> Vec<Arc<Limits>> {
        let made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        made.values().flatten().cloned().collect()
    }
}

/// Admit a request through every level in order; on a refusal, undo the levels already taken.
/// `None` levels are skipped; a refusal says which level (its index) refused.
pub fn admit_all(
    levels: &[Option<&Arc<Limits>>],
    tokens: u64,
    now_ms: u64,
    permits: &mut Permits,
) -> Result<(), (usize, Refusal)> {
    for (i, l) in levels.iter().enumerate() {
        let Some(l) = l else {
            continue;
        };
        if let Err(r) = l.admit(tokens, now_ms, permits) {
            for taken in levels[..i].iter().flatten() {
                taken.undo(tokens, now_ms);
            }
            permits.held.clear();
            permits.reserved.clear();
            return Err((i, r));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct LimitsView {
    pub name: String,
    pub concurrency: Option<ConcurrencyView>,
    pub requests: Option<RateView>,
    pub tokens: Option<RateView>,
    pub admitted: u64,
    pub refused: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConcurrencyView {
    pub max: u64,
    pub in_flight: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RateView {
    pub algorithm: &'static str,
    pub capacity: u64,
    pub used: u64,
    pub remaining: u64,
    pub reset_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::MemoryStore;

    fn limits(store: &MemoryStore, name: &str, spec: LimitSpec) -> Arc<Limits> {
        Limits::new(store, "test", name, &spec).unwrap_or_else(|| panic!("no limits"))
    }

    #[test]
    fn headroom_writes_openai_style_headers() {
        let mut h = http::HeaderMap::new();
        for (ms, want) in [
            (20, "20ms"),
            (1500, "1.5s"),
            (2000, "2s"),
            (360_000, "6m0s"),
        ] {
            let room = Headroom {
                kind: "requests",
                limit: 60,
                remaining: 0,
                reset: Duration::from_millis(ms),
            };
            room.write(&mut h);
            assert_eq!(h["x-ratelimit-reset-requests"], want);
        }
        assert_eq!(h["x-ratelimit-limit-requests"], "60");
        assert_eq!(h["x-ratelimit-remaining-requests"], "0");
    }

    #[test]
    fn concurrency_permits_come_back_when_dropped() {
        let store = MemoryStore::default();
        let l = limits(
            &store,
            "c",
            LimitSpec {
                concurrency: Some(2),
                ..LimitSpec::NONE
            },
        );
        let (mut p1, mut p2, mut p3) = (Permits::default(), Permits::default(), Permits::default());
        assert!(l.admit(0, 0, &mut p1).is_ok());
        assert!(l.admit(0, 0, &mut p2).is_ok());
        assert_eq!(l.admit(0, 0, &mut p3).unwrap_err().what, "concurrency_full");
        drop(p1);
        assert!(l.admit(0, 0, &mut p3).is_ok());
        drop((p2, p3));
        assert_eq!(l.view(0).concurrency.map(|c| c.in_flight), Some(0));
        assert_eq!((l.view(0).admitted, l.view(0).refused), (3, 1));
    }

    #[test]
    fn a_refusal_at_a_later_level_gives_back_what_earlier_levels_took() {
        let store = MemoryStore::default();
        let window = Algorithm::FixedWindow {
            window: Duration::from_secs(60),
            max: 10,
        };
        let first = limits(
            &store,
            "first",
            LimitSpec {
                concurrency: Some(5),
                requests: Some(window),
                ..LimitSpec::NONE
            },
        );
        let second = limits(
            &store,
            "second",
            LimitSpec {
                concurrency: Some(0),
                ..LimitSpec::NONE
            },
        );
        let mut p = Permits::default();
        let r = admit_all(&[Some(&first), None, Some(&second)], 0, 0, &mut p);
        let (level, refusal) = r.unwrap_err();
        assert_eq!((level, refusal.what), (2, "concurrency_full"));
        assert!(p.is_empty());
        let v = first.view(0);
        assert_eq!(v.concurrency.map(|c| c.in_flight), Some(0));
        assert_eq!(v.requests.map(|r| r.used), Some(0));
    }

    #[test]
    fn tokens_are_reserved_by_estimate_and_settled_by_reported_usage() {
        let store = MemoryStore::default();
        let tpm = Algorithm::FixedWindow {
            window: Duration::from_secs(60),
            max: 1000,
        };
        let l = limits(
            &store,
            "t",
            LimitSpec {
                tokens: Some(tpm),
                ..LimitSpec::NONE
            },
        );
        // A burst is admitted until the estimates reach 1,000: three of 300, not four.
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut p = Permits::default();
            assert!(l.admit(300, 0, &mut p).is_ok());
            held.push(p);
        }
        let mut over = Permits::default();
        assert_eq!(
            l.admit(300, 0, &mut over).unwrap_err().what,
            "token_limited"
        );
        // The replies used 100 each: 600 come back, so two more 300s fit, a third does not.
        for p in &mut held {
            p.settle_tokens(100, 0);
        }
        assert_eq!(l.view(0).tokens.map(|t| t.used), Some(300));
        let (mut a, mut b, mut c) = (Permits::default(), Permits::default(), Permits::default());
        assert!(l.admit(300, 0, &mut a).is_ok());
        assert!(l.admit(300, 0, &mut b).is_ok());
        assert!(l.admit(300, 0, &mut c).is_err());
        // Usage above the estimate is taken too.
        a.settle_tokens(400, 0);
        assert_eq!(l.view(0).tokens.map(|t| t.used), Some(1000));
    }
}
