//! The response cache (`[global.cache]`): a non-streamed reply to a request is served again,
//! without an upstream call, to the same request within `ttl`.
//!
//! - **Key:** a 128-bit digest of the operation, the calling client, every `x-switchyard-*`
//!   request header (they change routing) and the body's exact bytes. Two clients never share
//!   an entry.
//! - **What is kept:** 200 replies only, with their content type, route and instance.
//! - **Client control:** `Cache-Control: no-cache` skips the lookup but stores the fresh reply;
//!   `no-store` neither looks up nor stores. Streamed requests are never cached.
//! - **Size:** at most `max_size` entries (`quick_cache`'s S3-FIFO eviction); an entry older
//!   than `ttl` is a miss and is dropped. A reload builds a new, empty cache: a changed route
//!   may now answer differently.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use crate::config::CacheSpec;
use crate::provider::Operation;

/// A kept reply.
#[derive(Debug)]
pub struct Entry {
    pub body: Bytes,
    pub content_type: Option<HeaderValue>,
    pub route: Option<HeaderValue>,
    pub instance: Option<HeaderValue>,
    /// `stats::clock_ms` when it stops being served.
    expires_ms: u64,
}

/// What the client's `Cache-Control` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Look up, and store on a miss.
    Normal,
    /// `no-cache`: do not look up; store the fresh reply.
    Refresh,
    /// `no-store`: neither.
    Bypass,
}

impl Mode {
    pub fn of(headers: &HeaderMap) -> Self {
        let mut mode = Self::Normal;
        for v in headers.get_all(http::header::CACHE_CONTROL) {
            let Ok(v) = v.to_str() else { continue };
            for d in v.split(',').map(str::trim) {
                if d.eq_ignore_ascii_case("no-store") {
                    return Self::Bypass;
                }
                if d.eq_ignore_ascii_case("no-cache") {
                    mode = Self::Refresh;
                }
            }
        }
        mode
    }
}

/// A cache key: two independently seeded 64-bit digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(u64, u64);

pub struct ResponseCache {
    spec: CacheSpec,
    entries: quick_cache::sync::Cache<Key, Arc<Entry>>,
    seeds: (std::hash::RandomState, std::hash::RandomState),
    hits: AtomicU64,
    misses: AtomicU64,
    stored: AtomicU64,
}

/// Counters for `GET /admin/cache`.
#[derive(Debug, serde::Serialize)]
pub struct CacheStats {
    pub entries: usize,
    pub max_size: u64,
    pub ttl_seconds: f64,
    pub hits: u64,
    pub misses: u64,
    pub stored: u64,
}

impl ResponseCache {
    pub fn new(spec: CacheSpec) -> Self {
        let capacity = usize::try_from(spec.max_size).unwrap_or(usize::MAX);
        Self {
            spec,
            entries: quick_cache::sync::Cache::new(capacity),
            seeds: Default::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stored: AtomicU64::new(0),
        }
    }

