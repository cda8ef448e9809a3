use super::*;
use crate::protocol::pivot::Origin;
use serde_json::Value;

fn ctx(usage: bool) -> ExchangeContext {
    ExchangeContext {
        message_id: "chatcmpl-1".into(),
        created: 9,
        client_model: "gpt-4o".into(),
        stream: true,
        stream_usage: usage,
        ..ExchangeContext::default()
    }
}

/// The `data:` payloads of an SSE body, `[DONE]` as a string.
fn payloads(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).unwrap();
    text.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let data = f.strip_prefix("data: ").unwrap();
            serde_json::from_str(data).unwrap_or(Value::String(data.to_owned()))
        })
        .collect()
}

fn tool<'a>(id: &'a str, name: &'a str) -> BlockKind<'a> {
    BlockKind::ToolCall { id, name }
}

#[test]
fn role_first_then_deltas_finish_usage_done() {
    let mut e = StreamEncoder::new(ctx(true));
    let mut out = Vec::new();
    for event in [
        Event::Start { id: "msg_1" },
        Event::Usage(Usage {
            input: 10,
            cache_read: Some(4),
            ..Usage::default()
        }),
        Event::BlockStart {
            index: 0,
            kind: BlockKind::Reasoning,
        },
        Event::ReasoningDelta {
            index: 0,
            text: "think",
        },
        Event::ReasoningSignature {
            index: 0,
            origin: Origin::Anthropic,
            signature: "S",
        },
        Event::BlockStop { index: 0 },
        Event::BlockStart {
            index: 1,
            kind: BlockKind::Text,
        },
        Event::TextDelta {
            index: 1,
            text: "Hi \"there\"",
        },
        Event::BlockStop { index: 1 },
        Event::BlockStart {
            index: 2,
            kind: tool("toolu_a", "ls"),
        },
        Event::ArgumentsDelta {
            index: 2,
            json: "{\"p\":",
        },
        Event::ArgumentsDelta {
            index: 2,
            json: "1}",
        },
        Event::BlockStop { index: 2 },
        Event::BlockStart {
            index: 3,
            kind: tool("toolu_b", "pwd"),
        },
        Event::BlockStop { index: 3 },
        Event::Usage(Usage {
            input: 10,
            output: 7,
            cache_read: Some(4),
            ..Usage::default()
        }),
        Event::Finish {
            stop: StopReason::ToolUse,
            stop_sequence: None,
        },
    ] {
        e.event(event, &mut out);
    }
    e.finish(&mut out);
    let p = payloads(&out);
    assert_eq!(p[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(p[0]["object"], "chat.completion.chunk");
    assert_eq!(p[0]["model"], "gpt-4o");
    assert_eq!(p[1]["choices"][0]["delta"]["reasoning_content"], "think");
    assert_eq!(p[2]["choices"][0]["delta"]["content"], "Hi \"there\"");
    let first_call = &p[3]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(
        (first_call["index"].as_u64(), first_call["id"].as_str()),
        (Some(0), Some("toolu_a"))
    );
    assert_eq!(first_call["function"]["name"], "ls");
    assert_eq!(
        p[4]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
        "{\"p\":"
    );
    assert!(
        p[4]["choices"][0]["delta"]["tool_calls"][0]
            .get("id")
            .is_none()
    );
    assert_eq!(
        p[6]["choices"][0]["delta"]["tool_calls"][0]["index"], 1,
        "tool calls counted alone"
    );
    assert_eq!(p[7]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(p[8]["choices"], Value::Array(vec![]));
    assert_eq!(p[8]["usage"]["prompt_tokens"], 10);
    assert_eq!(p[8]["usage"]["completion_tokens"], 7);
    assert_eq!(p[8]["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
    assert_eq!(p[9], "[DONE]");
    assert_eq!(p.len(), 10);
    assert!(e.facts().usage_reported);
}

#[test]
fn no_usage_chunk_unless_asked_and_errors_end_cleanly() {
    let mut e = StreamEncoder::new(ctx(false));
    let mut out = Vec::new();
    e.event(
        Event::BlockStart {
            index: 0,
            kind: BlockKind::Text,
        },
        &mut out,
    );
    e.event(
        Event::TextDelta {
            index: 0,
            text: "a",
        },
        &mut out,
    );
    e.finish(&mut out);
    let p = payloads(&out);
    assert_eq!(p.len(), 4);
    assert_eq!(p[2]["choices"][0]["finish_reason"], "stop");

    let mut e = StreamEncoder::new(ctx(true));
    let mut out = Vec::new();
    e.event(
        Event::TextDelta {
            index: 0,
            text: "a",
        },
        &mut out,
    );
    e.event(
        Event::Error {
            kind: ErrorKind::Overloaded,
            message: "busy",
        },
        &mut out,
    );
    e.finish(&mut out);
    e.event(
        Event::TextDelta {
            index: 0,
            text: "late",
        },
        &mut out,
    );
    let p = payloads(&out);
    assert_eq!(p[2]["error"]["message"], "busy");
    assert_eq!(p[3], "[DONE]");
    assert_eq!(p.len(), 4, "nothing after the error");
    assert!(e.facts().errored && e.is_done());
}

#[test]
fn structured_output_streams_as_content() {
    let mut c = ctx(false);
    c.structured_output_tool = Some("structured_output".into());
    let mut e = StreamEncoder::new(c);
    let mut out = Vec::new();
    e.event(
        Event::BlockStart {
            index: 0,
            kind: tool("t", "structured_output"),
        },
        &mut out,
    );
    e.event(
        Event::ArgumentsDelta {
            index: 0,
            json: "{\"a\":1}",
        },
        &mut out,
    );
    e.event(
        Event::Finish {
            stop: StopReason::ToolUse,
            stop_sequence: None,
        },
        &mut out,
    );
    e.finish(&mut out);
    let p = payloads(&out);
    assert_eq!(p[1]["choices"][0]["delta"]["content"], "{\"a\":1}");
    assert_eq!(p[2]["choices"][0]["finish_reason"], "stop");
}

#[test]
fn max_tokens_is_length() {
    let mut e = StreamEncoder::new(ctx(false));
    let mut out = Vec::new();
    e.event(
        Event::Finish {
            stop: StopReason::MaxTokens,
            stop_sequence: None,
        },
        &mut out,
    );
    e.finish(&mut out);
    assert_eq!(payloads(&out)[1]["choices"][0]["finish_reason"], "length");
}
