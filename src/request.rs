//! A client request parsed once at the edge: routing name, stream flags, and a body that can be
//! re-emitted with another `model` while every other byte stays exactly as the client sent it
//! (tools, response_format, seed and any field we have never heard of).

use std::ops::Range;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{ToolPolicy, ToolSelection};
use crate::error::Error;
use crate::provider::Operation;
use crate::route::Defaults;

/// What a client may ask of the gateway itself, in request headers (never forwarded):
/// - `x-switchyard-llm-group: plan_group.echelon1`: route by this group, `group.echelon`, pool
///   or wrapper instead of `model` (seed 003's node config `llm_group`);
/// - `x-switchyard-fallback-groups: plan_group.echelon2, thinking_group.echelon1`: what to
///   fall back to, in order, instead of the configured fallbacks;
/// - `x-switchyard-trace: 1`: a trace of every candidate in the `x-switchyard-trace` response
///   header (and skipped candidates in an error's `attempts`);
/// - `x-switchyard-timeout: SECONDS` (or the OpenAI SDK's `x-stainless-timeout`): the whole
///   request's deadline, if shorter than the configured one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestOptions {
    pub llm_group: Option<String>,
    pub fallback_groups: Vec<String>,
    pub trace: bool,
    pub timeout: Option<std::time::Duration>,
    /// Who is calling, for per-client limits: `x-switchyard-client`, else a hash of the
    /// client's bearer key (`key-…`; the key itself is never kept).
    pub client: Option<String>,
    /// `x-request-id` as the client sent it (visible ASCII, at most 128 bytes), else a fresh
    /// random one ([`request_id`], set by the HTTP edge): in every log line of the request and
    /// in its response.
    pub request_id: Arc<str>,
}

/// The client's `x-request-id` if it is usable, else a new one (16 hex digits).
pub fn request_id(headers: &http::HeaderMap) -> Arc<str> {
    let given = (headers.get("x-request-id"))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()));
    match given {
        Some(id) => Arc::from(id),
        None => Arc::from(format!("{:016x}", fastrand::u64(..))),
    }
}

impl RequestOptions {
    /// `with_key`: derive a client name from the API key (only when per-client limits apply:
    /// it costs a hash).
    pub fn from_headers(headers: &http::HeaderMap, with_key: bool) -> Result<Self, Error> {
        let mut o = Self::default();
        let mut key = None;
        // One pass over the request's few headers, comparing names (no lookups by hash).
        for (name, value) in headers {
            let name = name.as_str();
            if name == "authorization" && with_key {
                let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer "));
                key = token.map(|t| {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    t.trim().hash(&mut h);
                    format!("key-{:016x}", h.finish())
                });
                continue;
            }
            if !name.starts_with("x-s") {
                continue;
            }
            let text = || {
                value
                    .to_str()
                    .map(str::trim)
                    .map_err(|_| Error::BadRequest(format!("header {name} is not ASCII text")))
            };
            match name {
                "x-switchyard-llm-group" => {
                    o.llm_group = Some(text()?.to_owned()).filter(|s| !s.is_empty());
                }
                "x-switchyard-fallback-groups" => {
                    o.fallback_groups = (text()?.split(','))
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                "x-switchyard-trace" => o.trace = matches!(text()?, "1" | "true" | "yes"),
                "x-switchyard-client" => {
                    o.client = Some(text()?.to_owned()).filter(|s| !s.is_empty());
                }
                "x-switchyard-timeout" | "x-stainless-timeout" => {
                    let v = text()?;
                    let d = v
                        .parse::<f64>()
                        .ok()
                        .and_then(|secs| std::time::Duration::try_from_secs_f64(secs).ok())
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            Error::BadRequest(format!(
                                "header {name} must be a positive number of seconds, got {v:?}"
                            ))
                        })?;
                    o.timeout = Some(o.timeout.map_or(d, |t: std::time::Duration| t.min(d)));
                }
                _ => {}
            }
        }
        if o.client.is_none() {
            o.client = key;
        }
        if o.llm_group.is_none() && !o.fallback_groups.is_empty() {
            return Err(Error::BadRequest(
                "x-switchyard-fallback-groups needs x-switchyard-llm-group (the primary target)"
                    .to_owned(),
            ));
        }
        Ok(o)
    }
}

