//! When a failed attempt may be followed by another, and how long to wait first
//! (seed 004's `[global.error_handling]`, seed 001's FailoverManager).
//!
//! - Only the configured classes go on (`retry_on_errors`: `timeout`, `rate_limit`,
//!   `network_error`, `server_error`); a 401/403 from an instance (its key is bad) always
//!   moves on, and a client's own 4xx never does.
//! - Connect errors and 401/403 move on at once. Timeouts, 5xx, malformed replies and 429s
//!   wait first: `retry_delay × backoff_factor^(k-1)`, at most `max_retry_delay`, with jitter
//!   (a uniform draw from the upper half), for the k-th such wait of the request.
//! - Nothing waits past the request's deadline.

use std::time::Duration;

use crate::provider::ErrorClass;

/// The `retry_on_errors` names and the classes each covers.
pub const RETRY_CLASSES: &[(&str, &[ErrorClass])] = &[
    ("timeout", &[ErrorClass::Timeout]),
    ("rate_limit", &[ErrorClass::RateLimited]),
    ("network_error", &[ErrorClass::Connect]),
    ("server_error", &[ErrorClass::Server, ErrorClass::Malformed]),
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Bit per `ErrorClass` (see [`bit`]) that may be followed by another attempt.
    retry_on: u8,
    pub retry_delay: Duration,
    pub backoff_factor: f64,
    pub max_retry_delay: Duration,
}

fn bit(class: ErrorClass) -> u8 {
    1 << match class {
        ErrorClass::Connect => 0,
        ErrorClass::Timeout => 1,
        ErrorClass::RateLimited => 2,
        ErrorClass::Auth => 3,
        ErrorClass::Server => 4,
        ErrorClass::Malformed => 5,
        ErrorClass::Client => 6,
    }
}

impl Default for RetryPolicy {
    /// Every class retried, no waiting: failover in milliseconds.
    fn default() -> Self {
        Self::new(RETRY_CLASSES.iter().map(|(n, _)| *n)).unwrap_or(Self {
            retry_on: 0,
            retry_delay: Duration::ZERO,
            backoff_factor: 2.0,
            max_retry_delay: Duration::from_secs(10),
        })
    }
}

impl RetryPolicy {
    /// A policy retrying the named classes (`retry_on_errors`), no delay yet; `Err(name)` for
    /// a name that is not one of [`RETRY_CLASSES`].
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut retry_on = bit(ErrorClass::Auth);
        for name in names {
            let Some((_, classes)) = RETRY_CLASSES.iter().find(|(n, _)| *n == name) else {
                return Err(name.to_owned());
            };
            for &c in *classes {
                retry_on |= bit(c);
            }
        }
        Ok(Self {
            retry_on,
            retry_delay: Duration::ZERO,
            backoff_factor: 2.0,
            max_retry_delay: Duration::from_secs(10),
        })
    }

    /// May a failure of `class` be followed by another attempt?
    pub fn goes_on(&self, class: ErrorClass) -> bool {
        class != ErrorClass::Client && self.retry_on & bit(class) != 0
    }

    /// The wait before the next attempt after a failure of `class`, as the `k`-th wait of
    /// the request (1-based), with `base` overriding `retry_delay` (a task group's own);
    /// `roll` in [0, 1) is the jitter draw.
    pub fn delay(&self, class: ErrorClass, k: u32, base: Option<Duration>, roll: f64) -> Duration {
        if matches!(class, ErrorClass::Connect | ErrorClass::Auth) {
            return Duration::ZERO;
        }
        let base = base.unwrap_or(self.retry_delay);
        if base.is_zero() || k == 0 {
            return Duration::ZERO;
        }
        let exp = i32::try_from(k - 1).unwrap_or(i32::MAX).min(64);
        let full = (base.as_secs_f64() * self.backoff_factor.powi(exp))
            .min(self.max_retry_delay.as_secs_f64());
        Duration::from_secs_f64(full * (0.5 + 0.5 * roll.clamp(0.0, 1.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_classes_go_on_and_auth_always_does() {
        let p = RetryPolicy::new(["timeout", "network_error"]).unwrap_or_default();
        assert!(p.goes_on(ErrorClass::Timeout) && p.goes_on(ErrorClass::Connect));
        assert!(
            p.goes_on(ErrorClass::Auth),
            "a bad key is the instance's problem"
        );
        assert!(!p.goes_on(ErrorClass::Server) && !p.goes_on(ErrorClass::RateLimited));
        assert!(!p.goes_on(ErrorClass::Client));
        assert!(!RetryPolicy::default().goes_on(ErrorClass::Client));
        assert!(RetryPolicy::default().goes_on(ErrorClass::Malformed));
        assert_eq!(
            RetryPolicy::new(["timeout", "oops"]),
            Err("oops".to_owned())
        );
    }

    #[test]
    fn backoff_grows_by_the_factor_up_to_the_cap_within_its_jitter() {
        let p = RetryPolicy {
            retry_delay: Duration::from_millis(100),
            backoff_factor: 2.0,
            max_retry_delay: Duration::from_millis(500),
            ..RetryPolicy::default()
        };
        let ms = |k, roll| p.delay(ErrorClass::Server, k, None, roll).as_millis();
        // Full delays 100, 200, 400, 500 (capped), 500; jitter keeps the upper half.
        assert_eq!(
            [ms(1, 1.0), ms(2, 1.0), ms(3, 1.0), ms(4, 1.0), ms(9, 1.0)],
            [100, 200, 400, 500, 500]
        );
        assert_eq!([ms(1, 0.0), ms(3, 0.0)], [50, 200]);
        // Connect errors and bad keys move on at once.
        assert!(p.delay(ErrorClass::Connect, 3, None, 1.0).is_zero());
        assert!(p.delay(ErrorClass::Auth, 3, None, 1.0).is_zero());
        // A group's retry_delay replaces the global one.
        let own = p.delay(ErrorClass::Timeout, 1, Some(Duration::from_millis(40)), 1.0);
        assert_eq!(own, Duration::from_millis(40));
        assert!(
            RetryPolicy::default()
                .delay(ErrorClass::Server, 1, None, 1.0)
                .is_zero()
        );
    }
}
