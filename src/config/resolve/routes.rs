//! Every routing name in one list, each with its plan (the tiers it tries, in order, and why),
//! with clashes between kinds refused.
//!
//! Plans (seeds 003 and 004):
//! - task group: its echelons by priority (`echelon_down`, `model_rotate`,
//!   `provider_failover`; only the first with `group_fallback`), each echelon followed by its
//!   model names at other providers under `provider_failover`; then `fallback_groups` in order
//!   (a `group.echelon`, or a whole group with its own plan), transitively;
//! - `group.echelon`: that echelon, then its group's `fallback_groups`;
//! - pool: its tier (every instance, `max_instance_attempts` rounds), then `fallback_pools`,
//!   transitively;
//! - wrapper: its pool's or group's plan; `provider:model` and instance ids: one tier.
//!
//! A tier appears once in a plan (the first time); fallback cycles end there.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::groups::{GroupMeta, GroupStrategy, Target};
use super::{DEFAULT_TIER_ATTEMPTS, Echelon, Loader, REGISTRY};
use crate::balance::{ScoreWeights, StrategyKind};
use crate::config::{InstanceSpec, MemberSpec, RouteKind, RouteSpec, TierSpec};
use crate::route::{Defaults, Rotate, StepKind};

/// Everything plans are built from.
pub(super) struct Plans<'a> {
    pub(super) pools: &'a BTreeMap<String, TierSpec>,
    pub(super) pool_fallbacks: &'a BTreeMap<String, Vec<String>>,
    pub(super) groups: &'a BTreeMap<String, Vec<Echelon>>,
    pub(super) metas: &'a BTreeMap<String, GroupMeta>,
    pub(super) instances: &'a [InstanceSpec],
    /// `[global] max_retries + 1`.
    pub(super) default_attempts: Option<u32>,
}

/// A plan being built.
#[derive(Default)]
struct Plan {
    tiers: Vec<TierSpec>,
    steps: Vec<StepKind>,
    labels: BTreeSet<String>,
    expanded: BTreeSet<String>,
}

impl Plan {
    fn push(&mut self, tier: &TierSpec, why: StepKind) {
        if self.labels.insert(tier.label.clone()) {
            self.tiers.push(tier.clone());
            self.steps.push(why);
        }
    }
}

impl Plans<'_> {
    fn group(&self, name: &str, first: StepKind, plan: &mut Plan) {
        if !plan.expanded.insert(format!("group {name}")) {
            return;
        }
        let (Some(echelons), Some(meta)) = (self.groups.get(name), self.metas.get(name)) else {
            return;
        };
        let take = if meta.strategy == GroupStrategy::GroupFallback {
            1
        } else {
            echelons.len()
        };
        for (i, e) in echelons.iter().take(take).enumerate() {
            self.echelon(
                meta,
                e,
                if i == 0 { first } else { StepKind::EchelonDown },
                plan,
            );
        }
        self.fallback_groups(meta, plan);
    }

    fn echelon(&self, meta: &GroupMeta, e: &Echelon, why: StepKind, plan: &mut Plan) {
        plan.push(&e.tier, why);
        if meta.strategy == GroupStrategy::ProviderFailover {
            if let Some(other) = self.other_providers(&e.tier) {
                plan.push(&other, StepKind::ProviderFailover);
            }
        }
    }

    fn fallback_groups(&self, meta: &GroupMeta, plan: &mut Plan) {
        for target in &meta.fallback_groups {
            match target.split_once('.') {
                Some((g, e)) => {
                    let found = self
                        .groups
                        .get(g)
                        .and_then(|es| es.iter().find(|x| x.name == e));
                    if let (Some(echelon), Some(m)) = (found, self.metas.get(g)) {
                        self.echelon(m, echelon, StepKind::GroupFallback, plan);
                    }
                }
                None => self.group(target, StepKind::GroupFallback, plan),
            }
        }
    }

    fn pool(&self, name: &str, why: StepKind, plan: &mut Plan) {
        if !plan.expanded.insert(format!("pool {name}")) {
            return;
        }
        if let Some(tier) = self.pools.get(name) {
            plan.push(tier, why);
        }
        for next in self.pool_fallbacks.get(name).into_iter().flatten() {
            self.pool(next, StepKind::PoolFallback, plan);
        }
    }

    /// `provider_failover`'s extra tier: instances serving one of `tier`'s model names at a
    /// provider whose model the echelon does not list.
    fn other_providers(&self, tier: &TierSpec) -> Option<TierSpec> {
        let refs: BTreeSet<&str> = (tier.members.iter())
            .filter_map(|m| self.instances.get(m.instance))
            .map(|i| i.model_ref.as_str())
            .collect();
        let names: BTreeSet<&str> = refs
            .iter()
            .filter_map(|r| r.split_once(':'))
            .map(|(_, m)| m)
            .collect();
        let members: Vec<MemberSpec> = (self.instances.iter().enumerate())
            .filter(|(_, i)| !refs.contains(i.model_ref.as_str()))
            .filter(|(_, i)| {
                i.model_ref
                    .split_once(':')
                    .is_some_and(|(_, m)| names.contains(m))
            })
            .map(|(instance, i)| MemberSpec {
                instance,
                weight: i.weight,
            })
            .collect();
        (!members.is_empty()).then(|| TierSpec {
            label: format!("{}+providers", tier.label),
            strategy: StrategyKind::RoundRobin,
            max_attempts: DEFAULT_TIER_ATTEMPTS,
            members,
            group: None,
            rotate: Rotate::Provider,
            limits: crate::limit::LimitSpec::NONE,
            ..tier.clone()
        })
    }

    fn route(
        &self,
        name: &str,
        kind: RouteKind,
        plan: Plan,
        max_attempts: Option<u32>,
    ) -> RouteSpec {
        RouteSpec {
            name: name.to_owned(),
            kind,
            tiers: plan.tiers,
            steps: plan.steps,
            max_attempts: max_attempts.or(self.default_attempts),
        }
    }

    fn group_attempts(&self, group: &str) -> Option<u32> {
        self.metas.get(group).and_then(|m| m.max_attempts)
    }
}

