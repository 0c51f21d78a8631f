//! Messages request → OpenAI request; `chat.completion` → Messages reply.

use serde_json::{Value, json};

use crate::provider::ErrorClass;
use crate::provider::anthropic::{TranslateError, messages_to_openai, openai_to_messages_response};

fn translate(req: &Value) -> Value {
    match messages_to_openai(req) {
        Ok(out) => out,
        Err(e) => panic!("{req}: {e}"),
    }
}

fn error(req: &Value) -> String {
    match messages_to_openai(req) {
        Ok(out) => panic!("expected an error, got {out}"),
        Err(e) => e.to_string(),
    }
}

/// A request shaped like Claude Code's: system blocks with cache markers, a tool round.
pub(super) fn claude_code_request() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "system": [
            { "type": "text", "text": "You are Claude Code.", "cache_control": { "type": "ephemeral" } },
            { "type": "text", "text": "Work in /repo." },
        ],
        "messages": [
            { "role": "user", "content": [{ "type": "text", "text": "List the files." }] },
            { "role": "assistant", "content": [
                { "type": "thinking", "thinking": "Use ls.", "signature": "sig" },
                { "type": "text", "text": "Listing." },
                { "type": "tool_use", "id": "toolu_1", "name": "Bash", "input": { "command": "ls" } },
            ]},
            { "role": "user", "content": [
                { "type": "tool_result", "tool_use_id": "toolu_1", "content": "a.rs\nb.rs" },
                { "type": "text", "text": "Now read a.rs." },
            ]},
        ],
        "tools": [{
            "name": "Bash",
            "description": "Run a command",
            "input_schema": {
                "type": "object",
                "properties": { "command": { "type": "string" } },
                "required": ["command"],
            },
            "cache_control": { "type": "ephemeral" },
        }],
        "tool_choice": { "type": "auto", "disable_parallel_tool_use": true },
        "stop_sequences": ["</done>"],
        "temperature": 1,
        "top_k": 40,
        "stream": true,
        "metadata": { "user_id": "user_abc" },
        "thinking": { "type": "enabled", "budget_tokens": 1024 },
    })
}

#[test]
fn claude_code_request_becomes_a_chat_request() {
    assert_eq!(
        translate(&claude_code_request()),
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 32000,
            "messages": [
                { "role": "system", "content": "You are Claude Code.\n\nWork in /repo." },
                { "role": "user", "content": [{ "type": "text", "text": "List the files." }] },
                { "role": "assistant", "content": "Listing.", "tool_calls": [{
                    "id": "toolu_1",
                    "type": "function",
                    "function": { "name": "Bash", "arguments": "{\"command\":\"ls\"}" },
                }]},
                { "role": "tool", "tool_call_id": "toolu_1", "content": "a.rs\nb.rs" },
                { "role": "user", "content": [{ "type": "text", "text": "Now read a.rs." }] },
            ],
            "tools": [{ "type": "function", "function": {
                "name": "Bash",
                "description": "Run a command",
                "parameters": {
                    "type": "object",
                    "properties": { "command": { "type": "string" } },
                    "required": ["command"],
                },
            }}],
            "tool_choice": "auto",
            "parallel_tool_calls": false,
            "stop": ["</done>"],
            "temperature": 1,
            "stream": true,
            "stream_options": { "include_usage": true },
            "user": "user_abc",
        })
    );
}

#[test]
fn images_documents_and_tool_result_images() {
    let req = json!({
        "model": "m",
        "system": "Be brief.",
        "messages": [
            { "role": "user", "content": [
                { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo=" } },
                { "type": "image", "source": { "type": "url", "url": "https://example.com/cat.jpg" } },
                { "type": "document", "source": { "type": "base64", "media_type": "application/pdf", "data": "JVBERi0=" } },
                { "type": "document", "source": { "type": "text", "media_type": "text/plain", "data": "plain doc" } },
            ]},
            { "role": "assistant", "content": [
                { "type": "tool_use", "id": "t1", "name": "screenshot", "input": {} },
                { "type": "tool_use", "id": "t2", "name": "read", "input": { "path": "x" } },
            ]},
            { "role": "user", "content": [
                { "type": "tool_result", "tool_use_id": "t1", "content": [
                    { "type": "text", "text": "Screenshot taken" },
                    { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "AAAA" } },
                ]},
                { "type": "tool_result", "tool_use_id": "t2", "is_error": true },
            ]},
        ],
    });
    assert_eq!(
        translate(&req)["messages"],
        json!([
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": [
                { "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBORw0KGgo=" } },
                { "type": "image_url", "image_url": { "url": "https://example.com/cat.jpg" } },
                { "type": "file", "file": { "file_data": "data:application/pdf;base64,JVBERi0=" } },
                { "type": "text", "text": "plain doc" },
            ]},
            { "role": "assistant", "content": null, "tool_calls": [
                { "id": "t1", "type": "function", "function": { "name": "screenshot", "arguments": "{}" } },
                { "id": "t2", "type": "function", "function": { "name": "read", "arguments": "{\"path\":\"x\"}" } },
            ]},
            { "role": "tool", "tool_call_id": "t1", "content": [{ "type": "text", "text": "Screenshot taken" }] },
            { "role": "tool", "tool_call_id": "t2", "content": "" },
            { "role": "user", "content": [
                { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" } },
            ]},
        ])
    );
}

