//! End-to-end with the Cline CLI (npm `cline`, run headless with a prompt) through FlexiProxy,
//! with the base URL exactly as `flexiproxy adapter create` prints it: Cline's Anthropic
//! provider on an OpenAI-compatible source, and its OpenAI Compatible provider on an
//! Anthropic-protocol source. Cline appends `/messages` or `/chat/completions` to the base
//! URL as given (no `/v1`), which is what the one-base-URL rule is for.

use crate::claude_code::npm_client;
use crate::clients::wait_bounded;
use crate::harness::*;
use flexiproxy_testkit::FakeProvider;
use flexiproxy_testkit::scenario::{self, Protocol};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `flexiproxy adapter create … --json` against the proxy's config: (key, base URL).
fn create_adapter(proxy: &Proxy, name: &str, base_url: &str, extra: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
        .args(["adapter", "create", name, "--config"])
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
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = v["key"].as_str().unwrap().to_owned();
    (key, v["base_url"].as_str().unwrap().to_owned())
}

/// Waits until the running proxy has picked up the adapter file the CLI wrote.
pub(crate) async fn wait_for_key(proxy: &Proxy, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client()
            .get(proxy.url("/v1/models"))
            .header("authorization", format!("Bearer {key}"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "the new adapter was not loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs one headless Cline task in `cwd`; returns (exit code, stdout, stderr).
fn run_cline(
    bin: &Path,
    provider: &str,
    base_url: &str,
    key: &str,
    cwd: &Path,
    prompt: &str,
) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let settings = home.path().join(".cline/data/settings");
    std::fs::create_dir_all(&settings).unwrap();
    // `updatedAt` is required, or Cline ignores the file and uses its own service.
    let providers = json!({"version": 1, "lastUsedProvider": provider, "modes": {},
        "providers": {provider: {"settings": {"provider": provider, "apiKey": key,
            "model": "claude-sonnet-4-5", "baseUrl": base_url},
            "updatedAt": "2026-01-01T00:00:00.000Z", "tokenSource": "manual"}}});
    std::fs::write(settings.join("providers.json"), providers.to_string()).unwrap();
    std::fs::write(
        settings.join("global-settings.json"),
        json!({"telemetryOptOut": true, "autoUpdateEnabled": false}).to_string(),
    )
    .unwrap();
    let child = Command::new(bin)
        .args(["--json", "-c"])
        .arg(cwd)
        .args([
            "-P",
            provider,
            "-k",
            key,
            "-m",
            "claude-sonnet-4-5",
            "-t",
            "100",
            prompt,
        ])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home.path())
        // No feature-flag fetch, no background hub process.
        .env("IS_TEST", "true")
        .env("CLINE_SESSION_BACKEND_MODE", "local")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cline starts");
    wait_bounded(child, "cline", Duration::from_secs(120))
}

/// One Cline tool loop: the provider asks for `editor` to create hello.txt, Cline writes it
/// and sends the result, the provider answers. Checks the file, not only the exit code
/// (a failed tool call still ends with 0).
async fn cline_writes_a_file(cline_provider: &str, source: Protocol) {
    let bin = tokio::task::spawn_blocking(|| npm_client("cline", "cline/node_modules/.bin/cline"))
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let provider = FakeProvider::start(scenario::tool_loop(
        source,
        "editor",
        json!({"path": "hello.txt", "new_text": "Hello from Cline\n"}),
        "Created hello.txt.",
    ))
    .await;
    let proxy = Proxy::start(&[]);
    let (base, extra): (String, &[&str]) = match source {
        Protocol::OpenAi => (provider.base_url(), &[]),
        Protocol::Anthropic => (provider.origin(), &["--protocol", "anthropic"]),
        Protocol::Responses => (provider.base_url(), &["--protocol", "responses"]),
    };
    let (key, base_url) = create_adapter(&proxy, "cline", &base, extra);
    assert_eq!(
        base_url,
        proxy.url(""),
        "the printed base URL is the proxy's"
    );
    wait_for_key(&proxy, &key).await;
    let cwd = work.path().to_owned();
    let provider_id = cline_provider.to_owned();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        run_cline(
            &bin,
            &provider_id,
            &base_url,
            &key,
            &cwd,
            "Create a file hello.txt containing Hello from Cline",
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("hello.txt")).unwrap_or_default(),
        "Hello from Cline\n",
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Both turns reached the provider in its own protocol, the second with the result.
    let seen = provider.requests();
    assert!(seen.len() >= 2, "{} requests", seen.len());
    let last = seen.last().unwrap().json().to_string();
    assert!(
        last.contains(scenario::WRITE_CALL_ID),
        "the tool result came back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cline_anthropic_provider_on_an_openai_source() {
    cline_writes_a_file("anthropic", Protocol::OpenAi).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cline_openai_compatible_provider_on_an_anthropic_source() {
    cline_writes_a_file("openai-compatible", Protocol::Anthropic).await;
}
