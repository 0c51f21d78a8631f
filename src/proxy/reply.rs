//! Whole upstream replies: read them with a cap and a deadline, check they are what the API
//! promises, and pull out token usage.

use serde::Deserialize;

use crate::provider::ErrorClass;
use crate::stats::Outcome;
use crate::upstream::AttemptError;

pub use crate::upstream::read_body;

/// Token counts an upstream reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    pub fn outcome(self) -> Outcome {
        Outcome::Success {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
        }
    }
}

#[derive(Deserialize)]
struct WithUsage {
    usage: Option<Usage>,
}

/// A 2xx JSON reply must be a JSON object; returns its usage (zero when absent).
pub fn check(body: &[u8]) -> Result<Usage, AttemptError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(AttemptError::new(
            ErrorClass::Malformed,
            format!("reply is not a JSON object: {}", snippet(body)),
        ));
    }
    match serde_json::from_slice::<WithUsage>(body) {
        Ok(reply) => Ok(reply.usage.unwrap_or_default()),
        Err(e) => Err(AttemptError::new(
            ErrorClass::Malformed,
            format!("reply is not valid JSON ({e}): {}", snippet(body)),
        )),
    }
}

/// Usage carried by one SSE `data:` payload, if it carries any.
pub fn usage_in_event(data: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<WithUsage>(data).ok()?.usage
}

pub fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// The start of a body, printable, for error messages (never more than 200 characters).
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let mut s: String = text.chars().filter(|c| !c.is_control()).collect();
    if body.len() > 200 {
        s.push('…');
    }
    if s.is_empty() {
        "(empty body)".to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_json_and_extracts_usage() {
        let u = check(
            br#"{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
        )
        .unwrap();
        assert_eq!(
            u,
            Usage {
                prompt_tokens: 3,
                completion_tokens: 4
            }
        );
        assert_eq!(check(br#"{"data":[]}"#).unwrap(), Usage::default());
        for bad in [&b"this is not json <<<"[..], b"[1]", b"", b"{\"a\":"] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.class, ErrorClass::Malformed);
        }
    }

    #[test]
    fn snippets_are_short_and_printable() {
        assert_eq!(snippet(b""), "(empty body)");
        assert_eq!(snippet(b"a\nb"), "ab");
        assert_eq!(snippet(&[b'x'; 300]).chars().count(), 201);
    }
}
