//! [`Gemini`]: the [`Adapter`] for Google's native API. The key goes in `x-goog-api-key`;
//! chat uses `:generateContent` (`:streamGenerateContent?alt=sse` when streamed), embeddings
//! always `:batchEmbedContents` (one input is a batch of one); legacy completions have no
//! Gemini endpoint. Health probes list models (`GET /models`).

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{StreamTranslator, TranslateError};
use crate::config::InstanceSpec;
use crate::provider::{Adapter, ErrorClass, Operation, Refusal, StreamDecode, unix_now};
use crate::request::ClientRequest;
use crate::route::Defaults;

#[derive(Debug, Default)]
pub struct Gemini;

impl Adapter for Gemini {
    fn url(&self, base_url: &str, instance: &InstanceSpec, op: Operation) -> String {
        let path = match op {
            Operation::Embeddings => super::embed_path(&instance.upstream_model, true),
            op => super::path(&instance.upstream_model, op, false),
        };
        format!("{base_url}{path}")
    }

    fn stream_url(&self, base_url: &str, instance: &InstanceSpec) -> Option<String> {
        let path = super::path(&instance.upstream_model, Operation::Chat, true);
        Some(format!("{base_url}{path}"))
    }

    fn headers(&self, instance: &InstanceSpec) -> HeaderMap {
        let key = http::HeaderName::from_static(super::API_KEY_HEADER);
        crate::provider::json_headers(instance, key, str::to_owned)
    }

    fn encode(
        &self,
        req: &ClientRequest,
        instance: &InstanceSpec,
        defaults: &Defaults,
    ) -> Result<(Bytes, Option<String>), Refusal> {
        let body = req.body_with(&instance.upstream_model, defaults);
        let openai: Value = serde_json::from_slice(&body)
            .map_err(|e| Refusal::Client(format!("request body is not valid JSON: {e}")))?;
        let client = |e: TranslateError| Refusal::Client(e.to_string());
        let out = match req.op {
            Operation::Chat => super::to_generate_request(&openai).map_err(client)?,
            Operation::Embeddings => {
                let (batch, v) =
                    super::to_embed_request(&openai, &instance.upstream_model).map_err(client)?;
                if batch {
                    v
                } else {
                    let mut one = v;
                    if let Some(o) = one.as_object_mut() {
                        o.insert(
                            "model".to_owned(),
                            json!(super::resource_name(&instance.upstream_model)),
                        );
                    }
                    json!({ "requests": [one] })
                }
            }
            op => {
                return Err(Refusal::Unsupported(format!(
                    "Gemini's API has no {} endpoint",
                    op.as_str()
                )));
            }
        };
        Ok((Bytes::from(out.to_string()), None))
    }

    fn decode(
        &self,
        req: &ClientRequest,
        instance: &InstanceSpec,
        body: &[u8],
    ) -> Result<Option<Bytes>, (ErrorClass, String)> {
        let model = &instance.upstream_model;
        let reply = match req.op {
            Operation::Embeddings => super::from_embed_response(body, model),
            _ => super::from_generate_response(body, model, unix_now()),
        }
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
            super::error_message(body).unwrap_or_else(|| format!("Gemini answered {status}"));
        Some(crate::provider::openai_error(
            &message,
            "invalid_request_error",
        ))
    }
}

struct Decoder(StreamTranslator);

impl StreamDecode for Decoder {
    fn event(&mut self, _: Option<&str>, data: &[u8]) -> Result<Vec<Value>, (ErrorClass, String)> {
        self.0.event(data).map_err(|e| (e.class(), e.to_string()))
    }

    fn end(&mut self) -> Vec<Value> {
        self.0.finish().into_iter().collect()
    }
}
