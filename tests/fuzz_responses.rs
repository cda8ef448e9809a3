//! Property-based fuzzing of the Responses codec on stable Rust, bounded for CI: the request
//! decoder (Codex's captured requests mutated, arbitrary bytes, random item lists) through
//! the Chat and Messages encoders, the Responses request encoder, and the Responses stream
//! encoder fed Chat, Anthropic and Responses streams in random read splits. The properties
//! live in `fuzz/src/responses_checks.rs`, shared with the cargo-fuzz targets.
//! `FLEXIPROXY_FUZZ_CASES=N` sets every property's case count.

#[path = "../fuzz/src/responses_checks.rs"]
mod responses_checks;

use flexiproxy_testkit::{anthropic, openai, responses};
use proptest::prelude::*;

#[path = "common/fuzz_support.rs"]
mod fuzz_support;
use fuzz_support::{check, config, mutate};
use serde_json::json;

/// Codex's real requests, trimmed to their last items so mutations land on the history.
fn request_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [
        "codex-exec-command-tool-result",
        "codex-apply-patch-gpt55-tool-result",
        "codex-reasoning-roundtrip",
    ]
    .iter()
    .map(|name| {
        let path = format!(
            "{}/tests/fixtures/codex/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let input = v["input"].as_array_mut().unwrap();
        input.drain(..3);
        v["tools"] = json!([v["tools"][0], v["tools"][3]]);
        serde_json::to_vec(&v).unwrap()
    })
    .collect();
    seeds.push(
        serde_json::to_vec(&json!({"model": "m", "input": "hi", "instructions": "x",
            "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
            "reasoning": {"effort": "high"}, "tool_choice": {"type": "custom", "name": "p"},
            "tools": [{"type": "custom", "name": "p", "format": {"type": "grammar", "syntax": "lark", "definition": "s"}},
                      {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f"}]}]}))
        .unwrap(),
    );
    seeds
}

fn stream_seeds() -> Vec<Vec<u8>> {
    let mut failing = anthropic::text_stream_head("Hé");
    failing.push(anthropic::error_event("overloaded_error", "busy"));
    [
        openai::text_stream("Hello, wörld — 你好", 4),
        openai::tool_call_stream("c1", "apply_patch", r#"{"input":"*** Begin Patch\n"}"#, 3),
        anthropic::thinking_stream("Let me think", "sig", "42"),
        anthropic::tool_use_stream(&[("t1", "exec_command", r#"{"cmd":"ls"}"#)], 2),
        failing,
        responses::reasoning_stream("hm", "enc", "text"),
        responses::tool_call_stream("c1", "f", "{}", 2),
        responses::failed_stream("x", "busy"),
    ]
    .iter()
    .map(|events| events.concat().into_bytes())
    .collect()
}

/// One random input item, valid or nearly so.
fn item() -> impl Strategy<Value = serde_json::Value> {
    let text = "[a-zA-Z0-9 \"\\\\{}é你]{0,10}";
    prop_oneof![
        (prop_oneof![Just("user"), Just("assistant"), Just("developer"), Just("system"), Just("tool")], text)
            .prop_map(|(role, t)| json!({"type": "message", "role": role, "content": [{"type": "input_text", "text": t}]})),
        text.prop_map(|t| json!({"role": "user", "content": t})),
        (text, text).prop_map(|(n, a)| json!({"type": "function_call", "call_id": "c", "name": n, "arguments": a})),
        text.prop_map(|i| json!({"type": "custom_tool_call", "call_id": "c", "name": "p", "input": i})),
        text.prop_map(|o| json!({"type": "function_call_output", "call_id": "c", "output": o})),
        text.prop_map(|o| json!({"type": "custom_tool_call_output", "call_id": "c", "output": [{"type": "input_text", "text": o}]})),
        text.prop_map(|e| json!({"type": "reasoning", "summary": [{"type": "summary_text", "text": e}], "encrypted_content": e})),
        Just(json!({"type": "additional_tools", "role": "developer", "tools": [{"type": "custom", "name": "exec"}]})),
        Just(json!({"type": "input_image", "image_url": "data:image/png;base64,AA"})),
        Just(json!({"type": "mystery"})),
        Just(json!(null)),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn request_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(responses_checks::check_request(&body))?;
    }

    #[test]
    fn request_mutations(seed in 0usize..4, ops in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6)) {
        let seeds = request_seeds();
        check(responses_checks::check_request(&mutate(&seeds[seed], &ops)))?;
    }

    #[test]
    fn request_random_items(items in proptest::collection::vec(item(), 0..10), stream in any::<bool>()) {
        let body = json!({"model": "m", "input": items, "stream": stream,
                          "tools": [{"type": "custom", "name": "p"}, {"type": "web_search"}]});
        check(responses_checks::check_request(&serde_json::to_vec(&body).unwrap()))?;
    }

    #[test]
    fn stream_mutations(seed in 0usize..8, ops in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4), size in 1usize..40, fail_at in any::<u16>()) {
        let seeds = stream_seeds();
        let input = mutate(&seeds[seed], &ops);
        check(responses_checks::check_stream(&input, &[size, 1], usize::from(fail_at) % (input.len() + 1)))?;
    }

    #[test]
    fn stream_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512), size in 1usize..20) {
        check(responses_checks::check_stream(&body, &[size], body.len() / 2))?;
    }
}
