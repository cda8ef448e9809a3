use super::*;
use crate::protocol::pivot::Origin;
use crate::protocol::responses::seal::{Sealed, SealedOrigin};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/codex/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn decode(body: &str) -> Conversation<'_> {
    decode_request(body, None).unwrap()
}

fn refused(body: &str) -> String {
    decode_request(body, None).unwrap_err().0
}

#[test]
fn codex_first_turn_developer_messages_are_the_system_prompt() {
    let body = fixture("codex-text-first-turn");
    let c = decode(&body);
    assert_eq!(c.model, "mock-model");
    assert!(c.stream);
    assert_eq!(
        c.system.len(),
        3,
        "two leading developer messages, of 1 and 2 parts"
    );
    assert!(c.system[0].escaped().starts_with("You are a coding agent"));
    assert_eq!(c.turns.len(), 1, "both user messages make one turn");
    assert_eq!(c.turns[0].role, Role::User);
    assert_eq!(c.turns[0].parts.len(), 2);
    assert!(matches!(&c.turns[0].parts[1], Part::Text(t) if t.escaped() == "Say hi"));
    // `reasoning: {summary: auto}` without an effort asks for nothing.
    assert!(c.reasoning.is_none());
    assert_eq!(c.parallel_tool_calls, Some(true));
}

#[test]
fn namespace_tools_are_flattened_and_remembered() {
    let body = fixture("codex-text-first-turn");
    let c = decode(&body);
    let names: Vec<&str> = c.tools.iter().map(|t| &*t.name).collect();
    assert!(names.contains(&"exec_command"), "{names:?}");
    let flat = "multi_agent_v1__close_agent";
    assert!(names.contains(&flat), "{names:?}");
    assert_eq!(
        c.client_tools.namespaced(flat),
        Some(("multi_agent_v1", "close_agent"))
    );
    assert!(names.iter().all(|n| {
        n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }));
}

#[test]
fn custom_tools_become_one_string_functions_and_hosted_tools_are_dropped() {
    let body = fixture("codex-apply-patch-gpt55-tool-result");
    let c = decode(&body);
    let patch = c.tools.iter().find(|t| t.name == "apply_patch").unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(patch.parameters.as_ref().unwrap().get()).unwrap();
    assert_eq!(schema["required"], serde_json::json!(["input"]));
    assert!(
        schema["properties"]["input"]["description"]
            .as_str()
            .unwrap()
            .contains("begin_patch")
    );
    assert!(c.client_tools.is_custom("apply_patch"));
    assert!(c.tools.iter().all(|t| t.name != "tool_search"));
    assert!(c.client_tools.dropped.contains(&"tool_search".to_owned()));
    // The custom call in the history is a call with its input as the one argument.
    let assistant = c.turns.iter().find(|t| t.role == Role::Assistant).unwrap();
    let Part::ToolCall(call) = &assistant.parts[0] else {
        panic!("{:?}", assistant.parts)
    };
    let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap();
    assert!(
        args["input"]
            .as_str()
            .unwrap()
            .starts_with("*** Begin Patch")
    );
    let last = c.turns.last().unwrap();
    assert!(
        matches!(&last.parts[0], Part::ToolResult { call_id, .. } if call_id == "call_846c2fa9993f4cbd")
    );
    assert_eq!(
        c.reasoning.as_ref().and_then(|r| r.effort),
        Some(Effort::Medium)
    );
}

