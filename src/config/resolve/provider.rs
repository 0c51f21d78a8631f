//! `providers/*.toml` → instances: endpoints, keys, headers, timeouts, weights, prices.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::{ADMIN, Loader, REGISTRY};
use crate::config::{Endpoint, InstanceSpec, Price, Secret, raw};
use crate::limit::LimitSpec;
use crate::mock::Behavior;
use crate::provider::Api;
use crate::provider::presets::Wire;

impl Loader<'_> {
    pub(super) fn provider(
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
        let (mock, preset) = match p.kind.as_str() {
            "mock" => (true, None),
            other => match crate::provider::presets::find(other) {
                Some(preset) => (false, Some(preset)),
                None => {
                    let known = crate::provider::presets::names();
                    self.issue(
                        file,
                        "provider.type",
                        format!("unknown provider type {other:?}; expected one of {known:?}"),
                    );
                    return;
                }
            },
        };
        let api = match preset.map(|p| p.wire) {
            None | Some(Wire::OpenAi) => Api::OpenAi,
            Some(Wire::Anthropic) => Api::Anthropic,
            Some(Wire::Gemini) => Api::Gemini,
            Some(Wire::Azure) => Api::Azure {
                api_version: (p.api_version.clone())
                    .unwrap_or_else(|| crate::provider::AZURE_API_VERSION.to_owned()),
            },
        };
        if p.api_version.is_some() && !matches!(api, Api::Azure { .. }) {
            self.issue(
                file,
                "provider.api_version",
                "only type = \"azure\" reads api_version",
            );
        }
        let preset_url = preset.and_then(|p| p.base_url).map(str::to_owned);
        let preset_key = (preset.and_then(|p| p.key_env))
            .and_then(|var| (self.env)(var))
            .filter(|k| !k.is_empty());
        if pf.models.is_empty() {
            self.issue(
                file,
                "models",
                "the provider defines no models ([models.NAME])",
            );
        }
        let provider_timeout = self.seconds(p.timeout, file, "provider.timeout");
        let overlay = self.overlay;
        let added = overlay.added_for(name);
        let unlisted = raw::Model::default();
        let names: BTreeSet<&str> = (pf.models.keys().map(String::as_str))
            .chain(added.keys().copied())
            .collect();
        for model_name in names {
            // A model only registered at runtime has no file settings and no implicit instance.
            let (model, in_file) = match pf.models.get(model_name) {
                Some(m) => (m, true),
                None => (&unlisted, false),
            };
            let model_ref = format!("{name}:{model_name}");
            let model_timeout =
                self.seconds(model.timeout, file, &format!("models.{model_name}.timeout"));
            let implicit = [raw::Instance::default()];
            let list: &[raw::Instance] = match (model.instances.is_empty(), in_file) {
                (true, true) => &implicit,
                (true, false) => &[],
                (false, _) => &model.instances,
            };
            let extra: Vec<raw::Instance> = added
                .get(model_name)
                .map(|v| v.iter().map(|a| a.raw()).collect())
                .unwrap_or_default();
            let from_file = list.iter().enumerate().map(|(i, ri)| {
                let key = if model.instances.is_empty() {
                    format!("models.{model_name}")
                } else {
                    format!("models.{model_name}.instances[{i}]")
                };
                (file, key, i, ri)
            });
            let from_admin = extra.iter().map(|ri| {
                let id = ri.id.as_deref().unwrap_or_default();
                (ADMIN, format!("instances.{id}"), 0, ri)
            });
            for (file, key, i, ri) in from_file.chain(from_admin) {
                let id = match (&ri.id, model.instances.is_empty()) {
                    (Some(id), _) => id.clone(),
                    (None, true) => model_ref.clone(),
                    (None, false) => format!("{model_ref}#{}", i + 1),
                };
                // Deregistered file instances are hidden; runtime ones leave `added` instead.
                if file != ADMIN && overlay.removed.contains(&id) {
                    continue;
                }
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
                    let Some(url) = url.or(p.base_url.as_ref()).or(preset_url.as_ref()) else {
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
                let weight_value = (overlay.weights.get(&id).copied())
                    .or(ri.weight)
                    .or(model.weight)
                    .unwrap_or(1);
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
                let limit = |v: Option<u32>, k: &str, cx: &mut Self| {
                    if v == Some(0) {
                        cx.issue(file, format!("{key}.{k}"), "must be greater than 0");
                    }
                    v.filter(|n| *n > 0)
                };
                let limits = LimitSpec {
                    concurrency: limit(
                        ri.concurrency_limit.or(model.concurrency_limit),
                        "concurrency_limit",
                        self,
                    ),
                    requests: limit(ri.rpm_limit.or(model.rpm_limit), "rpm_limit", self)
                        .map(LimitSpec::per_minute),
                    tokens: limit(ri.tpm_limit.or(model.tpm_limit), "tpm_limit", self)
                        .map(LimitSpec::per_minute),
                };
                let shared = model.shared_limits.unwrap_or_default();
                for (k, v) in [
                    ("rpm_limit", shared.rpm_limit),
                    ("tpm_limit", shared.tpm_limit),
                    ("concurrency_limit", shared.concurrency_limit),
                ] {
                    if v == Some(0) {
                        self.issue(
                            file,
                            format!("models.{model_name}.shared_limits.{k}"),
                            "must be greater than 0",
                        );
                    }
                }
                let model_limits = LimitSpec::from_keys(
                    shared.rpm_limit,
                    shared.tpm_limit,
                    shared.concurrency_limit,
                );
                let api_key = ri
                    .api_key
                    .as_ref()
                    .or(model.api_key.as_ref())
                    .or(p.api_key.as_ref())
                    .filter(|k| !k.is_empty())
                    .or(preset_key.as_ref())
                    .map(|k| Secret::new(k.clone()));
                models
                    .entry(model_ref.clone())
                    .or_default()
                    .push(instances.len());
                instances.push(InstanceSpec {
                    id,
                    model_ref: model_ref.clone(),
                    provider: name.to_owned(),
                    api: api.clone(),
                    upstream_model: model
                        .upstream_model
                        .clone()
                        .unwrap_or_else(|| model_name.to_owned()),
                    endpoint,
                    api_key,
                    headers,
                    timeout,
                    weight,
                    price,
                    // Set from the pools and task groups once those are resolved.
                    health: Default::default(),
                    breaker: Default::default(),
                    limits,
                    model_limits,
                    caps: crate::config::Capabilities {
                        context_window: model.context_window,
                        tools: model.supports_tools.unwrap_or(true),
                        vision: model.supports_vision.unwrap_or(true),
                        streaming: model.supports_streaming.unwrap_or(true),
                        chat: true,
                        completions: matches!(api, Api::OpenAi | Api::Azure { .. }),
                        embeddings: !matches!(api, Api::Anthropic),
                    },
                });
            }
        }
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
