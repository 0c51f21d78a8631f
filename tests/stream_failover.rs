//! End to end: a stream is committed at its first content chunk. An upstream that fails before
//! it (dies after the role chunk, sends an error event, goes silent) is failed over without the
//! client seeing anything of it; one that fails after it ends the client's stream with an error
//! event and `[DONE]`. The real binary as gateway, real mock upstreams as separate processes.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{Proc, Tree, chat_body, client, gateway, mock, requests_seen, stats};
use serde_json::{Value, json};

/// Provider `up`, model `m` with instances `(id, mock, timeout in s)`, task group `g` (one
/// echelon over up:m), pool `p` round robin over `g`.
fn tree(instances: &[(&str, &Proc, Option<u32>)]) -> Tree {
    let t = Tree::new();
    let mut providers = String::from(
        "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.m]\nupstream_model = \"real-model\"\n",
    );
    for (id, proc_, timeout) in instances {
        providers.push_str(&format!(
            "[[models.m.instances]]\nid = \"{id}\"\nbase_url = \"{}/v1\"\n",
            proc_.url
        ));
        if let Some(s) = timeout {
            providers.push_str(&format!("timeout = {s}\n"));
        }
    }
    t.file("providers/up.toml", &providers);
    t.file(
        "task-groups/g.toml",
        "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\npriority = 1\nmax_retries = 5\n",
    );
    t.file(
        "pools/p.toml",
        "[pool]\ntask_groups = [\"g\"]\n[pool.rotation_strategy]\ntype = \"round_robin\"\n",
    );
    t.file(
        "_registry.toml",
        "[providers]\nup = { file = \"providers/up.toml\" }\n[pools]\np = { file = \"pools/p.toml\" }\n[task_groups]\ng = { file = \"task-groups/g.toml\" }\n",
    );
    t
}

/// One streamed reply as a client SDK reads it.
struct Streamed {
    instance: String,
    attempts: u32,
    /// Every `data:` payload before `[DONE]`, parsed.
    chunks: Vec<Value>,
    /// Whether the last event was `data: [DONE]`.
    done: bool,
    text: String,
}

impl Streamed {
    fn content(&self) -> String {
        self.chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect()
    }

    fn errors(&self) -> Vec<&Value> {
        self.chunks
            .iter()
            .filter(|c| c.get("error").is_some())
            .collect()
    }

    /// A stream an OpenAI SDK reads without complaint: only chunk objects, `[DONE]` last.
    fn assert_clean(&self) {
        assert!(self.done, "no [DONE] at the end: {}", self.text);
        assert!(self.errors().is_empty(), "error event: {}", self.text);
        for c in &self.chunks {
            assert_eq!(c["object"], "chat.completion.chunk", "{}", self.text);
        }
        let roles = self
            .chunks
            .iter()
            .filter(|c| c["choices"][0]["delta"].get("role").is_some())
            .count();
        assert_eq!(
            roles, 1,
            "one role chunk, not the failed instance's too: {}",
            self.text
        );
        assert!(!self.content().is_empty(), "{}", self.text);
    }
}

async fn stream(c: &reqwest::Client, gw: &Proc, model: &str) -> Streamed {
    let mut body = chat_body(model);
    body["stream"] = json!(true);
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let header = |name: &str| r.headers()[name].to_str().unwrap().to_owned();
    let instance = header("x-switchyard-instance");
    let attempts = header("x-switchyard-attempts").parse().unwrap();
    let text = r.text().await.unwrap();
    let mut chunks = Vec::new();
    let mut done = false;
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        assert!(!done, "an event after [DONE]: {text}");
        let data = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect::<Vec<_>>()
            .join("\n");
        if data == "[DONE]" {
            done = true;
        } else {
            let chunk = serde_json::from_str(&data)
                .unwrap_or_else(|e| panic!("{e}: event {event:?} in {text}"));
            chunks.push(chunk);
        }
    }
    Streamed {
        instance,
        attempts,
        chunks,
        done,
        text,
    }
}

/// `bad` (mock flags `bad_args`, instance timeout `timeout`) and a healthy `b` behind pool `p`:
/// every one of `n` streams is clean and comes from `b`, and each request that tried `bad`
/// first says so in `x-switchyard-attempts`.
async fn bad_instance_is_failed_over_invisibly(bad_args: &[&str], timeout: Option<u32>, n: usize) {
    let (bad, good) = (mock("a", bad_args), mock("b", &[]));
    let t = tree(&[("a", &bad, timeout), ("b", &good, None)]);
    let gw = gateway(t.path());
    let c = client();
    let mut second_attempts = 0;
    for _ in 0..n {
        let s = stream(&c, &gw, "p").await;
        s.assert_clean();
        assert_eq!(s.instance, "b", "{}", s.text);
        assert_eq!(s.content(), "[b] mock reply 1 2 3 4 5 6 7 8");
        assert!(s.attempts == 1 || s.attempts == 2, "{}", s.attempts);
        if s.attempts == 2 {
            second_attempts += 1;
        }
    }
    let tried_bad = requests_seen(&c, &bad).await;
    assert!(tried_bad > 0, "round robin never offered the bad instance");
    assert_eq!(
        second_attempts, tried_bad,
        "exactly the requests the bad instance saw took two attempts"
    );
    assert_eq!(requests_seen(&c, &good).await, n as u64);
    assert_eq!(stats(&c, &good).await["streams_completed"], n as u64);
    assert_eq!(stats(&c, &bad).await["streams_completed"], 0);
}

