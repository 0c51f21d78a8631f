//! The shared SSE parser: arbitrary bytes, split at arbitrary points, must give the same events
//! as the same bytes fed whole (and one byte at a time), and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::provider::sse::{Event, Parser, TooLarge};

fn run<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<Event>, TooLarge> {
    let mut p = Parser::default();
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(p.push(chunk)?);
    }
    out.extend(p.finish());
    // finish() leaves nothing behind.
    assert_eq!(p.finish(), None);
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    // The first bytes say where to cut the rest.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8).min(rest.len());
    let (cuts, text) = rest.split_at(n);
    let whole = run([text]);
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) * text.len() / 256)
        .collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut at = 0;
    for p in points {
        chunks.push(&text[at..p]);
        at = p;
    }
    chunks.push(&text[at..]);
    let split = run(chunks);
    assert_eq!(whole, split, "split at {cuts:?}");
    let bytewise = run(text.chunks(1));
    assert_eq!(whole, bytewise, "one byte at a time");
    if let Ok(events) = whole {
        for e in events {
            assert!(e.data.len() <= switchyard::provider::sse::MAX_EVENT_BYTES);
        }
    }
});
