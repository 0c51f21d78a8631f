//! `[pool.health_check]` and `[task_group.circuit_breaker]` → policies, validated, then given
//! to each instance: an instance in several pools (groups) takes the strictest of them.

use std::time::Duration;

use super::Loader;
use crate::config::raw;
use crate::health::{BreakerPolicy, HealthPolicy, MAX_HALF_OPEN, Probe};

impl Loader<'_> {
    pub(super) fn health_policy(&mut self, h: &raw::HealthCheck, file: &str) -> HealthPolicy {
        let d = HealthPolicy::default();
        let key = |k: &str| format!("pool.health_check.{k}");
        let time = |cx: &mut Self, v: Option<f64>, k: &str, default: Duration| {
            cx.seconds(v, file, &key(k)).unwrap_or(default)
        };
        let interval = time(self, h.interval, "interval", d.interval);
        let timeout = time(self, h.timeout, "timeout", d.timeout.min(interval));
        let recovery_time = time(self, h.recovery_time, "recovery_time", d.recovery_time);
        let max_ejection_time = time(
            self,
            h.max_ejection_time,
            "max_ejection_time",
            recovery_time.saturating_mul(10),
        );
        let error_window = time(
            self,
            h.error_rate_window,
            "error_rate_window",
            d.error_window,
        );
        if error_window > Duration::from_secs(60) {
            self.issue(file, key("error_rate_window"), "must be at most 60 seconds");
        }
        if max_ejection_time < recovery_time {
            self.issue(
                file,
                key("max_ejection_time"),
                "must be at least recovery_time",
            );
        }
        let slow_start = match h.slow_start {
            Some(0.0) => Duration::ZERO,
            v => time(self, v, "slow_start", d.slow_start),
        };
        let failure_threshold = h.failure_threshold.unwrap_or(d.failure_threshold);
        if failure_threshold == 0 {
            self.issue(file, key("failure_threshold"), "must be greater than 0");
        }
        let error_rate = h.error_rate_threshold.unwrap_or(d.error_rate);
        if !(error_rate > 0.0 && error_rate <= 1.0) {
            self.issue(
                file,
                key("error_rate_threshold"),
                format!("must be a fraction in (0, 1], like 0.1 for 10 %; got {error_rate}"),
            );
        }
        let jitter = h.jitter.unwrap_or(d.jitter);
        if !(0.0..1.0).contains(&jitter) {
            self.issue(
                file,
                key("jitter"),
                format!("must be in [0, 1); got {jitter}"),
            );
        }
        let max_ejection_percent = h.max_ejection_percent.unwrap_or(d.max_ejection_percent);
        if max_ejection_percent > 100 {
            self.issue(file, key("max_ejection_percent"), "must be at most 100");
        }
        let probe = match h.probe.as_deref() {
            None | Some("models") => Probe::Models,
            Some("chat") => Probe::Chat,
            Some(other) => {
                self.issue(
                    file,
                    key("probe"),
                    format!("unknown probe {other:?}; expected \"models\" (free) or \"chat\" (one billed token)"),
                );
                Probe::Models
            }
        };
        HealthPolicy {
            probes: h.enabled.unwrap_or(true),
            interval,
            timeout,
            jitter,
            probe,
            failure_threshold: failure_threshold.max(1),
            error_rate,
            error_window,
            min_requests: h.min_requests.unwrap_or(d.min_requests),
            recovery_time,
            max_ejection_time: max_ejection_time.max(recovery_time),
            max_ejection_percent: max_ejection_percent.min(100),
            slow_start,
        }
    }

    pub(super) fn breaker_policy(&mut self, b: &raw::CircuitBreaker, file: &str) -> BreakerPolicy {
        let d = BreakerPolicy::default();
        let key = |k: &str| format!("task_group.circuit_breaker.{k}");
        let failure_threshold = b.failure_threshold.unwrap_or(d.failure_threshold);
        if failure_threshold == 0 {
            self.issue(file, key("failure_threshold"), "must be greater than 0");
        }
        let half_open_requests = b.half_open_requests.unwrap_or(d.half_open_requests);
        if half_open_requests == 0 || half_open_requests > MAX_HALF_OPEN {
            self.issue(
                file,
                key("half_open_requests"),
                format!("must be between 1 and {MAX_HALF_OPEN}"),
            );
        }
        let recovery_time = self
            .seconds(b.recovery_time, file, &key("recovery_time"))
            .unwrap_or(d.recovery_time);
        BreakerPolicy {
            enabled: b.enabled.unwrap_or(true),
            failure_threshold: failure_threshold.max(1),
            recovery_time,
            half_open_requests: half_open_requests.clamp(1, MAX_HALF_OPEN),
        }
    }
}

/// Give each listed instance `policy`, or the stricter of it and what it already has.
pub(super) fn merge<P: Copy>(
    slots: &mut [Option<P>],
    members: impl IntoIterator<Item = usize>,
    policy: P,
    strictest: fn(P, P) -> P,
) {
    for i in members {
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(slot.map_or(policy, |have| strictest(have, policy)));
        }
    }
}
