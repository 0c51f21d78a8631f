//! Seed 001's multi-factor score: each accepted member gets
//! `Σ weight_k × factor_k / Σ weight_k` and the highest wins.
//!
//! Factors, each normalised to 0..1:
//! - `weight` (30 %): the member's weight / the largest weight in the tier.
//! - `health` (25 %): 1 with no recent failure, 0.5 after one or two in a row (degraded),
//!   0 after three or more (unhealthy; seed 001's three-failure rule).
//! - `performance` (20 %): lowest load among the members accepted for this pick / this
//!   load, where load is the peak-EWMA latency ×
//!   (in-flight + 1) of the `latency` strategy. In-flight is in it so that the best member does
//!   not take every request at once: as its queue grows its score drops.
//! - `reliability` (15 %): success ratio, exponentially weighted over about a minute.
//! - `cost` (10 %): lowest price in the tier / this price (price = 1k input + 1k output
//!   tokens; free = 1).
//!
//! Weight and cost are fixed for a tier's life and computed when it is built; a pick reads
//! each member's live state once, then scores in two passes over per-thread scratch columns.
//!
//! Ties (scores within 0.01) take turns exactly: the k-th pick among t tied members goes to
//! tie k mod t, so the result is deterministic for a sequence of picks and equals share.

use serde::Deserialize;

use super::{Candidates, Latency, Member, Strategy, TieTurns};
use crate::stats::{DRAINING, LatencyDecay};

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
    /// Per member, its weighted `weight` and `cost` factors. Both are normalised over the
    /// whole tier, not over the members accepted for one pick: they are then fixed for the
    /// tier's life and computed once here, and a member's score does not jump because the
    /// heaviest or cheapest member is draining or was tried.
    fixed: Vec<f64>,
}

impl Score {
    pub fn new(weights: ScoreWeights, members: &[Member]) -> Self {
        let w = weights.normalised();
        let max_weight = members.iter().map(|m| m.weight.max(1)).max().unwrap_or(1);
        let best_price = members
            .iter()
            .map(Member::unit_price)
            .fold(f64::INFINITY, f64::min);
        let fixed = members
            .iter()
            .map(|m| {
                w.weight * f64::from(m.weight.max(1)) / f64::from(max_weight)
                    + w.cost * ratio(best_price, m.unit_price())
            })
            .collect();
        Self {
            weights: w,
            next: TieTurns::default(),
            fixed,
        }
    }
}

/// Scores closer than this (1 % of the 0..1 scale) are equal: noise in the estimates must not
/// send all traffic to one of two equivalent members, and a recovered member that is back to
/// within 1 % of the best shares again.
const TIE: f64 = 0.01;

/// Health factor by consecutive failures: 1 with none, 0.5 after one or two (degraded), 0
/// after three or more (unhealthy; seed 001's three-failure rule).
const HEALTH: [f64; 4] = [1.0, 0.5, 0.5, 0.0];

impl Strategy for Score {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        if c.is_empty() {
            return None;
        }
        SCRATCH.with(|scratch| self.pick_with(c, &mut scratch.borrow_mut()))
    }
}

/// A pick's per-member values, in two columns so the arithmetic passes vectorise.
#[derive(Default)]
struct Scratch {
    /// Everything but performance, then the whole score; `-inf` for a refused member.
    score: Vec<f64>,
    /// The `latency` strategy's load (lower is better).
    load: Vec<f64>,
}

thread_local! {
    /// Per-thread scratch: no allocation and no stack fill per pick.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

impl Score {
    fn pick_with(&self, c: &Candidates<'_>, s: &mut Scratch) -> Option<usize> {
        let n = c.len();
        let w = &self.weights;
        s.score.clear();
        s.load.clear();
        // Pass one reads each member's live state (the only pass that touches members), one
        // cache line each.
        let (health_w, reliability_w) = (w.health, w.reliability);
        let fixed = self.fixed.get(..n)?;
        // Latency estimates relative to this pick's clock: one exp here, none per member.
        let decay = LatencyDecay::at(c.now_ns);
        let ns = 1.0 / decay.factor();
        let mut best_load = f64::INFINITY;
        for (m, &fixed) in c.members.iter().zip(fixed) {
            let live = &*m.live;
            let word = live.load_word();
            let (part, load) = if word < DRAINING && !c.tried.contains(&m.instance) {
                let load = Latency::load_of(live.latency_relative(&decay), word, ns);
                // `<`, not `f64::min`: no NaN fix-up in the loop-carried chain.
                best_load = if load < best_load { load } else { best_load };
                let failures = live.consecutive_failures().min(3) as usize;
                let part = fixed
                    + health_w * HEALTH[failures]
                    + reliability_w * live.success_ratio().clamp(0.0, 1.0);
                (part, load)
            } else {
                (f64::NEG_INFINITY, 1.0)
            };
            s.score.push(part);
            s.load.push(load);
        }
        if best_load == f64::INFINITY {
            return None;
        }
        // Pass two adds performance (best load / this load) and finds the top, four lanes at
        // a time (independent maxima vectorise; one running max would serialise).
        let perf = w.performance;
        let mut tops = [f64::NEG_INFINITY; 4];
        let mut scores = s.score.chunks_exact_mut(4);
        let mut loads = s.load.chunks_exact(4);
        for (score, load) in (&mut scores).zip(&mut loads) {
            for lane in 0..4 {
                let x = score[lane] + perf * ratio(best_load, load[lane]);
                score[lane] = x;
                tops[lane] = if x > tops[lane] { x } else { tops[lane] };
            }
        }
        for (score, &load) in scores.into_remainder().iter_mut().zip(loads.remainder()) {
            *score += perf * ratio(best_load, load);
            tops[0] = if *score > tops[0] { *score } else { tops[0] };
        }
        let top = tops.into_iter().fold(f64::NEG_INFINITY, f64::max);
        // Members within TIE of the top take turns.
        let floor = top - TIE;
        let ties = s.score.iter().filter(|&&x| x >= floor).count();
        let nth = self.next.turn(c.retry) % ties.max(1);
        s.score
            .iter()
            .enumerate()
            .filter(|&(_, &x)| x >= floor)
            .nth(nth)
            .map(|(i, _)| i)
    }
}

/// `best / mine` in 0..1 (lower is better for both); `mine` zero (free, or instant) scores 1.
#[inline]
fn ratio(best: f64, mine: f64) -> f64 {
    // Branch-free (both sides are computed): the scoring pass vectorises. `best ≤ mine`, so
    // the quotient is at most 1 but for rounding.
    let q = best / mine;
    if mine > 0.0 { q.min(1.0) } else { 1.0 }
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
