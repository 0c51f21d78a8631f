//! The Gemini dialect of the mock, built directly (the gateway has no OpenAI → Gemini reply
//! translator) from the same text as the OpenAI dialect:
//! - [`parse_generate`]: a `generateContent` body (`contents`, `systemInstruction`,
//!   `generationConfig.maxOutputTokens`) → a [`GenerateRequest`], the model from the path;
//! - [`reply`]: a `GenerateContentResponse` (`finishReason` `STOP`, or `MAX_TOKENS` when cut
//!   short, and `usageMetadata`);
//! - [`StreamEncoder`]: `streamGenerateContent` as SSE `data:` events (`alt=sse`, no
//!   `[DONE]`) or, without it, one JSON array: an event per content chunk, each with the
//!   usage so far, then a last event with an empty text, `finishReason` and `usageMetadata`;
//! - [`models`], [`model`]: `GET /v1beta/models` and `GET /v1beta/models/{model}`;
//! - [`embed`]: `embedContent` / `batchEmbedContents` with the `embeddings` vectors.
//!
//! Field names are read in proto-JSON's two spellings (`systemInstruction` and
//! `system_instruction`), as Google's servers accept both.

use axum::body::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::embeddings;
use super::error::gemini_error;
use super::reply::{Length, content};
use super::request::{self, GenerateRequest, content_words};
use super::stream::{Frame, StreamPlan};

/// `responseId` of Gemini reply number `n` (the gateway's id becomes `chatcmpl-mock-<n>`).
pub(crate) fn response_id(n: u64) -> String {
    format!("mock-{n}")
}

/// `map[camel]`, else `map[snake]`.
fn field<'a>(map: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    map.get(camel)
        .or_else(|| map.get(snake))
        .filter(|v| !v.is_null())
}

/// Words in the text parts of a `Content` at `at`, which must be an object with `parts`.
fn content_of(content: &Value, at: &str) -> Result<u64, String> {
    let content = content
        .as_object()
        .ok_or_else(|| format!("{at}: expected an object"))?;
    if let Some(role) = content.get("role").filter(|r| !r.is_null()) {
        match role.as_str() {
            Some("user" | "model" | "function") => {}
            _ => return Err(format!("{at}.role: Please use a valid role: user, model.")),
        }
    }
    match content.get("parts") {
        Some(parts @ Value::Array(list)) => {
            if let Some(i) = list.iter().position(|p| !p.is_object()) {
                return Err(format!("{at}.parts[{i}]: expected an object"));
            }
            Ok(content_words(Some(parts)))
        }
        Some(_) => Err(format!("{at}.parts: expected an array")),
        None => Err(format!("{at}.parts: missing")),
    }
}

/// A `generateContent` / `streamGenerateContent` body for `model` (from the path).
pub(crate) fn parse_generate(
    model: &str,
    stream: bool,
    body: &[u8],
) -> Result<GenerateRequest, String> {
    let map = request::object(body)?;
    let contents = match map.get("contents") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err("* GenerateContentRequest.contents: contents is not specified".into());
        }
        Some(_) => return Err("contents: expected an array".into()),
    };
    let mut words = 0;
    for (i, turn) in contents.iter().enumerate() {
        words += content_of(turn, &format!("contents[{i}]"))?;
    }
    if let Some(system) = field(&map, "systemInstruction", "system_instruction") {
        words += content_of(system, "systemInstruction")?;
    }
    let max_tokens = match field(&map, "generationConfig", "generation_config") {
        None => None,
        Some(Value::Object(config)) => {
            match field(config, "maxOutputTokens", "max_output_tokens") {
                None => None,
                Some(n) => Some(n.as_u64().ok_or_else(|| {
                    "generationConfig.maxOutputTokens: expected a non-negative integer".to_owned()
                })?),
            }
        }
        Some(_) => return Err("generationConfig: expected an object".into()),
    };
    Ok(GenerateRequest {
        model: model.to_owned(),
        prompt_tokens: words.max(1),
        stream,
        include_usage: false,
        max_tokens,
    })
}

