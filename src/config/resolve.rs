//! Raw files → validated [`Config`]: read every registered file, inject env vars, resolve every
//! reference, and collect every problem as `file:key: reason`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::de::DeserializeOwned;

use super::raw;
use super::{
    Config, ConfigError, Endpoint, InstanceSpec, Issue, MemberSpec, Price, RouteKind, RouteSpec,
    Secret, Source, TierSpec,
};
use crate::balance::StrategyKind;
use crate::mock::Behavior;

const REGISTRY: &str = "_registry.toml";
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// 10 MiB: room for a long context with a few base64 images, small enough to refuse abuse.
const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Distinct instances tried per tier when the config does not say (seed 001: three tries).
const DEFAULT_TIER_ATTEMPTS: u32 = 3;
const GROUP_FALLBACKS: &[&str] = &["echelon_down", "group_fallback", "model_rotate"];
const POOL_FALLBACKS: &[&str] = &["instance_rotation", "pool_fallback"];

pub fn load(
    source: &dyn Source,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut cx = Loader {
        source,
        env,
        issues: Vec::new(),
        unknown: Vec::new(),
    };
    let config = cx.run();
    match config {
        Some(config) if cx.issues.is_empty() => Ok(config),
        _ => Err(ConfigError {
            origin: source.describe(),
            issues: cx.issues,
        }),
    }
}

struct Loader<'a> {
    source: &'a dyn Source,
    env: &'a dyn Fn(&str) -> Option<String>,
    issues: Vec<Issue>,
    /// Keys no field reads: `(file, key)`.
    unknown: Vec<(String, String)>,
}

/// An echelon after resolution, kept by group for pools and fallbacks.
struct Echelon {
    name: String,
    tier: TierSpec,
}

/// A reference checked once everything it may point at is known.
struct Deferred {
    file: String,
    key: String,
    target: String,
}

