//! The `switchyard mock` subcommand: its arguments ([`MockArgs`]) and [`run`], which binds,
//! announces `mock listening on http://ADDR/v1` on stdout, and serves until SIGINT/SIGTERM or
//! until the mock dies (`die_after`, `POST /mock/die`). The one server speaks OpenAI
//! (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/models`), Anthropic
//! (`/v1/messages`) and Gemini (`/v1beta/models/{model}:generateContent` and the rest).

use std::io::{self, Write};
use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::behavior::Behavior;
use super::spawn;

/// The endpoint list `switchyard mock --help` ends with.
const ENDPOINTS: &str = "\
Endpoints (every failure mode applies to all API endpoints; errors are in each API's shape):
  OpenAI     POST /v1/chat/completions, /v1/completions, /v1/embeddings; GET /v1/models
  Anthropic  POST /v1/messages (needs anthropic-version; key in x-api-key)
  Gemini     POST /v1beta/models/{model}:generateContent, :streamGenerateContent[?alt=sse],
                  :embedContent, :batchEmbedContents; GET /v1beta/models[/{model}]
  control    GET /mock/stats, GET|PUT /mock/behavior, GET /mock/last, POST /mock/die";

/// Arguments of `switchyard mock`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = ENDPOINTS)]
pub struct MockArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
    /// Instance label echoed in replies and in header x-mock-name.
    #[arg(long, default_value = "mock")]
    pub name: String,
    /// Delay before each response head, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub latency_ms: u64,
    /// Extra uniform random delay 0..=N milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub jitter_ms: u64,
    /// Probability (0..=1) that a request fails with 500.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub fail_rate: f64,
    /// Answer every API request with this status and an error body in its API's shape
    /// (529: Anthropic's overloaded_error).
    #[arg(long, value_name = "CODE", value_parser = clap::value_parser!(u16).range(200..=599))]
    pub status: Option<u16>,
    /// Seconds to send in Retry-After on 429 replies.
    #[arg(long = "retry-after", value_name = "S")]
    pub retry_after: Option<u64>,
    /// Send x-ratelimit-remaining-requests: N (reset 2s) on successful replies
    /// (Anthropic: anthropic-ratelimit-requests-remaining; Gemini: none).
    #[arg(long, value_name = "N")]
    pub ratelimit_remaining: Option<u64>,
    /// Content chunks (tokens) per reply; 0 means 8.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub stream_chunks: u32,
    /// Pace stream chunks at this many per second.
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    pub tokens_per_s: Option<f64>,
    /// Accept requests but never answer.
    #[arg(long)]
    pub hang: bool,
    /// Answer 200 with a body that is not JSON.
    #[arg(long)]
    pub garbage: bool,
    /// Stop serving after this many API requests.
    #[arg(long, value_name = "N")]
    pub die_after: Option<u64>,
    /// Streams: the role chunk (Anthropic: message_start) and N content chunks, then the
    /// connection drops.
    #[arg(long, value_name = "N")]
    pub stream_fail_after: Option<u32>,
    /// Streams: the role chunk and N content chunks, then silence until the mock stops.
    #[arg(long, value_name = "N")]
    pub stream_stall_after: Option<u32>,
    /// Streams: the role chunk, then an error event (Anthropic: event: error), then the end.
    #[arg(long)]
    pub stream_error_event: bool,
    /// OpenAI stream content chunks carry "sent_us", the wall clock in µs when written.
    #[arg(long)]
    pub stamp_chunks: bool,
    /// Seed for the jitter and failure decisions.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not in 0..=1"))
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if r.is_finite() && r > 0.0 {
        Ok(r)
    } else {
        Err(format!("{r} is not a positive number"))
    }
}

impl MockArgs {
    /// The behaviour these arguments ask for.
    pub fn behavior(&self) -> Behavior {
        Behavior {
            name: self.name.clone(),
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            fail_rate: self.fail_rate,
            status: self.status,
            retry_after_s: self.retry_after,
            ratelimit_remaining: self.ratelimit_remaining,
            stream_chunks: self.stream_chunks,
            tokens_per_s: self.tokens_per_s,
            hang: self.hang,
            garbage: self.garbage,
            die_after: self.die_after,
            stream_fail_after: self.stream_fail_after,
            stream_stall_after: self.stream_stall_after,
            stream_error_event: self.stream_error_event,
            stamp_chunks: self.stamp_chunks,
            seed: self.seed,
        }
    }

