//! The health rules on a real snapshot (three instances a, b, c in pool p and group g), time
//! passed by hand; and the checker's schedule on tokio's paused clock with scripted probes.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::checker::Prober;
use super::*;
use crate::config::{CapturedSource, Config, MemorySource, Price};
use crate::gateway::Gateway;
use crate::stats::{Attempt, clock_ns};

const S: u64 = 1_000_000_000;
/// Tests start here, not at 0 (a real clock never reads 0 either).
const T0: u64 = 1000 * S;
const FAIL: Outcome = Outcome::Failure(ErrorClass::Server);
const OK: Outcome = Outcome::Success {
    prompt_tokens: 1,
    completion_tokens: 1,
};

/// Pool p (health: `eject` failures eject, 10 s recovery doubling to 100 s, 50 % error rate
/// over 4+ requests, half the pool at most) over group g (breaker: `breaker` failures open
/// it, 10 s, 2 trial requests), three instances of one model.
fn source(eject: u32, breaker: u32) -> MemorySource {
    let pool = format!(
        "[pool]\ntask_groups = [\"g\"]\n[pool.health_check]\ninterval = 1\njitter = 0\nfailure_threshold = {eject}\nrecovery_time = 10\nmax_ejection_time = 100\nerror_rate_threshold = 0.5\nmin_requests = 4\nmax_ejection_percent = 50\nslow_start = 0\n"
    );
    let group = format!(
        "[task_group.circuit_breaker]\nfailure_threshold = {breaker}\nrecovery_time = 10\nhalf_open_requests = 2\n[task_group.echelons.e1]\nmodels = [\"up:m\"]\n"
    );
    let files = [
        (
            "_registry.toml",
            "[providers]\nup = { file = \"up.toml\" }\n[pools]\np = { file = \"p.toml\" }\n[task_groups]\ng = { file = \"g.toml\" }\n",
        ),
        (
            "up.toml",
            "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.m]\n[[models.m.instances]]\nid = \"a\"\n[[models.m.instances]]\nid = \"b\"\n[[models.m.instances]]\nid = \"c\"\n",
        ),
        ("p.toml", pool.as_str()),
        ("g.toml", group.as_str()),
    ];
    MemorySource::new(files)
}

fn snapshot(eject: u32, breaker: u32) -> Snapshot {
    let config = Config::load_with_env(&source(eject, breaker), &|_| None).unwrap();
    Snapshot::build(Arc::new(config), &HashMap::new(), None)
}

fn inst<'s>(s: &'s Snapshot, id: &str) -> &'s Arc<Instance> {
    s.instance(id).unwrap()
}

/// One finished attempt, as the proxy reports it.
fn hit(s: &Snapshot, id: &str, outcome: Outcome, now: u64) {
    let i = inst(s, id);
    let attempt = Attempt {
        outcome,
        latency: Duration::from_millis(1),
        ttft: None,
    };
    s.recorder.record(&i.live, Price::default(), &attempt, now);
    s.health.observe(s, i, &outcome, now);
}

fn kinds(s: &Snapshot, id: &str) -> Vec<EventKind> {
    s.health
        .events
        .about(id, 100)
        .iter()
        .map(|e| e.kind)
        .collect()
}

fn ejected(s: &Snapshot, id: &str) -> bool {
    inst(s, id).live.gate().is_ejected()
}

#[test]
fn three_consecutive_failures_eject_and_strategies_skip_the_instance() {
    let s = snapshot(3, 100);
    hit(&s, "a", FAIL, T0);
    hit(&s, "a", FAIL, T0);
    assert!(!ejected(&s, "a"));
    assert_eq!(s.health.state(inst(&s, "a"), T0), State::Degraded);
    hit(&s, "a", FAIL, T0);
    assert!(ejected(&s, "a"));
    assert!(
        !inst(&s, "a").live.admits(),
        "gated: every strategy skips it"
    );
    assert!(!s.health.admit(inst(&s, "a"), T0));
    assert_eq!(s.health.state(inst(&s, "a"), T0), State::Ejected);
    assert_eq!(kinds(&s, "a"), [EventKind::Degraded, EventKind::Ejected]);
    // A success in between resets the streak: b never reaches three in a row.
    for outcome in [FAIL, FAIL, OK, FAIL, FAIL, OK] {
        hit(&s, "b", outcome, T0);
    }
    assert!(!ejected(&s, "b"));
}

