//! Raw files → validated [`Config`]: read every registered file, inject env vars, resolve every
//! reference, and collect every problem as `file:key: reason`.
//!
//! This file reads `_registry.toml` and drives the order; its members resolve one kind each:
//! - `provider`: `providers/*.toml` → instances.
//! - `groups`: task groups, pools and wrappers.
//! - `routes`: every routing name in one list, clashes refused.

mod global;
mod groups;
mod health;
mod lint;
mod provider;
mod routes;
mod suggest;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::raw;
use super::{ADMIN, Config, ConfigError, InstanceSpec, Issue, Overlay, Source, TierSpec};
use crate::balance::{ScoreWeights, StrategyKind};
use crate::health::{BreakerPolicy, HealthPolicy};
use groups::Lookup;

const REGISTRY: &str = "_registry.toml";
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// 10 MiB: room for a long context with a few base64 images, small enough to refuse abuse.
const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// `[server] header_timeout`: nginx's `client_header_timeout` is 60 s; a gateway whose
/// clients are SDKs on fast links sends headers in one packet, so 10 s is generous and bounds
/// what a slowloris client (or an idle keep-alive connection) holds.
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `[server] body_timeout`: a 10 MiB body (the default limit) at 3 Mbit/s takes ~28 s.
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest edge timeout accepted (a day): past it a timer deadline could overflow.
const MAX_EDGE_TIMEOUT: Duration = Duration::from_secs(86_400);
/// Distinct instances tried per tier when the config does not say (seed 001: three tries).
const DEFAULT_TIER_ATTEMPTS: u32 = 3;
const GROUP_FALLBACKS: &[&str] = &[
    "echelon_down",
    "group_fallback",
    "model_rotate",
    "provider_failover",
];
const POOL_FALLBACKS: &[&str] = &["instance_rotation", "pool_fallback"];

