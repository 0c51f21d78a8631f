//! The bounded history of requests that fell back (served by a later attempt or step than the
//! first) or failed, for `GET /admin/fallbacks`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::trace::Trace;
use crate::route::{Step, StepKind};
use crate::snapshot::Snapshot;

/// Records kept; older ones are dropped.
pub const CAPACITY: usize = 256;

#[derive(Debug, Clone, Serialize)]
pub struct FallbackRecord {
    pub seq: u64,
    pub at_ms: u64,
    pub route: String,
    /// `served` or `failed`.
    pub outcome: &'static str,
    /// The tier that served it, and why that tier was in the plan.
    pub served_by: Option<String>,
    pub step: Option<StepKind>,
    pub attempts: u32,
    /// Every attempt, as the `x-switchyard-trace` header writes them.
    pub path: String,
}

#[derive(Debug, Default)]
pub struct FallbackLog {
    inner: Mutex<(u64, VecDeque<FallbackRecord>)>,
}

impl FallbackLog {
    /// Off the happy path only: a request that needed more than its first attempt.
    pub(crate) fn push(
        &self,
        route: &str,
        served: Option<(&str, StepKind)>,
        trace: &Trace,
        snap: &Snapshot,
        steps: &[Step],
    ) {
        let path = trace
            .header(snap, steps)
            .and_then(|v| v.to_str().map(str::to_owned).ok())
            .unwrap_or_default();
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.0 += 1;
        let record = FallbackRecord {
            seq: inner.0,
            at_ms,
            route: route.to_owned(),
            outcome: if served.is_some() { "served" } else { "failed" },
            served_by: served.map(|(label, _)| label.to_owned()),
            step: served.map(|(_, why)| why),
            attempts: trace.attempts,
            path,
        };
        if inner.1.len() == CAPACITY {
            inner.1.pop_front();
        }
        inner.1.push_back(record);
    }

    /// The newest `limit` records, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<FallbackRecord> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let skip = inner.1.len().saturating_sub(limit);
        inner.1.iter().skip(skip).cloned().collect()
    }
}
