//! The request's parameters beside its messages: `max_tokens`, sampling numbers, `stop`,
//! `tools` and `tool_choice`.

use serde_json::{Map, Value, json};

use crate::provider::anthropic::{TranslateError, kind_of};

/// `max_completion_tokens` (OpenAI's current name), else `max_tokens`, else the default.
pub(super) fn max_tokens(req: &Map<String, Value>, default: u32) -> Result<u64, TranslateError> {
    for key in ["max_completion_tokens", "max_tokens"] {
        match req.get(key) {
            None | Some(Value::Null) => {}
            Some(value) => {
                return value
                    .as_u64()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| TranslateError::request(key, "expected a positive integer"));
            }
        }
    }
    Ok(u64::from(default))
}

pub(super) fn number<'a>(
    req: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a Value>, TranslateError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(n @ Value::Number(_)) => Ok(Some(n)),
        Some(other) => Err(TranslateError::request(
            key,
            format!("expected a number, got {}", kind_of(other)),
        )),
    }
}

/// `stop` (a string or a list) as `stop_sequences`, empty strings left out.
pub(super) fn stop_sequences(stop: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    let list = match stop {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(one)) if one.is_empty() => Vec::new(),
        Some(one @ Value::String(_)) => vec![one.clone()],
        Some(Value::Array(list)) => {
            for (j, item) in list.iter().enumerate() {
                if !item.is_string() {
                    return Err(TranslateError::request(
                        format!("stop[{j}]"),
                        format!("expected a string, got {}", kind_of(item)),
                    ));
                }
            }
            list.iter()
                .filter(|s| s.as_str() != Some(""))
                .cloned()
                .collect()
        }
        Some(other) => {
            return Err(TranslateError::request(
                "stop",
                format!(
                    "expected a string or an array of strings, got {}",
                    kind_of(other)
                ),
            ));
        }
    };
    Ok(list)
}

/// OpenAI function tools as Anthropic tools (`{name, description, input_schema}`).
pub(super) fn tools(tools: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    let list = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(TranslateError::request(
                "tools",
                format!("expected an array, got {}", kind_of(other)),
            ));
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (j, tool) in list.iter().enumerate() {
        let at = |field: &str| format!("tools[{j}]{field}");
        if let Some(kind) = tool.get("type") {
            if kind != "function" {
                return Err(TranslateError::request(
                    at(".type"),
                    format!("{kind} is not supported (only \"function\")"),
                ));
            }
        }
        let function = tool
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| TranslateError::request(at(".function"), "expected an object"))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::request(at(".function.name"), "expected a string"))?;
        let schema = match function.get("parameters") {
            None | Some(Value::Null) => json!({ "type": "object", "properties": {} }),
            Some(schema @ Value::Object(_)) => schema.clone(),
            Some(other) => {
                return Err(TranslateError::request(
                    at(".function.parameters"),
                    format!("expected an object, got {}", kind_of(other)),
                ));
            }
        };
        let mut out_tool = Map::new();
        out_tool.insert("name".into(), name.into());
        if let Some(description) = function.get("description").and_then(Value::as_str) {
            out_tool.insert("description".into(), description.into());
        }
        out_tool.insert("input_schema".into(), schema);
        out.push(Value::Object(out_tool));
    }
    Ok(out)
}

/// `tool_choice` and `parallel_tool_calls: false` as Anthropic's `tool_choice`.
pub(super) fn tool_choice(
    choice: Option<&Value>,
    parallel: Option<bool>,
) -> Result<Option<Value>, TranslateError> {
    let mut out = match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(mode)) => Some(match mode.as_str() {
            "auto" => json!({ "type": "auto" }),
            "required" => json!({ "type": "any" }),
            "none" => json!({ "type": "none" }),
            other => {
                return Err(TranslateError::request(
                    "tool_choice",
                    format!("unknown mode {other:?} (expected auto, required or none)"),
                ));
            }
        }),
        Some(named) => {
            let name = named
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|_| named.get("type").is_none_or(|t| t == "function"))
                .ok_or_else(|| {
                    TranslateError::request(
                        "tool_choice",
                        "expected \"auto\", \"required\", \"none\" or {\"type\": \"function\", \"function\": {\"name\": ...}}",
                    )
                })?;
            Some(json!({ "type": "tool", "name": name }))
        }
    };
    if parallel == Some(false) {
        let choice = out.get_or_insert_with(|| json!({ "type": "auto" }));
        if let Some(choice) = choice.as_object_mut() {
            if choice.get("type").is_some_and(|t| t != "none") {
                choice.insert("disable_parallel_tool_use".into(), true.into());
            }
        }
    }
    Ok(out)
}
