//! The provider check of an OpenAI Chat Completions source, in at most twelve requests: the
//! model list; a plain answer (with `max_tokens`, again with `max_completion_tokens` when
//! refused); a stream with `stream_options`; a tool call with reasoning switched on (again
//! without the switch when refused); the tool turn sent back without the reasoning; a streamed
//! request for two parallel calls without `stream_options`; `json_schema` (then
//! `json_object`); a mid-conversation system message; a 1×1 PNG. Each question rides on a
//! request another one needs anyway, so the budget holds whatever the provider answers.

use super::report::{CheckReport, Outcome, model_list};
use super::wire::{Answer, Wire};
use crate::config::adapter::ImagePolicy;
use crate::protocol::openai_chat::dialect::{Dialect, MaxTokensField, ReasoningStyle};
use serde_json::{Value, json};

const PATH: &str = "/chat/completions";

/// What the answers so far established, for the requests after them.
struct Found {
    max_field: &'static str,
    /// The reasoning switch sent with tool requests, while the provider accepts it.
    switch: Option<(&'static str, Value)>,
    /// The field reasoning came in (`reasoning_content` or `reasoning`).
    reasoning_field: Option<&'static str>,
}

fn tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }}])
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

impl Found {
    fn body(&self, wire: &Wire, max: u64, messages: Value) -> Value {
        let mut b = json!({"model": wire.source.model, "messages": messages});
        b[self.max_field] = json!(max);
        b
    }

    fn with_tools(&self, mut body: Value) -> Value {
        body["tools"] = tools();
        if let Some((field, value)) = &self.switch {
            body[*field] = value.clone();
        }
        body
    }

    /// Notes the field reasoning came in, in a message or a stream delta.
    fn saw(&mut self, part: &Value) {
        for field in ["reasoning_content", "reasoning"] {
            if part[field].as_str().is_some_and(|t| !t.is_empty()) {
                self.reasoning_field.get_or_insert(field);
            }
        }
    }
}

pub async fn run(wire: &mut Wire<'_>, report: &mut CheckReport) {
    if !model_list(wire, report, "/models").await {
        return report.skip(REST, "the provider refused the key");
    }
    let dialect = wire.source.dialect.clone();
    let switch = match dialect.reasoning {
        ReasoningStyle::Effort => Some(("reasoning_effort", json!("low"))),
        ReasoningStyle::DeepSeek => Some(("thinking", json!({"type": "enabled"}))),
        // Qwen takes its switch only on streams; none is sent for `none`.
        ReasoningStyle::Qwen | ReasoningStyle::None => None,
    };
    let mut found = Found {
        max_field: "max_tokens",
        switch,
        reasoning_field: None,
    };

    // A plain answer, and which field carries the output limit.
    let ask = json!([user("Reply with the word pong.")]);
    let mut plain = wire.post(PATH, &found.body(wire, 16, ask.clone())).await;
    if plain.refused_naming("max_tokens") || plain.refused_naming("max_completion_tokens") {
        found.max_field = "max_completion_tokens";
        let again = wire.post(PATH, &found.body(wire, 16, ask)).await;
        let why = format!(
            "max_tokens: {}; max_completion_tokens: {}",
            plain.evidence(),
            again.evidence()
        );
        if !again.ok() {
            report.push("max_tokens_field", Outcome::Failed, why);
        } else if dialect.max_tokens_field == MaxTokensField::MaxCompletionTokens {
            report.push("max_tokens_field", Outcome::Ok, format!("{why} (as set)"));
        } else {
            report.needs(
                "max_tokens_field",
                "max_tokens_field",
                json!("max_completion_tokens"),
                why,
            );
        }
        plain = again;
    } else if plain.ok() {
        report.push(
            "max_tokens_field",
            Outcome::Ok,
            "max_tokens accepted".to_owned(),
        );
    }
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
    let message = &plain.json["choices"][0]["message"];
    found.saw(message);
    report.push(
        "plain_answer",
        Outcome::Ok,
        format!("{}: {}", plain.evidence(), excerpt(&message["content"])),
    );

    // A stream asking for usage.
    let mut streamed = found.body(wire, 16, json!([user("Count from 1 to 5.")]));
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let stream = wire.post(PATH, &streamed).await;
    let options_refused = stream.refused_naming("stream_options");
    let usage_with = has_usage(&stream);
    if stream.ok() {
        for e in &stream.events {
            found.saw(&e["choices"][0]["delta"]);
        }
        report.push(
            "stream",
            Outcome::Ok,
            format!("{}, {} events", stream.evidence(), stream.events.len()),
        );
    } else if !options_refused {
        report.failed("stream", &stream);
    }

    // Usage in streams: decided by the stream with `stream_options` and the one without.
    let usage_without = tool_checks(wire, report, &mut found, &dialect).await;
    stream_usage(
        report,
        &dialect,
        &stream,
        options_refused,
        usage_with,
        usage_without,
    );

    json_checks(wire, report, &found, dialect.json_schema).await;

    // A system message in the middle of the conversation.
    let turns = json!([
        {"role": "system", "content": "You are terse."},
        user("Hi"),
        {"role": "assistant", "content": "Hi."},
        {"role": "system", "content": "From now on answer with the word pong."},
        user("Go on."),
    ]);
    let system = wire.post(PATH, &found.body(wire, 16, turns)).await;
    if system.ok() {
        report.push("system_messages", Outcome::Ok, system.evidence());
    } else if system.refused() && dialect.system_mid_conversation {
        report.needs(
            "system_messages",
            "system_messages",
            json!("user"),
            system.evidence(),
        );
    } else if system.refused() {
        let why = format!("{} (sent as user text, as set)", system.evidence());
        report.push("system_messages", Outcome::Ok, why);
    } else {
        report.failed("system_messages", &system);
    }

    // An image: a 1×1 PNG.
    let content = json!([
        {"type": "text", "text": "What colour is this pixel? One word."},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", super::PIXEL_PNG)}},
    ]);
    let image = wire
        .post(
            PATH,
            &found.body(wire, 16, json!([{"role": "user", "content": content}])),
        )
        .await;
    images(report, &image, wire.source.images);
}

