//! OpenAI chat request → Messages request: tools, tool calls and results, images and files,
//! malformed requests.

use serde_json::{Value, json};

use super::request::{error, messages, translate};

/// The weather example of Anthropic's tool-use guide, as an OpenAI client would send it.
fn weather_tools() -> Value {
    json!([{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": { "location": { "type": "string" } },
                "required": ["location"],
            },
            "strict": true,
        },
    }, {
        "type": "function",
        "function": { "name": "get_time" },
    }])
}

#[test]
fn tool_calls_and_results_become_blocks() {
    let out = translate(json!({
        "messages": [
            { "role": "user", "content": "Weather and time in SF?" },
            { "role": "assistant", "content": null, "tool_calls": [
                { "id": "toolu_01", "type": "function",
                  "function": { "name": "get_weather", "arguments": "{\"location\": \"San Francisco, CA\"}" } },
                { "id": "toolu_02", "type": "function",
                  "function": { "name": "get_time", "arguments": "" } },
            ]},
            { "role": "tool", "tool_call_id": "toolu_01", "content": "15 degrees" },
            { "role": "tool", "tool_call_id": "toolu_02", "content": [{ "type": "text", "text": "9:41" }] },
            { "role": "user", "content": "Thanks. Anything else?" },
        ],
        "tools": weather_tools(),
        "tool_choice": "required",
        "parallel_tool_calls": false,
    }));
    assert_eq!(
        out["messages"],
        json!([
            { "role": "user", "content": "Weather and time in SF?" },
            { "role": "assistant", "content": [
                { "type": "tool_use", "id": "toolu_01", "name": "get_weather",
                  "input": { "location": "San Francisco, CA" } },
                { "type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {} },
            ]},
            { "role": "user", "content": [
                { "type": "tool_result", "tool_use_id": "toolu_01", "content": "15 degrees" },
                { "type": "tool_result", "tool_use_id": "toolu_02",
                  "content": [{ "type": "text", "text": "9:41" }] },
                { "type": "text", "text": "Thanks. Anything else?" },
            ]},
        ])
    );
    assert_eq!(
        out["tools"],
        json!([{
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "input_schema": {
                "type": "object",
                "properties": { "location": { "type": "string" } },
                "required": ["location"],
            },
        }, {
            "name": "get_time",
            "input_schema": { "type": "object", "properties": {} },
        }])
    );
    assert_eq!(
        out["tool_choice"],
        json!({ "type": "any", "disable_parallel_tool_use": true })
    );
}

#[test]
fn assistant_text_comes_before_its_tool_calls_and_results_come_first() {
    assert_eq!(
        messages(json!([
            { "role": "user", "content": "Go" },
            { "role": "assistant", "content": "Checking.", "tool_calls": [
                { "id": "c1", "function": { "name": "f", "arguments": { "a": 1 } } },
            ]},
            { "role": "user", "content": "(also this)" },
            { "role": "tool", "tool_call_id": "c1", "content": "" },
        ])),
        json!([
            { "role": "user", "content": "Go" },
            { "role": "assistant", "content": [
                { "type": "text", "text": "Checking." },
                { "type": "tool_use", "id": "c1", "name": "f", "input": { "a": 1 } },
            ]},
            { "role": "user", "content": [
                { "type": "tool_result", "tool_use_id": "c1" },
                { "type": "text", "text": "(also this)" },
            ]},
        ])
    );
}

#[test]
fn tool_choice_modes() {
    let choice = |choice: Value, parallel: Value| {
        translate(json!({
            "messages": [{ "role": "user", "content": "x" }],
            "tools": weather_tools(),
            "tool_choice": choice,
            "parallel_tool_calls": parallel,
        }))
        .get("tool_choice")
        .cloned()
    };
    assert_eq!(
        choice(json!("auto"), json!(null)),
        Some(json!({ "type": "auto" }))
    );
    assert_eq!(
        choice(json!("required"), json!(true)),
        Some(json!({ "type": "any" }))
    );
    assert_eq!(
        choice(json!("none"), json!(false)),
        Some(json!({ "type": "none" }))
    );
    assert_eq!(
        choice(
            json!({ "type": "function", "function": { "name": "get_time" } }),
            json!(null)
        ),
        Some(json!({ "type": "tool", "name": "get_time" }))
    );
    assert_eq!(
        choice(json!(null), json!(false)),
        Some(json!({ "type": "auto", "disable_parallel_tool_use": true }))
    );
    assert_eq!(choice(json!(null), json!(null)), None);
    // No tools: no tool_choice either.
    let out = translate(json!({
        "messages": [{ "role": "user", "content": "x" }],
        "tools": [],
        "tool_choice": "required",
    }));
    assert_eq!((out.get("tools"), out.get("tool_choice")), (None, None));
    assert_eq!(
        error(json!({
            "messages": [{ "role": "user", "content": "x" }],
            "tools": weather_tools(),
            "tool_choice": "sometimes",
        })),
        "tool_choice: unknown mode \"sometimes\" (expected auto, required or none)"
    );
    assert_eq!(
        error(json!({
            "messages": [{ "role": "user", "content": "x" }],
            "tools": [{ "type": "custom", "custom": { "name": "x" } }],
        })),
        "tools[0].type: \"custom\" is not supported (only \"function\")"
    );
    assert_eq!(
        error(json!({
            "messages": [{ "role": "user", "content": "x" }],
            "tools": [{ "type": "function", "function": { "description": "nameless" } }],
        })),
        "tools[0].function.name: expected a string"
    );
}

#[test]
fn bad_tool_arguments_name_the_message() {
    let call = |args: Value| {
        json!({ "messages": [
            { "role": "user", "content": "x" },
            { "role": "assistant", "tool_calls": [
                { "id": "c", "type": "function", "function": { "name": "f", "arguments": args } },
            ]},
        ]})
    };
    let invalid = error(call(json!("{\"a\": ")));
    assert!(
        invalid.starts_with("messages[1].tool_calls[0]: function.arguments: invalid JSON (EOF"),
        "{invalid}"
    );
    assert_eq!(
        error(call(json!("[1, 2]"))),
        "messages[1].tool_calls[0]: function.arguments: expected a JSON object, got an array"
    );
    assert_eq!(
        error(call(json!(7))),
        "messages[1].tool_calls[0]: function.arguments: expected a JSON string, got a number"
    );
    assert_eq!(
        error(json!({ "messages": [
            { "role": "user", "content": "x" },
            { "role": "assistant", "tool_calls": [{ "type": "function", "function": { "name": "f" } }] },
        ]})),
        "messages[1].tool_calls[0]: id: expected a string"
    );
    assert_eq!(
        error(json!({ "messages": [
            { "role": "user", "content": "x" },
            { "role": "tool", "content": "result" },
        ]})),
        "messages[1].tool_call_id: expected a string"
    );
}

#[test]
fn images_files_and_cache_control() {
    assert_eq!(
        messages(json!([{ "role": "user", "content": [
            { "type": "text", "text": "What is in these images?", "cache_control": { "type": "ephemeral" } },
            { "type": "image_url", "image_url": { "url": "data:image/jpeg;base64,/9j/4AAQSkZJRg==", "detail": "high" } },
            { "type": "image_url", "image_url": { "url": "https://upload.wikimedia.org/a.jpg" } },
            { "type": "image_url", "image_url": "HTTP://example.com/b.png" },
            { "type": "file", "file": { "file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf" } },
        ]}])),
        json!([{ "role": "user", "content": [
            { "type": "text", "text": "What is in these images?", "cache_control": { "type": "ephemeral" } },
            { "type": "image", "source": { "type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg==" } },
            { "type": "image", "source": { "type": "url", "url": "https://upload.wikimedia.org/a.jpg" } },
            { "type": "image", "source": { "type": "url", "url": "HTTP://example.com/b.png" } },
            { "type": "document", "source": { "type": "base64", "media_type": "application/pdf", "data": "JVBERi0=" } },
        ]}])
    );
    let image = |url: &str| {
        error(json!({ "messages": [
            { "role": "user", "content": [{ "type": "text", "text": "x" }] },
            { "role": "user", "content": [{ "type": "image_url", "image_url": { "url": url } }] },
        ]}))
    };
    assert_eq!(
        image("data:image/png,rawbytes"),
        "messages[1].content[0]: only base64 data URLs are supported"
    );
    assert_eq!(
        image("data:;base64,AAAA"),
        "messages[1].content[0]: data URL without a media type"
    );
    assert_eq!(
        image("data:image/png;base64"),
        "messages[1].content[0]: data URL without a comma"
    );
    assert_eq!(
        image("ftp://example.com/x.png"),
        "messages[1].content[0]: image_url.url: expected a data: URL or an http(s) URL"
    );
    assert_eq!(
        error(json!({ "messages": [{ "role": "user", "content": [
            { "type": "input_audio", "input_audio": { "data": "AAAA", "format": "wav" } },
        ]}]})),
        "messages[0].content[0]: \"input_audio\" parts are not supported in a user message"
    );
    assert_eq!(
        error(json!({ "messages": [{ "role": "user", "content": [
            { "type": "file", "file": { "file_id": "file-abc" } },
        ]}]})),
        "messages[0].content[0]: file.file_data: expected a string (file ids are not supported)"
    );
}

#[test]
fn malformed_requests_say_what_and_where() {
    assert_eq!(
        error(json!([1])),
        "request: expected a JSON object, got an array"
    );
    assert_eq!(error(json!({ "model": "m" })), "messages: missing");
    assert_eq!(
        error(json!({ "messages": "hi" })),
        "messages: expected an array, got a string"
    );
    assert_eq!(
        error(json!({ "messages": [{ "role": "user", "content": "a" }, 5] })),
        "messages[1]: expected an object, got a number"
    );
    assert_eq!(
        error(json!({ "messages": [{ "role": "user", "content": "a" }, { "content": "b" }] })),
        "messages[1].role: missing"
    );
    assert_eq!(
        error(json!({ "messages": [{ "role": ["user"], "content": "a" }] })),
        "messages[0].role: expected a string, got an array"
    );
    assert_eq!(
        error(json!({ "messages": [{ "role": "function", "name": "f", "content": "a" }] })),
        "messages[0].role: unsupported role \"function\" (expected system, developer, user, assistant or tool)"
    );
    assert_eq!(
        error(json!({ "messages": [
            { "role": "user", "content": "a" },
            { "role": "assistant", "content": "b" },
            { "role": "user", "content": "c" },
            { "role": "user", "content": 42 },
        ]})),
        "messages[3].content: expected a string, an array of content parts or null, got a number"
    );
    assert_eq!(
        error(json!({ "messages": [{ "role": "user", "content": [{ "text": "untyped" }] }] })),
        "messages[0].content[0]: expected an object with a string \"type\""
    );
    assert_eq!(
        error(json!({ "messages": [{ "role": "user", "content": [{ "type": "text" }] }] })),
        "messages[0].content[0]: text part without a string \"text\""
    );
}
