//! `chat.completion.chunk`s → Messages SSE events.

use serde_json::{Value, json};

use crate::provider::anthropic::{MessagesStreamWriter, encode_sse};

fn chunk(delta: Value, finish: Value) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    })
}

fn write(chunks: &[Value]) -> Vec<(&'static str, Value)> {
    let mut writer = MessagesStreamWriter::new("claude-sonnet-4-5");
    let mut events: Vec<_> = chunks.iter().flat_map(|c| writer.chunk(c)).collect();
    events.extend(writer.finish());
    assert_eq!(writer.finish(), vec![], "finish twice");
    assert_eq!(writer.chunk(&chunks[0]), vec![], "a chunk after finish");
    events
}

fn start(id: &str) -> (&'static str, Value) {
    (
        "message_start",
        json!({ "type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": 0, "output_tokens": 0 },
        }}),
    )
}

fn block_start(index: u64, block: Value) -> (&'static str, Value) {
    (
        "content_block_start",
        json!({ "type": "content_block_start", "index": index, "content_block": block }),
    )
}

fn delta(index: u64, delta: Value) -> (&'static str, Value) {
    (
        "content_block_delta",
        json!({ "type": "content_block_delta", "index": index, "delta": delta }),
    )
}

fn block_stop(index: u64) -> (&'static str, Value) {
    (
        "content_block_stop",
        json!({ "type": "content_block_stop", "index": index }),
    )
}

fn end(stop: &str, usage: Value) -> [(&'static str, Value); 2] {
    [
        (
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": { "stop_reason": stop, "stop_sequence": null },
                "usage": usage,
            }),
        ),
        ("message_stop", json!({ "type": "message_stop" })),
    ]
}

#[test]
fn text_then_two_tool_calls_in_valid_order() {
    let events = write(&[
        chunk(json!({ "role": "assistant", "content": "" }), json!(null)),
        chunk(json!({ "content": "Let me " }), json!(null)),
        chunk(json!({ "content": "look." }), json!(null)),
        chunk(
            json!({ "tool_calls": [{ "index": 0, "id": "call_a", "type": "function",
                                     "function": { "name": "read", "arguments": "" } }] }),
            json!(null),
        ),
        chunk(
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "{\"path\":" } }] }),
            json!(null),
        ),
        chunk(
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "\"a.rs\"}" } }] }),
            json!(null),
        ),
        chunk(
            json!({ "tool_calls": [{ "index": 1, "id": "call_b", "type": "function",
                                     "function": { "name": "ls", "arguments": "{}" } }] }),
            json!(null),
        ),
        // A late delta for the closed first call is dropped, not misfiled.
        chunk(
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "x" } }] }),
            json!(null),
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({ "id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
                "usage": { "prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150 } }),
    ]);
    let mut expected = vec![
        start("chatcmpl-1"),
        block_start(0, json!({ "type": "text", "text": "" })),
        delta(0, json!({ "type": "text_delta", "text": "Let me " })),
        delta(0, json!({ "type": "text_delta", "text": "look." })),
        block_stop(0),
        block_start(
            1,
            json!({ "type": "tool_use", "id": "call_a", "name": "read", "input": {} }),
        ),
        delta(
            1,
            json!({ "type": "input_json_delta", "partial_json": "{\"path\":" }),
        ),
        delta(
            1,
            json!({ "type": "input_json_delta", "partial_json": "\"a.rs\"}" }),
        ),
        block_stop(1),
        block_start(
            2,
            json!({ "type": "tool_use", "id": "call_b", "name": "ls", "input": {} }),
        ),
        delta(
            2,
            json!({ "type": "input_json_delta", "partial_json": "{}" }),
        ),
        block_stop(2),
    ];
    expected.extend(end(
        "tool_use",
        json!({ "input_tokens": 120, "output_tokens": 30 }),
    ));
    assert_eq!(events, expected);
}

#[test]
fn text_after_a_tool_call_opens_a_new_block_and_stop_maps() {
    let events = write(&[
        chunk(
            json!({ "tool_calls": [{ "id": "c", "function": { "name": "f", "arguments": "{}" } }] }),
            json!(null),
        ),
        chunk(json!({ "content": "done" }), json!("length")),
    ]);
    let mut expected = vec![
        start("chatcmpl-1"),
        block_start(
            0,
            json!({ "type": "tool_use", "id": "c", "name": "f", "input": {} }),
        ),
        delta(
            0,
            json!({ "type": "input_json_delta", "partial_json": "{}" }),
        ),
        block_stop(0),
        block_start(1, json!({ "type": "text", "text": "" })),
        delta(1, json!({ "type": "text_delta", "text": "done" })),
        block_stop(1),
    ];
    // No usage chunk: output tokens unknown (0), input tokens left out.
    expected.extend(end("max_tokens", json!({ "output_tokens": 0 })));
    assert_eq!(events, expected);
}

#[test]
fn an_empty_stream_is_still_a_valid_message() {
    let mut writer = MessagesStreamWriter::new("claude-sonnet-4-5");
    let mut expected = vec![start("msg")];
    expected.extend(end("end_turn", json!({ "output_tokens": 0 })));
    assert_eq!(writer.finish(), expected);
}

#[test]
fn an_error_chunk_ends_the_stream_with_an_error_event() {
    let mut writer = MessagesStreamWriter::new("m");
    assert_eq!(
        writer
            .chunk(&chunk(json!({ "content": "Hi" }), json!(null)))
            .len(),
        3
    );
    let error =
        json!({ "error": { "message": "The server is overloaded", "type": "server_error" } });
    assert_eq!(
        writer.chunk(&error),
        vec![(
            "error",
            json!({ "type": "error", "error": { "type": "server_error", "message": "The server is overloaded" } }),
        )]
    );
    assert_eq!(writer.finish(), vec![]);
}

#[test]
fn other_choices_and_odd_chunks_are_ignored() {
    let events = write(&[
        json!({ "id": "x", "choices": [
            { "index": 1, "delta": { "content": "second choice" } },
            { "index": 0, "delta": { "content": "first" } },
        ]}),
        json!({ "id": "x", "choices": "nonsense" }),
        json!(42),
        chunk(json!({ "content": "" }), json!("stop")),
    ]);
    let mut expected = vec![
        start("x"),
        block_start(0, json!({ "type": "text", "text": "" })),
        delta(0, json!({ "type": "text_delta", "text": "first" })),
        block_stop(0),
    ];
    expected.extend(end("end_turn", json!({ "output_tokens": 0 })));
    assert_eq!(events, expected);
}

#[test]
fn sse_encoding() {
    assert_eq!(
        encode_sse("message_stop", &json!({ "type": "message_stop" })),
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_vec()
    );
}
