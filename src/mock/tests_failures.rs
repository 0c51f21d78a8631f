//! HTTP tests of the failure modes: injected status with Retry-After, fail_rate (always,
//! never, seeded), garbage bodies, latency, hang, die_after and shutdown; and that latency,
//! hang, die_after and stalls apply to the Anthropic and Gemini endpoints alike (their error
//! shapes and other stream faults are tested in `tests_anthropic` and `tests_gemini`).

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout};

use super::Behavior;
use super::test_util::{
    ANTHROPIC_HEADERS, chat_body, client, generate_body, messages_body, post, post_raw, post_with,
    start, try_post_raw,
};

const CHAT: &str = "/v1/chat/completions";

#[tokio::test]
async fn status_429_sends_retry_after() {
    let mock = start(Behavior {
        name: "limited".into(),
        status: Some(429),
        retry_after_s: Some(7),
        ..Behavior::default()
    })
    .await;
    let r = post(&mock, CHAT, &chat_body("m")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.header("x-mock-name"), Some("limited"));
    assert_eq!(r.error_type(), "rate_limit_error");
    // Status applies before validation, to every API endpoint.
    let r = post_raw(&mock, "/v1/embeddings", "{not json").await;
    assert_eq!(r.status, 429);
    assert_eq!(mock.stats().failed, 2);
}

#[tokio::test]
async fn other_status_has_no_retry_after() {
    let mock = start(Behavior {
        status: Some(503),
        retry_after_s: Some(7),
        ..Behavior::default()
    })
    .await;
    let r = post(&mock, CHAT, &chat_body("m")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), None);
    assert_eq!(r.error_type(), "server_error");
}

#[tokio::test]
async fn fail_rate_one_always_fails_zero_never() {
    let always = start(Behavior {
        fail_rate: 1.0,
        ..Behavior::default()
    })
    .await;
    let never = start(Behavior::default()).await;
    for _ in 0..20 {
        let r = post(&always, CHAT, &chat_body("m")).await;
        assert_eq!(r.status, 500);
        assert_eq!(r.error_type(), "server_error");
        assert_eq!(r.json()["error"]["message"], "mock failure");
        assert_eq!(post(&never, CHAT, &chat_body("m")).await.status, 200);
    }
    assert_eq!(always.stats().failed, 20);
    assert_eq!(never.stats().failed, 0);
}

#[tokio::test]
async fn fail_rate_is_seeded() {
    let b = Behavior {
        fail_rate: 0.5,
        seed: 42,
        ..Behavior::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mock = start(b.clone()).await;
        let mut outcomes = Vec::new();
        for _ in 0..30 {
            outcomes.push(post(&mock, CHAT, &chat_body("m")).await.status);
        }
        runs.push(outcomes);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&500) && runs[0].contains(&200),
        "{:?}",
        runs[0]
    );
}

#[tokio::test]
async fn garbage_is_not_json_nor_sse() {
    let mock = start(Behavior {
        garbage: true,
        ..Behavior::default()
    })
    .await;
    let r = post(&mock, CHAT, &chat_body("m")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(serde_json::from_str::<serde_json::Value>(&r.text).is_err());
    let mut streamed = chat_body("m");
    streamed["stream"] = json!(true);
    let r = post(&mock, CHAT, &streamed).await;
    assert_eq!(r.status, 200);
    assert!(!r.text.contains("data:"), "{}", r.text);
    assert_eq!(mock.stats().streams_started, 0);
}

#[tokio::test(start_paused = true)]
async fn latency_delays_the_reply() {
    let mock = start(Behavior {
        latency_ms: 1500,
        jitter_ms: 100,
        ..Behavior::default()
    })
    .await;
    let started = Instant::now();
    assert_eq!(post(&mock, CHAT, &chat_body("m")).await.status, 200);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took <= Duration::from_millis(1700), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn hang_never_answers() {
    let mock = start(Behavior {
        hang: true,
        ..Behavior::default()
    })
    .await;
    let body = chat_body("m").to_string();
    // On the paused clock, either this timeout or the client's own one fires; no reply comes.
    let waited = timeout(Duration::from_secs(3600), try_post_raw(&mock, CHAT, &body)).await;
    assert!(timed_out(&waited), "a hanging mock answered: {waited:?}");
    assert_eq!(mock.stats().requests, 1);
}

fn timed_out<T>(waited: &Result<reqwest::Result<T>, tokio::time::error::Elapsed>) -> bool {
    match waited {
        Err(_) => true,
        Ok(Err(err)) => err.is_timeout(),
        Ok(Ok(_)) => false,
    }
}

#[tokio::test]
async fn shutdown_drops_hanging_requests() {
    let mock = start(Behavior {
        hang: true,
        ..Behavior::default()
    })
    .await;
    let life = std::sync::Arc::clone(&mock.shared.life);
    let addr = mock.addr();
    let body = chat_body("m").to_string();
    let pending = tokio::spawn(async move {
        let url = format!("http://{addr}{CHAT}");
        super::test_util::client().post(url).body(body).send().await
    });
    mock.shutdown();
    let result = timeout(Duration::from_secs(10), pending)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_err(), "{result:?}");
    timeout(Duration::from_secs(10), life.done()).await.unwrap();
}

#[tokio::test]
async fn die_drops_hanging_requests() {
    let mock = start(Behavior {
        hang: true,
        ..Behavior::default()
    })
    .await;
    let addr = mock.addr();
    let body = chat_body("m").to_string();
    let pending = tokio::spawn(async move {
        let url = format!("http://{addr}{CHAT}");
        super::test_util::client().post(url).body(body).send().await
    });
    assert_eq!(post_raw(&mock, "/mock/die", "").await.status, 200);
    let result = timeout(Duration::from_secs(10), pending)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_err(), "{result:?}");
    timeout(Duration::from_secs(10), mock.stopped())
        .await
        .unwrap();
}

