//! Embeddings both ways, and the URL paths.

use serde_json::{Value, json};

use super::{embed_path, from_embed_response, path, to_embed_request};
use crate::provider::Operation;

#[test]
fn paths_below_the_api_base() {
    assert_eq!(
        path("gemini-2.0-flash", Operation::Chat, false),
        "/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(
        path("gemini-2.0-flash", Operation::Chat, true),
        "/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        path("models/gemini-2.0-flash", Operation::Completions, false),
        "/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(
        path("tunedModels/my-model", Operation::Chat, false),
        "/tunedModels/my-model:generateContent"
    );
    assert_eq!(
        path("text-embedding-004", Operation::Embeddings, false),
        "/models/text-embedding-004:embedContent"
    );
    assert_eq!(
        embed_path("text-embedding-004", true),
        "/models/text-embedding-004:batchEmbedContents"
    );
    assert_eq!(
        embed_path("text-embedding-004", false),
        "/models/text-embedding-004:embedContent"
    );
    assert_eq!(path("x", Operation::Models, false), "/models");
    // A model name cannot smuggle in a query or fragment.
    assert_eq!(
        path("a?b#c d", Operation::Chat, false),
        "/models/a%3Fb%23c%20d:generateContent"
    );
}

fn request(req: Value) -> (bool, Value) {
    match to_embed_request(&req, "gemini-embedding-001") {
        Ok(v) => v,
        Err(e) => panic!("translation failed: {e}"),
    }
}

#[test]
fn single_and_batch_requests() {
    assert_eq!(
        request(json!({ "model": "emb", "input": "Hello world", "encoding_format": "float" })),
        (
            false,
            json!({ "content": { "parts": [{ "text": "Hello world" }] } })
        )
    );
    assert_eq!(
        request(json!({ "model": "emb", "input": "Hello", "dimensions": 256 })),
        (
            false,
            json!({ "content": { "parts": [{ "text": "Hello" }] }, "outputDimensionality": 256 })
        )
    );
    assert_eq!(
        request(json!({ "model": "emb", "input": ["a", "b"], "dimensions": 768 })),
        (
            true,
            json!({ "requests": [
                { "model": "models/gemini-embedding-001", "content": { "parts": [{ "text": "a" }] },
                  "outputDimensionality": 768 },
                { "model": "models/gemini-embedding-001", "content": { "parts": [{ "text": "b" }] },
                  "outputDimensionality": 768 },
            ]})
        )
    );
}

#[test]
fn bad_embedding_requests() {
    let cases = [
        (json!("x"), "body: expected a JSON object"),
        (json!({}), "input: missing"),
        (json!({ "input": [] }), "input: must not be empty"),
        (
            json!({ "input": 5 }),
            "input: expected a string or an array of strings",
        ),
        (
            json!({ "input": ["a", [1, 2]] }),
            "input[1]: expected a string (Gemini embeds text, not token arrays)",
        ),
        (
            json!({ "input": "a", "dimensions": 0 }),
            "dimensions: expected a positive integer",
        ),
        (
            json!({ "input": "a", "dimensions": "big" }),
            "dimensions: expected a positive integer",
        ),
    ];
    for (req, expected) in cases {
        match to_embed_request(&req, "m") {
            Ok(v) => panic!("expected an error for {req}, got {v:?}"),
            Err(e) => assert_eq!(e.to_string(), expected),
        }
    }
}

#[test]
fn single_and_batch_responses() {
    let single = br#"{"embedding": {"values": [0.013168523, -0.008711934, 0.5]}}"#;
    assert_eq!(
        from_embed_response(single, "gemini-embedding-001"),
        Ok(json!({
            "object": "list",
            "data": [{ "object": "embedding", "index": 0,
                       "embedding": [0.013168523, -0.008711934, 0.5] }],
            "model": "gemini-embedding-001",
            "usage": { "prompt_tokens": 0, "total_tokens": 0 },
        }))
    );
    let batch = br#"{"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}],
                     "usageMetadata": {"promptTokenCount": 5}}"#;
    assert_eq!(
        from_embed_response(batch, "emb"),
        Ok(json!({
            "object": "list",
            "data": [
                { "object": "embedding", "index": 0, "embedding": [0.1, 0.2] },
                { "object": "embedding", "index": 1, "embedding": [0.3, 0.4] },
            ],
            "model": "emb",
            "usage": { "prompt_tokens": 5, "total_tokens": 5 },
        }))
    );
}

#[test]
fn bad_embedding_responses() {
    let cases: [(&[u8], &str); 5] = [
        (
            b"{}",
            "gemini response body: neither embedding nor embeddings",
        ),
        (
            br#"{"embedding": {}}"#,
            "gemini response embedding.values: expected an array of numbers",
        ),
        (
            br#"{"embeddings": {}}"#,
            "gemini response embeddings: expected an array",
        ),
        (
            br#"{"embeddings": [{"values": [1]}, {"values": [1, "x"]}]}"#,
            "gemini response embeddings[1].values[1]: expected a number",
        ),
        (
            br#"{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}"#,
            "gemini error 400 INVALID_ARGUMENT: bad",
        ),
    ];
    for (body, expected) in cases {
        match from_embed_response(body, "m") {
            Ok(v) => panic!("expected an error, got {v}"),
            Err(e) => assert_eq!(e.to_string(), expected),
        }
    }
}
