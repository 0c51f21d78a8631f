//! The last minute, in sixty one-second buckets (seed 000: statistics window of one minute).
//!
//! A bucket is tagged with the second it counts; a writer finding a stale tag claims the bucket
//! with a compare-and-swap and zeroes it. A writer racing that reset in the same instant can
//! lose its increment: the window is for dashboards and error rates, the lifetime totals next
//! to it are exact.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

const BUCKETS: usize = 60;

#[derive(Debug, Default)]
struct Bucket {
    /// Second (since the process clock's epoch) + 1; 0 = never used.
    second: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    /// Failures that count against the instance (health's error rate).
    counted: AtomicU64,
    tokens: AtomicU64,
    latency_ms_sum: AtomicU64,
}

/// What one attempt adds to the window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub failed: bool,
    /// A failure that counts against the instance (`ErrorClass::counts_against_instance`).
    pub counted: bool,
    pub tokens: u64,
    pub latency_ms: u64,
}

/// Sums over the last 60 seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Minute {
    pub requests: u64,
    pub failures: u64,
    pub tokens: u64,
    /// Mean latency of the minute's attempts, milliseconds (0 when there were none).
    pub mean_latency_ms: u64,
}

#[derive(Debug)]
pub struct Window {
    buckets: [Bucket; BUCKETS],
}

impl Default for Window {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| Bucket::default()),
        }
    }
}

impl Window {
    pub fn add(&self, s: Sample, now_ns: u64) {
        let tag = now_ns / 1_000_000_000 + 1;
        let b = &self.buckets[(tag % BUCKETS as u64) as usize];
        let seen = b.second.load(Relaxed);
        if seen != tag
            && b.second
                .compare_exchange(seen, tag, Relaxed, Relaxed)
                .is_ok()
        {
            b.requests.store(0, Relaxed);
            b.failures.store(0, Relaxed);
            b.counted.store(0, Relaxed);
            b.tokens.store(0, Relaxed);
            b.latency_ms_sum.store(0, Relaxed);
        }
        b.requests.fetch_add(1, Relaxed);
        if s.failed {
            b.failures.fetch_add(1, Relaxed);
        }
        if s.counted {
            b.counted.fetch_add(1, Relaxed);
        }
        b.tokens.fetch_add(s.tokens, Relaxed);
        b.latency_ms_sum.fetch_add(s.latency_ms, Relaxed);
    }

    /// The 60 seconds up to and including the one `now_ns` is in.
    pub fn minute(&self, now_ns: u64) -> Minute {
        let tag = now_ns / 1_000_000_000 + 1;
        let mut m = Minute::default();
        let mut latency = 0;
        for b in &self.buckets {
            let second = b.second.load(Relaxed);
            if second == 0 || second > tag || tag - second >= BUCKETS as u64 {
                continue;
            }
            m.requests += b.requests.load(Relaxed);
            m.failures += b.failures.load(Relaxed);
            m.tokens += b.tokens.load(Relaxed);
            latency += b.latency_ms_sum.load(Relaxed);
        }
        m.mean_latency_ms = latency.checked_div(m.requests).unwrap_or(0);
        m
    }
}

impl Window {
    /// Requests and counted failures in the last `window` seconds (at most 60, at least 1) up
    /// to `now_ns`, leaving out seconds before the one `since_ns` is in.
    pub fn health(&self, now_ns: u64, window: std::time::Duration, since_ns: u64) -> (u64, u64) {
        let tag = now_ns / 1_000_000_000 + 1;
        let span = window.as_secs().clamp(1, BUCKETS as u64);
        let first = (since_ns / 1_000_000_000 + 1).max(tag.saturating_sub(span - 1));
        let (mut requests, mut failed) = (0, 0);
        for b in &self.buckets {
            let second = b.second.load(Relaxed);
            if second == 0 || second > tag || second < first {
                continue;
            }
            requests += b.requests.load(Relaxed);
            failed += b.counted.load(Relaxed);
        }
        (requests, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn ok(latency_ms: u64) -> Sample {
        Sample {
            failed: false,
            counted: false,
            tokens: 10,
            latency_ms,
        }
    }

    #[test]
    fn counts_the_last_sixty_seconds_only() {
        let w = Window::default();
        w.add(ok(100), 0);
        w.add(ok(300), 30 * S);
        w.add(
            Sample {
                failed: true,
                ..ok(200)
            },
            59 * S,
        );
        assert_eq!(
            w.minute(59 * S),
            Minute {
                requests: 3,
                failures: 1,
                tokens: 30,
                mean_latency_ms: 200
            }
        );
        // At 60 s the sample from second 0 has left the window.
        assert_eq!(w.minute(60 * S).requests, 2);
        assert_eq!(w.minute(200 * S), Minute::default());
    }

    #[test]
    fn the_health_window_counts_counted_failures_over_its_span_since_a_time() {
        let w = Window::default();
        let bad = Sample {
            failed: true,
            counted: true,
            ..ok(1)
        };
        let client = Sample {
            failed: true,
            ..ok(1)
        };
        w.add(bad, 0);
        w.add(client, 10 * S);
        w.add(bad, 20 * S);
        w.add(ok(1), 29 * S);
        let secs = std::time::Duration::from_secs;
        assert_eq!(w.health(29 * S, secs(60), 0), (4, 2));
        // A 10 s window sees seconds 20..=29 only.
        assert_eq!(w.health(29 * S, secs(10), 0), (2, 1));
        // Since second 15 (a recovery): what came before is forgotten.
        assert_eq!(w.health(29 * S, secs(60), 15 * S), (2, 1));
    }

    #[test]
    fn a_reused_bucket_starts_from_zero() {
        let w = Window::default();
        w.add(ok(10), 5 * S);
        w.add(ok(10), 65 * S); // same bucket, one minute later
        let m = w.minute(65 * S);
        assert_eq!((m.requests, m.tokens), (1, 10));
    }
}
