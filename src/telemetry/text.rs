//! The text line, written by hand.

use std::fmt;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::timestamp;

/// The text line: `2026-11-22T04:58:14.373489Z INFO target: message key=value ...`.
///
/// Written by hand because tracing-subscriber's default text format cost ~6 µs per access
/// line (ANSI styling even when off, every field through `Debug`): 13 % of the gateway's CPU
/// per request at concurrency 64.
pub(super) struct Line;

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        w.write_str(&timestamp(SystemTime::now()))?;
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => " ERROR ",
            Level::WARN => " WARN ",
            Level::INFO => " INFO ",
            Level::DEBUG => " DEBUG ",
            Level::TRACE => " TRACE ",
        };
        w.write_str(level)?;
        w.write_str(meta.target())?;
        w.write_str(":")?;
        let mut fields = Fields {
            w: &mut w,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        w.write_char('\n')
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Writes ` message key=value ...`; values are quoted only when they need it.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.w.write_char(' ')?;
        if field.name() != "message" {
            self.w.write_str(field.name())?;
            self.w.write_char('=')?;
        }
        Ok(())
    }

    fn put(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| value(self.w));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let bare = field.name() == "message"
            || (!value.is_empty()
                && !value.contains(|c: char| c.is_whitespace() || c == '"' || c == '='));
        self.put(field, |w| {
            if bare {
                w.write_str(value)
            } else {
                write!(w, "{value:?}")
            }
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Render first (into a reused buffer) so multi-word values get quoted like strings.
        SCRATCH.with(|scratch| {
            let Ok(mut text) = scratch.try_borrow_mut() else {
                self.put(field, |w| write!(w, "{value:?}"));
                return;
            };
            text.clear();
            if fmt::write(&mut *text, format_args!("{value:?}")).is_ok() {
                self.record_str(field, &text);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Batch;

    #[test]
    fn text_lines_carry_level_target_message_and_quoted_values_when_needed() {
        let batch = Batch::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(batch.clone())
            .event_format(Line)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let detail = "connection refused (os error 111)";
            tracing::warn!(target: "switchyard::access", route = "fast", attempts = 3u32, latency_ms = 1.5, ok = false, outcome = "", %detail, "request");
        });
        let line = String::from_utf8(batch.take()).unwrap();
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert_eq!(stamp.len(), 27, "{line}");
        assert_eq!(
            rest,
            "WARN switchyard::access: request route=fast attempts=3 latency_ms=1.5 ok=false outcome=\"\" detail=\"connection refused (os error 111)\"\n"
        );
    }
}