#[test]
fn tool_loop_items_make_assistant_and_tool_result_turns() {
    let body = fixture("codex-exec-command-tool-result");
    let c = decode(&body);
    let roles: Vec<Role> = c.turns.iter().map(|t| t.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
    let Part::ToolCall(call) = &c.turns[1].parts[0] else {
        panic!()
    };
    assert_eq!(
        (&*call.id, &*call.name),
        ("call_a150224f5f7943e9", "exec_command")
    );
    assert!(call.arguments.contains("\"cmd\""));
    let Part::ToolResult { content, .. } = &c.turns[2].parts[0] else {
        panic!()
    };
    assert!(matches!(&content[0], Part::Text(t) if t.decoded().contains("sample.txt")));
}

#[test]
fn only_reasoning_this_proxy_sealed_is_read_back() {
    let body = fixture("codex-reasoning-roundtrip");
    // The capture's blob is a mock provider's: not ours, so dropped.
    let c = decode(&body);
    assert!(
        c.turns
            .iter()
            .flat_map(|t| &t.parts)
            .all(|p| !matches!(p, Part::Reasoning(_)))
    );

    let key = ReasoningKey::from_secret(b"k");
    let blob = key.seal(&Sealed {
        origin: Some(SealedOrigin::Anthropic),
        text: "I should run ls".into(),
        signature: Some("SIG".into()),
        redacted: None,
    });
    let body = body.replace("gAAAAMOCKENCRYPTEDBLOB", &blob);
    let c = decode_request(&body, Some(&key)).unwrap();
    let assistant = c.turns.iter().find(|t| t.role == Role::Assistant).unwrap();
    let Part::Reasoning(r) = &assistant.parts[0] else {
        panic!("{:?}", assistant.parts)
    };
    assert_eq!(r.text.decoded(), "I should run ls");
    assert!(matches!(&r.signature, Some((Origin::Anthropic, s)) if s == "SIG"));
    assert!(matches!(&assistant.parts[1], Part::ToolCall(_)));
    // Another key cannot open it.
    let other = ReasoningKey::from_secret(b"other");
    let c = decode_request(&body, Some(&other)).unwrap();
    assert!(
        c.turns
            .iter()
            .flat_map(|t| &t.parts)
            .all(|p| !matches!(p, Part::Reasoning(_)))
    );
}

#[test]
fn bare_text_reasoning_keeps_its_text_without_a_signature() {
    let key = ReasoningKey::from_secret(b"k");
    let blob = key.seal(&Sealed {
        origin: None,
        text: "deepseek thoughts".into(),
        signature: None,
        redacted: None,
    });
    let body = format!(
        r#"{{"model":"m","input":[{{"role":"user","content":"hi"}},
        {{"type":"reasoning","summary":[],"encrypted_content":"{blob}"}},
        {{"type":"function_call","call_id":"c1","name":"f","arguments":"{{}}"}},
        {{"type":"function_call_output","call_id":"c1","output":"ok"}}]}}"#
    );
    let c = decode_request(&body, Some(&key)).unwrap();
    let Part::Reasoning(r) = &c.turns[1].parts[0] else {
        panic!()
    };
    assert_eq!(r.text.decoded(), "deepseek thoughts");
    assert!(r.signature.is_none());
}

#[test]
fn simple_inputs_and_options() {
    let c = decode(
        r#"{"model":"gpt","input":"Hello","instructions":"Be brief","max_output_tokens":50,
            "temperature":0.2,"text":{"format":{"type":"json_schema","name":"x","schema":{"type":"object"}}},
            "tool_choice":{"type":"function","name":"f"},"tools":[{"type":"function","name":"f","parameters":{"type":"object"}},{"type":"web_search"}]}"#,
    );
    assert!(matches!(&c.turns[0].parts[0], Part::Text(t) if t.escaped() == "Hello"));
    assert_eq!(c.system[0].escaped(), "Be brief");
    assert_eq!(c.max_tokens, Some(50));
    assert!(matches!(
        c.response_format,
        Some(ResponseFormat::JsonSchema { .. })
    ));
    assert_eq!(c.tool_choice, Some(ToolChoice::Named(Cow::Borrowed("f"))));
    assert_eq!(c.tools.len(), 1);
    let c = decode(
        r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"see"},
            {"type":"input_image","image_url":"data:image/png;base64,AAAA"}]},
            {"role":"developer","content":"later rule"}]}"#,
    );
    assert!(
        matches!(&c.turns[0].parts[1], Part::Image(Media::Base64 { media_type, .. }) if media_type == "image/png")
    );
    assert_eq!(c.turns[1].role, Role::System);
}

