//! switchyard: an OpenAI-compatible LLM gateway that spreads requests over many model
//! instances, fails over between them, and shows what it is doing.
//!
//! Request flow: `server` (HTTP edge) → `request` (parse once) → `proxy` (route lookup in the
//! current `snapshot`, tier by tier, `balance` picks, `provider` builds, `upstream` sends) →
//! response streamed back. `config` loads the TOML tree; `gateway` keeps the live snapshot;
//! `health` ejects, recovers and breaks circuits; `stats` counts; `mock` is the built-in upstream used by tests and the demo.

pub mod admin;
pub mod balance;
pub mod cache;
pub mod config;
pub mod error;
pub mod gateway;
pub mod health;
pub mod ingress;
pub mod limit;
pub mod metrics;
pub mod mock;
pub mod provider;
pub mod proxy;
pub mod reload;
pub mod request;
pub mod retry;
pub mod route;
pub mod server;
pub mod shared;
pub mod signal;
pub mod snapshot;
pub mod stats;
pub mod telemetry;
pub mod upstream;