#[test]
fn a_rejected_key_ejects_at_once() {
    let s = snapshot(3, 100);
    hit(&s, "a", Outcome::Failure(ErrorClass::Auth), T0);
    assert!(ejected(&s, "a"));
    let why = &s.health.events.about("a", 1)[0].detail;
    assert!(why.contains("credentials"), "{why}");
}

#[test]
fn an_isolated_failure_now_and_then_is_no_event() {
    let s = snapshot(3, 3);
    let mut now = T0;
    // One failure in fifty: far under the error-rate threshold, never two in a row.
    for i in 0..500 {
        hit(&s, "a", if i % 50 == 0 { FAIL } else { OK }, now);
        now += S / 10;
    }
    assert_eq!(s.health.state(inst(&s, "a"), now), State::Healthy);
    assert!(kinds(&s, "a").is_empty(), "{:?}", kinds(&s, "a"));
}

#[test]
fn an_error_rate_over_the_threshold_ejects_without_a_streak() {
    let s = snapshot(3, 100);
    // Alternating: never two failures in a row, but 50 % of 4 requests.
    hit(&s, "a", OK, T0);
    hit(&s, "a", FAIL, T0 + S);
    hit(&s, "a", OK, T0 + 2 * S);
    assert!(!ejected(&s, "a"));
    hit(&s, "a", FAIL, T0 + 3 * S);
    assert!(ejected(&s, "a"));
    let why = &s.health.events.about("a", 1)[0].detail;
    assert!(why.contains("error rate 50 %"), "{why}");
}

#[test]
fn client_errors_and_rate_limits_never_count_against_the_instance() {
    let s = snapshot(3, 3);
    for _ in 0..10 {
        hit(&s, "a", Outcome::Failure(ErrorClass::Client), T0);
        hit(&s, "a", Outcome::Failure(ErrorClass::RateLimited), T0);
    }
    let a = inst(&s, "a");
    assert!(!ejected(&s, "a"));
    assert!(a.live.gate().breaker.is_closed());
    assert_eq!(a.live.consecutive_failures(), 0);
    assert_eq!(s.health.state(a, T0), State::Healthy);
    assert!(kinds(&s, "a").is_empty());
}

#[test]
fn an_ejected_instance_returns_only_after_recovery_time_and_a_passing_probe() {
    let s = snapshot(3, 100);
    let a = inst(&s, "a");
    for _ in 0..3 {
        hit(&s, "a", FAIL, T0);
    }
    assert_eq!(
        a.live.gate().ejection(),
        Ejection::Ejected {
            until_ns: T0 + 10 * S
        }
    );
    // Passing probe, but recovery_time is not over: stays out.
    s.health.on_probe(&s, a, &Verdict::pass(), T0 + 5 * S);
    assert!(ejected(&s, "a"));
    // Time is over, but the probe fails: stays out.
    let down = Verdict::fail(ErrorClass::Connect, "refused");
    s.health.on_probe(&s, a, &down, T0 + 10 * S);
    assert!(ejected(&s, "a"));
    assert!(!a.live.admits());
    // Time over and the probe passes: back, streak forgotten, strategies see it again.
    s.health.on_probe(&s, a, &Verdict::pass(), T0 + 11 * S);
    assert!(!ejected(&s, "a"));
    assert!(a.live.admits() && s.health.admit(a, T0 + 11 * S));
    assert_eq!(a.live.consecutive_failures(), 0);
    assert_eq!(s.health.state(a, T0 + 11 * S), State::Healthy);
    assert_eq!(kinds(&s, "a").last(), Some(&EventKind::Recovered));
}

