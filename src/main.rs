//! The `flexiproxy` command: parsing arguments and printing results only; the work happens
//! in the library. `serve` runs the proxy; `check` validates config for CI and deploys;
//! `adapter …`, `user …` and `invite …` manage the files the panel manages too, each change
//! audited as the panel's are (`cli_audit`).

mod cli_audit;
mod cli_inspect;
mod cli_invites;
mod cli_users;

use clap::{Args, Parser, Subcommand};
use flexiproxy::admin::manage::adapter_view;
use flexiproxy::config::adapter::{ApiKey, SourceProtocol};
use flexiproxy::config::edit::{self, CreateSpec};
use flexiproxy::config::keys::{Secret, hash_hex, hash_key};
use flexiproxy::config::server::ServerConfig;
use flexiproxy::config::snapshot::Loader;
use flexiproxy::config::{presets, setup};
use flexiproxy::telemetry::audit::Kind;
use flexiproxy::telemetry::usage::{GroupBy, totals_blocking};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

// A proxy allocates and frees dozens of small buffers per request (headers, bodies, futures);
// mimalloc does that in about half the instructions of glibc's malloc and keeps freed memory
// per thread instead of in glibc's contended arenas (see docs/benchmarks.md). Built without
// transparent huge pages (`no_thp`): with them, 1,000 open streams took 212 MB instead of 78 MB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "flexiproxy",
    version,
    about = "LLM-API translation proxy: Anthropic and OpenAI clients on any provider"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// The server config file.
    #[arg(long, global = true, default_value = "conf/flexiproxy.yaml")]
    config: PathBuf,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// Take the listening sockets over from the running process (zero-downtime upgrade:
        /// start this, then send SIGQUIT to the old process).
        #[arg(long)]
        upgrade: bool,
        /// Detach and run in the background, writing the PID to `pid_file` (for systemd's
        /// Type=forking, which follows the PID file across upgrades). Logs go to `--log-file`.
        #[arg(long)]
        daemon: bool,
        /// Where the process log goes in daemon mode.
        #[arg(
            long,
            default_value = "/var/log/flexiproxy/flexiproxy.log",
            requires = "daemon"
        )]
        log_file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Validate the server config and every adapter file; exit non-zero on any problem.
    Check {
        #[command(flatten)]
        common: Common,
    },
    /// Create, list, rotate keys of, and delete adapters.
    #[command(subcommand)]
    Adapter(AdapterCommand),
    /// Add, change and delete panel users.
    #[command(subcommand)]
    User(cli_users::UserCommand),
    /// Sign-up invitation codes (`accounts.registration: invite`).
    #[command(subcommand)]
    Invite(cli_invites::InviteCommand),
    /// Usage totals from the statistics database (when `stats.enabled`).
    Stats {
        /// How far back (e.g. 1h, 24h, 30d).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        since: Duration,
        /// What to total by.
        #[arg(long, value_enum, default_value = "adapter")]
        by: GroupBy,
        #[command(flatten)]
        common: Common,
    },
    /// The provider presets: base URL, protocol, and each current model's facts (images,
    /// context window, output limit, web search, how reasoning is switched, where and when
    /// they were checked).
    Presets {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AdapterCommand {
    /// Create an adapter and print its new API key (shown once) and client setup.
    ///
    /// The setup printed covers Claude Code (environment and `.claude/settings.json`), Cline,
    /// Codex CLI (`~/.codex/config.toml`), Gemini CLI (two environment variables and
    /// `~/.gemini/settings.json`) and the OpenAI, Anthropic and Google GenAI SDKs: one base
    /// URL for all of them.
    Create {
        name: String,
        /// A known provider: fills in the base URL and provider options.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(presets::names()))]
        provider: Option<String>,
        /// The provider's base URL (OpenAI-compatible, e.g. https://api.deepseek.com/v1).
        #[arg(long)]
        base_url: Option<String>,
        /// The environment variable holding the provider API key (recommended).
        #[arg(long, conflicts_with = "api_key")]
        api_key_env: Option<String>,
        /// The provider API key itself (stored in the adapter file, mode 0600).
        #[arg(long)]
        api_key: Option<String>,
        /// The provider model to use.
        #[arg(long)]
        model: String,
        /// The API the provider speaks when --provider does not say it: `openai` (Chat
        /// Completions), `anthropic` (Messages), `responses` (OpenAI Responses) or `gemini`
        /// (Google's Gemini API, for Gemini clients).
        #[arg(long, value_parser = ["openai", "anthropic", "responses", "gemini"])]
        protocol: Option<String>,
        /// A label for the new client key (e.g. the machine it goes to).
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// List adapters (never shows a secret).
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Show one adapter as the management API does: its source, fallbacks, routes with
    /// their conditions and every provider key's state (never a key itself).
    Show {
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Issue a new key; old keys stop working now, or after --grace.
    Rotate {
        name: String,
        /// Keep old keys working this long (e.g. 1h, 7d).
        #[arg(long, value_parser = humantime::parse_duration)]
        grace: Option<Duration>,
        /// Rotate only the keys with this label.
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Delete an adapter (all its keys stop working).
    Delete {
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Check the adapter's provider (docs/provider-check.md): at most 12 small requests —
    /// authentication, the model, plain and streamed answers, usage in streams, reasoning,
    /// tool calls, structured output, system messages, an image — each with its outcome, its
    /// evidence and the option it implies. Exits non-zero when a check failed.
    Probe {
        name: String,
        /// Check this route's source (its index in `routes:`) instead of the default one.
        #[arg(long)]
        route: Option<usize>,
        /// Write the suggested options into the adapter file (in place, comments kept).
        #[arg(long)]
        apply: bool,
        #[command(flatten)]
        common: Common,
    },
    /// The exchanges a running server keeps for an adapter with `inspect:` (its management
    /// API, with FLEXIPROXY_ADMIN_TOKEN): a line each, or one whole with `--id`.
    Inspect {
        name: String,
        /// Print this exchange whole (JSON, secrets masked).
        #[arg(long)]
        id: Option<u64>,
        /// Keep printing new exchanges as they are kept.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        common: Common,
    },
}

fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use tracing_subscriber::filter::LevelFilter;
    let max_level = filter.max_level_hint();
    // Pingora's debug and trace logs print raw request headers — provider keys among them —
    // so they are never emitted, whatever RUST_LOG asks for.
    let no_pingora_debug = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target().starts_with("pingora") && *meta.level() > tracing::Level::INFO)
    });
    use std::io::IsTerminal;
    // Colours only for a terminal; JSON lines when FLEXIPROXY_LOG_FORMAT=json (log shippers).
    let json = std::env::var("FLEXIPROXY_LOG_FORMAT").is_ok_and(|v| v == "json");
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let layer = if json {
        layer
            .json()
            .with_filter(filter)
            .with_filter(no_pingora_debug)
            .boxed()
    } else {
        layer
            .with_filter(filter)
            .with_filter(no_pingora_debug)
            .boxed()
    };
    tracing_subscriber::registry().with(layer).init();
    // The `log` bridge otherwise lets every `log` call through to the subscriber's filters,
    // and `log` evaluates a call's arguments first: Pingora's trace! calls format each body
    // chunk (`from_utf8_lossy`), which took half the CPU of a streaming proxy (perf).
    log::set_max_level(match max_level {
        Some(l) if l == LevelFilter::OFF => log::LevelFilter::Off,
        Some(l) if l == LevelFilter::ERROR => log::LevelFilter::Error,
        Some(l) if l == LevelFilter::WARN => log::LevelFilter::Warn,
        Some(l) if l == LevelFilter::INFO => log::LevelFilter::Info,
        Some(l) if l == LevelFilter::DEBUG => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    });
}

fn load(path: &Path) -> Result<ServerConfig, String> {
    ServerConfig::load(path).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Serve {
            upgrade,
            daemon,
            log_file,
            common,
        } => serve(
            &common.config,
            upgrade,
            daemon.then_some(log_file.as_path()),
        ),
        Command::Check { common } => check(&common),
        Command::Adapter(cmd) => adapter(cmd),
        Command::User(cmd) => cli_users::run(cmd).map(|()| ExitCode::SUCCESS),
        Command::Invite(cmd) => cli_invites::run(cmd).map(|()| ExitCode::SUCCESS),
        Command::Stats { since, by, common } => stats(since, by, &common),
        Command::Presets { json } => {
            print_presets(json);
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_presets(as_json: bool) {
    let tokens = |n: Option<u32>| match n {
        Some(n) if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        Some(n) if n >= 1000 => format!("{}K", n / 1000),
        Some(n) => n.to_string(),
        None => "?".to_owned(),
    };
    let yes_no = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    };
    if as_json {
        let list: Vec<serde_json::Value> = presets::all()
            .iter()
            .map(|p| {
                let models: Vec<serde_json::Value> = p
                    .models
                    .iter()
                    .map(|m| {
                        json!({"id": m.id, "images": m.images, "context": m.context,
                               "max_output": m.max_output, "web_search": m.web_search,
                               "reasoning": m.reasoning, "verified": m.verified,
                               "source": m.source})
                    })
                    .collect();
                json!({"name": p.name, "protocol": p.protocol.name(), "base_url": p.base_url,
                       "example_model": p.example_model, "text_only": p.text_only,
                       "models": models})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return;
    }
    for p in presets::all() {
        println!("{} ({}, {})", p.name, p.protocol.name(), p.base_url);
        for m in p.models {
            println!(
                "  {:<34} images {:<3}  context {:<5} output {:<5} web search {:<3}  verified {}",
                m.id,
                yes_no(m.images),
                tokens(m.context),
                tokens(m.max_output),
                yes_no(m.web_search),
                m.verified
            );
            println!("  {:<34} reasoning: {}", "", m.reasoning);
            if !m.source.is_empty() {
                println!("  {:<34} source: {}", "", m.source);
            }
        }
    }
    println!("(? = unverified: no provider page says so)");
}

fn serve(path: &Path, upgrade: bool, daemon_log: Option<&Path>) -> Result<ExitCode, String> {
    let config = load(path)?;
    if let Some(log) = daemon_log {
        // Before any thread exists: a fork keeps only the calling thread.
        daemonize(&config, log)?;
    }
    init_logging();
    // After daemonizing: a fork keeps only the calling thread.
    flexiproxy::memory::start_purging();
    let app = flexiproxy::server::build_with(&config, upgrade).map_err(|e| e.to_string())?;
    tracing::info!(
        listeners = ?config.listeners.iter().map(|l| l.address.to_string()).collect::<Vec<_>>(),
        base_url = %config.public_base_url,
        "flexiproxy starting"
    );
    flexiproxy::server::run(app);
    Ok(ExitCode::SUCCESS)
}

fn daemonize(config: &ServerConfig, log: &Path) -> Result<(), String> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))
    };
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    daemonize::Daemonize::new()
        .working_directory(cwd)
        .stdout(open()?)
        .stderr(open()?)
        .start()
        .map_err(|e| format!("cannot start as a daemon: {e}"))?;
    // Written (not locked) by us: during an upgrade the new process takes the file over
    // while the old one is still running.
    let tmp = config.pid_file.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, &config.pid_file))
        .map_err(|e| format!("cannot write {}: {e}", config.pid_file.display()))
}

