//! End to end: the real binary as gateway, real mock upstreams as separate processes, all on
//! loopback. Requests are counted at the upstreams.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{
    Proc, Tree, chat_body, client, dead_port, gateway, mock, models, requests_seen, stats,
};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// One provider `up` with model `m` served by the given (id, mock) instances, task group `g`
/// (echelon e1: up:m; echelon e2: up:spare if given), pool `p` round robin over g, wrapper `w`.
fn tree(instances: &[(&str, &Proc)], spare: Option<&Proc>, extra_registry: &str) -> Tree {
    let t = Tree::new();
    let mut providers = String::from(
        "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key = \"sk-secret-test-key\"\n[models.m]\nupstream_model = \"real-model\"\n",
    );
    for (id, proc_) in instances {
        providers.push_str(&format!(
            "[[models.m.instances]]\nid = \"{id}\"\nbase_url = \"{}/v1\"\n",
            proc_.url
        ));
    }
    let mut e2 = String::new();
    if let Some(s) = spare {
        providers.push_str(&format!(
            "[models.spare]\n[[models.spare.instances]]\nid = \"spare\"\nbase_url = \"{}/v1\"\n",
            s.url
        ));
        e2 = "[task_group.echelons.e2]\nmodels = [\"up:spare\"]\npriority = 2\n".to_owned();
    }
    t.file("providers/up.toml", &providers);
    t.file(
        "task-groups/g.toml",
        &format!("[task_group]\nfallback_strategy = \"echelon_down\"\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\npriority = 1\nmax_retries = 5\n{e2}"),
    );
    t.file(
        "pools/p.toml",
        "[pool]\ntask_groups = [\"g\"]\n[pool.rotation_strategy]\ntype = \"round_robin\"\n",
    );
    t.file(
        "wrappers/w.toml",
        "[wrappers]\nw = { type = \"pool\", pool_name = \"p\" }\n",
    );
    t.file(
        "_registry.toml",
        &format!(
            "{extra_registry}\n[providers]\nup = {{ file = \"providers/up.toml\" }}\n[pools]\np = {{ file = \"pools/p.toml\" }}\n[task_groups]\ng = {{ file = \"task-groups/g.toml\" }}\n[wrappers]\nw = {{ file = \"wrappers/w.toml\" }}\n"
        ),
    );
    t
}

/// One mock `a` behind the standard tree, its gateway and a client.
fn one_mock(extra_registry: &str) -> (Proc, Tree, Proc, reqwest::Client) {
    let a = mock("a", &[]);
    let t = tree(&[("a", &a)], None, extra_registry);
    let gw = gateway(t.path());
    (a, t, gw, client())
}

async fn post(c: &reqwest::Client, gw: &Proc, path: &str, body: &Value) -> reqwest::Response {
    c.post(format!("{}{path}", gw.url))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn round_robin_pool_spreads_nine_requests_three_each_streaming_or_not() {
    let mocks = [mock("a", &[]), mock("b", &[]), mock("c", &[])];
    let t = tree(
        &[("a", &mocks[0]), ("b", &mocks[1]), ("c", &mocks[2])],
        None,
        "",
    );
    let gw = gateway(t.path());
    let c = client();
    for _ in 0..9 {
        let r = post(&c, &gw, "/v1/chat/completions", &chat_body("p")).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["model"], "real-model", "upstream saw the rewritten model");
        assert_eq!(v["object"], "chat.completion");
    }
    for m in &mocks {
        assert_eq!(requests_seen(&c, m).await, 3);
    }
    for _ in 0..9 {
        let mut body = chat_body("p");
        body["stream"] = json!(true);
        let r = post(&c, &gw, "/v1/chat/completions", &body).await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let text = r.text().await.unwrap();
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        assert!(text.contains("chat.completion.chunk"));
    }
    for m in &mocks {
        assert_eq!(requests_seen(&c, m).await, 6);
        assert_eq!(stats(&c, m).await["streams_completed"], 3);
    }
}