fn finish_reason(length: Length) -> &'static str {
    if length.truncated {
        "MAX_TOKENS"
    } else {
        "STOP"
    }
}

fn usage_metadata(prompt_tokens: u64, candidates_tokens: u64) -> Value {
    json!({
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidates_tokens,
        "totalTokenCount": prompt_tokens + candidates_tokens,
    })
}

/// One `GenerateContentResponse` with `text`, and `finishReason` if it ends the reply.
fn response(id: &str, model: &str, text: &str, finish: Option<&str>, usage: Value) -> Value {
    let mut candidate = json!({
        "content": { "role": "model", "parts": [{ "text": text }] },
        "index": 0,
    });
    if let (Some(finish), Some(map)) = (finish, candidate.as_object_mut()) {
        map.insert("finishReason".to_owned(), finish.into());
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": id,
    })
}

/// A non-streamed `generateContent` reply.
pub(crate) fn reply(
    id: &str,
    model: &str,
    name: &str,
    length: Length,
    prompt_tokens: u64,
) -> Value {
    let usage = usage_metadata(prompt_tokens, u64::from(length.chunks));
    let text = content(name, length.chunks);
    response(id, model, &text, Some(finish_reason(length)), usage)
}

/// One model as Gemini describes it.
pub(crate) fn model(id: &str) -> Value {
    let id = id.strip_prefix("models/").unwrap_or(id);
    json!({
        "name": format!("models/{id}"),
        "version": "mock",
        "displayName": id,
        "description": "switchyard mock model",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 8192,
        "supportedGenerationMethods": [
            "generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents",
        ],
    })
}

/// `GET /v1beta/models`: one model, named after the instance.
pub(crate) fn models(name: &str) -> Value {
    json!({ "models": [model(name)] })
}

/// The text of an `EmbedContentRequest`'s `content` at `at`: its text parts, joined.
fn embed_text(request: &Value, at: &str) -> Result<String, String> {
    let parts = request
        .get("content")
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{at}.content.parts: expected an array"))?;
    Ok(parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect())
}

fn values(text: &str) -> Value {
    json!({ "values": embeddings::vector(text) })
}

/// `embedContent` (`{embedding: {values}}`) or, with `batch`, `batchEmbedContents`
/// (`{embeddings: [{values}]}`, from `requests: [{content}]`).
pub(crate) fn embed(batch: bool, body: &[u8]) -> Result<Value, String> {
    let map = request::object(body)?;
    let map = Value::Object(map);
    if !batch {
        return Ok(json!({ "embedding": values(&embed_text(&map, "request")?) }));
    }
    let requests = match map.get("requests") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => return Err("requests: expected a non-empty array".into()),
    };
    let embeddings = requests
        .iter()
        .enumerate()
        .map(|(i, r)| embed_text(r, &format!("requests[{i}]")).map(|t| values(&t)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "embeddings": embeddings }))
}

/// Writes the frames of one stream as Gemini events: SSE, or the items of one JSON array.
#[derive(Debug)]
pub(crate) struct StreamEncoder {
    sse: bool,
    /// Whether an array item (or its opening `[`) has been written.
    started: bool,
}

impl StreamEncoder {
    pub(crate) fn new(sse: bool) -> Self {
        Self {
            sse,
            started: false,
        }
    }

    /// One event: `data: ...` in SSE; in an array, the item after `[` or `,`.
    fn item(&mut self, value: &Value, last: bool) -> Bytes {
        if self.sse {
            return Bytes::from(format!("data: {value}\n\n"));
        }
        let open = if std::mem::replace(&mut self.started, true) {
            ",\r\n"
        } else {
            "["
        };
        let close = if last { "]" } else { "" };
        Bytes::from(format!("{open}{value}{close}"))
    }

