//! The client's request body → `ClientRequest` (the routing request), as `server::handle` does
//! it: arbitrary bytes must give a typed error or a request whose re-emitted bodies are JSON
//! with only `model` changed.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

use serde_json::value::RawValue;
use switchyard::config::{ToolPolicy, ToolSelection};
use switchyard::provider::Operation;
use switchyard::request::ClientRequest;
use switchyard::route::Defaults;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let op = match selector % 3 {
        0 => Operation::Chat,
        1 => Operation::Completions,
        _ => Operation::Embeddings,
    };
    let Ok(mut req) = ClientRequest::parse(op, Bytes::copy_from_slice(body)) else {
        return;
    };
    let policy = ToolPolicy {
        enabled: selector & 4 == 0,
        selection: match (selector >> 3) % 3 {
            0 => ToolSelection::Auto,
            1 => ToolSelection::Manual,
            _ => ToolSelection::Priority,
        },
    };
    let tools_ok = req.apply_tools(&policy).is_ok();
    let _ = (req.has_tools(), req.has_images(), req.estimate_tokens());
    let defaults = Defaults {
        temperature: (selector & 0x40 != 0).then_some(0.5),
        max_tokens: (selector & 0x80 != 0).then_some(64),
        clamp_max_tokens: selector & 0x20 != 0,
    };
    for out in [req.body_for("up\"stream"), req.body_with("up\"stream", &defaults)] {
        // The body was a JSON object; with the model spliced in it must still be one (UTF-8,
        // JSON by the grammar: an escaped lone surrogate is allowed and passed on, which a
        // `Value` would refuse), naming the new model.
        let fields = std::str::from_utf8(&out)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(t).map_err(|e| e.to_string())
            });
        let fields = match fields {
            Ok(f) => f,
            Err(e) => panic!(
                "re-emitted body is not JSON ({e}): {:?} -> {:?}",
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&out)
            ),
        };
        let model = fields.get("model").map(|m| m.get());
        assert_eq!(model, Some(r#""up\"stream""#), "{}", String::from_utf8_lossy(&out));
    }
    if tools_ok && req.has_tools() && policy.selection != ToolSelection::Auto {
        // By the grammar again: `1E666` is JSON that a `Value` refuses (out of range).
        let out = req.body_for("m");
        let fields: BTreeMap<String, Box<RawValue>> =
            serde_json::from_slice(&out).unwrap_or_default();
        // The client's own choice (or the legacy `function_call`) is kept instead.
        let chosen = fields.contains_key("tool_choice") || fields.contains_key("function_call");
        assert!(chosen, "{}", String::from_utf8_lossy(&out));
    }
});
