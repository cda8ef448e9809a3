//! Notes themselves, then every kind of change in each of the twelve translated pairs.

use super::*;

#[test]
fn repeated_notes_count_up_and_show_times_n() {
    let mut notes = Notes::default();
    for _ in 0..4 {
        notes.push("cache_control", None, Change::Dropped(None));
    }
    notes.push("top_k", None, Change::Dropped(None));
    assert_eq!(notes.count(), 2);
    assert_eq!(
        notes.first_texts(5),
        ["cache_control dropped ×4", "top_k dropped"]
    );
}

#[test]
fn notes_past_the_cap_are_counted_not_kept() {
    let mut notes = Notes::default();
    for i in 0..MAX_NOTES + 5 {
        notes.push(format!("tools[{i}]"), None, Change::Dropped(None));
    }
    assert_eq!(notes.iter().count(), MAX_NOTES);
    assert_eq!(notes.count(), MAX_NOTES + 5);
}

#[test]
fn fields_are_named_in_the_client_protocol() {
    let mut notes = Notes::for_client(Wire::Gemini);
    notes.clamp_max_tokens(Some(64000), Some(8192));
    notes.clamp_max_tokens(Some(100), Some(8192));
    assert_eq!(
        notes.first_texts(5),
        ["generationConfig.maxOutputTokens 64000 clamped to 8192"]
    );
    let mut notes = Notes::for_client(Wire::AnthropicMessages);
    let request = ReasoningRequest {
        enabled: true,
        effort: Some(Effort::High),
        budget_tokens: Some(10000),
    };
    notes.reasoning_became(&request, "reasoning_effort high".into());
    assert_eq!(
        notes.first_texts(1),
        ["thinking.budget_tokens 10000 → reasoning_effort high"]
    );
}

#[test]
fn a_note_serializes_with_its_path_text_and_count() {
    let mut notes = Notes::default();
    notes.push(
        "tools[3]",
        Some("web_search_20250305".into()),
        Change::Dropped(Some("no server tools on this source")),
    );
    let json = serde_json::to_value(notes.to_vec()).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{"path": "tools[3]", "text": "tools[3] web_search_20250305 dropped: no server tools on this source", "count": 1}])
    );
}

// ---- The twelve translated pairs -------------------------------------------------------

use crate::protocol::openai_chat::dialect::Dialect;
use crate::protocol::pair::{Pair, SourceOptions};
use crate::protocol::pivot::ExchangeContext;
use Wire::{AnthropicMessages as A, Gemini as G, OpenAiChat as C, Responses as R};
use serde_json::{Value, json};

/// One kind of change: what the client sends for it (in its own protocol) and how the
/// adapter is set up to provoke it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Nothing to change.
    Plain,
    Clamp,
    Reasoning,
    TopK,
    MidSystem,
    EarlierReasoning,
    HostedTool,
    CacheControl,
    Image,
    JsonSchema,
    ToolName,
    Stop,
    User,
    LongUser,
    DefaultMaxTokens,
    Temperature,
}

