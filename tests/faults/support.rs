//! What every fault scenario shares: the config tree, the client load that records each
//! request, bounded polling, and the report line (`FAULT scenario=… requests=… ok=…
//! success=…% failover_ms=… failover_max_ms=… lost=…`) that `bench/faults.sh` collects.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use crate::common::set_behavior;
use crate::common::{Proc, TOKEN, Tree, admin, chat_body, client, gateway, mock, requests_seen};

/// Scenarios run one at a time (cargo runs tests on several threads): each owns the machine's
/// two cores while it measures, so one scenario's load never slows another's failover.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Load duration of one scenario: `FAULTS_SECS` (seconds, fractions allowed), default 2.
pub fn secs() -> Duration {
    let s = std::env::var("FAULTS_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(2.0);
    Duration::from_secs_f64(s)
}

/// Longest any one client request may take before it counts as lost (and the load stops
/// waiting for it): far above every timeout the scenarios configure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Provider `up`, model `m`, one instance per `(id, mock, extra instance keys)` (timeout 10 s
/// unless the extra keys say otherwise); task group `g` with echelon `e1` (round robin over
/// up:m, `echelon` extra keys); pool `p` over `g` carrying `[pool.health_check]` = `health`;
/// `registry` extra `_registry.toml` text before the tables. Requests go to `g`.
pub fn tree(
    instances: &[(&str, &Proc, &str)],
    echelon: &str,
    health: &str,
    registry: &str,
) -> Tree {
    let t = Tree::new();
    write(&t, instances, echelon, health, registry);
    t
}

/// [`tree`]'s files written into `t` (each by write-then-rename, for reloads).
pub fn write(
    t: &Tree,
    instances: &[(&str, &Proc, &str)],
    echelon: &str,
    health: &str,
    registry: &str,
) {
    let mut p = String::from(
        "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.m]\n",
    );
    for (id, m, extra) in instances {
        let timeout = if extra.contains("timeout") {
            ""
        } else {
            "timeout = 10\n"
        };
        p.push_str(&format!(
            "[[models.m.instances]]\nid = \"{id}\"\nbase_url = \"{}/v1\"\n{timeout}{extra}\n",
            m.url
        ));
    }
    let strategy = if echelon.contains("strategy") {
        ""
    } else {
        "strategy = \"round_robin\"\n"
    };
    let files = [
        ("providers/up.toml", p),
        (
            "task-groups/g.toml",
            format!(
                "[task_group]\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\n{strategy}{echelon}\n"
            ),
        ),
        (
            "pools/p.toml",
            format!("[pool]\ntask_groups = [\"g\"]\n[pool.health_check]\n{health}\n"),
        ),
        (
            "_registry.toml",
            format!(
                "{registry}\n[server]\nadmin_token = \"{TOKEN}\"\n[providers]\nup = {{ file = \"providers/up.toml\" }}\n[task_groups]\ng = {{ file = \"task-groups/g.toml\" }}\n[pools]\np = {{ file = \"pools/p.toml\" }}\n"
            ),
        ),
    ];
    for (path, text) in files {
        let full = t.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        let tmp = full.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &full).unwrap();
    }
}

/// Health keys that keep the scenario's own fault in charge: no active probes (a probe is
/// not client traffic and would add requests the mock counts), everything else default.
pub const NO_PROBES: &str = "enabled = false";