#[test]
fn tool_choice_and_plain_fields() {
    let choice = |choice: Value| {
        let req = json!({
            "model": "m", "max_tokens": 5,
            "messages": [{ "role": "user", "content": "x" }],
            "tools": [{ "name": "f", "input_schema": { "type": "object" } }],
            "tool_choice": choice,
            "stream": false,
        });
        let out = translate(&req);
        assert_eq!(out["stream"], false);
        assert_eq!(out.get("stream_options"), None);
        (
            out["tool_choice"].clone(),
            out.get("parallel_tool_calls").cloned(),
        )
    };
    assert_eq!(choice(json!({ "type": "auto" })), (json!("auto"), None));
    assert_eq!(choice(json!({ "type": "any" })), (json!("required"), None));
    assert_eq!(choice(json!({ "type": "none" })), (json!("none"), None));
    assert_eq!(
        choice(json!({ "type": "tool", "name": "f", "disable_parallel_tool_use": true })),
        (
            json!({ "type": "function", "function": { "name": "f" } }),
            Some(json!(false))
        )
    );
}

#[test]
fn invalid_ingress_requests() {
    let msg = |messages: Value| json!({ "model": "m", "max_tokens": 1, "messages": messages });
    assert_eq!(
        error(&json!("x")),
        "request: expected a JSON object, got a string"
    );
    assert_eq!(
        error(&json!({ "messages": [] })),
        "model: expected a string"
    );
    assert_eq!(error(&json!({ "model": "m" })), "messages: missing");
    assert_eq!(
        error(&msg(json!([{ "role": "system", "content": "x" }]))),
        "messages[0].role: expected \"user\" or \"assistant\", got \"system\""
    );
    assert_eq!(
        error(&msg(json!([{ "content": "x" }]))),
        "messages[0].role: missing"
    );
    assert_eq!(
        error(&msg(json!([{ "role": "user" }]))),
        "messages[0].content: missing"
    );
    assert_eq!(
        error(&msg(
            json!([{ "role": "user", "content": [{ "type": "tool_use", "id": "t", "name": "f", "input": {} }] }])
        )),
        "messages[0].content[0]: \"tool_use\" blocks are not supported in a user message"
    );
    assert_eq!(
        error(&msg(
            json!([{ "role": "user", "content": [{ "type": "image", "source": { "type": "file", "file_id": "f" } }] }])
        )),
        "messages[0].content[0]: source.type: expected \"base64\" or \"url\""
    );
    assert_eq!(
        error(&msg(
            json!([{ "role": "user", "content": [{ "type": "tool_result" }] }])
        )),
        "messages[0].content[0]: tool_use_id: expected a string"
    );
    assert_eq!(
        error(&msg(
            json!([{ "role": "assistant", "content": [{ "type": "server_tool_use", "id": "s" }] }])
        )),
        "messages[0].content[0]: \"server_tool_use\" blocks are not supported in an assistant message"
    );
    let mut server_tool = msg(json!([{ "role": "user", "content": "x" }]));
    server_tool["tools"] = json!([{ "type": "web_search_20250305", "name": "web_search" }]);
    assert_eq!(
        error(&server_tool),
        "tools[0].type: server tool \"web_search_20250305\" cannot be served by an OpenAI-shaped upstream"
    );
    let mut bad_system = msg(json!([{ "role": "user", "content": "x" }]));
    bad_system["system"] = json!([{ "type": "image" }]);
    assert_eq!(error(&bad_system), "system[0]: expected a text block");
    assert!(matches!(
        messages_to_openai(&bad_system),
        Err(TranslateError::Request { .. })
    ));
}

