//! An OpenAI `chat.completions` request → an Anthropic Messages request.
//!
//! Anthropic's rules that OpenAI does not have, and how they are met:
//! - System prompts are the top-level `system`, not messages: every `system` and `developer`
//!   message, wherever it stands, is lifted out; their texts are joined by a blank line.
//! - Roles alternate user/assistant: consecutive messages of one role (a `tool` message is a
//!   user's) are merged into one, and in a user message the `tool_result` blocks come first.
//! - The first message is a user's: a placeholder one is inserted before a leading assistant.
//! - A final assistant message (a prefill) may not end in whitespace: it is trimmed.
//! - Empty text blocks are rejected: they are left out, and so are messages left empty.
//! - `max_tokens` is required: the client's, else the caller's default.
//!
//! Fields Anthropic has no counterpart for (`n`, `seed`, `logprobs`, `response_format`, the
//! penalties, ...) are dropped. Content it cannot take (audio, file ids) is an error.

use serde_json::{Map, Value, json};

use super::{TranslateError, kind_of};
use content::{PartsOf, parts};
use params::{max_tokens, number, stop_sequences, tool_choice, tools};

mod content;
mod params;

/// The user message put before a conversation that opens with an assistant message, which
/// Anthropic rejects; one neutral character steers the reply least.
pub(super) const LEADING_USER_PLACEHOLDER: &str = ".";

/// OpenAI's temperature runs 0-2, Anthropic's 0-1: a value over 1 is sent as 1 rather than
/// failing a request OpenAI would take.
const MAX_TEMPERATURE: f64 = 1.0;

/// Translate an OpenAI chat request to a Messages request for `upstream_model`.
pub fn to_messages_request(
    openai_chat: &Value,
    upstream_model: &str,
    default_max_tokens: u32,
) -> Result<Value, TranslateError> {
    let req = openai_chat.as_object().ok_or_else(|| {
        TranslateError::request(
            "request",
            format!("expected a JSON object, got {}", kind_of(openai_chat)),
        )
    })?;
    let messages = match req.get("messages") {
        Some(Value::Array(messages)) => messages,
        Some(other) => {
            return Err(TranslateError::request(
                "messages",
                format!("expected an array, got {}", kind_of(other)),
            ));
        }
        None => return Err(TranslateError::request("messages", "missing")),
    };
    let (system, messages) = conversation(messages)?;

    let mut out = Map::new();
    out.insert("model".into(), upstream_model.into());
    out.insert(
        "max_tokens".into(),
        max_tokens(req, default_max_tokens)?.into(),
    );
    if let Some(system) = system {
        out.insert("system".into(), system.into());
    }
    out.insert("messages".into(), messages.into());
    if let Some(t) = number(req, "temperature")? {
        let clamped = t.as_f64().is_some_and(|t| t > MAX_TEMPERATURE);
        out.insert(
            "temperature".into(),
            if clamped {
                MAX_TEMPERATURE.into()
            } else {
                t.clone()
            },
        );
    }
    if let Some(p) = number(req, "top_p")? {
        out.insert("top_p".into(), p.clone());
    }
    if let Some(k) = req.get("top_k").filter(|k| k.is_u64()) {
        out.insert("top_k".into(), k.clone());
    }
    let stop = stop_sequences(req.get("stop"))?;
    if !stop.is_empty() {
        out.insert("stop_sequences".into(), stop.into());
    }
    match req.get("stream") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(stream)) => {
            out.insert("stream".into(), (*stream).into());
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
        let parallel = req.get("parallel_tool_calls").and_then(Value::as_bool);
        if let Some(choice) = tool_choice(req.get("tool_choice"), parallel)? {
            out.insert("tool_choice".into(), choice);
        }
    }
    if let Some(user) = req.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    Ok(Value::Object(out))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Assistant,
}

/// A message's content: kept a string while it is one message's string, blocks once merged.
enum Content {
    Text(String),
    Blocks(Vec<Value>),
}

impl Content {
    /// Empty, or only whitespace: Anthropic rejects text blocks without non-whitespace text.
    fn is_empty(&self) -> bool {
        match self {
            Self::Text(text) => text.trim().is_empty(),
            Self::Blocks(blocks) => blocks.is_empty(),
        }
    }

    fn into_blocks(self) -> Vec<Value> {
        match self {
            Self::Text(text) if text.trim().is_empty() => Vec::new(),
            Self::Text(text) => vec![json!({ "type": "text", "text": text })],
            Self::Blocks(blocks) => blocks,
        }
    }

    /// Trim trailing whitespace off the end, dropping text blocks left empty.
    fn trim_end(&mut self) {
        match self {
            Self::Text(text) => text.truncate(text.trim_end().len()),
            Self::Blocks(blocks) => {
                while let Some(Value::String(text)) =
                    blocks.last_mut().and_then(|b| b.get_mut("text"))
                {
                    text.truncate(text.trim_end().len());
                    if !text.is_empty() {
                        break;
                    }
                    blocks.pop();
                }
            }
        }
    }
}

struct Turn {
    role: Role,
    content: Content,
}

/// Append a message, merging it into the previous one when the roles match.
fn push_turn(turns: &mut Vec<Turn>, role: Role, content: Content) {
    if content.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => {
            let previous = std::mem::replace(&mut last.content, Content::Blocks(Vec::new()));
            let mut blocks = previous.into_blocks();
            blocks.extend(content.into_blocks());
            last.content = Content::Blocks(blocks);
        }
        _ => turns.push(Turn { role, content }),
    }
}

