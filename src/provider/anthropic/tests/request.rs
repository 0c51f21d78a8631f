//! OpenAI chat request → Messages request.

use serde_json::{Value, json};

use crate::provider::anthropic::{TranslateError, to_messages_request};

pub(super) fn translate(req: Value) -> Value {
    match to_messages_request(&req, "claude-sonnet-4-5", 1024) {
        Ok(out) => out,
        Err(e) => panic!("{req}: {e}"),
    }
}

pub(super) fn error(req: Value) -> String {
    match to_messages_request(&req, "claude-sonnet-4-5", 1024) {
        Ok(out) => panic!("expected an error, got {out}"),
        Err(e @ TranslateError::Request { .. }) => e.to_string(),
        Err(e) => panic!("expected a request error, got {e:?}"),
    }
}

pub(super) fn messages(list: Value) -> Value {
    translate(json!({ "model": "m", "messages": list }))["messages"].clone()
}

#[test]
fn maps_parameters_and_drops_what_anthropic_lacks() {
    let out = translate(json!({
        "model": "claude",
        "messages": [
            { "role": "system", "content": "You are terse." },
            { "role": "user", "content": "Hi", "name": "ann" },
        ],
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": "END",
        "stream": true,
        "user": "u-1",
        "n": 1,
        "seed": 7,
        "presence_penalty": 0.1,
        "logprobs": false,
        "response_format": { "type": "json_object" },
        "stream_options": { "include_usage": true },
    }));
    assert_eq!(
        out,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": "You are terse.",
            "messages": [{ "role": "user", "content": "Hi" }],
            "temperature": 0.5,
            "top_p": 0.9,
            "stop_sequences": ["END"],
            "stream": true,
            "metadata": { "user_id": "u-1" },
        })
    );
}

#[test]
fn max_tokens_prefers_max_completion_tokens_then_max_tokens_then_default() {
    let base = |extra: Value| {
        let mut req = json!({ "messages": [{ "role": "user", "content": "x" }] });
        if let (Some(req), Some(extra)) = (req.as_object_mut(), extra.as_object()) {
            req.extend(extra.clone());
        }
        req
    };
    let max = |extra| translate(base(extra))["max_tokens"].clone();
    assert_eq!(
        max(json!({ "max_completion_tokens": 50, "max_tokens": 70 })),
        50
    );
    assert_eq!(max(json!({ "max_tokens": 70 })), 70);
    assert_eq!(max(json!({ "max_tokens": null })), 1024);
    assert_eq!(max(json!({})), 1024);
    assert_eq!(
        error(base(json!({ "max_tokens": 0 }))),
        "max_tokens: expected a positive integer"
    );
    assert_eq!(
        error(base(json!({ "max_completion_tokens": "many" }))),
        "max_completion_tokens: expected a positive integer"
    );
    assert_eq!(
        error(base(json!({ "temperature": "hot" }))),
        "temperature: expected a number, got a string"
    );
    assert_eq!(
        error(base(json!({ "stream": "yes" }))),
        "stream: expected a boolean, got a string"
    );
}

#[test]
fn temperature_over_one_is_clamped_and_others_kept_exactly() {
    let t = |t: Value| {
        translate(json!({ "messages": [{ "role": "user", "content": "x" }], "temperature": t }))
            ["temperature"]
            .clone()
    };
    assert_eq!(t(json!(1.7)), json!(1.0));
    assert_eq!(t(json!(0)), json!(0));
    assert_eq!(t(json!(0.2)), json!(0.2));
    assert_eq!(t(json!(1)), json!(1));
}

#[test]
fn stop_lists_skip_empty_strings() {
    let stop = |s: Value| {
        translate(json!({ "messages": [{ "role": "user", "content": "x" }], "stop": s }))
            .get("stop_sequences")
            .cloned()
    };
    assert_eq!(stop(json!(["a", "", "b"])), Some(json!(["a", "b"])));
    assert_eq!(stop(json!("")), None);
    assert_eq!(stop(json!([])), None);
    assert_eq!(stop(json!(null)), None);
    assert_eq!(
        error(json!({ "messages": [{ "role": "user", "content": "x" }], "stop": ["a", 3] })),
        "stop[1]: expected a string, got a number"
    );
}

