//! Property checks shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and the stable
//! proptest suite (`tests/fuzz_protocol.rs`, which includes this file with `#[path]`).
//!
//! Every check runs the code under test on one input and returns `Err(reason)` when an output
//! breaks a documented property. A panic inside the code under test is never caught here: the
//! fuzzer and proptest both report it as a failure.

#![allow(dead_code)]

use flexiproxy::protocol::anthropic::encode_stream::message_as_events;
use flexiproxy::protocol::anthropic::{CountTokensRequest, ErrorKind};
use flexiproxy::protocol::errors::{provider_error, stream_error};
use flexiproxy::protocol::json::{PartialObject, completion_suffix, repair_json_object};
use flexiproxy::protocol::names::{ToolNames, shorten_tool_name};
use flexiproxy::protocol::openai_chat::dialect::{Dialect, MaxTokensField, ReasoningStyle};
use flexiproxy::protocol::pair::{
    ResponseContext, StreamTranslator, translate_request, translate_response,
};
use flexiproxy::protocol::passthrough::replace_model;
use flexiproxy::protocol::sse::{SseDecoder, SseEvent};
use flexiproxy::protocol::stream_check::check_stream;
use flexiproxy::protocol::tokens::count_request;
use serde_json::Value;

/// The top-level keys a translated request may carry (the request translator's allow-list).
pub const ALLOWED_REQUEST_KEYS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "temperature",
    "top_p",
    "top_k",
    "user",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "thinking",
    "enable_thinking",
    "thinking_budget",
];

/// Client tool names that the translator has to rename for the provider.
pub const LONG_TOOL: &str =
    "mcp__a_very_long_server_name__with_a_tool_name_that_is_far_longer_than_sixty_four_chars";
pub const ODD_TOOL: &str = "mcp.server/tool";

pub const MESSAGE_ID: &str = "msg_fuzz01";
pub const CLIENT_MODEL: &str = "claude-sonnet-4-5";

/// The provider-side names of [`LONG_TOOL`] and [`ODD_TOOL`] (what a provider would send back).
pub fn renamed_tools() -> [String; 2] {
    [shorten_tool_name(LONG_TOOL), shorten_tool_name(ODD_TOOL)]
}

/// A `ToolNames` that knows the two renamed tools, as after translating a request using them.
pub fn tool_names() -> ToolNames {
    let mut names = ToolNames::default();
    names.to_provider(LONG_TOOL);
    names.to_provider(ODD_TOOL);
    names.to_provider("Bash");
    names
}

/// One dialect per byte: the eight bits cover every combination of the dialect's switches.
pub fn dialect_from_byte(b: u8) -> Dialect {
    Dialect {
        stream_usage: b & 1 != 0,
        max_tokens_field: if b & 2 != 0 {
            MaxTokensField::MaxCompletionTokens
        } else {
            MaxTokensField::MaxTokens
        },
        top_k: b & 4 != 0,
        reasoning: match (b >> 3) & 3 {
            0 => ReasoningStyle::Effort,
            1 => ReasoningStyle::DeepSeek,
            2 => ReasoningStyle::Qwen,
            _ => ReasoningStyle::None,
        },
        system_mid_conversation: b & 32 != 0,
        echo_reasoning: b & 64 != 0,
        max_tokens_limit: (b & 128 != 0).then_some(4096),
        // Every request the first pair translates is an Anthropic one: no structured output.
        json_schema: true,
    }
}

pub const ERROR_KINDS: [ErrorKind; 10] = [
    ErrorKind::InvalidRequest,
    ErrorKind::Authentication,
    ErrorKind::Billing,
    ErrorKind::Permission,
    ErrorKind::NotFound,
    ErrorKind::RequestTooLarge,
    ErrorKind::RateLimit,
    ErrorKind::Api,
    ErrorKind::Timeout,
    ErrorKind::Overloaded,
];

/// `^[A-Za-z0-9_-]{1,64}$`: the tool names OpenAI-style APIs accept.
pub fn is_provider_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `^[A-Za-z0-9_-]+$`: the tool-use ids Anthropic clients accept.
pub fn is_anthropic_tool_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn show(bytes: &[u8]) -> String {
    const MAX: usize = 4000;
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= MAX {
        text.into_owned()
    } else {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &text[..end], bytes.len())
    }
}

