//! Helpers for the mock's HTTP tests: start a server on 127.0.0.1:0, send requests with
//! reqwest, and split SSE bodies into events.

use std::time::Duration;

use serde_json::Value;

use super::{Behavior, MockHandle, spawn};

/// A mock on a fresh loopback port.
pub(crate) async fn start(behavior: Behavior) -> MockHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn(listener, behavior).unwrap()
}

/// A mock with default behaviour except `name`.
pub(crate) async fn start_named(name: &str) -> MockHandle {
    start(Behavior {
        name: name.into(),
        ..Behavior::default()
    })
    .await
}

pub(crate) fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A reply read in full.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) text: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error.type` of an OpenAI-style error body, checking its shape.
    pub(crate) fn error_type(&self) -> String {
        let v = self.json();
        assert!(v["error"]["message"].is_string(), "{v}");
        assert_eq!(v["error"]["code"], Value::Null, "{v}");
        v["error"]["type"].as_str().unwrap().to_owned()
    }
}

async fn read(response: reqwest::Response) -> Reply {
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap(),
    }
}

fn url(handle: &MockHandle, path: &str) -> String {
    format!("http://{}{path}", handle.addr())
}

/// POST `body` (sent as given) to `path`.
pub(crate) async fn try_post_raw(
    handle: &MockHandle,
    path: &str,
    body: &str,
) -> reqwest::Result<Reply> {
    let response = client()
        .post(url(handle, path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .timeout(Duration::from_secs(30))
        .send()
        .await?;
    Ok(read(response).await)
}

/// POST `body` to `path` with extra `headers`.
pub(crate) async fn post_with(
    handle: &MockHandle,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Reply {
    let mut request = client()
        .post(url(handle, path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(30));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    read(request.send().await.unwrap()).await
}

/// GET `path` with extra `headers`.
pub(crate) async fn get_with(handle: &MockHandle, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = client().get(url(handle, path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    read(request.send().await.unwrap()).await
}

pub(crate) async fn post_raw(handle: &MockHandle, path: &str, body: &str) -> Reply {
    try_post_raw(handle, path, body).await.unwrap()
}

pub(crate) async fn post(handle: &MockHandle, path: &str, body: &Value) -> Reply {
    post_raw(handle, path, &body.to_string()).await
}

pub(crate) async fn get(handle: &MockHandle, path: &str) -> Reply {
    read(client().get(url(handle, path)).send().await.unwrap()).await
}

pub(crate) async fn put(handle: &MockHandle, path: &str, body: &str) -> Reply {
    let response = client()
        .put(url(handle, path))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    read(response).await
}

/// A small valid chat request.
pub(crate) fn chat_body(model: &str) -> Value {
    serde_json::json!({
        "model": model,
        "messages": [
            { "role": "system", "content": "be brief" },
            { "role": "user", "content": "hello there mock" },
        ],
    })
}

/// The Messages twin of [`chat_body`]: the same five prompt words.
pub(crate) fn messages_body(model: &str) -> Value {
    serde_json::json!({
        "model": model,
        "max_tokens": 1024,
        "system": "be brief",
        "messages": [{ "role": "user", "content": "hello there mock" }],
    })
}

/// Headers an Anthropic client sends.
pub(crate) const ANTHROPIC_HEADERS: &[(&str, &str)] = &[
    ("x-api-key", "sk-ant-test"),
    ("anthropic-version", "2023-06-01"),
];

/// The Gemini twin of [`chat_body`]: the same five prompt words.
pub(crate) fn generate_body() -> Value {
    serde_json::json!({
        "systemInstruction": { "parts": [{ "text": "be brief" }] },
        "contents": [{ "role": "user", "parts": [{ "text": "hello there mock" }] }],
        "generationConfig": { "maxOutputTokens": 1024 },
    })
}

/// The payloads of the `data: ` events of an SSE body, in order.
pub(crate) fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not an SSE data event: {event:?}"))
                .to_owned()
        })
        .collect()
}

/// The `(event, data)` pairs of an SSE body whose events all have an `event:` line.
pub(crate) fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            let (name, data) = event
                .strip_prefix("event: ")
                .and_then(|rest| rest.split_once("\ndata: "))
                .unwrap_or_else(|| panic!("not a named SSE event: {event:?}"));
            let data = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
            (name.to_owned(), data)
        })
        .collect()
}

/// Reads a streamed reply to its end or until the connection breaks: the text received and
/// whether it broke.
pub(crate) async fn read_until_break(
    handle: &MockHandle,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (String, bool) {
    use futures_util::StreamExt;
    let mut request = client().post(url(handle, path)).body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    let broke = loop {
        match stream.next().await {
            None => break false,
            Some(Err(_)) => break true,
            Some(Ok(bytes)) => text.push_str(std::str::from_utf8(&bytes).unwrap()),
        }
    };
    (text, broke)
}
