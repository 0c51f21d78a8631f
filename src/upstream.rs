//! The one place that talks to upstreams over the network, and the live [`Instance`] it talks to.
//!
//! One pooled hyper client for every instance: HTTP/1.1 keep-alive, HTTP/2 negotiated by ALPN
//! on https, TCP_NODELAY, rustls with the ring provider and the system's roots (the bundled
//! webpki roots when the system has none). Adapters decide URLs and headers once per instance;
//! this module only sends and turns transport failures into [`ErrorClass`]es.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::InstanceSpec;
use crate::limit::{Limits, Permits};
use crate::provider::{Adapter, ErrorClass, Operation};
use crate::stats::Live;

/// An instance as the request path sees it.
pub struct Instance {
    /// Position in the snapshot's instance list.
    pub index: usize,
    pub spec: InstanceSpec,
    /// Resolved base URL (a mock's loopback address for `type = "mock"`).
    pub base_url: String,
    pub adapter: Arc<dyn Adapter>,
    /// The id as the `x-switchyard-instance` response header, built once.
    pub id_header: Option<HeaderValue>,
    /// Per operation (chat, completions, embeddings, models): the upstream URL, parsed once.
    uris: [Option<Uri>; 4],
    /// A streamed chat request's URL, when the API has its own (Gemini's `alt=sse`).
    stream_uri: Option<Uri>,
    /// Sent with every request: auth, content type, configured extras.
    headers: HeaderMap,
    /// Load and statistics; shared with the instance of the same id in later snapshots.
    pub live: Arc<Live>,
    /// Its `rpm_limit` / `tpm_limit` / `concurrency_limit`, state in the shared store.
    pub limits: Option<Arc<Limits>>,
    /// Its model's `shared_limits`, the same for every instance of the model.
    pub model_limits: Option<Arc<Limits>>,
}

impl Instance {
    pub fn new(
        index: usize,
        spec: InstanceSpec,
        base_url: String,
        adapter: Arc<dyn Adapter>,
        live: Arc<Live>,
        limits: [Option<Arc<Limits>>; 2],
    ) -> Self {
        let [limits, model_limits] = limits;
        let uri = |op| adapter.url(&base_url, &spec, op).parse::<Uri>().ok();
        let uris = [
            uri(Operation::Chat),
            uri(Operation::Completions),
            uri(Operation::Embeddings),
            uri(Operation::Models),
        ];
        let stream_uri = (adapter.stream_url(&base_url, &spec)).and_then(|u| u.parse::<Uri>().ok());
        let headers = adapter.headers(&spec);
        Self {
            id_header: HeaderValue::from_str(&spec.id).ok(),
            index,
            spec,
            base_url,
            adapter,
            uris,
            stream_uri,
            headers,
            live,
            limits,
            model_limits,
        }
    }

    /// Requests dispatched to this instance whose response has not finished.
    pub fn in_flight(&self) -> u64 {
        self.live.in_flight()
    }

    /// Count a request as in flight until the returned guard drops (end of the response
    /// stream, or the client going away).
    pub fn start(self: &Arc<Self>, permits: Permits) -> InFlight {
        self.live.acquire();
        InFlight(Arc::clone(self), std::time::Instant::now(), permits)
    }

    /// The upstream request for `op` with `body` (`stream`: a streamed chat; `url`: this
    /// request's own URL, when its adapter gave one).
    pub fn request(
        &self,
        op: Operation,
        stream: bool,
        body: Bytes,
        url: Option<String>,
    ) -> Result<http::Request<Full<Bytes>>, AttemptError> {
        let slot = match op {
            Operation::Chat => 0,
            Operation::Completions => 1,
            Operation::Embeddings => 2,
            Operation::Models => 3,
        };
        let own = url.and_then(|u| u.parse::<Uri>().ok());
        let streamed = (stream && op == Operation::Chat)
            .then(|| self.stream_uri.clone())
            .flatten();
        let Some(uri) = own.or(streamed).or_else(|| self.uris[slot].clone()) else {
            return Err(AttemptError::new(
                ErrorClass::Connect,
                format!(
                    "no valid upstream URL for {} on {:?}",
                    op.as_str(),
                    self.base_url
                ),
            ));
        };
        let mut request = http::Request::new(Full::new(body));
        if op != Operation::Models {
            *request.method_mut() = Method::POST;
        }
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers.clone();
        Ok(request)
    }
}

/// Holds one in-flight slot on an instance, and the limits' permits of the request.
pub struct InFlight(Arc<Instance>, std::time::Instant, Permits);

impl InFlight {
    pub fn instance(&self) -> &Arc<Instance> {
        &self.0
    }

    /// When the request was dispatched.
    pub fn since(&self) -> std::time::Instant {
        self.1
    }

    /// Hold `permits` (the client's) for as long as this attempt's response lasts.
    pub fn absorb(&mut self, permits: Permits) {
        self.2.absorb(permits);
    }

