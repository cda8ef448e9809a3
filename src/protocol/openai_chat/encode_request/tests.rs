//! One test per row of the request table in the translation reference: an Anthropic request
//! onto an OpenAI-compatible source ([`translate_request`]), dialect by dialect.

use super::*;
use crate::protocol::pair::{TranslatedRequest, translate_request};
use serde_json::{Value, json};

fn translate_with(req: Value, dialect: &Dialect) -> (Value, TranslatedRequest) {
    let body = serde_json::to_vec(&req).unwrap();
    let t = translate_request(&body, |m| format!("src-{m}"), dialect).expect("translates");
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    (v, t)
}

fn translate(req: Value) -> Value {
    translate_with(req, &Dialect::default()).0
}

fn base(messages: Value) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": messages})
}

#[test]
fn model_is_mapped_and_client_model_remembered() {
    let (v, t) = translate_with(
        base(json!([{"role":"user","content":"hi"}])),
        &Dialect::default(),
    );
    assert_eq!(v["model"], "src-claude-sonnet-4-5");
    assert_eq!(t.client_model, "claude-sonnet-4-5");
    assert!(!t.stream);
    assert_eq!(v["max_tokens"], 1024);
}

#[test]
fn system_string_and_blocks_billing_header_and_cache_control() {
    let mut req = base(json!([{"role":"user","content":"hi"}]));
    req["system"] = json!([
        {"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.3.abc; cc_entrypoint=cli;"},
        {"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}},
        {"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}
    ]);
    let v = translate(req);
    assert_eq!(
        v["messages"][0],
        json!({"role":"system","content":"You are Claude Code.\n\nBe brief."})
    );
    assert!(!v.to_string().contains("cache_control"));
    assert!(!v.to_string().contains("billing"));

    let mut req = base(json!([{"role":"user","content":"hi"}]));
    req["system"] = json!("Plain system");
    assert_eq!(translate(req)["messages"][0]["content"], "Plain system");
}

#[test]
fn mid_conversation_system_messages() {
    let req = base(json!([
        {"role":"user","content":"a"},
        {"role":"system","content":"remember X"},
        {"role":"user","content":"b"}
    ]));
    let v = translate(req.clone());
    assert_eq!(
        v["messages"][1],
        json!({"role":"system","content":"remember X"})
    );
    let dialect = Dialect {
        system_mid_conversation: false,
        ..Dialect::default()
    };
    let (v, _) = translate_with(req, &dialect);
    assert_eq!(v["messages"][1]["role"], "user");
    assert!(
        v["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("remember X")
    );
}

#[test]
fn user_text_one_block_is_string_several_are_parts() {
    let v = translate(base(
        json!([{"role":"user","content":[{"type":"text","text":"only"}]}]),
    ));
    assert_eq!(v["messages"][0], json!({"role":"user","content":"only"}));
    let v = translate(base(json!([{"role":"user","content":[
        {"type":"text","text":"one"},{"type":"text","text":"two","cache_control":{"type":"ephemeral"}}
    ]}])));
    assert_eq!(
        v["messages"][0]["content"],
        json!([{"type":"text","text":"one"},{"type":"text","text":"two"}])
    );
}

#[test]
fn images_base64_and_url() {
    let v = translate(base(json!([{"role":"user","content":[
        {"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"QUJD"}},
        {"type":"image","source":{"type":"url","url":"https://example.com/a.png"}},
        {"type":"text","text":"what is this"}
    ]}])));
    assert_eq!(
        v["messages"][0]["content"],
        json!([
            {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,QUJD"}},
            {"type":"image_url","image_url":{"url":"https://example.com/a.png"}},
            {"type":"text","text":"what is this"}
        ])
    );
}

#[test]
fn documents_pdf_and_text() {
    let v = translate(base(json!([{"role":"user","content":[
        {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBER"},"title":"spec.pdf"},
        {"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain doc"}}
    ]}])));
    assert_eq!(
        v["messages"][0]["content"],
        json!([
            {"type":"file","file":{"file_data":"data:application/pdf;base64,JVBER","filename":"spec.pdf"}},
            {"type":"text","text":"plain doc"}
        ])
    );
}

#[test]
fn tool_use_and_tool_result_round() {
    let v = translate(base(json!([
        {"role":"user","content":"list files"},
        {"role":"assistant","content":[
            {"type":"text","text":"Let me look."},
            {"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ls"}},
            {"type":"tool_use","id":"toolu_2","name":"Read","input":{}}
        ]},
        {"role":"user","content":[
            {"type":"text","text":"and then?"},
            {"type":"tool_result","tool_use_id":"toolu_1","content":"a.txt"},
            {"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"x"},{"type":"text","text":"y"}],"is_error":true}
        ]}
    ])));
    let m = &v["messages"];
    assert_eq!(m[1]["role"], "assistant");
    assert_eq!(m[1]["content"], "Let me look.");
    assert_eq!(
        m[1]["tool_calls"],
        json!([
            {"id":"toolu_1","type":"function","function":{"name":"Bash","arguments":"{\"command\":\"ls\"}"}},
            {"id":"toolu_2","type":"function","function":{"name":"Read","arguments":"{}"}}
        ])
    );
    // Tool messages come first, then the user's own text.
    assert_eq!(
        m[2],
        json!({"role":"tool","tool_call_id":"toolu_1","content":"a.txt"})
    );
    assert_eq!(
        m[3],
        json!({"role":"tool","tool_call_id":"toolu_2","content":"Error: x\ny"})
    );
    assert_eq!(m[4], json!({"role":"user","content":"and then?"}));
    assert_eq!(m.as_array().unwrap().len(), 5);
}

#[test]
fn tool_reference_results_say_which_tools_were_loaded() {
    // Claude Code's tool search answers with `tool_reference` blocks; an OpenAI source
    // would otherwise get an empty tool message.
    let v = translate(base(json!([
        {"role":"user","content":"find a tool"},
        {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"ToolSearch","input":{"query":"github"}},
                                       {"type":"tool_use","id":"t2","name":"ToolSearch","input":{"query":"notebook"}}]},
        {"role":"user","content":[
            {"type":"tool_result","tool_use_id":"t1","content":[
                {"type":"tool_reference","tool_name":"mcp__github__create_issue"},
                {"type":"tool_reference","tool_name":"mcp__github__list_issues"}]},
            {"type":"tool_result","tool_use_id":"t2","content":[
                {"type":"tool_reference","tool_name":"NotebookEdit"},
                {"type":"text","text":"1 match"}]}
        ]}
    ])));
    assert_eq!(
        v["messages"][2],
        json!({"role":"tool","tool_call_id":"t1",
               "content":"Tools loaded: mcp__github__create_issue, mcp__github__list_issues"})
    );
    assert_eq!(
        v["messages"][3],
        json!({"role":"tool","tool_call_id":"t2","content":"Tool loaded: NotebookEdit\n1 match"})
    );
}

#[test]
fn assistant_with_only_tool_calls_has_null_content() {
    let v = translate(base(json!([
        {"role":"user","content":"go"},
        {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"Bash","input":{"command":"ls"}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"t"}]}
    ])));
    assert_eq!(v["messages"][1]["content"], Value::Null);
    assert_eq!(
        v["messages"][2],
        json!({"role":"tool","tool_call_id":"t","content":""})
    );
}

#[test]
fn tool_result_images_go_to_a_following_user_message() {
    let v = translate(base(json!([
        {"role":"user","content":[
            {"type":"tool_result","tool_use_id":"t1","content":[
                {"type":"text","text":"screenshot taken"},
                {"type":"image","source":{"type":"base64","media_type":"image/png","data":"UE5H"}}
            ]}
        ]}
    ])));
    assert_eq!(
        v["messages"][0],
        json!({"role":"tool","tool_call_id":"t1","content":"screenshot taken"})
    );
    assert_eq!(
        v["messages"][1],
        json!({"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,UE5H"}}]})
    );
}

