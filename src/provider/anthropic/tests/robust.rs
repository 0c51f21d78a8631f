//! No input makes a translation panic (truncated bytes, mangled bytes, every value swapped for
//! a wrong type), and round trips keep content, tool calls and usage.

use http::StatusCode;
use serde_json::{Value, json};

use super::ingress::claude_code_request;
use crate::provider::ErrorClass;
use crate::provider::anthropic::{
    MessagesStreamWriter, StreamTranslator, TranslateError, classify, error_message,
    from_messages_response, messages_to_openai, openai_to_messages_response, to_messages_request,
};

fn openai_request() -> Value {
    json!({
        "model": "claude",
        "messages": [
            { "role": "system", "content": "You are terse." },
            { "role": "user", "content": [
                { "type": "text", "text": "What is the weather in Paris?" },
                { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" } },
                { "type": "image_url", "image_url": { "url": "https://example.com/x.png" } },
            ]},
            { "role": "assistant", "content": "Let me check.", "tool_calls": [
                { "id": "toolu_0", "type": "function",
                  "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } },
            ]},
            { "role": "tool", "tool_call_id": "toolu_0", "content": "{\"temp_c\": 21}" },
        ],
        "tools": [{ "type": "function", "function": {
            "name": "get_weather",
            "description": "Weather by city",
            "parameters": { "type": "object", "properties": { "city": { "type": "string" } } },
        }}],
        "tool_choice": { "type": "function", "function": { "name": "get_weather" } },
        "temperature": 0.5,
        "max_tokens": 64,
        "stop": ["x"],
        "stream": false,
        "user": "u",
    })
}

fn anthropic_reply() -> Value {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [
            { "type": "text", "text": "It is 21 C." },
            { "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": { "city": "Lyon" } },
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": { "input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7 },
    })
}

fn chat_completion() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt",
        "choices": [{ "index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "ok",
            "tool_calls": [{ "id": "c", "type": "function", "function": { "name": "f", "arguments": "{\"a\":1}" } }],
        }}],
        "usage": { "prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7 },
    })
}

const STREAM_EVENTS: [(&str, &str); 6] = [
    (
        "message_start",
        r#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":3}}}"#,
    ),
    (
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
    ),
    (
        "content_block_delta",
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#,
    ),
    (
        "content_block_delta",
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
    ),
    (
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#,
    ),
    ("message_stop", r#"{"type":"message_stop"}"#),
];

/// Every variant of `value` with one node (at any depth) replaced by a wrong-typed value.
fn mutations(value: &Value) -> Vec<Value> {
    let replacements = [
        json!(null),
        json!(0),
        json!(-1),
        json!(1e300),
        json!("x"),
        json!([]),
        json!([null]),
        json!({}),
        json!(true),
    ];
    let mut out: Vec<Value> = replacements.to_vec();
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                for mutated in mutations(item) {
                    let mut copy = items.clone();
                    copy[i] = mutated;
                    out.push(Value::Array(copy));
                }
                let mut without = items.clone();
                without.remove(i);
                out.push(Value::Array(without));
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                for mutated in mutations(item) {
                    let mut copy = map.clone();
                    copy.insert(key.clone(), mutated);
                    out.push(Value::Object(copy));
                }
                let mut without = map.clone();
                without.remove(key);
                out.push(Value::Object(without));
            }
        }
        _ => {}
    }
    out
}

/// Every prefix of `text`, and `text` with each byte replaced by a few troublesome ones.
fn mangled(text: &str) -> Vec<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out: Vec<Vec<u8>> = (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
    for i in 0..bytes.len() {
        for b in [b'"', b'{', b']', b'\\', 0xff] {
            let mut copy = bytes.to_vec();
            copy[i] = b;
            out.push(copy);
        }
    }
    out
}

fn feed_stream(events: &[(Option<&str>, &[u8])]) -> usize {
    let mut t = StreamTranslator::new("m", 0);
    let mut chunks = 0;
    for (event, data) in events {
        chunks += t.event(*event, data).map(|c| c.len()).unwrap_or(0);
    }
    chunks
}