/// Anthropic request → OpenAI request: when it translates, the output is a JSON object with
/// only allow-listed keys, the mapped model, provider-valid tool names, and tool-call
/// arguments that are JSON text. Token counting of the same body must not panic either.
pub fn check_request(body: &[u8], dialect: &Dialect) -> Result<(), String> {
    let mut seen_model = None;
    let result = translate_request(
        body,
        |m| {
            seen_model = Some(m.to_owned());
            format!("provider/{m}")
        },
        dialect,
    );
    if let Ok(req) = serde_json::from_slice::<CountTokensRequest>(body) {
        // The tokenizer is slow in debug builds: count small bodies only.
        if body.len() <= 4096 {
            let _ = count_request(&req);
        }
    }
    let Ok(t) = result else { return Ok(()) };
    let fail = |why: String| Err(format!("{why}\noutput: {}", show(&t.body)));
    // Text and tool inputs are forwarded as the client escaped them, so a lone surrogate
    // escape (JSON that `Value` refuses) may pass through: for such an input the output need
    // only be JSON in the same lenient sense.
    if serde_json::from_slice::<Value>(body).is_err() {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(&t.body) {
            Ok(_) => Ok(()),
            Err(e) => fail(format!("translated request is not JSON: {e}")),
        };
    }
    let v: Value = match serde_json::from_slice(&t.body) {
        Ok(v) => v,
        Err(e) => return fail(format!("translated request is not JSON: {e}")),
    };
    let Some(obj) = v.as_object() else {
        return fail("translated request is not an object".into());
    };
    for key in obj.keys() {
        if !ALLOWED_REQUEST_KEYS.contains(&key.as_str()) {
            return fail(format!("key {key:?} is not in the allow-list"));
        }
    }
    let seen_model = seen_model.unwrap_or_default();
    let expected_model = format!("provider/{seen_model}");
    if obj.get("model").and_then(Value::as_str) != Some(expected_model.as_str()) {
        return fail(format!("model is not {expected_model:?}"));
    }
    if t.client_model != seen_model {
        return fail(format!(
            "client_model {:?} is not {seen_model:?}",
            t.client_model
        ));
    }
    if obj.get("stream").and_then(Value::as_bool).unwrap_or(false) != t.stream {
        return fail("stream flag and body disagree".into());
    }
    if obj.contains_key("stream_options") && !t.stream {
        return fail("stream_options on a non-streaming request".into());
    }
    let Some(messages) = obj.get("messages").and_then(Value::as_array) else {
        return fail("messages is not an array".into());
    };
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if !matches!(role, "system" | "user" | "assistant" | "tool") {
            return fail(format!("messages[{i}] has role {role:?}"));
        }
        for (j, call) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
            let Some(args) = call["function"]["arguments"].as_str() else {
                return fail(format!(
                    "messages[{i}].tool_calls[{j}] arguments not a string"
                ));
            };
            if let Err(e) = serde_json::from_str::<Value>(args) {
                return fail(format!(
                    "messages[{i}].tool_calls[{j}] arguments {args:?} are not JSON: {e}"
                ));
            }
            let name = call["function"]["name"].as_str().unwrap_or("");
            if !is_provider_tool_name(name) {
                return fail(format!("tool call name {name:?} is not provider-valid"));
            }
        }
    }
    for tool in obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = tool["function"]["name"].as_str().unwrap_or("");
        if !is_provider_tool_name(name) {
            return fail(format!("tool name {name:?} is not provider-valid"));
        }
    }
    if let Some(name) = obj
        .get("tool_choice")
        .and_then(|c| c.get("function"))
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        && !is_provider_tool_name(name)
    {
        return fail(format!("tool_choice name {name:?} is not provider-valid"));
    }
    Ok(())
}

/// OpenAI response → Anthropic message: when it translates, the output is a `message` whose
/// blocks are well formed (tool inputs are objects, ids are Anthropic-valid), and rendering
/// it as SSE (`message_as_events`, for streaming clients) satisfies `check_stream`. The
/// error-body translations must not panic on the same bytes.
pub fn check_response(body: &[u8], names: &ToolNames, status: u16) -> Result<(), String> {
    let _ = provider_error(status, body);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = stream_error(text);
    }
    let ctx = ResponseContext {
        message_id: MESSAGE_ID,
        client_model: CLIENT_MODEL,
        tool_names: names,
    };
    let Ok(t) = translate_response(body, &ctx) else {
        return Ok(());
    };
    let fail = |why: String| Err(format!("{why}\noutput: {}", show(&t.body)));
    let v: Value = match serde_json::from_slice(&t.body) {
        Ok(v) => v,
        Err(e) => return fail(format!("translated response is not JSON: {e}")),
    };
    if v["type"] != "message" || v["role"] != "assistant" {
        return fail("not an assistant message".into());
    }
    if v["id"] != MESSAGE_ID || v["model"] != CLIENT_MODEL {
        return fail("id or model not the client's".into());
    }
    let Some(content) = v["content"].as_array() else {
        return fail("content is not an array".into());
    };
    for (i, block) in content.iter().enumerate() {
        match block["type"].as_str() {
            Some("text") if block["text"].is_string() => {}
            Some("thinking") if block["thinking"].is_string() && block["signature"].is_string() => {
            }
            Some("tool_use") => {
                if !block["input"].is_object() {
                    return fail(format!("content[{i}] tool input is not an object"));
                }
                if !block["id"].as_str().is_some_and(is_anthropic_tool_id) {
                    return fail(format!("content[{i}] bad tool_use id"));
                }
                if !block["name"].is_string() {
                    return fail(format!("content[{i}] tool_use without a name"));
                }
            }
            _ => return fail(format!("content[{i}] is not a valid block")),
        }
    }
    if !matches!(
        v["stop_reason"].as_str(),
        Some("end_turn" | "max_tokens" | "tool_use" | "refusal" | "stop_sequence" | "pause_turn")
    ) {
        return fail("bad stop_reason".into());
    }
    if v["usage"]["output_tokens"].as_u64().is_none()
        || v["usage"]["input_tokens"].as_u64().is_none()
    {
        return fail("usage missing".into());
    }
    let events = message_as_events(&t.body, 7);
    if let Err(e) = check_stream(&events) {
        return fail(format!(
            "message_as_events breaks the stream invariants: {e}\nevents: {}",
            show(&events)
        ));
    }
    Ok(())
}

