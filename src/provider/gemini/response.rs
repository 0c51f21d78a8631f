//! A Gemini `generateContent` reply → an OpenAI `chat.completion`, and the pieces the stream
//! translator shares: candidates, finish reasons, usage and ids.

use serde_json::{Map, Value, json};

use super::{TranslateError, parse_object};

type Result<T> = std::result::Result<T, TranslateError>;

/// Translates a `generateContent` reply body. The id is `chatcmpl-<responseId>`, or
/// `chatcmpl-gemini-<created>` if Gemini sent none. A prompt Gemini blocked
/// (`promptFeedback.blockReason`, no candidates) is a completion with empty content and
/// `finish_reason: "content_filter"`, not an error.
pub fn from_generate_response(body: &[u8], model: &str, created: u64) -> Result<Value> {
    let reply = parse_object(body)?;
    let candidates = candidates(&reply)?;
    let choices: Vec<Value> = if candidates.is_empty() {
        if prompt_block(&reply).is_none() {
            return Err(TranslateError::response(
                "candidates",
                "missing, and no promptFeedback.blockReason says why",
            ));
        }
        vec![json!({
            "index": 0,
            "message": { "role": "assistant", "content": "" },
            "logprobs": null,
            "finish_reason": "content_filter",
        })]
    } else {
        candidates.iter().map(choice).collect()
    };
    let mut out = json!({
        "id": completion_id(&reply, created),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
    });
    if let (Some(usage), Some(map)) = (usage(&reply), out.as_object_mut()) {
        map.insert("usage".into(), usage);
    }
    Ok(out)
}

/// One OpenAI choice of a whole candidate.
fn choice(candidate: &Candidate) -> Value {
    let has_calls = !candidate.calls.is_empty();
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = if has_calls && candidate.text.is_empty() {
        Value::Null
    } else {
        Value::String(candidate.text.clone())
    };
    message.insert("content".into(), content);
    if has_calls {
        let calls: Vec<Value> = candidate
            .calls
            .iter()
            .enumerate()
            .map(|(i, call)| call.to_openai(i, false))
            .collect();
        message.insert("tool_calls".into(), calls.into());
    }
    let finish = finish_reason(candidate.finish.as_deref(), has_calls).unwrap_or(if has_calls {
        "tool_calls"
    } else {
        "stop"
    });
    json!({
        "index": candidate.index,
        "message": message,
        "logprobs": null,
        "finish_reason": finish,
    })
}

/// What one candidate (or one stream fragment of it) says.
#[derive(Debug, Default)]
pub(crate) struct Candidate {
    pub(crate) index: u64,
    /// Its text parts, joined; thought summaries (`thought: true`) are left out.
    pub(crate) text: String,
    pub(crate) calls: Vec<Call>,
    /// Gemini's `finishReason`, as sent.
    pub(crate) finish: Option<String>,
}

/// A `functionCall` part.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) id: Option<String>,
    pub(crate) name: String,
    /// `args` serialized: OpenAI's `arguments` is a JSON string.
    pub(crate) arguments: String,
}

impl Call {
    /// The OpenAI tool call numbered `index`: id `call_<index>` unless Gemini gave one. A
    /// stream delta also carries its `index`.
    pub(crate) fn to_openai(&self, index: usize, delta: bool) -> Value {
        let id = self.id.clone().unwrap_or_else(|| format!("call_{index}"));
        let mut call = json!({
            "id": id,
            "type": "function",
            "function": { "name": self.name, "arguments": self.arguments },
        });
        if let (true, Some(map)) = (delta, call.as_object_mut()) {
            map.insert("index".into(), index.into());
        }
        call
    }
}

/// The candidates of a reply (or stream event); none if it has none.
pub(crate) fn candidates(reply: &Map<String, Value>) -> Result<Vec<Candidate>> {
    let list = match reply.get("candidates") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(TranslateError::response("candidates", "expected an array")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (position, candidate) in list.iter().enumerate() {
        let at = format!("candidates[{position}]");
        let candidate = candidate
            .as_object()
            .ok_or_else(|| TranslateError::response(&at, "expected an object"))?;
        let index = match candidate.get("index") {
            None | Some(Value::Null) => position as u64,
            Some(v) => v.as_u64().ok_or_else(|| {
                TranslateError::response(format!("{at}.index"), "expected a non-negative integer")
            })?,
        };
        let finish = match candidate.get("finishReason") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(TranslateError::response(
                    format!("{at}.finishReason"),
                    "expected a string",
                ));
            }
        };
        let mut parsed = Candidate {
            index,
            finish,
            ..Candidate::default()
        };
        // A candidate Gemini blocked may have no content at all.
        if let Some(content) = candidate.get("content").filter(|c| !c.is_null()) {
            parts(content, &format!("{at}.content"), &mut parsed)?;
        }
        out.push(parsed);
    }
    Ok(out)
}

