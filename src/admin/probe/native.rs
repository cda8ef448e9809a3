//! The provider check of an Anthropic, Responses or Gemini source, in its own protocol: the
//! model list, a plain answer, a stream and its usage, a tool call and its result turn, two
//! calls streamed in parallel, and an image. The Chat-only questions (`max_tokens` field,
//! `stream_options`, the reasoning field and sending it back, `json_schema`, mid-conversation
//! system messages) are skipped and say why: these protocols have one way for each.

use super::report::{CheckReport, Outcome, model_list};
use super::wire::{Answer, Wire};
use crate::config::adapter::SourceProtocol;
use serde_json::{Value, json};

pub async fn run(wire: &mut Wire<'_>, report: &mut CheckReport) {
    let protocol = wire.source.protocol;
    let list = if protocol == SourceProtocol::Anthropic {
        "/v1/models"
    } else {
        "/models"
    };
    if !model_list(wire, report, list).await {
        return report.skip(REST, "the provider refused the key");
    }
    let name = protocol.name();
    let chat_only = format!("a Chat question: a {name} source has one way for it");
    report.skip(
        &[
            "max_tokens_field",
            "stream_usage",
            "reasoning",
            "echo_reasoning",
            "json_schema",
            "system_messages",
        ],
        &chat_only,
    );

    let plain = send(
        wire,
        &[user(protocol, "Reply with the word pong.")],
        false,
        false,
    )
    .await;
    if report.outcome_of("authentication").is_none() {
        if plain.auth_failed() {
            report.failed("authentication", &plain);
            return report.skip(REST, "the provider refused the key");
        }
        report.push("authentication", Outcome::Ok, "the key was accepted");
    }
    if !plain.ok() {
        report.failed("plain_answer", &plain);
        return report.skip(REST, "no plain answer came, so nothing more was asked");
    }
    report.push("plain_answer", Outcome::Ok, plain.evidence());

    let stream = send(wire, &[user(protocol, "Count from 1 to 5.")], false, true).await;
    if stream.ok() {
        let usage = if stream_usage(protocol, &stream.events) {
            "usage in the stream"
        } else {
            "no usage in the stream (tokens are estimated)"
        };
        let detail = format!(
            "{}, {} events, {usage}",
            stream.evidence(),
            stream.events.len()
        );
        report.push("stream", Outcome::Ok, detail);
    } else {
        report.failed("stream", &stream);
    }

    let ask = user(protocol, "What is the weather in Paris? Use get_weather.");
    let call = send(wire, std::slice::from_ref(&ask), true, false).await;
    match (call.ok(), first_call(protocol, &call.json)) {
        (true, Some((id, arguments))) => {
            report.push(
                "tool_call",
                Outcome::Ok,
                format!("{}: get_weather({arguments})", call.evidence()),
            );
            let turn = tool_turn(protocol, ask, &id, &arguments);
            let back = send(wire, &turn, true, false).await;
            let outcome = if back.ok() {
                Outcome::Ok
            } else {
                Outcome::Failed
            };
            report.push(
                "tool_result_turn",
                outcome,
                format!("the tool's result sent back: {}", back.evidence()),
            );
        }
        (ok, _) => {
            let mut detail = call.evidence();
            if ok {
                detail.push_str(": answered without calling the tool");
            }
            detail.push_str("; no option gives a model tools — choose one that has them");
            report.push("tool_call", Outcome::Failed, detail);
        }
    }
    if report.outcome_of("tool_call") == Some(Outcome::Ok) {
        let ask = user(
            protocol,
            "Call get_weather twice, in parallel: once for Paris and once for Tokyo.",
        );
        let parallel = send(wire, &[ask], true, true).await;
        let calls = streamed_calls(protocol, &parallel.events);
        if !parallel.ok() || calls == 0 {
            let mut detail = parallel.evidence();
            if parallel.ok() {
                detail.push_str(": no tool call in the stream");
            }
            report.push("tool_call_streamed", Outcome::Failed, detail);
        } else {
            report.push("tool_call_streamed", Outcome::Ok, parallel.evidence());
            let detail = if calls >= 2 {
                format!("{calls} calls in one answer")
            } else {
                "one call where two were asked (the model's choice)".to_owned()
            };
            report.push("parallel_tool_calls", Outcome::Ok, detail);
        }
    } else {
        report.skip(
            &["tool_call_streamed", "parallel_tool_calls"],
            "no tool call came",
        );
    }

    let image = send(wire, &[image_turn(protocol)], false, false).await;
    super::chat::images(report, &image, wire.source.images);
}

const REST: &[&str] = &[
    "stream",
    "tool_call",
    "tool_call_streamed",
    "parallel_tool_calls",
    "images",
];

fn user(protocol: SourceProtocol, text: &str) -> Value {
    match protocol {
        SourceProtocol::Gemini => json!({"role": "user", "parts": [{"text": text}]}),
        _ => json!({"role": "user", "content": text}),
    }
}

fn image_turn(protocol: SourceProtocol) -> Value {
    let text = "What colour is this pixel? One word.";
    let png = super::PIXEL_PNG;
    match protocol {
        SourceProtocol::Anthropic => json!({"role": "user", "content": [
            {"type": "text", "text": text},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        ]}),
        SourceProtocol::Responses => json!({"role": "user", "content": [
            {"type": "input_text", "text": text},
            {"type": "input_image", "image_url": format!("data:image/png;base64,{png}")},
        ]}),
        _ => json!({"role": "user", "parts": [
            {"text": text},
            {"inlineData": {"mimeType": "image/png", "data": png}},
        ]}),
    }
}

