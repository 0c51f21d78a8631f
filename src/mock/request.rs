//! Parsing and validation of OpenAI request bodies into the few facts a reply needs (model,
//! prompt size, length cap, streaming flags, embedding inputs); `anthropic` and `gemini` parse
//! theirs into the same [`GenerateRequest`] and [`EmbeddingRequest`]. Errors are messages for
//! a 400 reply.

use serde_json::{Map, Value};

/// The kinds of API endpoint the mock counts (every dialect's chat is a `Chat`, and so on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Models,
}

/// A request for generated text, in any dialect.
#[derive(Debug, PartialEq)]
pub(crate) struct GenerateRequest {
    pub(crate) model: String,
    /// Whitespace-separated words in the prompt or message contents, at least 1.
    pub(crate) prompt_tokens: u64,
    pub(crate) stream: bool,
    /// `stream_options.include_usage == true`.
    pub(crate) include_usage: bool,
    /// The most completion tokens asked for (`max_tokens`, `max_completion_tokens`,
    /// `maxOutputTokens`): a reply of more chunks stops there, for length.
    pub(crate) max_tokens: Option<u64>,
}

/// An embeddings request.
#[derive(Debug, PartialEq)]
pub(crate) struct EmbeddingRequest {
    pub(crate) model: String,
    pub(crate) inputs: Vec<String>,
    /// `encoding_format == "base64"`.
    pub(crate) base64: bool,
}

/// Words in `text`, split on whitespace.
pub(crate) fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("request body must be a JSON object".to_owned()),
        Err(err) => Err(format!("request body is not valid JSON: {err}")),
    }
}

fn model(map: &Map<String, Value>) -> Result<String, String> {
    match map.get("model") {
        Some(Value::String(model)) => Ok(model.clone()),
        Some(_) => Err("'model' must be a string".to_owned()),
        None => Err("missing required field 'model'".to_owned()),
    }
}

fn stream_flags(map: &Map<String, Value>) -> Result<(bool, bool), String> {
    let stream = match map.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("'stream' must be a boolean".to_owned()),
    };
    let include_usage = map
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .is_some_and(|v| v == &Value::Bool(true));
    Ok((stream, include_usage))
}

/// The first of `keys` present (and not null), as a non-negative integer.
pub(crate) fn max_tokens(map: &Map<String, Value>, keys: &[&str]) -> Result<Option<u64>, String> {
    for key in keys {
        match map.get(*key) {
            None | Some(Value::Null) => continue,
            Some(n) => {
                return n
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| format!("'{key}' must be a non-negative integer"));
            }
        }
    }
    Ok(None)
}

/// Words in a message `content`: a string, or an array of parts with `text`.
pub(crate) fn content_words(content: Option<&Value>) -> u64 {
    match content {
        Some(Value::String(text)) => count_words(text),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .map(count_words)
            .sum(),
        _ => 0,
    }
}

/// `POST /v1/chat/completions`: needs string `model` and array `messages` of objects.
pub(crate) fn parse_chat(body: &[u8]) -> Result<GenerateRequest, String> {
    let map = object(body)?;
    let model = model(&map)?;
    let messages = match map.get("messages") {
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err("'messages' must be an array".to_owned()),
        None => return Err("missing required field 'messages'".to_owned()),
    };
    let mut words = 0;
    for (i, message) in messages.iter().enumerate() {
        let Some(message) = message.as_object() else {
            return Err(format!("'messages[{i}]' must be an object"));
        };
        words += content_words(message.get("content"));
    }
    let (stream, include_usage) = stream_flags(&map)?;
    Ok(GenerateRequest {
        model,
        prompt_tokens: words.max(1),
        stream,
        include_usage,
        max_tokens: max_tokens(&map, &["max_completion_tokens", "max_tokens"])?,
    })
}

