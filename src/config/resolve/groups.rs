//! Task groups (echelons by priority), pools (flattened, weighted by `group.echelon`) and
//! wrappers, each resolved against what was loaded before it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;

use super::{
    DEFAULT_TIER_ATTEMPTS, Deferred, Echelon, GROUP_FALLBACKS, Loader, POOL_FALLBACKS, REGISTRY,
    unknown,
};
use crate::config::{GroupSpec, InstanceSpec, MemberSpec, TierSpec, raw};
use crate::health::HealthPolicy;
use crate::limit::{Algorithm, LimitSpec};
use crate::route::{Defaults, Rotate};

/// What a wrapper stands for.
pub(super) enum Target {
    Pool(String),
    Group(String),
}

/// How a task group falls back (`fallback_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GroupStrategy {
    /// Every echelon by priority, then `fallback_groups`.
    EchelonDown,
    /// The first echelon, then straight to `fallback_groups`.
    GroupFallback,
    /// Like `echelon_down`; a failure moves to another model of the echelon.
    ModelRotate,
    /// Like `echelon_down`; a failure moves to another provider, and each echelon is followed
    /// by its model names at other providers.
    ProviderFailover,
}

impl GroupStrategy {
    fn parse(s: &str) -> Self {
        match s {
            "group_fallback" => Self::GroupFallback,
            "model_rotate" => Self::ModelRotate,
            "provider_failover" => Self::ProviderFailover,
            _ => Self::EchelonDown,
        }
    }
}

/// A task group's fallback settings, for building plans.
pub(super) struct GroupMeta {
    pub(super) strategy: GroupStrategy,
    pub(super) fallback_groups: Vec<String>,
    pub(super) max_attempts: Option<u32>,
}

