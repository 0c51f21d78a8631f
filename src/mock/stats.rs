//! Request counters: [`MockStats`] (atomics shared by the handlers), its plain copy
//! [`StatsSnapshot`], and the drop guard that keeps `in_flight` honest.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::request::Endpoint;

/// Live counters of one mock server. Only API requests (`/v1/*`, `/v1beta/*`) are counted.
#[derive(Debug, Default)]
pub struct MockStats {
    requests: AtomicU64,
    chat: AtomicU64,
    completions: AtomicU64,
    embeddings: AtomicU64,
    models: AtomicU64,
    failed: AtomicU64,
    streams_started: AtomicU64,
    streams_completed: AtomicU64,
    chunks_sent: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    chat_in_flight: AtomicU64,
    max_chat_in_flight: AtomicU64,
}

/// A copy of [`MockStats`] at one moment.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct StatsSnapshot {
    /// API requests received (all endpoints, whatever their outcome).
    pub requests: u64,
    /// Requests for a chat reply: `POST /v1/chat/completions`, `POST /v1/messages`,
    /// `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`.
    pub chat: u64,
    /// Requests to `POST /v1/completions`.
    pub completions: u64,
    /// Requests for embeddings: `POST /v1/embeddings`, Gemini's `:embedContent` and
    /// `:batchEmbedContents`.
    pub embeddings: u64,
    /// Model lists: `GET /v1/models`, `GET /v1beta/models` and `GET /v1beta/models/{model}`.
    pub models: u64,
    /// Requests answered with an injected failure (`status`, `fail_rate`, a stream fault) or
    /// dropped by `die_after`.
    pub failed: u64,
    /// Streamed replies begun.
    pub streams_started: u64,
    /// Streamed replies that reached their end (`data: [DONE]`, `message_stop`, Gemini's last
    /// event).
    pub streams_completed: u64,
    /// Content chunks produced in streamed replies (role, finish and usage chunks not counted;
    /// for Anthropic, `content_block_delta`s).
    pub chunks_sent: u64,
    /// API requests being handled now, open streams included.
    pub in_flight: u64,
    /// The most API requests in flight at once so far.
    pub max_in_flight: u64,
    /// The most chat requests (the requests [`StatsSnapshot::chat`] counts) in flight at once
    /// so far: what a concurrency limit bounds, whatever else (a `/v1/models` probe, from any
    /// client) reaches the mock meanwhile.
    pub max_chat_in_flight: u64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl MockStats {
    /// A copy of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: get(&self.requests),
            chat: get(&self.chat),
            completions: get(&self.completions),
            embeddings: get(&self.embeddings),
            models: get(&self.models),
            failed: get(&self.failed),
            streams_started: get(&self.streams_started),
            streams_completed: get(&self.streams_completed),
            chunks_sent: get(&self.chunks_sent),
            in_flight: get(&self.in_flight),
            max_in_flight: get(&self.max_in_flight),
            max_chat_in_flight: get(&self.max_chat_in_flight),
        }
    }

    /// Counts one API request; returns its 1-based number.
    pub(crate) fn count_request(&self, endpoint: Endpoint) -> u64 {
        bump(match endpoint {
            Endpoint::Chat => &self.chat,
            Endpoint::Completions => &self.completions,
            Endpoint::Embeddings => &self.embeddings,
            Endpoint::Models => &self.models,
        });
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn count_failed(&self) {
        bump(&self.failed);
    }

    pub(crate) fn count_stream_started(&self) {
        bump(&self.streams_started);
    }

    pub(crate) fn count_stream_completed(&self) {
        bump(&self.streams_completed);
    }

    pub(crate) fn count_chunk(&self) {
        bump(&self.chunks_sent);
    }

    /// Marks one request to `endpoint` in flight until the returned guard is dropped.
    pub(crate) fn in_flight(self: &Arc<Self>, endpoint: Endpoint) -> InFlight {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        let chat = endpoint == Endpoint::Chat;
        if chat {
            let now = self.chat_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            self.max_chat_in_flight.fetch_max(now, Ordering::Relaxed);
        }
        InFlight {
            stats: Arc::clone(self),
            chat,
        }
    }
}

/// Holds one unit of `in_flight` (and of the chat count, for a chat request); dropping it
/// (reply done, stream ended, client gone) releases it.
#[derive(Debug)]
pub(crate) struct InFlight {
    stats: Arc<MockStats>,
    chat: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.chat {
            self.stats.chat_in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_guard() {
        let stats = Arc::new(MockStats::default());
        assert_eq!(stats.count_request(Endpoint::Chat), 1);
        assert_eq!(stats.count_request(Endpoint::Models), 2);
        stats.count_failed();
        let guard = stats.in_flight(Endpoint::Chat);
        let second = stats.in_flight(Endpoint::Models);
        assert_eq!(stats.snapshot().in_flight, 2);
        assert_eq!(stats.snapshot().max_in_flight, 2);
        assert_eq!(stats.snapshot().max_chat_in_flight, 1);
        drop(guard);
        drop(second);
        let s = stats.snapshot();
        assert_eq!(
            s,
            StatsSnapshot {
                requests: 2,
                chat: 1,
                models: 1,
                failed: 1,
                max_in_flight: 2,
                max_chat_in_flight: 1,
                ..StatsSnapshot::default()
            }
        );
    }
}
