//! Rate limiters, each one 64-bit [`Cell`] driven by compare-and-swap, so the same code runs
//! against a shared store (seed 004's `token_bucket` and `fixed_window`, seed 003's sliding
//! window).
//!
//! - Token bucket: `bucket_size` tokens, refilled at `refill_rate` per second. Word: tokens
//!   (an `f32`) and the last refill (ms, low 32 bits of the clock, compared modulo 2^32).
//! - Fixed window: at most `max` per window. Word: window number (32 bits) and count.
//! - Sliding window, weighted counter (Cloudflare's): the current window's count plus the
//!   previous window's weighted by how much of it the sliding window still covers; no double
//!   burst at an edge (an approximation: it assumes the previous window's requests were
//!   spread evenly). Word: window number (24 bits), previous count and current count (20
//!   bits each, at most 1,048,575 per window).
//! - Sliding log: exact, at most `max` in *any* window: a ring of the last `max` admission
//!   times (one cell each) and a head counter; a request is admitted when the slot it would
//!   reuse is older than the window. `rpm_limit` / `tpm_limit`-style limits up to
//!   [`LOG_MAX`] use it; larger ones the weighted counter.

use std::sync::Arc;
use std::time::Duration;

use crate::shared::Cell;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Algorithm {
    TokenBucket { capacity: f64, refill_per_s: f64 },
    FixedWindow { window: Duration, max: u64 },
    SlidingWindow { window: Duration, max: u64 },
    SlidingLog { window: Duration, max: u64 },
}

/// The largest `max` a sliding log keeps (one cell per admission in the window).
pub const LOG_MAX: u64 = 10_000;

impl Algorithm {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TokenBucket { .. } => "token_bucket",
            Self::FixedWindow { .. } => "fixed_window",
            Self::SlidingWindow { .. } => "sliding_window",
            Self::SlidingLog { .. } => "sliding_log",
        }
    }

    /// Most a burst may take.
    pub fn capacity(&self) -> u64 {
        match *self {
            Self::TokenBucket { capacity, .. } => capacity as u64,
            Self::FixedWindow { max, .. }
            | Self::SlidingWindow { max, .. }
            | Self::SlidingLog { max, .. } => max,
        }
    }
}

/// The most a sliding window counts per window.
pub const SLIDING_MAX: u64 = (1 << 20) - 1;
const LOW32: u64 = 0xFFFF_FFFF;

/// One rate limiter's algorithm over its cell. Times are milliseconds on one clock.
#[derive(Debug)]
pub struct Rate {
    pub algorithm: Algorithm,
    cell: Arc<dyn Cell>,
    /// A sliding log's admission times (ms + 1; 0 = unused), `max` of them.
    ring: Vec<Arc<dyn Cell>>,
}

impl Rate {
    /// `cell` holds the state; a sliding log also needs `ring` (`max` cells), others none.
    pub fn new(algorithm: Algorithm, cell: Arc<dyn Cell>, ring: Vec<Arc<dyn Cell>>) -> Self {
        Self {
            algorithm,
            cell,
            ring,
        }
    }

    /// Take `n` now, or say how long until `n` could be taken.
    pub fn take(&self, n: u64, now_ms: u64) -> Result<(), Duration> {
        if let Algorithm::SlidingLog { window, .. } = self.algorithm {
            for i in 0..n {
                if let Err(wait) = self.log_take(millis(window), now_ms) {
                    for _ in 0..i {
                        self.log_give_back();
                    }
                    return Err(wait);
                }
            }
            return Ok(());
        }
        let mut w = self.cell.load();
        loop {
            let next = match self.algorithm {
                Algorithm::TokenBucket {
                    capacity,
                    refill_per_s,
                } => {
                    let tokens = bucket_tokens(w, capacity, refill_per_s, now_ms);
                    if tokens < n as f64 {
                        let short = n as f64 - tokens;
                        return Err(secs(short / refill_per_s.max(1e-9)));
                    }
                    bucket_word(tokens - n as f64, now_ms)
                }
                Algorithm::FixedWindow { window, max } => {
                    let len = millis(window);
                    let index = (now_ms / len) & LOW32;
                    let count = if w >> 32 == index { w & LOW32 } else { 0 };
                    if count + n > max {
                        let end = (now_ms / len + 1) * len;
                        return Err(Duration::from_millis(end - now_ms));
                    }
                    index << 32 | (count + n)
                }
                Algorithm::SlidingWindow { window, max } => {
                    let len = millis(window);
                    let (index, prev, cur) = sliding(w, now_ms, len);
                    let into = (now_ms % len) as f64 / len as f64;
                    let estimate = prev as f64 * (1.0 - into) + cur as f64;
                    if estimate + n as f64 > max as f64 || cur + n > SLIDING_MAX {
                        return Err(sliding_wait(prev, cur, n, max, now_ms, len));
                    }
                    index << 40 | prev << 20 | (cur + n)
                }
                Algorithm::SlidingLog { .. } => return Ok(()),
            };
            match self.cell.compare_exchange(w, next) {
                Ok(_) => return Ok(()),
                Err(seen) => w = seen,
            }
        }
    }

