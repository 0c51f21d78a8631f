//! Per-instance counters: what each upstream has served, failed and cost.
//!
//! In-flight counts are process-local atomics on the instance (the balancer reads them on every
//! pick). Totals go through the [`Recorder`] trait so a later shared store (Redis) can sit
//! behind the same calls; [`MemoryRecorder`] is the in-process implementation: one set of
//! relaxed atomics per instance, so recording never serialises requests.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::provider::ErrorClass;

/// How one attempt against one instance ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Success {
        prompt_tokens: u64,
        completion_tokens: u64,
    },
    Failure(ErrorClass),
}

/// Where totals are kept.
pub trait Recorder: Send + Sync {
    /// Count one finished attempt on instance `index`.
    fn record(&self, index: usize, outcome: Outcome);
    /// Current totals of instance `index`.
    fn totals(&self, index: usize) -> Totals;
}

/// Lifetime totals of one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub successes: u64,
    pub failures: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Default)]
struct Cell {
    requests: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
}

/// In-memory totals, one cell per instance.
pub struct MemoryRecorder {
    cells: Vec<Cell>,
}

impl MemoryRecorder {
    pub fn new(instances: usize) -> Self {
        Self {
            cells: (0..instances).map(|_| Cell::default()).collect(),
        }
    }
}

impl Recorder for MemoryRecorder {
    fn record(&self, index: usize, outcome: Outcome) {
        let Some(cell) = self.cells.get(index) else {
            return;
        };
        cell.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Success {
                prompt_tokens,
                completion_tokens,
            } => {
                cell.successes.fetch_add(1, Ordering::Relaxed);
                cell.prompt_tokens
                    .fetch_add(prompt_tokens, Ordering::Relaxed);
                cell.completion_tokens
                    .fetch_add(completion_tokens, Ordering::Relaxed);
            }
            Outcome::Failure(_) => {
                cell.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn totals(&self, index: usize) -> Totals {
        let Some(c) = self.cells.get(index) else {
            return Totals::default();
        };
        Totals {
            requests: c.requests.load(Ordering::Relaxed),
            successes: c.successes.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            prompt_tokens: c.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: c.completion_tokens.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_successes_failures_and_tokens_per_instance() {
        let r = MemoryRecorder::new(2);
        r.record(
            1,
            Outcome::Success {
                prompt_tokens: 10,
                completion_tokens: 5,
            },
        );
        r.record(1, Outcome::Failure(ErrorClass::Timeout));
        r.record(9, Outcome::Failure(ErrorClass::Timeout)); // unknown index: ignored
        assert_eq!(r.totals(0), Totals::default());
        assert_eq!(
            r.totals(1),
            Totals {
                requests: 2,
                successes: 1,
                failures: 1,
                prompt_tokens: 10,
                completion_tokens: 5
            }
        );
    }
}
