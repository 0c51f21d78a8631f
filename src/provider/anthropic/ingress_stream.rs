//! OpenAI `chat.completion.chunk`s → Anthropic Messages SSE events, for ingress clients.
//!
//! The Messages stream is stricter than OpenAI's: `message_start` first; content blocks one at
//! a time, each `content_block_start`, deltas, `content_block_stop`; then one `message_delta`
//! with the stop reason and usage, and `message_stop`. OpenAI sends the finish reason and the
//! usage in separate chunks, so both wait for [`MessagesStreamWriter::finish`].

use serde_json::{Value, json};

use super::ingress::{stop_reason, usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing sent yet.
    Idle,
    /// `message_start` sent.
    Open,
    /// `message_stop` (or `error`) sent; nothing more follows.
    Done,
}

/// The content block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    None,
    Text {
        index: u64,
    },
    /// A `tool_use` block for OpenAI tool call `call`.
    Tool {
        index: u64,
        call: u64,
    },
}

type Event = (&'static str, Value);

/// Writes one Messages stream from one OpenAI chunk stream.
#[derive(Debug)]
pub struct MessagesStreamWriter {
    model: String,
    phase: Phase,
    block: Block,
    next_index: u64,
    /// OpenAI tool calls whose block is closed. A server that interleaves two calls' argument
    /// deltas (none known does) loses the late ones: a closed block cannot be reopened.
    closed_calls: Vec<u64>,
    called_tools: bool,
    finish_reason: Option<String>,
    usage: Option<Value>,
}

impl MessagesStreamWriter {
    /// `model` is the name `message_start` reports, the one the client asked for.
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            phase: Phase::Idle,
            block: Block::None,
            next_index: 0,
            closed_calls: Vec::new(),
            called_tools: false,
            finish_reason: None,
            usage: None,
        }
    }

    /// The events one OpenAI chunk makes, as `(event name, data)`.
    pub fn chunk(&mut self, chunk: &Value) -> Vec<Event> {
        let mut events = Vec::new();
        if self.phase == Phase::Done {
            return events;
        }
        if let Some(error) = chunk.get("error").filter(|e| e.is_object()) {
            // An error mid-stream: Anthropic's `error` event ends the stream.
            self.phase = Phase::Done;
            let kind = error
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("api_error");
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            events.push((
                "error",
                json!({ "type": "error", "error": { "type": kind, "message": message } }),
            ));
            return events;
        }
        let id = chunk.get("id").and_then(Value::as_str);
        self.start(id, &mut events);
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let choices = chunk.get("choices").and_then(Value::as_array);
        let Some(choice) = choices.and_then(|choices| {
            choices
                .iter()
                .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        }) else {
            return events;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            self.text(text, &mut events);
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for (position, call) in calls.iter().enumerate() {
                self.tool_call(call, position as u64, &mut events);
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        events
    }

    /// The events that end the stream: the open block's stop, `message_delta`, `message_stop`.
    /// Call once the OpenAI stream has ended (after `[DONE]`, or when it broke off); later
    /// calls return nothing.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        if self.phase == Phase::Done {
            return events;
        }
        self.start(None, &mut events);
        self.close_block(&mut events);
        let stop = stop_reason(self.finish_reason.as_deref(), self.called_tools);
        let mut usage = usage(self.usage.as_ref());
        if self.usage.is_none() {
            // Unknown: say nothing rather than claim zero input tokens.
            if let Some(usage) = usage.as_object_mut() {
                usage.remove("input_tokens");
            }
        }
        events.push((
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": { "stop_reason": stop, "stop_sequence": null },
                "usage": usage,
            }),
        ));
        events.push(("message_stop", json!({ "type": "message_stop" })));
        self.phase = Phase::Done;
        events
    }

    fn start(&mut self, id: Option<&str>, events: &mut Vec<Event>) {
        if self.phase != Phase::Idle {
            return;
        }
        self.phase = Phase::Open;
        events.push((
            "message_start",
            json!({
                "type": "message_start",
                "message": {
                    "id": id.unwrap_or("msg"),
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": { "input_tokens": 0, "output_tokens": 0 },
                },
            }),
        ));
    }

    fn text(&mut self, text: &str, events: &mut Vec<Event>) {
        let index = match self.block {
            Block::Text { index } => index,
            _ => {
                self.close_block(events);
                let index = self.open_block(json!({ "type": "text", "text": "" }), events);
                self.block = Block::Text { index };
                index
            }
        };
        events.push((
            "content_block_delta",
            json!({
                "type": "content_block_delta",
                "index": index,
                "delta": { "type": "text_delta", "text": text },
            }),
        ));
    }

    fn tool_call(&mut self, call: &Value, position: u64, events: &mut Vec<Event>) {
        let number = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position);
        let index = match self.block {
            Block::Tool { index, call } if call == number => index,
            _ if self.closed_calls.contains(&number) => return,
            _ => {
                self.close_block(events);
                let id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("toolu_{number}"), str::to_owned);
                let name = call
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let block = json!({ "type": "tool_use", "id": id, "name": name, "input": {} });
                let index = self.open_block(block, events);
                self.block = Block::Tool {
                    index,
                    call: number,
                };
                self.called_tools = true;
                index
            }
        };
        let args = call
            .get("function")
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty());
        if let Some(args) = args {
            events.push((
                "content_block_delta",
                json!({
                    "type": "content_block_delta",
                    "index": index,
                    "delta": { "type": "input_json_delta", "partial_json": args },
                }),
            ));
        }
    }

    fn open_block(&mut self, block: Value, events: &mut Vec<Event>) -> u64 {
        let index = self.next_index;
        self.next_index += 1;
        events.push((
            "content_block_start",
            json!({ "type": "content_block_start", "index": index, "content_block": block }),
        ));
        index
    }

    fn close_block(&mut self, events: &mut Vec<Event>) {
        let index = match self.block {
            Block::None => return,
            Block::Text { index } => index,
            Block::Tool { index, call } => {
                self.closed_calls.push(call);
                index
            }
        };
        self.block = Block::None;
        events.push((
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": index }),
        ));
    }
}

/// One SSE event as bytes: `event: <name>\ndata: <json>\n\n`.
pub fn encode_sse(event: &str, data: &Value) -> Vec<u8> {
    format!("event: {event}\ndata: {data}\n\n").into_bytes()
}
