//! State that replicas may share later (a Redis backend): health decisions now, limiter state
//! next. It is a store of named 64-bit cells with atomic operations, so every algorithm built
//! on it (a breaker's compare-and-swap state machine, an ejection word, a counter) runs the
//! same against a remote store whose cells are Lua-scripted keys.
//!
//! Cells are handles: look one up once per config load (`Store::cell`), then use it on the
//! request path without a lookup. [`MemoryStore`] keeps them in process; its cells are plain
//! atomics.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// One shared 64-bit word.
pub trait Cell: Send + Sync + Debug {
    fn load(&self) -> u64;
    fn store(&self, value: u64);
    fn swap(&self, value: u64) -> u64;
    /// Replace `current` with `new`; `Err(actual)` if it was not `current`.
    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64>;
    fn fetch_add(&self, delta: u64) -> u64;
    fn fetch_sub(&self, delta: u64) -> u64;
}

/// Named cells.
pub trait Store: Send + Sync + Debug {
    /// The cell called `key`, created at 0 if new. The same key gives the same cell.
    fn cell(&self, key: &str) -> Arc<dyn Cell>;
}

impl Cell for AtomicU64 {
    #[inline]
    fn load(&self) -> u64 {
        AtomicU64::load(self, Relaxed)
    }
    fn store(&self, value: u64) {
        AtomicU64::store(self, value, Relaxed);
    }
    fn swap(&self, value: u64) -> u64 {
        AtomicU64::swap(self, value, Relaxed)
    }
    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64> {
        AtomicU64::compare_exchange(self, current, new, Relaxed, Relaxed)
    }
    fn fetch_add(&self, delta: u64) -> u64 {
        AtomicU64::fetch_add(self, delta, Relaxed)
    }
    fn fetch_sub(&self, delta: u64) -> u64 {
        AtomicU64::fetch_sub(self, delta, Relaxed)
    }
}

/// A cell of its own, in no store (tests, and state nothing else needs to see).
pub fn local() -> Arc<dyn Cell> {
    Arc::new(AtomicU64::new(0))
}

/// Cells in this process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    cells: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl Store for MemoryStore {
    fn cell(&self, key: &str) -> Arc<dyn Cell> {
        // Config loads only, never per request.
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let cell = cells.entry(key.to_owned()).or_default();
        Arc::clone(cell) as Arc<dyn Cell>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_is_the_same_cell() {
        let store = MemoryStore::default();
        let a = store.cell("health/a");
        a.store(7);
        assert_eq!(store.cell("health/a").load(), 7);
        assert_eq!(store.cell("health/b").load(), 0);
        assert_eq!(a.compare_exchange(7, 9), Ok(7));
        assert_eq!(a.compare_exchange(7, 1), Err(9));
        assert_eq!(a.fetch_add(1), 9);
        assert_eq!(a.swap(0), 10);
    }
}
