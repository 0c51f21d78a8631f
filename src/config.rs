//! Configuration: the TOML tree of seed 004 (`_registry.toml`, `providers/`, `pools/`,
//! `task-groups/`, `wrappers/`) loaded into one validated, fully resolved [`Config`].
//!
//! - `raw`: serde mirrors of each file, syntax only.
//! - `env`: `${VAR:default}` injection into string values.
//! - `source`: a directory on disk, or the demo tree embedded in the binary.
//! - `resolve`: raw → [`Config`]; every reference resolved, every problem reported as
//!   `file:key: reason`, all of them at once.
//!
//! A [`Config`] cannot hold a dangling reference: routes point at instances by index.

mod env;
mod inherit;
mod lastgood;
mod locate;
mod overlay;
pub(crate) mod raw;
mod resolve;
mod source;
mod yaml;

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

pub use lastgood::LastGood;
pub use overlay::{ADMIN, NewInstance, Overlay};
pub use source::{CapturedSource, DEMO, DirSource, EmbeddedSource, MemorySource, Source};

use crate::balance::{ScoreWeights, StrategyKind};
use crate::health::{BreakerPolicy, HealthPolicy};
use crate::limit::LimitSpec;
use crate::mock::Behavior;
use crate::retry::RetryPolicy;
use crate::route::{Defaults, Rotate, StepKind};

/// A validated configuration. Built once per load; never mutated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from, for logs.
    pub origin: String,
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// `[server] header_timeout`: a client's request headers (HTTP/1), and an idle keep-alive
    /// connection's next request, must arrive within this; else the connection is closed.
    /// Read when `serve` starts (a reload does not change it).
    pub header_timeout: Duration,
    /// `[server] body_timeout`: the whole request body must arrive within this once the
    /// headers are in; else 408.
    pub body_timeout: Duration,
    /// Bearer token the admin API requires; `None` turns the admin API off.
    pub admin_token: Option<Secret>,
    /// Every upstream instance; [`MemberSpec::instance`] indexes this.
    pub instances: Vec<InstanceSpec>,
    /// Every routable name, in a stable order (wrappers, pools, groups, echelons, models,
    /// instances).
    pub routes: Vec<RouteSpec>,
    /// Problems tolerated under `config_validation = "lenient"` (unknown keys).
    pub warnings: Vec<Issue>,
    /// `[global.error_handling]`: which failures go on, and the backoff.
    pub retry: RetryPolicy,
    /// `[global] default_timeout`: the whole request's deadline (a client may ask for less).
    pub request_timeout: Option<Duration>,
    /// `[global.fallback] provider_chain`: the order `provider_failover` moves along.
    pub provider_chain: Vec<String>,
    /// `[clients]`: limits per calling client.
    pub clients: ClientLimits,
    /// `[global.limits] queue_timeout` / `queue_size`: wait for room instead of a 429.
    pub queue: Option<QueueSpec>,
    /// `[global] enable_hot_reload` / `reload_interval`: poll the files this often (and watch
    /// them).
    pub hot_reload: Option<Duration>,
    /// `[global] reload_settle`: a change goes live once the files have been quiet this long.
    pub reload_settle: Duration,
    /// `[global] cache_enabled` / `use_defaults_on_failure`: the last-good snapshot.
    pub snapshot: SnapshotPolicy,
    /// `[global.cache]`: the response cache, when enabled.
    pub cache: Option<CacheSpec>,
    /// `[global] function_calling_enabled` / `tool_selection_strategy`.
    pub tools: ToolPolicy,
    /// `enable_metrics`, `metrics_interval`, `[global.logging]` (checked here, applied by the
    /// metrics and logging layers).
    pub telemetry: TelemetrySpec,
    /// `[pool.metrics]` / `[task_group.metrics]` and `metadata`, by pool or group name.
    pub sections: std::collections::BTreeMap<String, SectionInfo>,
}

/// How long the files must be quiet before a watched change is reloaded.
pub const DEFAULT_RELOAD_SETTLE: Duration = Duration::from_millis(300);

/// The last-good snapshot (`[global] cache_enabled`, `use_defaults_on_failure`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// `cache_enabled`: every tree that loads is copied to the snapshot directory.
    pub keep: bool,
    /// `use_defaults_on_failure`: a tree that fails at startup is replaced by the snapshot.
    pub boot_from: bool,
}

/// The response cache (`[global.cache]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSpec {
    /// Most responses kept.
    pub max_size: u64,
    /// How long one is served.
    pub ttl: Duration,
}

