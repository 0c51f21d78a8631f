//! Serde mirrors of the TOML files, exactly as seed 004 lays them out.
//!
//! These types only describe syntax; nothing here is validated. `resolve` turns them into the
//! validated [`super::Config`]. Unknown keys are tolerated here (strict/lenient validation is
//! the configuration-system issue's job); every field the seeds name is accepted.

#![allow(
    dead_code,
    reason = "fields the seeds define that later issues (limits, health, metrics) consume"
)]

use std::collections::BTreeMap;

use serde::Deserialize;

/// `_registry.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Registry {
    pub registry: RegistryMeta,
    pub server: Server,
    pub providers: BTreeMap<String, FileRef>,
    pub pools: BTreeMap<String, FileRef>,
    pub task_groups: BTreeMap<String, FileRef>,
    pub wrappers: BTreeMap<String, FileRef>,
    pub global: toml::Table,
    pub dependencies: BTreeMap<String, Vec<String>>,
    /// Limits per calling client (`x-switchyard-client`, else the client's API key).
    pub clients: Clients,
    /// Seed 003's YAML files (`task_groups:` and `polling_pools:` in one file).
    pub yaml: BTreeMap<String, FileRef>,
}

/// `[clients]`: `default` for every client, `keys.NAME` for one.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Clients {
    pub default: Option<LimitKeys>,
    pub keys: BTreeMap<String, LimitKeys>,
}

/// `rpm_limit`, `tpm_limit`, `concurrency_limit`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct LimitKeys {
    pub rpm_limit: Option<u32>,
    pub tpm_limit: Option<u32>,
    pub concurrency_limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegistryMeta {
    pub version: Option<String>,
    pub description: Option<String>,
}

/// `[server]` in `_registry.toml`: the gateway's own HTTP edge.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Server {
    pub listen: Option<String>,
    pub max_body_bytes: Option<u64>,
    /// Seconds; per attempt, when neither instance nor echelon sets one.
    pub timeout: Option<f64>,
    /// Bearer token for `/admin/*`; the admin API is off without one.
    pub admin_token: Option<String>,
    /// Seconds a client has to send a request's headers (HTTP/1; also how long an idle
    /// keep-alive connection waits for its next request).
    pub header_timeout: Option<f64>,
    /// Seconds a client has to send a request's whole body once its headers are in.
    pub body_timeout: Option<f64>,
}

