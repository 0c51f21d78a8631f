//! Load balancing: choosing one member of a tier for the next attempt.
//!
//! A strategy only chooses. Who is eligible is the caller's: [`Candidates::accepts`] says no
//! to members this request already tried and to instances that do not admit traffic (draining
//! now; ejected, breaker-open or over their limits as those land), so failover is "pick again
//! without the one that failed" (pingora's `select_with`). Eligibility is read from atomics
//! inline, not through a callback, so a pick over 64 members stays in the tens of nanoseconds.
//!
//! - `round_robin`: exact rotation; N×k picks over N members give k each.
//! - `weighted`: smooth weighted round robin (nginx), precomputed into a lock-free sequence.
//! - `least_connections`: fewest in-flight requests, ties broken by rotation.
//! - `random`: weighted random (uniform when weights are equal).
//! - `p2c`: power of two choices on in-flight load per unit of weight (Envoy's default).
//! - `latency`: peak-EWMA latency × (in-flight + 1) over two random candidates (Finagle).
//! - `score`: seed 001's multi-factor score (weight, health, performance, reliability, cost).
//! - `cost`: the cheapest member by configured price, ties rotated.

mod cost;
mod least_connections;
mod p2c;
mod random;
mod round_robin;
mod score;
mod weighted;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub use cost::Cost;
pub use least_connections::LeastConnections;
pub use p2c::{Latency, P2c};
pub use random::Random;
pub use round_robin::RoundRobin;
pub use score::{Score, ScoreWeights};
pub use weighted::Weighted;

use crate::config::Price;
use crate::stats::Live;

/// One member of a tier as strategies see it.
#[derive(Debug, Clone)]
pub struct Member {
    /// The instance's index in its snapshot (what "already tried" is checked against).
    pub instance: usize,
    pub live: Arc<Live>,
    /// Effective weight in this tier (instance weight × the pool's `group.echelon` factor).
    pub weight: u32,
    pub price: Price,
}

impl Member {
    /// Price of 1k input plus 1k output tokens: one number to rank instances by.
    pub fn unit_price(&self) -> f64 {
        self.price.input_per_1k + self.price.output_per_1k
    }
}

/// What a strategy may look at when it picks.
pub struct Candidates<'a> {
    pub members: &'a [Member],
    /// Instances (snapshot indices) this request already tried; a handful at most.
    pub tried: &'a [usize],
    /// The request already tried a member of this tier. Rotations then continue from where
    /// they stand without taking a new turn, so a failing member does not lock step with the
    /// rotation and come first for every request.
    pub retry: bool,
    /// Now, on [`crate::stats::clock_ns`]'s clock (decays latency estimates).
    pub now_ns: u64,
}

impl<'a> Candidates<'a> {
    /// A first attempt over `members` at time `now_ns`.
    pub fn new(members: &'a [Member], now_ns: u64) -> Self {
        Self {
            members,
            tried: &[],
            retry: false,
            now_ns,
        }
    }

    /// Whether member `i` may be chosen.
    #[inline]
    pub fn accepts(&self, i: usize) -> bool {
        let m = &self.members[i];
        m.live.admits() && !self.tried.contains(&m.instance)
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.members.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// Picks one member index of a tier.
pub trait Strategy: Send + Sync + fmt::Debug {
    /// Choose among the members `c.accepts`; `None` when it accepts none.
    fn pick(&self, c: &Candidates<'_>) -> Option<usize>;
}

/// Take a turn from a shared rotation counter (or, on a retry, read where it stands).
#[inline]
fn turn(counter: &AtomicUsize, retry: bool) -> usize {
    // Relaxed: the counter only hands out turns; it orders no other memory.
    if retry {
        counter.load(Relaxed)
    } else {
        counter.fetch_add(1, Relaxed)
    }
}

/// Tie-breaking turns, one counter per thread slot (each on its own cache line). Strategies
/// that only rotate among equals (least connections, score, cost) take turns here, so two
/// worker threads picking at once never write the same line: ties rotate exactly per thread.
/// `round_robin` and `weighted` keep one shared counter instead, because their exactness is
/// across the whole gateway (N×k requests on any mix of connections and workers give k each);
/// that counter is the only shared write on their pick.
#[derive(Debug, Default)]
struct TieTurns([PaddedCounter; TIE_SLOTS]);

#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedCounter(AtomicUsize);

/// More slots than worker threads on most machines; threads beyond share slots (still correct).
const TIE_SLOTS: usize = 16;

impl TieTurns {
    #[inline]
    fn turn(&self, retry: bool) -> usize {
        static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static SLOT: usize = NEXT_SLOT.fetch_add(1, Relaxed) % TIE_SLOTS;
        }
        let slot = SLOT.with(|s| *s);
        turn(&self.0[slot].0, retry)
    }
}

/// Scan from `start`, wrapping, and return the first accepted member.
#[inline]
fn first_accepted(c: &Candidates<'_>, start: usize) -> Option<usize> {
    let n = c.len();
    (start..n).chain(0..start).find(|&i| c.accepts(i))
}

/// The strategies a config may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrategyKind {
    RoundRobin,
    Weighted,
    LeastConnections,
    Random,
    P2c,
    Latency,
    Score,
    Cost,
}

impl StrategyKind {
    pub const ALL: [Self; 8] = [
        Self::RoundRobin,
        Self::Weighted,
        Self::LeastConnections,
        Self::Random,
        Self::P2c,
        Self::Latency,
        Self::Score,
        Self::Cost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::Weighted => "weighted",
            Self::LeastConnections => "least_connections",
            Self::Random => "random",
            Self::P2c => "p2c",
            Self::Latency => "latency",
            Self::Score => "score",
            Self::Cost => "cost",
        }
    }

