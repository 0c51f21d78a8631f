//! Streaming replies: Server-Sent Events forwarded chunk by chunk as they arrive, never
//! buffered whole.
//!
//! A stream is committed at its first *content* event: a chunk with non-empty content, tool
//! calls, a function call, a refusal or legacy `text`, a `finish_reason`, or `usage`; or
//! `data: [DONE]` (an empty completion). The events before it that carry nothing (a role-only
//! delta, empty `choices`, comments and keep-alives) are held back, at most
//! [`MAX_HELD_BYTES`] or [`MAX_HELD_EVENTS`] of them (past that the stream commits anyway).
//! Until the commit point nothing reaches the client, so every failure is the attempt's error
//! and the proxy fails over: a transport error, EOF, the deadline or the TTFT limit, a body
//! that is not SSE, an event that is not JSON, or an error event (`data: {"error": ...}`).
//! At the commit point the held-back events are sent first, in order, then everything as it
//! arrives; a later upstream failure ends the stream with an OpenAI-style error event and
//! `[DONE]`, recorded against the instance.
//!
//! Only the held-back events are parsed. After the commit point a light scanner watches the
//! `data:` lines going past for `[DONE]` and `usage`, without re-framing the chunks it
//! forwards. Chunks that arrive in a burst are joined into one write ([`gather`]); a paced
//! chunk is forwarded as it is, uncopied.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::translate::UpBody;
use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;

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

/// Stop holding back non-content events past this many bytes (64 KiB) and commit anyway.
const MAX_HELD_BYTES: usize = 64 << 10;
/// Stop holding back non-content events past this many events and commit anyway.
const MAX_HELD_EVENTS: usize = 32;
/// Most bytes of a burst gathered into one write to the client (64 KiB).
const GATHER_MAX: usize = 64 << 10;
/// Chunks closer together than this are a burst, gathered into one write (see [`gather`]).
const BURST_GAP: Duration = Duration::from_micros(500);

