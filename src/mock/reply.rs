//! The deterministic answer text and the OpenAI non-streaming reply objects:
//! `chat.completion`, `text_completion`, the model list and `usage`. The Anthropic and Gemini
//! replies are made from the same text (see `anthropic` and `gemini`).
//!
//! The content of a reply with N chunks is `[<name>] mock reply 1 2 … N`. Its N numbered
//! words are its tokens: one stream chunk each (the first chunk carries the prefix), and
//! `completion_tokens = N`. Concatenating the stream chunks gives the non-streamed content.
//! N is `stream_chunks` (default 8), or the request's `max_tokens` if that is smaller (at
//! least 1): then the reply stops for length.

use serde_json::{Value, json};

/// Text of content chunk `k` (1-based) of a reply from instance `name`.
pub(crate) fn piece(name: &str, k: u32) -> String {
    if k <= 1 {
        format!("[{name}] mock reply 1")
    } else {
        format!(" {k}")
    }
}

/// The whole content of a reply with `chunks` chunks.
pub(crate) fn content(name: &str, chunks: u32) -> String {
    (1..=chunks.max(1)).map(|k| piece(name, k)).collect()
}

/// How long a reply is and why it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Length {
    /// Content chunks (= completion tokens), at least 1.
    pub(crate) chunks: u32,
    /// Cut short by the request's `max_tokens`.
    pub(crate) truncated: bool,
}

impl Length {
    /// `chunks` content chunks, unless `max_tokens` (at least 1) is fewer.
    pub(crate) fn new(chunks: u32, max_tokens: Option<u64>) -> Self {
        let chunks = chunks.max(1);
        match max_tokens.map(|n| n.max(1)) {
            Some(max) if max < u64::from(chunks) => Self {
                // max < chunks, so it fits.
                chunks: u32::try_from(max).unwrap_or(chunks),
                truncated: true,
            },
            _ => Self {
                chunks,
                truncated: false,
            },
        }
    }

    /// OpenAI's `finish_reason`: `length` when cut short, else `stop`.
    pub(crate) fn finish_reason(self) -> &'static str {
        if self.truncated { "length" } else { "stop" }
    }
}

/// An OpenAI `usage` object.
pub(crate) fn usage(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

/// Id of chat reply number `n`.
pub(crate) fn chat_id(n: u64) -> String {
    format!("chatcmpl-mock-{n}")
}

/// Id of completion reply number `n`.
pub(crate) fn completion_id(n: u64) -> String {
    format!("cmpl-mock-{n}")
}

/// A non-streaming `chat.completion`.
pub(crate) fn chat_completion(
    id: &str,
    model: &str,
    name: &str,
    length: Length,
    prompt_tokens: u64,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content(name, length.chunks) },
            "logprobs": null,
            "finish_reason": length.finish_reason(),
        }],
        "usage": usage(prompt_tokens, u64::from(length.chunks)),
    })
}

/// A non-streaming legacy `text_completion`.
pub(crate) fn text_completion(
    id: &str,
    model: &str,
    name: &str,
    length: Length,
    prompt_tokens: u64,
) -> Value {
    json!({
        "id": id,
        "object": "text_completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "text": content(name, length.chunks),
            "logprobs": null,
            "finish_reason": length.finish_reason(),
        }],
        "usage": usage(prompt_tokens, u64::from(length.chunks)),
    })
}

/// `GET /v1/models`: one model, named after the instance.
pub(crate) fn models(name: &str) -> Value {
    json!({
        "object": "list",
        "data": [{ "id": name, "object": "model", "created": 0, "owned_by": "mock" }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_the_joined_pieces() {
        assert_eq!(content("a", 3), "[a] mock reply 1 2 3");
        assert_eq!(content("a", 1), "[a] mock reply 1");
        let joined: String = (1..=8).map(|k| piece("x y", k)).collect();
        assert_eq!(joined, content("x y", 8));
    }

    #[test]
    fn length_is_capped_by_max_tokens() {
        let len = |chunks, max| {
            let l = Length::new(chunks, max);
            (l.chunks, l.truncated)
        };
        assert_eq!(len(8, None), (8, false));
        assert_eq!(len(8, Some(8)), (8, false));
        assert_eq!(len(8, Some(1000)), (8, false));
        assert_eq!(len(8, Some(3)), (3, true));
        assert_eq!(len(8, Some(0)), (1, true));
        assert_eq!(len(0, None), (1, false));
    }

    #[test]
    fn chat_completion_shape() {
        let v = chat_completion("chatcmpl-mock-1", "gpt", "n", Length::new(4, None), 3);
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "[n] mock reply 1 2 3 4"
        );
        assert_eq!(v["usage"], usage(3, 4));
        assert_eq!(v["usage"]["total_tokens"], 7);
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        let t = text_completion("cmpl-mock-1", "gpt", "n", Length::new(8, Some(2)), 1);
        assert_eq!(t["choices"][0]["text"], "[n] mock reply 1 2");
        assert_eq!(t["choices"][0]["finish_reason"], "length");
        assert_eq!(models("n")["data"][0]["id"], "n");
    }
}
