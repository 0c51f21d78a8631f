//! HTTP tests of the control side: stats counters (`GET /mock/stats` and the handle),
//! switching behaviour (`set_behavior`, `PUT /mock/behavior`), `GET /mock/last` and
//! `POST /mock/die`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::timeout;

use super::test_util::{chat_body, get, post, post_raw, put, start_named, try_post_raw};
use super::{Behavior, StatsSnapshot};

#[tokio::test]
async fn stats_count_api_requests_only() {
    let mock = start_named("s").await;
    post(&mock, "/v1/chat/completions", &chat_body("m")).await;
    post_raw(&mock, "/v1/chat/completions", "nope").await;
    post(
        &mock,
        "/v1/completions",
        &json!({ "model": "m", "prompt": "p" }),
    )
    .await;
    post(
        &mock,
        "/v1/embeddings",
        &json!({ "model": "m", "input": "p" }),
    )
    .await;
    get(&mock, "/v1/models").await;
    get(&mock, "/mock/last").await;
    let from_http: StatsSnapshot =
        serde_json::from_str(&get(&mock, "/mock/stats").await.text).expect("stats JSON");
    let want = StatsSnapshot {
        requests: 5,
        chat: 2,
        completions: 1,
        embeddings: 1,
        models: 1,
        max_in_flight: 1,
        max_chat_in_flight: 1,
        ..StatsSnapshot::default()
    };
    assert_eq!(from_http, want);
    assert_eq!(mock.stats(), want);
}

#[tokio::test]
async fn set_behavior_switches_at_runtime() {
    let mock = start_named("before").await;
    assert_eq!(
        post(&mock, "/v1/chat/completions", &chat_body("m"))
            .await
            .status,
        200
    );
    mock.set_behavior(Behavior {
        name: "after".into(),
        status: Some(503),
        ..Behavior::default()
    });
    let r = post(&mock, "/v1/chat/completions", &chat_body("m")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-mock-name"), Some("after"));
    mock.set_behavior(Behavior::default());
    assert_eq!(
        post(&mock, "/v1/chat/completions", &chat_body("m"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn put_behavior_replaces_it() {
    let mock = start_named("before").await;
    let r = put(
        &mock,
        "/mock/behavior",
        r#"{"name":"put","stream_chunks":2}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"], "put");
    let current: Behavior =
        serde_json::from_str(&get(&mock, "/mock/behavior").await.text).expect("behavior JSON");
    assert_eq!(current.stream_chunks, 2);
    let v = post(&mock, "/v1/chat/completions", &chat_body("m")).await;
    assert_eq!(v.header("x-mock-name"), Some("put"));
    assert_eq!(
        v.json()["choices"][0]["message"]["content"],
        "[put] mock reply 1 2"
    );

    for bad in ["{", r#"{"latency":1}"#, r#"{"fail_rate":3}"#, "[]"] {
        let r = put(&mock, "/mock/behavior", bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert_eq!(r.error_type(), "invalid_request_error");
    }
    let unchanged: Behavior =
        serde_json::from_str(&get(&mock, "/mock/behavior").await.text).expect("behavior JSON");
    assert_eq!(unchanged, current);
}

#[tokio::test]
async fn last_returns_the_request_as_sent() {
    let mock = start_named("l").await;
    let r = get(&mock, "/mock/last").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_type(), "invalid_request_error");

    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"x_extra":{"keep":[1,2.50]},"stream":false}"#;
    let response = super::test_util::client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .header("X-Custom-Thing", "Yes")
        .header("authorization", "Bearer sk-test")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let r = get(&mock, "/mock/last").await;
    assert_eq!(r.status, 200);
    let last = r.json();
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(last["headers"]["x-custom-thing"], "Yes");
    assert_eq!(last["headers"]["authorization"], "Bearer sk-test");
    let sent: Value = serde_json::from_str(body).unwrap();
    assert_eq!(last["body"], sent);
    assert!(
        r.text.contains(body),
        "raw body not kept verbatim: {}",
        r.text
    );

    // Failed and invalid requests are recorded too.
    post_raw(&mock, "/v1/embeddings", "not json").await;
    let last = get(&mock, "/mock/last").await.json();
    assert_eq!(
        (&last["path"], &last["body"]),
        (&json!("/v1/embeddings"), &json!("not json"))
    );
}

#[tokio::test]
async fn die_replies_then_stops() {
    let mock = start_named("d").await;
    let r = post_raw(&mock, "/mock/die", "").await;
    assert_eq!(r.status, 200);
    timeout(Duration::from_secs(10), mock.stopped())
        .await
        .unwrap();
    let body = chat_body("m").to_string();
    let err = try_post_raw(&mock, "/v1/chat/completions", &body)
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(mock.stats().requests, 0);
}

#[tokio::test]
async fn base_url_points_at_v1() {
    let mock = start_named("b").await;
    assert_eq!(mock.base_url(), format!("http://{}/v1", mock.addr()));
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let any = super::spawn(listener, Behavior::default()).unwrap();
    assert_eq!(any.base_url(), format!("http://127.0.0.1:{port}/v1"));
}