/// What the gateway does with `tools` in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolPolicy {
    /// `function_calling_enabled` [true]: false refuses requests that carry tools (400).
    pub enabled: bool,
    pub selection: ToolSelection,
}

impl Default for ToolPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            selection: ToolSelection::Auto,
        }
    }
}

/// `tool_selection_strategy`: the `tool_choice` used when a request with tools sets none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolSelection {
    /// The model decides (`"auto"`, the API's own default): the request is left as it is.
    Auto,
    /// Tools run only when the client names one: `"none"` unless it sets `tool_choice`.
    Manual,
    /// A tool call comes first: `"required"` unless it sets `tool_choice`.
    Priority,
}

/// Metrics and logging settings, checked at load time.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySpec {
    pub metrics: bool,
    pub metrics_interval: Duration,
    pub log_level: Option<&'static str>,
    pub log_json: Option<bool>,
    pub log_requests: bool,
    pub log_responses: bool,
}

impl Default for TelemetrySpec {
    fn default() -> Self {
        Self {
            metrics: true,
            metrics_interval: Duration::from_secs(60),
            log_level: None,
            log_json: None,
            log_requests: true,
            log_responses: false,
        }
    }
}

/// A pool's or task group's `[*.metrics]` and `[*.metadata]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SectionInfo {
    /// `pool` or `task_group`.
    pub kind: &'static str,
    pub metrics: bool,
    /// Seconds between samples.
    pub metrics_interval: f64,
    /// Seconds samples are kept.
    pub metrics_retention: f64,
    pub metadata: serde_json::Value,
}

/// The wait queue for requests that find every candidate full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueSpec {
    /// Longest wait (within the request's deadline).
    pub timeout: Duration,
    /// Most requests waiting at once.
    pub size: usize,
}

/// Limits per calling client: `default` for any client, `keys` by client name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientLimits {
    pub default: LimitSpec,
    pub keys: std::collections::BTreeMap<String, LimitSpec>,
}

impl ClientLimits {
    pub fn for_client(&self, name: &str) -> &LimitSpec {
        self.keys.get(name).unwrap_or(&self.default)
    }
}

/// One upstream endpoint serving one model.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub id: String,
    /// `provider:model`, as task groups reference it.
    pub model_ref: String,
    pub provider: String,
    /// The wire API it speaks (its provider's `type`).
    pub api: crate::provider::Api,
    /// The name sent upstream in `model`.
    pub upstream_model: String,
    pub endpoint: Endpoint,
    pub api_key: Option<Secret>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub timeout: Duration,
    pub weight: NonZeroU32,
    pub price: Price,
    /// From the `[pool.health_check]` of the pools it is in (the strictest), else defaults.
    pub health: HealthPolicy,
    /// From the `[task_group.circuit_breaker]` of the groups it is in (the strictest).
    pub breaker: BreakerPolicy,
    /// `rpm_limit`, `tpm_limit`, `concurrency_limit` of the instance (or its model).
    pub limits: LimitSpec,
    /// `[models.X.shared_limits]`: over every instance of its model together.
    pub model_limits: LimitSpec,
    /// What its model can do; routing passes it over for requests it cannot serve.
    pub caps: Capabilities,
}

/// A model's capabilities (`[models.M] context_window`, `supports_tools`, `supports_vision`,
/// `supports_streaming`), plus what its API can do at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Prompt plus `max_tokens`, in tokens; `None`: not checked.
    pub context_window: Option<u32>,
    pub tools: bool,
    pub vision: bool,
    pub streaming: bool,
    pub chat: bool,
    pub completions: bool,
    pub embeddings: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            context_window: None,
            tools: true,
            vision: true,
            streaming: true,
            chat: true,
            completions: true,
            embeddings: true,
        }
    }
}

impl Capabilities {
    /// Why an instance with these capabilities cannot serve `req`, if it cannot. Cheap when
    /// nothing is restricted (the usual case): a few field reads.
    pub fn refuses(&self, req: &crate::request::ClientRequest) -> Option<&'static str> {
        use crate::provider::Operation;
        let op_ok = match req.op {
            Operation::Chat => self.chat,
            Operation::Completions => self.completions,
            Operation::Embeddings => self.embeddings,
            Operation::Models => true,
        };
        if !op_ok {
            return Some("its API has no such operation");
        }
        if req.stream && !self.streaming {
            return Some("its model does not stream");
        }
        if !self.tools && req.has_tools() {
            return Some("its model does not support tools");
        }
        if !self.vision && req.has_images() {
            return Some("its model does not accept images");
        }
        match self.context_window {
            Some(window) if req.estimate_tokens() > u64::from(window) => {
                Some("the prompt and max_tokens exceed its context window")
            }
            _ => None,
        }
    }
}