#[test]
fn system_and_developer_messages_are_lifted_and_joined() {
    let out = translate(json!({ "messages": [
        { "role": "system", "content": "Rule one." },
        { "role": "developer", "content": [
            { "type": "text", "text": "Rule two." },
            { "type": "text", "text": "" },
            { "type": "text", "text": "Rule three." },
        ]},
        { "role": "user", "content": "Hi" },
        { "role": "system", "content": "Late rule." },
        { "role": "system", "content": "" },
        { "role": "user", "content": "Again" },
    ]}));
    assert_eq!(
        out["system"],
        "Rule one.\n\nRule two.\n\nRule three.\n\nLate rule."
    );
    // The late system message no longer splits the two user messages.
    assert_eq!(
        out["messages"],
        json!([{ "role": "user", "content": [
            { "type": "text", "text": "Hi" },
            { "type": "text", "text": "Again" },
        ]}])
    );
    let only_empty = translate(json!({ "messages": [
        { "role": "system", "content": "" },
        { "role": "user", "content": "Hi" },
    ]}));
    assert_eq!(only_empty.get("system"), None);
    assert_eq!(
        error(json!({ "messages": [
            { "role": "system", "content": [{ "type": "image_url", "image_url": { "url": "https://x/y.png" } }] },
            { "role": "user", "content": "Hi" },
        ]})),
        "messages[0].content[0]: \"image_url\" parts are not supported in a system message"
    );
}

#[test]
fn consecutive_roles_merge_and_the_first_message_is_a_users() {
    assert_eq!(
        messages(json!([
            { "role": "assistant", "content": "Hello, how can I help?" },
            { "role": "assistant", "content": "Anything?" },
            { "role": "user", "content": "Yes" },
            { "role": "user", "content": "" },
            { "role": "user", "content": [{ "type": "text", "text": "Two things" }] },
        ])),
        json!([
            { "role": "user", "content": "." },
            { "role": "assistant", "content": [
                { "type": "text", "text": "Hello, how can I help?" },
                { "type": "text", "text": "Anything?" },
            ]},
            { "role": "user", "content": [
                { "type": "text", "text": "Yes" },
                { "type": "text", "text": "Two things" },
            ]},
        ])
    );
    // An empty user message between two assistants lets them meet and merge.
    assert_eq!(
        messages(json!([
            { "role": "user", "content": "Q" },
            { "role": "assistant", "content": "A" },
            { "role": "user", "content": [] },
            { "role": "assistant", "content": null },
            { "role": "assistant", "content": "B" },
            { "role": "user", "content": "C" },
        ])),
        json!([
            { "role": "user", "content": "Q" },
            { "role": "assistant", "content": [
                { "type": "text", "text": "A" },
                { "type": "text", "text": "B" },
            ]},
            { "role": "user", "content": "C" },
        ])
    );
}

#[test]
fn a_final_assistant_prefill_loses_trailing_whitespace() {
    assert_eq!(
        messages(json!([
            { "role": "user", "content": "Answer in JSON" },
            { "role": "assistant", "content": "{ \n" },
        ])),
        json!([
            { "role": "user", "content": "Answer in JSON" },
            { "role": "assistant", "content": "{" },
        ])
    );
    assert_eq!(
        messages(json!([
            { "role": "user", "content": "Q" },
            { "role": "assistant", "content": [
                { "type": "text", "text": "Sure " },
                { "type": "text", "text": "  " },
            ]},
        ])),
        json!([
            { "role": "user", "content": "Q" },
            { "role": "assistant", "content": [{ "type": "text", "text": "Sure" }] },
        ])
    );
    assert_eq!(
        messages(json!([
            { "role": "user", "content": "Q" },
            { "role": "assistant", "content": " " },
        ])),
        json!([{ "role": "user", "content": "Q" }])
    );
    // Only the last message: whitespace inside the conversation stays.
    assert_eq!(
        messages(json!([
            { "role": "user", "content": "Q " },
            { "role": "assistant", "content": "A " },
            { "role": "user", "content": "R " },
        ]))[1]["content"],
        "A "
    );
}

#[test]
fn no_conversation_is_an_error() {
    assert_eq!(
        error(json!({ "messages": [] })),
        "messages: no user or assistant message with content (Anthropic needs at least one)"
    );
    assert_eq!(
        error(json!({ "messages": [{ "role": "system", "content": "S" }] })),
        "messages: no user or assistant message with content (Anthropic needs at least one)"
    );
}
