//! The bounded history of health state changes (seed 001's status-change notifications),
//! newest last, for `GET /admin/events` and `GET /admin/health`. Each event is also logged.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Events kept; older ones are dropped.
pub const CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Ejected,
    /// An ejection was due but `max_ejection_percent` of a tier is already out.
    EjectionRefused,
    Recovered,
    Degraded,
    Unhealthy,
    Healthy,
    CooledDown,
    BreakerOpened,
    BreakerHalfOpen,
    BreakerClosed,
    /// Every instance of a route was ejected: it was served by the least-bad one.
    Panic,
}

impl EventKind {
    fn is_bad(self) -> bool {
        matches!(
            self,
            Self::Ejected
                | Self::EjectionRefused
                | Self::Unhealthy
                | Self::BreakerOpened
                | Self::Panic
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Increasing from 1; `GET /admin/events?since=N` returns the events after N.
    pub seq: u64,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `instance`, `task_group` or `route`.
    pub scope: &'static str,
    /// The instance id, group or route name.
    pub subject: String,
    pub kind: EventKind,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Events {
    inner: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    next_seq: u64,
    events: VecDeque<Event>,
}

impl Events {
    /// Record and log one event. Held only to push: never across an await.
    pub fn push(&self, scope: &'static str, subject: &str, kind: EventKind, detail: String) {
        if kind.is_bad() {
            tracing::warn!(target: "switchyard::health", scope, subject, ?kind, %detail, "health event");
        } else {
            tracing::info!(target: "switchyard::health", scope, subject, ?kind, %detail, "health event");
        }
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        ring.next_seq += 1;
        let event = Event {
            seq: ring.next_seq,
            at_ms,
            scope,
            subject: subject.to_owned(),
            kind,
            detail,
        };
        if ring.events.len() == CAPACITY {
            ring.events.pop_front();
        }
        ring.events.push_back(event);
    }

    /// Events after `since` (0: all kept), oldest first, at most `limit`, newest kept.
    pub fn after(&self, since: u64, limit: usize) -> Vec<Event> {
        let ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let newer: Vec<&Event> = ring.events.iter().filter(|e| e.seq > since).collect();
        let skip = newer.len().saturating_sub(limit);
        newer.into_iter().skip(skip).cloned().collect()
    }

    /// The most recent events about `subject`, oldest first.
    pub fn about(&self, subject: &str, limit: usize) -> Vec<Event> {
        let ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut found: Vec<Event> = (ring.events.iter().rev())
            .filter(|e| e.subject == subject)
            .take(limit)
            .cloned()
            .collect();
        found.reverse();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_capacity_events_in_order() {
        let events = Events::default();
        for i in 0..CAPACITY + 10 {
            events.push(
                "instance",
                &format!("i{}", i % 3),
                EventKind::Degraded,
                String::new(),
            );
        }
        let all = events.after(0, usize::MAX);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].seq, 11);
        assert_eq!(all.last().map(|e| e.seq), Some((CAPACITY + 10) as u64));
        let tail = events.after(CAPACITY as u64 + 5, 2);
        assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [1033, 1034]);
        let about = events.about("i0", 3);
        assert_eq!(about.len(), 3);
        assert!(about.windows(2).all(|w| w[0].seq < w[1].seq));
        assert!(about.iter().all(|e| e.subject == "i0"));
    }
}