/// How a stream check feeds the translator.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    /// Read sizes, used cyclically (0 is read as 1). Empty: one read.
    pub reads: Vec<usize>,
    /// A second, different schedule whose output must be identical.
    pub other_reads: Vec<usize>,
    /// Call `begin` before the first read (as the proxy does when headers go out early).
    pub begin_first: bool,
    /// Where (in bytes of input) an upstream failure happens for the `fail` run.
    pub fail_at: usize,
    pub fail_kind: ErrorKind,
    pub fail_message: String,
}

impl Default for StreamPlan {
    fn default() -> Self {
        StreamPlan {
            reads: Vec::new(),
            other_reads: vec![1],
            begin_first: false,
            fail_at: 0,
            fail_kind: ErrorKind::Api,
            fail_message: "upstream reset".into(),
        }
    }
}

fn reads<'b>(input: &'b [u8], sizes: &[usize]) -> Vec<&'b [u8]> {
    if sizes.is_empty() {
        return vec![input];
    }
    let mut out = Vec::new();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].max(1).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
        i += 1;
    }
    out
}

fn translator(names: &ToolNames) -> StreamTranslator {
    StreamTranslator::new(MESSAGE_ID, CLIENT_MODEL, names.clone(), 11)
}

/// Runs `input` through a translator read by read, then `finish`.
pub fn translate_stream(input: &[u8], sizes: &[usize], begin_first: bool) -> Vec<u8> {
    let names = tool_names();
    let mut t = translator(&names);
    let mut out = Vec::new();
    if begin_first {
        t.begin(&mut out);
    }
    for read in reads(input, sizes) {
        t.push(read, &mut out);
    }
    t.finish(&mut out);
    let _ = t.summary();
    out
}

/// OpenAI SSE → Anthropic SSE: the output obeys `check_stream` after `finish` and after
/// `fail` at any point; it does not depend on how the input was split into reads (nor on an
/// early `begin`); nothing is written after the end.
pub fn check_stream_input(input: &[u8], plan: &StreamPlan) -> Result<(), String> {
    let names = tool_names();
    let fail = |why: String, out: &[u8]| {
        Err(format!(
            "{why}\ninput: {}\noutput: {}",
            show(input),
            show(out)
        ))
    };

    // One read, then finish.
    let whole = translate_stream(input, &[], false);
    if let Err(e) = check_stream(&whole) {
        return fail(format!("after finish: {e}"), &whole);
    }

    // Two other splittings give the same bytes.
    for (sizes, begin) in [
        (&plan.reads, plan.begin_first),
        (&plan.other_reads, !plan.begin_first),
    ] {
        let split = translate_stream(input, sizes, begin);
        if split != whole {
            return fail(
                format!(
                    "reads {sizes:?} (begin first: {begin}) give a different output:\n{}",
                    show(&split)
                ),
                &whole,
            );
        }
    }

    // Fail part-way: an error event ends a valid stream, and nothing follows it.
    let mut t = translator(&names);
    let mut out = Vec::new();
    let cut = plan.fail_at.min(input.len());
    for read in reads(&input[..cut], &plan.reads) {
        t.push(read, &mut out);
    }
    t.fail(plan.fail_kind, &plan.fail_message, &mut out);
    if !t.is_done() {
        return fail("not done after fail".into(), &out);
    }
    let len = out.len();
    t.push(&input[cut..], &mut out);
    t.finish(&mut out);
    t.fail(ErrorKind::Api, "again", &mut out);
    if out.len() != len {
        return fail("output after the stream ended".into(), &out);
    }
    if let Err(e) = check_stream(&out) {
        return fail(format!("after fail at {cut}: {e}"), &out);
    }

    // Finish then more input: ignored too.
    let mut t = translator(&names);
    let mut out = Vec::new();
    t.push(input, &mut out);
    t.finish(&mut out);
    let len = out.len();
    t.push(
        b"data: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n",
        &mut out,
    );
    t.finish(&mut out);
    t.fail(ErrorKind::Api, "late", &mut out);
    if out.len() != len {
        return fail("output after message_stop".into(), &out);
    }
    Ok(())
}

