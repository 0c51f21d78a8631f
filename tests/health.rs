//! End to end: health through the real binary and real mock upstreams (separate processes) on
//! loopback. An upstream is killed under steady load and restarted; another answers 429 with
//! Retry-After; a whole pool is ejected (panic mode); and the checker's verdicts are compared
//! with the truth of an upstream flapping on a known schedule.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    Load, Proc, TOKEN, Tree, admin, chat_body, client, gateway, mock, requests_seen, set_behavior,
};
use serde_json::{Value, json};

/// Provider `up`, model `m` served by `mocks`; group `g`; pool `p` (round robin) with
/// `[pool.health_check]` = `health`.
fn tree(mocks: &[(&str, &Proc)], health: &str) -> Tree {
    tree_with_breaker(mocks, health, "")
}

/// [`tree`] with `[task_group.circuit_breaker]` = `breaker`.
fn tree_with_breaker(mocks: &[(&str, &Proc)], health: &str, breaker: &str) -> Tree {
    let t = Tree::new();
    let mut provider = String::from(
        "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.m]\n",
    );
    for (id, m) in mocks {
        provider.push_str(&format!(
            "[[models.m.instances]]\nid = \"{id}\"\nbase_url = \"{}/v1\"\ntimeout = 2\n",
            m.url
        ));
    }
    t.file("providers/up.toml", &provider);
    t.file(
        "task-groups/g.toml",
        &format!("[task_group]\n[task_group.circuit_breaker]\n{breaker}\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\n"),
    );
    t.file(
        "pools/p.toml",
        &format!("[pool]\ntask_groups = [\"g\"]\n[pool.rotation_strategy]\ntype = \"round_robin\"\n[pool.health_check]\n{health}\n"),
    );
    t.file(
        "_registry.toml",
        &format!("[server]\nadmin_token = \"{TOKEN}\"\n[providers]\nup = {{ file = \"providers/up.toml\" }}\n[pools]\np = {{ file = \"pools/p.toml\" }}\n[task_groups]\ng = {{ file = \"task-groups/g.toml\" }}\n"),
    );
    t
}

