//! Streamed replies in every dialect: a body produced chunk by chunk, paced with
//! `tokio::time::sleep`, that counts chunks and completion in the stats and holds the
//! request's in-flight guard until it ends or the client goes away.
//!
//! One step machine drives every dialect; each step is a [`Frame`] that the dialect encodes:
//! (chat only) a role frame; one frame per content word; a finish frame; a usage frame if asked
//! for; the end. OpenAI writes them as `chat.completion.chunk`s (or `text_completion`s) and
//! `data: [DONE]`; Anthropic as Messages events (`anthropic`); Gemini as
//! `GenerateContentResponse`s (`gemini`). A [`StreamFault`] cuts it short after the role frame
//! and N content frames (at most all of them): the connection drops, the stream goes silent
//! until the mock stops, or (instead of any content) an error event ends it.

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
use super::reply::{Length, piece, usage};
use super::stats::{InFlight, MockStats};
use super::{anthropic, gemini};

/// Which dialect, and which object, the stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// OpenAI `chat.completion.chunk`s.
    Chat,
    /// OpenAI legacy `text_completion`s.
    Completion,
    /// Anthropic Messages events.
    Messages,
    /// Gemini `GenerateContentResponse`s: SSE (`alt=sse`) or one JSON array.
    Gemini { sse: bool },
}

/// Everything a streamed reply needs to know.
#[derive(Debug)]
pub(crate) struct StreamPlan {
    pub(crate) kind: StreamKind,
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) name: String,
    pub(crate) length: Length,
    pub(crate) interval: Option<Duration>,
    pub(crate) include_usage: bool,
    pub(crate) prompt_tokens: u64,
    pub(crate) fault: Option<StreamFault>,
    /// Content chunks carry `"sent_us"` (`Behavior::stamp_chunks`).
    pub(crate) stamp: bool,
}