/// Everything after the plain answer, for when it did not come.
const REST: &[&str] = &[
    "stream",
    "stream_usage",
    "reasoning",
    "tool_call",
    "echo_reasoning",
    "tool_call_streamed",
    "parallel_tool_calls",
    "json_schema",
    "system_messages",
    "images",
];

/// The outcome of the image request, for any protocol: a refusal means `images: false`.
pub fn images(report: &mut CheckReport, image: &Answer, policy: ImagePolicy) {
    if image.ok() {
        report.push("images", Outcome::Ok, image.evidence());
    } else if image.refused() && policy == ImagePolicy::Read {
        report.needs("images", "images", json!(false), image.evidence());
    } else if image.refused() {
        let why = format!("{} (images are not sent, as set)", image.evidence());
        report.push("images", Outcome::Ok, why);
    } else {
        report.failed("images", image);
    }
}

/// A tool call, the tool turn back without reasoning, and two calls streamed in parallel;
/// true when that stream (sent without `stream_options`) carried usage.
async fn tool_checks(
    wire: &mut Wire<'_>,
    report: &mut CheckReport,
    found: &mut Found,
    dialect: &Dialect,
) -> bool {
    let ask = json!([user("What is the weather in Paris? Use get_weather.")]);
    let mut call = wire
        .post(PATH, &found.with_tools(found.body(wire, 256, ask.clone())))
        .await;
    if let Some((field, _)) = found.switch.clone()
        && call.refused_naming(field)
    {
        found.switch = None;
        let why = format!("`{field}` refused: {}", call.evidence());
        if dialect.reasoning == ReasoningStyle::None {
            report.push("reasoning", Outcome::Ok, why);
        } else {
            report.needs("reasoning", "reasoning", json!("none"), why);
        }
        call = wire
            .post(PATH, &found.with_tools(found.body(wire, 256, ask.clone())))
            .await;
    }
    let message = call.json["choices"][0]["message"].clone();
    found.saw(&message);
    let first = &message["tool_calls"][0];
    if !call.ok() || first.is_null() {
        let detail = if call.ok() {
            format!(
                "{}: answered without calling the tool ({}); no option gives a model tools — choose one that has them",
                call.evidence(),
                excerpt(&message["content"])
            )
        } else {
            format!(
                "{}; no option gives a model tools — choose one that has them",
                call.evidence()
            )
        };
        report.push("tool_call", Outcome::Failed, detail);
        reasoning_field(report, found);
        report.skip(
            &[
                "echo_reasoning",
                "tool_call_streamed",
                "parallel_tool_calls",
            ],
            "no tool call came",
        );
        return false;
    }
    report.push(
        "tool_call",
        Outcome::Ok,
        format!(
            "{}: {}({})",
            call.evidence(),
            first["function"]["name"].as_str().unwrap_or_default(),
            first["function"]["arguments"].as_str().unwrap_or_default()
        ),
    );
    let reasoning = found.reasoning_field.and_then(|f| message[f].as_str());

    // The tool turn back, without the reasoning that came with the call.
    let id = first["id"].as_str().unwrap_or("call_0");
    let turn = json!([
        ask[0],
        {"role": "assistant", "content": null, "tool_calls": [first]},
        {"role": "tool", "tool_call_id": id, "content": "18 °C and sunny"},
    ]);
    let back = wire
        .post(PATH, &found.with_tools(found.body(wire, 64, turn)))
        .await;
    match (
        reasoning.is_some(),
        back.ok(),
        back.refused_naming("reasoning"),
    ) {
        (_, false, true) if !dialect.echo_reasoning => report.needs(
            "echo_reasoning",
            "echo_reasoning",
            json!(true),
            format!("the tool turn without its reasoning: {}", back.evidence()),
        ),
        (_, false, true) => report.push(
            "echo_reasoning",
            Outcome::Ok,
            format!("required ({}); sent back, as set", back.evidence()),
        ),
        (true, true, _) => report.push(
            "echo_reasoning",
            Outcome::Ok,
            format!(
                "not required: the tool turn without it was accepted ({})",
                back.evidence()
            ),
        ),
        (false, true, _) => report.push(
            "echo_reasoning",
            Outcome::Skipped,
            format!(
                "no reasoning came; the tool turn was accepted ({})",
                back.evidence()
            ),
        ),
        (_, false, false) => report.push(
            "echo_reasoning",
            Outcome::Failed,
            format!("the tool turn: {}", back.evidence()),
        ),
    }

    // Two calls asked for, streamed, without `stream_options`.
    let ask = json!([user(
        "Call get_weather twice, in parallel: once for Paris and once for Tokyo."
    )]);
    let mut body = found.with_tools(found.body(wire, 256, ask));
    body["stream"] = json!(true);
    let parallel = wire.post(PATH, &body).await;
    for e in &parallel.events {
        found.saw(&e["choices"][0]["delta"]);
    }
    reasoning_field(report, found);
    if !parallel.ok() {
        report.failed("tool_call_streamed", &parallel);
        report.skip(&["parallel_tool_calls"], "the streamed tool call failed");
        return false;
    }
    let calls = streamed_calls(&parallel.events);
    if calls == 0 {
        let why = format!("{}: no tool call in the stream", parallel.evidence());
        report.push("tool_call_streamed", Outcome::Failed, why);
        report.skip(&["parallel_tool_calls"], "no streamed tool call came");
        return has_usage(&parallel);
    }
    report.push(
        "tool_call_streamed",
        Outcome::Ok,
        format!("{}, {} events", parallel.evidence(), parallel.events.len()),
    );
    let detail = if calls >= 2 {
        format!("{calls} calls in one answer")
    } else {
        "one call where two were asked (the model's choice; parallel calls pass when they come)"
            .to_owned()
    };
    report.push("parallel_tool_calls", Outcome::Ok, detail);
    has_usage(&parallel)
}

