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
    // Through i64: a u64 to f64 conversion is a branchy sequence on x86-64, i64 one
    // instruction; elapsed times are far below 2^63 ns.
    exp_neg(elapsed_ns.min(i64::MAX as u64) as i64 as f64 * inv_tau_ns)
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

/// Peak-EWMA latency in nanoseconds, with time constant `TAU_NS` (a type parameter, so the
/// value is two words and a flag: [`crate::stats::Live`] keeps its hot part in one cache line).
///
/// The estimate is stored scaled to the start of its *epoch* (a stretch of [`EPOCH_TAUS`]
/// time constants): `scaled = cost × e^((stamp − epoch start) / tau)`. The decayed value at
/// `now` is then `scaled × e^(−(now − epoch start) / tau)`, and the second factor is the same
/// for every estimate in the epoch: a scan computes it once per pick ([`Decay`]) and reads each
/// member with one multiply instead of one `exp` (the `score` strategy's largest cost at
/// 10,000 members). Value and epoch share one word (an `f32` and a `u32`), so a reader never
/// pairs a value with the wrong epoch.
#[derive(Debug)]
pub struct PeakEwma<const TAU_NS: u64> {
    scaled: AtomicU64,
    stamp_ns: AtomicU64,
    /// The prior holds until the first sample, which then replaces it outright: a new
    /// instance's first real latency counts at once, not after ~tau of blending.
    measured: AtomicBool,
}

/// Epoch length in time constants. `e^32` keeps a scaled estimate far inside `f32` range
/// (an hour of latency is 3.6e12 ns, × e^32 ≈ 3e26 < 3.4e38).
pub const EPOCH_TAUS: u64 = 32;
/// The largest estimate kept (about four months): repeated failure penalties double the
/// estimate, and it must stay finite so that successes can bring it down again.
pub const MAX_COST_NS: f64 = 1e16;
/// `e^EPOCH_TAUS` and its inverse: the step between neighbouring epochs.
const EPOCH_GAIN: f64 = 78_962_960_182_680.69;
const EPOCH_LOSS: f64 = 1.0 / EPOCH_GAIN;

/// The clock of one pick, for reading many estimates with time constant `TAU_NS`: the epoch
/// of `now` and the decay from its start to `now` (one `exp`).
#[derive(Debug, Clone, Copy)]
pub struct Decay<const TAU_NS: u64> {
    epoch: u64,
    /// `e^(−(now − epoch start) / tau)`.
    factor: f64,
}

impl<const TAU_NS: u64> Decay<TAU_NS> {
    const EPOCH_NS: u64 = EPOCH_TAUS * TAU_NS;

    #[inline]
    pub fn at(now_ns: u64) -> Self {
        let epoch = now_ns / Self::EPOCH_NS;
        let into = now_ns - epoch * Self::EPOCH_NS;
        Self {
            epoch,
            factor: survive(into, 1.0 / TAU_NS as f64),
        }
    }

    /// What a relative value (from [`PeakEwma::relative`]) is in nanoseconds.
    #[inline]
    pub fn factor(&self) -> f64 {
        self.factor
    }
}

impl<const TAU_NS: u64> PeakEwma<TAU_NS> {
    const INV_TAU_NS: f64 = 1.0 / TAU_NS as f64;

    /// Starts at `initial_ns` (a prior, so an unmeasured instance is neither free nor
    /// shunned) as of `now_ns`.
    pub fn new(initial_ns: f64, now_ns: u64) -> Self {
        Self {
            scaled: AtomicU64::new(Self::encode(initial_ns, now_ns)),
            stamp_ns: AtomicU64::new(now_ns),
            measured: AtomicBool::new(false),
        }
    }

    /// `cost_ns` as of `at_ns`, scaled to the start of `at_ns`'s epoch and packed with it.
    fn encode(cost_ns: f64, at_ns: u64) -> u64 {
        let d = Decay::<TAU_NS>::at(at_ns);
        let scaled = (cost_ns.clamp(0.0, MAX_COST_NS) / d.factor) as f32;
        (d.epoch.min(u64::from(u32::MAX)) << 32) | u64::from(scaled.to_bits())
    }