    pub fn key(
        &self,
        op: Operation,
        client: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Key {
        let mut routing: Vec<(&str, &[u8])> = (headers.iter())
            .filter(|(n, _)| n.as_str().starts_with("x-switchyard-"))
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        routing.sort_unstable();
        let digest = |seed: &std::hash::RandomState| {
            let mut h = seed.build_hasher();
            op.as_str().hash(&mut h);
            client.hash(&mut h);
            routing.hash(&mut h);
            body.hash(&mut h);
            h.finish()
        };
        Key(digest(&self.seeds.0), digest(&self.seeds.1))
    }

    /// The kept reply for `key`, if it is still fresh.
    pub fn get(&self, key: &Key, now_ms: u64) -> Option<Arc<Entry>> {
        match self.entries.get(key) {
            Some(e) if e.expires_ms > now_ms => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(e)
            }
            Some(_) => {
                self.entries.remove(key);
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    pub fn put(&self, key: Key, reply: Reply, now_ms: u64) {
        let ttl_ms = u64::try_from(self.spec.ttl.as_millis()).unwrap_or(u64::MAX);
        let entry = Entry {
            body: reply.body,
            content_type: reply.content_type,
            route: reply.route,
            instance: reply.instance,
            expires_ms: now_ms.saturating_add(ttl_ms),
        };
        self.entries.insert(key, Arc::new(entry));
        self.stored.fetch_add(1, Ordering::Relaxed);
    }

    /// Drop every entry (`DELETE /admin/cache`); returns how many there were.
    pub fn clear(&self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        n
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.len(),
            max_size: self.spec.max_size,
            ttl_seconds: self.spec.ttl.as_secs_f64(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
        }
    }
}

/// A reply to keep.
pub struct Reply {
    pub body: Bytes,
    pub content_type: Option<HeaderValue>,
    pub route: Option<HeaderValue>,
    pub instance: Option<HeaderValue>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cache(max_size: u64) -> ResponseCache {
        ResponseCache::new(CacheSpec {
            max_size,
            ttl: Duration::from_secs(10),
        })
    }

    fn reply(text: &'static str) -> Reply {
        Reply {
            body: Bytes::from_static(text.as_bytes()),
            content_type: None,
            route: None,
            instance: None,
        }
    }

    #[test]
    fn a_reply_is_served_until_its_ttl_and_then_dropped() {
        let c = cache(10);
        let k = c.key(Operation::Chat, None, &HeaderMap::new(), b"{}");
        assert!(c.get(&k, 0).is_none());
        c.put(k, reply("a"), 1_000);
        assert_eq!(
            c.get(&k, 10_999).map(|e| e.body.clone()),
            Some(Bytes::from("a"))
        );
        assert!(c.get(&k, 11_000).is_none(), "ttl is 10 s from the store");
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.stored, s.entries), (1, 2, 1, 0));
    }

    #[test]
    fn keys_differ_by_client_operation_routing_headers_and_body() {
        let c = cache(10);
        let none = HeaderMap::new();
        let base = c.key(Operation::Chat, Some("a"), &none, b"{}");
        assert_eq!(base, c.key(Operation::Chat, Some("a"), &none, b"{}"));
        assert_ne!(base, c.key(Operation::Chat, Some("b"), &none, b"{}"));
        assert_ne!(base, c.key(Operation::Chat, None, &none, b"{}"));
        assert_ne!(base, c.key(Operation::Embeddings, Some("a"), &none, b"{}"));
        assert_ne!(base, c.key(Operation::Chat, Some("a"), &none, b"{ }"));
        let mut routed = HeaderMap::new();
        routed.insert("x-switchyard-llm-group", HeaderValue::from_static("g"));
        assert_ne!(base, c.key(Operation::Chat, Some("a"), &routed, b"{}"));
        let mut other = HeaderMap::new();
        other.insert("user-agent", HeaderValue::from_static("curl"));
        assert_eq!(base, c.key(Operation::Chat, Some("a"), &other, b"{}"));
    }

    #[test]
    fn it_holds_at_most_max_size_entries() {
        let c = cache(4);
        for i in 0..100u32 {
            let k = c.key(Operation::Chat, None, &HeaderMap::new(), &i.to_le_bytes());
            c.put(k, reply("x"), 0);
        }
        let n = c.stats().entries;
        assert!((1..=4).contains(&n), "{:?}", c.stats());
        assert_eq!(c.clear(), n);
        assert_eq!(c.stats().entries, 0);
    }

    #[test]
    fn cache_control_picks_the_mode() {
        let mode = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static(v));
            Mode::of(&h)
        };
        assert_eq!(Mode::of(&HeaderMap::new()), Mode::Normal);
        assert_eq!(mode("no-cache"), Mode::Refresh);
        assert_eq!(mode("max-age=0, No-Store"), Mode::Bypass);
        assert_eq!(mode("max-age=60"), Mode::Normal);
    }
}