#[tokio::test]
async fn upstream_dying_after_the_role_chunk_is_failed_over() {
    bad_instance_is_failed_over_invisibly(&["--stream-fail-after", "0"], None, 8).await;
}

#[tokio::test]
async fn an_error_event_before_content_is_failed_over() {
    bad_instance_is_failed_over_invisibly(&["--stream-error-event"], None, 8).await;
}

#[tokio::test]
async fn an_upstream_silent_after_the_role_chunk_times_out_and_is_failed_over() {
    // The instance timeout bounds the wait for the first content (no TTFT limit configured).
    bad_instance_is_failed_over_invisibly(&["--stream-stall-after", "0"], Some(1), 4).await;
}

#[tokio::test]
async fn a_failure_after_the_first_content_ends_the_stream_with_an_error_event_and_done() {
    let bad = mock("a", &["--stream-fail-after", "2"]);
    let t = tree(&[("a", &bad, None)]);
    let gw = gateway(t.path());
    let c = client();
    let s = stream(&c, &gw, "up:m").await;
    assert_eq!((s.instance.as_str(), s.attempts), ("a", 1));
    assert!(s.done, "the stream was cut without [DONE]: {}", s.text);
    assert_eq!(s.content(), "[a] mock reply 1 2", "{}", s.text);
    let errors = s.errors();
    assert_eq!(errors.len(), 1, "{}", s.text);
    let last = s.chunks.last().unwrap();
    assert!(
        last.get("error").is_some(),
        "the error is the last event: {}",
        s.text
    );
    let message = errors[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("instance \"a\""), "{message}");
    gw.wait_for_log("stream failed after it started");
}

/// An echelon's `ttft_timeout` fails a stream over when no content comes in time, long before
/// the instance's own timeout.
#[tokio::test]
async fn the_echelon_ttft_timeout_fails_a_silent_stream_over() {
    let a = mock("a", &["--stream-stall-after", "0"]);
    let b = mock("b", &[]);
    let t = Tree::new();
    t.file(
        "providers/up.toml",
        &format!(
            "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.m]\n[[models.m.instances]]\nid = \"a\"\nbase_url = \"{}/v1\"\ntimeout = 30\n[[models.m.instances]]\nid = \"b\"\nbase_url = \"{}/v1\"\ntimeout = 30\n",
            a.url, b.url
        ),
    );
    t.file(
        "task-groups/g.toml",
        "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\nttft_timeout = 0.3\n",
    );
    t.file(
        "_registry.toml",
        "[providers]\nup = { file = \"providers/up.toml\" }\n[task_groups]\ng = { file = \"task-groups/g.toml\" }\n",
    );
    let gw = gateway(t.path());
    let mut body = chat_body("g");
    body["stream"] = json!(true);
    let started = std::time::Instant::now();
    let r = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-switchyard-trace", "1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let trace = r.headers()["x-switchyard-trace"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(
        trace.starts_with("g.e1/a=timeout") && trace.contains("g.e1/b=ok"),
        "{trace}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the 30 s timeout was waited out"
    );
    assert_eq!(requests_seen(&client(), &a).await, 1);
}

/// A burst (an upstream writing many events at once) leaves the gateway in fewer writes than
/// events, every event intact and in order; a paced stream (events milliseconds apart) is
/// forwarded event by event. Read as raw HTTP/1.1 chunks: each chunk is one write.
#[tokio::test]
async fn a_burst_is_forwarded_in_fewer_writes_and_a_paced_stream_chunk_by_chunk() {
    let burst = mock("a", &["--stream-chunks", "64"]);
    let paced = mock("b", &["--stream-chunks", "8", "--tokens-per-s", "100"]);
    let t = Tree::new();
    t.file(
        "providers/up.toml",
        &format!(
            "[provider]\ntype = \"openai\"\n[models.burst]\nbase_url = \"{}/v1\"\n[models.paced]\nbase_url = \"{}/v1\"\n",
            burst.url, paced.url
        ),
    );
    t.file(
        "_registry.toml",
        "[providers]\nup = { file = \"providers/up.toml\" }\n",
    );
    let gw = gateway(t.path());

    let (writes, events) = raw_stream(&gw, "up:burst").await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let text: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    let want: String = (1..=64).map(|i| format!(" {i}")).collect();
    assert_eq!(text, format!("[a] mock reply{want}"), "{events:?}");
    // Event by event it takes a write per event (66 for these 67); gathered, a handful. The
    // bound leaves room for a loaded machine splitting the burst where it pauses.
    assert!(
        writes * 4 <= events.len() * 3,
        "{} events in {writes} writes: the burst was not gathered",
        events.len()
    );

    let (writes, events) = raw_stream(&gw, "up:paced").await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    // One write per event (the held-back role chunk goes with the first content, the finish
    // chunk with [DONE]): nothing waits to be gathered. The bound leaves room for a loaded
    // machine delivering two paced events at once.
    assert!(writes * 2 >= events.len(), "{writes} writes of {events:?}");
}

/// POST a streamed chat over a raw HTTP/1.1 connection (`connection: close`) and read the
/// chunked body: how many chunks (writes) it came in, and its SSE `data:` payloads.
async fn raw_stream(gw: &Proc, model: &str) -> (usize, Vec<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = gw.url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body =
        json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]})
            .to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut raw))
        .await
        .expect("the stream did not end in 30 s")
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let (mut rest, mut chunks, mut sse) = (&raw[split + 4..], 0, Vec::new());
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
        rest = &rest[eol + 2..];
        if size == 0 {
            break;
        }
        chunks += 1;
        sse.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    let events = String::from_utf8(sse)
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: ").map(String::from))
        .collect();
    (chunks, events)
}