#[derive(Debug)]
pub struct ClientRequest {
    pub op: Operation,
    /// What the request's headers ask of the gateway.
    pub options: RequestOptions,
    /// The routing name the client asked for.
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    body: Bytes,
    /// Byte range of the `model` value (quotes included) inside `body`.
    model_span: Range<usize>,
    has_temperature: bool,
    /// The client's `max_tokens` and the byte range of its value.
    max_tokens: Option<(u64, Range<usize>)>,
    /// A non-empty `tools` or `functions` list.
    has_tools: bool,
    /// `tool_choice` (or the legacy `function_call`) was set.
    has_tool_choice: bool,
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
    #[serde(borrow)]
    temperature: Option<&'a RawValue>,
    #[serde(borrow)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow)]
    tools: Option<&'a RawValue>,
    #[serde(borrow)]
    functions: Option<&'a RawValue>,
    #[serde(borrow)]
    tool_choice: Option<&'a RawValue>,
    #[serde(borrow)]
    function_call: Option<&'a RawValue>,
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
        // JSON is UTF-8 (RFC 8259). serde_json checks it only in the strings it decodes, not
        // in the fields it skips, and every byte is passed on: without this, invalid UTF-8 in an
        // unknown field reached the upstream (found by fuzzing, `fuzz/`).
        let text = std::str::from_utf8(&body).map_err(|e| {
            Error::BadRequest(format!("request body is not valid JSON: not UTF-8 ({e})"))
        })?;
        let head: Head<'_> = serde_json::from_str(text)
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
        let span = |raw: &RawValue| {
            let start = (raw.get().as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
            start..start + raw.get().len()
        };
        let model_span = span(raw_model);
        let max_tokens = match head.max_tokens.filter(|v| v.get() != "null") {
            None => None,
            Some(raw) => Some((
                raw.get().parse::<u64>().map_err(|_| {
                    Error::BadRequest("`max_tokens` must be a non-negative integer".to_owned())
                })?,
                span(raw),
            )),
        };
        let has_temperature = head.temperature.is_some_and(|v| v.get() != "null");
        let listed = |v: Option<&RawValue>| {
            v.is_some_and(|v| {
                v.get().starts_with('[') && !v.get()[1..].trim_start().starts_with(']')
            })
        };
        let has_tools = listed(head.tools) || listed(head.functions);
        let has_tool_choice = [head.tool_choice, head.function_call]
            .iter()
            .any(|v| v.is_some_and(|v| v.get() != "null"));
        let stream = head.stream.unwrap_or(false);
        let include_usage = head
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        Ok(Self {
            op,
            options: RequestOptions::default(),
            has_temperature,
            max_tokens,
            has_tools,
            has_tool_choice,
            model,
            stream,
            include_usage,
            model_span,
            body,
        })
    }

    /// Apply `[global] function_calling_enabled` / `tool_selection_strategy`: refuse tools when
    /// function calling is off; set `tool_choice` when the client sent tools without one.
    pub fn apply_tools(&mut self, policy: &ToolPolicy) -> Result<(), Error> {
        if !self.has_tools {
            return Ok(());
        }
        if !policy.enabled {
            return Err(Error::BadRequest(
                "function calling is disabled on this gateway: remove `tools` / `functions` \
                 ([global] function_calling_enabled = false)"
                    .to_owned(),
            ));
        }
        let choice = match (policy.selection, self.has_tool_choice) {
            (_, true) | (ToolSelection::Auto, _) => return Ok(()),
            (ToolSelection::Manual, false) => "\"tool_choice\":\"none\",",
            (ToolSelection::Priority, false) => "\"tool_choice\":\"required\",",
        };
        let open = self
            .body
            .iter()
            .position(|b| *b == b'{')
            .map_or(0, |i| i + 1);
        let mut out = BytesMut::with_capacity(self.body.len() + choice.len());
        out.put_slice(&self.body[..open]);
        out.put_slice(choice.as_bytes());
        out.put_slice(&self.body[open..]);
        self.body = out.freeze();
        let shift = |r: &mut Range<usize>| {
            if r.start >= open {
                *r = r.start + choice.len()..r.end + choice.len();
            }
        };
        shift(&mut self.model_span);
        if let Some((_, span)) = &mut self.max_tokens {
            shift(span);
        }
        self.has_tool_choice = true;
        Ok(())
    }

    /// The request carries tools (or legacy functions).
    pub fn has_tools(&self) -> bool {
        self.has_tools
    }

    /// The request carries an image part (a scan of the body: only asked of instances whose
    /// model says `supports_vision = false`).
    pub fn has_images(&self) -> bool {
        self.body.windows(11).any(|w| w == b"\"image_url\"")
    }