    /// The address to listen on.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }
}

/// Run `switchyard mock`: bind, print one `mock listening on http://ADDR/v1` line, serve until
/// SIGINT/SIGTERM or until the mock dies. `Ok(())` on a clean exit.
pub async fn run(args: MockArgs) -> io::Result<()> {
    let behavior = args.behavior();
    behavior
        .validate()
        .map_err(|message| io::Error::new(io::ErrorKind::InvalidInput, message))?;
    let listener = TcpListener::bind(args.listen()).await?;
    serve_until_stopped(listener, behavior, io::stdout(), crate::signal::shutdown()).await?;
    Ok(())
}

/// Serve `listener`, announcing it on `out`, until `signal` resolves (drop everything) or the
/// mock dies by itself. Returns `out`.
pub(crate) async fn serve_until_stopped<W: Write>(
    listener: TcpListener,
    behavior: Behavior,
    mut out: W,
    signal: impl Future<Output = ()>,
) -> io::Result<W> {
    let handle = spawn(listener, behavior)?;
    writeln!(out, "mock listening on {}", handle.base_url())?;
    out.flush()?;
    tokio::select! {
        () = signal => {
            tracing::info!("mock: signal received, stopping");
            handle.shared.life.stop_hard();
            handle.stopped().await;
        }
        () = handle.stopped() => {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        mock: MockArgs,
    }

    fn parse(args: &[&str]) -> Result<MockArgs, clap::Error> {
        let argv = std::iter::once("mock").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|cli| cli.mock)
    }

    #[test]
    fn defaults_match_behavior_default() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.listen(), "127.0.0.1:9001".parse().unwrap());
        assert_eq!(args.behavior(), Behavior::default());
    }

    #[test]
    fn every_flag_maps_to_behavior() {
        let args = parse(&[
            "--listen",
            "0.0.0.0:7000",
            "--name",
            "east",
            "--latency-ms",
            "40",
            "--jitter-ms",
            "5",
            "--fail-rate",
            "0.25",
            "--status",
            "429",
            "--retry-after",
            "3",
            "--ratelimit-remaining",
            "7",
            "--stream-chunks",
            "4",
            "--tokens-per-s",
            "5",
            "--hang",
            "--garbage",
            "--die-after",
            "9",
            "--stream-fail-after",
            "2",
            "--stream-stall-after",
            "3",
            "--stream-error-event",
            "--stamp-chunks",
            "--seed",
            "11",
        ])
        .unwrap();
        assert_eq!(args.listen().port(), 7000);
        let want = Behavior {
            name: "east".into(),
            latency_ms: 40,
            jitter_ms: 5,
            fail_rate: 0.25,
            status: Some(429),
            retry_after_s: Some(3),
            ratelimit_remaining: Some(7),
            stream_chunks: 4,
            tokens_per_s: Some(5.0),
            hang: true,
            garbage: true,
            die_after: Some(9),
            stream_fail_after: Some(2),
            stream_stall_after: Some(3),
            stream_error_event: true,
            stamp_chunks: true,
            seed: 11,
        };
        assert_eq!(args.behavior(), want);
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(parse(&["--fail-rate", "2"]).is_err());
        assert!(parse(&["--status", "42"]).is_err());
        assert!(parse(&["--tokens-per-s", "0"]).is_err());
        assert!(parse(&["--listen", "nowhere"]).is_err());
    }

    #[tokio::test]
    async fn announces_and_exits_when_told_to_die() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_until_stopped(
            listener,
            Behavior::default(),
            Vec::new(),
            std::future::pending(),
        ));
        let client = super::super::test_util::client();
        let r = client
            .post(format!("http://{addr}/mock/die"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let out = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let line = String::from_utf8(out).unwrap();
        assert_eq!(line, format!("mock listening on http://{addr}/v1\n"));
    }

    #[tokio::test]
    async fn signal_stops_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let served = serve_until_stopped(listener, Behavior::default(), Vec::new(), async {});
        let out = tokio::time::timeout(Duration::from_secs(10), served)
            .await
            .unwrap();
        assert!(
            out.unwrap()
                .starts_with(b"mock listening on http://127.0.0.1:")
        );
    }
}
