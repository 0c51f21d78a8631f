//! Anthropic Messages SSE events → OpenAI `chat.completion.chunk`s, one event at a time.
//!
//! Anthropic's stream: `message_start`, then per content block `content_block_start`,
//! `content_block_delta`s and `content_block_stop`, then `message_delta` (stop reason, output
//! tokens) and `message_stop`; `ping`s anywhere, an `error` event instead of the rest.
//! OpenAI's: a first chunk with `delta.role`, content and tool-call deltas, a chunk with
//! `finish_reason`, and a last chunk with `usage` and no choices.

use serde_json::{Value, json};

use super::TranslateError;
use super::response::{Usage, finish_reason};

/// Event types that carry data this translator reads; others are skipped before parsing,
/// as Anthropic asks of clients ("new event types may be added").
const EVENTS: [&str; 7] = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "error",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No `message_start` yet: nothing to attach a chunk's id to.
    AwaitingStart,
    Streaming,
    /// `message_stop` seen; later events are ignored.
    Stopped,
}

/// What an Anthropic content block is, by its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// A `tool_use` block and its OpenAI tool-call index (tool calls count from 0; Anthropic's
    /// block indexes count text blocks too).
    Tool(u32),
    /// Text, thinking, or a kind OpenAI chunks do not carry (server tools).
    Other,
}

/// Turns one Anthropic stream into OpenAI chunks.
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    created: u64,
    id: String,
    phase: Phase,
    /// `(anthropic block index, kind)`, in order of `content_block_start`.
    blocks: Vec<(u64, Block)>,
    tool_calls: u32,
    usage: Usage,
    usage_seen: bool,
}

impl StreamTranslator {
    /// `model` is the name the client asked for, `created` the Unix time chunks report.
    pub fn new(model: &str, created: u64) -> Self {
        Self {
            model: model.to_owned(),
            created,
            id: String::new(),
            phase: Phase::AwaitingStart,
            blocks: Vec::new(),
            tool_calls: 0,
            usage: Usage::default(),
            usage_seen: false,
        }
    }