/// The `reasoning` check's field finding (unless the switch was refused, which said more).
fn reasoning_field(report: &mut CheckReport, found: &Found) {
    if report.outcome_of("reasoning").is_some() {
        return;
    }
    let detail = match found.reasoning_field {
        Some(field) => format!("reasoning comes in `{field}` (read either way; no option needed)"),
        None => "no reasoning in the answers (`reasoning_content` or `reasoning`)".to_owned(),
    };
    report.push("reasoning", Outcome::Ok, detail);
}

fn stream_usage(
    report: &mut CheckReport,
    dialect: &Dialect,
    stream: &Answer,
    options_refused: bool,
    usage_with: bool,
    usage_without: bool,
) {
    let name = "stream_usage";
    if options_refused {
        if report.outcome_of("stream").is_none() {
            let ok = report.outcome_of("tool_call_streamed") == Some(Outcome::Ok);
            let detail = if ok {
                "streams without stream_options work"
            } else {
                "not shown: stream_options was refused and no other stream came back"
            };
            let outcome = if ok { Outcome::Ok } else { Outcome::Skipped };
            report.push("stream", outcome, detail);
        }
        let why = format!("stream_options refused: {}", stream.evidence());
        if dialect.stream_usage {
            report.needs(name, name, json!(false), why);
        } else {
            report.push(name, Outcome::Ok, format!("{why} (not sent, as set)"));
        }
        return;
    }
    if !stream.ok() {
        return report.skip(&[name], "the stream failed");
    }
    match (usage_with, usage_without) {
        (_, true) => report.push(
            name,
            Outcome::Ok,
            "usage comes in the stream, with or without stream_options",
        ),
        (true, false) if dialect.stream_usage => report.push(
            name,
            Outcome::Ok,
            "usage comes only with stream_options (sent, as set)",
        ),
        (true, false) => report.needs(
            name,
            name,
            json!(true),
            "usage comes only with stream_options".to_owned(),
        ),
        (false, false) if dialect.stream_usage => report.needs(
            name,
            name,
            json!(false),
            "no usage in the stream, even with stream_options (tokens are estimated)".to_owned(),
        ),
        (false, false) => report.push(
            name,
            Outcome::Ok,
            "no usage in the stream (tokens are estimated; stream_options not sent, as set)",
        ),
    }
}

