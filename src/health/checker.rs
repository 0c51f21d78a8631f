//! Active health checks: one probe per instance every `interval` (jittered by ±`jitter`, the
//! first at a random point of the first interval, so probes of many instances never align),
//! plus a probe the moment an ejection's time is up: that probe decides the recovery.
//!
//! One task per gateway runs the schedule; probes run as their own tasks. The schedule is kept
//! by instance id across config reloads and runtime changes, so a reload does not start a
//! storm of probes: only instances new to it get a first (randomly placed) probe. The same
//! task ends timed states on time (cool-downs, slow-start ramps, open breakers half-opening).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinSet;

use super::{Ejection, HealthPolicy, Probe, Verdict, cooldown};
use crate::gateway::Gateway;
use crate::provider::{ErrorClass, Operation};
use crate::stats::clock_ns;
use crate::upstream::{Instance, Upstream, read_body};

/// Largest probe reply read.
const MAX_PROBE_REPLY: usize = 1 << 20;
/// The schedule is looked at at least this often (config changes also wake it).
const MAX_NAP: Duration = Duration::from_secs(5);

/// Sends one probe. [`HttpProber`] in production; tests script verdicts.
pub trait Prober: Send + Sync + 'static {
    fn probe(&self, instance: Arc<Instance>) -> Pin<Box<dyn Future<Output = Verdict> + Send>>;
}

/// Probes over HTTP with the instance's own URL, key and headers.
#[derive(Debug, Default)]
pub struct HttpProber;

impl Prober for HttpProber {
    fn probe(&self, instance: Arc<Instance>) -> Pin<Box<dyn Future<Output = Verdict> + Send>> {
        Box::pin(async move { probe(&instance).await })
    }
}

/// Probe `inst` now, as its policy says.
pub async fn probe(inst: &Instance) -> Verdict {
    let hp = &inst.spec.health;
    let (op, body) = match hp.probe {
        Probe::Models => (Operation::Models, Bytes::new()),
        Probe::Chat => (Operation::Chat, chat_probe(&inst.spec.upstream_model)),
    };
    let request = match inst.request(op, false, body, None) {
        Ok(r) => r,
        Err(e) => return Verdict::fail(e.class, e.detail),
    };
    let deadline = tokio::time::Instant::now() + hp.timeout;
    let response = match Upstream::local().send(request, hp.timeout).await {
        Ok(r) => r,
        Err(e) => return Verdict::fail(e.class, e.detail),
    };
    let (head, body) = response.into_parts();
    let status = head.status;
    if status == http::StatusCode::TOO_MANY_REQUESTS {
        // Busy, not broken.
        return Verdict {
            cooldown: Some(cooldown::from_headers(&head.headers)),
            ..Verdict::pass()
        };
    }
    if !status.is_success() {
        let class = inst.adapter.classify(status);
        if class == ErrorClass::Client {
            // It answered coherently (say, a server without a /models route): it is up.
            return Verdict::pass();
        }
        return Verdict::fail(class, format!("probe answered {status}"));
    }
    let body = match read_body(body, MAX_PROBE_REPLY, deadline).await {
        Ok(b) => b,
        Err(e) => return Verdict::fail(e.class, e.detail),
    };
    let parsed = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let well_formed = match hp.probe {
        Probe::Models => parsed.is_some(),
        Probe::Chat => parsed.is_some_and(|v| v.get("choices").is_some_and(|c| c.is_array())),
    };
    if well_formed {
        Verdict::pass()
    } else {
        Verdict::fail(
            ErrorClass::Malformed,
            "probe reply is not the JSON the API promises",
        )
    }
}

fn chat_probe(model: &str) -> Bytes {
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    });
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .unwrap_or_default()
}

/// The next interval: `interval × (1 ± jitter)`.
fn jittered(hp: &HealthPolicy) -> u64 {
    let base = hp.interval.as_nanos() as f64;
    let spread = hp.jitter.clamp(0.0, 0.99) * (2.0 * fastrand::f64() - 1.0);
    (base * (1.0 + spread)).max(1e6) as u64
}

struct Due {
    next_ns: u64,
    /// When the last probe started.
    probed_ns: u64,
    running: bool,
}

/// Run the checker until the gateway is dropped.
pub async fn run(gateway: Weak<Gateway>, prober: Arc<dyn Prober>) {
    let mut schedule: HashMap<String, Due> = HashMap::new();
    let mut probes: JoinSet<String> = JoinSet::new();
    let mut ids: HashMap<tokio::task::Id, String> = HashMap::new();
    loop {
        let Some(snap) = gateway.upgrade().map(|g| g.snapshot()) else {
            return;
        };
        let now = clock_ns();
        let mut wake = snap.health.tick(&snap, now).unwrap_or(u64::MAX);
        schedule.retain(|id, due| due.running || snap.instance(id).is_some());
        for inst in &snap.instances {
            let hp = &inst.spec.health;
            if !hp.probes || inst.base_url.is_empty() || inst.live.is_draining() {
                continue;
            }
            let due = schedule.entry(inst.spec.id.clone()).or_insert_with(|| Due {
                next_ns: now + (hp.interval.as_nanos() as f64 * fastrand::f64()) as u64,
                probed_ns: 0,
                running: false,
            });
            if due.running {
                continue;
            }
            let mut at = due.next_ns;
            if let Ejection::Ejected { until_ns } = inst.live.gate().ejection() {
                // The ejection's end is a probe's cue (once per ejection).
                if due.probed_ns < until_ns {
                    at = at.min(until_ns);
                }
            }
            if at <= now {
                due.running = true;
                due.probed_ns = now;
                due.next_ns = now + jittered(hp);
                let (snap, inst, prober) =
                    (Arc::clone(&snap), Arc::clone(inst), Arc::clone(&prober));
                let id = inst.spec.id.clone();
                let handle = probes.spawn(async move {
                    let verdict = prober.probe(Arc::clone(&inst)).await;
                    snap.health.on_probe(&snap, &inst, &verdict, clock_ns());
                    inst.spec.id.clone()
                });
                ids.insert(handle.id(), id);
                at = due.next_ns;
            }
            wake = wake.min(at);
        }
        let nap = Duration::from_nanos(wake.saturating_sub(now)).min(MAX_NAP);
        drop(snap);
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            () = woken(&gateway) => {}
            Some(done) = probes.join_next_with_id(), if !probes.is_empty() => {
                // A probe that panicked still frees its instance's slot.
                let task = match &done {
                    Ok((task, _)) => *task,
                    Err(e) => e.id(),
                };
                if let Some(due) = ids.remove(&task).and_then(|id| schedule.get_mut(&id)) {
                    due.running = false;
                }
            }
        }
    }
}

async fn woken(gateway: &Weak<Gateway>) {
    match gateway.upgrade() {
        Some(g) => {
            let snap = g.snapshot();
            drop(g);
            snap.health.woken().await;
        }
        None => std::future::pending().await,
    }
}
