//! Seed 001's multi-factor score: each accepted member gets
//! `Σ weight_k × factor_k / Σ weight_k` and the highest wins.
//!
//! Factors, each normalised to 0..1 over the members accepted for this pick:
//! - `weight` (30 %): the member's weight / the largest weight.
//! - `health` (25 %): 1 with no recent failure, 0.5 after one or two in a row (degraded),
//!   0 after three or more (unhealthy; seed 001's three-failure rule).
//! - `performance` (20 %): lowest load / this load, where load is the peak-EWMA latency ×
//!   (in-flight + 1) of the `latency` strategy. In-flight is in it so that the best member does
//!   not take every request at once: as its queue grows its score drops.
//! - `reliability` (15 %): success ratio, exponentially weighted over about a minute.
//! - `cost` (10 %): lowest price / this price (price = 1k input + 1k output tokens; free = 1).
//!
//! Ties (scores within 0.01) take turns exactly: the k-th pick among t tied members goes to
//! tie k mod t, so the result is deterministic for a sequence of picks and equals share.

use serde::Deserialize;

use super::{Candidates, Latency, Member, Strategy, TieTurns};

/// Relative weights of the five factors; they need not sum to 1 (they are normalised).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default)]
pub struct ScoreWeights {
    pub weight: f64,
    pub health: f64,
    pub performance: f64,
    pub reliability: f64,
    pub cost: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        Self {
            weight: 0.30,
            health: 0.25,
            performance: 0.20,
            reliability: 0.15,
            cost: 0.10,
        }
    }
}

impl ScoreWeights {
    /// Why these weights cannot be used, if they cannot.
    pub fn problem(&self) -> Option<&'static str> {
        let all = [
            self.weight,
            self.health,
            self.performance,
            self.reliability,
            self.cost,
        ];
        if all.iter().any(|w| !w.is_finite() || *w < 0.0) {
            Some("every score weight must be a finite number ≥ 0")
        } else if all.iter().sum::<f64>() <= 0.0 {
            Some("at least one score weight must be above 0")
        } else {
            None
        }
    }

    fn normalised(self) -> Self {
        let sum = self.weight + self.health + self.performance + self.reliability + self.cost;
        if sum.is_finite() && sum > 0.0 {
            Self {
                weight: self.weight / sum,
                health: self.health / sum,
                performance: self.performance / sum,
                reliability: self.reliability / sum,
                cost: self.cost / sum,
            }
        } else {
            Self::default()
        }
    }
}

#[derive(Debug)]
pub struct Score {
    weights: ScoreWeights,
    next: TieTurns,
    /// `1 / price` per member (infinity when free): prices are fixed for a tier's life, so
    /// pass two multiplies instead of dividing.
    inv_price: Vec<f64>,
}

impl Score {
    pub fn new(weights: ScoreWeights, members: &[Member]) -> Self {
        Self {
            weights: weights.normalised(),
            next: TieTurns::default(),
            inv_price: members.iter().map(|m| recip(m.unit_price())).collect(),
        }
    }
}

/// Scores closer than this (1 % of the 0..1 scale) are equal: noise in the estimates must not
/// send all traffic to one of two equivalent members, and a recovered member that is back to
/// within 1 % of the best shares again.
const TIE: f64 = 0.01;

fn health(consecutive_failures: u32) -> f64 {
    match consecutive_failures {
        0 => 1.0,
        1 | 2 => 0.5,
        _ => 0.0,
    }
}

impl Strategy for Score {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let n = c.len();
        if n == 0 {
            return None;
        }
        // Pass one: per member, the reciprocals of its load (peak-EWMA latency, an exp) and
        // price, kept for pass two; the tier's bests. Reciprocals turn pass two's ratios into
        // multiplications. NaN marks a refused member.
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.clear();
            scratch.resize(n, (f64::NAN, 0.0));
            self.pick_with(c, &mut scratch)
        })
    }
}

