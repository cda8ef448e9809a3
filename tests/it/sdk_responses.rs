//! End-to-end with the official Python `openai` SDK's Responses API (`client.responses`) as
//! the client, through FlexiProxy, on each source protocol: an OpenAI Chat source and an
//! Anthropic-protocol source (translated) and a Responses source (passed through). Plain
//! answers, function calls, streamed events, and the SDK's `responses.stream` helper
//! accumulating the final response from the events.

use crate::clients::openai_sdk;
use crate::harness::*;
use flexiproxy_testkit::FakeProvider;
use flexiproxy_testkit::scenario::{self, Protocol, SIDE_REPLY, WRITE_CALL_ID};
use serde_json::{Value, json};

const FINAL: &str = "It is sunny in Paris.";
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

fn tools() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}])
}

fn request(input: Value, with_tools: bool) -> Value {
    let mut r = json!({"model": "gpt-5.5", "input": input, "instructions": "Be brief.",
                       "store": false});
    if with_tools {
        r["tools"] = tools();
    }
    r
}

/// The second turn: the call the model made and its output.
fn tool_result_input() -> Value {
    json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": WRITE_CALL_ID, "name": "get_weather",
         "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call_output", "call_id": WRITE_CALL_ID, "output": "sunny, 21°C"}
    ])
}

async fn sdk(base: &str, mode: &'static str, req: Value) -> Value {
    let base = base.to_owned();
    tokio::task::spawn_blocking(move || openai_sdk(&base, KEY, mode, &req))
        .await
        .unwrap()
}

fn assert_weather_call(output: &Value, context: &str) {
    let call = output
        .as_array()
        .and_then(|o| o.iter().find(|i| i["type"] == "function_call"))
        .unwrap_or_else(|| panic!("{context}: no function_call in {output}"));
    assert_eq!(call["name"], "get_weather", "{context}");
    assert_eq!(call["call_id"], WRITE_CALL_ID, "{context}");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}), "{context}");
}

async fn run(source: Protocol) {
    let provider = FakeProvider::start(scenario::tool_loop(
        source,
        "get_weather",
        json!({"city": "Paris"}),
        FINAL,
    ))
    .await;
    let adapter = match source {
        Protocol::OpenAi => adapter_yaml(&provider.base_url(), &[KEY], ""),
        Protocol::Anthropic => adapter_yaml(&provider.origin(), &[KEY], "protocol: anthropic"),
        Protocol::Responses => adapter_yaml(&provider.base_url(), &[KEY], "protocol: responses"),
    };
    let proxy = Proxy::start(&[("r", adapter)]);
    let context = format!("{source:?} source");
    let base = proxy.url("/v1");

    // Plain text.
    let out = sdk(&base, "responses", request(json!("hello"), false)).await;
    assert_eq!(out["output_text"], SIDE_REPLY, "{context}: {out}");
    let r = &out["response"];
    assert_eq!(r["status"], "completed", "{context}");
    assert!(
        r["usage"]["input_tokens"].as_u64().unwrap() > 0,
        "{context}: {r}"
    );

    // A function call, plain and streamed.
    let out = sdk(
        &base,
        "responses",
        request(json!("Weather in Paris?"), true),
    )
    .await;
    assert_weather_call(&out["response"]["output"], &context);
    let out = sdk(
        &base,
        "responses_stream",
        request(json!("Weather in Paris?"), true),
    )
    .await;
    let kinds: Vec<&str> = out["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for needed in [
        "response.created",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.output_item.done",
        "response.completed",
    ] {
        assert!(kinds.contains(&needed), "{context}: {needed} in {kinds:?}");
    }
    assert_weather_call(&out["response"]["output"], &context);

    // The tool result turn through the stream helper.
    provider.clear_requests();
    let out = sdk(
        &base,
        "responses_helper",
        request(tool_result_input(), true),
    )
    .await;
    assert_eq!(out["output_text"], FINAL, "{context}: {out}");
    assert_eq!(out["deltas"], FINAL, "{context}");
    let seen = provider.requests()[0].json().to_string();
    assert!(
        seen.contains("sunny, 21°C"),
        "{context}: the provider got the output: {seen}"
    );

    // Counting input tokens: locally for translated sources, by the source otherwise.
    if source != Protocol::Responses {
        let r = client()
            .post(proxy.url("/v1/responses/input_tokens"))
            .bearer_auth(KEY)
            .json(&request(tool_result_input(), true))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{context}");
        let v: Value = r.json().await.unwrap();
        assert!(v["input_tokens"].as_u64().unwrap() > 10, "{context}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_responses_on_a_chat_source() {
    run(Protocol::OpenAi).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_responses_on_an_anthropic_source() {
    run(Protocol::Anthropic).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_responses_on_a_responses_source() {
    run(Protocol::Responses).await;
}

/// What a Responses client gets for state it would need the server to keep: a 400 in
/// OpenAI's error shape, naming the field, through the SDK's typed error.
#[tokio::test(flavor = "multi_thread")]
async fn stateful_requests_get_a_clear_400() {
    let provider =
        FakeProvider::start(scenario::tool_loop(Protocol::OpenAi, "x", json!({}), "")).await;
    let proxy = Proxy::start(&[("r", adapter_yaml(&provider.base_url(), &[KEY], ""))]);
    let mut req = request(json!("hello"), false);
    req["previous_response_id"] = json!("resp_123");
    let out = sdk(&proxy.url("/v1"), "responses", req).await;
    assert_eq!(out["error"], "BadRequestError", "{out}");
    assert_eq!(out["status"], 400);
    let message = out["body"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
        + out["body"]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("previous_response_id"), "{out}");
    assert!(
        provider.requests().is_empty(),
        "nothing reached the provider"
    );
}

/// Hosted tools (which only OpenAI can run) are dropped from what the source gets and named
/// in the access log; the request still succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn hosted_tools_are_dropped_and_logged() {
    let provider = FakeProvider::start(scenario::tool_loop(
        Protocol::OpenAi,
        "get_weather",
        json!({}),
        "",
    ))
    .await;
    let proxy = Proxy::start(&[("r", adapter_yaml(&provider.base_url(), &[KEY], ""))]);
    let mut req = request(json!("hello"), true);
    req["tools"].as_array_mut().unwrap().extend([
        json!({"type": "web_search"}),
        json!({"type": "tool_search", "execution": "client"}),
    ]);
    let r = client()
        .post(proxy.url("/responses"))
        .bearer_auth(KEY)
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let seen = provider.requests()[0].json();
    let names: Vec<&str> = seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather"]);
    wait_until(DEADLINE, "the access log line is written", || {
        proxy.access_log().contains(&request_id)
    });
    let line = proxy.access_log();
    let line = line.lines().find(|l| l.contains(&request_id)).unwrap();
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(
        v["dropped_tools"],
        json!(["web_search", "tool_search"]),
        "{line}"
    );
    assert_eq!(v["route"], "responses");
}
