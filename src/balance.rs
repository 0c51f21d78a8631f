//! Load balancing: choosing one instance of a tier for the next attempt.
//!
//! A strategy only chooses. Who is eligible (not yet tried by this request; later: healthy,
//! breaker closed, under its limits) is decided by the caller and passed in as `accept`, so
//! failover is "pick again without the one that failed" (pingora's `select_with`).
//!
//! - `round_robin`: exact rotation; N×k picks over N members give k each.
//! - `weighted`: smooth weighted round robin (nginx), precomputed into a lock-free sequence.
//! - `least_connections`: fewest in-flight requests, ties broken by rotation.
//! - `random`: weighted random.

mod least_connections;
mod random;
mod round_robin;
mod weighted;

use std::fmt;
use std::str::FromStr;

pub use least_connections::LeastConnections;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use weighted::Weighted;

/// What a strategy may look at when it picks: live load, eligibility, and whether this is a
/// retry within the same request.
pub struct Candidates<'a> {
    /// Member `i`'s current number of open requests.
    pub in_flight: &'a dyn Fn(usize) -> u64,
    /// Whether member `i` may be chosen (untried; later also healthy, under its limits).
    pub accept: &'a dyn Fn(usize) -> bool,
    /// The request already tried a member of this tier. Rotations then continue from where
    /// they stand without taking a new turn, so a failing member does not lock step with the
    /// rotation and come first for every request.
    pub retry: bool,
}

impl Candidates<'_> {
    /// Every member accepted, no load: for tests and benchmarks.
    pub fn all() -> Candidates<'static> {
        Candidates {
            in_flight: &|_| 0,
            accept: &|_| true,
            retry: false,
        }
    }
}

/// Picks one member index of a tier.
pub trait Strategy: Send + Sync + fmt::Debug {
    /// Choose among members `0..n` that `c.accept`s; `None` when none is accepted.
    fn pick(&self, c: &Candidates<'_>) -> Option<usize>;
}

/// Take a turn from a shared rotation counter (or, on a retry, read where it stands).
fn turn(counter: &std::sync::atomic::AtomicUsize, retry: bool) -> usize {
    use std::sync::atomic::Ordering::Relaxed;
    // Relaxed: the counter only hands out turns; it orders no other memory.
    if retry {
        counter.load(Relaxed)
    } else {
        counter.fetch_add(1, Relaxed)
    }
}

/// The strategies a config may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyKind {
    RoundRobin,
    Weighted,
    LeastConnections,
    Random,
}

impl StrategyKind {
    pub const NAMES: &'static [&'static str] =
        &["round_robin", "weighted", "least_connections", "random"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::Weighted => "weighted",
            Self::LeastConnections => "least_connections",
            Self::Random => "random",
        }
    }

    /// A fresh strategy over members with these weights (each at least 1).
    pub fn build(self, weights: &[u32]) -> Box<dyn Strategy> {
        match self {
            Self::RoundRobin => Box::new(RoundRobin::new(weights.len())),
            Self::Weighted => Box::new(Weighted::new(weights)),
            Self::LeastConnections => Box::new(LeastConnections::new(weights.len())),
            Self::Random => Box::new(Random::new(weights)),
        }
    }
}

/// A strategy name that is not one of [`StrategyKind::NAMES`].
#[derive(Debug, thiserror::Error)]
#[error("unknown strategy {0:?}; expected one of: {names}", names = StrategyKind::NAMES.join(", "))]
pub struct UnknownStrategy(String);

impl FromStr for StrategyKind {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "round_robin" => Self::RoundRobin,
            "weighted" | "weighted_round_robin" => Self::Weighted,
            "least_connections" | "least_used" => Self::LeastConnections,
            "random" => Self::Random,
            other => return Err(UnknownStrategy(other.to_owned())),
        })
    }
}

/// Scan `n` members starting at `start`, wrapping, and return the first accepted one.
fn first_accepted(n: usize, start: usize, accept: &dyn Fn(usize) -> bool) -> Option<usize> {
    (0..n).map(|k| (start + k) % n).find(|&i| accept(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for name in StrategyKind::NAMES {
            assert_eq!(name.parse::<StrategyKind>().unwrap().as_str(), *name);
        }
        let err = "fastest".parse::<StrategyKind>().unwrap_err().to_string();
        assert!(
            err.contains("\"fastest\"") && err.contains("least_connections"),
            "{err}"
        );
    }
}
