//! End to end: the fallback engine through the real binary, with mock upstreams (separate
//! processes) failing in scripted ways. The exact sequence of instances tried is read from the
//! `x-switchyard-trace` response header (or the error body's `attempts`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::{Duration, Instant};

use common::{Proc, TOKEN, Tree, admin, chat_body, client, dead_port, gateway, mock};
use serde_json::{Value, json};

/// `[models.<model>]` sections with instances `(id, base url)`.
fn models(models: &[(&str, &[(&str, String)])]) -> String {
    let mut s = String::new();
    for (model, instances) in models {
        s.push_str(&format!("[models.{model}]\n"));
        for (id, url) in *instances {
            s.push_str(&format!(
                "[[models.{model}.instances]]\nid = \"{id}\"\nbase_url = \"{url}/v1\"\ntimeout = 2\n"
            ));
        }
    }
    s
}

/// A provider file with `models`.
fn provider(list: &[(&str, &[(&str, String)])]) -> String {
    "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n".to_owned()
        + &models(list)
}

/// Mocks a (failing with 500), b and c, as models m1, m2 and m3 of one provider.
fn abc() -> ([Proc; 3], String) {
    let (a, b, c) = (mock("a", FAIL), mock("b", &[]), mock("c", &[]));
    let p = provider(&[
        ("m1", &[("a", up(&a))]),
        ("m2", &[("b", up(&b))]),
        ("m3", &[("c", up(&c))]),
    ]);
    ([a, b, c], p)
}

fn up(m: &Proc) -> String {
    m.url.clone()
}

fn down() -> String {
    format!("http://127.0.0.1:{}", dead_port())
}

/// A tree: `providers` (name, file text), `groups` (name, file text), `pools` (name, text),
/// extra registry text.
fn tree(
    providers: &[(&str, String)],
    groups: &[(&str, &str)],
    pools: &[(&str, &str)],
    extra: &str,
) -> Tree {
    let t = Tree::new();
    let mut reg = format!("[server]\nadmin_token = \"{TOKEN}\"\n{extra}\n[providers]\n");
    for (name, text) in providers {
        t.file(&format!("providers/{name}.toml"), text);
        reg.push_str(&format!(
            "{name} = {{ file = \"providers/{name}.toml\" }}\n"
        ));
    }
    reg.push_str("[task_groups]\n");
    for (name, text) in groups {
        t.file(&format!("task-groups/{name}.toml"), text);
        reg.push_str(&format!(
            "{name} = {{ file = \"task-groups/{name}.toml\" }}\n"
        ));
    }
    reg.push_str("[pools]\n");
    for (name, text) in pools {
        t.file(&format!("pools/{name}.toml"), text);
        reg.push_str(&format!("{name} = {{ file = \"pools/{name}.toml\" }}\n"));
    }
    t.file("_registry.toml", &reg);
    t
}