#[test]
fn mutated_values_never_panic() {
    let mut tried = 0;
    // A bad request is always the client's fault; a bad reply never is.
    let client = |r: Result<Value, TranslateError>| {
        assert!(
            !matches!(r, Err(ref e) if e.class() != ErrorClass::Client),
            "{r:?}"
        );
    };
    let upstream = |r: Result<Value, TranslateError>| {
        assert!(!matches!(r, Err(TranslateError::Request { .. })), "{r:?}");
    };
    for req in mutations(&openai_request()) {
        client(to_messages_request(&req, "m", 16));
        client(messages_to_openai(&req));
        tried += 1;
    }
    for req in mutations(&claude_code_request()) {
        client(messages_to_openai(&req));
        client(to_messages_request(&req, "m", 16));
        tried += 1;
    }
    for reply in mutations(&anthropic_reply()) {
        upstream(from_messages_response(reply.to_string().as_bytes(), "m", 0));
        upstream(openai_to_messages_response(&reply));
        tried += 1;
    }
    for reply in mutations(&chat_completion()) {
        upstream(openai_to_messages_response(&reply));
        let mut writer = MessagesStreamWriter::new("m");
        let _ = writer.chunk(&reply);
        let _ = writer.finish();
        tried += 1;
    }
    for (k, (event, data)) in STREAM_EVENTS.iter().enumerate() {
        let Ok(parsed) = serde_json::from_str::<Value>(data) else {
            panic!("fixture {k} is not JSON");
        };
        for mutated in mutations(&parsed) {
            let text = mutated.to_string();
            let mut events: Vec<(Option<&str>, &[u8])> = STREAM_EVENTS
                .iter()
                .map(|(e, d)| (Some(*e), d.as_bytes()))
                .collect();
            events[k] = (Some(event), text.as_bytes());
            feed_stream(&events);
            events[k] = (None, text.as_bytes());
            feed_stream(&events);
            tried += 1;
        }
    }
    assert!(tried >= 2000, "{tried}");
}

#[test]
fn truncated_and_mangled_bytes_never_panic() {
    let mut tried = 0;
    for text in [
        anthropic_reply().to_string(),
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            .iter()
            .map(|b| char::from(*b))
            .collect(),
    ] {
        for bytes in mangled(&text) {
            let _ = from_messages_response(&bytes, "m", 0);
            let _ = classify(StatusCode::TOO_MANY_REQUESTS, &bytes);
            let _ = error_message(&bytes);
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                let _ = to_messages_request(&v, "m", 1);
                let _ = messages_to_openai(&v);
                let _ = openai_to_messages_response(&v);
            }
            tried += 1;
        }
    }
    for text in [
        openai_request().to_string(),
        claude_code_request().to_string(),
    ] {
        for bytes in mangled(&text) {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                let _ = to_messages_request(&v, "m", 1);
                let _ = messages_to_openai(&v);
            }
            tried += 1;
        }
    }
    for (k, (_, data)) in STREAM_EVENTS.iter().enumerate() {
        for bytes in mangled(data) {
            let mut events: Vec<(Option<&str>, &[u8])> = STREAM_EVENTS
                .iter()
                .map(|(e, d)| (Some(*e), d.as_bytes()))
                .collect();
            events[k] = (Some(STREAM_EVENTS[k].0), &bytes);
            feed_stream(&events);
            events[k] = (None, &bytes);
            feed_stream(&events);
            tried += 1;
        }
    }
    assert!(tried > 3000, "{tried}");
}

