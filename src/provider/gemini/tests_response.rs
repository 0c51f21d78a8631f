//! `generateContent` replies → `chat.completion`, and error bodies → classes and messages.
//! Fixtures follow the shapes in Gemini's API reference.

use http::StatusCode;
use serde_json::{Value, json};

use super::{TranslateError, classify, error_message, from_generate_response};
use crate::provider::ErrorClass;

fn translate(body: &Value) -> Value {
    match from_generate_response(
        body.to_string().as_bytes(),
        "gemini-2.0-flash",
        1_700_000_000,
    ) {
        Ok(v) => v,
        Err(e) => panic!("translation failed: {e}"),
    }
}

#[test]
fn text_reply() {
    let body = json!({
        "candidates": [{
            "content": { "parts": [{ "text": "Hello" }, { "text": ", world!" }], "role": "model" },
            "finishReason": "STOP",
            "avgLogprobs": -0.12,
            "safetyRatings": [{ "category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE" }],
        }],
        "usageMetadata": {
            "promptTokenCount": 8,
            "candidatesTokenCount": 4,
            "totalTokenCount": 12,
            "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": 8 }],
        },
        "modelVersion": "gemini-2.0-flash",
        "responseId": "abc123",
    });
    assert_eq!(
        translate(&body),
        json!({
            "id": "chatcmpl-abc123",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gemini-2.0-flash",
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": "Hello, world!" },
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": { "prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12 },
        })
    );
}

#[test]
fn thinking_tokens_count_as_completion_and_thoughts_are_not_content() {
    let body = json!({
        "candidates": [{
            "content": { "role": "model", "parts": [
                { "text": "Let me think...", "thought": true },
                { "text": "42" },
            ]},
            "finishReason": "MAX_TOKENS",
            "index": 0,
        }],
        "usageMetadata": {
            "promptTokenCount": 10, "candidatesTokenCount": 1, "thoughtsTokenCount": 30,
            "cachedContentTokenCount": 4, "totalTokenCount": 41,
        },
    });
    let out = translate(&body);
    assert_eq!(out["id"], "chatcmpl-gemini-1700000000");
    assert_eq!(out["choices"][0]["message"]["content"], "42");
    assert_eq!(out["choices"][0]["finish_reason"], "length");
    assert_eq!(
        out["usage"],
        json!({
            "prompt_tokens": 10, "completion_tokens": 31, "total_tokens": 41,
            "prompt_tokens_details": { "cached_tokens": 4 },
            "completion_tokens_details": { "reasoning_tokens": 30 },
        })
    );
}

#[test]
fn function_calls_become_tool_calls() {
    let body = json!({
        "candidates": [{
            "content": { "role": "model", "parts": [
                { "functionCall": { "name": "get_weather", "args": { "city": "Paris" } } },
                { "functionCall": { "id": "fc-7", "name": "get_time" } },
            ]},
            "finishReason": "STOP",
        }],
        "usageMetadata": { "promptTokenCount": 20, "candidatesTokenCount": 10, "totalTokenCount": 30 },
        "responseId": "r1",
    });
    assert_eq!(
        translate(&body)["choices"],
        json!([{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": null,
                "tool_calls": [
                    { "id": "call_0", "type": "function",
                      "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } },
                    { "id": "fc-7", "type": "function",
                      "function": { "name": "get_time", "arguments": "{}" } },
                ],
            },
            "logprobs": null,
            "finish_reason": "tool_calls",
        }])
    );
}

#[test]
fn several_candidates_keep_their_index() {
    let body = json!({ "candidates": [
        { "index": 0, "content": { "parts": [{ "text": "A" }] }, "finishReason": "STOP" },
        { "index": 1, "content": { "parts": [{ "text": "B" }] }, "finishReason": "STOP" },
    ]});
    let out = translate(&body);
    assert_eq!(out["choices"][1]["index"], 1);
    assert_eq!(out["choices"][1]["message"]["content"], "B");
    assert_eq!(out.get("usage"), None);
}

#[test]
fn finish_reasons_map() {
    let cases = [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("SOMETHING_NEW", "stop"),
    ];
    for (gemini, openai) in cases {
        let body = json!({ "candidates": [{
            "content": { "parts": [{ "text": "x" }] }, "finishReason": gemini,
        }]});
        assert_eq!(
            translate(&body)["choices"][0]["finish_reason"],
            openai,
            "{gemini}"
        );
    }
}

