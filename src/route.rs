//! Routing names → routes, resolved once per config load.
//!
//! A [`Route`] is what a client's `model` names: an ordered list of [`Tier`]s (a task group's
//! echelons by priority; one tier for a pool, echelon, model or instance). Each tier owns the
//! strategy state that spreads its requests over its members.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::balance::{Strategy, StrategyKind};
use crate::config::{RouteKind, RouteSpec};

#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    /// `name` as the `x-switchyard-route` response header, built once.
    pub header: Option<http::HeaderValue>,
    pub kind: RouteKind,
    pub tiers: Vec<Tier>,
}

#[derive(Debug)]
pub struct Tier {
    pub label: String,
    pub strategy_kind: StrategyKind,
    /// Instance indices into the snapshot's instance list.
    pub members: Vec<usize>,
    pub strategy: Box<dyn Strategy>,
    pub max_attempts: u32,
    pub timeout: Option<Duration>,
}

/// Every routing name of one snapshot.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_name: HashMap<Box<str>, Arc<Route>>,
    ordered: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn build(specs: &[RouteSpec]) -> Self {
        let mut table = Self::default();
        for spec in specs {
            let tiers = spec
                .tiers
                .iter()
                .map(|t| {
                    let weights: Vec<u32> = t.members.iter().map(|m| m.weight.get()).collect();
                    Tier {
                        label: t.label.clone(),
                        strategy_kind: t.strategy,
                        members: t.members.iter().map(|m| m.instance).collect(),
                        strategy: t.strategy.build(&weights),
                        max_attempts: t.max_attempts.max(1),
                        timeout: t.timeout,
                    }
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