/// Send a traced chat request for `model` (with extra headers) and return the status, the
/// `tier/instance=outcome` path of the trace (latencies stripped) and the body.
async fn traced(gw: &Proc, model: &str, headers: &[(&str, &str)]) -> (u16, Vec<String>, Value) {
    let c = client();
    let mut req = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-switchyard-trace", "1")
        .json(&chat_body(model));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let header = r
        .headers()
        .get("x-switchyard-trace")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let path = match header {
        Some(h) => h
            .split("; ")
            .map(|e| e.split('(').next().unwrap().to_owned())
            .collect(),
        None => body["error"]["attempts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        format!(
                            "{}/{}={}",
                            x["tier"].as_str().unwrap(),
                            x["instance"].as_str().unwrap(),
                            x["outcome"].as_str().unwrap()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    (status, path, body)
}

const FAIL: &[&str] = &["--status", "500"];

#[tokio::test]
async fn echelon_down_walks_the_echelons_by_priority_then_fallback_groups() {
    let (a, b, c) = (mock("a", FAIL), mock("b", FAIL), mock("c", &[]));
    let p = provider(&[
        ("m1", &[("a", up(&a))]),
        ("m2", &[("b", up(&b))]),
        ("m3", &[("c", up(&c))]),
    ]);
    let g = "[task_group]\nfallback_strategy = \"echelon_down\"\n[task_group.fallback]\nfallback_groups = [\"h.e1\"]\n[task_group.echelons.second]\nmodels = [\"up:m2\"]\npriority = 2\n[task_group.echelons.first]\nmodels = [\"up:m1\"]\npriority = 1\n";
    let h = "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m3\"]\n";
    let t = tree(&[("up", p)], &[("g", g), ("h", h)], &[], "");
    let gw = gateway(t.path());
    let (status, path, _) = traced(&gw, "g", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(path, ["g.first/a=server", "g.second/b=server", "h.e1/c=ok"]);
    // The echelon route: that echelon, then the group's fallback_groups (not `second`).
    let (_, path, _) = traced(&gw, "g.first", &[]).await;
    assert_eq!(path, ["g.first/a=server", "h.e1/c=ok"]);
    // /admin/fallbacks: what served each route, and the requests that fell back.
    let (status, fb) = admin(&client(), &gw, "GET", "/admin/fallbacks", None).await;
    assert_eq!(status, 200, "{fb}");
    let route = fb["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "g")
        .unwrap();
    assert_eq!(route["served_by"]["group_fallback"], 1, "{route}");
    assert_eq!(route["failed"], 0, "{route}");
    let recent = fb["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 2, "{fb}");
    assert_eq!(recent[0]["route"], "g");
    assert_eq!(recent[0]["served_by"], "h.e1");
    assert_eq!(recent[0]["step"], "group_fallback");
    assert_eq!(recent[0]["attempts"], 3);
}

#[tokio::test]
async fn group_fallback_skips_the_lower_echelons_and_max_attempts_bounds_the_walk() {
    let (_mocks, p) = abc();
    let g = "[task_group]\nfallback_strategy = \"group_fallback\"\n[task_group.fallback]\nfallback_groups = [\"h\"]\n[task_group.echelons.e1]\nmodels = [\"up:m1\"]\npriority = 1\n[task_group.echelons.e2]\nmodels = [\"up:m2\"]\npriority = 2\n";
    let h = "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m3\"]\n";
    // k: three echelons all down but the last, and max_attempts = 2.
    let k = "[task_group]\n[task_group.fallback]\nmax_attempts = 2\n[task_group.echelons.e1]\nmodels = [\"up:m1\"]\npriority = 1\n[task_group.echelons.e2]\nmodels = [\"up:m1b\"]\npriority = 2\n[task_group.echelons.e3]\nmodels = [\"up:m3\"]\npriority = 3\n";
    let ab = mock("ab", FAIL);
    let p = p + &models(&[("m1b", &[("ab", up(&ab))])]);
    let t = tree(&[("up", p)], &[("g", g), ("h", h), ("k", k)], &[], "");
    let gw = gateway(t.path());
    let (status, path, _) = traced(&gw, "g", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(path, ["g.e1/a=server", "h.e1/c=ok"]);
    let (status, path, body) = traced(&gw, "k", &[]).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(path, ["k.e1/a=server", "k.e2/ab=server"]);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_attempts"),
        "{body}"
    );
}

#[tokio::test]
async fn model_rotate_moves_to_another_model_where_echelon_down_tries_the_same_model_again() {
    let (a1, a2, b) = (mock("a1", FAIL), mock("a2", &[]), mock("b", &[]));
    let p = provider(&[
        ("m1", &[("a1", up(&a1)), ("a2", up(&a2))]),
        ("m2", &[("b", up(&b))]),
    ]);
    let group = |strategy: &str| {
        format!(
            "[task_group]\nfallback_strategy = \"{strategy}\"\n[task_group.echelons.e1]\nmodels = [\"up:m1\", \"up:m2\"]\n"
        )
    };
    let (rotate, down_) = (group("model_rotate"), group("echelon_down"));
    let t = tree(&[("up", p)], &[("r", &rotate), ("d", &down_)], &[], "");
    let gw = gateway(t.path());
    // Round robin starts at a1 in both.
    let (_, path, _) = traced(&gw, "r", &[]).await;
    assert_eq!(path, ["r.e1/a1=server", "r.e1/b=ok"]);
    let (_, path, _) = traced(&gw, "d", &[]).await;
    assert_eq!(path, ["d.e1/a1=server", "d.e1/a2=ok"]);
}

#[tokio::test]
async fn provider_failover_follows_the_provider_chain_then_the_same_model_elsewhere() {
    let (p1a, p1b, q, r) = (
        mock("p1a", FAIL),
        mock("p1b", &[]),
        mock("q", &[]),
        mock("r", &[]),
    );
    let (x2, x3) = (mock("x2", &[]), mock("x3", FAIL));
    let p1 = provider(&[("x", &[("p1a", up(&p1a)), ("p1b", up(&p1b))])]);
    let p2 = provider(&[("y", &[("q", up(&q))]), ("x", &[("x2", up(&x2))])]);
    let p3 = provider(&[("z", &[("r", up(&r))])]);
    let g = "[task_group]\nfallback_strategy = \"provider_failover\"\n[task_group.echelons.e1]\nmodels = [\"p1:x\", \"p2:y\", \"p3:z\"]\n";
    // Only p1's x in the echelon: after it fails entirely, x at another provider.
    let solo = mock("solo", FAIL);
    let p4 = provider(&[("x", &[("solo", up(&solo))])]);
    let s = "[task_group]\nfallback_strategy = \"provider_failover\"\n[task_group.echelons.e1]\nmodels = [\"p4:x\"]\n";
    let t = tree(
        &[("p1", p1), ("p2", p2), ("p3", p3), ("p4", p4)],
        &[("g", g), ("s", s)],
        &[],
        "[global.fallback]\nprovider_chain = [\"p1\", \"p3\", \"p2\"]\n",
    );
    let gw = gateway(t.path());
    // p1a fails: not p1b (same provider), and p3 before p2 (the chain).
    let (status, path, _) = traced(&gw, "g", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(path, ["g.e1/p1a=server", "g.e1/r=ok"]);
    let (status, path, _) = traced(&gw, "s", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(path[0], "s.e1/solo=server");
    assert!(
        path[1..].iter().all(|p| p.starts_with("s.e1+providers/")),
        "{path:?}"
    );
    assert!(path.last().unwrap().ends_with("=ok"), "{path:?}");
    drop(x3);
}

#[tokio::test]
async fn pools_rotate_instances_for_max_instance_attempts_rounds_then_fall_back_to_fallback_pools()
{
    let (a, b, c) = (mock("a", FAIL), mock("b", FAIL), mock("c", &[]));
    let p = provider(&[
        ("m", &[("a", up(&a)), ("b", up(&b))]),
        ("n", &[("c", up(&c))]),
    ]);
    let g = "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\n";
    let h = "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:n\"]\n";
    let main = "[pool]\ntask_groups = [\"g\"]\n[pool.health_check]\nfailure_threshold = 50\n[pool.fallback]\nstrategy = \"pool_fallback\"\nmax_instance_attempts = 2\nfallback_pools = [\"spare\"]\n";
    let spare = "[pool]\ntask_groups = [\"h\"]\n[pool.fallback]\nfallback_pools = [\"main\"]\n";
    let t = tree(
        &[("up", p)],
        &[("g", g), ("h", h)],
        &[("main", main), ("spare", spare)],
        "",
    );
    let gw = gateway(t.path());
    let (status, path, _) = traced(&gw, "main", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        path,
        [
            "main/a=server",
            "main/b=server",
            "main/a=server",
            "main/b=server",
            "spare/c=ok"
        ]
    );
    // A fallback cycle (spare → main → spare) ends where it started.
    let (_, plan) = admin(&client(), &gw, "GET", "/admin/fallbacks", None).await;
    let spare_plan = plan["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "spare")
        .unwrap();
    assert_eq!(
        spare_plan["plan"],
        json!([{"tier": "spare", "step": "primary"}, {"tier": "main", "step": "pool_fallback"}])
    );
}

#[tokio::test]
async fn a_request_names_its_own_group_and_fallbacks_in_headers_validated_against_the_config() {
    let (_mocks, p) = abc();
    let g = "[task_group]\n[task_group.fallback]\nfallback_groups = [\"h\"]\n[task_group.echelons.e1]\nmodels = [\"up:m1\"]\npriority = 1\n[task_group.echelons.e2]\nmodels = [\"up:m2\"]\npriority = 2\n";
    let h = "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m3\"]\n";
    let t = tree(&[("up", p)], &[("g", g), ("h", h)], &[], "");
    let gw = gateway(t.path());
    // Seed 003's node config: llm_group g.e1, fallback_groups [h.e1]: g.e2 is not in it.
    let headers = [
        ("x-switchyard-llm-group", "g.e1"),
        ("x-switchyard-fallback-groups", "h.e1"),
    ];
    let (status, path, _) = traced(&gw, "anything", &headers).await;
    assert_eq!(status, 200);
    assert_eq!(path, ["g.e1/a=server", "h.e1/c=ok"]);
    let bad = [
        ("x-switchyard-llm-group", "g.e1"),
        ("x-switchyard-fallback-groups", "nope"),
    ];
    let (status, _, body) = traced(&gw, "anything", &bad).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"nope\""),
        "{body}"
    );
}

#[tokio::test]
async fn only_the_configured_classes_are_retried_and_everything_down_is_one_clean_503_listing_every_attempt()
 {
    let (a, b) = (mock("a", FAIL), mock("b", &[]));
    let p = provider(&[
        ("m", &[("a", up(&a)), ("b", up(&b))]),
        ("gone", &[("x", down()), ("y", down())]),
    ]);
    let g = "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\n";
    let z = "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:gone\"]\n";
    let t = tree(
        &[("up", p)],
        &[("g", g), ("z", z)],
        &[],
        "[global.error_handling]\nretry_on_errors = [\"network_error\"]\n",
    );
    let gw = gateway(t.path());
    // A 500 is not in retry_on_errors: the first failure is the answer.
    let (status, path, body) = traced(&gw, "g", &[]).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(path, ["g.e1/a=server"]);
    // Connect errors are: both tried, then one 503 whose body lists both.
    let (status, path, body) = traced(&gw, "z", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(path, ["z.e1/x=connect", "z.e1/y=connect"]);
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    for attempt in body["error"]["attempts"].as_array().unwrap() {
        assert!(attempt["latency_ms"].as_f64().is_some(), "{attempt}");
        assert!(
            attempt["reason"].as_str().unwrap().contains("connect"),
            "{attempt}"
        );
    }
}

#[tokio::test]
async fn backoff_waits_grow_by_the_factor_and_the_walk_stops_at_the_deadline() {
    let fails: Vec<Proc> = (0..4).map(|i| mock(&format!("f{i}"), FAIL)).collect();
    let ok = mock("ok", &[]);
    let mut instances: Vec<(&str, String)> = ["f0", "f1", "f2", "f3"]
        .iter()
        .zip(&fails)
        .map(|(id, m)| (*id, up(m)))
        .collect();
    instances.push(("ok", up(&ok)));
    let p = provider(&[("m", &instances)]);
    let g = "[task_group]\n[task_group.fallback]\nretry_delay = 0.1\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\nmax_retries = 4\n";
    let extra = "[global.error_handling]\nbackoff_factor = 2.0\nmax_retry_delay = 0.25\n";
    let t = tree(&[("up", p)], &[("g", g)], &[], extra);
    let gw = gateway(t.path());
    // Waits 0.1, 0.2, 0.25 (capped), 0.25 with jitter in their upper half: at least 0.4 s.
    let started = Instant::now();
    let (status, path, _) = traced(&gw, "g", &[]).await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(path.len(), 5, "{path:?}");
    assert!(took >= Duration::from_millis(400), "{took:?}");
    // With a 0.3 s deadline the walk stops before a wait that would pass it.
    let started = Instant::now();
    let (status, path, body) = traced(&gw, "g", &[("x-switchyard-timeout", "0.3")]).await;
    let took = started.elapsed();
    assert_eq!(status, 502, "{body}");
    assert!(path.len() < 5, "{path:?}");
    // The walk stays inside 0.3 s; the client's own round trip adds a little (a loaded CI
    // machine more: the bound stays under the 0.8 s the waits alone would take).
    assert!(
        took < Duration::from_millis(700),
        "took {took:?}, past the 0.3 s deadline"
    );
    let spent: f64 = (body["error"]["attempts"].as_array().unwrap().iter())
        .map(|a| a["latency_ms"].as_f64().unwrap())
        .sum();
    assert!(spent < 300.0, "{spent} ms in attempts");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{body}"
    );
}

#[tokio::test]
async fn echelon_defaults_reach_the_upstream_unless_the_client_set_them() {
    let a = mock("a", &[]);
    let p = provider(&[("m", &[("a", up(&a))])]);
    let g = "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\ntemperature = 0.3\nmax_tokens = 64\nclamp_max_tokens = true\n";
    let t = tree(&[("up", p)], &[("g", g)], &[], "");
    let gw = gateway(t.path());
    let c = client();
    let last = || async {
        c.get(format!("{}/mock/last", a.url))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&chat_body("g"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent = last().await;
    let body = if sent["body"].is_object() {
        sent["body"].clone()
    } else {
        sent.clone()
    };
    assert_eq!(body["temperature"], 0.3, "{sent}");
    assert_eq!(body["max_tokens"], 64, "{sent}");
    let mut own = chat_body("g");
    own["temperature"] = json!(1.0);
    own["max_tokens"] = json!(1000);
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent = last().await;
    let body = if sent["body"].is_object() {
        sent["body"].clone()
    } else {
        sent.clone()
    };
    assert_eq!(
        body["temperature"], 1.0,
        "the client's own value wins: {sent}"
    );
    assert_eq!(body["max_tokens"], 64, "clamped: {sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_dead_echelon_then_a_dead_group_cost_no_client_request() {
    use common::{Load, requests_seen};
    let (a1, a2) = (mock("a1", &[]), mock("a2", &[]));
    let (b, c) = (mock("b", &[]), mock("c", &[]));
    let p = provider(&[
        ("m1", &[("a1", up(&a1)), ("a2", up(&a2))]),
        ("m2", &[("b", up(&b))]),
        ("m3", &[("c", up(&c))]),
    ]);
    let g = "[task_group]\n[task_group.fallback]\nfallback_groups = [\"h\"]\n[task_group.echelons.e1]\nmodels = [\"up:m1\"]\npriority = 1\n[task_group.echelons.e2]\nmodels = [\"up:m2\"]\npriority = 2\n";
    let h = "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m3\"]\n";
    let t = tree(&[("up", p)], &[("g", g), ("h", h)], &[], "");
    let gw = gateway(t.path());
    let c_ = client();
    let load = Load::start(&gw, "g", 4);
    load.advance(40).await;
    assert_eq!(
        requests_seen(&c_, &b).await,
        0,
        "echelon1 serves while it is up"
    );
    // Echelon 1 entirely down: echelon 2 serves everything.
    drop((a1, a2));
    let before = requests_seen(&c_, &b).await;
    load.advance(100).await;
    assert!(requests_seen(&c_, &b).await >= before + 90);
    // The whole group down: fallback_groups serve.
    drop(b);
    load.advance(100).await;
    assert!(requests_seen(&c_, &c).await >= 90);
    let (done, failed) = load.stop().await;
    assert_eq!(failed, 0, "{failed} of {done} client requests failed");
    // Everything down: one clean 503 listing every attempt.
    drop(c);
    let (status, path, body) = traced(&gw, "g", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    assert!(
        !path.is_empty()
            && path
                .iter()
                .all(|p| p.ends_with("=connect") || p.ends_with("=skipped")),
        "{path:?}"
    );
}
