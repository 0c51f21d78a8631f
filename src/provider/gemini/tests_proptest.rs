//! Property tests (proptest) of the Gemini translations, on generated OpenAI requests and
//! simulated Gemini replies:
//! - `to_generate_request`: `contents` alternate user/model and are exactly the conversation
//!   (a reference model computes them), `systemInstruction` is the joined system text,
//!   `functionCall` parts are the assistant tool calls, `functionResponse` names are those of
//!   the calls they answer, the sampling fields land in `generationConfig`.
//! - `from_generate_response`: a simulated reply keeps its text, function calls and usage.
//! - `StreamTranslator`: the same reply split over several SSE payloads (text cut at random
//!   points) reassembles to the same text, calls and usage.
//!
//! [`openai`] holds the OpenAI request generator; it is `pub(crate)` because the Anthropic
//! property tests (`provider::anthropic::tests::proptest_roundtrip`) use it too.

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

use super::{StreamTranslator, from_generate_response, to_generate_request};
use crate::provider::ErrorClass;
use openai::Request;

/// Generated OpenAI `chat.completions` requests, as an intermediate form that knows what it
/// holds ([`Request`]) and its JSON ([`Request::to_json`]).
pub(crate) mod openai {
    use proptest::prelude::*;
    use proptest::sample::Index;
    use serde_json::{Map, Number, Value, json};

