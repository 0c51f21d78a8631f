//! Routing names → routes, resolved once per config load.
//!
//! A [`Route`] is what a client's `model` names: an ordered list of [`Tier`]s (a task group's
//! echelons by priority; one tier for a pool, echelon, model or instance). A tier is shared by
//! every route that contains it (the wrapper `fast` and its pool `fast_pool`; the group
//! `plan_group` and `plan_group.echelon1`), so they rotate through the same turns and a strategy
//! change by tier name applies to all of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::balance::{Member, ScoreWeights, Strategy, StrategyKind};
use crate::config::{RouteKind, RouteSpec, TierSpec};
use crate::health::{GroupBreaker, Health};
use crate::upstream::Instance;

#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    /// `name` as the `x-switchyard-route` response header, built once.
    pub header: Option<http::HeaderValue>,
    pub kind: RouteKind,
    pub tiers: Vec<Arc<Tier>>,
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
    pub timeout: Option<Duration>,
    /// The task group breaker of an echelon tier.
    pub group: Option<Arc<GroupBreaker>>,
}

impl Tier {
    fn build(spec: &TierSpec, instances: &[Arc<Instance>], health: &Health) -> Self {
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
            timeout: spec.timeout,
            group: (spec.group.as_ref()).map(|g| health.group(&g.name, g.breaker)),
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
        for spec in specs {
            let tiers = spec
                .tiers
                .iter()
                .map(|t| {
                    // Tier labels are routing names, unique across kinds: equal label, same tier.
                    let tier = table
                        .tiers
                        .entry(t.label.clone())
                        .or_insert_with(|| Arc::new(Tier::build(t, instances, health)));
                    Arc::clone(tier)
                })
                .collect();
            let route = Arc::new(Route {
                name: spec.name.as_str().into(),
                header: http::HeaderValue::from_str(&spec.name).ok(),
                kind: spec.kind,
                tiers,
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