/// The SSE decoder alone: events do not depend on read boundaries.
pub fn check_sse_decoder(input: &[u8], sizes: &[usize]) -> Result<(), String> {
    fn decode(pieces: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        let mut d = SseDecoder::new();
        let mut events = Vec::new();
        let mut on = |e: SseEvent<'_>| {
            events.push(match e {
                SseEvent::Data(d) => Some(d.to_vec()),
                SseEvent::Comment => None,
            })
        };
        for p in pieces {
            d.push(p, &mut on);
        }
        d.finish(&mut on);
        events
    }
    let whole = decode(&[input]);
    let split = decode(&reads(input, sizes));
    if whole != split {
        return Err(format!(
            "SSE events differ for reads {sizes:?}\ninput: {}",
            show(input)
        ));
    }
    Ok(())
}

/// The JSON helpers: repairs are JSON objects; a valid object prefix completes to JSON.
pub fn check_json_helpers(text: &str) -> Result<(), String> {
    if let Some(repaired) = repair_json_object(text) {
        match serde_json::from_str::<Value>(&repaired) {
            Ok(v) if v.is_object() => {}
            _ => {
                return Err(format!(
                    "repair_json_object({text:?}) = {repaired:?} is not a JSON object"
                ));
            }
        }
    }
    if let Some(suffix) = completion_suffix(text) {
        let whole = format!("{text}{suffix}");
        if !serde_json::from_str::<Value>(&whole).is_ok_and(|v| v.is_object()) {
            return Err(format!(
                "completion_suffix({text:?}) = {suffix:?} does not make an object"
            ));
        }
    }
    // Fed piece by piece, the scanner agrees with itself fed whole.
    let mut whole = PartialObject::new();
    let whole_ok = whole.feed(text);
    let mut pieces = PartialObject::new();
    let mut pieces_ok = true;
    for (i, c) in text.char_indices() {
        pieces_ok = pieces.feed(&text[i..i + c.len_utf8()]);
        if !pieces_ok {
            break;
        }
    }
    if whole_ok != pieces_ok || whole.is_complete() != pieces.is_complete() {
        return Err(format!("PartialObject disagrees with itself on {text:?}"));
    }
    if whole_ok
        && let Some(suffix) = whole.completion()
        && !serde_json::from_str::<Value>(&format!("{text}{suffix}")).is_ok_and(|v| v.is_object())
    {
        return Err(format!(
            "PartialObject::completion({text:?}) = {suffix:?} does not make an object"
        ));
    }
    Ok(())
}

/// Passthrough: when `replace_model` accepts a body, the output is the input with only the
/// top-level `model` changed (compared as JSON values), and the reported facts match.
pub fn check_replace_model(body: &[u8], new_model: &str) -> Result<(), String> {
    let Ok((out, client, source, stream)) = replace_model(body, |_| new_model.to_owned()) else {
        return Ok(());
    };
    let fail = |why: String| {
        Err(format!(
            "{why}\ninput: {}\noutput: {}",
            show(body),
            show(&out)
        ))
    };
    if source != new_model {
        return fail("source model not the mapped one".into());
    }
    // Lone surrogate escapes and the like are JSON that `Value` refuses: then the output need
    // only be as well-formed as the input was.
    let Ok(mut in_value) = serde_json::from_slice::<Value>(body) else {
        let input_ok = serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
        if input_ok && serde_json::from_slice::<serde::de::IgnoredAny>(&out).is_err() {
            return fail("output is not JSON although the input was".into());
        }
        return Ok(());
    };
    let out_value: Value = match serde_json::from_slice(&out) {
        Ok(v) => v,
        Err(e) => return fail(format!("output is not JSON: {e}")),
    };
    if in_value["model"].as_str() != Some(client.as_str()) {
        return fail(format!("client model {client:?} is not the input's"));
    }
    if in_value["stream"].as_bool().unwrap_or(false) != stream {
        return fail("stream flag wrong".into());
    }
    in_value["model"] = Value::String(new_model.to_owned());
    if in_value != out_value {
        return fail("output differs from the input beyond the model".into());
    }
    Ok(())
}