/// A one-tier plan over `members`.
fn single(label: &str, members: Vec<MemberSpec>, max_attempts: u32) -> Plan {
    let tier = TierSpec {
        label: label.to_owned(),
        strategy: StrategyKind::RoundRobin,
        members,
        max_attempts,
        max_instance_attempts: 1,
        timeout: None,
        ttft_timeout: None,
        retry_delay: None,
        rotate: Rotate::Instance,
        defaults: Defaults::default(),
        limits: crate::limit::LimitSpec::NONE,
        score: ScoreWeights::default(),
        group: None,
    };
    let mut plan = Plan::default();
    plan.push(&tier, StepKind::Primary);
    plan
}

impl Loader<'_> {
    pub(super) fn routes(
        &mut self,
        wrappers: &[(String, Target)],
        p: &Plans<'_>,
        models: &BTreeMap<String, Vec<usize>>,
    ) -> Vec<RouteSpec> {
        let mut routes = Vec::new();
        for (name, target) in wrappers {
            let mut plan = Plan::default();
            let attempts = match target {
                Target::Pool(pool) => {
                    p.pool(pool, StepKind::Primary, &mut plan);
                    None
                }
                Target::Group(group) => {
                    p.group(group, StepKind::Primary, &mut plan);
                    p.group_attempts(group)
                }
            };
            routes.push(p.route(name, RouteKind::Wrapper, plan, attempts));
        }
        for name in p.pools.keys() {
            let mut plan = Plan::default();
            p.pool(name, StepKind::Primary, &mut plan);
            routes.push(p.route(name, RouteKind::Pool, plan, None));
        }
        let mut echelon_routes = Vec::new();
        for (name, echelons) in p.groups {
            let Some(meta) = p.metas.get(name) else {
                continue;
            };
            if echelons.is_empty() {
                continue;
            }
            for e in echelons {
                let mut plan = Plan::default();
                plan.expanded.insert(format!("group {name}"));
                p.echelon(meta, e, StepKind::Primary, &mut plan);
                p.fallback_groups(meta, &mut plan);
                echelon_routes.push(p.route(
                    &e.tier.label,
                    RouteKind::Echelon,
                    plan,
                    meta.max_attempts,
                ));
            }
            let mut plan = Plan::default();
            p.group(name, StepKind::Primary, &mut plan);
            routes.push(p.route(name, RouteKind::TaskGroup, plan, meta.max_attempts));
        }
        routes.extend(echelon_routes);
        for (model_ref, list) in models {
            let members = (list.iter())
                .map(|&i| MemberSpec {
                    instance: i,
                    weight: p.instances[i].weight,
                })
                .collect();
            let plan = single(model_ref, members, DEFAULT_TIER_ATTEMPTS);
            routes.push(p.route(model_ref, RouteKind::Model, plan, None));
        }
        for (i, inst) in p.instances.iter().enumerate() {
            // A model with one implicit instance shares its name with it: one route serves both.
            if inst.id == inst.model_ref {
                continue;
            }
            let member = MemberSpec {
                instance: i,
                weight: inst.weight,
            };
            let plan = single(&inst.id, vec![member], 1);
            routes.push(p.route(&inst.id, RouteKind::Instance, plan, None));
        }
        for route in &mut routes {
            for tier in &mut route.tiers {
                if let Some(&kind) = self.overlay.strategies.get(&tier.label) {
                    tier.strategy = kind;
                }
            }
        }
        let mut seen: HashMap<&str, RouteKind> = HashMap::new();
        let mut clashes = Vec::new();
        for r in &routes {
            if let Some(previous) = seen.insert(r.name.as_str(), r.kind) {
                clashes.push(format!(
                    "routing name {:?} is both a {} and a {}; rename one",
                    r.name,
                    previous.as_str(),
                    r.kind.as_str()
                ));
            }
        }
        for reason in clashes {
            self.issue(REGISTRY, "", reason);
        }
        routes
    }
}
