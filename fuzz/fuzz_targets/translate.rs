//! The native stream translators and the `/v1/messages` ingress: an upstream SSE stream (an
//! Anthropic or Gemini one) through the SSE parser into OpenAI chunks, and an Anthropic
//! Messages request (or an OpenAI reply / chunk stream going back) as JSON. Upstream and client
//! bytes are outside input: they may be refused, never panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchyard::provider::Operation;
use switchyard::provider::anthropic::{
    self, MessagesStreamWriter, messages_to_openai, openai_to_messages_response,
};
use switchyard::provider::gemini;
use switchyard::provider::sse::Parser;
use switchyard::request::ClientRequest;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            let mut parser = Parser::default();
            let mut t = anthropic::StreamTranslator::new("m", 1);
            let mut events = parser.push(rest).unwrap_or_default();
            events.extend(parser.finish());
            for e in events {
                if t.event(e.event.as_deref(), &e.data).is_err() {
                    break;
                }
            }
            let _ = t.finished();
        }
        1 => {
            let mut parser = Parser::default();
            let mut t = gemini::StreamTranslator::new("m", 1);
            let mut events = parser.push(rest).unwrap_or_default();
            events.extend(parser.finish());
            for e in events {
                if t.event(&e.data).is_err() {
                    break;
                }
            }
        }
        2 => {
            let Ok(v) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            let _ = openai_to_messages_response(&v);
            // What the ingress does with a client's Messages request.
            if let Ok(openai) = messages_to_openai(&v) {
                let _ = ClientRequest::parse(Operation::Chat, Bytes::from(openai.to_string()));
            }
        }
        _ => {
            // An OpenAI chunk stream translated back to Messages events.
            let mut parser = Parser::default();
            let mut w = MessagesStreamWriter::new("m");
            let mut events = parser.push(rest).unwrap_or_default();
            events.extend(parser.finish());
            for e in events {
                if let Ok(chunk) = serde_json::from_slice::<Value>(&e.data) {
                    let _ = w.chunk(&chunk);
                }
            }
            let _ = w.finish();
        }
    }
});
