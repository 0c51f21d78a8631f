//! The admit path of limits (criterion): what one attempt pays to pass every level.
//!
//! - `admit/all_levels`: a tier limit (concurrency + token bucket) and an instance limit
//!   (concurrency + an exact sliding log of 10,000 + a tokens sliding window), admitted,
//!   settled with usage and released per iteration, uncontended. The clock moves 1 ms per
//!   iteration and the windows are 1 ms long, so every iteration is an admission.
//! - `admit/{algorithm}`: one take of each rate algorithm alone.
//!
//! Target: under 1 µs median for `admit/all_levels` (issue 6). Run: `cargo bench --bench limit`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard::limit::{Algorithm, LimitSpec, Limits, Permits, Rate};
use switchyard::shared::{self, MemoryStore};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let store = MemoryStore::default();
    let tier = LimitSpec {
        concurrency: Some(1_000_000),
        requests: Some(Algorithm::TokenBucket {
            capacity: 1e9,
            refill_per_s: 1e9,
        }),
        tokens: None,
    };
    let instance = LimitSpec {
        concurrency: Some(1_000_000),
        // Large enough never to refuse during the run: the cost measured is the admit.
        requests: Some(Algorithm::SlidingLog {
            window: Duration::from_millis(1),
            max: 10_000,
        }),
        tokens: Some(Algorithm::SlidingWindow {
            window: Duration::from_millis(1),
            max: 1_000_000,
        }),
    };
    let (Some(tier), Some(instance)) = (
        Limits::new(&store, "tier", "t", &tier),
        Limits::new(&store, "instance", "i", &instance),
    ) else {
        return;
    };
    let mut now_ms = 0u64;
    c.bench_function("admit/all_levels", |b| {
        b.iter(|| {
            now_ms += 1;
            let mut permits = Permits::default();
            let t = tier.admit(black_box(300), now_ms, &mut permits);
            let i = instance.admit(black_box(300), now_ms, &mut permits);
            // A finished request: usage known, permits back.
            permits.settle_tokens(black_box(120), now_ms);
            assert!(
                t.is_ok() && i.is_ok(),
                "the bench measures admissions, not refusals"
            );
            drop(permits);
        });
    });
    let algorithms = [
        Algorithm::TokenBucket {
            capacity: 1e9,
            refill_per_s: 1e9,
        },
        Algorithm::FixedWindow {
            window: Duration::from_millis(1),
            max: 1_000_000,
        },
        Algorithm::SlidingWindow {
            window: Duration::from_millis(1),
            max: 1_000_000,
        },
        Algorithm::SlidingLog {
            window: Duration::from_millis(1),
            max: 1000,
        },
    ];
    for a in algorithms {
        let ring = match a {
            Algorithm::SlidingLog { max, .. } => (0..max).map(|_| shared::local()).collect(),
            _ => Vec::new(),
        };
        let rate = Rate::new(a, shared::local(), ring);
        let mut now = 0u64;
        c.bench_function(&format!("admit/{}", a.as_str()), |b| {
            b.iter(|| {
                now += 1;
                black_box(rate.take(1, now).is_ok())
            });
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    targets = bench
}
criterion_main!(benches);
