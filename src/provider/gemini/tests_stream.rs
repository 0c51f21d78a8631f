//! `streamGenerateContent?alt=sse` events → exact `chat.completion.chunk` sequences.

use serde_json::{Value, json};

use super::{StreamTranslator, TranslateError};
use crate::provider::ErrorClass;

/// Every chunk of `events`, in order.
fn run(t: &mut StreamTranslator, events: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for event in events {
        match t.event(event.to_string().as_bytes()) {
            Ok(chunks) => out.extend(chunks),
            Err(e) => panic!("event {event} failed: {e}"),
        }
    }
    out
}

fn chunk(id: &str, index: u64, delta: Value, finish: Value) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": 42,
        "model": "gemini-2.0-flash",
        "choices": [{ "index": index, "delta": delta, "logprobs": null, "finish_reason": finish }],
    })
}

#[test]
fn text_stream_gives_exact_chunks_and_a_final_usage_chunk() {
    let events = [
        json!({
            "candidates": [{ "content": { "parts": [{ "text": "The" }], "role": "model" }, "index": 0 }],
            "usageMetadata": { "promptTokenCount": 5, "totalTokenCount": 5 },
            "modelVersion": "gemini-2.0-flash",
            "responseId": "resp-1",
        }),
        json!({
            "candidates": [{ "content": { "parts": [{ "text": " sky is blue" }], "role": "model" }, "index": 0 }],
            "usageMetadata": { "promptTokenCount": 5, "candidatesTokenCount": 4, "totalTokenCount": 9 },
            "modelVersion": "gemini-2.0-flash",
            "responseId": "resp-1",
        }),
        json!({
            "candidates": [{
                "content": { "parts": [{ "text": "." }], "role": "model" },
                "finishReason": "STOP",
                "index": 0,
            }],
            "usageMetadata": { "promptTokenCount": 5, "candidatesTokenCount": 6, "totalTokenCount": 11 },
            "modelVersion": "gemini-2.0-flash",
            "responseId": "resp-1",
        }),
    ];
    let mut t = StreamTranslator::new("gemini-2.0-flash", 42);
    assert!(!t.is_finished());
    let id = "chatcmpl-resp-1";
    assert_eq!(
        run(&mut t, &events),
        vec![
            chunk(
                id,
                0,
                json!({ "role": "assistant", "content": "The" }),
                Value::Null
            ),
            chunk(id, 0, json!({ "content": " sky is blue" }), Value::Null),
            chunk(id, 0, json!({ "content": "." }), json!("stop")),
        ]
    );
    assert!(t.is_finished());
    let usage = json!({ "prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11 });
    assert_eq!(t.usage(), Some(&usage));
    assert_eq!(
        t.finish(),
        Some(json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": 42,
            "model": "gemini-2.0-flash",
            "choices": [],
            "usage": usage,
        }))
    );
}