#[test]
fn ejection_time_doubles_for_a_repeat_offender() {
    let s = snapshot(3, 100);
    let a = inst(&s, "a");
    let mut now = T0;
    let mut lengths = Vec::new();
    for _ in 0..4 {
        for _ in 0..3 {
            hit(&s, "a", FAIL, now);
        }
        let Ejection::Ejected { until_ns } = a.live.gate().ejection() else {
            panic!("not ejected");
        };
        lengths.push((until_ns - now) / S);
        now = until_ns;
        s.health.on_probe(&s, a, &Verdict::pass(), now);
        assert!(!ejected(&s, "a"));
    }
    assert_eq!(lengths, [10, 20, 40, 80]);
    // Clean for max_ejection_time (100 s) since it came back: the next one is short again.
    now += 100 * S;
    for _ in 0..3 {
        hit(&s, "a", FAIL, now);
    }
    assert_eq!(
        a.live.gate().ejection(),
        Ejection::Ejected {
            until_ns: now + 10 * S
        }
    );
}

#[test]
fn max_ejection_percent_keeps_half_the_pool_in() {
    let s = snapshot(3, 100);
    for id in ["a", "b", "c"] {
        for _ in 0..3 {
            hit(&s, id, FAIL, T0);
        }
    }
    // 50 % of three: one ejected; ejecting a second would put two thirds out.
    let out: Vec<bool> = ["a", "b", "c"].iter().map(|id| ejected(&s, id)).collect();
    assert_eq!(out, [true, false, false]);
    assert!(kinds(&s, "b").contains(&EventKind::EjectionRefused));
    assert_eq!(s.health.state(inst(&s, "b"), T0), State::Unhealthy);
    assert!(
        inst(&s, "b").live.admits(),
        "refused ejection: still in rotation"
    );
    // Reported once per streak, not per failure.
    hit(&s, "b", FAIL, T0);
    let refusals = kinds(&s, "b")
        .iter()
        .filter(|k| **k == EventKind::EjectionRefused)
        .count();
    assert_eq!(refusals, 1);
}

#[test]
fn the_instance_breaker_half_opens_with_exactly_its_trial_requests() {
    // Ejection needs 50 failures: the breaker (3) acts alone.
    let s = snapshot(50, 3);
    let a = inst(&s, "a");
    for _ in 0..3 {
        hit(&s, "a", FAIL, T0);
    }
    assert_eq!(
        a.live.gate().breaker.state(),
        BreakerState::Open {
            until_ns: T0 + 10 * S
        }
    );
    assert!(!a.live.admits() && !s.health.admit(a, T0 + 9 * S));
    // The checker half-opens it on time; strategies see it again.
    s.health.tick(&s, T0 + 10 * S);
    assert!(a.live.admits());
    let admitted: Vec<bool> = (0..4).map(|_| s.health.admit(a, T0 + 10 * S)).collect();
    assert_eq!(admitted, [true, true, false, false]);
    assert!(
        !a.live.admits(),
        "every trial permit taken: gated until a verdict"
    );
    hit(&s, "a", OK, T0 + 11 * S);
    assert!(!a.live.gate().breaker.is_closed(), "one of two trials");
    hit(&s, "a", OK, T0 + 11 * S);
    assert_eq!(a.live.gate().breaker.state(), BreakerState::Closed);
    assert!(a.live.admits());
    let k = kinds(&s, "a");
    for want in [
        EventKind::BreakerOpened,
        EventKind::BreakerHalfOpen,
        EventKind::BreakerClosed,
    ] {
        assert!(k.contains(&want), "{want:?} missing in {k:?}");
    }
}

#[test]
fn a_failed_trial_reopens_the_breaker() {
    let s = snapshot(50, 3);
    let a = inst(&s, "a");
    for _ in 0..3 {
        hit(&s, "a", FAIL, T0);
    }
    assert!(s.health.admit(a, T0 + 10 * S));
    hit(&s, "a", FAIL, T0 + 10 * S);
    assert_eq!(
        a.live.gate().breaker.state(),
        BreakerState::Open {
            until_ns: T0 + 20 * S
        }
    );
}

