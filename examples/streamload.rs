//! Streaming load generator for `bench/run.sh`: the part of the benchmark that oha and wrk
//! cannot measure, because they time whole responses, not the chunks inside one.
//!
//! - `latency`: C keep-alive connections, each sending streaming chat requests back to back
//!   for a while. Per request: the time to the first content chunk. Per chunk: how long it
//!   took from the mock writing it (its `"sent_us"` stamp, `switchyard mock --stamp-chunks`)
//!   to this process reading it. Run it once against the mock and once through the gateway:
//!   the difference is what the gateway adds.
//! - `hold`: N streams open at the same time (all connections made first, then every request
//!   sent at once), each read to `[DONE]`: lost chunks, stalls (a gap between two chunks over
//!   `--stall-ms`), the most streams open at once, and the peak RSS of `--pid` while they ran.
//!
//! Prints one JSON object on stdout. Only talks to the address it is given (loopback in the
//! benchmark). Build: `cargo build --release --example streamload`.

#![allow(
    clippy::print_stdout,
    reason = "a command-line tool: its report goes to stdout"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

#[derive(Parser)]
struct Cli {
    /// Where to send (`host:port`; loopback).
    #[arg(long, global = true, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// The `model` of each request.
    #[arg(long, global = true, default_value = "bench")]
    model: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Back-to-back streams on C connections: time to first chunk and per-chunk latency.
    Latency {
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Seconds measured.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Seconds of unmeasured traffic first.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
    },
    /// N streams open at once, each read to the end.
    Hold {
        #[arg(long)]
        streams: usize,
        /// Content chunks each stream must deliver (the mock's `--stream-chunks`).
        #[arg(long)]
        chunks: u32,
        /// A gap between two chunks of one stream longer than this is a stall.
        #[arg(long, default_value_t = 1000)]
        stall_ms: u64,
        /// Sample this process's RSS (the gateway) while the streams run.
        #[arg(long)]
        pid: Option<u32>,
        /// Connections being made at the same time while opening.
        #[arg(long, default_value_t = 256)]
        connect_parallel: usize,
        /// Give up on the whole run after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout_s: u64,
    },
}

type Sender = SendRequest<Full<Bytes>>;

#[tokio::main]
async fn main() -> Result<(), String> {
    let cli = Cli::parse();
    let body = Bytes::from(
        json!({
            "model": cli.model,
            "stream": true,
            "messages": [{"role": "user", "content": "hello"}],
        })
        .to_string(),
    );
    let target = Target {
        addr: cli.addr,
        body,
    };
    let report = match cli.mode {
        Mode::Latency {
            concurrency,
            duration,
            warmup,
        } => latency(&target, concurrency, secs(warmup)?, secs(duration)?).await?,
        Mode::Hold {
            streams,
            chunks,
            stall_ms,
            pid,
            connect_parallel,
            timeout_s,
        } => {
            let hold = Hold {
                streams,
                chunks,
                stall: Duration::from_millis(stall_ms),
                pid,
                connect_parallel: connect_parallel.max(1),
            };
            tokio::time::timeout(Duration::from_secs(timeout_s), hold.run(&target))
                .await
                .map_err(|_| format!("hold: not done after {timeout_s} s"))??
        }
    };
    println!("{report}");
    Ok(())
}

fn secs(s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|e| format!("{s} s: {e}"))
}

struct Target {
    addr: SocketAddr,
    body: Bytes,
}

impl Target {
    async fn connect(&self) -> Result<Sender, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(send)
    }

    /// One streaming request on `send`, read to its end; `on_chunk` gets each content
    /// chunk's arrival instant and its `sent_us` stamp (if any).
    async fn stream(
        &self,
        send: &mut Sender,
        mut on_chunk: impl FnMut(Instant, Option<u64>),
    ) -> Result<Outcome, String> {
        let request = http::Request::post("/v1/chat/completions")
            .header(http::header::HOST, self.addr.to_string())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(self.body.clone()))
            .map_err(|e| e.to_string())?;
        send.ready().await.map_err(|e| format!("connection: {e}"))?;
        let response = send
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let text = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(format!("{status}: {}", String::from_utf8_lossy(&text)));
        }
        let mut pending: Vec<u8> = Vec::new();
        let mut outcome = Outcome::default();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("body: {e}"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let now = Instant::now();
            pending.extend_from_slice(&data);
            let mut start = 0;
            while let Some(end) = find(&pending[start..], b"\n\n") {
                let event = &pending[start..start + end];
                start += end + 2;
                if event == b"data: [DONE]" {
                    outcome.done = true;
                } else if let Some(stamp) = stamp(event) {
                    outcome.chunks += 1;
                    on_chunk(now, Some(stamp));
                } else if is_content(event) {
                    outcome.chunks += 1;
                    on_chunk(now, None);
                }
            }
            pending.drain(..start);
        }
        Ok(outcome)
    }
}

