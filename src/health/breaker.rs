//! A circuit breaker in one atomic word: closed → open (after `failure_threshold`
//! consecutive failures) → half-open (after `recovery_time`, admitting exactly
//! `half_open_requests` trial requests) → closed when every trial succeeds, open again on the
//! first trial failure. Transitions are compare-and-swaps, so two threads can never both take
//! the last trial permit.
//!
//! Word layout: bits 0–1 the mode. Open: bits 2–63 the time it may half-open (ns on
//! `stats::clock_ns`'s clock). Half-open: bits 2–17 trials admitted, 18–33 trials succeeded,
//! 34–63 when it half-opened (ms, modulo 2^30). A half-open round whose permits are all taken
//! but that has heard no verdict for `recovery_time` (its trial requests were cancelled)
//! starts a new round, so a lost trial can never wedge the breaker.

use std::sync::Arc;

use super::policy::BreakerPolicy;
use crate::shared::{self, Cell};

const MODE: u64 = 3;
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF: u64 = 2;
const COUNT: u64 = 0xFFFF;
const SINCE_MASK: u64 = (1 << 30) - 1;

/// What a breaker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Refusing requests until `until_ns`.
    Open {
        until_ns: u64,
    },
    /// Admitting trial requests.
    HalfOpen {
        admitted: u32,
        succeeded: u32,
    },
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen { .. } => "half_open",
        }
    }
}

/// Whether a request may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: no permit needed.
    Free,
    /// Half-open: this request is one of the trials.
    Trial,
    /// Open, or half-open with every trial permit taken.
    Refused,
}

/// A state change worth an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Opened,
    HalfOpened,
    Closed,
}

/// A breaker's state word, in a shared [`Cell`].
#[derive(Debug)]
pub struct BreakerCell(Arc<dyn Cell>);

impl Default for BreakerCell {
    fn default() -> Self {
        Self(shared::local())
    }
}

fn half(admitted: u64, succeeded: u64, now_ns: u64) -> u64 {
    let since = (now_ns / 1_000_000) & SINCE_MASK;
    HALF | admitted << 2 | succeeded << 18 | since << 34
}

fn decode(w: u64) -> BreakerState {
    match w & MODE {
        OPEN => BreakerState::Open { until_ns: w >> 2 },
        HALF => BreakerState::HalfOpen {
            admitted: ((w >> 2) & COUNT) as u32,
            succeeded: ((w >> 18) & COUNT) as u32,
        },
        _ => BreakerState::Closed,
    }
}

fn trials(p: &BreakerPolicy) -> u64 {
    u64::from(p.half_open_requests.clamp(1, super::policy::MAX_HALF_OPEN))
}

/// A half-open round with no verdict for `recovery_time`.
fn stale(w: u64, p: &BreakerPolicy, now_ns: u64) -> bool {
    let since = w >> 34;
    let now = (now_ns / 1_000_000) & SINCE_MASK;
    let waited_ms = now.wrapping_sub(since) & SINCE_MASK;
    u128::from(waited_ms) > p.recovery_time.as_millis()
}

impl BreakerCell {
    pub fn new(cell: Arc<dyn Cell>) -> Self {
        Self(cell)
    }

    pub fn state(&self) -> BreakerState {
        decode(self.0.load())
    }

    #[inline]
    pub fn is_closed(&self) -> bool {
        self.0.load() & MODE == CLOSED
    }

    /// Whether a request would be refused now (without taking anything).
    pub fn refuses(&self, p: &BreakerPolicy, now_ns: u64) -> bool {
        let w = self.0.load();
        match w & MODE {
            OPEN => now_ns < w >> 2,
            HALF => (w >> 2) & COUNT >= trials(p) && !stale(w, p, now_ns),
            _ => false,
        }
    }

    /// Let one request through or not. Half-open (or open past its time, which half-opens
    /// it): take one of the `half_open_requests` trial permits, if one is left.
    pub fn admit(&self, p: &BreakerPolicy, now_ns: u64) -> (Admit, Option<Change>) {
        let mut w = self.0.load();
        loop {
            let (next, change) = match w & MODE {
                CLOSED => return (Admit::Free, None),
                OPEN if now_ns < w >> 2 => return (Admit::Refused, None),
                OPEN => (half(1, 0, now_ns), Some(Change::HalfOpened)),
                _ => {
                    let admitted = (w >> 2) & COUNT;
                    if admitted < trials(p) {
                        (w + (1 << 2), None)
                    } else if stale(w, p, now_ns) {
                        (half(1, 0, now_ns), None)
                    } else {
                        return (Admit::Refused, None);
                    }
                }
            };
            match self.0.compare_exchange(w, next) {
                Ok(_) => return (Admit::Trial, change),
                Err(seen) => w = seen,
            }
        }
    }

    /// Open→half-open once `recovery_time` is over (the checker calls this on time, so the
    /// event is logged when it happens, not at the next request).
    pub fn half_open_if_due(&self, now_ns: u64) -> Option<Change> {
        let w = self.0.load();
        (w & MODE == OPEN && now_ns >= w >> 2)
            .then(|| {
                self.0
                    .compare_exchange(w, half(0, 0, now_ns))
                    .ok()
                    .map(|_| Change::HalfOpened)
            })
            .flatten()
    }

