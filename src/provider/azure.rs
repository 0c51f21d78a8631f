//! Azure OpenAI: the OpenAI API under per-deployment URLs,
//! `{base_url}/openai/deployments/{deployment}/chat/completions?api-version=V`, where the
//! deployment is the model's `upstream_model` and `V` is `[provider] api_version`. The key goes
//! in the `api-key` header; a key written `Bearer …` (an Entra ID token) goes in
//! `Authorization` instead. Bodies and replies are OpenAI's.

use http::{HeaderMap, header};

use super::{Adapter, Api, Operation};
use crate::config::InstanceSpec;

/// Used when the provider sets no `api_version`.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

#[derive(Debug, Default)]
pub struct Azure;

impl Adapter for Azure {
    fn url(&self, base_url: &str, instance: &InstanceSpec, op: Operation) -> String {
        let version = match &instance.api {
            Api::Azure { api_version } => api_version.as_str(),
            _ => DEFAULT_API_VERSION,
        };
        let base = base_url.trim_end_matches('/');
        let deployment = &instance.upstream_model;
        match op {
            Operation::Models => format!("{base}/openai/models?api-version={version}"),
            Operation::Chat => format!(
                "{base}/openai/deployments/{deployment}/chat/completions?api-version={version}"
            ),
            Operation::Completions => {
                format!("{base}/openai/deployments/{deployment}/completions?api-version={version}")
            }
            Operation::Embeddings => {
                format!("{base}/openai/deployments/{deployment}/embeddings?api-version={version}")
            }
        }
    }

    fn headers(&self, instance: &InstanceSpec) -> HeaderMap {
        // A key written `Bearer …` is an Entra ID token: it goes in Authorization.
        let bearer = (instance.api_key.as_ref()).is_some_and(|k| k.expose().starts_with("Bearer "));
        let name = if bearer {
            header::AUTHORIZATION
        } else {
            header::HeaderName::from_static("api-key")
        };
        super::json_headers(instance, name, str::to_owned)
    }
}
