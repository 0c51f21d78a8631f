//! How many requests an HTTP/2 connection has open, so that a connection with none for a
//! while can be closed: [`Activity`] counts them, [`Tracked`] holds one count from the request's
//! arrival until its response body is finished or dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::Notify;

/// The requests open on one connection; every change is signalled.
#[derive(Debug, Default)]
pub(super) struct Activity {
    open: AtomicUsize,
    changed: Notify,
}

impl Activity {
    /// One more request open until the returned guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> Active {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
        Active(Arc::clone(self))
    }

    /// Resolves once no request has been open for `limit` straight.
    pub(super) async fn idle_for(&self, limit: Duration) {
        loop {
            // Made before the count is read: a change after the read still wakes it
            // (`notify_one` leaves a permit when nobody waits).
            let changed = self.changed.notified();
            if self.open.load(Ordering::Relaxed) == 0 {
                tokio::select! {
                    () = tokio::time::sleep(limit) => return,
                    () = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

/// One open request of an [`Activity`].
#[derive(Debug)]
pub(super) struct Active(Arc<Activity>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.changed.notify_one();
    }
}

/// A service future whose response body carries the request's [`Active`] (when counted).
pub(super) struct Tracked<F> {
    inner: F,
    active: Option<Active>,
}

impl<F> Tracked<F> {
    pub(super) fn new(inner: F, active: Option<Active>) -> Self {
        Self { inner, active }
    }
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let response = ready!(Pin::new(&mut this.inner).poll(cx));
        Poll::Ready(response.map(|r| match this.active.take() {
            Some(active) => r.map(|body| {
                Body::new(Held {
                    body,
                    _active: active,
                })
            }),
            None => r,
        }))
    }
}

/// A response body that keeps its request counted until it ends or is dropped.
struct Held {
    body: Body,
    _active: Active,
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_only_after_a_full_spell_with_nothing_open() {
        let activity = Arc::new(Activity::default());
        let limit = Duration::from_secs(10);
        let started = tokio::time::Instant::now();
        let request = activity.begin();
        let idle = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move { activity.idle_for(limit).await }
        });
        // Open for 25 s: never idle meanwhile.
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(!idle.is_finished());
        drop(request);
        // A second request 5 s into the quiet spell starts the count again.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(activity.begin());
        idle.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(40));
    }
}