    /// The bytes of `frame` (none for the role and usage frames: every event has the usage).
    pub(crate) fn encode(&mut self, plan: &StreamPlan, frame: Frame<'_>) -> Bytes {
        let prompt = plan.prompt_tokens;
        match frame {
            Frame::Role | Frame::Usage => Bytes::new(),
            Frame::Content { k, text } => {
                let usage = usage_metadata(prompt, u64::from(k));
                self.item(&response(&plan.id, &plan.model, text, None, usage), false)
            }
            Frame::Finish => {
                let usage = usage_metadata(prompt, u64::from(plan.length.chunks));
                let finish = Some(finish_reason(plan.length));
                self.item(&response(&plan.id, &plan.model, "", finish, usage), false)
            }
            Frame::Done if self.sse => Bytes::new(),
            Frame::Done if self.started => Bytes::from_static(b"]"),
            Frame::Done => Bytes::from_static(b"[]"),
            Frame::Error => {
                let error = gemini_error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
                self.item(&error, true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_counts_contents_and_system() {
        let body = br#"{"contents":[{"role":"user","parts":[{"text":"hello there"},
            {"inlineData":{"mimeType":"image/png","data":""}}]},{"parts":[{"text":"mock"}]}],
            "systemInstruction":{"parts":[{"text":"be brief"}]},
            "generationConfig":{"maxOutputTokens":3,"temperature":0.5}}"#;
        let req = parse_generate("gemini-x", true, body).unwrap();
        assert_eq!(req.model, "gemini-x");
        assert_eq!(req.prompt_tokens, 5);
        assert!(req.stream && !req.include_usage);
        assert_eq!(req.max_tokens, Some(3));
        let snake = br#"{"contents":[{"parts":[]}],"generation_config":{"max_output_tokens":2}}"#;
        let req = parse_generate("m", false, snake).unwrap();
        assert_eq!((req.prompt_tokens, req.max_tokens), (1, Some(2)));
    }

    #[test]
    fn parse_rejects_bad_shapes() {
        for body in [
            &b"nope"[..],
            br#"{}"#,
            br#"{"contents":[]}"#,
            br#"{"contents":{}}"#,
            br#"{"contents":[1]}"#,
            br#"{"contents":[{"role":"assistant","parts":[]}]}"#,
            br#"{"contents":[{"role":"user"}]}"#,
            br#"{"contents":[{"parts":"hi"}]}"#,
            br#"{"contents":[{"parts":["hi"]}]}"#,
            br#"{"contents":[{"parts":[]}],"generationConfig":{"maxOutputTokens":-1}}"#,
            br#"{"contents":[{"parts":[]}],"generationConfig":3}"#,
        ] {
            assert!(
                parse_generate("m", false, body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn reply_shape() {
        let v = reply("mock-1", "gemini-x", "n", Length::new(8, Some(2)), 3);
        assert_eq!(
            v,
            json!({
                "candidates": [{
                    "content": { "role": "model", "parts": [{ "text": "[n] mock reply 1 2" }] },
                    "finishReason": "MAX_TOKENS",
                    "index": 0,
                }],
                "usageMetadata": {
                    "promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5,
                },
                "modelVersion": "gemini-x",
                "responseId": "mock-1",
            })
        );
        let full = reply("mock-2", "g", "n", Length::new(2, None), 1);
        assert_eq!(full["candidates"][0]["finishReason"], "STOP");
        assert_eq!(models("east")["models"][0]["name"], "models/east");
        assert_eq!(model("models/g")["name"], "models/g");
    }

    #[test]
    fn embed_single_and_batch() {
        let one = embed(false, br#"{"content":{"parts":[{"text":"alpha beta"}]}}"#).unwrap();
        let want = json!(embeddings::vector("alpha beta"));
        assert_eq!(one["embedding"]["values"], want);
        let body =
            br#"{"requests":[{"model":"models/e","content":{"parts":[{"text":"alpha beta"}]}},
            {"content":{"parts":[{"text":"gamma"}]}}]}"#;
        let batch = embed(true, body).unwrap();
        let list = batch["embeddings"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["values"], want);
        assert_eq!(list[1]["values"].as_array().unwrap().len(), 8);
        assert!(embed(false, br#"{"content":"x"}"#).is_err());
        assert!(embed(true, br#"{"requests":[]}"#).is_err());
        assert!(embed(true, br#"{"requests":[{"content":{}}]}"#).is_err());
    }
}
