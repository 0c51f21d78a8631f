//! An Anthropic Messages reply → an OpenAI `chat.completion`, and the pieces the stream
//! translator shares: `finish_reason` and `usage`.

use serde_json::{Map, Value, json};

use super::{TranslateError, kind_of};

/// Translate a Messages reply body. `model` is the name the client asked for and `created`
/// the Unix time to report (the caller's clock: this module reads none).
///
/// Text blocks are joined as they are (Anthropic splits one text into several blocks around
/// citations); `thinking` blocks become `reasoning_content`, the field DeepSeek-style
/// OpenAI-compatible servers use; other block kinds (server tools) are left out.
pub fn from_messages_response(
    body: &[u8],
    model: &str,
    created: u64,
) -> Result<Value, TranslateError> {
    let reply: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::response("body", format!("not JSON ({e})")))?;
    let reply = reply.as_object().ok_or_else(|| {
        TranslateError::response(
            "body",
            format!("expected an object, got {}", kind_of(&reply)),
        )
    })?;
    if reply.get("type").and_then(Value::as_str) == Some("error") {
        return Err(TranslateError::upstream(reply.get("error")));
    }
    let id = reply
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::response("id", "expected a string"))?;
    let blocks = reply
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::response("content", "expected an array"))?;

    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = |field: &str| format!("content[{j}]{field}");
        let kind = block
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::response(at(".type"), "expected a string"))?;
        match kind {
            "text" => text.push_str(
                block
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| TranslateError::response(at(".text"), "expected a string"))?,
            ),
            "thinking" => {
                reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""));
            }
            "tool_use" => {
                calls.push(tool_call(block).map_err(|r| TranslateError::response(at(""), r))?)
            }
            _ => {}
        }
    }

    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        text.into()
    };
    message.insert("content".into(), content);
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), reasoning.into());
    }
    if !calls.is_empty() {
        message.insert("tool_calls".into(), calls.into());
    }
    let finish_reason = reply
        .get("stop_reason")
        .and_then(Value::as_str)
        .map(finish_reason);
    let mut usage = Usage::default();
    usage.update(reply.get("usage"));
    Ok(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": usage.to_openai(),
    }))
}

/// A `tool_use` block as an OpenAI tool call, `input` serialized as the arguments string.
pub(super) fn tool_call(block: &Value) -> Result<Value, String> {
    let id = block
        .get("id")
        .and_then(Value::as_str)
        .ok_or("id: expected a string")?;
    let name = block
        .get("name")
        .and_then(Value::as_str)
        .ok_or("name: expected a string")?;
    let arguments = block
        .get("input")
        .map_or_else(|| "{}".to_owned(), Value::to_string);
    Ok(json!({
        "id": id,
        "type": "function",
        "function": { "name": name, "arguments": arguments },
    }))
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`. `pause_turn` (a server tool paused
/// a long turn) ends this reply normally; running out of context is running out of length.
pub(super) fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic's token counts. Its `input_tokens` leaves out cached prompt tokens, which
/// OpenAI's `prompt_tokens` includes (and reports again as `cached_tokens`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Usage {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
}

impl Usage {
    /// Take the counts `usage` holds, keeping the others: a stream's `message_delta` repeats
    /// only some of `message_start`'s. Returns whether it held any.
    pub(super) fn update(&mut self, usage: Option<&Value>) -> bool {
        let mut seen = false;
        for (key, slot) in [
            ("input_tokens", &mut self.input),
            ("cache_read_input_tokens", &mut self.cache_read),
            ("cache_creation_input_tokens", &mut self.cache_creation),
            ("output_tokens", &mut self.output),
        ] {
            if let Some(n) = usage.and_then(|u| u.get(key)).and_then(Value::as_u64) {
                *slot = n;
                seen = true;
            }
        }
        seen
    }

    pub(super) fn to_openai(self) -> Value {
        let prompt = self
            .input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_creation);
        let mut usage = json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output,
            "total_tokens": prompt.saturating_add(self.output),
        });
        if self.cache_read > 0 {
            if let Some(usage) = usage.as_object_mut() {
                usage.insert(
                    "prompt_tokens_details".into(),
                    json!({ "cached_tokens": self.cache_read }),
                );
            }
        }
        usage
    }
}
