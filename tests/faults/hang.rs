//! An upstream starts hanging under load: it accepts each request and never sends a byte. Its
//! short per-instance timeout (0.3 s) ends each attempt there and the request goes on to a live
//! instance; nothing is lost, and the failover takes about that timeout.

use serde_json::json;

use crate::common::requests_seen;
use crate::support::{Kind, NO_PROBES, SERIAL, Scene};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_hangs_is_failed_over_within_its_timeout() {
    let _serial = SERIAL.lock().await;
    let scene = Scene::three_under_load("timeout = 0.3", "", NO_PROBES, 8, Kind::Chat).await;
    assert!(requests_seen(&scene.c, &scene.a).await > 0);
    // Each failed-over request timed out at a first; a took requests it never answered.
    scene
        .fault_a("hang", json!({"name": "a", "hang": true}), "timeout")
        .await;
}
