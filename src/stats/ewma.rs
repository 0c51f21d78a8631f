//! Time-decayed averages over lock-free atomics.
//!
//! - [`PeakEwma`]: Finagle's peak-EWMA latency estimate. A sample above the estimate replaces
//!   it at once (so a slowdown shows on the next pick); below, it is blended in with a weight
//!   that grows with the time since the last sample. Read, the estimate decays toward zero with
//!   time constant `tau`, so an instance nobody has used for a while looks cheap again and is
//!   tried (that is how a recovered instance wins traffic back).
//! - [`Ewma`]: a plain time-weighted average of a 0..1 signal (success ratio), used for
//!   reliability.
//!
//! Both keep their value and timestamp in two relaxed atomics. Two threads updating at the same
//! instant may lose one sample: an estimate, not a ledger (the exact counters live elsewhere).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// A float in an `AtomicU64`.
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn new(v: f64) -> Self {
        Self(AtomicU64::new(v.to_bits()))
    }
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Relaxed))
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Relaxed);
    }
}

/// `exp(-elapsed / tau)`: how much of an old value survives `elapsed` nanoseconds.
#[inline]
fn survive(elapsed_ns: u64, inv_tau_ns: f64) -> f64 {
    if elapsed_ns == 0 {
        1.0
    } else {
        exp_neg(elapsed_ns as f64 * inv_tau_ns)
    }
}

/// `e^-x` for `x ≥ 0`, to a relative error below 1e-5, in a dozen inlined flops with no
/// float/int conversion. Strategies decay one estimate per member per pick; libm's `exp` (a
/// call) and a Horner polynomial were most of the `score` strategy's time at 64 members
/// (criterion, benches/select.rs).
#[inline]
pub fn exp_neg(x: f64) -> f64 {
    // e^-x = 2^y with y = -x·log2(e) = k + r, k = round(y) an integer, |r| ≤ 1/2.
    let y = -x * std::f64::consts::LOG2_E;
    if y.is_nan() || y < -1022.0 {
        return 0.0;
    }
    // Adding 1.5·2^52 rounds y to an integer held in the low mantissa bits.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let shifted = y + ROUND;
    let k = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i64;
    let s = (y - (shifted - ROUND)) * std::f64::consts::LN_2;
    // e^s for |s| ≤ ln2 / 2: Taylor to degree 5 (error < 0.35^6 / 6! ≈ 2.5e-6), in Estrin's
    // form (three levels of multiply-add instead of a chain of five).
    let s2 = s * s;
    let p =
        (1.0 + s) + s2 * ((1.0 / 2.0 + s * (1.0 / 6.0)) + s2 * (1.0 / 24.0 + s * (1.0 / 120.0)));
    // 2^k by building the float's exponent; k is in [-1022, 0] here.
    p * f64::from_bits(((k + 1023) as u64) << 52)
}

/// Peak-EWMA latency in nanoseconds.
#[derive(Debug)]
pub struct PeakEwma {
    cost_ns: AtomicF64,
    stamp_ns: AtomicU64,
    inv_tau_ns: f64,
    /// The prior holds until the first sample, which then replaces it outright: a new
    /// instance's first real latency counts at once, not after ~tau of blending.
    measured: AtomicBool,
}

impl PeakEwma {
    /// Starts at `initial_ns` (a prior, so an unmeasured instance is neither free nor
    /// shunned) as of `now_ns`.
    pub fn new(tau_ns: f64, initial_ns: f64, now_ns: u64) -> Self {
        Self {
            cost_ns: AtomicF64::new(initial_ns),
            stamp_ns: AtomicU64::new(now_ns),
            inv_tau_ns: 1.0 / tau_ns,
            measured: AtomicBool::new(false),
        }
    }

    pub fn observe(&self, sample_ns: f64, now_ns: u64) {
        let stamp = self.stamp_ns.load(Relaxed);
        let cost = self.cost_ns.get();
        let first = !self.measured.swap(true, Relaxed);
        let next = if first || sample_ns > cost {
            sample_ns
        } else {
            let w = survive(now_ns.saturating_sub(stamp), self.inv_tau_ns);
            cost * w + sample_ns * (1.0 - w)
        };
        self.cost_ns.set(next);
        self.stamp_ns.store(now_ns.max(stamp), Relaxed);
    }

    /// The estimate as of `now_ns`, decayed since the last sample.
    #[inline]
    pub fn get(&self, now_ns: u64) -> f64 {
        let stamp = self.stamp_ns.load(Relaxed);
        self.cost_ns.get() * survive(now_ns.saturating_sub(stamp), self.inv_tau_ns)
    }

