//! The JSON line, written by hand for the gateway's own events.
//!
//! tracing-subscriber's JSON formatter (`json().flatten_event(true)`) cost ~22.7k instructions
//! per access line against ~6.9k for the text line: serde_json through an `io::Write` adaptor
//! over `fmt::Write` (UTF-8 checks on every piece), a `core::fmt` timestamp. [`JsonLine`]
//! writes the same document straight into the line buffer:
//!
//! ```text
//! {"timestamp":"2026-11-22T04:58:14.373489Z","level":"INFO","message":"request","request_id":"…",…,"target":"switchyard::access"}
//! ```
//!
//! Keys in the same order (timestamp, level, the event's fields as recorded, target), strings
//! escaped as serde_json does (`\"`, `\\`, `\n` `\r` `\t` `\b` `\f`, other controls as
//! `\u00XX`, everything else as is), numbers as serde_json prints them (non-finite floats as
//! `null`), `Debug`/`Display` fields as strings. Events from other crates (their targets do
//! not start with `switchyard`) and events inside a span (the `span`/`spans` keys need the
//! span's stored fields) go through tracing-subscriber's formatter unchanged.

use std::fmt::{self, Write as _};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::timestamp;

pub(super) struct JsonLine {
    /// tracing-subscriber's formatter, for what is not written here.
    fallback: Format<Json>,
}

impl JsonLine {
    pub(super) fn new() -> Self {
        Self {
            fallback: tracing_subscriber::fmt::format().json().flatten_event(true),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        // The same span lookup as tracing-subscriber's: explicit parent, else the current one.
        let in_span =
            event.parent().and_then(|id| ctx.span(id)).is_some() || ctx.lookup_current().is_some();
        if in_span || !meta.target().starts_with("switchyard") {
            return self.fallback.format_event(ctx, w, event);
        }
        w.write_str("{\"timestamp\":\"")?;
        w.write_str(&timestamp(SystemTime::now()))?;
        w.write_str(match *meta.level() {
            Level::ERROR => "\",\"level\":\"ERROR\"",
            Level::WARN => "\",\"level\":\"WARN\"",
            Level::INFO => "\",\"level\":\"INFO\"",
            Level::DEBUG => "\",\"level\":\"DEBUG\"",
            Level::TRACE => "\",\"level\":\"TRACE\"",
        })?;
        let mut fields = Fields {
            w: &mut w,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        w.write_str(",\"target\":")?;
        string(&mut w, meta.target())?;
        w.write_str("}\n")
    }
}

/// Writes `,"key":value` per field, typed as tracing-serde's `SerdeMapVisitor` types them
/// (the methods not overridden here, `i128`, `u128` and errors, end in `record_debug`: a
/// string, there too).
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn put(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.w.write_str(",\"")?;
                escape(self.w, field.name())?;
                self.w.write_str("\":")?;
                value(self.w)
            })();
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |w| string(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's own float printing (shortest round-trip form, `1.0` not `1`).
        self.put(field, |w| match serde_json::Number::from_f64(value) {
            Some(n) => write!(w, "{n}"),
            None => w.write_str("null"),
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `s` as a JSON string, quotes included.
fn string(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    escape(w, s)?;
    w.write_char('"')
}

/// Bytes serde_json escapes: the controls, `"` and `\\`.
const fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The inside of a JSON string, escaped exactly as serde_json escapes it. Only ASCII bytes are
/// replaced, so every run passed through starts and ends on a character boundary.
fn escape(w: &mut impl fmt::Write, mut s: &str) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    while let Some(at) = s.bytes().position(needs_escape) {
        let (plain, rest) = s.split_at(at);
        w.write_str(plain)?;
        let b = rest.as_bytes().first().copied().unwrap_or_default();
        match b {
            b'"' => w.write_str("\\\"")?,
            b'\\' => w.write_str("\\\\")?,
            b'\n' => w.write_str("\\n")?,
            b'\r' => w.write_str("\\r")?,
            b'\t' => w.write_str("\\t")?,
            0x08 => w.write_str("\\b")?,
            0x0c => w.write_str("\\f")?,
            _ => {
                let hex = [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]];
                w.write_str("\\u00")?;
                w.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)?;
            }
        }
        s = rest.get(1..).unwrap_or_default();
    }
    w.write_str(s)
}

/// A `fmt::Write` that escapes what passes through it (for `Debug` and `Display` fields).
struct Escaped<'a, W>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(self.0, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Batch;
    use serde_json::{Value, json};
    use tracing::level_filters::LevelFilter;

    /// `emit` rendered by tracing-subscriber's JSON formatter (what `--log-format json` wrote
    /// before [`JsonLine`]) and by [`JsonLine`]: `(old, new)`.
    fn both(emit: impl Fn()) -> (String, String) {
        let old = Batch::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(LevelFilter::TRACE)
            .with_writer(old.clone())
            .json()
            .flatten_event(true)
            .finish();
        tracing::subscriber::with_default(subscriber, &emit);
        let new = Batch::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(LevelFilter::TRACE)
            .with_writer(new.clone())
            .json()
            .event_format(JsonLine::new())
            .finish();
        tracing::subscriber::with_default(subscriber, &emit);
        let text = |b: Batch| String::from_utf8(b.take()).unwrap();
        (text(old), text(new))
    }

