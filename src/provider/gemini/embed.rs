//! OpenAI embeddings ↔ Gemini `embedContent` (one string) and `batchEmbedContents` (a list).
//!
//! Gemini returns floats only: `encoding_format: "base64"` is not honoured (the OpenAI SDKs,
//! which ask for base64 by default, accept floats). Gemini's embedding replies carry no token
//! counts, so `usage` is zeros unless the reply has a `usageMetadata.promptTokenCount`.

use serde_json::{Map, Value, json};

use super::{TranslateError, encode_path, parse_object, resource_name};

type Result<T> = std::result::Result<T, TranslateError>;

/// The path of an embeddings request: `:batchEmbedContents` for a list input (`batch` as
/// [`to_embed_request`] returns it), else `:embedContent`.
pub fn embed_path(upstream_model: &str, batch: bool) -> String {
    let model = encode_path(&resource_name(upstream_model));
    if batch {
        format!("/{model}:batchEmbedContents")
    } else {
        format!("/{model}:embedContent")
    }
}

/// Translates an OpenAI embeddings request: `(false, embedContent body)` for a string input,
/// `(true, batchEmbedContents body)` for a list of strings. `dimensions` becomes
/// `outputDimensionality`. Token-array inputs are refused: Gemini embeds text only.
pub fn to_embed_request(openai_embeddings: &Value, upstream_model: &str) -> Result<(bool, Value)> {
    let req = openai_embeddings
        .as_object()
        .ok_or_else(|| TranslateError::request("body", "expected a JSON object"))?;
    let dimensions = match req.get("dimensions").filter(|d| !d.is_null()) {
        None => None,
        Some(d) => match d.as_u64() {
            Some(n) if n >= 1 => Some(n),
            _ => {
                return Err(TranslateError::request(
                    "dimensions",
                    "expected a positive integer",
                ));
            }
        },
    };
    let one = |text: &str, model: Option<&str>| {
        let mut request = Map::new();
        if let Some(model) = model {
            request.insert("model".into(), model.into());
        }
        request.insert("content".into(), json!({ "parts": [{ "text": text }] }));
        if let Some(n) = dimensions {
            request.insert("outputDimensionality".into(), n.into());
        }
        Value::Object(request)
    };
    match req.get("input") {
        Some(Value::String(text)) => Ok((false, one(text, None))),
        Some(Value::Array(inputs)) => {
            if inputs.is_empty() {
                return Err(TranslateError::request("input", "must not be empty"));
            }
            let model = resource_name(upstream_model);
            let mut requests = Vec::with_capacity(inputs.len());
            for (i, input) in inputs.iter().enumerate() {
                let text = input.as_str().ok_or_else(|| {
                    TranslateError::request(
                        format!("input[{i}]"),
                        "expected a string (Gemini embeds text, not token arrays)",
                    )
                })?;
                requests.push(one(text, Some(&model)));
            }
            Ok((true, json!({ "requests": requests })))
        }
        Some(_) => Err(TranslateError::request(
            "input",
            "expected a string or an array of strings",
        )),
        None => Err(TranslateError::request("input", "missing")),
    }
}

/// Translates an `embedContent` (`{embedding: {values}}`) or `batchEmbedContents`
/// (`{embeddings: [{values}]}`) reply into an OpenAI embeddings list.
pub fn from_embed_response(body: &[u8], model: &str) -> Result<Value> {
    let reply = parse_object(body)?;
    let data: Vec<Value> = if let Some(single) = reply.get("embedding") {
        vec![embedding(0, single, "embedding")?]
    } else {
        match reply.get("embeddings") {
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, e)| embedding(i, e, &format!("embeddings[{i}]")))
                .collect::<Result<_>>()?,
            Some(_) => return Err(TranslateError::response("embeddings", "expected an array")),
            None => {
                return Err(TranslateError::response(
                    "body",
                    "neither embedding nor embeddings",
                ));
            }
        }
    };
    let tokens = reply
        .get("usageMetadata")
        .and_then(|u| u.get("promptTokenCount"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    }))
}

fn embedding(index: usize, e: &Value, at: &str) -> Result<Value> {
    let values = match e.get("values") {
        Some(Value::Array(values)) => values,
        _ => {
            return Err(TranslateError::response(
                format!("{at}.values"),
                "expected an array of numbers",
            ));
        }
    };
    if let Some(k) = values.iter().position(|v| !v.is_number()) {
        return Err(TranslateError::response(
            format!("{at}.values[{k}]"),
            "expected a number",
        ));
    }
    Ok(json!({ "object": "embedding", "index": index, "embedding": values }))
}
