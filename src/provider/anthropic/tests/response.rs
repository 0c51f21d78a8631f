//! Messages reply → `chat.completion`; error bodies → classes and messages.

use http::StatusCode;
use serde_json::{Value, json};

use crate::provider::ErrorClass;
use crate::provider::anthropic::{TranslateError, classify, error_message, from_messages_response};

fn translate(reply: &Value) -> Value {
    match from_messages_response(reply.to_string().as_bytes(), "claude", 1_700_000_000) {
        Ok(out) => out,
        Err(e) => panic!("{reply}: {e}"),
    }
}

#[test]
fn text_reply() {
    // The example response of the Messages API reference.
    let reply = json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{ "type": "text", "text": "Hi! My name is Claude." }],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": { "input_tokens": 2095, "output_tokens": 503 },
    });
    assert_eq!(
        translate(&reply),
        json!({
            "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "claude",
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": "Hi! My name is Claude." },
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": { "prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598 },
        })
    );
}

#[test]
fn tool_use_reply() {
    // The tool-use guide's get_weather reply.
    let reply = json!({
        "id": "msg_01Aq9w938a90dw8q",
        "model": "claude-sonnet-4-5",
        "stop_reason": "tool_use",
        "role": "assistant",
        "content": [
            { "type": "text", "text": "I'll check the current weather in San Francisco for you." },
            { "type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
              "input": { "location": "San Francisco, CA", "unit": "celsius" } },
            { "type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {} },
        ],
        "usage": { "input_tokens": 384, "output_tokens": 92 },
    });
    let out = translate(&reply);
    assert_eq!(
        out["choices"][0]["message"],
        json!({
            "role": "assistant",
            "content": "I'll check the current weather in San Francisco for you.",
            "tool_calls": [{
                "id": "toolu_01A09q90qw90lq917835lq9",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": "{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}",
                },
            }, {
                "id": "toolu_02",
                "type": "function",
                "function": { "name": "get_time", "arguments": "{}" },
            }],
        })
    );
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(out["usage"]["total_tokens"], 476);
}

#[test]
fn tool_only_reply_has_null_content_and_thinking_is_reasoning() {
    let reply = json!({
        "id": "msg_1", "type": "message", "role": "assistant",
        "content": [
            { "type": "thinking", "thinking": "The user wants the time.", "signature": "EqQB..." },
            { "type": "redacted_thinking", "data": "EmwKAhgB..." },
            { "type": "tool_use", "id": "t", "name": "get_time", "input": { "tz": "UTC" } },
        ],
        "stop_reason": "tool_use",
        "usage": { "input_tokens": 1, "output_tokens": 2 },
    });
    assert_eq!(
        translate(&reply)["choices"][0]["message"],
        json!({
            "role": "assistant",
            "content": null,
            "reasoning_content": "The user wants the time.",
            "tool_calls": [{ "id": "t", "type": "function",
                             "function": { "name": "get_time", "arguments": "{\"tz\":\"UTC\"}" } }],
        })
    );
    // Citation-split text blocks join as they are.
    let reply = json!({
        "id": "msg_2", "content": [
            { "type": "text", "text": "The grass is " },
            { "type": "text", "text": "green", "citations": [{ "type": "char_location" }] },
            { "type": "text", "text": "." },
        ],
        "stop_reason": "end_turn", "usage": { "input_tokens": 1, "output_tokens": 3 },
    });
    assert_eq!(
        translate(&reply)["choices"][0]["message"]["content"],
        "The grass is green."
    );
}

#[test]
fn stop_reasons_map_to_finish_reasons() {
    for (stop, finish) in [
        (json!("end_turn"), json!("stop")),
        (json!("stop_sequence"), json!("stop")),
        (json!("pause_turn"), json!("stop")),
        (json!("max_tokens"), json!("length")),
        (json!("model_context_window_exceeded"), json!("length")),
        (json!("tool_use"), json!("tool_calls")),
        (json!("refusal"), json!("content_filter")),
        (json!("something_new"), json!("stop")),
        (json!(null), json!(null)),
    ] {
        let reply = json!({ "id": "m", "content": [], "stop_reason": stop });
        assert_eq!(
            translate(&reply)["choices"][0]["finish_reason"],
            finish,
            "{stop}"
        );
    }
}