#[test]
fn thinking_is_echoed_as_reasoning_content_unless_disabled() {
    let req = base(json!([
        {"role":"user","content":"q"},
        {"role":"assistant","content":[
            {"type":"thinking","thinking":"let me think","signature":"sig"},
            {"type":"redacted_thinking","data":"xxx"},
            {"type":"tool_use","id":"t","name":"Bash","input":{"command":"ls"}}
        ]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"ok"}]}
    ]));
    let v = translate(req.clone());
    assert_eq!(v["messages"][1]["reasoning_content"], "let me think");
    assert!(!v.to_string().contains("xxx"));
    let (v, _) = translate_with(
        req,
        &Dialect {
            echo_reasoning: false,
            ..Dialect::default()
        },
    );
    assert!(v["messages"][1].get("reasoning_content").is_none());
}

#[test]
fn tools_definitions_and_server_tools() {
    let mut req = base(json!([{"role":"user","content":"hi"}]));
    req["tools"] = json!([
        {"name":"Bash","description":"Run","input_schema":{"type":"object","properties":{"command":{"type":"string"}},"required":["command"]},"cache_control":{"type":"ephemeral"},"defer_loading":true,"input_examples":[{"command":"ls"}]},
        {"name":"NoDesc","input_schema":{"type":"object"}},
        {"type":"custom","name":"Custom","input_schema":{"type":"object"}},
        {"type":"web_search_20250305","name":"web_search","max_uses":5},
        {"type":"bash_20250124","name":"bash"}
    ]);
    let v = translate(req);
    let tools = v["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 3);
    assert_eq!(
        tools[0],
        json!({"type":"function","function":{"name":"Bash","description":"Run","parameters":{"type":"object","properties":{"command":{"type":"string"}},"required":["command"]}}})
    );
    assert_eq!(tools[1]["function"]["description"], "");
    assert_eq!(tools[2]["function"]["name"], "Custom");
    let s = v.to_string();
    assert!(
        !s.contains("defer_loading") && !s.contains("input_examples") && !s.contains("web_search")
    );
}

#[test]
fn tool_choice_variants() {
    let with_choice = |choice: Value| {
        let mut req = base(json!([{"role":"user","content":"hi"}]));
        req["tools"] = json!([{"name":"Bash","input_schema":{"type":"object"}}]);
        req["tool_choice"] = choice;
        translate(req)
    };
    assert_eq!(with_choice(json!({"type":"auto"}))["tool_choice"], "auto");
    assert_eq!(
        with_choice(json!({"type":"any"}))["tool_choice"],
        "required"
    );
    assert_eq!(with_choice(json!({"type":"none"}))["tool_choice"], "none");
    let v = with_choice(json!({"type":"tool","name":"Bash","disable_parallel_tool_use":true}));
    assert_eq!(
        v["tool_choice"],
        json!({"type":"function","function":{"name":"Bash"}})
    );
    assert_eq!(v["parallel_tool_calls"], false);
    let v = with_choice(json!({"type":"auto","disable_parallel_tool_use":false}));
    assert!(v.get("parallel_tool_calls").is_none());
}

#[test]
fn tool_choice_without_tools_is_dropped() {
    let mut req = base(json!([{"role":"user","content":"hi"}]));
    req["tool_choice"] = json!({"type":"any"});
    let v = translate(req);
    assert!(v.get("tool_choice").is_none() && v.get("tools").is_none());
}

#[test]
fn long_tool_names_are_shortened_consistently() {
    let long = format!(
        "mcp__github__{}",
        "create_or_update_file_contents_".repeat(3)
    );
    let mut req = base(json!([
        {"role":"user","content":"go"},
        {"role":"assistant","content":[{"type":"tool_use","id":"t","name": long,"input":{}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"ok"}]}
    ]));
    req["tools"] = json!([{"name": long, "input_schema":{"type":"object"}}]);
    req["tool_choice"] = json!({"type":"tool","name": long});
    let (v, t) = translate_with(req, &Dialect::default());
    let short = v["tools"][0]["function"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(short.len() <= 64);
    assert_eq!(
        v["messages"][1]["tool_calls"][0]["function"]["name"],
        short.as_str()
    );
    assert_eq!(v["tool_choice"]["function"]["name"], short.as_str());
    assert_eq!(t.tool_names.to_client(&short), long);
}

#[test]
fn limits_sampling_and_metadata() {
    let mut req = base(json!([{"role":"user","content":"hi"}]));
    req["max_tokens"] = json!(64000);
    req["stop_sequences"] = json!(["END", "STOP"]);
    req["temperature"] = json!(0.5);
    req["top_p"] = json!(0.9);
    req["top_k"] = json!(40);
    req["metadata"] = json!({"user_id": "u-1"});
    let v = translate(req.clone());
    assert_eq!(v["stop"], json!(["END", "STOP"]));
    assert_eq!(v["temperature"], 0.5);
    assert_eq!(v["top_p"], 0.9);
    assert!(v.get("top_k").is_none(), "top_k dropped by default");
    assert_eq!(v["user"], "u-1");
    assert_eq!(v["max_tokens"], 64000);

    let dialect = Dialect {
        top_k: true,
        max_tokens_field: MaxTokensField::MaxCompletionTokens,
        max_tokens_limit: Some(8192),
        ..Dialect::default()
    };
    let (v, _) = translate_with(req, &dialect);
    assert_eq!(v["top_k"], 40);
    assert_eq!(v["max_completion_tokens"], 8192);
    assert!(v.get("max_tokens").is_none());
}

#[test]
fn long_user_ids_are_hashed() {
    let mut req = base(json!([{"role":"user","content":"hi"}]));
    let long_id = format!(
        "{{\"device_id\":\"{}\",\"session_id\":\"abc\"}}",
        "d".repeat(64)
    );
    req["metadata"] = json!({ "user_id": long_id });
    let v = translate(req);
    let user = v["user"].as_str().unwrap();
    assert!(user.starts_with("user_") && user.len() <= 64, "{user}");
}

#[test]
fn stream_adds_stream_options_per_dialect() {
    let mut req = base(json!([{"role":"user","content":"hi"}]));
    req["stream"] = json!(true);
    let (v, t) = translate_with(req.clone(), &Dialect::default());
    assert!(t.stream);
    assert_eq!(v["stream"], true);
    assert_eq!(v["stream_options"], json!({"include_usage": true}));
    let (v, _) = translate_with(
        req,
        &Dialect {
            stream_usage: false,
            ..Dialect::default()
        },
    );
    assert!(v.get("stream_options").is_none());
}

fn with_thinking(
    thinking: Value,
    output_config: Option<Value>,
    dialect: ReasoningStyle,
    stream: bool,
) -> Value {
    let mut req = base(json!([{"role":"user","content":"hi"}]));
    req["thinking"] = thinking;
    req["stream"] = json!(stream);
    if let Some(o) = output_config {
        req["output_config"] = o;
    }
    translate_with(
        req,
        &Dialect {
            reasoning: dialect,
            ..Dialect::default()
        },
    )
    .0
}

#[test]
fn thinking_budget_maps_to_effort() {
    let e = |budget: u64| {
        with_thinking(
            json!({"type":"enabled","budget_tokens":budget}),
            None,
            ReasoningStyle::Effort,
            false,
        )["reasoning_effort"]
            .clone()
    };
    assert_eq!(e(1024), "low");
    assert_eq!(e(4096), "medium");
    assert_eq!(e(16000), "high");
}

#[test]
fn adaptive_thinking_uses_output_config_effort() {
    let v = with_thinking(
        json!({"type":"adaptive"}),
        Some(json!({"effort":"medium"})),
        ReasoningStyle::Effort,
        true,
    );
    assert_eq!(v["reasoning_effort"], "medium");
    let v = with_thinking(
        json!({"type":"adaptive"}),
        Some(json!({"effort":"max"})),
        ReasoningStyle::Effort,
        true,
    );
    assert_eq!(
        v["reasoning_effort"], "high",
        "clamped to what OpenAI accepts"
    );
    let v = with_thinking(
        json!({"type":"adaptive"}),
        Some(json!({"effort":"max"})),
        ReasoningStyle::DeepSeek,
        true,
    );
    assert_eq!(v["reasoning_effort"], "max");
    assert_eq!(v["thinking"], json!({"type":"enabled"}));
    let v = with_thinking(
        json!({"type":"adaptive"}),
        Some(json!({"effort":"medium"})),
        ReasoningStyle::DeepSeek,
        true,
    );
    assert_eq!(v["reasoning_effort"], "high", "DeepSeek has no medium");
}

#[test]
fn thinking_disabled_sends_no_effort() {
    let v = with_thinking(
        json!({"type":"disabled"}),
        None,
        ReasoningStyle::Effort,
        false,
    );
    assert!(v.get("reasoning_effort").is_none() && v.get("thinking").is_none());
    let v = with_thinking(
        json!({"type":"disabled"}),
        None,
        ReasoningStyle::DeepSeek,
        false,
    );
    assert_eq!(v["thinking"], json!({"type":"disabled"}));
    assert!(v.get("reasoning_effort").is_none());
    let v = with_thinking(
        json!({"type":"enabled","budget_tokens":5000}),
        None,
        ReasoningStyle::None,
        false,
    );
    assert!(v.get("reasoning_effort").is_none() && v.get("thinking").is_none());
}

#[test]
fn qwen_thinking_only_when_streaming() {
    let v = with_thinking(
        json!({"type":"enabled","budget_tokens":5000}),
        None,
        ReasoningStyle::Qwen,
        true,
    );
    assert_eq!(v["enable_thinking"], true);
    assert_eq!(v["thinking_budget"], 5000);
    let v = with_thinking(
        json!({"type":"enabled","budget_tokens":5000}),
        None,
        ReasoningStyle::Qwen,
        false,
    );
    assert_eq!(v["enable_thinking"], false);
    assert!(v.get("thinking_budget").is_none());
}

#[test]
fn unknown_fields_never_reach_the_provider() {
    let mut req = base(json!([{"role":"user","content":"hi"}]));
    req["context_management"] = json!({"edits":[]});
    req["container"] = json!("c");
    req["mcp_servers"] = json!([]);
    req["service_tier"] = json!("auto");
    req["some_future_field"] = json!(1);
    let v = translate(req);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, vec!["max_tokens", "messages", "model"]); // serde_json sorts keys
}

#[test]
fn invalid_requests_are_errors_not_panics() {
    for body in [
        &b"not json"[..],
        br#"{"messages":[]}"#,
        br#"{"model":"m","messages":"x"}"#,
        br#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
        br#"{"model":"m","max_tokens":-1,"messages":[]}"#,
    ] {
        let err = translate_request(body, |m| m.to_owned(), &Dialect::default()).unwrap_err();
        assert!(!err.0.is_empty());
    }
}

/// Found by fuzzing: an array of the fields in order must not pass as a request.
#[test]
fn a_body_that_is_not_an_object_is_refused() {
    let body = br#"["claude", 100, [{"role": "user", "content": "hi"}]]"#;
    let e = translate_request(body, |m| m.to_owned(), &Dialect::default()).unwrap_err();
    assert!(e.0.contains("expected a JSON object"), "{}", e.0);
}

/// Found by fuzzing: text is forwarded as the client escaped it, lone surrogates included.
#[test]
fn lone_surrogate_escapes_are_forwarded_as_sent() {
    let body = br#"{"model":"m","max_tokens":5,"system":[{"type":"text","text":"\ud800x"}],"messages":[{"role":"user","content":"hi"}]}"#;
    let t = translate_request(body, |m| m.to_owned(), &Dialect::default()).unwrap();
    let out = std::str::from_utf8(&t.body).unwrap();
    assert!(out.contains(r#""content":"\ud800x""#), "{out}");
}