impl Loader<'_> {
    pub(super) fn task_group(
        &mut self,
        name: &str,
        file: &str,
        lookup: &Lookup<'_>,
        deferred: &mut Vec<Deferred>,
    ) -> Option<(Vec<Echelon>, GroupMeta)> {
        let tg = self.parse::<raw::TaskGroupFile>(file)?.task_group;
        self.section(name, "task_group", file, &tg.metrics, &tg.metadata);
        self.check_name(file, "task_group.name", tg.name.as_deref(), name);
        for (key, value) in [
            ("task_group.fallback_strategy", &tg.fallback_strategy),
            ("task_group.fallback.strategy", &tg.fallback.strategy),
        ] {
            if let Some(v) = value {
                if !GROUP_FALLBACKS.contains(&v.as_str()) {
                    self.issue(
                        file,
                        key,
                        format!(
                            "unknown fallback strategy {v:?}; expected one of {GROUP_FALLBACKS:?}"
                        ),
                    );
                }
            }
        }
        let retry_delay = self.seconds(
            tg.fallback.retry_delay.filter(|d| *d != 0.0),
            file,
            "task_group.fallback.retry_delay",
        );
        for (i, target) in tg.fallback.fallback_groups.iter().enumerate() {
            deferred.push(Deferred {
                file: file.to_owned(),
                key: format!("task_group.fallback.fallback_groups[{i}]"),
                target: target.clone(),
            });
        }
        let breaker = self.breaker_policy(&tg.circuit_breaker, file);
        for (k, v) in [
            ("concurrency_limit", tg.concurrency_limit),
            ("rpm_limit", tg.rpm_limit),
        ] {
            if v == Some(0) {
                self.issue(file, format!("task_group.{k}"), "must be greater than 0");
            }
        }
        let group_limits = LimitSpec::from_keys(tg.rpm_limit, None, tg.concurrency_limit);
        let strategy = match (&tg.fallback_strategy, &tg.fallback.strategy) {
            (Some(a), Some(b)) if a != b => {
                self.issue(
                    file,
                    "task_group.fallback.strategy",
                    format!("is {b:?} but task_group.fallback_strategy is {a:?}; say one"),
                );
                GroupStrategy::EchelonDown
            }
            (Some(s), _) | (None, Some(s)) => GroupStrategy::parse(s),
            (None, None) => GroupStrategy::EchelonDown,
        };
        let rotate = match strategy {
            GroupStrategy::ModelRotate => Rotate::Model,
            GroupStrategy::ProviderFailover => Rotate::Provider,
            _ => Rotate::Instance,
        };
        if tg.fallback.max_attempts == Some(0) {
            self.issue(
                file,
                "task_group.fallback.max_attempts",
                "must be at least 1",
            );
        }
        let meta = GroupMeta {
            strategy,
            fallback_groups: tg.fallback.fallback_groups.clone(),
            max_attempts: tg.fallback.max_attempts.filter(|n| *n > 0),
        };
        if tg.echelons.is_empty() {
            self.issue(
                file,
                "task_group.echelons",
                "a task group needs at least one echelon",
            );
            return None;
        }
        let mut echelons = Vec::new();
        for (ename, e) in &tg.echelons {
            let key = format!("task_group.echelons.{ename}");
            if ename.contains('.') {
                self.issue(file, &key, "an echelon name cannot contain '.'");
            }
            if e.models.is_empty() {
                self.issue(
                    file,
                    format!("{key}.models"),
                    "an echelon needs at least one model",
                );
            }
            for (field, value) in [
                ("concurrency_limit", e.concurrency_limit),
                ("rpm_limit", e.rpm_limit),
            ] {
                if value == Some(0) {
                    self.issue(file, format!("{key}.{field}"), "must be greater than 0");
                }
            }
            let strategy = self.strategy(e.strategy.as_deref(), file, &format!("{key}.strategy"));
            let score = self.score_weights(e.score_weights, file, &format!("{key}.score_weights"));
            let timeout = self.seconds(e.timeout, file, &format!("{key}.timeout"));
            let ttft_timeout = self.seconds(e.ttft_timeout, file, &format!("{key}.ttft_timeout"));
            if e.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
                self.issue(
                    file,
                    format!("{key}.temperature"),
                    "must be between 0 and 2",
                );
            }
            if e.max_tokens == Some(0) {
                self.issue(file, format!("{key}.max_tokens"), "must be at least 1");
            }
            if e.clamp_max_tokens == Some(true) && e.max_tokens.is_none() {
                self.issue(
                    file,
                    format!("{key}.clamp_max_tokens"),
                    "needs max_tokens to clamp to",
                );
            }
            let defaults = Defaults {
                temperature: e.temperature,
                max_tokens: e.max_tokens,
                clamp_max_tokens: e.clamp_max_tokens.unwrap_or(false),
            };
            let limits = LimitSpec {
                concurrency: e.concurrency_limit.filter(|n| *n > 0),
                requests: e.rpm_limit.filter(|n| *n > 0).map(LimitSpec::per_minute),
                tokens: None,
            };
            let mut members: Vec<MemberSpec> = Vec::new();
            for (i, model) in e.models.iter().enumerate() {
                match lookup.resolve(model) {
                    Ok(found) => {
                        for &instance in found {
                            if !members.iter().any(|m| m.instance == instance) {
                                let weight = lookup.instances[instance].weight;
                                members.push(MemberSpec { instance, weight });
                            }
                        }
                    }
                    Err(reason) => self.issue(file, format!("{key}.models[{i}]"), reason),
                }
            }
            if members.is_empty() {
                continue;
            }
            echelons.push((
                e.priority.unwrap_or(i64::MAX),
                Echelon {
                    name: ename.clone(),
                    tier: TierSpec {
                        label: format!("{name}.{ename}"),
                        strategy,
                        members,
                        max_attempts: e
                            .max_retries
                            .map_or(DEFAULT_TIER_ATTEMPTS, |r| r.saturating_add(1)),
                        max_instance_attempts: 1,
                        timeout,
                        ttft_timeout,
                        retry_delay,
                        rotate,
                        defaults,
                        limits,
                        score,
                        group: Some(GroupSpec {
                            name: name.to_owned(),
                            breaker,
                            limits: group_limits,
                        }),
                    },
                },
            ));
        }
        echelons.sort_by(|(pa, a), (pb, b)| pa.cmp(pb).then_with(|| natural(&a.name, &b.name)));
        Some((echelons.into_iter().map(|(_, e)| e).collect(), meta))
    }

    pub(super) fn pool(
        &mut self,
        name: &str,
        file: &str,
        groups: &BTreeMap<String, Vec<Echelon>>,
        disabled: &BTreeSet<&str>,
        deferred: &mut Vec<Deferred>,
    ) -> Option<(TierSpec, HealthPolicy, Vec<String>)> {
        let mut pool = self.parse::<raw::PoolFile>(file)?.pool;
        self.section(name, "pool", file, &pool.metrics, &pool.metadata);
        let hc = &mut pool.health_check;
        hc.interval = hc.interval.or(pool.health_check_interval);
        hc.failure_threshold = hc.failure_threshold.or(pool.failure_threshold);
        hc.recovery_time = hc.recovery_time.or(pool.recovery_time);
        let health = self.health_policy(&pool.health_check, file);
        self.check_name(file, "pool.name", pool.name.as_deref(), name);
        if pool.task_groups.is_empty() {
            self.issue(
                file,
                "pool.task_groups",
                "a pool needs at least one task group",
            );
            return None;
        }
        let strategy = self.strategy(
            pool.rotation_strategy.kind.as_deref(),
            file,
            "pool.rotation_strategy.type",
        );
        if let Some(s) = &pool.fallback.strategy {
            if !POOL_FALLBACKS.contains(&s.as_str()) {
                self.issue(
                    file,
                    "pool.fallback.strategy",
                    format!("unknown fallback strategy {s:?}; expected one of {POOL_FALLBACKS:?}"),
                );
            }
        }
        for (i, target) in pool.fallback.fallback_pools.iter().enumerate() {
            deferred.push(Deferred {
                file: file.to_owned(),
                key: format!("pool.fallback.fallback_pools[{i}]"),
                target: target.clone(),
            });
        }
        for (key, value) in &pool.rotation_strategy.options.weights {
            let wkey = format!("pool.rotation_strategy.options.weights.{key:?}");
            let known = key.split_once('.').is_some_and(|(g, e)| {
                pool.task_groups.iter().any(|x| x == g)
                    && groups
                        .get(g)
                        .is_some_and(|es| es.iter().any(|x| x.name == e))
            });
            if !known {
                self.issue(
                    file,
                    &wkey,
                    format!("{key:?} is not a group.echelon of this pool's task groups"),
                );
            }
            if *value == 0 {
                self.issue(file, &wkey, "must be at least 1");
            }
        }
        let mut members: Vec<MemberSpec> = Vec::new();
        for (i, group) in pool.task_groups.iter().enumerate() {
            let Some(echelons) = groups.get(group) else {
                self.issue(
                    file,
                    format!("pool.task_groups[{i}]"),
                    unknown("task group", group, disabled),
                );
                continue;
            };
            for e in echelons {
                let factor = pool
                    .rotation_strategy
                    .options
                    .weights
                    .get(&e.tier.label)
                    .copied()
                    .and_then(NonZeroU32::new)
                    .unwrap_or(NonZeroU32::MIN);
                for m in &e.tier.members {
                    if !members.iter().any(|x| x.instance == m.instance) {
                        let weight = m.weight.saturating_mul(factor);
                        members.push(MemberSpec {
                            instance: m.instance,
                            weight,
                        });
                    }
                }
            }
        }
        if members.is_empty() {
            return None;
        }
        let score = self.score_weights(
            pool.rotation_strategy.options.score_weights,
            file,
            "pool.rotation_strategy.options.score_weights",
        );
        let rounds = pool.fallback.max_instance_attempts.unwrap_or(1);
        if rounds == 0 {
            self.issue(
                file,
                "pool.fallback.max_instance_attempts",
                "must be at least 1",
            );
        }
        let rounds = rounds.max(1);
        let tier = TierSpec {
            label: name.to_owned(),
            strategy,
            max_attempts: u32::try_from(members.len())
                .unwrap_or(u32::MAX)
                .saturating_mul(rounds),
            members,
            max_instance_attempts: rounds,
            timeout: None,
            ttft_timeout: None,
            retry_delay: None,
            rotate: Rotate::Instance,
            defaults: Defaults::default(),
            limits: self.rate_limiting(&pool.rate_limiting, file),
            score,
            group: None,
        };
        Some((tier, health, pool.fallback.fallback_pools))
    }

    pub(super) fn wrappers(
        &mut self,
        file: &str,
        pools: &BTreeMap<String, TierSpec>,
        groups: &BTreeMap<String, Vec<Echelon>>,
        disabled: &BTreeSet<&str>,
        out: &mut Vec<(String, Target)>,
    ) -> Option<toml::Table> {
        let wf = self.parse::<raw::WrapperFile>(file)?;
        for (name, w) in wf.wrappers.iter().filter(|(_, w)| w.enabled) {
            let key = format!("wrappers.{name}");
            let target = match w.kind.as_str() {
                "pool" => {
                    let Some(target) = &w.pool_name else {
                        self.issue(
                            file,
                            format!("{key}.pool_name"),
                            "missing: a pool wrapper names its pool",
                        );
                        continue;
                    };
                    match pools.get(target) {
                        Some(_) => Target::Pool(target.clone()),
                        None => {
                            self.issue(
                                file,
                                format!("{key}.pool_name"),
                                unknown("pool", target, disabled),
                            );
                            continue;
                        }
                    }
                }
                "task_group" => {
                    let Some(target) = &w.task_group_name else {
                        self.issue(
                            file,
                            format!("{key}.task_group_name"),
                            "missing: a task_group wrapper names its task group",
                        );
                        continue;
                    };
                    match groups.get(target) {
                        Some(_) => Target::Group(target.clone()),
                        None => {
                            self.issue(
                                file,
                                format!("{key}.task_group_name"),
                                unknown("task group", target, disabled),
                            );
                            continue;
                        }
                    }
                }
                other => {
                    self.issue(
                        file,
                        format!("{key}.type"),
                        format!(
                            "unknown wrapper type {other:?}; expected \"pool\" or \"task_group\""
                        ),
                    );
                    continue;
                }
            };
            if out.iter().any(|(n, _)| n == name) {
                self.issue(file, key, format!("wrapper {name:?} is defined twice"));
                continue;
            }
            out.push((name.clone(), target));
        }
        Some(wf.global)
    }
}

