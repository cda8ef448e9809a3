//! One matrix over every (client protocol, source protocol) pair that exists, through the
//! real proxy to the fake provider speaking the source's protocol: a plain answer, a
//! stream, parallel tool calls, a tool-result turn, reasoning, a provider error, an error
//! mid-stream, a provider that resets mid-stream and a client that leaves mid-stream. Each
//! answer is read the way a client of that protocol reads it and compared in
//! protocol-neutral terms. Shapes seen in real provider traffic (Mistral's thinking parts,
//! an error inside a chunk with `choices`, the Responses `error` event) go to every client,
//! read by hand and by the official SDKs.

use crate::clients::{anthropic_sdk, openai_sdk, run_python};
use crate::harness::*;
use flexiproxy::protocol::pair::{Pair, Wire};
use flexiproxy::protocol::stream_check::{accumulate, check_stream};
use flexiproxy_testkit::{
    FakeProvider, RecordedRequest, Reply, anthropic, gemini, openai, responses,
};
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Anthropic,
    OpenAi,
    Responses,
    Gemini,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    OpenAi,
    Anthropic,
    Responses,
    Gemini,
}

const CLIENTS: [Client; 4] = [
    Client::Anthropic,
    Client::OpenAi,
    Client::Responses,
    Client::Gemini,
];
const SOURCES: [Source; 4] = [
    Source::OpenAi,
    Source::Anthropic,
    Source::Responses,
    Source::Gemini,
];

const QUOTA: &str = "You exceeded your current quota, please check your plan and billing details.";

fn mistral_thinking(text: &str) -> Value {
    json!({"type": "thinking", "thinking": [{"type": "text", "text": text}]})
}

const WEATHER: (&str, &str, &str) = ("call_a", "get_weather", r#"{"city":"Paris"}"#);
const TIME: (&str, &str, &str) = ("call_b", "get_time", r#"{"tz":"CET"}"#);

/// The last user text of a request in any protocol, and whether it carries tool results.
fn prompt_of(body: &Value) -> (String, bool) {
    if let Some(contents) = body["contents"].as_array() {
        let parts = |c: &Value| c["parts"].as_array().cloned().unwrap_or_default();
        let has_result = contents
            .iter()
            .flat_map(parts)
            .any(|p| p.get("functionResponse").is_some());
        let text = contents
            .iter()
            .rev()
            .filter(|c| c["role"] != "model")
            .flat_map(parts)
            .find_map(|p| p["text"].as_str().map(str::to_owned))
            .unwrap_or_default();
        return (text, has_result);
    }
    if let Some(items) = body["input"].as_array() {
        let has_result = items.iter().any(|i| i["type"] == "function_call_output");
        let text = items
            .iter()
            .rev()
            .filter(|i| i["role"] == "user")
            .find_map(|i| match &i["content"] {
                Value::String(s) => Some(s.clone()),
                Value::Array(parts) => parts
                    .iter()
                    .find_map(|p| p["text"].as_str().map(str::to_owned)),
                _ => None,
            })
            .unwrap_or_default();
        return (text, has_result);
    }
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let has_result = messages.iter().any(|m| {
        m["role"] == "tool"
            || m["content"]
                .as_array()
                .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
    });
    let text = messages
        .iter()
        .rev()
        .filter(|m| m["role"] == "user")
        .find_map(|m| match &m["content"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(blocks) => blocks
                .iter()
                .find_map(|b| b["text"].as_str().map(str::to_owned)),
            _ => None,
        })
        .unwrap_or_default();
    (text, has_result)
}

fn openai_reply(prompt: &str, has_result: bool, stream: bool) -> Reply {
    let sse = |chunks: Vec<String>| Reply::sse(chunks).split_writes(vec![7, 3, 11]);
    match (prompt, has_result) {
        ("tools", true) => {
            if stream {
                sse(openai::text_stream("Paris is sunny at noon.", 3))
            } else {
                Reply::json(200, openai::chat_completion("Paris is sunny at noon."))
            }
        }
        ("tools", false) if stream => sse(vec![
            openai::sse_chunk(json!({"role": "assistant", "content": null}), None),
            openai::sse_chunk(
                json!({"tool_calls": [{"index": 0, "id": WEATHER.0, "type": "function", "function": {"name": WEATHER.1, "arguments": "{\"city\":"}}]}),
                None,
            ),
            openai::sse_chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                None,
            ),
            openai::sse_chunk(
                json!({"tool_calls": [{"index": 1, "id": TIME.0, "type": "function", "function": {"name": TIME.1, "arguments": TIME.2}}]}),
                None,
            ),
            openai::sse_chunk(json!({}), Some("tool_calls")),
            openai::sse_usage_chunk(40, 12),
            openai::SSE_DONE.to_owned(),
        ]),
        ("tools", false) => Reply::json(200, openai::tool_call_completion(&[WEATHER, TIME])),
        ("think", _) if stream => sse(vec![
            openai::sse_chunk(
                json!({"role": "assistant", "reasoning_content": "Let me "}),
                None,
            ),
            openai::sse_chunk(json!({"reasoning_content": "think."}), None),
            openai::sse_chunk(json!({"content": "42"}), None),
            openai::sse_chunk(json!({}), Some("stop")),
            openai::SSE_DONE.to_owned(),
        ]),
        ("think", _) => {
            let mut c = openai::chat_completion("42");
            c["choices"][0]["message"]["reasoning_content"] = json!("Let me think.");
            Reply::json(200, c)
        }
        ("error", _) => Reply::json(
            429,
            openai::error_body("Slow down", "rate_limit_error", None),
        )
        .header("retry-after", "7"),
        // Mistral (Magistral): thinking as typed parts inside `content`.
        ("mistral-think", _) if stream => sse(vec![
            openai::sse_chunk(json!({"role": "assistant", "content": ""}), None),
            openai::sse_chunk(json!({"content": [mistral_thinking("Okay")]}), None),
            openai::sse_chunk(json!({"content": [mistral_thinking(", the user")]}), None),
            openai::sse_chunk(
                json!({"content": [{"type": "text", "text": "To cross"}]}),
                None,
            ),
            openai::sse_chunk(json!({"content": " safely."}), None),
            openai::sse_chunk(json!({"content": ""}), Some("stop")),
            openai::SSE_DONE.to_owned(),
        ]),
        ("mistral-think", _) => {
            let mut c = openai::chat_completion("");
            c["choices"][0]["message"]["content"] = json!([
                mistral_thinking("Okay, the user"),
                {"type": "text", "text": "To cross safely."}]);
            Reply::json(200, c)
        }
        // OpenRouter: `finish_reason: length`, then an error in a chunk that has `choices`.
        ("error-in-choices", _) => sse(vec![
            ": OPENROUTER PROCESSING\n\n".to_owned(),
            openai::sse_chunk(
                json!({"role": "assistant", "content": "", "reasoning": "We need"}),
                None,
            ),
            openai::sse_chunk(json!({"content": "", "reasoning": " to"}), Some("length")),
            openai::data_event(&json!({"id": "gen-1", "object": "chat.completion.chunk",
                "error": {"code": 400, "message": "Token limit reached"},
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}],
                "usage": {"prompt_tokens": 43, "completion_tokens": 10}})),
            openai::SSE_DONE.to_owned(),
        ]),
        ("midstream", _) => Reply::sse(vec![
            openai::sse_chunk(json!({"role": "assistant", "content": "partial "}), None),
            openai::data_event(
                &json!({"error": {"message": "Overloaded", "type": "overloaded_error"}}),
            ),
        ]),
        ("reset", _) => {
            let head = openai::sse_chunk(json!({"role": "assistant", "content": "partial "}), None);
            let cut = head.len();
            Reply::sse(vec![
                head,
                openai::sse_chunk(json!({"content": "never"}), None),
            ])
            .reset_after_body_bytes(cut)
        }
        ("slow", _) => slow(
            openai::sse_chunk(json!({"role": "assistant", "content": ""}), None),
            |i| openai::sse_chunk(json!({"content": format!("tick {i} ")}), None),
        ),
        _ if stream => sse(openai::text_stream("Hello from the source.", 4)),
        _ => Reply::json(200, openai::chat_completion("Hello from the source.")),
    }
}

