//! [`Anthropic`]: the [`Adapter`] that sends OpenAI-shaped requests to the Messages API and
//! hands back OpenAI-shaped replies. `x-api-key` and `anthropic-version` headers; chat only
//! (`/v1/completions` and embeddings have no Anthropic endpoint); health probes list models
//! (`GET /v1/models`).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use super::{API_VERSION, StreamTranslator, TranslateError, from_messages_response};
use crate::config::InstanceSpec;
use crate::provider::{
    Adapter, ErrorClass, Operation, Refusal, StreamDecode, openai_error, unix_now,
};
use crate::request::ClientRequest;
use crate::route::Defaults;

/// `max_tokens` when neither the client nor the echelon sets one (Anthropic requires it).
const DEFAULT_MAX_TOKENS: u32 = 4096;

#[derive(Debug, Default)]
pub struct Anthropic;

impl Adapter for Anthropic {
    fn url(&self, base_url: &str, _: &InstanceSpec, op: Operation) -> String {
        match op {
            Operation::Models => format!("{base_url}/models"),
            _ => format!("{base_url}/messages"),
        }
    }

    fn headers(&self, instance: &InstanceSpec) -> HeaderMap {
        let x_api_key = http::HeaderName::from_static("x-api-key");
        let mut headers = crate::provider::json_headers(instance, x_api_key, str::to_owned);
        // Before the extras would have been: a configured anthropic-version wins.
        if !instance
            .headers
            .iter()
            .any(|(n, _)| n == "anthropic-version")
        {
            headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        }
        headers
    }

    fn encode(
        &self,
        req: &ClientRequest,
        instance: &InstanceSpec,
        defaults: &Defaults,
    ) -> Result<(Bytes, Option<String>), Refusal> {
        if req.op != Operation::Chat {
            return Err(Refusal::Unsupported(format!(
                "Anthropic's API has no {} endpoint",
                req.op.as_str()
            )));
        }
        let body = req.body_with(&instance.upstream_model, defaults);
        let openai: Value = serde_json::from_slice(&body)
            .map_err(|e| Refusal::Client(format!("request body is not valid JSON: {e}")))?;
        let out = super::to_messages_request(&openai, &instance.upstream_model, DEFAULT_MAX_TOKENS)
            .map_err(|e| Refusal::Client(e.to_string()))?;
        Ok((Bytes::from(out.to_string()), None))
    }

    fn decode(
        &self,
        _: &ClientRequest,
        instance: &InstanceSpec,
        body: &[u8],
    ) -> Result<Option<Bytes>, (ErrorClass, String)> {
        let reply = from_messages_response(body, &instance.upstream_model, unix_now())
            .map_err(|e| (e.class(), e.to_string()))?;
        Ok(Some(Bytes::from(reply.to_string())))
    }

    fn stream_decoder(&self, instance: &InstanceSpec) -> Option<Box<dyn StreamDecode>> {
        Some(Box::new(Decoder(StreamTranslator::new(
            &instance.upstream_model,
            unix_now(),
        ))))
    }

    fn classify_reply(&self, status: StatusCode, body: &[u8]) -> ErrorClass {
        super::classify(status, body)
    }

    fn client_error(&self, status: StatusCode, body: &[u8]) -> Option<Bytes> {
        let message =
            super::error_message(body).unwrap_or_else(|| format!("Anthropic answered {status}"));
        Some(openai_error(&message, "invalid_request_error"))
    }
}

struct Decoder(StreamTranslator);

impl StreamDecode for Decoder {
    fn event(
        &mut self,
        event: Option<&str>,
        data: &[u8],
    ) -> Result<Vec<Value>, (ErrorClass, String)> {
        self.0
            .event(event, data)
            .map_err(|e: TranslateError| (e.class(), e.to_string()))
    }
}
