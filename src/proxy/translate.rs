//! A native stream made to look like OpenAI's: the upstream body's bytes go through the shared
//! SSE parser and the adapter's [`StreamDecode`], and come out as `data: {chunk}` events ending
//! with `data: [DONE]`, so `stream` commits, scans and forwards them like any OpenAI stream.
//!
//! Usage: a translator may report usage as its own `choices: []` chunk. A client that did not
//! ask for `stream_options.include_usage` gets it folded into the finish chunk instead (held
//! back until the usage arrives or the stream ends), so it never sees a chunk without choices
//! while the gateway still counts the tokens.
//!
//! A translation failure becomes an OpenAI error event (`data: {"error": ...}`), which the
//! stream treats as the upstream failing: before the commit point the request fails over.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use serde_json::Value;

use crate::provider::sse::{self, Parser};
use crate::provider::{ErrorClass, StreamDecode};

/// An upstream body: as it came, or translated.
pub(crate) enum UpBody {
    Raw(Incoming),
    Decoded(Box<Decoded>),
}

impl UpBody {
    pub(crate) fn decoded(inner: Incoming, decoder: Box<dyn StreamDecode>, usage: bool) -> Self {
        Self::Decoded(Box::new(Decoded {
            inner,
            parser: Parser::default(),
            decoder,
            include_usage: usage,
            held: None,
            out: VecDeque::new(),
            state: Phase::Reading,
        }))
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Raw(b) => Pin::new(b).poll_frame(cx),
            Self::Decoded(d) => d.poll(cx),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Raw(b) => b.size_hint(),
            Self::Decoded(_) => SizeHint::default(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reading,
    /// Everything is in `out`; then the body ends.
    Ended,
}

pub(crate) struct Decoded {
    inner: Incoming,
    parser: Parser,
    decoder: Box<dyn StreamDecode>,
    include_usage: bool,
    /// A finish chunk waiting for a usage-only chunk to fold in.
    held: Option<Value>,
    out: VecDeque<Bytes>,
    state: Phase,
}

impl Decoded {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        loop {
            if !self.out.is_empty() {
                let mut joined = Vec::new();
                for b in self.out.drain(..) {
                    joined.extend_from_slice(&b);
                }
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(joined)))));
            }
            if self.state == Phase::Ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        match self.parser.push(&data) {
                            Ok(events) => self.events(events),
                            Err(e) => self.fail(ErrorClass::Malformed, &e.to_string()),
                        }
                    }
                }
                Poll::Ready(None) => {
                    let last = self.parser.finish();
                    self.events(last.into_iter().collect());
                    if self.state == Phase::Reading {
                        for chunk in self.decoder.end() {
                            self.chunk(chunk);
                        }
                        if let Some(held) = self.held.take() {
                            self.emit(&held);
                        }
                        self.out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
                        self.state = Phase::Ended;
                    }
                }
            }
        }
    }

    fn events(&mut self, events: Vec<sse::Event>) {
        for e in events {
            if self.state != Phase::Reading {
                return;
            }
            if e.data.is_empty() || e.data == b"[DONE]" {
                continue;
            }
            match self.decoder.event(e.event.as_deref(), &e.data) {
                Ok(chunks) => chunks.into_iter().for_each(|c| self.chunk(c)),
                Err((class, detail)) => self.fail(class, &detail),
            }
        }
    }

    fn chunk(&mut self, chunk: Value) {
        let usage_only = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
            && chunk.get("usage").is_some_and(|u| !u.is_null());
        if usage_only && !self.include_usage {
            match self.held.take() {
                Some(mut finish) => {
                    finish["usage"] = chunk["usage"].clone();
                    self.emit(&finish);
                }
                // No finish chunk to carry it: keep the tokens counted, in the shape OpenAI
                // itself uses.
                None => self.emit(&chunk),
            }
            return;
        }
        if let Some(held) = self.held.take() {
            self.emit(&held);
        }
        let finishes = (chunk.get("choices").and_then(Value::as_array)).is_some_and(|cs| {
            cs.iter()
                .any(|c| c.get("finish_reason").is_some_and(|f| !f.is_null()))
        });
        if finishes && !self.include_usage {
            self.held = Some(chunk);
        } else {
            self.emit(&chunk);
        }
    }

    fn emit(&mut self, chunk: &Value) {
        self.out
            .push_back(Bytes::from(sse::data_line(chunk.to_string().as_bytes())));
    }

    fn fail(&mut self, class: ErrorClass, detail: &str) {
        if let Some(held) = self.held.take() {
            self.emit(&held);
        }
        let error =
            serde_json::json!({"error": {"message": detail, "type": class.as_str(), "code": null}});
        self.emit(&error);
        self.state = Phase::Ended;
    }
}
