//! The HTTP edge: OpenAI-compatible routes, health endpoints, body limits, errors as
//! OpenAI-style JSON, graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use socket2::{Domain, Protocol, Socket, Type};

use crate::cache;
use crate::error::Error;
use crate::gateway::Gateway;
use crate::provider::Operation;
use crate::request::{ClientRequest, RequestOptions};
use crate::stats::clock_ms;
use crate::upstream::Upstream;

mod listen;

pub use listen::BodyTimeout;

/// The gateway's routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/messages", post(crate::ingress::messages))
        .route("/metrics", get(metrics))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/dashboard", get(crate::admin::dashboard))
        .merge(crate::admin::router(Arc::clone(&gateway)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(gateway)
}

/// Raise the soft limit on open files to the hard limit and return the limit now in force.
/// Every client connection and every upstream connection is a descriptor: 1,000 concurrent
/// clients take about 2,000 of them, past the 1,024 soft limit many systems start with (the
/// hard limit is usually far higher). Logged at debug; a failure is logged at warn and leaves
/// the limit as it was.
pub fn raise_open_files_limit() -> Option<u64> {
    let before = rlimit::Resource::NOFILE.get().ok();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => {
            tracing::debug!(
                soft_before = before.map(|(soft, _)| soft),
                hard = before.map(|(_, hard)| hard),
                soft = now,
                "open files limit"
            );
            Some(now)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open files limit");
            None
        }
    }
}

/// Bind `addr` once per worker with SO_REUSEPORT, so the kernel spreads connections over the
/// workers. With port 0 the first bind picks the port and the rest share it.
pub fn bind(addr: SocketAddr, workers: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(workers);
    let mut addr = addr;
    for _ in 0..workers.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Serve on one thread per listener, each running its own single-threaded runtime (thread per
/// core: a request is read, forwarded and answered on one thread, with no cross-thread wakeups
/// on its path). Returns when `shutdown` has resolved and every worker has drained.
pub async fn serve_workers(
    listeners: Vec<std::net::TcpListener>,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut done = Vec::with_capacity(listeners.len());
    for (i, listener) in listeners.into_iter().enumerate() {
        let (tx, rx) = tokio::sync::oneshot::channel::<std::io::Result<()>>();
        let gateway = Arc::clone(&gateway);
        let mut stop = stop_rx.clone();
        std::thread::Builder::new()
            .name(format!("switchyard-worker-{i}"))
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|rt| {
                        rt.block_on(async move {
                            let listener = tokio::net::TcpListener::from_std(listener)?;
                            let stopped = async move {
                                let _ = stop.wait_for(|s| *s).await;
                            };
                            serve(listener, gateway, stopped, drain).await
                        })
                    });
                if let Err(e) = &result {
                    tracing::error!(worker = i, error = %e, "worker stopped with an error");
                }
                let _ = tx.send(result);
            })?;
        done.push(rx);
    }
    shutdown.await;
    tracing::info!(
        drain_s = drain.as_secs(),
        "shutting down: draining in-flight requests"
    );
    let _ = stop_tx.send(true);
    let mut result = Ok(());
    for rx in done {
        if let Ok(Err(e)) = rx.await {
            result = Err(e);
        }
    }
    result
}

/// Serve until `shutdown` resolves, then stop accepting and wait up to `drain` for in-flight
/// requests (streams included) to finish. The edge's timeouts (`[server] header_timeout`,
/// `body_timeout`) are read from the config now.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let edge = listen::Edge::of(&gateway.snapshot().config);
    let graceful = listen::accept(listener, router(gateway), edge, shutdown).await;
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!("drain deadline passed; closing remaining connections");
        }
    }
    Ok(())
}

async fn chat(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    handle(gw, Operation::Chat, req).await
}

async fn completions(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    handle(gw, Operation::Completions, req).await
}

async fn embeddings(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    handle(gw, Operation::Embeddings, req).await
}