    /// A fresh strategy over `members`.
    pub fn build(self, members: &[Member], score: ScoreWeights) -> Box<dyn Strategy> {
        let weights: Vec<u32> = members.iter().map(|m| m.weight).collect();
        match self {
            Self::RoundRobin => Box::new(RoundRobin::default()),
            Self::Weighted => Box::new(Weighted::new(&weights)),
            Self::LeastConnections => Box::new(LeastConnections::default()),
            Self::Random => Box::new(Random::new(&weights)),
            Self::P2c => Box::new(P2c),
            Self::Latency => Box::new(Latency),
            Self::Score => Box::new(Score::new(score, members)),
            Self::Cost => Box::new(Cost::default()),
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A strategy name that is not one of [`StrategyKind::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown strategy {0:?}; expected one of: {names}", names = StrategyKind::ALL.map(StrategyKind::as_str).join(", "))]
pub struct UnknownStrategy(String);

impl FromStr for StrategyKind {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "round_robin" => Self::RoundRobin,
            "weighted" | "weighted_round_robin" => Self::Weighted,
            "least_connections" | "least_used" => Self::LeastConnections,
            "random" | "weighted_random" => Self::Random,
            "p2c" | "power_of_two_choices" | "least_request" => Self::P2c,
            "latency" | "response_time" | "peak_ewma" => Self::Latency,
            "score" | "intelligent" | "smart" => Self::Score,
            "cost" | "cheapest" => Self::Cost,
            other => return Err(UnknownStrategy(other.to_owned())),
        })
    }
}

/// Fresh members with these weights (no price, new live state, instance `i` at position `i`):
/// for tests, benchmarks and library callers that balance their own things.
pub fn members(weights: &[u32]) -> Vec<Member> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| Member {
            instance: i,
            live: Arc::new(Live::new(0)),
            weight,
            price: Price::default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for kind in StrategyKind::ALL {
            assert_eq!(kind.as_str().parse::<StrategyKind>().unwrap(), kind);
        }
        let err = "fastest".parse::<StrategyKind>().unwrap_err().to_string();
        assert!(
            err.contains("\"fastest\"") && err.contains("least_connections") && err.contains("p2c"),
            "{err}"
        );
    }

    #[test]
    fn draining_members_and_tried_instances_are_not_accepted() {
        let m = members(&[1, 1, 1]);
        m[1].live.drain();
        let tried = [2];
        let c = Candidates {
            tried: &tried,
            ..Candidates::new(&m, 0)
        };
        assert_eq!(
            (0..3).map(|i| c.accepts(i)).collect::<Vec<_>>(),
            [true, false, false]
        );
    }

    /// 10,000 picks per strategy over members weighted 1, 2, 3, 4.
    #[test]
    fn ten_thousand_picks_follow_each_strategys_shares() {
        fastrand::seed(42);
        let weights = [1, 2, 3, 4];
        let m = members(&weights);
        let count = |kind: StrategyKind| {
            let s = kind.build(&m, ScoreWeights::default());
            let mut counts = [0u32; 4];
            for _ in 0..10_000 {
                counts[s.pick(&Candidates::new(&m, 0)).unwrap()] += 1;
            }
            counts
        };
        // Exact: equal shares, and weight-proportional shares.
        assert_eq!(count(StrategyKind::RoundRobin), [2500; 4]);
        assert_eq!(count(StrategyKind::Weighted), [1000, 2000, 3000, 4000]);
        assert_eq!(count(StrategyKind::LeastConnections), [2500; 4]);
        // Within 3 % of the expected share.
        let near = |counts: [u32; 4], expected: [f64; 4], kind: &str| {
            for (n, e) in counts.iter().zip(expected) {
                let share = f64::from(*n) / 10_000.0;
                assert!((share - e).abs() < 0.03, "{kind}: {counts:?}");
            }
        };
        near(count(StrategyKind::Random), [0.1, 0.2, 0.3, 0.4], "random");
        // p2c with no load: every draw is a tie, so shares are uniform whatever the weights
        // (weights only scale the load it compares).
        near(count(StrategyKind::P2c), [0.25; 4], "p2c");
        near(count(StrategyKind::Latency), [0.25; 4], "latency");
        // score: the heaviest member wins every pick when nothing else differs.
        assert_eq!(count(StrategyKind::Score), [0, 0, 0, 10_000]);
        // cost: all free, so all tie and take turns.
        assert_eq!(count(StrategyKind::Cost), [2500; 4]);
    }

    /// Every strategy: never picks a refused member, `None` when all are refused.
    #[test]
    fn every_strategy_respects_eligibility() {
        let m = members(&[1, 2, 3, 4]);
        let tried = [0, 3];
        m[1].live.drain();
        for kind in StrategyKind::ALL {
            let s = kind.build(&m, ScoreWeights::default());
            let c = Candidates {
                tried: &tried,
                ..Candidates::new(&m, 0)
            };
            for _ in 0..50 {
                assert_eq!(s.pick(&c), Some(2), "{kind}");
            }
            let all = [0, 1, 2, 3];
            let none = Candidates {
                tried: &all,
                ..Candidates::new(&m, 0)
            };
            assert_eq!(s.pick(&none), None, "{kind}");
            assert_eq!(s.pick(&Candidates::new(&[], 0)), None, "{kind}");
        }
    }
}