#[test]
fn safety_blocked_candidate_has_empty_content() {
    let body = json!({
        "candidates": [{
            "finishReason": "SAFETY",
            "index": 0,
            "safetyRatings": [
                { "category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true },
            ],
        }],
        "usageMetadata": { "promptTokenCount": 9, "totalTokenCount": 9 },
    });
    let out = translate(&body);
    assert_eq!(
        out["choices"],
        json!([{
            "index": 0,
            "message": { "role": "assistant", "content": "" },
            "logprobs": null,
            "finish_reason": "content_filter",
        }])
    );
    assert_eq!(
        out["usage"],
        json!({ "prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9 })
    );
}

#[test]
fn blocked_prompt_is_a_content_filtered_completion() {
    let body = json!({
        "promptFeedback": {
            "blockReason": "SAFETY",
            "safetyRatings": [{ "category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH" }],
        },
        "usageMetadata": { "promptTokenCount": 7, "totalTokenCount": 7 },
        "modelVersion": "gemini-2.0-flash",
    });
    assert_eq!(
        translate(&body),
        json!({
            "id": "chatcmpl-gemini-1700000000",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gemini-2.0-flash",
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": "" },
                "logprobs": null,
                "finish_reason": "content_filter",
            }],
            "usage": { "prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7 },
        })
    );
}

#[test]
fn malformed_replies_are_errors_classed_malformed() {
    let cases: [(&[u8], &str); 7] = [
        (b"", "gemini response body: not JSON: EOF while parsing a value at line 1 column 0"),
        (b"[1]", "gemini response body: expected a JSON object"),
        (b"{}", "gemini response candidates: missing, and no promptFeedback.blockReason says why"),
        (br#"{"candidates": {}}"#, "gemini response candidates: expected an array"),
        (
            br#"{"candidates": [{"content": {"parts": [{"text": 5}]}}]}"#,
            "gemini response candidates[0].content.parts[0].text: expected a string",
        ),
        (
            br#"{"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]}"#,
            "gemini response candidates[0].content.parts[0].functionCall.name: expected a string",
        ),
        (
            br#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": [1]}}]}}]}"#,
            "gemini response candidates[0].content.parts[0].functionCall.args: expected an object",
        ),
    ];
    for (body, expected) in cases {
        match from_generate_response(body, "m", 0) {
            Ok(v) => panic!("expected an error for {body:?}, got {v}"),
            Err(e) => {
                assert_eq!(e.to_string(), expected);
                assert_eq!(e.class(), ErrorClass::Malformed);
            }
        }
    }
}

#[test]
fn an_error_object_in_a_2xx_body_is_an_upstream_error() {
    let body = br#"{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}"#;
    let e = from_generate_response(body, "m", 0);
    assert_eq!(
        e,
        Err(TranslateError::Upstream {
            code: Some(503),
            status: Some("UNAVAILABLE".into()),
            message: "The model is overloaded.".into(),
        })
    );
    if let Err(e) = e {
        assert_eq!(
            e.to_string(),
            "gemini error 503 UNAVAILABLE: The model is overloaded."
        );
        assert_eq!(e.class(), ErrorClass::Server);
    }
}

const QUOTA: &str = r#"{
  "error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      { "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{ "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests" }] },
      { "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "27s" }
    ]
  }
}"#;

const BAD_KEY: &str = r#"{
  "error": {
    "code": 400,
    "message": "API key not valid. Please pass a valid API key.",
    "status": "INVALID_ARGUMENT",
    "details": [
      { "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
        "domain": "googleapis.com", "metadata": { "service": "generativelanguage.googleapis.com" } }
    ]
  }
}"#;

const BAD_ARGUMENT: &str = r#"{"error": {"code": 400,
  "message": "* GenerateContentRequest.contents: contents is not specified\n",
  "status": "INVALID_ARGUMENT"}}"#;

const DENIED: &str = r#"{"error": {"code": 403,
  "message": "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
  "status": "PERMISSION_DENIED"}}"#;

const OVERLOADED: &str = r#"{"error": {"code": 503,
  "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}"#;

#[test]
fn classifies_error_bodies() {
    let cases = [
        (429, QUOTA, ErrorClass::RateLimited),
        (400, BAD_KEY, ErrorClass::Auth),
        (400, BAD_ARGUMENT, ErrorClass::Client),
        (403, DENIED, ErrorClass::Auth),
        (503, OVERLOADED, ErrorClass::Server),
        (
            400,
            r#"{"error": {"code": 400, "message": "User location is not supported for the API use.", "status": "FAILED_PRECONDITION"}}"#,
            ErrorClass::Client,
        ),
        (
            404,
            r#"{"error": {"code": 404, "message": "models/gemini-9 is not found for API version v1beta", "status": "NOT_FOUND"}}"#,
            ErrorClass::Client,
        ),
        (
            401,
            r#"{"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}"#,
            ErrorClass::Auth,
        ),
        (
            500,
            r#"{"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}"#,
            ErrorClass::Server,
        ),
        (
            504,
            r#"{"error": {"code": 504, "message": "Deadline expired before operation could complete.", "status": "DEADLINE_EXCEEDED"}}"#,
            ErrorClass::Timeout,
        ),
        // The array form streaming endpoints without alt=sse send.
        (
            429,
            r#"[{"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}]"#,
            ErrorClass::RateLimited,
        ),
        // No usable body: the HTTP status decides.
        (429, "", ErrorClass::RateLimited),
        (401, "<html>", ErrorClass::Auth),
        (403, "{}", ErrorClass::Auth),
        (404, "not found", ErrorClass::Client),
        (408, "", ErrorClass::Timeout),
        (502, "bad gateway", ErrorClass::Server),
        (503, "", ErrorClass::Server),
        (504, "", ErrorClass::Timeout),
    ];
    for (status, body, expected) in cases {
        let status = match StatusCode::from_u16(status) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            classify(status, body.as_bytes()),
            expected,
            "{status} {body}"
        );
    }
}

#[test]
fn error_messages() {
    assert_eq!(
        error_message(QUOTA.as_bytes()).as_deref(),
        Some("You exceeded your current quota, please check your plan and billing details.")
    );
    assert_eq!(
        error_message(BAD_KEY.as_bytes()).as_deref(),
        Some("API key not valid. Please pass a valid API key.")
    );
    assert_eq!(
        error_message(br#"[{"error": {"message": "wrapped"}}]"#).as_deref(),
        Some("wrapped")
    );
    assert_eq!(error_message(b""), None);
    assert_eq!(error_message(b"{\"error\": \"text\"}"), None);
    assert_eq!(error_message(b"{\"error\": {\"code\": 500}}"), None);
    assert_eq!(error_message(b"[]"), None);
}