#[test]
fn the_task_group_breaker_opens_on_a_run_of_failed_requests_and_admits_n_trials() {
    let s = snapshot(50, 3);
    let tier = s.routes.tier("g.e1").unwrap();
    let g = tier.group.as_ref().unwrap();
    for _ in 0..2 {
        s.health.group_outcome(g, true, T0);
    }
    s.health.group_outcome(g, false, T0);
    assert_eq!(g.state(), BreakerState::Closed, "a success breaks the run");
    for _ in 0..3 {
        s.health.group_outcome(g, true, T0);
    }
    assert!(matches!(g.state(), BreakerState::Open { .. }));
    assert!(!s.health.group_admit(g, T0 + 5 * S));
    let admitted: Vec<bool> = (0..3)
        .map(|_| s.health.group_admit(g, T0 + 10 * S))
        .collect();
    assert_eq!(admitted, [true, true, false]);
    s.health.group_outcome(g, false, T0 + 10 * S);
    s.health.group_outcome(g, false, T0 + 10 * S);
    assert_eq!(g.state(), BreakerState::Closed);
    // The state outlives a rebuild: a new snapshot from the old keeps the same breaker.
    for _ in 0..3 {
        s.health.group_outcome(g, true, T0 + 20 * S);
    }
    let again = Snapshot::build(Arc::clone(&s.config), &HashMap::new(), Some(&s));
    let g2 = again.routes.tier("g.e1").unwrap().group.as_ref().unwrap();
    assert!(matches!(g2.state(), BreakerState::Open { .. }));
}

#[test]
fn a_429_cools_down_for_its_retry_after_without_counting_as_broken() {
    let s = snapshot(3, 3);
    let a = inst(&s, "a");
    hit(&s, "a", Outcome::Failure(ErrorClass::RateLimited), T0);
    s.health.cool_down(a, Duration::from_secs(7), T0);
    assert!(!a.live.admits() && !s.health.admit(a, T0 + 6 * S));
    assert_eq!(s.health.state(a, T0 + S), State::Degraded);
    assert_eq!(a.live.gate().next_change(), Some(T0 + 7 * S));
    s.health.tick(&s, T0 + 7 * S);
    assert!(a.live.admits() && s.health.admit(a, T0 + 7 * S));
    assert_eq!(s.health.state(a, T0 + 7 * S), State::Healthy);
    assert!(!ejected(&s, "a"));
    assert_eq!(
        kinds(&s, "a"),
        [
            EventKind::CooledDown,
            EventKind::Degraded,
            EventKind::Healthy
        ]
    );
}

#[test]
fn failed_probes_eject_an_idle_instance() {
    let s = snapshot(3, 100);
    let a = inst(&s, "a");
    let down = Verdict::fail(ErrorClass::Timeout, "no answer");
    s.health.on_probe(&s, a, &down, T0);
    s.health.on_probe(&s, a, &down, T0 + S);
    assert!(!ejected(&s, "a"));
    s.health.on_probe(&s, a, &Verdict::pass(), T0 + 2 * S);
    s.health.on_probe(&s, a, &down, T0 + 3 * S);
    s.health.on_probe(&s, a, &down, T0 + 4 * S);
    assert!(!ejected(&s, "a"), "a pass broke the run");
    s.health.on_probe(&s, a, &down, T0 + 5 * S);
    assert!(ejected(&s, "a"));
}

#[test]
fn instances_new_since_the_last_snapshot_slow_start_and_old_ones_do_not() {
    let s = snapshot(3, 3);
    assert_eq!(
        inst(&s, "a").live.gate().ejection(),
        Ejection::In,
        "first load: no ramp"
    );
    let mut config = (*s.config).clone();
    let mut d = config.instances[0].clone();
    d.id = "d".into();
    d.health.slow_start = Duration::from_secs(30);
    config.instances.push(d);
    let next = Snapshot::build(Arc::new(config), &HashMap::new(), Some(&s));
    assert!(matches!(
        inst(&next, "d").live.gate().ejection(),
        Ejection::SlowStart { ramp, .. } if ramp == Duration::from_secs(30)
    ));
    assert_eq!(inst(&next, "a").live.gate().ejection(), Ejection::In);
}

