//! End to end: the `[global]` settings that change what a request gets — the response cache
//! (`[global.cache]`), the tool policy (`function_calling_enabled`, `tool_selection_strategy`)
//! — and the last-good snapshot (`cache_enabled`, `use_defaults_on_failure`) that lets a
//! gateway restart on a broken tree.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::process::{Command, Stdio};

use common::{BIN, Proc, TOKEN, Tree, admin, chat_body, client, mock, requests_seen};
use serde_json::{Value, json};

/// One provider with one instance on `upstream`, one group `g`; `global` is the registry's
/// `[global]` body, `model` the group's model (a broken tree names one that does not exist).
fn tree(t: &Tree, upstream: &Proc, global: &str, model: &str) {
    t.file(
        "_registry.toml",
        &format!(
            "[server]\nadmin_token = \"{TOKEN}\"\n[global]\n{global}\n[providers]\nup = {{ file = \"providers/up.toml\" }}\n[task_groups]\ng = {{ file = \"task-groups/g.toml\" }}\n"
        ),
    )
    .file(
        "providers/up.toml",
        &format!(
            "[provider]\ntype = \"openai\"\nbase_url = \"{}/v1\"\n[models.m]\n",
            upstream.url
        ),
    )
    .file(
        "task-groups/g.toml",
        &format!("[task_group]\n[task_group.echelons.e1]\nmodels = [\"{model}\"]\n"),
    );
}

