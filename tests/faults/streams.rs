//! Streams from a misbehaving upstream, under steady streaming load, with two healthy ones
//! beside it. What the gateway promises (docs/fallback.md, "Streams"): a stream is committed at
//! its first content chunk; before that every failure (a first chunk later than the echelon's
//! `ttft_timeout`, a dropped connection) fails over invisibly; after it, a gap longer than the
//! attempt's timeout or a dropped connection ends the client's stream with an error event and
//! `[DONE]`. So:
//! - a slow drip whose first content comes after `ttft_timeout`: failed over, nothing lost;
//! - a slow drip inside the timeouts: it completes, slowly, nothing lost;
//! - truncated before the first content: failed over, nothing lost;
//! - stalled or truncated after the first content: those streams, and only those, are lost
//!   (the client already has part of a reply, there is nothing to fail over to), each ended
//!   with an error event and `[DONE]`; health ejects the instance after its third failure, so
//!   at most `failure_threshold + clients − 1` are.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{client, gateway, mock, requests_seen};
use crate::support::{
    Kind, Load, Report, SERIAL, Scene, content, error_then_done, report_no_loss, set_behavior, tree,
};

const CLIENTS: usize = 8;
const HEALTH: &str = "enabled = false\nfailure_threshold = 3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_drip_before_the_first_content_is_failed_over_by_the_ttft_timeout() {
    let _serial = SERIAL.lock().await;
    let scene =
        Scene::three_under_load("", "ttft_timeout = 0.5", HEALTH, CLIENTS, Kind::Stream).await;
    assert!(requests_seen(&scene.c, &scene.a).await > 0);
    // One chunk a second: the first content comes 1 s after dispatch, past ttft_timeout.
    let drip = json!({"name": "a", "tokens_per_s": 1.0});
    scene.fault_a("slow_drip_ttft", drip, "timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_drip_inside_the_timeouts_completes() {
    let _serial = SERIAL.lock().await;
    // 20 chunks a second: 8 content chunks take 400 ms, each gap 50 ms (the idle timeout is
    // the attempt's 10 s, no ttft_timeout).
    let a = mock("a", &["--tokens-per-s", "20"]);
    let (b, c3) = (mock("b", &[]), mock("c", &[]));
    let t = tree(
        &[("a", &a, ""), ("b", &b, ""), ("c", &c3, "")],
        "",
        HEALTH,
        "",
    );
    let gw = gateway(t.path());
    let c = client();
    let load = Load::start(&gw, "g", CLIENTS, Kind::Stream);
    load.run_out().await;
    let samples = load.stop().await;
    report_no_loss("slow_drip_paced", &samples, None);
    let by_a: Vec<_> = samples.iter().filter(|s| s.instance == "a").collect();
    assert!(!by_a.is_empty(), "a served no stream");
    for s in &by_a {
        assert!(s.took >= Duration::from_millis(400), "not paced: {s:?}");
        assert_eq!(content(&s.detail), "[a] mock reply 1 2 3 4 5 6 7 8");
    }
    assert!(
        samples.iter().all(|s| s.attempts == 1),
        "nothing to fail over"
    );
    assert_eq!(requests_seen(&c, &a).await, by_a.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_truncated_before_the_first_content_is_failed_over() {
    let _serial = SERIAL.lock().await;
    let scene = Scene::three_under_load("", "", HEALTH, CLIENTS, Kind::Stream).await;
    // The role chunk, then the connection drops.
    let cut = json!({"name": "a", "stream_fail_after": 0});
    scene.fault_a("truncated_sse", cut, "").await;
}

/// `a` fails after two content chunks (`fault`, with instance keys `keys`): the streams it
/// committed are lost, each with an error event and `[DONE]`; no other stream is.
async fn failure_after_the_commit_point(
    scenario: &'static str,
    fault: serde_json::Value,
    keys: &str,
) {
    let _serial = SERIAL.lock().await;
    let (a, b, c3) = (mock("a", &[]), mock("b", &[]), mock("c", &[]));
    let t = tree(
        &[("a", &a, keys), ("b", &b, ""), ("c", &c3, "")],
        "",
        HEALTH,
        "",
    );
    let gw = gateway(t.path());
    let c = client();
    let load = Load::start(&gw, "g", CLIENTS, Kind::Stream);
    load.advance(30).await;
    let injecting = Instant::now();
    set_behavior(&c, &a, fault).await;
    let injected = Instant::now();
    load.run_out().await;
    let samples = load.stop().await;
    let report = Report::of(scenario, &samples, Some(injecting));
    report.print();
    let lost: Vec<_> = samples.iter().filter(|s| !s.ok).collect();
    assert!(!lost.is_empty(), "no stream met the fault");
    for s in &lost {
        assert_eq!((s.status, s.instance.as_str()), (200, "a"), "{s:?}");
        assert!(
            error_then_done(&s.detail),
            "not ended with an error event and [DONE]: {}",
            s.detail
        );
        assert_eq!(content(&s.detail), "[a] mock reply 1 2", "{}", s.detail);
    }
    // Every stream a committed after the fault is lost: none served by a completed cleanly
    // after it (sent after the fault, so admitted under it).
    assert!(
        (samples.iter())
            .filter(|s| s.ok && s.instance == "a")
            .all(|s| s.sent < injected),
        "a stream from the faulty instance completed"
    );
    // Health takes a out at its third failure; the streams already on it fail too.
    let bound = 3 + CLIENTS - 1;
    assert!(
        lost.len() <= bound,
        "{} streams lost, more than failure_threshold + clients - 1 = {bound}",
        lost.len()
    );
    // Nothing else lost: the other streams are all clean (`ok`).
    assert_eq!(report.lost, lost.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_stalled_after_the_first_content_ends_with_an_error_event() {
    // Silence after two chunks; the attempt timeout (0.5 s) is the idle timeout.
    failure_after_the_commit_point(
        "stall_after_commit",
        json!({"name": "a", "stream_stall_after": 2}),
        "timeout = 0.5",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_truncated_after_the_first_content_ends_with_an_error_event() {
    failure_after_the_commit_point(
        "truncated_after_commit",
        json!({"name": "a", "stream_fail_after": 2}),
        "",
    )
    .await;
}