    #[inline]
    fn decode(word: u64) -> (f64, u64) {
        (f64::from(f32::from_bits(word as u32)), word >> 32)
    }

    pub fn observe(&self, sample_ns: f64, now_ns: u64) {
        let stamp = self.stamp_ns.load(Relaxed);
        let cost = self.last();
        let first = !self.measured.swap(true, Relaxed);
        let next = if first || sample_ns > cost {
            sample_ns
        } else {
            let w = survive(now_ns.saturating_sub(stamp), Self::INV_TAU_NS);
            cost * w + sample_ns * (1.0 - w)
        };
        let at = now_ns.max(stamp);
        self.scaled.store(Self::encode(next, at), Relaxed);
        self.stamp_ns.store(at, Relaxed);
    }

    /// The estimate at `d`'s time divided by `d.factor()`: comparable across estimates read
    /// with the same `d`, one multiply each.
    #[inline]
    pub fn relative(&self, d: &Decay<TAU_NS>) -> f64 {
        let (scaled, epoch) = Self::decode(self.scaled.load(Relaxed));
        if epoch == d.epoch {
            scaled
        } else if epoch + 1 == d.epoch {
            scaled * EPOCH_LOSS
        } else if epoch == d.epoch + 1 {
            // Written by a clock a little ahead of the reader's, across an epoch boundary.
            scaled * EPOCH_GAIN
        } else if epoch < d.epoch {
            0.0
        } else {
            f64::INFINITY
        }
    }

    /// The estimate as of `now_ns`, decayed since the last sample.
    #[inline]
    pub fn get(&self, now_ns: u64) -> f64 {
        let d = Decay::at(now_ns);
        self.relative(&d) * d.factor
    }

    /// The estimate as of the last sample (no decay): what a dashboard shows.
    pub fn last(&self) -> f64 {
        let (scaled, epoch) = Self::decode(self.scaled.load(Relaxed));
        let stamp = self.stamp_ns.load(Relaxed);
        let start = epoch.saturating_mul(Decay::<TAU_NS>::EPOCH_NS);
        scaled * survive(stamp.saturating_sub(start), Self::INV_TAU_NS)
    }
}

/// Time-weighted moving average of a signal, with time constant `TAU_NS`.
#[derive(Debug)]
pub struct Ewma<const TAU_NS: u64> {
    value: AtomicF64,
    stamp_ns: AtomicU64,
}

impl<const TAU_NS: u64> Ewma<TAU_NS> {
    const INV_TAU_NS: f64 = 1.0 / TAU_NS as f64;

    /// `initial` is a prior; `f64::NAN` for none (the first sample then sets the value).
    pub fn new(initial: f64, now_ns: u64) -> Self {
        Self {
            value: AtomicF64::new(initial),
            stamp_ns: AtomicU64::new(now_ns),
        }
    }

    /// Blend in `sample`; the longer since the last one, the more it counts. Samples close
    /// together still move the average (at least 1/16 each), so a burst of failures shows.
    pub fn observe(&self, sample: f64, now_ns: u64) {
        let stamp = self.stamp_ns.load(Relaxed);
        let w = survive(now_ns.saturating_sub(stamp), Self::INV_TAU_NS).min(15.0 / 16.0);
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
        let e = PeakEwma::<{ 10 * S }>::new(100.0 * MS, 0);
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
        let e = PeakEwma::<{ 10 * S }>::new(500.0 * MS, 0);
        e.observe(20.0 * MS, 1);
        assert!((e.last() / (20.0 * MS) - 1.0).abs() < 1e-6, "{}", e.last());
        e.observe(10.0 * MS, 2);
        assert!(e.last() > 19.0 * MS, "later samples blend in over time");
    }

    /// `cost × e^(−(now − stamp) / tau)`, computed directly.
    fn direct(cost: f64, stamp: u64, now: u64, tau: u64) -> f64 {
        cost * (-((now - stamp) as f64) / tau as f64).exp()
    }

