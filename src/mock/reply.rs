//! The deterministic answer text and the non-streaming reply objects: `chat.completion`,
//! `text_completion`, the model list and `usage`.
//!
//! The content of a reply with N chunks is `[<name>] mock reply 1 2 … N`. Its N numbered
//! words are its tokens: one stream chunk each (the first chunk carries the prefix), and
//! `completion_tokens = N`. Concatenating the stream chunks gives the non-streamed content.

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
    chunks: u32,
    prompt_tokens: u64,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content(name, chunks) },
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": usage(prompt_tokens, u64::from(chunks)),
    })
}

/// A non-streaming legacy `text_completion`.
pub(crate) fn text_completion(
    id: &str,
    model: &str,
    name: &str,
    chunks: u32,
    prompt_tokens: u64,
) -> Value {
    json!({
        "id": id,
        "object": "text_completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "text": content(name, chunks),
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": usage(prompt_tokens, u64::from(chunks)),
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
    fn chat_completion_shape() {
        let v = chat_completion("chatcmpl-mock-1", "gpt", "n", 4, 3);
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "[n] mock reply 1 2 3 4"
        );
        assert_eq!(v["usage"], usage(3, 4));
        assert_eq!(v["usage"]["total_tokens"], 7);
        let t = text_completion("cmpl-mock-1", "gpt", "n", 2, 1);
        assert_eq!(t["choices"][0]["text"], "[n] mock reply 1 2");
        assert_eq!(models("n")["data"][0]["id"], "n");
    }
}
