//! Property-based fuzzing of the pivot pairs' codecs on stable Rust, bounded for CI: the
//! OpenAI Chat request decoder and Anthropic request encoder, the Anthropic message and SSE
//! decoders with the Chat encoders. Inputs: arbitrary bytes, byte mutations of realistic
//! seeds, and Anthropic streams built from random events in random read splits. The
//! properties live in `fuzz/src/pivot_checks.rs`, shared with the cargo-fuzz targets.
//! `FLEXIPROXY_FUZZ_CASES=N` sets every property's case count.

#[path = "../fuzz/src/pivot_checks.rs"]
mod pivot_checks;

use flexiproxy_testkit::anthropic;
use proptest::prelude::*;

#[path = "common/fuzz_support.rs"]
mod fuzz_support;
use fuzz_support::{check, config, mutate};
use serde_json::json;

fn request_seeds() -> Vec<Vec<u8>> {
    [
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "m", "stream": true, "max_tokens": 9000, "reasoning_effort": "high",
            "stop": ["a", "b"], "temperature": 1.5, "parallel_tool_calls": false,
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": [{"type": "text", "text": "t"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "r"},
                {"role": "developer", "content": "d"},
                {"role": "user", "content": ""}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "required"}),
        json!({"model": "m", "messages": [{"role": "assistant", "content": null}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}}),
    ]
    .iter()
    .map(|v| serde_json::to_vec(v).unwrap())
    .collect()
}

fn stream_seeds() -> Vec<Vec<u8>> {
    let calls = [
        ("t1", "Bash", r#"{"command":"ls -la"}"#),
        ("t2", "Read", r#"{"p":"ü"}"#),
    ];
    let mut failing = anthropic::text_stream_head("Hé");
    failing.push(anthropic::error_event("overloaded_error", "busy"));
    [
        anthropic::text_stream("Hello, wörld — 你好", 5),
        anthropic::tool_use_stream(&calls, 3),
        anthropic::thinking_stream("Let me think", "sig", "42"),
        failing,
    ]
    .iter()
    .map(|events| events.concat().into_bytes())
    .collect()
}

/// One random Anthropic stream event, valid or nearly so.
fn event() -> impl Strategy<Value = String> {
    let text = "[a-zA-Z0-9 \"\\\\{}é你]{0,12}";
    prop_oneof![
        (0u32..4, text).prop_map(|(i, t)| anthropic::event("content_block_delta",
            &json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}}))),
        (0u32..4, text).prop_map(|(i, t)| anthropic::event("content_block_delta",
            &json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": t}}))),
        (0u32..4, text).prop_map(|(i, t)| anthropic::event("content_block_delta",
            &json!({"type": "content_block_delta", "index": i, "delta": {"type": "thinking_delta", "thinking": t}}))),
        (0u32..4, prop_oneof![Just("text"), Just("thinking"), Just("tool_use"), Just("redacted_thinking"), Just("server_tool_use")], text)
            .prop_map(|(i, kind, name)| anthropic::event("content_block_start",
                &json!({"type": "content_block_start", "index": i,
                        "content_block": {"type": kind, "id": "t", "name": name, "input": {}}}))),
        (0u32..4).prop_map(|i| anthropic::event("content_block_stop", &json!({"type": "content_block_stop", "index": i}))),
        prop_oneof![Just("end_turn"), Just("tool_use"), Just("max_tokens"), Just("odd")].prop_map(|r| anthropic::event("message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": r}, "usage": {"output_tokens": 3}}))),
        Just(anthropic::event("message_stop", &json!({"type": "message_stop"}))),
        Just(anthropic::error_event("overloaded_error", "busy")),
        Just(": keep-alive\n\n".to_owned()),
        Just("data: {\"type\":\n\n".to_owned()),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn chat_request_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(pivot_checks::check_chat_request(&body))?;
    }

    #[test]
    fn chat_request_mutations(seed in 0usize..3, ops in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6)) {
        let seeds = request_seeds();
        check(pivot_checks::check_chat_request(&mutate(&seeds[seed], &ops)))?;
    }

    #[test]
    fn anthropic_response_arbitrary_and_mutated(seed in 0usize..2, ops in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6), raw in proptest::collection::vec(any::<u8>(), 0..256)) {
        let messages = [
            serde_json::to_vec(&anthropic::thinking_message("t", "s", "x")).unwrap(),
            serde_json::to_vec(&anthropic::tool_use_message(&[("a", "b", "{\"k\":1}")])).unwrap(),
        ];
        check(pivot_checks::check_anthropic_response(&mutate(&messages[seed], &ops)))?;
        check(pivot_checks::check_anthropic_response(&raw))?;
    }

    #[test]
    fn anthropic_stream_mutations(seed in 0usize..4, ops in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4), size in 1usize..40, fail_at in any::<u16>()) {
        let seeds = stream_seeds();
        let input = mutate(&seeds[seed], &ops);
        check(pivot_checks::check_anthropic_stream(&input, &[size, 1], usize::from(fail_at) % (input.len() + 1)))?;
    }

    #[test]
    fn anthropic_stream_random_events(events in proptest::collection::vec(event(), 0..16), size in 1usize..30, fail_at in any::<u16>()) {
        let mut input = anthropic::text_stream_head("").concat();
        input.push_str(&events.concat());
        let input = input.into_bytes();
        check(pivot_checks::check_anthropic_stream(&input, &[size, 3, 1], usize::from(fail_at) % (input.len() + 1)))?;
    }

    #[test]
    fn anthropic_stream_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512), size in 1usize..20) {
        check(pivot_checks::check_anthropic_stream(&body, &[size], body.len() / 2))?;
    }
}
