//! Accepting connections, and the bounds that keep a slow or silent client from holding one
//! forever (slowloris):
//! - before anything else, the first bytes must arrive within `[server] header_timeout`
//!   (they tell HTTP/1.1 from HTTP/2's prior-knowledge preface, which hyper-util's `auto`
//!   builder would wait for without a bound);
//! - HTTP/1.1: hyper's `header_read_timeout` (the same `header_timeout`) bounds each request's
//!   headers and, since its timer starts as soon as the connection waits for a request, how
//!   long an idle keep-alive connection is kept;
//! - HTTP/2: keep-alive pings close a connection whose peer stopped answering, and a
//!   connection with no request open for `header_timeout` is sent GOAWAY and closed (a peer
//!   that answers pings but never asks for anything holds nothing for long);
//! - both: a request body must arrive whole within `[server] body_timeout` ([`Deadline`]; the
//!   edge answers 408).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

mod idle;
use idle::Activity;

use crate::config::Config;

/// What a client speaking HTTP/2 with prior knowledge sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// HTTP/2 keep-alive: a ping after this long without frames, the connection closed if it is not
/// answered within [`H2_PING_TIMEOUT`] (a peer that vanished without a FIN).
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// HTTP/2 header block limit (hyper's default is 16 MiB); HTTP/1.1's is hyper's ~400 KiB
/// read buffer. An API request's headers are a few hundred bytes.
const H2_MAX_HEADER_LIST: u32 = 64 << 10;

/// The connection-level settings, read from the config when `serve` starts.
#[derive(Debug, Clone, Copy)]
pub struct Edge {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

impl Edge {
    pub fn of(config: &Config) -> Self {
        Self {
            header_timeout: config.header_timeout,
            body_timeout: config.body_timeout,
        }
    }
}

/// The open connections of one listener: [`Connections::shutdown`] asks each to finish its
/// requests and close, and resolves when all have. Each connection holds a receiver; the
/// sender's `closed` is "every connection is gone".
pub struct Connections(watch::Sender<bool>);

impl Connections {
    pub async fn shutdown(self) {
        self.0.send_replace(true);
        self.0.closed().await;
    }
}

/// Accept on `listener` until `shutdown` resolves, then stop accepting and hand back the open
/// connections (the caller shuts them down and bounds that wait).
pub async fn accept(
    listener: TcpListener,
    app: Router,
    edge: Edge,
    shutdown: impl Future<Output = ()>,
) -> Connections {
    let (graceful, _) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _peer)) => tcp,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning (what hyper and axum do).
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Small SSE frames and short replies must not wait for Nagle's algorithm.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        tokio::spawn(connection(tcp, app.clone(), edge, graceful.subscribe()));
    }
    Connections(graceful)
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serve one connection: sniff the protocol (bounded), then hand it to hyper until it ends,
/// or `closing` says the listener is shutting down (then finish what is open and close).
async fn connection(mut tcp: TcpStream, app: Router, edge: Edge, closing: watch::Receiver<bool>) {
    let (h2, first) = match tokio::time::timeout(edge.header_timeout, sniff(&mut tcp)).await {
        Ok(Ok(sniffed)) => sniffed,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "connection closed before a request");
            return;
        }
        Err(_) => {
            tracing::debug!(
                timeout_s = edge.header_timeout.as_secs_f64(),
                "no request within header_timeout: connection closed"
            );
            return;
        }
    };
    let io = TokioIo::new(Prefixed {
        first,
        at: 0,
        inner: tcp,
    });
    let body_timeout = edge.body_timeout;
    let result = if h2 {
        // HTTP/1.1's idle bound is hyper's header_read_timeout; HTTP/2 has none, so the
        // requests open on the connection are counted and an idle spell ends it.
        let activity = Arc::new(Activity::default());
        let service = TowerToHyperService::new(DeadlineService {
            app,
            body_timeout,
            activity: Some(Arc::clone(&activity)),
        });
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(H2_PING_INTERVAL))
            .keep_alive_timeout(H2_PING_TIMEOUT)
            .max_header_list_size(H2_MAX_HEADER_LIST);
        let conn = std::pin::pin!(builder.serve_connection(io, service));
        let idle = activity.idle_for(edge.header_timeout);
        drive(conn, closing, idle, |c| c.graceful_shutdown()).await
    } else {
        let service = TowerToHyperService::new(DeadlineService {
            app,
            body_timeout,
            activity: None,
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(Some(edge.header_timeout))
            .keep_alive(true);
        let conn = std::pin::pin!(builder.serve_connection(io, service));
        drive(conn, closing, std::future::pending(), |c| {
            c.graceful_shutdown()
        })
        .await
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Poll `conn` to its end; when the listener shuts down or `idle` resolves, ask it (once) to
/// finish its open requests and close.
async fn drive<C: Future<Output = Result<(), hyper::Error>>>(
    mut conn: Pin<&mut C>,
    mut closing: watch::Receiver<bool>,
    idle: impl Future<Output = ()>,
    graceful: impl FnOnce(Pin<&mut C>),
) -> Result<(), hyper::Error> {
    let idle = std::pin::pin!(idle);
    let why = tokio::select! {
        result = conn.as_mut() => return result,
        _ = closing.wait_for(|closing| *closing) => "shutting down",
        () = idle => "idle for header_timeout",
    };
    tracing::debug!(why, "closing the connection once its open requests finish");
    graceful(conn.as_mut());
    conn.await
}

/// `app`, its requests' bodies wrapped in a [`Deadline`]; on HTTP/2, each request counted in
/// its connection's [`Activity`] until its response body is done.
#[derive(Clone)]
struct DeadlineService {
    app: Router,
    body_timeout: Duration,
    activity: Option<Arc<Activity>>,
}

impl tower_service::Service<http::Request<Incoming>> for DeadlineService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = idle::Tracked<<Router as tower_service::Service<http::Request<Body>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::<http::Request<Body>>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, req: http::Request<Incoming>) -> Self::Future {
        let timeout = self.body_timeout;
        let active = self.activity.as_ref().map(Activity::begin);
        let req = req.map(|body| Body::new(Deadline::new(body, timeout)));
        idle::Tracked::new(self.app.call(req), active)
    }
}

/// Read until the first bytes either complete HTTP/2's preface or leave it: `(is_h2, bytes
/// read)`. An HTTP/1.1 request leaves it at its first or second byte.
async fn sniff(tcp: &mut TcpStream) -> io::Result<(bool, Bytes)> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let n = tcp.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let seen = buf.len().min(H2_PREFACE.len());
        if buf[..seen] != H2_PREFACE[..seen] {
            return Ok((false, Bytes::from(buf)));
        }
        if seen == H2_PREFACE.len() {
            return Ok((true, Bytes::from(buf)));
        }
    }
}

/// A stream whose first bytes were already read: they come out first.
struct Prefixed {
    first: Bytes,
    at: usize,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.first.len() {
            let n = (this.first.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.first[this.at..this.at + n]);
            this.at += n;
            if this.at == this.first.len() {
                this.first = Bytes::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The body did not arrive whole within `[server] body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs_f64())]
pub struct BodyTimeout(pub Duration);

/// A request body that must end within a deadline counted from its headers. The timer is only
/// made once a read would wait: a body that came with its headers (almost every API request)
/// costs no timer at all.
pub struct Deadline {
    body: Incoming,
    deadline: Instant,
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    fn new(body: Incoming, limit: Duration) -> Self {
        Self {
            body,
            deadline: Instant::now() + limit,
            limit,
            sleep: None,
        }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep =
            (this.sleep).get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit)))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
