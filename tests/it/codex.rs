//! End-to-end with the real Codex CLI (npm `@openai/codex`, pinned in `tests/e2e/setup.sh`)
//! through FlexiProxy on an OpenAI Chat source and on an Anthropic-protocol source, set up
//! with the `config.toml` lines `flexiproxy adapter create` prints. Each loop really runs:
//! Codex executes the tool the fake provider calls (in its workspace-write sandbox) and
//! sends the result back for the final answer. Three request shapes: an unknown model name
//! (classic function tools, `exec_command`), `gpt-5.5` (the free-form `apply_patch` tool),
//! and the default model slug (tools in an `additional_tools` item, the free-form
//! JavaScript `exec` tool). And a DeepSeek-style source that refuses a tool turn without its
//! `reasoning_content`: the reasoning travels sealed in the Responses reasoning item.

use crate::claude_code::npm_client;
use crate::clients::wait_bounded;
use crate::cline::wait_for_key;
use crate::harness::*;
use flexiproxy_testkit::FakeProvider;
use flexiproxy_testkit::scenario::{self, Protocol};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Everything beyond the provider block: no network side trips, and failures fail fast
/// (Codex retries streams and 5xx answers with backoff otherwise).
const OFFLINE: &str = "check_for_update_on_startup = false\nweb_search = \"disabled\"\n";
const PROVIDER_EXTRA: &str = "stream_max_retries = 0\nrequest_max_retries = 0\n";
const TABLES: &str = "\n[features]\nplugins = false\napps = false\nremote_plugin = false\n\n\
                      [analytics]\nenabled = false\n\n[otel]\nexporter = \"none\"\n";

/// `config.toml`: the printed snippet (without its `model` line for the default slug).
fn config_toml(snippet: &str, default_model: bool) -> String {
    let snippet: String = snippet
        .lines()
        .filter(|l| !(default_model && l.starts_with("model =")))
        .map(|l| format!("{l}\n"))
        .collect();
    // The snippet ends inside `[model_providers.flexiproxy]`: its extra keys go right after.
    format!("{OFFLINE}{snippet}{PROVIDER_EXTRA}{TABLES}")
}

/// Runs `codex exec` in `cwd` with a fresh HOME and CODEX_HOME.
fn run_codex(
    bin: &Path,
    config: &str,
    key_env: &str,
    key: &str,
    cwd: &Path,
    model: Option<&str>,
    prompt: &str,
) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let codex_home = home.path().join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(codex_home.join("config.toml"), config).unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(["exec", "--skip-git-repo-check", "-s", "workspace-write"]);
    if let Some(model) = model {
        cmd.args(["-m", model]);
    }
    let child = cmd
        .arg(prompt)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home.path())
        .env("CODEX_HOME", &codex_home)
        .env(key_env, key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("codex starts");
    wait_bounded(child, "codex", Duration::from_secs(120))
}

/// One loop: the provider calls `tool` with `arguments`, Codex runs it in `work`, the
/// provider answers `final_text` to the result.
struct Loop<'a> {
    source: Protocol,
    model: Option<&'a str>,
    tool: &'a str,
    arguments: Value,
    final_text: &'a str,
}

async fn codex_loop(bin: &Path, work: &Path, l: Loop<'_>) -> FakeProvider {
    let provider = match l.source {
        Protocol::OpenAi | Protocol::Anthropic => {
            FakeProvider::start(scenario::tool_loop(
                l.source,
                l.tool,
                l.arguments,
                l.final_text,
            ))
            .await
        }
        Protocol::Responses => unreachable!("Codex on a Responses source is a passthrough"),
    };
    run_against(bin, work, &provider, l.source, l.model, l.final_text).await;
    provider
}

async fn run_against(
    bin: &Path,
    work: &Path,
    provider: &FakeProvider,
    source: Protocol,
    model: Option<&str>,
    final_text: &str,
) {
    let proxy = Proxy::start(&[]);
    let (base, extra): (String, &[&str]) = match source {
        Protocol::Anthropic => (provider.origin(), &["--protocol", "anthropic"]),
        _ => (provider.base_url(), &[]),
    };
    let created = create_adapter_json(&proxy, &base, extra);
    let key = created["key"].as_str().unwrap().to_owned();
    wait_for_key(&proxy, &key).await;
    let config = config_toml(
        created["codex"]["config_toml"].as_str().unwrap(),
        model.is_none(),
    );
    let key_env = created["codex"]["env"]
        .as_object()
        .and_then(|e| e.keys().next().cloned())
        .unwrap();
    let (bin, cwd, model) = (bin.to_owned(), work.to_owned(), model.map(str::to_owned));
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        run_codex(
            &bin,
            &config,
            &key_env,
            &key,
            &cwd,
            model.as_deref(),
            "Do the task.",
        )
    })
    .await
    .unwrap();
    let context = format!("{source:?} source\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(code, 0, "{context}");
    assert!(stdout.contains(final_text), "{context}");
}

