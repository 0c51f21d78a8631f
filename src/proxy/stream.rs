//! Streaming replies: Server-Sent Events forwarded chunk by chunk as they arrive, never
//! buffered whole. The first chunk is awaited before anything reaches the client, so an
//! instance that stalls or answers garbage before its first event is failed over like any
//! other. After that the stream is committed: a later upstream failure ends it with an
//! OpenAI-style error event and `[DONE]`.
//!
//! A light scanner watches the `data:` lines going past for `[DONE]` and `usage`, without
//! re-framing or copying the chunks it forwards.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::reply::{self, Usage};
use super::{Trace, add_trace_headers, log_done};
use crate::error::Error;
use crate::provider::ErrorClass;
use crate::snapshot::Snapshot;
use crate::stats::Outcome;
use crate::upstream::{AttemptError, InFlight, transport_error};

/// Longest partial SSE line kept between chunks (1 MiB); longer lines are not scanned.
const MAX_LINE: usize = 1 << 20;
const DONE: &[u8] = b"data: [DONE]\n\n";

pub(super) async fn start(
    status: StatusCode,
    mut body: Incoming,
    guard: InFlight,
    snap: &Arc<Snapshot>,
    trace: &Trace,
    deadline: tokio::time::Instant,
    idle: Duration,
) -> Result<Response, AttemptError> {
    let first = match tokio::time::timeout_at(deadline, next_data(&mut body)).await {
        Err(_) => {
            return Err(AttemptError::new(
                ErrorClass::Timeout,
                "no stream event before the timeout",
            ));
        }
        Ok(None) => {
            return Err(AttemptError::new(
                ErrorClass::Malformed,
                "stream ended before its first event",
            ));
        }
        Ok(Some(Err(e))) => return Err(transport_error(&e)),
        Ok(Some(Ok(chunk))) => chunk,
    };
    if !looks_like_sse(&first) {
        return Err(AttemptError::new(
            ErrorClass::Malformed,
            format!(
                "stream is not Server-Sent Events: {}",
                reply::snippet(&first)
            ),
        ));
    }
    let mut scan = Scan::default();
    scan.feed(&first);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    add_trace_headers(&mut headers, trace, guard.instance());
    let attempt_ttft = guard.since().elapsed();
    let live = Live {
        body,
        guard,
        snap: Arc::clone(snap),
        trace: trace.for_stream(),
        ttft: trace.started.elapsed(),
        attempt_ttft,
        idle,
        scan,
        finished: false,
    };
    let body = futures_util::stream::unfold(State::First(first, live), next);
    let mut out = Response::new(Body::from_stream(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

enum State {
    First(Bytes, Live),
    Live(Live),
    Done,
}

async fn next(state: State) -> Option<(Result<Bytes, Infallible>, State)> {
    let mut live = match state {
        State::First(first, live) => return Some((Ok(first), State::Live(live))),
        State::Live(live) => live,
        State::Done => return None,
    };
    match tokio::time::timeout(live.idle, next_data(&mut live.body)).await {
        Ok(Some(Ok(chunk))) => {
            live.scan.feed(&chunk);
            Some((Ok(chunk), State::Live(live)))
        }
        Ok(None) if live.scan.done => {
            live.finish(End::Clean);
            None
        }
        Ok(None) => {
            let e = AttemptError::new(
                ErrorClass::Malformed,
                "upstream closed the stream before [DONE]",
            );
            Some((Ok(live.fail(e)), State::Done))
        }
        Ok(Some(Err(e))) => Some((Ok(live.fail(transport_error(&e))), State::Done)),
        Err(_) => {
            let e = AttemptError::new(
                ErrorClass::Timeout,
                format!("stream stalled: no data for {} ms", live.idle.as_millis()),
            );
            Some((Ok(live.fail(e)), State::Done))
        }
    }
}

/// A committed stream: everything needed to account for it when it ends.
struct Live {
    body: Incoming,
    guard: InFlight,
    snap: Arc<Snapshot>,
    trace: Trace,
    /// First event, from the request's start (what the access log reports).
    ttft: Duration,
    /// This attempt's first event, from its dispatch (what the balancer learns).
    attempt_ttft: Duration,
    idle: Duration,
    scan: Scan,
    finished: bool,
}

/// How a committed stream ended.
enum End<'a> {
    Clean,
    /// The upstream failed after the first event.
    Failed(&'a AttemptError),
    /// The client went away mid-stream: not the instance's fault.
    ClientClosed,
}

impl Live {
    /// Record the end of the stream, once.
    fn finish(&mut self, end: End<'_>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let instance = self.guard.instance();
        let (outcome, label) = match end {
            End::Clean => (self.scan.usage.outcome(), "ok"),
            End::ClientClosed => (self.scan.usage.outcome(), "client_closed"),
            End::Failed(e) => {
                tracing::warn!(
                    route = %self.trace.route,
                    instance = %instance.spec.id,
                    class = e.class.as_str(),
                    detail = %e.detail,
                    "stream failed after it started"
                );
                (Outcome::Failure(e.class), "stream_failed")
            }
        };
        let started = self.guard.since();
        super::record(
            &self.snap,
            instance,
            outcome,
            started,
            Some(self.attempt_ttft),
        );
        let usage = Some(self.scan.usage);
        log_done(
            &self.trace,
            instance,
            StatusCode::OK,
            true,
            usage,
            Some(self.ttft),
            label,
        );
    }

    /// End the stream with an error event and `[DONE]`.
    fn fail(&mut self, e: AttemptError) -> Bytes {
        self.finish(End::Failed(&e));
        let error = Error::Upstream {
            route: self.trace.route.to_string(),
            class: e.class,
            detail: format!("instance {:?}: {}", self.guard.instance().spec.id, e.detail),
            retry_after: None,
            attempts: Vec::new(),
        };
        let mut out = Vec::with_capacity(64 + DONE.len());
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&error.body());
        out.extend_from_slice(b"\n\n");
        out.extend_from_slice(DONE);
        Bytes::from(out)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.finish(End::ClientClosed);
    }
}

/// The next data frame of a body (trailers skipped).
async fn next_data(body: &mut Incoming) -> Option<Result<Bytes, hyper::Error>> {
    loop {
        match body.frame().await? {
            Ok(frame) => match frame.into_data() {
                Ok(data) => return Some(Ok(data)),
                Err(_) => continue,
            },
            Err(e) => return Some(Err(e)),
        }
    }
}

fn looks_like_sse(chunk: &[u8]) -> bool {
    let text = chunk.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(chunk);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    [&b"data:"[..], b":", b"event:", b"id:", b"retry:"]
        .iter()
        .any(|p| text.starts_with(p))
        || text.is_empty()
}

/// Watches SSE lines for `[DONE]` and usage.
#[derive(Default)]
struct Scan {
    partial: Vec<u8>,
    done: bool,
    usage: Usage,
}

impl Scan {
    fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
            let (line, rest) = chunk.split_at(pos);
            chunk = &rest[1..];
            if self.partial.is_empty() {
                self.line(line);
            } else {
                let mut joined = std::mem::take(&mut self.partial);
                joined.extend_from_slice(line);
                self.line(&joined);
            }
        }
        if self.partial.len() + chunk.len() <= MAX_LINE {
            self.partial.extend_from_slice(chunk);
        } else {
            self.partial.clear();
        }
    }

    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data == b"[DONE]" {
            self.done = true;
        } else if contains(data, b"\"usage\"") {
            if let Some(usage) = reply::usage_in_event(data) {
                self.usage = usage;
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_usage_and_done_across_chunk_boundaries() {
        let events = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n\
                      data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\r\n\r\n\
                      data: [DONE]\n\n";
        for split in 0..events.len() {
            let mut scan = Scan::default();
            scan.feed(&events.as_bytes()[..split]);
            assert_eq!(scan.done, split >= events.len() - 1, "split at {split}");
            scan.feed(&events.as_bytes()[split..]);
            assert!(scan.done, "split at {split}");
            assert_eq!(
                scan.usage,
                Usage {
                    prompt_tokens: 5,
                    completion_tokens: 2
                }
            );
        }
    }

    #[test]
    fn recognises_sse_and_rejects_garbage() {
        assert!(looks_like_sse(b"data: {}\n\n"));
        assert!(looks_like_sse(b": keep-alive\n\n"));
        assert!(looks_like_sse(b"\n\nevent: x\n"));
        assert!(!looks_like_sse(b"this is not json <<<"));
        assert!(!looks_like_sse(b"{\"error\":1}"));
    }
}
