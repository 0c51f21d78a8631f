//! What the handlers of one mock server share: the current behaviour and its seeded rng, the
//! counters, the last API request (for `GET /mock/last`), reply ids and the lifecycle.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::value::RawValue;

use super::behavior::Behavior;
use super::lifecycle::Lifecycle;
use super::request::Endpoint;
use super::stats::MockStats;

/// Locks `m`, carrying on if another thread panicked while holding it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Current {
    behavior: Arc<Behavior>,
    rng: fastrand::Rng,
}

/// State shared by every handler of one server.
#[derive(Debug)]
pub(crate) struct Shared {
    current: Mutex<Current>,
    pub(crate) stats: Arc<MockStats>,
    pub(crate) life: Arc<Lifecycle>,
    last: Mutex<Option<Arc<LastRequest>>>,
    ids: AtomicU64,
}

/// The decisions taken when an API request arrives, all under one lock so that the rng draws
/// follow the arrival order (and so are deterministic for sequential clients).
#[derive(Debug)]
pub(crate) struct Admission {
    /// The behaviour this request is handled with, even if it is replaced meanwhile.
    pub(crate) behavior: Arc<Behavior>,
    /// 1-based number of this API request.
    pub(crate) number: u64,
    /// Random extra delay drawn from `0..=jitter_ms`.
    pub(crate) jitter: Duration,
    /// Whether `fail_rate` picked this request to fail.
    pub(crate) fail: bool,
}

impl Shared {
    pub(crate) fn new(behavior: Behavior) -> Arc<Self> {
        Arc::new(Self {
            current: Mutex::new(Current {
                rng: fastrand::Rng::with_seed(behavior.seed),
                behavior: Arc::new(behavior),
            }),
            stats: Arc::new(MockStats::default()),
            life: Lifecycle::new(),
            last: Mutex::new(None),
            ids: AtomicU64::new(0),
        })
    }

    pub(crate) fn behavior(&self) -> Arc<Behavior> {
        Arc::clone(&lock(&self.current).behavior)
    }

    /// Replaces the behaviour and reseeds the rng from its `seed`.
    pub(crate) fn set_behavior(&self, behavior: Behavior) {
        let mut current = lock(&self.current);
        current.rng = fastrand::Rng::with_seed(behavior.seed);
        current.behavior = Arc::new(behavior);
    }

    /// Counts an API request and draws its jitter and failure.
    pub(crate) fn admit(&self, endpoint: Endpoint) -> Admission {
        let mut current = lock(&self.current);
        let number = self.stats.count_request(endpoint);
        let behavior = Arc::clone(&current.behavior);
        let jitter = match behavior.jitter_ms {
            0 => Duration::ZERO,
            max => Duration::from_millis(current.rng.u64(0..=max)),
        };
        let p = behavior.fail_probability();
        let fail = p > 0.0 && current.rng.f64() < p;
        Admission {
            behavior,
            number,
            jitter,
            fail,
        }
    }

    /// A fresh number for a reply id.
    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn record_last(&self, last: LastRequest) {
        *lock(&self.last) = Some(Arc::new(last));
    }

    pub(crate) fn last(&self) -> Option<Arc<LastRequest>> {
        lock(&self.last).clone()
    }
}

/// An API request as received, for `GET /mock/last`.
#[derive(Debug, serde::Serialize)]
pub(crate) struct LastRequest {
    /// The path with its query, if any (`/v1beta/models/m:streamGenerateContent?alt=sse`).
    path: String,
    /// Lowercased header names; repeated headers joined with ", ".
    headers: BTreeMap<String, String>,
    /// The JSON body as sent (outer whitespace trimmed); `null` when empty; a JSON string of
    /// the text when it was not JSON.
    body: Box<RawValue>,
}

impl LastRequest {
    pub(crate) fn capture(parts: &http::request::Parts, body: &[u8]) -> Self {
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &parts.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        Self {
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path(), |pq| pq.as_str())
                .to_owned(),
            headers,
            body: raw_body(body),
        }
    }
}

fn raw_body(body: &[u8]) -> Box<RawValue> {
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        return RawValue::NULL.to_owned();
    }
    if let Ok(raw) = RawValue::from_string(text.clone().into_owned()) {
        return raw;
    }
    serde_json::to_string(&text)
        .ok()
        .and_then(|quoted| RawValue::from_string(quoted).ok())
        .unwrap_or_else(|| RawValue::NULL.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_body_keeps_json_text() {
        assert_eq!(
            raw_body(br#" {"a": 2.50, "z":[1]} "#).get(),
            r#"{"a": 2.50, "z":[1]}"#
        );
        assert_eq!(raw_body(b"").get(), "null");
        assert_eq!(raw_body(b"not {json").get(), r#""not {json""#);
    }

    #[test]
    fn same_seed_same_draws() {
        let b = Behavior {
            fail_rate: 0.5,
            jitter_ms: 100,
            seed: 7,
            ..Behavior::default()
        };
        let draws = |s: &Shared| {
            (0..32)
                .map(|_| {
                    let a = s.admit(Endpoint::Chat);
                    (a.fail, a.jitter)
                })
                .collect::<Vec<_>>()
        };
        let one = draws(&Shared::new(b.clone()));
        assert_eq!(one, draws(&Shared::new(b.clone())));
        assert!(one.iter().any(|d| d.0) && one.iter().any(|d| !d.0));
        assert!(one.iter().all(|d| d.1 <= Duration::from_millis(100)));
    }
}