    /// The lines without their timestamps (the two renderings ran at different instants),
    /// after checking the timestamp's shape.
    fn untimed(lines: &str) -> Vec<&str> {
        (lines.lines())
            .map(|l| {
                let rest = l.strip_prefix("{\"timestamp\":\"").unwrap();
                let (stamp, rest) = rest.split_at(27);
                assert!(stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T', "{l}");
                rest
            })
            .collect()
    }

    /// `emit`'s lines are byte-identical both ways (timestamps aside) and parse: the new ones.
    fn same(emit: impl Fn()) -> Vec<Value> {
        let (old, new) = both(emit);
        assert!(!new.is_empty() && new.ends_with('\n'), "{new:?}");
        assert_eq!(untimed(&new), untimed(&old), "\nnew: {new}old: {old}");
        (new.lines())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    const HOSTILE: &str = "a\"b\\c\nd\re\tf\u{0}g\u{1}h\u{8}i\u{c}j\u{1f}k\u{7f}l/é🦀\u{2028}";

    #[test]
    fn the_access_line_is_what_tracing_subscriber_wrote() {
        let lines = same(|| {
            for ttft in [Some(0.412), None] {
                tracing::info!(
                    target: "switchyard::access",
                    request_id = "req-\"quoted\"\\x",
                    route = HOSTILE,
                    instance = "up:m",
                    attempts = 2u32,
                    status = 200u16,
                    latency_ms = 46.867,
                    stream = true,
                    ttft_ms = ttft,
                    prompt_tokens = 12u64,
                    completion_tokens = 0u64,
                    outcome = "ok",
                    "request"
                );
            }
        });
        let expected = json!({
            "level": "INFO", "message": "request", "request_id": "req-\"quoted\"\\x",
            "route": HOSTILE, "instance": "up:m", "attempts": 2, "status": 200,
            "latency_ms": 46.867, "stream": true, "ttft_ms": 0.412, "prompt_tokens": 12,
            "completion_tokens": 0, "outcome": "ok", "target": "switchyard::access",
        });
        let mut first = lines[0].clone();
        assert!(first.as_object_mut().unwrap().remove("timestamp").is_some());
        assert_eq!(first, expected);
        // A missing optional field is left out, not null.
        assert!(lines[1].get("ttft_ms").is_none(), "{}", lines[1]);
    }

    #[test]
    fn display_and_debug_fields_and_messages_are_escaped_strings() {
        struct Hostile;
        impl fmt::Display for Hostile {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // In pieces, so escaping spans several writes.
                f.write_str("no route \"x\n")?;
                f.write_str("\u{0}🦀\"")?;
                write!(f, " ({})", HOSTILE)
            }
        }
        let lines = same(|| {
            let e = Hostile;
            tracing::info!(target: "switchyard::access", request_id = "r1", op = "chat", status = 404u16, error = %e, "request rejected");
            tracing::warn!(target: "switchyard::access", request_id = %"r\"2", class = "timeout", outcome = "failed", "request");
            tracing::warn!(list = ?vec!["a\"", "\u{1b}[0m"], option = ?Some(HOSTILE), "stream failed after it started: {}", e);
            tracing::error!(
                err = &std::io::Error::other("disk\nfull") as &dyn std::error::Error,
                ""
            );
        });
        assert_eq!(lines[0]["error"], format!("{}", Hostile));
        assert_eq!(lines[1]["request_id"], "r\"2");
        assert_eq!(lines[2]["target"], "switchyard::telemetry::json::tests");
        assert_eq!(
            lines[2]["message"],
            format!("stream failed after it started: {}", Hostile)
        );
        assert_eq!(lines[3]["err"], "disk\nfull");
    }

    #[test]
    fn numbers_are_printed_as_serde_json_prints_them() {
        let lines = same(|| {
            tracing::debug!(
                a = 46.867,
                b = 3.0,
                c = 0.001,
                d = 1e-7,
                e = 1e21,
                f = -0.0,
                g = f64::NAN,
                h = f64::INFINITY,
                i = i64::MIN,
                j = u64::MAX,
                k = u128::MAX,
                l = -5i128,
                m = false,
                n = 1.0f32,
                "n"
            );
            tracing::trace!("");
        });
        let v = &lines[0];
        assert_eq!(v["a"], 46.867);
        assert_eq!(v["g"], Value::Null);
        assert_eq!(v["h"], Value::Null);
        assert_eq!(v["j"], u64::MAX);
        assert_eq!(v["k"], u128::MAX.to_string(), "u128 is a string, as before");
        assert_eq!(lines[1]["level"], "TRACE");
    }

    #[test]
    fn other_crates_events_and_events_in_spans_go_through_tracing_subscriber() {
        let lines = same(|| {
            tracing::info!(target: "hyper::proto", x = 1u8, "other crate");
            let span = tracing::info_span!("outer", route = "r\"1", n = 3u8);
            span.in_scope(
                || tracing::info!(target: "switchyard::access", status = 200u16, "request"),
            );
            tracing::info!(target: "switchyard::access", parent: &span, status = 201u16, "request");
        });
        assert_eq!(lines[0]["target"], "hyper::proto");
        for line in &lines[1..] {
            assert_eq!(line["span"]["route"], "r\"1", "{line}");
        }
        // (tracing-subscriber lists only the entered spans: none for an explicit parent.)
        assert_eq!(lines[1]["spans"][0]["name"], "outer");
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        let cases = [
            "",
            "plain ascii",
            HOSTILE,
            "\"",
            "\\",
            "\u{0}",
            "\u{1f}",
            "\u{7f}",
            "trailing\n",
            "\nleading",
            "🦀",
            "ünïcødé 中文 \u{10ffff}",
        ];
        for s in cases {
            let mut out = String::new();
            string(&mut out, s).unwrap();
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        }
        let mut out = String::new();
        string(&mut out, "q\"b\\n\nt\tz\u{0}u\u{1b}").unwrap();
        assert_eq!(out, r#""q\"b\\n\nt\tz\u0000u\u001b""#);
        let all: String = (0u8..0x20).map(char::from).collect();
        let mut out = String::new();
        string(&mut out, &all).unwrap();
        assert_eq!(out, serde_json::to_string(&all).unwrap());
    }
}