impl Loader<'_> {
    fn issue(&mut self, file: &str, key: impl Into<String>, reason: impl Into<String>) {
        self.issues.push(Issue {
            file: file.to_owned(),
            key: key.into(),
            reason: reason.into(),
        });
    }

    /// Read, parse, env-expand and deserialise one file.
    fn parse<T: DeserializeOwned>(&mut self, file: &str) -> Option<T> {
        let text = match self.source.read(file) {
            Ok(text) => text,
            Err(e) => {
                self.issue(file, "", format!("cannot read file: {e}"));
                return None;
            }
        };
        let mut value = match toml::from_str::<toml::Table>(&text) {
            Ok(table) => toml::Value::Table(table),
            Err(e) => {
                let at = e
                    .span()
                    .map(|span| line_col(&text, span.start))
                    .map(|(l, c)| format!("line {l}, column {c}: "))
                    .unwrap_or_default();
                self.issue(
                    file,
                    "",
                    format!("invalid TOML: {at}{}", e.message().trim()),
                );
                return None;
            }
        };
        for (key, reason) in super::env::expand(&mut value, self.env) {
            self.issue(file, key, reason);
        }
        let mut unknown = Vec::new();
        let mut track = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let tracked = serde_ignored::Deserializer::new(value, &mut track);
        let result = serde_path_to_error::deserialize::<_, T>(tracked);
        for key in unknown {
            self.unknown.push((file.to_owned(), key));
        }
        match result {
            Ok(parsed) => Some(parsed),
            Err(e) => {
                let path = e.path().to_string();
                let key = if path == "." { String::new() } else { path };
                self.issue(file, key, e.into_inner().to_string());
                None
            }
        }
    }

    fn seconds(&mut self, value: Option<f64>, file: &str, key: &str) -> Option<Duration> {
        let secs = value?;
        match Duration::try_from_secs_f64(secs) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                self.issue(
                    file,
                    key,
                    format!("must be a positive number of seconds, got {secs}"),
                );
                None
            }
        }
    }

    fn strategy(&mut self, name: Option<&str>, file: &str, key: &str) -> StrategyKind {
        match name.map(str::parse::<StrategyKind>) {
            None => StrategyKind::RoundRobin,
            Some(Ok(kind)) => kind,
            Some(Err(e)) => {
                self.issue(file, key, e.to_string());
                StrategyKind::RoundRobin
            }
        }
    }

    fn check_name(&mut self, file: &str, key: &str, declared: Option<&str>, registered: &str) {
        if let Some(declared) = declared {
            if declared != registered {
                self.issue(
                    file,
                    key,
                    format!("is {declared:?} but {REGISTRY} registers this file as {registered:?}"),
                );
            }
        }
    }

    fn run(&mut self) -> Option<Config> {
        let registry: raw::Registry = self.parse(REGISTRY)?;
        let listen_text = registry.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = match listen_text.parse() {
            Ok(addr) => addr,
            Err(_) => {
                self.issue(
                    REGISTRY,
                    "server.listen",
                    format!("{listen_text:?} is not an address like 127.0.0.1:8080"),
                );
                return None;
            }
        };
        let max_body = registry.server.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
        if max_body == 0 {
            self.issue(REGISTRY, "server.max_body_bytes", "must be greater than 0");
        }
        let default_timeout = self
            .seconds(registry.server.timeout, REGISTRY, "server.timeout")
            .unwrap_or(DEFAULT_TIMEOUT);

        let disabled: BTreeSet<&str> = [
            &registry.providers,
            &registry.pools,
            &registry.task_groups,
            &registry.wrappers,
        ]
        .into_iter()
        .flat_map(|m| m.iter())
        .filter(|(_, f)| !f.enabled)
        .map(|(name, _)| name.as_str())
        .collect();

        let mut instances = Vec::new();
        let mut models: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut provider_models: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, file) in registry.providers.iter().filter(|(_, f)| f.enabled) {
            self.provider(
                name,
                &file.file,
                default_timeout,
                &mut instances,
                &mut models,
            );
            provider_models.insert(name.clone(), Vec::new());
        }
        for model_ref in models.keys() {
            if let Some((provider, model)) = model_ref.split_once(':') {
                if let Some(list) = provider_models.get_mut(provider) {
                    list.push(model.to_owned());
                }
            }
        }
        let ids: HashMap<&str, usize> = instances
            .iter()
            .enumerate()
            .map(|(i, inst): (usize, &InstanceSpec)| (inst.id.as_str(), i))
            .collect();
        let lookup = Lookup {
            models: &models,
            ids: &ids,
            providers: &provider_models,
            instances: &instances,
            disabled: &disabled,
        };

        let mut deferred_groups = Vec::new();
        let mut groups: BTreeMap<String, Vec<Echelon>> = BTreeMap::new();
        for (name, file) in registry.task_groups.iter().filter(|(_, f)| f.enabled) {
            if let Some(echelons) = self.task_group(name, &file.file, &lookup, &mut deferred_groups)
            {
                groups.insert(name.clone(), echelons);
            }
        }
        for d in deferred_groups {
            let known = match d.target.split_once('.') {
                Some((g, e)) => groups
                    .get(g)
                    .is_some_and(|es| es.iter().any(|x| x.name == e)),
                None => groups.contains_key(&d.target),
            };
            if !known {
                let reason = unknown("task group or group.echelon", &d.target, &disabled);
                self.issue(&d.file, d.key, reason);
            }
        }

        let mut deferred_pools = Vec::new();
        let mut pools: BTreeMap<String, TierSpec> = BTreeMap::new();
        for (name, file) in registry.pools.iter().filter(|(_, f)| f.enabled) {
            if let Some(tier) = self.pool(name, &file.file, &groups, &disabled, &mut deferred_pools)
            {
                pools.insert(name.clone(), tier);
            }
        }
        for d in deferred_pools {
            if !pools.contains_key(&d.target) {
                let reason = unknown("pool", &d.target, &disabled);
                self.issue(&d.file, d.key, reason);
            }
        }

        let mut wrappers: Vec<RouteSpec> = Vec::new();
        for file in registry.wrappers.values().filter(|f| f.enabled) {
            self.wrappers(&file.file, &pools, &groups, &disabled, &mut wrappers);
        }

        let registered: BTreeSet<&str> = [
            &registry.providers,
            &registry.pools,
            &registry.task_groups,
            &registry.wrappers,
        ]
        .into_iter()
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
        for (name, deps) in &registry.dependencies {
            if !registered.contains(name.as_str()) {
                self.issue(
                    REGISTRY,
                    format!("dependencies.{name}"),
                    format!("{name:?} is not registered under [providers], [pools], [task_groups] or [wrappers]"),
                );
            }
            for (i, dep) in deps.iter().enumerate() {
                let key = format!("dependencies.{name}[{i}]");
                if !registered.contains(dep.as_str()) {
                    self.issue(
                        REGISTRY,
                        key,
                        format!("depends on {dep:?}, which is not registered"),
                    );
                } else if disabled.contains(dep.as_str()) && !disabled.contains(name.as_str()) {
                    self.issue(
                        REGISTRY,
                        key,
                        format!("depends on {dep:?}, which is disabled"),
                    );
                }
            }
        }

        let routes = self.routes(wrappers, pools, groups, &models, &instances);
        let mut warnings = Vec::new();
        let strict = match registry.global.get("config_validation").map(|v| v.as_str()) {
            None | Some(Some("strict")) => true,
            Some(Some("lenient")) => false,
            Some(_) => {
                self.issue(
                    REGISTRY,
                    "global.config_validation",
                    "must be \"strict\" or \"lenient\"",
                );
                true
            }
        };
        for (file, key) in std::mem::take(&mut self.unknown) {
            let issue = Issue {
                file,
                key,
                reason: if strict {
                    "unknown key (a typo? config_validation = \"strict\" refuses keys it does not know; \"lenient\" only warns)".to_owned()
                } else {
                    "unknown key, ignored".to_owned()
                },
            };
            if strict {
                self.issues.push(issue);
            } else {
                warnings.push(issue);
            }
        }
        Some(Config {
            warnings,
            origin: self.source.describe(),
            listen,
            max_body_bytes: usize::try_from(max_body).unwrap_or(usize::MAX),
            instances,
            routes,
        })
    }

    fn provider(
        &mut self,
        name: &str,
        file: &str,
        default_timeout: Duration,
        instances: &mut Vec<InstanceSpec>,
        models: &mut BTreeMap<String, Vec<usize>>,
    ) {
        let Some(pf) = self.parse::<raw::ProviderFile>(file) else {
            return;
        };
        let p = &pf.provider;
        self.check_name(file, "provider.name", p.name.as_deref(), name);
        if name.contains(':') {
            self.issue(
                REGISTRY,
                format!("providers.{name}"),
                "a provider name cannot contain ':'",
            );
        }
        let mock = match p.kind.as_str() {
            "openai" | "openai_compatible" => false,
            "mock" => true,
            other => {
                self.issue(
                    file,
                    "provider.type",
                    format!("unknown provider type {other:?}; expected \"openai\" (any OpenAI-compatible server) or \"mock\""),
                );
                return;
            }
        };
        if pf.models.is_empty() {
            self.issue(
                file,
                "models",
                "the provider defines no models ([models.NAME])",
            );
        }
        let provider_timeout = self.seconds(p.timeout, file, "provider.timeout");
        for (model_name, model) in &pf.models {
            let model_ref = format!("{name}:{model_name}");
            let model_timeout =
                self.seconds(model.timeout, file, &format!("models.{model_name}.timeout"));
            let implicit = [raw::Instance::default()];
            let list: &[raw::Instance] = if model.instances.is_empty() {
                &implicit
            } else {
                &model.instances
            };
            for (i, ri) in list.iter().enumerate() {
                let key = if model.instances.is_empty() {
                    format!("models.{model_name}")
                } else {
                    format!("models.{model_name}.instances[{i}]")
                };
                let id = match (&ri.id, model.instances.is_empty()) {
                    (Some(id), _) => id.clone(),
                    (None, true) => model_ref.clone(),
                    (None, false) => format!("{model_ref}#{}", i + 1),
                };
                if id.is_empty() {
                    self.issue(file, format!("{key}.id"), "must not be empty");
                    continue;
                }
                if let Some(other) = instances.iter().find(|x| x.id == id) {
                    self.issue(
                        file,
                        format!("{key}.id"),
                        format!(
                            "instance id {id:?} is already used by model {}",
                            other.model_ref
                        ),
                    );
                    continue;
                }
                let endpoint = if mock {
                    let value = ri
                        .mock
                        .clone()
                        .or_else(|| model.mock.clone())
                        .or_else(|| p.mock.clone())
                        .unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
                    let named = value.get("name").is_some();
                    match serde_path_to_error::deserialize::<_, Behavior>(value) {
                        Ok(mut b) => {
                            // Unnamed mocks answer as their instance, so replies say who served.
                            if !named {
                                b.name = id.clone();
                            }
                            Endpoint::Mock(b)
                        }
                        Err(e) => {
                            let path = e.path().to_string();
                            let key = match path.as_str() {
                                "." => format!("{key}.mock"),
                                _ => format!("{key}.mock.{path}"),
                            };
                            self.issue(file, key, e.into_inner().to_string());
                            continue;
                        }
                    }
                } else {
                    if ri.mock.is_some() || model.mock.is_some() || p.mock.is_some() {
                        self.issue(
                            file,
                            format!("{key}.mock"),
                            "mock settings need type = \"mock\"",
                        );
                    }
                    let url = ri.base_url.as_ref().or(model.base_url.as_ref());
                    let Some(url) = url.or(p.base_url.as_ref()) else {
                        self.issue(
                            file,
                            format!("{key}.base_url"),
                            "missing: set base_url on [provider] or on the instance",
                        );
                        continue;
                    };
                    match check_url(url) {
                        Ok(base_url) => Endpoint::OpenAi { base_url },
                        Err(reason) => {
                            let where_ = if ri.base_url.is_some() {
                                format!("{key}.base_url")
                            } else if model.base_url.is_some() {
                                format!("models.{model_name}.base_url")
                            } else {
                                "provider.base_url".to_owned()
                            };
                            self.issue(file, where_, reason);
                            continue;
                        }
                    }
                };
                let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
                let model_section = format!("models.{model_name}.headers");
                let instance_section = format!("{key}.headers");
                let merged = (p.headers.iter().map(|h| ("provider.headers", h)))
                    .chain(model.headers.iter().map(|h| (model_section.as_str(), h)))
                    .chain(ri.headers.iter().map(|h| (instance_section.as_str(), h)));
                for (section, (hname, hvalue)) in merged {
                    let hkey = format!("{section}.{hname}");
                    match (
                        HeaderName::from_bytes(hname.as_bytes()),
                        HeaderValue::from_str(hvalue),
                    ) {
                        (Ok(n), Ok(mut v)) => {
                            v.set_sensitive(true);
                            headers.retain(|(existing, _)| existing != n);
                            headers.push((n, v));
                        }
                        (Err(_), _) => self.issue(file, hkey, "is not a valid HTTP header name"),
                        (_, Err(_)) => self.issue(file, hkey, "is not a valid HTTP header value"),
                    }
                }
                let timeout = self
                    .seconds(ri.timeout, file, &format!("{key}.timeout"))
                    .or(model_timeout)
                    .or(provider_timeout)
                    .unwrap_or(default_timeout);
                let weight_value = ri.weight.or(model.weight).unwrap_or(1);
                let Some(weight) = NonZeroU32::new(weight_value) else {
                    self.issue(file, format!("{key}.weight"), "must be at least 1");
                    continue;
                };
                let raw_price = ri.price.unwrap_or(model.price);
                let price = Price {
                    input_per_1k: raw_price.input_per_1k,
                    output_per_1k: raw_price.output_per_1k,
                };
                let valid = |x: f64| x.is_finite() && x >= 0.0;
                if !(valid(price.input_per_1k) && valid(price.output_per_1k)) {
                    self.issue(
                        file,
                        format!("{key}.price"),
                        "prices must be finite and not negative",
                    );
                }
                let api_key = ri
                    .api_key
                    .as_ref()
                    .or(model.api_key.as_ref())
                    .or(p.api_key.as_ref())
                    .filter(|k| !k.is_empty())
                    .map(|k| Secret::new(k.clone()));
                models
                    .entry(model_ref.clone())
                    .or_default()
                    .push(instances.len());
                instances.push(InstanceSpec {
                    id,
                    model_ref: model_ref.clone(),
                    provider: name.to_owned(),
                    upstream_model: model
                        .upstream_model
                        .clone()
                        .unwrap_or_else(|| model_name.clone()),
                    endpoint,
                    api_key,
                    headers,
                    timeout,
                    weight,
                    price,
                });
            }
        }
    }

    fn task_group(
        &mut self,
        name: &str,
        file: &str,
        lookup: &Lookup<'_>,
        deferred: &mut Vec<Deferred>,
    ) -> Option<Vec<Echelon>> {
        let tg = self.parse::<raw::TaskGroupFile>(file)?.task_group;
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
        self.seconds(
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
            let timeout = self.seconds(e.timeout, file, &format!("{key}.timeout"));
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
                        timeout,
                    },
                },
            ));
        }
        echelons.sort_by(|(pa, a), (pb, b)| pa.cmp(pb).then_with(|| natural(&a.name, &b.name)));
        Some(echelons.into_iter().map(|(_, e)| e).collect())
    }

    fn pool(
        &mut self,
        name: &str,
        file: &str,
        groups: &BTreeMap<String, Vec<Echelon>>,
        disabled: &BTreeSet<&str>,
        deferred: &mut Vec<Deferred>,
    ) -> Option<TierSpec> {
        let pool = self.parse::<raw::PoolFile>(file)?.pool;
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
        Some(TierSpec {
            label: name.to_owned(),
            strategy,
            members,
            max_attempts: DEFAULT_TIER_ATTEMPTS,
            timeout: None,
        })
    }

    fn wrappers(
        &mut self,
        file: &str,
        pools: &BTreeMap<String, TierSpec>,
        groups: &BTreeMap<String, Vec<Echelon>>,
        disabled: &BTreeSet<&str>,
        out: &mut Vec<RouteSpec>,
    ) {
        let Some(wf) = self.parse::<raw::WrapperFile>(file) else {
            return;
        };
        for (name, w) in wf.wrappers.iter().filter(|(_, w)| w.enabled) {
            let key = format!("wrappers.{name}");
            let tiers = match w.kind.as_str() {
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
                        Some(tier) => vec![tier.clone()],
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
                        Some(echelons) => echelons.iter().map(|e| e.tier.clone()).collect(),
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
            if out.iter().any(|r| r.name == *name) {
                self.issue(file, key, format!("wrapper {name:?} is defined twice"));
                continue;
            }
            out.push(RouteSpec {
                name: name.clone(),
                kind: RouteKind::Wrapper,
                tiers,
            });
        }
    }

    fn routes(
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
                }],
            });
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

/// Everything a task group's `models` entry may name.
struct Lookup<'a> {
    models: &'a BTreeMap<String, Vec<usize>>,
    ids: &'a HashMap<&'a str, usize>,
    providers: &'a BTreeMap<String, Vec<String>>,
    instances: &'a [InstanceSpec],
    disabled: &'a BTreeSet<&'a str>,
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

fn unknown(what: &str, name: &str, disabled: &BTreeSet<&str>) -> String {
    let base = name.split('.').next().unwrap_or(name);
    if disabled.contains(base) {
        format!("{what} {name:?} is disabled in {REGISTRY}")
    } else {
        format!("unknown {what} {name:?}: it is not registered in {REGISTRY}")
    }
}

fn check_url(url: &str) -> Result<String, String> {
    let parsed = url
        .parse::<http::Uri>()
        .map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    if !matches!(parsed.scheme_str(), Some("http" | "https")) {
        return Err(format!("{url:?} must be an http:// or https:// URL"));
    }
    if parsed.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    if parsed.query().is_some() || url.contains('#') {
        return Err(format!("{url:?} must not carry a query or fragment"));
    }
    Ok(url.trim_end_matches('/').to_owned())
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

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}