#[test]
fn state_and_unknown_things_are_refused_with_the_field() {
    for (body, needle) in [
        (
            r#"{"model":"m","input":"x","previous_response_id":"resp_1"}"#,
            "previous_response_id",
        ),
        (r#"{"model":"m","input":"x","store":true}"#, "store: true"),
        (
            r#"{"model":"m","input":[{"type":"item_reference","id":"x"}]}"#,
            "item_reference",
        ),
        (
            r#"{"model":"m","input":[{"type":"mystery"}]}"#,
            "input[0]: unsupported item type `mystery`",
        ),
        (
            r#"{"model":"m","input":"x","tools":[{"type":"web_search"}],"tool_choice":{"type":"web_search"}}"#,
            "tool_choice",
        ),
        (
            r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}"#,
            "file ids",
        ),
        (r#"{"model":"m"}"#, "`input` is required"),
        (r#"[1]"#, "JSON object"),
        (
            r#"{"model":"m","input":[{"type":"function_call","name":"f"}]}"#,
            "call_id",
        ),
    ] {
        let e = refused(body);
        assert!(e.contains(needle), "{body}: {e}");
    }
    // `store: false` (what Codex sends) is fine.
    decode(r#"{"model":"m","input":"x","store":false}"#);
}

#[test]
fn codex_default_model_additional_tools_item() {
    // The shape of Codex's default model slug: no `tools`, an `additional_tools` developer
    // item first, with namespaces (the default `functions` one holding the free-form `exec`).
    let body = r#"{"model":"gpt-6.2-sol","stream":true,"parallel_tool_calls":false,
      "reasoning":{"effort":"low","context":"all_turns"},"include":["reasoning.encrypted_content"],
      "input":[
        {"type":"additional_tools","id":"at_1","role":"developer","tools":[
          {"type":"namespace","name":"functions","description":"","tools":[
            {"type":"custom","name":"exec","description":"Run JavaScript","format":{"type":"grammar","syntax":"lark","definition":"start: SOURCE"}},
            {"type":"function","name":"wait","strict":false,"parameters":{"type":"object","properties":{"cell_id":{"type":"string"}}}}]},
          {"type":"namespace","name":"clock","description":"Time.","tools":[
            {"type":"function","name":"sleep","parameters":{"type":"object","properties":{"duration_ms":{"type":"number"}}}}]}]},
        {"type":"message","role":"developer","content":[{"type":"input_text","text":"You are Codex."}]},
        {"type":"message","role":"user","content":[{"type":"input_text","text":"go"}]},
        {"type":"custom_tool_call","call_id":"c1","name":"exec","namespace":"functions","input":"text(1)"},
        {"type":"custom_tool_call_output","call_id":"c1","output":[{"type":"input_text","text":"Script completed"}]},
        {"type":"function_call","call_id":"c2","name":"sleep","namespace":"clock","arguments":"{}"}]}"#;
    let c = decode(body);
    let names: Vec<&str> = c.tools.iter().map(|t| &*t.name).collect();
    assert_eq!(names, ["exec", "wait", "clock__sleep"]);
    assert!(c.client_tools.is_custom("exec"));
    assert_eq!(
        c.client_tools.namespaced("exec"),
        Some(("functions", "exec"))
    );
    assert_eq!(
        c.client_tools.namespaced("clock__sleep"),
        Some(("clock", "sleep"))
    );
    assert_eq!(
        c.system.len(),
        1,
        "the tools item does not end the system prompt"
    );
    assert_eq!(c.parallel_tool_calls, Some(false));
    let calls: Vec<(&str, &str)> = c
        .turns
        .iter()
        .flat_map(|t| &t.parts)
        .filter_map(|p| match p {
            Part::ToolCall(call) => Some((&*call.name, &*call.arguments)),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [("exec", r#"{"input":"text(1)"}"#), ("clock__sleep", "{}")]
    );
}

#[test]
fn web_search_calls_in_codex_history_become_plain_context() {
    let body = r#"{"model":"m","input":[
        {"type":"message","role":"user","content":[{"type":"input_text","text":"latest aiohttp?"}]},
        {"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"aiohttp latest release"}},
        {"type":"message","role":"assistant","content":[{"type":"output_text","text":"3.13.2","annotations":[{"type":"url_citation","start_index":0,"end_index":6,"url":"https://pypi.org/project/aiohttp/","title":"aiohttp"}]}]},
        {"type":"web_search_call","id":"ws_2","status":"completed","action":{"type":"open_page","url":"https://x"}},
        {"type":"message","role":"user","content":[{"type":"input_text","text":"thanks"}]}
    ]}"#;
    let c = decode(body);
    assert_eq!(c.turns.len(), 3);
    let texts: Vec<String> = c.turns[1]
        .parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => t.decoded().into_owned(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        texts,
        ["(Searched the web for: aiohttp latest release)", "3.13.2"]
    );
}
