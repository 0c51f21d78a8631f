//! A fixed-bucket histogram of durations: one relaxed atomic add per bucket hit, plus the count
//! and the sum, so recording stays a few nanoseconds on the request path. Read by `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds in seconds: LLM calls run from milliseconds (a cached or tiny reply) to a
/// minute or more (long generations).
pub const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last slot is above every bound.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// A reading: `(upper bound, observations in that bucket)` pairs, not cumulative (what
/// `prometheus-client`'s encoder takes; it writes the cumulative `_bucket` lines), the count and
/// the sum in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_s: f64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let slot = BOUNDS.iter().position(|b| s <= *b).unwrap_or(BOUNDS.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_us
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn read(&self) -> Reading {
        let buckets = (BOUNDS.iter().chain([&f64::INFINITY]).zip(&self.buckets))
            .map(|(bound, n)| (*bound, n.load(Relaxed)))
            .collect();
        Reading {
            buckets,
            count: self.count.load(Relaxed),
            sum_s: self.sum_us.load(Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let h = Histogram::default();
        for ms in [1, 5, 7, 300, 200_000] {
            h.observe(Duration::from_millis(ms));
        }
        let r = h.read();
        assert_eq!(r.count, 5);
        assert!((r.sum_s - 200.313).abs() < 1e-9, "{}", r.sum_s);
        assert_eq!(r.buckets[0], (0.005, 2), "1 ms and 5 ms (inclusive)");
        assert_eq!(r.buckets[1], (0.01, 1));
        assert_eq!(r.buckets[6], (0.5, 1));
        assert_eq!(
            r.buckets.last(),
            Some(&(f64::INFINITY, 1)),
            "200 s is above every bound"
        );
        assert_eq!(r.buckets.iter().map(|(_, n)| n).sum::<u64>(), r.count);
    }
}
