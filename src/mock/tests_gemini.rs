//! HTTP tests of the Gemini dialect: `generateContent` and `streamGenerateContent` (SSE and
//! JSON array) payloads, Gemini-shaped errors (injected 429 and 503, fail_rate, 400s, 404s),
//! stream faults, embeddings, the model list, `/mock/last`, the counters, and the round trip
//! through the gateway's Gemini translators back to the OpenAI dialect's text.

use serde_json::{Value, json};

use crate::provider::gemini::{StreamTranslator, from_generate_response};

use super::Behavior;
use super::test_util::{
    chat_body, generate_body, get, post, post_raw, post_with, read_until_break, sse_data, start,
    start_named,
};

const GENERATE: &str = "/v1beta/models/gemini-x:generateContent";
const STREAM: &str = "/v1beta/models/gemini-x:streamGenerateContent?alt=sse";
const KEY: &[(&str, &str)] = &[("x-goog-api-key", "AIza-test")];

/// `(code, status)` of a Gemini error body, checking its shape.
fn gemini_error(v: &Value) -> (u64, String) {
    assert!(v["error"]["message"].is_string(), "{v}");
    let code = v["error"]["code"].as_u64().unwrap();
    (code, v["error"]["status"].as_str().unwrap().to_owned())
}

fn parse(event: &str) -> Value {
    serde_json::from_str(event).unwrap_or_else(|e| panic!("{e}: {event}"))
}

#[tokio::test]
async fn generate_reply_shape() {
    let mock = start_named("east").await;
    let r = post_with(&mock, GENERATE, KEY, &generate_body()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-mock-name"), Some("east"));
    let v = r.json();
    assert!(
        v["responseId"].as_str().unwrap().starts_with("mock-"),
        "{v}"
    );
    assert_eq!(v["modelVersion"], "gemini-x");
    assert_eq!(
        v["candidates"],
        json!([{
            "content": { "role": "model", "parts": [{ "text": "[east] mock reply 1 2 3 4 5 6 7 8" }] },
            "finishReason": "STOP",
            "index": 0,
        }])
    );
    assert_eq!(
        v["usageMetadata"],
        json!({ "promptTokenCount": 5, "candidatesTokenCount": 8, "totalTokenCount": 13 })
    );

    let mut short = generate_body();
    short["generationConfig"]["maxOutputTokens"] = json!(2);
    let v = post_with(&mock, GENERATE, KEY, &short).await.json();
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "[east] mock reply 1 2"
    );
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 2);
}

