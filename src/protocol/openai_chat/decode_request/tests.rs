use super::*;
use serde_json::json;

/// The conversation borrows from the body: each test's few bodies live as long as the test.
fn decode(v: serde_json::Value) -> Result<Conversation<'static>, Refusal> {
    decode_request(Vec::leak(serde_json::to_vec(&v).unwrap()))
}

#[test]
fn every_message_kind_reaches_the_pivot() {
    let c = decode(json!({
        "model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
        "max_completion_tokens": 300, "max_tokens": 10, "stop": "END", "temperature": 0.3,
        "reasoning_effort": "high", "user": "u1", "parallel_tool_calls": false,
        "frequency_penalty": 0.5,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is here?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":\".\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "pwd", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "/tmp"}]},
            {"role": "system", "content": "Now summarise."},
            {"role": "user", "content": "Thanks"}
        ],
        "tools": [{"type": "function", "function": {"name": "ls", "description": "list",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "ls"}}
    }))
    .unwrap();
    assert_eq!(c.model, "gpt-4o");
    assert!(c.stream && c.stream_usage);
    assert_eq!(c.max_tokens, Some(300), "max_completion_tokens wins");
    assert_eq!(c.stop, vec!["END"]);
    let system: Vec<_> = c.system.iter().map(|t| t.decoded().into_owned()).collect();
    assert_eq!(system, ["Be brief.", "Use tools."]);
    assert_eq!(c.turns.len(), 6);
    assert!(
        matches!(&c.turns[0].parts[1], Part::Image(Media::Base64 { media_type, .. }) if media_type == "image/png")
    );
    assert!(
        matches!(&c.turns[1].parts[1], Part::ToolCall(call) if call.id == "call_2" && call.arguments.is_empty())
    );
    assert!(
        matches!(&c.turns[2].parts[0], Part::ToolResult { call_id, .. } if call_id == "call_1")
    );
    assert_eq!(c.turns[4].role, Role::System);
    assert_eq!(c.tool_choice, Some(ToolChoice::Named("ls".into())));
    assert_eq!(c.parallel_tool_calls, Some(false));
    assert_eq!(c.reasoning.unwrap().effort, Some(Effort::High));
    assert_eq!(c.tools[0].name, "ls");
}

#[test]
fn what_cannot_be_carried_is_refused_by_name() {
    let base = || json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    for (field, value, needle) in [
        ("n", json!(2), "n:"),
        ("logprobs", json!(true), "logprobs"),
        ("modalities", json!(["text", "audio"]), "audio"),
        ("web_search_options", json!({}), "web_search_options"),
        ("reasoning_effort", json!("extreme"), "reasoning_effort"),
        (
            "tools",
            json!([{"type": "custom", "custom": {"name": "x"}}]),
            "tools[0]",
        ),
        (
            "response_format",
            json!({"type": "json_schema"}),
            "json_schema",
        ),
        ("stop", json!(5), "stop"),
    ] {
        let mut body = base();
        body[field] = value;
        let e = decode(body).unwrap_err();
        assert!(e.0.contains(needle), "{field}: {}", e.0);
    }
    let e = decode(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}),
    )
    .unwrap_err();
    assert!(e.0.contains("messages[0].content[0]"), "{}", e.0);
    let e =
        decode(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})).unwrap_err();
    assert!(e.0.contains("messages[0].tool_call_id"), "{}", e.0);
    assert!(
        decode(json!({"messages": []}))
            .unwrap_err()
            .0
            .contains("model")
    );
    assert!(
        decode_request(b"[1]")
            .unwrap_err()
            .0
            .contains("JSON object")
    );
    assert!(decode_request(b"\xff").is_err());
}

#[test]
fn plain_defaults() {
    let c = decode(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "text"}, "n": 1}),
    )
    .unwrap();
    assert!(!c.stream && c.response_format.is_none() && c.reasoning.is_none());
    let c = decode(json!({"model": "m", "messages": [], "reasoning_effort": "minimal",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}}))
    .unwrap();
    assert!(!c.reasoning.unwrap().enabled);
    assert!(matches!(
        c.response_format,
        Some(ResponseFormat::JsonSchema { .. })
    ));
}
