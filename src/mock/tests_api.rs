//! HTTP tests of the normal replies: chat, completions, embeddings and models shapes, model
//! echo, deterministic content, and 400s for bad requests.

use serde_json::{Value, json};

use super::test_util::{chat_body, get, post, post_raw, start_named};

#[tokio::test]
async fn chat_reply_shape_and_model_echo() {
    let mock = start_named("east").await;
    let r = post(&mock, "/v1/chat/completions", &chat_body("gpt-rewritten")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-mock-name"), Some("east"));
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let v = r.json();
    assert!(
        v["id"].as_str().unwrap().starts_with("chatcmpl-mock-"),
        "{v}"
    );
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["created"], 0);
    assert_eq!(v["model"], "gpt-rewritten");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 1);
    assert_eq!(choices[0]["index"], 0);
    assert_eq!(choices[0]["message"]["role"], "assistant");
    assert_eq!(
        choices[0]["message"]["content"],
        "[east] mock reply 1 2 3 4 5 6 7 8"
    );
    assert_eq!(choices[0]["finish_reason"], "stop");
    // "be brief" + "hello there mock" = 5 words; 8 content tokens.
    assert_eq!(
        v["usage"],
        json!({ "prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13 })
    );
}

#[tokio::test]
async fn chat_content_is_deterministic() {
    let mock = start_named("a").await;
    let other = start_named("a").await;
    let body = chat_body("m");
    let first = post(&mock, "/v1/chat/completions", &body).await.json();
    let again = post(&mock, "/v1/chat/completions", &body).await.json();
    let elsewhere = post(&other, "/v1/chat/completions", &body).await.json();
    for v in [&again, &elsewhere] {
        assert_eq!(v["choices"], first["choices"]);
        assert_eq!(v["usage"], first["usage"]);
    }
    assert_ne!(first["id"], again["id"], "ids are per reply");
}

#[tokio::test]
async fn completions_reply_shape() {
    let mock = start_named("c").await;
    let body = json!({ "model": "davinci", "prompt": "once upon a time" });
    let r = post(&mock, "/v1/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-mock-name"), Some("c"));
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-mock-"));
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["model"], "davinci");
    assert_eq!(v["choices"][0]["text"], "[c] mock reply 1 2 3 4 5 6 7 8");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["usage"]["completion_tokens"], 8);
}

#[tokio::test]
async fn embeddings_reply_shape() {
    let mock = start_named("e").await;
    let body = json!({ "model": "embed-1", "input": ["alpha beta", "gamma"] });
    let r = post(&mock, "/v1/embeddings", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "embed-1");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        let floats = item["embedding"].as_array().unwrap();
        assert_eq!(floats.len(), 8);
        assert!(floats.iter().all(Value::is_f64));
    }
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    assert_eq!(v["usage"], json!({ "prompt_tokens": 3, "total_tokens": 3 }));

    let single = json!({ "model": "embed-1", "input": "alpha beta" });
    let again = post(&mock, "/v1/embeddings", &single).await.json();
    assert_eq!(again["data"][0]["embedding"], data[0]["embedding"]);
}

#[tokio::test]
async fn models_lists_the_instance() {
    let mock = start_named("west").await;
    let r = get(&mock, "/v1/models").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-mock-name"), Some("west"));
    assert_eq!(
        r.json(),
        json!({ "object": "list", "data": [
            { "id": "west", "object": "model", "created": 0, "owned_by": "mock" }
        ]})
    );
}

#[tokio::test]
async fn bad_requests_get_openai_400s() {
    let mock = start_named("m").await;
    let cases = [
        ("/v1/chat/completions", "{not json"),
        ("/v1/chat/completions", "[1,2]"),
        ("/v1/chat/completions", r#"{"messages":[]}"#),
        ("/v1/chat/completions", r#"{"model":7,"messages":[]}"#),
        ("/v1/chat/completions", r#"{"model":"m"}"#),
        ("/v1/chat/completions", r#"{"model":"m","messages":"hi"}"#),
        ("/v1/chat/completions", ""),
        ("/v1/completions", r#"{"model":"m"}"#),
        ("/v1/completions", r#"{"prompt":"hi"}"#),
        ("/v1/embeddings", r#"{"model":"m"}"#),
        ("/v1/embeddings", r#"{"model":"m","input":{"a":1}}"#),
        ("/v1/embeddings", r#"{"input":"x"}"#),
    ];
    for (path, body) in cases {
        let r = post_raw(&mock, path, body).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text);
        assert_eq!(r.error_type(), "invalid_request_error", "{path} {body}");
    }
    assert_eq!(mock.stats().requests, cases.len() as u64);
}

#[tokio::test]
async fn unknown_routes_get_json_errors() {
    let mock = start_named("m").await;
    let r = get(&mock, "/v1/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_type(), "invalid_request_error");
    let r = get(&mock, "/v1/chat/completions").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.error_type(), "invalid_request_error");
    assert_eq!(mock.stats().requests, 0);
}
