//! The provider check (docs/provider-check.md): `flexiproxy adapter probe NAME --json
//! [--apply]` against the fake provider with each quirk on its own — the right outcome and
//! suggestion, at most 12 small requests (counted in the fake's own log), `--apply` writing
//! exactly the suggested lines with every comment kept, and a client that failed through the
//! proxy before the apply succeeding after it. The Anthropic, Responses and Gemini fakes get
//! the checks of their protocol; the API (`POST /admin/api/adapters/{name}/probe`) and the
//! panel's Check page keep it to the owner, one at a time, and apply what they showed.

use crate::claude_code::{npm_client, run_claude};
use crate::harness::*;
use crate::management::{Auth, TOKEN, call, call_with, login, page_as, start};
use flexiproxy_testkit::quirks::{self, Quirks};
use flexiproxy_testkit::{FakeProvider, Reply, anthropic, gemini, responses};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// A 1×1 PNG.
const PIXEL: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// An adapter file with comments in three places and `options` set by hand (`before` is more
/// option lines, 4-space indented).
fn adapter(base_url: &str, before: &str, owner: &str) -> String {
    format!(
        "# Checked by the provider check tests.\n{owner}source:\n  base_url: {base_url}\n  api_key: {PROVIDER_KEY}\n  model: fake-model # the fake's only model\n  options:\n    # set by hand\n    top_k: false\n{before}keys:\n  - sha256: {}\n",
        sha256_hex(KEY)
    )
}

/// Runs `flexiproxy adapter probe NAME` with `args`; (exit success, stdout).
async fn cli(proxy: &Proxy, name: &str, args: &[&str]) -> (bool, String) {
    let config = proxy.config_path();
    let mut all = vec!["adapter".to_owned(), "probe".into(), name.into()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
            .args(&all)
            .arg("--config")
            .arg(config)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stdout.contains(PROVIDER_KEY) && !stderr.contains(PROVIDER_KEY));
        (out.status.success(), stdout)
    })
    .await
    .unwrap()
}

