//! Provider adapters: how to speak to one kind of upstream API.
//!
//! Adapters are sans-I/O: they build the upstream request, translate what came back into the
//! OpenAI shape switchyard serves, and classify failures; the one place that does network I/O
//! is `upstream`. Members:
//! - `openai`: any OpenAI-compatible server and the built-in mock; `presets` names the
//!   well-known ones (deepseek, moonshot, qwen, ernie, ollama, vllm, llamacpp, ...).
//! - `azure`: Azure OpenAI (deployment URLs, `api-version`, `api-key` header).
//! - `anthropic`: the native Messages API (and the `/v1/messages` ingress direction).
//! - `gemini`: the native `generateContent` API.
//! - `sse`: the Server-Sent Events parser the native adapters share.

pub mod anthropic;
mod azure;
pub mod gemini;
mod openai;
pub mod presets;
pub mod sse;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

pub use azure::{Azure, DEFAULT_API_VERSION as AZURE_API_VERSION};
pub use openai::OpenAi;

use crate::config::InstanceSpec;
use crate::request::ClientRequest;
use crate::route::Defaults;

/// The wire API an instance speaks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Api {
    /// OpenAI's own API, any compatible server, the mock.
    #[default]
    OpenAi,
    Azure {
        api_version: String,
    },
    Anthropic,
    Gemini,
}

impl Api {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Azure { .. } => "azure",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
        }
    }

    /// Whether replies are translated (not OpenAI's own shape on the wire).
    pub fn is_native(&self) -> bool {
        matches!(self, Self::Anthropic | Self::Gemini)
    }

    /// The adapter for this API (adapters hold no state: one each for the process).
    pub fn adapter(&self) -> Arc<dyn Adapter> {
        use std::sync::OnceLock;
        static OPENAI: OnceLock<Arc<dyn Adapter>> = OnceLock::new();
        static ANTHROPIC: OnceLock<Arc<dyn Adapter>> = OnceLock::new();
        static GEMINI: OnceLock<Arc<dyn Adapter>> = OnceLock::new();
        static AZURE: OnceLock<Arc<dyn Adapter>> = OnceLock::new();
        let (cell, make): (_, fn() -> Arc<dyn Adapter>) = match self {
            Self::OpenAi => (&OPENAI, || Arc::new(OpenAi)),
            Self::Azure { .. } => (&AZURE, || Arc::new(Azure)),
            Self::Anthropic => (&ANTHROPIC, || Arc::new(anthropic::Anthropic)),
            Self::Gemini => (&GEMINI, || Arc::new(gemini::Gemini)),
        };
        Arc::clone(cell.get_or_init(make))
    }
}

/// Why a request cannot be sent to an instance of some API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request itself is wrong for the API (400 to the client, as an upstream would say).
    Client(String),
    /// The API has no such operation (another instance may serve it).
    Unsupported(String),
}

/// Turns a native stream's events into OpenAI `chat.completion.chunk` payloads.
pub trait StreamDecode: Send {
    /// One upstream event (its `event:` name and `data:`): zero or more chunks, in order.
    fn event(
        &mut self,
        event: Option<&str>,
        data: &[u8],
    ) -> Result<Vec<serde_json::Value>, (ErrorClass, String)>;
    /// The upstream ended: any chunks still owed (a usage chunk).
    fn end(&mut self) -> Vec<serde_json::Value> {
        Vec::new()
    }
}

/// The headers every adapter sends: JSON content type, the key as `auth` (header name, and
/// the value built from the key), then the configured extras (which may override either).
pub(crate) fn json_headers(
    instance: &InstanceSpec,
    auth: http::HeaderName,
    value: impl Fn(&str) -> String,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(3 + instance.headers.len());
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Some(key) = &instance.api_key {
        if let Ok(mut v) = http::HeaderValue::try_from(value(key.expose())) {
            v.set_sensitive(true);
            headers.insert(auth, v);
        }
    }
    for (name, v) in &instance.headers {
        headers.insert(name.clone(), v.clone());
    }
    headers
}

/// `{"error": {"message", "type", "code": null}}`: what an OpenAI client expects.
pub(crate) fn openai_error(message: &str, kind: &str) -> Bytes {
    let body = serde_json::json!({"error": {"message": message, "type": kind, "code": null}});
    Bytes::from(body.to_string())
}

/// Seconds since the Unix epoch: the `created` of translated replies.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

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

    /// The URL of a streamed chat request, when it differs from [`Adapter::url`]'s.
    fn stream_url(&self, _base_url: &str, _instance: &InstanceSpec) -> Option<String> {
        None
    }

    /// The upstream body for `req` (model and echelon `defaults` applied), and a URL that
    /// replaces the precomputed one when this request needs its own.
    fn encode(
        &self,
        req: &ClientRequest,
        instance: &InstanceSpec,
        defaults: &Defaults,
    ) -> Result<(Bytes, Option<String>), Refusal> {
        Ok((req.body_with(&instance.upstream_model, defaults), None))
    }

    /// A whole 2xx reply in OpenAI's shape (`None`: it already is).
    fn decode(
        &self,
        _req: &ClientRequest,
        _instance: &InstanceSpec,
        _body: &[u8],
    ) -> Result<Option<Bytes>, (ErrorClass, String)> {
        Ok(None)
    }

    /// A translator for a streamed reply (`None`: it is OpenAI SSE already).
    fn stream_decoder(&self, _instance: &InstanceSpec) -> Option<Box<dyn StreamDecode>> {
        None
    }

    /// Classify a non-2xx reply from its status and body.
    fn classify_reply(&self, status: StatusCode, _body: &[u8]) -> ErrorClass {
        self.classify(status)
    }

    /// A client error's body in OpenAI's `{"error": {...}}` shape (`None`: it already is).
    fn client_error(&self, _status: StatusCode, _body: &[u8]) -> Option<Bytes> {
        None
    }

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
