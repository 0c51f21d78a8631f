//! HTTP tests of the Anthropic dialect: `POST /v1/messages` replies and their exact stream
//! event sequence, the required `anthropic-version`, Anthropic-shaped errors (injected 529,
//! 429, fail_rate, 400s, 404/405), stream faults, `/mock/last`, the model list, and the round
//! trip through the gateway's own Messages translators back to the OpenAI dialect's text.

use serde_json::{Value, json};

use crate::provider::anthropic::{StreamTranslator, from_messages_response};

use super::Behavior;
use super::test_util::{
    ANTHROPIC_HEADERS, chat_body, get, get_with, messages_body, post, post_raw, post_with,
    read_until_break, sse_events, start, start_named,
};

const MESSAGES: &str = "/v1/messages";
const HEADERS: &[(&str, &str)] = ANTHROPIC_HEADERS;

fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

/// The `error.type` of an Anthropic error body, checking its shape.
fn anthropic_error(v: &Value) -> String {
    assert_eq!(v["type"], "error", "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    v["error"]["type"].as_str().unwrap().to_owned()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

#[tokio::test]
async fn message_reply_shape() {
    let mock = start_named("east").await;
    let r = post_with(&mock, MESSAGES, HEADERS, &messages_body("claude-x")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-mock-name"), Some("east"));
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("msg_mock_"), "{v}");
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-x");
    assert_eq!(
        v["content"],
        json!([{ "type": "text", "text": "[east] mock reply 1 2 3 4 5 6 7 8" }])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(v["usage"], json!({ "input_tokens": 5, "output_tokens": 8 }));
    let s = mock.stats();
    assert_eq!((s.requests, s.chat), (1, 1));
}

#[tokio::test]
async fn max_tokens_cuts_the_reply_like_openai() {
    let mock = start_named("m").await;
    let mut body = messages_body("c");
    body["max_tokens"] = json!(3);
    let v = post_with(&mock, MESSAGES, HEADERS, &body).await.json();
    assert_eq!(v["content"][0]["text"], "[m] mock reply 1 2 3");
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["output_tokens"], 3);
    let mut chat = chat_body("c");
    chat["max_tokens"] = json!(3);
    let openai = post(&mock, "/v1/chat/completions", &chat).await.json();
    assert_eq!(
        openai["choices"][0]["message"]["content"],
        "[m] mock reply 1 2 3"
    );
    assert_eq!(openai["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn stream_event_sequence_is_exact() {
    let mock = start(Behavior {
        name: "s".into(),
        stream_chunks: 3,
        ..Behavior::default()
    })
    .await;
    let r = post_with(
        &mock,
        MESSAGES,
        HEADERS,
        &streamed(messages_body("claude-s")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("x-mock-name"), Some("s"));
    let events = sse_events(&r.text);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str(), "{data}");
    }
    let start = &events[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_mock_"));
    assert_eq!(start["model"], "claude-s");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["usage"]["input_tokens"], 5);
    assert_eq!(
        events[1].1["content_block"],
        json!({ "type": "text", "text": "" })
    );
    let texts: String = events[3..6]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["index"], 0);
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(texts, "[s] mock reply 1 2 3");
    assert_eq!(events[6].1["index"], 0);
    let delta = &events[7].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 3);
    let s = mock.stats();
    assert_eq!(
        (
            s.streams_started,
            s.streams_completed,
            s.chunks_sent,
            s.in_flight
        ),
        (1, 1, 3, 0)
    );
}

#[tokio::test]
async fn stream_stops_for_max_tokens() {
    let mock = start_named("s").await;
    let mut body = streamed(messages_body("c"));
    body["max_tokens"] = json!(2);
    let events = sse_events(&post_with(&mock, MESSAGES, HEADERS, &body).await.text);
    let deltas = names(&events)
        .iter()
        .filter(|n| **n == "content_block_delta")
        .count();
    assert_eq!(deltas, 2);
    let message_delta = &events[events.len() - 2].1;
    assert_eq!(message_delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(message_delta["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn missing_version_or_bad_body_is_an_anthropic_400() {
    let mock = start_named("v").await;
    let key_only = &HEADERS[..1];
    let r = post_with(&mock, MESSAGES, key_only, &messages_body("c")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let v = r.json();
    assert_eq!(anthropic_error(&v), "invalid_request_error");
    assert_eq!(
        v["error"]["message"],
        "anthropic-version: header is required"
    );
    let mut no_max = messages_body("c");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    for body in [
        no_max,
        json!({ "model": "c", "max_tokens": 5 }),
        json!({ "model": "c", "max_tokens": 5, "messages": [] }),
        json!({ "max_tokens": 5, "messages": [] }),
        json!({ "model": "c", "max_tokens": 5, "messages": "hi" }),
    ] {
        let r = post_with(&mock, MESSAGES, HEADERS, &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(anthropic_error(&r.json()), "invalid_request_error");
    }
    assert_eq!(mock.stats().chat, 6);
}

#[tokio::test]
async fn injected_failures_are_anthropic_errors() {
    let mock = start(Behavior {
        name: "busy".into(),
        status: Some(529),
        ..Behavior::default()
    })
    .await;
    // Failure modes come before validation: no anthropic-version needed to get a 529.
    let r = post_raw(&mock, MESSAGES, "{not json").await;
    assert_eq!(r.status, 529);
    assert_eq!(r.header("x-mock-name"), Some("busy"));
    assert_eq!(
        r.json(),
        json!({ "type": "error", "error": {
            "type": "overloaded_error", "message": "mock status 529",
        }})
    );
    // The same status on the OpenAI endpoint is OpenAI-shaped.
    let openai = post(&mock, "/v1/chat/completions", &chat_body("m")).await;
    assert_eq!(
        (openai.status, openai.error_type().as_str()),
        (529, "server_error")
    );

    mock.set_behavior(Behavior {
        status: Some(429),
        retry_after_s: Some(4),
        ..Behavior::default()
    });
    let r = post_with(&mock, MESSAGES, HEADERS, &messages_body("c")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("4"));
    assert_eq!(anthropic_error(&r.json()), "rate_limit_error");

    mock.set_behavior(Behavior {
        fail_rate: 1.0,
        ..Behavior::default()
    });
    let r = post_with(&mock, MESSAGES, HEADERS, &messages_body("c")).await;
    assert_eq!(r.status, 500);
    let v = r.json();
    assert_eq!(anthropic_error(&v), "api_error");
    assert_eq!(v["error"]["message"], "mock failure");
    assert_eq!(mock.stats().failed, 4);
}

#[tokio::test]
async fn garbage_and_ratelimit_headers() {
    let mock = start(Behavior {
        garbage: true,
        ..Behavior::default()
    })
    .await;
    let r = post_with(&mock, MESSAGES, HEADERS, &streamed(messages_body("c"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(!r.text.contains("event:"), "{}", r.text);
    mock.set_behavior(Behavior {
        ratelimit_remaining: Some(0),
        ..Behavior::default()
    });
    let r = post_with(&mock, MESSAGES, HEADERS, &messages_body("c")).await;
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    assert_eq!(r.header("x-ratelimit-remaining-requests"), None);
}

#[tokio::test]
async fn stream_error_event_is_an_error_event() {
    let mock = start(Behavior {
        stream_error_event: true,
        ..Behavior::default()
    })
    .await;
    let r = post_with(&mock, MESSAGES, HEADERS, &streamed(messages_body("c"))).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("\n\nevent: error\ndata: {"), "{}", r.text);
    let events = sse_events(&r.text);
    assert_eq!(names(&events), ["message_start", "error"]);
    assert_eq!(
        events[1].1,
        json!({ "type": "error", "error": { "type": "overloaded_error", "message": "overloaded" } })
    );
    let s = mock.stats();
    assert_eq!((s.failed, s.chunks_sent, s.streams_completed), (1, 0, 0));
}

#[tokio::test]
async fn stream_fail_after_drops_mid_message() {
    let mock = start(Behavior {
        stream_fail_after: Some(2),
        ..Behavior::default()
    })
    .await;
    let (text, broke) =
        read_until_break(&mock, MESSAGES, HEADERS, &streamed(messages_body("c"))).await;
    assert!(broke, "the connection dropped: {text}");
    let events = sse_events(&text);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
        ]
    );
    assert_eq!(mock.stats().failed, 1);
}

#[tokio::test]
async fn last_records_the_messages_request() {
    let mock = start_named("l").await;
    let body = messages_body("claude-l");
    post_with(&mock, MESSAGES, HEADERS, &body).await;
    let last = get(&mock, "/mock/last").await.json();
    assert_eq!(last["path"], "/v1/messages");
    assert_eq!(last["headers"]["x-api-key"], "sk-ant-test");
    assert_eq!(last["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(last["body"], body);
}

#[tokio::test]
async fn models_and_routes_in_anthropic_shape() {
    let mock = start_named("west").await;
    let r = get_with(&mock, "/v1/models", HEADERS).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({
            "data": [{
                "type": "model", "id": "west", "display_name": "west",
                "created_at": "1970-01-01T00:00:00Z",
            }],
            "has_more": false, "first_id": "west", "last_id": "west",
        })
    );
    assert_eq!(get(&mock, "/v1/models").await.json()["object"], "list");
    let r = get(&mock, MESSAGES).await;
    assert_eq!(r.status, 405);
    assert_eq!(anthropic_error(&r.json()), "invalid_request_error");
    let r = post_with(&mock, "/v1/messages/batches", HEADERS, &json!({})).await;
    assert_eq!(r.status, 404);
    assert_eq!(anthropic_error(&r.json()), "not_found_error");
    let s = mock.stats();
    assert_eq!((s.requests, s.models), (2, 2));
}

#[tokio::test]
async fn round_trip_gives_the_openai_text() {
    let mock = start_named("rt").await;
    let openai = post(&mock, "/v1/chat/completions", &chat_body("m"))
        .await
        .json();
    let want = openai["choices"][0]["message"]["content"].clone();

    let r = post_with(&mock, MESSAGES, HEADERS, &messages_body("m")).await;
    let back = from_messages_response(r.text.as_bytes(), "m", 0).unwrap();
    assert_eq!(back["choices"][0]["message"]["content"], want);
    assert_eq!(back["choices"][0]["finish_reason"], "stop");
    assert_eq!(back["usage"], openai["usage"]);

    let r = post_with(&mock, MESSAGES, HEADERS, &streamed(messages_body("m"))).await;
    let mut translator = StreamTranslator::new("m", 0);
    let mut text = String::new();
    let mut finish = Value::Null;
    for event in r.text.split("\n\n").filter(|e| !e.is_empty()) {
        let (name, data) = event
            .strip_prefix("event: ")
            .and_then(|rest| rest.split_once("\ndata: "))
            .unwrap();
        for chunk in translator.event(Some(name), data.as_bytes()).unwrap() {
            let choice = &chunk["choices"][0];
            if let Some(piece) = choice["delta"]["content"].as_str() {
                text.push_str(piece);
            }
            if !choice["finish_reason"].is_null() {
                finish = choice["finish_reason"].clone();
            }
        }
    }
    assert!(translator.finished());
    assert_eq!(json!(text), want);
    assert_eq!(finish, "stop");
}
