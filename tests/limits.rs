//! End to end: limits through the real binary against mock upstreams (separate processes).
//! Counts are taken at the mocks (requests seen, their own maximum of chat calls in flight:
//! what a concurrency limit bounds, whatever else reaches the mock's port meanwhile).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use common::{Proc, TOKEN, Tree, admin, chat_body, client, gateway, mock, requests_seen, stats};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// Provider `up`, model `m` with instances `(id, mock, extra instance keys)`, group `g`
/// (echelon e1 over up:m, `echelon` extra keys), pool `p` round robin.
fn tree(instances: &[(&str, &Proc, &str)], echelon: &str) -> Tree {
    let t = Tree::new();
    let mut p = String::from(
        "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.m]\n",
    );
    for (id, m, extra) in instances {
        p.push_str(&format!(
            "[[models.m.instances]]\nid = \"{id}\"\nbase_url = \"{}/v1\"\n{extra}\n",
            m.url
        ));
    }
    t.file("providers/up.toml", &p);
    t.file(
        "task-groups/g.toml",
        &format!("[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\n{echelon}\n"),
    );
    t.file(
        "pools/p.toml",
        "[pool]\ntask_groups = [\"g\"]\n[pool.health_check]\n# No active probes: a probe is a request the mock counts in flight.\nenabled = false\nfailure_threshold = 1000\n",
    );
    t.file(
        "_registry.toml",
        &format!("[server]\nadmin_token = \"{TOKEN}\"\n[providers]\nup = {{ file = \"providers/up.toml\" }}\n[task_groups]\ng = {{ file = \"task-groups/g.toml\" }}\n[pools]\np = {{ file = \"pools/p.toml\" }}\n"),
    );
    t
}

async fn chat(c: &reqwest::Client, gw: &Proc, model: &str) -> reqwest::Response {
    c.post(format!("{}/v1/chat/completions", gw.url))
        .json(&chat_body(model))
        .send()
        .await
        .unwrap()
}