/// Collects the text and function calls of a `content`; other parts (inline data, code
/// execution, bare thought signatures) are dropped.
fn parts(content: &Value, at: &str, into: &mut Candidate) -> Result<()> {
    let parts = match content.get("parts") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(TranslateError::response(
                format!("{at}.parts"),
                "expected an array",
            ));
        }
    };
    for (k, part) in parts.iter().enumerate() {
        let part_at = format!("{at}.parts[{k}]");
        let part = part
            .as_object()
            .ok_or_else(|| TranslateError::response(&part_at, "expected an object"))?;
        if let Some(text) = part.get("text") {
            let text = text.as_str().ok_or_else(|| {
                TranslateError::response(format!("{part_at}.text"), "expected a string")
            })?;
            if part.get("thought").and_then(Value::as_bool) != Some(true) {
                into.text.push_str(text);
            }
        } else if let Some(call) = part.get("functionCall") {
            into.calls
                .push(function_call(call, &format!("{part_at}.functionCall"))?);
        }
    }
    Ok(())
}

fn function_call(call: &Value, at: &str) -> Result<Call> {
    let name = call
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::response(format!("{at}.name"), "expected a string"))?;
    let arguments = match call.get("args") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(args @ Value::Object(_)) => args.to_string(),
        Some(_) => {
            return Err(TranslateError::response(
                format!("{at}.args"),
                "expected an object",
            ));
        }
    };
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    Ok(Call {
        id,
        name: name.to_owned(),
        arguments,
    })
}

/// OpenAI's `finish_reason` for Gemini's; `None` while the candidate is not finished. A
/// natural stop after function calls is `tool_calls`. Reasons OpenAI has no word for
/// (`OTHER`, `LANGUAGE`, `MALFORMED_FUNCTION_CALL`, unknown ones) are `stop`.
pub(crate) fn finish_reason(gemini: Option<&str>, has_calls: bool) -> Option<&'static str> {
    Some(match gemini? {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if has_calls => "tool_calls",
        _ => "stop",
    })
}

/// `promptFeedback.blockReason`, if Gemini refused the prompt.
pub(crate) fn prompt_block(reply: &Map<String, Value>) -> Option<&str> {
    reply
        .get("promptFeedback")?
        .get("blockReason")?
        .as_str()
        .filter(|r| !r.is_empty() && *r != "BLOCK_REASON_UNSPECIFIED")
}

/// `chatcmpl-<responseId>`, else `chatcmpl-gemini-<created>`.
pub(crate) fn completion_id(reply: &Map<String, Value>, created: u64) -> String {
    match reply.get("responseId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => format!("chatcmpl-{id}"),
        _ => format!("chatcmpl-gemini-{created}"),
    }
}

/// OpenAI `usage` of `usageMetadata`, if there is one. Thinking tokens count as completion
/// tokens (OpenAI bills reasoning that way) and are also given as `reasoning_tokens`; tool-use
/// prompt tokens count as prompt tokens, so that the parts add up to `totalTokenCount`.
pub(crate) fn usage(reply: &Map<String, Value>) -> Option<Value> {
    let meta = reply.get("usageMetadata")?.as_object()?;
    let count = |key: &str| meta.get(key).and_then(Value::as_u64).unwrap_or(0);
    let prompt = count("promptTokenCount").saturating_add(count("toolUsePromptTokenCount"));
    let thoughts = count("thoughtsTokenCount");
    let completion = count("candidatesTokenCount").saturating_add(thoughts);
    let total = meta
        .get("totalTokenCount")
        .and_then(Value::as_u64)
        .unwrap_or(prompt.saturating_add(completion));
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
    });
    if let Some(map) = usage.as_object_mut() {
        let cached = count("cachedContentTokenCount");
        if cached > 0 {
            map.insert(
                "prompt_tokens_details".into(),
                json!({ "cached_tokens": cached }),
            );
        }
        if thoughts > 0 {
            map.insert(
                "completion_tokens_details".into(),
                json!({ "reasoning_tokens": thoughts }),
            );
        }
    }
    Some(usage)
}
