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
#[derive(Debug, Default)]
struct TieTurns([PaddedCounter; SLOTS]);

#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedCounter(AtomicUsize);

/// More slots than worker threads on most machines; threads beyond share slots (still correct).
const SLOTS: usize = 16;

/// This thread's slot in [`TieTurns`] and [`Rounds`].
#[inline]
fn thread_slot() -> usize {
    static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT_SLOT.fetch_add(1, Relaxed) % SLOTS;
    }
    SLOT.with(|s| *s)
}

impl TieTurns {
    #[inline]
    fn turn(&self, retry: bool) -> usize {
        turn(&self.0[thread_slot()].0, retry)
    }
}

/// Turns of an exact rotation with period `period` (`round_robin`: the member count;
/// `weighted`: the length of its smooth sequence), without a cache line that two threads
/// fight over on every pick.
///
/// Turns come from one shared counter, taken with a compare-and-swap. While picks do not
/// collide that is the plain global sequence 0, 1, 2, … whatever thread, connection or worker
/// a request lands on: N×k picks over N members give exactly k each (a user's nine `curl`s
/// over three instances see 3/3/3). When a thread's swap fails (another thread took a turn at
/// the same moment) it claims a *block* of whole periods (at least [`BLOCK`] turns) with one
/// `fetch_add` and walks it on its own cache line; it keeps claiming blocks for [`HEAT`]
/// blocks after its last collision before it tries single turns again.
/// A block of consecutive turns visits every position of the period equally often, so the
/// counts stay exact but for the blocks threads are part-way through: off by at most one per
/// member per such thread, never drifting. Two threads picking flat out (`select_contended`
/// in `benches/select.rs`) then meet on the shared line about once per block, not per pick.
#[derive(Debug)]
struct Rounds {
    period: usize,
    block: usize,
    shared: AtomicUsize,
    slots: [PaddedBlock; SLOTS],
}

/// One thread slot's block: the next turn and the end of the block.
#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedBlock {
    next: AtomicUsize,
    end: AtomicUsize,
    /// Blocks left before this slot tries single turns again.
    heat: AtomicUsize,
}

/// Fewest turns a thread slot claims at once after a collision.
const BLOCK: usize = 64;
/// Blocks a slot keeps claiming after a collision: single turns right after one would mostly
/// collide again (the other thread is still there) and pay a cross-core miss each.
const HEAT: usize = 8;

impl Rounds {
    fn new(period: usize) -> Self {
        let period = period.max(1);
        Self {
            period,
            block: period * BLOCK.div_ceil(period),
            shared: AtomicUsize::new(0),
            slots: Default::default(),
        }
    }

    /// The next position in `0..period` (on a retry: where the rotation stands, without
    /// taking a turn). Relaxed: the counters hand out turns and order no other memory. A
    /// slot's cells take plain stores: only threads sharing a slot (more than [`SLOTS`]
    /// picking threads) can race there, and they at worst take the same turn twice.
    #[inline]
    fn turn(&self, retry: bool) -> usize {
        let slot = &self.slots[thread_slot()];
        let (next, end) = (slot.next.load(Relaxed), slot.end.load(Relaxed));
        if next < end {
            if !retry {
                slot.next.store(next + 1, Relaxed);
            }
            return next % self.period;
        }
        let at = self.shared.load(Relaxed);
        if retry {
            return at % self.period;
        }
        let heat = slot.heat.load(Relaxed);
        if heat > 0 {
            slot.heat.store(heat - 1, Relaxed);
        } else if self
            .shared
            .compare_exchange(at, at.wrapping_add(1), Relaxed, Relaxed)
            .is_ok()
        {
            return at % self.period;
        } else {
            slot.heat.store(HEAT, Relaxed);
        }
        let base = self.shared.fetch_add(self.block, Relaxed);
        slot.end.store(base.wrapping_add(self.block), Relaxed);
        slot.next.store(base.wrapping_add(1), Relaxed);
        base % self.period
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
            Self::RoundRobin => Box::new(RoundRobin::new(members.len())),
            Self::Weighted => Box::new(Weighted::new(&weights)),
            Self::LeastConnections => Box::new(LeastConnections::default()),
            Self::Random => Box::new(Random::new(&weights)),
            Self::P2c => Box::new(P2c),
            Self::Latency => Box::new(Latency),
            Self::Score => Box::new(Score::new(score, members)),
            Self::Cost => Box::new(Cost::new(members)),
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
    fn rounds_on_one_thread_are_the_plain_sequence_and_a_retry_takes_no_turn() {
        let r = Rounds::new(3);
        let turns: Vec<_> = (0..7).map(|_| r.turn(false)).collect();
        assert_eq!(turns, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(r.turn(true), 1);
        assert_eq!(r.turn(false), 1);
    }

    #[test]
    fn rounds_stay_exact_but_for_part_done_blocks_under_contention() {
        const THREADS: usize = 4;
        const PICKS: usize = 20_000;
        let r = Rounds::new(5);
        let counts: Vec<[usize; 5]> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        let mut counts = [0; 5];
                        for _ in 0..PICKS {
                            counts[r.turn(false)] += 1;
                        }
                        counts
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let total: Vec<usize> = (0..5).map(|k| counts.iter().map(|c| c[k]).sum()).collect();
        assert_eq!(total.iter().sum::<usize>(), THREADS * PICKS);
        // Every turn handed out is a consecutive ticket; only the unused tails of at most one
        // block per thread are missing, and each tail is a run that skips every position about
        // equally: the spread is bounded by the thread count, whatever the interleaving.
        let spread = total.iter().max().unwrap() - total.iter().min().unwrap();
        assert!(spread <= 2 * (THREADS + 1), "{total:?}");
    }

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
