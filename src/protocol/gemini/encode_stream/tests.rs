use super::*;
use crate::protocol::responses::seal::ReasoningKey;
use serde_json::Value;

fn ctx(array: bool) -> ExchangeContext {
    ExchangeContext {
        message_id: "r1".into(),
        client_model: "gemini-3.5-flash".into(),
        stream: true,
        stream_as_json_array: array,
        reasoning_key: Some(ReasoningKey::from_secret(b"k")),
        ..ExchangeContext::default()
    }
}

fn script() -> Vec<Event<'static>> {
    vec![
        Event::Start { id: "x" },
        Event::BlockStart {
            index: 0,
            kind: BlockKind::Reasoning,
        },
        Event::ReasoningDelta {
            index: 0,
            text: "plan",
        },
        Event::ReasoningSignature {
            index: 0,
            origin: Origin::Anthropic,
            signature: "SIG",
        },
        Event::BlockStop { index: 0 },
        Event::BlockStart {
            index: 1,
            kind: BlockKind::Text,
        },
        Event::TextDelta {
            index: 1,
            text: "Hel",
        },
        Event::TextDelta {
            index: 1,
            text: "lo",
        },
        Event::BlockStop { index: 1 },
        Event::BlockStart {
            index: 2,
            kind: BlockKind::ToolCall {
                id: "c1",
                name: "write_file",
            },
        },
        Event::ArgumentsDelta {
            index: 2,
            json: "{\"file_path\":",
        },
        Event::ArgumentsDelta {
            index: 2,
            json: "\"a.txt\"}",
        },
        Event::BlockStop { index: 2 },
        Event::Usage(Usage {
            input: 10,
            output: 4,
            ..Usage::default()
        }),
        Event::Finish {
            stop: StopReason::ToolUse,
            stop_sequence: None,
        },
        Event::End,
    ]
}

fn run(array: bool) -> (Vec<u8>, ExchangeContext) {
    let c = ctx(array);
    let mut e = StreamEncoder::new(c.clone());
    let mut out = Vec::new();
    for ev in script() {
        e.event(ev, &mut out);
    }
    e.finish(&mut out);
    assert!(e.is_done());
    (out, c)
}

fn parts(chunks: &[Value]) -> Vec<Value> {
    chunks
        .iter()
        .flat_map(|c| {
            c["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn sse_chunks_carry_new_parts_and_the_last_one_finishes() {
    let (out, c) = run(false);
    let text = String::from_utf8(out).unwrap();
    let chunks: Vec<Value> = text
        .split("\r\n\r\n")
        .filter(|f| !f.is_empty())
        .map(|f| serde_json::from_str(f.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let p = parts(&chunks);
    assert_eq!(p[0], serde_json::json!({"text": "plan", "thought": true}));
    assert_eq!(p[1]["text"], "Hel");
    // The reasoning's seal rides on the part after it, and opens to what it was.
    let blob = p[1]["thoughtSignature"].as_str().unwrap();
    let sealed = c.reasoning_key.unwrap().open(blob).unwrap();
    assert_eq!(
        (sealed.text.as_str(), sealed.signature.as_deref()),
        ("plan", Some("SIG"))
    );
    assert!(p[2].get("thoughtSignature").is_none());
    assert_eq!(
        p[3]["functionCall"],
        serde_json::json!({"id": "c1", "name": "write_file", "args": {"file_path": "a.txt"}})
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["promptTokenCount"], 10);
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 14);
}

#[test]
fn without_alt_sse_the_stream_is_one_json_array() {
    let (out, _) = run(true);
    let v: Value = serde_json::from_slice(&out).unwrap();
    let chunks = v.as_array().unwrap();
    assert_eq!(chunks.len(), 5);
    assert_eq!(parts(chunks)[3]["functionCall"]["name"], "write_file");
}

#[test]
fn errors_end_the_stream_in_googles_shape() {
    for array in [false, true] {
        let mut e = StreamEncoder::new(ctx(array));
        let mut out = Vec::new();
        e.event(
            Event::TextDelta {
                index: 0,
                text: "par",
            },
            &mut out,
        );
        e.event(
            Event::Error {
                kind: ErrorKind::RateLimit,
                message: "slow",
            },
            &mut out,
        );
        e.finish(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                r#"{"error":{"code":429,"message":"slow","status":"RESOURCE_EXHAUSTED"}}"#
            ),
            "{text}"
        );
        if array {
            serde_json::from_str::<Value>(&text).unwrap();
        }
        assert!(e.facts().errored);
    }
}

#[test]
fn broken_arguments_are_mended_into_an_object() {
    assert_eq!(args_object("{\"a\":1"), "{\"a\":1}");
    assert_eq!(args_object("not json"), "{}");
    assert_eq!(args_object(" {\"b\":[]} "), "{\"b\":[]}");
}