    #[test]
    fn reads_across_epochs_match_the_direct_decay() {
        const TAU: u64 = 10 * S;
        let epoch = EPOCH_TAUS * TAU;
        // Samples just before, at and after an epoch boundary, read up to two epochs later.
        for stamp in [epoch - 1, epoch, epoch + 3 * S, 2 * epoch - S] {
            let e = PeakEwma::<TAU>::new(0.0, 0);
            e.observe(300.0 * MS, stamp);
            assert!((e.last() / (300.0 * MS) - 1.0).abs() < 1e-6);
            for later in [0, 1, S, 5 * S, epoch / 2, epoch - 1, epoch, epoch + 2 * S] {
                let now = stamp + later;
                let (got, want) = (e.get(now), direct(300.0 * MS, stamp, now, TAU));
                assert!(
                    // Two epochs apart (e^-32 and less) reads as 0: allow a picosecond.
                    (got - want).abs() <= 1e-5 * want + 1e-3,
                    "stamp {stamp} now {now}: {got} vs {want}"
                );
                // The relative form times the pick's factor is the same value.
                let d = Decay::<TAU>::at(now);
                assert!((e.relative(&d) * d.factor() - got).abs() <= 1e-9 * got + 1e-300);
            }
            // Two epochs later nothing is left.
            assert_eq!(e.get(stamp + 2 * epoch + 1), 0.0);
        }
    }

    #[test]
    fn relative_reads_order_estimates_from_different_epochs() {
        const TAU: u64 = 10 * S;
        let boundary = EPOCH_TAUS * TAU;
        // Sampled 1 s before the boundary at 400 ms, and 1 s after it at 500 ms: read 2 s
        // after the boundary, the first has decayed more (3 s against 1 s) and is lower.
        let (old, new) = (PeakEwma::<TAU>::new(0.0, 0), PeakEwma::<TAU>::new(0.0, 0));
        old.observe(400.0 * MS, boundary - S);
        new.observe(500.0 * MS, boundary + S);
        let d = Decay::<TAU>::at(boundary + 2 * S);
        let ratio = old.relative(&d) / new.relative(&d);
        let want = direct(400.0 * MS, boundary - S, boundary + 2 * S, TAU)
            / direct(500.0 * MS, boundary + S, boundary + 2 * S, TAU);
        assert!((ratio / want - 1.0).abs() < 1e-5, "{ratio} vs {want}");
        // A reader whose clock is a microsecond behind a writer's, across the boundary.
        let ahead = PeakEwma::<TAU>::new(0.0, 0);
        ahead.observe(500.0 * MS, boundary + 1000);
        let behind = Decay::<TAU>::at(boundary - 1000);
        let read = ahead.relative(&behind) * behind.factor();
        assert!((read / (500.0 * MS) - 1.0).abs() < 1e-4, "{read}");
    }

    #[test]
    fn estimates_stay_finite_under_endless_penalties() {
        let e = PeakEwma::<{ 10 * S }>::new(0.0, 0);
        let mut penalty = 1000.0 * MS;
        for _ in 0..2000 {
            penalty = (2.0 * e.last()).max(penalty);
            e.observe(penalty, 0);
        }
        assert!(e.last().is_finite() && e.last() <= MAX_COST_NS * 1.0001);
        // A success a minute later brings it down.
        e.observe(100.0 * MS, 60 * S);
        assert!(e.last() < MAX_COST_NS * 0.01, "{}", e.last());
    }

    #[test]
    fn peak_ewma_decays_toward_zero_while_unused() {
        let e = PeakEwma::<{ 10 * S }>::new(0.0, 0);
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
        let e = Ewma::<{ 60 * S }>::new(1.0, 0);
        for _ in 0..16 {
            e.observe(0.0, 0);
        }
        assert!(e.get() < 0.4, "{}", e.get());
        e.observe(1.0, 600 * S);
        assert!(e.get() > 0.99, "a sample long after the last one dominates");
        let unset = Ewma::<1>::new(f64::NAN, 0);
        assert!(unset.get().is_nan());
        unset.observe(42.0, 0);
        assert_eq!(
            unset.get(),
            42.0,
            "with no prior the first sample is the average"
        );
    }
}