async fn check_json(proxy: &Proxy, name: &str) -> Value {
    let (_, stdout) = cli(proxy, name, &["--json"]).await;
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The outcome and detail of one check.
fn check<'a>(report: &'a Value, name: &str) -> (&'a str, &'a str) {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` check in {report:#}"));
    (
        c["outcome"].as_str().unwrap(),
        c["detail"].as_str().unwrap(),
    )
}

/// The check's requests, from the fake's own log: as many as it says, at most 12, each with a
/// small output limit, and a few thousand tokens in all (output limits plus a generous
/// estimate of the input: a token per 4 bytes of body).
fn assert_bounded(provider: &FakeProvider, report: &Value) {
    let seen = provider.requests();
    assert_eq!(seen.len() as u64, report["requests_sent"], "{report:#}");
    assert!(seen.len() <= 12, "{} requests", seen.len());
    let mut tokens = 0;
    for r in &seen {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let max = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
            .iter()
            .find_map(|k| body[k].as_u64())
            .or_else(|| body["generationConfig"]["maxOutputTokens"].as_u64())
            .unwrap_or(0);
        assert!(max <= 256, "{}: max {max}", r.path);
        if r.method == "POST" {
            assert!(max > 0, "{}: no output limit", r.path);
        }
        tokens += max + r.body.len() as u64 / 4;
    }
    assert!(tokens <= 4000, "{tokens} tokens");
}

/// What a client sends through the proxy to show a quirk.
#[derive(Clone, Copy, Debug)]
enum Client {
    /// An Anthropic request, streamed.
    Stream,
    /// An Anthropic request.
    Plain,
    /// An Anthropic request with an image.
    Image,
    /// An Anthropic tool loop: the call, then its result with the thinking that came.
    ToolLoop,
    /// A Responses request for a JSON schema answer.
    Json,
    /// A Responses request with a system message after the first turn.
    MidSystem,
}

/// Whether the client got its answer through the proxy.
async fn client_succeeds(proxy: &Proxy, who: Client) -> bool {
    let anthropic = |content: Value, stream: bool| {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": stream,
               "messages": [{"role": "user", "content": content}]})
    };
    let responses = |body: Value| async move {
        client()
            .post(proxy.url("/v1/responses"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    };
    let resp = match who {
        Client::Stream => post_messages(proxy, &anthropic(json!("Say hello"), true)).await,
        Client::Plain => post_messages(proxy, &anthropic(json!("Say hello"), false)).await,
        Client::Image => {
            let content = json!([
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
                {"type": "text", "text": "What is this?"},
            ]);
            post_messages(proxy, &anthropic(content, false)).await
        }
        Client::ToolLoop => return tool_loop(proxy).await,
        Client::Json => {
            responses(
                json!({"model": "gpt-5", "input": "Say pong as JSON", "max_output_tokens": 64,
                "text": {"format": {"type": "json_schema", "name": "w", "strict": true,
                    "schema": {"type": "object", "properties": {"word": {"type": "string"}},
                               "required": ["word"], "additionalProperties": false}}}}),
            )
            .await
        }
        Client::MidSystem => {
            responses(json!({"model": "gpt-5", "max_output_tokens": 64, "input": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hi."},
                {"role": "system", "content": "Answer with pong."},
                {"role": "user", "content": "Go on."},
            ]}))
            .await
        }
    };
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    // A stream that started well can still carry the provider's refusal as an error event.
    status == 200 && !text.contains("event: error") && !text.contains("\"type\":\"error\"")
}

/// Two Anthropic turns with a tool: the call (with the model's thinking), then the result
/// with the assistant turn as it came back.
async fn tool_loop(proxy: &Proxy) -> bool {
    let tools = json!([{"name": "get_weather", "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let ask = json!({"role": "user", "content": "Weather in Paris?"});
    let first = post_messages(
        proxy,
        &json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "tools": tools,
                "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": [ask]}),
    )
    .await;
    if first.status() != 200 {
        return false;
    }
    let answer: Value = first.json().await.unwrap();
    let Some(call) = answer["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
    else {
        return false;
    };
    let result = json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call["id"], "content": "18 °C"}]});
    let second = post_messages(
        proxy,
        &json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "tools": tools,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "messages": [ask, {"role": "assistant", "content": answer["content"]}, result]}),
    )
    .await;
    second.status() == 200
}

struct Case {
    what: &'static str,
    quirks: Quirks,
    /// Option lines the adapter starts with (besides `top_k: false`).
    before: &'static str,
    check: &'static str,
    outcome: &'static str,
    suggested: Value,
    client: Client,
    /// Whether the client fails through the proxy before the apply.
    fails_before: bool,
}

fn cases() -> Vec<Case> {
    let q = Quirks::default;
    let thinking = Some("reasoning_content");
    vec![
        Case {
            what: "no usage in streams",
            quirks: Quirks {
                no_stream_usage: true,
                ..q()
            },
            before: "",
            check: "stream_usage",
            outcome: "needs_option",
            suggested: json!({"stream_usage": false}),
            client: Client::Stream,
            fails_before: false,
        },
        Case {
            what: "stream_options refused",
            quirks: Quirks {
                refuse_stream_options: true,
                ..q()
            },
            before: "",
            check: "stream_usage",
            outcome: "needs_option",
            suggested: json!({"stream_usage": false}),
            client: Client::Stream,
            fails_before: true,
        },
        Case {
            what: "reasoning in `reasoning`",
            quirks: Quirks {
                reasoning_field: Some("reasoning"),
                ..q()
            },
            before: "",
            check: "reasoning",
            outcome: "ok",
            suggested: json!({}),
            client: Client::ToolLoop,
            fails_before: false,
        },
        Case {
            what: "reasoning in `reasoning_content`",
            quirks: Quirks {
                reasoning_field: thinking,
                ..q()
            },
            before: "",
            check: "reasoning",
            outcome: "ok",
            suggested: json!({}),
            client: Client::ToolLoop,
            fails_before: false,
        },
        Case {
            what: "reasoning required back on tool turns",
            quirks: Quirks {
                reasoning_field: thinking,
                require_reasoning_back: true,
                ..q()
            },
            before: "    echo_reasoning: false\n",
            check: "echo_reasoning",
            outcome: "needs_option",
            suggested: json!({"echo_reasoning": true}),
            client: Client::ToolLoop,
            fails_before: true,
        },
        Case {
            what: "max_completion_tokens only",
            quirks: Quirks {
                max_completion_tokens_only: true,
                ..q()
            },
            before: "",
            check: "max_tokens_field",
            outcome: "needs_option",
            suggested: json!({"max_tokens_field": "max_completion_tokens"}),
            client: Client::Plain,
            fails_before: true,
        },
        Case {
            what: "json_object only",
            quirks: Quirks {
                json_object_only: true,
                ..q()
            },
            before: "",
            check: "json_schema",
            outcome: "needs_option",
            suggested: json!({"json_schema": false}),
            client: Client::Json,
            fails_before: true,
        },
        Case {
            what: "system messages refused",
            quirks: Quirks {
                refuse_system_messages: true,
                ..q()
            },
            before: "",
            check: "system_messages",
            outcome: "needs_option",
            suggested: json!({"system_messages": "user"}),
            client: Client::MidSystem,
            fails_before: true,
        },
        Case {
            what: "images refused",
            quirks: Quirks {
                refuse_images: true,
                ..q()
            },
            before: "",
            check: "images",
            outcome: "needs_option",
            suggested: json!({"images": false}),
            client: Client::Image,
            fails_before: true,
        },
    ]
}

/// The lines only in `a`.
fn only_in<'a>(a: &'a str, b: &str) -> Vec<&'a str> {
    let b: Vec<&str> = b.lines().collect();
    a.lines().filter(|l| !b.contains(l)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_quirk_gets_its_option_and_apply_makes_the_client_work() {
    for case in cases() {
        let what = case.what;
        let provider = FakeProvider::start(quirks::chat(case.quirks, None, "Done.")).await;
        let file = adapter(&provider.base_url(), case.before, "");
        let proxy = Proxy::start(&[("q", file.clone())]);
        assert_eq!(
            client_succeeds(&proxy, case.client).await,
            !case.fails_before,
            "{what}: the client before the check"
        );

        provider.clear_requests();
        let report = check_json(&proxy, "q").await;
        let (outcome, detail) = check(&report, case.check);
        assert_eq!(outcome, case.outcome, "{what}: {report:#}");
        assert_eq!(
            report["suggested_options"], case.suggested,
            "{what}: {report:#}"
        );
        assert_bounded(&provider, &report);
        if case.check == "reasoning" {
            let field = case.quirks.reasoning_field.unwrap();
            assert!(detail.contains(&format!("`{field}`")), "{what}: {detail}");
        }
        // The other checks pass on a fake with this one quirk.
        for c in report["checks"].as_array().unwrap() {
            if c["name"] != case.check {
                assert!(
                    c["outcome"] == "ok"
                        || c["outcome"] == "skipped"
                        || c["name"] == "stream_usage",
                    "{what}: {c}"
                );
            }
        }

        let generation = proxy.generation();
        provider.clear_requests();
        let (ok, stdout) = cli(&proxy, "q", &["--apply"]).await;
        assert!(ok, "{what}: {stdout}");
        let path = proxy.adapters_dir().join("q.yaml");
        let after = std::fs::read_to_string(&path).unwrap();
        let mut written: Vec<String> = case
            .suggested
            .as_object()
            .unwrap()
            .iter()
            // The writer quotes every string.
            .map(|(k, v)| format!("    {k}: {v}"))
            .collect();
        written.sort();
        let mut added: Vec<String> = only_in(&after, &file)
            .into_iter()
            .map(str::to_owned)
            .collect();
        added.sort();
        assert_eq!(added, written, "{what}: the file now:\n{after}");
        let removed = only_in(&file, &after);
        assert_eq!(
            removed,
            case.before.lines().collect::<Vec<_>>(),
            "{what}: only the changed option lines go:\n{after}"
        );
        if written.is_empty() {
            assert!(stdout.contains("No option to change."), "{what}: {stdout}");
        } else {
            assert!(stdout.contains("Written to"), "{what}: {stdout}");
            wait_until(Duration::from_secs(10), "the applied file is live", || {
                proxy.generation() > generation
            });
        }
        assert!(
            client_succeeds(&proxy, case.client).await,
            "{what}: the client after --apply"
        );
    }
}

/// A source without tool calls: the check says so, and no option is suggested (none helps).
#[tokio::test(flavor = "multi_thread")]
async fn a_source_without_tools_fails_the_tool_check_with_no_option() {
    let quirks = Quirks {
        no_tools: true,
        ..Quirks::default()
    };
    let provider = FakeProvider::start(quirks::chat(quirks, None, "Done.")).await;
    let proxy = Proxy::start(&[("q", adapter(&provider.base_url(), "", ""))]);
    assert!(!client_succeeds(&proxy, Client::ToolLoop).await);
    provider.clear_requests();
    let report = check_json(&proxy, "q").await;
    let (outcome, detail) = check(&report, "tool_call");
    assert_eq!(outcome, "failed");
    assert!(
        detail.contains("tools are not supported by this model"),
        "{detail}"
    );
    assert!(detail.contains("no option gives a model tools"), "{detail}");
    assert_eq!(check(&report, "parallel_tool_calls").0, "skipped");
    assert_eq!(report["suggested_options"], json!({}));
    assert_bounded(&provider, &report);
    let (ok, stdout) = cli(&proxy, "q", &["--apply"]).await;
    assert!(!ok, "a failed check exits non-zero: {stdout}");
    assert!(stdout.contains("No option to change."), "{stdout}");
}

/// Claude Code's tool loop fails on a provider that wants its reasoning back until the check's
/// `--apply` sets `echo_reasoning: true`; then it completes.
#[tokio::test(flavor = "multi_thread")]
async fn claude_code_works_after_the_check_applies_echo_reasoning() {
    let claude =
        tokio::task::spawn_blocking(|| npm_client("claude", "node/node_modules/.bin/claude"))
            .await
            .unwrap();
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("hello.txt");
    let quirks = Quirks {
        reasoning_field: Some("reasoning_content"),
        require_reasoning_back: true,
        ..Quirks::default()
    };
    let provider = FakeProvider::start(quirks::chat(
        quirks,
        Some((target.to_str().unwrap(), "Hello from FlexiProxy!\n")),
        "I wrote hello.txt for you.",
    ))
    .await;
    let file = adapter(&provider.base_url(), "    echo_reasoning: false\n", "");
    let proxy = Proxy::start(&[("cc", file)]);
    let run = || {
        let (claude, base_url, cwd) = (claude.clone(), proxy.url(""), work.path().to_owned());
        tokio::task::spawn_blocking(move || {
            run_claude(
                &claude,
                &base_url,
                KEY,
                &cwd,
                "Create hello.txt containing a greeting",
            )
        })
    };
    let (code, stdout, _) = run().await.unwrap();
    assert!(
        code != 0 || !stdout.contains("I wrote hello.txt for you."),
        "the loop cannot finish before: {stdout}"
    );
    std::fs::remove_file(&target).ok();

    let generation = proxy.generation();
    let (ok, out) = cli(&proxy, "cc", &["--apply"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("+    echo_reasoning: true"), "{out}");
    wait_until(Duration::from_secs(10), "the applied file is live", || {
        proxy.generation() > generation
    });
    let (code, stdout, stderr) = run().await.unwrap();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("I wrote hello.txt for you."), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "Hello from FlexiProxy!\n"
    );
}

/// A source in the Anthropic, Responses or Gemini protocol gets the checks of its protocol;
/// the Chat-only ones are skipped and say so.
#[tokio::test(flavor = "multi_thread")]
async fn anthropic_responses_and_gemini_sources_are_checked_in_their_protocol() {
    for protocol in ["anthropic", "responses", "gemini"] {
        let provider = FakeProvider::start(move |req| native_reply(protocol, req)).await;
        let base = if protocol == "responses" {
            provider.base_url()
        } else {
            provider.origin()
        };
        let file = format!(
            "source:\n  protocol: {protocol}\n  base_url: {base}\n  api_key: {PROVIDER_KEY}\n  model: fake-model\nkeys:\n  - sha256: {}\n",
            sha256_hex(KEY)
        );
        let proxy = Proxy::start(&[("n", file)]);
        let report = check_json(&proxy, "n").await;
        for name in [
            "authentication",
            "model",
            "plain_answer",
            "stream",
            "tool_call",
            "tool_result_turn",
            "tool_call_streamed",
            "parallel_tool_calls",
            "images",
        ] {
            assert_eq!(
                check(&report, name).0,
                "ok",
                "{protocol} {name}: {report:#}"
            );
        }
        assert!(
            check(&report, "parallel_tool_calls")
                .1
                .starts_with("2 calls"),
            "{protocol}"
        );
        for name in [
            "max_tokens_field",
            "stream_usage",
            "reasoning",
            "echo_reasoning",
            "json_schema",
            "system_messages",
        ] {
            let (outcome, detail) = check(&report, name);
            assert_eq!(outcome, "skipped", "{protocol} {name}");
            assert!(
                detail.contains(&format!("a {protocol} source has one way")),
                "{detail}"
            );
        }
        assert_eq!(report["suggested_options"], json!({}));
        assert_bounded(&provider, &report);
    }
}

/// A fake in a native protocol: the model list, text, streams with usage, a tool call (two
/// when Tokyo is asked for too), the answer after a tool result.
fn native_reply(protocol: &str, req: &flexiproxy_testkit::RecordedRequest) -> Reply {
    if req.method == "GET" {
        let list = if protocol == "gemini" {
            json!({"models": [{"name": "models/fake-model", "inputTokenLimit": 1048576, "outputTokenLimit": 65536}]})
        } else {
            json!({"data": [{"id": "fake-model"}]})
        };
        return Reply::json(200, list);
    }
    let body = req.body_text();
    let stream = body.contains("\"stream\":true") || req.path.contains("streamGenerateContent");
    let mut calls = vec![("call_1", "get_weather", "{\"city\":\"Paris\"}")];
    if body.contains("Tokyo") {
        calls.push(("call_2", "get_weather", "{\"city\":\"Tokyo\"}"));
    }
    let wants_call = body.contains("get_weather")
        && !["tool_result", "function_call_output", "functionResponse"]
            .iter()
            .any(|t| body.contains(t));
    match (protocol, wants_call, stream) {
        ("anthropic", true, true) => Reply::sse(anthropic::tool_use_stream(&calls, 2)),
        ("anthropic", true, false) => Reply::json(200, anthropic::tool_use_message(&calls)),
        ("anthropic", false, true) => Reply::sse(anthropic::text_stream("pong", 2)),
        ("anthropic", false, false) => Reply::json(200, anthropic::message("pong")),
        ("responses", true, true) => Reply::sse(responses_calls_stream(&calls)),
        ("responses", true, false) => {
            let (id, name, args) = calls[0];
            Reply::json(200, responses::tool_call_response(id, name, args))
        }
        ("responses", false, true) => Reply::sse(responses::text_stream("pong", 2)),
        ("responses", false, false) => Reply::json(200, responses::text_response("pong")),
        (_, true, true) => Reply::sse(gemini::calls_stream(&calls)),
        (_, true, false) => Reply::json(200, gemini::calls_response(&calls)),
        (_, false, true) => Reply::sse(gemini::text_stream("pong", 2)),
        (_, false, false) => Reply::json(200, gemini::text_response("pong")),
    }
}

/// A Responses stream with these function calls, one output item each.
fn responses_calls_stream(calls: &[(&str, &str, &str)]) -> Vec<String> {
    let event = |data: Value| {
        format!(
            "event: {}\ndata: {data}\n\n",
            data["type"].as_str().unwrap()
        )
    };
    let mut events = Vec::new();
    let mut items = Vec::new();
    for (i, (id, name, args)) in calls.iter().enumerate() {
        let item = json!({"type": "function_call", "id": format!("fc_{id}"), "call_id": id,
                          "name": name, "arguments": args, "status": "completed"});
        events.push(event(
            json!({"type": "response.output_item.added", "output_index": i, "item": item}),
        ));
        events.push(event(
            json!({"type": "response.output_item.done", "output_index": i, "item": item}),
        ));
        items.push(item);
    }
    let mut done = responses::tool_call_response(calls[0].0, calls[0].1, calls[0].2);
    done["output"] = json!(items);
    events.push(event(
        json!({"type": "response.completed", "response": done}),
    ));
    events
}

/// `management::start` (the admin token; alice, bob and admin carol) with `adapters` written
/// and loaded.
fn start_with_adapters(extra: &str, adapters: &[(&str, String)]) -> Proxy {
    let proxy = start(extra);
    for (name, yaml) in adapters {
        std::fs::write(proxy.adapters_dir().join(format!("{name}.yaml")), yaml).unwrap();
    }
    wait_until(Duration::from_secs(10), "the adapters load", || {
        let s = proxy.live.load();
        adapters.iter().all(|(name, _)| s.adapter(name).is_some())
    });
    proxy
}

/// The API: the owner (or an admin) checks and applies; another user gets 404; a second
/// check while one runs is refused; a non-admin owner's source on a private address is
/// refused by the egress rules before anything is sent.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_checks_and_applies_for_the_owner_only_one_at_a_time() {
    let quirks = Quirks {
        refuse_images: true,
        ..Quirks::default()
    };
    let provider = FakeProvider::start(quirks::chat(quirks, None, "Done.")).await;
    let proxy = start_with_adapters(
        "",
        &[
            ("mine", adapter(&provider.base_url(), "", "owner: alice\n")),
            // Its own client key: a key serves one adapter.
            (
                "ops",
                adapter(&provider.base_url(), "", "")
                    .replace(&sha256_hex(KEY), &sha256_hex("fp-ops-key")),
            ),
        ],
    );
    let path = "/admin/api/adapters/ops/probe";

    // The admin token: the report, the diff it would make, nothing written.
    let before = std::fs::read_to_string(proxy.adapters_dir().join("ops.yaml")).unwrap();
    let (status, answer) = call(
        &proxy,
        Method::POST,
        path,
        Some(json!({})),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["suggested_options"], json!({"images": false}));
    assert_eq!(answer["applied"], false);
    assert_eq!(answer["diff"], "@@ line 9 @@\n+    images: false\n");
    assert!(answer["requests_sent"].as_u64().unwrap() <= 12);
    assert_eq!(
        std::fs::read_to_string(proxy.adapters_dir().join("ops.yaml")).unwrap(),
        before
    );
    // Apply what was shown, against the version it was shown for.
    let version = answer["version"].as_str().unwrap().to_owned();
    let sent = provider.request_count();
    let (status, applied) = call_with(
        &proxy,
        Method::POST,
        path,
        Some(json!({"apply": true, "options": answer["suggested_options"]})),
        &Auth::Token(TOKEN),
        Some(&version),
    )
    .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["applied"], true);
    assert_eq!(
        provider.request_count(),
        sent,
        "applying a shown suggestion sends nothing"
    );
    let after = std::fs::read_to_string(proxy.adapters_dir().join("ops.yaml")).unwrap();
    assert!(
        after.contains("    # set by hand\n    top_k: false\n    images: false\n"),
        "{after}"
    );
    assert!(proxy.live.load().adapter("ops").is_some());
    // The audit log names the options applied.
    let applied = crate::audit::wait_for(&proxy, 1).await;
    let who = ("adapter.change".into(), "admin".into(), "ops".into());
    assert_eq!(crate::audit::triple(&applied[0]), who);
    assert_eq!(applied[0]["detail"], "options=images");
    // The same Apply again, against the old version: stale.
    let (status, _) = call_with(
        &proxy,
        Method::POST,
        path,
        Some(json!({"apply": true, "options": {"images": false}})),
        &Auth::Token(TOKEN),
        Some(&version),
    )
    .await;
    assert_eq!(status, 409);
    // Only the check's options may be written this way.
    let (status, e) = call(
        &proxy,
        Method::POST,
        path,
        Some(json!({"apply": true, "options": {"top_k": true}})),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 400, "{e}");

    // Owner only: bob gets 404 for alice's adapter, alice is held to the egress rules.
    let (bob, bob_csrf) = login(&proxy, "bob", "bob-password").await;
    let mine = "/admin/api/adapters/mine/probe";
    let (status, _) = call(
        &proxy,
        Method::POST,
        mine,
        Some(json!({})),
        &Auth::Session(bob, Some(bob_csrf)),
    )
    .await;
    assert_eq!(status, 404);
    let (alice, alice_csrf) = login(&proxy, "alice", "alice-password").await;
    let sent = provider.request_count();
    let (status, e) = call(
        &proxy,
        Method::POST,
        mine,
        Some(json!({})),
        &Auth::Session(alice.clone(), None),
    )
    .await;
    assert_eq!(status, 403, "a change without the CSRF token: {e}");
    let (status, answer) = call(
        &proxy,
        Method::POST,
        mine,
        Some(json!({})),
        &Auth::Session(alice, Some(alice_csrf)),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (outcome, detail) = check(&answer, "authentication");
    assert_eq!(outcome, "failed");
    assert!(detail.contains("internal address"), "{detail}");
    assert_eq!(answer["requests_sent"], 0);
    assert_eq!(
        provider.request_count(),
        sent,
        "nothing reached the private address"
    );
}

/// While a check of an adapter runs, a second one is refused at once (409, saying why), and
/// the first one still completes.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_check_while_one_runs_is_refused() {
    let slow = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let gate = slow.clone();
    let inner = quirks::chat(Quirks::default(), None, "Done.");
    let provider = FakeProvider::start(move |req| {
        let reply = inner(req);
        if gate.load(std::sync::atomic::Ordering::SeqCst) && req.method == "GET" {
            reply.delay_before_headers(Duration::from_secs(3))
        } else {
            reply
        }
    })
    .await;
    let proxy = start_with_adapters("", &[("ops", adapter(&provider.base_url(), "", ""))]);
    let path = "/admin/api/adapters/ops/probe";
    let first = {
        let url = proxy.admin_url(path);
        tokio::spawn(async move {
            client()
                .post(url)
                .bearer_auth(TOKEN)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    provider.wait_for_requests(1, Duration::from_secs(10)).await;
    let (status, e) = call(
        &proxy,
        Method::POST,
        path,
        Some(json!({})),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 409, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("a check of `ops` is running"),
        "{e}"
    );
    slow.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(first.await.unwrap(), 200);
    let (status, _) = call(
        &proxy,
        Method::POST,
        path,
        Some(json!({})),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "a check after the first ended runs");
}

/// Posts a panel form as a session (redirects not followed); (status, page).
async fn panel_post(
    proxy: &Proxy,
    path: &str,
    cookie: &str,
    lang: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let resp = client()
        .post(proxy.admin_url(path))
        .header("cookie", format!("fp_session={cookie}; lang={lang}"))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The value of a hidden field of the page's Apply form, HTML entities undone.
fn hidden(page: &str, name: &str) -> String {
    let value = page
        .split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no {name} field in:\n{page}"));
    value
        .replace("&#x22;", "\"")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&amp;", "&")
}

/// The panel: the adapter's menu links to its Check page; Run shows the table, the requests
/// sent and the diff (in English and Chinese); Apply writes what was shown; without the CSRF
/// token nothing runs; another user gets 404.
#[tokio::test(flavor = "multi_thread")]
async fn the_panel_check_page_shows_the_table_the_diff_and_applies() {
    let quirks = Quirks {
        refuse_system_messages: true,
        ..Quirks::default()
    };
    let provider = FakeProvider::start(quirks::chat(quirks, None, "Done.")).await;
    let proxy = start_with_adapters(
        "private_sources_allowed: [\"127.0.0.1\"]\n",
        &[("mine", adapter(&provider.base_url(), "", "owner: alice\n"))],
    );
    let (alice, csrf) = login(&proxy, "alice", "alice-password").await;
    let list = page_as(&proxy, "/", &alice).await;
    assert!(
        list.contains("href=\"/adapters/mine/check\">Check provider</a>"),
        "{list}"
    );
    let page = page_as(&proxy, "/adapters/mine/check", &alice).await;
    assert!(page.contains("id=\"check-run\""), "{page}");

    // Without the CSRF token: refused, nothing sent.
    let (status, _) = panel_post(&proxy, "/adapters/mine/check", &alice, "en", &[]).await;
    assert_eq!(status, 403);
    assert_eq!(provider.request_count(), 0);

    let (status, page) = panel_post(
        &proxy,
        "/adapters/mine/check",
        &alice,
        "zh",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"check-system_messages\""), "{page}");
    assert!(
        page.contains("需要设置选项"),
        "the outcome in Chinese: {page}"
    );
    assert!(
        page.contains(&format!("共发送 {} 个请求。", provider.request_count())),
        "{page}"
    );
    assert!(
        page.contains("+    system_messages: &quot;user&quot;"),
        "the diff: {page}"
    );
    assert!(!page.contains(PROVIDER_KEY));

    let (status, page) = panel_post(
        &proxy,
        "/adapters/mine/check",
        &alice,
        "en",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("needs an option") && page.contains("requests sent."),
        "{page}"
    );
    let sent = provider.request_count();
    let options = hidden(&page, "options");
    let version = hidden(&page, "version");
    assert_eq!(
        serde_json::from_str::<Value>(&options).unwrap(),
        json!({"system_messages": "user"})
    );
    let (status, page) = panel_post(
        &proxy,
        "/adapters/mine/check/apply",
        &alice,
        "en",
        &[
            ("csrf", &csrf),
            ("options", &options),
            ("version", &version),
        ],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"check-applied\""), "{page}");
    assert_eq!(provider.request_count(), sent, "Apply sends nothing");
    let file = std::fs::read_to_string(proxy.adapters_dir().join("mine.yaml")).unwrap();
    assert!(
        file.contains("    # set by hand\n    top_k: false\n    system_messages: \"user\"\n"),
        "{file}"
    );
    // Applying the same page again: the file changed since, refused in the user's words.
    let (status, page) = panel_post(
        &proxy,
        "/adapters/mine/check/apply",
        &alice,
        "zh",
        &[
            ("csrf", &csrf),
            ("options", &options),
            ("version", &version),
        ],
    )
    .await;
    assert_eq!(status, 409);
    assert!(page.contains("该适配器在页面加载后已被修改"), "{page}");

    // Bob sees no such adapter.
    let (bob, bob_csrf) = login(&proxy, "bob", "bob-password").await;
    let (status, _) = panel_post(
        &proxy,
        "/adapters/mine/check",
        &bob,
        "en",
        &[("csrf", &bob_csrf)],
    )
    .await;
    assert_eq!(status, 404);
    let resp = client()
        .get(proxy.admin_url("/adapters/mine/check"))
        .header("cookie", format!("fp_session={bob}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// `--route N` checks that route's source and `--apply` writes its options, the default
/// source's left alone; a route that does not exist is refused naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_routes_source_is_checked_and_applied_with_route() {
    let plain = FakeProvider::start(quirks::chat(Quirks::default(), None, "Done.")).await;
    let quirks = Quirks {
        refuse_images: true,
        ..Quirks::default()
    };
    let vision = FakeProvider::start(quirks::chat(quirks, None, "Done.")).await;
    let file = adapter(&plain.base_url(), "", "").replace(
        "keys:\n",
        &format!(
            "routes:\n  - name: cheap\n    when: {{ model: \"claude-*haiku*\" }}\n    source: {{ base_url: \"{}\", api_key: {PROVIDER_KEY}, model: fake-model }}\nkeys:\n",
            vision.base_url()
        ),
    );
    let proxy = Proxy::start(&[("r", file)]);
    let report = check_json(&proxy, "r").await;
    assert_eq!(report["suggested_options"], json!({}), "the default source");
    assert_eq!(vision.request_count(), 0);
    let report: Value = {
        let (_, out) = cli(&proxy, "r", &["--route", "0", "--json", "--apply"]).await;
        serde_json::from_str(out.trim()).unwrap()
    };
    assert_eq!(report["suggested_options"], json!({"images": false}));
    assert_bounded(&vision, &report);
    let after = std::fs::read_to_string(proxy.adapters_dir().join("r.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&after).unwrap();
    assert_eq!(
        doc["routes"][0]["source"]["options"]["images"],
        serde_yaml_ng::Value::Bool(false)
    );
    assert_eq!(
        doc["source"]["options"]["images"],
        serde_yaml_ng::Value::Null
    );
    assert!(
        after.starts_with("# Checked by the provider check tests.\n"),
        "{after}"
    );
    assert!(after.contains("    # set by hand\n"), "{after}");
    let (ok, _) = cli(&proxy, "r", &["--route", "3"]).await;
    assert!(!ok);
}
