use super::*;
use crate::protocol::pivot::StopReason;

/// Events as owned strings, for comparing whole sequences.
fn decode_all(input: &[u8], split: usize) -> Vec<String> {
    let mut d = StreamDecoder::new();
    let mut seen = Vec::new();
    for piece in input.chunks(split.max(1)) {
        d.push(piece, &mut |e| seen.push(format!("{e:?}")));
    }
    d.finish(&mut |e| seen.push(format!("{e:?}")));
    seen
}

const STREAM: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}\n\n",
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hm\u{e9}\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"SIG\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"x\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"Bash\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":3}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

#[test]
fn a_full_stream_in_pivot_events() {
    let mut d = StreamDecoder::new();
    let mut kinds = Vec::new();
    let mut args = String::new();
    let mut last_usage = None;
    d.push(STREAM.as_bytes(), &mut |e| {
        match &e {
            Event::ArgumentsDelta { index, json } => {
                assert_eq!(*index, 2, "redacted block skipped, renumbered");
                args.push_str(json);
            }
            Event::Usage(u) => last_usage = Some(*u),
            Event::Finish { stop, .. } => assert_eq!(*stop, StopReason::ToolUse),
            Event::ReasoningSignature {
                signature, origin, ..
            } => {
                assert_eq!((*signature, *origin), ("SIG", Origin::Anthropic))
            }
            _ => {}
        }
        kinds.push(
            format!("{e:?}")
                .split([' ', '('])
                .next()
                .unwrap()
                .to_owned(),
        );
    });
    assert!(d.is_done());
    assert_eq!(args, "{\"a\":1}");
    let u = last_usage.unwrap();
    assert_eq!((u.input, u.cache_read, u.output), (8, Some(3), 9));
    assert_eq!(
        kinds,
        [
            "Start",
            "Usage",
            "KeepAlive",
            "BlockStart",
            "ReasoningDelta",
            "ReasoningSignature",
            "BlockStop",
            "BlockStart",
            "TextDelta",
            "BlockStop",
            "BlockStart",
            "ArgumentsDelta",
            "ArgumentsDelta",
            "BlockStop",
            "Usage",
            "Finish",
            "End"
        ]
    );
}

#[test]
fn any_read_split_gives_the_same_events() {
    let whole = decode_all(STREAM.as_bytes(), usize::MAX);
    for split in [1, 2, 3, 7, 64] {
        assert_eq!(decode_all(STREAM.as_bytes(), split), whole, "split {split}");
    }
}

#[test]
fn errors_garbage_and_truncation() {
    let s = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let seen = decode_all(s.as_bytes(), 5);
    assert!(
        seen.iter()
            .any(|e| e.contains("Overloaded") && e.contains("Error")),
        "{seen:?}"
    );
    let seen = decode_all(b"data: {not json\n\ndata: {\"type\":\"ping\"}\n\n", 3);
    assert_eq!(
        seen.iter().filter(|e| e.starts_with("Error")).count(),
        1,
        "{seen:?}"
    );
    // A stream cut inside a block still closes it.
    let cut = &STREAM[..STREAM
        .find("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}")
        .unwrap()];
    let seen = decode_all(cut.as_bytes(), 11);
    assert_eq!(seen[seen.len() - 2..], ["BlockStop { index: 1 }", "End"]);
}

#[test]
fn a_whole_input_in_the_start_block_is_one_delta() {
    let s = "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":{\"k\":\"v\"}}}\n\n";
    let seen = decode_all(s.as_bytes(), 4);
    assert!(
        seen.iter().any(|e| e.contains(r#"json: "{\"k\":\"v\"}""#)),
        "{seen:?}"
    );
}

/// Anthropic's web search stream as sent: server tool blocks (their input deltas, their
/// results), a citation delta, and whitespace padding inside the `data:` JSON (`}   }`).
#[test]
fn server_tools_citations_and_padded_json() {
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_w\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1,\"server_tool_use\":{\"web_search_requests\":0}}}   }\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_1\",\"name\":\"web_search\",\"input\":{}}            }\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"query\\\": \\\"rust\\\"}\"}      }\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0 }\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"srvtoolu_1\",\"content\":[{\"type\":\"web_search_result\",\"url\":\"https://www.rust-lang.org\",\"encrypted_content\":\"Eq0K\"}]}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"citations_delta\",\"citation\":{\"type\":\"web_search_result_location\",\"cited_text\":\"Rust\",\"url\":\"https://www.rust-lang.org\"}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"text_delta\",\"text\":\"Rust is fast.\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7,\"server_tool_use\":{\"web_search_requests\":1}}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"   }\n\n",
    );
    let mut d = StreamDecoder::new();
    let mut text = String::new();
    let mut blocks = Vec::new();
    let mut stop = None;
    let mut on = |e: Event<'_>| match e {
        Event::TextDelta { text: t, .. } => text.push_str(t),
        Event::BlockStart { index, kind } => blocks.push((index, format!("{kind:?}"))),
        Event::ArgumentsDelta { .. } => panic!("a server tool's input is not a client call"),
        Event::Finish { stop: s, .. } => stop = Some(s),
        Event::Error { message, .. } => panic!("{message}"),
        _ => {}
    };
    for piece in stream.as_bytes().chunks(5) {
        d.push(piece, &mut on);
    }
    d.finish(&mut on);
    assert_eq!(text, "Rust is fast.");
    assert_eq!(blocks.len(), 1, "only the text block: {blocks:?}");
    assert_eq!(blocks[0].0, 0, "renumbered from 0");
    assert_eq!(stop, Some(StopReason::EndTurn));
}
