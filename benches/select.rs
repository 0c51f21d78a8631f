//! Instance selection time for every load-balancing strategy (criterion).
//!
//! - `select/{strategy}/{n}`: one first-attempt `pick` over `n` members (3, 64, 10,000).
//! - `select_filtered/{strategy}/64`: a retry (`retry = true`, two instances already tried)
//!   over 64 members of which ~10 % are draining.
//! - `select_contended/{strategy}/64`: the `select/{strategy}/64` pick, timed on this thread
//!   while a second OS thread calls `pick` on the same strategy and members in a loop.
//!
//! Every member carries live state so the strategies do real work: weights 1..=10, five price
//! levels, 1..=8 requests in flight (none idle, so `least_connections` scans the whole tier),
//! peak-EWMA latencies between 80 ms and 1.2 s, and some recent failures. Candidate filtering
//! (`Candidates::accepts`: draining flag and tried instances) runs inside every pick.
//!
//! Run: `cargo bench --bench select` (bench/README.md has the targets and last results).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use switchyard::balance::{Candidates, Member, ScoreWeights, Strategy, StrategyKind, members};
use switchyard::config::Price;
use switchyard::provider::ErrorClass;
use switchyard::stats::{Attempt, Outcome};

/// The gateway binary's allocator, so members' live state is laid out as in production
/// (mimalloc keeps same-sized allocations together).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const S: u64 = 1_000_000_000;
/// The clock at which every pick is made: 0.5 s after the last recorded attempt, so the
/// latency estimates decay (one `exp` per read) as they do on the request path.
const NOW_NS: u64 = 60 * S + S / 2;
/// Tier sizes of the `select` group.
const SIZES: [usize; 3] = [3, 64, 10_000];
/// Tier size of the filtered and contended groups.
const TIER: usize = 64;

/// `n` members with varied, deterministic live state.
fn tier(n: usize) -> Vec<Member> {
    let mut rng = fastrand::Rng::with_seed(0x5EED + n as u64);
    let weights: Vec<u32> = (0..n).map(|_| rng.u32(1..=10)).collect();
    let mut tier = members(&weights);
    for member in &mut tier {
        let level = f64::from(rng.u8(0..5));
        member.price = Price {
            input_per_1k: 0.5 + 0.25 * level,
            output_per_1k: 1.5 + 0.75 * level,
        };
        for _ in 0..rng.u32(1..=8) {
            member.live.acquire();
        }
        // A minute of traffic: one attempt per second around this member's typical latency.
        let typical_ms = rng.u64(80..=1200);
        for t in 1..=60 {
            let latency = Duration::from_millis(typical_ms * rng.u64(80..=120) / 100);
            let attempt = Attempt {
                outcome: Outcome::Success {
                    prompt_tokens: rng.u64(100..=2000),
                    completion_tokens: rng.u64(10..=500),
                },
                latency,
                ttft: None,
            };
            member.live.record(member.price, &attempt, t * S);
        }
        // Some members are failing right now (health 0.5 or 0, lower success ratio).
        let failures = match rng.u8(0..20) {
            0 => 3,
            1 | 2 => 1,
            _ => 0,
        };
        for _ in 0..failures {
            let attempt = Attempt {
                outcome: Outcome::Failure(ErrorClass::Server),
                latency: Duration::from_millis(typical_ms / 4),
                ttft: None,
            };
            member.live.record(member.price, &attempt, 60 * S);
        }
    }
    tier
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
}

/// Panics (before anything is measured) if a strategy finds no member where it must.
fn check(kind: StrategyKind, strategy: &dyn Strategy, c: &Candidates<'_>) {
    match strategy.pick(c) {
        Some(i) if c.accepts(i) => {}
        other => panic!("{kind} picked {other:?} over {} members", c.len()),
    }
}

fn select(crit: &mut Criterion) {
    let mut group = crit.benchmark_group("select");
    for n in SIZES {
        let tier = tier(n);
        for kind in StrategyKind::ALL {
            let strategy = kind.build(&tier, ScoreWeights::default());
            let c = Candidates::new(&tier, NOW_NS);
            check(kind, &*strategy, &c);
            group.bench_function(BenchmarkId::new(kind.as_str(), n), |b| {
                b.iter(|| strategy.pick(black_box(&c)));
            });
        }
    }
    group.finish();
}

fn select_filtered(crit: &mut Criterion) {
    let tier = tier(TIER);
    // ~10 % draining (7 of 64); two accepted instances already tried by this request.
    for member in tier.iter().filter(|m| m.instance % 10 == 3) {
        member.live.drain();
    }
    let tried = [17, 42];
    let mut group = crit.benchmark_group("select_filtered");
    for kind in StrategyKind::ALL {
        let strategy = kind.build(&tier, ScoreWeights::default());
        let c = Candidates {
            tried: &tried,
            retry: true,
            ..Candidates::new(&tier, NOW_NS)
        };
        check(kind, &*strategy, &c);
        group.bench_function(BenchmarkId::new(kind.as_str(), TIER), |b| {
            b.iter(|| strategy.pick(black_box(&c)));
        });
    }
    group.finish();
}

/// Sets the stop flag when dropped, so the background thread ends (and `thread::scope`
/// returns) even if the measuring thread panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn select_contended(crit: &mut Criterion) {
    let tier = tier(TIER);
    let mut group = crit.benchmark_group("select_contended");
    for kind in StrategyKind::ALL {
        let strategy = kind.build(&tier, ScoreWeights::default());
        let strategy = &*strategy;
        let c = Candidates::new(&tier, NOW_NS);
        check(kind, strategy, &c);
        group.bench_function(BenchmarkId::new(kind.as_str(), TIER), |b| {
            b.iter_custom(|iters| {
                let stop = AtomicBool::new(false);
                let running = AtomicBool::new(false);
                thread::scope(|s| {
                    let _stop = StopOnDrop(&stop);
                    s.spawn(|| {
                        let c = Candidates::new(&tier, NOW_NS);
                        running.store(true, Ordering::Relaxed);
                        while !stop.load(Ordering::Relaxed) {
                            black_box(strategy.pick(black_box(&c)));
                        }
                    });
                    // Time only while the other thread is picking.
                    while !running.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(strategy.pick(black_box(&c)));
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = select, select_filtered, select_contended
}
criterion_main!(benches);
