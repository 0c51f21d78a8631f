//! Shared harness for the end-to-end tests: the real `switchyard` binary, started as mock
//! upstreams and as the gateway on 127.0.0.1 port 0, plus config trees in temp dirs.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: a failed setup step should fail the test loudly"
)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// The binary the harness starts: `SWITCHYARD_BIN` if set (e.g. a release build for
/// `bench/faults.sh`), else the one cargo built for this test.
pub fn bin() -> String {
    std::env::var("SWITCHYARD_BIN").unwrap_or_else(|_| BIN.to_owned())
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    /// `http://127.0.0.1:PORT` (no path).
    pub url: String,
    pub log: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Proc {
    /// Start `switchyard ARGS`, wait for its `... listening on http://ADDR` line.
    pub fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let mut child = Command::new(bin())
            .args(args)
            .env_remove("RUST_LOG")
            // A last-good snapshot (`cache_enabled`) goes to this process's own temp dir.
            .env("SWITCHYARD_STATE_DIR", dir.path().join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let Some(start) = line.find("http://") else {
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("switchyard {args:?} did not start: stdout {line:?}, stderr:\n{stderr}");
        };
        let url = line[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches("/v1")
            .to_owned();
        Self {
            child,
            url,
            log,
            _dir: Some(dir),
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait (bounded) until the log holds `needle`: lines are written by a background thread.
    pub fn wait_for_log(&self, needle: &str) -> String {
        for _ in 0..200 {
            let log = self.stderr();
            if log.contains(needle) {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("log never contained {needle:?}:\n{}", self.stderr());
    }

    /// Send SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for exit (the test's own timeout bounds this).
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A mock upstream: `switchyard mock --listen 127.0.0.1:0 ARGS`.
pub fn mock(name: &str, args: &[&str]) -> Proc {
    let mut all = vec!["mock", "--listen", "127.0.0.1:0", "--name", name];
    all.extend_from_slice(args);
    Proc::start(&all)
}

/// The gateway on a config directory.
pub fn gateway(config: &Path) -> Proc {
    Proc::start(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
}

/// A config tree in a temp dir.
pub struct Tree(pub tempfile::TempDir);

impl Tree {
    pub fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    pub fn file(&self, path: &str, text: &str) -> &Self {
        let full = self.0.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
        self
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// An HTTP client for tests (plain HTTP to loopback only).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub fn chat_body(model: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
}

/// A mock's counters from `GET /mock/stats`.
pub async fn stats(c: &reqwest::Client, mock: &Proc) -> Value {
    c.get(format!("{}/mock/stats", mock.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// API requests a mock served, not counting `GET /v1/models` (the gateway's health probes).
pub async fn requests_seen(c: &reqwest::Client, mock: &Proc) -> u64 {
    let s = stats(c, mock).await;
    s["requests"].as_u64().unwrap() - s["models"].as_u64().unwrap()
}

/// `GET /v1/models` as `(id, switchyard_kind)` pairs.
pub async fn models(c: &reqwest::Client, gw: &Proc) -> Vec<(String, String)> {
    let listed: Value = c
        .get(format!("{}/v1/models", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let field = |k: &str| m[k].as_str().unwrap().to_owned();
            (field("id"), field("switchyard_kind"))
        })
        .collect()
}

/// A loopback port nothing listens on.
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The load: `clients` tasks sending chat requests to `model` until `stop`; every non-200 is
/// counted in `failed`, every finished request in `done`.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub done: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(gw: &Proc, model: &'static str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|_| {
                let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
                let url = gw.url.clone();
                tokio::spawn(async move {
                    let c = client();
                    let gw_url = url;
                    while !stop.load(Ordering::Relaxed) {
                        let status = c
                            .post(format!("{gw_url}/v1/chat/completions"))
                            .json(&chat_body(model))
                            .send()
                            .await
                            .map_or(0, |r| r.status().as_u16());
                        if status != 200 {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Self {
            stop,
            done,
            failed,
            tasks,
        }
    }

    /// Wait until `n` more requests have finished (polling the counter; a stalled load
    /// fails the test after a minute instead of hanging it).
    pub async fn advance(&self, n: u64) {
        let target = self.done.load(Ordering::Relaxed) + n;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.done.load(Ordering::Relaxed) < target {
            assert!(std::time::Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    pub async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        (
            self.done.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// The admin token the end-to-end trees configure.
pub const TOKEN: &str = "test-admin-token";

/// One admin API call with [`TOKEN`]: status and JSON body (`null` if none).
pub async fn admin(
    c: &reqwest::Client,
    gw: &Proc,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{path}", gw.url);
    let mut req = c.request(method.parse().unwrap(), url).bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Replace mock `m`'s whole behaviour (`PUT /mock/behavior`); the mock must accept it.
pub async fn set_behavior(c: &reqwest::Client, m: &Proc, behavior: Value) {
    let r = c
        .put(format!("{}/mock/behavior", m.url))
        .json(&behavior)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}