#[tokio::test]
async fn every_routing_name_kind_resolves_and_models_lists_them() {
    let (a, b, s) = (mock("a", &[]), mock("b", &[]), mock("spare", &[]));
    let t = tree(&[("a", &a), ("b", &b)], Some(&s), "");
    let gw = gateway(t.path());
    let c = client();
    let names = models(&c, &gw).await;
    let expected = [
        ("w", "wrapper"),
        ("p", "pool"),
        ("g", "task_group"),
        ("g.e1", "echelon"),
        ("g.e2", "echelon"),
        ("up:m", "model"),
        ("up:spare", "model"),
        ("a", "instance"),
        ("b", "instance"),
        ("spare", "instance"),
    ];
    for (id, kind) in expected {
        let listed = names.iter().any(|(i, k)| i == id && k == kind);
        assert!(listed, "({id}, {kind}) not in {names:?}");
    }
    for (name, _) in expected {
        let r = post(&c, &gw, "/v1/chat/completions", &chat_body(name)).await;
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.headers()["x-switchyard-route"], name);
        let instance = r.headers()["x-switchyard-instance"]
            .to_str()
            .unwrap()
            .to_owned();
        match name {
            "a" | "b" | "spare" => assert_eq!(instance, name),
            "g.e2" | "up:spare" => assert_eq!(instance, "spare"),
            _ => assert!(
                instance == "a" || instance == "b",
                "{name} went to {instance}"
            ),
        }
    }
    assert_eq!(requests_seen(&c, &s).await, 3);
}

#[tokio::test]
async fn streaming_is_forwarded_chunk_by_chunk_not_buffered() {
    // Ten content chunks 200 ms apart: the whole stream takes about two seconds upstream.
    let slow = mock("slow", &["--stream-chunks", "10", "--tokens-per-s", "5"]);
    let t = tree(&[("slow", &slow)], None, "");
    let gw = gateway(t.path());
    let c = client();
    let mut body = chat_body("up:m");
    body["stream"] = json!(true);
    let r = post(&c, &gw, "/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    let mut chunks = r.bytes_stream();
    let first = chunks.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");
    // The client holds the first chunk while the upstream is still producing the rest.
    let s = stats(&c, &slow).await;
    assert_eq!(s["streams_completed"], 0, "upstream already finished: {s}");
    assert!(s["chunks_sent"].as_u64().unwrap() < 10, "{s}");
    let mut rest = first.to_vec();
    while let Some(chunk) = chunks.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(rest).unwrap();
    let content: String = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "[slow] mock reply 1 2 3 4 5 6 7 8 9 10");
    assert!(text.trim_end().ends_with("data: [DONE]"));
    assert_eq!(stats(&c, &slow).await["streams_completed"], 1);
}

