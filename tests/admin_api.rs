//! End to end: the admin API's OpenAPI document against the real binary. Every documented
//! operation exists (no routing 404 or 405), answers 401 without the token, and answers JSON
//! in the documented error shape when it refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{TOKEN, Tree, client, gateway, mock};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_admin_operation_exists_and_needs_the_token() {
    let up = mock("up", &[]);
    let t = Tree::new();
    t.file(
        "_registry.toml",
        &format!("[server]\nadmin_token = \"{TOKEN}\"\n[providers]\nup = {{ file = \"providers/up.toml\" }}\n"),
    )
    .file(
        "providers/up.toml",
        &format!("[provider]\ntype = \"openai\"\nbase_url = \"{}/v1\"\n[models.m]\n", up.url),
    );
    let gw = gateway(t.path());
    let c = client();
    let doc: Value = (c.get(format!("{}/admin/openapi.json", gw.url)))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            // Unknown names: nothing is changed by calling a mutation on them.
            let url = format!(
                "{}{}",
                gw.url,
                path.replace("{name}", "nonexistent")
                    .replace("{id}", "nonexistent")
            );
            let m: reqwest::Method = method.to_uppercase().parse().unwrap();
            let with_body = |req: reqwest::RequestBuilder| {
                if op.get("requestBody").is_some() {
                    req.header("content-type", "application/json").body("{}")
                } else {
                    req
                }
            };
            let r = with_body(c.request(m.clone(), &url)).send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} without a token");
            let r = with_body(c.request(m, &url).bearer_auth(TOKEN))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_ne!(status, 405, "{method} {path}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !message.starts_with("no endpoint"),
                "{method} {path} is not routed: {body}"
            );
            if status >= 400 {
                assert!(body["error"]["type"].is_string(), "{method} {path}: {body}");
            }
            let documented = op["responses"].get(status.to_string()).is_some();
            let generic = status == 422; // axum's own answer to a body missing fields
            assert!(
                documented || generic,
                "{method} {path} answered {status}, not documented: {body}"
            );
        }
    }
    assert!(operations >= 19, "{operations}");

    // The document itself is valid OpenAPI 3.1 (the validator scripts/test-deps.sh installs).
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), doc.to_string()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .output()
        .expect("python3 (scripts/test-deps.sh installs openapi-spec-validator)");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !said.contains("No module named"),
        "openapi-spec-validator is missing: run scripts/test-deps.sh\n{said}"
    );
    assert!(
        out.status.success(),
        "/admin/openapi.json is not valid OpenAPI:\n{said}"
    );
    assert!(said.contains("OK"), "{said}");
}

/// A pool `p` (task group `g`, one echelon) over the given mocks, round robin.
fn pool_tree(mocks: &[(&str, &common::Proc)]) -> Tree {
    let t = Tree::new();
    let mut provider = String::from(
        "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.m]\nprice = { input_per_1k = 1.0, output_per_1k = 2.0 }\n",
    );
    for (id, m) in mocks {
        provider.push_str(&format!(
            "[[models.m.instances]]\nid = \"{id}\"\nbase_url = \"{}/v1\"\ntimeout = 2\n",
            m.url
        ));
    }
    t.file("providers/up.toml", &provider)
        .file("task-groups/g.toml", "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\n")
        .file(
            "pools/p.toml",
            "[pool]\ntask_groups = [\"g\"]\n[pool.rotation_strategy]\ntype = \"round_robin\"\n[pool.health_check]\ninterval = 60\nfailure_threshold = 2\nrecovery_time = 60\n",
        )
        .file(
            "_registry.toml",
            &format!("[server]\nadmin_token = \"{TOKEN}\"\n[providers]\nup = {{ file = \"providers/up.toml\" }}\n[pools]\np = {{ file = \"pools/p.toml\" }}\n[task_groups]\ng = {{ file = \"task-groups/g.toml\" }}\n"),
        );
    t
}

fn by_id<'a>(status: &'a Value, id: &str) -> &'a Value {
    (status["instances"].as_array().unwrap().iter())
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no instance {id} in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_sums_up_the_traffic_sent_and_says_why_an_instance_is_out() {
    let (a, b) = (mock("a", &[]), mock("b", &[]));
    let t = pool_tree(&[("a", &a), ("b", &b)]);
    let gw = gateway(t.path());
    let c = client();
    let (mut prompt, mut completion) = (0, 0);
    for _ in 0..10 {
        let r = c
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&common::chat_body("p"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        prompt += body["usage"]["prompt_tokens"].as_u64().unwrap();
        completion += body["usage"]["completion_tokens"].as_u64().unwrap();
    }
    let (code, s) = common::admin(&c, &gw, "GET", "/admin/status", None).await;
    assert_eq!(code, 200, "{s}");
    let totals = &s["totals"];
    assert_eq!(totals["requests"], 10, "{s}");
    assert_eq!(totals["failures"], 0);
    assert_eq!(totals["rpm"], 10);
    assert_eq!(totals["in_flight"], 0);
    assert_eq!(totals["prompt_tokens"], prompt);
    assert_eq!(totals["completion_tokens"], completion);
    let cost = (prompt as f64 * 1.0 + completion as f64 * 2.0) / 1000.0;
    assert!(
        (totals["cost"].as_f64().unwrap() - cost).abs() < 1e-6,
        "{totals} vs {cost}"
    );
    for id in ["a", "b"] {
        let i = by_id(&s, id);
        assert_eq!(i["state"], "healthy", "{i}");
        assert_eq!(i["reason"], Value::Null);
        assert_eq!(i["requests"], 5, "round robin: {i}");
        assert_eq!(i["rpm"], 5);
        assert_eq!(i["error_rate"], 0.0);
        let (p50, p95) = (i["p50_ms"].as_f64().unwrap(), i["p95_ms"].as_f64().unwrap());
        assert!(0.0 < p50 && p50 <= p95, "{i}");
    }
    assert_eq!(s["pools"][0]["name"], "p");
    assert_eq!(s["pools"][0]["strategy"], "round_robin");
    assert_eq!(s["pools"][0]["members"], serde_json::json!(["a", "b"]));
    assert_eq!(s["task_groups"][0]["name"], "g");
    assert_eq!(s["task_groups"][0]["breaker"], "closed");
    assert_eq!(s["task_groups"][0]["echelons"][0]["name"], "g.e1");
    assert_eq!(s["routes"]["p"], "pool");
    assert!(s["strategies"].as_array().unwrap().contains(&"p2c".into()));

    // b dies; two failed attempts (the pool's failure_threshold) eject it, and the next
    // reading says so, with the reason.
    drop(b);
    for _ in 0..4 {
        let r = c
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&common::chat_body("p"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a serves what b cannot");
    }
    let (_, s) = common::admin(&c, &gw, "GET", "/admin/status", None).await;
    let b = by_id(&s, "b");
    assert_eq!(b["state"], "ejected", "{b}");
    assert!(b["reason"].as_str().unwrap().starts_with("ejected"), "{b}");
    assert_eq!(b["failures"], 2, "{b}");
    assert_eq!(s["totals"]["healthy"], 1);
    let events = s["recent_events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["subject"] == "b"), "{s}");

    // A strategy switch shows in the next reading.
    let (code, _) = common::admin(
        &c,
        &gw,
        "PUT",
        "/admin/pools/p/strategy",
        Some(serde_json::json!({"strategy": "least_connections"})),
    )
    .await;
    assert_eq!(code, 200);
    let (_, s) = common::admin(&c, &gw, "GET", "/admin/status", None).await;
    assert_eq!(s["pools"][0]["strategy"], "least_connections");
}
