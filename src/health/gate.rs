//! Whether an instance takes traffic now, in two atomic words that live in its `Live` (the
//! cache line every pick reads): the ejection word and the circuit breaker.
//!
//! Ejection word: bits 0–1 the mode, the rest its time.
//! - in (0): takes traffic;
//! - cooling down (1) until a time: the provider said 429 with `Retry-After`;
//! - ejected (2) until a time: after it, the next passing probe brings it back;
//! - slow start (3): back, ramping up; bits 2–43 the start (ms), bits 44–63 the ramp (s).
//!
//! Strategies never read these words: `stats::Live` keeps a "gated" bit in its load word, set
//! while the gate refuses (so every strategy skips the instance exactly like a draining one)
//! and cleared on recovery or, for timed states, by the checker when the time is up. The
//! words are the truth; `Health::admit` reads them after a pick.

use std::sync::Arc;
use std::time::Duration;

use super::breaker::BreakerCell;
use super::policy::BreakerPolicy;
use crate::shared::{self, Cell, Store};

const MODE: u64 = 3;
const IN: u64 = 0;
const COOL: u64 = 1;
const EJECTED: u64 = 2;
const SLOW: u64 = 3;
const TIME_MAX: u64 = u64::MAX >> 2;

/// Smallest share of its normal traffic a slow-starting instance gets.
pub const SLOW_START_FLOOR: f64 = 0.1;

/// The ejection word, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ejection {
    In,
    CoolingDown { until_ns: u64 },
    Ejected { until_ns: u64 },
    SlowStart { since_ns: u64, ramp: Duration },
}

#[derive(Debug)]
pub struct Gate {
    eject: Arc<dyn Cell>,
    pub breaker: BreakerCell,
}

impl Default for Gate {
    /// A gate of its own, in no store.
    fn default() -> Self {
        Self {
            eject: shared::local(),
            breaker: BreakerCell::default(),
        }
    }
}

fn timed(mode: u64, t_ns: u64) -> u64 {
    mode | t_ns.min(TIME_MAX) << 2
}

fn decode(w: u64) -> Ejection {
    match w & MODE {
        COOL => Ejection::CoolingDown { until_ns: w >> 2 },
        EJECTED => Ejection::Ejected { until_ns: w >> 2 },
        SLOW => Ejection::SlowStart {
            since_ns: ((w >> 2) & ((1 << 42) - 1)) * 1_000_000,
            ramp: Duration::from_secs(w >> 44),
        },
        _ => Ejection::In,
    }
}

impl Gate {
    /// Instance `id`'s gate, its words in `store` (shared by every gate of that id).
    pub fn new(store: &dyn Store, id: &str) -> Self {
        Self {
            eject: store.cell(&format!("health/instance/{id}/ejection")),
            breaker: BreakerCell::new(store.cell(&format!("health/instance/{id}/breaker"))),
        }
    }

    /// Both words clear: the common case, two loads.
    #[inline]
    pub fn is_open(&self) -> bool {
        self.eject.load() == IN && self.breaker.is_closed()
    }

    pub fn ejection(&self) -> Ejection {
        decode(self.eject.load())
    }

    pub fn is_ejected(&self) -> bool {
        self.eject.load() & MODE == EJECTED
    }

    /// Whether the gate refuses traffic now (what the "gated" bit mirrors).
    pub fn refuses(&self, breaker: &BreakerPolicy, now_ns: u64) -> bool {
        let refused = match self.ejection() {
            Ejection::Ejected { .. } => true,
            Ejection::CoolingDown { until_ns } => now_ns < until_ns,
            _ => false,
        };
        refused || self.breaker.refuses(breaker, now_ns)
    }

    /// The share of its normal traffic the instance should get now: below 1 only while it
    /// slow-starts (linear from [`SLOW_START_FLOOR`] to 1 over the ramp).
    pub fn share(&self, now_ns: u64) -> f64 {
        match self.ejection() {
            Ejection::SlowStart { since_ns, ramp } if !ramp.is_zero() => {
                let f = now_ns.saturating_sub(since_ns) as f64 / ramp.as_nanos() as f64;
                f.clamp(SLOW_START_FLOOR, 1.0)
            }
            _ => 1.0,
        }
    }

    /// Eject until `until_ns`. False if it already was.
    pub fn eject(&self, until_ns: u64) -> bool {
        let next = timed(EJECTED, until_ns);
        let mut w = self.eject.load();
        loop {
            if w & MODE == EJECTED {
                return false;
            }
            match self.eject.compare_exchange(w, next) {
                Ok(_) => return true,
                Err(seen) => w = seen,
            }
        }
    }

