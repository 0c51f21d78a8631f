//! End to end: `/metrics` after scripted traffic through the real binary; every counter and
//! histogram count is checked against what was sent and what the upstreams saw.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{Tree, chat_body, client, gateway, mock, requests_seen};
use serde_json::Value;

/// The value of the sample of `name` whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&str> = (text.lines())
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}\n{text}");
    found[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_was_sent() {
    let (ok, bad, lim) = (
        mock("ok", &[]),
        mock("bad", &["--status", "500"]),
        mock("lim", &[]),
    );
    let t = Tree::new();
    t.file(
        "_registry.toml",
        "[providers]\nup = { file = \"providers/up.toml\" }\n[task_groups]\ng = { file = \"task-groups/g.toml\" }\nb = { file = \"task-groups/b.toml\" }\nl = { file = \"task-groups/l.toml\" }\n",
    )
    .file(
        "providers/up.toml",
        &format!(
            "[provider]\ntype = \"openai\"\n[models.m]\nbase_url = \"{}/v1\"\nprice = {{ input_per_1k = 1.0, output_per_1k = 2.0 }}\n[models.dead]\nbase_url = \"{}/v1\"\n[models.lim]\nbase_url = \"{}/v1\"\nrpm_limit = 3\n",
            ok.url, bad.url, lim.url
        ),
    )
    .file("task-groups/g.toml", "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\n")
    .file("task-groups/b.toml", "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:dead\"]\n")
    .file("task-groups/l.toml", "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:lim\"]\n");
    let gw = gateway(t.path());
    let c = client();
    let chat = |body: Value| {
        let c = c.clone();
        let url = format!("{}/v1/chat/completions", gw.url);
        async move { c.post(url).json(&body).send().await.unwrap() }
    };
    let (mut prompt, mut completion) = (0, 0);
    for _ in 0..5 {
        let r = chat(chat_body("g")).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        prompt += v["usage"]["prompt_tokens"].as_u64().unwrap();
        completion += v["usage"]["completion_tokens"].as_u64().unwrap();
    }
    let mut streamed = chat_body("g");
    streamed["stream"] = serde_json::json!(true);
    let text = chat(streamed).await.text().await.unwrap();
    assert!(text.contains("[DONE]"));
    for _ in 0..2 {
        assert_eq!(chat(chat_body("b")).await.status(), 502);
    }

    // A named client's spend.
    let mut alice = 0;
    for _ in 0..2 {
        let r = (c.post(format!("{}/v1/chat/completions", gw.url)))
            .header("x-switchyard-client", "alice")
            .json(&chat_body("g"))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        alice += v["usage"]["prompt_tokens"].as_u64().unwrap();
        prompt += v["usage"]["prompt_tokens"].as_u64().unwrap();
        completion += v["usage"]["completion_tokens"].as_u64().unwrap();
    }

    // Three requests a minute: two of five are refused by the instance's limiter.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(chat(chat_body("l")).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);

    let r = c.get(format!("{}/metrics", gw.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let m = r.text().await.unwrap();
    assert!(
        m.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );

    let ok_id = [("instance", "up:m")];
    assert_eq!(
        sample(&m, "switchyard_instance_requests_total", &ok_id),
        8.0
    );
    assert_eq!(
        sample(&m, "switchyard_instance_successes_total", &ok_id),
        8.0
    );
    assert_eq!(requests_seen(&c, &ok).await, 8);
    let alice_k = [("client", "alice"), ("kind", "prompt")];
    assert_eq!(
        sample(&m, "switchyard_client_tokens_total", &alice_k),
        alice as f64
    );
    let bad_attempts = requests_seen(&c, &bad).await as f64;
    assert!(bad_attempts >= 2.0);
    let dead = [("instance", "up:dead"), ("class", "server")];
    assert_eq!(
        sample(&m, "switchyard_instance_failures_total", &dead),
        bad_attempts
    );
    let prompt_k = [("instance", "up:m"), ("kind", "prompt")];
    let completion_k = [("instance", "up:m"), ("kind", "completion")];
    // The stream reported no usage (the client did not ask for it): only the five replies.
    assert_eq!(
        sample(&m, "switchyard_instance_tokens_total", &prompt_k),
        prompt as f64
    );
    assert_eq!(
        sample(&m, "switchyard_instance_tokens_total", &completion_k),
        completion as f64
    );

    // Histograms: one observation per attempt, streams' TTFT once.
    assert_eq!(
        sample(&m, "switchyard_instance_latency_seconds_count", &ok_id),
        8.0
    );
    let inf = [("instance", "up:m"), ("le", "+Inf")];
    assert_eq!(
        sample(&m, "switchyard_instance_latency_seconds_bucket", &inf),
        8.0
    );
    assert_eq!(
        sample(&m, "switchyard_instance_ttft_seconds_count", &ok_id),
        1.0
    );

    let served = [("route", "g"), ("step", "primary")];
    assert_eq!(sample(&m, "switchyard_route_served_total", &served), 8.0);
    assert_eq!(
        sample(&m, "switchyard_route_failed_total", &[("route", "b")]),
        2.0
    );
    let healthy = [("instance", "up:m"), ("state", "healthy")];
    assert_eq!(sample(&m, "switchyard_instance_state", &healthy), 1.0);
    assert_eq!(sample(&m, "switchyard_config_version", &[]), 1.0);
    assert_eq!(sample(&m, "switchyard_instance_in_flight", &ok_id), 0.0);
    // Spend by route and by instance, at the configured prices.
    let route_prompt = [("route", "g"), ("kind", "prompt")];
    let route_completion = [("route", "g"), ("kind", "completion")];
    assert_eq!(
        sample(&m, "switchyard_route_tokens_total", &route_prompt),
        prompt as f64
    );
    assert_eq!(
        sample(&m, "switchyard_route_tokens_total", &route_completion),
        completion as f64
    );
    let cost = (prompt as f64 + 2.0 * completion as f64) / 1000.0;
    let route_cost = sample(&m, "switchyard_route_cost_total", &[("route", "g")]);
    assert!((route_cost - cost).abs() < 1e-6, "{route_cost} vs {cost}");
    let instance_cost = sample(&m, "switchyard_instance_cost_total", &ok_id);
    assert!(
        (instance_cost - cost).abs() < 1e-6,
        "{instance_cost} vs {cost}"
    );
    let lim = [("level", "instance"), ("limiter", "instance up:lim")];
    assert_eq!(sample(&m, "switchyard_limit_admitted_total", &lim), 3.0);
    assert_eq!(sample(&m, "switchyard_limit_refused_total", &lim), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_metrics_false_turns_the_endpoint_off() {
    let up = mock("up", &[]);
    let t = Tree::new();
    t.file(
        "_registry.toml",
        "[global]\nenable_metrics = false\n[providers]\nup = { file = \"providers/up.toml\" }\n",
    )
    .file(
        "providers/up.toml",
        &format!(
            "[provider]\ntype = \"openai\"\nbase_url = \"{}/v1\"\n[models.m]\n",
            up.url
        ),
    );
    let gw = gateway(t.path());
    let r = client()
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampler_keeps_each_instances_totals_every_metrics_interval() {
    let up = mock("up", &[]);
    let t = Tree::new();
    t.file(
        "_registry.toml",
        &format!(
            "[server]\nadmin_token = \"{}\"\n[global]\nmetrics_interval = 0.05\n[providers]\nup = {{ file = \"providers/up.toml\" }}\n",
            common::TOKEN
        ),
    )
    .file(
        "providers/up.toml",
        &format!("[provider]\ntype = \"openai\"\nbase_url = \"{}/v1\"\n[models.m]\n", up.url),
    );
    let gw = gateway(t.path());
    let c = client();
    for _ in 0..3 {
        let r = (c.post(format!("{}/v1/chat/completions", gw.url)))
            .json(&chat_body("up:m"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Wait (bounded) until a sample has seen all three.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let points = loop {
        let (status, v) =
            common::admin(&c, &gw, "GET", "/admin/instances/up:m/history", None).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["interval_s"], 0.05);
        let points = v["points"].as_array().unwrap().clone();
        if points.last().is_some_and(|p| p["requests"] == 3) {
            break points;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no sample saw the requests: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // Totals only grow, and time moves forward.
    for pair in points.windows(2) {
        assert!(pair[0]["requests"].as_u64() <= pair[1]["requests"].as_u64());
        assert!(pair[0]["at_ms"].as_u64() <= pair[1]["at_ms"].as_u64());
    }
    assert!(
        points.last().unwrap()["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let (status, _) = common::admin(&c, &gw, "GET", "/admin/instances/nope/history", None).await;
    assert_eq!(status, 404);
}