impl Loader<'_> {
    /// `[pool.rate_limiting]` → the pool tier's limits.
    fn rate_limiting(&mut self, r: &raw::RateLimiting, file: &str) -> LimitSpec {
        let key = |k: &str| format!("pool.rate_limiting.{k}");
        let concurrency = r.concurrency_limit;
        if concurrency == Some(0) {
            self.issue(file, key("concurrency_limit"), "must be greater than 0");
        }
        let mut spec = LimitSpec {
            concurrency: concurrency.filter(|n| *n > 0),
            ..LimitSpec::NONE
        };
        if r.enabled == Some(false) {
            return LimitSpec::NONE;
        }
        let algorithm = r.algorithm.as_deref().or(
            match (&r.token_bucket, &r.fixed_window, &r.sliding_window) {
                (Some(_), _, _) => Some("token_bucket"),
                (None, Some(_), _) => Some("fixed_window"),
                (None, None, Some(_)) => Some("sliding_window"),
                _ => None,
            },
        );
        let window = |cx: &mut Self, w: &Option<raw::RateWindow>, name: &str| {
            let k = |f: &str| key(&format!("{name}.{f}"));
            let Some(w) = w else {
                cx.issue(
                    file,
                    key(name),
                    format!("algorithm {name:?} needs a [pool.rate_limiting.{name}] table"),
                );
                return None;
            };
            let size = cx.seconds(w.window_size.or(Some(60.0)), file, &k("window_size"));
            match w.max_requests {
                Some(n) if n > 0 => size.map(|window| (window, n)),
                _ => {
                    cx.issue(file, k("max_requests"), "must be greater than 0");
                    None
                }
            }
        };
        spec.requests = match algorithm {
            None => None,
            // Named without its table (seed 003): seed 004's fast-pool bucket.
            Some("token_bucket") if r.token_bucket.is_none() => Some(Algorithm::TokenBucket {
                capacity: 1000.0,
                refill_per_s: 16.67,
            }),
            Some("token_bucket") => {
                let b = r.token_bucket.as_ref();
                let size = b.and_then(|b| b.bucket_size);
                let rate = b.and_then(|b| b.refill_rate);
                match (size, rate) {
                    (Some(c), Some(f)) if c >= 1.0 && f > 0.0 && c.is_finite() && f.is_finite() => {
                        Some(Algorithm::TokenBucket {
                            capacity: c,
                            refill_per_s: f,
                        })
                    }
                    _ => {
                        self.issue(
                            file,
                            key("token_bucket"),
                            "needs bucket_size ≥ 1 and refill_rate > 0 (tokens per second)",
                        );
                        None
                    }
                }
            }
            Some("fixed_window") => window(self, &r.fixed_window, "fixed_window")
                .map(|(window, max)| Algorithm::FixedWindow { window, max }),
            Some("sliding_window") => {
                window(self, &r.sliding_window, "sliding_window").map(|(window, max)| {
                    Algorithm::SlidingWindow {
                        window,
                        max: max.min(crate::limit::rate::SLIDING_MAX),
                    }
                })
            }
            Some(other) => {
                self.issue(
                    file,
                    key("algorithm"),
                    format!("unknown algorithm {other:?}; expected token_bucket, fixed_window or sliding_window"),
                );
                None
            }
        };
        spec
    }
}

