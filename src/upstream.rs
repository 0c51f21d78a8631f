//! The one place that talks to upstreams over the network, and the live [`Instance`] it talks to.
//!
//! One pooled client for every instance: HTTP/1.1 keep-alive, HTTP/2 negotiated by ALPN on
//! https, TCP_NODELAY, rustls with the ring provider. Adapters build requests; this module only
//! sends them and turns transport failures into [`ErrorClass`]es.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderValue;

use crate::config::InstanceSpec;
use crate::provider::{Adapter, ErrorClass};

/// An instance as the request path sees it.
pub struct Instance {
    /// Position in the snapshot's instance list.
    pub index: usize,
    pub spec: InstanceSpec,
    /// Resolved base URL (a mock's loopback address for `type = "mock"`).
    pub base_url: String,
    pub adapter: Arc<dyn Adapter>,
    in_flight: AtomicU64,
}

impl Instance {
    pub fn new(
        index: usize,
        spec: InstanceSpec,
        base_url: String,
        adapter: Arc<dyn Adapter>,
    ) -> Self {
        Self {
            index,
            spec,
            base_url,
            adapter,
            in_flight: AtomicU64::new(0),
        }
    }

    /// Requests dispatched to this instance whose response has not finished.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Count a request as in flight until the returned guard drops (end of the response
    /// stream, or the client going away).
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// Holds one in-flight slot on an instance.
pub struct InFlight(Arc<Instance>);

impl InFlight {
    pub fn instance(&self) -> &Arc<Instance> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why one attempt failed.
#[derive(Debug, Clone)]
pub struct AttemptError {
    pub class: ErrorClass,
    pub detail: String,
    pub retry_after: Option<HeaderValue>,
}

impl AttemptError {
    pub fn new(class: ErrorClass, detail: impl Into<String>) -> Self {
        Self {
            class,
            detail: detail.into(),
            retry_after: None,
        }
    }
}

/// The shared HTTP client.
#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
}

impl Upstream {
    pub fn new() -> Result<Self, reqwest::Error> {
        // Several crates may race to install a provider; losing the race is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .connect_timeout(Duration::from_secs(10))
            .no_proxy()
            .build()?;
        Ok(Self { client })
    }

    /// Send one request and wait for the response head, at most `timeout`.
    pub async fn send(
        &self,
        request: http::Request<Bytes>,
        timeout: Duration,
    ) -> Result<reqwest::Response, AttemptError> {
        let request = reqwest::Request::try_from(request).map_err(|e| {
            AttemptError::new(ErrorClass::Connect, format!("bad upstream request: {e}"))
        })?;
        match tokio::time::timeout(timeout, self.client.execute(request)).await {
            Err(_) => Err(AttemptError::new(
                ErrorClass::Timeout,
                format!("no response within {} ms", timeout.as_millis()),
            )),
            Ok(Err(e)) => Err(transport_error(&e)),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// Classify a transport failure and describe it without the URL's secrets.
pub fn transport_error(e: &reqwest::Error) -> AttemptError {
    let class = if e.is_timeout() {
        ErrorClass::Timeout
    } else if e.is_connect() {
        ErrorClass::Connect
    } else {
        ErrorClass::Server
    };
    let mut detail = match e.url() {
        // Only the host: paths and queries may carry keys.
        Some(url) => e
            .to_string()
            .replace(url.as_str(), url.host_str().unwrap_or("upstream")),
        None => e.to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    AttemptError::new(class, detail)
}

/// Read a whole (non-streamed) body, at most `cap` bytes, before `deadline`.
pub async fn read_body(
    mut response: reqwest::Response,
    cap: usize,
    deadline: tokio::time::Instant,
) -> Result<Bytes, AttemptError> {
    let mut buf = BytesMut::new();
    loop {
        let next = tokio::time::timeout_at(deadline, response.chunk()).await;
        match next {
            Err(_) => {
                return Err(AttemptError::new(
                    ErrorClass::Timeout,
                    "response body did not finish in time",
                ));
            }
            Ok(Err(e)) => return Err(transport_error(&e)),
            Ok(Ok(None)) => return Ok(buf.freeze()),
            Ok(Ok(Some(chunk))) => {
                if buf.is_empty() && response.content_length() == Some(chunk.len() as u64) {
                    return Ok(chunk);
                }
                if buf.len() + chunk.len() > cap {
                    return Err(AttemptError::new(
                        ErrorClass::Malformed,
                        format!("response body exceeds {cap} bytes"),
                    ));
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
}
