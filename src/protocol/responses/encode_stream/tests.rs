use super::*;
use crate::protocol::pivot::{ClientTools, Origin};
use crate::protocol::responses::seal::ReasoningKey;
use serde_json::Value;

fn ctx() -> ExchangeContext {
    ExchangeContext {
        message_id: "resp_r1".into(),
        created: 7,
        client_model: "gpt-5.5".into(),
        stream: true,
        client_tools: ClientTools {
            custom: vec!["apply_patch".into()],
            namespaced: vec![("ns__spawn".into(), "ns".into(), "spawn".into())],
            dropped: vec![],
        },
        reasoning_key: Some(ReasoningKey::from_secret(b"k")),
        ..ExchangeContext::default()
    }
}

/// The events written, as (type, data).
fn events(out: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(out).unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
        .map(|e| {
            let mut lines = e.lines();
            let kind = lines.next().unwrap().strip_prefix("event: ").unwrap();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["type"], kind);
            (kind.to_owned(), v)
        })
        .collect()
}

fn run(ctx: ExchangeContext, script: &[Event<'_>]) -> Vec<(String, Value)> {
    let mut e = StreamEncoder::new(ctx);
    let mut out = Vec::new();
    for ev in script {
        e.event(ev.clone(), &mut out);
    }
    e.finish(&mut out);
    assert!(e.is_done());
    let evs = events(&out);
    for (i, (_, v)) in evs.iter().enumerate() {
        assert_eq!(v["sequence_number"], i as u64, "sequence numbers count up");
    }
    evs
}

fn kinds(evs: &[(String, Value)]) -> Vec<&str> {
    evs.iter().map(|(k, _)| k.as_str()).collect()
}

#[test]
fn text_answer_has_the_full_event_sequence() {
    let evs = run(
        ctx(),
        &[
            Event::Start { id: "x" },
            Event::BlockStart {
                index: 0,
                kind: BlockKind::Text,
            },
            Event::TextDelta {
                index: 0,
                text: "Hel",
            },
            Event::TextDelta {
                index: 0,
                text: "lo \"you\"",
            },
            Event::BlockStop { index: 0 },
            Event::Usage(Usage {
                input: 10,
                output: 3,
                cache_read: Some(4),
                ..Usage::default()
            }),
            Event::Finish {
                stop: StopReason::EndTurn,
                stop_sequence: None,
            },
            Event::End,
        ],
    );
    assert_eq!(
        kinds(&evs),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(evs[0].1["response"]["status"], "in_progress");
    assert_eq!(evs[6].1["text"], "Hello \"you\"");
    let done = &evs[8].1["item"];
    assert_eq!(done["content"][0]["text"], "Hello \"you\"");
    assert_eq!(done["id"], "msg_r1_0");
    let r = &evs[9].1["response"];
    assert_eq!(r["status"], "completed");
    assert_eq!(r["id"], "resp_r1");
    assert_eq!(r["model"], "gpt-5.5");
    assert_eq!(r["output"][0]["content"][0]["text"], "Hello \"you\"");
    assert_eq!(r["usage"]["input_tokens"], 10);
    assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 4);
    assert_eq!(r["usage"]["total_tokens"], 13);
}

#[test]
fn reasoning_is_summarised_and_sealed() {
    let c = ctx();
    let key = c.reasoning_key.clone().unwrap();
    let evs = run(
        c,
        &[
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
                signature: "SIG",
            },
            Event::BlockStop { index: 0 },
            Event::End,
        ],
    );
    assert_eq!(
        kinds(&evs)[2..7],
        [
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
        ]
    );
    let item = &evs[7].1["item"];
    assert_eq!(item["type"], "reasoning");
    assert_eq!(item["summary"][0]["text"], "think");
    let blob = item["encrypted_content"].as_str().unwrap();
    assert!(!blob.contains("SIG"));
    let sealed = key.open(blob).unwrap();
    assert_eq!(
        (sealed.text.as_str(), sealed.signature.as_deref()),
        ("think", Some("SIG"))
    );
}

