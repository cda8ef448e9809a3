//! End-to-end with the official Python `anthropic` SDK as the client: what an SDK user sees
//! through FlexiProxy in front of an OpenAI-compatible provider.

use crate::clients::anthropic_sdk;
use crate::harness::*;
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use serde_json::{Value, json};

fn request(extra: Value) -> Value {
    let mut r = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 512,
        "messages": [{"role": "user", "content": "hello"}],
    });
    if let Value::Object(map) = extra {
        for (k, v) in map {
            r[k] = v;
        }
    }
    r
}

/// A provider that answers each test's request according to its first user message.
async fn scripted_provider() -> FakeProvider {
    FakeProvider::start(|req| {
        let body = req.json();
        let stream = body["stream"] == true;
        let prompt = body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_owned();
        match prompt.as_str() {
            "tools" => {
                if stream {
                    // Two parallel calls; the second's arguments interleave with the first's.
                    let chunks = vec![
                        openai::sse_chunk(json!({"role":"assistant","content":null}), None),
                        openai::sse_chunk(json!({"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]}), None),
                        openai::sse_chunk(json!({"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{\"tz\":"}}]}), None),
                        openai::sse_chunk(json!({"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}), None),
                        openai::sse_chunk(json!({"tool_calls":[{"index":1,"function":{"arguments":"\"CET\"}"}}]}), None),
                        openai::sse_chunk(json!({}), Some("tool_calls")),
                        openai::sse_usage_chunk(50, 20),
                        openai::SSE_DONE.to_owned(),
                    ];
                    Reply::sse(chunks)
                } else {
                    Reply::json(200, openai::tool_call_completion(&[
                        ("call_a", "get_weather", "{\"city\":\"Paris\"}"),
                        ("call_b", "get_time", "{\"tz\":\"CET\"}"),
                    ]))
                }
            }
            "think" => {
                if stream {
                    Reply::sse(vec![
                        openai::sse_chunk(json!({"role":"assistant","reasoning_content":"First, "}), None),
                        openai::sse_chunk(json!({"reasoning_content":"consider the question."}), None),
                        openai::sse_chunk(json!({"content":"The answer is 42."}), None),
                        openai::sse_chunk(json!({}), Some("stop")),
                        openai::sse_usage_chunk(30, 12),
                        openai::SSE_DONE.to_owned(),
                    ])
                } else {
                    let mut c = openai::chat_completion("The answer is 42.");
                    c["choices"][0]["message"]["reasoning_content"] = json!("First, consider the question.");
                    Reply::json(200, c)
                }
            }
            "401" => Reply::json(401, openai::error_body("Incorrect API key provided", "invalid_request_error", "invalid_api_key")),
            "429" => Reply::json(429, openai::error_body("Rate limit reached", "rate_limit_error", None)).header("retry-after", "3"),
            "500" => Reply::json(500, openai::error_body("The server had an error", "server_error", None)),
            _ => {
                if stream {
                    Reply::sse(openai::text_stream("Hi there, SDK!", 5))
                } else {
                    Reply::json(200, openai::chat_completion("Hi there, SDK!"))
                }
            }
        }
    })
    .await
}

fn proxy_for(provider: &FakeProvider) -> Proxy {
    Proxy::start(&[("fake", adapter_yaml(&provider.base_url(), &[KEY], ""))])
}

fn blocks_of(m: &Value) -> Vec<String> {
    m["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_text_create_and_stream() {
    let provider = scripted_provider().await;
    let proxy = proxy_for(&provider);
    let base = proxy.url("");
    for mode in ["create", "stream"] {
        let out = tokio::task::spawn_blocking({
            let base = base.clone();
            move || anthropic_sdk(&base, KEY, mode, &request(json!({})))
        })
        .await
        .unwrap();
        let m = &out["message"];
        assert_eq!(m["content"][0]["text"], "Hi there, SDK!", "{mode}: {out}");
        assert_eq!(m["model"], "claude-sonnet-4-5");
        assert_eq!(m["stop_reason"], "end_turn");
        assert!(m["usage"]["output_tokens"].as_u64().unwrap() > 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_two_parallel_tool_calls() {
    let provider = scripted_provider().await;
    let proxy = proxy_for(&provider);
    let base = proxy.url("");
    let tools = json!({
        "messages": [{"role": "user", "content": "tools"}],
        "tools": [
            {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"name": "get_time", "description": "Time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}}
        ]
    });
    for mode in ["create", "stream"] {
        let req = request(tools.clone());
        let base = base.clone();
        let out = tokio::task::spawn_blocking(move || anthropic_sdk(&base, KEY, mode, &req))
            .await
            .unwrap();
        let m = &out["message"];
        assert_eq!(blocks_of(m), vec!["tool_use", "tool_use"], "{mode}: {out}");
        assert_eq!(m["content"][0]["name"], "get_weather");
        assert_eq!(m["content"][0]["input"], json!({"city": "Paris"}));
        assert_eq!(m["content"][1]["name"], "get_time");
        assert_eq!(m["content"][1]["input"], json!({"tz": "CET"}));
        assert_eq!(m["stop_reason"], "tool_use");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_thinking_from_reasoning_content() {
    let provider = scripted_provider().await;
    let proxy = proxy_for(&provider);
    let base = proxy.url("");
    for mode in ["create", "stream"] {
        let req = request(json!({"messages": [{"role": "user", "content": "think"}],
            "thinking": {"type": "enabled", "budget_tokens": 4096}}));
        let base = base.clone();
        let out = tokio::task::spawn_blocking(move || anthropic_sdk(&base, KEY, mode, &req))
            .await
            .unwrap();
        let m = &out["message"];
        assert_eq!(blocks_of(m), vec!["thinking", "text"], "{mode}: {out}");
        assert_eq!(m["content"][0]["thinking"], "First, consider the question.");
        assert!(!m["content"][0]["signature"].as_str().unwrap().is_empty());
        assert_eq!(m["content"][1]["text"], "The answer is 42.");
    }
    // The provider was asked for reasoning.
    let seen = provider.requests();
    assert!(
        seen.iter()
            .all(|r| r.json()["reasoning_effort"] == "medium")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_sees_typed_errors() {
    let provider = scripted_provider().await;
    let proxy = proxy_for(&provider);
    let base = proxy.url("");
    for (prompt, class, status, kind) in [
        ("401", "AuthenticationError", 401, "authentication_error"),
        ("429", "RateLimitError", 429, "rate_limit_error"),
        ("500", "InternalServerError", 500, "api_error"),
    ] {
        for mode in ["create", "stream"] {
            let req = request(json!({"messages": [{"role": "user", "content": prompt}]}));
            let base = base.clone();
            let out = tokio::task::spawn_blocking(move || anthropic_sdk(&base, KEY, mode, &req))
                .await
                .unwrap();
            assert_eq!(out["error"], class, "{prompt} {mode}: {out}");
            assert_eq!(out["status"], status);
            assert_eq!(out["type"], kind);
            if prompt == "429" {
                assert_eq!(out["retry_after"], "3");
            }
        }
    }
    // A bad key at the proxy is the SDK's AuthenticationError too.
    let req = request(json!({}));
    let out = tokio::task::spawn_blocking(move || anthropic_sdk(&base, "fp-wrong", "create", &req))
        .await
        .unwrap();
    assert_eq!(out["error"], "AuthenticationError");
}
