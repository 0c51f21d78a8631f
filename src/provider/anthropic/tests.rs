//! Unit tests of the Anthropic translations, on fixtures written from Anthropic's API reference
//! (Messages, streaming, tool use, errors). Members:
//! - `request`: OpenAI request → Messages request (parameters, system lifting, alternation).
//! - `request_parts`: the same for tools, tool calls and results, images, malformed input.
//! - `response`: Messages reply → `chat.completion`, and error classification.
//! - `stream`: Messages SSE events → chunks.
//! - `ingress`: Messages request → OpenAI request, `chat.completion` → Messages reply.
//! - `ingress_stream`: chunks → Messages SSE events.
//! - `robust`: no input panics; round trips keep content, tool calls and usage.

mod ingress;
mod ingress_stream;
mod proptest_roundtrip;
mod request;
mod request_parts;
mod response;
mod robust;
mod stream;

/// The events of an SSE text, as `(event line, data line)`.
fn sse(text: &str) -> Vec<(Option<&str>, &str)> {
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let mut event = None;
            let mut data = "";
            for line in frame.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = Some(name);
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d;
                }
            }
            (event, data)
        })
        .collect()
}