fn reply(req: &Value) -> Value {
    match openai_to_messages_response(req) {
        Ok(out) => out,
        Err(e) => panic!("{req}: {e}"),
    }
}

#[test]
fn chat_completion_becomes_a_message() {
    let completion = json!({
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_677_652_288,
        "model": "gpt-4o",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": "Hello there!", "refusal": null },
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
            "prompt_tokens_details": { "cached_tokens": 0 },
        },
    });
    assert_eq!(
        reply(&completion),
        json!({
            "id": "chatcmpl-123",
            "type": "message",
            "role": "assistant",
            "model": "gpt-4o",
            "content": [{ "type": "text", "text": "Hello there!" }],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": { "input_tokens": 19, "output_tokens": 10 },
        })
    );
}

#[test]
fn tool_calls_refusals_lengths_and_cached_usage() {
    let with = |message: Value, finish: Value, usage: Value| {
        reply(&json!({
            "id": "c", "model": "m",
            "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
            "usage": usage,
        }))
    };
    let tools = with(
        json!({ "role": "assistant", "content": null, "tool_calls": [
            { "id": "call_1", "type": "function", "function": { "name": "f", "arguments": "{\"a\":[1,2]}" } },
            { "id": "call_2", "type": "function", "function": { "name": "g", "arguments": "" } },
        ]}),
        // Ollama's way: `stop` on a tool call.
        json!("stop"),
        json!({ "prompt_tokens": 1000, "completion_tokens": 20, "prompt_tokens_details": { "cached_tokens": 800 } }),
    );
    assert_eq!(
        tools["content"],
        json!([
            { "type": "tool_use", "id": "call_1", "name": "f", "input": { "a": [1, 2] } },
            { "type": "tool_use", "id": "call_2", "name": "g", "input": {} },
        ])
    );
    assert_eq!(tools["stop_reason"], "tool_use");
    assert_eq!(
        tools["usage"],
        json!({ "input_tokens": 200, "output_tokens": 20, "cache_read_input_tokens": 800 })
    );

    let refusal = with(
        json!({ "role": "assistant", "content": null, "refusal": "I can't help with that." }),
        json!("stop"),
        json!(null),
    );
    assert_eq!(
        refusal["content"],
        json!([{ "type": "text", "text": "I can't help with that." }])
    );
    assert_eq!(refusal["stop_reason"], "refusal");
    assert_eq!(
        refusal["usage"],
        json!({ "input_tokens": 0, "output_tokens": 0 })
    );

    for (finish, stop) in [
        (json!("length"), "max_tokens"),
        (json!("content_filter"), "refusal"),
        (json!("tool_calls"), "tool_use"),
        (json!(null), "end_turn"),
    ] {
        let out = with(
            json!({ "role": "assistant", "content": "x" }),
            finish.clone(),
            json!(null),
        );
        assert_eq!(out["stop_reason"], stop, "{finish}");
    }
}

#[test]
fn bad_chat_completions_are_response_errors() {
    let err = |v: Value| match openai_to_messages_response(&v) {
        Ok(out) => panic!("expected an error, got {out}"),
        Err(e) => e,
    };
    let upstream =
        err(json!({ "error": { "message": "Rate limit reached", "type": "rate_limit_error" } }));
    assert_eq!(
        upstream,
        TranslateError::Upstream {
            kind: "rate_limit_error".into(),
            message: "Rate limit reached".into()
        }
    );
    assert_eq!(upstream.class(), ErrorClass::RateLimited);
    let missing = err(json!({ "choices": [] }));
    assert_eq!(
        missing.to_string(),
        "upstream response choices[0].message: expected an object"
    );
    assert_eq!(missing.class(), ErrorClass::Malformed);
    let bad_args = err(json!({ "choices": [{ "message": { "tool_calls": [
        { "id": "c", "function": { "name": "f", "arguments": "{oops" } },
    ]}}]}));
    assert!(
        bad_args.to_string().starts_with(
            "upstream response choices[0].message.tool_calls[0]: function.arguments: invalid JSON ("
        ),
        "{bad_args}"
    );
    assert_eq!(
        err(json!({ "choices": [{ "message": { "content": 5 } }] })).to_string(),
        "upstream response choices[0].message.content: expected a string, parts or null, got a number"
    );
}
