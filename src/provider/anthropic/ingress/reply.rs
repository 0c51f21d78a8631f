//! An OpenAI `chat.completion` → an Anthropic Messages reply, and the `stop_reason` and
//! `usage` mappings the stream writer shares.

use serde_json::{Value, json};

use crate::provider::anthropic::{TranslateError, kind_of};

/// Translate an OpenAI `chat.completion` to a Messages reply.
pub fn openai_to_messages_response(openai_resp: &Value) -> Result<Value, TranslateError> {
    let resp = openai_resp.as_object().ok_or_else(|| {
        TranslateError::response(
            "body",
            format!("expected an object, got {}", kind_of(openai_resp)),
        )
    })?;
    if let Some(error) = resp.get("error").filter(|e| e.is_object()) {
        return Err(TranslateError::upstream(Some(error)));
    }
    let message = resp
        .get("choices")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("message"))
        .filter(|m| m.is_object())
        .ok_or_else(|| TranslateError::response("choices[0].message", "expected an object"))?;
    let at = "choices[0].message";

    let mut content = Vec::new();
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            if !text.is_empty() {
                content.push(json!({ "type": "text", "text": text }));
            }
        }
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(text) = part
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    content.push(json!({ "type": "text", "text": text }));
                }
            }
        }
        Some(other) => {
            return Err(TranslateError::response(
                format!("{at}.content"),
                format!("expected a string, parts or null, got {}", kind_of(other)),
            ));
        }
    }
    let refusal = message
        .get("refusal")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty());
    if let Some(refusal) = refusal {
        content.push(json!({ "type": "text", "text": refusal }));
    }
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(calls)) => calls.as_slice(),
        Some(other) => {
            return Err(TranslateError::response(
                format!("{at}.tool_calls"),
                format!("expected an array, got {}", kind_of(other)),
            ));
        }
    };
    for (j, call) in calls.iter().enumerate() {
        let block = tool_use(call)
            .map_err(|reason| TranslateError::response(format!("{at}.tool_calls[{j}]"), reason))?;
        content.push(block);
    }

    let finish = resp
        .get("choices")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);
    let stop_reason = if refusal.is_some() {
        "refusal"
    } else {
        stop_reason(finish, !calls.is_empty())
    };
    Ok(json!({
        "id": resp.get("id").and_then(Value::as_str).unwrap_or("msg"),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model").and_then(Value::as_str).unwrap_or_default(),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage(resp.get("usage")),
    }))
}

/// An OpenAI tool call as a `tool_use` block, its arguments string parsed into `input`.
fn tool_use(call: &Value) -> Result<Value, String> {
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
        Some(other) => other.clone(),
    };
    if !input.is_object() {
        return Err(format!(
            "function.arguments: expected a JSON object, got {}",
            kind_of(&input)
        ));
    }
    Ok(json!({ "type": "tool_use", "id": id, "name": name, "input": input }))
}

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`. Some servers (Ollama) finish a
/// tool call with `stop`; a reply that calls tools stopped to use them.
pub(in crate::provider::anthropic) fn stop_reason(
    finish_reason: Option<&str>,
    called_tools: bool,
) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        Some("tool_calls" | "function_call") => "tool_use",
        _ if called_tools => "tool_use",
        _ => "end_turn",
    }
}

/// OpenAI `usage` as Anthropic's: cached prompt tokens move from `input_tokens` to
/// `cache_read_input_tokens`.
pub(in crate::provider::anthropic) fn usage(usage: Option<&Value>) -> Value {
    let count = |key: &str| {
        usage
            .and_then(|u| u.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let cached = usage
        .and_then(|u| u.get("prompt_tokens_details"))
        .and_then(|d| d.get("cached_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut out = json!({
        "input_tokens": count("prompt_tokens").saturating_sub(cached),
        "output_tokens": count("completion_tokens"),
    });
    if cached > 0 {
        if let Some(out) = out.as_object_mut() {
            out.insert("cache_read_input_tokens".into(), cached.into());
        }
    }
    out
}
