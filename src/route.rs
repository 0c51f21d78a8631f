//! Routing names → routes, resolved once per config load.
//!
//! A [`Route`] is what a client's `model` names: its plan, an ordered list of [`Step`]s, each a
//! [`Tier`] and why it is there (a task group's echelons by priority, then its
//! `fallback_groups`; a pool, then its `fallback_pools`; one tier for a model or instance). A tier is shared by
//! every route that contains it (the wrapper `fast` and its pool `fast_pool`; the group
//! `plan_group` and `plan_group.echelon1`), so they rotate through the same turns and a strategy
//! change by tier name applies to all of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::balance::{Member, ScoreWeights, Strategy, StrategyKind};
use crate::config::{RouteKind, RouteSpec, TierSpec};
use crate::health::{GroupBreaker, Health};
use crate::limit::Limits;
use crate::upstream::Instance;

/// Why a tier is in a route's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// What the routing name names first.
    Primary,
    /// The next echelon of the same group, by priority.
    EchelonDown,
    /// The same model names at other providers (`provider_failover`).
    ProviderFailover,
    /// A group or `group.echelon` from `fallback_groups` (or a request's own list).
    GroupFallback,
    /// A pool from `fallback_pools`.
    PoolFallback,
}

impl StepKind {
    pub const ALL: [Self; 5] = [
        Self::Primary,
        Self::EchelonDown,
        Self::ProviderFailover,
        Self::GroupFallback,
        Self::PoolFallback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::EchelonDown => "echelon_down",
            Self::ProviderFailover => "provider_failover",
            Self::GroupFallback => "group_fallback",
            Self::PoolFallback => "pool_fallback",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// After a failed attempt in a tier, what else in the tier is passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rotate {
    /// Only the instance that failed (`echelon_down`, `instance_rotation`).
    #[default]
    Instance,
    /// Every instance of its model: the next attempt goes to another model (`model_rotate`).
    Model,
    /// Every instance of its provider: the next attempt goes to another provider, in
    /// `provider_chain` order when one is configured (`provider_failover`).
    Provider,
}

/// Request defaults an echelon applies (seed 004's echelon `temperature` / `max_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Defaults {
    /// Set when the client sent none.
    pub temperature: Option<f64>,
    /// Set when the client sent none; with `clamp_max_tokens`, also the most a client gets.
    pub max_tokens: Option<u32>,
    pub clamp_max_tokens: bool,
}

impl Defaults {
    pub fn is_empty(&self) -> bool {
        self.temperature.is_none() && self.max_tokens.is_none()
    }
}

/// One step of a route's plan.
#[derive(Debug, Clone)]
pub struct Step {
    pub tier: Arc<Tier>,
    pub why: StepKind,
}

#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    /// `name` as the `x-switchyard-route` response header, built once.
    pub header: Option<http::HeaderValue>,
    pub kind: RouteKind,
    /// The plan: tiers in the order they are tried, each with why it is there.
    pub steps: Vec<Step>,
    /// Most attempts over the whole plan (`fallback.max_attempts`, `[global] max_retries + 1`).
    pub max_attempts: Option<u32>,
    /// Requests served at each kind of step, requests no step could serve, and their spend.
    pub stats: Arc<RouteStats>,
}

/// How often each kind of step served this route's requests (seed 003's get_statistics).
#[derive(Debug, Default)]
pub struct RouteStats {
    served: [std::sync::atomic::AtomicU64; 5],
    failed: std::sync::atomic::AtomicU64,
    pub spend: crate::stats::SpendCounter,
}

