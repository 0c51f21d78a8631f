//! End to end: load balancing through the real binary, and runtime changes through the admin
//! API while traffic flows. Requests are counted at the mock upstreams.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{Load, Proc, TOKEN, Tree, admin, chat_body, client, gateway, mock, requests_seen};
use serde_json::{Value, json};

/// Provider `up`, model `m` served by `mocks` (ids = mock names), task group `g` (one echelon),
/// pool `p` over `g` with `strategy`, wrapper `w` → `p`, and an admin token.
fn tree(mocks: &[(&str, &Proc)], strategy: &str) -> Tree {
    let t = Tree::new();
    let mut provider = String::from(
        "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.m]\n",
    );
    for (id, p) in mocks {
        provider.push_str(&format!(
            "[[models.m.instances]]\nid = \"{id}\"\nbase_url = \"{}/v1\"\n",
            p.url
        ));
    }
    t.file("providers/up.toml", &provider)
        .file(
            "task-groups/g.toml",
            "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\nmax_retries = 3\n",
        )
        .file(
            "pools/p.toml",
            &format!("[pool]\ntask_groups = [\"g\"]\n[pool.rotation_strategy]\ntype = \"{strategy}\"\n"),
        )
        .file("wrappers/w.toml", "[wrappers]\nw = { type = \"pool\", pool_name = \"p\" }\n")
        .file(
            "_registry.toml",
            &format!(
                "[server]\nadmin_token = \"{TOKEN}\"\n[providers]\nup = {{ file = \"providers/up.toml\" }}\n[pools]\np = {{ file = \"pools/p.toml\" }}\n[task_groups]\ng = {{ file = \"task-groups/g.toml\" }}\n[wrappers]\nw = {{ file = \"wrappers/w.toml\" }}\n"
            ),
        );
    t
}

/// Switch pool `p` to `strategy` through the admin API.
async fn switch(c: &reqwest::Client, gw: &Proc, strategy: &str) {
    let body = Some(json!({ "strategy": strategy }));
    let (status, reply) = admin(c, gw, "PUT", "/admin/pools/p/strategy", body).await;
    assert_eq!(status, 200, "{reply}");
}