fn anthropic_reply(prompt: &str, has_result: bool, stream: bool) -> Reply {
    let sse = |events: Vec<String>| Reply::sse(events).split_writes(vec![7, 3, 11]);
    match (prompt, has_result) {
        ("tools", true) => {
            if stream {
                sse(anthropic::text_stream("Paris is sunny at noon.", 3))
            } else {
                Reply::json(200, anthropic::message("Paris is sunny at noon."))
            }
        }
        ("tools", false) if stream => sse(anthropic::tool_use_stream(&[WEATHER, TIME], 2)),
        ("tools", false) => Reply::json(200, anthropic::tool_use_message(&[WEATHER, TIME])),
        ("think", _) if stream => sse(anthropic::thinking_stream("Let me think.", "sig-1", "42")),
        ("think", _) => Reply::json(
            200,
            anthropic::thinking_message("Let me think.", "sig-1", "42"),
        ),
        ("error", _) => Reply::json(429, anthropic::error_body("rate_limit_error", "Slow down"))
            .header("retry-after", "7"),
        ("midstream", _) => {
            let mut events = anthropic::text_stream_head("partial ");
            events.push(anthropic::error_event("overloaded_error", "Overloaded"));
            Reply::sse(events)
        }
        ("reset", _) => {
            let head = anthropic::text_stream_head("partial ").concat();
            let cut = head.len();
            Reply::sse(vec![head, anthropic::text_stream("never", 1).concat()])
                .reset_after_body_bytes(cut)
        }
        ("slow", _) => slow(anthropic::text_stream_head("").concat(), |i| {
            anthropic::event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": format!("tick {i} ")}}),
            )
        }),
        _ if stream => sse(anthropic::text_stream("Hello from the source.", 4)),
        _ => Reply::json(200, anthropic::message("Hello from the source.")),
    }
}

