//! [`Behavior`]: the knobs that say how a mock instance answers (latency, injected failures,
//! streaming shape and pace), its validation, and the sanitised values the handlers read.

use std::time::Duration;

/// Instance label used when `name` is empty.
pub(crate) const DEFAULT_NAME: &str = "mock";
/// Content chunks in a reply when `stream_chunks` is 0.
pub(crate) const DEFAULT_STREAM_CHUNKS: u32 = 8;
/// Cap on content chunks, so a typo cannot ask for a reply of billions of words.
pub(crate) const MAX_STREAM_CHUNKS: u32 = 100_000;

/// How a stream goes wrong ([`Behavior::stream_fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamFault {
    /// Drop the connection after this many content chunks.
    Drop(u32),
    /// Go silent after this many content chunks.
    Stall(u32),
    /// An error event instead of the first content chunk.
    ErrorEvent,
}

/// What the mock does. Every field has a default, so `{}` (or an empty TOML table) is valid;
/// unknown fields are rejected.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Behavior {
    /// Instance label echoed in replies and in header `x-mock-name`; default "mock".
    pub name: String,
    /// Delay before the response head (and so before the first stream chunk).
    pub latency_ms: u64,
    /// Extra uniform random delay in `0..=jitter_ms` (seeded rng).
    pub jitter_ms: u64,
    /// Probability in `0..=1` that a request fails with 500 (seeded rng).
    pub fail_rate: f64,
    /// If set, every API request gets this status with an error body in its dialect (529 is
    /// Anthropic's `overloaded_error`, 429 Gemini's `RESOURCE_EXHAUSTED`, ...).
    pub status: Option<u16>,
    /// Sent as `Retry-After` on 429 replies.
    pub retry_after_s: Option<u64>,
    /// Sent as `x-ratelimit-remaining-requests` (with `x-ratelimit-reset-requests: 2s`) on
    /// successful replies, like OpenAI's headroom headers; as
    /// `anthropic-ratelimit-requests-remaining` on Anthropic replies; not at all on Gemini's.
    pub ratelimit_remaining: Option<u64>,
    /// Content chunks (= completion tokens) in a reply; 0 means 8.
    pub stream_chunks: u32,
    /// If set, stream content chunks are paced at this many per second.
    pub tokens_per_s: Option<f64>,
    /// Accept requests but never answer them (until the server stops).
    pub hang: bool,
    /// Answer 200 with a body that is not JSON (nor SSE, for streams).
    pub garbage: bool,
    /// After this many API requests, stop serving: close the listener and drop connections.
    pub die_after: Option<u64>,
    /// Streams send the role chunk (Anthropic: `message_start`; Gemini: nothing) and this many
    /// content chunks, then drop the connection (no `[DONE]`). 0: the role chunk only.
    pub stream_fail_after: Option<u32>,
    /// Streams send the role chunk and this many content chunks, then send nothing more until
    /// the mock stops. 0: the role chunk only.
    pub stream_stall_after: Option<u32>,
    /// Streams send the role chunk, then an error event (`data: {"error": ...}`; Anthropic:
    /// `event: error` with an `overloaded_error`; Gemini: a 503 `UNAVAILABLE` error), then end.
    pub stream_error_event: bool,
    /// OpenAI stream content chunks carry `"sent_us"`: the wall clock (µs since the Unix
    /// epoch) when the mock wrote them, so a client on the same machine can measure how long
    /// each chunk took to reach it (the benchmarks' added latency per chunk).
    pub stamp_chunks: bool,
    /// Seed for the jitter and fail decisions.
    pub seed: u64,
}

impl Default for Behavior {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_owned(),
            latency_ms: 0,
            jitter_ms: 0,
            fail_rate: 0.0,
            status: None,
            retry_after_s: None,
            ratelimit_remaining: None,
            stream_chunks: 0,
            tokens_per_s: None,
            hang: false,
            garbage: false,
            die_after: None,
            stream_fail_after: None,
            stream_stall_after: None,
            stream_error_event: false,
            stamp_chunks: false,
            seed: 0,
        }
    }
}

