//! Clients that go away mid-stream. Many clients open streams from slow upstreams (20 chunks a
//! second, 200 chunks: ten seconds each) and drop them part way: most after their first
//! content, every third before the response head (while the gateway still holds the stream
//! back for its commit point). Afterwards every count of what is in flight returns to zero:
//! the gateway's per-instance `in_flight` (`/admin/status`), every concurrency limiter's
//! permits (`/admin/limits`, limits set on the client, echelon and instance levels), and the
//! mocks' own in-flight count (the gateway closed each upstream stream it no longer needed).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::{Proc, admin, chat_body, client, gateway, mock, stats};
use crate::support::{NO_PROBES, Report, SERIAL, content, secs, tree, until};

const CLIENTS: usize = 24;

/// Every concurrency limiter's `(name, in flight)` from `/admin/limits`.
fn permits(limits: &Value) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for level in ["groups", "tiers", "models", "instances", "clients"] {
        for l in limits[level].as_array().unwrap() {
            if let Some(n) = l["concurrency"]["in_flight"].as_u64() {
                out.push((l["name"].as_str().unwrap_or("?").to_owned(), n));
            }
        }
    }
    out
}

/// What the gateway counts in flight, summed: instances (`/admin/status`), limiter permits,
/// requests waiting in the queue.
async fn gateway_in_flight(c: &reqwest::Client, gw: &Proc) -> (u64, u64, u64, usize) {
    let (_, status) = admin(c, gw, "GET", "/admin/status", None).await;
    let instances: u64 = (status["instances"].as_array().unwrap().iter())
        .map(|i| i["in_flight"].as_u64().unwrap())
        .sum();
    let (_, limits) = admin(c, gw, "GET", "/admin/limits", None).await;
    let held = permits(&limits);
    let waiting = limits["queue"]["waiting"].as_u64().unwrap();
    (
        instances,
        held.iter().map(|(_, n)| n).sum(),
        waiting,
        held.len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_streams_give_back_every_in_flight_count_and_permit() {
    let _serial = SERIAL.lock().await;
    let slow = ["--tokens-per-s", "20", "--stream-chunks", "200"];
    let (a, b) = (mock("a", &slow), mock("b", &slow));
    let t = tree(
        &[
            ("a", &a, "concurrency_limit = 100"),
            ("b", &b, "concurrency_limit = 100"),
        ],
        "concurrency_limit = 150",
        NO_PROBES,
        "[clients.default]\nconcurrency_limit = 500\n",
    );
    let gw = gateway(t.path());
    let c = client();
    let stop = Arc::new(AtomicBool::new(false));
    let (opened, served, early) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut body = chat_body("g");
    body["stream"] = json!(true);
    let url = format!("{}/v1/chat/completions", gw.url);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (stop, opened, served, early) =
                (stop.clone(), opened.clone(), served.clone(), early.clone());
            let (url, body) = (url.clone(), body.clone());
            tokio::spawn(async move {
                let c = client();
                let mut i = n;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let send = c.post(&url).json(&body).send();
                    if i % 3 == 0 {
                        // Gone before the head: the first content comes 50 ms after dispatch.
                        if tokio::time::timeout(Duration::from_millis(20), send)
                            .await
                            .is_err()
                        {
                            early.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    opened.fetch_add(1, Ordering::Relaxed);
                    let read = async {
                        let r = send.await.ok()?;
                        if r.status() != 200 {
                            return None;
                        }
                        let mut text = String::new();
                        let mut chunks = r.bytes_stream();
                        while let Some(Ok(bytes)) = chunks.next().await {
                            text.push_str(&String::from_utf8_lossy(&bytes));
                            if !content(&text).is_empty() {
                                // Dropped here, mid-stream: `chunks` goes out of scope.
                                return Some(());
                            }
                        }
                        None
                    };
                    if tokio::time::timeout(Duration::from_secs(30), read)
                        .await
                        .ok()
                        .flatten()
                        .is_some()
                    {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // The counters are live: streams are in flight at the gateway and at the mocks.
    until("streams are in flight", || async {
        gateway_in_flight(&c, &gw).await.0 > 0
    })
    .await;
    tokio::time::sleep(secs()).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let (opened, served, early) = (
        opened.load(Ordering::Relaxed),
        served.load(Ordering::Relaxed),
        early.load(Ordering::Relaxed),
    );
    let report = Report {
        scenario: "client_disconnect",
        requests: opened as usize,
        ok: served as usize,
        lost: (opened - served) as usize,
        failover_ms: None,
        failover_max_ms: None,
        p50_ms: None,
    };
    report.print();
    eprintln!("client_disconnect: {early} more dropped before the response head");
    assert!(
        opened > 0 && early > 0,
        "{opened} opened, {early} dropped early"
    );
    assert_eq!(
        report.lost, 0,
        "streams that never reached their first content"
    );

    until(
        "the gateway's in-flight counts and permits are back to zero",
        || async {
            let (instances, permits, waiting, limiters) = gateway_in_flight(&c, &gw).await;
            assert!(
                limiters >= 4,
                "client, tier and two instance limiters: {limiters}"
            );
            (instances, permits, waiting) == (0, 0, 0)
        },
    )
    .await;
    until("the upstream streams are closed", || async {
        let mut open = 0;
        for m in [&a, &b] {
            open += stats(&c, m).await["in_flight"].as_u64().unwrap();
        }
        open == 0
    })
    .await;
    // Nothing ran to its end: each upstream stream was cut when its client left.
    for m in [&a, &b] {
        assert_eq!(stats(&c, m).await["streams_completed"], 0);
    }
    // And the gateway still serves.
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&chat_body("g"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
