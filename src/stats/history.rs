//! A short history per instance for the dashboard's time series: every `[global]
//! metrics_interval` (default 60 s) the gateway's sampler copies each instance's running totals
//! into a ring of the last [`POINTS`] samples. Only the sampler and readers take its lock; the
//! request path never touches it.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Samples kept (90: 15 minutes at a 10 s interval).
pub const POINTS: usize = 90;

/// Running totals at one moment (differences between points give rates).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Point {
    /// Unix time, ms.
    pub at_ms: u64,
    pub requests: u64,
    pub failures: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub in_flight: u64,
    pub latency_ewma_ms: f64,
    /// The latency histogram's per-bucket counts (differences give recent quantiles).
    #[serde(skip)]
    pub latency: super::histogram::Counts,
}

#[derive(Debug, Default)]
pub struct History {
    points: Mutex<VecDeque<Point>>,
}

impl History {
    pub fn push(&self, p: Point) {
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        if points.len() == POINTS {
            points.pop_front();
        }
        points.push_back(p);
    }

    /// Oldest first.
    pub fn read(&self) -> Vec<Point> {
        let points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        points.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_points_oldest_first() {
        let h = History::default();
        for i in 0..(POINTS as u64 + 5) {
            h.push(Point {
                at_ms: i,
                requests: i,
                failures: 0,
                prompt_tokens: 0,
                completion_tokens: 0,
                in_flight: 0,
                latency_ewma_ms: 0.0,
                latency: Default::default(),
            });
        }
        let read = h.read();
        assert_eq!(read.len(), POINTS);
        assert_eq!(read[0].at_ms, 5);
        assert_eq!(read[POINTS - 1].at_ms, POINTS as u64 + 4);
    }
}