async fn chat(
    c: &reqwest::Client,
    gw: &Proc,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Value) {
    let mut req = c.post(format!("{}/v1/chat/completions", gw.url)).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let cache = (r.headers().get("x-switchyard-cache")).map(|v| v.to_str().unwrap().to_owned());
    (status, cache, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_cache_serves_repeats_without_an_upstream_call() {
    let up = mock("up", &[]);
    let t = Tree::new();
    tree(
        &t,
        &up,
        "[global.cache]\nenabled = true\nmax_size = 100\nttl = 300",
        "up:m",
    );
    let gw = common::gateway(t.path());
    let c = client();
    let body = chat_body("g");

    let (s, cache, first) = chat(&c, &gw, &body, &[]).await;
    assert_eq!((s, cache.as_deref()), (200, Some("miss")), "{first}");
    let (s, cache, second) = chat(&c, &gw, &body, &[]).await;
    assert_eq!((s, cache.as_deref()), (200, Some("hit")));
    assert_eq!(second, first, "the same reply, byte for byte");
    assert_eq!(
        requests_seen(&c, &up).await,
        1,
        "the hit never reached the upstream"
    );

    // no-cache: fetched again (and stored); no-store: fetched, not stored; another body or
    // another client: its own entry.
    let (_, cache, _) = chat(&c, &gw, &body, &[("cache-control", "no-cache")]).await;
    assert_eq!(cache.as_deref(), Some("miss"));
    let (_, cache, _) = chat(&c, &gw, &body, &[("cache-control", "no-store")]).await;
    assert_eq!(cache, None, "no-store bypasses the cache");
    let other = json!({"model": "g", "messages": [{"role": "user", "content": "something else"}]});
    let (_, cache, _) = chat(&c, &gw, &other, &[]).await;
    assert_eq!(cache.as_deref(), Some("miss"));
    let (_, cache, _) = chat(&c, &gw, &body, &[("x-switchyard-client", "bob")]).await;
    assert_eq!(
        cache.as_deref(),
        Some("miss"),
        "clients never share replies"
    );
    assert_eq!(requests_seen(&c, &up).await, 5);

    // A streamed request is never cached.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let r = (c.post(format!("{}/v1/chat/completions", gw.url)))
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("x-switchyard-cache").is_none());
    assert!(r.text().await.unwrap().contains("[DONE]"));

    let (status, v) = admin(&c, &gw, "GET", "/admin/cache", None).await;
    assert_eq!(status, 200, "{v}");
    let stats = &v["cache"];
    assert_eq!(
        (stats["hits"].as_u64(), stats["entries"].as_u64()),
        (Some(1), Some(3)),
        "{v}"
    );
    let (_, v) = admin(&c, &gw, "DELETE", "/admin/cache", None).await;
    assert_eq!(v["cleared"], 3);
    let (_, cache, _) = chat(&c, &gw, &body, &[]).await;
    assert_eq!(cache.as_deref(), Some("miss"), "cleared");

    // Spend: only what went upstream (hits cost nothing), by route, instance and client.
    let (status, v) = admin(&c, &gw, "GET", "/admin/spend", None).await;
    assert_eq!(status, 200, "{v}");
    let upstream_calls = requests_seen(&c, &up).await;
    let route = &v["routes"]["g"];
    let per_call = first["usage"]["prompt_tokens"].as_u64().unwrap();
    // Every upstream call but the stream (which reported no usage) had the same prompt size.
    assert_eq!(
        route["prompt_tokens"].as_u64(),
        Some(per_call * (upstream_calls - 1)),
        "{v}"
    );
    assert_eq!(
        v["instances"]["up:m"]["prompt_tokens"], route["prompt_tokens"],
        "one instance served them all: {v}"
    );
    assert_eq!(
        v["clients"]["bob"]["prompt_tokens"].as_u64(),
        Some(per_call),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_policy_refuses_tools_or_sets_tool_choice() {
    let up = mock("up", &[]);
    let c = client();
    let mut body = chat_body("g");
    body["tools"] = json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]);

    let t = Tree::new();
    tree(&t, &up, "function_calling_enabled = false", "up:m");
    let gw = common::gateway(t.path());
    let (status, _, v) = chat(&c, &gw, &body, &[]).await;
    assert_eq!(status, 400, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("function_calling_enabled = false"),
        "{message}"
    );
    assert_eq!(requests_seen(&c, &up).await, 0);
    let (status, _, _) = chat(&c, &gw, &chat_body("g"), &[]).await;
    assert_eq!(status, 200, "requests without tools pass");
    drop(gw);

    // `priority`: the upstream sees tool_choice "required" (`/mock/last`: the last request).
    let t = Tree::new();
    tree(&t, &up, "tool_selection_strategy = \"priority\"", "up:m");
    let gw = common::gateway(t.path());
    let (status, _, v) = chat(&c, &gw, &body, &[]).await;
    assert_eq!(status, 200, "{v}");
    let seen: Value = (c.get(format!("{}/mock/last", up.url)).send().await.unwrap())
        .json()
        .await
        .unwrap();
    assert_eq!(seen["body"]["tool_choice"], "required", "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_a_broken_tree_serves_the_last_good_snapshot_until_the_files_are_fixed() {
    let up = mock("up", &[]);
    let c = client();
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let t = Tree::new();
    let global = "cache_enabled = true\nuse_defaults_on_failure = true";
    tree(&t, &up, global, "up:m");
    let start = |t: &Tree| {
        Proc::start(&[
            "serve",
            "--config",
            t.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            state_dir,
        ])
    };
    let gw = start(&t);
    assert_eq!(chat(&c, &gw, &chat_body("g"), &[]).await.0, 200);
    drop(gw);

    // A bad edit, then a restart: the snapshot serves, and the failure is reported.
    tree(&t, &up, global, "up:nope");
    let gw = start(&t);
    assert_eq!(chat(&c, &gw, &chat_body("g"), &[]).await.0, 200);
    let (_, v) = admin(&c, &gw, "GET", "/admin/config", None).await;
    assert!(v["serving_last_good"]["dir"].is_string(), "{v}");
    let issues = v["last_error"]["issues"].to_string();
    assert!(issues.contains("unknown model \\\"up:nope\\\""), "{issues}");

    // Still broken: a reload is refused and the snapshot keeps serving.
    let (status, _) = admin(&c, &gw, "POST", "/admin/reload", None).await;
    assert_eq!(status, 409, "refused");
    assert_eq!(chat(&c, &gw, &chat_body("g"), &[]).await.0, 200);

    // Fixed: the real files take over.
    tree(&t, &up, global, "up:m");
    let (status, v) = admin(&c, &gw, "POST", "/admin/reload", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["config"]["serving_last_good"], Value::Null, "{v}");
    assert_eq!(v["config"]["last_error"], Value::Null, "{v}");
    drop(gw);

    // Without use_defaults_on_failure the snapshot is kept but never booted from.
    tree(&t, &up, "cache_enabled = true", "up:m");
    drop(start(&t));
    tree(&t, &up, "cache_enabled = true", "up:nope");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--config",
            t.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--state-dir", state_dir])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown model \"up:nope\""), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_reach_responses_and_logs_and_logging_follows_the_config() {
    let up = mock("up", &[]);
    let c = client();
    let t = Tree::new();
    tree(&t, &up, "", "up:m");
    let gw = common::gateway(t.path());
    let r = (c.post(format!("{}/v1/chat/completions", gw.url)))
        .header("x-request-id", "req-abc-123")
        .json(&chat_body("g"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-abc-123");
    let log = gw.wait_for_log("request_id=req-abc-123");
    assert!(
        log.lines()
            .any(|l| l.contains("request_id=req-abc-123") && l.contains("status=200")),
        "{log}"
    );
    // Without one (and on errors too) a fresh id.
    let r = (c.post(format!("{}/v1/chat/completions", gw.url)))
        .json(&chat_body("nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    gw.wait_for_log(&format!("request_id={id}"));
    drop(gw);

    // [global.logging]: JSON lines, no access line, the response body logged.
    let t = Tree::new();
    let logging = "[global.logging]\nformat = \"json\"\nenable_request_logging = false\nenable_response_logging = true";
    tree(&t, &up, logging, "up:m");
    let gw = common::gateway(t.path());
    let r = (c.post(format!("{}/v1/chat/completions", gw.url)))
        .header("x-request-id", "req-json-1")
        .json(&chat_body("g"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let log = gw.wait_for_log("req-json-1");
    let lines: Vec<Value> = (log.lines())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let mine: Vec<&Value> = lines
        .iter()
        .filter(|v| v["request_id"] == "req-json-1")
        .collect();
    assert_eq!(mine.len(), 1, "only the response line: {mine:?}");
    assert_eq!(mine[0]["message"], "response");
    assert!(
        mine[0]["body"].as_str().unwrap().contains("mock reply"),
        "{}",
        mine[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_lines_parse_and_carry_hostile_strings_intact() {
    let up = mock("up", &[]);
    let c = client();
    let t = Tree::new();
    tree(&t, &up, "[global.logging]\nformat = \"json\"", "up:m");
    let gw = common::gateway(t.path());
    // Any visible ASCII is kept as the request id, quotes and backslashes included.
    let id = r#"req-"json"\1"#;
    let (status, _, _) = chat(&c, &gw, &chat_body("g"), &[("x-request-id", id)]).await;
    assert_eq!(status, 200);
    let model = "no\"where\n\u{0}🦀";
    let (status, _, _) = chat(
        &c,
        &gw,
        &chat_body(model),
        &[("x-request-id", "req-json-2")],
    )
    .await;
    assert_eq!(status, 404);
    let log = gw.wait_for_log("req-json-2");
    let lines: Vec<Value> = (log.lines())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let line = |rid: &str| {
        let mine: Vec<&Value> = lines.iter().filter(|v| v["request_id"] == rid).collect();
        assert_eq!(mine.len(), 1, "{log}");
        mine[0].clone()
    };
    let ok = line(id);
    assert_eq!(ok["message"], "request");
    assert_eq!(ok["target"], "switchyard::access");
    assert_eq!(ok["level"], "INFO");
    assert_eq!(ok["route"], "g");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["stream"], false);
    assert!(ok["latency_ms"].as_f64().unwrap() > 0.0, "{ok}");
    assert!(ok["timestamp"].as_str().unwrap().ends_with('Z'), "{ok}");
    let rejected = line("req-json-2");
    assert_eq!(rejected["message"], "request rejected");
    assert_eq!(rejected["status"], 404);
    assert!(
        rejected["error"].as_str().unwrap().contains("no\\\"where"),
        "{rejected}"
    );
}