/// A minimal request of `client`'s, with what provokes `kind`.
fn request(client: Wire, kind: Kind) -> Value {
    let mut body = match client {
        A | C => json!({"model": "m", "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}]}),
        R => json!({"model": "m", "max_output_tokens": 100, "input": "hi"}),
        G => json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"maxOutputTokens": 100}}),
    };
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let png = "iVBORw0KGgo=";
    let long_user = "u".repeat(80);
    let patch = match (kind, client) {
        (Kind::Plain, _) => json!({}),
        (Kind::Clamp, A | C) => json!({"max_tokens": 64000}),
        (Kind::Clamp, R) => json!({"max_output_tokens": 64000}),
        (Kind::Clamp, G) => json!({"generationConfig": {"maxOutputTokens": 64000}}),
        (Kind::Reasoning, A) => {
            json!({"max_tokens": 20000, "thinking": {"type": "enabled", "budget_tokens": 10000}})
        }
        (Kind::Reasoning, C) => json!({"max_tokens": 20000, "reasoning_effort": "high"}),
        (Kind::Reasoning, R) => {
            json!({"max_output_tokens": 20000, "reasoning": {"effort": "high"}})
        }
        (Kind::Reasoning, G) => json!({"generationConfig":
            {"maxOutputTokens": 20000, "thinkingConfig": {"thinkingBudget": 10000}}}),
        (Kind::TopK, A | C) => json!({"top_k": 40}),
        (Kind::TopK, G) => json!({"generationConfig": {"maxOutputTokens": 100, "topK": 40}}),
        (Kind::MidSystem, A | C) => json!({"messages": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "system", "content": "be brief"}, {"role": "user", "content": "again"}]}),
        (Kind::MidSystem, R) => json!({"input": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "developer", "content": "be brief"}, {"role": "user", "content": "again"}]}),
        (Kind::EarlierReasoning, A) => json!({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "hello"}]},
            {"role": "user", "content": "again"}]}),
        (Kind::HostedTool, A) => json!({"tools": [
            {"name": "read", "input_schema": schema},
            {"type": "web_search_20250305", "name": "web_search"}]}),
        (Kind::HostedTool, R) => json!({"tools": [
            {"type": "function", "name": "read", "parameters": schema},
            {"type": "code_interpreter", "container": {"type": "auto"}}]}),
        (Kind::HostedTool, G) => json!({"tools": [
            {"functionDeclarations": [{"name": "read"}]}, {"codeExecution": {}}]}),
        (Kind::CacheControl, A) => json!({
            "system": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}]}),
        (Kind::Image, A) => json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}]}]}),
        (Kind::Image, C) => json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}}]}]}),
        (Kind::Image, R) => json!({"input": [{"role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": format!("data:image/png;base64,{png}")}]}]}),
        (Kind::Image, G) => json!({"contents": [{"role": "user", "parts": [
            {"text": "look"}, {"inlineData": {"mimeType": "image/png", "data": png}}]}]}),
        (Kind::JsonSchema, C) => json!({"response_format":
            {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}),
        (Kind::JsonSchema, R) => json!({"text":
            {"format": {"type": "json_schema", "name": "x", "schema": schema}}}),
        (Kind::JsonSchema, G) => json!({"generationConfig": {"maxOutputTokens": 100,
            "responseMimeType": "application/json", "responseJsonSchema": schema}}),
        (Kind::ToolName, A) => json!({"tools": [{"name": "my.tool", "input_schema": schema}]}),
        (Kind::ToolName, R) => json!({"tools": [
            {"type": "function", "name": "my.tool", "parameters": schema}]}),
        (Kind::ToolName, G) => json!({"tools": [{"functionDeclarations": [{"name": "my.tool"}]}]}),
        (Kind::Stop, A) => json!({"stop_sequences": ["END"]}),
        (Kind::Stop, C) => json!({"stop": ["END"]}),
        (Kind::Stop, G) => {
            json!({"generationConfig": {"maxOutputTokens": 100, "stopSequences": ["END"]}})
        }
        (Kind::User, A) => json!({"metadata": {"user_id": "alice"}}),
        (Kind::User, C | R) => json!({"user": "alice"}),
        (Kind::LongUser, A) => json!({"metadata": {"user_id": long_user}}),
        (Kind::LongUser, R) => json!({"user": long_user}),
        (Kind::DefaultMaxTokens, C) => json!({"max_tokens": null}),
        (Kind::DefaultMaxTokens, R) => json!({"max_output_tokens": null}),
        (Kind::DefaultMaxTokens, G) => json!({"generationConfig": {"temperature": 0.5}}),
        (Kind::Temperature, C | R) => json!({"temperature": 1.5}),
        (Kind::Temperature, G) => {
            json!({"generationConfig": {"maxOutputTokens": 100, "temperature": 1.5}})
        }
        other => panic!("no request for {other:?}"),
    };
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body
}

/// The adapter set up to provoke `kind` (a text-only model, a limit, a Chat dialect).
fn dialect(kind: Kind) -> Dialect {
    Dialect {
        max_tokens_limit: (kind == Kind::Clamp).then_some(8192),
        json_schema: kind != Kind::JsonSchema,
        system_mid_conversation: kind != Kind::MidSystem,
        ..Dialect::default()
    }
}

