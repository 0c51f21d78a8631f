//! The `switchyard` command: `serve`, `validate`, `mock`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use switchyard::config::{
    CapturedSource, Config, DEMO, DirSource, EmbeddedSource, LastGood, Source,
};
use switchyard::gateway::Gateway;
use switchyard::mock::{self, MockArgs};
use switchyard::telemetry::{self, LogFormat};

/// mimalloc: the request path allocates small short-lived buffers; glibc's malloc spent ~10 %
/// of gateway CPU under load (perf, bench/overhead.sh at c=64). Built with `no_thp`: with
/// transparent huge pages mimalloc's eagerly committed arenas were backed by 2 MiB pages, which
/// doubled idle RSS (20 → 11 MiB) and added 25 MiB at 1,000 open streams (bench/run.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "An OpenAI-compatible LLM gateway"
)]
struct Cli {
    /// Log format on stderr [default: `[global.logging] format`, else text].
    #[arg(long, global = true, value_enum, env = "SWITCHYARD_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Log level or filter (`info`, `debug`, `switchyard=debug`); RUST_LOG overrides it
    /// [default: `[global.logging] level`, else info].
    #[arg(long, global = true, env = "SWITCHYARD_LOG")]
    log_level: Option<String>,
    /// Threads serving requests, each with its own runtime and listener (default: one per CPU).
    #[arg(long, global = true, env = "SWITCHYARD_WORKERS")]
    workers: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Without --config it serves the bundled demo (mock upstreams, no keys).
    Serve {
        /// Config directory holding _registry.toml.
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on; overrides [server] listen (port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Seconds to let in-flight requests finish after SIGINT/SIGTERM.
        #[arg(long, default_value_t = 30)]
        drain_seconds: u64,
        /// Where the last-good config snapshot is kept (`[global] cache_enabled`); default
        /// `$XDG_STATE_HOME/switchyard` or `~/.local/state/switchyard`.
        #[arg(long, env = "SWITCHYARD_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Check a config directory and print every problem as `file:key: reason`.
    Validate {
        #[arg(long)]
        config: PathBuf,
        /// `text` (one `file:key: reason` per line) or `json` (one object on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: ValidateFormat,
        /// Also print every routing name's plan: its steps in order and why each is there.
        #[arg(long)]
        graph: bool,
    },
    /// Run a mock upstream speaking the OpenAI, Anthropic Messages and Gemini APIs.
    Mock(MockArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = Log {
        format: cli.log_format,
        level: cli.log_level.clone(),
    };
    // The main runtime runs `mock`, `validate`, signals and the in-process mocks; `serve`
    // handles requests on its own worker threads (`server::serve_workers`).
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.workers {
        builder.worker_threads(n.max(1));
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli.command, cli.workers, log))
}

/// The log settings given on the command line (or by environment variable); `serve` fills in
/// the rest from `[global.logging]`.
struct Log {
    format: Option<LogFormat>,
    level: Option<String>,
}

impl Log {
    fn init(&self, config: Option<&Config>) -> telemetry::FlushGuard {
        let spec = config.map(|c| &c.telemetry);
        let json = spec.and_then(|t| t.log_json);
        let format = (self.format)
            .or(json.map(|j| if j { LogFormat::Json } else { LogFormat::Text }))
            .unwrap_or(LogFormat::Text);
        let level = (self.level.as_deref())
            .or(spec.and_then(|t| t.log_level))
            .unwrap_or("info");
        telemetry::init(format, level)
    }
}

async fn run(command: Command, workers: Option<usize>, log: Log) -> ExitCode {
    if !matches!(command, Command::Serve { .. }) {
        let guard = log.init(None);
        if matches!(command, Command::Mock(_)) {
            // A mock behind a gateway with 1,000 clients holds hundreds of connections.
            switchyard::server::raise_open_files_limit();
        }
        let code = run_other(command).await;
        drop(guard);
        return code;
    }
    let Command::Serve {
        config,
        listen,
        drain_seconds,
        state_dir,
    } = command
    else {
        return ExitCode::FAILURE;
    };
    let drain = Duration::from_secs(drain_seconds);
    serve(config, listen, workers, drain, state_dir, log).await
}

async fn run_other(command: Command) -> ExitCode {
    match command {
        Command::Validate {
            config,
            format,
            graph,
        } => validate(&config, format, graph),
        Command::Mock(args) => match mock::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: mock upstream failed: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { .. } => ExitCode::FAILURE,
    }
}

async fn serve(
    dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    workers: Option<usize>,
    drain: Duration,
    state_dir: Option<PathBuf>,
    log: Log,
) -> ExitCode {
    let source: Box<dyn Source> = match &dir {
        Some(dir) => Box::new(DirSource(dir.clone())),
        None => Box::new(EmbeddedSource(&DEMO)),
    };
    let last_good = dir.as_ref().map(|d| {
        let state = state_dir.unwrap_or_else(LastGood::default_state_dir);
        LastGood::new(&state, d)
    });
    // Captured: runtime changes rebuild from the files as they were read now.
    let source = CapturedSource::new(source);
    let loaded = Config::load(&source);
    // Logging starts with the config's [global.logging] when the files load.
    let _log_guard = log.init(loaded.as_ref().ok());
    switchyard::server::raise_open_files_limit();
    let (config, source, failure) = match loaded {
        Ok(config) => (config, source, None),
        Err(e) => match boot_from_last_good(last_good.as_ref(), dir.as_deref()) {
            Some((config, snapshot, saved_at)) => {
                tracing::error!(target: "switchyard::config", error = %e, "the config files do not load; serving the last-good snapshot (use_defaults_on_failure) until they are fixed");
                (config, snapshot, Some((e, saved_at)))
            }
            None => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    for warning in &config.warnings {
        tracing::warn!(%warning, "config");
    }
    let addr = listen.unwrap_or(config.listen);
    let (routes, instances, origin) = (
        config.routes.len(),
        config.instances.len(),
        config.origin.clone(),
    );
    let hot_reload = config.hot_reload;
    let gateway = match Gateway::start(config, source).await {
        Ok(gateway) => gateway,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let (Some((e, saved_at)), Some(lg)) = (&failure, &last_good) {
        gateway.serving_last_good(e, lg.dir(), *saved_at);
    }
    if let Some(lg) = last_good {
        gateway.keep_last_good(lg);
    }
    if let (Some(every), Some(root)) = (hot_reload, gateway.config_root()) {
        tracing::info!(root = %root.display(), every_s = every.as_secs_f64(), "hot reload on");
        let weak = std::sync::Arc::downgrade(&gateway);
        tokio::spawn(switchyard::reload::watch(weak, root, every));
    }
    let workers = workers
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    let listeners = match switchyard::server::bind(addr, workers) {
        Ok(listeners) => listeners,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bound = listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(addr);
    tracing::info!(%bound, %origin, routes, instances, workers, "switchyard started");
    say(&format!(
        "switchyard listening on http://{bound} ({origin}: {routes} routes, {instances} instances)"
    ));
    let served = switchyard::server::serve_workers(
        listeners,
        gateway,
        switchyard::signal::shutdown(),
        drain,
    )
    .await;
    match served {
        Ok(()) => {
            tracing::info!("switchyard stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The last-good snapshot of `dir`, if there is one, it loads, and it allows being used
/// (`use_defaults_on_failure = true`).
fn boot_from_last_good(
    last_good: Option<&LastGood>,
    dir: Option<&std::path::Path>,
) -> Option<(Config, CapturedSource, u64)> {
    let (lg, dir) = (last_good?, dir?);
    let (snapshot, saved_at) = lg.open(Box::new(DirSource(dir.to_owned())))?;
    match Config::load(&snapshot) {
        Ok(config) if config.snapshot.boot_from => Some((config, snapshot, saved_at)),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(target: "switchyard::config", error = %e, "the last-good snapshot does not load either");
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ValidateFormat {
    Text,
    Json,
}

/// `switchyard validate`: every problem at once; exit 1 on any.
fn validate(dir: &std::path::Path, format: ValidateFormat, graph: bool) -> ExitCode {
    let loaded = Config::load_dir(dir);
    let issue = |i: &switchyard::config::Issue| serde_json::json!({ "file": i.file, "key": i.key, "reason": i.reason, "text": i.to_string() });
    let plans = |c: &Config| -> Vec<serde_json::Value> {
        (c.routes.iter())
            .map(|r| {
                let steps: Vec<_> = (r.tiers.iter().zip(&r.steps))
                    .map(|(t, s)| serde_json::json!({ "tier": t.label, "step": s.as_str() }))
                    .collect();
                serde_json::json!({ "route": r.name, "kind": r.kind.as_str(), "plan": steps })
            })
            .collect()
    };
    match (&loaded, format) {
        (Ok(c), ValidateFormat::Json) => {
            let mut out = serde_json::json!({
                "valid": true,
                "origin": c.origin,
                "routes": c.routes.len(),
                "instances": c.instances.len(),
                "warnings": c.warnings.iter().map(issue).collect::<Vec<_>>(),
            });
            if graph {
                out["plans"] = serde_json::Value::Array(plans(c));
            }
            say(&out.to_string());
        }
        (Ok(c), ValidateFormat::Text) => {
            for warning in &c.warnings {
                eprintln!("warning: {warning}");
            }
            if graph {
                for r in &c.routes {
                    let chain: Vec<String> = (r.tiers.iter().zip(&r.steps))
                        .map(|(t, s)| format!("{} ({})", t.label, s.as_str()))
                        .collect();
                    say(&format!(
                        "{} [{}]: {}",
                        r.name,
                        r.kind.as_str(),
                        chain.join(" → ")
                    ));
                }
            }
            say(&format!(
                "config {} is valid: {} routes, {} instances",
                c.origin,
                c.routes.len(),
                c.instances.len()
            ));
        }
        (Err(e), ValidateFormat::Json) => {
            let out = serde_json::json!({
                "valid": false,
                "origin": e.origin,
                "issues": e.issues.iter().map(issue).collect::<Vec<_>>(),
            });
            say(&out.to_string());
        }
        (Err(e), ValidateFormat::Text) => {
            for issue in &e.issues {
                eprintln!("{issue}");
            }
            eprintln!(
                "config {} is invalid: {} problem(s)",
                e.origin,
                e.issues.len()
            );
        }
    }
    if loaded.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One line on stdout (the address line tests and scripts read).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
