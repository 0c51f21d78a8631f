//! `streamGenerateContent?alt=sse` → OpenAI `chat.completion.chunk`s. Each SSE `data:`
//! payload is a whole `GenerateContentResponse` holding the next fragment of each candidate.
//!
//! Chunks, per candidate: the first carries `delta.role: "assistant"` with whatever that
//! fragment holds; text becomes `delta.content`; each `functionCall` part (Gemini sends them
//! whole) becomes one complete tool-call delta, numbered from 0 across the stream; the
//! fragment with a `finishReason` carries `finish_reason`. Usage is not put on those chunks:
//! Gemini repeats a growing `usageMetadata` on every event, so the translator keeps the last
//! one and [`StreamTranslator::finish`] returns it as OpenAI's final `choices: []` usage chunk,
//! to be sent (before `data: [DONE]`) when the client asked for
//! `stream_options.include_usage`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::response::{self, Candidate, completion_id, finish_reason, prompt_block};
use super::{TranslateError, parse_object};

/// Where one choice of the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// Its role chunk has gone out; `calls` tool calls so far.
    Open { calls: usize },
    /// Its finish reason has gone out; later fragments of it are ignored.
    Finished,
}

/// Turns the events of one Gemini stream into OpenAI chunks.
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    created: u64,
    /// Fixed by the first event: every chunk of a stream has the same id.
    id: Option<String>,
    /// By candidate index; a choice not here has sent nothing yet.
    choices: BTreeMap<u64, Choice>,
    /// The latest `usageMetadata`, translated.
    usage: Option<Value>,
}

impl StreamTranslator {
    pub fn new(model: &str, created: u64) -> Self {
        Self {
            model: model.to_owned(),
            created,
            id: None,
            choices: BTreeMap::new(),
            usage: None,
        }
    }

    /// The chunks of one SSE `data:` payload (without the `data: ` prefix). A payload that
    /// says nothing new (only usage, say) gives no chunks; so does a blank one. An `error`
    /// object gives [`TranslateError::Upstream`] with Gemini's code and status.
    pub fn event(&mut self, data: &[u8]) -> Result<Vec<Value>, TranslateError> {
        let data = data.trim_ascii();
        if data.is_empty() || data == b"[DONE]" {
            return Ok(Vec::new());
        }
        let reply = parse_object(data)?;
        if self.id.is_none() {
            self.id = Some(completion_id(&reply, self.created));
        }
        if let Some(usage) = response::usage(&reply) {
            self.usage = Some(usage);
        }
        let candidates = response::candidates(&reply)?;
        if candidates.is_empty() && prompt_block(&reply).is_some() {
            let blocked = Candidate {
                finish: Some("SAFETY".to_owned()),
                ..Candidate::default()
            };
            return Ok(self.chunk_of(&blocked).into_iter().collect());
        }
        Ok(candidates.iter().filter_map(|c| self.chunk_of(c)).collect())
    }

    /// OpenAI's final usage chunk (`choices: []`), if Gemini sent any `usageMetadata`.
    pub fn finish(&self) -> Option<Value> {
        let usage = self.usage.clone()?;
        let mut chunk = self.chunk(Vec::new());
        if let Some(map) = chunk.as_object_mut() {
            map.insert("usage".into(), usage);
        }
        Some(chunk)
    }

    /// The latest usage seen, in OpenAI's shape, for accounting.
    pub fn usage(&self) -> Option<&Value> {
        self.usage.as_ref()
    }

    /// Whether every choice that started has sent its finish reason (and one did): a stream
    /// that ends before this was cut short.
    pub fn is_finished(&self) -> bool {
        !self.choices.is_empty() && self.choices.values().all(|c| *c == Choice::Finished)
    }

    /// The chunk of one candidate fragment, or `None` if it says nothing.
    fn chunk_of(&mut self, candidate: &Candidate) -> Option<Value> {
        let state = self.choices.get(&candidate.index).copied();
        let calls_before = match state {
            Some(Choice::Finished) => return None,
            Some(Choice::Open { calls }) => calls,
            None => 0,
        };
        let mut delta = Map::new();
        if state.is_none() {
            delta.insert("role".into(), "assistant".into());
        }
        if !candidate.text.is_empty() {
            delta.insert("content".into(), candidate.text.clone().into());
        }
        if !candidate.calls.is_empty() {
            let calls: Vec<Value> = candidate
                .calls
                .iter()
                .enumerate()
                .map(|(i, call)| call.to_openai(calls_before + i, true))
                .collect();
            delta.insert("tool_calls".into(), calls.into());
        }
        let calls = calls_before + candidate.calls.len();
        let finish = finish_reason(candidate.finish.as_deref(), calls > 0);
        if delta.is_empty() && finish.is_none() {
            return None;
        }
        let next = if finish.is_some() {
            Choice::Finished
        } else {
            Choice::Open { calls }
        };
        self.choices.insert(candidate.index, next);
        Some(self.chunk(vec![json!({
            "index": candidate.index,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish,
        })]))
    }

    fn chunk(&self, choices: Vec<Value>) -> Value {
        let id = match &self.id {
            Some(id) => id.clone(),
            None => format!("chatcmpl-gemini-{}", self.created),
        };
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }
}