/// Translates `client`'s request for `kind` onto `source`; its notes.
fn notes_of(client: Wire, source: Wire, kind: Kind) -> Notes {
    let body = serde_json::to_vec(&request(client, kind)).unwrap();
    let dialect = dialect(kind);
    let options = SourceOptions {
        dialect: &dialect,
        omit_media_for: (kind == Kind::Image).then_some("text-model"),
    };
    let ctx = ExchangeContext {
        client_model: "m".into(),
        ..ExchangeContext::default()
    };
    let pair = Pair::pivoted(client, source).unwrap();
    let encoded = pair
        .encode_request(&body, |m| m.to_owned(), options, ctx)
        .unwrap_or_else(|e| panic!("{client:?} → {source:?} {kind:?}: {}", e.0));
    encoded.notes
}

/// Every kind of change in each pair where it can happen: the note's path and its text.
#[rustfmt::skip]
const TABLE: &[(Wire, Wire, Kind, &str, &str)] = &[
    // max_tokens above the adapter's max_tokens_limit: every pair.
    (A, C, Kind::Clamp, "max_tokens", "max_tokens 64000 clamped to 8192"),
    (A, R, Kind::Clamp, "max_tokens", "max_tokens 64000 clamped to 8192"),
    (A, G, Kind::Clamp, "max_tokens", "max_tokens 64000 clamped to 8192"),
    (C, A, Kind::Clamp, "max_tokens", "max_tokens 64000 clamped to 8192"),
    (C, R, Kind::Clamp, "max_tokens", "max_tokens 64000 clamped to 8192"),
    (C, G, Kind::Clamp, "max_tokens", "max_tokens 64000 clamped to 8192"),
    (R, A, Kind::Clamp, "max_output_tokens", "max_output_tokens 64000 clamped to 8192"),
    (R, C, Kind::Clamp, "max_output_tokens", "max_output_tokens 64000 clamped to 8192"),
    (R, G, Kind::Clamp, "max_output_tokens", "max_output_tokens 64000 clamped to 8192"),
    (G, A, Kind::Clamp, "generationConfig.maxOutputTokens", "generationConfig.maxOutputTokens 64000 clamped to 8192"),
    (G, C, Kind::Clamp, "generationConfig.maxOutputTokens", "generationConfig.maxOutputTokens 64000 clamped to 8192"),
    (G, R, Kind::Clamp, "generationConfig.maxOutputTokens", "generationConfig.maxOutputTokens 64000 clamped to 8192"),
    // The client's reasoning setting in the source's terms: every pair.
    (A, C, Kind::Reasoning, "thinking.budget_tokens", "thinking.budget_tokens 10000 → reasoning_effort high"),
    (A, R, Kind::Reasoning, "thinking.budget_tokens", "thinking.budget_tokens 10000 → reasoning.effort high"),
    (A, G, Kind::Reasoning, "thinking.budget_tokens", "thinking.budget_tokens 10000 → thinkingConfig.thinkingBudget 10000"),
    (C, A, Kind::Reasoning, "reasoning_effort", "reasoning_effort high → thinking.budget_tokens 16384"),
    (C, R, Kind::Reasoning, "reasoning_effort", "reasoning_effort high → reasoning.effort high"),
    (C, G, Kind::Reasoning, "reasoning_effort", "reasoning_effort high → thinkingConfig.thinkingBudget 16384"),
    (R, A, Kind::Reasoning, "reasoning.effort", "reasoning.effort high → thinking.budget_tokens 16384"),
    (R, C, Kind::Reasoning, "reasoning.effort", "reasoning.effort high → reasoning_effort high"),
    (R, G, Kind::Reasoning, "reasoning.effort", "reasoning.effort high → thinkingConfig.thinkingBudget 16384"),
    (G, A, Kind::Reasoning, "generationConfig.thinkingConfig.thinkingBudget", "generationConfig.thinkingConfig.thinkingBudget 10000 → thinking.budget_tokens 10000"),
    (G, C, Kind::Reasoning, "generationConfig.thinkingConfig.thinkingBudget", "generationConfig.thinkingConfig.thinkingBudget 10000 → reasoning_effort high"),
    (G, R, Kind::Reasoning, "generationConfig.thinkingConfig.thinkingBudget", "generationConfig.thinkingConfig.thinkingBudget 10000 → reasoning.effort high"),
    // top_k where the source has none.
    (A, C, Kind::TopK, "top_k", "top_k dropped"),
    (A, R, Kind::TopK, "top_k", "top_k dropped"),
    (G, C, Kind::TopK, "generationConfig.topK", "generationConfig.topK dropped"),
    (G, R, Kind::TopK, "generationConfig.topK", "generationConfig.topK dropped"),
    (C, R, Kind::TopK, "top_k", "top_k dropped"),
    // A system message in the middle of the conversation.
    (A, C, Kind::MidSystem, "messages[].system message", "messages[].system message → a user message (system_messages: false)"),
    (A, R, Kind::MidSystem, "messages[].system message", "messages[].system message → a developer message"),
    (A, G, Kind::MidSystem, "messages[].system message", "messages[].system message → user text (\"System instruction: …\")"),
    (C, A, Kind::MidSystem, "messages[].system message", "messages[].system message → user text (\"System instruction: …\")"),
    (C, R, Kind::MidSystem, "messages[].system message", "messages[].system message → a developer message"),
    (C, G, Kind::MidSystem, "messages[].system message", "messages[].system message → user text (\"System instruction: …\")"),
    (R, A, Kind::MidSystem, "input[].developer message", "input[].developer message → user text (\"System instruction: …\")"),
    (R, C, Kind::MidSystem, "input[].developer message", "input[].developer message → a user message (system_messages: false)"),
    (R, G, Kind::MidSystem, "input[].developer message", "input[].developer message → user text (\"System instruction: …\")"),
    // Earlier (signed) reasoning the source cannot take back.
    (A, C, Kind::EarlierReasoning, "thinking.signature", "thinking.signature dropped: only its own provider reads it"),
    (A, R, Kind::EarlierReasoning, "thinking block", "thinking block dropped: only reasoning this source made goes back to it"),
    (A, G, Kind::EarlierReasoning, "thinking block", "thinking block dropped: only Gemini's own thought signatures go back"),
    // Server / hosted tools no other provider runs.
    (A, C, Kind::HostedTool, "tools[1]", "tools[1] web_search_20250305 dropped: no server tools on this source"),
    (A, R, Kind::HostedTool, "tools[1]", "tools[1] web_search_20250305 dropped: no server tools on this source"),
    (A, G, Kind::HostedTool, "tools[1]", "tools[1] web_search_20250305 dropped: no server tools on this source"),
    (R, A, Kind::HostedTool, "tools[1]", "tools[1] code_interpreter dropped: no server tools on this source"),
    (R, C, Kind::HostedTool, "tools[1]", "tools[1] code_interpreter dropped: no server tools on this source"),
    (R, G, Kind::HostedTool, "tools[1]", "tools[1] code_interpreter dropped: no server tools on this source"),
    (G, A, Kind::HostedTool, "tools[1]", "tools[1] codeExecution dropped: no server tools on this source"),
    (G, C, Kind::HostedTool, "tools[1]", "tools[1] codeExecution dropped: no server tools on this source"),
    (G, R, Kind::HostedTool, "tools[1]", "tools[1] codeExecution dropped: no server tools on this source"),
    // Anthropic's prompt cache markers, counted.
    (A, C, Kind::CacheControl, "cache_control", "cache_control dropped ×3"),
    (A, R, Kind::CacheControl, "cache_control", "cache_control dropped ×3"),
    (A, G, Kind::CacheControl, "cache_control", "cache_control dropped ×3"),
    // Images for a text-only source model: every pair.
    (A, C, Kind::Image, "image", "image omitted"),
    (A, R, Kind::Image, "image", "image omitted"),
    (A, G, Kind::Image, "image", "image omitted"),
    (C, A, Kind::Image, "image", "image omitted"),
    (C, R, Kind::Image, "image", "image omitted"),
    (C, G, Kind::Image, "image", "image omitted"),
    (R, A, Kind::Image, "image", "image omitted"),
    (R, C, Kind::Image, "image", "image omitted"),
    (R, G, Kind::Image, "image", "image omitted"),
    (G, A, Kind::Image, "image", "image omitted"),
    (G, C, Kind::Image, "image", "image omitted"),
    (G, R, Kind::Image, "image", "image omitted"),
    // Structured output the source takes otherwise.
    (R, C, Kind::JsonSchema, "text.format", "text.format json_schema → json_object (json_schema: false)"),
    (G, C, Kind::JsonSchema, "generationConfig.responseJsonSchema", "generationConfig.responseJsonSchema json_schema → json_object (json_schema: false)"),
    (C, A, Kind::JsonSchema, "response_format", "response_format → a forced structured_output tool"),
    (R, A, Kind::JsonSchema, "text.format", "text.format → a forced structured_output tool"),
    (G, A, Kind::JsonSchema, "generationConfig.responseJsonSchema", "generationConfig.responseJsonSchema → a forced structured_output tool"),
    // Tool names an OpenAI-style source refuses.
    (A, C, Kind::ToolName, "tools[0].name", "tools[0].name my.tool → my_tool_"),
    (R, C, Kind::ToolName, "tools[0].name", "tools[0].name my.tool → my_tool_"),
    (G, C, Kind::ToolName, "tools[0].name", "tools[0].name my.tool → my_tool_"),
    // Stop sequences on a Responses source.
    (A, R, Kind::Stop, "stop_sequences", "stop_sequences dropped: the Responses API has no stop sequences"),
    (C, R, Kind::Stop, "stop", "stop dropped: the Responses API has no stop sequences"),
    (G, R, Kind::Stop, "generationConfig.stopSequences", "generationConfig.stopSequences dropped: the Responses API has no stop sequences"),
    // The end-user id: none on Gemini, hashed when long on Chat.
    (A, G, Kind::User, "metadata.user_id", "metadata.user_id dropped: Gemini has no end-user id"),
    (C, G, Kind::User, "user", "user dropped: Gemini has no end-user id"),
    (R, G, Kind::User, "user", "user dropped: Gemini has no end-user id"),
    (A, C, Kind::LongUser, "metadata.user_id", "metadata.user_id → a hash (longer than 64 characters)"),
    (R, C, Kind::LongUser, "user", "user → a hash (longer than 64 characters)"),
    // The Messages API's required max_tokens and its temperature range.
    (C, A, Kind::DefaultMaxTokens, "max_tokens", "max_tokens → 4096 (this source requires one)"),
    (R, A, Kind::DefaultMaxTokens, "max_output_tokens", "max_output_tokens → 4096 (this source requires one)"),
    (G, A, Kind::DefaultMaxTokens, "generationConfig.maxOutputTokens", "generationConfig.maxOutputTokens → 4096 (this source requires one)"),
    (C, A, Kind::Temperature, "temperature", "temperature 1.5 clamped to 1"),
    (R, A, Kind::Temperature, "temperature", "temperature 1.5 clamped to 1"),
    (G, A, Kind::Temperature, "generationConfig.temperature", "generationConfig.temperature 1.5 clamped to 1"),
];

