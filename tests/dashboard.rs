//! End to end in a real browser: the gateway on its embedded demo config, `/dashboard` in
//! headless Chromium. The page asks for the token, shows every instance, follows an instance
//! being killed to `ejected`, and switches a pool's strategy, probes and drains from its
//! buttons. A screenshot goes to `$SWITCHYARD_SCREENSHOT` (how `docs/dashboard.png` is made),
//! else to cargo's test temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::time::{Duration, Instant};

use browser::Browser;
use common::{Load, Proc, client};
use serde_json::{Value, json};

/// The demo's admin token (`${SWITCHYARD_ADMIN_TOKEN:demo-admin-token}`).
const DEMO_TOKEN: &str = "demo-admin-token";

async fn admin(c: &reqwest::Client, gw: &Proc, method: &str, path: &str) -> Value {
    let r = (c.request(method.parse().unwrap(), format!("{}{path}", gw.url)))
        .bearer_auth(DEMO_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    r.json().await.unwrap()
}

/// The ids of the instance rows the page shows, sorted, comma-separated.
const ROWS: &str = "[...document.querySelectorAll('tr[data-instance]')].map(r => r.dataset.instance).sort().join(',')";

fn row_state(id: &str) -> String {
    format!("document.querySelector('tr[data-instance=\"{id}\"]')?.dataset.state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_every_instance_follows_a_kill_and_switches_a_strategy() {
    let gw = Proc::start(&["serve", "--listen", "127.0.0.1:0"]);
    let c = client();
    let listed = admin(&c, &gw, "GET", "/admin/instances").await;
    let mut ids: Vec<String> = (listed["data"].as_array().unwrap().iter())
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert!(ids.len() >= 8, "the demo has eight instances: {ids:?}");

    let mut page = Browser::launch(1440, 1000).await;
    page.goto(&format!("{}/dashboard", gw.url)).await;
    // No token yet: the page asks for one, and shows nothing else.
    page.wait_for(
        "the token form shows",
        "!document.getElementById('login').classList.contains('hidden')",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(page.eval(ROWS).await, json!(""));
    page.eval("document.getElementById('token').focus()").await;
    page.type_text(DEMO_TOKEN).await;
    page.eval("document.querySelector('#login-form button').click()")
        .await;

    // Every instance of the demo config, each with a state.
    let shown = page
        .wait_for(
            "every instance is shown",
            &format!("{ROWS} === {:?} && {ROWS}", ids.join(",")),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(shown, json!(ids.join(",")));
    for id in &ids {
        let state = page.eval(&row_state(id)).await;
        assert!(state.is_string(), "{id}: {state}");
    }

    // Kill a healthy member of fast_pool (its mock server stops listening) under load: the
    // page shows it ejected within seconds.
    let status = admin(&c, &gw, "GET", "/admin/status").await;
    let fast = (status["pools"].as_array().unwrap().iter())
        .find(|p| p["name"] == "fast_pool")
        .expect("the demo has fast_pool");
    let healthy = |id: &str| {
        (status["instances"].as_array().unwrap().iter())
            .any(|i| i["id"] == id && i["state"] == "healthy")
    };
    let victim = (fast["members"].as_array().unwrap().iter())
        .filter_map(Value::as_str)
        .find(|id| healthy(id))
        .expect("a healthy fast_pool member")
        .to_owned();
    let base = (listed["data"].as_array().unwrap().iter())
        .find(|i| i["id"] == victim)
        .and_then(|i| i["base_url"].as_str())
        .unwrap()
        .trim_end_matches("/v1")
        .to_owned();
    let load = Load::start(&gw, "fast", 2);
    load.advance(10).await;
    let r = c.post(format!("{base}/mock/die")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let killed = Instant::now();
    page.wait_for(
        &format!("{victim} shows as ejected"),
        &format!("{} === 'ejected'", row_state(&victim)),
        Duration::from_secs(10),
    )
    .await;
    let took = killed.elapsed();
    // Its time series has points (the page's own readings, one a second).
    page.wait_for(
        "the victim's time series has points",
        &format!("Number(document.querySelector('tr[data-instance=\"{victim}\"] svg.spark').dataset.points) >= 2"),
        Duration::from_secs(10),
    )
    .await;
    let reason = page
        .eval(&format!(
            "document.querySelector('tr[data-instance=\"{victim}\"] .reason').textContent"
        ))
        .await;
    assert!(reason.as_str().unwrap().starts_with("ejected"), "{reason}");

    // Switch fast_pool's strategy from the page's own control.
    page.eval(
        "(() => { const s = document.querySelector('select[data-tier=\"fast_pool\"]');
                  s.value = 'p2c'; s.dispatchEvent(new Event('change')); })()",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pool = admin(&c, &gw, "GET", "/admin/pools/fast_pool").await;
        if pool["strategy"] == "p2c" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the switch never reached the gateway: {pool}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    page.wait_for(
        "the page shows the new strategy",
        "document.querySelector('select[data-tier=\"fast_pool\"]').value === 'p2c' && document.getElementById('msg').textContent.includes('done')",
        Duration::from_secs(10),
    )
    .await;

    // Force a health check of the dead instance from its row: the probe fails.
    page.eval(&format!(
        "document.querySelector('tr[data-instance=\"{victim}\"] button[data-action=check]').click()"
    ))
    .await;
    page.wait_for(
        "the probe's verdict shows",
        &format!(
            "document.getElementById('msg').textContent.startsWith('probe of {victim}: failed')"
        ),
        Duration::from_secs(10),
    )
    .await;
    let (done, failed) = load.stop().await;
    assert_eq!(
        failed, 0,
        "{failed} of {done} client requests failed across the kill"
    );

    let shot = std::env::var_os("SWITCHYARD_SCREENSHOT").map_or_else(
        || std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"),
        std::path::PathBuf::from,
    );
    page.screenshot(&shot).await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);

    // Drain another instance from its row (after the confirmation): it leaves the page.
    let other = ids.iter().find(|id| **id != victim).unwrap().clone();
    page.eval("window.confirm = () => true").await;
    page.eval(&format!(
        "document.querySelector('tr[data-instance=\"{other}\"] button[data-action=drain]').click()"
    ))
    .await;
    page.wait_for(
        &format!("{other} leaves the page"),
        &format!("!document.querySelector('tr[data-instance=\"{other}\"]')"),
        Duration::from_secs(10),
    )
    .await;
    let r = (c.get(format!("{}/admin/instances/{other}", gw.url)))
        .bearer_auth(DEMO_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "{other} is gone");
    eprintln!(
        "killed {victim}: shown ejected after {took:?}; screenshot {}",
        shot.display()
    );
}
