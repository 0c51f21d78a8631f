//! What the operator configured: `[pool.health_check]` and `[task_group.circuit_breaker]`
//! (seed 004), resolved per instance once per config load.

use std::time::Duration;

/// How an instance is checked, ejected and brought back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthPolicy {
    /// Active probes on or off (passive checks always run).
    pub probes: bool,
    /// Between two probes of one instance.
    pub interval: Duration,
    /// A probe slower than this fails.
    pub timeout: Duration,
    /// Each interval is stretched or shrunk by up to this fraction at random, so the probes
    /// of many instances do not align.
    pub jitter: f64,
    pub probe: Probe,
    /// Consecutive failures (real traffic, or probes) that eject.
    pub failure_threshold: u32,
    /// Error rate over `error_window` that ejects, once `min_requests` were seen.
    pub error_rate: f64,
    pub error_window: Duration,
    pub min_requests: u64,
    /// First ejection's length (Envoy's base_ejection_time); doubles for each repeat.
    pub recovery_time: Duration,
    /// Longest ejection; also how long an instance must stay clean for its backoff to reset.
    pub max_ejection_time: Duration,
    /// At most this share of a tier is ejected at once (at least one instance may always be).
    pub max_ejection_percent: u32,
    /// A recovered or newly registered instance ramps up to its full share over this long.
    pub slow_start: Duration,
}

/// What a probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `GET /models`: free at every provider.
    Models,
    /// A one-token chat completion: exercises the model itself, and is billed.
    Chat,
}

impl Probe {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Models => "models",
            Self::Chat => "chat",
        }
    }
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            probes: true,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            jitter: 0.1,
            probe: Probe::Models,
            failure_threshold: 3,
            error_rate: 0.1,
            error_window: Duration::from_secs(60),
            min_requests: 20,
            recovery_time: Duration::from_secs(60),
            max_ejection_time: Duration::from_secs(600),
            max_ejection_percent: 50,
            slow_start: Duration::from_secs(30),
        }
    }
}

impl HealthPolicy {
    /// An instance in several pools is checked as the strictest of them asks: probes if any
    /// wants them, the shortest interval and timeout, the lowest thresholds, the longest
    /// ejections and slow start, the lowest ejection cap, a chat probe over a models probe.
    pub fn strictest(self, o: Self) -> Self {
        Self {
            probes: self.probes || o.probes,
            interval: self.interval.min(o.interval),
            timeout: self.timeout.min(o.timeout),
            jitter: self.jitter.max(o.jitter),
            probe: if self.probe == Probe::Chat || o.probe == Probe::Chat {
                Probe::Chat
            } else {
                Probe::Models
            },
            failure_threshold: self.failure_threshold.min(o.failure_threshold),
            error_rate: self.error_rate.min(o.error_rate),
            error_window: self.error_window.max(o.error_window),
            min_requests: self.min_requests.min(o.min_requests),
            recovery_time: self.recovery_time.max(o.recovery_time),
            max_ejection_time: self.max_ejection_time.max(o.max_ejection_time),
            max_ejection_percent: self.max_ejection_percent.min(o.max_ejection_percent),
            slow_start: self.slow_start.max(o.slow_start),
        }
    }

    /// Length of ejection number `n` (1 = first): `recovery_time × 2^(n-1)`, capped.
    pub fn ejection_time(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(20);
        self.recovery_time
            .saturating_mul(factor)
            .min(self.max_ejection_time.max(self.recovery_time))
    }
}

/// A circuit breaker's settings (per instance, and per task group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub enabled: bool,
    /// Consecutive failures that open it.
    pub failure_threshold: u32,
    /// How long it stays open before admitting trial requests.
    pub recovery_time: Duration,
    /// Trial requests admitted while half-open; all must succeed to close it.
    pub half_open_requests: u32,
}

/// Most trial requests a half-open breaker can count (16 bits of its state word).
pub const MAX_HALF_OPEN: u32 = 0xFFFF;

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_threshold: 5,
            recovery_time: Duration::from_secs(60),
            half_open_requests: 1,
        }
    }
}

impl BreakerPolicy {
    /// An instance in several task groups opens as early as the strictest asks.
    pub fn strictest(self, o: Self) -> Self {
        Self {
            enabled: self.enabled || o.enabled,
            failure_threshold: self.failure_threshold.min(o.failure_threshold),
            recovery_time: self.recovery_time.max(o.recovery_time),
            half_open_requests: self.half_open_requests.max(o.half_open_requests),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejection_time_doubles_and_is_capped() {
        let p = HealthPolicy {
            recovery_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(50),
            ..HealthPolicy::default()
        };
        let secs: Vec<u64> = (1..=5).map(|n| p.ejection_time(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 50, 50]);
        assert_eq!(p.ejection_time(200).as_secs(), 50);
    }

    #[test]
    fn strictest_takes_the_tighter_setting_of_each_field() {
        let a = HealthPolicy {
            interval: Duration::from_secs(10),
            failure_threshold: 5,
            ..HealthPolicy::default()
        };
        let b = HealthPolicy {
            interval: Duration::from_secs(60),
            failure_threshold: 2,
            probe: Probe::Chat,
            ..HealthPolicy::default()
        };
        let s = a.strictest(b);
        assert_eq!(s.interval, Duration::from_secs(10));
        assert_eq!(s.failure_threshold, 2);
        assert_eq!(s.probe, Probe::Chat);
    }
}