#[test]
fn every_kind_of_change_in_every_pair_is_noted_with_its_path() {
    let mut failures = Vec::new();
    for &(client, source, kind, path, text) in TABLE {
        let notes = notes_of(client, source, kind);
        let found = notes
            .iter()
            .any(|n| n.path == path && n.to_string().starts_with(text));
        if !found {
            failures.push(format!(
                "{client:?} → {source:?} {kind:?}: want `{text}` at `{path}`, got {:?}",
                notes.first_texts(MAX_NOTES)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_table_covers_all_twelve_pairs() {
    let wires = [A, C, R, G];
    for client in wires {
        for source in wires.into_iter().filter(|s| *s != client) {
            let kinds = TABLE
                .iter()
                .filter(|(c, s, ..)| (*c, *s) == (client, source))
                .count();
            assert!(kinds >= 3, "{client:?} → {source:?}: {kinds} kinds");
        }
    }
}

#[test]
fn a_request_translated_as_it_came_has_no_notes() {
    let wires = [A, C, R, G];
    for client in wires {
        for source in wires.into_iter().filter(|s| *s != client) {
            let notes = notes_of(client, source, Kind::Plain);
            assert!(
                notes.is_empty(),
                "{client:?} → {source:?}: {:?}",
                notes.first_texts(MAX_NOTES)
            );
        }
    }
}
