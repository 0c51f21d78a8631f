//! An upstream starts hanging under load: it accepts each request and never sends a byte. Its
//! short per-instance timeout (0.3 s) ends each attempt there and the request goes on to a live
//! instance; nothing is lost, and the failover takes about that timeout.

use std::time::Instant;

use serde_json::json;

use crate::common::requests_seen;
use crate::support::{Kind, NO_PROBES, SERIAL, Scene, report_no_loss, set_behavior};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_hangs_is_failed_over_within_its_timeout() {
    let _serial = SERIAL.lock().await;
    let Scene {
        a,
        b: _b,
        c3: _c3,
        gw: _gw,
        c,
        load,
        tree: _tree,
    } = Scene::three_under_load("timeout = 0.3", "", NO_PROBES, 8, Kind::Chat).await;
    assert!(requests_seen(&c, &a).await > 0);

    let injecting = Instant::now();

    set_behavior(&c, &a, json!({"name": "a", "hang": true})).await;
    // Requests sent from now on reach a after it started hanging.
    let injected = Instant::now();
    load.until_failover().await;
    load.run_out().await;
    let samples = load.stop().await;
    let report = report_no_loss("hang", &samples, Some(injecting));
    assert!(report.failover_ms.is_some());
    // Each failed-over request timed out at a first; a took requests it never answered.
    let failed_over: Vec<_> = samples.iter().filter(|s| s.attempts > 1).collect();
    for s in &failed_over {
        assert!(s.trace.contains("/a=timeout"), "{}", s.trace);
        assert_ne!(s.instance, "a");
    }
    let served_by_a: Vec<_> = samples.iter().filter(|s| s.instance == "a").collect();
    assert!(
        served_by_a.iter().all(|s| s.sent < injected),
        "a served a request after it hung"
    );
    assert_eq!(
        requests_seen(&c, &a).await,
        (served_by_a.len() + failed_over.len()) as u64,
        "every request a swallowed was failed over, and only those"
    );
}
