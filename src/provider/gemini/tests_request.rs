//! OpenAI chat request → `generateContent` body: roles, merging, parts, config, tools and the
//! errors bad requests get.

use serde_json::{Value, json};

use super::{TranslateError, to_generate_request};

fn translate(req: Value) -> Value {
    match to_generate_request(&req) {
        Ok(v) => v,
        Err(e) => panic!("translation failed: {e}"),
    }
}

fn error(req: Value) -> String {
    match to_generate_request(&req) {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn text_conversation_with_system_and_developer_hoisted_and_turns_merged() {
    let out = translate(json!({
        "model": "gemini-2.0-flash",
        "stream": true,
        "user": "u-1",
        "messages": [
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": "Hello" },
            { "role": "user", "content": [{ "type": "text", "text": "Are you there?" }] },
            { "role": "assistant", "content": "Yes." },
            { "role": "developer", "content": [{ "type": "text", "text": "Answer in English." }] },
            { "role": "assistant", "content": "How can I help?" },
            { "role": "user", "content": "" },
            { "role": "user", "content": "Tell me a joke." },
        ],
    }));
    assert_eq!(
        out,
        json!({
            "contents": [
                { "role": "user", "parts": [{ "text": "Hello" }, { "text": "Are you there?" }] },
                { "role": "model", "parts": [{ "text": "Yes." }, { "text": "How can I help?" }] },
                { "role": "user", "parts": [{ "text": "Tell me a joke." }] },
            ],
            "systemInstruction": { "parts": [{ "text": "Be brief.\n\nAnswer in English." }] },
        })
    );
}

#[test]
fn images_become_inline_data_or_file_data() {
    let out = translate(json!({
        "messages": [{ "role": "user", "content": [
            { "type": "text", "text": "What is in these?" },
            { "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBORw0KGgo=" } },
            { "type": "image_url", "image_url": { "url": "https://example.com/a/cat.WEBP?x=1#f", "detail": "high" } },
            { "type": "image_url", "image_url": { "url": "https://example.com/photo" } },
            { "type": "image_url", "image_url": "http://example.com/dog.gif" },
            { "type": "input_audio", "input_audio": { "data": "UklGRg==", "format": "wav" } },
        ]}],
    }));
    assert_eq!(
        out["contents"][0]["parts"],
        json!([
            { "text": "What is in these?" },
            { "inlineData": { "mimeType": "image/png", "data": "iVBORw0KGgo=" } },
            { "fileData": { "mimeType": "image/webp", "fileUri": "https://example.com/a/cat.WEBP?x=1#f" } },
            { "fileData": { "mimeType": "image/jpeg", "fileUri": "https://example.com/photo" } },
            { "fileData": { "mimeType": "image/gif", "fileUri": "http://example.com/dog.gif" } },
            { "inlineData": { "mimeType": "audio/wav", "data": "UklGRg==" } },
        ])
    );
}

#[test]
fn generation_config_from_sampling_fields() {
    let out = translate(json!({
        "messages": [{ "role": "user", "content": "hi" }],
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 100,
        "max_completion_tokens": 256,
        "stop": ["END", "\n\n"],
        "n": 2,
        "seed": -5,
        "presence_penalty": 0.5,
        "frequency_penalty": null,
        "logprobs": true,
        "response_format": { "type": "json_object" },
    }));
    assert_eq!(
        out["generationConfig"],
        json!({
            "temperature": 0.7,
            "topP": 0.9,
            "presencePenalty": 0.5,
            "maxOutputTokens": 256,
            "candidateCount": 2,
            "seed": -5,
            "stopSequences": ["END", "\n\n"],
            "responseMimeType": "application/json",
        })
    );
    let out = translate(json!({
        "messages": [{ "role": "user", "content": "hi" }],
        "max_tokens": 10,
        "stop": "STOP",
        "response_format": { "type": "text" },
    }));
    assert_eq!(
        out["generationConfig"],
        json!({ "maxOutputTokens": 10, "stopSequences": ["STOP"] })
    );
    let out = translate(json!({ "messages": [{ "role": "user", "content": "hi" }], "stop": [] }));
    assert_eq!(out.get("generationConfig"), None);
}

#[test]
fn json_schema_becomes_response_schema_without_openai_only_keywords() {
    let out = translate(json!({
        "messages": [{ "role": "user", "content": "hi" }],
        "response_format": { "type": "json_schema", "json_schema": {
            "name": "person", "strict": true,
            "schema": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "additionalProperties": { "type": "string" },
                    "tags": { "type": "array", "items": {
                        "type": "object", "additionalProperties": false,
                        "properties": { "v": { "type": "string" } },
                    }},
                },
                "required": ["tags"],
            },
        }},
    }));
    assert_eq!(
        out["generationConfig"],
        json!({
            "responseMimeType": "application/json",
            "responseSchema": {
                "type": "object",
                "properties": {
                    "additionalProperties": { "type": "string" },
                    "tags": { "type": "array", "items": {
                        "type": "object", "properties": { "v": { "type": "string" } },
                    }},
                },
                "required": ["tags"],
            },
        })
    );
}