#[test]
fn calls_come_back_in_the_clients_shape() {
    let evs = run(
        ctx(),
        &[
            Event::BlockStart {
                index: 0,
                kind: BlockKind::ToolCall {
                    id: "call_1",
                    name: "exec_command",
                },
            },
            Event::ArgumentsDelta {
                index: 0,
                json: "{\"cmd\":",
            },
            Event::ArgumentsDelta {
                index: 0,
                json: "\"ls\"}",
            },
            Event::BlockStop { index: 0 },
            Event::BlockStart {
                index: 1,
                kind: BlockKind::ToolCall {
                    id: "call_2",
                    name: "apply_patch",
                },
            },
            Event::ArgumentsDelta {
                index: 1,
                json: "{\"input\":\"*** Begin",
            },
            Event::ArgumentsDelta {
                index: 1,
                json: " Patch\\n\"}",
            },
            Event::BlockStop { index: 1 },
            Event::BlockStart {
                index: 2,
                kind: BlockKind::ToolCall {
                    id: "call_3",
                    name: "ns__spawn",
                },
            },
            Event::ArgumentsDelta {
                index: 2,
                json: "{}",
            },
            Event::BlockStop { index: 2 },
            Event::Finish {
                stop: StopReason::ToolUse,
                stop_sequence: None,
            },
            Event::End,
        ],
    );
    let done: Vec<&Value> = evs
        .iter()
        .filter(|(k, _)| k == "response.output_item.done")
        .map(|(_, v)| &v["item"])
        .collect();
    assert_eq!(done[0]["type"], "function_call");
    assert_eq!(done[0]["arguments"], "{\"cmd\":\"ls\"}");
    assert_eq!(done[0]["call_id"], "call_1");
    assert_eq!(done[1]["type"], "custom_tool_call");
    assert_eq!(done[1]["input"], "*** Begin Patch\n");
    assert_eq!(done[1]["name"], "apply_patch");
    assert_eq!(
        (&done[2]["name"], &done[2]["namespace"]),
        (&Value::from("spawn"), &Value::from("ns"))
    );
    // Free-form input is not streamed as JSON fragments.
    let custom: Vec<&str> = evs
        .iter()
        .filter(|(_, v)| v["item_id"] == "fc_r1_1")
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        custom,
        [
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done"
        ]
    );
    let last = &evs.last().unwrap().1["response"];
    assert_eq!(last["output"].as_array().unwrap().len(), 3);
}

#[test]
fn the_output_limit_makes_it_incomplete_and_errors_fail_it() {
    let evs = run(
        ctx(),
        &[
            Event::TextDelta {
                index: 0,
                text: "cut",
            },
            Event::Finish {
                stop: StopReason::MaxTokens,
                stop_sequence: None,
            },
            Event::End,
        ],
    );
    let (kind, last) = evs.last().unwrap();
    assert_eq!(kind, "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );

    let mut e = StreamEncoder::new(ctx());
    let mut out = Vec::new();
    e.event(
        Event::BlockStart {
            index: 0,
            kind: BlockKind::Text,
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
    assert!(e.facts().errored);
    let evs = events(&out);
    let (kind, last) = evs.last().unwrap();
    assert_eq!(kind, "response.failed");
    assert_eq!(last["response"]["error"]["message"], "busy");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(
        evs.iter().filter(|(k, _)| k == "response.failed").count(),
        1
    );
}

#[test]
fn structured_output_calls_are_text() {
    let mut c = ctx();
    c.structured_output_tool = Some("structured_output".into());
    let evs = run(
        c,
        &[
            Event::BlockStart {
                index: 0,
                kind: BlockKind::ToolCall {
                    id: "t",
                    name: "structured_output",
                },
            },
            Event::ArgumentsDelta {
                index: 0,
                json: "{\"a\":1}",
            },
            Event::BlockStop { index: 0 },
            Event::End,
        ],
    );
    let r = &evs.last().unwrap().1["response"];
    assert_eq!(r["output"][0]["type"], "message");
    assert_eq!(r["output"][0]["content"][0]["text"], "{\"a\":1}");
}

/// What the Responses source decoder makes of the encoder's output: the same events, so a
/// Responses stream survives a round trip through the pivot.
#[test]
fn the_source_decoder_reads_what_the_encoder_writes() {
    let script = [
        Event::Start { id: "resp_r1" },
        Event::BlockStart {
            index: 0,
            kind: BlockKind::Reasoning,
        },
        Event::ReasoningDelta {
            index: 0,
            text: "hm",
        },
        Event::BlockStop { index: 0 },
        Event::BlockStart {
            index: 1,
            kind: BlockKind::Text,
        },
        Event::TextDelta {
            index: 1,
            text: "a\nb",
        },
        Event::BlockStop { index: 1 },
        Event::BlockStart {
            index: 2,
            kind: BlockKind::ToolCall {
                id: "c",
                name: "exec_command",
            },
        },
        Event::ArgumentsDelta {
            index: 2,
            json: "{}",
        },
        Event::BlockStop { index: 2 },
        Event::Usage(Usage {
            input: 5,
            output: 2,
            cache_read: Some(0),
            reasoning: Some(0),
            ..Usage::default()
        }),
        Event::Finish {
            stop: StopReason::ToolUse,
            stop_sequence: None,
        },
        Event::End,
    ];
    let mut c = ctx();
    c.reasoning_key = None;
    let mut e = StreamEncoder::new(c);
    let mut out = Vec::new();
    for ev in &script {
        e.event(ev.clone(), &mut out);
    }
    let mut d = crate::protocol::responses::decode_stream::StreamDecoder::new();
    let mut got: Vec<String> = Vec::new();
    for piece in out.chunks(13) {
        d.push(piece, &mut |ev| got.push(format!("{ev:?}")));
    }
    d.finish(&mut |ev| got.push(format!("{ev:?}")));
    let want: Vec<String> = script.iter().map(|e| format!("{e:?}")).collect();
    assert_eq!(got, want);
}
