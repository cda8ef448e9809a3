//! End to end for Gemini clients: the real Gemini CLI (npm `@google/gemini-cli`, pinned in
//! `tests/e2e/setup.sh`) without `-m` — so its model-router call asks for structured output
//! first — and with `--yolo`, running a `write_file` and a `run_shell_command` loop through
//! FlexiProxy on an OpenAI Chat source and an Anthropic-protocol source; the official
//! `google-genai` SDK (text, stream, a function declaration and its response, `count_tokens`)
//! on the Chat, Anthropic and Responses sources; and the Gemini passthrough.

use crate::claude_code::npm_client;
use crate::clients::{run_python, wait_bounded};
use crate::harness::*;
use flexiproxy_testkit::scenario::{self, Protocol, SIDE_REPLY, WRITE_CALL_ID};
use flexiproxy_testkit::{FakeProvider, Reply};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn adapter(source: Protocol, provider: &FakeProvider) -> String {
    match source {
        Protocol::OpenAi => adapter_yaml(&provider.base_url(), &[KEY], ""),
        Protocol::Anthropic => adapter_yaml(&provider.origin(), &[KEY], "protocol: anthropic"),
        Protocol::Responses => adapter_yaml(&provider.base_url(), &[KEY], "protocol: responses"),
    }
}

/// Runs `gemini -p PROMPT --yolo` in `cwd` with a fresh HOME set up for an API key.
fn run_gemini(
    bin: &Path,
    base_url: &str,
    key: &str,
    cwd: &Path,
    prompt: &str,
) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let settings = home.path().join(".gemini");
    std::fs::create_dir_all(&settings).unwrap();
    let mut config = printed_settings();
    config["general"] = json!({"enableAutoUpdate": false, "enableAutoUpdateNotification": false});
    config["privacy"] = json!({"usageStatisticsEnabled": false});
    config["telemetry"] = json!({"enabled": false});
    std::fs::write(settings.join("settings.json"), config.to_string()).unwrap();
    let child = Command::new(bin)
        .args(["-p", prompt, "--yolo"])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home.path())
        .env("GEMINI_API_KEY", key)
        .env("GOOGLE_GEMINI_BASE_URL", base_url)
        .env("GEMINI_CLI_TRUST_WORKSPACE", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gemini starts");
    wait_bounded(child, "gemini", Duration::from_secs(120))
}

/// The `settings.json` lines `adapter create` prints for Gemini CLI.
fn printed_settings() -> Value {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flexiproxy.yaml"),
        "adapters_dir: adapters\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
        .args(["adapter", "create", "g", "--config"])
        .arg(dir.path().join("flexiproxy.yaml"))
        .args([
            "--base-url",
            "http://127.0.0.1:1/v1",
            "--api-key",
            "k",
            "--model",
            "m",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["gemini_cli"]["env"]["GEMINI_API_KEY"].is_string());
    v["gemini_cli"]["settings_json"].clone()
}

fn gemini_binary() -> std::path::PathBuf {
    npm_client("gemini", "gemini/node_modules/.bin/gemini")
}

/// Whether a request the source got asked for structured output (the router call).
fn asked_structured(body: &Value) -> bool {
    body["response_format"]["type"] == "json_schema"
        || body["tool_choice"]["name"] == "structured_output"
}

async fn cli_loop(
    bin: &Path,
    work: tempfile::TempDir,
    source: Protocol,
    tool: &str,
    args: Value,
    final_text: &str,
) -> (tempfile::TempDir, FakeProvider) {
    let provider = FakeProvider::start(scenario::tool_loop(source, tool, args, final_text)).await;
    let proxy = Proxy::start(&[("g", adapter(source, &provider))]);
    let (bin, base, cwd) = (bin.to_owned(), proxy.url(""), work.path().to_owned());
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || run_gemini(&bin, &base, KEY, &cwd, "Do the task."))
            .await
            .unwrap();
    let context = format!(
        "{source:?} source, {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        tool
    );
    assert_eq!(code, 0, "{context}");
    assert!(stdout.contains(final_text), "{context}");
    let requests = provider.requests();
    assert!(
        requests.iter().any(|r| asked_structured(&r.json())),
        "{context}: the router's structured-output call reached the source"
    );
    drop(proxy);
    (work, provider)
}

const CLI_SOURCES: [Protocol; 2] = [Protocol::OpenAi, Protocol::Anthropic];

