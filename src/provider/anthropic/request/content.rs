//! OpenAI content parts → Anthropic content blocks: text, images (`data:` and http(s) URLs)
//! and inline files.

use serde_json::{Value, json};

use super::Content;
use crate::provider::anthropic::{TranslateError, kind_of};

/// Which content parts a message may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PartsOf {
    System,
    User,
    Assistant,
    ToolResult,
}

/// A message's `content` (a string, an array of parts or null) as Anthropic content.
pub(super) fn parts(content: &Value, i: usize, of: PartsOf) -> Result<Content, TranslateError> {
    match content {
        Value::Null => Ok(Content::Text(String::new())),
        Value::String(text) => Ok(Content::Text(text.clone())),
        Value::Array(parts) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let block = block(part, of).map_err(|reason| {
                    TranslateError::request(format!("messages[{i}].content[{j}]"), reason)
                })?;
                blocks.extend(block);
            }
            Ok(Content::Blocks(blocks))
        }
        other => Err(TranslateError::request(
            format!("messages[{i}].content"),
            format!(
                "expected a string, an array of content parts or null, got {}",
                kind_of(other)
            ),
        )),
    }
}

/// One OpenAI content part as an Anthropic block; `None` for an empty or whitespace-only text
/// (Anthropic refuses those).
fn block(part: &Value, of: PartsOf) -> Result<Option<Value>, String> {
    let kind = part
        .get("type")
        .and_then(Value::as_str)
        .ok_or("expected an object with a string \"type\"")?;
    let block = match (kind, of) {
        ("text", _) | ("refusal", PartsOf::Assistant) => {
            let text = part
                .get(kind)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{kind} part without a string {kind:?}"))?;
            if text.trim().is_empty() {
                return Ok(None);
            }
            json!({ "type": "text", "text": text })
        }
        ("image_url", PartsOf::User | PartsOf::ToolResult) => {
            let url = match part.get("image_url") {
                Some(Value::String(url)) => url.as_str(),
                Some(Value::Object(image)) => image
                    .get("url")
                    .and_then(Value::as_str)
                    .ok_or("image_url.url: expected a string")?,
                _ => return Err("image_url: expected an object with a \"url\"".into()),
            };
            json!({ "type": "image", "source": image_source(url)? })
        }
        ("file", PartsOf::User) => {
            let data = part
                .get("file")
                .and_then(|f| f.get("file_data"))
                .and_then(Value::as_str)
                .ok_or("file.file_data: expected a string (file ids are not supported)")?;
            let (media_type, data) =
                data_url(data)?.ok_or("file.file_data: expected a data: URL")?;
            json!({
                "type": "document",
                "source": { "type": "base64", "media_type": media_type, "data": data },
            })
        }
        (kind, of) => {
            let whose = match of {
                PartsOf::System => "a system message",
                PartsOf::User => "a user message",
                PartsOf::Assistant => "an assistant message",
                PartsOf::ToolResult => "a tool message",
            };
            return Err(format!("{kind:?} parts are not supported in {whose}"));
        }
    };
    Ok(Some(with_cache_control(block, part)))
}

/// Anthropic's prompt-caching marker, passed on when a client put it on an OpenAI part.
fn with_cache_control(mut block: Value, part: &Value) -> Value {
    if let (Some(cache), Some(block)) = (part.get("cache_control"), block.as_object_mut()) {
        if cache.is_object() {
            block.insert("cache_control".into(), cache.clone());
        }
    }
    block
}

/// `data:` URLs become base64 sources, http(s) URLs url sources.
fn image_source(url: &str) -> Result<Value, String> {
    if let Some((media_type, data)) = data_url(url)? {
        return Ok(json!({ "type": "base64", "media_type": media_type, "data": data }));
    }
    let scheme = url.split_once(':').map(|(scheme, _)| scheme);
    if scheme.is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https")) {
        Ok(json!({ "type": "url", "url": url }))
    } else {
        Err("image_url.url: expected a data: URL or an http(s) URL".into())
    }
}

/// The media type and base64 data of a `data:<type>[;param]*;base64,<data>` URL; `None` when
/// `url` is not a data URL.
pub(in crate::provider::anthropic) fn data_url(url: &str) -> Result<Option<(&str, &str)>, String> {
    let Some(rest) = url
        .get(..5)
        .filter(|scheme| scheme.eq_ignore_ascii_case("data:"))
        .and_then(|_| url.get(5..))
    else {
        return Ok(None);
    };
    let (meta, data) = rest.split_once(',').ok_or("data URL without a comma")?;
    let media_type = meta.split(';').next().unwrap_or_default();
    if !meta
        .rsplit(';')
        .next()
        .is_some_and(|p| p.eq_ignore_ascii_case("base64"))
    {
        return Err("only base64 data URLs are supported".into());
    }
    if media_type.is_empty() || media_type.eq_ignore_ascii_case("base64") {
        return Err("data URL without a media type".into());
    }
    Ok(Some((media_type, data)))
}