/// Everything a task group's `models` entry may name.
pub(super) struct Lookup<'a> {
    pub(super) models: &'a BTreeMap<String, Vec<usize>>,
    pub(super) ids: &'a HashMap<&'a str, usize>,
    pub(super) providers: &'a BTreeMap<String, Vec<String>>,
    pub(super) instances: &'a [InstanceSpec],
    pub(super) disabled: &'a BTreeSet<&'a str>,
}

impl Lookup<'_> {
    fn resolve(&self, name: &str) -> Result<&[usize], String> {
        if let Some(list) = self.models.get(name) {
            return Ok(list);
        }
        if let Some(i) = self.ids.get(name) {
            return Ok(std::slice::from_ref(i));
        }
        Err(match name.split_once(':') {
            Some((provider, model)) => match self.providers.get(provider) {
                Some(known) => format!(
                    "unknown model {name:?}: provider {provider:?} has no model {model:?} (it has: {})",
                    known.join(", ")
                ),
                None if self.disabled.contains(provider) => {
                    format!(
                        "unknown model {name:?}: provider {provider:?} is disabled in {REGISTRY}"
                    )
                }
                None => format!(
                    "unknown model {name:?}: no provider {provider:?} is registered in {REGISTRY}"
                ),
            },
            None => format!("unknown model {name:?}: expected provider:model or an instance id"),
        })
    }
}

/// Compare names so that `echelon2` sorts before `echelon10`.
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| {
        let digits = s.bytes().rev().take_while(u8::is_ascii_digit).count();
        let (head, tail) = s.split_at(s.len() - digits);
        (head.to_owned(), tail.parse::<u64>().ok())
    };
    split(a).cmp(&split(b)).then_with(|| a.cmp(b))
}
