//! Same-protocol adapters: Anthropic clients on Anthropic-compatible providers, OpenAI
//! clients on OpenAI-compatible providers. Only the model and the auth change; bytes stream
//! through untouched.

use crate::clients::{anthropic_sdk, openai_sdk};
use crate::harness::*;
use flexiproxy_testkit::{FakeProvider, Reply, anthropic, openai};
use serde_json::{Value, json};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

fn anthropic_adapter(origin: &str, extra: &str) -> String {
    adapter_yaml(origin, &[KEY], &format!("protocol: anthropic\n{extra}"))
}

/// The client's exact bytes with only the model value swapped.
fn with_model(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    let needle = format!("\"model\":\"{from}\"");
    assert!(text.contains(&needle));
    text.replacen(&needle, &format!("\"model\":\"{to}\""), 1)
        .into_bytes()
}

async fn anthropic_provider() -> FakeProvider {
    FakeProvider::start(|req| {
        if req.path.contains("count_tokens") {
            return Reply::json(200, json!({"input_tokens": 1234}));
        }
        let body = req.json();
        if body["messages"][0]["content"] == "fail" {
            return Reply::json(429, anthropic::error_body("rate_limit_error", "slow down"))
                .header("retry-after", "9");
        }
        if body["stream"] == true {
            Reply::sse(anthropic::text_stream(
                "Straight from the provider — ünïcødé",
                5,
            ))
            .split_writes(vec![13])
        } else {
            Reply::json(200, anthropic::message("Straight from the provider"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_passthrough_changes_only_model_and_auth() {
    let provider = anthropic_provider().await;
    let proxy = Proxy::start(&[("ds", anthropic_adapter(&provider.origin(), ""))]);
    for stream in [false, true] {
        provider.clear_requests();
        // Odd spacing and key order: the body must not be re-serialised.
        let client_body = format!(
            "{{\"max_tokens\": 64,  \"model\":\"claude-sonnet-4-5\",\"stream\":{stream},\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}], \"metadata\":{{\"user_id\":\"u\"}}}}"
        );
        let r = client()
            .post(proxy.url("/v1/messages?beta=true"))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "fine-grained-tool-streaming-2025-05-14")
            .header("x-stainless-lang", "python")
            .body(client_body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let got = r.bytes().await.unwrap();
        let seen = provider.wait_for_requests(1, DEADLINE).await;
        let req = &seen[0];
        // The client's query string is not forwarded (it may carry a key).
        assert_eq!(req.path, "/v1/messages");
        assert_eq!(
            &req.body[..],
            &with_model(client_body.as_bytes(), "claude-sonnet-4-5", "fake-model")[..]
        );
        assert_eq!(req.header("x-api-key"), Some(PROVIDER_KEY));
        assert!(req.header("authorization").is_none());
        assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(
            req.header("anthropic-beta"),
            Some("fine-grained-tool-streaming-2025-05-14")
        );
        assert!(req.header("x-stainless-lang").is_none());
        assert_eq!(
            req.header("content-length"),
            Some(req.body.len().to_string().as_str())
        );
        // The client gets exactly the provider's bytes.
        let expected = if stream {
            anthropic::text_stream("Straight from the provider — ünïcødé", 5)
                .concat()
                .into_bytes()
        } else {
            serde_json::to_vec(&anthropic::message("Straight from the provider")).unwrap()
        };
        assert_eq!(&got[..], &expected[..], "stream={stream}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_passthrough_options_errors_and_count_tokens() {
    let provider = anthropic_provider().await;
    let proxy = Proxy::start(&[(
        "ds",
        anthropic_adapter(
            &provider.origin(),
            "options:\n  auth_header: bearer\n  strip_anthropic_beta: true",
        ),
    )]);
    let r = client()
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-beta", "x")
        .json(&json!({"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"fail"}]}))
        .send()
        .await
        .unwrap();
    // Provider errors are already in the client's shape: passed through with status and headers.
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "9");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let req = &provider.wait_for_requests(1, DEADLINE).await[0];
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert!(req.header("x-api-key").is_none());
    assert!(req.header("anthropic-beta").is_none());
    assert_eq!(
        req.header("anthropic-version"),
        Some("2023-06-01"),
        "a default version is sent"
    );
    assert_eq!(req.json()["model"], "fake-small");

    let r = client()
        .post(proxy.url("/v1/messages/count_tokens"))
        .header("x-api-key", KEY)
        .json(&json!({"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["input_tokens"],
        1234,
        "counted by the provider"
    );
    assert!(
        provider
            .requests()
            .iter()
            .any(|r| r.path == "/v1/messages/count_tokens")
    );
}

async fn openai_provider() -> FakeProvider {
    FakeProvider::start(|req| {
        let body = req.json();
        let stream = body["stream"] == true;
        if body["tools"].is_array() {
            return if stream {
                Reply::sse(openai::tool_call_stream(
                    "call_1",
                    "get_weather",
                    "{\"city\":\"Oslo\"}",
                    4,
                ))
            } else {
                Reply::json(
                    200,
                    openai::tool_call_completion(&[(
                        "call_1",
                        "get_weather",
                        "{\"city\":\"Oslo\"}",
                    )]),
                )
            };
        }
        if stream {
            Reply::sse(openai::text_stream("Hello, OpenAI client", 4)).split_writes(vec![9])
        } else {
            Reply::json(200, openai::chat_completion("Hello, OpenAI client"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_passthrough_bytes_and_models() {
    let provider = openai_provider().await;
    let proxy = Proxy::start(&[("oa", adapter_yaml(&provider.base_url(), &[KEY], ""))]);
    for stream in [false, true] {
        provider.clear_requests();
        let body = format!(
            "{{\"model\":\"gpt-4o\", \"stream\": {stream}, \"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}"
        );
        let r = client()
            .post(proxy.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let got = r.bytes().await.unwrap();
        let req = &provider.wait_for_requests(1, DEADLINE).await[0];
        assert_eq!(req.path, "/v1/chat/completions");
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {PROVIDER_KEY}").as_str())
        );
        assert_eq!(
            &req.body[..],
            &with_model(body.as_bytes(), "gpt-4o", "fake-model")[..]
        );
        let expected = if stream {
            openai::text_stream("Hello, OpenAI client", 4)
                .concat()
                .into_bytes()
        } else {
            serde_json::to_vec(&openai::chat_completion("Hello, OpenAI client")).unwrap()
        };
        assert_eq!(&got[..], &expected[..]);
    }
    let v: Value = client()
        .get(proxy.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["object"], "model");
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_client_on_anthropic_source_gets_a_clear_400_for_what_the_source_cannot_take() {
    // OpenAI clients are translated onto Anthropic sources now (tests/it/pairs.rs); what
    // the Messages API cannot carry is refused here, in OpenAI's shape, and never sent on.
    let provider = anthropic_provider().await;
    let proxy = Proxy::start(&[("ds", anthropic_adapter(&provider.origin(), ""))]);
    let r = client()
        .post(proxy.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model":"x","n":2,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"]["type"], "invalid_request_error",
        "OpenAI's error shape"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().starts_with("n:"),
        "{v}"
    );
    assert_eq!(provider.request_count(), 0);
    // Unknown keys get OpenAI's shape on OpenAI endpoints too.
    let r = client()
        .post(proxy.url("/v1/chat/completions"))
        .bearer_auth("fp-nope")
        .json(&json!({"model":"x","messages":[]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert_eq!(provider.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn official_openai_sdk_through_passthrough() {
    let provider = openai_provider().await;
    let proxy = Proxy::start(&[("oa", adapter_yaml(&provider.base_url(), &[KEY], ""))]);
    let base = proxy.url("/v1");
    let req = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let (b, r) = (base.clone(), req.clone());
    let out = tokio::task::spawn_blocking(move || openai_sdk(&b, KEY, "create", &r))
        .await
        .unwrap();
    assert_eq!(
        out["completion"]["choices"][0]["message"]["content"], "Hello, OpenAI client",
        "{out}"
    );
    let (b, r) = (base.clone(), req.clone());
    let out = tokio::task::spawn_blocking(move || openai_sdk(&b, KEY, "stream", &r))
        .await
        .unwrap();
    assert_eq!(out["text"], "Hello, OpenAI client", "{out}");
    let tools = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]});
    for mode in ["create", "stream"] {
        let (b, r) = (base.clone(), tools.clone());
        let out = tokio::task::spawn_blocking(move || openai_sdk(&b, KEY, mode, &r))
            .await
            .unwrap();
        let call = if mode == "create" {
            out["completion"]["choices"][0]["message"]["tool_calls"][0]["function"].clone()
        } else {
            out["tool_calls"][0].clone()
        };
        assert_eq!(call["name"], "get_weather", "{mode}: {out}");
        assert_eq!(call["arguments"], "{\"city\":\"Oslo\"}");
    }
    let out = tokio::task::spawn_blocking(move || openai_sdk(&base, "fp-wrong", "create", &req))
        .await
        .unwrap();
    assert_eq!(out["error"], "AuthenticationError");
}

#[tokio::test(flavor = "multi_thread")]
async fn official_anthropic_sdk_through_anthropic_passthrough() {
    let provider = anthropic_provider().await;
    let proxy = Proxy::start(&[("ds", anthropic_adapter(&provider.origin(), ""))]);
    let base = proxy.url("");
    for mode in ["create", "stream"] {
        let base = base.clone();
        let req = json!({"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
        let out = tokio::task::spawn_blocking(move || anthropic_sdk(&base, KEY, mode, &req))
            .await
            .unwrap();
        let text = out["message"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            text.starts_with("Straight from the provider"),
            "{mode}: {out}"
        );
    }
    let req = json!({"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "fail"}]});
    let out = tokio::task::spawn_blocking(move || anthropic_sdk(&base, KEY, "create", &req))
        .await
        .unwrap();
    assert_eq!(out["error"], "RateLimitError");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_bodies_pass_through_whole_both_ways() {
    // A Claude Code-sized request (beyond Pingora's 64 KiB replay buffer) and a 3 MiB answer
    // (beyond what the proxy holds to send with a length, so passed on as it arrives) both
    // arrive byte for byte.
    let answer = {
        let mut message = anthropic::message("big");
        message["content"][0]["text"] = json!("ünïcødé and more ".repeat(180_000));
        serde_json::to_vec(&message).unwrap()
    };
    assert!(answer.len() > 3 << 20);
    let reply = answer.clone();
    let provider = FakeProvider::start(move |_| {
        Reply::text(200, "application/json", reply.clone()).split_writes(vec![65_536, 7])
    })
    .await;
    let proxy = Proxy::start(&[("ds", anthropic_adapter(&provider.origin(), ""))]);
    let mut fixture: Value =
        serde_json::from_str(include_str!("../fixtures/claude_code_request.json")).unwrap();
    fixture["stream"] = json!(false);
    let client_model = fixture["model"].as_str().unwrap().to_owned();
    let client_body = serde_json::to_vec(&fixture).unwrap();
    assert!(client_body.len() > 64 * 1024);
    for _ in 0..2 {
        provider.clear_requests();
        // Sent as `serde_json::to_vec` writes it, like `client_body`.
        let r = post_messages(&proxy, &fixture).await;
        assert_eq!(r.status(), 200);
        let got = r.bytes().await.unwrap();
        assert!(got[..] == answer[..], "the client got other bytes");
        let seen = provider.wait_for_requests(1, DEADLINE).await;
        assert!(!seen[0].chunked, "the request goes with its length");
        assert_eq!(
            &seen[0].body[..],
            &with_model(&client_body, &client_model, "fake-model")[..]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passed_through_stream_arrives_as_it_comes_and_ends_when_the_client_leaves() {
    // 200 events 50 ms apart: 10 s of stream. The client reads the first events and leaves.
    let provider = FakeProvider::start(|_| {
        Reply::sse(anthropic::text_stream(&"tick ".repeat(200), 200))
            .delay_between_writes(Duration::from_millis(50))
    })
    .await;
    let proxy = Proxy::start(&[("ds", anthropic_adapter(&provider.origin(), ""))]);
    let mut r = post_messages(&proxy, &messages_body(true)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let first = r.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    drop(r);
    assert_provider_saw_the_close(&provider).await;
    assert_healthy(&proxy).await;
}
