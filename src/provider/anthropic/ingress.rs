//! The ingress direction, for clients that speak Anthropic (Claude Code, the Anthropic SDKs)
//! in front of OpenAI-shaped upstreams: a Messages request → a `chat.completions` request, and
//! a `chat.completion` → a Messages reply.
//!
//! Only fields every OpenAI-compatible server takes are written: no `cache_control`, no
//! `top_k`, `max_tokens` rather than `max_completion_tokens` (Ollama, llama.cpp and older vLLM
//! know only the first). Thinking blocks and `tool_result.is_error` have no OpenAI counterpart
//! and are dropped; server tools (web search, code execution, ...) are an error.

use serde_json::{Map, Value, json};

use super::response::tool_call;
use super::{TranslateError, kind_of};

mod reply;

pub use reply::openai_to_messages_response;
pub(super) use reply::{stop_reason, usage};

/// Translate a Messages request to an OpenAI chat request for the same `model`.
pub fn messages_to_openai(anthropic_req: &Value) -> Result<Value, TranslateError> {
    let req = anthropic_req.as_object().ok_or_else(|| {
        TranslateError::request(
            "request",
            format!("expected a JSON object, got {}", kind_of(anthropic_req)),
        )
    })?;
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::request("model", "expected a string"))?;
    let list = match req.get("messages") {
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(TranslateError::request(
                "messages",
                format!("expected an array, got {}", kind_of(other)),
            ));
        }
        None => return Err(TranslateError::request("messages", "missing")),
    };

    let mut messages = Vec::with_capacity(list.len() + 1);
    match req.get("system") {
        None | Some(Value::Null) => {}
        Some(system) => {
            let text = system_text(system)?;
            if !text.is_empty() {
                messages.push(json!({ "role": "system", "content": text }));
            }
        }
    }
    for (i, message) in list.iter().enumerate() {
        translate_message(message, i, &mut messages)?;
    }

    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert("messages".into(), messages.into());
    if let Some(n) = req.get("max_tokens").filter(|n| !n.is_null()) {
        let n = n
            .as_u64()
            .ok_or_else(|| TranslateError::request("max_tokens", "expected an integer"))?;
        out.insert("max_tokens".into(), n.into());
    }
    for key in ["temperature", "top_p"] {
        match req.get(key) {
            None | Some(Value::Null) => {}
            Some(n @ Value::Number(_)) => {
                out.insert(key.into(), n.clone());
            }
            Some(other) => {
                return Err(TranslateError::request(
                    key,
                    format!("expected a number, got {}", kind_of(other)),
                ));
            }
        }
    }
    match req.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(stop)) if stop.iter().all(Value::is_string) => {
            if !stop.is_empty() {
                out.insert("stop".into(), stop.clone().into());
            }
        }
        Some(_) => {
            return Err(TranslateError::request(
                "stop_sequences",
                "expected an array of strings",
            ));
        }
    }
    match req.get("stream") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(stream)) => {
            out.insert("stream".into(), (*stream).into());
            if *stream {
                // The Messages stream ends with usage; OpenAI sends it only when asked.
                out.insert("stream_options".into(), json!({ "include_usage": true }));
            }
        }
        Some(other) => {
            return Err(TranslateError::request(
                "stream",
                format!("expected a boolean, got {}", kind_of(other)),
            ));
        }
    }
    let tools = tools(req.get("tools"))?;
    if !tools.is_empty() {
        out.insert("tools".into(), tools.into());
        if let Some(choice) = req.get("tool_choice").filter(|c| !c.is_null()) {
            let (choice, parallel) = tool_choice(choice)?;
            out.insert("tool_choice".into(), choice);
            if !parallel {
                out.insert("parallel_tool_calls".into(), false.into());
            }
        }
    }
    let user = req.get("metadata").and_then(|m| m.get("user_id"));
    if let Some(user) = user.and_then(Value::as_str) {
        out.insert("user".into(), user.into());
    }
    Ok(Value::Object(out))
}