thread_local! {
    /// Per-thread scratch for a pick's per-member values: no allocation and no 1 KiB stack
    /// fill per pick (a fixed cost that showed at 3 members).
    static SCRATCH: std::cell::RefCell<Vec<(f64, f64)>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Score {
    fn pick_with(&self, c: &Candidates<'_>, inv: &mut [(f64, f64)]) -> Option<usize> {
        let (mut max_weight, mut best_load, mut best_price) = (0u32, f64::INFINITY, f64::INFINITY);
        for (i, slot) in inv.iter_mut().enumerate() {
            if !c.accepts(i) {
                continue;
            }
            let load = Latency::load(c, i);
            let m = &c.members[i];
            let inv_price = self.inv_price.get(i).copied().unwrap_or(f64::INFINITY);
            *slot = (recip(load), inv_price);
            let price = m.unit_price();
            max_weight = max_weight.max(m.weight.max(1));
            best_load = best_load.min(load);
            best_price = best_price.min(price);
        }
        if max_weight == 0 {
            return None;
        }
        let w = &self.weights;
        let per_weight = w.weight / f64::from(max_weight);
        // Pass two turns each slot's first half into the member's score, in place.
        let mut top = f64::NEG_INFINITY;
        let mut ties = 0;
        for (i, slot) in inv.iter_mut().enumerate() {
            let (inv_load, inv_price) = *slot;
            if inv_load.is_nan() {
                continue;
            }
            let live = &c.members[i].live;
            let score = per_weight * f64::from(c.members[i].weight.max(1))
                + w.health * health(live.consecutive_failures())
                + w.performance * ratio(best_load, inv_load)
                + w.reliability * live.success_ratio().clamp(0.0, 1.0)
                + w.cost * ratio(best_price, inv_price);
            slot.0 = score;
            if score > top + TIE {
                (top, ties) = (score, 1);
            } else if score >= top - TIE {
                ties += 1;
            }
        }
        if ties == 0 {
            return None;
        }
        let nth = self.next.turn(c.retry) % ties;
        inv.iter()
            .enumerate()
            .filter(|(_, (s, _))| !s.is_nan() && *s >= top - TIE)
            .nth(nth)
            .map(|(i, _)| i)
    }
}

/// `1 / x`, with a free (zero) or unknown value as infinity: it is then the best.
#[inline]
fn recip(x: f64) -> f64 {
    if x > 0.0 { 1.0 / x } else { f64::INFINITY }
}

/// `best / mine` in 0..1 from `1 / mine`; a member that is itself free or instant scores 1.
#[inline]
fn ratio(best: f64, inv_mine: f64) -> f64 {
    if inv_mine.is_infinite() {
        1.0
    } else {
        (best * inv_mine).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::balance::{Member, members};
    use crate::config::Price;
    use crate::provider::ErrorClass;
    use crate::stats::{Attempt, Outcome};

    const S: u64 = 1_000_000_000;

    fn record(m: &Member, outcome: Outcome, latency_ms: u64, now_ns: u64) {
        let a = Attempt {
            outcome,
            latency: Duration::from_millis(latency_ms),
            ttft: None,
        };
        m.live.record(Price::default(), &a, now_ns);
    }

    const OK: Outcome = Outcome::Success {
        prompt_tokens: 1,
        completion_tokens: 1,
    };

    fn shares(s: &Score, m: &[Member], now_ns: u64, picks: usize) -> Vec<f64> {
        let mut counts = vec![0usize; m.len()];
        for _ in 0..picks {
            counts[s.pick(&Candidates::new(m, now_ns)).unwrap()] += 1;
        }
        counts.iter().map(|&n| n as f64 / picks as f64).collect()
    }

    #[test]
    fn equal_members_share_by_rotation() {
        let m = members(&[1, 1, 1]);
        let s = Score::new(ScoreWeights::default(), &m);
        let picks: Vec<_> = (0..6)
            .map(|_| s.pick(&Candidates::new(&m, 0)).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn default_weights_are_the_seeds_and_each_factor_counts() {
        let w = ScoreWeights::default();
        assert_eq!(
            [w.weight, w.health, w.performance, w.reliability, w.cost],
            [0.30, 0.25, 0.20, 0.15, 0.10]
        );
        // Heavier weight wins when all else is equal.
        let m = members(&[1, 2]);
        let s = Score::new(w, &m);
        assert_eq!(s.pick(&Candidates::new(&m, 0)), Some(1));
        // Cheaper wins among equal weights when only cost counts.
        let mut m = members(&[1, 1]);
        m[0].price = Price {
            input_per_1k: 2.0,
            output_per_1k: 2.0,
        };
        m[1].price = Price {
            input_per_1k: 1.0,
            output_per_1k: 1.0,
        };
        let only_cost = Score::new(
            ScoreWeights {
                weight: 0.0,
                health: 0.0,
                performance: 0.0,
                reliability: 0.0,
                cost: 1.0,
            },
            &m,
        );
        assert_eq!(only_cost.pick(&Candidates::new(&m, 0)), Some(1));
        assert!(ScoreWeights { cost: -1.0, ..w }.problem().is_some());
        assert!(
            ScoreWeights {
                weight: 0.0,
                health: 0.0,
                performance: 0.0,
                reliability: 0.0,
                cost: 0.0
            }
            .problem()
            .is_some()
        );
    }

    #[test]
    fn traffic_leaves_a_failing_slow_instance_and_returns_when_it_recovers() {
        let m = members(&[1, 1, 1]);
        let s = Score::new(ScoreWeights::default(), &m);
        let mut now = 0;
        for member in &m {
            record(member, OK, 100, now);
        }
        let even = shares(&s, &m, now, 3000);
        assert!(
            even.iter().all(|x| (x - 1.0 / 3.0).abs() < 0.01),
            "{even:?}"
        );
        // Instance 2 gets slow and fails three times in a row: health 0, worse performance
        // and reliability.
        record(&m[2], OK, 3000, now);
        for _ in 0..3 {
            record(&m[2], Outcome::Failure(ErrorClass::Server), 3000, now);
        }
        let sick = shares(&s, &m, now, 3000);
        assert_eq!(sick[2], 0.0, "{sick:?}");
        // It recovers: two minutes of fast successes.
        for _ in 0..240 {
            now += S / 2;
            for member in &m {
                record(member, OK, 100, now);
            }
        }
        let back = shares(&s, &m, now, 3000);
        assert!(back[2] > 0.3, "{back:?}");
    }

    #[test]
    fn in_flight_load_spreads_traffic_off_the_best_member() {
        let m = members(&[1, 1]);
        let s = Score::new(ScoreWeights::default(), &m);
        for member in &m {
            record(member, OK, 100, 0);
        }
        for _ in 0..4 {
            m[0].live.acquire();
        }
        assert_eq!(s.pick(&Candidates::new(&m, 0)), Some(1));
    }
}
