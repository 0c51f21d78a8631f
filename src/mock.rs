//! The built-in mock LLM upstream: a real HTTP server that speaks the OpenAI API, Anthropic's
//! Messages API and Google's Gemini API, with the same answers and failure modes in each.
//!
//! Endpoints (see `routes`):
//! - OpenAI: `POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/embeddings`,
//!   `GET /v1/models`, and Azure's `POST /openai/deployments/{d}/chat/completions` / `embeddings`;
//! - Anthropic: `POST /v1/messages` (needs `anthropic-version`; `GET /v1/models` answers in
//!   Anthropic's shape to a request with that header);
//! - Gemini: `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`
//!   (`?alt=sse` for SSE), `:embedContent`, `:batchEmbedContents`; `GET /v1beta/models` and
//!   `GET /v1beta/models/{model}`;
//! - control: `GET /mock/stats`, `GET|PUT /mock/behavior`, `GET /mock/last`,
//!   `POST /mock/die`.
//!
//! Every dialect gets the same text (`[<name>] mock reply 1 2 … N`), the same counters and
//! every failure mode; errors, injected or not, are in the request's own dialect. Keys
//! (`authorization`, `x-api-key`, `x-goog-api-key`) are not checked, only recorded.
//!
//! This file owns the public entry points: [`spawn`] (serve a caller-made listener in a
//! background task) and the [`MockHandle`] it returns. The parts live beside it:
//! `behavior` (the knobs), `stats` (counters), `lifecycle` (connections and stopping),
//! `state` (what the handlers share), `routes` (URL table and control endpoints), `call`
//! (which dialect and operation a request is), `pipeline` (failure modes for API requests),
//! `request` (parsing), `reply`, `stream` and `embeddings` (the answers), `anthropic` and
//! `gemini` (those dialects' requests, replies and stream events), `error` (each dialect's
//! errors) and `cli` (`switchyard mock`).
//!
//! Dropping a [`MockHandle`] stops its server, like [`MockHandle::shutdown`].

mod anthropic;
mod behavior;
mod call;
mod cli;
mod embeddings;
mod error;
mod gemini;
mod lifecycle;
mod pipeline;
mod reply;
mod request;
mod routes;
mod state;
mod stats;
mod stream;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests_anthropic;
#[cfg(test)]
mod tests_api;
#[cfg(test)]
mod tests_control;
#[cfg(test)]
mod tests_failures;
#[cfg(test)]
mod tests_gemini;
#[cfg(test)]
mod tests_stream;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

pub use behavior::Behavior;
pub use cli::{MockArgs, run};
pub use stats::{MockStats, StatsSnapshot};

use lifecycle::{ConnId, MockListener};
use state::Shared;

/// A running mock server. Dropping it (or calling [`MockHandle::shutdown`]) stops the server:
/// the listener is closed and every open connection is dropped.
#[derive(Debug)]
pub struct MockHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockHandle {
    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/v1` (the OpenAI and Anthropic base; Gemini's is `http://ADDR/v1beta`), with
    /// an unspecified bind address (`0.0.0.0`, `::`) replaced by loopback
    /// so the URL can be connected to.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        format!("http://{addr}/v1")
    }

    /// A copy of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Replace the behaviour; requests that already started keep the old one. Reseeds the rng.
    pub fn set_behavior(&self, b: Behavior) {
        self.shared.set_behavior(b);
    }

    /// Stop serving now: close the listener and drop every connection, hanging or not.
    pub fn shutdown(self) {
        // Drop does the work.
    }

    /// Resolves once the server has stopped (by `die_after`, `POST /mock/die` or shutdown):
    /// the listener is closed and every connection has ended.
    pub async fn stopped(&self) {
        self.shared.life.done().await;
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        self.shared.life.stop_hard();
    }
}

/// Serve `listener` in a background tokio task with the given behaviour.
///
/// Must be called inside a tokio runtime (an error, not a panic, otherwise).
pub fn spawn(listener: tokio::net::TcpListener, behavior: Behavior) -> io::Result<MockHandle> {
    let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
    let addr = listener.local_addr()?;
    let shared = Shared::new(behavior);
    let app = routes::router(Arc::clone(&shared)).into_make_service_with_connect_info::<ConnId>();
    let life = Arc::clone(&shared.life);
    let listener = MockListener::new(listener, Arc::clone(&life));
    runtime.spawn(async move {
        let signal_life = Arc::clone(&life);
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { signal_life.stopping().await })
            .await;
        if let Err(err) = served {
            tracing::warn!(%addr, error = %err, "mock server failed");
        }
        tracing::debug!(%addr, "mock server stopped");
        life.mark_done();
    });
    tracing::debug!(%addr, "mock server listening");
    Ok(MockHandle { addr, shared })
}