async fn json_checks(
    wire: &mut Wire<'_>,
    report: &mut CheckReport,
    found: &Found,
    schema_set: bool,
) {
    let ask = json!([user("Give the word pong as JSON: {\"word\": \"pong\"}.")]);
    let mut body = found.body(wire, 32, ask.clone());
    body["response_format"] = json!({"type": "json_schema", "json_schema": {
        "name": "word", "strict": true,
        "schema": {"type": "object", "properties": {"word": {"type": "string"}},
                   "required": ["word"], "additionalProperties": false}
    }});
    let schema = wire.post(PATH, &body).await;
    if schema.ok() {
        let said = excerpt(&schema.json["choices"][0]["message"]["content"]);
        return report.push(
            "json_schema",
            Outcome::Ok,
            format!("{}: {said}", schema.evidence()),
        );
    }
    if !schema.refused() {
        return report.failed("json_schema", &schema);
    }
    let mut body = found.body(wire, 32, ask);
    body["response_format"] = json!({"type": "json_object"});
    let object = wire.post(PATH, &body).await;
    let why = format!(
        "json_schema: {}; json_object: {}",
        schema.evidence(),
        object.evidence()
    );
    match (object.ok(), schema_set) {
        (false, _) => report.push("json_schema", Outcome::Failed, why),
        (true, true) => report.needs("json_schema", "json_schema", json!(false), why),
        (true, false) => report.push("json_schema", Outcome::Ok, format!("{why} (as set)")),
    }
}

fn has_usage(answer: &Answer) -> bool {
    answer.events.iter().any(|e| e["usage"].is_object())
}

/// Distinct tool calls in a Chat stream (by index, then id).
fn streamed_calls(events: &[Value]) -> usize {
    let mut seen: Vec<String> = Vec::new();
    for e in events {
        for call in e["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let key = match (&call["index"], call["id"].as_str()) {
                (Value::Number(n), _) => format!("#{n}"),
                (_, Some(id)) if !id.is_empty() => id.to_owned(),
                _ => continue,
            };
            if !seen.contains(&key) {
                seen.push(key);
            }
        }
    }
    seen.len()
}

/// A short quote of what the model said.
pub fn excerpt(text: &Value) -> String {
    let t = text.as_str().unwrap_or_default();
    let short: String = t.chars().take(60).collect();
    if t.chars().count() > 60 {
        format!("\"{short}…\"")
    } else {
        format!("\"{short}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_calls_are_counted_by_index() {
        let events = vec![
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 1, "id": "b"}]}}]}),
        ];
        assert_eq!(streamed_calls(&events), 2);
        assert_eq!(streamed_calls(&[]), 0);
    }
}
