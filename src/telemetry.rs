//! Structured logs: `tracing` to stderr as text or JSON lines. One `switchyard::access` line per
//! request (route, instance, attempts, status, latency, tokens); API keys and message content
//! are never logged.
//!
//! Lines are written by a background thread (tracing-appender): the request path formats a
//! line into memory and moves on instead of waiting on a write to stderr. If the 128k-line
//! buffer ever fills, new lines are dropped rather than stalling requests.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Install the global subscriber. `level` is an `EnvFilter` directive (`info`,
/// `switchyard=debug`); `RUST_LOG` wins when set. Keep the guard alive until exit: dropping it
/// flushes the remaining lines.
pub fn init(format: LogFormat, level: &str) -> WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    guard
}
