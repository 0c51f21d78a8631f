//! Provider adapters: how to speak to one kind of upstream API.
//!
//! Adapters are sans-I/O: they build the upstream request and classify what came back; the one
//! place that does network I/O is `upstream`. Members:
//! - `openai`: any OpenAI-compatible server (OpenAI, DeepSeek, Moonshot, Qwen compatible mode,
//!   Ollama `/v1`, vLLM, llama.cpp) and the built-in mock.

pub mod anthropic;
pub mod gemini;
mod openai;

use http::{HeaderMap, StatusCode};

pub use openai::OpenAi;

use crate::config::InstanceSpec;

/// Which OpenAI API operation a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    Completions,
    Embeddings,
    /// `GET /models`: what health probes ask by default.
    Models,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Models => "models",
        }
    }
}

/// Why an attempt failed, in the classes health checks and retries reason about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// No connection (refused, reset, DNS): the instance is down.
    Connect,
    /// No response head, or the stream stalled, within the timeout.
    Timeout,
    /// 429: the provider is rate limiting us.
    RateLimited,
    /// 401/403: our credential for this instance is wrong.
    Auth,
    /// 5xx or another status the client did not cause.
    Server,
    /// A 2xx whose body is not what the API promises.
    Malformed,
    /// A 4xx caused by the client's own request; passed back, never retried elsewhere.
    Client,
}

impl ErrorClass {
    /// Whether a failure of this class says the instance is broken: not a client's own
    /// mistake, and not a 429 (rate limited means busy, handled by a cool-down).
    pub fn counts_against_instance(self) -> bool {
        !matches!(self, Self::Client | Self::RateLimited)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate_limited",
            Self::Auth => "auth",
            Self::Server => "server",
            Self::Malformed => "malformed",
            Self::Client => "client",
        }
    }
}

/// Translates between the OpenAI-shaped API switchyard serves and one upstream API. URLs and
/// headers are computed once per instance when a config is loaded, not per request.
pub trait Adapter: Send + Sync {
    /// The full upstream URL of `op` on an instance whose base URL is `base_url`.
    fn url(&self, base_url: &str, instance: &InstanceSpec, op: Operation) -> String;

    /// Headers sent with every request to `instance`: auth, content type, configured extras.
    fn headers(&self, instance: &InstanceSpec) -> HeaderMap;

    /// Classify a non-2xx status.
    fn classify(&self, status: StatusCode) -> ErrorClass {
        match status.as_u16() {
            401 | 403 => ErrorClass::Auth,
            408 => ErrorClass::Timeout,
            429 => ErrorClass::RateLimited,
            400..=499 => ErrorClass::Client,
            _ => ErrorClass::Server,
        }
    }
}