    /// One admission of a sliding log: claim the next slot of the ring if its time has left
    /// the window (head first, by compare-and-swap, then the slot's time).
    fn log_take(&self, len: u64, now_ms: u64) -> Result<(), Duration> {
        let size = self.ring.len() as u64;
        if size == 0 {
            return Err(Duration::MAX);
        }
        let mut head = self.cell.load();
        loop {
            let slot = &self.ring[(head % size) as usize];
            let t = slot.load();
            // t = admission ms + 1; 0: never used.
            if t != 0 && now_ms < t - 1 + len {
                return Err(Duration::from_millis(t - 1 + len - now_ms));
            }
            match self.cell.compare_exchange(head, head + 1) {
                Ok(_) => {
                    slot.store(now_ms + 1);
                    return Ok(());
                }
                Err(seen) => head = seen,
            }
        }
    }

    /// Undo the last admission of a sliding log, if nothing was admitted since.
    fn log_give_back(&self) {
        let size = self.ring.len() as u64;
        let head = self.cell.load();
        if size == 0 || head == 0 {
            return;
        }
        if self.cell.compare_exchange(head, head - 1).is_ok() {
            self.ring[((head - 1) % size) as usize].store(0);
        }
    }

    /// Give back `n` taken earlier (a later level refused, or usage came in lower than the
    /// estimate). Windows only give back within the window that took them.
    pub fn give_back(&self, n: u64, now_ms: u64) {
        if let Algorithm::SlidingLog { .. } = self.algorithm {
            for _ in 0..n {
                self.log_give_back();
            }
            return;
        }
        let mut w = self.cell.load();
        loop {
            let next = match self.algorithm {
                Algorithm::TokenBucket {
                    capacity,
                    refill_per_s,
                } => {
                    let tokens = bucket_tokens(w, capacity, refill_per_s, now_ms);
                    bucket_word((tokens + n as f64).min(capacity), now_ms)
                }
                Algorithm::FixedWindow { window, .. } => {
                    let index = (now_ms / millis(window)) & LOW32;
                    if w >> 32 != index {
                        return;
                    }
                    index << 32 | (w & LOW32).saturating_sub(n)
                }
                Algorithm::SlidingWindow { window, .. } => {
                    let (index, prev, cur) = sliding(w, now_ms, millis(window));
                    index << 40 | prev << 20 | cur.saturating_sub(n)
                }
                Algorithm::SlidingLog { .. } => return,
            };
            match self.cell.compare_exchange(w, next) {
                Ok(_) => return,
                Err(seen) => w = seen,
            }
        }
    }