async fn chat(c: &reqwest::Client, gw: &Proc, model: &str) -> u16 {
    c.post(format!("{}/v1/chat/completions", gw.url))
        .json(&chat_body(model))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn counts(c: &reqwest::Client, mocks: &[Proc]) -> Vec<u64> {
    let mut out = Vec::new();
    for m in mocks {
        out.push(requests_seen(c, m).await);
    }
    out
}

/// Coefficient of variation (standard deviation / mean) of `xs`.
fn cv(xs: &[u64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<u64>() as f64 / n;
    let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    var.sqrt() / mean
}

#[tokio::test]
async fn the_admin_api_needs_its_token_and_shows_each_members_live_statistics() {
    let mocks = [mock("a", &[]), mock("b", &[])];
    let t = tree(&[("a", &mocks[0]), ("b", &mocks[1])], "round_robin");
    let gw = gateway(t.path());
    let c = client();
    for _ in 0..4 {
        assert_eq!(chat(&c, &gw, "w").await, 200);
    }
    let anonymous = c
        .get(format!("{}/admin/pools/p", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_admin_token");

    let (status, pool) = admin(&c, &gw, "GET", "/admin/pools/p", None).await;
    assert_eq!(status, 200, "{pool}");
    assert_eq!(pool["strategy"], "round_robin");
    let members = pool["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    for m in members {
        // Four requests, exact rotation: two each, all successes, with usage counted.
        assert_eq!(m["requests"], 2, "{m}");
        assert_eq!(m["successes"], 2, "{m}");
        assert_eq!(m["in_flight"], 0, "{m}");
        assert!(m["completion_tokens"].as_u64().unwrap() > 0, "{m}");
        assert_eq!(m["last_minute"]["requests"], 2, "{m}");
        assert!(m["latency_ewma_ms"].as_f64().unwrap() > 0.0, "{m}");
    }
    let (status, listed) = admin(&c, &gw, "GET", "/admin/pools", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in ["p", "g.e1", "up:m", "a", "b"] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let (status, missing) = admin(&c, &gw, "GET", "/admin/pools/nope", None).await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test]
async fn bad_admin_changes_are_refused_with_the_reason_and_change_nothing() {
    let a = mock("a", &[]);
    let t = tree(&[("a", &a)], "round_robin");
    let gw = gateway(t.path());
    let c = client();
    let cases = [
        (
            "PUT",
            "/admin/pools/p/strategy",
            json!({"strategy": "fastest"}),
            400,
            "unknown strategy",
        ),
        (
            "PUT",
            "/admin/pools/zz/strategy",
            json!({"strategy": "p2c"}),
            404,
            "no tier",
        ),
        (
            "POST",
            "/admin/instances",
            json!({"id": "x", "model": "nope:m", "base_url": "http://127.0.0.1:9/v1"}),
            409,
            "admin API:instances.x.model",
        ),
        (
            "POST",
            "/admin/instances",
            json!({"id": "x", "model": "up:m", "base_url": "ftp://h"}),
            409,
            "instances.x.base_url",
        ),
        (
            "POST",
            "/admin/instances",
            json!({"id": "a", "model": "up:m", "base_url": "http://127.0.0.1:9/v1"}),
            409,
            "already exists",
        ),
        (
            "POST",
            "/admin/instances",
            json!({"id": "x", "modle": "up:m"}),
            400,
            "unknown field",
        ),
        (
            "DELETE",
            "/admin/instances/zz",
            json!(null),
            404,
            "no instance",
        ),
        // The last instance of the only echelon: the group would be empty.
        (
            "DELETE",
            "/admin/instances/a",
            json!(null),
            409,
            "task-groups/g.toml:3: task_group.echelons.e1.models[0]",
        ),
        (
            "PUT",
            "/admin/instances/a/weight",
            json!({"weight": 0}),
            409,
            "must be at least 1",
        ),
    ];
    for (method, path, body, status, needle) in cases {
        let body = (!body.is_null()).then_some(body);
        let (got, reply) = admin(&c, &gw, method, path, body).await;
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{method} {path}: {reply}");
        assert!(message.contains(needle), "{method} {path}: {message}");
    }
    // Nothing changed: still one instance, round robin, serving.
    let (_, pool) = admin(&c, &gw, "GET", "/admin/pools/p", None).await;
    assert_eq!(pool["strategy"], "round_robin");
    assert_eq!(pool["members"].as_array().unwrap().len(), 1);
    assert_eq!(chat(&c, &gw, "w").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strategy_switches_and_instance_changes_under_load_lose_no_request() {
    let mocks = [
        mock("a", &["--latency-ms", "2"]),
        mock("b", &["--latency-ms", "2"]),
        mock("c", &["--latency-ms", "2"]),
    ];
    let d = mock("d", &["--latency-ms", "2"]);
    let t = tree(
        &[("a", &mocks[0]), ("b", &mocks[1]), ("c", &mocks[2])],
        "round_robin",
    );
    let gw = gateway(t.path());
    let c = client();
    let load = Load::start(&gw, "w", 16);
    load.advance(50).await;

    for strategy in [
        "p2c",
        "least_connections",
        "weighted",
        "random",
        "latency",
        "score",
        "cost",
        "round_robin",
    ] {
        switch(&c, &gw, strategy).await;
        load.advance(30).await;
        let (_, pool) = admin(&c, &gw, "GET", "/admin/pools/p", None).await;
        assert_eq!(pool["strategy"], strategy);
    }

    // Register d into model up:m: it joins the pool and takes traffic.
    let (status, reply) = admin(
        &c,
        &gw,
        "POST",
        "/admin/instances",
        Some(json!({
            "id": "d", "model": "up:m", "base_url": format!("{}/v1", d.url), "weight": 2
        })),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["state"], "active");
    for polls in 0.. {
        if requests_seen(&c, &d).await > 0 {
            break;
        }
        assert!(polls < 1000, "d never got traffic");
        load.advance(10).await;
    }
    let (_, pool) = admin(&c, &gw, "GET", "/admin/pools/p", None).await;
    assert_eq!(pool["members"].as_array().unwrap().len(), 4);

    // Change a weight while traffic flows.
    let (status, _) = admin(
        &c,
        &gw,
        "PUT",
        "/admin/instances/b/weight",
        Some(json!({"weight": 5})),
    )
    .await;
    assert_eq!(status, 200);

    // Deregister a: it drains, then is gone, and receives nothing after that.
    let (status, reply) = admin(&c, &gw, "DELETE", "/admin/instances/a", None).await;
    assert_eq!(status, 200, "{reply}");
    assert!(
        ["draining", "drained"].contains(&reply["state"].as_str().unwrap()),
        "{reply}"
    );
    for polls in 0.. {
        let (status, _) = admin(&c, &gw, "GET", "/admin/instances/a", None).await;
        if status == 404 {
            break;
        }
        assert!(polls < 5000, "a never finished draining");
        load.advance(1).await;
    }
    let seen_by_a = requests_seen(&c, &mocks[0]).await;
    load.advance(300).await;
    assert_eq!(
        requests_seen(&c, &mocks[0]).await,
        seen_by_a,
        "a got requests after it drained"
    );
    assert!(requests_seen(&c, &d).await > 1);

    let (done, failed) = load.stop().await;
    assert_eq!(failed, 0, "{failed} of {done} requests failed");
    assert!(done >= 600, "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_spread_evenly_under_round_robin_weighted_and_p2c() {
    let mocks: Vec<Proc> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| mock(n, &["--latency-ms", "3"]))
        .collect();
    let named: Vec<(&str, &Proc)> = ["a", "b", "c", "d"].into_iter().zip(mocks.iter()).collect();
    let t = tree(&named, "round_robin");
    let gw = gateway(t.path());
    let c = client();
    for strategy in ["round_robin", "weighted", "p2c"] {
        switch(&c, &gw, strategy).await;
        let before = counts(&c, &mocks).await;
        let load = Load::start(&gw, "w", 64);
        load.advance(2000).await;
        let (done, failed) = load.stop().await;
        assert_eq!(failed, 0);
        let after = counts(&c, &mocks).await;
        let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        assert_eq!(
            delta.iter().sum::<u64>(),
            done,
            "{strategy}: every request counted once"
        );
        let spread = cv(&delta);
        // Seed 000: load variance across equal instances under 10 %.
        assert!(
            spread < 0.10,
            "{strategy}: {delta:?}, coefficient of variation {spread:.3}"
        );
        eprintln!("{strategy}: {delta:?} cv {spread:.4}");
    }
}
