use super::*;
use crate::protocol::pivot::Origin;
use crate::protocol::responses::seal::{Sealed, SealedOrigin};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/gemini/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn decode(body: &str) -> Conversation<'_> {
    decode_request(body, "gemini-3.5-flash", true, None).unwrap()
}

#[test]
fn gemini_cli_first_turn() {
    let body = fixture("gemini-first-turn");
    let c = decode(&body);
    assert_eq!(c.model, "gemini-3.5-flash");
    assert!(c.stream);
    assert!(c.system[0].escaped().starts_with("You are Gemini CLI"));
    assert_eq!(c.turns.len(), 1);
    assert_eq!(c.turns[0].parts.len(), 2);
    let names: Vec<&str> = c.tools.iter().map(|t| &*t.name).collect();
    assert!(names.contains(&"read_file"), "{names:?}");
    assert_eq!(c.temperature, Some(1.0));
    assert_eq!(c.top_k, Some(64));
    let r = c.reasoning.unwrap();
    assert!(r.enabled);
    assert_eq!(r.effort, Some(Effort::High));
}

#[test]
fn the_router_asks_for_json_with_an_openapi_schema() {
    let body = fixture("gemini-router-classifier");
    let c = decode(&body);
    let Some(ResponseFormat::JsonSchema { schema, .. }) = &c.response_format else {
        panic!("{:?}", c.response_format)
    };
    let v: serde_json::Value = serde_json::from_str(schema.get()).unwrap();
    assert_eq!(v["type"], "object");
    assert_eq!(v["properties"]["complexity_score"]["type"], "integer");
    assert!(c.tools.is_empty());
}

#[test]
fn function_calls_and_responses_pair_up() {
    let body = fixture("gemini-shell-tool-result");
    let c = decode(&body);
    let roles: Vec<Role> = c.turns.iter().map(|t| t.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
    let Part::ToolCall(call) = &c.turns[1].parts[0] else {
        panic!("{:?}", c.turns[1].parts)
    };
    assert_eq!(call.name, "run_shell_command");
    let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap();
    assert_eq!(args["command"], "ls");
    let Part::ToolResult {
        call_id, content, ..
    } = &c.turns[2].parts[0]
    else {
        panic!()
    };
    assert_eq!(call_id, &call.id);
    assert!(matches!(&content[0], Part::Text(t) if t.decoded().contains("sample.txt")));
}

#[test]
fn responses_without_ids_match_calls_by_name_then_order() {
    let body = r#"{"contents":[
        {"role":"user","parts":[{"text":"go"}]},
        {"role":"model","parts":[{"functionCall":{"name":"a","args":{}}},{"functionCall":{"name":"b","args":{"x":1}}}]},
        {"role":"user","parts":[{"functionResponse":{"name":"b","response":{"r":2}}},{"functionResponse":{"name":"a","response":{"r":1}}}]}]}"#;
    let c = decode(body);
    let ids: Vec<String> = c.turns[1]
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall(call) => Some(call.id.to_string()),
            _ => None,
        })
        .collect();
    let answered: Vec<String> = c.turns[2]
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolResult { call_id, .. } => Some(call_id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(answered, [ids[1].clone(), ids[0].clone()]);
}

#[test]
fn openapi_parameters_google_tools_and_tool_config() {
    let c = decode(
        r#"{"contents":[{"parts":[{"text":"hi"}]}],
            "tools":[{"functionDeclarations":[{"name":"f","parameters":{"type":"OBJECT","properties":{"n":{"type":"NUMBER"}}}}]},
                     {"googleSearch":{}},{"codeExecution":{}}],
            "toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f"]}},
            "generationConfig":{"maxOutputTokens":99,"stopSequences":["END"],"thinkingConfig":{"thinkingBudget":0}}}"#,
    );
    let v: serde_json::Value =
        serde_json::from_str(c.tools[0].parameters.as_ref().unwrap().get()).unwrap();
    assert_eq!(v["properties"]["n"]["type"], "number");
    assert_eq!(c.client_tools.dropped, ["googleSearch", "codeExecution"]);
    assert_eq!(c.tool_choice, Some(ToolChoice::Named(Cow::Borrowed("f"))));
    assert_eq!((c.max_tokens, c.stop.len()), (Some(99), 1));
    assert!(!c.reasoning.unwrap().enabled);
}

#[test]
fn sealed_thought_signatures_bring_reasoning_back() {
    let key = ReasoningKey::from_secret(b"k");
    let blob = key.seal(&Sealed {
        origin: Some(SealedOrigin::Anthropic),
        text: "think".into(),
        signature: Some("SIG".into()),
        redacted: None,
    });
    let body = format!(
        r#"{{"contents":[{{"role":"user","parts":[{{"text":"go"}}]}},
        {{"role":"model","parts":[{{"text":"hm","thought":true}},{{"functionCall":{{"id":"c1","name":"f","args":{{}}}},"thoughtSignature":"{blob}"}}]}},
        {{"role":"user","parts":[{{"functionResponse":{{"id":"c1","name":"f","response":{{}}}}}}]}}]}}"#
    );
    let c = decode_request(&body, "m", false, Some(&key)).unwrap();
    let parts = &c.turns[1].parts;
    assert!(
        matches!(&parts[0], Part::Reasoning(r) if r.text.decoded() == "think"
        && matches!(&r.signature, Some((Origin::Anthropic, s)) if s == "SIG"))
    );
    assert!(matches!(&parts[1], Part::ToolCall(_)));
    assert_eq!(parts.len(), 2, "the thought text itself is dropped");
    // Gemini CLI's made-up signature is not ours: ignored.
    let body = fixture("gemini-shell-tool-result");
    let c = decode(&body);
    assert!(
        c.turns
            .iter()
            .flat_map(|t| &t.parts)
            .all(|p| !matches!(p, Part::Reasoning(_)))
    );
}

#[test]
fn refusals_name_the_field() {
    for (body, needle) in [
        (
            r#"{"contents":[],"generationConfig":{"candidateCount":2}}"#,
            "candidateCount",
        ),
        (
            r#"{"contents":[],"cachedContent":"cachedContents/x"}"#,
            "cachedContent",
        ),
        (
            r#"{"contents":[{"role":"system","parts":[]}]}"#,
            "contents[0].role",
        ),
        ("[]", "JSON object"),
    ] {
        let e = decode_request(body, "m", false, None).unwrap_err().0;
        assert!(e.contains(needle), "{body}: {e}");
    }
}