fn weather_tool() -> Value {
    json!({ "type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "strict": true,
        "parameters": {
            "type": "object",
            "properties": { "city": { "type": "string" } },
            "required": ["city"],
            "additionalProperties": false,
        },
    }})
}

#[test]
fn function_tools_and_tool_choice() {
    let base = json!({
        "messages": [{ "role": "user", "content": "Weather in Paris?" }],
        "tools": [
            weather_tool(),
            { "type": "function", "function": { "name": "now", "parameters": { "type": "object", "properties": {} } } },
            { "type": "web_search_preview" },
        ],
    });
    let out = translate(base.clone());
    assert_eq!(
        out["tools"],
        json!([{ "functionDeclarations": [
            {
                "name": "get_weather",
                "description": "Current weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": { "city": { "type": "string" } },
                    "required": ["city"],
                },
            },
            { "name": "now" },
        ]}])
    );
    assert_eq!(out.get("toolConfig"), None);
    let cases = [
        (json!("auto"), json!({ "mode": "AUTO" })),
        (json!("none"), json!({ "mode": "NONE" })),
        (json!("required"), json!({ "mode": "ANY" })),
        (
            json!({ "type": "function", "function": { "name": "get_weather" } }),
            json!({ "mode": "ANY", "allowedFunctionNames": ["get_weather"] }),
        ),
    ];
    for (choice, expected) in cases {
        let mut req = base.clone();
        req["tool_choice"] = choice;
        let out = translate(req);
        assert_eq!(
            out["toolConfig"],
            json!({ "functionCallingConfig": expected })
        );
    }
}

