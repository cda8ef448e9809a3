//! End-to-end with Claude Code itself (npm `@anthropic-ai/claude-code`, run with `-p`) through
//! FlexiProxy to the scripted fake provider: a real tool loop — the provider asks for the
//! `Write` tool, Claude Code writes the file and sends the result, the provider answers.

use crate::clients::{e2e_dir, ensure, wait_bounded};
use crate::harness::*;
use flexiproxy_testkit::{FakeProvider, scenario};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Installs Claude Code; `None` (with a loud message) only when npm cannot reach its registry.
fn claude_binary() -> Option<std::path::PathBuf> {
    npm_client("claude", "node/node_modules/.bin/claude")
}

/// Installs an npm-packaged client (`tests/e2e/setup.sh COMPONENT`) and returns its binary
/// under the e2e dir; `None` (with a loud message) only when npm cannot reach its registry.
pub fn npm_client(component: &str, bin: &str) -> Option<std::path::PathBuf> {
    match ensure(component) {
        Ok(()) => Some(e2e_dir().join(bin)),
        Err(e) => {
            let offline = [
                "ENOTFOUND",
                "EAI_AGAIN",
                "ECONNREFUSED",
                "ETIMEDOUT",
                "network",
            ]
            .iter()
            .any(|needle| e.contains(needle));
            if offline {
                eprintln!(
                    "\n!!!!!!!!!!\n!!! SKIPPED: {component} end-to-end test — npm cannot reach its registry:\n{e}\n!!!!!!!!!!\n"
                );
                None
            } else {
                panic!("{e}");
            }
        }
    }
}

/// Runs `claude -p` headless against `base_url` in `cwd`; returns (exit code, stdout, stderr).
pub fn run_claude(
    claude: &std::path::Path,
    base_url: &str,
    token: &str,
    cwd: &std::path::Path,
    prompt: &str,
) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let child = Command::new(claude)
        .arg("-p")
        .arg(prompt)
        .args(["--allowedTools", "Write,Edit,Read,Bash"])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home.path())
        .env("ANTHROPIC_BASE_URL", base_url)
        .env("ANTHROPIC_AUTH_TOKEN", token)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("claude starts");
    // Bounded wait: a hung client must fail the test, not the CI job.
    wait_bounded(child, "claude", Duration::from_secs(120))
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_completes_a_tool_loop_through_flexiproxy() {
    let Some(claude) = tokio::task::spawn_blocking(claude_binary).await.unwrap() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("hello.txt");
    let provider = FakeProvider::start(scenario::claude_code_tool_loop(
        target.to_str().unwrap(),
        "Hello from FlexiProxy!\n",
        "I wrote hello.txt for you.",
    ))
    .await;
    let proxy = Proxy::start(&[("fake", adapter_yaml(&provider.base_url(), &[KEY], ""))]);
    let base_url = proxy.url("");
    let cwd = work.path().to_owned();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        run_claude(
            &claude,
            &base_url,
            KEY,
            &cwd,
            "Create hello.txt containing a greeting",
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "Hello from FlexiProxy!\n"
    );
    assert!(
        stdout.contains("I wrote hello.txt for you."),
        "stdout:\n{stdout}"
    );

    // The provider saw the whole loop in OpenAI form: the tool call, then its result.
    let seen = provider.requests();
    let main: Vec<_> = seen
        .iter()
        .map(|r| r.json())
        .filter(|b| {
            b["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["function"]["name"] == "Write"))
        })
        .collect();
    assert!(main.len() >= 2, "{} main requests", main.len());
    let last = main.last().unwrap();
    let tool_msg = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    assert_eq!(tool_msg["tool_call_id"], scenario::WRITE_CALL_ID);
    for r in &seen {
        assert!(r.header("authorization").unwrap().ends_with(PROVIDER_KEY));
        assert!(r.header("anthropic-beta").is_none());
    }
}