    /// `(used, remaining, reset)` now: what `x-ratelimit-*` headers and the admin API show.
    pub fn status(&self, now_ms: u64) -> (u64, u64, Duration) {
        let w = self.cell.load();
        match self.algorithm {
            Algorithm::TokenBucket {
                capacity,
                refill_per_s,
            } => {
                let tokens = bucket_tokens(w, capacity, refill_per_s, now_ms);
                let used = (capacity - tokens).max(0.0);
                (
                    used.ceil() as u64,
                    tokens.floor() as u64,
                    secs(used / refill_per_s.max(1e-9)),
                )
            }
            Algorithm::FixedWindow { window, max } => {
                let len = millis(window);
                let index = (now_ms / len) & LOW32;
                let used = if w >> 32 == index { w & LOW32 } else { 0 };
                let end = (now_ms / len + 1) * len;
                (
                    used,
                    max.saturating_sub(used),
                    Duration::from_millis(end - now_ms),
                )
            }
            Algorithm::SlidingWindow { window, max } => {
                let len = millis(window);
                let (_, prev, cur) = sliding(w, now_ms, len);
                let into = (now_ms % len) as f64 / len as f64;
                let used = (prev as f64 * (1.0 - into) + cur as f64).ceil() as u64;
                let end = (now_ms / len + 1) * len;
                (
                    used,
                    max.saturating_sub(used),
                    Duration::from_millis(end - now_ms),
                )
            }
            Algorithm::SlidingLog { window, max } => {
                let len = millis(window);
                let live: Vec<u64> = (self.ring.iter())
                    .map(|c| c.load())
                    .filter(|&t| t != 0 && now_ms < t - 1 + len)
                    .collect();
                let reset = live.iter().min().map_or(0, |t| t - 1 + len - now_ms);
                let used = live.len() as u64;
                (used, max.saturating_sub(used), Duration::from_millis(reset))
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

/// Tokens in a bucket word at `now_ms`. A fresh word (0) is a full bucket.
fn bucket_tokens(w: u64, capacity: f64, refill_per_s: f64, now_ms: u64) -> f64 {
    if w == 0 {
        return capacity;
    }
    let tokens = f64::from(f32::from_bits((w >> 32) as u32));
    let last = w & LOW32;
    let elapsed = (now_ms & LOW32).wrapping_sub(last) & LOW32;
    (tokens + elapsed as f64 / 1e3 * refill_per_s).min(capacity)
}

fn bucket_word(tokens: f64, now_ms: u64) -> u64 {
    // Never 0 (that means "fresh, full"): time 0 with 0 tokens is stored as 1 ms.
    let w = u64::from((tokens as f32).to_bits()) << 32 | (now_ms & LOW32);
    w.max(1)
}

/// `(window number, previous count, current count)` as of `now_ms`.
fn sliding(w: u64, now_ms: u64, len: u64) -> (u64, u64, u64) {
    let index = (now_ms / len) & 0xFF_FFFF;
    let (seen, prev, cur) = (w >> 40, (w >> 20) & SLIDING_MAX, w & SLIDING_MAX);
    if w == 0 {
        (index, 0, 0)
    } else if seen == index {
        (index, prev, cur)
    } else if seen == (index + 0xFF_FFFF) & 0xFF_FFFF {
        (index, cur, 0)
    } else {
        (index, 0, 0)
    }
}

/// How long until `n` more fit a sliding window holding `prev` and `cur`.
fn sliding_wait(prev: u64, cur: u64, n: u64, max: u64, now_ms: u64, len: u64) -> Duration {
    let to_end = len - now_ms % len;
    if cur + n > max || prev == 0 {
        // Not before the next window, when `cur` becomes the weighted previous one.
        let room = max.saturating_sub(n) as f64;
        let f = if cur == 0 {
            0.0
        } else {
            (1.0 - room / cur as f64).clamp(0.0, 1.0)
        };
        return Duration::from_millis(to_end + (f * len as f64).ceil() as u64);
    }
    // prev × (1 - f) + cur + n ≤ max  ⇔  f ≥ 1 - (max - cur - n) / prev
    let f = (1.0 - (max - cur - n) as f64 / prev as f64).clamp(0.0, 1.0);
    let at = (f * len as f64).ceil() as u64;
    Duration::from_millis(at.saturating_sub(now_ms % len).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared;

    fn rate(a: Algorithm) -> Rate {
        let ring = match a {
            Algorithm::SlidingLog { max, .. } => (0..max).map(|_| shared::local()).collect(),
            _ => Vec::new(),
        };
        Rate::new(a, shared::local(), ring)
    }

    #[test]
    fn sliding_log_admits_at_most_max_in_any_window() {
        let l = rate(Algorithm::SlidingLog {
            window: Duration::from_secs(60),
            max: 60,
        });
        // 30 at 10 s, 30 at 50 s: full.
        assert_eq!((0..30).filter(|_| l.take(1, 10_000).is_ok()).count(), 30);
        assert_eq!((0..40).filter(|_| l.take(1, 50_000).is_ok()).count(), 30);
        // Until 70 s (the first 30 leave the window), nothing; then exactly those 30.
        assert_eq!(l.take(1, 69_999), Err(Duration::from_millis(1)));
        assert_eq!((0..40).filter(|_| l.take(1, 70_000).is_ok()).count(), 30);
        assert_eq!(l.status(70_000), (60, 0, Duration::from_secs(40)));
        // A refused multi-take takes nothing.
        assert!(l.take(2, 70_000).is_err());
        l.give_back(1, 70_000);
        assert!(l.take(1, 70_000).is_ok());
    }

    #[test]
    fn token_bucket_takes_a_full_burst_then_refills_at_its_rate() {
        // Seed 004's fast pool: bucket 1000, refill 16.67/s.
        let b = rate(Algorithm::TokenBucket {
            capacity: 1000.0,
            refill_per_s: 16.67,
        });
        let t0 = 5_000;
        let admitted = (0..1200).filter(|_| b.take(1, t0).is_ok()).count();
        assert_eq!(admitted, 1000);
        let wait = b.take(1, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0 / 16.67).abs() < 1e-3, "{wait:?}");
        // One second later: 16 whole tokens back (16.67), not 17.
        let later = (0..100).filter(|_| b.take(1, t0 + 1000).is_ok()).count();
        assert_eq!(later, 16);
        // A minute idle refills it to the brim and no further.
        assert_eq!(
            (0..2000)
                .filter(|_| b.take(1, t0 + 121_000).is_ok())
                .count(),
            1000
        );
        b.give_back(10, t0 + 121_000);
        assert_eq!(b.status(t0 + 121_000).1, 10);
    }

    #[test]
    fn fixed_window_counts_per_window_and_rolls_over_at_its_edge() {
        let f = rate(Algorithm::FixedWindow {
            window: Duration::from_secs(60),
            max: 3,
        });
        for t in [0, 10_000, 59_999] {
            assert!(f.take(1, t).is_ok());
        }
        assert_eq!(f.take(1, 59_999), Err(Duration::from_millis(1)));
        assert!(f.take(1, 60_000).is_ok(), "a new window");
        assert_eq!(f.status(60_000), (1, 2, Duration::from_secs(60)));
        assert!(f.take(3, 61_000).is_err(), "3 more would make 4");
        f.give_back(1, 61_000);
        assert!(f.take(3, 61_000).is_ok());
    }

    #[test]
    fn sliding_window_has_no_double_burst_at_a_window_edge() {
        let s = rate(Algorithm::SlidingWindow {
            window: Duration::from_secs(60),
            max: 60,
        });
        // The whole budget at the end of one window...
        assert_eq!((0..100).filter(|_| s.take(1, 59_000).is_ok()).count(), 60);
        // ...is still (almost all) counted just after the edge: a fixed window would admit
        // 60 more here.
        let just_after = (0..100).filter(|_| s.take(1, 60_500).is_ok()).count();
        assert!(just_after <= 1, "{just_after}");
        // Half way into the next window, half of the previous one still counts.
        let half = (0..100).filter(|_| s.take(1, 90_000).is_ok()).count();
        assert_eq!(half, 30 - just_after, "60 × 0.5 = 30 still counted");
        // Two windows on, nothing counts.
        assert_eq!((0..100).filter(|_| s.take(1, 180_000).is_ok()).count(), 60);
    }

    #[test]
    fn refusals_say_how_long_to_wait() {
        let s = rate(Algorithm::SlidingWindow {
            window: Duration::from_secs(10),
            max: 10,
        });
        for _ in 0..10 {
            s.take(1, 5_000).unwrap_or_default();
        }
        let wait = s.take(1, 5_000).unwrap_err();
        // Next window starts at 10 s; there the previous 10 count fully until 1/10 of it.
        assert_eq!(wait, Duration::from_millis(5_000 + 1_000));
        assert!(s.take(1, 5_000 + wait.as_millis() as u64).is_ok());
    }

    #[test]
    fn concurrent_takes_never_overshoot() {
        let b = Arc::new(rate(Algorithm::FixedWindow {
            window: Duration::from_secs(60),
            max: 1000,
        }));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || (0..1000).filter(|_| b.take(1, 1).is_ok()).count())
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(total, 1000);
    }
}