#[tokio::test]
async fn body_is_forwarded_as_sent_with_only_model_rewritten_and_usage_honoured() {
    let (a, _t, gw, c) = one_mock("");
    let raw = r#"{"seed":7,"model":"up:m","tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"},"x_vendor":{"deep":[1,2,3]},"stream":true,"stream_options":{"include_usage":true}}"#;
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let usage: Value =
        serde_json::from_str(events[events.len() - 2].trim_start_matches("data: ")).unwrap();
    assert!(
        usage["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{usage}"
    );
    let last: Value = c
        .get(format!("{}/mock/last", a.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen = match &last["body"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let expected = raw.replace(r#""model":"up:m""#, r#""model":"real-model""#);
    let (seen_v, expected_v): (Value, Value) = (
        serde_json::from_str(&seen).unwrap(),
        serde_json::from_str(&expected).unwrap(),
    );
    assert_eq!(seen_v, expected_v);
    assert_eq!(
        last["headers"]["authorization"],
        "Bearer sk-secret-test-key"
    );

    // Without include_usage the upstream sends no usage chunk and neither do we.
    let mut body = chat_body("up:m");
    body["stream"] = json!(true);
    let text = post(&c, &gw, "/v1/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("\"usage\":{"), "{text}");

    // Logs carry route and instance, never the key or the message content.
    let log = gw.wait_for_log("instance=a");
    assert!(log.contains("route=up:m"), "{log}");
    assert!(
        !log.contains("sk-secret-test-key") && !log.contains("hello there"),
        "{log}"
    );
}

#[tokio::test]
async fn completions_and_embeddings_pass_through() {
    let (a, _t, gw, c) = one_mock("");
    let r = post(
        &c,
        &gw,
        "/v1/completions",
        &json!({"model": "up:m", "prompt": "say hi"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    let r = post(
        &c,
        &gw,
        "/v1/embeddings",
        &json!({"model": "g", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["model"], "real-model");
    let s = stats(&c, &a).await;
    assert_eq!(
        (s["completions"].as_u64(), s["embeddings"].as_u64()),
        (Some(1), Some(1))
    );
}

async fn expect_error(r: reqwest::Response, status: u16, code: Option<&str>, needle: &str) {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    let e = &v["error"];
    assert!(e["type"].is_string(), "{v}");
    assert_eq!(e["code"].as_str(), code, "{v}");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

#[tokio::test]
async fn bad_input_gets_openai_style_errors_never_500() {
    let (a, _t, gw, c) = one_mock("[server]\nmax_body_bytes = 2048\n");
    let url = format!("{}/v1/chat/completions", gw.url);
    let send = |body: &'static str| {
        c.post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    expect_error(
        send("{\"model\": \"p\", ").await.unwrap(),
        400,
        None,
        "not valid JSON",
    )
    .await;
    expect_error(
        send(r#"{"messages":[{"role":"user","content":"x"}]}"#)
            .await
            .unwrap(),
        400,
        None,
        "model",
    )
    .await;
    expect_error(
        send(r#"{"model":"p"}"#).await.unwrap(),
        400,
        None,
        "messages",
    )
    .await;
    expect_error(
        send(r#"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#)
            .await
            .unwrap(),
        404,
        Some("model_not_found"),
        "\"nope\"",
    )
    .await;
    let big = format!(
        r#"{{"model":"p","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(4096)
    );
    expect_error(
        c.post(&url).body(big).send().await.unwrap(),
        413,
        Some("payload_too_large"),
        "2048",
    )
    .await;
    expect_error(
        c.get(&url).send().await.unwrap(),
        405,
        Some("method_not_allowed"),
        "GET",
    )
    .await;
    expect_error(
        c.get(format!("{}/v2/nothing", gw.url))
            .send()
            .await
            .unwrap(),
        404,
        Some("not_found"),
        "/v2/nothing",
    )
    .await;
    assert_eq!(
        requests_seen(&c, &a).await,
        0,
        "no bad request reached the upstream"
    );
}

#[tokio::test]
async fn upstream_down_is_503_naming_the_route_and_garbage_is_502() {
    let port = dead_port();
    let t = Tree::new();
    t.file("_registry.toml", "[providers]\nup = { file = \"providers/up.toml\" }\n[task_groups]\ng = { file = \"g.toml\" }\n");
    t.file(
        "g.toml",
        "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:down\"]\n",
    );
    let garbage = mock("junk", &["--garbage"]);
    t.file(
        "providers/up.toml",
        &format!("[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n[models.down]\n[models.junk]\n[[models.junk.instances]]\nid = \"junk\"\nbase_url = \"{}/v1\"\n", garbage.url),
    );
    let gw = gateway(t.path());
    let c = client();
    expect_error(
        post(&c, &gw, "/v1/chat/completions", &chat_body("g")).await,
        503,
        Some("upstream_unavailable"),
        "route \"g\"",
    )
    .await;
    expect_error(
        post(&c, &gw, "/v1/chat/completions", &chat_body("junk")).await,
        502,
        Some("upstream_bad_response"),
        "not a JSON object",
    )
    .await;
    let mut body = chat_body("junk");
    body["stream"] = json!(true);
    let r = post(&c, &gw, "/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 502);
}

#[tokio::test]
async fn a_failing_instance_is_failed_over_within_the_tier_and_down_the_echelons() {
    let (bad, good, spare) = (
        mock("bad", &["--status", "500"]),
        mock("good", &[]),
        mock("spare", &[]),
    );
    let t = tree(&[("bad", &bad), ("good", &good)], Some(&spare), "");
    let gw = gateway(t.path());
    let c = client();
    for _ in 0..6 {
        let r = post(&c, &gw, "/v1/chat/completions", &chat_body("g")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-switchyard-instance"], "good");
    }
    assert_eq!(requests_seen(&c, &good).await, 6);
    assert_eq!(
        requests_seen(&c, &bad).await,
        3,
        "round robin offers bad every other time"
    );
    // Both e1 instances failing: the request drops to echelon e2.
    let t2 = tree(&[("bad", &bad)], Some(&spare), "");
    let gw2 = gateway(t2.path());
    let r = post(&c, &gw2, "/v1/chat/completions", &chat_body("g")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-instance"], "spare");
    assert_eq!(r.headers()["x-switchyard-attempts"], "2");
    // A 429 with Retry-After everywhere surfaces as 429 with the header.
    let limited = mock("limited", &["--status", "429", "--retry-after", "7"]);
    let t3 = tree(&[("limited", &limited)], None, "");
    let gw3 = gateway(t3.path());
    let r = post(&c, &gw3, "/v1/chat/completions", &chat_body("up:m")).await;
    assert_eq!(r.headers()["retry-after"], "7");
    expect_error(r, 429, Some("upstream_rate_limited"), "route \"up:m\"").await;
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_stream_then_exits_cleanly() {
    let slow = mock("slow", &["--stream-chunks", "5", "--tokens-per-s", "10"]);
    let t = tree(&[("slow", &slow)], None, "");
    let mut gw = gateway(t.path());
    let c = client();
    let mut body = chat_body("up:m");
    body["stream"] = json!(true);
    let r = post(&c, &gw, "/v1/chat/completions", &body).await;
    let mut chunks = r.bytes_stream();
    let mut text = chunks.next().await.unwrap().unwrap().to_vec();
    gw.terminate();
    while let Some(chunk) = chunks.next().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.trim_end().ends_with("data: [DONE]"),
        "stream was cut: {text}"
    );
    assert!(gw.wait().success());
    assert!(
        c.get(format!("{}/healthz", gw.url)).send().await.is_err(),
        "still listening"
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let (_a, _t, gw, c) = one_mock("");
    let r = c.get(format!("{}/healthz", gw.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(format!("{}/readyz", gw.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ready");
    assert_eq!(v["instances"], 1);
}

#[tokio::test]
async fn a_hanging_upstream_times_out_as_504_and_a_dead_one_is_failed_over() {
    let hung = mock("hung", &["--hang"]);
    let t = Tree::new();
    t.file(
        "_registry.toml",
        "[providers]\nup = { file = \"up.toml\" }\n",
    );
    t.file(
        "up.toml",
        &format!("[provider]\ntype = \"openai\"\ntimeout = 0.3\n[models.m]\n[[models.m.instances]]\nid = \"hung\"\nbase_url = \"{}/v1\"\n", hung.url),
    );
    let gw = gateway(t.path());
    let c = client();
    let r = post(&c, &gw, "/v1/chat/completions", &chat_body("up:m")).await;
    expect_error(
        r,
        504,
        Some("upstream_timeout"),
        "no response within 300 ms",
    )
    .await;

    // An upstream that dies after two requests: the rest go to its sibling, none fail.
    let (mortal, sibling) = (mock("mortal", &["--die-after", "2"]), mock("sibling", &[]));
    let t2 = tree(&[("mortal", &mortal), ("sibling", &sibling)], None, "");
    let gw2 = gateway(t2.path());
    for _ in 0..8 {
        let r = post(&c, &gw2, "/v1/chat/completions", &chat_body("up:m")).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(requests_seen(&c, &sibling).await, 6);
}
