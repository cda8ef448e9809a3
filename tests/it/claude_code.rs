//! End-to-end with Claude Code itself (npm `@anthropic-ai/claude-code`, run with `-p`) through
//! FlexiProxy to the scripted fake provider: a real tool loop — the provider asks for the
//! `Write` tool, Claude Code writes the file and sends the result, the provider answers.

use crate::clients::{e2e_dir, ensure, wait_bounded};
use crate::harness::*;
use flexiproxy_testkit::{FakeProvider, scenario};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Installs Claude Code (panics when it cannot: a test that did not run never passes).
fn claude_binary() -> std::path::PathBuf {
    npm_client("claude", "node/node_modules/.bin/claude")
}

/// Installs an npm-packaged client (`tests/e2e/setup.sh COMPONENT`) and returns its binary
/// under the e2e dir. A setup that fails — npm offline included — fails the test: `cargo
/// test` hides a passing test's stderr, so a skip would read as a pass.
pub fn npm_client(component: &str, bin: &str) -> std::path::PathBuf {
    if let Err(e) = ensure(component) {
        panic!(
            "{component} is not installed and its setup failed (run tests/e2e/setup.sh {component} \
             with access to the npm registry):\n{e}"
        );
    }
    let path = e2e_dir().join(bin);
    assert!(
        path.exists(),
        "{component}: {} is missing after setup",
        path.display()
    );
    path
}

/// Runs `claude -p` headless against `base_url` in `cwd`; returns (exit code, stdout, stderr).
pub fn run_claude(
    claude: &std::path::Path,
    base_url: &str,
    token: &str,
    cwd: &std::path::Path,
    prompt: &str,
) -> (i32, String, String) {
    run_claude_with(claude, base_url, token, cwd, prompt, &[])
}

/// [`run_claude`] with more arguments (`--model …`).
pub fn run_claude_with(
    claude: &std::path::Path,
    base_url: &str,
    token: &str,
    cwd: &std::path::Path,
    prompt: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let child = Command::new(claude)
        .arg("-p")
        .arg(prompt)
        .args(["--allowedTools", "Write,Edit,Read,Bash"])
        .args(extra)
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
    let claude = tokio::task::spawn_blocking(claude_binary).await.unwrap();
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

/// A 1×1 PNG, as Claude Code's Read tool sends it back as an image.
pub(crate) const PIXEL_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// Requests a provider saw that carry an image (OpenAI form: an `image_url` part).
fn with_image(p: &FakeProvider) -> Vec<serde_json::Value> {
    p.requests()
        .iter()
        .map(|r| r.json())
        .filter(|b| b.to_string().contains("\"image_url\""))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_is_routed_by_model_and_by_image_through_one_adapter() {
    use base64::Engine;
    let claude = tokio::task::spawn_blocking(claude_binary).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let png = work.path().join("pixel.png");
    std::fs::write(
        &png,
        base64::engine::general_purpose::STANDARD
            .decode(PIXEL_PNG)
            .unwrap(),
    )
    .unwrap();
    let read = serde_json::json!({"file_path": png.to_str().unwrap()});
    let tool_loop = |text: &'static str| {
        scenario::tool_loop(scenario::Protocol::OpenAi, "Read", read.clone(), text)
    };
    // A: the strong main model, text only. B: the cheap model for haiku-class requests.
    // V: the vision model for requests that carry an image.
    let a = FakeProvider::start(tool_loop("The text model answered.")).await;
    let b = FakeProvider::start(tool_loop("The cheap model answered.")).await;
    let v = FakeProvider::start(tool_loop("The vision model sees one pixel.")).await;
    let routes = |with_vision: bool| {
        let mut y = format!(
            "source:\n  base_url: {}\n  api_key: sk-a\n  model: strong-model\n  options: {{ images: false }}\nroutes:\n\
             \x20 - name: background\n    when: {{ model: \"claude-*haiku*\" }}\n    source: {{ base_url: \"{}\", api_key: sk-b, model: cheap-model }}\n",
            a.base_url(),
            b.base_url()
        );
        if with_vision {
            y.push_str(&format!(
                "  - name: vision\n    when: {{ images: true }}\n    source: {{ base_url: \"{}\", api_key: sk-v, model: vision-model }}\n",
                v.base_url()
            ));
        }
        y.push_str(&format!("keys:\n  - sha256: {}\n", sha256_hex(KEY)));
        y
    };
    let proxy = Proxy::start(&[("cc", routes(true))]);
    let run = |extra: &'static [&'static str]| {
        let (claude, base_url, cwd) = (claude.clone(), proxy.url(""), work.path().to_owned());
        tokio::task::spawn_blocking(move || {
            run_claude_with(&claude, &base_url, KEY, &cwd, "Describe pixel.png", extra)
        })
    };

    // The main loop reads the PNG: the first turn goes to A, the turn with the image to V.
    let (code, stdout, stderr) = run(&[]).await.unwrap();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("The vision model sees one pixel."),
        "stdout:\n{stdout}"
    );
    let seen_v = with_image(&v);
    assert!(
        !seen_v.is_empty(),
        "the image turn reached the vision route"
    );
    assert!(seen_v.iter().all(|b| b["model"] == "vision-model"));
    assert!(with_image(&a).is_empty(), "no image reached the text model");
    let main_on_a = a
        .requests()
        .iter()
        .filter(|r| r.json()["model"] == "strong-model")
        .count();
    assert!(main_on_a >= 1);
    // Whatever haiku-class requests Claude Code made went to B, and only those.
    for r in a.requests().iter().chain(v.requests().iter()) {
        assert!(!r.body_text().contains("cheap-model"));
    }
    assert!(
        b.requests()
            .iter()
            .all(|r| r.json()["model"] == "cheap-model")
    );

    // With a haiku-class model, its requests go to B.
    let before = b.request_count();
    let (code, stdout, stderr) = run(&["--model", "claude-haiku-4-5"]).await.unwrap();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(b.request_count() > before, "haiku-class requests reached B");
    let a_count = a.request_count();

    // Without an image route, the text-only source gets a note instead, and the session
    // goes on to its answer.
    let generation = proxy.generation();
    proxy.write_adapter("cc", &routes(false));
    wait_until(Duration::from_secs(10), "the edit is live", || {
        proxy.generation() > generation
    });
    let (code, stdout, stderr) = run(&[]).await.unwrap();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("The text model answered."),
        "stdout:\n{stdout}"
    );
    let later: Vec<_> = a
        .requests()
        .into_iter()
        .skip(a_count)
        .map(|r| r.body_text())
        .collect();
    assert!(
        later
            .iter()
            .any(|t| t.contains("[image omitted: strong-model cannot read images]")),
        "the note reached the text model"
    );
    assert!(with_image(&a).is_empty());
}
