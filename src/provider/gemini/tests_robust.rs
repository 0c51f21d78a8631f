//! No input makes a translation panic (truncated bytes, mangled bytes, every value swapped
//! for a wrong type), and a round trip through a simulated Gemini keeps content, tool calls
//! and usage.

use serde_json::{Value, json};

use super::{
    StreamTranslator, classify, error_message, from_embed_response, from_generate_response,
    to_embed_request, to_generate_request,
};

fn chat_request() -> Value {
    json!({
        "model": "gemini-2.0-flash",
        "messages": [
            { "role": "system", "content": "You are terse." },
            { "role": "user", "content": [
                { "type": "text", "text": "What is the weather in Paris?" },
                { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" } },
                { "type": "image_url", "image_url": { "url": "https://example.com/x.png" } },
            ]},
            { "role": "assistant", "content": "Let me check.", "tool_calls": [
                { "id": "call_0", "type": "function",
                  "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } },
            ]},
            { "role": "tool", "tool_call_id": "call_0", "content": "{\"temp_c\": 21}" },
        ],
        "tools": [{ "type": "function", "function": {
            "name": "get_weather",
            "parameters": { "type": "object", "properties": { "city": { "type": "string" } } },
        }}],
        "tool_choice": { "type": "function", "function": { "name": "get_weather" } },
        "temperature": 0.5,
        "max_tokens": 64,
        "stop": ["x"],
        "response_format": { "type": "json_schema", "json_schema": { "schema": { "type": "object" } } },
    })
}

fn gemini_reply() -> Value {
    json!({
        "candidates": [{
            "content": { "role": "model", "parts": [
                { "text": "It is 21 C." },
                { "functionCall": { "name": "get_weather", "args": { "city": "Rome" } } },
            ]},
            "finishReason": "STOP",
            "index": 0,
        }],
        "promptFeedback": { "blockReason": "SAFETY" },
        "usageMetadata": { "promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7 },
        "responseId": "r",
    })
}

fn embed_request() -> Value {
    json!({ "input": ["a", "b"], "dimensions": 8 })
}

fn embed_reply() -> Value {
    json!({ "embeddings": [{ "values": [0.1, 0.2] }], "embedding": { "values": [1] } })
}

/// Runs every translation on `bytes`; the point is that none of them panics.
fn feed(bytes: &[u8]) {
    let value = serde_json::from_slice::<Value>(bytes).ok();
    if let Some(v) = &value {
        let _ = to_generate_request(v);
        let _ = to_embed_request(v, "m");
    }
    let _ = from_generate_response(bytes, "m", 0);
    let _ = from_embed_response(bytes, "m");
    let mut stream = StreamTranslator::new("m", 0);
    let _ = stream.event(bytes);
    let _ = stream.event(bytes);
    let _ = stream.finish();
    let _ = classify(http::StatusCode::BAD_REQUEST, bytes);
    let _ = error_message(bytes);
}

#[test]
fn truncated_and_mangled_bytes_never_panic() {
    let fixtures = [
        chat_request(),
        gemini_reply(),
        embed_request(),
        embed_reply(),
    ];
    let mut runs = 0;
    for fixture in &fixtures {
        let bytes = fixture.to_string().into_bytes();
        for end in 0..=bytes.len() {
            feed(&bytes[..end]);
            runs += 1;
        }
        for at in 0..bytes.len() {
            for b in [b'"', b'{', b']', b'0', b'n', b'\\', 0xff] {
                let mut mangled = bytes.clone();
                mangled[at] = b;
                feed(&mangled);
                runs += 1;
            }
        }
    }
    assert!(runs > 5_000, "{runs}");
}

/// Every variant of `v` with one node (at any depth) replaced by a value of another type.
fn swaps(v: &Value) -> Vec<Value> {
    let replacements = [
        Value::Null,
        json!(0),
        json!(-1),
        json!(1.5e300),
        json!(""),
        json!("x"),
        json!(true),
        json!([]),
        json!({}),
        json!([{}]),
    ];
    let mut out: Vec<Value> = replacements.to_vec();
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                for swapped in swaps(item) {
                    let mut copy = items.clone();
                    copy[i] = swapped;
                    out.push(Value::Array(copy));
                }
                let mut removed = items.clone();
                removed.remove(i);
                out.push(Value::Array(removed));
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                for swapped in swaps(item) {
                    let mut copy = map.clone();
                    copy.insert(key.clone(), swapped);
                    out.push(Value::Object(copy));
                }
                let mut removed = map.clone();
                removed.remove(key);
                out.push(Value::Object(removed));
            }
        }
        _ => {}
    }
    out
}

