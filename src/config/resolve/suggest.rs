//! "Did you mean …?" for unknown keys: the keys a table knows come from its serde type (the
//! field list serde hands `deserialize_struct`), so they never drift from what is read.

use serde::Deserialize;
use serde::de::{self, Visitor};

use crate::config::raw;

/// A deserializer that only records the field names of the struct asked of it.
struct Fields(Vec<&'static str>);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fields recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for &mut Fields {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0.extend_from_slice(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn fields_of<'de, T: Deserialize<'de>>() -> Vec<&'static str> {
    let mut f = Fields(Vec::new());
    let _ = T::deserialize(&mut f);
    f.0
}

/// The keys the table at `parent` (a dotted path, `[n]` for array entries) knows.
fn known(parent: &str) -> Vec<&'static str> {
    let parts: Vec<&str> = parent.split('.').collect();
    match parts.as_slice() {
        [] | [""] => Vec::new(),
        ["registry"] => fields_of::<raw::RegistryMeta>(),
        ["server"] => fields_of::<raw::Server>(),
        ["clients", "default"] | ["clients", "keys", _] => fields_of::<raw::LimitKeys>(),
        ["provider"] => fields_of::<raw::Provider>(),
        ["models", _] => fields_of::<raw::Model>(),
        ["models", _, "shared_limits"] => fields_of::<raw::LimitKeys>(),
        ["models", _, i] if i.starts_with("instances") => fields_of::<raw::Instance>(),
        ["pool"] => fields_of::<raw::Pool>(),
        ["pool", "health_check"] => fields_of::<raw::HealthCheck>(),
        ["pool", "rotation_strategy"] => fields_of::<raw::RotationStrategy>(),
        ["pool", "rotation_strategy", "options"] => fields_of::<raw::StrategyOptions>(),
        ["pool", "fallback"] => fields_of::<raw::PoolFallback>(),
        ["pool", "rate_limiting"] => fields_of::<raw::RateLimiting>(),
        ["pool", "rate_limiting", "token_bucket"] => fields_of::<raw::TokenBucket>(),
        ["pool", "rate_limiting", "fixed_window" | "sliding_window"] => {
            fields_of::<raw::RateWindow>()
        }
        ["task_group"] => fields_of::<raw::TaskGroup>(),
        ["task_group", "fallback"] => fields_of::<raw::GroupFallback>(),
        ["task_group", "circuit_breaker"] => fields_of::<raw::CircuitBreaker>(),
        ["task_group", "echelons", _] => fields_of::<raw::Echelon>(),
        ["wrappers", _] => fields_of::<raw::Wrapper>(),
        ["pool" | "task_group", "metrics"] => fields_of::<raw::Metrics>(),
        ["global"] => fields_of::<raw::GlobalKeys>(),
        ["global", "error_handling"] => fields_of::<raw::ErrorHandlingKeys>(),
        ["global", "fallback"] => fields_of::<raw::GlobalFallbackKeys>(),
        ["global", "limits"] => fields_of::<raw::GlobalLimitsKeys>(),
        ["global", "cache"] => fields_of::<raw::CacheKeys>(),
        ["global", "logging"] => fields_of::<raw::LoggingKeys>(),
        _ => Vec::new(),
    }
}

/// The known key nearest to the unknown `key` (a full dotted path), if one is close: at most
/// a third of its letters off.
pub(super) fn nearest(key: &str) -> Option<&'static str> {
    let (parent, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let parent = parent.replace(['[', ']'], "");
    let candidates = known(&parent);
    let limit = (leaf.chars().count() / 3).max(1);
    (candidates.into_iter())
        .map(|c| (distance(leaf, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_the_nearest_key_of_their_table() {
        assert_eq!(nearest("pool.health_check.intervall"), Some("interval"));
        assert_eq!(nearest("pool.health_chek"), Some("health_check"));
        assert_eq!(nearest("task_group.echelons.e1.modles"), Some("models"));
        assert_eq!(nearest("models.m.instances[1].wieght"), Some("weight"));
        assert_eq!(nearest("provider.bse_url"), Some("base_url"));
        assert_eq!(nearest("pool.colour"), None, "nothing close");
        assert_eq!(nearest("global.cache.tll"), Some("ttl"));
        assert_eq!(nearest("global.reload_intervall"), Some("reload_interval"));
        assert_eq!(nearest("pool.metrics.intervl"), Some("interval"));
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(nearest("server.header_timout"), Some("header_timeout"));
    }

    /// docs/config.md names every key of `[server]` and `[global]` (the lists strict
    /// validation uses), so a new key cannot go undocumented.
    #[test]
    fn the_config_reference_lists_every_server_and_global_key() {
        let doc = include_str!("../../../docs/config.md");
        for (table, keys) in [("server", known("server")), ("global", known("global"))] {
            for key in keys {
                let named = doc.contains(&format!("[{table}] {key}`"))
                    || doc.contains(&format!("[{table}.{key}]"))
                    || doc.lines().any(|l| {
                        l.starts_with(&format!("| `[{table}]"))
                            && l.split('|').nth(1).is_some_and(|k| {
                                k.contains(&format!("`{key}`")) || k.contains(&format!(" {key}`"))
                            })
                    });
                assert!(named, "docs/config.md does not list `[{table}] {key}`");
            }
        }
    }
}
