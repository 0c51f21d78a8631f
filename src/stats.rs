//! What each instance is doing and has done: the live load and statistics that strategies
//! read on every pick and dashboards show.
//!
//! - [`Live`]: one instance's in-flight count, drain flag, peak-EWMA latency (time to first
//!   token for streams), success EWMA, consecutive failures, lifetime totals by error class,
//!   tokens and cost, and a sliding one-minute [`window`]. Every field is a relaxed atomic:
//!   recording never serialises requests, reading costs a few loads. A `Live` is keyed by
//!   instance id and carried over when the config is rebuilt, so counts survive reloads and
//!   runtime changes.
//! - [`Recorder`]: where finished attempts are reported. [`MemoryRecorder`] writes them into
//!   the instance's `Live`; a shared store (Redis) can implement the same call later. Load
//!   estimates stay process-local either way, as in every proxy that balances on them.
//! - `ewma`: the decaying averages; `window`: the minute.

mod ewma;
mod histogram;
mod history;
mod spend;
mod window;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;

use crate::config::Price;
use crate::health::{Gate, Track};
use crate::provider::ErrorClass;
pub use ewma::{Decay, Ewma, PeakEwma};
pub use histogram::{
    Counts as LatencyCounts, Histogram, Reading as HistogramReading, quantile, since,
};
pub use history::{History, Point as HistoryPoint};
pub use spend::{ClientSpend, Spend, SpendCounter};
pub use window::Minute;
use window::{Sample, Window};

/// Peak-EWMA time constant: ~10 s, as in Finagle and Linkerd.
pub const LATENCY_TAU: Duration = Duration::from_secs(10);
const LATENCY_TAU_NS: u64 = LATENCY_TAU.as_nanos() as u64;
/// One pick's clock for reading many latency estimates ([`Live::latency_relative`]).
pub type LatencyDecay = Decay<LATENCY_TAU_NS>;
/// Success EWMA time constant: the one-minute horizon of seed 000.
pub const SUCCESS_TAU: Duration = Duration::from_secs(60);
/// Latency assumed before the first sample: a typical time to first token, so a new instance
/// is neither free (and flooded) nor shunned.
pub const LATENCY_PRIOR: Duration = Duration::from_millis(500);

/// Nanoseconds on the process's monotonic clock. Everything here takes `now` as an argument
/// (tests drive time by hand); the request path passes this.
///
/// It is tokio's clock (the system's monotonic clock in a release build), so tests on a
/// paused runtime move it with `tokio::time::advance`.
pub fn clock_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    // The real time, an hour back: a paused test clock (which starts at the real time its
    // runtime started) is then never before it.
    let epoch = *EPOCH.get_or_init(|| {
        let real = std::time::Instant::now();
        Instant::from_std(real.checked_sub(Duration::from_secs(3600)).unwrap_or(real))
    });
    u64::try_from(Instant::now().saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// [`clock_ns`] in milliseconds: the clock limits count on.
pub fn clock_ms() -> u64 {
    clock_ns() / 1_000_000
}

/// How one attempt against one instance ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Success {
        prompt_tokens: u64,
        completion_tokens: u64,
    },
    Failure(ErrorClass),
}

/// One finished attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attempt {
    pub outcome: Outcome,
    /// Dispatch to the end of the reply (for streams: to the end of the stream).
    pub latency: Duration,
    /// Dispatch to the first content chunk, for streams.
    pub ttft: Option<Duration>,
}

/// Where finished attempts are reported.
pub trait Recorder: Send + Sync {
    fn record(&self, live: &Live, price: Price, attempt: &Attempt, now_ns: u64);
}

/// Keeps everything in the instance's own [`Live`].
#[derive(Debug, Default)]
pub struct MemoryRecorder;

impl Recorder for MemoryRecorder {
    fn record(&self, live: &Live, price: Price, attempt: &Attempt, now_ns: u64) {
        live.record(price, attempt, now_ns);
    }
}

const CLASSES: [ErrorClass; 7] = [
    ErrorClass::Connect,
    ErrorClass::Timeout,
    ErrorClass::RateLimited,
    ErrorClass::Auth,
    ErrorClass::Server,
    ErrorClass::Malformed,
    ErrorClass::Client,
];

fn class_slot(class: ErrorClass) -> usize {
    CLASSES.iter().position(|&c| c == class).unwrap_or(0)
}

/// Bit of [`Live`]'s load word that marks the instance draining; the bits below count
/// requests in flight. One word, so a pick reads eligibility and load with one load. Any word
/// at or above it is refused (draining or [`GATED`]); bits 39 and 40 (not 63) so a refused
/// word still shifts left by 23 without overflowing (see `least_connections`).
pub const DRAINING: u64 = 1 << 39;
/// Bit of the load word set while the health gate refuses the instance (ejected, cooling down,
/// breaker open): every strategy skips it as it skips a draining one.
pub const GATED: u64 = 1 << 40;

