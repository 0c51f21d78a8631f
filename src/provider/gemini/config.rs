//! The non-conversation half of a `generateContent` body: `generationConfig` from OpenAI's
//! sampling fields and `response_format`, `tools` (function declarations, with schemas cleaned
//! of keywords Gemini rejects) and `toolConfig` from `tool_choice`.

use serde_json::{Map, Value, json};

use super::TranslateError;

type Result<T> = std::result::Result<T, TranslateError>;

/// `generationConfig` from the sampling fields; null counts as absent.
pub(crate) fn generation_config(req: &Map<String, Value>) -> Result<Map<String, Value>> {
    let mut config = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = present(req, from) {
            if !v.is_number() {
                return Err(TranslateError::request(from, "expected a number"));
            }
            config.insert(to.into(), v.clone());
        }
    }
    let max = match present(req, "max_completion_tokens") {
        Some(v) => Some(("max_completion_tokens", v)),
        None => present(req, "max_tokens").map(|v| ("max_tokens", v)),
    };
    if let Some((key, v)) = max {
        let n = v
            .as_u64()
            .ok_or_else(|| TranslateError::request(key, "expected a non-negative integer"))?;
        config.insert("maxOutputTokens".into(), n.into());
    }
    if let Some(v) = present(req, "n") {
        match v.as_u64() {
            Some(n) if n >= 1 => config.insert("candidateCount".into(), n.into()),
            _ => return Err(TranslateError::request("n", "expected a positive integer")),
        };
    }
    if let Some(v) = present(req, "seed") {
        let seed = v
            .as_i64()
            .ok_or_else(|| TranslateError::request("seed", "expected an integer"))?;
        config.insert("seed".into(), seed.into());
    }
    let stops = stop_sequences(req)?;
    if !stops.is_empty() {
        config.insert("stopSequences".into(), stops.into());
    }
    if let Some(format) = present(req, "response_format") {
        let kind = format
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::request("response_format.type", "expected a string"))?;
        match kind {
            "text" => {}
            "json_object" => {
                config.insert("responseMimeType".into(), "application/json".into());
            }
            "json_schema" => {
                config.insert("responseMimeType".into(), "application/json".into());
                let schema = format.get("json_schema").and_then(|s| s.get("schema"));
                if let Some(schema) = schema.filter(|s| s.is_object()) {
                    config.insert("responseSchema".into(), clean_schema(schema, 0));
                }
            }
            other => {
                return Err(TranslateError::request(
                    "response_format.type",
                    format!("unsupported type {other:?}"),
                ));
            }
        }
    }
    Ok(config)
}

/// A field that is there and not null.
fn present<'a>(req: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    req.get(key).filter(|v| !v.is_null())
}

fn stop_sequences(req: &Map<String, Value>) -> Result<Vec<Value>> {
    match present(req, "stop") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Value::String(s.clone())]),
        Some(Value::Array(stops)) => {
            for (i, stop) in stops.iter().enumerate() {
                if !stop.is_string() {
                    return Err(TranslateError::request(
                        format!("stop[{i}]"),
                        "expected a string",
                    ));
                }
            }
            Ok(stops.clone())
        }
        Some(_) => Err(TranslateError::request(
            "stop",
            "expected a string or an array of strings",
        )),
    }
}

/// `functionDeclarations` of the request's function tools; other tool types are dropped.
pub(crate) fn function_declarations(req: &Map<String, Value>) -> Result<Vec<Value>> {
    let tools = match present(req, "tools") {
        None => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(TranslateError::request("tools", "expected an array")),
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        if !tool.is_object() {
            return Err(TranslateError::request(at, "expected an object"));
        }
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            continue;
        }
        let function = tool
            .get("function")
            .filter(|f| f.is_object())
            .ok_or_else(|| {
                TranslateError::request(format!("{at}.function"), "expected an object")
            })?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                TranslateError::request(format!("{at}.function.name"), "expected a string")
            })?;
        let mut declaration = Map::new();
        declaration.insert("name".into(), name.into());
        if let Some(description) = function.get("description").and_then(Value::as_str) {
            declaration.insert("description".into(), description.into());
        }
        if let Some(parameters) = function.get("parameters").filter(|p| has_properties(p)) {
            declaration.insert("parameters".into(), clean_schema(parameters, 0));
        }
        out.push(Value::Object(declaration));
    }
    Ok(out)
}

/// Whether a parameters schema is worth sending: Gemini rejects an object schema with no
/// properties ("should be non-empty for OBJECT type"), which is how OpenAI clients declare a
/// function without arguments.
fn has_properties(schema: &Value) -> bool {
    if !schema.is_object() {
        return false;
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") | None => schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty()),
        Some(_) => true,
    }
}

/// How deep `clean_schema` walks; parsed JSON is at most 128 deep anyway.
const MAX_SCHEMA_DEPTH: usize = 64;

/// A JSON schema without the keywords Gemini's `Schema` rejects as unknown fields but OpenAI
/// SDKs emit on every strict schema: `$schema` (zod-to-json-schema) and
/// `additionalProperties: false` (required by OpenAI's strict mode).
fn clean_schema(schema: &Value, depth: usize) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    if depth >= MAX_SCHEMA_DEPTH {
        return schema.clone();
    }
    let mut out = Map::new();
    for (key, value) in map {
        let cleaned = match key.as_str() {
            "$schema" | "additionalProperties" => continue,
            // A map from property name to schema: the names are not keywords.
            "properties" => match value {
                Value::Object(props) => Value::Object(
                    props
                        .iter()
                        .map(|(name, s)| (name.clone(), clean_schema(s, depth + 1)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "items" | "anyOf" | "oneOf" | "allOf" => match value {
                Value::Array(schemas) => {
                    Value::Array(schemas.iter().map(|s| clean_schema(s, depth + 1)).collect())
                }
                other => clean_schema(other, depth + 1),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), cleaned);
    }
    Value::Object(out)
}

/// `functionCallingConfig` from `tool_choice`: auto/none/required → AUTO/NONE/ANY; a named
/// function → ANY limited to it.
pub(crate) fn function_calling_config(req: &Map<String, Value>) -> Result<Option<Value>> {
    let expected = "expected \"auto\", \"none\", \"required\" or \
                    {\"type\": \"function\", \"function\": {\"name\": ...}}";
    let Some(choice) = present(req, "tool_choice") else {
        return Ok(None);
    };
    let config = match choice {
        Value::String(s) => match s.as_str() {
            "auto" => json!({ "mode": "AUTO" }),
            "none" => json!({ "mode": "NONE" }),
            "required" => json!({ "mode": "ANY" }),
            _ => return Err(TranslateError::request("tool_choice", expected)),
        },
        Value::Object(_) => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|_| choice.get("type").and_then(Value::as_str) == Some("function"))
                .ok_or_else(|| TranslateError::request("tool_choice", expected))?;
            json!({ "mode": "ANY", "allowedFunctionNames": [name] })
        }
        _ => return Err(TranslateError::request("tool_choice", expected)),
    };
    Ok(Some(config))
}