async fn handle(gw: Arc<Gateway>, op: Operation, req: Request) -> Response {
    let snap = gw.snapshot();
    let limit = snap.config.max_body_bytes;
    let (parts, body) = req.into_parts();
    let rid = crate::request::request_id(&parts.headers);
    let result = async {
        let mut options = RequestOptions::from_headers(&parts.headers, snap.clients.enabled())?;
        options.request_id = Arc::clone(&rid);
        let body = read_body(&parts.headers, body, limit).await?;
        let mut request = ClientRequest::parse(op, body)?;
        request.options = options;
        request.apply_tools(&snap.config.tools)?;
        let cached = match &snap.cache {
            Some(cache) if !request.stream => {
                let mode = cache::Mode::of(&parts.headers);
                let client = request.options.client.as_deref();
                let key = cache.key(op, client, &parts.headers, request.body());
                if mode == cache::Mode::Normal {
                    if let Some(hit) = cache.get(&key, clock_ms()) {
                        return Ok(cache_hit(&hit, &request.model, &rid));
                    }
                }
                (mode != cache::Mode::Bypass)
                    .then(|| (Arc::clone(cache), key, request.model.clone()))
            }
            _ => None,
        };
        let response = crate::proxy::forward(Upstream::local(), snap, request).await?;
        match cached {
            Some((cache, key, route)) if response.status() == StatusCode::OK => {
                store(&cache, key, route, response).await
            }
            _ => Ok(response),
        }
    }
    .await;
    let mut response = match result {
        Ok(response) => response,
        Err(e) => {
            if !matches!(e, Error::Upstream { .. }) {
                tracing::info!(target: "switchyard::access", request_id = &*rid, op = op.as_str(), status = e.status().as_u16(), error = %e, "request rejected");
            }
            e.into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&rid) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

pub(crate) const REQUEST_ID_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-request-id");

const CACHE_HEADER: http::HeaderName = http::HeaderName::from_static("x-switchyard-cache");

/// A reply from the response cache: no upstream call, `x-switchyard-attempts: 0`.
fn cache_hit(hit: &cache::Entry, model: &str, request_id: &str) -> Response {
    let mut response = Response::new(Body::from(hit.body.clone()));
    let headers = response.headers_mut();
    let json = HeaderValue::from_static("application/json");
    headers.insert(
        header::CONTENT_TYPE,
        hit.content_type.clone().unwrap_or(json),
    );
    for (name, value) in [
        ("x-switchyard-route", &hit.route),
        ("x-switchyard-instance", &hit.instance),
    ] {
        if let Some(v) = value {
            headers.insert(http::HeaderName::from_static(name), v.clone());
        }
    }
    headers.insert("x-switchyard-attempts", HeaderValue::from(0));
    headers.insert(CACHE_HEADER, HeaderValue::from_static("hit"));
    tracing::info!(target: "switchyard::access", request_id, route = model, status = 200, outcome = "cache_hit", "request");
    response
}

/// Keep a 200 non-streamed reply (its body is already whole in memory) and pass it on.
async fn store(
    cache: &cache::ResponseCache,
    key: cache::Key,
    route: String,
    response: Response,
) -> Result<Response, Error> {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| Error::Upstream {
            route,
            class: crate::provider::ErrorClass::Malformed,
            detail: format!("the reply could not be read: {e}"),
            retry_after: None,
            attempts: Vec::new(),
            headroom: None,
        })?;
    let header = |name: &str| parts.headers.get(name).cloned();
    let reply = cache::Reply {
        body: bytes.clone(),
        content_type: header("content-type"),
        route: header("x-switchyard-route"),
        instance: header("x-switchyard-instance"),
    };
    cache.put(key, reply, clock_ms());
    parts
        .headers
        .insert(CACHE_HEADER, HeaderValue::from_static("miss"));
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// The request body, whole: 413 as soon as it passes `limit` (a declared `Content-Length` is
/// refused before a byte is read; a chunked body when its running total passes), 408 when it
/// did not arrive within `[server] body_timeout` ([`BodyTimeout`], from the edge's body wrapper).
pub(crate) async fn read_body(
    headers: &http::HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Error> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::PayloadTooLarge(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Error::PayloadTooLarge(limit))
        }
        Err(e) => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*e);
            while let Some(c) = cause {
                if let Some(BodyTimeout(after)) = c.downcast_ref::<BodyTimeout>() {
                    return Err(Error::RequestTimeout(*after));
                }
                cause = c.source();
            }
            Err(Error::BadRequest(format!(
                "could not read the request body: {e}"
            )))
        }
    }
}

async fn models(State(gw): State<Arc<Gateway>>) -> Response {
    json(StatusCode::OK, gw.snapshot().models_json.clone())
}

/// `GET /metrics`: OpenMetrics text, open like `/healthz` (scrapers carry no token).
async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    if !gw.snapshot().config.telemetry.metrics {
        let path = "/metrics (off: [global] enable_metrics = false)".to_owned();
        let method = "GET".to_owned();
        return Error::NotFound { method, path }.into_response();
    }
    let mut response = Response::new(Body::from(crate::metrics::render(&gw)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

async fn healthz() -> Response {
    json(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#))
}

async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let snap = gw.snapshot();
    let usable = snap.usable_instances();
    let status = if usable > 0 && !snap.routes.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
        "routes": snap.routes.len(),
        "instances": snap.instances.len(),
        "usable_instances": usable,
    });
    json(status, Bytes::from(body.to_string()))
}

async fn not_found(req: Request) -> Response {
    Error::NotFound {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
    }
    .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    Error::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
    }
    .into_response()
}

fn json(status: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn the_open_files_soft_limit_is_raised_to_the_hard_limit() {
        use rlimit::Resource;
        let (_, hard) = Resource::NOFILE.get().unwrap();
        // One below the hard limit: lower than it was, never low enough to starve a test
        // running beside this one.
        Resource::NOFILE.set(hard - 1, hard).unwrap();
        assert_eq!(super::raise_open_files_limit(), Some(hard));
        assert_eq!(Resource::NOFILE.get().unwrap(), (hard, hard));
        // Already at the hard limit: nothing to do.
        assert_eq!(super::raise_open_files_limit(), Some(hard));
    }
}
