//! The config directory rewritten every second under steady load (hot reload: the gateway
//! watches it): each rewrite changes the echelon's strategy and an instance's weight and adds
//! or removes a third instance (removed ones drain). Each version goes live and no request is
//! lost.

use std::time::{Duration, Instant};

use crate::common::{Proc, Tree, admin, client, gateway, mock, requests_seen};
use crate::support::{Kind, Load, NO_PROBES, SERIAL, report_no_loss, secs, write};

const RELOAD: &str = "[global]\nenable_hot_reload = true\nreload_interval = 0.2\n";
const STRATEGIES: [&str; 4] = ["least_connections", "weighted", "p2c", "round_robin"];

fn rewrite(t: &Tree, i: usize, a: &Proc, b: &Proc, c: &Proc) {
    let weight = format!("weight = {}", i + 1);
    let mut instances: Vec<(&str, &Proc, &str)> = vec![("a", a, &weight), ("b", b, "")];
    if i % 2 == 0 {
        instances.push(("c", c, ""));
    }
    let echelon = format!("strategy = \"{}\"", STRATEGIES[i % STRATEGIES.len()]);
    write(t, &instances, &echelon, NO_PROBES, RELOAD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_every_second_under_load_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let (a, b, c3) = (mock("a", &[]), mock("b", &[]), mock("c", &[]));
    let t = Tree::new();
    write(&t, &[("a", &a, ""), ("b", &b, "")], "", NO_PROBES, RELOAD);
    let gw = gateway(t.path());
    let c = client();
    let (_, v) = admin(&c, &gw, "GET", "/admin/config", None).await;
    let first = v["version"].as_u64().unwrap();
    let load = Load::start(&gw, "g", 8, Kind::Chat);
    load.advance(20).await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut reloads = 0;
    // At least two rewrites, one a second, for the scenario's duration.
    while reloads < 2 || load.started.elapsed() < secs() {
        tick.tick().await;
        rewrite(&t, reloads, &a, &b, &c3);
        // Several files change: wait (bounded) until the last of them is live.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, inst_a) = admin(&c, &gw, "GET", "/admin/instances/a", None).await;
            let (status_c, _) = admin(&c, &gw, "GET", "/admin/instances/c", None).await;
            if inst_a["weight"] == reloads as u64 + 1 && (status_c == 200) == (reloads % 2 == 0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rewrite {reloads} never went live"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        reloads += 1;
    }
    load.advance(20).await;
    let samples = load.stop().await;
    report_no_loss("reload_every_1s", &samples, None);
    let (_, v) = admin(&c, &gw, "GET", "/admin/config", None).await;
    assert!(
        v["version"].as_u64().unwrap() >= first + reloads as u64,
        "{reloads} rewrites, versions {first} → {}",
        v["version"]
    );
    assert_eq!(v["rejected"], 0, "{v}");
    // The instance that came and went served while it was there.
    assert!(requests_seen(&c, &c3).await > 0);
    eprintln!("reload_every_1s: {reloads} reloads");
}
