//! Every routing name in one list, with clashes between kinds refused.

use std::collections::{BTreeMap, HashMap};

use super::{DEFAULT_TIER_ATTEMPTS, Echelon, Loader, REGISTRY};
use crate::balance::{ScoreWeights, StrategyKind};
use crate::config::{InstanceSpec, MemberSpec, RouteKind, RouteSpec, TierSpec};

impl Loader<'_> {
    pub(super) fn routes(
        &mut self,
        wrappers: Vec<RouteSpec>,
        pools: BTreeMap<String, TierSpec>,
        groups: BTreeMap<String, Vec<Echelon>>,
        models: &BTreeMap<String, Vec<usize>>,
        instances: &[InstanceSpec],
    ) -> Vec<RouteSpec> {
        let mut routes = wrappers;
        for (name, tier) in pools {
            routes.push(RouteSpec {
                name,
                kind: RouteKind::Pool,
                tiers: vec![tier],
            });
        }
        let mut echelon_routes = Vec::new();
        for (name, echelons) in groups {
            if echelons.is_empty() {
                continue;
            }
            for e in &echelons {
                echelon_routes.push(RouteSpec {
                    name: e.tier.label.clone(),
                    kind: RouteKind::Echelon,
                    tiers: vec![e.tier.clone()],
                });
            }
            let tiers = echelons.into_iter().map(|e| e.tier).collect();
            routes.push(RouteSpec {
                name,
                kind: RouteKind::TaskGroup,
                tiers,
            });
        }
        routes.extend(echelon_routes);
        for (model_ref, list) in models {
            let members = list
                .iter()
                .map(|&i| MemberSpec {
                    instance: i,
                    weight: instances[i].weight,
                })
                .collect();
            routes.push(RouteSpec {
                name: model_ref.clone(),
                kind: RouteKind::Model,
                tiers: vec![TierSpec {
                    label: model_ref.clone(),
                    strategy: StrategyKind::RoundRobin,
                    members,
                    max_attempts: DEFAULT_TIER_ATTEMPTS,
                    timeout: None,
                    score: ScoreWeights::default(),
                    group: None,
                }],
            });
        }
        for (i, inst) in instances.iter().enumerate() {
            // A model with one implicit instance shares its name with it: one route serves both.
            if inst.id == inst.model_ref {
                continue;
            }
            routes.push(RouteSpec {
                name: inst.id.clone(),
                kind: RouteKind::Instance,
                tiers: vec![TierSpec {
                    label: inst.id.clone(),
                    strategy: StrategyKind::RoundRobin,
                    members: vec![MemberSpec {
                        instance: i,
                        weight: inst.weight,
                    }],
                    max_attempts: 1,
                    timeout: None,
                    score: ScoreWeights::default(),
                    group: None,
                }],
            });
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
