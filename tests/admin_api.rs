//! End to end: the admin API's OpenAPI document against the real binary. Every documented
//! operation exists (no routing 404 or 405), answers 401 without the token, and answers JSON
//! in the documented error shape when it refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{TOKEN, Tree, client, gateway, mock};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_admin_operation_exists_and_needs_the_token() {
    let up = mock("up", &[]);
    let t = Tree::new();
    t.file(
        "_registry.toml",
        &format!("[server]\nadmin_token = \"{TOKEN}\"\n[providers]\nup = {{ file = \"providers/up.toml\" }}\n"),
    )
    .file(
        "providers/up.toml",
        &format!("[provider]\ntype = \"openai\"\nbase_url = \"{}/v1\"\n[models.m]\n", up.url),
    );
    let gw = gateway(t.path());
    let c = client();
    let doc: Value = (c.get(format!("{}/admin/openapi.json", gw.url)))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            // Unknown names: nothing is changed by calling a mutation on them.
            let url = format!(
                "{}{}",
                gw.url,
                path.replace("{name}", "nonexistent")
                    .replace("{id}", "nonexistent")
            );
            let m: reqwest::Method = method.to_uppercase().parse().unwrap();
            let with_body = |req: reqwest::RequestBuilder| {
                if op.get("requestBody").is_some() {
                    req.header("content-type", "application/json").body("{}")
                } else {
                    req
                }
            };
            let r = with_body(c.request(m.clone(), &url)).send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} without a token");
            let r = with_body(c.request(m, &url).bearer_auth(TOKEN))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_ne!(status, 405, "{method} {path}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !message.starts_with("no endpoint"),
                "{method} {path} is not routed: {body}"
            );
            if status >= 400 {
                assert!(body["error"]["type"].is_string(), "{method} {path}: {body}");
            }
            let documented = op["responses"].get(status.to_string()).is_some();
            let generic = status == 422; // axum's own answer to a body missing fields
            assert!(
                documented || generic,
                "{method} {path} answered {status}, not documented: {body}"
            );
        }
    }
    assert!(operations >= 19, "{operations}");
}