/// `system`, a string or text blocks, as one string (blocks joined by a blank line).
fn system_text(system: &Value) -> Result<String, TranslateError> {
    match system {
        Value::String(text) => Ok(text.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                let text = block
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|_| block.get("type").and_then(Value::as_str) == Some("text"))
                    .ok_or_else(|| {
                        TranslateError::request(format!("system[{j}]"), "expected a text block")
                    })?;
                if !text.is_empty() {
                    texts.push(text);
                }
            }
            Ok(texts.join("\n\n"))
        }
        other => Err(TranslateError::request(
            "system",
            format!(
                "expected a string or an array of text blocks, got {}",
                kind_of(other)
            ),
        )),
    }
}

/// One Messages message as one or more OpenAI messages: a user message's `tool_result`
/// blocks become `tool` messages (first, as OpenAI wants them right after the assistant's
/// call), the rest one user message after them.
fn translate_message(
    message: &Value,
    i: usize,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let role = match message.get("role") {
        Some(Value::String(role)) => role.as_str(),
        Some(other) => {
            return Err(TranslateError::request(
                format!("messages[{i}].role"),
                format!("expected a string, got {}", kind_of(other)),
            ));
        }
        None => {
            return Err(TranslateError::request(
                format!("messages[{i}].role"),
                "missing",
            ));
        }
    };
    if role != "user" && role != "assistant" {
        return Err(TranslateError::request(
            format!("messages[{i}].role"),
            format!("expected \"user\" or \"assistant\", got {role:?}"),
        ));
    }
    let blocks = match message.get("content") {
        Some(Value::String(text)) => {
            out.push(json!({ "role": role, "content": text }));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        Some(other) => {
            return Err(TranslateError::request(
                format!("messages[{i}].content"),
                format!(
                    "expected a string or an array of blocks, got {}",
                    kind_of(other)
                ),
            ));
        }
        None => {
            return Err(TranslateError::request(
                format!("messages[{i}].content"),
                "missing",
            ));
        }
    };
    let at = |j: usize| {
        move |reason: String| TranslateError::request(format!("messages[{i}].content[{j}]"), reason)
    };
    if role == "assistant" {
        let mut text = String::new();
        let mut calls = Vec::new();
        for (j, block) in blocks.iter().enumerate() {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => text.push_str(block_text(block).map_err(at(j))?),
                Some("tool_use") => calls.push(tool_call(block).map_err(at(j))?),
                Some("thinking" | "redacted_thinking") => {}
                other => return Err(at(j)(unsupported(other, "an assistant message"))),
            }
        }
        let mut assistant = Map::new();
        assistant.insert("role".into(), "assistant".into());
        let content = if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            text.into()
        };
        assistant.insert("content".into(), content);
        if !calls.is_empty() {
            assistant.insert("tool_calls".into(), calls.into());
        }
        out.push(Value::Object(assistant));
        return Ok(());
    }

    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("tool_result") => {
                let (tool, images) = tool_message(block).map_err(at(j))?;
                out.push(tool);
                parts.extend(images);
            }
            Some("thinking" | "redacted_thinking") => {}
            kind => parts.push(part(block, kind).map_err(at(j))?),
        }
    }
    if !parts.is_empty() {
        out.push(json!({ "role": "user", "content": parts }));
    }
    Ok(())
}

fn unsupported(kind: Option<&str>, whose: &str) -> String {
    match kind {
        Some(kind) => format!("{kind:?} blocks are not supported in {whose}"),
        None => "expected an object with a string \"type\"".into(),
    }
}

fn block_text(block: &Value) -> Result<&str, String> {
    block
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| "text: expected a string".to_owned())
}

/// A user's text, image or document block as an OpenAI content part.
fn part(block: &Value, kind: Option<&str>) -> Result<Value, String> {
    let source = || block.get("source").ok_or("source: missing");
    Ok(match kind {
        Some("text") => json!({ "type": "text", "text": block_text(block)? }),
        Some("image") => {
            json!({ "type": "image_url", "image_url": { "url": source_url(source()?)? } })
        }
        Some("document") => {
            let source = source()?;
            match source.get("type").and_then(Value::as_str) {
                Some("text") => {
                    let text = source
                        .get("data")
                        .and_then(Value::as_str)
                        .ok_or("source.data: expected a string")?;
                    json!({ "type": "text", "text": text })
                }
                Some("base64") => {
                    json!({ "type": "file", "file": { "file_data": source_url(source)? } })
                }
                _ => return Err("source.type: only base64 and text documents are supported".into()),
            }
        }
        other => return Err(unsupported(other, "a user message")),
    })
}

