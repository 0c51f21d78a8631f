//! Connection lifecycle: the listener wrapper that keeps a handle on every accepted socket, so
//! the mock can really drop connections (`die_after`, `POST /mock/die`, shutdown, hanging
//! requests), and the stop/done signals the server and handlers wait on.
//!
//! Each accepted socket is duplicated (`try_clone`); the duplicate stays in a registry while
//! the connection lives, and "killing" a connection is `shutdown(Both)` on it, which the client
//! sees as the connection closing with no reply.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::state::lock;

/// Open connections and the stop/done flags of one server.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    conns: Mutex<Conns>,
    stop: watch::Sender<bool>,
    done: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Conns {
    next_id: u64,
    killed: bool,
    open: HashMap<u64, std::net::TcpStream>,
}

impl Lifecycle {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            conns: Mutex::new(Conns::default()),
            stop: watch::Sender::new(false),
            done: watch::Sender::new(false),
        })
    }

    /// Keeps a duplicate of `socket`; `None` once the server has been killed.
    fn register(&self, socket: std::net::TcpStream) -> Option<u64> {
        let mut conns = lock(&self.conns);
        if conns.killed {
            return None;
        }
        conns.next_id += 1;
        let id = conns.next_id;
        conns.open.insert(id, socket);
        Some(id)
    }

    fn forget(&self, id: u64) {
        lock(&self.conns).open.remove(&id);
    }

    /// Drops one connection: the client sees it close with no reply.
    pub(crate) fn kill(&self, id: ConnId) {
        if let Some(socket) = lock(&self.conns).open.get(&id.0) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Stop accepting; idle connections close, requests under way finish (hanging ones are
    /// dropped by their handler).
    pub(crate) fn stop_graceful(&self) {
        self.stop.send_replace(true);
    }

    /// Stop accepting and drop every connection now.
    pub(crate) fn stop_hard(&self) {
        {
            let mut conns = lock(&self.conns);
            conns.killed = true;
            for socket in conns.open.values() {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
        self.stop.send_replace(true);
    }

    /// Resolves once a stop (graceful or hard) has been asked for.
    pub(crate) async fn stopping(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// Called by the serve task when the server has fully stopped.
    pub(crate) fn mark_done(&self) {
        self.done.send_replace(true);
    }

    /// Resolves once the listener is closed and every connection has ended.
    pub(crate) async fn done(&self) {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }
}

/// Identifies the connection a request came on (axum `ConnectInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnId(pub(crate) u64);

impl Connected<IncomingStream<'_, MockListener>> for ConnId {
    fn connect_info(stream: IncomingStream<'_, MockListener>) -> Self {
        ConnId(stream.io().id)
    }
}

/// A TCP listener that sets `TCP_NODELAY` and registers every accepted connection.
#[derive(Debug)]
pub(crate) struct MockListener {
    inner: TcpListener,
    life: Arc<Lifecycle>,
}

impl MockListener {
    pub(crate) fn new(inner: TcpListener, life: Arc<Lifecycle>) -> Self {
        Self { inner, life }
    }

    fn track(&self, stream: TcpStream) -> io::Result<Option<MockConn>> {
        let _ = stream.set_nodelay(true);
        let std_stream = stream.into_std()?;
        let duplicate = std_stream.try_clone()?;
        let stream = TcpStream::from_std(std_stream)?;
        Ok(self.life.register(duplicate).map(|id| MockConn {
            inner: stream,
            id,
            life: Arc::clone(&self.life),
        }))
    }
}

impl Listener for MockListener {
    type Io = MockConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => match self.track(stream) {
                    Ok(Some(conn)) => return (conn, addr),
                    Ok(None) => {} // killed: drop it and wait for axum to stop accepting
                    Err(err) => tracing::debug!(error = %err, "mock: could not track connection"),
                },
                Err(err) if is_connection_error(&err) => {}
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "mock: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// An accepted connection; leaves the registry when dropped.
#[derive(Debug)]
pub(crate) struct MockConn {
    inner: TcpStream,
    id: u64,
    life: Arc<Lifecycle>,
}

impl Drop for MockConn {
    fn drop(&mut self) {
        self.life.forget(self.id);
    }
}

impl AsyncRead for MockConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for MockConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
