//! End-to-end with the official Python `openai` SDK as the client of an Anthropic-protocol
//! source (DeepSeek's, Kimi's, GLM's or Anthropic's Messages API) through FlexiProxy: what
//! an OpenAI SDK user sees — text, streams with usage, tool calls, a tool-result turn,
//! typed errors.

use crate::clients::openai_sdk;
use crate::harness::*;
use flexiproxy_testkit::{FakeProvider, Reply, anthropic};
use serde_json::{Value, json};

const WEATHER: (&str, &str, &str) = ("toolu_w1", "get_weather", r#"{"city":"Paris"}"#);
const TIME: (&str, &str, &str) = ("toolu_t1", "get_time", r#"{"tz":"CET"}"#);

/// An Anthropic-protocol provider that answers by the last user text.
async fn anthropic_provider() -> FakeProvider {
    FakeProvider::start(|req| {
        let body = req.json();
        let stream = body["stream"] == true;
        let last = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
            .unwrap_or_default();
        let has_result = last["content"]
            .as_array()
            .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"));
        let prompt = last["content"][0]["text"].as_str().unwrap_or("").to_owned();
        let reply = |events: Vec<String>, message: Value| {
            if stream {
                Reply::sse(events).split_writes(vec![5, 17])
            } else {
                Reply::json(200, message)
            }
        };
        match prompt.as_str() {
            _ if has_result => reply(
                anthropic::text_stream("It is sunny in Paris.", 3),
                anthropic::message("It is sunny in Paris."),
            ),
            "tools" => reply(
                anthropic::tool_use_stream(&[WEATHER, TIME], 3),
                anthropic::tool_use_message(&[WEATHER, TIME]),
            ),
            "think" => reply(
                anthropic::thinking_stream("Consider it.", "sig", "42"),
                anthropic::thinking_message("Consider it.", "sig", "42"),
            ),
            "429" => Reply::json(429, anthropic::error_body("rate_limit_error", "Slow down"))
                .header("retry-after", "3"),
            "overloaded" => {
                let mut events = anthropic::text_stream_head("Hel");
                events.push(anthropic::error_event("overloaded_error", "Overloaded"));
                Reply::sse(events)
            }
            _ => reply(
                anthropic::text_stream("Hi there, OpenAI SDK!", 4),
                anthropic::message("Hi there, OpenAI SDK!"),
            ),
        }
    })
    .await
}

fn request(prompt: Value) -> Value {
    let messages = match prompt {
        Value::String(s) => {
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": s}])
        }
        other => other,
    };
    json!({
        "model": "gpt-4o",
        "messages": messages,
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}
        ],
    })
}

async fn sdk(base: &str, mode: &'static str, req: Value) -> Value {
    let base = base.to_owned();
    tokio::task::spawn_blocking(move || openai_sdk(&base, KEY, mode, &req))
        .await
        .unwrap()
}

/// Both base URL styles: the host as printed (the SDK appends `/chat/completions`) and `/v1`.
fn bases(proxy: &Proxy) -> [String; 2] {
    [proxy.url(""), proxy.url("/v1")]
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_on_an_anthropic_source() {
    let provider = anthropic_provider().await;
    let proxy = Proxy::start(&[(
        "a",
        adapter_yaml(&provider.origin(), &[KEY], "protocol: anthropic"),
    )]);
    for base in bases(&proxy) {
        // Plain and streamed text, with usage when asked.
        let out = sdk(&base, "create", request(json!("hello"))).await;
        let c = &out["completion"];
        assert_eq!(
            c["choices"][0]["message"]["content"], "Hi there, OpenAI SDK!",
            "{out}"
        );
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        assert_eq!(c["model"], "gpt-4o");
        assert_eq!(c["usage"]["prompt_tokens"], anthropic::INPUT_TOKENS);
        let mut req = request(json!("hello"));
        req["stream_options"] = json!({"include_usage": true});
        let out = sdk(&base, "stream", req).await;
        assert_eq!(out["text"], "Hi there, OpenAI SDK!", "{out}");
        assert_eq!(out["finish_reason"], "stop");
        assert_eq!(out["usage"]["prompt_tokens"], anthropic::INPUT_TOKENS);
        assert!(out["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    }
    let base = proxy.url("");
    // Tool calls, plain and streamed: ids kept, arguments whole.
    let out = sdk(&base, "create", request(json!("tools"))).await;
    let m = &out["completion"]["choices"][0]["message"];
    assert_eq!(
        out["completion"]["choices"][0]["finish_reason"], "tool_calls",
        "{out}"
    );
    assert_eq!(m["tool_calls"][0]["id"], WEATHER.0);
    assert_eq!(m["tool_calls"][0]["function"]["arguments"], WEATHER.2);
    assert_eq!(m["tool_calls"][1]["function"]["name"], TIME.1);
    let out = sdk(&base, "stream", request(json!("tools"))).await;
    assert_eq!(out["finish_reason"], "tool_calls", "{out}");
    assert_eq!(
        out["tool_calls"],
        json!([{"id": WEATHER.0, "name": WEATHER.1, "arguments": WEATHER.2},
               {"id": TIME.0, "name": TIME.1, "arguments": TIME.2}])
    );
    // Reasoning arrives as reasoning_content.
    let out = sdk(&base, "stream", request(json!("think"))).await;
    assert_eq!(
        (out["reasoning"].as_str(), out["text"].as_str()),
        (Some("Consider it."), Some("42")),
        "{out}"
    );

    // The tool-result turn: the provider gets tool_result blocks for the calls, and the
    // system prompt at the top.
    provider.clear_requests();
    let history = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "tools"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": WEATHER.0, "type": "function", "function": {"name": WEATHER.1, "arguments": WEATHER.2}}]},
        {"role": "tool", "tool_call_id": WEATHER.0, "content": "sunny"}]);
    let out = sdk(&base, "create", request(history)).await;
    assert_eq!(
        out["completion"]["choices"][0]["message"]["content"], "It is sunny in Paris.",
        "{out}"
    );
    let seen = provider.requests()[0].json();
    assert_eq!(seen["system"][0]["text"], "Be brief.");
    assert_eq!(seen["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(seen["messages"][2]["content"][0]["tool_use_id"], WEATHER.0);
    assert_eq!(
        seen["max_tokens"], 4096,
        "a default, as the Messages API requires one"
    );
    assert_eq!(provider.requests()[0].path, "/v1/messages");
    assert!(
        provider.requests()[0]
            .header("x-api-key")
            .unwrap()
            .ends_with(PROVIDER_KEY)
    );

    // Errors as the SDK types them: a 429 with retry-after, an error mid-stream, a 400.
    for mode in ["create", "stream"] {
        let out = sdk(&base, mode, request(json!("429"))).await;
        assert_eq!(out["error"], "RateLimitError", "{mode}: {out}");
        assert_eq!(out["retry_after"], "3");
        assert_eq!(out["body"]["message"], "Slow down");
    }
    let out = sdk(&base, "stream", request(json!("overloaded"))).await;
    assert_eq!(out["error"], "APIError", "{out}");
    assert_eq!(out["message"], "Overloaded");
    let mut req = request(json!("hello"));
    req["n"] = json!(3);
    let out = sdk(&base, "create", req).await;
    assert_eq!(out["error"], "BadRequestError", "{out}");
    assert!(
        out["body"]["message"].as_str().unwrap().starts_with("n:"),
        "{out}"
    );
}