/// A base64 source as a `data:` URL, a url source as its URL.
fn source_url(source: &Value) -> Result<String, String> {
    let field = |key: &str| {
        source
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("source.{key}: expected a string"))
    };
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => Ok(format!(
            "data:{};base64,{}",
            field("media_type")?,
            field("data")?
        )),
        Some("url") => Ok(field("url")?.to_owned()),
        _ => Err("source.type: expected \"base64\" or \"url\"".into()),
    }
}

/// A `tool_result` block as a `tool` message, and the images it held: OpenAI tool messages
/// carry only text, so images go in the user message that follows.
fn tool_message(block: &Value) -> Result<(Value, Vec<Value>), String> {
    let id = block
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or("tool_use_id: expected a string")?;
    let mut images = Vec::new();
    let content = match block.get("content") {
        None | Some(Value::Null) => Value::String(String::new()),
        Some(text @ Value::String(_)) => text.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (k, inner) in blocks.iter().enumerate() {
                match inner.get("type").and_then(Value::as_str) {
                    Some("text") => texts.push(json!({
                        "type": "text",
                        "text": block_text(inner).map_err(|r| format!("content[{k}].{r}"))?,
                    })),
                    Some("image") => images
                        .push(part(inner, Some("image")).map_err(|r| format!("content[{k}].{r}"))?),
                    other => {
                        return Err(format!(
                            "content[{k}]: {}",
                            unsupported(other, "a tool result")
                        ));
                    }
                }
            }
            texts.into()
        }
        Some(other) => {
            return Err(format!(
                "content: expected a string or an array of blocks, got {}",
                kind_of(other)
            ));
        }
    };
    Ok((
        json!({ "role": "tool", "tool_call_id": id, "content": content }),
        images,
    ))
}

/// Anthropic tools as OpenAI function tools.
fn tools(tools: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    let list = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(TranslateError::request(
                "tools",
                format!("expected an array, got {}", kind_of(other)),
            ));
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (j, tool) in list.iter().enumerate() {
        let at = |field: &str| format!("tools[{j}]{field}");
        if let Some(kind) = tool
            .get("type")
            .and_then(Value::as_str)
            .filter(|k| *k != "custom")
        {
            return Err(TranslateError::request(
                at(".type"),
                format!("server tool {kind:?} cannot be served by an OpenAI-shaped upstream"),
            ));
        }
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::request(at(".name"), "expected a string"))?;
        let mut function = Map::new();
        function.insert("name".into(), name.into());
        if let Some(description) = tool.get("description").and_then(Value::as_str) {
            function.insert("description".into(), description.into());
        }
        match tool.get("input_schema") {
            Some(schema @ Value::Object(_)) => {
                function.insert("parameters".into(), schema.clone());
            }
            None | Some(Value::Null) => {}
            Some(other) => {
                return Err(TranslateError::request(
                    at(".input_schema"),
                    format!("expected an object, got {}", kind_of(other)),
                ));
            }
        }
        out.push(json!({ "type": "function", "function": function }));
    }
    Ok(out)
}

/// Anthropic's `tool_choice` as OpenAI's, and whether parallel tool calls stay allowed.
fn tool_choice(choice: &Value) -> Result<(Value, bool), TranslateError> {
    let parallel = choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        != Some(true);
    let choice = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => "auto".into(),
        Some("any") => "required".into(),
        Some("none") => "none".into(),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| TranslateError::request("tool_choice.name", "expected a string"))?;
            json!({ "type": "function", "function": { "name": name } })
        }
        _ => {
            return Err(TranslateError::request(
                "tool_choice.type",
                "expected \"auto\", \"any\", \"tool\" or \"none\"",
            ));
        }
    };
    Ok((choice, parallel))
}