fn responses_reply(prompt: &str, has_result: bool, stream: bool) -> Reply {
    let sse = |events: Vec<String>| Reply::sse(events).split_writes(vec![7, 3, 11]);
    let calls = |stream: bool| {
        let (a, b) = (
            responses::tool_call_stream(WEATHER.0, WEATHER.1, WEATHER.2, 2),
            responses::tool_call_response(TIME.0, TIME.1, TIME.2),
        );
        if !stream {
            let mut r = responses::tool_call_response(WEATHER.0, WEATHER.1, WEATHER.2);
            r["output"]
                .as_array_mut()
                .unwrap()
                .push(b["output"][0].clone());
            return Reply::json(200, r);
        }
        // Both calls in one stream: the second item after the first one's `.done`.
        let mut events: Vec<Value> = a[..a.len() - 1]
            .iter()
            .map(|e| {
                serde_json::from_str(e.lines().nth(1).unwrap().strip_prefix("data: ").unwrap())
                    .unwrap()
            })
            .collect();
        events.push(json!({"type": "response.output_item.added", "output_index": 1, "item": b["output"][0]}));
        events.push(
            json!({"type": "response.output_item.done", "output_index": 1, "item": b["output"][0]}),
        );
        events.push(
            json!({"type": "response.completed", "response": {"status": "completed",
                           "usage": {"input_tokens": 40, "output_tokens": 12}}}),
        );
        let events = events
            .into_iter()
            .enumerate()
            .map(|(i, mut v)| {
                v["sequence_number"] = json!(i);
                format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap())
            })
            .collect();
        sse(events)
    };
    match (prompt, has_result) {
        ("tools", true) if stream => sse(responses::text_stream("Paris is sunny at noon.", 3)),
        ("tools", true) => Reply::json(200, responses::text_response("Paris is sunny at noon.")),
        ("tools", false) => calls(stream),
        ("think", _) if stream => sse(responses::reasoning_stream("Let me think.", "enc-1", "42")),
        ("think", _) => Reply::json(
            200,
            responses::reasoning_response("Let me think.", "enc-1", "42"),
        ),
        ("error", _) => Reply::json(
            429,
            openai::error_body("Slow down", "rate_limit_error", None),
        )
        .header("retry-after", "7"),
        ("midstream", _) => Reply::sse(responses::failed_stream("partial ", "Overloaded")),
        // OpenAI: an `error` event with its details nested, then `response.failed`.
        ("quota", _) => {
            let events = [
                json!({"type": "response.created", "sequence_number": 0,
                       "response": {"id": "resp_q", "status": "in_progress", "error": null}}),
                json!({"type": "error", "sequence_number": 1, "error": {"type": "insufficient_quota",
                       "code": "insufficient_quota", "message": QUOTA, "param": null}}),
                json!({"type": "response.failed", "sequence_number": 2, "response": {"id": "resp_q",
                       "status": "failed", "error": {"code": "insufficient_quota", "message": QUOTA}}}),
            ];
            sse(events
                .iter()
                .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
                .collect())
        }
        ("reset", _) => {
            let head = responses::text_stream_head("partial ").concat();
            let cut = head.len();
            Reply::sse(vec![head, responses::text_delta(4, "never")]).reset_after_body_bytes(cut)
        }
        ("slow", _) => slow(responses::text_stream_head("").concat(), |i| {
            responses::text_delta(i + 4, &format!("tick {i} "))
        }),
        _ if stream => sse(responses::text_stream("Hello from the source.", 4)),
        _ => Reply::json(200, responses::text_response("Hello from the source.")),
    }
}

fn gemini_reply(prompt: &str, has_result: bool, stream: bool) -> Reply {
    let sse = |events: Vec<String>| Reply::sse(events).split_writes(vec![7, 3, 11]);
    let json = |v: Value| Reply::json(200, v);
    let chunk = |text: String| {
        gemini::event(
            &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}}]}),
        )
    };
    match (prompt, has_result) {
        ("tools", true) if stream => sse(gemini::text_stream("Paris is sunny at noon.", 3)),
        ("tools", true) => json(gemini::text_response("Paris is sunny at noon.")),
        ("tools", false) if stream => sse(gemini::calls_stream(&[WEATHER, TIME])),
        ("tools", false) => json(gemini::calls_response(&[WEATHER, TIME])),
        ("think", _) if stream => sse(gemini::thinking_stream("Let me think.", "gsig", "42")),
        ("think", _) => json(gemini::thinking_response("Let me think.", "gsig", "42")),
        ("error", _) => Reply::json(
            429,
            gemini::error_body(429, "RESOURCE_EXHAUSTED", "Slow down"),
        )
        .header("retry-after", "7"),
        ("midstream", _) => Reply::sse(vec![
            chunk("partial ".into()),
            gemini::event(&gemini::error_body(503, "UNAVAILABLE", "Overloaded")),
        ]),
        ("reset", _) => {
            let head = chunk("partial ".into());
            let cut = head.len();
            Reply::sse(vec![head, gemini::text_stream("never", 1).concat()])
                .reset_after_body_bytes(cut)
        }
        ("slow", _) => slow(chunk(String::new()), |i| chunk(format!("tick {i} "))),
        _ if stream => sse(gemini::text_stream("Hello from the source.", 4)),
        _ => json(gemini::text_response("Hello from the source.")),
    }
}

/// 200 events 50 ms apart: ten seconds unless the proxy hangs up.
fn slow(head: String, event: impl Fn(usize) -> String) -> Reply {
    let mut events = vec![head];
    events.extend((0..200).map(event));
    Reply::sse(events).delay_between_writes(Duration::from_millis(50))
}

async fn provider(source: Source) -> FakeProvider {
    FakeProvider::start(move |req: &RecordedRequest| {
        let body = req.json();
        let stream = body["stream"] == true || req.path.contains(":streamGenerateContent");
        let (prompt, has_result) = prompt_of(&body);
        match source {
            Source::OpenAi => openai_reply(&prompt, has_result, stream),
            Source::Anthropic => anthropic_reply(&prompt, has_result, stream),
            Source::Responses => responses_reply(&prompt, has_result, stream),
            Source::Gemini => gemini_reply(&prompt, has_result, stream),
        }
    })
    .await
}

/// An adapter on `provider` speaking `source`'s protocol.
pub(crate) fn adapter(source: Source, provider: &FakeProvider) -> String {
    match source {
        Source::OpenAi => adapter_yaml(&provider.base_url(), &[KEY], ""),
        Source::Anthropic => adapter_yaml(&provider.origin(), &[KEY], "protocol: anthropic"),
        Source::Responses => adapter_yaml(&provider.base_url(), &[KEY], "protocol: responses"),
        Source::Gemini => adapter_yaml(
            &format!("{}/v1beta", provider.origin()),
            &[KEY],
            "protocol: gemini",
        ),
    }
}