#[test]
fn function_calls_stream_as_complete_numbered_deltas() {
    let events = [
        json!({ "candidates": [{ "content": { "role": "model", "parts": [{ "text": "Checking." }] } }] }),
        json!({ "candidates": [{ "content": { "role": "model", "parts": [
            { "functionCall": { "name": "get_weather", "args": { "city": "Paris" } } },
        ]}}]}),
        json!({ "candidates": [{ "content": { "role": "model", "parts": [
            { "functionCall": { "id": "fc-9", "name": "get_weather", "args": { "city": "Rome" } } },
        ]}}]}),
        // Gemini often ends with an empty text part beside the finish reason.
        json!({
            "candidates": [{ "content": { "role": "model", "parts": [{ "text": "" }] }, "finishReason": "STOP" }],
            "usageMetadata": { "promptTokenCount": 30, "candidatesTokenCount": 12, "totalTokenCount": 42 },
        }),
    ];
    let mut t = StreamTranslator::new("gemini-2.0-flash", 42);
    let id = "chatcmpl-gemini-42";
    assert_eq!(
        run(&mut t, &events),
        vec![
            chunk(
                id,
                0,
                json!({ "role": "assistant", "content": "Checking." }),
                Value::Null
            ),
            chunk(
                id,
                0,
                json!({ "tool_calls": [{ "index": 0, "id": "call_0", "type": "function",
                    "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } }] }),
                Value::Null,
            ),
            chunk(
                id,
                0,
                json!({ "tool_calls": [{ "index": 1, "id": "fc-9", "type": "function",
                    "function": { "name": "get_weather", "arguments": "{\"city\":\"Rome\"}" } }] }),
                Value::Null,
            ),
            chunk(id, 0, json!({}), json!("tool_calls")),
        ]
    );
    assert_eq!(
        t.finish().map(|c| c["usage"].clone()),
        Some(json!({ "prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42 }))
    );
}

#[test]
fn two_candidates_each_get_a_role_and_a_finish() {
    let events = [
        json!({ "candidates": [
            { "index": 0, "content": { "parts": [{ "text": "A" }] } },
            { "index": 1, "content": { "parts": [{ "text": "B" }] } },
        ]}),
        json!({ "candidates": [
            { "index": 0, "content": { "parts": [{ "text": "a" }] }, "finishReason": "STOP" },
            { "index": 1, "content": { "parts": [{ "text": "b" }] }, "finishReason": "MAX_TOKENS" },
        ]}),
        // A fragment for a finished choice is ignored.
        json!({ "candidates": [{ "index": 0, "content": { "parts": [{ "text": "late" }] } }] }),
    ];
    let mut t = StreamTranslator::new("gemini-2.0-flash", 42);
    let id = "chatcmpl-gemini-42";
    assert_eq!(
        run(&mut t, &events),
        vec![
            chunk(
                id,
                0,
                json!({ "role": "assistant", "content": "A" }),
                Value::Null
            ),
            chunk(
                id,
                1,
                json!({ "role": "assistant", "content": "B" }),
                Value::Null
            ),
            chunk(id, 0, json!({ "content": "a" }), json!("stop")),
            chunk(id, 1, json!({ "content": "b" }), json!("length")),
        ]
    );
    assert!(t.is_finished());
    assert_eq!(t.finish(), None);
}

#[test]
fn safety_stop_midway_and_blocked_prompt() {
    let mut t = StreamTranslator::new("gemini-2.0-flash", 42);
    let events = [
        json!({ "candidates": [{ "content": { "parts": [{ "text": "Sure, here" }] } }], "responseId": "r" }),
        json!({ "candidates": [{ "finishReason": "SAFETY", "safetyRatings": [
            { "category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true },
        ]}]}),
    ];
    assert_eq!(
        run(&mut t, &events),
        vec![
            chunk(
                "chatcmpl-r",
                0,
                json!({ "role": "assistant", "content": "Sure, here" }),
                Value::Null
            ),
            chunk("chatcmpl-r", 0, json!({}), json!("content_filter")),
        ]
    );

    let mut t = StreamTranslator::new("gemini-2.0-flash", 42);
    let blocked = json!({
        "promptFeedback": { "blockReason": "PROHIBITED_CONTENT" },
        "usageMetadata": { "promptTokenCount": 6, "totalTokenCount": 6 },
    });
    assert_eq!(
        run(&mut t, &[blocked]),
        vec![chunk(
            "chatcmpl-gemini-42",
            0,
            json!({ "role": "assistant" }),
            json!("content_filter"),
        )]
    );
    assert!(t.is_finished());
    assert_eq!(
        t.finish().map(|c| c["usage"].clone()),
        Some(json!({ "prompt_tokens": 6, "completion_tokens": 0, "total_tokens": 6 }))
    );
}

#[test]
fn usage_only_blank_and_done_events_give_no_chunks() {
    let mut t = StreamTranslator::new("m", 1);
    let usage_only = br#"{"usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}}"#;
    for data in [&usage_only[..], b"", b"  \r\n", b"[DONE]"] {
        assert_eq!(t.event(data), Ok(Vec::new()), "{data:?}");
    }
    assert!(!t.is_finished());
    assert_eq!(
        t.usage(),
        Some(&json!({ "prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3 }))
    );
}

#[test]
fn error_events_carry_code_and_status() {
    let mut t = StreamTranslator::new("m", 1);
    assert!(matches!(
        t.event(br#"{"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}"#),
        Ok(chunks) if chunks.len() == 1
    ));
    let cases: [(&[u8], ErrorClass); 3] = [
        (
            br#"{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}"#,
            ErrorClass::Server,
        ),
        (
            br#"{"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}"#,
            ErrorClass::RateLimited,
        ),
        (br#"{"error": {"message": "?"}}"#, ErrorClass::Server),
    ];
    for (data, class) in cases {
        match t.event(data) {
            Err(e @ TranslateError::Upstream { .. }) => assert_eq!(e.class(), class),
            other => panic!("expected an upstream error, got {other:?}"),
        }
    }
    assert_eq!(
        t.event(br#"{"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}"#),
        Err(TranslateError::Upstream {
            code: Some(500),
            status: Some("INTERNAL".into()),
            message: "An internal error has occurred.".into(),
        })
    );
    match t.event(b"{not json") {
        Err(e) => assert_eq!(e.class(), ErrorClass::Malformed),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}
