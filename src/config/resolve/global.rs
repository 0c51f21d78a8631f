//! `[global]` settings of `_registry.toml` and of wrapper files (seed 004 puts
//! `[global.error_handling]` in the wrappers file): the registry's values win, a wrapper file
//! fills in what the registry leaves unset.
//!
//! Read here: `default_timeout` (the whole request's deadline), `max_retries` (attempts over a
//! plan, + 1), `[global.error_handling]` `retry_on_errors`, `retry_delay`, `backoff_factor`,
//! `max_retry_delay`, and `[global.fallback] provider_chain`.

use std::time::Duration;

use super::Loader;
use crate::retry::{RETRY_CLASSES, RetryPolicy};

pub(super) struct Global {
    pub(super) retry: RetryPolicy,
    pub(super) request_timeout: Option<Duration>,
    pub(super) provider_chain: Vec<String>,
    pub(super) max_attempts: Option<u32>,
    pub(super) queue: Option<crate::config::QueueSpec>,
    pub(super) hot_reload: Option<Duration>,
}

impl Loader<'_> {
    /// `tables`: `(file, [global] table)`, the registry's first.
    pub(super) fn global(
        &mut self,
        tables: &[(String, toml::Table)],
        providers: &[&str],
    ) -> Global {
        let find = |path: &[&str]| -> Option<(String, toml::Value)> {
            tables.iter().find_map(|(file, t)| {
                let mut v = t.get(path[0])?;
                for k in &path[1..] {
                    v = v.get(k)?;
                }
                Some((file.clone(), v.clone()))
            })
        };
        let mut retry = RetryPolicy::default();
        if let Some((file, v)) = find(&["error_handling", "retry_on_errors"]) {
            let key = "global.error_handling.retry_on_errors";
            match v.as_array().map(|a| {
                a.iter()
                    .map(toml::Value::as_str)
                    .collect::<Option<Vec<_>>>()
            }) {
                Some(Some(names)) => match RetryPolicy::new(names) {
                    Ok(p) => retry = p,
                    Err(bad) => {
                        let known: Vec<&str> = RETRY_CLASSES.iter().map(|(n, _)| *n).collect();
                        self.issue(
                            &file,
                            key,
                            format!("unknown error class {bad:?}; expected any of {known:?}"),
                        );
                    }
                },
                _ => self.issue(&file, key, "must be a list of error class names"),
            }
        }
        let secs = |cx: &mut Self, path: &[&str], zero_ok: bool| -> Option<Duration> {
            let (file, v) = find(path)?;
            let key = format!("global.{}", path.join("."));
            let n = v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
            match n.map(Duration::try_from_secs_f64) {
                Some(Ok(d)) if zero_ok || !d.is_zero() => Some(d),
                _ => {
                    cx.issue(&file, key, "must be a positive number of seconds");
                    None
                }
            }
        };
        if let Some(d) = secs(self, &["error_handling", "retry_delay"], true) {
            retry.retry_delay = d;
        }
        if let Some(d) = secs(self, &["error_handling", "max_retry_delay"], false) {
            retry.max_retry_delay = d;
        }
        let request_timeout = secs(self, &["default_timeout"], false);
        let queue_timeout = secs(self, &["limits", "queue_timeout"], true).filter(|d| !d.is_zero());
        let queue_size = match find(&["limits", "queue_size"]) {
            None => 1000,
            Some((file, v)) => match v.as_integer().and_then(|n| usize::try_from(n).ok()) {
                Some(n) if n > 0 => n,
                _ => {
                    self.issue(
                        &file,
                        "global.limits.queue_size",
                        "must be a whole number ≥ 1",
                    );
                    1000
                }
            },
        };
        let enabled = match find(&["enable_hot_reload"]) {
            None => false,
            Some((file, v)) => v.as_bool().unwrap_or_else(|| {
                self.issue(&file, "global.enable_hot_reload", "must be true or false");
                false
            }),
        };
        let interval = secs(self, &["reload_interval"], false).unwrap_or(Duration::from_secs(30));
        let hot_reload = enabled.then_some(interval);
        let queue = queue_timeout.map(|timeout| crate::config::QueueSpec {
            timeout,
            size: queue_size,
        });
        if let Some((file, v)) = find(&["error_handling", "backoff_factor"]) {
            match v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
                Some(f) if (1.0..=100.0).contains(&f) => retry.backoff_factor = f,
                _ => self.issue(
                    &file,
                    "global.error_handling.backoff_factor",
                    "must be a number from 1 to 100",
                ),
            }
        }
        let max_attempts = match find(&["max_retries"]) {
            None => None,
            Some((file, v)) => match v.as_integer().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => Some(n.saturating_add(1)),
                None => {
                    self.issue(&file, "global.max_retries", "must be a whole number ≥ 0");
                    None
                }
            },
        };
        let mut provider_chain = Vec::new();
        if let Some((file, v)) = find(&["fallback", "provider_chain"]) {
            let key = "global.fallback.provider_chain";
            match v.as_array().map(|a| {
                a.iter()
                    .map(toml::Value::as_str)
                    .collect::<Option<Vec<_>>>()
            }) {
                Some(Some(names)) => {
                    for (i, n) in names.iter().enumerate() {
                        if !providers.contains(n) {
                            self.issue(
                                &file,
                                format!("{key}[{i}]"),
                                format!(
                                    "unknown provider {n:?}: it is not registered under [providers]"
                                ),
                            );
                        }
                    }
                    provider_chain = names.into_iter().map(str::to_owned).collect();
                }
                _ => self.issue(&file, key, "must be a list of provider names"),
            }
        }
        Global {
            retry,
            request_timeout,
            provider_chain,
            max_attempts,
            queue,
            hot_reload,
        }
    }
}