    /// The attempt ended having used `tokens`: settle the token limits' reservations (once;
    /// later calls find nothing left to settle).
    pub fn settle(&mut self, tokens: u64) {
        if !self.2.is_empty() {
            self.2.settle_tokens(tokens, crate::stats::clock_ms());
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.live.release();
        // Ended without reported usage (failed, refused, cancelled): the estimate comes back.
        self.settle(0);
    }
}

/// Why one attempt failed.
#[derive(Debug, Clone)]
pub struct AttemptError {
    pub class: ErrorClass,
    pub detail: String,
    pub retry_after: Option<HeaderValue>,
    /// A 429: how long the instance asked to be left alone.
    pub cooldown: Option<Duration>,
    /// The gateway itself could not make the attempt (out of file descriptors or memory): it
    /// says nothing about the instance, so health and statistics do not count it.
    pub local: bool,
}

impl AttemptError {
    pub fn new(class: ErrorClass, detail: impl Into<String>) -> Self {
        Self {
            class,
            detail: detail.into(),
            retry_after: None,
            cooldown: None,
            local: false,
        }
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The shared HTTP client.
#[derive(Clone)]
pub struct Upstream {
    client: Client<Connector, Full<Bytes>>,
}

thread_local! {
    /// One client per worker thread: its pooled connections are driven by that thread's
    /// runtime, so a request never waits on another thread. Leaked on purpose (one per
    /// thread, workers live as long as the process) so a request borrows it for free instead
    /// of cloning the client's handful of `Arc`s (~1 % of CPU per request, perf).
    static LOCAL: &'static Upstream = Box::leak(Box::new(Upstream::new()));
}

/// TLS settings shared by every client: system roots (the bundled webpki roots when the
/// system has none), rustls with ring.
fn tls() -> &'static rustls::ClientConfig {
    static TLS: OnceLock<rustls::ClientConfig> = OnceLock::new();
    TLS.get_or_init(|| {
        // Several crates may race to install a provider; losing the race is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!("no system CA certificates; using the bundled webpki roots");
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        // ALPN (h2, http/1.1) is set by the connector builder below.
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth()
    })
}

/// Idle keep-alive connections kept per upstream host, per worker. After a burst of 3,000
/// streams the old 1,024 held 2,048 idle sockets (and their buffers) to one upstream for the
/// 90 s idle timeout; 128 still covers the concurrency one worker keeps on one host in every
/// benchmark (bench/run.sh), and a connection beyond it is closed when its request ends.
const MAX_IDLE_PER_HOST: usize = 128;

impl Upstream {
    /// A new client; requests use [`Upstream::local`], one per worker thread.
    fn new() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls().clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Self { client }
    }

    /// This thread's client.
    pub fn local() -> &'static Self {
        LOCAL.with(|client| *client)
    }

    /// Send one request and wait for the response head, at most `timeout`.
    pub async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<http::Response<Incoming>, AttemptError> {
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Err(_) => Err(AttemptError::new(
                ErrorClass::Timeout,
                format!("no response within {} ms", timeout.as_millis()),
            )),
            Ok(Err(e)) => Err(transport_error(&e)),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// Classify a transport failure and describe it with its causes.
pub fn transport_error(e: &(dyn std::error::Error + 'static)) -> AttemptError {
    let connect = e
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .is_some_and(hyper_util::client::legacy::Error::is_connect);
    let mut detail = e.to_string();
    let mut source = e.source();
    let (mut timed_out, mut local) = (false, false);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
            local |= io.raw_os_error().is_some_and(is_local_exhaustion);
        }
        source = s.source();
    }
    let class = if timed_out {
        ErrorClass::Timeout
    } else if connect {
        ErrorClass::Connect
    } else {
        ErrorClass::Server
    };
    AttemptError {
        local,
        ..AttemptError::new(class, detail)
    }
}

/// errno values that mean this process ran out of something (EMFILE, ENFILE, ENOBUFS,
/// ENOMEM), not that the upstream failed: ejecting healthy instances for them would turn a
/// local overload into an outage (seen at 10,000 open streams with a 20,000-descriptor limit).
fn is_local_exhaustion(errno: i32) -> bool {
    matches!(errno, 12 | 23 | 24 | 105)
}

/// Read a whole (non-streamed) body, at most `cap` bytes, before `deadline`.
pub async fn read_body(
    mut body: Incoming,
    cap: usize,
    deadline: tokio::time::Instant,
) -> Result<Bytes, AttemptError> {
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(AttemptError::new(
                    ErrorClass::Timeout,
                    "response body did not finish in time",
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(transport_error(&e)),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let total = first.as_ref().map_or(0, Bytes::len) + buf.len() + data.len();
        if total > cap {
            return Err(AttemptError::new(
                ErrorClass::Malformed,
                format!("response body exceeds {cap} bytes"),
            ));
        }
        // The common case is one frame: keep it without copying.
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(previous) => {
                buf.extend_from_slice(&previous);
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose cause is an `io::Error`, like hyper-util's connect errors.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("tcp open error")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn running_out_of_descriptors_is_the_gateways_problem_not_the_instances() {
        let emfile = transport_error(&Wrapped(std::io::Error::from_raw_os_error(24)));
        assert!(emfile.local, "{}", emfile.detail);
        assert!(
            emfile.detail.contains("tcp open error: "),
            "{}",
            emfile.detail
        );
        let refused = transport_error(&Wrapped(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(!refused.local);
        let timeout = transport_error(&Wrapped(std::io::Error::from(std::io::ErrorKind::TimedOut)));
        assert_eq!((timeout.class, timeout.local), (ErrorClass::Timeout, false));
    }
}
