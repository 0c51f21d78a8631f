//! End to end: hot reload under steady load through the real binary. The config directory is
//! rewritten 20 times, valid and invalid alternately (strategies, weights, instances added and
//! removed); every valid tree goes live, every invalid one is refused with the old config
//! still serving, and no client request fails.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::{Duration, Instant};

use common::{Load, Proc, TOKEN, Tree, admin, client, gateway, mock};
use serde_json::Value;

/// The whole tree: instances `ids` (of `mocks`), pool strategy, a's weight; `broken` writes
/// only the task group, naming a model that does not exist (one file, so no half-written
/// tree in between is valid).
fn write(t: &Tree, mocks: &[(&str, &Proc)], strategy: &str, weight_a: u32, broken: bool) {
    let mut p = String::from(
        "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.m]\n",
    );
    for (id, m) in mocks {
        let weight = if *id == "a" { weight_a } else { 1 };
        p.push_str(&format!(
            "[[models.m.instances]]\nid = \"{id}\"\nbase_url = \"{}/v1\"\nweight = {weight}\n",
            m.url
        ));
    }
    let model = if broken { "up:nope" } else { "up:m" };
    let files = [
        ("providers/up.toml", p),
        (
            "task-groups/g.toml",
            format!("[task_group]\n[task_group.echelons.e1]\nmodels = [\"{model}\"]\n"),
        ),
        (
            "pools/p.toml",
            format!(
                "[pool]\ntask_groups = [\"g\"]\n[pool.rotation_strategy]\ntype = \"{strategy}\"\n"
            ),
        ),
        (
            "_registry.toml",
            format!(
                "[server]\nadmin_token = \"{TOKEN}\"\n[global]\nenable_hot_reload = true\nreload_interval = 0.2\n[providers]\nup = {{ file = \"providers/up.toml\" }}\n[task_groups]\ng = {{ file = \"task-groups/g.toml\" }}\n[pools]\np = {{ file = \"pools/p.toml\" }}\n"
            ),
        ),
    ];
    for (path, text) in files {
        if broken && path != "task-groups/g.toml" {
            continue;
        }
        // Write then rename: a reader sees the old file or the new one, never half of one.
        let full = t.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        let tmp = full.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &full).unwrap();
    }
}

async fn config(c: &reqwest::Client, gw: &Proc) -> Value {
    let (status, v) = admin(c, gw, "GET", "/admin/config", None).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Poll (bounded: 5 s) until `done` says yes about `/admin/config`.
async fn until(c: &reqwest::Client, gw: &Proc, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = config(c, gw).await;
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_rewrites_valid_and_invalid_under_load_lose_no_request() {
    let (a, b, c3) = (mock("a", &[]), mock("b", &[]), mock("c", &[]));
    let t = Tree::new();
    write(&t, &[("a", &a), ("b", &b)], "round_robin", 1, false);
    let gw = gateway(t.path());
    let c = client();
    let load = Load::start(&gw, "p", 4);
    load.advance(20).await;
    let strategies = [
        "least_connections",
        "weighted",
        "p2c",
        "round_robin",
        "random",
    ];
    for i in 0..20 {
        let before = config(&c, &gw).await;
        let version = before["version"].as_u64().unwrap();
        let rejected = before["rejected"].as_u64().unwrap();
        let strategy = strategies[i % strategies.len()];
        let with_c = i % 4 < 2;
        let mocks: Vec<(&str, &Proc)> = if with_c {
            vec![("a", &a), ("b", &b), ("c", &c3)]
        } else {
            vec![("a", &a), ("b", &b)]
        };
        if i % 2 == 0 {
            write(&t, &mocks, strategy, 1 + i as u32, false);
            // Several files change: wait until the last of them is live (a reload may have
            // caught the tree half written, valid on its own, first).
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let (_, pool) = admin(&c, &gw, "GET", "/admin/pools/p", None).await;
                let (_, inst_a) = admin(&c, &gw, "GET", "/admin/instances/a", None).await;
                if pool["strategy"] == strategy && inst_a["weight"] == 1 + i as u64 {
                    break;
                }
                assert!(Instant::now() < deadline, "change {i} never went live");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let v = config(&c, &gw).await;
            assert!(v["version"].as_u64() > Some(version), "{v}");
            // Visible: the strategy, the weight, the instances.
            let (_, pool) = admin(&c, &gw, "GET", "/admin/pools/p", None).await;
            assert_eq!(pool["strategy"], strategy, "{pool}");
            let (status, inst_a) = admin(&c, &gw, "GET", "/admin/instances/a", None).await;
            assert_eq!(status, 200);
            assert_eq!(inst_a["weight"], 1 + i as u64, "{inst_a}");
            let (status, _) = admin(&c, &gw, "GET", "/admin/instances/c", None).await;
            if with_c {
                assert_eq!(status, 200, "c was added");
            }
        } else {
            write(&t, &mocks, strategy, 1 + i as u32, true);
            let v = until(&c, &gw, "the invalid tree is refused", |v| {
                v["rejected"].as_u64() > Some(rejected)
            })
            .await;
            assert_eq!(
                v["version"].as_u64(),
                Some(version),
                "the old config keeps serving"
            );
            let issues = v["last_error"]["issues"].to_string();
            assert!(
                issues.contains("task-groups/g.toml:3: task_group.echelons.e1.models[0]"),
                "{issues}"
            );
        }
        load.advance(10).await;
    }
    let (done, failed) = load.stop().await;
    assert_eq!(failed, 0, "{failed} of {done} client requests failed");
    // A reload asked for now re-reads the same (last, invalid) tree: refused again.
    let (status, r) = admin(&c, &gw, "POST", "/admin/reload", None).await;
    assert_eq!(
        status, 409,
        "the tree on disk is the last, invalid one: {r}"
    );
}