/// `name = { file = "...", enabled = true }`.
#[derive(Debug, Deserialize)]
pub struct FileRef {
    pub file: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// `providers/*.toml`.
#[derive(Debug, Deserialize)]
pub struct ProviderFile {
    pub provider: Provider,
    #[serde(default)]
    pub models: BTreeMap<String, Model>,
}

#[derive(Debug, Deserialize)]
pub struct Provider {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    /// `type = "azure"`: the `api-version` query parameter.
    pub api_version: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timeout: Option<f64>,
    pub mock: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Model {
    pub upstream_model: Option<String>,
    /// Defaults for this model's instances (and the settings of its implicit one).
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub mock: Option<toml::Value>,
    pub weight: Option<u32>,
    pub price: Price,
    pub timeout: Option<f64>,
    /// Defaults for this model's instances: requests and tokens per minute, in flight.
    pub rpm_limit: Option<u32>,
    pub tpm_limit: Option<u32>,
    pub concurrency_limit: Option<u32>,
    /// Limits shared by every instance of the model (one provider account, say).
    pub shared_limits: Option<LimitKeys>,
    /// Tokens of prompt plus `max_tokens` it accepts.
    pub context_window: Option<u32>,
    pub supports_tools: Option<bool>,
    pub supports_vision: Option<bool>,
    pub supports_streaming: Option<bool>,
    pub instances: Vec<Instance>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct Price {
    pub input_per_1k: f64,
    pub output_per_1k: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Instance {
    pub id: Option<String>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub weight: Option<u32>,
    pub timeout: Option<f64>,
    pub price: Option<Price>,
    pub mock: Option<toml::Value>,
    pub rpm_limit: Option<u32>,
    pub tpm_limit: Option<u32>,
    pub concurrency_limit: Option<u32>,
}

/// `pools/*.toml`.
#[derive(Debug, Deserialize)]
pub struct PoolFile {
    pub pool: Pool,
}

#[derive(Debug, Deserialize)]
pub struct Pool {
    pub name: Option<String>,
    pub description: Option<String>,
    pub task_groups: Vec<String>,
    #[serde(default)]
    pub rotation_strategy: RotationStrategy,
    #[serde(default)]
    pub health_check: HealthCheck,
    /// Seed 004's flat spelling of `health_check.interval` / `.failure_threshold` /
    /// `.recovery_time` (its inheritance example); the nested keys win.
    pub health_check_interval: Option<f64>,
    pub failure_threshold: Option<u32>,
    pub recovery_time: Option<f64>,
    #[serde(default)]
    pub fallback: PoolFallback,
    #[serde(default)]
    pub rate_limiting: RateLimiting,
    #[serde(default)]
    pub metrics: Metrics,
    /// Free-form: shown by the admin API, never interpreted.
    #[serde(default)]
    pub metadata: toml::Table,
}

/// `[pool.metrics]` / `[task_group.metrics]` (seed 004). Times in seconds.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct Metrics {
    pub enabled: Option<bool>,
    /// `[pool.metrics]`'s spelling of the sampling interval.
    pub interval: Option<f64>,
    /// `[task_group.metrics]`'s spelling of the sampling interval.
    pub collection_interval: Option<f64>,
    pub retention_period: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RotationStrategy {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub options: StrategyOptions,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StrategyOptions {
    /// Keyed by `group.echelon` (seed 004's thinking pool).
    pub weights: BTreeMap<String, u32>,
    /// Factor weights of the `score` strategy.
    pub score_weights: Option<crate::balance::ScoreWeights>,
}

/// `[pool.health_check]` (seed 004: `interval`, `failure_threshold`, `recovery_time`; the
/// rest are switchyard's, documented in `docs/health.md`). Times in seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HealthCheck {
    /// Active probes on or off; passive checks always run.
    pub enabled: Option<bool>,
    pub interval: Option<f64>,
    pub timeout: Option<f64>,
    pub jitter: Option<f64>,
    /// `"models"` or `"chat"`.
    pub probe: Option<String>,
    pub failure_threshold: Option<u32>,
    pub error_rate_threshold: Option<f64>,
    pub error_rate_window: Option<f64>,
    pub min_requests: Option<u64>,
    pub recovery_time: Option<f64>,
    pub max_ejection_time: Option<f64>,
    pub max_ejection_percent: Option<u32>,
    pub slow_start: Option<f64>,
}

/// `[pool.rate_limiting]`: one requests limiter for the whole pool (seed 004).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RateLimiting {
    pub enabled: Option<bool>,
    /// `token_bucket`, `fixed_window` or `sliding_window`.
    pub algorithm: Option<String>,
    pub token_bucket: Option<TokenBucket>,
    pub fixed_window: Option<RateWindow>,
    pub sliding_window: Option<RateWindow>,
    /// Requests in flight over the whole pool.
    pub concurrency_limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenBucket {
    pub bucket_size: Option<f64>,
    /// Tokens per second.
    pub refill_rate: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RateWindow {
    /// Seconds.
    pub window_size: Option<f64>,
    pub max_requests: Option<u64>,
}

/// `[task_group.circuit_breaker]`. Times in seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CircuitBreaker {
    pub enabled: Option<bool>,
    pub failure_threshold: Option<u32>,
    pub recovery_time: Option<f64>,
    pub half_open_requests: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PoolFallback {
    pub strategy: Option<String>,
    pub max_instance_attempts: Option<u32>,
    pub fallback_pools: Vec<String>,
}

/// `task-groups/*.toml`.
#[derive(Debug, Deserialize)]
pub struct TaskGroupFile {
    pub task_group: TaskGroup,
}

#[derive(Debug, Deserialize)]
pub struct TaskGroup {
    pub name: Option<String>,
    pub description: Option<String>,
    pub fallback_strategy: Option<String>,
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
    #[serde(default)]
    pub fallback: GroupFallback,
    pub echelons: BTreeMap<String, Echelon>,
    /// Limits over every echelon of the group together.
    pub concurrency_limit: Option<u32>,
    pub rpm_limit: Option<u32>,
    #[serde(default)]
    pub metrics: Metrics,
    /// Free-form: shown by the admin API, never interpreted.
    #[serde(default)]
    pub metadata: toml::Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GroupFallback {
    pub strategy: Option<String>,
    pub fallback_groups: Vec<String>,
    pub max_attempts: Option<u32>,
    pub retry_delay: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct Echelon {
    pub models: Vec<String>,
    pub strategy: Option<String>,
    pub score_weights: Option<crate::balance::ScoreWeights>,
    pub concurrency_limit: Option<u32>,
    pub rpm_limit: Option<u32>,
    pub priority: Option<i64>,
    pub timeout: Option<f64>,
    pub max_retries: Option<u32>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// Client `max_tokens` above the echelon's are lowered to it.
    pub clamp_max_tokens: Option<bool>,
    /// Seconds from dispatch to a stream's first content chunk.
    pub ttft_timeout: Option<f64>,
}

/// `wrappers/*.toml`.
#[derive(Debug, Deserialize)]
pub struct WrapperFile {
    #[serde(default)]
    pub wrappers: BTreeMap<String, Wrapper>,
    #[serde(default)]
    pub global: toml::Table,
}

#[derive(Debug, Deserialize)]
pub struct Wrapper {
    #[serde(rename = "type")]
    pub kind: String,
    pub pool_name: Option<String>,
    pub task_group_name: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub description: Option<String>,
}

/// The keys `[global]` knows (in `_registry.toml` and in wrapper files). Only the key names
/// matter here (strict mode and "did you mean"); `resolve::global` reads and checks the values
/// (`toml::Value`: any type passes here, `IgnoredAny` would count as ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GlobalKeys {
    pub config_validation: Option<toml::Value>,
    pub enable_hot_reload: Option<toml::Value>,
    pub reload_interval: Option<toml::Value>,
    pub reload_settle: Option<toml::Value>,
    pub cache_enabled: Option<toml::Value>,
    pub use_defaults_on_failure: Option<toml::Value>,
    pub default_timeout: Option<toml::Value>,
    pub max_retries: Option<toml::Value>,
    pub enable_metrics: Option<toml::Value>,
    pub metrics_interval: Option<toml::Value>,
    pub function_calling_enabled: Option<toml::Value>,
    pub tool_selection_strategy: Option<toml::Value>,
    pub error_handling: ErrorHandlingKeys,
    pub fallback: GlobalFallbackKeys,
    pub limits: GlobalLimitsKeys,
    pub cache: CacheKeys,
    pub logging: LoggingKeys,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorHandlingKeys {
    pub retry_on_errors: Option<toml::Value>,
    pub retry_delay: Option<toml::Value>,
    pub max_retry_delay: Option<toml::Value>,
    pub backoff_factor: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GlobalFallbackKeys {
    pub provider_chain: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GlobalLimitsKeys {
    pub queue_timeout: Option<toml::Value>,
    pub queue_size: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CacheKeys {
    pub enabled: Option<toml::Value>,
    pub max_size: Option<toml::Value>,
    pub ttl: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoggingKeys {
    pub level: Option<toml::Value>,
    pub format: Option<toml::Value>,
    pub enable_request_logging: Option<toml::Value>,
    pub enable_response_logging: Option<toml::Value>,
}