/// `adapter create --json`, whole (the Codex snippet is in it).
fn create_adapter_json(proxy: &Proxy, base_url: &str, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
        .args(["adapter", "create", "codex", "--config"])
        .arg(proxy.config_path())
        .args([
            "--base-url",
            base_url,
            "--api-key",
            PROVIDER_KEY,
            "--model",
            "fake-model",
            "--json",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn codex_binary() -> std::path::PathBuf {
    npm_client("codex", "codex/node_modules/.bin/codex")
}

const SOURCES: [Protocol; 2] = [Protocol::OpenAi, Protocol::Anthropic];

#[tokio::test(flavor = "multi_thread")]
async fn codex_runs_a_command_through_flexiproxy() {
    let bin = tokio::task::spawn_blocking(codex_binary).await.unwrap();
    for source in SOURCES {
        let work = tempfile::tempdir().unwrap();
        let provider = codex_loop(
            &bin,
            work.path(),
            Loop {
                source,
                model: Some("deepseek-v4"),
                tool: "exec_command",
                arguments: json!({"cmd": "echo codex-was-here > out.txt", "yield_time_ms": 2000}),
                final_text: "I wrote out.txt.",
            },
        )
        .await;
        let written = std::fs::read_to_string(work.path().join("out.txt"));
        assert_eq!(written.unwrap(), "codex-was-here\n", "{source:?}");
        // The command's output went back as the tool result.
        let last = provider.requests().last().unwrap().json().to_string();
        assert!(
            last.contains("Process exited with code 0"),
            "{source:?}: {last}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn codex_applies_a_patch_with_its_free_form_tool() {
    let bin = tokio::task::spawn_blocking(codex_binary).await.unwrap();
    let patch = "*** Begin Patch\n*** Add File: probe.txt\n+hello from the patch\n*** End Patch\n";
    for source in SOURCES {
        let work = tempfile::tempdir().unwrap();
        let provider = codex_loop(
            &bin,
            work.path(),
            Loop {
                source,
                model: Some("gpt-5.5"),
                tool: "apply_patch",
                arguments: json!({"input": patch}),
                final_text: "Patched.",
            },
        )
        .await;
        let written = std::fs::read_to_string(work.path().join("probe.txt"));
        assert_eq!(written.unwrap(), "hello from the patch\n", "{source:?}");
        // The source saw the free-form tool as a function of one string.
        let first = provider.requests()[0].json().to_string();
        assert!(
            first.contains("apply_patch") && first.contains("\"input\""),
            "{first}"
        );
        let last = provider.requests().last().unwrap().json().to_string();
        assert!(last.contains("A probe.txt"), "{source:?}: {last}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn codex_default_model_calls_its_javascript_exec_tool() {
    let bin = tokio::task::spawn_blocking(codex_binary).await.unwrap();
    let script =
        "const r = await tools.exec_command({cmd: \"echo from-exec > default.txt\"});\ntext(r);";
    for source in SOURCES {
        let work = tempfile::tempdir().unwrap();
        let provider = codex_loop(
            &bin,
            work.path(),
            Loop {
                source,
                model: None,
                tool: "exec",
                arguments: json!({"input": script}),
                final_text: "Ran the script.",
            },
        )
        .await;
        let written = std::fs::read_to_string(work.path().join("default.txt"));
        assert_eq!(written.unwrap(), "from-exec\n", "{source:?}");
        let last = provider.requests().last().unwrap().json().to_string();
        assert!(last.contains("Script completed"), "{source:?}: {last}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn codex_keeps_deepseek_reasoning_across_a_tool_turn() {
    let bin = tokio::task::spawn_blocking(codex_binary).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let reasoning = "The user wants a file; I will run echo.";
    let provider = FakeProvider::start(scenario::deepseek_tool_loop(
        "exec_command",
        json!({"cmd": "echo thought-through > ds.txt"}),
        reasoning,
        "Done after thinking.",
    ))
    .await;
    run_against(
        &bin,
        work.path(),
        &provider,
        Protocol::OpenAi,
        Some("deepseek-v4"),
        "Done after thinking.",
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(work.path().join("ds.txt")).unwrap(),
        "thought-through\n"
    );
    let requests = provider.requests();
    let last = requests.last().unwrap().json();
    let echoed = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .map(|m| m["reasoning_content"].clone());
    assert_eq!(echoed, Some(json!(reasoning)), "{last}");
}
