//! The fault-injection suite (issue 10): end-to-end scenarios through the real gateway binary
//! against real mock upstream processes on 127.0.0.1, each under steady client load for
//! `FAULTS_SECS` (default 2 s), each asserting that no client request is lost unless the
//! scenario makes a loss unavoidable (then the exact bound, and why), and each printing one
//! `FAULT scenario=… requests=… ok=… success=…% failover_ms=… failover_max_ms=… lost=…` line
//! (`bench/faults.sh` runs the long form and tabulates them).
//!
//! - `kill`: one of three upstreams dies (`POST /mock/die`); two of three are killed (SIGKILL).
//! - `hang`: an upstream accepts and never answers; its short per-instance timeout fails over.
//! - `streams`: a slow-dripping stream (failed over before the commit point by the echelon's
//!   `ttft_timeout`, or paced but within the idle timeout: completes); a stall and a
//!   truncation after the commit point (the only loss, exactly those streams, each ended with
//!   an error event and `[DONE]`); a truncation before it (no loss).
//! - `errors`: 500s at 30 %, 429 storms with Retry-After, malformed JSON.
//! - `disconnect`: clients drop streams part way; in-flight counters and limiter permits
//!   return to zero.
//! - `reload`: the config directory is rewritten every second under load.
//! - `scale`: 100 and 1,000 concurrent clients.
//!
//! Failover time is measured from the client: the latency of the first request that met the
//! fault and was served elsewhere (its failed attempt went out as it was sent), and of the
//! slowest such request. Timings are reported, never asserted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed step should fail the test loudly"
)]

#[path = "../common/mod.rs"]
mod common;

mod disconnect;
mod errors;
mod hang;
mod kill;
mod reload;
mod scale;
mod streams;
mod support;
