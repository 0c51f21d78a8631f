//! The OpenAI-compatible adapter: `POST {base_url}/chat/completions` with a bearer key.

use bytes::Bytes;
use http::{HeaderValue, Method, header};

use super::{Adapter, Operation};
use crate::config::InstanceSpec;

#[derive(Debug, Default)]
pub struct OpenAi;

impl Adapter for OpenAi {
    fn request(
        &self,
        base_url: &str,
        instance: &InstanceSpec,
        op: Operation,
        body: Bytes,
    ) -> http::Request<Bytes> {
        let path = match op {
            Operation::Chat => "/chat/completions",
            Operation::Completions => "/completions",
            Operation::Embeddings => "/embeddings",
        };
        let mut req = http::Request::new(body);
        *req.method_mut() = Method::POST;
        let mut uri = String::with_capacity(base_url.len() + path.len());
        uri.push_str(base_url);
        uri.push_str(path);
        // base_url was validated as an absolute http(s) URL at config load.
        if let Ok(parsed) = uri.parse() {
            *req.uri_mut() = parsed;
        }
        let headers = req.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(key) = &instance.api_key {
            if let Ok(mut value) = HeaderValue::try_from(format!("Bearer {}", key.expose())) {
                value.set_sensitive(true);
                headers.insert(header::AUTHORIZATION, value);
            }
        }
        for (name, value) in &instance.headers {
            headers.insert(name.clone(), value.clone());
        }
        req
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use super::*;
    use crate::config::{Endpoint, Price, Secret};
    use crate::provider::ErrorClass;

    fn instance() -> InstanceSpec {
        InstanceSpec {
            id: "a".into(),
            model_ref: "openai:gpt-4o".into(),
            provider: "openai".into(),
            upstream_model: "gpt-4o".into(),
            endpoint: Endpoint::OpenAi {
                base_url: "https://api.example.com/v1".into(),
            },
            api_key: Some(Secret::new("sk-test".into())),
            headers: vec![(
                header::HeaderName::from_static("openai-organization"),
                HeaderValue::from_static("org-1"),
            )],
            timeout: Duration::from_secs(5),
            weight: NonZeroU32::MIN,
            price: Price::default(),
        }
    }

    #[test]
    fn builds_url_auth_and_extra_headers() {
        let req = OpenAi.request(
            "https://api.example.com/v1",
            &instance(),
            Operation::Embeddings,
            Bytes::from_static(b"{}"),
        );
        assert_eq!(req.uri(), "https://api.example.com/v1/embeddings");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.headers()[header::AUTHORIZATION], "Bearer sk-test");
        assert!(req.headers()[header::AUTHORIZATION].is_sensitive());
        assert_eq!(req.headers()["openai-organization"], "org-1");
        assert_eq!(req.body().as_ref(), b"{}");
    }

    #[test]
    fn classifies_statuses() {
        use http::StatusCode as S;
        assert_eq!(OpenAi.classify(S::BAD_REQUEST), ErrorClass::Client);
        assert_eq!(OpenAi.classify(S::UNAUTHORIZED), ErrorClass::Auth);
        assert_eq!(
            OpenAi.classify(S::TOO_MANY_REQUESTS),
            ErrorClass::RateLimited
        );
        assert_eq!(OpenAi.classify(S::BAD_GATEWAY), ErrorClass::Server);
        assert!(!ErrorClass::Client.retryable() && ErrorClass::Connect.retryable());
    }
}