    /// Cool down until `until_ns` (an ejection stays as it is; a longer cool-down wins).
    /// True if it changed.
    pub fn cool_down(&self, until_ns: u64) -> bool {
        let next = timed(COOL, until_ns);
        let mut w = self.eject.load();
        loop {
            match decode(w) {
                Ejection::Ejected { .. } => return false,
                Ejection::CoolingDown { until_ns: t } if t >= until_ns => return false,
                _ => {}
            }
            match self.eject.compare_exchange(w, next) {
                Ok(_) => return true,
                Err(seen) => w = seen,
            }
        }
    }

    /// Ejected → back in, ramping over `ramp` (no ramp: at once). False if it was not ejected.
    pub fn recover(&self, now_ns: u64, ramp: Duration) -> bool {
        let w = self.eject.load();
        w & MODE == EJECTED
            && self
                .eject
                .compare_exchange(w, slow_word(now_ns, ramp))
                .is_ok()
    }

    /// Start a slow start now (a newly registered instance).
    pub fn slow_start(&self, now_ns: u64, ramp: Duration) {
        self.eject.store(slow_word(now_ns, ramp));
    }

    /// End timed states whose time is up (cool-down over, ramp done). True if it changed.
    pub fn expire(&self, now_ns: u64) -> bool {
        let w = self.eject.load();
        let over = match decode(w) {
            Ejection::CoolingDown { until_ns } => now_ns >= until_ns,
            Ejection::SlowStart { since_ns, ramp } => {
                now_ns >= since_ns.saturating_add(ramp.as_nanos() as u64)
            }
            _ => false,
        };
        over && self.eject.compare_exchange(w, IN).is_ok()
    }

    /// Back in at once, whatever the state (an operator's override, tests).
    pub fn clear(&self) {
        self.eject.store(IN);
        self.breaker.reset();
    }

    /// The next time the gate changes by itself: a cool-down or ramp ending, an ejection's
    /// time up (its probe is due), an open breaker half-opening.
    pub fn next_change(&self) -> Option<u64> {
        let eject = match self.ejection() {
            Ejection::CoolingDown { until_ns } | Ejection::Ejected { until_ns } => Some(until_ns),
            Ejection::SlowStart { since_ns, ramp } => {
                Some(since_ns.saturating_add(ramp.as_nanos() as u64))
            }
            Ejection::In => None,
        };
        let breaker = match self.breaker.state() {
            super::BreakerState::Open { until_ns } => Some(until_ns),
            _ => None,
        };
        match (eject, breaker) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn slow_word(now_ns: u64, ramp: Duration) -> u64 {
    if ramp.is_zero() {
        return IN;
    }
    let ms = (now_ns / 1_000_000) & ((1 << 42) - 1);
    SLOW | ms << 2 | ramp.as_secs().clamp(1, (1 << 20) - 1) << 44
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_fresh_gate_is_open_and_ejection_refuses_until_recovered() {
        let g = Gate::default();
        let p = BreakerPolicy::default();
        assert!(g.is_open() && !g.refuses(&p, 0));
        assert!(g.eject(10 * S));
        assert!(!g.eject(20 * S), "already ejected");
        assert_eq!(g.ejection(), Ejection::Ejected { until_ns: 10 * S });
        // Still refused after its time: only a passing probe brings it back.
        assert!(g.refuses(&p, 11 * S));
        assert!(
            !g.cool_down(30 * S),
            "a cool-down does not override an ejection"
        );
        assert!(g.recover(11 * S, Duration::ZERO));
        assert!(g.is_open());
        assert!(!g.recover(12 * S, Duration::ZERO), "not ejected any more");
    }

    #[test]
    fn cool_down_refuses_until_its_time_then_expires() {
        let g = Gate::default();
        let p = BreakerPolicy::default();
        assert!(g.cool_down(5 * S));
        assert!(
            !g.cool_down(4 * S),
            "a shorter cool-down does not shorten it"
        );
        assert!(g.refuses(&p, 4 * S));
        assert!(!g.refuses(&p, 5 * S));
        assert_eq!(g.next_change(), Some(5 * S));
        assert!(!g.expire(4 * S));
        assert!(g.expire(5 * S));
        assert!(g.is_open());
    }

    #[test]
    fn slow_start_ramps_the_share_linearly_from_the_floor() {
        let g = Gate::default();
        g.slow_start(100 * S, Duration::from_secs(10));
        assert_eq!(g.share(100 * S), SLOW_START_FLOOR);
        assert!((g.share(105 * S) - 0.5).abs() < 1e-3);
        assert_eq!(g.share(110 * S), 1.0);
        assert!(!g.refuses(&BreakerPolicy::default(), 100 * S));
        assert_eq!(g.next_change(), Some(110 * S));
        assert!(g.expire(110 * S));
        assert_eq!(g.ejection(), Ejection::In);
    }

    #[test]
    fn recovery_with_a_ramp_slow_starts() {
        let g = Gate::default();
        g.eject(S);
        assert!(g.recover(2 * S, Duration::from_secs(30)));
        assert!(matches!(g.ejection(), Ejection::SlowStart { ramp, .. } if ramp.as_secs() == 30));
    }
}