/// In flight at the limiter of instance `id`, from `/admin/limits`.
async fn in_flight(c: &reqwest::Client, gw: &Proc, id: &str) -> u64 {
    let (_, l) = admin(c, gw, "GET", "/admin/limits", None).await;
    let name = format!("instance {id}");
    let found = l["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name.as_str());
    found.unwrap()["concurrency"]["in_flight"].as_u64().unwrap()
}

/// Wait (bounded) until instance `id` has nothing in flight.
async fn drained(c: &reqwest::Client, gw: &Proc, id: &str) {
    for _ in 0..500 {
        if in_flight(c, gw, id).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("permits of {id} never came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_never_put_more_than_ten_in_flight_and_every_permit_comes_back()
 {
    let a = mock("a", &["--latency-ms", "100"]);
    let t = tree(&[("a", &a, "concurrency_limit = 10\ntimeout = 1")], "");
    let gw = gateway(t.path());
    let c = client();
    let requests = (0..200).map(|_| {
        let (c, gw_url) = (c.clone(), gw.url.clone());
        tokio::spawn(async move {
            let r = c
                .post(format!("{gw_url}/v1/chat/completions"))
                .json(&chat_body("p"))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, retry_after)
        })
    });
    let results: Vec<(u16, Option<String>)> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let max = stats(&c, &a).await["max_chat_in_flight"].as_u64().unwrap();
    assert!(max <= 10, "{max} in flight at the upstream");
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    assert!(ok >= 10, "{ok}");
    // The rest were refused with a 429 that says when to come back.
    for (status, retry_after) in &results {
        assert!(
            *status == 200 || (*status == 429 && retry_after.is_some()),
            "{status} {retry_after:?}"
        );
    }
    drained(&c, &gw, "a").await;

    // After an upstream error...
    let set = |b: Value| {
        let c = c.clone();
        let url = format!("{}/mock/behavior", a.url);
        async move { assert_eq!(c.put(url).json(&b).send().await.unwrap().status(), 200) }
    };
    set(json!({"name": "a", "status": 500})).await;
    assert_eq!(chat(&c, &gw, "p").await.status(), 502);
    drained(&c, &gw, "a").await;
    // ...a timeout...
    set(json!({"name": "a", "hang": true})).await;
    assert_eq!(chat(&c, &gw, "p").await.status(), 504);
    drained(&c, &gw, "a").await;
    // ...and a client that goes away mid-stream.
    set(json!({"name": "a", "stream_chunks": 50, "tokens_per_s": 20.0})).await;
    let mut body = chat_body("p");
    body["stream"] = json!(true);
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    assert_eq!(
        in_flight(&c, &gw, "a").await,
        1,
        "the stream holds its permit"
    );
    drop(stream);
    drained(&c, &gw, "a").await;
}

#[tokio::test]
async fn an_instance_at_60_rpm_gets_at_most_60_the_overflow_goes_elsewhere_and_all_full_is_a_clean_429()
 {
    let (a, b) = (mock("a", &[]), mock("b", &[]));
    let t = tree(
        &[("a", &a, "rpm_limit = 60"), ("b", &b, "rpm_limit = 60")],
        "",
    );
    let gw = gateway(t.path());
    let c = client();
    // 150 requests as fast as they go (within one minute, well over 300 RPM offered).
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..150 {
        let r = chat(&c, &gw, "p").await;
        if r.status() == 429 {
            let h = r.headers();
            assert_eq!(h["x-ratelimit-limit-requests"], "60");
            assert_eq!(h["x-ratelimit-remaining-requests"], "0");
            assert!(h.contains_key("x-ratelimit-reset-requests"));
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(requests_seen(&c, &a).await, 60);
    assert_eq!(requests_seen(&c, &b).await, 60);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 120);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 30);
    // The first of the 120 leaves the minute about 60 s after it was admitted.
    let wait = retry_after.unwrap();
    assert!((50..=60).contains(&wait), "Retry-After {wait}");
    let (_, limits) = admin(&c, &gw, "GET", "/admin/limits", None).await;
    let a_view = limits["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "instance a")
        .unwrap();
    assert_eq!(a_view["requests"]["algorithm"], "sliding_log");
    assert_eq!(a_view["requests"]["remaining"], 0);
    assert!(a_view["refused"].as_u64().unwrap() >= 30, "{a_view}");
}

#[tokio::test]
async fn an_echelon_concurrency_limit_caps_the_whole_tier() {
    let (a, b) = (
        mock("a", &["--latency-ms", "100"]),
        mock("b", &["--latency-ms", "100"]),
    );
    let t = tree(&[("a", &a, ""), ("b", &b, "")], "concurrency_limit = 3");
    let gw = gateway(t.path());
    let c = client();
    let requests = (0..20).map(|_| {
        let (c, gw_url) = (c.clone(), gw.url.clone());
        tokio::spawn(async move {
            c.post(format!("{gw_url}/v1/chat/completions"))
                .json(&chat_body("g"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    let statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let total_max = stats(&c, &a).await["max_chat_in_flight"].as_u64().unwrap()
        + stats(&c, &b).await["max_chat_in_flight"].as_u64().unwrap();
    assert!(total_max <= 3 + 3, "{total_max}");
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!((3..20).contains(&ok), "{statuses:?}");
    let (_, limits) = admin(&c, &gw, "GET", "/admin/limits", None).await;
    let tier = limits["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "tier g.e1")
        .unwrap();
    assert_eq!(tier["concurrency"]["max"], 3);
    assert_eq!(
        tier["refused"].as_u64().unwrap() as usize,
        20 - ok,
        "{tier}"
    );
}

#[tokio::test]
async fn a_provider_saying_it_has_no_headroom_left_is_treated_as_full_before_it_answers_429() {
    let (a, b) = (mock("a", &["--ratelimit-remaining", "0"]), mock("b", &[]));
    let t = tree(&[("a", &a, ""), ("b", &b, "")], "");
    let gw = gateway(t.path());
    let c = client();
    // Round robin: a answers first and says "0 left, reset in 2 s"; then it rests.
    for _ in 0..10 {
        assert_eq!(chat(&c, &gw, "p").await.status(), 200);
    }
    assert_eq!(
        requests_seen(&c, &a).await,
        1,
        "a got traffic with no headroom left"
    );
    assert_eq!(requests_seen(&c, &b).await, 9);
    let (_, health) = admin(&c, &gw, "GET", "/admin/health", None).await;
    let a_view = health["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "a")
        .unwrap();
    assert_eq!(a_view["ejection"], "cooling_down", "{a_view}");
    assert_ne!(a_view["state"], "ejected");
}

#[tokio::test]
async fn a_model_wide_limit_is_shared_by_its_instances_and_clients_have_their_own() {
    let (a, b) = (mock("a", &[]), mock("b", &[]));
    let t = tree(&[("a", &a, ""), ("b", &b, "")], "");
    // Model-wide: 6 a minute over a and b together.
    let p = std::fs::read_to_string(t.path().join("providers/up.toml")).unwrap();
    t.file(
        "providers/up.toml",
        &p.replace(
            "[models.m]\n",
            "[models.m]\nshared_limits = { rpm_limit = 6 }\n",
        ),
    );
    let reg = std::fs::read_to_string(t.path().join("_registry.toml")).unwrap();
    t.file(
        "_registry.toml",
        &format!("{reg}\n[clients.default]\nrpm_limit = 3\n[clients.keys.vip]\nrpm_limit = 100\n"),
    );
    let gw = gateway(t.path());
    let c = client();
    let send = |who: Option<(&'static str, &'static str)>| {
        let (c, url) = (c.clone(), gw.url.clone());
        async move {
            let mut req = c
                .post(format!("{url}/v1/chat/completions"))
                .json(&chat_body("p"));
            if let Some((k, v)) = who {
                req = req.header(k, v);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // An unnamed client: 3, then its own limit.
    let mut anon = Vec::new();
    for _ in 0..5 {
        anon.push(send(None).await);
    }
    assert_eq!(anon.iter().filter(|(s, _)| *s == 200).count(), 3);
    assert!(anon[4].1.contains("client anonymous"), "{}", anon[4].1);
    // Another client by API key has its own 3.
    let key = Some(("authorization", "Bearer sk-other"));
    let keyed: Vec<u16> = futures_util::future::join_all((0..4).map(|_| send(key)))
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(keyed.iter().filter(|s| **s == 200).count(), 3, "{keyed:?}");
    // A VIP is not limited by the client default, but the model's 6 a minute still hold.
    let vip = Some(("x-switchyard-client", "vip"));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(send(vip).await.0);
    }
    assert_eq!(
        statuses,
        [429, 429, 429, 429, 429],
        "the model's 6 were spent by the others"
    );
    assert_eq!(requests_seen(&c, &a).await + requests_seen(&c, &b).await, 6);
    let (_, limits) = admin(&c, &gw, "GET", "/admin/limits", None).await;
    assert_eq!(limits["models"][0]["name"], "model up:m", "{limits}");
    assert_eq!(limits["clients"].as_array().unwrap().len(), 3, "{limits}");
}

/// The tree with `[global.limits]` = `queue` in the registry.
fn queued(instances: &[(&str, &Proc, &str)], queue: &str) -> Tree {
    let t = tree(instances, "");
    let reg = std::fs::read_to_string(t.path().join("_registry.toml")).unwrap();
    t.file(
        "_registry.toml",
        &format!("[global.limits]\n{queue}\n{reg}"),
    );
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_queue_requests_wait_for_room_fairly_between_clients_and_not_past_queue_timeout() {
    let a = mock("a", &["--latency-ms", "100"]);
    let t = queued(
        &[("a", &a, "concurrency_limit = 1")],
        "queue_timeout = 10\nqueue_size = 40",
    );
    let gw = gateway(t.path());
    let c = client();
    // A noisy client sends 8 at once, a quiet one 1 a moment later: all are served (they
    // wait instead of a 429), one at a time, and the quiet one does not wait for all 8.
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let send = |who: &'static str| {
        let (c, url, order) = (c.clone(), gw.url.clone(), order.clone());
        tokio::spawn(async move {
            let r = c
                .post(format!("{url}/v1/chat/completions"))
                .header("x-switchyard-client", who)
                .json(&chat_body("p"))
                .send()
                .await
                .unwrap();
            order.lock().unwrap().push(who);
            r.status().as_u16()
        })
    };
    // Explicit synchronisation: the noisy client's 8 are in (one served, seven queued)
    // before the quiet one comes; from then on clients take turns at every released permit.
    let waiting = || {
        let (c, gw) = (&c, &gw);
        async move {
            let (_, l) = admin(c, gw, "GET", "/admin/limits", None).await;
            l["queue"]["waiting"].as_u64().unwrap()
        }
    };
    let mut tasks: Vec<_> = (0..8).map(|_| send("noisy")).collect();
    for polls in 0.. {
        if waiting().await == 7 {
            break;
        }
        assert!(polls < 1000, "the noisy requests never queued");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let served_before = order.lock().unwrap().len();
    tasks.push(send("quiet"));
    let statuses: Vec<u16> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Nine chat calls reached the upstream, one per request, never two at once. (Counted
    // per chat call: a stray `GET /v1/models` on the mock's port is no call of this gateway.)
    let seen = stats(&c, &a).await;
    assert_eq!(
        (seen["chat"].as_u64(), seen["max_chat_in_flight"].as_u64()),
        (Some(9), Some(1)),
        "{seen}"
    );
    let order = order.lock().unwrap().clone();
    let quiet_at = order.iter().position(|w| *w == "quiet").unwrap();
    // At most the request in flight and the noisy waiter whose turn came first go before it.
    assert!(
        quiet_at <= served_before + 2,
        "the quiet client came {quiet_at}th of {order:?} ({served_before} served before it queued)"
    );

    // A wait is bounded by queue_timeout: with the permit held for 2 s, a 429 after ~0.3 s.
    let t = queued(&[("a", &a, "concurrency_limit = 1")], "queue_timeout = 0.3");
    let gw = gateway(t.path());
    let put = c
        .put(format!("{}/mock/behavior", a.url))
        .json(&json!({"name": "a", "latency_ms": 2000}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let slow = {
        let (c, url) = (c.clone(), gw.url.clone());
        tokio::spawn(async move {
            c.post(format!("{url}/v1/chat/completions"))
                .json(&chat_body("p"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    // Explicit synchronisation: wait (bounded) until the slow request holds the permit.
    for polls in 0.. {
        if in_flight(&c, &gw, "a").await == 1 {
            break;
        }
        assert!(polls < 500, "the slow request never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = std::time::Instant::now();
    let r = chat(&c, &gw, "p").await;
    let waited = started.elapsed();
    assert_eq!(r.status(), 429);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
    assert_eq!(slow.await.unwrap(), 200);
}