/// `POST /v1/completions`: needs string `model` and `prompt` (a string, an array of strings,
/// or token arrays).
pub(crate) fn parse_completion(body: &[u8]) -> Result<GenerateRequest, String> {
    let map = object(body)?;
    let model = model(&map)?;
    let words = match map.get("prompt") {
        Some(Value::String(text)) => count_words(text),
        Some(Value::Array(items)) => {
            let mut words = 0;
            for item in items {
                words += match item {
                    Value::String(text) => count_words(text),
                    Value::Number(_) => 1,
                    Value::Array(tokens) if tokens.iter().all(Value::is_number) => {
                        tokens.len() as u64
                    }
                    _ => return Err("'prompt' must be a string or an array of strings".to_owned()),
                };
            }
            words
        }
        Some(_) => return Err("'prompt' must be a string or an array of strings".to_owned()),
        None => return Err("missing required field 'prompt'".to_owned()),
    };
    let (stream, include_usage) = stream_flags(&map)?;
    Ok(GenerateRequest {
        model,
        prompt_tokens: words.max(1),
        stream,
        include_usage,
        max_tokens: max_tokens(&map, &["max_tokens"])?,
    })
}

/// `POST /v1/embeddings`: needs string `model` and `input` (a string or a non-empty array of
/// strings); `encoding_format` may be "float" or "base64".
pub(crate) fn parse_embedding(body: &[u8]) -> Result<EmbeddingRequest, String> {
    let map = object(body)?;
    let model = model(&map)?;
    let bad_input = || "'input' must be a string or a non-empty array of strings".to_owned();
    let inputs = match map.get("input") {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(bad_input))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad_input()),
        None => return Err("missing required field 'input'".to_owned()),
    };
    let base64 = match map.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(_) => return Err("'encoding_format' must be \"float\" or \"base64\"".to_owned()),
    };
    Ok(EmbeddingRequest {
        model,
        inputs,
        base64,
    })
}

/// Best-effort `"stream": true` check, for replies sent before validation (garbage mode).
pub(crate) fn wants_stream(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("stream").and_then(Value::as_bool))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_counts_words_and_flags() {
        let body = br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"user","content":"hello  there"},
                        {"role":"user","content":[{"type":"text","text":"a b c"}]},
                        {"role":"assistant","content":null}]}"#;
        let req = parse_chat(body).unwrap();
        assert_eq!((req.model.as_str(), req.prompt_tokens), ("m", 5));
        assert!(req.stream && req.include_usage);
        let empty = parse_chat(br#"{"model":"m","messages":[]}"#).unwrap();
        assert_eq!(empty.prompt_tokens, 1);
        assert!(!empty.stream && !empty.include_usage);
        assert_eq!(empty.max_tokens, None);
        let capped =
            parse_chat(br#"{"model":"m","messages":[],"max_tokens":9,"max_completion_tokens":3}"#)
                .unwrap();
        assert_eq!(capped.max_tokens, Some(3));
    }

    #[test]
    fn chat_rejects_bad_shapes() {
        for body in [
            &b"nope"[..],
            b"[]",
            br#"{"messages":[]}"#,
            br#"{"model":3,"messages":[]}"#,
            br#"{"model":"m"}"#,
            br#"{"model":"m","messages":{}}"#,
            br#"{"model":"m","messages":[1]}"#,
            br#"{"model":"m","messages":[],"stream":"yes"}"#,
            br#"{"model":"m","messages":[],"max_tokens":-1}"#,
        ] {
            assert!(
                parse_chat(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn completion_and_embedding_inputs() {
        let c = parse_completion(br#"{"model":"m","prompt":["a b",[1,2,3]]}"#).unwrap();
        assert_eq!(c.prompt_tokens, 5);
        assert!(parse_completion(br#"{"model":"m","prompt":{}}"#).is_err());
        assert!(parse_completion(br#"{"model":"m"}"#).is_err());
        let e = parse_embedding(br#"{"model":"m","input":["x","y"]}"#).unwrap();
        assert_eq!(e.inputs, ["x", "y"]);
        assert!(!e.base64);
        assert!(parse_embedding(br#"{"model":"m","input":[]}"#).is_err());
        assert!(parse_embedding(br#"{"model":"m","input":[1]}"#).is_err());
        assert!(parse_embedding(br#"{"model":"m","input":"x","encoding_format":"hex"}"#).is_err());
        assert!(wants_stream(br#"{"stream":true}"#) && !wants_stream(b"{"));
    }
}
