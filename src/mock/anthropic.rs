//! The Anthropic Messages dialect of the mock, built on the gateway's own ingress translators
//! so that its replies say exactly what the OpenAI dialect says:
//! - [`parse`]: `POST /v1/messages` (header `anthropic-version` and field `max_tokens`
//!   required, as Anthropic requires them) → a [`GenerateRequest`], through
//!   `messages_to_openai`, so prompt words are counted as in an OpenAI chat;
//! - [`message`]: the `message` reply, the OpenAI `chat.completion` of `reply` translated by
//!   `openai_to_messages_response` (`stop_reason` `end_turn`, or `max_tokens` when cut short);
//! - [`StreamEncoder`]: the streamed events, the OpenAI chunks fed to `MessagesStreamWriter`,
//!   with the `ping` Anthropic sends after the first `content_block_start` and the prompt's
//!   `input_tokens` in `message_start`;
//! - [`models`]: `GET /v1/models` for a client that sent `anthropic-version`.

use axum::body::Bytes;
use http::HeaderMap;
use serde_json::{Value, json};

use crate::provider::anthropic::{
    MessagesStreamWriter, encode_sse, messages_to_openai, openai_to_messages_response,
};

use super::call::ANTHROPIC_VERSION;
use super::reply::{self, Length};
use super::request::{self, GenerateRequest};
use super::stream::{Frame, StreamPlan};

/// Id of Messages reply number `n`.
pub(crate) fn message_id(n: u64) -> String {
    format!("msg_mock_{n}")
}

/// `POST /v1/messages`: needs header `anthropic-version`, and a body `messages_to_openai`
/// accepts with an integer `max_tokens` and at least one message.
pub(crate) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<GenerateRequest, String> {
    if !headers.contains_key(ANTHROPIC_VERSION) {
        return Err(format!("{ANTHROPIC_VERSION}: header is required"));
    }
    let map = request::object(body)?;
    if map.get("max_tokens").is_none_or(Value::is_null) {
        return Err("max_tokens: Field required".to_owned());
    }
    if map
        .get("messages")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        return Err("messages: at least one message is required".to_owned());
    }
    let openai = messages_to_openai(&Value::Object(map)).map_err(|e| e.to_string())?;
    let bytes = serde_json::to_vec(&openai).map_err(|e| e.to_string())?;
    request::parse_chat(&bytes)
}

/// A non-streamed Messages reply.
pub(crate) fn message(
    id: &str,
    model: &str,
    name: &str,
    length: Length,
    prompt_tokens: u64,
) -> Result<Value, String> {
    let openai = reply::chat_completion(id, model, name, length, prompt_tokens);
    openai_to_messages_response(&openai).map_err(|e| e.to_string())
}

/// `GET /v1/models` in Anthropic's shape: one model, named after the instance.
pub(crate) fn models(name: &str) -> Value {
    json!({
        "data": [{
            "type": "model",
            "id": name,
            "display_name": name,
            "created_at": "1970-01-01T00:00:00Z",
        }],
        "has_more": false,
        "first_id": name,
        "last_id": name,
    })
}

/// The error a `stream_error_event` stream ends with, as the OpenAI chunk the writer reads.
fn error_chunk() -> Value {
    json!({ "error": { "type": "overloaded_error", "message": "overloaded" } })
}

/// Writes the frames of one stream as Messages SSE events.
#[derive(Debug)]
pub(crate) struct StreamEncoder {
    writer: MessagesStreamWriter,
    pinged: bool,
}

impl StreamEncoder {
    pub(crate) fn new(plan: &StreamPlan) -> Self {
        Self {
            writer: MessagesStreamWriter::new(&plan.model),
            pinged: false,
        }
    }

    /// The events of `frame` (none for some: the usage only reaches `message_delta`).
    pub(crate) fn encode(&mut self, plan: &StreamPlan, frame: Frame<'_>) -> Bytes {
        let events = match frame {
            Frame::Done => self.writer.finish(),
            Frame::Error => self.writer.chunk(&error_chunk()),
            _ => plan
                .openai_chunk(frame)
                .map(|chunk| self.writer.chunk(&chunk))
                .unwrap_or_default(),
        };
        let mut out = Vec::new();
        for (name, mut data) in events {
            let usage = data.pointer_mut("/message/usage");
            if let (true, Some(usage)) = (
                name == "message_start",
                usage.and_then(Value::as_object_mut),
            ) {
                usage.insert("input_tokens".to_owned(), plan.prompt_tokens.into());
            }
            out.extend(encode_sse(name, &data));
            if name == "content_block_start" && !self.pinged {
                self.pinged = true;
                out.extend(encode_sse("ping", &json!({ "type": "ping" })));
            }
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            ANTHROPIC_VERSION,
            http::HeaderValue::from_static("2023-06-01"),
        );
        h
    }

    #[test]
    fn parse_counts_system_and_messages() {
        let body = br#"{"model":"claude","max_tokens":5,"system":"be brief","stream":true,
            "messages":[{"role":"user","content":[{"type":"text","text":"hello there mock"}]}]}"#;
        let req = parse(&headers(), body).unwrap();
        assert_eq!(req.model, "claude");
        assert_eq!(req.prompt_tokens, 5);
        assert!(req.stream && req.include_usage);
        assert_eq!(req.max_tokens, Some(5));
    }

    #[test]
    fn parse_requires_version_and_max_tokens() {
        let body = br#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#;
        assert!(parse(&headers(), body).is_ok());
        let err = parse(&HeaderMap::new(), body).unwrap_err();
        assert_eq!(err, "anthropic-version: header is required");
        let err = parse(&headers(), br#"{"model":"c","messages":[]}"#).unwrap_err();
        assert!(err.contains("max_tokens"), "{err}");
        let err = parse(&headers(), br#"{"model":"c","max_tokens":5,"messages":[]}"#).unwrap_err();
        assert!(err.contains("at least one message"), "{err}");
        assert!(parse(&headers(), br#"{"max_tokens":1,"messages":[]}"#).is_err());
        assert!(parse(&headers(), br#"{"model":"c","max_tokens":1}"#).is_err());
        assert!(parse(&headers(), b"[]").is_err());
    }

    #[test]
    fn message_shape() {
        let v = message("msg_mock_1", "claude", "n", Length::new(8, Some(2)), 3).unwrap();
        assert_eq!(
            v,
            json!({
                "id": "msg_mock_1",
                "type": "message",
                "role": "assistant",
                "model": "claude",
                "content": [{ "type": "text", "text": "[n] mock reply 1 2" }],
                "stop_reason": "max_tokens",
                "stop_sequence": null,
                "usage": { "input_tokens": 3, "output_tokens": 2 },
            })
        );
        let full = message("m", "c", "n", Length::new(3, None), 1).unwrap();
        assert_eq!(full["stop_reason"], "end_turn");
    }
}
