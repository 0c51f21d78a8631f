//! An OpenAI `chat.completions` request → a Gemini `generateContent` body. This file owns the
//! conversation (`contents`, `systemInstruction`, parts, tool calls and results); `config`
//! adds `generationConfig`, `tools` and `toolConfig`. Fields Gemini has no use for (`stream`,
//! `user`, `logprobs`, ...) are dropped.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::TranslateError;
use super::config::{function_calling_config, function_declarations, generation_config};

type Result<T> = std::result::Result<T, TranslateError>;

/// Translates an OpenAI chat request body into a `generateContent` body.
pub fn to_generate_request(openai_chat: &Value) -> Result<Value> {
    let req = openai_chat
        .as_object()
        .ok_or_else(|| TranslateError::request("body", "expected a JSON object"))?;
    let messages = match req.get("messages") {
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err(TranslateError::request("messages", "expected an array")),
        None => return Err(TranslateError::request("messages", "missing")),
    };
    let mut conversation = Conversation::default();
    for (i, message) in messages.iter().enumerate() {
        conversation.push(i, message)?;
    }
    if conversation.contents.is_empty() {
        return Err(TranslateError::request(
            "messages",
            "needs at least one user, assistant or tool message with content",
        ));
    }

    // Gemini wants a function call right after a user turn: a history that opens with the
    // model's turn (cut, or after system messages only) gets a placeholder user turn first.
    if conversation
        .contents
        .first()
        .is_some_and(|t| t.role == "model")
    {
        conversation.contents.insert(
            0,
            Turn {
                role: "user",
                parts: vec![json!({ "text": LEADING_USER_PLACEHOLDER })],
            },
        );
    }
    let mut out = Map::new();
    let contents: Vec<Value> = conversation
        .contents
        .into_iter()
        .map(|turn| json!({ "role": turn.role, "parts": turn.parts }))
        .collect();
    out.insert("contents".into(), Value::Array(contents));
    if !conversation.system.is_empty() {
        let text = conversation.system.join("\n\n");
        out.insert(
            "systemInstruction".into(),
            json!({ "parts": [{ "text": text }] }),
        );
    }
    let config = generation_config(req)?;
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    let declarations = function_declarations(req)?;
    if !declarations.is_empty() {
        out.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        if let Some(calling) = function_calling_config(req)? {
            out.insert(
                "toolConfig".into(),
                json!({ "functionCallingConfig": calling }),
            );
        }
    }
    Ok(Value::Object(out))
}

/// One Gemini turn: `user` or `model`.
struct Turn {
    role: &'static str,
    parts: Vec<Value>,
}

/// The user turn put before a conversation that opens with the model's (as the Anthropic
/// translator does).
pub(crate) const LEADING_USER_PLACEHOLDER: &str = ".";

#[derive(Default)]
struct Conversation {
    /// System and developer texts, in order, wherever they stood.
    system: Vec<String>,
    contents: Vec<Turn>,
    /// Function name by tool call id, from the assistant turns so far: a `tool` message names
    /// its call only by id, a `functionResponse` needs the name. A later call reusing an id
    /// (ids like `call_0` repeat across turns) replaces the earlier one.
    call_names: HashMap<String, String>,
}