pub fn load(
    source: &dyn Source,
    env: &dyn Fn(&str) -> Option<String>,
    overlay: &Overlay,
) -> Result<Config, ConfigError> {
    let mut cx = Loader {
        source,
        env,
        overlay,
        issues: Vec::new(),
        unknown: Vec::new(),
        virtual_files: HashMap::new(),
        texts: HashMap::new(),
        sections: BTreeMap::new(),
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
    overlay: &'a Overlay,
    issues: Vec<Issue>,
    /// Keys no field reads: `(file, key)`.
    unknown: Vec<(String, String)>,
    /// Files made from YAML ones (`FILE#task_groups.NAME`), read before the source.
    virtual_files: HashMap<String, String>,
    /// Every file's text as read, to give issues their line.
    texts: HashMap<String, String>,
    /// Pools' and groups' metrics settings and metadata.
    sections: BTreeMap<String, crate::config::SectionInfo>,
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
        let key: String = key.into();
        let line = (self.texts.get(file)).and_then(|t| super::locate::line_of(t, &key));
        self.issues.push(Issue {
            line,
            file: file.to_owned(),
            key,
            reason: reason.into(),
        });
    }

    /// Read, parse, env-expand and deserialise one file.
    fn parse<T: DeserializeOwned>(&mut self, file: &str) -> Option<T> {
        let read = match self.virtual_files.get(file) {
            Some(text) => Ok(text.clone()),
            None => self.source.read(file),
        };
        let text = match read {
            Ok(text) => {
                self.texts.insert(file.to_owned(), text.clone());
                text
            }
            Err(e) => {
                self.issue(file, "", format!("cannot read file: {e}"));
                return None;
            }
        };
        let mut value = match toml::from_str::<toml::Table>(&text) {
            Ok(mut table) => {
                for (key, reason) in super::inherit::resolve(&mut table) {
                    self.issue(file, key, reason);
                }
                toml::Value::Table(table)
            }
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

    /// A `[server]` timeout: positive, at most [`MAX_EDGE_TIMEOUT`].
    fn edge_timeout(&mut self, value: Option<f64>, key: &str, default: Duration) -> Duration {
        match self.seconds(value, REGISTRY, key) {
            Some(d) if d > MAX_EDGE_TIMEOUT => {
                let max = MAX_EDGE_TIMEOUT.as_secs();
                self.issue(REGISTRY, key, format!("must be at most {max} seconds"));
                default
            }
            Some(d) => d,
            None => default,
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

    fn score_weights(
        &mut self,
        value: Option<ScoreWeights>,
        file: &str,
        key: &str,
    ) -> ScoreWeights {
        let weights = value.unwrap_or_default();
        match weights.problem() {
            None => weights,
            Some(reason) => {
                self.issue(file, key, reason);
                ScoreWeights::default()
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
        let mut registry: raw::Registry = self.parse(REGISTRY)?;
        self.yaml_files(&mut registry);
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
        let header_timeout = self.edge_timeout(
            registry.server.header_timeout,
            "server.header_timeout",
            DEFAULT_HEADER_TIMEOUT,
        );
        let body_timeout = self.edge_timeout(
            registry.server.body_timeout,
            "server.body_timeout",
            DEFAULT_BODY_TIMEOUT,
        );

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
        for added in &self.overlay.added {
            let key = format!("instances.{}.model", added.id);
            match added.provider_model() {
                None => self.issue(
                    ADMIN,
                    key,
                    format!("{:?} must be provider:model", added.model),
                ),
                Some((p, _)) if !provider_models.contains_key(p) => {
                    let reason = unknown("provider", p, &disabled);
                    self.issue(ADMIN, key, reason);
                }
                Some(_) => {}
            }
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
        let mut metas = BTreeMap::new();
        let mut groups: BTreeMap<String, Vec<Echelon>> = BTreeMap::new();
        for (name, file) in registry.task_groups.iter().filter(|(_, f)| f.enabled) {
            if let Some((echelons, meta)) =
                self.task_group(name, &file.file, &lookup, &mut deferred_groups)
            {
                groups.insert(name.clone(), echelons);
                metas.insert(name.clone(), meta);
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
        let mut health = vec![None; instances.len()];
        let mut pool_fallbacks = BTreeMap::new();
        for (name, file) in registry.pools.iter().filter(|(_, f)| f.enabled) {
            if let Some((tier, policy, fallback)) =
                self.pool(name, &file.file, &groups, &disabled, &mut deferred_pools)
            {
                pool_fallbacks.insert(name.clone(), fallback);
                let members = tier.members.iter().map(|m| m.instance);
                health::merge(&mut health, members, policy, HealthPolicy::strictest);
                pools.insert(name.clone(), tier);
            }
        }
        let mut breakers = vec![None; instances.len()];
        for tier in groups.values().flatten().map(|e| &e.tier) {
            if let Some(group) = &tier.group {
                let members = tier.members.iter().map(|m| m.instance);
                health::merge(
                    &mut breakers,
                    members,
                    group.breaker,
                    BreakerPolicy::strictest,
                );
            }
        }
        for ((inst, h), b) in instances.iter_mut().zip(health).zip(breakers) {
            inst.health = h.unwrap_or_default();
            inst.breaker = b.unwrap_or_default();
        }
        for d in deferred_pools {
            if !pools.contains_key(&d.target) {
                let reason = unknown("pool", &d.target, &disabled);
                self.issue(&d.file, d.key, reason);
            }
        }

        let mut wrappers = Vec::new();
        let mut globals = vec![(REGISTRY.to_owned(), registry.global.clone())];
        let mut wrapper_files = BTreeMap::new();
        for file in registry.wrappers.values().filter(|f| f.enabled) {
            let before = wrappers.len();
            let global = self.wrappers(&file.file, &pools, &groups, &disabled, &mut wrappers);
            for (name, _) in &wrappers[before..] {
                wrapper_files.insert(name.clone(), file.file.clone());
            }
            if let Some(global) = global {
                globals.push((file.file.clone(), global));
            }
        }

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
        // A missing or disabled dependency: an error when strict, a warning when lenient.
        let before = self.issues.len();
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

        let dependency_warnings = if strict {
            Vec::new()
        } else {
            self.issues.split_off(before)
        };
        let provider_names: Vec<&str> = registry.providers.keys().map(String::as_str).collect();
        let global = self.global(&globals, &provider_names);
        let plans = routes::Plans {
            pools: &pools,
            pool_fallbacks: &pool_fallbacks,
            groups: &groups,
            metas: &metas,
            instances: &instances,
            default_attempts: global.max_attempts,
        };
        let routes = self.routes(&wrappers, &plans, &models);
        let mut files = BTreeMap::new();
        for (name, f) in registry.pools.iter().chain(&registry.task_groups) {
            files.insert(name.clone(), f.file.clone());
        }
        for (name, _) in &wrappers {
            files.insert(
                name.clone(),
                wrapper_files.get(name).cloned().unwrap_or_default(),
            );
        }
        let mut warnings = lint::Graph {
            routes: &routes,
            instances: &instances,
            groups: &groups,
            metas: &metas,
            pool_fallbacks: &pool_fallbacks,
            request_timeout: global.request_timeout,
            files: &files,
        }
        .lint();
        warnings.extend(dependency_warnings);
        for (file, key) in std::mem::take(&mut self.unknown) {
            let hint = suggest::nearest(&key)
                .map(|k| format!("did you mean {k:?}? "))
                .unwrap_or_default();
            let line = (self.texts.get(&file)).and_then(|t| super::locate::line_of(t, &key));
            let issue = Issue {
                line,
                file,
                key,
                reason: {
                    if strict {
                        format!(
                            "unknown key ({hint}config_validation = \"strict\" refuses keys it does not know; \"lenient\" only warns)"
                        )
                    } else {
                        format!("unknown key, ignored ({hint}not read)")
                    }
                },
            };
            if strict {
                self.issues.push(issue);
            } else {
                warnings.push(issue);
            }
        }
        let mut clients = crate::config::ClientLimits::default();
        let keys = |k: &raw::LimitKeys| {
            crate::limit::LimitSpec::from_keys(k.rpm_limit, k.tpm_limit, k.concurrency_limit)
        };
        if let Some(d) = &registry.clients.default {
            clients.default = keys(d);
        }
        for (name, k) in &registry.clients.keys {
            clients.keys.insert(name.clone(), keys(k));
        }
        Some(Config {
            hot_reload: global.hot_reload,
            reload_settle: global.reload_settle,
            snapshot: global.snapshot,
            cache: global.cache,
            tools: global.tools,
            telemetry: global.telemetry,
            sections: std::mem::take(&mut self.sections),
            queue: global.queue,
            clients,
            retry: global.retry,
            request_timeout: global.request_timeout,
            provider_chain: global.provider_chain,
            warnings,
            origin: self.source.describe(),
            listen,
            max_body_bytes: usize::try_from(max_body).unwrap_or(usize::MAX),
            header_timeout,
            body_timeout,
            admin_token: (registry.server.admin_token.clone())
                .filter(|t| !t.is_empty())
                .map(super::Secret::new),
            instances,
            routes,
        })
    }
}

impl Loader<'_> {
    /// Seed 003's YAML files: their groups and pools become virtual files registered like
    /// the TOML ones.
    fn yaml_files(&mut self, registry: &mut raw::Registry) {
        let files: Vec<String> = (registry.yaml.values())
            .filter(|f| f.enabled)
            .map(|f| f.file.clone())
            .collect();
        for file in files {
            let text = match self.source.read(&file) {
                Ok(text) => text,
                Err(e) => {
                    self.issue(&file, "", format!("cannot read file: {e}"));
                    continue;
                }
            };
            let converted = match super::yaml::convert(&text) {
                Ok(c) => c,
                Err(errors) => {
                    for (key, reason) in errors {
                        self.issue(&file, key, reason);
                    }
                    continue;
                }
            };
            for (kind, entries, target) in [
                ("task_groups", converted.groups, &mut registry.task_groups),
                ("polling_pools", converted.pools, &mut registry.pools),
            ] {
                for (name, toml_text) in entries {
                    if target.contains_key(&name) {
                        self.issue(
                            &file,
                            format!("{kind}.{name}"),
                            format!("{name:?} is also registered in {REGISTRY}"),
                        );
                        continue;
                    }
                    let path = format!("{file}#{kind}.{name}");
                    self.virtual_files.insert(path.clone(), toml_text);
                    target.insert(
                        name,
                        raw::FileRef {
                            file: path,
                            enabled: true,
                        },
                    );
                }
            }
        }
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

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}