/// The conversation with the model's call and the tool's result after `ask`.
fn tool_turn(protocol: SourceProtocol, ask: Value, id: &str, arguments: &str) -> Vec<Value> {
    let args: Value = serde_json::from_str(arguments).unwrap_or(json!({}));
    let result = "18 °C and sunny";
    match protocol {
        SourceProtocol::Anthropic => vec![
            ask,
            json!({"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "get_weather", "input": args}]}),
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": result}]}),
        ],
        SourceProtocol::Responses => vec![
            ask,
            json!({"type": "function_call", "call_id": id, "name": "get_weather", "arguments": arguments}),
            json!({"type": "function_call_output", "call_id": id, "output": result}),
        ],
        _ => vec![
            ask,
            json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": args}}]}),
            json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": result}}}]}),
        ],
    }
}

/// Sends `turns` in the source's protocol, with the weather tool when `tools`, streamed when
/// `stream`; each answer is small (a tool call gets room for its arguments).
async fn send(wire: &mut Wire<'_>, turns: &[Value], tools: bool, stream: bool) -> Answer {
    let protocol = wire.source.protocol;
    let model = wire.source.model.clone();
    let max = if tools { 256 } else { 16 };
    let parameters =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let description = "The current weather in a city.";
    let (path, mut body) = match protocol {
        SourceProtocol::Anthropic => {
            let mut b = json!({"model": model, "max_tokens": max, "messages": turns});
            if tools {
                b["tools"] = json!([{"name": "get_weather", "description": description, "input_schema": parameters}]);
            }
            ("/v1/messages".to_owned(), b)
        }
        SourceProtocol::Responses => {
            let mut b =
                json!({"model": model, "max_output_tokens": max, "input": turns, "store": false});
            if tools {
                b["tools"] = json!([{"type": "function", "name": "get_weather", "description": description, "parameters": parameters}]);
            }
            ("/responses".to_owned(), b)
        }
        _ => {
            let verb = if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            let mut b = json!({"contents": turns, "generationConfig": {"maxOutputTokens": max}});
            if tools {
                b["tools"] = json!([{"functionDeclarations": [{"name": "get_weather", "description": description, "parameters": parameters}]}]);
            }
            (format!("/models/{model}:{verb}"), b)
        }
    };
    if stream && protocol != SourceProtocol::Gemini {
        body["stream"] = json!(true);
    }
    wire.post(&path, &body).await
}

/// The first tool call of a whole answer: its id and its arguments as JSON text.
fn first_call(protocol: SourceProtocol, answer: &Value) -> Option<(String, String)> {
    let found = match protocol {
        SourceProtocol::Anthropic => answer["content"]
            .as_array()?
            .iter()
            .find(|b| b["type"] == "tool_use")
            .map(|b| (b["id"].clone(), b["input"].to_string())),
        SourceProtocol::Responses => answer["output"]
            .as_array()?
            .iter()
            .find(|i| i["type"] == "function_call")
            .map(|i| {
                (
                    i["call_id"].clone(),
                    i["arguments"].as_str().unwrap_or("{}").to_owned(),
                )
            }),
        _ => answer["candidates"][0]["content"]["parts"]
            .as_array()?
            .iter()
            .find(|p| p["functionCall"].is_object())
            .map(|p| {
                (
                    p["functionCall"]["id"].clone(),
                    p["functionCall"]["args"].to_string(),
                )
            }),
    };
    found.map(|(id, args)| (id.as_str().unwrap_or("call_0").to_owned(), args))
}

/// Tool calls in a stream of the protocol's events.
fn streamed_calls(protocol: SourceProtocol, events: &[Value]) -> usize {
    match protocol {
        SourceProtocol::Anthropic => events
            .iter()
            .filter(|e| {
                e["type"] == "content_block_start" && e["content_block"]["type"] == "tool_use"
            })
            .count(),
        SourceProtocol::Responses => events
            .iter()
            .filter(|e| {
                e["type"] == "response.output_item.added" && e["item"]["type"] == "function_call"
            })
            .count(),
        _ => events
            .iter()
            .flat_map(|e| {
                e["candidates"][0]["content"]["parts"]
                    .as_array()
                    .into_iter()
                    .flatten()
            })
            .filter(|p| p["functionCall"].is_object())
            .count(),
    }
}

fn stream_usage(protocol: SourceProtocol, events: &[Value]) -> bool {
    events.iter().any(|e| match protocol {
        SourceProtocol::Anthropic => e["message"]["usage"].is_object() || e["usage"].is_object(),
        SourceProtocol::Responses => e["response"]["usage"].is_object(),
        _ => e["usageMetadata"].is_object(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_found_in_each_protocols_answer() {
        let anthropic = json!({"content": [{"type": "text", "text": "x"}, {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}}]});
        assert_eq!(
            first_call(SourceProtocol::Anthropic, &anthropic),
            Some(("t1".into(), "{\"city\":\"Paris\"}".into()))
        );
        let gemini = json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]}}]});
        assert_eq!(
            first_call(SourceProtocol::Gemini, &gemini),
            Some(("call_0".into(), "{\"city\":\"Paris\"}".into()))
        );
        let events = vec![
            json!({"type": "response.output_item.added", "item": {"type": "function_call"}}),
            json!({"type": "response.output_item.added", "item": {"type": "function_call"}}),
        ];
        assert_eq!(streamed_calls(SourceProtocol::Responses, &events), 2);
    }
}