fn stats(since: Duration, by: GroupBy, common: &Common) -> Result<ExitCode, String> {
    let config = load(&common.config)?;
    let Some(stats) = &config.stats else {
        return Err(format!(
            "usage statistics are off: set `stats: {{enabled: true}}` in {}",
            common.config.display()
        ));
    };
    if stats.postgres_url.is_none() && !stats.path.exists() {
        return Err(format!(
            "no statistics yet: {} does not exist",
            stats.path.display()
        ));
    }
    let rows = totals_blocking(stats, since, by)?;
    if common.json {
        println!(
            "{}",
            json!({"since_seconds": since.as_secs(), "by": by, "currency": config.prices.currency,
                   "totals": rows})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:>9} {:>7} {:>14} {:>14} {:>12} {:>10} {:>14}",
        "GROUP",
        "REQUESTS",
        "ERRORS",
        "INPUT_TOKENS",
        "OUTPUT_TOKENS",
        "CACHE_READ",
        "AVG_MS",
        format!("COST_{}", config.prices.currency)
    );
    for r in &rows {
        println!(
            "{:<40} {:>9} {:>7} {:>14} {:>14} {:>12} {:>10.0} {:>14}{}",
            r.group,
            r.requests,
            r.errors,
            r.input_tokens,
            r.output_tokens,
            r.cache_read_tokens,
            r.avg_duration_ms,
            cost_text(r.cost, r.unpriced),
            if r.estimated > 0 {
                format!("  ({} estimated)", r.estimated)
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `0.0123`, `unknown` when nothing was priced, `0.0123+?` when some requests were not.
fn cost_text(cost: Option<f64>, unpriced: u64) -> String {
    match (cost, unpriced) {
        (None, _) => "unknown".into(),
        (Some(c), 0) => format!("{c:.4}"),
        (Some(c), _) => format!("{c:.4}+?"),
    }
}

fn check(common: &Common) -> Result<ExitCode, String> {
    let config = load(&common.config)?;
    let mut loader = Loader::for_server(&config);
    let report = loader.reload();
    let n = report.snapshot.adapters.len();
    if common.json {
        let errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
        println!(
            "{}",
            json!({"ok": errors.is_empty(), "adapters": n, "errors": errors})
        );
    } else {
        for e in &report.errors {
            eprintln!("{e}");
        }
    }
    if report.errors.is_empty() {
        if !common.json {
            println!(
                "ok: {} and {n} adapter(s) are valid",
                common.config.display()
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        if !common.json {
            eprintln!("{} problem(s) found", report.errors.len());
        }
        Ok(ExitCode::FAILURE)
    }
}

fn adapter(cmd: AdapterCommand) -> Result<ExitCode, String> {
    match cmd {
        AdapterCommand::Create {
            name,
            provider,
            base_url,
            api_key_env,
            api_key,
            model,
            protocol,
            label,
            common,
        } => {
            let config = load(&common.config)?;
            let spec = CreateSpec {
                name: name.clone(),
                provider,
                base_url,
                api_key_env,
                api_key,
                model,
                label,
                protocol: protocol.as_deref().and_then(SourceProtocol::parse),
                ..CreateSpec::default()
            };
            let created = edit::create(&config, &spec).map_err(|e| e.to_string())?;
            let detail = format!("owner= key={}", key_id(&created.key));
            cli_audit::record(&config, Kind::AdapterCreate, &name, detail);
            print_setup(
                &config,
                &name,
                &created.file,
                created.key.expose(),
                created.protocol,
                common.json,
                true,
            );
            Ok(ExitCode::SUCCESS)
        }
        AdapterCommand::List { common } => {
            let config = load(&common.config)?;
            let mut loader = Loader::for_server(&config);
            let report = loader.reload();
            let rows: Vec<serde_json::Value> = report
                .snapshot
                .adapters
                .iter()
                .map(|a| {
                    let status = match &a.source.api_key {
                        ApiKey::Present(_) => "ok".to_owned(),
                        ApiKey::MissingEnv(var) => format!("{var} not set"),
                    };
                    json!({
                        "name": a.name,
                        "file": a.file.display().to_string(),
                        "protocol": a.source.protocol.name(),
                        "source_host": a.source.endpoint.host_header(),
                        "model": a.source.model,
                        "keys": a.keys.len(),
                        "status": status,
                    })
                })
                .collect();
            let errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
            if common.json {
                println!(
                    "{}",
                    json!({"adapters": rows, "errors": errors, "max_adapters": config.max_adapters})
                );
            } else {
                println!(
                    "{:<20} {:<10} {:<36} {:<28} {:>4}  STATUS",
                    "NAME", "PROTOCOL", "SOURCE", "MODEL", "KEYS"
                );
                for r in &rows {
                    println!(
                        "{:<20} {:<10} {:<36} {:<28} {:>4}  {}",
                        r["name"].as_str().unwrap_or_default(),
                        r["protocol"].as_str().unwrap_or_default(),
                        r["source_host"].as_str().unwrap_or_default(),
                        r["model"].as_str().unwrap_or_default(),
                        r["keys"],
                        r["status"].as_str().unwrap_or_default()
                    );
                }
                if let Some(max) = config.max_adapters {
                    println!("{} of at most {max} adapters", rows.len());
                }
                for e in &errors {
                    eprintln!("problem: {e}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AdapterCommand::Show { name, common } => show(&name, &common),
        AdapterCommand::Probe {
            name,
            route,
            apply,
            common,
        } => probe(&name, route, apply, &common),
        AdapterCommand::Inspect {
            name,
            id,
            follow,
            common,
        } => {
            let config = load(&common.config)?;
            let what = cli_inspect::Inspect {
                name: &name,
                id,
                follow,
                json: common.json,
            };
            cli_inspect::run(&config, what).map(|()| ExitCode::SUCCESS)
        }
        AdapterCommand::Rotate {
            name,
            grace,
            label,
            common,
        } => {
            let config = load(&common.config)?;
            let (file, key) =
                edit::rotate(&config, &name, grace, label.as_deref()).map_err(|e| e.to_string())?;
            let grace_text =
                grace.map_or("none".into(), |g| humantime::format_duration(g).to_string());
            let detail = format!("new_key={} grace={grace_text}", key_id(&key));
            cli_audit::record(&config, Kind::KeyRotate, &name, detail);
            let protocol = Loader::for_server(&config)
                .reload()
                .snapshot
                .adapter(&name)
                .map_or(SourceProtocol::OpenAi, |a| a.source.protocol);
            if !common.json {
                match grace {
                    Some(g) => println!(
                        "Old key(s) of `{name}` keep working for {}.",
                        humantime::format_duration(g)
                    ),
                    None => println!("Old key(s) of `{name}` no longer work."),
                }
            }
            print_setup(
                &config,
                &name,
                &file,
                key.expose(),
                protocol,
                common.json,
                false,
            );
            Ok(ExitCode::SUCCESS)
        }
        AdapterCommand::Delete { name, common } => {
            let config = load(&common.config)?;
            let owner = edit::entry(&config, &name).ok().and_then(|e| e.owner);
            let file = edit::delete(&config, &name).map_err(|e| e.to_string())?;
            let detail = format!("owner={}", owner.unwrap_or_default());
            cli_audit::record(&config, Kind::AdapterDelete, &name, detail);
            if common.json {
                println!(
                    "{}",
                    json!({"deleted": name, "file": file.display().to_string()})
                );
            } else {
                println!(
                    "Deleted adapter `{name}` ({}); its keys no longer work.",
                    file.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `adapter probe`: the provider check of the adapter's source (or a route's), and with
/// `--apply` its suggested options written into the file through the locked editor.
fn probe(
    name: &str,
    route: Option<usize>,
    apply: bool,
    common: &Common,
) -> Result<ExitCode, String> {
    use flexiproxy::config::edit::options::{self, OptionsAt};
    let config = load(&common.config)?;
    let entry = edit::entry(&config, name).map_err(|e| e.to_string())?;
    let report = Loader::for_server(&config).reload();
    let Some(adapter) = report.snapshot.adapter(name) else {
        let why = report
            .errors
            .iter()
            .find(|e| e.file == entry.path)
            .map_or_else(|| "it did not load".to_owned(), |e| e.to_string());
        return Err(format!("adapter `{name}` does not load: {why}"));
    };
    let (source, at) = match route {
        None => (&adapter.source, OptionsAt::Source),
        Some(i) => match adapter.routes.get(i) {
            Some(r) => (&r.source, OptionsAt::Route(i)),
            None => {
                return Err(format!(
                    "adapter `{name}` has no route {i} (it has {})",
                    adapter.routes.len()
                ));
            }
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let result = runtime.block_on(flexiproxy::admin::probe::run_check(source, None));
    let suggested = &result.suggested_options;
    let applied = if apply && !suggested.is_empty() {
        let edit = options::set_options(&config, name, at, suggested, Some(&entry.version))
            .map_err(|e| e.to_string())?;
        let detail = options::audit_detail(at, suggested);
        cli_audit::record(&config, Kind::AdapterChange, name, detail);
        Some(edit)
    } else {
        None
    };
    if common.json {
        println!("{}", serde_json::to_value(&result).unwrap_or_default());
    } else {
        println!(
            "Provider check of `{name}` ({} {} model {}):",
            source.protocol.name(),
            source.endpoint.host_header(),
            source.model
        );
        print!("{}", result.to_text());
        match &applied {
            Some(edit) => print!("Written to {}:\n{}", edit.path.display(), edit.diff()),
            None if !suggested.is_empty() => println!("Run again with --apply to write them."),
            None => {}
        }
    }
    Ok(if result.usable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn show(name: &str, common: &Common) -> Result<ExitCode, String> {
    let config = load(&common.config)?;
    let entry = edit::entry(&config, name).map_err(|e| e.to_string())?;
    let report = Loader::for_server(&config).reload();
    let Some(adapter) = report.snapshot.adapter(name) else {
        let why = report
            .errors
            .iter()
            .find(|e| e.file == entry.path)
            .map_or_else(|| "it did not load".to_owned(), |e| e.to_string());
        return Err(format!("adapter `{name}` does not load: {why}"));
    };
    let view = adapter_view(adapter, &config.public_base_url, entry.version);
    if common.json {
        println!("{}", serde_json::to_value(&view).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let source = |protocol: &str, host: &str, model: &str, keys: usize| {
        format!("{protocol:<10} {host:<36} model {model}  ({keys} key(s))")
    };
    println!("Adapter `{}` ({})", view.name, entry.path.display());
    if let Some(owner) = &view.owner {
        println!("  owner:     {owner}");
    }
    println!("  base URL:  {}", view.base_url);
    println!("  status:    {}", view.status);
    let default_keys = adapter.source.keys.len();
    println!(
        "  source:    {}",
        source(view.protocol, &view.source_host, &view.model, default_keys)
    );
    for (i, f) in view.fallbacks.iter().enumerate() {
        let line = source(f.protocol, &f.source_host, &f.model, f.keys);
        println!("  fallback {}: {line}", i + 1);
    }
    if view.routes.is_empty() {
        println!("  routes:    none (the source serves every request)");
    } else {
        println!("  routes (first match wins, else the source):");
    }
    for (r, route) in view.routes.iter().zip(&adapter.routes) {
        println!("    {:<16} when {}", r.name, r.conditions);
        let line = source(
            r.protocol,
            &r.source_host,
            &r.model,
            route.source.keys.len(),
        );
        println!("    {:<16} → {line}", "");
        for (i, f) in r.fallbacks.iter().enumerate() {
            let line = source(f.protocol, &f.source_host, &f.model, f.keys);
            println!("    {:<16}   fallback {}: {line}", "", i + 1);
        }
    }
    println!("  provider keys:");
    println!(
        "    {:<16} {:<6} {:<4} {:<20} STATE",
        "ROUTE", "SOURCE", "KEY", "LABEL"
    );
    for k in &view.provider_keys {
        let label = k.label.as_deref().unwrap_or("-");
        println!(
            "    {:<16} {:<6} {:<4} {label:<20} {}",
            k.route, k.source, k.key, k.state
        );
    }
    println!("  client keys: {}", view.keys.len());
    for k in &view.keys {
        let label = k.label.as_deref().unwrap_or("(no label)");
        let created = k.created.as_deref().unwrap_or("-");
        let expires = k
            .expires
            .as_deref()
            .map_or_else(String::new, |e| format!(", expires {e}"));
        println!("    {label:<20} created {created}{expires}");
    }
    Ok(ExitCode::SUCCESS)
}

/// How listings and the audit log name an issued key (never the key itself).
fn key_id(key: &Secret) -> String {
    edit::key_id(&hash_hex(&hash_key(key.expose()))).to_owned()
}

/// Prints the new key once, the one base URL every client takes as it is, and
/// ready-to-paste client setup.
fn print_setup(
    config: &ServerConfig,
    name: &str,
    file: &Path,
    key: &str,
    _protocol: SourceProtocol,
    as_json: bool,
    created: bool,
) {
    let base = &config.public_base_url;
    let settings = setup::claude_settings(base, key);
    let codex = setup::codex_config(base);
    let gemini_settings = setup::gemini_settings();
    if as_json {
        println!(
            "{}",
            json!({
                "name": name,
                "file": file.display().to_string(),
                "key": key,
                "base_url": base,
                "openai_base_url": format!("{base}/v1"),
                "claude_code": {"env": {"ANTHROPIC_BASE_URL": base, "ANTHROPIC_AUTH_TOKEN": key}, "settings_json": settings},
                "cline": {"anthropic": {"base_url": base}, "openai_compatible": {"base_url": base}},
                "codex": {"config_toml": codex, "env": {setup::CODEX_KEY_ENV: key}},
                "gemini_cli": {"env": {"GEMINI_API_KEY": key, "GOOGLE_GEMINI_BASE_URL": base},
                               "settings_json": gemini_settings},
            })
        );
        return;
    }
    if created {
        println!("Created adapter `{name}` ({}).\n", file.display());
    }
    println!("API key — shown once; store it now (only its SHA-256 is kept):\n  {key}\n");
    println!("Base URL (paste it as it is into any client; `{base}/v1` works too):\n  {base}\n");
    println!(
        "Claude Code, in your shell:\n  export ANTHROPIC_BASE_URL={base}\n  export ANTHROPIC_AUTH_TOKEN={key}\n"
    );
    println!(
        "Claude Code, in .claude/settings.json (then `claude --settings .claude/settings.json`):\n{}\n",
        serde_json::to_string_pretty(&settings).unwrap_or_default()
    );
    println!(
        "Cline: API Provider \"Anthropic\" (or \"OpenAI Compatible\"), API Key = the key above, base URL = {base}\n"
    );
    let codex_env = setup::CODEX_KEY_ENV;
    println!("Codex CLI, in ~/.codex/config.toml (then `export {codex_env}={key}`):\n{codex}");
    println!(
        "Gemini CLI, in your shell:\n  export GOOGLE_GEMINI_BASE_URL={base}\n  export GEMINI_API_KEY={key}\nand in ~/.gemini/settings.json:\n  {gemini_settings}\n"
    );
    println!(
        "OpenAI SDK:    OpenAI(base_url=\"{base}/v1\", api_key=\"{key}\")\nAnthropic SDK: Anthropic(base_url=\"{base}\", api_key=\"{key}\")\nGoogle GenAI:  genai.Client(api_key=\"{key}\", http_options={{\"base_url\": \"{base}\"}})"
    );
}