#[test]
fn tool_call_round_trip_history() {
    let out = translate(json!({
        "messages": [
            { "role": "user", "content": "Weather in Paris and Rome?" },
            { "role": "assistant", "content": null, "tool_calls": [
                { "id": "call_0", "type": "function",
                  "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } },
                { "id": "call_1", "type": "function",
                  "function": { "name": "get_time", "arguments": "" } },
            ]},
            { "role": "tool", "tool_call_id": "call_0", "content": "{\"temp_c\": 21}" },
            { "role": "tool", "tool_call_id": "call_1", "content": [{ "type": "text", "text": "noon" }] },
            { "role": "assistant", "content": "Paris is 21 C at noon." },
        ],
        "tools": [weather_tool()],
    }));
    assert_eq!(
        out["contents"],
        json!([
            { "role": "user", "parts": [{ "text": "Weather in Paris and Rome?" }] },
            { "role": "model", "parts": [
                { "functionCall": { "name": "get_weather", "args": { "city": "Paris" } } },
                { "functionCall": { "name": "get_time", "args": {} } },
            ]},
            { "role": "user", "parts": [
                { "functionResponse": { "name": "get_weather", "response": { "temp_c": 21 } } },
                { "functionResponse": { "name": "get_time", "response": { "content": "noon" } } },
            ]},
            { "role": "model", "parts": [{ "text": "Paris is 21 C at noon." }] },
        ])
    );
}

#[test]
fn repeated_call_ids_resolve_to_the_latest_call() {
    let out = translate(json!({ "messages": [
        { "role": "user", "content": "a" },
        { "role": "assistant", "tool_calls": [{ "id": "call_0", "type": "function",
            "function": { "name": "first", "arguments": "{}" } }] },
        { "role": "tool", "tool_call_id": "call_0", "content": "[1, 2]" },
        { "role": "assistant", "tool_calls": [{ "id": "call_0", "type": "function",
            "function": { "name": "second", "arguments": "{}" } }] },
        { "role": "tool", "tool_call_id": "call_0", "content": "done" },
        { "role": "tool", "tool_call_id": "unknown", "name": "third", "content": "x" },
        { "role": "function", "name": "legacy", "content": "{\"ok\":true}" },
    ]}));
    let responses: Vec<(Value, Value)> = out["contents"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|turn| turn["parts"].as_array().into_iter().flatten())
        .filter_map(|p| p.get("functionResponse"))
        .map(|r| (r["name"].clone(), r["response"].clone()))
        .collect();
    assert_eq!(
        responses,
        vec![
            (json!("first"), json!({ "content": "[1, 2]" })),
            (json!("second"), json!({ "content": "done" })),
            (json!("third"), json!({ "content": "x" })),
            (json!("legacy"), json!({ "ok": true })),
        ]
    );
}

#[test]
fn bad_requests_say_what_and_where() {
    let user = json!({ "role": "user", "content": "hi" });
    let cases = [
        (json!([]), "body: expected a JSON object"),
        (json!({}), "messages: missing"),
        (json!({ "messages": {} }), "messages: expected an array"),
        (
            json!({ "messages": [{ "role": "system", "content": "x" }] }),
            "messages: needs at least one user, assistant or tool message with content",
        ),
        (
            json!({ "messages": [user, 5] }),
            "messages[1]: expected an object",
        ),
        (
            json!({ "messages": [{ "content": "x" }] }),
            "messages[0].role: expected a string",
        ),
        (
            json!({ "messages": [{ "role": "robot", "content": "x" }] }),
            "messages[0].role: unsupported role \"robot\"",
        ),
        (
            json!({ "messages": [user, user, { "role": "user", "content": 7 }] }),
            "messages[2].content: expected a string or an array of content parts",
        ),
        (
            json!({ "messages": [{ "role": "user", "content": [{ "type": "video", "url": "x" }] }] }),
            "messages[0].content[0].type: unsupported content part type \"video\"",
        ),
        (
            json!({ "messages": [{ "role": "user", "content": [{ "type": "text" }] }] }),
            "messages[0].content[0].text: expected a string",
        ),
        (
            json!({ "messages": [{ "role": "user", "content": [{ "type": "image_url",
                "image_url": { "url": "data:image/png,abc" } }] }] }),
            "messages[0].content[0].image_url.url: only base64 data: URLs are supported",
        ),
        (
            json!({ "messages": [{ "role": "user", "content": [{ "type": "image_url",
                "image_url": { "url": "ftp://x/y.png" } }] }] }),
            "messages[0].content[0].image_url.url: expected a base64 data: URL or an http(s) URL",
        ),
        (
            json!({ "messages": [{ "role": "system", "content": [{ "type": "image_url",
                "image_url": { "url": "https://x/y.png" } }] }, user] }),
            "messages[0].content[0].type: only text parts are allowed here",
        ),
        (
            json!({ "messages": [user, { "role": "assistant", "tool_calls": [{ "id": "c",
                "type": "function", "function": { "name": "f", "arguments": "{\"a\":" } }] }] }),
            "messages[1].tool_calls[0].function.arguments: not valid JSON: \
             EOF while parsing a value at line 1 column 5",
        ),
        (
            json!({ "messages": [user, { "role": "assistant", "tool_calls": [{ "id": "c",
                "type": "function", "function": { "name": "f", "arguments": "[1]" } }] }] }),
            "messages[1].tool_calls[0].function.arguments: expected a JSON object \
             (Gemini's args are an object)",
        ),
        (
            json!({ "messages": [user, { "role": "assistant", "tool_calls": [{ "id": "c",
                "type": "function", "function": { "arguments": "{}" } }] }] }),
            "messages[1].tool_calls[0].function.name: expected a string",
        ),
        (
            json!({ "messages": [user, { "role": "tool", "tool_call_id": "nope", "content": "x" }] }),
            "messages[1].tool_call_id: no earlier assistant tool call has id \"nope\"",
        ),
        (
            json!({ "messages": [user], "temperature": "hot" }),
            "temperature: expected a number",
        ),
        (
            json!({ "messages": [user], "max_tokens": -1 }),
            "max_tokens: expected a non-negative integer",
        ),
        (
            json!({ "messages": [user], "n": 0 }),
            "n: expected a positive integer",
        ),
        (
            json!({ "messages": [user], "stop": [1] }),
            "stop[0]: expected a string",
        ),
        (
            json!({ "messages": [user], "response_format": { "type": "yaml" } }),
            "response_format.type: unsupported type \"yaml\"",
        ),
        (
            json!({ "messages": [user], "tools": [{ "type": "function", "function": {} }] }),
            "tools[0].function.name: expected a string",
        ),
        (
            json!({ "messages": [user], "tools": [weather_tool()], "tool_choice": "sometimes" }),
            "tool_choice: expected \"auto\", \"none\", \"required\" or \
             {\"type\": \"function\", \"function\": {\"name\": ...}}",
        ),
    ];
    for (req, expected) in cases {
        assert_eq!(error(req.clone()), expected, "for {req}");
    }
}

#[test]
fn request_errors_classify_as_client() {
    let e = to_generate_request(&json!({}));
    assert_eq!(
        e,
        Err(TranslateError::Request {
            at: "messages".into(),
            reason: "missing".into()
        })
    );
    if let Err(e) = e {
        assert_eq!(e.class(), crate::provider::ErrorClass::Client);
    }
}