/// Live state of one instance. What strategies read on every pick fills exactly one cache line
/// (aligned to it: a scan touches one line per member, and requests to two instances never
/// contend on a shared line); the counters only the admin API reads are behind a pointer.
#[derive(Debug)]
#[repr(align(64))]
pub struct Live {
    load: AtomicU64,
    consecutive_failures: AtomicU32,
    latency: PeakEwma<LATENCY_TAU_NS>,
    success: Ewma<{ SUCCESS_TAU.as_nanos() as u64 }>,
    cold: Box<Cold>,
}

/// Totals and the minute: written once per attempt, read by the admin API.
#[derive(Debug)]
struct Cold {
    ttft_ms: Ewma<LATENCY_TAU_NS>,
    requests: AtomicU64,
    successes: AtomicU64,
    failures: [AtomicU64; CLASSES.len()],
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    /// Spend in millionths of the price unit.
    cost_micros: AtomicU64,
    window: Window,
    /// Every attempt's latency, and streams' time to first token (`/metrics`).
    latency: Histogram,
    ttft: Histogram,
    /// The sampler's ring of running totals (the dashboard's time series).
    history: History,
    /// Ejection and circuit breaker: the truth behind [`GATED`]. Read after a pick, not
    /// during the scan, so it stays off the hot line.
    gate: Gate,
    health: Track,
}

impl Default for Live {
    fn default() -> Self {
        Self::new(clock_ns())
    }
}

impl Live {
    pub fn new(now_ns: u64) -> Self {
        Self::with_gate(now_ns, Gate::default())
    }

    /// A new instance's state whose health words are `gate` (from the shared store).
    pub fn with_gate(now_ns: u64, gate: Gate) -> Self {
        Self {
            load: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            latency: PeakEwma::new(LATENCY_PRIOR.as_nanos() as f64, now_ns),
            success: Ewma::new(1.0, now_ns),
            cold: Box::new(Cold {
                ttft_ms: Ewma::new(f64::NAN, now_ns),
                requests: AtomicU64::new(0),
                successes: AtomicU64::new(0),
                failures: std::array::from_fn(|_| AtomicU64::new(0)),
                prompt_tokens: AtomicU64::new(0),
                completion_tokens: AtomicU64::new(0),
                cost_micros: AtomicU64::new(0),
                window: Window::default(),
                latency: Histogram::default(),
                ttft: Histogram::default(),
                history: History::default(),
                gate,
                health: Track::default(),
            }),
        }
    }

    /// Requests dispatched to this instance whose response has not finished.
    #[inline]
    pub fn in_flight(&self) -> u64 {
        self.load.load(Relaxed) & (DRAINING - 1)
    }

    /// Whether the health gate refuses it now (see [`GATED`]).
    pub fn is_gated(&self) -> bool {
        self.load.load(Relaxed) & GATED != 0
    }

    /// Make the gated bit say `refused()`; checked again after the write, so of two threads
    /// racing with different views the last one leaves the bit right.
    pub fn set_gated(&self, refused: impl Fn() -> bool) {
        for _ in 0..4 {
            let want = refused();
            if want {
                self.load.fetch_or(GATED, Relaxed);
            } else {
                self.load.fetch_and(!GATED, Relaxed);
            }
            if refused() == want {
                return;
            }
        }
    }

    /// Ejection and circuit breaker state.
    #[inline]
    pub fn gate(&self) -> &Gate {
        &self.cold.gate
    }

    /// Health bookkeeping (ejections, probes, last reported state).
    pub fn track(&self) -> &Track {
        &self.cold.health
    }

    /// Forget the failure streak (an ejected instance came back).
    pub fn reset_failures(&self) {
        self.consecutive_failures.store(0, Relaxed);
    }

    /// Attempts and failures that count against the instance over the last `window`
    /// (at most 60 s), from `since_ns` on.
    pub fn health_window(&self, now_ns: u64, window: Duration, since_ns: u64) -> (u64, u64) {
        self.cold.window.health(now_ns, window, since_ns)
    }

    /// The raw load word: requests in flight, plus [`DRAINING`] when draining (so a draining
    /// instance compares as more loaded than any other). One load, for tight scans.
    #[inline]
    pub fn load_word(&self) -> u64 {
        self.load.load(Relaxed)
    }

    /// Count one more request in flight. Pair with [`Live::release`]; the request path does
    /// both through `Instance::start`'s guard.
    pub fn acquire(&self) {
        self.load.fetch_add(1, Relaxed);
    }

    pub fn release(&self) {
        self.load.fetch_sub(1, Relaxed);
    }