#[test]
fn every_wrong_type_anywhere_is_an_error_or_a_translation_never_a_panic() {
    let mut runs = 0;
    for fixture in [
        chat_request(),
        gemini_reply(),
        embed_request(),
        embed_reply(),
    ] {
        for variant in swaps(&fixture) {
            feed(variant.to_string().as_bytes());
            runs += 1;
        }
    }
    // Nested arrays and objects as deep as a JSON parser allows.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    feed(deep.as_bytes());
    let schema = (0..100).fold(
        json!({ "type": "string" }),
        |inner, _| json!({ "type": "object", "properties": { "p": inner } }),
    );
    let mut req = chat_request();
    req["tools"][0]["function"]["parameters"] = schema;
    assert!(to_generate_request(&req).is_ok());
    assert!(runs > 1_000, "{runs}");
}

/// A simulated Gemini: answers the last user text with an echo, calls the first declared
/// function with the city it was asked about, and counts words as tokens.
fn simulate(gemini_request: &Value) -> Value {
    let contents = gemini_request["contents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let texts: Vec<String> = contents
        .iter()
        .filter(|turn| turn["role"] == "user")
        .flat_map(|turn| turn["parts"].as_array().cloned().unwrap_or_default())
        .filter_map(|part| part["text"].as_str().map(str::to_owned))
        .collect();
    let last = texts.last().cloned().unwrap_or_default();
    let function = gemini_request["tools"][0]["functionDeclarations"][0]["name"].clone();
    let prompt = texts
        .iter()
        .map(|t| t.split_whitespace().count())
        .sum::<usize>();
    let reply = format!("You said: {last}");
    json!({
        "candidates": [{
            "content": { "role": "model", "parts": [
                { "text": reply },
                { "functionCall": { "name": function, "args": { "city": "Paris", "units": ["C"] } } },
            ]},
            "finishReason": "STOP",
            "index": 0,
        }],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": reply.split_whitespace().count(),
            "totalTokenCount": prompt + reply.split_whitespace().count(),
        },
        "responseId": "sim-1",
    })
}

#[test]
fn round_trip_keeps_content_tool_calls_and_usage() {
    let openai = json!({
        "model": "gemini-2.0-flash",
        "messages": [
            { "role": "system", "content": "Be helpful." },
            { "role": "user", "content": "What is the weather in Paris today?" },
        ],
        "tools": [{ "type": "function", "function": {
            "name": "get_weather",
            "parameters": { "type": "object", "properties": { "city": { "type": "string" } } },
        }}],
    });
    let gemini = match to_generate_request(&openai) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let reply = simulate(&gemini).to_string();
    let completion = match from_generate_response(reply.as_bytes(), "gemini-2.0-flash", 9) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let message = &completion["choices"][0]["message"];
    assert_eq!(
        message["content"],
        "You said: What is the weather in Paris today?"
    );
    assert_eq!(
        message["tool_calls"],
        json!([{ "id": "call_0", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\":\"Paris\",\"units\":[\"C\"]}",
        }}])
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        completion["usage"],
        json!({ "prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16 })
    );
    assert_eq!(completion["id"], "chatcmpl-sim-1");

    // The client runs the tool and sends the whole history back.
    let mut next = openai.clone();
    if let Some(messages) = next["messages"].as_array_mut() {
        messages.push(message.clone());
        messages.push(json!({ "role": "tool", "tool_call_id": "call_0", "content": "sunny" }));
    }
    let gemini = match to_generate_request(&next) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        gemini["contents"],
        json!([
            { "role": "user", "parts": [{ "text": "What is the weather in Paris today?" }] },
            { "role": "model", "parts": [
                { "text": "You said: What is the weather in Paris today?" },
                { "functionCall": { "name": "get_weather", "args": { "city": "Paris", "units": ["C"] } } },
            ]},
            { "role": "user", "parts": [
                { "functionResponse": { "name": "get_weather", "response": { "content": "sunny" } } },
            ]},
        ])
    );

    // The same reply streamed in two events gives the same content, calls and usage.
    // The reply to the follow-up: its text split over two events, the call in the second.
    let mut parts = simulate(&gemini);
    let call = parts["candidates"][0]["content"]["parts"][1].clone();
    parts["candidates"][0]["content"]["parts"] =
        json!([{ "text": "What is the weather in Paris today?" }, call]);
    let first = json!({ "candidates": [{ "content": { "parts": [{ "text": "You said: " }] } }] });
    let mut stream = StreamTranslator::new("gemini-2.0-flash", 9);
    let mut chunks = Vec::new();
    for event in [first, parts] {
        match stream.event(event.to_string().as_bytes()) {
            Ok(c) => chunks.extend(c),
            Err(e) => panic!("{e}"),
        }
    }
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "You said: What is the weather in Paris today?");
    assert_eq!(
        chunks[1]["choices"][0]["delta"]["tool_calls"],
        json!([{ "index": 0, "id": "call_0", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\":\"Paris\",\"units\":[\"C\"]}",
        }}])
    );
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "tool_calls");
    assert!(stream.is_finished());
    assert_eq!(
        stream.finish().map(|c| c["usage"]["prompt_tokens"].clone()),
        // The follow-up's only user text is the question: 7 words (a tool result is no text).
        Some(json!(7))
    );
}
