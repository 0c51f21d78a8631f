//! The command line: `validate` and `serve` on the embedded demo.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::process::Command;

use common::{BIN, Proc, Tree, chat_body, client, models};

#[test]
fn validate_prints_file_line_key_reason_and_fails_on_a_dangling_reference() {
    let t = Tree::new();
    t.file(
        "_registry.toml",
        "[providers]\nup = { file = \"up.toml\" }\n[pools]\np = { file = \"p.toml\" }\n",
    );
    t.file(
        "up.toml",
        "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.m]\n",
    );
    t.file("p.toml", "[pool]\ntask_groups = [\"missing_group\"]\n");
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(t.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("p.toml:2: pool.task_groups[0]: unknown task group \"missing_group\""),
        "{stderr}"
    );
}

#[test]
fn validate_json_lists_every_problem_with_file_and_key_and_graph_prints_the_plans() {
    let t = Tree::new();
    t.file(
        "_registry.toml",
        "[providers]\nup = { file = \"up.toml\" }\n[pools]\np = { file = \"p.toml\" }\n",
    );
    t.file(
        "up.toml",
        "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.m]\n",
    );
    t.file(
        "p.toml",
        "[pool]\ntask_groups = [\"missing\"]\n[pool.health_check]\nfailure_threshold = 0\n",
    );
    let out = Command::new(BIN)
        .args(["validate", "--format", "json", "--config"])
        .arg(t.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let keys: Vec<(&str, &str)> = (v["issues"].as_array().unwrap().iter())
        .map(|i| (i["file"].as_str().unwrap(), i["key"].as_str().unwrap()))
        .collect();
    assert!(keys.contains(&("p.toml", "pool.task_groups[0]")), "{v}");
    assert!(
        keys.contains(&("p.toml", "pool.health_check.failure_threshold")),
        "{v}"
    );

    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo");
    let out = Command::new(BIN)
        .args(["validate", "--graph", "--format", "json", "--config", demo])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = (v["plans"].as_array().unwrap().iter())
        .find(|p| p["route"] == "thinking")
        .unwrap();
    assert_eq!(plan["plan"][1]["tier"], "fast_pool", "{plan}");
    assert_eq!(plan["plan"][1]["step"], "pool_fallback");
}

/// Seed 004's example files, as written (plus the providers and the three files its registry
/// names without showing), load in strict mode.
#[test]
fn validate_accepts_seed_004s_examples_as_written() {
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed");
    let out = Command::new(BIN)
        .args(["validate", "--graph", "--config", seed])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The thinking pool's TOML 1.1 multi-line inline `weights` table was read.
    assert!(
        stdout
            .contains("thinking_pool [pool]: thinking_pool (primary) → fast_pool (pool_fallback)"),
        "{stdout}"
    );
    assert!(stdout.contains("fast_group [task_group]: fast_group.echelon1 (primary) → fast_group.echelon2 (echelon_down) → fast_group.echelon3 (echelon_down)"), "{stdout}");
}

#[test]
fn validate_accepts_the_demo_tree() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo");
    let out = Command::new(BIN)
        .args(["validate", "--config", demo])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout).unwrap().contains("is valid"));
}

#[tokio::test]
async fn serve_without_config_runs_the_embedded_demo_on_in_process_mocks() {
    let gw = Proc::start(&["serve", "--listen", "127.0.0.1:0"]);
    let c = client();
    let listed = models(&c, &gw).await;
    let ids: Vec<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
    for name in [
        "fast",
        "fast_pool",
        "thinking_group",
        "plan_group.echelon1",
        "mock-openai:gpt-4o",
        "gpt-4o-east",
    ] {
        assert!(ids.contains(&name), "{name} not in {ids:?}");
    }
    // plan_group's echelon1 has a down instance (503): every request must still succeed.
    for _ in 0..4 {
        let r = c
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&chat_body("plan"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-switchyard-instance"], "deepseek-a");
    }
}
