//! The fallback-graph lint: warnings about plans that will not do what their author likely
//! meant. Never errors (the config is valid); `switchyard validate` prints them.
//!
//! - a fallback cycle (`fallback_groups` / `fallback_pools` leading back to where they
//!   started: the plan stops at the repeat);
//! - echelons a group's own plan never reaches (`group_fallback` skips every echelon after the
//!   first);
//! - a wrapper whose whole plan is one provider (a single point of failure);
//! - a plan whose worst case (every attempt timing out) is longer than `[global]
//!   default_timeout`, so its last steps can never run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::groups::{GroupMeta, GroupStrategy};
use super::{Echelon, REGISTRY};
use crate::config::{InstanceSpec, Issue, RouteKind, RouteSpec};

pub(super) struct Graph<'a> {
    pub(super) routes: &'a [RouteSpec],
    pub(super) instances: &'a [InstanceSpec],
    pub(super) groups: &'a BTreeMap<String, Vec<Echelon>>,
    pub(super) metas: &'a BTreeMap<String, GroupMeta>,
    pub(super) pool_fallbacks: &'a BTreeMap<String, Vec<String>>,
    pub(super) request_timeout: Option<Duration>,
    /// Registered file of each group / pool / wrapper file, for the warning's location.
    pub(super) files: &'a BTreeMap<String, String>,
}

impl Graph<'_> {
    pub(super) fn lint(&self) -> Vec<Issue> {
        let mut out = Vec::new();
        let file = |name: &str| {
            self.files
                .get(name)
                .cloned()
                .unwrap_or_else(|| REGISTRY.to_owned())
        };
        // Cycles: follow fallbacks from each group / pool; meeting the start again is one.
        for (name, meta) in self.metas {
            let next = |g: &str| -> Vec<String> {
                (self
                    .metas
                    .get(g)
                    .map(|m| m.fallback_groups.clone())
                    .unwrap_or_default())
                .into_iter()
                .map(|t| t.split('.').next().unwrap_or(&t).to_owned())
                .filter(|t| t != g)
                .collect()
            };
            if let Some(path) = cycle(name, &next) {
                out.push(Issue {
                    line: None,
                    file: file(name),
                    key: "task_group.fallback.fallback_groups".to_owned(),
                    reason: format!(
                        "fallback cycle {}: the plan stops where it repeats",
                        path.join(" → ")
                    ),
                });
            }
            if meta.strategy == GroupStrategy::GroupFallback {
                let skipped: Vec<&str> = (self.groups.get(name).into_iter().flatten())
                    .skip(1)
                    .map(|e| e.name.as_str())
                    .collect();
                if !skipped.is_empty() {
                    out.push(Issue {
                    line: None,
                        file: file(name),
                        key: "task_group.fallback_strategy".to_owned(),
                        reason: format!(
                            "group_fallback: the group's plan never reaches echelon(s) {} (only as \"{name}.<echelon>\" or from a fallback)",
                            skipped.join(", ")
                        ),
                    });
                }
            }
        }
        for name in self.pool_fallbacks.keys() {
            let next = |p: &str| self.pool_fallbacks.get(p).cloned().unwrap_or_default();
            if let Some(path) = cycle(name, &next) {
                out.push(Issue {
                    line: None,
                    file: file(name),
                    key: "pool.fallback.fallback_pools".to_owned(),
                    reason: format!(
                        "fallback cycle {}: the plan stops where it repeats",
                        path.join(" → ")
                    ),
                });
            }
        }
        for r in self.routes {
            let providers: BTreeSet<&str> = (r.tiers.iter().flat_map(|t| &t.members))
                .filter_map(|m| self.instances.get(m.instance))
                .map(|i| i.provider.as_str())
                .collect();
            if r.kind == RouteKind::Wrapper && providers.len() == 1 {
                let only = providers.iter().next().copied().unwrap_or_default();
                out.push(Issue {
                    line: None,
                    file: file(&r.name),
                    key: format!("wrappers.{}", r.name),
                    reason: format!(
                        "every step of its plan is provider {only:?}: a single point of failure"
                    ),
                });
            }
            let Some(deadline) = self.request_timeout else {
                continue;
            };
            if !matches!(
                r.kind,
                RouteKind::Wrapper | RouteKind::TaskGroup | RouteKind::Pool
            ) {
                continue;
            }
            // Worst case: every attempt times out. A step can start only if the ones before
            // it, timing out, leave time.
            let mut start = Duration::ZERO;
            let mut starts = 0;
            for t in &r.tiers {
                if start < deadline {
                    starts += 1;
                }
                let per = t.timeout.unwrap_or_else(|| {
                    (t.members
                        .iter()
                        .filter_map(|m| self.instances.get(m.instance)))
                    .map(|i| i.timeout)
                    .max()
                    .unwrap_or_default()
                });
                let members = u32::try_from(t.members.len()).unwrap_or(u32::MAX);
                let tries = t
                    .max_attempts
                    .min(members.saturating_mul(t.max_instance_attempts.max(1)));
                start += per.saturating_mul(tries.max(1));
            }
            if starts < r.tiers.len() {
                out.push(Issue {
                    line: None,
                    file: REGISTRY.to_owned(),
                    key: "global.default_timeout".to_owned(),
                    reason: format!(
                        "route {:?}: when attempts time out, only the first {starts} of its {} steps fit in the {} s deadline (the plan needs {} s)",
                        r.name,
                        r.tiers.len(),
                        deadline.as_secs(),
                        start.as_secs()
                    ),
                });
            }
        }
        out
    }
}

/// A path from `start` back to `start` along `next`, if there is one.
fn cycle(start: &str, next: &dyn Fn(&str) -> Vec<String>) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for n in next(&at) {
            if n == start {
                let mut p = path.clone();
                p.push(n);
                return Some(p);
            }
            if seen.insert(n.clone()) {
                let mut p = path.clone();
                p.push(n.clone());
                stack.push((n, p));
            }
        }
    }
    None
}
