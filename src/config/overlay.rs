//! Runtime changes (admin API, library calls) kept on top of the files: applied at every
//! build, so a reload of the files keeps them and a change is validated like the files are.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::{Price, raw};
use crate::balance::StrategyKind;

/// Everything changed at runtime.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    /// Instances registered at runtime, in registration order.
    pub added: Vec<NewInstance>,
    /// Instance ids deregistered (from the files or from `added`).
    pub removed: BTreeSet<String>,
    /// Instance id → weight.
    pub weights: BTreeMap<String, u32>,
    /// Tier label (pool, `group.echelon`, `provider:model`, instance id) → strategy.
    pub strategies: BTreeMap<String, StrategyKind>,
}

/// An instance registered at runtime: it joins model `provider:model` and every tier that
/// lists that model, and inherits the provider's and model's settings (type, key, headers,
/// timeout, price, mock behaviour) unless it sets its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInstance {
    pub id: String,
    /// `provider:model`; a model the provider file does not list is created.
    pub model: String,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub weight: Option<u32>,
    /// Seconds.
    pub timeout: Option<f64>,
    pub price: Option<Price>,
    /// Mock behaviour, for `type = "mock"` providers.
    pub mock: Option<toml::Value>,
    /// Requests and tokens per minute, and requests in flight, this instance may take.
    pub rpm_limit: Option<u32>,
    pub tpm_limit: Option<u32>,
    pub concurrency_limit: Option<u32>,
}

impl NewInstance {
    pub(super) fn raw(&self) -> raw::Instance {
        raw::Instance {
            id: Some(self.id.clone()),
            base_url: self.base_url.clone(),
            api_key: self.api_key.clone(),
            headers: self.headers.clone(),
            weight: self.weight,
            timeout: self.timeout,
            price: self.price.map(|p| raw::Price {
                input_per_1k: p.input_per_1k,
                output_per_1k: p.output_per_1k,
            }),
            mock: self.mock.clone(),
            rpm_limit: self.rpm_limit,
            tpm_limit: self.tpm_limit,
            concurrency_limit: self.concurrency_limit,
        }
    }

    /// `(provider, model)`, if `model` has that shape.
    pub fn provider_model(&self) -> Option<(&str, &str)> {
        self.model
            .split_once(':')
            .filter(|(p, m)| !p.is_empty() && !m.is_empty())
    }
}

impl Overlay {
    /// Instances registered for `provider`, grouped by model name.
    pub(super) fn added_for(&self, provider: &str) -> BTreeMap<&str, Vec<&NewInstance>> {
        let mut out: BTreeMap<&str, Vec<&NewInstance>> = BTreeMap::new();
        for added in &self.added {
            if let Some((p, m)) = added.provider_model() {
                if p == provider {
                    out.entry(m).or_default().push(added);
                }
            }
        }
        out
    }
}

/// Where problems with runtime changes are reported (the `file` of an [`super::Issue`]).
pub const ADMIN: &str = "admin API";
