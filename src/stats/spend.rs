//! Tokens and cost added up: a route's ([`crate::route::RouteStats`]) and each calling
//! client's ([`ClientSpend`], `x-switchyard-client` or, with `[clients]` limits, the API key's
//! hash). Written once per served request, read by `/metrics` and the admin API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Tokens and cost, added up (a route's, a client's).
#[derive(Debug, Default)]
pub struct SpendCounter {
    prompt_tokens: std::sync::atomic::AtomicU64,
    completion_tokens: std::sync::atomic::AtomicU64,
    /// Millionths of the price unit.
    cost_micros: std::sync::atomic::AtomicU64,
}

/// What a route's served requests used and cost.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spend {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// In the price unit of the instances' `price`.
    pub cost: f64,
}

impl SpendCounter {
    /// A served request's tokens, at `price`.
    pub fn spent(&self, price: crate::config::Price, prompt: u64, completion: u64) {
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.prompt_tokens.fetch_add(prompt, relaxed);
        self.completion_tokens.fetch_add(completion, relaxed);
        let cost = prompt as f64 * price.input_per_1k + completion as f64 * price.output_per_1k;
        // Per 1k tokens → millionths: × 1e6 / 1e3.
        self.cost_micros
            .fetch_add((cost * 1e3).round() as u64, relaxed);
    }

    pub fn read(&self) -> Spend {
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        Spend {
            prompt_tokens: self.prompt_tokens.load(relaxed),
            completion_tokens: self.completion_tokens.load(relaxed),
            cost: self.cost_micros.load(relaxed) as f64 / 1e6,
        }
    }
}

/// Distinct clients counted; later ones are added up as `other`.
const CLIENTS_KEPT: usize = 10_000;

/// Spend by client name, carried from snapshot to snapshot.
#[derive(Debug, Default)]
pub struct ClientSpend {
    by_client: Mutex<HashMap<Arc<str>, Arc<SpendCounter>>>,
}

impl ClientSpend {
    /// The counter of `client` (made on first use; the lock is held for the lookup only).
    pub fn of(&self, client: &str) -> Arc<SpendCounter> {
        let mut map = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(client) {
            return Arc::clone(c);
        }
        let key: Arc<str> = if map.len() < CLIENTS_KEPT {
            Arc::from(client)
        } else {
            Arc::from("other")
        };
        Arc::clone(map.entry(key).or_default())
    }

    /// Every client's spend, by name.
    pub fn read(&self) -> Vec<(Arc<str>, Spend)> {
        let map = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = map.iter().map(|(k, v)| (Arc::clone(k), v.read())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Price;

    #[test]
    fn spend_adds_tokens_and_cost_per_client() {
        let s = ClientSpend::default();
        let price = Price {
            input_per_1k: 1.0,
            output_per_1k: 2.0,
        };
        s.of("a").spent(price, 1000, 500);
        s.of("a").spent(price, 10, 0);
        s.of("b").spent(price, 0, 1);
        let read = s.read();
        assert_eq!(read.len(), 2);
        assert_eq!(&*read[0].0, "a");
        assert_eq!(
            (read[0].1.prompt_tokens, read[0].1.completion_tokens),
            (1010, 500)
        );
        assert!((read[0].1.cost - 2.01).abs() < 1e-9, "{}", read[0].1.cost);
        assert!((read[1].1.cost - 0.002).abs() < 1e-9);
    }
}