#[tokio::test]
async fn die_after_stops_serving_after_n() {
    let mock = start(Behavior {
        die_after: Some(2),
        ..Behavior::default()
    })
    .await;
    assert_eq!(post(&mock, CHAT, &chat_body("m")).await.status, 200);
    assert_eq!(post(&mock, CHAT, &chat_body("m")).await.status, 200);
    timeout(Duration::from_secs(10), mock.stopped())
        .await
        .unwrap();
    let body = chat_body("m").to_string();
    let err = try_post_raw(&mock, CHAT, &body).await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(mock.stats().requests, 2);
}

#[tokio::test]
async fn die_after_zero_drops_the_first_request() {
    let mock = start(Behavior {
        die_after: Some(0),
        ..Behavior::default()
    })
    .await;
    let body = chat_body("m").to_string();
    let err = try_post_raw(&mock, CHAT, &body).await.unwrap_err();
    assert!(!err.is_timeout(), "{err:?}");
    timeout(Duration::from_secs(10), mock.stopped())
        .await
        .unwrap();
    assert_eq!(mock.stats().failed, 1);
}

type Headers = &'static [(&'static str, &'static str)];

/// The chat endpoint of each dialect, with a valid body (streamed if `stream`) and the headers
/// it needs.
fn every_dialect(stream: bool) -> [(&'static str, Headers, Value); 3] {
    let mut chat = chat_body("m");
    let mut messages = messages_body("m");
    chat["stream"] = json!(stream);
    messages["stream"] = json!(stream);
    let gemini = if stream {
        "/v1beta/models/m:streamGenerateContent?alt=sse"
    } else {
        "/v1beta/models/m:generateContent"
    };
    [
        (CHAT, &[], chat),
        ("/v1/messages", ANTHROPIC_HEADERS, messages),
        (gemini, &[], generate_body()),
    ]
}

#[tokio::test(start_paused = true)]
async fn latency_and_hang_apply_to_every_dialect() {
    let mock = start(Behavior {
        latency_ms: 1500,
        ..Behavior::default()
    })
    .await;
    for (path, headers, body) in every_dialect(false) {
        let started = Instant::now();
        assert_eq!(post_with(&mock, path, headers, &body).await.status, 200);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(1500), "{path}: {took:?}");
    }
    mock.set_behavior(Behavior {
        hang: true,
        ..Behavior::default()
    });
    for (path, headers, body) in every_dialect(false) {
        let mut request = client()
            .post(format!("http://{}{path}", mock.addr()))
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let waited = timeout(Duration::from_secs(3600), request.send()).await;
        assert!(timed_out(&waited), "{path}: a hanging mock answered");
    }
    let s = mock.stats();
    assert_eq!((s.requests, s.chat), (6, 6));
}

#[tokio::test]
async fn die_after_counts_every_dialect() {
    let mock = start(Behavior {
        die_after: Some(2),
        ..Behavior::default()
    })
    .await;
    let [_, (messages, headers, body), (gemini, _, gemini_body)] = every_dialect(false);
    assert_eq!(post_with(&mock, messages, headers, &body).await.status, 200);
    assert_eq!(
        post_with(&mock, gemini, &[], &gemini_body).await.status,
        200
    );
    timeout(Duration::from_secs(10), mock.stopped())
        .await
        .unwrap();
    let err = try_post_raw(&mock, gemini, &gemini_body.to_string())
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(mock.stats().requests, 2);
}

#[tokio::test]
async fn stalled_streams_of_every_dialect_break_when_the_mock_stops() {
    for (path, headers, body) in every_dialect(true) {
        let mock = start(Behavior {
            stream_stall_after: Some(1),
            ..Behavior::default()
        })
        .await;
        let mut request = client()
            .post(format!("http://{}{path}", mock.addr()))
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let mut stream = response.bytes_stream();
        let mut text = String::new();
        let broke = loop {
            match stream.next().await {
                None => break false,
                Some(Err(_)) => break true,
                Some(Ok(bytes)) => text.push_str(std::str::from_utf8(&bytes).unwrap()),
            }
            // Silent after the first content chunk: stop the mock to end the wait.
            if text.contains("mock reply 1") {
                mock.shared.life.stop_hard();
            }
        };
        assert!(broke, "{path}: {text}");
        assert!(!text.contains(" 2"), "{path}: {text}");
        let s = mock.stats();
        assert_eq!(
            (s.chunks_sent, s.failed, s.streams_completed),
            (1, 1, 0),
            "{path}"
        );
    }
}
