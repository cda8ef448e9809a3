//! The `flexiproxy` command: parsing arguments and printing results only; the work happens
//! in the library.

use clap::{Parser, Subcommand};
use flexiproxy::config::server::ServerConfig;
use flexiproxy::config::snapshot::Loader;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "flexiproxy",
    version,
    about = "LLM-API translation proxy: Anthropic clients on OpenAI-compatible providers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// The server config file.
        #[arg(long, default_value = "conf/flexiproxy.yaml")]
        config: PathBuf,
    },
    /// Validate the server config and every adapter file; exit non-zero on any problem.
    Check {
        #[arg(long, default_value = "conf/flexiproxy.yaml")]
        config: PathBuf,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            init_logging();
            let config = match ServerConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let app = match flexiproxy::server::build(&config) {
                Ok(app) => app,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            tracing::info!(
                listeners = ?config.listeners.iter().map(|l| l.address.to_string()).collect::<Vec<_>>(),
                base_url = %config.public_base_url,
                "flexiproxy starting"
            );
            flexiproxy::server::run(app);
            ExitCode::SUCCESS
        }
        Command::Check { config } => check(&config),
    }
}

fn check(path: &PathBuf) -> ExitCode {
    let config = match ServerConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut loader = Loader::new(&config.adapters_dir, config.max_adapters);
    let report = loader.reload();
    for e in &report.errors {
        eprintln!("{e}");
    }
    let n = report.snapshot.adapters.len();
    if report.errors.is_empty() {
        println!("ok: {} and {n} adapter(s) are valid", path.display());
        ExitCode::SUCCESS
    } else {
        eprintln!("{} problem(s) found", report.errors.len());
        ExitCode::FAILURE
    }
}
