use super::*;
use crate::protocol::openai_chat::decode_request::decode_request;
use serde_json::{Value, json};

fn encode(chat: Value, options: EncodeOptions) -> (Value, ExchangeContext) {
    let body = serde_json::to_vec(&chat).unwrap();
    let conv = decode_request(&body).unwrap();
    let mut ctx = ExchangeContext::default();
    let body = encode_request(
        &conv,
        "claude-src",
        options,
        &mut ctx,
        &mut Notes::default(),
    )
    .unwrap();
    (serde_json::from_slice(&body).unwrap(), ctx)
}

fn tool_loop_messages() -> Value {
    json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "List files"},
        {"role": "assistant", "content": "Sure.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":\".\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
        {"role": "tool", "tool_call_id": "call_2", "content": "b.txt"},
        {"role": "user", "content": "And now?"}
    ])
}

#[test]
fn a_tool_loop_becomes_alternating_messages() {
    let (v, ctx) = encode(
        json!({"model": "gpt-4o", "messages": tool_loop_messages(), "stream": true,
               "stop": ["X"], "temperature": 1.7, "user": "u"}),
        EncodeOptions::default(),
    );
    assert_eq!(v["model"], "claude-src");
    assert_eq!(v["max_tokens"], DEFAULT_MAX_TOKENS, "Anthropic requires it");
    assert_eq!(v["system"][0]["text"], "Be brief.");
    assert_eq!(v["stream"], true);
    assert!(ctx.stream);
    assert_eq!(v["stop_sequences"][0], "X");
    assert_eq!(v["temperature"], 1.0, "clamped to Anthropic's range");
    assert_eq!(v["metadata"]["user_id"], "u");
    let m = v["messages"].as_array().unwrap();
    assert_eq!(m.len(), 3, "{m:?}");
    assert_eq!(m[1]["role"], "assistant");
    assert_eq!(m[1]["content"][0]["text"], "Sure.");
    assert_eq!(m[1]["content"][1]["type"], "tool_use");
    assert_eq!(m[1]["content"][1]["input"]["path"], ".");
    assert_eq!(
        m[1]["content"][2]["input"],
        json!({}),
        "truncated arguments repaired or emptied"
    );
    // Both tool results, then the user's text, in one user message.
    let user = m[2]["content"].as_array().unwrap();
    assert_eq!(user.len(), 3);
    assert_eq!(user[0]["type"], "tool_result");
    assert_eq!(user[0]["tool_use_id"], "call_1");
    assert_eq!(user[0]["content"][0]["text"], "a.txt");
    assert_eq!(user[1]["tool_use_id"], "call_2");
    assert_eq!(user[2]["text"], "And now?");
}

#[test]
fn tools_choice_and_limits() {
    let (v, _) = encode(
        json!({"model": "m", "max_tokens": 100000, "parallel_tool_calls": false,
            "tool_choice": "required",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}},
                      {"type": "function", "function": {"name": "nop"}}]}),
        EncodeOptions {
            max_tokens_limit: Some(8192),
            ..EncodeOptions::default()
        },
    );
    assert_eq!(v["max_tokens"], 8192);
    assert_eq!(v["tools"][0]["input_schema"], json!({"type": "object"}));
    assert_eq!(
        v["tools"][1]["input_schema"]["type"], "object",
        "a schema is required"
    );
    assert_eq!(
        v["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    for (choice, expected) in [
        (json!("auto"), json!({"type": "auto"})),
        (json!("none"), json!({"type": "none"})),
        (
            json!({"type": "function", "function": {"name": "get"}}),
            json!({"type": "tool", "name": "get"}),
        ),
    ] {
        let (v, _) = encode(
            json!({"model": "m", "messages": [], "tool_choice": choice,
                "tools": [{"type": "function", "function": {"name": "get"}}]}),
            EncodeOptions::default(),
        );
        assert_eq!(v["tool_choice"], expected);
    }
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget_where_the_api_accepts_it() {
    let (v, _) = encode(
        json!({"model": "m", "max_tokens": 20000, "reasoning_effort": "medium", "temperature": 0.2,
               "messages": [{"role": "user", "content": "hi"}]}),
        EncodeOptions::default(),
    );
    assert_eq!(
        v["thinking"],
        json!({"type": "enabled", "budget_tokens": 8192})
    );
    assert!(
        v.get("temperature").is_none(),
        "thinking takes no temperature"
    );
    // The budget stays below max_tokens; too small a room means no thinking.
    let (v, _) = encode(
        json!({"model": "m", "max_tokens": 3000, "reasoning_effort": "high", "messages": []}),
        EncodeOptions::default(),
    );
    assert_eq!(v["thinking"]["budget_tokens"], 2999);
    let (v, _) = encode(
        json!({"model": "m", "max_tokens": 500, "reasoning_effort": "high", "messages": []}),
        EncodeOptions::default(),
    );
    assert!(v.get("thinking").is_none());
    // A tool turn whose thinking the client could not carry: thinking would be refused.
    let (v, _) = encode(
        json!({"model": "m", "reasoning_effort": "low", "messages": tool_loop_messages()}),
        EncodeOptions::default(),
    );
    assert!(v.get("thinking").is_none(), "{v}");
}

#[test]
fn structured_output_is_a_forced_tool() {
    let (v, ctx) = encode(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x",
                "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}}),
        EncodeOptions::default(),
    );
    assert_eq!(v["tools"][0]["name"], STRUCTURED_OUTPUT_TOOL);
    assert_eq!(
        v["tools"][0]["input_schema"]["properties"]["a"]["type"],
        "integer"
    );
    assert_eq!(v["tool_choice"]["type"], "tool");
    assert_eq!(
        ctx.structured_output_tool.as_deref(),
        Some(STRUCTURED_OUTPUT_TOOL)
    );
    let body = serde_json::to_vec(&json!({"model": "m", "messages": [],
        "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "t"}}]}))
    .unwrap();
    let conv = decode_request(&body).unwrap();
    let e = encode_request(
        &conv,
        "m",
        EncodeOptions::default(),
        &mut ExchangeContext::default(),
        &mut Notes::default(),
    )
    .unwrap_err();
    assert!(e.0.contains("response_format"), "{}", e.0);
}

#[test]
fn mid_conversation_system_text_and_media() {
    let (v, _) = encode(
        json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}]},
            {"role": "assistant", "content": "ok"},
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": ""},
            {"role": "user", "content": "go"}]}),
        EncodeOptions::default(),
    );
    let m = v["messages"].as_array().unwrap();
    assert_eq!(
        m[0]["content"][1],
        json!({"type": "image", "source": {"type": "url", "url": "https://x/y.png"}})
    );
    assert_eq!(
        m[0]["content"][2]["source"]["media_type"],
        "application/pdf"
    );
    assert_eq!(m[0]["content"][2]["title"], "a.pdf");
    assert_eq!(m.len(), 3);
    assert_eq!(
        m[2]["content"][0]["text"],
        "System instruction: Answer in French."
    );
    assert_eq!(
        m[2]["content"][1]["text"], "go",
        "empty text dropped, turns merged"
    );
}