#[tokio::test(flavor = "multi_thread")]
async fn gemini_cli_writes_a_file_through_flexiproxy() {
    let bin = tokio::task::spawn_blocking(gemini_binary).await.unwrap();
    for source in CLI_SOURCES {
        // Inside the workspace: Gemini CLI refuses paths outside it.
        let work = tempfile::tempdir().unwrap();
        let target = work.path().join("hello.txt");
        let args = json!({"file_path": target.to_str().unwrap(), "content": "hello from gemini\n"});
        let _work = cli_loop(&bin, work, source, "write_file", args, "I wrote hello.txt.").await;
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "hello from gemini\n",
            "{source:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_cli_runs_a_shell_command_through_flexiproxy() {
    let bin = tokio::task::spawn_blocking(gemini_binary).await.unwrap();
    for source in CLI_SOURCES {
        let args = json!({"command": "echo shell-ran > shell.txt", "description": "write a file"});
        let work = tempfile::tempdir().unwrap();
        let (work, provider) = cli_loop(
            &bin,
            work,
            source,
            "run_shell_command",
            args,
            "The command ran.",
        )
        .await;
        assert_eq!(
            std::fs::read_to_string(work.path().join("shell.txt")).unwrap(),
            "shell-ran\n",
            "{source:?}"
        );
        let last = provider.requests().last().unwrap().json().to_string();
        assert!(
            last.contains(WRITE_CALL_ID),
            "{source:?}: the result answers the call: {last}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The google-genai SDK

const FINAL: &str = "It is sunny in Paris.";

fn sdk(base: &str, mode: &str, request: &Value) -> Value {
    run_python("gemini_client.py", &[base, KEY, mode, &request.to_string()])
}

fn weather_config() -> Value {
    json!({"system_instruction": "Be brief.",
           "tools": [{"function_declarations": [{"name": "get_weather", "description": "Weather",
               "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                              "required": ["city"]}}]}]})
}

async fn sdk_on(source: Protocol) {
    let provider = FakeProvider::start(scenario::tool_loop(
        source,
        "get_weather",
        json!({"city": "Paris"}),
        FINAL,
    ))
    .await;
    let proxy = Proxy::start(&[("g", adapter(source, &provider))]);
    let base = proxy.url("");
    let context = format!("{source:?} source");
    let plain = json!({"model": "gemini-3.5-flash", "contents": "hello"});
    let b = base.clone();
    let (out, streamed, counted) = tokio::task::spawn_blocking(move || {
        (
            sdk(&b, "generate", &plain),
            sdk(&b, "stream", &plain),
            sdk(&b, "count", &plain),
        )
    })
    .await
    .unwrap();
    assert_eq!(out["text"], SIDE_REPLY, "{context}: {out}");
    assert_eq!(out["finish_reason"], "STOP", "{context}");
    assert!(
        out["usage"]["prompt_token_count"].as_u64().unwrap() > 0,
        "{context}: {out}"
    );
    assert_eq!(streamed["text"], SIDE_REPLY, "{context}: {streamed}");
    assert!(
        streamed["chunks"].as_u64().unwrap() >= 2,
        "{context}: {streamed}"
    );
    assert!(
        counted["total_tokens"].as_u64().unwrap() > 0,
        "{context}: {counted}"
    );

    // A function declaration: the call, then the turn with its response.
    let ask = json!({"model": "gemini-3.5-flash", "contents": "Weather in Paris?", "config": weather_config()});
    let answer = json!({"model": "gemini-3.5-flash", "config": weather_config(), "contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"function_call": {"id": WRITE_CALL_ID, "name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"function_response": {"id": WRITE_CALL_ID, "name": "get_weather", "response": {"forecast": "sunny"}}}]}]});
    let b = base.clone();
    let (called, streamed_call, answered) = tokio::task::spawn_blocking(move || {
        (
            sdk(&b, "generate", &ask),
            sdk(&b, "stream", &ask),
            sdk(&b, "stream", &answer),
        )
    })
    .await
    .unwrap();
    for out in [&called, &streamed_call] {
        let call = &out["function_calls"][0];
        assert_eq!(call["name"], "get_weather", "{context}: {out}");
        assert_eq!(call["args"], json!({"city": "Paris"}), "{context}");
        assert_eq!(call["id"], WRITE_CALL_ID, "{context}");
    }
    assert_eq!(answered["text"], FINAL, "{context}: {answered}");
    let seen = provider.requests().last().unwrap().json().to_string();
    assert!(
        seen.contains("sunny"),
        "{context}: the source got the function response: {seen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn google_genai_sdk_on_a_chat_source() {
    sdk_on(Protocol::OpenAi).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn google_genai_sdk_on_an_anthropic_source() {
    sdk_on(Protocol::Anthropic).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn google_genai_sdk_on_a_responses_source() {
    sdk_on(Protocol::Responses).await;
}

/// Errors come back in Google's shape, through the SDK's typed error.
#[tokio::test(flavor = "multi_thread")]
async fn google_genai_sdk_sees_googles_errors() {
    let provider = FakeProvider::start(|_: &flexiproxy_testkit::RecordedRequest| {
        Reply::json(
            429,
            flexiproxy_testkit::openai::error_body("Slow down", "rate_limit_error", None),
        )
    })
    .await;
    let proxy = Proxy::start(&[("g", adapter(Protocol::OpenAi, &provider))]);
    let base = proxy.url("");
    let bad = json!({"model": "m", "contents": "x", "config": {"candidate_count": 2}});
    let slow = json!({"model": "m", "contents": "x"});
    let (bad, slow) = tokio::task::spawn_blocking(move || {
        (sdk(&base, "generate", &bad), sdk(&base, "generate", &slow))
    })
    .await
    .unwrap();
    assert_eq!(
        (bad["code"].as_u64(), bad["status"].as_str()),
        (Some(400), Some("INVALID_ARGUMENT")),
        "{bad}"
    );
    assert!(
        bad["message"].as_str().unwrap().contains("candidateCount"),
        "{bad}"
    );
    assert_eq!(
        (slow["code"].as_u64(), slow["status"].as_str()),
        (Some(429), Some("RESOURCE_EXHAUSTED")),
        "{slow}"
    );
}

/// The router call Gemini CLI makes (captured), through a Chat source: its answer is JSON
/// that fits the schema, as the CLI needs to pick a model.
#[tokio::test(flavor = "multi_thread")]
async fn the_router_call_gets_json_back() {
    for source in CLI_SOURCES {
        let provider = FakeProvider::start(scenario::tool_loop(source, "x", json!({}), "")).await;
        let proxy = Proxy::start(&[("g", adapter(source, &provider))]);
        let body = std::fs::read(format!(
            "{}/tests/fixtures/gemini/gemini-router-classifier.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let r = client()
            .post(proxy.url("/v1beta/models/gemini-3.5-flash-lite:generateContent"))
            .header("x-goog-api-key", KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{source:?}");
        let v: Value = r.json().await.unwrap();
        let text = v["candidates"][0]["content"]["parts"][0]["text"]
            .as_str()
            .unwrap();
        let verdict: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{source:?}: {e}: {v}"));
        assert!(
            verdict["complexity_score"].is_i64(),
            "{source:?}: {verdict}"
        );
        assert!(
            asked_structured(&provider.requests()[0].json()),
            "{source:?}"
        );
    }
}

/// A Gemini source passes Gemini requests through: the model in the path is mapped, the key
/// goes as `x-goog-api-key`, the client's `?key=` stays behind, `?alt=sse` is kept.
#[tokio::test(flavor = "multi_thread")]
async fn gemini_passthrough_maps_the_model_in_the_path() {
    let answer = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
                        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}});
    let provider = FakeProvider::start(move |_: &flexiproxy_testkit::RecordedRequest| {
        Reply::json(200, answer.clone())
    })
    .await;
    let proxy = Proxy::start(&[(
        "g",
        adapter_yaml(
            &format!("{}/v1beta", provider.origin()),
            &[KEY],
            "protocol: gemini",
        ),
    )]);
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]});
    for (path, upstream) in [
        (
            "/v1beta/models/gemini-pro:generateContent",
            "/v1beta/models/fake-model:generateContent",
        ),
        (
            "/v1beta/models/gemini-pro:streamGenerateContent?alt=sse",
            "/v1beta/models/fake-model:streamGenerateContent?alt=sse",
        ),
    ] {
        provider.clear_requests();
        let r = client()
            .post(format!(
                "{}{}{}key={KEY}",
                proxy.url(path),
                if path.contains('?') { "&" } else { "?" },
                ""
            ))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let seen = &provider.requests()[0];
        assert_eq!(seen.path, upstream);
        assert_eq!(seen.header("x-goog-api-key"), Some(PROVIDER_KEY));
        assert_eq!(seen.json(), body, "the body passes untouched");
    }
}