    /// The body as the client sent it (after the tool policy).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Tokens this request may cost, before the reply says: about four bytes of body per
    /// prompt token, plus `max_tokens` (256 when the client set none).
    pub fn estimate_tokens(&self) -> u64 {
        self.body.len() as u64 / 4 + self.max_tokens.as_ref().map_or(256, |(n, _)| *n)
    }

    /// The body with `model` set to `upstream_model` and an echelon's `defaults` applied
    /// (`temperature` / `max_tokens` added when the client sent none; `max_tokens` lowered to
    /// the echelon's with `clamp_max_tokens`). Every other byte as the client sent it.
    pub fn body_with(&self, upstream_model: &str, defaults: &Defaults) -> Bytes {
        if defaults.is_empty() || self.op == Operation::Embeddings {
            return self.body_for(upstream_model);
        }
        let mut insert = String::new();
        if let (Some(t), false) = (defaults.temperature, self.has_temperature) {
            insert.push_str(&format!("\"temperature\":{t},"));
        }
        let mut clamp = None;
        match (defaults.max_tokens, &self.max_tokens) {
            (Some(n), None) => insert.push_str(&format!("\"max_tokens\":{n},")),
            (Some(n), Some((asked, span)))
                if defaults.clamp_max_tokens && *asked > u64::from(n) =>
            {
                clamp = Some((span.clone(), n.to_string()));
            }
            _ => {}
        }
        if insert.is_empty() && clamp.is_none() {
            return self.body_for(upstream_model);
        }
        let Some(quoted) = serde_json::to_string(upstream_model).ok() else {
            return self.body.clone();
        };
        // Splices in byte order: the insertion right after `{`, then the model and max_tokens.
        let open = self
            .body
            .iter()
            .position(|b| *b == b'{')
            .map_or(0, |i| i + 1);
        let mut edits = vec![(open..open, insert), (self.model_span.clone(), quoted)];
        edits.extend(clamp);
        edits.sort_by_key(|(r, _)| r.start);
        let mut out = BytesMut::with_capacity(self.body.len() + 64);
        let mut at = 0;
        for (range, text) in edits {
            out.put_slice(&self.body[at..range.start]);
            out.put_slice(text.as_bytes());
            at = range.end;
        }
        out.put_slice(&self.body[at..]);
        out.freeze()
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
    fn echelon_defaults_fill_in_what_the_client_left_out_and_clamp_when_asked() {
        let d = Defaults {
            temperature: Some(0.3),
            max_tokens: Some(100),
            clamp_max_tokens: false,
        };
        let bare = parse(Operation::Chat, r#"{"model":"g","messages":[{}]}"#).unwrap();
        let out: serde_json::Value = serde_json::from_slice(&bare.body_with("up", &d)).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"temperature":0.3,"max_tokens":100,"model":"up","messages":[{}]})
        );
        // The client's own values win.
        let own = parse(
            Operation::Chat,
            r#"{"model":"g","temperature":1,"max_tokens":500,"messages":[{}]}"#,
        )
        .unwrap();
        let out: serde_json::Value = serde_json::from_slice(&own.body_with("up", &d)).unwrap();
        assert_eq!(
            (out["temperature"].as_f64(), out["max_tokens"].as_u64()),
            (Some(1.0), Some(500))
        );
        // ...unless the echelon clamps max_tokens.
        let clamp = Defaults {
            clamp_max_tokens: true,
            ..d
        };
        let out: serde_json::Value = serde_json::from_slice(&own.body_with("up", &clamp)).unwrap();
        assert_eq!(
            (out["max_tokens"].as_u64(), out["model"].as_str()),
            (Some(100), Some("up"))
        );
        assert!(
            parse(
                Operation::Chat,
                r#"{"model":"g","max_tokens":-1,"messages":[{}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn request_options_come_from_headers_and_bad_ones_are_refused() {
        let mut h = http::HeaderMap::new();
        assert_eq!(
            RequestOptions::from_headers(&h, true).unwrap(),
            RequestOptions::default()
        );
        h.insert(
            "x-switchyard-llm-group",
            "plan_group.echelon1".parse().unwrap(),
        );
        h.insert(
            "x-switchyard-fallback-groups",
            " plan_group.echelon2 ,thinking_group ".parse().unwrap(),
        );
        h.insert("x-switchyard-trace", "1".parse().unwrap());
        h.insert("x-stainless-timeout", "600".parse().unwrap());
        h.insert("x-switchyard-timeout", "2.5".parse().unwrap());
        let o = RequestOptions::from_headers(&h, true).unwrap();
        assert_eq!(o.llm_group.as_deref(), Some("plan_group.echelon1"));
        assert_eq!(o.fallback_groups, ["plan_group.echelon2", "thinking_group"]);
        assert!(o.trace);
        assert_eq!(o.timeout, Some(std::time::Duration::from_millis(2500)));
        h.insert("x-switchyard-timeout", "soon".parse().unwrap());
        assert!(RequestOptions::from_headers(&h, true).is_err());
        let mut only_fallbacks = http::HeaderMap::new();
        only_fallbacks.insert("x-switchyard-fallback-groups", "a".parse().unwrap());
        assert!(RequestOptions::from_headers(&only_fallbacks, true).is_err());
    }

    #[test]
    fn tool_policy_refuses_or_fills_in_tool_choice() {
        use crate::config::{ToolPolicy, ToolSelection};
        let body =
            r#"{"model":"m","max_tokens":900,"tools":[{"type":"function"}],"messages":[{}]}"#;
        let policy = |selection| ToolPolicy {
            enabled: true,
            selection,
        };
        let mut r = parse(Operation::Chat, body).expect("parses");
        r.apply_tools(&policy(ToolSelection::Priority))
            .expect("allowed");
        let out: serde_json::Value = serde_json::from_slice(&r.body_with(
            "up",
            &Defaults {
                max_tokens: Some(100),
                clamp_max_tokens: true,
                ..Defaults::default()
            },
        ))
        .expect("json");
        assert_eq!(out["tool_choice"], "required");
        assert_eq!(
            out["model"], "up",
            "the model span moved with the insertion"
        );
        assert_eq!(out["max_tokens"], 100, "so did max_tokens'");
        let mut r = parse(Operation::Chat, body).expect("parses");
        r.apply_tools(&policy(ToolSelection::Manual))
            .expect("allowed");
        let out: serde_json::Value = serde_json::from_slice(&r.body_for("m")).expect("json");
        assert_eq!(out["tool_choice"], "none");
        let mut r = parse(Operation::Chat, body).expect("parses");
        r.apply_tools(&policy(ToolSelection::Auto))
            .expect("allowed");
        assert_eq!(
            r.body_for("m"),
            body.as_bytes(),
            "auto leaves the body alone"
        );
        let chosen = r#"{"model":"m","tools":[{}],"tool_choice":"auto","messages":[{}]}"#;
        let mut r = parse(Operation::Chat, chosen).expect("parses");
        r.apply_tools(&policy(ToolSelection::Priority))
            .expect("allowed");
        assert_eq!(
            r.body_for("m"),
            chosen.as_bytes(),
            "the client's own choice wins"
        );
        let off = ToolPolicy {
            enabled: false,
            selection: ToolSelection::Auto,
        };
        let mut r = parse(Operation::Chat, body).expect("parses");
        let err = r.apply_tools(&off).expect_err("refused");
        assert!(
            err.to_string().contains("function_calling_enabled"),
            "{err}"
        );
        let empty = r#"{"model":"m","tools":[],"messages":[{}]}"#;
        let mut r = parse(Operation::Chat, empty).expect("parses");
        assert!(
            r.apply_tools(&off).is_ok(),
            "an empty tools list is no tools"
        );
    }

    /// Fuzzing found these accepted and forwarded: bytes that are not UTF-8 inside a field the
    /// gateway does not read (the re-emitted body was not JSON).
    #[test]
    fn a_body_that_is_not_utf8_is_refused_even_in_fields_never_read() {
        for body in [
            &b"{\"model\":\"m\",\"prompt\":\"a\",\"x\":\"once \x8b\x87n\"}"[..],
            b"{\"model\":\"m\",\"prompt\":\"\xff\"}",
        ] {
            let err = ClientRequest::parse(Operation::Completions, Bytes::copy_from_slice(body))
                .unwrap_err()
                .to_string();
            assert!(err.contains("not UTF-8"), "{err}");
        }
        // An escaped lone surrogate is JSON's grammar (RFC 8259 section 8.2 leaves what it
        // means to the receiver): passed on as sent.
        let body = r#"{"model":"m","prompt":"a","x":"\ud800"}"#;
        let req = parse(Operation::Completions, body).unwrap();
        assert_eq!(req.body_for("m"), body.as_bytes());
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

    mod properties {
        //! Property tests: the parser never panics on arbitrary bytes or JSON, and whatever it
        //! accepts re-emits as JSON with only `model` changed.
        use super::*;
        use proptest::prelude::*;
        use serde_json::{Map, Value, json};

        fn op() -> impl Strategy<Value = Operation> {
            prop::sample::select(vec![
                Operation::Chat,
                Operation::Completions,
                Operation::Embeddings,
            ])
        }

        /// Any JSON value, a few levels deep, with the strings clients send.
        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                // Quarters: exact in binary, so they survive serde_json's (not round-trip
                // exact) float parsing when the test compares values.
                any::<i32>().prop_map(|i| json!(f64::from(i) / 4.0)),
                ".*".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    prop::collection::btree_map("[a-z_]{0,8}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// A request object: the fields the parser reads, each absent or any value (often a
        /// well-typed one), plus unknown fields.
        fn request() -> impl Strategy<Value = Value> {
            let field = |good: BoxedStrategy<Value>| prop_oneof![2 => Just(None), 3 => good.prop_map(Some), 1 => value().prop_map(Some)];
            (
                field(".{0,12}".prop_map(Value::from).boxed()),
                field(Just(json!([{"role": "user", "content": "hi"}])).boxed()),
                field(any::<bool>().prop_map(Value::from).boxed()),
                field(any::<u32>().prop_map(Value::from).boxed()),
                field(Just(json!([{"type": "function"}])).boxed()),
                field(Just(json!({"include_usage": true})).boxed()),
                prop::collection::btree_map("[a-z_]{1,8}", value(), 0..3),
            )
                .prop_map(|(model, messages, stream, max_tokens, tools, so, extra)| {
                    let mut m: Map<String, Value> = extra.into_iter().collect();
                    for (k, v) in [
                        ("model", model),
                        ("messages", messages.clone()),
                        ("prompt", messages.clone()),
                        ("input", messages),
                        ("stream", stream),
                        ("max_tokens", max_tokens),
                        ("tools", tools),
                        ("stream_options", so),
                    ] {
                        if let Some(v) = v {
                            m.insert(k.to_owned(), v);
                        }
                    }
                    Value::Object(m)
                })
        }

        fn check_reemitted(req: &ClientRequest) -> Result<(), TestCaseError> {
            let d = Defaults {
                temperature: Some(0.5),
                max_tokens: Some(7),
                clamp_max_tokens: true,
            };
            for out in [req.body_for("up\"x"), req.body_with("up\"x", &d)] {
                // JSON by the grammar (a `Value` would refuse an escaped lone surrogate, which
                // the grammar allows and the gateway passes on), still UTF-8, model spliced in.
                let fields: std::collections::BTreeMap<String, Box<RawValue>> =
                    std::str::from_utf8(&out)
                        .map_err(|e| e.to_string())
                        .and_then(|t| serde_json::from_str(t).map_err(|e| e.to_string()))
                        .map_err(|e| TestCaseError::fail(format!("{e}: {out:?}")))?;
                let model = fields.get("model").map(|m| m.get());
                prop_assert_eq!(model, Some(r#""up\"x""#));
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(op in op(), body in prop::collection::vec(any::<u8>(), 0..256)) {
                if let Ok(req) = ClientRequest::parse(op, Bytes::from(body)) {
                    check_reemitted(&req)?;
                }
            }

            #[test]
            fn arbitrary_json_parses_or_is_refused_and_reemits_with_only_the_model_changed(
                op in op(),
                v in request(),
                pretty in any::<bool>(),
            ) {
                let text = if pretty {
                    serde_json::to_string_pretty(&v)
                } else {
                    serde_json::to_string(&v)
                }
                .unwrap_or_default();
                let Ok(mut req) = ClientRequest::parse(op, Bytes::from(text)) else {
                    return Ok(());
                };
                prop_assert_eq!(Some(&Value::from(req.model.clone())), v.get("model"));
                let mut want = v.clone();
                want["model"] = Value::from("other");
                let got: Value = serde_json::from_slice(&req.body_for("other")).unwrap_or_default();
                prop_assert_eq!(got, want);
                check_reemitted(&req)?;
                let policy = ToolPolicy { enabled: true, selection: ToolSelection::Priority };
                if req.apply_tools(&policy).is_ok() {
                    check_reemitted(&req)?;
                }
            }
        }
    }
}
