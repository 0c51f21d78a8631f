//! End to end through the real binary: instances that speak Anthropic's and Gemini's native
//! APIs (the mock speaks both) behind the same OpenAI-shaped endpoint. Checks the exact request
//! each upstream receives (path, auth headers, translated body), the OpenAI-shaped replies and
//! streams the client gets, and failover from an Anthropic instance to an OpenAI one and back
//! within one request, streamed and not.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{Proc, Tree, client, gateway, mock};
use serde_json::{Value, json};

/// Providers `claude` (Anthropic, on `ant`), `gem` (Gemini, on `gem`), `gpt` (OpenAI, on
/// `oai`); task groups: `a` (claude only), `g` (gemini only), `a_then_o` and `o_then_a`
/// (two echelons each).
fn tree(ant: &Proc, gem: &Proc, oai: &Proc) -> Tree {
    let t = Tree::new();
    t.file(
        "_registry.toml",
        "[providers]\nclaude = { file = \"providers/claude.toml\" }\ngem = { file = \"providers/gem.toml\" }\ngpt = { file = \"providers/gpt.toml\" }\n[task_groups]\na = { file = \"task-groups/a.toml\" }\ng = { file = \"task-groups/g.toml\" }\na_then_o = { file = \"task-groups/ao.toml\" }\no_then_a = { file = \"task-groups/oa.toml\" }\n",
    )
    .file(
        "providers/claude.toml",
        &format!(
            "[provider]\ntype = \"anthropic\"\nbase_url = \"{}/v1\"\napi_key = \"sk-ant-test\"\n[models.sonnet]\nupstream_model = \"claude-sonnet-4\"\n",
            ant.url
        ),
    )
    .file(
        "providers/gem.toml",
        &format!(
            "[provider]\ntype = \"gemini\"\nbase_url = \"{}/v1beta\"\napi_key = \"g-key\"\n[models.flash]\nupstream_model = \"gemini-2.0-flash\"\n",
            gem.url
        ),
    )
    .file(
        "providers/gpt.toml",
        &format!(
            "[provider]\ntype = \"openai\"\nbase_url = \"{}/v1\"\napi_key = \"sk-oai\"\n[models.m]\n",
            oai.url
        ),
    );
    let group = |first: &str, second: Option<&str>| {
        let mut g = format!(
            "[task_group]\n[task_group.echelons.e1]\nmodels = [\"{first}\"]\npriority = 1\n"
        );
        if let Some(s) = second {
            g.push_str(&format!(
                "[task_group.echelons.e2]\nmodels = [\"{s}\"]\npriority = 2\n"
            ));
        }
        g
    };
    t.file("task-groups/a.toml", &group("claude:sonnet", None))
        .file("task-groups/g.toml", &group("gem:flash", None))
        .file(
            "task-groups/ao.toml",
            &group("claude:sonnet", Some("gpt:m")),
        )
        .file(
            "task-groups/oa.toml",
            &group("gpt:m", Some("claude:sonnet")),
        );
    t
}

fn body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there"}
        ]
    })
}