/// How an instance is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// Any OpenAI-compatible server; `base_url` ends before `/chat/completions`, no trailing `/`.
    OpenAi { base_url: String },
    /// A built-in mock upstream the gateway runs in-process on loopback.
    Mock(Behavior),
}

/// Price per 1,000 tokens, in the operator's currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Price {
    pub input_per_1k: f64,
    pub output_per_1k: f64,
}

/// A credential; never printed.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What a routing name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Wrapper,
    Pool,
    TaskGroup,
    Echelon,
    Model,
    Instance,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wrapper => "wrapper",
            Self::Pool => "pool",
            Self::TaskGroup => "task_group",
            Self::Echelon => "echelon",
            Self::Model => "model",
            Self::Instance => "instance",
        }
    }
}

/// A routing name and the tiers it tries, in order: its plan.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: String,
    pub kind: RouteKind,
    /// Never empty; each tier has at least one member.
    pub tiers: Vec<TierSpec>,
    /// Why each of `tiers` is there (same length).
    pub steps: Vec<StepKind>,
    /// Most attempts over the whole plan.
    pub max_attempts: Option<u32>,
}

/// A set of interchangeable instances and the strategy that spreads requests over them.
#[derive(Debug, Clone)]
pub struct TierSpec {
    /// `group.echelon`, pool or model name: what logs call this tier.
    pub label: String,
    pub strategy: StrategyKind,
    pub members: Vec<MemberSpec>,
    /// Distinct instances tried in this tier before moving on (at least 1).
    pub max_attempts: u32,
    /// Rounds over the members (a pool's `max_instance_attempts`).
    pub max_instance_attempts: u32,
    /// Per-attempt timeout overriding the instance's own.
    pub timeout: Option<Duration>,
    pub ttft_timeout: Option<Duration>,
    /// A task group's `fallback.retry_delay`.
    pub retry_delay: Option<Duration>,
    pub rotate: Rotate,
    pub defaults: Defaults,
    /// An echelon's `concurrency_limit` / `rpm_limit`; a pool's `[pool.rate_limiting]`.
    pub limits: LimitSpec,
    /// Factor weights of the `score` strategy.
    pub score: ScoreWeights,
    /// The task group an echelon tier belongs to, with its circuit breaker.
    pub group: Option<GroupSpec>,
}

/// A task group as its echelon tiers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub name: String,
    pub breaker: BreakerPolicy,
    /// `[task_group] concurrency_limit` / `rpm_limit`: over all its echelons.
    pub limits: LimitSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberSpec {
    pub instance: usize,
    pub weight: NonZeroU32,
}

/// One problem found while loading: `file:key: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub file: String,
    /// 1-based line of `key` (or of its nearest written table) in `file`, when known.
    pub line: Option<usize>,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.key.is_empty()) {
            (None, true) => write!(f, "{}: {}", self.file, self.reason),
            (None, false) => write!(f, "{}:{}: {}", self.file, self.key, self.reason),
            (Some(l), true) => write!(f, "{}:{l}: {}", self.file, self.reason),
            (Some(l), false) => write!(f, "{}:{l}: {}: {}", self.file, self.key, self.reason),
        }
    }
}

/// Why a config tree was refused: every problem found, not just the first.
#[derive(Debug, thiserror::Error)]
#[error("config {origin} is invalid:\n{}", .issues.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub origin: String,
    pub issues: Vec<Issue>,
}

impl Config {
    /// Load and validate the tree under `dir`.
    pub fn load_dir(dir: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        Self::load(&DirSource(dir.into()))
    }

    /// Load the demo tree bundled in the binary.
    pub fn demo() -> Result<Self, ConfigError> {
        Self::load(&EmbeddedSource(&DEMO))
    }

    /// Load and validate a tree, reading environment variables for `${VAR}` injection.
    pub fn load(source: &dyn Source) -> Result<Self, ConfigError> {
        resolve::load(
            source,
            &|name| std::env::var(name).ok(),
            &Overlay::default(),
        )
    }

    /// Load a tree with runtime changes applied on top.
    pub fn load_with_overlay(source: &dyn Source, overlay: &Overlay) -> Result<Self, ConfigError> {
        resolve::load(source, &|name| std::env::var(name).ok(), overlay)
    }

    /// Like [`Config::load`] with an explicit environment (tests).
    pub fn load_with_env(
        source: &dyn Source,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        resolve::load(source, env, &Overlay::default())
    }
}

#[cfg(test)]
mod tests;