    /// Text as clients send it: empty, whitespace, quotes, backslashes, emoji, control
    /// characters, any printable unicode.
    pub(crate) fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => Just(String::new()),
            2 => prop::sample::select(vec![
                " ", "\n", " \t\n ", "\"", "'", "\\", "😀", "👍🏽", "\u{200b}", "\0", "a\r\n", "{}",
            ])
            .prop_map(str::to_owned),
            5 => "[a-zA-Z0-9 ,.!?\"'\\\\\n\t{}:😀🎉é中文]{0,24}",
            2 => "\\PC{0,16}",
        ]
    }

    /// A JSON value whose numbers survive a serialize/parse round trip exactly (integers and
    /// quarters: `serde_json` without `float_roundtrip` may be off by one ulp on others).
    pub(crate) fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-4000i32..4000).prop_map(|n| {
                Number::from_f64(f64::from(n) / 4.0).map_or(Value::Null, Value::Number)
            }),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(text(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A JSON object, as tool arguments are.
    pub(crate) fn json_object() -> impl Strategy<Value = Value> {
        prop::collection::btree_map(text(), json_value(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    /// A function name as OpenAI, Anthropic and Gemini all take them.
    pub(crate) fn tool_name() -> impl Strategy<Value = String> {
        "[a-zA-Z_][a-zA-Z0-9_]{0,20}"
    }

    /// A message's `content`.
    #[derive(Debug, Clone)]
    pub(crate) enum Content {
        /// No `content` key.
        Missing,
        Null,
        Text(String),
        /// An array of text parts.
        Parts(Vec<String>),
    }

    impl Content {
        fn to_json(&self) -> Option<Value> {
            match self {
                Self::Missing => None,
                Self::Null => Some(Value::Null),
                Self::Text(text) => Some(text.as_str().into()),
                Self::Parts(texts) => Some(
                    texts
                        .iter()
                        .map(|t| json!({ "type": "text", "text": t }))
                        .collect(),
                ),
            }
        }
    }

    /// Content a system, user or tool message has: a string or text parts.
    fn text_content() -> impl Strategy<Value = Content> {
        prop_oneof![
            3 => text().prop_map(Content::Text),
            1 => prop::collection::vec(text(), 0..3).prop_map(Content::Parts),
        ]
    }

    /// Content an assistant message has: also null or none.
    fn assistant_content() -> impl Strategy<Value = Content> {
        prop_oneof![
            1 => Just(Content::Missing),
            1 => Just(Content::Null),
            4 => text_content(),
        ]
    }

    /// How a tool call's `arguments` string is written.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum ArgStyle {
        Compact,
        Pretty,
        /// Compact with whitespace around.
        Padded,
        /// `""` when the arguments are `{}` (as some clients send them), else compact.
        EmptyString,
    }

    #[derive(Debug, Clone)]
    pub(crate) struct CallSpec {
        /// Which of the request's tools it calls.
        pub(crate) tool: Index,
        pub(crate) args: Value,
        pub(crate) style: ArgStyle,
        /// Makes the id look less uniform; ids stay unique through their position.
        pub(crate) id_tag: String,
    }

    #[derive(Debug, Clone)]
    pub(crate) enum Segment {
        System(Content),
        User(Content),
        Assistant(Content),
        /// An assistant message with tool calls, then one `tool` message answering each.
        ToolRound {
            content: Content,
            calls: Vec<(CallSpec, Content)>,
        },
    }

    fn tool_result() -> impl Strategy<Value = Content> {
        prop_oneof![
            2 => text_content(),
            1 => json_object().prop_map(|o| Content::Text(o.to_string())),
        ]
    }

    fn call_spec() -> impl Strategy<Value = CallSpec> {
        (
            any::<Index>(),
            json_object(),
            prop_oneof![
                Just(ArgStyle::Compact),
                Just(ArgStyle::Pretty),
                Just(ArgStyle::Padded),
                Just(ArgStyle::EmptyString),
            ],
            "[a-zA-Z0-9]{0,8}",
        )
            .prop_map(|(tool, args, style, id_tag)| CallSpec {
                tool,
                args,
                style,
                id_tag,
            })
    }

    fn segment() -> impl Strategy<Value = Segment> {
        prop_oneof![
            1 => text_content().prop_map(Segment::System),
            3 => text_content().prop_map(Segment::User),
            2 => assistant_content().prop_map(Segment::Assistant),
            2 => (
                assistant_content(),
                prop::collection::vec((call_spec(), tool_result()), 1..=3),
            )
                .prop_map(|(content, calls)| Segment::ToolRound { content, calls }),
        ]
    }

    #[derive(Debug, Clone)]
    pub(crate) struct Tool {
        pub(crate) name: String,
        pub(crate) description: Option<String>,
        pub(crate) parameters: Option<Value>,
    }

    fn parameters() -> impl Strategy<Value = Value> {
        prop::collection::btree_map(
            "[a-z_]{1,8}",
            prop::sample::select(vec!["string", "integer", "number", "boolean"]),
            0..3,
        )
        .prop_map(|props| {
            let required: Vec<&String> = props.keys().collect();
            let properties: Map<String, Value> = props
                .iter()
                .map(|(k, t)| (k.clone(), json!({ "type": t })))
                .collect();
            let mut schema = json!({ "type": "object", "properties": properties });
            if !required.is_empty() {
                schema["required"] = json!(required);
            }
            schema
        })
    }

    fn tools() -> impl Strategy<Value = Vec<Tool>> {
        prop::collection::btree_map(
            tool_name(),
            (
                prop::option::of(text()),
                prop::option::weighted(0.8, parameters()),
            ),
            0..=3,
        )
        .prop_map(|tools| {
            tools
                .into_iter()
                .map(|(name, (description, parameters))| Tool {
                    name,
                    description,
                    parameters,
                })
                .collect()
        })
    }

    #[derive(Debug, Clone)]
    pub(crate) enum Choice {
        Auto,
        Required,
        None,
        Named(Index),
    }

    #[derive(Debug, Clone)]
    pub(crate) enum Stop {
        One(String),
        Many(Vec<String>),
    }

    impl Stop {
        /// The stop strings, empty ones included.
        pub(crate) fn strings(&self) -> Vec<String> {
            match self {
                Self::One(s) => vec![s.clone()],
                Self::Many(list) => list.clone(),
            }
        }
    }

    /// A generated request. Tool rounds only appear with tools declared (Anthropic requires
    /// tools when the history holds tool use), and tool call ids are unique.
    #[derive(Debug, Clone)]
    pub(crate) struct Request {
        pub(crate) segments: Vec<Segment>,
        pub(crate) tools: Vec<Tool>,
        pub(crate) tool_choice: Option<Choice>,
        pub(crate) parallel_tool_calls: Option<bool>,
        pub(crate) max_tokens: Option<u32>,
        pub(crate) temperature: Option<f64>,
        pub(crate) top_p: Option<f64>,
        pub(crate) stop: Option<Stop>,
        pub(crate) stream: Option<bool>,
        pub(crate) user: Option<String>,
    }

    /// Hundredths in `[0, max]`, as a client writes a sampling number.
    fn hundredths(max: u32) -> impl Strategy<Value = f64> {
        (0..=max).prop_map(|n| f64::from(n) / 100.0)
    }

    pub(crate) fn request() -> impl Strategy<Value = Request> {
        (
            prop::collection::vec(segment(), 1..=6),
            tools(),
            prop::option::of(prop_oneof![
                Just(Choice::Auto),
                Just(Choice::Required),
                Just(Choice::None),
                any::<Index>().prop_map(Choice::Named),
            ]),
            prop::option::of(any::<bool>()),
            prop::option::of(1u32..=100_000),
            prop::option::of(hundredths(200)),
            prop::option::of(hundredths(100)),
            prop::option::of(prop_oneof![
                text().prop_map(Stop::One),
                prop::collection::vec(text(), 0..=3).prop_map(Stop::Many),
            ]),
            prop::option::of(any::<bool>()),
            prop::option::of("[a-z0-9-]{1,12}"),
        )
            .prop_map(
                |(
                    segments,
                    mut tools,
                    tool_choice,
                    parallel_tool_calls,
                    max_tokens,
                    temperature,
                    top_p,
                    stop,
                    stream,
                    user,
                )| {
                    let rounds = segments
                        .iter()
                        .any(|s| matches!(s, Segment::ToolRound { .. }));
                    if rounds && tools.is_empty() {
                        tools.push(Tool {
                            name: "lookup".into(),
                            description: None,
                            parameters: None,
                        });
                    }
                    Request {
                        segments,
                        tools,
                        tool_choice,
                        parallel_tool_calls,
                        max_tokens,
                        temperature,
                        top_p,
                        stop,
                        stream,
                        user,
                    }
                },
            )
    }

    fn arguments(args: &Value, style: ArgStyle) -> String {
        let empty = args.as_object().is_some_and(Map::is_empty);
        match style {
            ArgStyle::EmptyString if empty => String::new(),
            ArgStyle::Compact | ArgStyle::EmptyString => args.to_string(),
            ArgStyle::Pretty => serde_json::to_string_pretty(args).unwrap_or_default(),
            ArgStyle::Padded => format!(" \n{args}\t "),
        }
    }

    fn message(role: &str, content: &Content) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("role".into(), role.into());
        if let Some(content) = content.to_json() {
            m.insert("content".into(), content);
        }
        m
    }

    impl Request {
        /// The name a call calls.
        pub(crate) fn tool_of(&self, call: &CallSpec) -> &str {
            call.tool.get(&self.tools).name.as_str()
        }

        /// Whether some message gives Anthropic something to send (a tool round, or a user or
        /// assistant text that is not all whitespace: Anthropic refuses whitespace-only text);
        /// without one the translation must fail as the client's error.
        pub(crate) fn anthropic_valid(&self) -> bool {
            self.segments.iter().any(|s| match s {
                Segment::User(c) | Segment::Assistant(c) => !joined(c).trim().is_empty(),
                Segment::ToolRound { .. } => true,
                Segment::System(_) => false,
            })
        }

        /// The same for Gemini, which trims nothing: any user or assistant text, or a round.
        pub(crate) fn gemini_valid(&self) -> bool {
            self.segments.iter().any(|s| match s {
                Segment::User(c) | Segment::Assistant(c) => !joined(c).is_empty(),
                Segment::ToolRound { .. } => true,
                Segment::System(_) => false,
            })
        }

        pub(crate) fn to_json(&self) -> Value {
            let mut messages = Vec::new();
            let mut next_id = 0usize;
            for segment in &self.segments {
                match segment {
                    Segment::System(c) => messages.push(message("system", c)),
                    Segment::User(c) => messages.push(message("user", c)),
                    Segment::Assistant(c) => messages.push(message("assistant", c)),
                    Segment::ToolRound { content, calls } => {
                        let mut ids = Vec::with_capacity(calls.len());
                        let tool_calls: Vec<Value> = calls
                            .iter()
                            .map(|(call, _)| {
                                let id = format!("call_{next_id}_{}", call.id_tag);
                                next_id += 1;
                                ids.push(id.clone());
                                json!({
                                    "id": id,
                                    "type": "function",
                                    "function": {
                                        "name": self.tool_of(call),
                                        "arguments": arguments(&call.args, call.style),
                                    },
                                })
                            })
                            .collect();
                        let mut assistant = message("assistant", content);
                        assistant.insert("tool_calls".into(), tool_calls.into());
                        messages.push(assistant);
                        for ((_, result), id) in calls.iter().zip(ids) {
                            let mut tool = message("tool", result);
                            tool.insert("tool_call_id".into(), id.into());
                            messages.push(tool);
                        }
                    }
                }
            }
            let mut req = Map::new();
            req.insert("model".into(), "client-model".into());
            req.insert(
                "messages".into(),
                messages.into_iter().map(Value::Object).collect(),
            );
            if !self.tools.is_empty() {
                let tools: Vec<Value> = self
                    .tools
                    .iter()
                    .map(|tool| {
                        let mut function = Map::new();
                        function.insert("name".into(), tool.name.as_str().into());
                        if let Some(d) = &tool.description {
                            function.insert("description".into(), d.as_str().into());
                        }
                        if let Some(p) = &tool.parameters {
                            function.insert("parameters".into(), p.clone());
                        }
                        json!({ "type": "function", "function": function })
                    })
                    .collect();
                req.insert("tools".into(), tools.into());
                if let Some(choice) = &self.tool_choice {
                    let choice = match choice {
                        Choice::Auto => json!("auto"),
                        Choice::Required => json!("required"),
                        Choice::None => json!("none"),
                        Choice::Named(i) => json!({
                            "type": "function",
                            "function": { "name": i.get(&self.tools).name },
                        }),
                    };
                    req.insert("tool_choice".into(), choice);
                }
                if let Some(parallel) = self.parallel_tool_calls {
                    req.insert("parallel_tool_calls".into(), parallel.into());
                }
            }
            if let Some(n) = self.max_tokens {
                req.insert("max_tokens".into(), n.into());
            }
            if let Some(t) = self.temperature {
                req.insert("temperature".into(), t.into());
            }
            if let Some(p) = self.top_p {
                req.insert("top_p".into(), p.into());
            }
            match &self.stop {
                None => {}
                Some(Stop::One(s)) => {
                    req.insert("stop".into(), s.as_str().into());
                }
                Some(Stop::Many(list)) => {
                    req.insert("stop".into(), list.clone().into());
                }
            }
            if let Some(stream) = self.stream {
                req.insert("stream".into(), stream.into());
            }
            if let Some(user) = &self.user {
                req.insert("user".into(), user.as_str().into());
            }
            Value::Object(req)
        }
    }

    /// A content's texts joined (a tool result's or system prompt's text).
    pub(crate) fn joined(content: &Content) -> String {
        match content {
            Content::Missing | Content::Null => String::new(),
            Content::Text(t) => t.clone(),
            Content::Parts(texts) => texts.concat(),
        }
    }

    /// The texts of an OpenAI message `content` (string or parts), empty ones left out.
    pub(crate) fn texts(content: Option<&Value>) -> Vec<String> {
        match content {
            Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The system prompt both providers should send: the non-empty system texts, joined
    /// by a blank line.
    pub(crate) fn system_text(openai: &Value) -> Option<String> {
        let texts: Vec<String> = openai["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["role"] == "system")
            .map(|m| texts(m.get("content")).concat())
            .filter(|t| !t.is_empty())
            .collect();
        (!texts.is_empty()).then(|| texts.join("\n\n"))
    }

    /// A tool call's arguments as the object they mean (`""` means `{}`).
    pub(crate) fn parsed_arguments(call: &Value) -> Value {
        match call["function"]["arguments"].as_str() {
            Some(s) if s.trim().is_empty() => json!({}),
            Some(s) => serde_json::from_str(s).unwrap_or(Value::Null),
            None => json!({}),
        }
    }

    /// Byte offsets to cut `s` at: the char boundaries the indexes pick, sorted, without
    /// duplicates, never 0 or the end.
    pub(crate) fn cut(s: &str, cuts: &[Index]) -> Vec<String> {
        let boundaries: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(1).collect();
        let mut at: Vec<usize> = if boundaries.is_empty() {
            Vec::new()
        } else {
            cuts.iter().map(|i| *i.get(&boundaries)).collect()
        };
        at.sort_unstable();
        at.dedup();
        let mut pieces = Vec::with_capacity(at.len() + 1);
        let mut start = 0;
        for end in at.into_iter().chain(std::iter::once(s.len())) {
            pieces.push(s[start..end].to_owned());
            start = end;
        }
        pieces.retain(|p| !p.is_empty());
        pieces
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // Failures are reported with their shrunk input; no regression files in the tree.
        failure_persistence: None,
        ..ProptestConfig::with_cases(256)
    }
}

/// Gemini's `contents` for an OpenAI request, computed independently of the translator: text
/// parts (empty ones left out), `functionCall`s after an assistant's text, a tool message as a
/// `functionResponse` named after the call its id answers (its text parsed when it is a JSON
/// object), turns of one role merged, empty turns left out.
fn expected_contents(openai: &Value) -> Vec<Value> {
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for m in openai["messages"].as_array().into_iter().flatten() {
        let texts = || {
            openai::texts(m.get("content"))
                .into_iter()
                .map(|t| json!({ "text": t }))
        };
        let (role, parts): (&str, Vec<Value>) = match m["role"].as_str() {
            Some("user") => ("user", texts().collect()),
            Some("assistant") => {
                let mut parts: Vec<Value> = texts().collect();
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let name = call["function"]["name"].as_str().unwrap_or_default();
                    if let Some(id) = call["id"].as_str() {
                        names.insert(id.to_owned(), name.to_owned());
                    }
                    parts.push(json!({ "functionCall": {
                        "name": name,
                        "args": openai::parsed_arguments(call),
                    }}));
                }
                ("model", parts)
            }
            Some("tool") => {
                let id = m["tool_call_id"].as_str().unwrap_or_default();
                let text = match m.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => {
                        parts.iter().filter_map(|p| p["text"].as_str()).collect()
                    }
                    _ => String::new(),
                };
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(object @ Value::Object(_)) => object,
                    _ => json!({ "content": text }),
                };
                let name = names.get(id).cloned().unwrap_or_default();
                let part = json!({ "functionResponse": { "name": name, "response": response } });
                ("user", vec![part])
            }
            _ => continue,
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    // A conversation opening with the model's turn gets a placeholder user turn first.
    if turns.first().is_some_and(|(role, _)| *role == "model") {
        turns.insert(0, ("user", vec![json!({ "text": "." })]));
    }
    turns
        .into_iter()
        .map(|(role, parts)| json!({ "role": role, "parts": parts }))
        .collect()
}

fn nonempty(strings: impl IntoIterator<Item = String>) -> Vec<String> {
    strings.into_iter().filter(|s| !s.is_empty()).collect()
}

fn check_request(req: &Request, openai: &Value, out: &Value) -> Result<(), TestCaseError> {
    let contents = out["contents"].as_array().cloned().unwrap_or_default();
    prop_assert!(!contents.is_empty(), "no contents: {}", out);
    for (i, turn) in contents.iter().enumerate() {
        let role = turn["role"].as_str().unwrap_or_default();
        prop_assert!(
            role == "user" || role == "model",
            "contents[{}] role {}",
            i,
            role
        );
        prop_assert!(
            turn["parts"].as_array().is_some_and(|p| !p.is_empty()),
            "contents[{}] has no parts",
            i
        );
        if i > 0 {
            prop_assert_ne!(&contents[i - 1]["role"], &turn["role"], "contents[{}]", i);
        }
        for part in turn["parts"].as_array().into_iter().flatten() {
            prop_assert_ne!(&part["text"], "", "an empty text part in contents[{}]", i);
        }
    }
    prop_assert_eq!(&contents, &expected_contents(openai));

    // Every functionCall is an assistant tool call, in order, with its arguments parsed.
    let messages = openai["messages"].as_array().cloned().unwrap_or_default();
    let calls: Vec<&Value> = messages
        .iter()
        .flat_map(|m| m["tool_calls"].as_array().into_iter().flatten())
        .collect();
    let parts = || {
        contents
            .iter()
            .flat_map(|t| t["parts"].as_array().into_iter().flatten())
    };
    let function_calls: Vec<&Value> = parts().filter_map(|p| p.get("functionCall")).collect();
    prop_assert_eq!(function_calls.len(), calls.len());
    for (part, call) in function_calls.iter().zip(&calls) {
        prop_assert_eq!(&part["name"], &call["function"]["name"]);
        prop_assert_eq!(&part["args"], &openai::parsed_arguments(call));
    }
    // Every functionResponse is named after the call whose id its tool message answers.
    let names: HashMap<&str, &Value> = calls
        .iter()
        .filter_map(|c| Some((c["id"].as_str()?, &c["function"]["name"])))
        .collect();
    let answered: Vec<&Value> = messages
        .iter()
        .filter(|m| m["role"] == "tool")
        .filter_map(|m| names.get(m["tool_call_id"].as_str()?).copied())
        .collect();
    let responses: Vec<&Value> = parts()
        .filter_map(|p| p.get("functionResponse"))
        .map(|r| &r["name"])
        .collect();
    prop_assert_eq!(responses, answered);

    match openai::system_text(openai) {
        Some(text) => prop_assert_eq!(
            &out["systemInstruction"],
            &json!({ "parts": [{ "text": text }] })
        ),
        None => prop_assert!(out.get("systemInstruction").is_none()),
    }

    let config = out.get("generationConfig").cloned().unwrap_or(json!({}));
    prop_assert_eq!(
        config.get("maxOutputTokens").cloned(),
        req.max_tokens.map(Value::from)
    );
    // Gemini's temperature runs 0-2 like OpenAI's: passed as it is.
    prop_assert_eq!(
        config.get("temperature").cloned(),
        req.temperature.map(Value::from)
    );
    prop_assert_eq!(config.get("topP").cloned(), req.top_p.map(Value::from));
    let sent: Vec<String> = config["stopSequences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    let stops = req.stop.as_ref().map(openai::Stop::strings);
    prop_assert_eq!(nonempty(sent), nonempty(stops.into_iter().flatten()));

    let declared: Vec<&Value> = out["tools"][0]["functionDeclarations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| &d["name"])
        .collect();
    let names: Vec<Value> = req.tools.iter().map(|t| json!(t.name)).collect();
    prop_assert_eq!(declared, names.iter().collect::<Vec<_>>());
    Ok(())
}

/// One part of a simulated Gemini reply.
#[derive(Debug, Clone)]
enum ReplyPart {
    /// Text, and where a stream cuts it.
    Text(String, Vec<Index>),
    /// A thought summary: not content.
    Thought(String),
    Call {
        /// Which requested tool it calls (a random name when none was declared).
        tool: Index,
        fallback: String,
        args: Value,
        /// Gemini 3 sends call ids; earlier models none.
        id: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct Reply {
    parts: Vec<ReplyPart>,
    prompt: u64,
    candidates: u64,
    thoughts: u64,
    cached: u64,
    finish: &'static str,
    response_id: Option<String>,
    /// Where the stream cuts the list of pieces into SSE payloads.
    events: Vec<Index>,
}

fn reply() -> impl Strategy<Value = Reply> {
    let part = prop_oneof![
        4 => (openai::text(), prop::collection::vec(any::<Index>(), 0..4))
            .prop_map(|(t, cuts)| ReplyPart::Text(t, cuts)),
        1 => openai::text().prop_map(ReplyPart::Thought),
        2 => (
            any::<Index>(),
            openai::tool_name(),
            openai::json_object(),
            prop::option::of("[a-z0-9]{1,8}"),
        )
            .prop_map(|(tool, fallback, args, id)| ReplyPart::Call { tool, fallback, args, id }),
    ];
    let count = || prop_oneof![Just(0u64), 1u64..100_000];
    (
        prop::collection::vec(part, 0..6),
        0u64..1_000_000,
        0u64..100_000,
        count(),
        count(),
        prop::sample::select(vec!["STOP", "STOP", "MAX_TOKENS", "SAFETY", "OTHER"]),
        prop::option::of("[a-zA-Z0-9_-]{1,16}"),
        prop::collection::vec(any::<Index>(), 0..5),
    )
        .prop_map(
            |(parts, prompt, candidates, thoughts, cached, finish, response_id, events)| Reply {
                parts,
                prompt,
                candidates,
                thoughts,
                cached,
                finish,
                response_id,
                events,
            },
        )
}

impl Reply {
    fn call_name<'a>(tool: &Index, fallback: &'a str, tools: &'a [String]) -> &'a str {
        if tools.is_empty() {
            fallback
        } else {
            tool.get(tools).as_str()
        }
    }

    fn call_part(
        tool: &Index,
        fallback: &str,
        args: &Value,
        id: &Option<String>,
        tools: &[String],
    ) -> Value {
        let mut call = json!({ "name": Self::call_name(tool, fallback, tools), "args": args });
        if let Some(id) = id {
            call["id"] = json!(id);
        }
        json!({ "functionCall": call })
    }

    /// The parts of the whole reply.
    fn parts(&self, tools: &[String]) -> Vec<Value> {
        self.parts
            .iter()
            .map(|part| match part {
                ReplyPart::Text(t, _) => json!({ "text": t }),
                ReplyPart::Thought(t) => json!({ "text": t, "thought": true }),
                ReplyPart::Call {
                    tool,
                    fallback,
                    args,
                    id,
                } => Self::call_part(tool, fallback, args, id, tools),
            })
            .collect()
    }

    /// The parts a stream sends: texts cut into pieces, the rest whole.
    fn pieces(&self, tools: &[String]) -> Vec<Value> {
        let mut pieces = Vec::new();
        for part in &self.parts {
            match part {
                ReplyPart::Text(t, cuts) => pieces.extend(
                    openai::cut(t, cuts)
                        .into_iter()
                        .map(|piece| json!({ "text": piece })),
                ),
                ReplyPart::Thought(t) => pieces.push(json!({ "text": t, "thought": true })),
                ReplyPart::Call {
                    tool,
                    fallback,
                    args,
                    id,
                } => {
                    pieces.push(Self::call_part(tool, fallback, args, id, tools));
                }
            }
        }
        pieces
    }

    fn usage_metadata(&self, candidates: u64) -> Value {
        let mut usage = json!({
            "promptTokenCount": self.prompt,
            "candidatesTokenCount": candidates,
            "totalTokenCount": self.prompt + candidates + self.thoughts,
        });
        if self.thoughts > 0 {
            usage["thoughtsTokenCount"] = json!(self.thoughts);
        }
        if self.cached > 0 {
            usage["cachedContentTokenCount"] = json!(self.cached);
        }
        usage
    }

    fn envelope(&self, parts: Vec<Value>, finish: bool, usage: Value) -> Value {
        let mut candidate = json!({ "content": { "role": "model", "parts": parts }, "index": 0 });
        if finish {
            candidate["finishReason"] = json!(self.finish);
        }
        let mut out = json!({
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": "gemini-2.5-flash",
        });
        if let Some(id) = &self.response_id {
            out["responseId"] = json!(id);
        }
        out
    }

    fn body(&self, tools: &[String]) -> Value {
        self.envelope(
            self.parts(tools),
            true,
            self.usage_metadata(self.candidates),
        )
    }

    /// The SSE payloads: the pieces cut into groups (some may be empty), usage growing,
    /// the finish reason and the final usage on the last.
    fn events(&self, tools: &[String]) -> Vec<Value> {
        let pieces = self.pieces(tools);
        let mut at: Vec<usize> = self
            .events
            .iter()
            .map(|i| i.index(pieces.len() + 1))
            .collect();
        at.sort_unstable();
        let groups = at.len() + 1;
        let mut out = Vec::with_capacity(groups);
        let mut start = 0;
        for (k, end) in at
            .into_iter()
            .chain(std::iter::once(pieces.len()))
            .enumerate()
        {
            let last = k + 1 == groups;
            let candidates = if last {
                self.candidates
            } else {
                self.candidates * k as u64 / groups as u64
            };
            let parts = pieces[start..end].to_vec();
            out.push(self.envelope(parts, last, self.usage_metadata(candidates)));
            start = end;
        }
        out
    }

    fn text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                ReplyPart::Text(t, _) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    /// `(id, name, args)` of each call, with the ids OpenAI clients get.
    fn calls<'a>(&'a self, tools: &'a [String]) -> Vec<(String, &'a str, &'a Value)> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                ReplyPart::Call {
                    tool,
                    fallback,
                    args,
                    id,
                } => Some((id.clone(), Self::call_name(tool, fallback, tools), args)),
                _ => None,
            })
            .enumerate()
            .map(|(i, (id, name, args))| (id.unwrap_or_else(|| format!("call_{i}")), name, args))
            .collect()
    }

    fn finish_reason(&self, tools: &[String]) -> &'static str {
        match self.finish {
            "MAX_TOKENS" => "length",
            "SAFETY" => "content_filter",
            _ if !self.calls(tools).is_empty() => "tool_calls",
            _ => "stop",
        }
    }

    fn usage(&self) -> Value {
        let mut usage = json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.candidates + self.thoughts,
            "total_tokens": self.prompt + self.candidates + self.thoughts,
        });
        if self.cached > 0 {
            usage["prompt_tokens_details"] = json!({ "cached_tokens": self.cached });
        }
        if self.thoughts > 0 {
            usage["completion_tokens_details"] = json!({ "reasoning_tokens": self.thoughts });
        }
        usage
    }

    fn id(&self) -> String {
        match &self.response_id {
            Some(id) => format!("chatcmpl-{id}"),
            None => "chatcmpl-gemini-7".to_owned(),
        }
    }
}

fn check_calls(
    got: &[Value],
    expected: &[(String, &str, &Value)],
    indexed: bool,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), expected.len(), "tool calls {:?}", got);
    for (i, (call, (id, name, args))) in got.iter().zip(expected).enumerate() {
        prop_assert_eq!(&call["id"], &json!(id));
        prop_assert_eq!(&call["type"], "function");
        prop_assert_eq!(&call["function"]["name"], &json!(name));
        let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
        let parsed: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
        prop_assert_eq!(&parsed, *args, "arguments {}", arguments);
        if indexed {
            prop_assert_eq!(&call["index"], &json!(i));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// OpenAI request → `generateContent`: alternating, exact contents, system, calls,
    /// responses and config; a request with nothing to send fails as the client's error.
    #[test]
    fn request_translation_keeps_the_conversation(req in openai::request()) {
        let openai = req.to_json();
        match to_generate_request(&openai) {
            Ok(out) => {
                prop_assert!(req.gemini_valid(), "accepted a request with no content: {}", out);
                check_request(&req, &openai, &out)?;
            }
            Err(e) => {
                prop_assert!(!req.gemini_valid(), "{} for {}", e, openai);
                prop_assert_eq!(e.class(), ErrorClass::Client);
            }
        }
    }

    /// A simulated reply, whole and streamed over several payloads, keeps its text (thoughts
    /// left out), function calls and usage; both give the same completion.
    #[test]
    fn reply_translation_keeps_content_calls_and_usage(
        req in openai::request(),
        reply in reply(),
    ) {
        let openai = req.to_json();
        let tools: Vec<String> = req.tools.iter().map(|t| t.name.clone()).collect();
        if let Ok(upstream) = to_generate_request(&openai) {
            // The tools a reply may call are the ones the request declared.
            let declared = upstream["tools"][0]["functionDeclarations"]
                .as_array()
                .map_or(0, Vec::len);
            prop_assert_eq!(declared, tools.len());
        }
        let text = reply.text();
        let calls = reply.calls(&tools);

        let body = reply.body(&tools).to_string();
        let out = from_generate_response(body.as_bytes(), "client-model", 7);
        let out = out.map_err(|e| TestCaseError::fail(format!("{e} for {body}")))?;
        prop_assert_eq!(&out["id"], &json!(reply.id()));
        prop_assert_eq!(&out["model"], "client-model");
        let message = &out["choices"][0]["message"];
        prop_assert_eq!(&message["role"], "assistant");
        if text.is_empty() && !calls.is_empty() {
            prop_assert_eq!(&message["content"], &Value::Null);
        } else {
            prop_assert_eq!(&message["content"], &json!(text));
        }
        match message["tool_calls"].as_array() {
            Some(got) => check_calls(got, &calls, false)?,
            None => prop_assert!(calls.is_empty(), "tool calls lost: {}", out),
        }
        prop_assert_eq!(&out["choices"][0]["finish_reason"], reply.finish_reason(&tools));
        prop_assert_eq!(&out["usage"], &reply.usage());

        let mut stream = StreamTranslator::new("client-model", 7);
        let mut chunks = Vec::new();
        for event in reply.events(&tools) {
            let data = format!("{event}\n");
            let got = stream.event(data.as_bytes());
            chunks.extend(got.map_err(|e| TestCaseError::fail(format!("{e} for {data}")))?);
        }
        prop_assert!(stream.is_finished());
        prop_assert!(!chunks.is_empty());
        prop_assert_eq!(&chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let mut streamed_text = String::new();
        let mut streamed_calls = Vec::new();
        let mut finishes = Vec::new();
        for (k, chunk) in chunks.iter().enumerate() {
            prop_assert_eq!(&chunk["id"], &json!(reply.id()));
            prop_assert_eq!(&chunk["object"], "chat.completion.chunk");
            let choice = &chunk["choices"][0];
            if k > 0 {
                prop_assert!(choice["delta"].get("role").is_none(), "a second role chunk");
            }
            streamed_text.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
            let calls = choice["delta"]["tool_calls"].as_array().into_iter().flatten();
            streamed_calls.extend(calls.cloned());
            if let Some(finish) = choice["finish_reason"].as_str() {
                finishes.push((k, finish.to_owned()));
            }
        }
        prop_assert_eq!(streamed_text, text);
        check_calls(&streamed_calls, &calls, true)?;
        prop_assert_eq!(finishes, vec![(chunks.len() - 1, reply.finish_reason(&tools).to_owned())]);
        let last = stream.finish();
        prop_assert_eq!(last.as_ref().map(|c| &c["usage"]), Some(&reply.usage()));
        prop_assert_eq!(last.as_ref().map(|c| &c["choices"]), Some(&json!([])));
        prop_assert_eq!(stream.usage(), Some(&reply.usage()));
    }
}

/// Found by the properties (fixed): a conversation whose first turn is an assistant's tool call (after system messages, or
/// a history that was cut) becomes `contents` opening with a `model` turn holding a
/// `functionCall`. Gemini rejects that with 400 INVALID_ARGUMENT "Please ensure that function
/// call turn comes immediately after a user turn or after a function response turn." The
/// Anthropic translator puts a placeholder user turn first in the same case.
#[test]
fn leading_tool_call_turn_follows_a_user_turn() {
    let openai = json!({
        "messages": [
            { "role": "assistant", "content": null, "tool_calls": [
                { "id": "call_0", "type": "function", "function": { "name": "f", "arguments": "{}" } },
            ]},
            { "role": "tool", "tool_call_id": "call_0", "content": "ok" },
        ],
        "tools": [{ "type": "function", "function": { "name": "f" } }],
    });
    let out = to_generate_request(&openai).unwrap();
    let contents = out["contents"].as_array().unwrap();
    for (i, turn) in contents.iter().enumerate() {
        let calls = turn["parts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.get("functionCall").is_some());
        if calls {
            assert!(
                i > 0 && contents[i - 1]["role"] == "user",
                "contents[{i}] is a functionCall turn not after a user turn: {out}"
            );
        }
    }
}
