//! Upstreams that answer, badly, under steady load, with two healthy ones beside them: 500s
//! at 30 %, a 429 storm with Retry-After, malformed JSON. Each bad answer is retried on another
//! instance; nothing is lost, and the counts at the mocks match the clients' exactly.

use std::time::Instant;

use serde_json::{Value, json};

use crate::common::{admin, client, gateway, mock, requests_seen, stats};
use crate::support::{
    Kind, Load, NO_PROBES, SERIAL, Scene, health_of, report_no_loss, set_behavior, tree, until,
};

const CLIENTS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundreds_at_thirty_percent_are_retried_elsewhere() {
    let _serial = SERIAL.lock().await;
    let (a, b, c3) = (mock("a", &[]), mock("b", &[]), mock("c", &[]));
    // Keep a in rotation the whole time (no ejection at 30 %, no breaker), so every one of its
    // failures is a retry the gateway has to make.
    let t = tree(
        &[("a", &a, ""), ("b", &b, ""), ("c", &c3, "")],
        "[task_group.circuit_breaker]\nenabled = false",
        "enabled = false\nfailure_threshold = 1000\nerror_rate_threshold = 1.0",
        "",
    );
    let gw = gateway(t.path());
    let c = client();
    let load = Load::start(&gw, "g", CLIENTS, Kind::Chat);
    load.advance(30).await;
    let injecting = Instant::now();
    set_behavior(&c, &a, json!({"name": "a", "fail_rate": 0.3, "seed": 7})).await;
    load.until_failover().await;
    load.run_out().await;
    let samples = load.stop().await;
    let report = report_no_loss("fail_rate_30", &samples, Some(injecting));
    assert!(report.failover_ms.is_some());
    let failed = stats(&c, &a).await["failed"].as_u64().unwrap();
    let retried: Vec<_> = samples.iter().filter(|s| s.attempts > 1).collect();
    for s in &retried {
        assert_eq!(s.attempts, 2, "{}", s.trace);
        assert!(s.trace.contains("/a=server"), "{}", s.trace);
    }
    assert_eq!(
        retried.len() as u64,
        failed,
        "each 500 was retried once, elsewhere"
    );
    let seen = requests_seen(&c, &a).await;
    let share = failed as f64 / seen as f64;
    eprintln!(
        "fail_rate_30: a failed {failed} of {seen} ({:.1} %)",
        share * 100.0
    );
    let by_a = samples.iter().filter(|s| s.instance == "a").count() as u64;
    assert_eq!(by_a + failed, seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_with_retry_after_rests_the_instance_and_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let Scene {
        a,
        b: _b,
        c3: _c3,
        gw,
        c,
        load,
        tree: _tree,
    } = Scene::three_under_load("", "", NO_PROBES, CLIENTS, Kind::Chat).await;
    let injecting = Instant::now();
    set_behavior(
        &c,
        &a,
        json!({"name": "a", "status": 429, "retry_after_s": 1}),
    )
    .await;
    let injected = Instant::now();
    load.until_failover().await;
    until("a rests", || async {
        health_of(&c, &gw, "a").await["ejection"] == "cooling_down"
    })
    .await;
    load.run_out().await;
    let elapsed = injected.elapsed();
    let samples = load.stop().await;
    let report = report_no_loss("rate_limited_429", &samples, Some(injecting));
    assert!(report.failover_ms.is_some());
    let retried: Vec<_> = samples.iter().filter(|s| s.attempts > 1).collect();
    for s in &retried {
        assert!(s.trace.contains("/a=rate_limited"), "{}", s.trace);
    }
    let served_by_a: Vec<_> = samples.iter().filter(|s| s.instance == "a").collect();
    assert!(served_by_a.iter().all(|s| s.sent < injected));
    assert_eq!(
        requests_seen(&c, &a).await,
        (served_by_a.len() + retried.len()) as u64,
        "each 429 was retried once, elsewhere"
    );
    // The 429s a sent.
    let seen = retried.len() as u64;
    // Rested for each Retry-After: a is open to traffic at most once a second (plus the
    // start), and then at most the requests in flight at that moment reach it.
    let windows = elapsed.as_secs() + 2;
    assert!(
        seen <= windows * CLIENTS as u64,
        "a got {seen} requests in {elapsed:?}: not rested"
    );
    // Not marked unhealthy: no ejection, no breaker, only cool-downs.
    let h = health_of(&c, &gw, "a").await;
    assert_ne!(h["state"], "ejected", "{h}");
    assert_ne!(h["state"], "unhealthy", "{h}");
    let (_, events) = admin(&c, &gw, "GET", "/admin/events", None).await;
    let kinds: Vec<&Value> = (events["data"].as_array().unwrap().iter())
        .filter(|e| e["subject"] == "a")
        .map(|e| &e["kind"])
        .collect();
    for bad in ["ejected", "unhealthy", "breaker_opened"] {
        assert!(!kinds.contains(&&json!(bad)), "{kinds:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_retried_elsewhere() {
    let _serial = SERIAL.lock().await;
    let scene = Scene::three_under_load("", "", NO_PROBES, CLIENTS, Kind::Chat).await;
    let garbage = json!({"name": "a", "garbage": true});
    scene.fault_a("malformed_json", garbage, "malformed").await;
}