/// The lifted system prompt and the alternating messages.
fn conversation(messages: &[Value]) -> Result<(Option<String>, Vec<Value>), TranslateError> {
    let mut system = Vec::new();
    let mut turns = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let message = message.as_object().ok_or_else(|| {
            TranslateError::request(
                format!("messages[{i}]"),
                format!("expected an object, got {}", kind_of(message)),
            )
        })?;
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
        let content = message.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => match parts(content, i, PartsOf::System)? {
                Content::Text(text) => system.push(text),
                Content::Blocks(blocks) => system.extend(
                    blocks
                        .iter()
                        .filter_map(|b| b.get("text").and_then(Value::as_str))
                        .map(str::to_owned),
                ),
            },
            "user" => push_turn(&mut turns, Role::User, parts(content, i, PartsOf::User)?),
            "assistant" => push_turn(&mut turns, Role::Assistant, assistant(message, i)?),
            "tool" => push_turn(
                &mut turns,
                Role::User,
                Content::Blocks(vec![tool_result(message, i)?]),
            ),
            other => {
                return Err(TranslateError::request(
                    format!("messages[{i}].role"),
                    format!(
                        "unsupported role {other:?} (expected system, developer, user, assistant or tool)"
                    ),
                ));
            }
        }
    }

    for turn in &mut turns {
        if let (Role::User, Content::Blocks(blocks)) = (turn.role, &mut turn.content) {
            // Stable: tool results keep their order, and so does the rest.
            blocks.sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
        }
    }
    if let Some(last) = turns.last_mut() {
        if last.role == Role::Assistant {
            last.content.trim_end();
            if last.content.is_empty() {
                turns.pop();
            }
        }
    }
    match turns.first() {
        None => {
            return Err(TranslateError::request(
                "messages",
                "no user or assistant message with content (Anthropic needs at least one)",
            ));
        }
        Some(first) if first.role == Role::Assistant => turns.insert(
            0,
            Turn {
                role: Role::User,
                content: Content::Text(LEADING_USER_PLACEHOLDER.into()),
            },
        ),
        Some(_) => {}
    }

    system.retain(|text| !text.trim().is_empty());
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    let messages = turns
        .into_iter()
        .map(|turn| {
            let role = match turn.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            let content = match turn.content {
                Content::Text(text) => Value::String(text),
                Content::Blocks(blocks) => Value::Array(blocks),
            };
            json!({ "role": role, "content": content })
        })
        .collect();
    Ok((system, messages))
}

/// An assistant message: its text, then its `tool_calls` as `tool_use` blocks.
fn assistant(message: &Map<String, Value>, i: usize) -> Result<Content, TranslateError> {
    let content = parts(
        message.get("content").unwrap_or(&Value::Null),
        i,
        PartsOf::Assistant,
    )?;
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(content),
        Some(Value::Array(calls)) if calls.is_empty() => return Ok(content),
        Some(Value::Array(calls)) => calls,
        Some(other) => {
            return Err(TranslateError::request(
                format!("messages[{i}].tool_calls"),
                format!("expected an array, got {}", kind_of(other)),
            ));
        }
    };
    let mut blocks = content.into_blocks();
    for (j, call) in calls.iter().enumerate() {
        let block = tool_use(call).map_err(|reason| {
            TranslateError::request(format!("messages[{i}].tool_calls[{j}]"), reason)
        })?;
        blocks.push(block);
    }
    Ok(Content::Blocks(blocks))
}

/// One OpenAI tool call as a `tool_use` block, its JSON-string arguments parsed into `input`.
fn tool_use(call: &Value) -> Result<Value, String> {
    if let Some(kind) = call.get("type") {
        if kind != "function" {
            return Err(format!("type: {kind} is not supported (only \"function\")"));
        }
    }
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .ok_or("id: expected a string")?;
    let function = call.get("function").ok_or("function: missing")?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or("function.name: expected a string")?;
    let input = match function.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(args)) if args.trim().is_empty() => json!({}),
        Some(Value::String(args)) => serde_json::from_str(args)
            .map_err(|e| format!("function.arguments: invalid JSON ({e})"))?,
        Some(args @ Value::Object(_)) => args.clone(),
        Some(other) => {
            return Err(format!(
                "function.arguments: expected a JSON string, got {}",
                kind_of(other)
            ));
        }
    };
    if !input.is_object() {
        return Err(format!(
            "function.arguments: expected a JSON object, got {}",
            kind_of(&input)
        ));
    }
    Ok(json!({ "type": "tool_use", "id": id, "name": name, "input": input }))
}

/// A `tool` message as a `tool_result` block.
fn tool_result(message: &Map<String, Value>, i: usize) -> Result<Value, TranslateError> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            TranslateError::request(format!("messages[{i}].tool_call_id"), "expected a string")
        })?;
    let mut block = Map::new();
    block.insert("type".into(), "tool_result".into());
    block.insert("tool_use_id".into(), id.into());
    let content = message.get("content").unwrap_or(&Value::Null);
    match parts(content, i, PartsOf::ToolResult)? {
        Content::Text(text) if !text.is_empty() => {
            block.insert("content".into(), text.into());
        }
        Content::Blocks(blocks) if !blocks.is_empty() => {
            block.insert("content".into(), blocks.into());
        }
        _ => {}
    }
    Ok(Value::Object(block))
}