fn tools(client: Client) -> Value {
    let schema = |p: &str| json!({"type": "object", "properties": {p: {"type": "string"}}});
    match client {
        Client::Anthropic => json!([
            {"name": "get_weather", "description": "Weather", "input_schema": schema("city")},
            {"name": "get_time", "input_schema": schema("tz")}]),
        Client::OpenAi => json!([
            {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": schema("city")}},
            {"type": "function", "function": {"name": "get_time", "parameters": schema("tz")}}]),
        Client::Responses => json!([
            {"type": "function", "name": "get_weather", "description": "Weather", "parameters": schema("city")},
            {"type": "function", "name": "get_time", "parameters": schema("tz")}]),
        Client::Gemini => json!([{"functionDeclarations": [
            {"name": "get_weather", "description": "Weather", "parametersJsonSchema": schema("city")},
            {"name": "get_time", "parameters": {"type": "OBJECT", "properties": {"tz": {"type": "STRING"}}}}]}]),
    }
}

/// The conversation after the model called both tools, ending in their results.
fn tool_result_history(client: Client) -> Value {
    match client {
        Client::Anthropic => json!([
            {"role": "user", "content": "tools"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": WEATHER.0, "name": WEATHER.1, "input": {"city": "Paris"}},
                {"type": "tool_use", "id": TIME.0, "name": TIME.1, "input": {"tz": "CET"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": WEATHER.0, "content": "sunny"},
                {"type": "tool_result", "tool_use_id": TIME.0, "content": [{"type": "text", "text": "12:00"}]}]}]),
        Client::OpenAi => json!([
            {"role": "user", "content": "tools"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": WEATHER.0, "type": "function", "function": {"name": WEATHER.1, "arguments": WEATHER.2}},
                {"id": TIME.0, "type": "function", "function": {"name": TIME.1, "arguments": TIME.2}}]},
            {"role": "tool", "tool_call_id": WEATHER.0, "content": "sunny"},
            {"role": "tool", "tool_call_id": TIME.0, "content": "12:00"}]),
        Client::Responses => json!([
            {"role": "user", "content": "tools"},
            {"type": "function_call", "call_id": WEATHER.0, "name": WEATHER.1, "arguments": WEATHER.2},
            {"type": "function_call", "call_id": TIME.0, "name": TIME.1, "arguments": TIME.2},
            {"type": "function_call_output", "call_id": WEATHER.0, "output": "sunny"},
            {"type": "function_call_output", "call_id": TIME.0,
             "output": [{"type": "input_text", "text": "12:00"}]}]),
        Client::Gemini => json!([
            {"role": "user", "parts": [{"text": "tools"}]},
            {"role": "model", "parts": [
                {"functionCall": {"id": WEATHER.0, "name": WEATHER.1, "args": {"city": "Paris"}}},
                {"functionCall": {"id": TIME.0, "name": TIME.1, "args": {"tz": "CET"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": WEATHER.0, "name": WEATHER.1, "response": {"output": "sunny"}}},
                {"functionResponse": {"id": TIME.0, "name": TIME.1, "response": {"output": "12:00"}}}]}]),
    }
}

fn body(client: Client, prompt: &str, stream: bool) -> Value {
    let messages = if prompt == "tool-result" {
        tool_result_history(client)
    } else {
        json!([{"role": "user", "content": prompt}])
    };
    if client == Client::Gemini {
        let contents = if prompt == "tool-result" {
            tool_result_history(client)
        } else {
            json!([{"role": "user", "parts": [{"text": prompt}]}])
        };
        return json!({"contents": contents, "tools": tools(client),
                      "generationConfig": {"maxOutputTokens": 256}});
    }
    if client == Client::Responses {
        return json!({"model": "claude-sonnet-4-5", "max_output_tokens": 256, "input": messages,
                      "stream": stream, "tools": tools(client), "store": false});
    }
    let mut b = json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": messages,
                       "stream": stream, "tools": tools(client)});
    if client == Client::OpenAi && stream {
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

/// An answer in protocol-neutral terms.
#[derive(Debug, Default)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    text: String,
    reasoning: String,
    /// (id, name, arguments as JSON).
    calls: Vec<(String, String, Value)>,
    /// `end`, `tool` or `max`.
    stop: String,
    /// The error type the client sees, from a status or a mid-stream error.
    error: Option<String>,
    /// The body as the client got it.
    raw: String,
}

fn stop_word(reason: &str) -> String {
    match reason {
        "tool_use" | "tool_calls" => "tool",
        "max_tokens" | "length" => "max",
        _ => "end",
    }
    .to_owned()
}

fn read_anthropic(status: u16, body: &[u8], stream: bool) -> Answer {
    let mut a = Answer {
        status,
        ..Answer::default()
    };
    let message = if status != 200 {
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["type"], "error", "{v}");
        a.error = v["error"]["type"].as_str().map(str::to_owned);
        return a;
    } else if stream {
        let text = String::from_utf8_lossy(body);
        if text.contains("event: error") {
            a.error = Some(
                text.split("event: error\ndata: ")
                    .nth(1)
                    .and_then(|d| serde_json::from_str::<Value>(d.lines().next()?).ok())
                    .and_then(|v| v["error"]["type"].as_str().map(str::to_owned))
                    .unwrap_or_default(),
            );
            return a;
        }
        let frames = check_stream(body).unwrap_or_else(|e| panic!("{e}\n{text}"));
        accumulate(&frames)
    } else {
        serde_json::from_slice(body).unwrap()
    };
    for block in message["content"].as_array().unwrap() {
        match block["type"].as_str().unwrap() {
            "text" => a.text.push_str(block["text"].as_str().unwrap()),
            "thinking" => {
                assert!(
                    !block["signature"].as_str().unwrap_or("").is_empty(),
                    "signed"
                );
                a.reasoning.push_str(block["thinking"].as_str().unwrap());
            }
            "tool_use" => a.calls.push((
                block["id"].as_str().unwrap().to_owned(),
                block["name"].as_str().unwrap().to_owned(),
                block["input"].clone(),
            )),
            other => panic!("unexpected block {other}"),
        }
    }
    a.stop = stop_word(message["stop_reason"].as_str().unwrap());
    a
}

fn read_openai(status: u16, body: &[u8], stream: bool) -> Answer {
    let mut a = Answer {
        status,
        ..Answer::default()
    };
    if status != 200 {
        let v: Value = serde_json::from_slice(body).unwrap();
        a.error = v["error"]["type"].as_str().map(str::to_owned);
        assert!(v["error"]["message"].is_string(), "{v}");
        return a;
    }
    let mut calls: Vec<(String, String, String)> = Vec::new();
    if !stream {
        let v: Value = serde_json::from_slice(body).unwrap();
        let m = &v["choices"][0]["message"];
        a.text = m["content"].as_str().unwrap_or("").to_owned();
        a.reasoning = m["reasoning_content"].as_str().unwrap_or("").to_owned();
        for c in m["tool_calls"].as_array().into_iter().flatten() {
            calls.push((
                c["id"].as_str().unwrap().to_owned(),
                c["function"]["name"].as_str().unwrap().to_owned(),
                c["function"]["arguments"].as_str().unwrap().to_owned(),
            ));
        }
        a.stop = stop_word(v["choices"][0]["finish_reason"].as_str().unwrap());
    } else {
        let text = String::from_utf8_lossy(body);
        let payloads: Vec<&str> = text
            .split("\n\n")
            .filter_map(|f| f.trim().strip_prefix("data:").map(str::trim))
            .collect();
        // A passthrough relays a provider that stopped at its error without `[DONE]`.
        let done = payloads.last() == Some(&"[DONE]");
        let events = &payloads[..payloads.len() - usize::from(done)];
        for p in events {
            let v: Value = serde_json::from_str(p).unwrap();
            if let Some(t) = v["error"]["type"].as_str() {
                a.error = Some(t.to_owned());
                continue;
            }
            let Some(choice) = v["choices"].get(0) else {
                continue;
            };
            let d = &choice["delta"];
            a.text.push_str(d["content"].as_str().unwrap_or(""));
            a.reasoning
                .push_str(d["reasoning_content"].as_str().unwrap_or(""));
            for c in d["tool_calls"].as_array().into_iter().flatten() {
                let i = c["index"].as_u64().unwrap() as usize;
                if calls.len() <= i {
                    calls.resize(i + 1, Default::default());
                }
                let entry = &mut calls[i];
                if let Some(id) = c["id"].as_str() {
                    entry.0 = id.to_owned();
                }
                entry
                    .1
                    .push_str(c["function"]["name"].as_str().unwrap_or(""));
                entry
                    .2
                    .push_str(c["function"]["arguments"].as_str().unwrap_or(""));
            }
            if let Some(r) = choice["finish_reason"].as_str() {
                a.stop = stop_word(r);
            }
        }
    }
    if stream {
        let ended =
            a.error.is_some() || String::from_utf8_lossy(body).ends_with("data: [DONE]\n\n");
        assert!(ended, "a stream ends with [DONE]");
    }
    a.calls = calls
        .into_iter()
        .map(|(id, name, args)| (id, name, serde_json::from_str(&args).unwrap()))
        .collect();
    a
}

/// A Responses answer's output items as text, reasoning and calls.
fn read_items(a: &mut Answer, items: &[Value]) {
    for item in items {
        match item["type"].as_str().unwrap() {
            "message" => {
                for p in item["content"].as_array().unwrap() {
                    a.text.push_str(p["text"].as_str().unwrap_or(""));
                }
            }
            "reasoning" => {
                for p in item["summary"].as_array().unwrap() {
                    a.reasoning.push_str(p["text"].as_str().unwrap());
                }
            }
            "function_call" => a.calls.push((
                item["call_id"].as_str().unwrap().to_owned(),
                item["name"].as_str().unwrap().to_owned(),
                serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap(),
            )),
            other => panic!("unexpected item {other}"),
        }
    }
}

fn read_responses(status: u16, body: &[u8], stream: bool) -> Answer {
    let mut a = Answer {
        status,
        ..Answer::default()
    };
    if status != 200 {
        let v: Value = serde_json::from_slice(body).unwrap();
        a.error = v["error"]["type"].as_str().map(str::to_owned);
        assert!(v["error"]["message"].is_string(), "{v}");
        return a;
    }
    let response = if stream {
        let text = String::from_utf8_lossy(body);
        let mut done_items = Vec::new();
        let mut last = None;
        let mut sequence = None;
        for event in text.split("\n\n").filter(|e| e.contains("data:")) {
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap();
            let v: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
            if let Some(n) = v["sequence_number"].as_u64() {
                assert!(
                    sequence.is_none_or(|s| n > s),
                    "sequence numbers grow: {text}"
                );
                sequence = Some(n);
            }
            match v["type"].as_str().unwrap() {
                "response.output_item.done" => done_items.push(v["item"].clone()),
                "response.failed" => {
                    a.error = v["response"]["error"]["code"].as_str().map(str::to_owned)
                }
                "error" => a.error = v["code"].as_str().map(str::to_owned),
                "response.completed" | "response.incomplete" => last = Some(v["response"].clone()),
                _ => {}
            }
        }
        if a.error.is_some() {
            return a;
        }
        let response =
            last.unwrap_or_else(|| panic!("a stream ends with response.completed: {text}"));
        // The finished items streamed one by one are the response's output.
        if let Some(output) = response["output"].as_array().filter(|o| !o.is_empty()) {
            assert_eq!(output, &done_items, "{text}");
        }
        read_items(&mut a, &done_items);
        response
    } else {
        let v: Value = serde_json::from_slice(body).unwrap();
        read_items(&mut a, v["output"].as_array().unwrap());
        v
    };
    a.stop = match response["status"].as_str() {
        Some("incomplete") => "max",
        _ if !a.calls.is_empty() => "tool",
        _ => "end",
    }
    .to_owned();
    a
}

/// Google's status names, in the other protocols' words.
fn gemini_error_word(status: &str) -> String {
    match status {
        "RESOURCE_EXHAUSTED" => "rate_limit_error",
        "UNAVAILABLE" => "overloaded_error",
        "INVALID_ARGUMENT" => "invalid_request_error",
        _ => "api_error",
    }
    .to_owned()
}

fn read_gemini(status: u16, body: &[u8], stream: bool) -> Answer {
    let mut a = Answer {
        status,
        ..Answer::default()
    };
    if status != 200 {
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["error"]["code"], status, "{v}");
        a.error = v["error"]["status"].as_str().map(gemini_error_word);
        return a;
    }
    let chunks: Vec<Value> = if stream {
        let text = String::from_utf8_lossy(body);
        text.split("\r\n\r\n")
            .filter_map(|f| f.trim().strip_prefix("data:").map(str::trim))
            .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
            .collect()
    } else {
        vec![serde_json::from_slice(body).unwrap()]
    };
    let mut finish = None;
    for chunk in &chunks {
        if let Some(s) = chunk["error"]["status"].as_str() {
            a.error = Some(gemini_error_word(s));
            continue;
        }
        let candidate = &chunk["candidates"][0];
        if let Some(f) = candidate["finishReason"].as_str() {
            finish = Some(f.to_owned());
        }
        for part in candidate["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(call) = part.get("functionCall") {
                a.calls.push((
                    call["id"].as_str().unwrap().to_owned(),
                    call["name"].as_str().unwrap().to_owned(),
                    call["args"].clone(),
                ));
            } else if part["thought"] == true {
                a.reasoning.push_str(part["text"].as_str().unwrap_or(""));
            } else {
                a.text.push_str(part["text"].as_str().unwrap_or(""));
            }
        }
    }
    a.stop = match finish.as_deref() {
        Some("MAX_TOKENS") => "max",
        _ if !a.calls.is_empty() => "tool",
        _ => "end",
    }
    .to_owned();
    if stream && a.error.is_none() {
        assert!(finish.is_some(), "a Gemini stream ends with a finishReason");
    }
    a
}