#[test]
fn a_slow_starting_instance_is_admitted_for_its_ramps_share_of_picks() {
    let s = snapshot(3, 3);
    let a = inst(&s, "a");
    a.live.gate().slow_start(T0, Duration::from_secs(10));
    let share = |now| (0..10_000).filter(|_| s.health.admit(a, now)).count() as f64 / 1e4;
    // 10 000 draws: six standard deviations are under 0.02.
    assert!(
        (share(T0) - gate::SLOW_START_FLOOR).abs() < 0.02,
        "{}",
        share(T0)
    );
    assert!((share(T0 + 5 * S) - 0.5).abs() < 0.03);
    assert_eq!(share(T0 + 10 * S), 1.0);
}

#[test]
fn gates_of_one_id_share_their_words_through_the_store() {
    let store = crate::shared::MemoryStore::default();
    let (one, other) = (Gate::new(&store, "a"), Gate::new(&store, "a"));
    one.eject(T0);
    assert!(other.is_ejected());
    assert!(!Gate::new(&store, "b").is_ejected());
    // A snapshot rebuilt with the same hub finds a group breaker's state by name.
    let h = Health::default();
    let p = BreakerPolicy::default();
    h.group("g", p).cell.on_failure(&p, 5, T0);
    assert!(matches!(h.group("g", p).state(), BreakerState::Open { .. }));
}

/// Probes answered from a script: which instances are up, and how many probes each got.
#[derive(Default)]
struct Script {
    down: Mutex<Vec<String>>,
    probes: Mutex<HashMap<String, u32>>,
}

impl Prober for Arc<Script> {
    fn probe(
        &self,
        instance: Arc<Instance>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Verdict> + Send>> {
        let id = instance.spec.id.clone();
        *self.probes.lock().unwrap().entry(id.clone()).or_default() += 1;
        let down = self.down.lock().unwrap().contains(&id);
        Box::pin(async move {
            if down {
                Verdict::fail(ErrorClass::Connect, "connection refused")
            } else {
                Verdict::pass()
            }
        })
    }
}

impl Script {
    fn count(&self, id: &str) -> u32 {
        self.probes.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

#[tokio::test(start_paused = true)]
async fn the_checker_ejects_a_dead_instance_and_brings_it_back_on_the_paused_clock() {
    let source = CapturedSource::new(Box::new(source(3, 100)));
    let config = Config::load(&source).unwrap();
    let script = Arc::new(Script::default());
    script.down.lock().unwrap().push("a".into());
    let gw = Gateway::start_with_prober(config, source, Arc::new(Arc::clone(&script)))
        .await
        .unwrap();
    let is_ejected = |id: &str| gw.snapshot().instance(id).unwrap().live.gate().is_ejected();
    // Probes every second (the first within the first second): three failures by 3 s.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert!(is_ejected("a"));
    assert!(!is_ejected("b") && !is_ejected("c"));
    let ejected_at = clock_ns();
    let probes = script.count("a");
    assert!((3..=4).contains(&probes), "{probes} probes in 3.1 s");
    // Still down when recovery_time (10 s) is up: the probe at that moment keeps it out.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(is_ejected("a"));
    assert!(script.count("a") > probes, "probed while ejected");
    // Back up: it returns within one probe interval.
    script.down.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(!is_ejected("a"));
    assert!(clock_ns() - ejected_at < 13 * S);
    let kinds: Vec<EventKind> = (gw.snapshot().health.events.about("a", 10).iter())
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.ends_with(&[EventKind::Ejected, EventKind::Recovered]),
        "{kinds:?}"
    );

    // Reloads (here: runtime weight changes) keep the schedule: no storm of probes.
    let before = script.count("b");
    for w in 2..7 {
        gw.set_weight("b", w).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        script.count("b") <= before + 1,
        "{} probes after 50 ms",
        script.count("b") - before
    );
}
