//! Power of two choices: draw two distinct accepted members at random and keep the less loaded.
//! O(1) whatever the tier size, and it never herds: the busiest member is never picked while a
//! lighter one is drawn beside it (Mitzenmacher; Envoy's least-request default).
//!
//! - [`P2c`]: load = in-flight requests per unit of weight.
//! - [`Latency`]: load = peak-EWMA latency (time to first token for streams) × (in-flight + 1),
//!   Finagle's and Linkerd's balancer. The estimate decays toward zero while an instance is
//!   unused, so a recovered instance is tried again; an instance with no estimate and a request
//!   already pending is held back (Finagle's penalty), so a cold one is not flooded. This is the
//!   two-random-candidates form, not a full scan: a scan would send every request to the
//!   single fastest instance until its estimate caught up.

use super::{Candidates, Strategy};

/// Tries at drawing an accepted member before falling back to a scan.
const DRAWS: usize = 4;
/// Finagle's penalty for an instance with no latency estimate and a request pending.
const PENALTY: f64 = 1e18;

/// Two random distinct accepted members (or the one accepted member), if any.
fn two(c: &Candidates<'_>) -> Option<(usize, Option<usize>)> {
    let n = c.len();
    if n == 0 {
        return None;
    }
    if n == 1 {
        return c.accepts(0).then_some((0, None));
    }
    let mut a = None;
    for _ in 0..DRAWS {
        let i = fastrand::usize(0..n);
        if c.accepts(i) {
            a = Some(i);
            break;
        }
    }
    let a = a.or_else(|| (0..n).find(|&i| c.accepts(i)))?;
    for _ in 0..DRAWS {
        // Uniform over the other n - 1 members.
        let mut j = fastrand::usize(0..n - 1);
        if j >= a {
            j += 1;
        }
        if c.accepts(j) {
            return Some((a, Some(j)));
        }
    }
    // Few members accepted: take any other one, or fight alone.
    Some((a, (0..n).find(|&j| j != a && c.accepts(j))))
}

/// Keep the less loaded of the two. The second must be lighter by more than `tie` (a
/// fraction); otherwise the first, already random, is kept.
fn lighter(c: &Candidates<'_>, tie: f64, load: impl Fn(usize) -> f64) -> Option<usize> {
    let (a, b) = two(c)?;
    Some(match b {
        Some(b) if load(b) < load(a) * (1.0 - tie) => b,
        _ => a,
    })
}

/// Latency estimates within 5 % of each other are a tie: noise must not decide, and an
/// instance that has recovered to within 5 % of the best gets its full share back.
const LATENCY_TIE: f64 = 0.05;

#[derive(Debug, Default)]
pub struct P2c;

impl Strategy for P2c {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        lighter(c, 0.0, |i| {
            let m = &c.members[i];
            m.live.in_flight() as f64 / f64::from(m.weight.max(1))
        })
    }
}

#[derive(Debug, Default)]
pub struct Latency;

impl Latency {
    /// The load [`Latency`] compares: lower wins.
    #[inline]
    pub fn load(c: &Candidates<'_>, i: usize) -> f64 {
        let live = &c.members[i].live;
        Self::load_of(live.latency_ns(c.now_ns), live.in_flight(), 1.0)
    }

    /// The load of a member with latency estimate `cost` and `pending` requests in flight,
    /// where `ns` is one nanosecond in `cost`'s unit (1 for nanoseconds, `1 / d.factor()` for
    /// [`crate::stats::Live::latency_relative`]); loads compare within one unit.
    #[inline]
    pub fn load_of(cost: f64, pending: u64, ns: f64) -> f64 {
        if cost < ns && pending > 0 {
            (PENALTY + pending as f64) * ns
        } else {
            // Through i64 (one instruction; in-flight counts stay below 2^40).
            cost * (pending as i64 + 1) as f64
        }
    }
}

impl Strategy for Latency {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        lighter(c, LATENCY_TIE, |i| Self::load(c, i))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::balance::members;
    use crate::config::Price;
    use crate::stats::{Attempt, Outcome};

    const S: u64 = 1_000_000_000;

    fn served(m: &crate::balance::Member, latency: Duration, now_ns: u64) {
        let a = Attempt {
            outcome: Outcome::Success {
                prompt_tokens: 1,
                completion_tokens: 1,
            },
            latency,
            ttft: None,
        };
        m.live.record(Price::default(), &a, now_ns);
    }

    #[test]
    fn p2c_shares_equal_members_within_three_percent() {
        fastrand::seed(11);
        let m = members(&[1, 1, 1, 1]);
        let mut counts = [0u32; 4];
        for _ in 0..10_000 {
            counts[P2c.pick(&Candidates::new(&m, 0)).unwrap()] += 1;
        }
        for n in counts {
            let share = f64::from(n) / 10_000.0;
            assert!((share - 0.25).abs() < 0.03, "{counts:?}");
        }
    }

    #[test]
    fn p2c_never_picks_the_busiest_of_two() {
        let m = members(&[1, 1]);
        m[0].live.acquire();
        for _ in 0..100 {
            assert_eq!(P2c.pick(&Candidates::new(&m, 0)), Some(1));
        }
    }

    #[test]
    fn latency_moves_traffic_off_a_slow_instance_and_back_when_it_recovers() {
        fastrand::seed(3);
        let m = members(&[1, 1, 1]);
        let mut now = 0;
        let share_of_1 = |now: u64| {
            let c = Candidates::new(&m, now);
            (0..3000).filter(|_| Latency.pick(&c) == Some(1)).count() as f64 / 3000.0
        };
        for member in &m {
            served(member, Duration::from_millis(100), now);
        }
        let even = share_of_1(now);
        assert!((even - 1.0 / 3.0).abs() < 0.05, "even split: {even}");
        // Instance 1 slows down to 2 s: with p2c it loses every draw against either other.
        served(&m[1], Duration::from_secs(2), now);
        let slow = share_of_1(now);
        assert!(slow < 0.01, "slow instance still gets {slow}");
        // It recovers: a minute of fast samples brings it back to an even share.
        for _ in 0..60 {
            now += S;
            for member in &m {
                served(member, Duration::from_millis(100), now);
            }
        }
        let recovered = share_of_1(now);
        assert!(
            (recovered - 1.0 / 3.0).abs() < 0.05,
            "recovered: {recovered}"
        );
    }

    #[test]
    fn latency_counts_pending_requests_and_holds_back_a_cold_busy_instance() {
        let m = members(&[1, 1]);
        for member in &m {
            served(member, Duration::from_millis(100), 0);
        }
        // Same latency; member 0 has three pending: 100 ms × 4 > 100 ms × 1.
        for _ in 0..3 {
            m[0].live.acquire();
        }
        for _ in 0..50 {
            assert_eq!(Latency.pick(&Candidates::new(&m, 0)), Some(1));
        }
        // Long unused, member 1's estimate has decayed to nothing; with a request pending
        // it is penalised rather than flooded.
        let later = 1000 * S;
        m[1].live.acquire();
        let c = Candidates::new(&m, later);
        assert!(Latency::load(&c, 1) >= PENALTY);
    }
}