fn path_of(client: Client, stream: bool) -> &'static str {
    // OpenAI clients use paths without `/v1`: one base URL for both conventions.
    match client {
        Client::Anthropic => "/v1/messages",
        Client::OpenAi => "/chat/completions",
        Client::Responses => "/responses",
        Client::Gemini if stream => {
            "/v1beta/models/claude-sonnet-4-5:streamGenerateContent?alt=sse"
        }
        Client::Gemini => "/v1beta/models/claude-sonnet-4-5:generateContent",
    }
}

async fn ask(proxy: &Proxy, client: Client, prompt: &str, stream: bool) -> Answer {
    let path = path_of(client, stream);
    let r = reqwest_client()
        .post(proxy.url(path))
        .header("authorization", format!("Bearer {KEY}"))
        .json(&body(client, prompt, stream))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = r.bytes().await.unwrap();
    let mut answer = match client {
        Client::Anthropic => read_anthropic(status, &bytes, stream),
        Client::OpenAi => read_openai(status, &bytes, stream),
        Client::Responses => read_responses(status, &bytes, stream),
        Client::Gemini => read_gemini(status, &bytes, stream),
    };
    answer.retry_after = retry_after;
    answer.raw = String::from_utf8_lossy(&bytes).into_owned();
    answer
}

