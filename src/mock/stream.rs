//! Streamed (SSE) replies for chat and legacy completions: a body produced chunk by chunk,
//! paced with `tokio::time::sleep`, that counts chunks and completion in the stats and holds
//! the request's in-flight guard until it ends or the client goes away.
//!
//! Event order: (chat only) a role chunk; one chunk per content word; a finish chunk with
//! `finish_reason: "stop"`; a usage chunk with `choices: []` if asked for; `data: [DONE]`.
//! A [`StreamFault`] cuts it short after the role chunk and N content chunks (at most all of
//! them): the connection drops, the stream goes silent until the mock stops, or (instead of
//! any content) an error event ends it.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::header::CACHE_CONTROL;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use super::behavior::StreamFault;
use super::error::raw_response;
use super::lifecycle::Lifecycle;
use super::reply::{piece, usage};
use super::stats::{InFlight, MockStats};

/// Which object the chunks are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamKind {
    Chat,
    Completion,
}

/// Everything a streamed reply needs to know.
#[derive(Debug)]
pub(crate) struct StreamPlan {
    pub(crate) kind: StreamKind,
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) name: String,
    pub(crate) chunks: u32,
    pub(crate) interval: Option<Duration>,
    pub(crate) include_usage: bool,
    pub(crate) prompt_tokens: u64,
    pub(crate) fault: Option<StreamFault>,
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Role,
    Content(u32),
    Finish,
    Usage,
    Done,
    /// Faults: an error event, a dropped connection, silence.
    ErrorEvent,
    Drop,
    Stall,
    End,
}

/// The error event `stream_error_event` sends.
const ERROR_EVENT: &[u8] =
    b"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n";

struct State {
    plan: StreamPlan,
    step: Step,
    stats: Arc<MockStats>,
    life: Arc<Lifecycle>,
    _in_flight: InFlight,
}

impl StreamPlan {
    /// One chunk object with the given choice (or none, for the usage chunk).
    fn chunk(&self, choice: Option<Value>, usage: Option<Value>) -> Value {
        let object = match self.kind {
            StreamKind::Chat => "chat.completion.chunk",
            StreamKind::Completion => "text_completion",
        };
        let mut chunk = json!({
            "id": self.id,
            "object": object,
            "created": 0,
            "model": self.model,
            "choices": choice.into_iter().collect::<Vec<_>>(),
        });
        if let (Some(usage), Some(map)) = (usage, chunk.as_object_mut()) {
            map.insert("usage".to_owned(), usage);
        }
        chunk
    }

    /// A choice carrying `text` (a chat delta or a completion text) and `finish_reason`.
    fn choice(&self, delta: Value, text: &str, finish: Option<&str>) -> Value {
        match self.kind {
            StreamKind::Chat => json!({
                "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish,
            }),
            StreamKind::Completion => json!({
                "index": 0, "text": text, "logprobs": null, "finish_reason": finish,
            }),
        }
    }

    fn first_step(&self) -> Step {
        match self.kind {
            StreamKind::Chat => Step::Role,
            StreamKind::Completion => self.after_content(0),
        }
    }

    /// The step after `sent` content chunks.
    fn after_content(&self, sent: u32) -> Step {
        let cut = |n: u32| sent >= n.min(self.chunks);
        match self.fault {
            Some(StreamFault::ErrorEvent) if sent == 0 => Step::ErrorEvent,
            Some(StreamFault::Drop(n)) if cut(n) => Step::Drop,
            Some(StreamFault::Stall(n)) if cut(n) => Step::Stall,
            _ if sent < self.chunks => Step::Content(sent + 1),
            _ => Step::Finish,
        }
    }
}

fn event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

impl State {
    /// Produces the next SSE event, or `None` after `[DONE]` (or a fault).
    async fn next(mut self) -> Option<(io::Result<Bytes>, Self)> {
        let plan = &self.plan;
        let (bytes, next) = match self.step {
            Step::Role => {
                let delta = json!({ "role": "assistant", "content": "" });
                let chunk = plan.chunk(Some(plan.choice(delta, "", None)), None);
                (event(&chunk), plan.after_content(0))
            }
            Step::Content(k) => {
                if let Some(pause) = plan.interval {
                    tokio::time::sleep(pause).await;
                }
                let text = piece(&plan.name, k);
                let delta = json!({ "content": text });
                let chunk = plan.chunk(Some(plan.choice(delta, &text, None)), None);
                self.stats.count_chunk();
                (event(&chunk), plan.after_content(k))
            }
            Step::Finish => {
                let chunk = plan.chunk(Some(plan.choice(json!({}), "", Some("stop"))), None);
                let next = if plan.include_usage {
                    Step::Usage
                } else {
                    Step::Done
                };
                (event(&chunk), next)
            }
            Step::Usage => {
                let usage = usage(plan.prompt_tokens, u64::from(plan.chunks));
                (event(&plan.chunk(None, Some(usage))), Step::Done)
            }
            Step::Done => {
                self.stats.count_stream_completed();
                (Bytes::from_static(b"data: [DONE]\n\n"), Step::End)
            }
            Step::ErrorEvent => {
                self.stats.count_failed();
                (Bytes::from_static(ERROR_EVENT), Step::End)
            }
            Step::Stall => {
                self.stats.count_failed();
                self.life.stopping().await;
                self.step = Step::End;
                return Some((Err(io::Error::other("mock stopped")), self));
            }
            Step::Drop => {
                // A body error makes the server abort the connection: no last chunk, no [DONE].
                // Pending once first, so the server flushes what was sent before it.
                self.stats.count_failed();
                tokio::task::yield_now().await;
                self.step = Step::End;
                return Some((Err(io::Error::other("stream_fail_after")), self));
            }
            Step::End => return None,
        };
        self.step = next;
        Some((Ok(bytes), self))
    }
}

/// A `text/event-stream` response that streams `plan`; counts the stream as started.
pub(crate) fn sse_response(
    plan: StreamPlan,
    stats: Arc<MockStats>,
    life: Arc<Lifecycle>,
    in_flight: InFlight,
) -> Response {
    stats.count_stream_started();
    let state = State {
        step: plan.first_step(),
        plan,
        stats,
        life,
        _in_flight: in_flight,
    };
    let body = Body::from_stream(futures_util::stream::unfold(state, State::next));
    let mut response = raw_response(StatusCode::OK, "text/event-stream", body);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn completion_stream_events() {
        let stats = Arc::new(MockStats::default());
        let plan = StreamPlan {
            kind: StreamKind::Completion,
            id: "cmpl-mock-1".into(),
            model: "m".into(),
            name: "n".into(),
            chunks: 2,
            interval: None,
            include_usage: true,
            prompt_tokens: 4,
            fault: None,
        };
        let guard = stats.in_flight();
        let response = sse_response(plan, Arc::clone(&stats), Lifecycle::new(), guard);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 5, "{text}");
        let parse = |e: &str| serde_json::from_str::<Value>(&e["data: ".len()..]).unwrap();
        assert_eq!(parse(events[0])["choices"][0]["text"], "[n] mock reply 1");
        assert_eq!(parse(events[1])["choices"][0]["text"], " 2");
        assert_eq!(parse(events[2])["choices"][0]["finish_reason"], "stop");
        assert_eq!(parse(events[3])["usage"]["total_tokens"], 6);
        assert_eq!(events[4], "data: [DONE]");
        let s = stats.snapshot();
        assert_eq!(
            (s.streams_started, s.streams_completed, s.chunks_sent),
            (1, 1, 2)
        );
        assert_eq!(s.in_flight, 0);
    }
}