    /// Whether `message_stop` has been seen: a stream that ends without it was cut short.
    pub fn finished(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// Translate one SSE event (`event_type` is its `event:` line, `data` its data). An
    /// `error` event is [`TranslateError::Upstream`] with Anthropic's `error.type`.
    pub fn event(
        &mut self,
        event_type: Option<&str>,
        data: &[u8],
    ) -> Result<Vec<Value>, TranslateError> {
        if event_type.is_some_and(|t| !EVENTS.contains(&t)) {
            return Ok(Vec::new());
        }
        let event: Value = serde_json::from_slice(data).map_err(|e| {
            TranslateError::response(
                event_type.unwrap_or("event"),
                format!("data is not JSON ({e})"),
            )
        })?;
        let Some(kind) = event_type.or_else(|| event.get("type").and_then(Value::as_str)) else {
            return Err(TranslateError::response("event", "no event type"));
        };
        if kind == "error" {
            return Err(TranslateError::upstream(event.get("error")));
        }
        match (self.phase, kind) {
            (Phase::Stopped, _) => Ok(Vec::new()),
            (Phase::AwaitingStart, "message_start") => self.message_start(&event),
            (Phase::AwaitingStart, kind) if EVENTS.contains(&kind) => {
                Err(TranslateError::response(kind, "before message_start"))
            }
            (Phase::Streaming, "message_start") => {
                Err(TranslateError::response("message_start", "a second one"))
            }
            (_, "content_block_start") => self.block_start(&event),
            (_, "content_block_delta") => self.block_delta(&event),
            (_, "message_delta") => Ok(self.message_delta(&event)),
            (_, "message_stop") => {
                self.phase = Phase::Stopped;
                Ok(self.usage_chunk().into_iter().collect())
            }
            // content_block_stop, ping and unknown types.
            _ => Ok(Vec::new()),
        }
    }

    fn message_start(&mut self, event: &Value) -> Result<Vec<Value>, TranslateError> {
        let message = event
            .get("message")
            .filter(|m| m.is_object())
            .ok_or_else(|| {
                TranslateError::response("message_start.message", "expected an object")
            })?;
        self.id = message
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                TranslateError::response("message_start.message.id", "expected a string")
            })?
            .to_owned();
        self.usage_seen |= self.usage.update(message.get("usage"));
        self.phase = Phase::Streaming;
        Ok(vec![self.chunk(
            json!({ "role": "assistant", "content": "" }),
            None,
        )])
    }

    fn block_start(&mut self, event: &Value) -> Result<Vec<Value>, TranslateError> {
        let index = block_index(event, "content_block_start")?;
        let block = event.get("content_block").unwrap_or(&Value::Null);
        let at = |field: &str| format!("content_block_start.content_block{field}");
        match block.get("type").and_then(Value::as_str) {
            Some("tool_use") => {
                let field = |key: &str| {
                    block.get(key).and_then(Value::as_str).ok_or_else(|| {
                        TranslateError::response(at(&format!(".{key}")), "expected a string")
                    })
                };
                let (id, name) = (field("id")?, field("name")?);
                let call = self.tool_calls;
                self.tool_calls = self.tool_calls.saturating_add(1);
                self.blocks.push((index, Block::Tool(call)));
                let delta = json!({ "tool_calls": [{
                    "index": call,
                    "id": id,
                    "type": "function",
                    "function": { "name": name, "arguments": "" },
                }] });
                Ok(vec![self.chunk(delta, None)])
            }
            Some(kind) => {
                self.blocks.push((index, Block::Other));
                // A block may open with text already in it; it usually opens empty.
                let text = match kind {
                    "text" => block
                        .get("text")
                        .and_then(Value::as_str)
                        .map(|t| ("content", t)),
                    "thinking" => block
                        .get("thinking")
                        .and_then(Value::as_str)
                        .map(|t| ("reasoning_content", t)),
                    _ => None,
                };
                Ok(text
                    .filter(|(_, t)| !t.is_empty())
                    .map(|(key, t)| self.chunk(json!({ key: t }), None))
                    .into_iter()
                    .collect())
            }
            None => Err(TranslateError::response(at(".type"), "expected a string")),
        }
    }

    fn block_delta(&mut self, event: &Value) -> Result<Vec<Value>, TranslateError> {
        let index = block_index(event, "content_block_delta")?;
        let delta = event.get("delta").unwrap_or(&Value::Null);
        let text = |key: &str| {
            delta
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
        };
        let out = match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => text("text").map(|t| json!({ "content": t })),
            Some("thinking_delta") => text("thinking").map(|t| json!({ "reasoning_content": t })),
            Some("input_json_delta") => {
                let block = self
                    .blocks
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, b)| *b);
                match block {
                    Some(Block::Tool(call)) => text("partial_json").map(|args| {
                        json!({ "tool_calls": [{ "index": call, "function": { "arguments": args } }] })
                    }),
                    Some(Block::Other) => None,
                    None => {
                        return Err(TranslateError::response(
                            "content_block_delta.index",
                            format!("{index} names no started block"),
                        ));
                    }
                }
            }
            // signature_delta, citations_delta and later kinds.
            _ => None,
        };
        Ok(out
            .map(|delta| self.chunk(delta, None))
            .into_iter()
            .collect())
    }

    fn message_delta(&mut self, event: &Value) -> Vec<Value> {
        self.usage_seen |= self.usage.update(event.get("usage"));
        let stop = event
            .get("delta")
            .and_then(|d| d.get("stop_reason"))
            .and_then(Value::as_str);
        stop.map(|stop| self.chunk(json!({}), Some(finish_reason(stop))))
            .into_iter()
            .collect()
    }

    /// The last chunk, OpenAI's `stream_options.include_usage` shape: no choices, `usage`.
    fn usage_chunk(&self) -> Option<Value> {
        self.usage_seen.then(|| {
            json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.usage.to_openai(),
            })
        })
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason }],
        })
    }
}

fn block_index(event: &Value, kind: &str) -> Result<u64, TranslateError> {
    event
        .get("index")
        .and_then(Value::as_u64)
        .ok_or_else(|| TranslateError::response(format!("{kind}.index"), "expected an integer"))
}