fn reqwest_client() -> reqwest::Client {
    client()
}

fn wire(client: Client) -> Wire {
    match client {
        Client::Anthropic => Wire::AnthropicMessages,
        Client::OpenAi => Wire::OpenAiChat,
        Client::Responses => Wire::Responses,
        Client::Gemini => Wire::Gemini,
    }
}

fn wire_of(source: Source) -> Wire {
    match source {
        Source::Anthropic => Wire::AnthropicMessages,
        Source::OpenAi => Wire::OpenAiChat,
        Source::Responses => Wire::Responses,
        Source::Gemini => Wire::Gemini,
    }
}

/// What the provider got for the tool-result turn holds both results for their calls.
fn assert_provider_saw_results(source: Source, seen: &Value) {
    let messages = seen["messages"]
        .as_array()
        .or(seen["input"].as_array())
        .or(seen["contents"].as_array())
        .unwrap();
    let ids: Vec<String> = match source {
        Source::Gemini => messages
            .iter()
            .flat_map(|c| c["parts"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["functionResponse"]["id"].as_str().map(str::to_owned))
            .collect(),
        Source::Responses => messages
            .iter()
            .filter(|i| i["type"] == "function_call_output")
            .filter_map(|i| i["call_id"].as_str().map(str::to_owned))
            .collect(),
        Source::OpenAi => messages
            .iter()
            .filter(|m| m["role"] == "tool")
            .filter_map(|m| m["tool_call_id"].as_str().map(str::to_owned))
            .collect(),
        Source::Anthropic => messages
            .iter()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .filter(|b| b["type"] == "tool_result")
            .filter_map(|b| b["tool_use_id"].as_str().map(str::to_owned))
            .collect(),
    };
    assert_eq!(ids, [WEATHER.0, TIME.0], "{seen}");
}

async fn run_pair(client: Client, source: Source) {
    let provider = provider(source).await;
    let proxy = Proxy::start(&[("p", adapter(source, &provider))]);
    let pair = format!("{client:?} client on {source:?} source");
    for stream in [false, true] {
        let mode = if stream { "stream" } else { "plain" };
        let a = ask(&proxy, client, "hello", stream).await;
        assert_eq!(
            (a.status, a.text.as_str()),
            (200, "Hello from the source."),
            "{pair} {mode}: {a:?}"
        );
        assert_eq!(a.stop, "end", "{pair} {mode}");

        let a = ask(&proxy, client, "tools", stream).await;
        assert_eq!(a.stop, "tool", "{pair} {mode} tools: {a:?}");
        let calls: Vec<(&str, &str, Value)> = a
            .calls
            .iter()
            .map(|(id, n, v)| (id.as_str(), n.as_str(), v.clone()))
            .collect();
        assert_eq!(
            calls,
            [
                (WEATHER.0, WEATHER.1, json!({"city": "Paris"})),
                (TIME.0, TIME.1, json!({"tz": "CET"}))
            ],
            "{pair} {mode} tools"
        );

        provider.clear_requests();
        let a = ask(&proxy, client, "tool-result", stream).await;
        assert_eq!(
            a.text, "Paris is sunny at noon.",
            "{pair} {mode} tool result: {a:?}"
        );
        assert_provider_saw_results(source, &provider.requests()[0].json());

        let a = ask(&proxy, client, "think", stream).await;
        assert_eq!(
            (a.reasoning.as_str(), a.text.as_str()),
            ("Let me think.", "42"),
            "{pair} {mode} reasoning"
        );

        let a = ask(&proxy, client, "error", stream).await;
        assert_eq!(a.status, 429, "{pair} {mode} error: {a:?}");
        assert_eq!(a.retry_after.as_deref(), Some("7"), "{pair} {mode}");
        assert_eq!(
            a.error.as_deref(),
            Some("rate_limit_error"),
            "{pair} {mode}"
        );
    }
    let a = ask(&proxy, client, "midstream", true).await;
    assert_eq!(a.status, 200, "{pair}");
    // OpenAI's error shape calls an overload a `server_error`; a passthrough keeps the
    // provider's own word; a Responses source reports `server_error` itself.
    let expected = match (client, source) {
        // Google's UNAVAILABLE is the others' overload; Responses' server_error is INTERNAL.
        (Client::Gemini, Source::Responses) => "api_error",
        (Client::Gemini, _) => "overloaded_error",
        (Client::Anthropic, Source::Gemini) => "overloaded_error",
        (Client::OpenAi | Client::Responses, Source::Gemini) => "server_error",
        (Client::Anthropic, Source::Responses) => "api_error",
        (_, Source::Responses) => "server_error",
        (Client::OpenAi | Client::Responses, Source::Anthropic) => "server_error",
        (Client::Responses, Source::OpenAi) => "server_error",
        _ => "overloaded_error",
    };
    assert_eq!(
        a.error.as_deref(),
        Some(expected),
        "{pair} mid-stream error: {a:?}"
    );

    // A provider that resets mid-stream: a translated stream ends with an error the client
    // reads; a passthrough relays what came and ends the response.
    let r = reqwest_client()
        .post(proxy.url(path_of(client, true)))
        .header("authorization", format!("Bearer {KEY}"))
        .json(&body(client, "reset", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{pair}");
    let text = String::from_utf8_lossy(&r.bytes().await.unwrap_or_default()).into_owned();
    assert!(text.contains("partial"), "{pair} reset: {text}");
    assert!(!text.contains("never"), "{pair} reset: {text}");
    if Pair::pivoted(wire(client), wire_of(source)).is_some() {
        assert!(
            text.contains("error"),
            "{pair} reset ends with an error: {text}"
        );
        if client == Client::OpenAi {
            assert!(text.ends_with("data: [DONE]\n\n"), "{pair} reset: {text}");
        }
    }

    // A client that leaves mid-stream: the proxy hangs up on the provider too.
    let mut r = reqwest_client()
        .post(proxy.url(path_of(client, true)))
        .header("authorization", format!("Bearer {KEY}"))
        .json(&body(client, "slow", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{pair}");
    assert!(r.chunk().await.unwrap().is_some());
    drop(r);
    assert_provider_saw_the_close(&provider).await;
    assert_healthy(&proxy).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_pair_carries_every_scenario() {
    for client in CLIENTS {
        for source in SOURCES {
            run_pair(client, source).await;
        }
    }
}

/// Shapes real providers send that our own fixtures once lacked (issue #31), on every client:
/// Mistral's thinking as `content` parts, OpenRouter's error inside a chunk with `choices`,
/// and the Responses API's `error` event with nested details (a quota error). Passthrough
/// pairs relay them as they are.
#[tokio::test(flavor = "multi_thread")]
async fn real_provider_shapes_reach_every_client() {
    let chat = provider(Source::OpenAi).await;
    let chat_proxy = Proxy::start(&[("p", adapter(Source::OpenAi, &chat))]);
    let resp = provider(Source::Responses).await;
    let resp_proxy = Proxy::start(&[("p", adapter(Source::Responses, &resp))]);
    for client in CLIENTS {
        for stream in [false, true] {
            let a = ask(&chat_proxy, client, "mistral-think", stream).await;
            let what = format!("{client:?} client, Mistral thinking, stream {stream}");
            assert_eq!(a.status, 200, "{what}: {a:?}");
            if client == Client::OpenAi {
                assert!(a.raw.contains(r#""type":"thinking""#), "{what}: {}", a.raw);
            } else {
                assert_eq!(
                    (a.reasoning.as_str(), a.text.as_str()),
                    ("Okay, the user", "To cross safely."),
                    "{what}: {}",
                    a.raw
                );
                assert_eq!(a.stop, "end", "{what}");
            }
        }

        let a = ask(&chat_proxy, client, "error-in-choices", true).await;
        let what = format!("{client:?} client, error in a chunk with choices");
        assert!(a.raw.contains("Token limit reached"), "{what}: {}", a.raw);
        if client != Client::OpenAi {
            assert_eq!(
                a.error.as_deref(),
                Some("invalid_request_error"),
                "{what}: {}",
                a.raw
            );
        }
        if client == Client::Anthropic {
            assert!(
                !a.raw.contains("max_tokens"),
                "{what}: not a clean stop: {}",
                a.raw
            );
        }

        let a = ask(&resp_proxy, client, "quota", true).await;
        let what = format!("{client:?} client, Responses quota error");
        assert!(a.raw.contains(QUOTA), "{what}: {}", a.raw);
        let expected = match client {
            Client::Anthropic => "billing_error",
            Client::OpenAi | Client::Responses => "insufficient_quota",
            Client::Gemini => "rate_limit_error",
        };
        assert_eq!(a.error.as_deref(), Some(expected), "{what}: {}", a.raw);
    }
}

/// The same shapes through the official SDKs' own stream readers and accumulators: the
/// Anthropic SDK's `messages.stream`, the OpenAI SDK's Chat stream and Responses events,
/// google-genai's `generate_content_stream`.
#[tokio::test(flavor = "multi_thread")]
async fn real_provider_shapes_through_the_official_sdks() {
    let chat = provider(Source::OpenAi).await;
    let chat_proxy = Proxy::start(&[("p", adapter(Source::OpenAi, &chat))]);
    let resp = provider(Source::Responses).await;
    let resp_proxy = Proxy::start(&[("p", adapter(Source::Responses, &resp))]);
    let (chat_base, resp_base) = (chat_proxy.url(""), resp_proxy.url(""));
    let out = tokio::task::spawn_blocking(move || {
        let anthropic = |base: &str, prompt: &str| {
            anthropic_sdk(
                base,
                KEY,
                "stream",
                &json!({"model": "claude-sonnet-4-5", "max_tokens": 256,
                        "messages": [{"role": "user", "content": prompt}]}),
            )
        };
        let openai = |base: &str, prompt: &str| {
            openai_sdk(
                &format!("{base}/v1"),
                KEY,
                "stream",
                &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}),
            )
        };
        let responses = |base: &str, prompt: &str| {
            openai_sdk(
                &format!("{base}/v1"),
                KEY,
                "responses_stream",
                &json!({"model": "gpt-4o", "store": false,
                        "input": [{"role": "user", "content": prompt}]}),
            )
        };
        let gemini = |base: &str, prompt: &str| {
            run_python(
                "gemini_client.py",
                &[
                    base,
                    KEY,
                    "stream",
                    &json!({"model": "claude-sonnet-4-5", "contents": prompt}).to_string(),
                ],
            )
        };
        [
            anthropic(&chat_base, "mistral-think"),
            anthropic(&chat_base, "error-in-choices"),
            anthropic(&resp_base, "quota"),
            openai(&chat_base, "error-in-choices"),
            openai(&resp_base, "quota"),
            responses(&chat_base, "mistral-think"),
            responses(&chat_base, "error-in-choices"),
            responses(&resp_base, "quota"),
            gemini(&chat_base, "mistral-think"),
            gemini(&chat_base, "error-in-choices"),
            gemini(&resp_base, "quota"),
        ]
    })
    .await
    .unwrap();
    let [
        a_think,
        a_error,
        a_quota,
        c_error,
        c_quota,
        r_think,
        r_error,
        r_quota,
        g_think,
        g_error,
        g_quota,
    ] = out;
    // Anthropic SDK: a signed thinking block, then the errors with their type and message.
    let content = &a_think["message"]["content"];
    assert_eq!(content[0]["type"], "thinking", "{a_think}");
    assert_eq!(content[0]["thinking"], "Okay, the user", "{a_think}");
    assert_eq!(content[1]["text"], "To cross safely.", "{a_think}");
    assert_eq!(
        (&a_error["type"], &a_error["message"]),
        (
            &json!("invalid_request_error"),
            &json!("Token limit reached")
        ),
        "{a_error}"
    );
    assert_eq!(
        (&a_quota["type"], &a_quota["message"]),
        (&json!("billing_error"), &json!(QUOTA)),
        "{a_quota}"
    );
    // OpenAI SDK, Chat: it raises on the error chunk (relayed) and on the translated one.
    assert_eq!(c_error["message"], "Token limit reached", "{c_error}");
    assert_eq!(c_quota["message"], QUOTA, "{c_quota}");
    // OpenAI SDK, Responses: reasoning and text items; the errors as `response.failed`, or
    // raised on the relayed `error` event.
    assert_eq!(r_think["output_text"], "To cross safely.", "{r_think}");
    let reasoning = &r_think["response"]["output"][0];
    assert_eq!(reasoning["type"], "reasoning", "{r_think}");
    assert_eq!(
        reasoning["summary"][0]["text"], "Okay, the user",
        "{r_think}"
    );
    let failed = &r_error["response"];
    assert_eq!(failed["status"], "failed", "{r_error}");
    assert_eq!(
        (&failed["error"]["code"], &failed["error"]["message"]),
        (
            &json!("invalid_request_error"),
            &json!("Token limit reached")
        ),
        "{r_error}"
    );
    assert_eq!(r_quota["message"], QUOTA, "{r_quota}");
    // google-genai: thoughts (its thought signature is valid base64) and Google's errors.
    assert_eq!(
        (&g_think["thoughts"], &g_think["text"]),
        (&json!("Okay, the user"), &json!("To cross safely.")),
        "{g_think}"
    );
    assert_eq!(
        (&g_error["status"], &g_error["message"]),
        (&json!("INVALID_ARGUMENT"), &json!("Token limit reached")),
        "{g_error}"
    );
    assert_eq!(
        (&g_quota["status"], &g_quota["message"]),
        (&json!("RESOURCE_EXHAUSTED"), &json!(QUOTA)),
        "{g_quota}"
    );
}