impl Conversation {
    fn push(&mut self, i: usize, message: &Value) -> Result<()> {
        let at = format!("messages[{i}]");
        let message = message
            .as_object()
            .ok_or_else(|| TranslateError::request(&at, "expected an object"))?;
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::request(format!("{at}.role"), "expected a string"))?;
        let content = message.get("content");
        let content_at = format!("{at}.content");
        match role {
            "system" | "developer" => {
                let text = text_of(content, &content_at)?;
                if !text.is_empty() {
                    self.system.push(text);
                }
            }
            "user" => {
                let parts = content_parts(content, &content_at)?;
                self.add("user", parts);
            }
            "assistant" => {
                let mut parts = content_parts(content, &content_at)?;
                parts.extend(self.tool_calls(message, &at)?);
                self.add("model", parts);
            }
            "tool" => {
                let name = self.tool_name(message, &at)?;
                let part = function_response(&name, content, &content_at)?;
                self.add("user", vec![part]);
            }
            // The legacy name for a tool result: it names its function itself.
            "function" => {
                let name = message.get("name").and_then(Value::as_str).ok_or_else(|| {
                    TranslateError::request(format!("{at}.name"), "expected a string")
                })?;
                let part = function_response(name, content, &content_at)?;
                self.add("user", vec![part]);
            }
            other => {
                return Err(TranslateError::request(
                    format!("{at}.role"),
                    format!("unsupported role {other:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Appends `parts` as a turn of `role`, merged into the previous turn if it has the same
    /// role (Gemini wants turns to alternate). A turn with no parts is left out: Gemini
    /// rejects empty turns.
    fn add(&mut self, role: &'static str, parts: Vec<Value>) {
        if parts.is_empty() {
            return;
        }
        match self.contents.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => self.contents.push(Turn { role, parts }),
        }
    }

    /// `functionCall` parts of an assistant message's `tool_calls` (and legacy
    /// `function_call`), remembering each call's name by id.
    fn tool_calls(&mut self, message: &Map<String, Value>, at: &str) -> Result<Vec<Value>> {
        let mut parts = Vec::new();
        match message.get("tool_calls") {
            None | Some(Value::Null) => {}
            Some(Value::Array(calls)) => {
                for (j, call) in calls.iter().enumerate() {
                    let call_at = format!("{at}.tool_calls[{j}]");
                    let call = call
                        .as_object()
                        .ok_or_else(|| TranslateError::request(&call_at, "expected an object"))?;
                    let function = call.get("function").ok_or_else(|| {
                        TranslateError::request(format!("{call_at}.function"), "missing")
                    })?;
                    let (name, args) = function_call(function, &format!("{call_at}.function"))?;
                    if let Some(id) = call.get("id").and_then(Value::as_str) {
                        self.call_names.insert(id.to_owned(), name.clone());
                    }
                    parts.push(json!({ "functionCall": { "name": name, "args": args } }));
                }
            }
            Some(_) => {
                return Err(TranslateError::request(
                    format!("{at}.tool_calls"),
                    "expected an array",
                ));
            }
        }
        if let Some(function) = message.get("function_call").filter(|f| !f.is_null()) {
            let (name, args) = function_call(function, &format!("{at}.function_call"))?;
            parts.push(json!({ "functionCall": { "name": name, "args": args } }));
        }
        Ok(parts)
    }

    /// The function name a `tool` message answers: that of the earlier call with its
    /// `tool_call_id`, else its own `name` if it has one.
    fn tool_name(&self, message: &Map<String, Value>, at: &str) -> Result<String> {
        let id = message.get("tool_call_id").and_then(Value::as_str);
        if let Some(name) = id.and_then(|id| self.call_names.get(id)) {
            return Ok(name.clone());
        }
        if let Some(name) = message.get("name").and_then(Value::as_str) {
            return Ok(name.to_owned());
        }
        Err(match id {
            Some(id) => TranslateError::request(
                format!("{at}.tool_call_id"),
                format!("no earlier assistant tool call has id {id:?}"),
            ),
            None => TranslateError::request(format!("{at}.tool_call_id"), "expected a string"),
        })
    }
}

/// The `(name, args)` of an OpenAI `{name, arguments}`; `arguments` is a JSON string holding
/// an object (an empty string is taken as `{}`).
fn function_call(function: &Value, at: &str) -> Result<(String, Value)> {
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::request(format!("{at}.name"), "expected a string"))?;
    let args_at = format!("{at}.arguments");
    let args = match function.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map_err(|e| TranslateError::request(&args_at, format!("not valid JSON: {e}")))?,
        // Some clients send the object itself; it means the same.
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(TranslateError::request(&args_at, "expected a JSON string")),
    };
    if !args.is_object() {
        return Err(TranslateError::request(
            &args_at,
            "expected a JSON object (Gemini's args are an object)",
        ));
    }
    Ok((name.to_owned(), args))
}

/// A `functionResponse` part: the content as an object if it is a JSON object, else
/// `{"content": <text>}`.
fn function_response(name: &str, content: Option<&Value>, at: &str) -> Result<Value> {
    let text = text_of(content, at)?;
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({ "content": text }),
    };
    Ok(json!({ "functionResponse": { "name": name, "response": response } }))
}

/// The text of a content that may only hold text: a string or an array of text parts
/// (joined). Absent or null is empty.
fn text_of(content: Option<&Value>, at: &str) -> Result<String> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                let part_at = format!("{at}[{j}]");
                match part_text(part, &part_at)? {
                    Some(t) => text.push_str(t),
                    None => {
                        return Err(TranslateError::request(
                            format!("{part_at}.type"),
                            "only text parts are allowed here",
                        ));
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(TranslateError::request(
            at,
            "expected a string or an array of content parts",
        )),
    }
}

/// The text of a `text` (or `refusal`) part; `None` for other part types.
fn part_text<'a>(part: &'a Value, at: &str) -> Result<Option<&'a str>> {
    let kind = part_type(part, at)?;
    let key = match kind {
        "text" | "input_text" => "text",
        "refusal" => "refusal",
        _ => return Ok(None),
    };
    part.get(key)
        .and_then(Value::as_str)
        .map(Some)
        .ok_or_else(|| TranslateError::request(format!("{at}.{key}"), "expected a string"))
}

