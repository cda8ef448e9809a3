//! Property-based fuzzing of the pivot pairs' codecs on stable Rust, bounded for CI: the
//! OpenAI Chat request decoder and Anthropic request encoder, the Anthropic message and SSE
//! decoders with the Chat encoders. Inputs: arbitrary bytes, byte mutations of realistic
//! seeds, and Anthropic streams built from random events in random read splits. The
//! properties live in `fuzz/src/pivot_checks.rs`, shared with the cargo-fuzz targets.
//! Translation notes (#29): every translated pair, on mutated requests rich in changes, under
//! every dialect switch, makes bounded notes that render and serialize.
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

    #[test]
    fn notes_never_panic_and_stay_bounded(
        client in 0usize..4,
        source in 1usize..4,
        switches in any::<u8>(),
        ops in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6),
    ) {
        check(notes_hold(client, (client + source) % 4, switches, &ops))?;
    }
}

/// One request per client protocol with something for most kinds of note.
fn noted_seeds() -> [serde_json::Value; 4] {
    let png = "iVBORw0KGgo=";
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    [
        json!({"model": "m", "max_tokens": 64000, "top_k": 5, "temperature": 0.5,
            "stop_sequences": ["END"], "metadata": {"user_id": "u".repeat(80)},
            "thinking": {"type": "enabled", "budget_tokens": 10000},
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": "my.tool", "input_schema": schema},
                {"type": "web_search_20250305", "name": "web_search"}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "x"},
                    {"type": "tool_use", "id": "t1", "name": "my.tool", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}]}]},
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "again"}]}),
        json!({"model": "m", "max_tokens": 64000, "top_k": 5, "temperature": 1.5, "stop": ["END"],
            "reasoning_effort": "high", "user": "u".repeat(80), "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}}]},
                {"role": "assistant", "content": "ok"},
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "again"}]}),
        json!({"model": "m", "max_output_tokens": 64000, "temperature": 1.5, "user": "alice",
            "reasoning": {"effort": "high"},
            "text": {"format": {"type": "json_schema", "name": "x", "schema": schema}},
            "tools": [{"type": "function", "name": "my.tool", "parameters": schema},
                {"type": "code_interpreter", "container": {"type": "auto"}}],
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"},
                    {"type": "input_image", "image_url": format!("data:image/png;base64,{png}")}]},
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": "again"}]}),
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"},
                {"inlineData": {"mimeType": "image/png", "data": png}}]}],
            "tools": [{"functionDeclarations": [{"name": "my.tool"}]}, {"codeExecution": {}}],
            "generationConfig": {"maxOutputTokens": 64000, "topK": 5, "temperature": 1.5,
                "stopSequences": ["END"], "thinkingConfig": {"thinkingBudget": 10000},
                "responseMimeType": "application/json", "responseJsonSchema": schema}}),
    ]
}

/// Translates a mutated seed of `client`'s onto `source` under the dialect `switches` pick:
/// whatever it notes is at most the cap, renders starting with its path and serializes.
fn notes_hold(
    client: usize,
    source: usize,
    switches: u8,
    ops: &[(usize, u8, u8)],
) -> Result<(), String> {
    use flexiproxy::protocol::notes::MAX_NOTES;
    use flexiproxy::protocol::openai_chat::dialect::{Dialect, ReasoningStyle};
    use flexiproxy::protocol::pair::{Pair, SourceOptions, Wire};
    use flexiproxy::protocol::pivot::ExchangeContext;
    let wires = [
        Wire::AnthropicMessages,
        Wire::OpenAiChat,
        Wire::Responses,
        Wire::Gemini,
    ];
    let seed = serde_json::to_vec(&noted_seeds()[client]).unwrap();
    let body = mutate(&seed, ops);
    let bit = |n: u8| switches & (1 << n) != 0;
    let dialect = Dialect {
        max_tokens_limit: bit(0).then_some(8192),
        json_schema: bit(1),
        system_mid_conversation: bit(2),
        echo_reasoning: bit(3),
        top_k: bit(4),
        reasoning: [
            ReasoningStyle::Effort,
            ReasoningStyle::DeepSeek,
            ReasoningStyle::Qwen,
            ReasoningStyle::None,
        ][usize::from(switches >> 5) % 4],
        ..Dialect::default()
    };
    let options = SourceOptions {
        dialect: &dialect,
        omit_media_for: bit(7).then_some("text-model"),
    };
    let ctx = ExchangeContext {
        client_model: "m".into(),
        stream: bit(6),
        ..ExchangeContext::default()
    };
    let pair = Pair::pivoted(wires[client], wires[source]).ok_or("same protocol")?;
    let Ok(encoded) = pair.encode_request(&body, |m| m.to_owned(), options, ctx) else {
        return Ok(()); // refused in the client's words: no notes to check
    };
    let notes = &encoded.notes;
    if notes.iter().count() > MAX_NOTES || notes.count() < notes.iter().count() {
        return Err(format!(
            "{} notes kept, count {}",
            notes.iter().count(),
            notes.count()
        ));
    }
    for note in notes.iter() {
        let text = note.to_string();
        if note.count == 0 || !text.starts_with(&*note.path) {
            return Err(format!(
                "note {text:?} (path {:?}, count {})",
                note.path, note.count
            ));
        }
    }
    serde_json::to_string(&notes.to_vec()).map_err(|e| e.to_string())?;
    if notes.first_texts(3).len() > 3 {
        return Err("more than three first notes".into());
    }
    Ok(())
}