/// A simulated Anthropic: answers a Messages request with its last user text echoed and a
/// call of its first tool, counting input tokens as the request's message count.
fn simulated_anthropic(req: &Value) -> Value {
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let last_text = messages
        .iter()
        .rev()
        .filter(|m| m["role"] == "user")
        .find_map(|m| match &m["content"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(blocks) => blocks
                .iter()
                .find_map(|b| b["text"].as_str().map(str::to_owned)),
            _ => None,
        })
        .unwrap_or_default();
    let tool = req["tools"][0]["name"].as_str().unwrap_or("none");
    json!({
        "id": "msg_sim", "type": "message", "role": "assistant", "model": req["model"],
        "content": [
            { "type": "text", "text": format!("You said: {last_text}") },
            { "type": "tool_use", "id": "toolu_sim", "name": tool, "input": { "city": "Paris", "n": 2 } },
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": { "input_tokens": messages.len(), "cache_creation_input_tokens": 100, "output_tokens": 9 },
    })
}

#[test]
fn openai_round_trip_through_simulated_anthropic() {
    let mut req = openai_request();
    if let Some(messages) = req["messages"].as_array_mut() {
        messages.push(json!({ "role": "user", "content": "And tomorrow?" }));
    }
    let upstream = match to_messages_request(&req, "claude-sonnet-4-5", 1024) {
        Ok(upstream) => upstream,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(upstream["model"], "claude-sonnet-4-5");
    assert_eq!(upstream["system"], "You are terse.");
    assert_eq!(upstream["max_tokens"], 64);
    assert_eq!(
        upstream["tool_choice"],
        json!({ "type": "tool", "name": "get_weather" })
    );
    assert_eq!(upstream["messages"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        upstream["messages"][2]["content"],
        json!([
            { "type": "tool_result", "tool_use_id": "toolu_0", "content": "{\"temp_c\": 21}" },
            { "type": "text", "text": "And tomorrow?" },
        ])
    );
    let body = simulated_anthropic(&upstream).to_string();
    let out = match from_messages_response(body.as_bytes(), "claude", 7) {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        out,
        json!({
            "id": "msg_sim",
            "object": "chat.completion",
            "created": 7,
            "model": "claude",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "You said: And tomorrow?",
                    "tool_calls": [{
                        "id": "toolu_sim",
                        "type": "function",
                        "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\",\"n\":2}" },
                    }],
                },
                "logprobs": null,
                "finish_reason": "tool_calls",
            }],
            "usage": { "prompt_tokens": 103, "completion_tokens": 9, "total_tokens": 112 },
        })
    );
    // And back: the OpenAI reply as a Messages reply keeps content, the call and the usage.
    let back = match openai_to_messages_response(&out) {
        Ok(back) => back,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(back["content"], simulated_anthropic(&upstream)["content"]);
    assert_eq!(back["stop_reason"], "tool_use");
    assert_eq!(
        back["usage"],
        json!({ "input_tokens": 103, "output_tokens": 9 })
    );
}

#[test]
fn ingress_then_egress_keeps_system_messages_and_tools() {
    let original = claude_code_request();
    let openai = match messages_to_openai(&original) {
        Ok(openai) => openai,
        Err(e) => panic!("{e}"),
    };
    let back = match to_messages_request(&openai, "claude-sonnet-4-5", 1) {
        Ok(back) => back,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(back["system"], "You are Claude Code.\n\nWork in /repo.");
    assert_eq!(back["max_tokens"], original["max_tokens"]);
    assert_eq!(back["stop_sequences"], original["stop_sequences"]);
    assert_eq!(back["stream"], true);
    assert_eq!(back["metadata"], original["metadata"]);
    assert_eq!(
        back["tool_choice"],
        json!({ "type": "auto", "disable_parallel_tool_use": true })
    );
    // Tools come back without their cache markers; messages without thinking blocks.
    let mut tools = original["tools"].clone();
    if let Some(tool) = tools[0].as_object_mut() {
        tool.remove("cache_control");
    }
    assert_eq!(back["tools"], tools);
    let mut messages = original["messages"].clone();
    if let Some(blocks) = messages[1]["content"].as_array_mut() {
        blocks.remove(0);
    }
    assert_eq!(back["messages"], messages);

    // A plain text conversation comes back identical.
    let plain = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [
            { "role": "user", "content": "Hello" },
            { "role": "assistant", "content": "Hi" },
            { "role": "user", "content": [
                { "type": "text", "text": "Look:" },
                { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "AAAA" } },
            ]},
        ],
        "temperature": 0.3,
        "top_p": 0.8,
    });
    let round = messages_to_openai(&plain)
        .and_then(|openai| to_messages_request(&openai, "claude-sonnet-4-5", 1));
    assert_eq!(round, Ok(plain));
}
