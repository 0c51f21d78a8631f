//! HTTP tests of streamed replies: event order for chat and completions, the usage chunk only
//! when asked for, `[DONE]` last, stream counters, and pacing on a paused clock.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Behavior;
use super::test_util::{chat_body, client, post, start, start_named};

fn parse(event: &str) -> Value {
    serde_json::from_str(event).unwrap_or_else(|e| panic!("{e}: {event}"))
}

fn stream_chat(include_usage: Option<bool>) -> Value {
    let mut body = chat_body("gpt-s");
    body["stream"] = json!(true);
    if let Some(include) = include_usage {
        body["stream_options"] = json!({ "include_usage": include });
    }
    body
}

/// Checks the chat event sequence and returns the concatenated content.
fn check_chat_events(events: &[String], chunks: usize, usage: bool) -> String {
    let expected = 1 + chunks + 1 + usize::from(usage) + 1;
    assert_eq!(events.len(), expected, "{events:#?}");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let objects: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| parse(e))
        .collect();
    for o in &objects {
        assert_eq!(o["object"], "chat.completion.chunk");
        assert_eq!(o["model"], "gpt-s");
        assert_eq!(o["id"], objects[0]["id"]);
    }
    assert_eq!(objects[0]["choices"][0]["delta"]["role"], "assistant");
    let mut content = String::new();
    for o in &objects[1..=chunks] {
        assert_eq!(o["choices"][0]["finish_reason"], Value::Null);
        content.push_str(o["choices"][0]["delta"]["content"].as_str().unwrap());
    }
    let finish = &objects[chunks + 1];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    if usage {
        let u = &objects[chunks + 2];
        assert_eq!(u["choices"], json!([]));
        assert_eq!(u["usage"]["completion_tokens"], chunks);
        assert_eq!(u["usage"]["prompt_tokens"], 5);
    } else {
        assert!(objects.iter().all(|o| o.get("usage").is_none()));
    }
    content
}

#[tokio::test]
async fn chat_stream_events_in_order() {
    let mock = start(Behavior {
        name: "s".into(),
        stream_chunks: 5,
        ..Behavior::default()
    })
    .await;
    for include in [None, Some(false)] {
        let r = post(&mock, "/v1/chat/completions", &stream_chat(include)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        assert_eq!(r.header("x-mock-name"), Some("s"));
        let content = check_chat_events(&super::test_util::sse_data(&r.text), 5, false);
        assert_eq!(content, "[s] mock reply 1 2 3 4 5");
    }
    let plain = post(&mock, "/v1/chat/completions", &chat_body("gpt-s"))
        .await
        .json();
    assert_eq!(
        plain["choices"][0]["message"]["content"],
        "[s] mock reply 1 2 3 4 5"
    );
    let s = mock.stats();
    assert_eq!((s.streams_started, s.streams_completed), (2, 2));
    assert_eq!((s.chunks_sent, s.in_flight, s.chat), (10, 0, 3));
}

#[tokio::test]
async fn chat_stream_usage_chunk_when_asked() {
    let mock = start_named("u").await;
    let r = post(&mock, "/v1/chat/completions", &stream_chat(Some(true))).await;
    let events = super::test_util::sse_data(&r.text);
    check_chat_events(&events, 8, true);
}

#[tokio::test]
async fn completion_stream_has_text_chunks() {
    let mock = start(Behavior {
        name: "t".into(),
        stream_chunks: 3,
        ..Behavior::default()
    })
    .await;
    let body = json!({ "model": "m", "prompt": "hi", "stream": true,
                       "stream_options": { "include_usage": true } });
    let r = post(&mock, "/v1/completions", &body).await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = super::test_util::sse_data(&r.text);
    assert_eq!(events.len(), 3 + 1 + 1 + 1, "{events:#?}");
    let texts: String = events[..3]
        .iter()
        .map(|e| parse(e)["choices"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, "[t] mock reply 1 2 3");
    assert_eq!(parse(&events[3])["choices"][0]["finish_reason"], "stop");
    assert_eq!(parse(&events[4])["usage"]["total_tokens"], 4);
    assert_eq!(events[5], "[DONE]");
    assert_eq!(parse(&events[0])["object"], "text_completion");
}

#[tokio::test(start_paused = true)]
async fn stream_is_paced_by_tokens_per_s() {
    let mock = start(Behavior {
        latency_ms: 300,
        stream_chunks: 4,
        tokens_per_s: Some(5.0),
        ..Behavior::default()
    })
    .await;
    let url = format!("{}/chat/completions", mock.base_url());
    let started = Instant::now();
    let response = client()
        .post(url)
        .body(stream_chat(None).to_string())
        .send()
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "latency before the head"
    );
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut content_times = Vec::new();
    while let Some(bytes) = body.next().await {
        buffer.push_str(std::str::from_utf8(&bytes.unwrap()).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.contains("\"content\":\"") && !event.contains("\"role\"") {
                content_times.push(Instant::now());
            }
        }
    }
    assert_eq!(content_times.len(), 4);
    for pair in content_times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(200), "{gap:?}");
        assert!(gap < Duration::from_millis(400), "{gap:?}");
    }
    assert_eq!(mock.stats().streams_completed, 1);
}