/// `GET /admin/health`'s entry for instance `id`.
async fn health_of(c: &reqwest::Client, gw: &Proc, id: &str) -> Value {
    let (status, all) = admin(c, gw, "GET", "/admin/health", None).await;
    assert_eq!(status, 200, "{all}");
    let found = all["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id);
    found.cloned().unwrap()
}

/// Health events about `subject`, oldest first.
async fn events_of(c: &reqwest::Client, gw: &Proc, subject: &str) -> Vec<Value> {
    let (status, all) = admin(c, gw, "GET", "/admin/events", None).await;
    assert_eq!(status, 200, "{all}");
    let list = all["data"].as_array().unwrap();
    list.iter()
        .filter(|e| e["subject"] == subject)
        .cloned()
        .collect()
}

/// Poll (bounded: 20 s) until `done` holds; a condition that never holds fails the test.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A chat request to pool `p`.
async fn chat_p(c: &reqwest::Client, gw: &Proc) -> reqwest::Response {
    c.post(format!("{}/v1/chat/completions", gw.url))
        .json(&chat_body("p"))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upstream_is_ejected_within_three_failures_and_back_after_it_restarts() {
    let a = mock("a", &[]);
    let (b, c3) = (mock("b", &[]), mock("c", &[]));
    let addr = a.url.trim_start_matches("http://").to_owned();
    let health = "interval = 1\ntimeout = 0.5\njitter = 0\nfailure_threshold = 3\nrecovery_time = 2\nslow_start = 0";
    let t = tree(&[("a", &a), ("b", &b), ("c", &c3)], health);
    let gw = gateway(t.path());
    let c = client();
    // Steady load, one request after another: each attempt on the dead instance is one of
    // `failure_threshold`, none racing another.
    let load = Load::start(&gw, "p", 1);
    load.advance(30).await;
    assert!(requests_seen(&c, &a).await >= 9);

    drop(a); // killed: connections refused from now on
    until("a is ejected", || async {
        health_of(&c, &gw, "a").await["state"] == "ejected"
    })
    .await;
    let (_, view) = admin(&c, &gw, "GET", "/admin/instances/a", None).await;
    let failures = view["failures"].as_u64().unwrap();
    assert!(
        (1..=3).contains(&failures),
        "{failures} requests reached the dead instance"
    );
    load.advance(60).await;
    let (_, view) = admin(&c, &gw, "GET", "/admin/instances/a", None).await;
    assert_eq!(
        view["failures"], failures,
        "traffic reached it while ejected"
    );

    // Restart it on the same address.
    let restarted_ms = unix_ms();
    let a = Proc::start(&["mock", "--listen", &addr, "--name", "a"]);
    until("a serves traffic again", || async {
        requests_seen(&c, &a).await > 0
    })
    .await;
    let (done, failed) = load.stop().await;
    assert_eq!(failed, 0, "{failed} of {done} client requests failed");

    let events = events_of(&c, &gw, "a").await;
    let at = |kind: &str| {
        let e = events.iter().find(|e| e["kind"] == kind);
        e.unwrap_or_else(|| panic!("no {kind} event in {events:?}"))["at_ms"]
            .as_u64()
            .unwrap()
    };
    let (ejected, recovered) = (at("ejected"), at("recovered"));
    // Back within one probe interval (1 s) of both recovery_time being over and the process
    // being up again (plus scheduling slack).
    let ready = restarted_ms.max(ejected + 2000);
    assert!(
        recovered <= ready + 1500,
        "recovered {} ms after it could",
        recovered - ready
    );
    let h = health_of(&c, &gw, "a").await;
    assert_eq!(h["state"], "healthy", "{h}");
    assert_eq!(h["ejections"], 1, "{h}");
}

#[tokio::test]
async fn a_429_with_retry_after_rests_the_instance_for_that_long_without_marking_it_unhealthy() {
    let (a, b) = (mock("a", &[]), mock("b", &[]));
    let t = tree(&[("a", &a), ("b", &b)], "interval = 60");
    let gw = gateway(t.path());
    let c = client();
    set_behavior(
        &c,
        &b,
        json!({"name": "b", "status": 429, "retry_after_s": 3}),
    )
    .await;
    let chat = || async {
        let r = chat_p(&c, &gw).await;
        assert_eq!(r.status(), 200, "failover hides the 429 from the client");
    };
    // Round robin: within two requests one lands on b, gets 429, and fails over to a.
    chat().await;
    chat().await;
    assert_eq!(requests_seen(&c, &b).await, 1);
    let h = health_of(&c, &gw, "b").await;
    assert_eq!(h["ejection"], "cooling_down", "{h}");
    let rest = h["until_s"].as_f64().unwrap();
    assert!(rest > 2.0 && rest <= 3.0, "{h}");
    assert_eq!(h["state"], "degraded", "{h}");
    set_behavior(&c, &b, json!({"name": "b"})).await;
    // While it rests, b gets nothing.
    let mut sent = 0;
    while health_of(&c, &gw, "b").await["until_s"]
        .as_f64()
        .unwrap_or(0.0)
        > 0.5
    {
        chat().await;
        sent += 1;
    }
    assert!(sent >= 4, "{sent}");
    assert_eq!(
        requests_seen(&c, &b).await,
        1,
        "b got traffic while cooling down"
    );
    // Then it does again.
    until("b serves again", || async {
        chat().await;
        requests_seen(&c, &b).await > 1
    })
    .await;
    let kinds: Vec<Value> = (events_of(&c, &gw, "b").await.iter())
        .map(|e| e["kind"].clone())
        .collect();
    assert!(kinds.contains(&json!("cooled_down")), "{kinds:?}");
    for bad in ["ejected", "unhealthy", "breaker_opened"] {
        assert!(!kinds.contains(&json!(bad)), "{kinds:?}");
    }
}

#[tokio::test]
async fn with_every_instance_ejected_requests_go_to_the_least_bad_one() {
    let a = mock("a", &["--status", "500"]);
    let t = tree(&[("a", &a)], "interval = 60\nrecovery_time = 60");
    let gw = gateway(t.path());
    let c = client();
    for _ in 0..3 {
        assert_eq!(chat_p(&c, &gw).await.status(), 502);
    }
    assert_eq!(health_of(&c, &gw, "a").await["state"], "ejected");
    set_behavior(&c, &a, json!({"name": "a"})).await;
    // Ejected for a minute, but it is all the pool has: panic mode sends it the request.
    assert_eq!(chat_p(&c, &gw).await.status(), 200);
    let kinds: Vec<Value> = (events_of(&c, &gw, "p").await.iter())
        .map(|e| e["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("panic")]);
}

#[tokio::test]
async fn an_open_breaker_fails_fast_with_retry_after_and_sends_nothing_upstream() {
    let a = mock("a", &["--status", "500"]);
    let t = tree_with_breaker(
        &[("a", &a)],
        "interval = 60\nfailure_threshold = 50",
        "failure_threshold = 2\nrecovery_time = 30",
    );
    let gw = gateway(t.path());
    let c = client();
    let send = || chat_p(&c, &gw);
    assert_eq!(send().await.status(), 502);
    assert_eq!(send().await.status(), 502);
    assert_eq!(health_of(&c, &gw, "a").await["breaker"]["state"], "open");
    let r = send().await;
    assert_eq!(r.status(), 503);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((29..=30).contains(&retry_after), "{retry_after}");
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("circuit breaker"), "{message}");
    assert_eq!(requests_seen(&c, &a).await, 2, "nothing sent while open");
}

/// Seed 000: health checks at least 98 % accurate. An upstream flaps between up states
/// (normal, slow, rate limited) and down states (500, 503, garbage, hanging) on a seeded
/// schedule; after each change a probe is forced through the admin API and its verdict
/// compared with the truth.
#[tokio::test]
async fn probe_verdicts_match_a_flapping_upstreams_truth() {
    let a = mock("a", &[]);
    let t = tree(
        &[("a", &a)],
        "interval = 600\ntimeout = 0.3\nfailure_threshold = 1000",
    );
    let gw = gateway(t.path());
    let c = client();
    let states: [(Value, bool); 7] = [
        (json!({"name": "a"}), true),
        (json!({"name": "a", "latency_ms": 50}), true),
        (
            json!({"name": "a", "status": 429, "retry_after_s": 1}),
            true,
        ),
        (json!({"name": "a", "status": 500}), false),
        (json!({"name": "a", "status": 503}), false),
        (json!({"name": "a", "garbage": true}), false),
        (json!({"name": "a", "hang": true}), false),
    ];
    let mut seed: u64 = 0x5eed;
    let (mut rounds, mut right) = (0u32, 0u32);
    for _ in 0..120 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Hanging rounds cost a probe timeout each: one in fourteen.
        let pick = ((seed >> 33) % 14) as usize;
        let (behavior, up) = &states[if pick >= 7 { 0 } else { pick }];
        set_behavior(&c, &a, behavior.clone()).await;
        let (status, reply) = admin(&c, &gw, "POST", "/admin/instances/a/health-check", None).await;
        assert_eq!(status, 200, "{reply}");
        rounds += 1;
        if reply["probe"]["ok"] == *up {
            right += 1;
        } else {
            eprintln!("wrong verdict for {behavior}: {reply}");
        }
    }
    let accuracy = f64::from(right) / f64::from(rounds);
    eprintln!(
        "health-check accuracy: {right}/{rounds} = {:.1} %",
        accuracy * 100.0
    );
    assert!(accuracy >= 0.98, "accuracy {accuracy}");
}