/// One thing a stream says, before a dialect writes it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Frame<'a> {
    /// The assistant's turn begins (chat dialects only).
    Role,
    /// Content chunk `k` (1-based).
    Content { k: u32, text: &'a str },
    /// The reply is complete: its finish reason.
    Finish,
    /// Token counts, when the client asked for them.
    Usage,
    /// The stream ends normally.
    Done,
    /// The stream ends with an error event (`stream_error_event`).
    Error,
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

/// The error event `stream_error_event` sends in OpenAI's dialect.
const ERROR_EVENT: &[u8] =
    b"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n";

/// How the frames of one stream become bytes.
#[derive(Debug)]
enum Encoder {
    OpenAi,
    Messages(anthropic::StreamEncoder),
    Gemini(gemini::StreamEncoder),
}

impl Encoder {
    fn new(plan: &StreamPlan) -> Self {
        match plan.kind {
            StreamKind::Chat | StreamKind::Completion => Self::OpenAi,
            StreamKind::Messages => Self::Messages(anthropic::StreamEncoder::new(plan)),
            StreamKind::Gemini { sse } => Self::Gemini(gemini::StreamEncoder::new(sse)),
        }
    }

    /// The bytes of `frame`; empty when the dialect says nothing for it.
    fn encode(&mut self, plan: &StreamPlan, frame: Frame<'_>) -> Bytes {
        match self {
            Self::OpenAi => match (frame, plan.openai_chunk(frame)) {
                (_, Some(chunk)) => event(&chunk),
                (Frame::Error, None) => Bytes::from_static(ERROR_EVENT),
                (_, None) => Bytes::from_static(b"data: [DONE]\n\n"),
            },
            Self::Messages(encoder) => encoder.encode(plan, frame),
            Self::Gemini(encoder) => encoder.encode(plan, frame),
        }
    }
}

struct State {
    plan: StreamPlan,
    step: Step,
    encoder: Encoder,
    stats: Arc<MockStats>,
    life: Arc<Lifecycle>,
    _in_flight: InFlight,
}

impl StreamPlan {
    /// The OpenAI chunk of `frame` (`Messages` streams use chat chunks as their source);
    /// `None` for the end and error frames.
    pub(crate) fn openai_chunk(&self, frame: Frame<'_>) -> Option<Value> {
        match frame {
            Frame::Role => {
                let delta = json!({ "role": "assistant", "content": "" });
                Some(self.chunk(Some(self.choice(delta, "", None)), None))
            }
            Frame::Content { text, .. } => {
                let delta = json!({ "content": text });
                let mut chunk = self.chunk(Some(self.choice(delta, text, None)), None);
                if let (true, Some(map)) = (self.stamp, chunk.as_object_mut()) {
                    map.insert("sent_us".to_owned(), json!(unix_micros()));
                }
                Some(chunk)
            }
            Frame::Finish => {
                let finish = self.length.finish_reason();
                Some(self.chunk(Some(self.choice(json!({}), "", Some(finish))), None))
            }
            Frame::Usage => {
                let usage = usage(self.prompt_tokens, u64::from(self.length.chunks));
                Some(self.chunk(None, Some(usage)))
            }
            Frame::Done | Frame::Error => None,
        }
    }

    /// One chunk object with the given choice (or none, for the usage chunk).
    fn chunk(&self, choice: Option<Value>, usage: Option<Value>) -> Value {
        let object = match self.kind {
            StreamKind::Completion => "text_completion",
            _ => "chat.completion.chunk",
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
            StreamKind::Completion => json!({
                "index": 0, "text": text, "logprobs": null, "finish_reason": finish,
            }),
            _ => json!({
                "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish,
            }),
        }
    }

    fn first_step(&self) -> Step {
        match self.kind {
            StreamKind::Chat | StreamKind::Messages => Step::Role,
            StreamKind::Completion | StreamKind::Gemini { .. } => self.after_content(0),
        }
    }

    /// The step after `sent` content chunks.
    fn after_content(&self, sent: u32) -> Step {
        let chunks = self.length.chunks;
        let cut = |n: u32| sent >= n.min(chunks);
        match self.fault {
            Some(StreamFault::ErrorEvent) if sent == 0 => Step::ErrorEvent,
            Some(StreamFault::Drop(n)) if cut(n) => Step::Drop,
            Some(StreamFault::Stall(n)) if cut(n) => Step::Stall,
            _ if sent < chunks => Step::Content(sent + 1),
            _ => Step::Finish,
        }
    }

    fn content_type(&self) -> &'static str {
        match self.kind {
            StreamKind::Gemini { sse: false } => "application/json",
            _ => "text/event-stream",
        }
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

impl State {
    /// Produces the next piece of the body, or `None` after the end (or a fault).
    async fn next(mut self) -> Option<(io::Result<Bytes>, Self)> {
        loop {
            let text;
            let (frame, next) = match self.step {
                Step::Role => (Frame::Role, self.plan.after_content(0)),
                Step::Content(k) => {
                    if let Some(pause) = self.plan.interval {
                        tokio::time::sleep(pause).await;
                    }
                    text = piece(&self.plan.name, k);
                    self.stats.count_chunk();
                    (
                        Frame::Content { k, text: &text },
                        self.plan.after_content(k),
                    )
                }
                Step::Finish => {
                    let next = if self.plan.include_usage {
                        Step::Usage
                    } else {
                        Step::Done
                    };
                    (Frame::Finish, next)
                }
                Step::Usage => (Frame::Usage, Step::Done),
                Step::Done => {
                    self.stats.count_stream_completed();
                    (Frame::Done, Step::End)
                }
                Step::ErrorEvent => {
                    self.stats.count_failed();
                    (Frame::Error, Step::End)
                }
                Step::Stall => {
                    self.stats.count_failed();
                    self.life.stopping().await;
                    self.step = Step::End;
                    return Some((Err(io::Error::other("mock stopped")), self));
                }
                Step::Drop => {
                    // A body error makes the server abort the connection: no last chunk, no
                    // end. Pending once first, so the server flushes what was sent before it.
                    self.stats.count_failed();
                    tokio::task::yield_now().await;
                    self.step = Step::End;
                    return Some((Err(io::Error::other("stream_fail_after")), self));
                }
                Step::End => return None,
            };
            let bytes = self.encoder.encode(&self.plan, frame);
            self.step = next;
            if !bytes.is_empty() {
                return Some((Ok(bytes), self));
            }
        }
    }
}

/// A streaming response (SSE, or a JSON array for Gemini without `alt=sse`) of `plan`;
/// counts the stream as started.
pub(crate) fn sse_response(
    plan: StreamPlan,
    stats: Arc<MockStats>,
    life: Arc<Lifecycle>,
    in_flight: InFlight,
) -> Response {
    stats.count_stream_started();
    let content_type = plan.content_type();
    let state = State {
        step: plan.first_step(),
        encoder: Encoder::new(&plan),
        plan,
        stats,
        life,
        _in_flight: in_flight,
    };
    let body = Body::from_stream(futures_util::stream::unfold(state, State::next));
    let mut response = raw_response(StatusCode::OK, content_type, body);
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
            length: Length::new(2, None),
            interval: None,
            include_usage: true,
            prompt_tokens: 4,
            fault: None,
            stamp: false,
        };
        let guard = stats.in_flight(crate::mock::request::Endpoint::Chat);
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

    #[tokio::test]
    async fn stamped_chat_chunks_say_when_they_were_written() {
        let stats = Arc::new(MockStats::default());
        let plan = StreamPlan {
            kind: StreamKind::Chat,
            id: "chatcmpl-mock-1".into(),
            model: "m".into(),
            name: "n".into(),
            length: Length::new(2, None),
            interval: None,
            include_usage: false,
            prompt_tokens: 4,
            fault: None,
            stamp: true,
        };
        let before = unix_micros();
        let guard = stats.in_flight(crate::mock::request::Endpoint::Chat);
        let response = sse_response(plan, Arc::clone(&stats), Lifecycle::new(), guard);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let after = unix_micros();
        let text = String::from_utf8(body.to_vec()).unwrap();
        let stamps: Vec<Option<u64>> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|e| *e != "[DONE]")
            .map(|e| serde_json::from_str::<Value>(e).unwrap()["sent_us"].as_u64())
            .collect();
        // role, two content chunks, finish: only the content chunks are stamped.
        assert_eq!(stamps.len(), 4, "{text}");
        assert_eq!((stamps[0], stamps[3]), (None, None), "{text}");
        for stamp in &stamps[1..3] {
            let stamp = stamp.unwrap();
            assert!(
                (before..=after).contains(&stamp),
                "{stamp} not in {before}..={after}"
            );
        }
    }
}
