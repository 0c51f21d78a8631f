//! Messages SSE events → `chat.completion.chunk`s.

use serde_json::{Value, json};

use super::sse;
use crate::provider::ErrorClass;
use crate::provider::anthropic::{StreamTranslator, TranslateError};

/// The streaming guide's tool-use example, shortened, with a second tool call added.
const TOOL_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-opus-4-6","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", let's check."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \"San Francisco, CA\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_02","name":"get_time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

fn chunk(delta: Value, finish: Value) -> Value {
    json!({
        "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "claude",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    })
}

fn run(text: &str) -> (StreamTranslator, Vec<Value>) {
    let mut translator = StreamTranslator::new("claude", 1_700_000_000);
    let mut chunks = Vec::new();
    for (event, data) in sse(text) {
        match translator.event(event, data.as_bytes()) {
            Ok(out) => chunks.extend(out),
            Err(e) => panic!("{event:?} {data}: {e}"),
        }
    }
    (translator, chunks)
}

#[test]
fn text_and_tool_calls_stream_as_exact_chunks() {
    let (translator, chunks) = run(TOOL_STREAM);
    assert!(translator.finished());
    let expected = vec![
        chunk(json!({ "role": "assistant", "content": "" }), json!(null)),
        chunk(json!({ "content": "Okay" }), json!(null)),
        chunk(json!({ "content": ", let's check." }), json!(null)),
        chunk(
            json!({ "tool_calls": [{
                "index": 0,
                "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "type": "function",
                "function": { "name": "get_weather", "arguments": "" },
            }] }),
            json!(null),
        ),
        chunk(
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "{\"location\":" } }] }),
            json!(null),
        ),
        chunk(
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": " \"San Francisco, CA\"}" } }] }),
            json!(null),
        ),
        chunk(
            json!({ "tool_calls": [{
                "index": 1,
                "id": "toolu_02",
                "type": "function",
                "function": { "name": "get_time", "arguments": "" },
            }] }),
            json!(null),
        ),
        chunk(
            json!({ "tool_calls": [{ "index": 1, "function": { "arguments": "{}" } }] }),
            json!(null),
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({
            "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "claude",
            "choices": [],
            "usage": { "prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561 },
        }),
    ];
    assert_eq!(chunks, expected);
}

#[test]
fn event_type_may_come_from_the_data_and_unknown_events_are_skipped() {
    let mut t = StreamTranslator::new("claude", 0);
    let start = br#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":10,"cache_read_input_tokens":90,"output_tokens":1}}}"#;
    assert_eq!(t.event(None, start).map(|c| c.len()), Ok(1));
    assert_eq!(t.event(Some("ping"), b""), Ok(vec![]));
    assert_eq!(
        t.event(Some("brand_new_event"), b"not even json"),
        Ok(vec![])
    );
    assert_eq!(t.event(None, br#"{"type":"brand_new_event"}"#), Ok(vec![]));
    // A thinking block streams as reasoning_content; its signature is dropped.
    let thinking = [
        &br#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#[..],
        br#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think"}}"#,
        br#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}"#,
        br#"{"type":"content_block_stop","index":0}"#,
    ];
    let out: Vec<Value> = thinking
        .iter()
        .flat_map(|data| t.event(None, data).unwrap_or_default())
        .collect();
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0]["choices"][0]["delta"],
        json!({ "reasoning_content": "Let me think" })
    );
    // message_delta without a stop reason: usage only, no chunk yet.
    let delta =
        br#"{"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":7}}"#;
    assert_eq!(t.event(None, delta), Ok(vec![]));
    assert!(!t.finished());
    let last = t.event(Some("message_stop"), br#"{"type":"message_stop"}"#);
    assert_eq!(
        last.map(|c| c.first().map(|c| c["usage"].clone())),
        Ok(Some(json!({
            "prompt_tokens": 100,
            "completion_tokens": 7,
            "total_tokens": 107,
            "prompt_tokens_details": { "cached_tokens": 90 },
        })))
    );
    assert!(t.finished());
    // After message_stop everything is ignored.
    assert_eq!(
        t.event(None, br#"{"type":"content_block_stop","index":9}"#),
        Ok(vec![])
    );
}

#[test]
fn error_events_carry_their_type() {
    let mut t = StreamTranslator::new("claude", 0);
    let start = br#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":1}}}"#;
    assert!(t.event(Some("message_start"), start).is_ok());
    let error =
        br#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#;
    let e = t.event(Some("error"), error);
    assert_eq!(
        e,
        Err(TranslateError::Upstream {
            kind: "overloaded_error".into(),
            message: "Overloaded".into(),
        })
    );
    assert_eq!(e.err().map(|e| e.class()), Some(ErrorClass::Server));
    assert!(!t.finished());
    // An error event before anything else is still the upstream's error.
    let mut t = StreamTranslator::new("claude", 0);
    let limited = br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
    assert_eq!(
        t.event(None, limited).err().map(|e| e.class()),
        Some(ErrorClass::RateLimited)
    );
}

#[test]
fn malformed_streams_are_response_errors() {
    let err = |events: &[(Option<&str>, &[u8])]| {
        let mut t = StreamTranslator::new("m", 0);
        let mut last = Ok(Vec::new());
        for (event, data) in events {
            last = t.event(*event, data);
            if last.is_err() {
                break;
            }
        }
        match last {
            Err(e) => e.to_string(),
            Ok(out) => panic!("expected an error, got {out:?}"),
        }
    };
    let start: &[u8] = br#"{"type":"message_start","message":{"id":"msg_1"}}"#;
    assert_eq!(
        err(&[(
            Some("content_block_delta"),
            br#"{"index":0,"delta":{"type":"text_delta","text":"x"}}"#
        )]),
        "upstream response content_block_delta: before message_start"
    );
    assert_eq!(
        err(&[(Some("message_start"), br#"{"type":"message_start"}"#)]),
        "upstream response message_start.message: expected an object"
    );
    assert_eq!(
        err(&[
            (Some("message_start"), start),
            (Some("message_start"), start)
        ]),
        "upstream response message_start: a second one"
    );
    assert_eq!(
        err(&[
            (Some("message_start"), start),
            (
                Some("content_block_delta"),
                br#"{"index":4,"delta":{"type":"input_json_delta","partial_json":"{"}}"#
            ),
        ]),
        "upstream response content_block_delta.index: 4 names no started block"
    );
    assert_eq!(
        err(&[
            (Some("message_start"), start),
            (
                Some("content_block_start"),
                br#"{"content_block":{"type":"text"}}"#
            )
        ]),
        "upstream response content_block_start.index: expected an integer"
    );
    assert_eq!(
        err(&[
            (Some("message_start"), start),
            (
                Some("content_block_start"),
                br#"{"index":0,"content_block":{"type":"tool_use","id":"t"}}"#
            ),
        ]),
        "upstream response content_block_start.content_block.name: expected a string"
    );
    assert!(
        err(&[(Some("message_start"), b"{\"type\":")])
            .starts_with("upstream response message_start: data is not JSON (")
    );
    assert_eq!(
        err(&[(None, b"{}")]),
        "upstream response event: no event type"
    );
}

#[test]
fn a_stream_cut_short_is_not_finished_and_has_no_usage_chunk() {
    let cut = TOOL_STREAM
        .split("event: message_delta")
        .next()
        .unwrap_or_default();
    let (translator, chunks) = run(cut);
    assert!(!translator.finished());
    assert_eq!(chunks.len(), 8);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
}
