//! A client request parsed once at the edge: routing name, stream flags, and a body that can be
//! re-emitted with another `model` while every other byte stays exactly as the client sent it
//! (tools, response_format, seed and any field we have never heard of).

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::Error;
use crate::provider::Operation;

#[derive(Debug)]
pub struct ClientRequest {
    pub op: Operation,
    /// The routing name the client asked for.
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    body: Bytes,
    /// Byte range of the `model` value (quotes included) inside `body`.
    model_span: Range<usize>,
}

/// The fields the gateway reads; everything else is validated as JSON and passed through.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    #[serde(borrow)]
    prompt: Option<&'a RawValue>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

impl ClientRequest {
    pub fn parse(op: Operation, body: Bytes) -> Result<Self, Error> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(Error::BadRequest(
                "request body must be a JSON object".to_owned(),
            ));
        }
        let head: Head<'_> = serde_json::from_slice(&body)
            .map_err(|e| Error::BadRequest(format!("request body is not valid JSON: {e}")))?;
        let raw_model = head
            .model
            .ok_or_else(|| Error::BadRequest("you must provide a model parameter".to_owned()))?;
        let model: String = serde_json::from_str(raw_model.get())
            .map_err(|_| Error::BadRequest("`model` must be a string".to_owned()))?;
        if model.is_empty() {
            return Err(Error::BadRequest("`model` must not be empty".to_owned()));
        }
        match op {
            Operation::Chat => {
                let messages = head.messages.map(RawValue::get);
                match messages {
                    None => {
                        return Err(Error::BadRequest(
                            "missing required parameter: `messages`".to_owned(),
                        ));
                    }
                    Some(m) if !m.starts_with('[') => {
                        return Err(Error::BadRequest("`messages` must be an array".to_owned()));
                    }
                    Some(m) if m[1..].trim_start().starts_with(']') => {
                        return Err(Error::BadRequest(
                            "`messages` must contain at least one message".to_owned(),
                        ));
                    }
                    Some(_) => {}
                }
            }
            Operation::Completions if head.prompt.is_none() => {
                return Err(Error::BadRequest(
                    "missing required parameter: `prompt`".to_owned(),
                ));
            }
            Operation::Embeddings if head.input.is_none() => {
                return Err(Error::BadRequest(
                    "missing required parameter: `input`".to_owned(),
                ));
            }
            _ => {}
        }
        let start = (raw_model.get().as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
        let model_span = start..start + raw_model.get().len();
        let stream = head.stream.unwrap_or(false);
        let include_usage = head
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        Ok(Self {
            op,
            model,
            stream,
            include_usage,
            model_span,
            body,
        })
    }

    /// The body with `model` set to `upstream_model`; shares the buffer when nothing changes.
    pub fn body_for(&self, upstream_model: &str) -> Bytes {
        if upstream_model == self.model {
            return self.body.clone();
        }
        let Some(quoted) = serde_json::to_string(upstream_model).ok() else {
            return self.body.clone();
        };
        let mut out = BytesMut::with_capacity(self.body.len() + quoted.len());
        out.put_slice(&self.body[..self.model_span.start]);
        out.put_slice(quoted.as_bytes());
        out.put_slice(&self.body[self.model_span.end..]);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(op: Operation, body: &str) -> Result<ClientRequest, String> {
        ClientRequest::parse(op, Bytes::copy_from_slice(body.as_bytes())).map_err(|e| e.to_string())
    }

    #[test]
    fn rewrites_only_the_model_and_keeps_every_other_byte() {
        let body = r#"{ "tools":[{"type":"function"}], "model" : "fast\"pool",
            "messages":[{"role":"user","content":"hi"}], "seed": 7, "x_unknown": {"a":null} }"#;
        let req = parse(Operation::Chat, body).unwrap();
        assert_eq!(req.model, "fast\"pool");
        assert!(!req.stream);
        let out = req.body_for("gpt-4o");
        let expected = body.replace(r#""fast\"pool""#, r#""gpt-4o""#);
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
        assert_eq!(
            req.body_for("fast\"pool"),
            Bytes::copy_from_slice(body.as_bytes())
        );
    }

    #[test]
    fn reads_stream_flags() {
        let req = parse(
            Operation::Chat,
            r#"{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert!(req.stream && req.include_usage);
    }

    #[test]
    fn refuses_bad_bodies_with_a_reason() {
        let cases = [
            (Operation::Chat, "{not json", "not valid JSON"),
            (Operation::Chat, "[1,2]", "JSON object"),
            (Operation::Chat, "", "JSON object"),
            (Operation::Chat, r#"{"messages":[{}]}"#, "model parameter"),
            (
                Operation::Chat,
                r#"{"model":null,"messages":[{}]}"#,
                "model parameter",
            ),
            (
                Operation::Chat,
                r#"{"model":3,"messages":[{}]}"#,
                "must be a string",
            ),
            (Operation::Chat, r#"{"model":"m"}"#, "`messages`"),
            (
                Operation::Chat,
                r#"{"model":"m","messages":{}}"#,
                "must be an array",
            ),
            (
                Operation::Chat,
                r#"{"model":"m","messages":[ ]}"#,
                "at least one",
            ),
            (
                Operation::Chat,
                r#"{"model":"m","model":"n","messages":[{}]}"#,
                "duplicate",
            ),
            (
                Operation::Chat,
                r#"{"model":"m","messages":[{}],"stream":"yes"}"#,
                "not valid JSON",
            ),
            (Operation::Completions, r#"{"model":"m"}"#, "`prompt`"),
            (Operation::Embeddings, r#"{"model":"m"}"#, "`input`"),
        ];
        for (op, body, needle) in cases {
            let err = parse(op, body).unwrap_err();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }
}