    /// Whether new requests may be sent here (not draining, not gated).
    #[inline]
    pub fn admits(&self) -> bool {
        self.load.load(Relaxed) < DRAINING
    }

    /// Stop admitting new requests; running ones finish.
    pub fn drain(&self) {
        self.load.fetch_or(DRAINING, Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.load.load(Relaxed) & DRAINING != 0
    }

    /// Peak-EWMA latency estimate as of `now_ns`, nanoseconds.
    #[inline]
    pub fn latency_ns(&self, now_ns: u64) -> f64 {
        self.latency.get(now_ns)
    }

    /// The latency estimate at `d`'s time, divided by `d.factor()`: estimates read with the
    /// same `d` compare as their nanosecond values do, at one multiply each (no `exp`).
    #[inline]
    pub fn latency_relative(&self, d: &LatencyDecay) -> f64 {
        self.latency.relative(d)
    }

    /// Success ratio, exponentially weighted over about a minute (1.0 before any attempt).
    #[inline]
    pub fn success_ratio(&self) -> f64 {
        self.success.get()
    }

    #[inline]
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Relaxed)
    }

    pub fn record(&self, price: Price, a: &Attempt, now_ns: u64) {
        let cold = &*self.cold;
        cold.requests.fetch_add(1, Relaxed);
        cold.latency.observe(a.latency);
        if let Some(ttft) = a.ttft {
            cold.ttft.observe(ttft);
        }
        let latency = a.ttft.unwrap_or(a.latency).as_nanos() as f64;
        let mut tokens = 0;
        match a.outcome {
            Outcome::Success {
                prompt_tokens,
                completion_tokens,
            } => {
                cold.successes.fetch_add(1, Relaxed);
                self.consecutive_failures.store(0, Relaxed);
                cold.prompt_tokens.fetch_add(prompt_tokens, Relaxed);
                cold.completion_tokens.fetch_add(completion_tokens, Relaxed);
                let cost = prompt_tokens as f64 * price.input_per_1k
                    + completion_tokens as f64 * price.output_per_1k;
                // per 1k tokens → millionths: × 1e6 / 1e3.
                cold.cost_micros
                    .fetch_add((cost * 1e3).round() as u64, Relaxed);
                tokens = prompt_tokens + completion_tokens;
                self.success.observe(1.0, now_ns);
                self.latency.observe(latency, now_ns);
                if let Some(ttft) = a.ttft {
                    cold.ttft_ms.observe(ttft.as_secs_f64() * 1e3, now_ns);
                }
            }
            Outcome::Failure(class) => {
                cold.failures[class_slot(class)].fetch_add(1, Relaxed);
                if class.counts_against_instance() {
                    self.consecutive_failures.fetch_add(1, Relaxed);
                    self.success.observe(0.0, now_ns);
                    // A fast failure must not look like a fast instance: count it as at least
                    // twice the current estimate, so peak-EWMA steers away.
                    let penalty = latency.max(2.0 * self.latency.last());
                    self.latency.observe(penalty, now_ns);
                }
            }
        }
        cold.window.add(
            Sample {
                failed: matches!(a.outcome, Outcome::Failure(_)),
                counted: matches!(a.outcome, Outcome::Failure(c) if c.counts_against_instance()),
                tokens,
                latency_ms: a.latency.as_millis() as u64,
            },
            now_ns,
        );
    }

    /// Copy the running totals into the history (the sampler, every `metrics_interval`).
    pub fn sample(&self, at_ms: u64) {
        let cold = &*self.cold;
        cold.history.push(HistoryPoint {
            at_ms,
            requests: cold.requests.load(Relaxed),
            failures: cold.failures.iter().map(|n| n.load(Relaxed)).sum(),
            prompt_tokens: cold.prompt_tokens.load(Relaxed),
            completion_tokens: cold.completion_tokens.load(Relaxed),
            in_flight: self.in_flight(),
            latency_ewma_ms: self.latency.last() / 1e6,
            latency: cold.latency.counts(),
        });
    }

    /// The sampled history, oldest first.
    pub fn history(&self) -> Vec<HistoryPoint> {
        self.cold.history.read()
    }

    /// The latency histogram's per-bucket counts now.
    pub fn latency_counts(&self) -> LatencyCounts {
        self.cold.latency.counts()
    }

    /// The latency and time-to-first-token histograms.
    pub fn histograms(&self) -> (HistogramReading, HistogramReading) {
        (self.cold.latency.read(), self.cold.ttft.read())
    }

    /// Failures by class name (every class, zeros included).
    pub fn failures_by_class(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        (CLASSES.iter().zip(&self.cold.failures)).map(|(c, n)| (c.as_str(), n.load(Relaxed)))
    }

    /// Everything, for the admin API.
    pub fn view(&self, now_ns: u64) -> LiveView {
        let cold = &*self.cold;
        let by_class = CLASSES
            .iter()
            .zip(&cold.failures)
            .map(|(c, n)| (c.as_str(), n.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        LiveView {
            in_flight: self.in_flight(),
            draining: self.is_draining(),
            consecutive_failures: self.consecutive_failures(),
            latency_ewma_ms: self.latency.last() / 1e6,
            ttft_ewma_ms: Some(cold.ttft_ms.get()).filter(|v| !v.is_nan()),
            success_ratio: self.success_ratio(),
            requests: cold.requests.load(Relaxed),
            successes: cold.successes.load(Relaxed),
            failures: cold.failures.iter().map(|n| n.load(Relaxed)).sum(),
            failures_by_class: by_class,
            prompt_tokens: cold.prompt_tokens.load(Relaxed),
            completion_tokens: cold.completion_tokens.load(Relaxed),
            cost: cold.cost_micros.load(Relaxed) as f64 / 1e6,
            last_minute: cold.window.minute(now_ns),
        }
    }
}

/// A reading of [`Live`]: lifetime totals plus the last minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveView {
    pub in_flight: u64,
    pub draining: bool,
    pub consecutive_failures: u32,
    pub latency_ewma_ms: f64,
    /// None until a stream has been served.
    pub ttft_ewma_ms: Option<f64>,
    pub success_ratio: f64,
    pub requests: u64,
    pub successes: u64,
    pub failures: u64,
    pub failures_by_class: std::collections::BTreeMap<&'static str, u64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
    pub last_minute: Minute,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_hot_part_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Live>(), 64);
        assert_eq!(std::mem::align_of::<Live>(), 64);
    }

    fn ok(tokens: (u64, u64), latency: Duration) -> Attempt {
        Attempt {
            outcome: Outcome::Success {
                prompt_tokens: tokens.0,
                completion_tokens: tokens.1,
            },
            latency,
            ttft: None,
        }
    }

    #[test]
    fn records_totals_classes_tokens_cost_and_the_minute() {
        let live = Live::new(0);
        let price = Price {
            input_per_1k: 0.5,
            output_per_1k: 2.0,
        };
        live.record(price, &ok((1000, 500), 100 * MS), 0);
        let fail = |class| Attempt {
            outcome: Outcome::Failure(class),
            latency: 5 * MS,
            ttft: None,
        };
        live.record(price, &fail(ErrorClass::Timeout), 1);
        live.record(price, &fail(ErrorClass::Connect), 2);
        let v = live.view(3);
        assert_eq!((v.requests, v.successes, v.failures), (3, 1, 2));
        assert_eq!(v.failures_by_class.get("timeout"), Some(&1));
        assert_eq!(v.failures_by_class.get("connect"), Some(&1));
        assert_eq!((v.prompt_tokens, v.completion_tokens), (1000, 500));
        assert!((v.cost - 1.5).abs() < 1e-9, "0.5 + 1.0 = {}", v.cost);
        assert_eq!(v.consecutive_failures, 2);
        assert_eq!(v.last_minute.requests, 3);
        assert_eq!(v.last_minute.failures, 2);
        assert!(v.success_ratio < 1.0);
    }

    #[test]
    fn a_success_resets_consecutive_failures_and_client_errors_do_not_count() {
        let live = Live::new(0);
        let client = Attempt {
            outcome: Outcome::Failure(ErrorClass::Client),
            latency: MS,
            ttft: None,
        };
        live.record(Price::default(), &client, 0);
        assert_eq!(live.consecutive_failures(), 0);
        assert_eq!(live.success_ratio(), 1.0);
        let server = Attempt {
            outcome: Outcome::Failure(ErrorClass::Server),
            ..client
        };
        live.record(Price::default(), &server, 0);
        assert_eq!(live.consecutive_failures(), 1);
        live.record(Price::default(), &ok((1, 1), MS), 0);
        assert_eq!(live.consecutive_failures(), 0);
    }

    #[test]
    fn streams_feed_latency_with_time_to_first_token() {
        let live = Live::new(0);
        let stream = Attempt {
            ttft: Some(2000 * MS),
            ..ok((1, 1), 9000 * MS)
        };
        live.record(Price::default(), &stream, 0);
        assert_eq!(live.latency_ns(0), (2000 * MS).as_nanos() as f64);
        assert_eq!(live.view(0).ttft_ewma_ms, Some(2000.0));
        assert_eq!(Live::new(0).view(0).ttft_ewma_ms, None);
    }

    #[test]
    fn in_flight_and_drain() {
        let live = Live::new(0);
        live.acquire();
        live.acquire();
        live.release();
        assert_eq!(live.in_flight(), 1);
        assert!(live.admits());
        live.drain();
        assert!(!live.admits() && live.is_draining());
    }
}