#[derive(Default)]
struct Outcome {
    chunks: u32,
    done: bool,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `"sent_us":N` stamp of a content chunk.
fn stamp(event: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"sent_us\":";
    let at = find(event, KEY)? + KEY.len();
    let digits = event[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&event[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// A chunk with text in it (the role and finish chunks have none).
fn is_content(event: &[u8]) -> bool {
    find(event, b"\"content\":\"").is_some_and(|at| event.get(at + 11) != Some(&b'"'))
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// p50, p99 and max of `v` (sorted here).
fn percentiles(v: &mut [u64]) -> serde_json::Value {
    v.sort_unstable();
    let at = |q: f64| {
        if v.is_empty() {
            return 0;
        }
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    };
    json!({ "n": v.len(), "p50": at(0.5), "p99": at(0.99), "max": v.last().copied().unwrap_or(0) })
}

async fn latency(
    target: &Target,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<serde_json::Value, String> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let workers = (0..concurrency.max(1)).map(|_| async {
        let mut send = target.connect().await?;
        let (mut ttfc, mut chunk_us, mut errors) = (Vec::new(), Vec::new(), 0u64);
        while Instant::now() < end {
            let sent = Instant::now();
            let mut first = None;
            let result = target
                .stream(&mut send, |at, stamp| {
                    first.get_or_insert(at);
                    if let Some(stamp) = stamp {
                        chunk_us.push(unix_micros().saturating_sub(stamp));
                    }
                })
                .await;
            let measured = sent >= measure_from;
            if !measured {
                chunk_us.clear();
            }
            match (result, first) {
                (Ok(outcome), Some(first)) if outcome.done => {
                    if measured {
                        ttfc.push(u64::try_from((first - sent).as_micros()).unwrap_or(u64::MAX));
                    }
                }
                (Ok(_), _) | (Err(_), _) => {
                    errors += u64::from(measured);
                    send = target.connect().await?;
                }
            }
        }
        Ok::<_, String>((ttfc, chunk_us, errors))
    });
    let results = futures_util::future::join_all(workers).await;
    let (mut ttfc, mut chunk_us, mut errors) = (Vec::new(), Vec::new(), 0);
    for result in results {
        let (t, c, e) = result?;
        ttfc.extend(t);
        chunk_us.extend(c);
        errors += e;
    }
    let requests = ttfc.len() as u64;
    Ok(json!({
        "mode": "latency",
        "concurrency": concurrency,
        "seconds": duration.as_secs_f64(),
        "streams": requests,
        "errors": errors,
        "streams_per_s": requests as f64 / duration.as_secs_f64(),
        "ttfc_us": percentiles(&mut ttfc),
        "chunk_us": percentiles(&mut chunk_us),
    }))
}

struct Hold {
    streams: usize,
    chunks: u32,
    stall: Duration,
    pid: Option<u32>,
    connect_parallel: usize,
}

impl Hold {
    async fn run(&self, target: &Target) -> Result<serde_json::Value, String> {
        let rss_before = self.pid.and_then(rss_kib).unwrap_or(0);
        let opened = Instant::now();
        let senders: Vec<Result<Sender, String>> = futures_util::stream::iter(0..self.streams)
            .map(|_| target.connect())
            .buffer_unordered(self.connect_parallel)
            .collect()
            .await;
        let mut connect_errors = 0;
        let mut senders: Vec<Sender> = senders
            .into_iter()
            .filter_map(|s| s.map_err(|_| connect_errors += 1).ok())
            .collect();
        let connect_s = opened.elapsed().as_secs_f64();

        let open = Arc::new(AtomicUsize::new(0));
        let max_open = Arc::new(AtomicUsize::new(0));
        let peak_rss = Arc::new(AtomicU64::new(rss_before));
        let sampler = self.pid.map(|pid| {
            let peak = Arc::clone(&peak_rss);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                loop {
                    tick.tick().await;
                    if let Some(kib) = rss_kib(pid) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                }
            })
        });

        let started = Instant::now();
        let runs = senders.iter_mut().map(|send| {
            let (open, max_open) = (Arc::clone(&open), Arc::clone(&max_open));
            async move {
                let mut last: Option<Instant> = None;
                let mut max_gap = Duration::ZERO;
                let mut counted = false;
                let result = target
                    .stream(send, |at, _| {
                        if !counted {
                            counted = true;
                            let now_open = open.fetch_add(1, Ordering::Relaxed) + 1;
                            max_open.fetch_max(now_open, Ordering::Relaxed);
                        }
                        if let Some(last) = last {
                            max_gap = max_gap.max(at - last);
                        }
                        last = Some(at);
                    })
                    .await;
                if counted {
                    open.fetch_sub(1, Ordering::Relaxed);
                }
                (result, max_gap)
            }
        });
        let results = futures_util::future::join_all(runs).await;
        let elapsed = started.elapsed().as_secs_f64();
        if let Some(sampler) = sampler {
            sampler.abort();
        }

        let (mut complete, mut failed, mut lost, mut stalls) = (0u64, 0u64, 0u64, 0u64);
        let mut gaps_ms = Vec::with_capacity(results.len());
        let mut first_error = None;
        for (result, max_gap) in results {
            gaps_ms.push(u64::try_from(max_gap.as_millis()).unwrap_or(u64::MAX));
            stalls += u64::from(max_gap > self.stall);
            match result {
                Ok(o) if o.done && o.chunks == self.chunks => complete += 1,
                Ok(o) => {
                    failed += 1;
                    lost += u64::from(self.chunks.saturating_sub(o.chunks));
                }
                Err(e) => {
                    failed += 1;
                    lost += u64::from(self.chunks);
                    first_error.get_or_insert(e);
                }
            }
        }
        let peak = peak_rss.load(Ordering::Relaxed);
        Ok(json!({
            "mode": "hold",
            "streams": self.streams,
            "connect_errors": connect_errors,
            "connect_s": connect_s,
            "complete": complete,
            "failed": failed,
            "lost_chunks": lost,
            "stalls": stalls,
            "stall_ms": self.stall.as_millis() as u64,
            "max_gap_ms": percentiles(&mut gaps_ms),
            "max_open": max_open.load(Ordering::Relaxed),
            "seconds": elapsed,
            "rss_before_kib": rss_before,
            "rss_peak_kib": peak,
            "first_error": first_error,
        }))
    }
}

/// Resident set size of `pid` in KiB, from `/proc/PID/status`.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