async fn last(c: &reqwest::Client, m: &Proc) -> Value {
    c.get(format!("{}/mock/last", m.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A non-streamed reply: status, the instance header, the body.
async fn send(c: &reqwest::Client, gw: &Proc, body: &Value) -> (u16, String, Value) {
    let r = (c.post(format!("{}/v1/chat/completions", gw.url)))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let instance = (r.headers().get("x-switchyard-instance"))
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, instance, r.json().await.unwrap())
}

/// A streamed reply as the OpenAI SDK reads it: every `data:` JSON chunk, the text they add
/// up to, and whether it ended with `[DONE]`.
async fn stream(
    c: &reqwest::Client,
    gw: &Proc,
    body: &Value,
) -> (String, Vec<Value>, String, bool) {
    let r = (c.post(format!("{}/v1/chat/completions", gw.url)))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let instance = (r.headers().get("x-switchyard-instance"))
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    let mut chunks = Vec::new();
    let mut done = false;
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line == "[DONE]" {
            done = true;
            continue;
        }
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v.get("error").is_none(),
            "an error reached the client: {text}"
        );
        assert_eq!(v["object"], "chat.completion.chunk", "{v}");
        chunks.push(v);
    }
    let content: String = (chunks.iter())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    (instance, chunks, content, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_and_gemini_instances_are_spoken_to_natively_and_answer_in_openai_shape() {
    let (ant, gem, oai) = (mock("ant", &[]), mock("gem", &[]), mock("oai", &[]));
    let t = tree(&ant, &gem, &oai);
    let gw = gateway(t.path());
    let c = client();

    // Anthropic: the exact request, then the translated reply.
    let (status, instance, reply) = send(&c, &gw, &body("a", false)).await;
    assert_eq!(
        (status, instance.as_str()),
        (200, "claude:sonnet"),
        "{reply}"
    );
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["choices"][0]["message"]["role"], "assistant");
    assert!(
        reply["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("ant"),
        "{reply}"
    );
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
    assert!(
        reply["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{reply}"
    );
    let sent = last(&c, &ant).await;
    // The exact body Anthropic's API reference asks for.
    assert_eq!(
        sent["body"],
        json!({"model": "claude-sonnet-4", "max_tokens": 4096, "stream": false, "system": "be brief",
               "messages": [{"role": "user", "content": "hello there"}]})
    );
    assert_eq!(sent["path"], "/v1/messages");
    assert_eq!(sent["headers"]["x-api-key"], "sk-ant-test");
    assert_eq!(sent["headers"]["anthropic-version"], "2023-06-01");
    assert!(sent["headers"].get("authorization").is_none(), "{sent}");
    assert_eq!(sent["body"]["model"], "claude-sonnet-4");
    assert_eq!(
        sent["body"]["system"], "be brief",
        "the system prompt is lifted"
    );
    assert_eq!(
        sent["body"]["messages"].as_array().map(Vec::len),
        Some(1),
        "{sent}"
    );
    assert!(
        sent["body"]["messages"][0]["content"]
            .to_string()
            .contains("hello there")
    );
    assert_eq!(sent["body"]["messages"][0]["role"], "user");
    assert_eq!(
        sent["body"]["max_tokens"], 4096,
        "Anthropic requires max_tokens"
    );

    // Gemini.
    let (status, instance, reply) = send(&c, &gw, &body("g", false)).await;
    assert_eq!((status, instance.as_str()), (200, "gem:flash"), "{reply}");
    assert_eq!(reply["object"], "chat.completion");
    assert!(
        reply["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("gem"),
        "{reply}"
    );
    let sent = last(&c, &gem).await;
    assert_eq!(
        sent["body"],
        json!({"contents": [{"role": "user", "parts": [{"text": "hello there"}]}],
               "systemInstruction": {"parts": [{"text": "be brief"}]}})
    );
    assert_eq!(
        sent["path"],
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(sent["headers"]["x-goog-api-key"], "g-key");
    assert_eq!(
        sent["body"]["systemInstruction"]["parts"][0]["text"],
        "be brief"
    );
    assert_eq!(sent["body"]["contents"][0]["role"], "user");

    // Streams from both: one OpenAI stream each, ending in [DONE].
    for (model, upstream, path) in [
        ("a", &ant, "/v1/messages"),
        (
            "g",
            &gem,
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        ),
    ] {
        let (_, chunks, content, done) = stream(&c, &gw, &body(model, true)).await;
        assert!(done, "{model}: no [DONE]");
        assert_eq!(
            chunks[0]["choices"][0]["delta"]["role"], "assistant",
            "{model}"
        );
        assert!(!content.is_empty(), "{model}: {chunks:?}");
        let finish: Vec<&Value> = (chunks.iter())
            .map(|c| &c["choices"][0]["finish_reason"])
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finish, [&json!("stop")], "{model}: one finish");
        assert!(
            chunks
                .iter()
                .all(|c| !c["choices"].as_array().unwrap().is_empty()),
            "{model}: no usage-only chunk without include_usage"
        );
        let finishing = (chunks.iter())
            .find(|c| !c["choices"][0]["finish_reason"].is_null())
            .unwrap();
        assert!(
            finishing["usage"]["completion_tokens"].as_u64().is_some(),
            "{model}: the usage rides on the finish chunk: {finishing}"
        );
        assert_eq!(last(&c, upstream).await["path"], path);

        // With include_usage the client gets OpenAI's own shape: a last chunk with no
        // choices and the usage.
        let mut with_usage = body(model, true);
        with_usage["stream_options"] = json!({"include_usage": true});
        let (_, chunks, _, done) = stream(&c, &gw, &with_usage).await;
        assert!(done, "{model}");
        let tail = chunks.last().unwrap();
        assert_eq!(tail["choices"], json!([]), "{model}: {tail}");
        assert!(
            tail["usage"]["completion_tokens"].as_u64().unwrap() > 0,
            "{model}: {tail}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_fails_over_between_anthropic_and_openai_instances_both_ways() {
    let c = client();
    // Anthropic overloaded (529) → OpenAI serves; OpenAI down (500) → Anthropic serves.
    let (ant_bad, gem, oai_ok) = (
        mock("ant", &["--status", "529"]),
        mock("gem", &[]),
        mock("oai", &[]),
    );
    let t = tree(&ant_bad, &gem, &oai_ok);
    let gw = gateway(t.path());
    let (status, instance, reply) = send(&c, &gw, &body("a_then_o", false)).await;
    assert_eq!((status, instance.as_str()), (200, "gpt:m"), "{reply}");
    let (instance, _, content, done) = stream(&c, &gw, &body("a_then_o", true)).await;
    assert_eq!(instance, "gpt:m");
    assert!(done && content.contains("oai"), "{content}");
    drop(gw);

    let (ant_ok, oai_bad) = (mock("ant", &[]), mock("oai", &["--status", "500"]));
    let t = tree(&ant_ok, &gem, &oai_bad);
    let gw = gateway(t.path());
    let (status, instance, reply) = send(&c, &gw, &body("o_then_a", false)).await;
    assert_eq!(
        (status, instance.as_str()),
        (200, "claude:sonnet"),
        "{reply}"
    );
    assert!(
        reply["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("ant")
    );
    let (instance, _, content, done) = stream(&c, &gw, &body("o_then_a", true)).await;
    assert_eq!(instance, "claude:sonnet");
    assert!(done && content.contains("ant"), "{content}");
    drop(gw);

    // An Anthropic stream that errors before its first content fails over inside the stream.
    let ant_err = mock("ant", &["--stream-error-event"]);
    let t = tree(&ant_err, &gem, &oai_ok);
    let gw = gateway(t.path());
    let (instance, chunks, content, done) = stream(&c, &gw, &body("a_then_o", true)).await;
    assert_eq!(instance, "gpt:m", "{chunks:?}");
    assert!(done && content.contains("oai"), "{content}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_clients_are_served_at_v1_messages_by_any_instance() {
    let (ant, gem, oai) = (mock("ant", &[]), mock("gem", &[]), mock("oai", &[]));
    let t = tree(&ant, &gem, &oai);
    let gw = gateway(t.path());
    let c = client();
    let ask = |model: &str, stream: bool| {
        json!({
            "model": model,
            "max_tokens": 64,
            "stream": stream,
            "system": "be brief",
            "messages": [{"role": "user", "content": "hello there"}]
        })
    };
    for (route, served_by) in [("gpt:m", "oai"), ("a", "ant"), ("g", "gem")] {
        let r = (c.post(format!("{}/v1/messages", gw.url)))
            .header("anthropic-version", "2023-06-01")
            .json(&ask(route, false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{route}");
        let m: Value = r.json().await.unwrap();
        assert_eq!(m["type"], "message", "{m}");
        assert_eq!(m["role"], "assistant");
        let text = m["content"][0]["text"].as_str().unwrap();
        assert!(text.contains(served_by), "{route}: {m}");
        assert_eq!(m["stop_reason"], "end_turn", "{m}");
        assert!(m["usage"]["output_tokens"].as_u64().unwrap() > 0, "{m}");
    }
    // The OpenAI upstream got the system prompt as a system message.
    let sent = last(&c, &oai).await;
    assert_eq!(
        sent["body"]["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );

    // Streamed: a well-formed Messages event sequence.
    let r = (c.post(format!("{}/v1/messages", gw.url)))
        .json(&ask("gpt:m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{text}");
    assert_eq!(names.last(), Some(&"message_stop"), "{text}");
    assert!(
        names.contains(&"content_block_delta") && names.contains(&"message_delta"),
        "{text}"
    );
    let deltas: String = (text.lines().filter_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert!(deltas.contains("oai"), "{text}");

    // Errors in Anthropic's shape.
    let r = (c.post(format!("{}/v1/messages", gw.url)))
        .json(&ask("nowhere", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "not_found_error", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_passes_over_models_that_cannot_serve_a_request() {
    let (small, big) = (mock("small", &[]), mock("big", &[]));
    let t = Tree::new();
    t.file(
        "_registry.toml",
        "[providers]\nup = { file = \"providers/up.toml\" }\n[task_groups]\ng = { file = \"task-groups/g.toml\" }\nonly_small = { file = \"task-groups/s.toml\" }\n",
    )
    .file(
        "providers/up.toml",
        &format!(
            "[provider]\ntype = \"openai\"\n[models.small]\nbase_url = \"{}/v1\"\ncontext_window = 300\nsupports_tools = false\nsupports_vision = false\n[models.big]\nbase_url = \"{}/v1\"\n",
            small.url, big.url
        ),
    )
    .file(
        "task-groups/g.toml",
        "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:small\"]\npriority = 1\n[task_group.echelons.e2]\nmodels = [\"up:big\"]\npriority = 2\n",
    )
    .file(
        "task-groups/s.toml",
        "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:small\"]\n",
    );
    let gw = gateway(t.path());
    let c = client();
    let ask = |extra: Value| {
        let mut b = json!({"model": "g", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let served = |(status, instance, reply): (u16, String, Value)| {
        assert_eq!(status, 200, "{reply}");
        instance
    };
    assert_eq!(served(send(&c, &gw, &ask(json!({}))).await), "up:small");
    let tools =
        json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]});
    assert_eq!(
        served(send(&c, &gw, &ask(tools.clone())).await),
        "up:big",
        "tools"
    );
    let image = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]});
    assert_eq!(served(send(&c, &gw, &ask(image)).await), "up:big", "vision");
    let long = json!({"messages": [{"role": "user", "content": "word ".repeat(400)}]});
    assert_eq!(
        served(send(&c, &gw, &ask(long)).await),
        "up:big",
        "context window"
    );
    assert_eq!(
        common::requests_seen(&c, &small).await,
        1,
        "small only got what it can serve"
    );

    // Nothing on the route can: a 400 that says why, and no upstream call.
    let mut only = ask(tools);
    only["model"] = json!("only_small");
    let (status, _, e) = send(&c, &gw, &only).await;
    assert_eq!(status, 400, "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("does not support tools"), "{message}");
    assert_eq!(common::requests_seen(&c, &small).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_deployments_and_gemini_embeddings_get_their_own_urls_and_auth() {
    let (az, gem) = (mock("az", &[]), mock("gem", &[]));
    let t = Tree::new();
    t.file(
        "_registry.toml",
        "[providers]\naz = { file = \"providers/az.toml\" }\ngem = { file = \"providers/gem.toml\" }\n",
    )
    .file(
        "providers/az.toml",
        &format!(
            "[provider]\ntype = \"azure\"\nbase_url = \"{}\"\napi_version = \"2025-01-01-preview\"\napi_key = \"az-key\"\n[models.gpt4o]\nupstream_model = \"prod-gpt4o\"\n[models.embed]\nupstream_model = \"prod-embed\"\n",
            az.url
        ),
    )
    .file(
        "providers/gem.toml",
        &format!(
            "[provider]\ntype = \"gemini\"\nbase_url = \"{}/v1beta\"\napi_key = \"g-key\"\n[models.embed]\nupstream_model = \"text-embedding-004\"\n",
            gem.url
        ),
    );
    let gw = gateway(t.path());
    let c = client();
    let (status, _, reply) = send(&c, &gw, &common::chat_body("az:gpt4o")).await;
    assert_eq!(status, 200, "{reply}");
    let sent = last(&c, &az).await;
    assert_eq!(
        sent["path"],
        "/openai/deployments/prod-gpt4o/chat/completions?api-version=2025-01-01-preview"
    );
    assert_eq!(sent["headers"]["api-key"], "az-key");
    assert!(sent["headers"].get("authorization").is_none(), "{sent}");

    for (model, upstream, path) in [
        (
            "az:embed",
            &az,
            "/openai/deployments/prod-embed/embeddings?api-version=2025-01-01-preview",
        ),
        (
            "gem:embed",
            &gem,
            "/v1beta/models/text-embedding-004:batchEmbedContents",
        ),
    ] {
        let r = (c.post(format!("{}/v1/embeddings", gw.url)))
            .json(&json!({"model": model, "input": ["one", "two"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{model}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "list", "{v}");
        assert_eq!(v["data"].as_array().map(Vec::len), Some(2), "{model}: {v}");
        assert!(
            v["data"][1]["embedding"]
                .as_array()
                .is_some_and(|e| !e.is_empty()),
            "{v}"
        );
        assert_eq!(last(&c, upstream).await["path"], path);
    }
}