#[tokio::test]
async fn sse_stream_payloads() {
    let mock = start(Behavior {
        name: "s".into(),
        stream_chunks: 3,
        ..Behavior::default()
    })
    .await;
    let r = post_with(&mock, STREAM, KEY, &generate_body()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events: Vec<Value> = sse_data(&r.text).iter().map(|e| parse(e)).collect();
    assert_eq!(events.len(), 4, "{events:#?}");
    let mut text = String::new();
    for (k, e) in events[..3].iter().enumerate() {
        let candidate = &e["candidates"][0];
        assert_eq!(candidate["content"]["role"], "model");
        assert_eq!(candidate.get("finishReason"), None, "{e}");
        text.push_str(candidate["content"]["parts"][0]["text"].as_str().unwrap());
        assert_eq!(e["usageMetadata"]["candidatesTokenCount"], k + 1);
        assert_eq!(e["responseId"], events[0]["responseId"]);
        assert_eq!(e["modelVersion"], "gemini-x");
    }
    assert_eq!(text, "[s] mock reply 1 2 3");
    let last = &events[3];
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["candidates"][0]["content"]["parts"][0]["text"], "");
    assert_eq!(
        last["usageMetadata"],
        json!({ "promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8 })
    );
    assert!(!r.text.contains("[DONE]"));
    let s = mock.stats();
    assert_eq!(
        (
            s.chat,
            s.streams_started,
            s.streams_completed,
            s.chunks_sent
        ),
        (1, 1, 1, 3)
    );
}

#[tokio::test]
async fn stream_without_alt_sse_is_a_json_array() {
    let mock = start(Behavior {
        stream_chunks: 2,
        ..Behavior::default()
    })
    .await;
    let path = "/v1beta/models/gemini-x:streamGenerateContent";
    let r = post_with(&mock, path, KEY, &generate_body()).await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let items = r.json();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 3, "{}", r.text);
    assert_eq!(items[2]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(mock.stats().streams_completed, 1);

    mock.set_behavior(Behavior {
        stream_error_event: true,
        ..Behavior::default()
    });
    let r = post_with(&mock, path, KEY, &generate_body()).await;
    assert_eq!(gemini_error(&r.json()[0]), (503, "UNAVAILABLE".to_owned()));
}

#[tokio::test]
async fn stream_faults() {
    let mock = start(Behavior {
        stream_error_event: true,
        ..Behavior::default()
    })
    .await;
    let r = post_with(&mock, STREAM, KEY, &generate_body()).await;
    let events = sse_data(&r.text);
    assert_eq!(events.len(), 1, "{events:?}");
    let error = parse(&events[0]);
    assert_eq!(
        error,
        json!({ "error": { "code": 503, "message": "overloaded", "status": "UNAVAILABLE" } })
    );
    let err = StreamTranslator::new("m", 0)
        .event(events[0].as_bytes())
        .unwrap_err();
    assert!(err.to_string().contains("UNAVAILABLE"), "{err}");

    mock.set_behavior(Behavior {
        stream_fail_after: Some(2),
        ..Behavior::default()
    });
    let (text, broke) = read_until_break(&mock, STREAM, KEY, &generate_body()).await;
    assert!(broke, "the connection dropped: {text}");
    let events = sse_data(&text);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| parse(e)["candidates"][0].get("finishReason").is_none())
    );
    assert_eq!(mock.stats().failed, 2);
}

#[tokio::test]
async fn injected_errors_are_gemini_shaped() {
    let mock = start(Behavior {
        status: Some(429),
        retry_after_s: Some(7),
        ..Behavior::default()
    })
    .await;
    let r = post_raw(&mock, GENERATE, "{not json").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    let v = r.json();
    assert_eq!(gemini_error(&v), (429, "RESOURCE_EXHAUSTED".to_owned()));
    assert_eq!(v["error"]["details"][0]["retryDelay"], "7s");

    mock.set_behavior(Behavior {
        status: Some(503),
        ..Behavior::default()
    });
    let r = post_with(&mock, STREAM, KEY, &generate_body()).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json(),
        json!({ "error": { "code": 503, "message": "mock status 503", "status": "UNAVAILABLE" } })
    );

    mock.set_behavior(Behavior {
        fail_rate: 1.0,
        ..Behavior::default()
    });
    let r = post_with(&mock, "/v1beta/models/e:embedContent", KEY, &json!({})).await;
    assert_eq!(r.status, 500);
    assert_eq!(gemini_error(&r.json()), (500, "INTERNAL".to_owned()));

    mock.set_behavior(Behavior {
        status: Some(401),
        ..Behavior::default()
    });
    let r = get(&mock, "/v1beta/models").await;
    assert_eq!(gemini_error(&r.json()), (401, "UNAUTHENTICATED".to_owned()));
    assert_eq!(mock.stats().failed, 4);
}

