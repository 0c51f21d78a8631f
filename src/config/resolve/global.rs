//! `[global]` settings of `_registry.toml` and of wrapper files (seed 004 puts
//! `[global.error_handling]` in the wrappers file): the registry's values win, a wrapper file
//! fills in what the registry leaves unset.
//!
//! Read here: `default_timeout` (the whole request's deadline), `max_retries` (attempts over a
//! plan, + 1), `[global.error_handling]` `retry_on_errors`, `retry_delay`, `backoff_factor`,
//! `max_retry_delay`, `[global.fallback] provider_chain`, `[global.limits]`, hot reload,
//! `cache_enabled` / `use_defaults_on_failure` (the last-good snapshot), `[global.cache]` (the
//! response cache), `function_calling_enabled` / `tool_selection_strategy`, and the checked
//! values of `enable_metrics`, `metrics_interval` and `[global.logging]`. Unknown keys in any of
//! these tables go to strict mode like every other file's (`raw::GlobalKeys` lists them).

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
    pub(super) reload_settle: Duration,
    pub(super) snapshot: crate::config::SnapshotPolicy,
    pub(super) cache: Option<crate::config::CacheSpec>,
    pub(super) tools: crate::config::ToolPolicy,
    pub(super) telemetry: crate::config::TelemetrySpec,
}

impl Loader<'_> {
    /// `tables`: `(file, [global] table)`, the registry's first.
    pub(super) fn global(
        &mut self,
        tables: &[(String, toml::Table)],
        providers: &[&str],
    ) -> Global {
        for (file, table) in tables {
            let mut unknown = Vec::new();
            let value = toml::Value::Table(table.clone());
            let _ = serde_ignored::deserialize(value, |path| {
                unknown.push(format!("global.{path}"));
            })
            .map(|_: crate::config::raw::GlobalKeys| ());
            for key in unknown {
                self.unknown.push((file.clone(), key));
            }
        }
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
        let flag = |cx: &mut Self, path: &[&str], default: bool| -> bool {
            match find(path) {
                None => default,
                Some((file, v)) => v.as_bool().unwrap_or_else(|| {
                    let key = format!("global.{}", path.join("."));
                    cx.issue(&file, key, "must be true or false");
                    default
                }),
            }
        };
        let choice = |cx: &mut Self, path: &[&str], options: &[&'static str]| {
            let (file, v) = find(path)?;
            let found = v.as_str().and_then(|s| options.iter().find(|o| **o == s));
            if found.is_none() {
                let key = format!("global.{}", path.join("."));
                cx.issue(&file, key, format!("must be one of {options:?}"));
            }
            found.copied()
        };
        let reload_settle =
            secs(self, &["reload_settle"], false).unwrap_or(crate::config::DEFAULT_RELOAD_SETTLE);
        let snapshot = crate::config::SnapshotPolicy {
            keep: flag(self, &["cache_enabled"], false),
            boot_from: flag(self, &["use_defaults_on_failure"], false),
        };
        let cache = flag(self, &["cache", "enabled"], false).then(|| {
            let max_size = match find(&["cache", "max_size"]) {
                None => 1000,
                Some((file, v)) => match v.as_integer().and_then(|n| u64::try_from(n).ok()) {
                    Some(n) if n > 0 => n,
                    _ => {
                        self.issue(&file, "global.cache.max_size", "must be a whole number ≥ 1");
                        1000
                    }
                },
            };
            let ttl = secs(self, &["cache", "ttl"], false).unwrap_or(Duration::from_secs(300));
            crate::config::CacheSpec { max_size, ttl }
        });
        let tools = crate::config::ToolPolicy {
            enabled: flag(self, &["function_calling_enabled"], true),
            selection: match choice(
                self,
                &["tool_selection_strategy"],
                &["auto", "manual", "priority"],
            ) {
                Some("manual") => crate::config::ToolSelection::Manual,
                Some("priority") => crate::config::ToolSelection::Priority,
                _ => crate::config::ToolSelection::Auto,
            },
        };
        let telemetry = crate::config::TelemetrySpec {
            metrics: flag(self, &["enable_metrics"], true),
            metrics_interval: secs(self, &["metrics_interval"], false)
                .unwrap_or(Duration::from_secs(60)),
            log_level: choice(
                self,
                &["logging", "level"],
                &["debug", "info", "warn", "error"],
            ),
            log_json: choice(self, &["logging", "format"], &["json", "text"]).map(|f| f == "json"),
            log_requests: flag(self, &["logging", "enable_request_logging"], true),
            log_responses: flag(self, &["logging", "enable_response_logging"], false),
        };
        Global {
            retry,
            request_timeout,
            provider_chain,
            max_attempts,
            queue,
            hot_reload,
            reload_settle,
            snapshot,
            cache,
            tools,
            telemetry,
        }
    }
}

impl Loader<'_> {
    /// Keep a pool's or group's `[*.metrics]` (checked) and `[*.metadata]` (as written).
    pub(super) fn section(
        &mut self,
        name: &str,
        kind: &'static str,
        file: &str,
        metrics: &crate::config::raw::Metrics,
        metadata: &toml::Table,
    ) {
        let interval_key = if kind == "pool" {
            "interval"
        } else {
            "collection_interval"
        };
        let interval = metrics.interval.or(metrics.collection_interval);
        let positive = |cx: &mut Self, v: Option<f64>, key: &str, default: f64| match v {
            None => default,
            Some(x) if x > 0.0 && x.is_finite() => x,
            Some(x) => {
                cx.issue(
                    file,
                    format!("{kind}.metrics.{key}"),
                    format!("must be a positive number of seconds, got {x}"),
                );
                default
            }
        };
        let metrics_interval = positive(self, interval, interval_key, 60.0);
        let metrics_retention =
            positive(self, metrics.retention_period, "retention_period", 86_400.0);
        let metadata = serde_json::to_value(metadata).unwrap_or(serde_json::Value::Null);
        self.sections.insert(
            name.to_owned(),
            crate::config::SectionInfo {
                kind,
                metrics: metrics.enabled.unwrap_or(true),
                metrics_interval,
                metrics_retention,
                metadata,
            },
        );
    }
}