#[test]
fn cached_tokens_count_as_prompt_tokens() {
    let reply = json!({
        "id": "m", "content": [{ "type": "text", "text": "ok" }], "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 100,
            "cache_read_input_tokens": 2000,
            "cache_creation_input_tokens": 50,
            "output_tokens": 10,
        },
    });
    assert_eq!(
        translate(&reply)["usage"],
        json!({
            "prompt_tokens": 2150,
            "completion_tokens": 10,
            "total_tokens": 2160,
            "prompt_tokens_details": { "cached_tokens": 2000 },
        })
    );
    let none = json!({ "id": "m", "content": [] });
    assert_eq!(
        translate(&none)["usage"],
        json!({ "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0 })
    );
}

#[test]
fn malformed_and_error_replies() {
    let err = |body: &[u8]| match from_messages_response(body, "m", 0) {
        Ok(out) => panic!("expected an error, got {out}"),
        Err(e) => e,
    };
    let overloaded =
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let e = err(overloaded);
    assert_eq!(
        e,
        TranslateError::Upstream {
            kind: "overloaded_error".into(),
            message: "Overloaded".into()
        }
    );
    assert_eq!(e.class(), ErrorClass::Server);
    assert!(
        err(b"<html>")
            .to_string()
            .starts_with("upstream response body: not JSON (")
    );
    assert_eq!(
        err(b"[]").to_string(),
        "upstream response body: expected an object, got an array"
    );
    assert_eq!(
        err(br#"{"content":[]}"#).to_string(),
        "upstream response id: expected a string"
    );
    assert_eq!(
        err(br#"{"id":"m"}"#).to_string(),
        "upstream response content: expected an array"
    );
    assert_eq!(
        err(br#"{"id":"m","content":[{"text":"x"}]}"#).to_string(),
        "upstream response content[0].type: expected a string"
    );
    assert_eq!(
        err(br#"{"id":"m","content":[{"type":"tool_use","id":"t"}]}"#).to_string(),
        "upstream response content[0]: name: expected a string"
    );
    assert_eq!(err(b"{}").class(), ErrorClass::Malformed);
}

/// Error bodies as the errors reference shows them.
const OVERLOADED: &[u8] = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;
const RATE_LIMITED: &[u8] = br#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 50,000 input tokens per minute."}}"#;
const INVALID: &[u8] = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"req_1"}"#;

#[test]
fn classifies_error_bodies() {
    let status = |code| StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT);
    let body =
        |kind: &str| format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"m"}}}}"#);
    assert_eq!(classify(status(529), OVERLOADED), ErrorClass::Server);
    assert_eq!(classify(status(529), b""), ErrorClass::Server);
    assert_eq!(classify(status(429), RATE_LIMITED), ErrorClass::RateLimited);
    assert_eq!(classify(status(400), INVALID), ErrorClass::Client);
    assert_eq!(
        classify(status(413), body("request_too_large").as_bytes()),
        ErrorClass::Client
    );
    assert_eq!(
        classify(status(401), body("authentication_error").as_bytes()),
        ErrorClass::Auth
    );
    assert_eq!(
        classify(status(403), body("permission_error").as_bytes()),
        ErrorClass::Auth
    );
    assert_eq!(
        classify(status(402), body("billing_error").as_bytes()),
        ErrorClass::Auth
    );
    assert_eq!(
        classify(status(404), body("not_found_error").as_bytes()),
        ErrorClass::Client
    );
    assert_eq!(
        classify(status(500), body("api_error").as_bytes()),
        ErrorClass::Server
    );
    assert_eq!(classify(status(500), OVERLOADED), ErrorClass::Server);
    // overloaded_error is capacity whatever the status says.
    assert_eq!(classify(status(400), OVERLOADED), ErrorClass::Server);
    assert_eq!(
        classify(status(503), b"<html>upstream connect error</html>"),
        ErrorClass::Server
    );
    assert_eq!(classify(status(408), b""), ErrorClass::Timeout);
    assert_eq!(classify(status(422), b"not json"), ErrorClass::Client);

    assert_eq!(error_message(OVERLOADED).as_deref(), Some("Overloaded"));
    assert_eq!(
        error_message(INVALID).as_deref(),
        Some("max_tokens: Field required")
    );
    assert_eq!(error_message(b"<html>"), None);
    assert_eq!(error_message(br#"{"error":"flat"}"#), None);
    assert_eq!(error_message(br#"{"error":{"message":7}}"#), None);
}

#[test]
fn upstream_error_kinds_classify() {
    let class = |kind: &str| {
        TranslateError::Upstream {
            kind: kind.into(),
            message: String::new(),
        }
        .class()
    };
    assert_eq!(class("overloaded_error"), ErrorClass::Server);
    assert_eq!(class("api_error"), ErrorClass::Server);
    assert_eq!(class("rate_limit_error"), ErrorClass::RateLimited);
    assert_eq!(class("authentication_error"), ErrorClass::Auth);
    assert_eq!(class("invalid_request_error"), ErrorClass::Client);
    assert_eq!(class("timeout_error"), ErrorClass::Timeout);
    assert_eq!(class("brand_new_error"), ErrorClass::Server);
    assert_eq!(
        TranslateError::request("a", "b").class(),
        ErrorClass::Client
    );
}