impl Behavior {
    /// Checks the values a handler cannot use as given. `PUT /mock/behavior` and the CLI reject
    /// what fails here; a behaviour set in-process is used anyway, with bad values sanitised.
    pub fn validate(&self) -> Result<(), String> {
        if http::HeaderValue::from_str(&self.name).is_err() {
            return Err(format!("name {:?} is not a valid header value", self.name));
        }
        if !(0.0..=1.0).contains(&self.fail_rate) {
            return Err(format!("fail_rate {} is not in 0..=1", self.fail_rate));
        }
        if let Some(code) = self.status
            && !(200..=599).contains(&code)
        {
            return Err(format!("status {code} is not in 200..=599"));
        }
        if let Some(rate) = self.tokens_per_s
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(format!("tokens_per_s {rate} is not a positive number"));
        }
        if self.stream_chunks > MAX_STREAM_CHUNKS {
            return Err(format!(
                "stream_chunks {} is over {MAX_STREAM_CHUNKS}",
                self.stream_chunks
            ));
        }
        for (key, n) in [
            ("stream_fail_after", self.stream_fail_after),
            ("stream_stall_after", self.stream_stall_after),
        ] {
            if let Some(n) = n
                && n > MAX_STREAM_CHUNKS
            {
                return Err(format!("{key} {n} is over {MAX_STREAM_CHUNKS}"));
            }
        }
        let faults = [
            self.stream_fail_after.is_some(),
            self.stream_stall_after.is_some(),
            self.stream_error_event,
        ];
        if faults.iter().filter(|&&f| f).count() > 1 {
            return Err(
                "at most one of stream_fail_after, stream_stall_after, stream_error_event".into(),
            );
        }
        Ok(())
    }

    /// The stream fault asked for; if several are set, the error event, then the drop.
    pub(crate) fn stream_fault(&self) -> Option<StreamFault> {
        if self.stream_error_event {
            return Some(StreamFault::ErrorEvent);
        }
        self.stream_fail_after
            .map(StreamFault::Drop)
            .or(self.stream_stall_after.map(StreamFault::Stall))
    }

    /// The instance label: `name`, or "mock" when empty.
    pub(crate) fn label(&self) -> &str {
        if self.name.is_empty() {
            DEFAULT_NAME
        } else {
            &self.name
        }
    }

    /// Content chunks per reply: `stream_chunks`, 0 meaning 8, capped.
    pub(crate) fn chunks(&self) -> u32 {
        match self.stream_chunks {
            0 => DEFAULT_STREAM_CHUNKS,
            n => n.min(MAX_STREAM_CHUNKS),
        }
    }

    /// Pause before each stream content chunk, if paced.
    pub(crate) fn chunk_interval(&self) -> Option<Duration> {
        let rate = self.tokens_per_s?;
        if !(rate.is_finite() && rate > 0.0) {
            return None;
        }
        Duration::try_from_secs_f64(1.0 / rate).ok()
    }

    /// The fixed part of the delay before the response head.
    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }

    /// `fail_rate` clamped to `0..=1` (NaN counts as 0).
    pub(crate) fn fail_probability(&self) -> f64 {
        if self.fail_rate.is_nan() {
            0.0
        } else {
            self.fail_rate.clamp(0.0, 1.0)
        }
    }

    /// The injected status, or 500 when it is not one a server can send as a final reply.
    pub(crate) fn injected_status(&self) -> Option<http::StatusCode> {
        let code = self.status?;
        Some(
            http::StatusCode::from_u16(code)
                .ok()
                .filter(|s| (200..=599).contains(&s.as_u16()))
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_gives_defaults() {
        let b: Behavior = serde_json::from_str("{}").unwrap();
        assert_eq!(b, Behavior::default());
        assert_eq!(b.name, "mock");
        assert_eq!(b.chunks(), 8);
        assert!(b.validate().is_ok());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<Behavior>(r#"{"latency":5}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn partial_object_keeps_other_defaults() {
        let b: Behavior = serde_json::from_str(r#"{"latency_ms":40,"fail_rate":0.1}"#).unwrap();
        assert_eq!(b.latency_ms, 40);
        assert_eq!(b.fail_rate, 0.1);
        assert_eq!(b.name, "mock");
        let back: Behavior = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn validation_and_sanitising() {
        let bad = |b: Behavior| b.validate().unwrap_err();
        bad(Behavior {
            fail_rate: 1.5,
            ..Behavior::default()
        });
        bad(Behavior {
            status: Some(99),
            ..Behavior::default()
        });
        bad(Behavior {
            tokens_per_s: Some(0.0),
            ..Behavior::default()
        });
        bad(Behavior {
            name: "a\nb".into(),
            ..Behavior::default()
        });
        bad(Behavior {
            stream_fail_after: Some(MAX_STREAM_CHUNKS + 1),
            ..Behavior::default()
        });
        let both = Behavior {
            stream_fail_after: Some(1),
            stream_error_event: true,
            ..Behavior::default()
        };
        assert!(bad(both.clone()).contains("at most one"));
        assert_eq!(both.stream_fault(), Some(StreamFault::ErrorEvent));
        assert_eq!(Behavior::default().stream_fault(), None);
        let stall = Behavior {
            stream_stall_after: Some(0),
            ..Behavior::default()
        };
        assert_eq!(stall.stream_fault(), Some(StreamFault::Stall(0)));
        let b = Behavior {
            name: String::new(),
            fail_rate: f64::NAN,
            status: Some(42),
            tokens_per_s: Some(-1.0),
            stream_chunks: u32::MAX,
            ..Behavior::default()
        };
        assert_eq!(b.label(), "mock");
        assert_eq!(b.fail_probability(), 0.0);
        assert_eq!(
            b.injected_status(),
            Some(http::StatusCode::INTERNAL_SERVER_ERROR)
        );
        assert_eq!(b.chunk_interval(), None);
        assert_eq!(b.chunks(), MAX_STREAM_CHUNKS);
        let paced = Behavior {
            tokens_per_s: Some(5.0),
            ..Behavior::default()
        };
        assert_eq!(paced.chunk_interval(), Some(Duration::from_millis(200)));
    }
}