/// Poll (bounded: 20 s, every 10 ms) until `done` holds.
pub async fn until<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET /admin/health`'s entry for instance `id`.
pub async fn health_of(c: &reqwest::Client, gw: &Proc, id: &str) -> Value {
    let (status, all) = admin(c, gw, "GET", "/admin/health", None).await;
    assert_eq!(status, 200, "{all}");
    let found = all["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id);
    found
        .cloned()
        .unwrap_or_else(|| panic!("no instance {id} in {all}"))
}

/// What a client request is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Chat,
    /// `stream: true`, read to the end; it counts as served only if it is a clean stream
    /// (content, no error event, `[DONE]` last).
    Stream,
}

/// One finished client request.
#[derive(Debug, Clone)]
pub struct Sample {
    pub sent: Instant,
    /// Until the response head: for a stream, its commit point (first content ready).
    pub head: Duration,
    /// Until the end of the body.
    pub took: Duration,
    /// Served: 200 and, for streams, a clean stream.
    pub ok: bool,
    pub status: u16,
    /// `x-switchyard-attempts` (0 if absent).
    pub attempts: u32,
    /// `x-switchyard-instance` ("" if absent).
    pub instance: String,
    /// `x-switchyard-trace` ("" if absent).
    pub trace: String,
    /// Why it was not served, or (streams) the body.
    pub detail: String,
}

/// Steady load: `clients` tasks, each sending `kind` requests to `model` one after another
/// until stopped; every request is recorded.
pub struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    failovers: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sample>>>,
    pub started: Instant,
}

impl Load {
    pub fn start(gw: &Proc, model: &str, clients: usize, kind: Kind) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let failovers = Arc::new(AtomicU64::new(0));
        let mut body = chat_body(model);
        if kind == Kind::Stream {
            body["stream"] = json!(true);
        }
        let url = format!("{}/v1/chat/completions", gw.url);
        // One client shared by every task: each task's request in flight has a connection of
        // its own (the pool opens one per concurrent request). Building a reqwest client
        // costs milliseconds of CPU (TLS roots), 1,000 of them would starve the load.
        let c = client();
        let tasks = (0..clients)
            .map(|_| {
                let (stop, done, failovers) = (stop.clone(), done.clone(), failovers.clone());
                let (url, body) = (url.clone(), body.clone());
                let c = c.clone();
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    // At least one request per client, however early the load stops.
                    loop {
                        let s = one(&c, &url, &body, kind).await;
                        if s.ok && s.attempts > 1 {
                            failovers.fetch_add(1, Ordering::Relaxed);
                        }
                        samples.push(s);
                        done.fetch_add(1, Ordering::Relaxed);
                        if stop.load(Ordering::Relaxed) {
                            return samples;
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            done,
            failovers,
            tasks,
            started: Instant::now(),
        }
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Wait (bounded: 60 s) until `n` more requests have finished.
    pub async fn advance(&self, n: u64) {
        let target = self.done() + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.done() < target {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Wait (bounded: 20 s) until some request was served after a failed attempt.
    pub async fn until_failover(&self) {
        let f = &self.failovers;
        until("a request is failed over", || async move {
            f.load(Ordering::Relaxed) > 0
        })
        .await;
    }

    /// Keep the load going until `secs()` after it started (the scenario's duration: load,
    /// not synchronisation).
    pub async fn run_out(&self) {
        let end = self.started + secs();
        tokio::time::sleep_until(end.into()).await;
    }

    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.unwrap());
        }
        all.sort_by_key(|s| s.sent);
        all
    }
}

/// One request, recorded.
async fn one(c: &reqwest::Client, url: &str, body: &Value, kind: Kind) -> Sample {
    let sent = Instant::now();
    let mut s = Sample {
        sent,
        head: Duration::ZERO,
        took: Duration::ZERO,
        ok: false,
        status: 0,
        attempts: 0,
        instance: String::new(),
        trace: String::new(),
        detail: String::new(),
    };
    let sent_req = c
        .post(url)
        .header("x-switchyard-trace", "1")
        .timeout(REQUEST_TIMEOUT)
        .json(body)
        .send()
        .await;
    match sent_req {
        Err(e) => s.detail = format!("{e:?}"),
        Ok(r) => {
            s.head = sent.elapsed();
            s.status = r.status().as_u16();
            let header = |name: &str| {
                (r.headers().get(name))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            s.attempts = header("x-switchyard-attempts").parse().unwrap_or(0);
            s.instance = header("x-switchyard-instance");
            s.trace = header("x-switchyard-trace");
            match r.text().await {
                Err(e) => s.detail = format!("body: {e:?}"),
                Ok(text) => {
                    s.ok = s.status == 200 && (kind == Kind::Chat || clean_stream(&text));
                    if !s.ok || kind == Kind::Stream {
                        s.detail = text;
                    }
                }
            }
        }
    }
    s.took = sent.elapsed();
    s
}

/// A stream an OpenAI SDK reads to the end without complaint: chunk objects with content, no
/// error event, `data: [DONE]` last.
pub fn clean_stream(text: &str) -> bool {
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .collect();
    let Some((last, chunks)) = events.split_last() else {
        return false;
    };
    if last.trim() != "data: [DONE]" {
        return false;
    }
    let mut content = String::new();
    for e in chunks {
        let Some(data) = e.trim().strip_prefix("data:") else {
            return false;
        };
        let Ok(v) = serde_json::from_str::<Value>(data.trim()) else {
            return false;
        };
        if v.get("error").is_some() || v["object"] != "chat.completion.chunk" {
            return false;
        }
        content.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
    }
    !content.is_empty()
}

/// The content of a stream's chunks, concatenated.
pub fn content(text: &str) -> String {
    (text.split("\n\n"))
        .filter_map(|e| e.trim().strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// A stream that ended with an error event and then `[DONE]` (a failure after the commit
/// point, reported, never a silent truncation).
pub fn error_then_done(text: &str) -> bool {
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .collect();
    match events.as_slice() {
        [.., error, done] => {
            done.trim() == "data: [DONE]"
                && error.trim().strip_prefix("data:").is_some_and(|d| {
                    serde_json::from_str::<Value>(d.trim()).is_ok_and(|v| v.get("error").is_some())
                })
        }
        _ => false,
    }
}

/// One scenario's figures.
pub struct Report {
    pub scenario: &'static str,
    pub requests: usize,
    pub ok: usize,
    pub lost: usize,
    /// Failover time of the first request served elsewhere after meeting the fault: from the
    /// fault's first effect on it (its failed attempt went out when it was sent, or, for a
    /// request already in flight, the injection moment) to its success (the response head;
    /// for a stream, its commit point).
    pub failover_ms: Option<f64>,
    /// The longest such failover.
    pub failover_max_ms: Option<f64>,
    /// Median time to the response head of the requests served at the first attempt: what a
    /// failover time compares with on this machine.
    pub p50_ms: Option<f64>,
}

impl Report {
    /// Figures of `samples` (every request not served is lost); `injected` is when the fault
    /// began, if it began mid-load.
    pub fn of(scenario: &'static str, samples: &[Sample], injected: Option<Instant>) -> Self {
        let ok = samples.iter().filter(|s| s.ok).count();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        // (end, failover) of each request served after a failed attempt.
        let mut failovers: Vec<(Instant, f64)> = (samples.iter())
            .filter(|s| s.ok && s.attempts > 1)
            .map(|s| {
                let end = s.sent + s.head;
                let from = injected.map_or(s.sent, |i| i.max(s.sent));
                (end, ms(end.saturating_duration_since(from)))
            })
            .collect();
        failovers.sort_by_key(|(end, _)| *end);
        let mut firsts: Vec<f64> = (samples.iter())
            .filter(|s| s.ok && s.attempts <= 1)
            .map(|s| ms(s.head))
            .collect();
        firsts.sort_by(f64::total_cmp);
        Self {
            scenario,
            requests: samples.len(),
            ok,
            lost: samples.len() - ok,
            failover_ms: failovers.first().map(|(_, f)| *f),
            failover_max_ms: failovers.iter().map(|(_, f)| *f).reduce(f64::max),
            p50_ms: firsts.get(firsts.len() / 2).copied(),
        }
    }

    /// Print the report line (`--nocapture` shows it; the bench script greps it).
    pub fn print(&self) {
        let success = if self.requests == 0 {
            0.0
        } else {
            self.ok as f64 * 100.0 / self.requests as f64
        };
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        eprintln!(
            "FAULT scenario={} requests={} ok={} success={success:.2}% failover_ms={} failover_max_ms={} p50_ms={} lost={}",
            self.scenario,
            self.requests,
            self.ok,
            ms(self.failover_ms),
            ms(self.failover_max_ms),
            ms(self.p50_ms),
            self.lost
        );
    }
}

/// Print the report, then fail on any lost request, showing the first few.
pub fn report_no_loss(
    scenario: &'static str,
    samples: &[Sample],
    injected: Option<Instant>,
) -> Report {
    let r = Report::of(scenario, samples, injected);
    r.print();
    assert!(r.requests > 0, "{scenario}: no request was sent");
    let lost: Vec<&Sample> = samples.iter().filter(|s| !s.ok).take(3).collect();
    assert_eq!(
        r.lost, 0,
        "{scenario}: {} of {} client requests lost, e.g. {lost:#?}",
        r.lost, r.requests
    );
    r
}

/// The usual scene: mocks `a`, `b` and `c3` behind task group `g` ([`tree`] with `a_keys` as
/// a's extra instance keys and the given `echelon` and `health`), the gateway, a client, and
/// `clients` of `kind` load that has already sent its first 30 requests. Bind `tree` too:
/// the gateway keeps watching that directory.
pub struct Scene {
    pub a: Proc,
    pub b: Proc,
    pub c3: Proc,
    pub gw: Proc,
    pub c: reqwest::Client,
    pub load: Load,
    pub tree: Tree,
}

impl Scene {
    pub async fn three_under_load(
        a_keys: &str,
        echelon: &str,
        health: &str,
        clients: usize,
        kind: Kind,
    ) -> Self {
        let (a, b, c3) = (mock("a", &[]), mock("b", &[]), mock("c", &[]));
        let tree = tree(
            &[("a", &a, a_keys), ("b", &b, ""), ("c", &c3, "")],
            echelon,
            health,
            "",
        );
        let gw = gateway(tree.path());
        let c = client();
        let load = Load::start(&gw, "g", clients, kind);
        load.advance(30).await;
        Self {
            a,
            b,
            c3,
            gw,
            c,
            load,
            tree,
        }
    }

    /// Makes `a` faulty with `behavior` mid-load and checks what every failover scenario
    /// promises: no request lost (the `scenario` report line, with a failover time); each
    /// request that took more than one attempt names `/a={failure}` in its trace (an empty
    /// `failure` takes any class) and was served elsewhere; `a` served nothing sent after the
    /// fault; and `a` saw exactly the requests it served plus those failed over.
    pub async fn fault_a(self, scenario: &'static str, behavior: Value, failure: &str) {
        let injecting = Instant::now();
        set_behavior(&self.c, &self.a, behavior).await;
        // Requests sent from now on reach a after its fault.
        let injected = Instant::now();
        self.load.until_failover().await;
        self.load.run_out().await;
        let samples = self.load.stop().await;
        let report = report_no_loss(scenario, &samples, Some(injecting));
        assert!(report.failover_ms.is_some());
        let failed_over: Vec<_> = samples.iter().filter(|s| s.attempts > 1).collect();
        let mark = format!("/a={failure}");
        for s in &failed_over {
            assert!(s.trace.contains(&mark), "{}", s.trace);
            assert_ne!(s.instance, "a");
        }
        let served_by_a: Vec<_> = samples.iter().filter(|s| s.instance == "a").collect();
        assert!(
            served_by_a.iter().all(|s| s.sent < injected),
            "a served a request after its fault"
        );
        assert_eq!(
            requests_seen(&self.c, &self.a).await,
            (served_by_a.len() + failed_over.len()) as u64,
            "every request a failed was failed over, and only those"
        );
    }
}