#[tokio::test(start_paused = true)]
async fn client_disconnect_releases_in_flight() {
    let mock = start(Behavior {
        stream_chunks: 1000,
        tokens_per_s: Some(5.0),
        ..Behavior::default()
    })
    .await;
    let url = format!("{}/chat/completions", mock.base_url());
    let response = client()
        .post(url)
        .body(stream_chat(None).to_string())
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    assert_eq!(mock.stats().in_flight, 1);
    drop(body);
    // Virtual time: the server notices the closed connection at its next paced write.
    for _ in 0..100 {
        if mock.stats().in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = mock.stats();
    assert_eq!(
        (s.in_flight, s.streams_started, s.streams_completed),
        (0, 1, 0)
    );
}

/// Sends a streamed chat request; the `data:` payloads received and whether the body broke
/// (the connection dropped) rather than ended. `stop` is called once `wait_for` events came.
async fn faulty_stream(
    mock: &super::MockHandle,
    wait_for: usize,
    stop: impl FnOnce(),
) -> (Vec<String>, bool) {
    let url = format!("{}/chat/completions", mock.base_url());
    let response = client()
        .post(url)
        .body(stream_chat(None).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut stop = Some(stop);
    let broke = loop {
        match body.next().await {
            None => break false,
            Some(Err(_)) => break true,
            Some(Ok(bytes)) => text.push_str(std::str::from_utf8(&bytes).unwrap()),
        }
        if text.matches("\n\n").count() >= wait_for {
            if let Some(stop) = stop.take() {
                stop();
            }
        }
    };
    (super::test_util::sse_data(&text), broke)
}

#[tokio::test]
async fn stream_faults_cut_the_stream_short() {
    for n in [0, 2] {
        let mock = start(Behavior {
            stream_fail_after: Some(n),
            ..Behavior::default()
        })
        .await;
        let (events, broke) = faulty_stream(&mock, usize::MAX, || {}).await;
        assert!(broke, "the connection dropped: {events:?}");
        assert_eq!(events.len(), 1 + n as usize, "{events:?}");
        assert_eq!(
            parse(&events[0])["choices"][0]["delta"]["role"],
            "assistant"
        );
        let s = mock.stats();
        assert_eq!(
            (s.chunks_sent, s.failed, s.streams_completed),
            (u64::from(n), 1, 0)
        );
    }

    let mock = start(Behavior {
        stream_error_event: true,
        ..Behavior::default()
    })
    .await;
    let (events, broke) = faulty_stream(&mock, usize::MAX, || {}).await;
    assert!(!broke);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(parse(&events[1])["error"]["message"], "overloaded");
    assert_eq!(mock.stats().chunks_sent, 0);

    // Silent after one content chunk until the mock stops.
    let mock = start(Behavior {
        stream_stall_after: Some(1),
        ..Behavior::default()
    })
    .await;
    let handle = &mock;
    let (events, broke) = faulty_stream(handle, 2, || handle.shared.life.stop_hard()).await;
    assert!(broke);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        parse(&events[1])["choices"][0]["delta"]["content"],
        "[mock] mock reply 1"
    );
    assert_eq!(mock.stats().streams_completed, 0);
}