    /// The estimate as of the last sample (no decay): what a dashboard shows.
    pub fn last(&self) -> f64 {
        self.cost_ns.get()
    }
}

/// Time-weighted moving average of a signal.
#[derive(Debug)]
pub struct Ewma {
    value: AtomicF64,
    stamp_ns: AtomicU64,
    inv_tau_ns: f64,
}

impl Ewma {
    /// `initial` is a prior; `f64::NAN` for none (the first sample then sets the value).
    pub fn new(tau_ns: f64, initial: f64, now_ns: u64) -> Self {
        Self {
            value: AtomicF64::new(initial),
            stamp_ns: AtomicU64::new(now_ns),
            inv_tau_ns: 1.0 / tau_ns,
        }
    }

    /// Blend in `sample`; the longer since the last one, the more it counts. Samples close
    /// together still move the average (at least 1/16 each), so a burst of failures shows.
    pub fn observe(&self, sample: f64, now_ns: u64) {
        let stamp = self.stamp_ns.load(Relaxed);
        let w = survive(now_ns.saturating_sub(stamp), self.inv_tau_ns).min(15.0 / 16.0);
        let old = self.value.get();
        // NaN: no value yet, the first sample is the average.
        let next = if old.is_nan() {
            sample
        } else {
            old * w + sample * (1.0 - w)
        };
        self.value.set(next);
        self.stamp_ns.store(now_ns.max(stamp), Relaxed);
    }

    /// The average; NaN before the first sample when there was no prior.
    #[inline]
    pub fn get(&self) -> f64 {
        self.value.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1e6;
    const S: u64 = 1_000_000_000;

    #[test]
    fn peak_ewma_jumps_to_a_slower_sample_and_blends_faster_ones_in() {
        let e = PeakEwma::new(10.0 * S as f64, 100.0 * MS, 0);
        e.observe(500.0 * MS, 0);
        assert_eq!(e.get(0), 500.0 * MS, "a peak replaces the estimate at once");
        // One tau later a 100 ms sample is blended with weight 1 - 1/e.
        e.observe(100.0 * MS, 10 * S);
        let expected = 500.0 * MS * (-1.0f64).exp() + 100.0 * MS * (1.0 - (-1.0f64).exp());
        assert!(
            (e.last() / expected - 1.0).abs() < 1e-4,
            "{} vs {expected}",
            e.last()
        );
    }

    #[test]
    fn fast_exp_matches_libm() {
        for i in 0..20_000 {
            let x = f64::from(i) * 0.01;
            let (fast, exact) = (exp_neg(x), (-x).exp());
            assert!(
                (fast - exact).abs() <= 1e-5 * exact + f64::MIN_POSITIVE,
                "x = {x}: {fast} vs {exact}"
            );
        }
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(1e9), 0.0);
        assert_eq!(exp_neg(f64::INFINITY), 0.0);
        assert_eq!(exp_neg(f64::NAN), 0.0);
    }

    #[test]
    fn the_first_sample_replaces_the_prior() {
        let e = PeakEwma::new(10.0 * S as f64, 500.0 * MS, 0);
        e.observe(20.0 * MS, 1);
        assert_eq!(e.last(), 20.0 * MS);
        e.observe(10.0 * MS, 2);
        assert!(e.last() > 19.0 * MS, "later samples blend in over time");
    }

    #[test]
    fn peak_ewma_decays_toward_zero_while_unused() {
        let e = PeakEwma::new(10.0 * S as f64, 0.0, 0);
        e.observe(1000.0 * MS, 0);
        let after_tau = e.get(10 * S);
        assert!((after_tau / (1000.0 * MS / std::f64::consts::E) - 1.0).abs() < 1e-4);
        assert!(e.get(100 * S) < 1.0 * MS);
        assert_eq!(
            e.last(),
            1000.0 * MS,
            "reading does not change the estimate"
        );
    }

    #[test]
    fn ewma_moves_toward_samples_even_in_a_burst() {
        let e = Ewma::new(60.0 * S as f64, 1.0, 0);
        for _ in 0..16 {
            e.observe(0.0, 0);
        }
        assert!(e.get() < 0.4, "{}", e.get());
        e.observe(1.0, 600 * S);
        assert!(e.get() > 0.99, "a sample long after the last one dominates");
        let unset = Ewma::new(1.0, f64::NAN, 0);
        assert!(unset.get().is_nan());
        unset.observe(42.0, 0);
        assert_eq!(
            unset.get(),
            42.0,
            "with no prior the first sample is the average"
        );
    }
}
