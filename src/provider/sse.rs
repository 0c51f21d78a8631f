//! Server-Sent Events, incrementally: bytes in as they arrive, whole events out. The one SSE
//! parser the native adapters share (the OpenAI pass-through path scans bytes itself and never
//! parses).
//!
//! Per the WHATWG rules that matter to LLM APIs: events end at a blank line; `event:` names
//! one; `data:` lines join with `\n`; one space after the colon is dropped; `\r\n` and `\r`
//! end lines too; comments (`:`) and `id:` / `retry:` are skipped.

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub event: Option<String>,
    pub data: Vec<u8>,
}

/// Most bytes one event may hold before the stream is called broken (4 MiB: far above any
/// real chunk, a bound on what a garbage stream can make us buffer).
pub const MAX_EVENT_BYTES: usize = 4 << 20;

#[derive(Debug, Default)]
pub struct Parser {
    /// The current line so far.
    line: Vec<u8>,
    /// The event being built.
    current: Event,
    has_data: bool,
    /// A `\r` ended the last chunk: a `\n` starting the next one belongs to it.
    after_cr: bool,
}

/// The stream broke the parser's bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event exceeded {MAX_EVENT_BYTES} bytes")]
pub struct TooLarge;

impl Parser {
    /// Feed `bytes`; whole events come out in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, TooLarge> {
        let mut out = Vec::new();
        for &b in bytes {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&line) {
                        out.push(event);
                    }
                }
                _ => {
                    self.line.push(b);
                    if self.line.len() + self.current.data.len() > MAX_EVENT_BYTES {
                        return Err(TooLarge);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The stream ended: an event left without its blank line, if any.
    pub fn finish(&mut self) -> Option<Event> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            if let Some(event) = self.line_done(&line) {
                return Some(event);
            }
        }
        self.line_done(b"")
    }

    fn line_done(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.current);
            let had = std::mem::take(&mut self.has_data);
            return (had || event.event.is_some()).then_some(event);
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.current.data.push(b'\n');
                }
                self.current.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.current.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
        None
    }
}

/// `data: {json}\n\n`.
pub fn data_line(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: Option<&str>, data: &str) -> Event {
        Event {
            event: event.map(str::to_owned),
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn events_come_out_whole_however_the_bytes_are_split() {
        let text = "event: message_start\ndata: {\"a\":1}\n\n: ping comment\n\ndata: x\ndata: y\r\n\r\nevent: ping\n\nid: 3\ndata:nospace\n\n";
        let want = vec![
            ev(Some("message_start"), "{\"a\":1}"),
            ev(None, "x\ny"),
            ev(Some("ping"), ""),
            ev(None, "nospace"),
        ];
        for split in 1..text.len() {
            let mut p = Parser::default();
            let mut got = p.push(&text.as_bytes()[..split]).unwrap();
            got.extend(p.push(&text.as_bytes()[split..]).unwrap());
            assert_eq!(got, want, "split at {split}");
            assert_eq!(p.finish(), None);
        }
        let mut p = Parser::default();
        let bytes: Vec<Event> = (text.bytes()).flat_map(|b| p.push(&[b]).unwrap()).collect();
        assert_eq!(bytes, want, "one byte at a time");
    }

    #[test]
    fn a_last_event_without_its_blank_line_comes_out_at_the_end() {
        let mut p = Parser::default();
        assert!(p.push(b"data: {\"done\":true}").unwrap().is_empty());
        assert_eq!(p.finish(), Some(ev(None, "{\"done\":true}")));
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut p = Parser::default();
        let chunk = vec![b'x'; 1 << 20];
        let mut result = Ok(Vec::new());
        for _ in 0..5 {
            result = p.push(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(TooLarge));
    }

    mod properties {
        //! Property test: the same bytes give the same events however they are split.
        use super::*;
        use proptest::prelude::*;

        /// Bytes from the pieces SSE is made of, so lines, fields and blank lines abound.
        fn stream() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                prop::sample::select(vec![
                    &b"data:"[..],
                    b"data: ",
                    b"event: ",
                    b"id: 1",
                    b":",
                    b"retry: 3",
                    b"\n",
                    b"\r",
                    b"\r\n",
                    b"\n\n",
                    b" ",
                    b"x",
                    b"{\"a\":1}",
                    b"[DONE]",
                    b"\xff",
                ])
                .prop_map(<[u8]>::to_vec),
                prop::collection::vec(any::<u8>(), 0..4),
            ];
            prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
        }

        fn all(chunks: &[&[u8]]) -> Vec<Event> {
            let mut p = Parser::default();
            let mut out = Vec::new();
            for c in chunks {
                out.extend(p.push(c).unwrap());
            }
            out.extend(p.finish());
            out
        }

        proptest! {
            #[test]
            fn events_do_not_depend_on_where_the_bytes_are_split(
                text in stream(),
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            ) {
                let whole = all(&[&text]);
                let mut at: Vec<usize> = cuts.iter().map(|i| i.index(text.len() + 1)).collect();
                at.sort_unstable();
                let mut chunks = Vec::new();
                let mut from = 0;
                for to in at {
                    chunks.push(&text[from..to]);
                    from = to;
                }
                chunks.push(&text[from..]);
                prop_assert_eq!(&whole, &all(&chunks));
                let bytes: Vec<&[u8]> = text.chunks(1).collect();
                prop_assert_eq!(&whole, &all(&bytes));
            }
        }
    }
}