/// Await the stream's commit point (its first content event), then hand the client a
/// response that replays the held-back events and forwards the rest as it arrives. Every
/// failure before the commit point is this attempt's `Err`, so the proxy fails over.
///
/// `deadline` bounds the whole wait for the commit point; `ttft`, if given, bounds the time
/// from dispatch to it; `idle` bounds each gap between chunks after it.
#[expect(
    clippy::too_many_arguments,
    reason = "one attempt's state, passed straight from proxy::attempt"
)]
pub(super) async fn start(
    status: StatusCode,
    mut body: UpBody,
    guard: InFlight,
    snap: &Arc<Snapshot>,
    trace: &Trace,
    deadline: tokio::time::Instant,
    idle: Duration,
    ttft: Option<Duration>,
) -> Result<Response, AttemptError> {
    let mut scan = Scan::default();
    let limit = Limit::new(deadline, guard.since(), ttft);
    let first = until_commit(&mut body, limit, &mut scan).await?;
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
        ahead: None,
        last_chunk: Instant::now(),
        finished: false,
    };
    let body = futures_util::stream::unfold(State::First(first, live), next);
    let mut out = Response::new(Body::from_stream(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

enum State {
    /// Committed: the held-back events, up to and including the first content, go out first.
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
    let read = match live.ahead.take() {
        Some(end) => Ok(end),
        None => tokio::time::timeout(live.idle, next_data(&mut live.body)).await,
    };
    match read {
        Ok(Some(Ok(chunk))) => {
            let chunk = gather(&mut live, chunk).await;
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
    body: UpBody,
    guard: InFlight,
    snap: Arc<Snapshot>,
    trace: Trace,
    /// The commit point (first content), from the request's start (what the access log reports).
    ttft: Duration,
    /// This attempt's commit point, from its dispatch (what the balancer learns).
    attempt_ttft: Duration,
    idle: Duration,
    scan: Scan,
    /// What [`gather`] read past the chunks it joined: the end or an error, for the next call.
    ahead: Option<Option<Result<Bytes, hyper::Error>>>,
    /// When the last chunk came (bursts are gathered).
    last_chunk: Instant,
    finished: bool,
}

/// How a committed stream ended.
enum End<'a> {
    Clean,
    /// The upstream failed after the commit point.
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
        // Token limits: what the stream reported (usage, when the client asked for it).
        let used = self.scan.usage.prompt_tokens + self.scan.usage.completion_tokens;
        self.guard.settle(used);
        let instance = self.guard.instance();
        let (outcome, label) = match end {
            End::Clean => (self.scan.usage.outcome(), "ok"),
            End::ClientClosed => (self.scan.usage.outcome(), "client_closed"),
            End::Failed(e) => {
                tracing::warn!(
                    request_id = %self.trace.request_id,
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
            headroom: None,
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

/// The chunks of a burst (what the upstream wrote at once), in one write to the client.
///
/// hyper hands an upstream body over one chunk at a time, and its connection task decodes the
/// next chunk only once this one is taken. Forwarded as they come, the 16 chunks of a burst
/// are 16 writes and 16 wake-ups of the client, each chunk queued behind the writes of the
/// ones before it. So when chunks come close together (the last one less than [`BURST_GAP`]
/// ago), this lets the connection task run (it takes two yields of this task) and joins
/// whatever it decoded meanwhile, up to [`GATHER_MAX`] bytes. A paced stream (a model's
/// tokens, milliseconds apart) never gathers and pays nothing. An end or error found on the
/// way is kept in `live.ahead` for the next call.
async fn gather(live: &mut Live, first: Bytes) -> Bytes {
    let now = Instant::now();
    let burst = now.duration_since(live.last_chunk) < BURST_GAP;
    live.last_chunk = now;
    if !burst {
        return first;
    }
    let mut out: Option<BytesMut> = None;
    let mut misses = 0;
    while misses < 2 {
        tokio::task::yield_now().await;
        match next_data(&mut live.body).now_or_never() {
            None => misses += 1,
            Some(Some(Ok(more))) => {
                misses = 0;
                let buf = out.get_or_insert_with(|| BytesMut::from(&first[..]));
                buf.extend_from_slice(&more);
                if buf.len() >= GATHER_MAX {
                    break;
                }
            }
            Some(end) => {
                live.ahead = Some(end);
                break;
            }
        }
    }
    out.map_or(first, BytesMut::freeze)
}

/// The next data frame of a body (trailers skipped).
async fn next_data(body: &mut UpBody) -> Option<Result<Bytes, hyper::Error>> {
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

/// How long the wait for the commit point may take, and which limit ends it first.
#[derive(Clone, Copy)]
struct Limit {
    at: tokio::time::Instant,
    /// `Some(ttft)` when the TTFT limit is the earlier one.
    ttft: Option<Duration>,
}

impl Limit {
    fn new(deadline: tokio::time::Instant, dispatched: Instant, ttft: Option<Duration>) -> Self {
        let by_ttft = ttft.and_then(|t| Some((dispatched.checked_add(t)?, t)));
        match by_ttft {
            Some((at, t)) if tokio::time::Instant::from_std(at) < deadline => Self {
                at: tokio::time::Instant::from_std(at),
                ttft: Some(t),
            },
            _ => Self {
                at: deadline,
                ttft: None,
            },
        }
    }

    fn expired(self) -> AttemptError {
        let detail = match self.ttft {
            Some(t) => format!("no content within {} ms", t.as_millis()),
            None => "no stream content before the timeout".to_owned(),
        };
        AttemptError::new(ErrorClass::Timeout, detail)
    }
}

/// Read the stream up to its commit point: the first content-bearing event, `[DONE]`, or
/// [`MAX_HELD_BYTES`] / [`MAX_HELD_EVENTS`] of events without content. Returns the bytes read
/// so far (fed to `scan` too), or why this attempt failed before anything reached the client.
async fn until_commit(
    body: &mut UpBody,
    limit: Limit,
    scan: &mut Scan,
) -> Result<Bytes, AttemptError> {
    let mut held: Vec<Bytes> = Vec::new();
    let mut size = 0;
    let mut gate = Gate::default();
    loop {
        let chunk = match tokio::time::timeout_at(limit.at, next_data(body)).await {
            Err(_) => return Err(limit.expired()),
            Ok(None) => {
                let detail = if size == 0 {
                    "stream ended before its first event"
                } else {
                    "stream ended before its first content"
                };
                return Err(AttemptError::new(ErrorClass::Malformed, detail));
            }
            Ok(Some(Err(e))) => return Err(transport_error(&e)),
            Ok(Some(Ok(chunk))) => chunk,
        };
        if size == 0 && !looks_like_sse(&chunk) {
            return Err(not_sse(&chunk));
        }
        scan.feed(&chunk);
        size += chunk.len();
        let verdict = gate.feed(&chunk);
        held.push(chunk);
        match verdict {
            Verdict::Fail(e) => return Err(e),
            Verdict::Commit => break,
            Verdict::Hold if size >= MAX_HELD_BYTES || gate.events >= MAX_HELD_EVENTS => break,
            Verdict::Hold => {}
        }
    }
    Ok(match held.len() {
        1 => held.swap_remove(0),
        _ => Bytes::from(held.concat()),
    })
}

fn not_sse(bytes: &[u8]) -> AttemptError {
    AttemptError::new(
        ErrorClass::Malformed,
        format!(
            "stream is not Server-Sent Events: {}",
            reply::snippet(bytes)
        ),
    )
}

/// What one held-back event says about the stream.
#[derive(Debug)]
enum Verdict {
    /// No content yet: keep holding back.
    Hold,
    /// The commit point: content, a finish, usage or `[DONE]`.
    Commit,
    /// The attempt failed (an error event, a malformed event).
    Fail(AttemptError),
}

/// Splits the bytes before the commit point into SSE events and judges each one.
#[derive(Default)]
struct Gate {
    /// The line being read (bytes after the last newline).
    line: Vec<u8>,
    /// The `data:` lines of the event being read, joined by `\n`.
    data: Vec<u8>,
    has_data: bool,
    /// Whether the event being read has a line yet.
    open: bool,
    /// Events finished so far (comment-only blocks included).
    events: usize,
}

impl Gate {
    fn feed(&mut self, mut chunk: &[u8]) -> Verdict {
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
            let (line, rest) = chunk.split_at(pos);
            chunk = &rest[1..];
            let verdict = if self.line.is_empty() {
                self.line_done(line)
            } else {
                let mut joined = std::mem::take(&mut self.line);
                joined.extend_from_slice(line);
                self.line_done(&joined)
            };
            if !matches!(verdict, Verdict::Hold) {
                return verdict;
            }
        }
        self.line.extend_from_slice(chunk);
        Verdict::Hold
    }

    fn line_done(&mut self, line: &[u8]) -> Verdict {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if !std::mem::take(&mut self.open) {
                return Verdict::Hold;
            }
            self.events += 1;
            if !std::mem::take(&mut self.has_data) {
                return Verdict::Hold;
            }
            let data = std::mem::take(&mut self.data);
            return judge(&data);
        }
        self.open = true;
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        if line.starts_with(b":") {
            return Verdict::Hold;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => (&line[..colon], &line[colon + 1..]),
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data
                    .extend_from_slice(value.strip_prefix(b" ").unwrap_or(value));
                self.has_data = true;
                Verdict::Hold
            }
            b"event" | b"id" | b"retry" => Verdict::Hold,
            _ => Verdict::Fail(not_sse(line)),
        }
    }
}

/// One held-back event's data: `[DONE]` and content commit, an error event or a payload that
/// is not JSON fails the attempt, anything else (a role-only chunk, empty choices) is held.
fn judge(data: &[u8]) -> Verdict {
    if data == b"[DONE]" {
        return Verdict::Commit;
    }
    if data.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Hold;
    }
    let Ok(event) = serde_json::from_slice::<Value>(data) else {
        return Verdict::Fail(AttemptError::new(
            ErrorClass::Malformed,
            format!("stream event is not JSON: {}", reply::snippet(data)),
        ));
    };
    if let Some(error) = event.get("error").filter(|e| !e.is_null()) {
        return Verdict::Fail(error_event(error));
    }
    if carries_content(&event) {
        Verdict::Commit
    } else {
        Verdict::Hold
    }
}

/// Whether a chunk carries content: any choice with a non-empty `delta.content`,
/// `delta.tool_calls`, `delta.function_call`, `delta.refusal` or `text`, or a non-null
/// `finish_reason`; or the chunk has `usage`.
fn carries_content(event: &Value) -> bool {
    fn present(v: Option<&Value>) -> bool {
        v.is_some_and(|v| !v.is_null())
    }
    fn non_empty(v: Option<&Value>) -> bool {
        match v {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            Some(_) => true,
        }
    }
    if present(event.get("usage")) {
        return true;
    }
    let Some(choices) = event.get("choices").and_then(Value::as_array) else {
        return false;
    };
    choices.iter().any(|choice| {
        present(choice.get("finish_reason"))
            || non_empty(choice.get("text"))
            || choice.get("delta").is_some_and(|delta| {
                ["content", "tool_calls", "function_call", "refusal"]
                    .iter()
                    .any(|k| non_empty(delta.get(*k)))
            })
    })
}

/// An upstream's error event (`data: {"error": {...}}`) before any content: a server error,
/// or rate limiting when the error says so (code or status 429, a `rate_limit` code or type,
/// "rate limit" in the message).
fn error_event(error: &Value) -> AttemptError {
    let text = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or_default();
    let message = match error.as_str() {
        Some(s) => s,
        None => text("message"),
    };
    let is_429 = |k: &str| match error.get(k) {
        Some(Value::Number(n)) => n.as_u64() == Some(429),
        Some(Value::String(s)) => s.trim() == "429",
        _ => false,
    };
    let says_rate_limit = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.contains("rate_limit") || s.contains("rate limit") || s.contains("ratelimit")
    };
    let rate_limited = is_429("code")
        || is_429("status")
        || says_rate_limit(text("code"))
        || says_rate_limit(text("type"))
        || says_rate_limit(message);
    let shown = if message.is_empty() {
        error.to_string()
    } else {
        message.to_owned()
    };
    let detail = format!(
        "error event before the first content: {}",
        reply::snippet(shown.as_bytes())
    );
    if rate_limited {
        let mut e = AttemptError::new(ErrorClass::RateLimited, detail);
        e.cooldown = Some(crate::health::cooldown::DEFAULT_COOLDOWN);
        e
    } else {
        AttemptError::new(ErrorClass::Server, detail)
    }
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

    fn verdict(event: &str) -> Verdict {
        Gate::default().feed(event.as_bytes())
    }

    fn commits(event: &str) -> bool {
        match verdict(event) {
            Verdict::Commit => true,
            Verdict::Hold => false,
            Verdict::Fail(e) => panic!("{event}: failed: {} {}", e.class.as_str(), e.detail),
        }
    }

    fn fails(event: &str) -> AttemptError {
        match verdict(event) {
            Verdict::Fail(e) => e,
            other => panic!("{event}: {other:?}"),
        }
    }

    #[test]
    fn events_without_content_are_held_back() {
        let role = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
        assert!(!commits(role));
        assert!(!commits("data: {\"choices\":[],\"usage\":null}\n\n"));
        assert!(!commits(
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[]}}]}\n\n"
        ));
        assert!(!commits(": keep-alive\n\n"));
        assert!(!commits("event: message\nid: 1\nretry: 10\n\n"));
        assert!(!commits("data:\n\n"));
        // A complete content event not yet ended by its blank line is not judged yet.
        assert!(!commits(
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n"
        ));
    }

    #[test]
    fn content_finish_usage_and_done_commit() {
        let chunk = |choice: &str| format!("data: {{\"choices\":[{choice}]}}\n\n");
        assert!(commits(&chunk(r#"{"delta":{"content":"hi"}}"#)));
        assert!(commits(&chunk(
            r#"{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f"}}]}}"#
        )));
        assert!(commits(&chunk(
            r#"{"delta":{"function_call":{"name":"f"}}}"#
        )));
        assert!(commits(&chunk(r#"{"delta":{"refusal":"no"}}"#)));
        assert!(commits(&chunk(r#"{"text":"legacy","finish_reason":null}"#)));
        assert!(commits(&chunk(r#"{"delta":{},"finish_reason":"stop"}"#)));
        // The second choice has the content.
        assert!(commits(&chunk(
            r#"{"delta":{"role":"assistant"}},{"delta":{"content":"x"}}"#
        )));
        assert!(commits(
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":0}}\n\n"
        ));
        assert!(commits("data: [DONE]\n\n"));
        assert!(commits("data: [DONE]\r\n\r\n"));
    }

    #[test]
    fn a_role_chunk_then_content_commits_at_the_content_across_chunk_boundaries() {
        let events = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
                      : ping\n\n\
                      data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n";
        for split in 0..events.len() {
            let mut gate = Gate::default();
            let (a, b) = events.as_bytes().split_at(split);
            let first = gate.feed(a);
            assert!(matches!(first, Verdict::Hold), "split at {split}");
            assert!(matches!(gate.feed(b), Verdict::Commit), "split at {split}");
            assert_eq!(gate.events, 3, "split at {split}");
        }
    }

    #[test]
    fn error_events_and_garbage_fail_the_attempt() {
        let e =
            fails("data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n");
        assert_eq!(e.class, ErrorClass::Server);
        assert!(e.detail.contains("overloaded"), "{}", e.detail);
        assert_eq!(e.cooldown, None);
        for limited in [
            r#"{"error":{"message":"slow down","code":429}}"#,
            r#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"x"}}"#,
            r#"{"error":{"message":"Rate limit reached for requests"}}"#,
        ] {
            let e = fails(&format!("data: {limited}\n\n"));
            assert_eq!(e.class, ErrorClass::RateLimited, "{limited}");
            assert!(e.cooldown.is_some());
        }
        let e = fails("data: this is not json <<<\n\n");
        assert_eq!(e.class, ErrorClass::Malformed);
        assert!(e.detail.contains("not JSON"), "{}", e.detail);
        let e = fails("{\"choices\":[]}\n\n");
        assert_eq!(e.class, ErrorClass::Malformed);
        assert!(e.detail.contains("not Server-Sent Events"), "{}", e.detail);
    }

    #[test]
    fn the_earlier_of_deadline_and_ttft_limits_the_wait() {
        let now = Instant::now();
        let deadline = tokio::time::Instant::from_std(now + Duration::from_secs(10));
        let ttft = Limit::new(deadline, now, Some(Duration::from_millis(250)));
        assert_eq!(
            ttft.at,
            tokio::time::Instant::from_std(now + Duration::from_millis(250))
        );
        let e = ttft.expired();
        assert_eq!(e.class, ErrorClass::Timeout);
        assert_eq!(e.detail, "no content within 250 ms");
        let late = Limit::new(deadline, now, Some(Duration::from_secs(60)));
        assert_eq!((late.at, late.ttft), (deadline, None));
        assert_eq!(late.expired().class, ErrorClass::Timeout);
        let none = Limit::new(deadline, now, None);
        assert_eq!(none.at, deadline);
        let huge = Limit::new(deadline, now, Some(Duration::MAX));
        assert_eq!(huge.at, deadline);
    }
}