#[tokio::test]
async fn bad_requests_and_unknown_routes() {
    let mock = start_named("b").await;
    for body in [
        json!({}),
        json!({ "contents": [] }),
        json!({ "contents": [{ "role": "assistant", "parts": [{ "text": "x" }] }] }),
        json!({ "contents": [{ "parts": [] }], "generationConfig": { "maxOutputTokens": "9" } }),
    ] {
        let r = post_with(&mock, GENERATE, KEY, &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(
            gemini_error(&r.json()),
            (400, "INVALID_ARGUMENT".to_owned())
        );
    }
    let r = post_with(
        &mock,
        "/v1beta/models/e:batchEmbedContents",
        KEY,
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(mock.stats().requests, 5);

    let r = post_with(&mock, "/v1beta/models/g:countTokens", KEY, &generate_body()).await;
    assert_eq!(r.status, 404);
    assert_eq!(gemini_error(&r.json()), (404, "NOT_FOUND".to_owned()));
    let r = get(&mock, GENERATE).await;
    assert_eq!(r.status, 405);
    assert_eq!(gemini_error(&r.json()).0, 405);
    let r = get(&mock, "/v1beta/tunedModels").await;
    assert_eq!(gemini_error(&r.json()), (404, "NOT_FOUND".to_owned()));
    assert_eq!(mock.stats().requests, 5, "unknown routes are not counted");
}

#[tokio::test]
async fn embeddings_match_the_openai_vectors() {
    let mock = start_named("e").await;
    let openai = post(
        &mock,
        "/v1/embeddings",
        &json!({ "model": "e", "input": ["alpha beta", "gamma"] }),
    )
    .await
    .json();
    let one = json!({ "content": { "parts": [{ "text": "alpha beta" }] } });
    let r = post_with(&mock, "/v1beta/models/e:embedContent", KEY, &one).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["embedding"]["values"], openai["data"][0]["embedding"]);
    let batch = json!({ "requests": [
        { "model": "models/e", "content": { "parts": [{ "text": "alpha beta" }] } },
        { "model": "models/e", "content": { "parts": [{ "text": "gamma" }] } },
    ]});
    let v = post_with(&mock, "/v1beta/models/e:batchEmbedContents", KEY, &batch)
        .await
        .json();
    assert_eq!(v["embeddings"][0]["values"], openai["data"][0]["embedding"]);
    assert_eq!(v["embeddings"][1]["values"], openai["data"][1]["embedding"]);
    let s = mock.stats();
    assert_eq!((s.requests, s.embeddings), (3, 3));
}

#[tokio::test]
async fn models_list_and_get() {
    let mock = start_named("west").await;
    let r = get(&mock, "/v1beta/models").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-mock-name"), Some("west"));
    let v = r.json();
    assert_eq!(v["models"].as_array().unwrap().len(), 1);
    assert_eq!(v["models"][0]["name"], "models/west");
    let methods = v["models"][0]["supportedGenerationMethods"].clone();
    assert!(
        methods
            .as_array()
            .unwrap()
            .contains(&json!("generateContent"))
    );
    let one = get(&mock, "/v1beta/models/gemini-x").await.json();
    assert_eq!(one["name"], "models/gemini-x");
    let s = mock.stats();
    assert_eq!((s.requests, s.models), (2, 2));
}

#[tokio::test]
async fn last_records_path_query_and_key() {
    let mock = start_named("l").await;
    post_with(&mock, STREAM, KEY, &generate_body()).await;
    let last = get(&mock, "/mock/last").await.json();
    assert_eq!(
        last["path"],
        "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    );
    assert_eq!(last["headers"]["x-goog-api-key"], "AIza-test");
    assert_eq!(last["body"], generate_body());
}

#[tokio::test]
async fn round_trip_gives_the_openai_text() {
    let mock = start_named("rt").await;
    let openai = post(&mock, "/v1/chat/completions", &chat_body("m"))
        .await
        .json();
    let want = openai["choices"][0]["message"]["content"].clone();

    let r = post_with(&mock, GENERATE, KEY, &generate_body()).await;
    let back = from_generate_response(r.text.as_bytes(), "m", 0).unwrap();
    assert_eq!(back["choices"][0]["message"]["content"], want);
    assert_eq!(back["choices"][0]["finish_reason"], "stop");
    assert_eq!(back["usage"], openai["usage"]);
    assert!(back["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));

    let r = post_with(&mock, STREAM, KEY, &generate_body()).await;
    let mut translator = StreamTranslator::new("m", 0);
    let mut text = String::new();
    let mut finish = Value::Null;
    for event in sse_data(&r.text) {
        for chunk in translator.event(event.as_bytes()).unwrap() {
            let choice = &chunk["choices"][0];
            if let Some(piece) = choice["delta"]["content"].as_str() {
                text.push_str(piece);
            }
            if !choice["finish_reason"].is_null() {
                finish = choice["finish_reason"].clone();
            }
        }
    }
    assert!(translator.is_finished());
    assert_eq!(json!(text), want);
    assert_eq!(finish, "stop");
    assert_eq!(translator.finish().unwrap()["usage"], openai["usage"]);
}
