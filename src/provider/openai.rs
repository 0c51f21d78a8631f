//! The OpenAI-compatible adapter: `POST {base_url}/chat/completions` with a bearer key.

use http::{HeaderMap, header};

use super::{Adapter, Operation};
use crate::config::InstanceSpec;

#[derive(Debug, Default)]
pub struct OpenAi;

impl Adapter for OpenAi {
    fn url(&self, base_url: &str, _: &InstanceSpec, op: Operation) -> String {
        let path = match op {
            Operation::Chat => "/chat/completions",
            Operation::Completions => "/completions",
            Operation::Embeddings => "/embeddings",
            Operation::Models => "/models",
        };
        format!("{base_url}{path}")
    }

    fn headers(&self, instance: &InstanceSpec) -> HeaderMap {
        super::json_headers(instance, header::AUTHORIZATION, |key| {
            format!("Bearer {key}")
        })
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use http::StatusCode;

    use super::*;
    use crate::config::{Endpoint, Price, Secret};
    use crate::provider::ErrorClass;

    fn instance() -> InstanceSpec {
        InstanceSpec {
            id: "a".into(),
            model_ref: "openai:gpt-4o".into(),
            provider: "openai".into(),
            api: crate::provider::Api::OpenAi,
            upstream_model: "gpt-4o".into(),
            endpoint: Endpoint::OpenAi {
                base_url: "https://api.example.com/v1".into(),
            },
            api_key: Some(Secret::new("sk-test".into())),
            headers: vec![(
                header::HeaderName::from_static("openai-organization"),
                http::HeaderValue::from_static("org-1"),
            )],
            timeout: Duration::from_secs(5),
            weight: NonZeroU32::MIN,
            price: Price::default(),
            health: Default::default(),
            breaker: Default::default(),
            limits: crate::limit::LimitSpec::NONE,
            model_limits: crate::limit::LimitSpec::NONE,
            caps: Default::default(),
        }
    }

    #[test]
    fn builds_urls_auth_and_extra_headers() {
        let base = "https://api.example.com/v1";
        assert_eq!(
            OpenAi.url(base, &instance(), Operation::Chat),
            "https://api.example.com/v1/chat/completions"
        );
        assert_eq!(
            OpenAi.url(base, &instance(), Operation::Embeddings),
            "https://api.example.com/v1/embeddings"
        );
        let headers = OpenAi.headers(&instance());
        assert_eq!(headers[header::AUTHORIZATION], "Bearer sk-test");
        assert!(headers[header::AUTHORIZATION].is_sensitive());
        assert_eq!(headers["openai-organization"], "org-1");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn classifies_statuses() {
        assert_eq!(OpenAi.classify(StatusCode::BAD_REQUEST), ErrorClass::Client);
        assert_eq!(OpenAi.classify(StatusCode::UNAUTHORIZED), ErrorClass::Auth);
        assert_eq!(
            OpenAi.classify(StatusCode::TOO_MANY_REQUESTS),
            ErrorClass::RateLimited
        );
        assert_eq!(OpenAi.classify(StatusCode::BAD_GATEWAY), ErrorClass::Server);
    }
}