impl RouteStats {
    pub fn served_by(&self, why: StepKind) {
        self.served[why.index()].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn failed(&self) {
        self.failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// `(step kind, requests it served)` for every kind, then the failed count.
    pub fn read(&self) -> (Vec<(&'static str, u64)>, u64) {
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        let served = (StepKind::ALL.iter().zip(&self.served))
            .map(|(k, n)| (k.as_str(), n.load(relaxed)))
            .collect();
        (served, self.failed.load(relaxed))
    }
}

#[derive(Debug)]
pub struct Tier {
    /// `group.echelon`, pool, model or instance id: what logs and the admin API call it.
    pub label: String,
    pub strategy_kind: StrategyKind,
    pub score: ScoreWeights,
    pub members: Vec<Member>,
    pub strategy: Box<dyn Strategy>,
    pub max_attempts: u32,
    /// Rounds over the tier's members (a pool's `max_instance_attempts`; 1 elsewhere).
    pub max_instance_attempts: u32,
    pub timeout: Option<Duration>,
    /// Time to the first content chunk of a stream.
    pub ttft_timeout: Option<Duration>,
    /// The wait before a retry after a timeout or 5xx (a group's `fallback.retry_delay`).
    pub retry_delay: Option<Duration>,
    pub rotate: Rotate,
    pub defaults: Defaults,
    /// The task group breaker of an echelon tier.
    pub group: Option<Arc<GroupBreaker>>,
    /// The tier's own limits (an echelon's, a pool's).
    pub limits: Option<Arc<Limits>>,
    /// Its task group's limits, shared by the group's echelon tiers.
    pub group_limits: Option<Arc<Limits>>,
}

impl Tier {
    fn build(
        spec: &TierSpec,
        instances: &[Arc<Instance>],
        health: &Health,
        groups: &mut HashMap<String, Option<Arc<Limits>>>,
    ) -> Self {
        let group_limits = spec.group.as_ref().and_then(|g| {
            let made = groups
                .entry(g.name.clone())
                .or_insert_with(|| Limits::new(&*health.store, "group", &g.name, &g.limits));
            made.clone()
        });
        let members: Vec<Member> = spec
            .members
            .iter()
            .filter_map(|m| {
                let instance = instances.get(m.instance)?;
                Some(Member {
                    instance: m.instance,
                    live: Arc::clone(&instance.live),
                    weight: m.weight.get(),
                    price: instance.spec.price,
                })
            })
            .collect();
        Self {
            label: spec.label.clone(),
            strategy_kind: spec.strategy,
            score: spec.score,
            strategy: spec.strategy.build(&members, spec.score),
            members,
            max_attempts: spec.max_attempts.max(1),
            max_instance_attempts: spec.max_instance_attempts.max(1),
            timeout: spec.timeout,
            ttft_timeout: spec.ttft_timeout,
            retry_delay: spec.retry_delay,
            rotate: spec.rotate,
            defaults: spec.defaults,
            group: (spec.group.as_ref()).map(|g| health.group(&g.name, g.breaker)),
            limits: Limits::new(&*health.store, "tier", &spec.label, &spec.limits),
            group_limits,
        }
    }
}

/// Every routing name of one snapshot.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_name: HashMap<Box<str>, Arc<Route>>,
    ordered: Vec<Arc<Route>>,
    tiers: HashMap<String, Arc<Tier>>,
}

impl RouteTable {
    pub fn build(specs: &[RouteSpec], instances: &[Arc<Instance>], health: &Health) -> Self {
        let mut table = Self::default();
        let mut group_limits = HashMap::new();
        for spec in specs {
            let steps = (spec.tiers.iter().zip(&spec.steps))
                .map(|(t, &why)| {
                    // Tier labels are routing names, unique across kinds: equal label, same tier.
                    let tier = table.tiers.entry(t.label.clone()).or_insert_with(|| {
                        Arc::new(Tier::build(t, instances, health, &mut group_limits))
                    });
                    Step {
                        tier: Arc::clone(tier),
                        why,
                    }
                })
                .collect();
            let route = Arc::new(Route {
                name: spec.name.as_str().into(),
                header: http::HeaderValue::from_str(&spec.name).ok(),
                kind: spec.kind,
                steps,
                max_attempts: spec.max_attempts,
                stats: Arc::default(),
            });
            // Config validation refuses duplicate names; first wins if one slips through.
            table
                .by_name
                .entry(spec.name.as_str().into())
                .or_insert_with(|| Arc::clone(&route));
            table.ordered.push(route);
        }
        table
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Route>> {
        self.by_name.get(name)
    }

    /// The tier with this label (a pool, `group.echelon`, model or instance id).
    pub fn tier(&self, label: &str) -> Option<&Arc<Tier>> {
        self.tiers.get(label)
    }

    /// Every tier, in no particular order.
    pub fn tiers(&self) -> impl Iterator<Item = &Arc<Tier>> {
        self.tiers.values()
    }

    /// All routes in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.ordered.iter()
    }

    pub fn len(&self) -> usize {
        self.ordered.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }
}
