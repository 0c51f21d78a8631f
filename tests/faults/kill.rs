//! Upstreams die under load: one of three stops itself (`POST /mock/die`), two of three are
//! killed with SIGKILL. Nothing is lost: every request that meets a dead instance is served by
//! a live one, and after the death no request is served by the dead.

use std::time::{Duration, Instant};

use crate::common::{Proc, requests_seen};
use crate::support::{Kind, NO_PROBES, SERIAL, Sample, Scene, report_no_loss};

const CLIENTS: usize = 8;

/// Served by `id` and sent after `t`.
fn served_by_after<'a>(samples: &'a [Sample], id: &str, t: Instant) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.instance == id && s.sent > t)
        .collect()
}

/// Wait (bounded: 10 s) until the process has exited.
fn exited(p: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the mock did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_one_of_three() {
    let _serial = SERIAL.lock().await;
    let Scene {
        mut a,
        b,
        c3,
        gw: _gw,
        c,
        load,
        tree: _tree,
    } = Scene::three_under_load("", "", NO_PROBES, CLIENTS, Kind::Chat).await;
    assert!(
        requests_seen(&c, &a).await > 0,
        "a took no traffic before it died"
    );

    let injecting = Instant::now();
    let r = c.post(format!("{}/mock/die", a.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    exited(&mut a);
    let dead = Instant::now();
    load.until_failover().await;
    load.run_out().await;
    let samples = load.stop().await;
    let report = report_no_loss("kill_one", &samples, Some(injecting));
    assert!(report.failover_ms.is_some());
    assert!(
        served_by_after(&samples, "a", dead).is_empty(),
        "served by a dead instance"
    );
    for s in samples.iter().filter(|s| s.attempts > 1) {
        assert!(s.trace.contains("/a="), "failed over from a: {}", s.trace);
    }
    // Every request b and c saw is one a client was served (no probes, no duplicates).
    let live: Vec<&Sample> = samples.iter().filter(|s| s.instance != "a").collect();
    assert_eq!(
        requests_seen(&c, &b).await + requests_seen(&c, &c3).await,
        live.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_two_of_three() {
    let _serial = SERIAL.lock().await;
    let Scene {
        a,
        b,
        c3,
        gw: _gw,
        c,
        load,
        tree: _tree,
    } = Scene::three_under_load("", "", NO_PROBES, CLIENTS, Kind::Chat).await;
    assert!(requests_seen(&c, &a).await > 0 && requests_seen(&c, &b).await > 0);

    // SIGKILL, and reaped: from here on their ports refuse connections.
    let injecting = Instant::now();
    drop(a);
    drop(b);
    let dead = Instant::now();
    load.until_failover().await;
    load.run_out().await;
    let samples = load.stop().await;
    let report = report_no_loss("kill_two", &samples, Some(injecting));
    assert!(report.failover_ms.is_some());
    for id in ["a", "b"] {
        assert!(
            served_by_after(&samples, id, dead).is_empty(),
            "served by dead {id}"
        );
    }
    let by_c = samples.iter().filter(|s| s.instance == "c").count();
    assert_eq!(requests_seen(&c, &c3).await, by_c as u64);
    assert!(by_c > 0);
}
