//! `fake-provider`: the testkit's fake LLM provider as a standalone server, for load
//! benchmarks, demos and replaying recorded provider traffic (`--replay FILE`). Every response is built once at startup; requests are not
//! recorded or logged, so the server itself is never the bottleneck.
//!
//! Prints `listening on http://ADDR` once bound (scripts wait for that line) and runs
//! until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use flexiproxy_testkit::{
    FakeProvider, RecordedRequest, Reply, anthropic, openai, responses, scenario,
};

#[derive(Parser, Debug)]
#[command(
    name = "fake-provider",
    about = "A fast fake OpenAI/Anthropic-compatible LLM provider"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port; see the printed line).
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// What every request is answered with.
    #[arg(long, value_enum, default_value_t = Mode::Json)]
    mode: Mode,
    /// Content delta events in streaming answers.
    #[arg(long, default_value_t = 120)]
    sse_events: usize,
    /// slow-sse: pause between events, to hold many streams open cheaply.
    #[arg(long, default_value_t = 100)]
    slow_interval_ms: u64,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// tool-loop: file the `Write` tool call asks the client to create.
    #[arg(long, default_value = "/tmp/flexiproxy-e2e/hello.txt")]
    tool_loop_file: String,
    /// tool-loop: content of that file.
    #[arg(long, default_value = "Hello from the fake provider!\n")]
    tool_loop_content: String,
    /// tool-loop: final answer once the tool result comes back.
    #[arg(long, default_value = "I wrote the file.")]
    tool_loop_final: String,
    /// Serve recorded traffic instead of --mode: a VCR.py or go-vcr YAML cassette, a
    /// one-payload-per-line `*.chunks.txt` file or a JSON body; its answers in order, one per
    /// request, each in random read splits (docs/replay.md).
    #[arg(long)]
    replay: Option<std::path::PathBuf>,
    /// --replay: seed of the read splits (printed when not given, to repeat a run).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// OpenAI chat completion, JSON.
    Json,
    /// OpenAI chat completion, streamed.
    Sse,
    /// Anthropic message, JSON.
    AnthropicJson,
    /// Anthropic message, streamed.
    AnthropicSse,
    /// OpenAI Responses answer, JSON.
    ResponsesJson,
    /// OpenAI Responses answer, streamed.
    ResponsesSse,
    /// OpenAI stream with one event per --slow-interval-ms.
    SlowSse,
    /// The Claude Code Write-tool round trip (scenario::claude_code_tool_loop).
    ToolLoop,
    /// The same round trip spoken as an Anthropic-protocol provider (for OpenAI clients).
    AnthropicToolLoop,
}

/// `n` pieces of a few words each, so streams look like token-by-token output.
fn stream_pieces(n: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "The",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "the",
        "lazy",
        "dog",
        "while",
        "the",
        "proxy",
        "translates",
        "every",
        "event",
        "faithfully",
    ];
    (0..n)
        .map(|i| {
            let w = |k: usize| WORDS[(i * 3 + k) % WORDS.len()];
            format!("{} {} {} ", w(0), w(1), w(2))
        })
        .collect()
}

type Handler = Box<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

fn handler(args: &Args) -> Handler {
    let fixed = |reply: Reply| -> Handler {
        let reply = reply.prepare();
        Box::new(move |_| reply.clone())
    };
    let pieces = stream_pieces(args.sse_events);
    match args.mode {
        Mode::Json => fixed(Reply::json(
            200,
            openai::chat_completion("Hello! This is a response from the FlexiProxy fake provider."),
        )),
        Mode::Sse => fixed(Reply::sse(openai::text_stream_from_pieces(&pieces))),
        Mode::AnthropicJson => fixed(Reply::json(
            200,
            anthropic::message("Hello! This is a response from the FlexiProxy fake provider."),
        )),
        Mode::AnthropicSse => fixed(Reply::sse(anthropic::text_stream_from_pieces(&pieces))),
        Mode::ResponsesJson => fixed(Reply::json(
            200,
            responses::text_response(
                "Hello! This is a response from the FlexiProxy fake provider.",
            ),
        )),
        Mode::ResponsesSse => fixed(Reply::sse(responses::text_stream(
            &pieces.concat(),
            pieces.len(),
        ))),
        Mode::SlowSse => {
            let reply = Reply::sse(openai::text_stream_from_pieces(&pieces))
                .delay_between_writes(Duration::from_millis(args.slow_interval_ms));
            Box::new(move |_| reply.clone())
        }
        Mode::ToolLoop => Box::new(scenario::claude_code_tool_loop(
            &args.tool_loop_file,
            &args.tool_loop_content,
            &args.tool_loop_final,
        )),
        Mode::AnthropicToolLoop => Box::new(scenario::tool_loop(
            scenario::Protocol::Anthropic,
            "Write",
            serde_json::json!({"file_path": args.tool_loop_file, "content": args.tool_loop_content}),
            &args.tool_loop_final,
        )),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let handler: Handler = match &args.replay {
        Some(path) => match flexiproxy_testkit::replay::load(path) {
            Ok(answers) if !answers.is_empty() => {
                let seed = args.seed.unwrap_or_else(|| {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(1, |d| d.as_nanos() as u64)
                });
                println!(
                    "replaying {} answer(s) from {} in random read splits (--seed {seed})",
                    answers.len(),
                    path.display()
                );
                Box::new(flexiproxy_testkit::replay::handler(answers, seed))
            }
            Ok(_) => {
                eprintln!("fake-provider: {} holds no answers", path.display());
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("fake-provider: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => handler(&args),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fake-provider: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // The server runs on its own thread(s); this runtime only waits for a signal.
        let provider = match FakeProvider::builder()
            .listen(args.listen)
            .record_requests(false)
            .worker_threads(args.threads)
            .start(handler)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                eprintln!("fake-provider: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        println!("listening on http://{}", provider.addr());
        wait_for_signal().await;
        drop(provider);
        ExitCode::SUCCESS
    })
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