    /// A request through it succeeded. Half-open: one more trial passed; all passed closes it.
    pub fn on_success(&self, p: &BreakerPolicy) -> Option<Change> {
        let mut w = self.0.load();
        loop {
            if w & MODE != HALF {
                return None;
            }
            let succeeded = ((w >> 18) & COUNT) + 1;
            let (next, change) = if succeeded >= trials(p) {
                (CLOSED, Some(Change::Closed))
            } else {
                (w + (1 << 18), None)
            };
            match self.0.compare_exchange(w, next) {
                Ok(_) => return change,
                Err(seen) => w = seen,
            }
        }
    }

    /// A request through it failed; `consecutive` failures in a row so far. Opens a closed
    /// breaker at the threshold, and a half-open one at once.
    pub fn on_failure(&self, p: &BreakerPolicy, consecutive: u32, now_ns: u64) -> Option<Change> {
        if !p.enabled {
            return None;
        }
        let until = now_ns.saturating_add(p.recovery_time.as_nanos() as u64) & (u64::MAX >> 2);
        let open = OPEN | until << 2;
        let mut w = self.0.load();
        loop {
            match w & MODE {
                CLOSED if consecutive < p.failure_threshold.max(1) => return None,
                OPEN => return None,
                _ => {}
            }
            match self.0.compare_exchange(w, open) {
                Ok(_) => return Some(Change::Opened),
                Err(seen) => w = seen,
            }
        }
    }

    /// Back to closed (an operator's reset, or a config that disables the breaker).
    pub fn reset(&self) -> bool {
        self.0.swap(CLOSED) != CLOSED
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: u64 = 1_000_000_000;

    fn policy(n: u32) -> BreakerPolicy {
        BreakerPolicy {
            enabled: true,
            failure_threshold: 3,
            recovery_time: Duration::from_secs(10),
            half_open_requests: n,
        }
    }

    #[test]
    fn opens_at_the_threshold_and_refuses_until_recovery_time() {
        let (b, p) = (BreakerCell::default(), policy(1));
        assert_eq!(b.on_failure(&p, 1, 0), None);
        assert_eq!(b.on_failure(&p, 2, 0), None);
        assert_eq!(b.admit(&p, 0).0, Admit::Free);
        assert_eq!(b.on_failure(&p, 3, S), Some(Change::Opened));
        assert_eq!(b.state(), BreakerState::Open { until_ns: 11 * S });
        assert!(b.refuses(&p, 10 * S));
        assert_eq!(b.admit(&p, 11 * S - 1).0, Admit::Refused);
        assert_eq!(
            b.admit(&p, 11 * S),
            (Admit::Trial, Some(Change::HalfOpened))
        );
    }

    #[test]
    fn half_open_admits_exactly_n_trials_then_closes_when_all_succeed() {
        let (b, p) = (BreakerCell::default(), policy(3));
        b.on_failure(&p, 3, 0);
        assert_eq!(b.half_open_if_due(10 * S), Some(Change::HalfOpened));
        let admitted: Vec<Admit> = (0..5).map(|_| b.admit(&p, 10 * S).0).collect();
        assert_eq!(
            admitted,
            [
                Admit::Trial,
                Admit::Trial,
                Admit::Trial,
                Admit::Refused,
                Admit::Refused
            ]
        );
        assert!(b.refuses(&p, 10 * S));
        assert_eq!(b.on_success(&p), None);
        assert_eq!(b.on_success(&p), None);
        assert_eq!(b.on_success(&p), Some(Change::Closed));
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(&p, 10 * S).0, Admit::Free);
    }

    #[test]
    fn a_failed_trial_opens_it_again_for_another_recovery_time() {
        let (b, p) = (BreakerCell::default(), policy(2));
        b.on_failure(&p, 3, 0);
        assert_eq!(b.admit(&p, 10 * S).0, Admit::Trial);
        assert_eq!(b.on_failure(&p, 4, 12 * S), Some(Change::Opened));
        assert_eq!(b.state(), BreakerState::Open { until_ns: 22 * S });
    }

    #[test]
    fn trials_whose_verdict_never_comes_do_not_wedge_it() {
        let (b, p) = (BreakerCell::default(), policy(1));
        b.on_failure(&p, 3, 0);
        assert_eq!(b.admit(&p, 10 * S).0, Admit::Trial);
        // The trial request was cancelled: no verdict. Within recovery_time: still refused.
        assert_eq!(b.admit(&p, 15 * S).0, Admit::Refused);
        // After it, a new round of trials starts.
        assert_eq!(b.admit(&p, 21 * S).0, Admit::Trial);
        assert_eq!(b.on_success(&p), Some(Change::Closed));
    }

    #[test]
    fn concurrent_admits_hand_out_exactly_n_permits() {
        let b = std::sync::Arc::new(BreakerCell::default());
        let p = policy(7);
        b.on_failure(&p, 3, 0);
        b.half_open_if_due(10 * S);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = std::sync::Arc::clone(&b);
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| b.admit(&p, 10 * S).0 == Admit::Trial)
                        .count()
                })
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(total, 7);
    }
}
