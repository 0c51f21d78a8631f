//! A fixed-bucket histogram of durations: one relaxed atomic add per bucket hit, plus the count
//! and the sum, so recording stays a few nanoseconds on the request path. Read by `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds in seconds: LLM calls run from milliseconds (a cached or tiny reply) to a
/// minute or more (long generations).
pub const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Per-bucket counts, as [`Histogram::counts`] copies them (the history keeps one per sample).
pub type Counts = [u64; BOUNDS.len() + 1];

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

    /// The per-bucket counts alone (what the history samples).
    pub fn counts(&self) -> Counts {
        std::array::from_fn(|i| self.buckets[i].load(Relaxed))
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

/// The `q` quantile (0..=1) of per-bucket `counts`, in seconds, interpolated linearly inside
/// its bucket (as Prometheus' `histogram_quantile` does); `None` without observations. A
/// quantile in the last, unbounded bucket is reported as the highest bound.
pub fn quantile(counts: &Counts, q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let Some(&upper) = BOUNDS.get(i) else {
                return BOUNDS.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { BOUNDS[i - 1] };
            let into = (rank - below as f64) / n as f64;
            return Some(lower + (upper - lower) * into);
        }
        below += n;
    }
    BOUNDS.last().copied()
}

/// `newer - older`, bucket by bucket: the observations between two samples.
pub fn since(newer: &Counts, older: &Counts) -> Counts {
    std::array::from_fn(|i| newer[i].saturating_sub(older[i]))
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

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let h = Histogram::default();
        assert_eq!(quantile(&h.counts(), 0.5), None, "nothing observed yet");
        // 10 in (0.05, 0.1], 10 in (0.25, 0.5].
        for _ in 0..10 {
            h.observe(Duration::from_millis(80));
            h.observe(Duration::from_millis(400));
        }
        let c = h.counts();
        let p50 = quantile(&c, 0.5).unwrap();
        assert!(
            (p50 - 0.1).abs() < 1e-9,
            "the 10th of 20 ends the first bucket: {p50}"
        );
        let p95 = quantile(&c, 0.95).unwrap();
        // Rank 19 of 20: 9 of the second bucket's 10, so 90 % of the way from 0.25 to 0.5.
        assert!((p95 - 0.475).abs() < 1e-9, "{p95}");
        assert!(quantile(&c, 0.0).unwrap() > 0.05 - 1e-9);
    }

    #[test]
    fn a_quantile_above_every_bound_reports_the_highest_bound() {
        let h = Histogram::default();
        h.observe(Duration::from_secs(500));
        assert_eq!(quantile(&h.counts(), 0.99), Some(120.0));
    }

    #[test]
    fn since_counts_only_what_came_between_two_samples() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        let before = h.counts();
        h.observe(Duration::from_secs(2));
        let between = since(&h.counts(), &before);
        assert_eq!(between.iter().sum::<u64>(), 1);
        assert_eq!(
            quantile(&between, 0.5),
            Some(2.5 - 1.5 * 0.5),
            "halfway through (1, 2.5]"
        );
    }
}
