//! Property-based fuzzing of the Gemini client codec on stable Rust, bounded for CI: Gemini
//! CLI's captured requests mutated and arbitrary bytes through every source encoder; Chat and
//! Anthropic streams, mutated, in random read splits, to a Gemini client as SSE and as one
//! JSON array. The properties live in `fuzz/src/gemini_checks.rs`, shared with the
//! cargo-fuzz targets. `FLEXIPROXY_FUZZ_CASES=N` sets every property's case count.

#[path = "../fuzz/src/gemini_checks.rs"]
mod gemini_checks;

use flexiproxy_testkit::{anthropic, gemini, openai};
use proptest::prelude::*;

#[path = "common/fuzz_support.rs"]
mod fuzz_support;
use fuzz_support::{check, config, mutate};

/// Gemini CLI's requests, with the long system prompt and tools trimmed so mutations land
/// on the conversation.
fn request_seeds() -> Vec<Vec<u8>> {
    ["gemini-shell-tool-result", "gemini-router-classifier"]
        .iter()
        .map(|name| {
            let path = format!(
                "{}/tests/fixtures/gemini/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            v["systemInstruction"] = serde_json::json!({"parts": [{"text": "Be brief."}]});
            if let Some(tools) = v
                .pointer_mut("/tools/0/functionDeclarations")
                .and_then(|t| t.as_array_mut())
            {
                tools.truncate(2);
            }
            serde_json::to_vec(&v).unwrap()
        })
        .collect()
}

fn stream_seeds() -> Vec<Vec<u8>> {
    let mut failing = anthropic::text_stream_head("Hé");
    failing.push(anthropic::error_event("overloaded_error", "busy"));
    [
        openai::text_stream("Hello, wörld — 你好", 4),
        openai::tool_call_stream("c1", "write_file", r#"{"file_path":"a","content":"b"}"#, 3),
        anthropic::thinking_stream("Let me think", "sig", "42"),
        anthropic::tool_use_stream(&[("t1", "run_shell_command", r#"{"command":"ls"}"#)], 2),
        failing,
        gemini::thinking_stream("hm", "sig", "text"),
        gemini::calls_stream(&[("c1", "f", "{\"a\":1}"), ("c2", "g", "{}")]),
    ]
    .iter()
    .map(|events| events.concat().into_bytes())
    .collect()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn request_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(gemini_checks::check_request(&body))?;
    }

    #[test]
    fn request_mutations(seed in 0usize..2, ops in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6)) {
        let seeds = request_seeds();
        check(gemini_checks::check_request(&mutate(&seeds[seed], &ops)))?;
    }

    #[test]
    fn stream_mutations(seed in 0usize..7, ops in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4), size in 1usize..40, fail_at in any::<u16>()) {
        let seeds = stream_seeds();
        let input = mutate(&seeds[seed], &ops);
        check(gemini_checks::check_stream(&input, &[size, 1], usize::from(fail_at) % (input.len() + 1)))?;
    }

    #[test]
    fn stream_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512), size in 1usize..20) {
        check(gemini_checks::check_stream(&body, &[size], body.len() / 2))?;
    }
}