fn part_type<'a>(part: &'a Value, at: &str) -> Result<&'a str> {
    if !part.is_object() {
        return Err(TranslateError::request(at, "expected an object"));
    }
    part.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::request(format!("{at}.type"), "expected a string"))
}

/// Gemini parts of a user or assistant content: text, images and audio. Empty texts are left
/// out (Gemini rejects an empty text part).
fn content_parts(content: Option<&Value>, at: &str) -> Result<Vec<Value>> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({ "text": s })]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let part_at = format!("{at}[{j}]");
                if let Some(text) = part_text(part, &part_at)? {
                    if !text.is_empty() {
                        out.push(json!({ "text": text }));
                    }
                    continue;
                }
                match part_type(part, &part_at)? {
                    "image_url" | "input_image" => out.push(image_part(part, &part_at)?),
                    "input_audio" => out.push(audio_part(part, &part_at)?),
                    other => {
                        return Err(TranslateError::request(
                            format!("{part_at}.type"),
                            format!("unsupported content part type {other:?}"),
                        ));
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(TranslateError::request(
            at,
            "expected a string or an array of content parts",
        )),
    }
}

/// `{type: image_url, image_url: {url}}` (or `image_url: "<url>"`): a base64 `data:` URL
/// becomes `inlineData`, an http(s) or `gs://` URL `fileData`.
fn image_part(part: &Value, at: &str) -> Result<Value> {
    let (url, url_at) = match part.get("image_url") {
        Some(Value::String(url)) => (Some(url.as_str()), format!("{at}.image_url")),
        Some(image) => (
            image.get("url").and_then(Value::as_str),
            format!("{at}.image_url.url"),
        ),
        None => (None, format!("{at}.image_url")),
    };
    let url = url.ok_or_else(|| TranslateError::request(&url_at, "expected a URL string"))?;
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| TranslateError::request(&url_at, "data: URL without a comma"))?;
        let mut params = meta.split(';');
        let mime = params.next().unwrap_or_default();
        if !params.any(|p| p == "base64") {
            return Err(TranslateError::request(
                &url_at,
                "only base64 data: URLs are supported",
            ));
        }
        let mime = if mime.is_empty() { "image/jpeg" } else { mime };
        return Ok(json!({ "inlineData": { "mimeType": mime, "data": data } }));
    }
    let lower = url.to_ascii_lowercase();
    if ["http://", "https://", "gs://"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
    {
        return Ok(json!({ "fileData": { "mimeType": guess_mime(url), "fileUri": url } }));
    }
    Err(TranslateError::request(
        &url_at,
        "expected a base64 data: URL or an http(s) URL",
    ))
}

/// The image type an URL's extension says, `image/jpeg` when it says nothing known.
fn guess_mime(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let file = path.rsplit('/').next().unwrap_or_default();
    let ext = file
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("heic") => "image/heic",
        Some("heif") => "image/heif",
        _ => "image/jpeg",
    }
}

/// `{type: input_audio, input_audio: {data, format}}` → `inlineData` of `audio/<format>`.
fn audio_part(part: &Value, at: &str) -> Result<Value> {
    let audio = part.get("input_audio");
    let field = |key: &str| {
        audio
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                TranslateError::request(format!("{at}.input_audio.{key}"), "expected a string")
            })
    };
    let data = field("data")?;
    let format = field("format")?;
    Ok(json!({ "inlineData": { "mimeType": format!("audio/{format}"), "data": data } }))
}
