//! Ready-made handlers for common test scripts: the Claude Code tool loop used by the
//! end-to-end test, and a fixed sequence of replies (e.g. fail, fail, succeed).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::{RecordedRequest, Reply, estimate_tokens, openai};

/// Tool-call id used by [`claude_code_tool_loop`].
pub const WRITE_CALL_ID: &str = "call_fake_write_0001";
/// Text answered to requests that are not the main conversation.
pub const SIDE_REPLY: &str = "OK.";

/// An OpenAI-compatible handler that drives one Claude Code tool round trip:
///
/// * no `Write` tool in `tools[].function.name` (title, summary, quota and other side
///   requests): a short text answer;
/// * `Write` offered and no `role: "tool"` message yet: one `Write` tool call with
///   `{"file_path": file_path, "content": file_content}`;
/// * a tool result present: `final_text` with `finish_reason: "stop"`.
///
/// Answers stream when the request has `"stream": true` (role chunk, name chunk, three
/// argument fragments, finish chunk, usage chunk, `[DONE]`), otherwise they are JSON.
pub fn claude_code_tool_loop(
    file_path: &str,
    file_content: &str,
    final_text: &str,
) -> impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static {
    let arguments = json!({"file_path": file_path, "content": file_content});
    tool_loop(Protocol::OpenAi, "Write", arguments, final_text)
}

/// The protocol a scripted provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    OpenAi,
    Anthropic,
    /// OpenAI Responses.
    Responses,
}

/// One tool round trip with any client: while `tool` is offered and no tool result came
/// back, call it (id [`WRITE_CALL_ID`]) with `arguments`; after the result, answer
/// `final_text`; requests that do not offer `tool` get a short text. Streams when asked.
pub fn tool_loop(
    protocol: Protocol,
    tool: &str,
    arguments: Value,
    final_text: &str,
) -> impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static {
    let arguments = arguments.to_string();
    let tool = tool.to_string();
    let final_text = final_text.to_string();
    move |request| {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return Reply::json(
                400,
                openai::error_body(
                    "fake provider: request body is not JSON",
                    "invalid_request_error",
                    None,
                ),
            );
        };
        let stream = body["stream"].as_bool().unwrap_or(false);
        let prompt_tokens = (request.body.len() as u64 / 4).max(1);
        if let Some(answer) = structured_answer(&body) {
            return match protocol {
                Protocol::Anthropic => {
                    let call = [("toolu_structured", STRUCTURED_TOOL, answer.as_str())];
                    if stream {
                        Reply::sse(crate::anthropic::tool_use_stream(&call, 2))
                    } else {
                        Reply::json(200, crate::anthropic::tool_use_message(&call))
                    }
                }
                Protocol::OpenAi => text_reply(&answer, stream, prompt_tokens),
                Protocol::Responses if stream => {
                    Reply::sse(crate::responses::text_stream(&answer, 2))
                }
                Protocol::Responses => Reply::json(200, crate::responses::text_response(&answer)),
            };
        }
        let offers_tool = body["tools"].as_array().is_some_and(|tools| {
            tools
                .iter()
                .any(|t| t["function"]["name"] == tool.as_str() || t["name"] == tool.as_str())
        });
        let has_tool_result = body["messages"].as_array().is_some_and(|messages| {
            messages.iter().any(|m| {
                m["role"] == "tool"
                    || m["content"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
            })
        }) || body["input"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["type"] == "function_call_output"));
        let text = if !offers_tool {
            Some(side_reply(&body))
        } else if has_tool_result {
            Some(final_text.clone())
        } else {
            None
        };
        match (protocol, text) {
            (Protocol::OpenAi, Some(text)) => text_reply(&text, stream, prompt_tokens),
            (Protocol::Anthropic, Some(text)) if stream => {
                Reply::sse(crate::anthropic::text_stream(&text, 3))
            }
            (Protocol::Anthropic, Some(text)) => Reply::json(200, crate::anthropic::message(&text)),
            (Protocol::OpenAi, None) if stream => {
                let mut events = openai::tool_call_stream(WRITE_CALL_ID, &tool, &arguments, 3);
                with_prompt_tokens(&mut events, prompt_tokens, estimate_tokens(&arguments));
                Reply::sse(events)
            }
            (Protocol::OpenAi, None) => {
                let mut v = openai::tool_call_completion(&[(WRITE_CALL_ID, &tool, &arguments)]);
                v["usage"] = openai::usage(prompt_tokens, estimate_tokens(&arguments));
                Reply::json(200, v)
            }
            (Protocol::Anthropic, None) if stream => Reply::sse(crate::anthropic::tool_use_stream(
                &[(WRITE_CALL_ID, &tool, &arguments)],
                3,
            )),
            (Protocol::Anthropic, None) => Reply::json(
                200,
                crate::anthropic::tool_use_message(&[(WRITE_CALL_ID, &tool, &arguments)]),
            ),
            (Protocol::Responses, Some(text)) if stream => {
                Reply::sse(crate::responses::text_stream(&text, 3))
            }
            (Protocol::Responses, Some(text)) => {
                Reply::json(200, crate::responses::text_response(&text))
            }
            (Protocol::Responses, None) if stream => Reply::sse(
                crate::responses::tool_call_stream(WRITE_CALL_ID, &tool, &arguments, 3),
            ),
            (Protocol::Responses, None) => Reply::json(
                200,
                crate::responses::tool_call_response(WRITE_CALL_ID, &tool, &arguments),
            ),
        }
    }
}

/// The error DeepSeek's thinking models give a tool turn that lost its reasoning.
pub const MISSING_REASONING: &str = "Missing `reasoning_content` field in the assistant message";

/// A DeepSeek-V4-style OpenAI-compatible provider in thinking mode: like [`tool_loop`], but
/// the tool call comes with `reasoning_content` (`reasoning`), and a request whose assistant
/// tool-call messages do not echo that reasoning back is refused with a 400, as DeepSeek
/// refuses it.
pub fn deepseek_tool_loop(
    tool: &str,
    arguments: Value,
    reasoning: &str,
    final_text: &str,
) -> impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static {
    let inner = tool_loop(Protocol::OpenAi, tool, arguments.clone(), final_text);
    let (tool, arguments, reasoning) = (
        tool.to_string(),
        arguments.to_string(),
        reasoning.to_string(),
    );
    move |request| {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return inner(request);
        };
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        if let Some(i) = messages.iter().position(|m| {
            m["role"] == "assistant"
                && m["tool_calls"].as_array().is_some_and(|c| !c.is_empty())
                && m["reasoning_content"].as_str() != Some(reasoning.as_str())
        }) {
            let message = format!("{MISSING_REASONING} at message index {i}");
            return Reply::json(
                400,
                openai::error_body(&message, "invalid_request_error", None),
            );
        }
        let calls_now = messages.iter().all(|m| m["role"] != "tool")
            && body["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["function"]["name"] == tool.as_str()));
        if !calls_now {
            return inner(request);
        }
        if body["stream"].as_bool().unwrap_or(false) {
            let mut events = openai::tool_call_stream(WRITE_CALL_ID, &tool, &arguments, 3);
            events.insert(
                1,
                openai::sse_chunk(json!({"reasoning_content": reasoning}), None),
            );
            Reply::sse(events)
        } else {
            let mut v = openai::tool_call_completion(&[(WRITE_CALL_ID, &tool, &arguments)]);
            v["choices"][0]["message"]["reasoning_content"] = json!(reasoning);
            Reply::json(200, v)
        }
    }
}

fn text_reply(text: &str, stream: bool, prompt_tokens: u64) -> Reply {
    if stream {
        let mut events = openai::text_stream(text, 3);
        with_prompt_tokens(&mut events, prompt_tokens, estimate_tokens(text));
        Reply::sse(events)
    } else {
        let mut v = openai::chat_completion(text);
        v["usage"] = openai::usage(prompt_tokens, estimate_tokens(text));
        Reply::json(200, v)
    }
}

/// Replace the usage chunk (second to last event) with one that reflects the request size.
fn with_prompt_tokens(events: &mut [String], prompt_tokens: u64, completion_tokens: u64) {
    if let Some(i) = events.len().checked_sub(2) {
        events[i] = openai::sse_usage_chunk(prompt_tokens, completion_tokens);
    }
}

/// The tool FlexiProxy forces on Anthropic sources for structured output.
const STRUCTURED_TOOL: &str = "structured_output";

/// A request for structured output (Chat `response_format`, Responses `text.format`, or the
/// forced structured-output tool): an answer that fits its schema.
fn structured_answer(body: &Value) -> Option<String> {
    let schema = if body["response_format"]["type"] == "json_schema" {
        &body["response_format"]["json_schema"]["schema"]
    } else if body["text"]["format"]["type"] == "json_schema" {
        &body["text"]["format"]["schema"]
    } else if body["tool_choice"]["name"] == STRUCTURED_TOOL {
        body["tools"]
            .as_array()?
            .iter()
            .find(|t| t["name"] == STRUCTURED_TOOL)
            .map(|t| &t["input_schema"])?
    } else {
        return None;
    };
    Some(sample_of(schema).to_string())
}

/// A value that fits a JSON schema (the simple kinds).
fn sample_of(schema: &Value) -> Value {
    match schema["type"].as_str().unwrap_or("object") {
        "string" => json!("simple"),
        "integer" => json!(10),
        "number" => json!(1.5),
        "boolean" => json!(true),
        "array" => json!([]),
        _ => Value::Object(
            schema["properties"]
                .as_object()
                .map(|p| p.iter().map(|(k, v)| (k.clone(), sample_of(v))).collect())
                .unwrap_or_default(),
        ),
    }
}

/// Claude Code's topic/title detector asks for a JSON verdict; give it a valid one so it
/// does not log parse errors. Everything else gets a short plain answer.
fn side_reply(body: &Value) -> String {
    if body.to_string().contains("isNewTopic") {
        json!({"isNewTopic": false, "title": null}).to_string()
    } else {
        SIDE_REPLY.to_string()
    }
}

/// A handler that answers with `replies` in order and then repeats the last one forever
/// (e.g. `[503, 503, 200]` for retry tests). Panics if `replies` is empty.
pub fn sequence(replies: Vec<Reply>) -> impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static {
    assert!(
        !replies.is_empty(),
        "scenario::sequence needs at least one reply"
    );
    let next = AtomicUsize::new(0);
    let replies = Mutex::new(replies);
    move |_request| {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let replies = replies.lock().unwrap_or_else(|e| e.into_inner());
        replies[i.min(replies.len() - 1)].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn request(body: Value) -> RecordedRequest {
        RecordedRequest {
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(body.to_string()),
            chunked: false,
            connection_id: 0,
        }
    }

    fn tools() -> Value {
        json!([{"type": "function", "function": {"name": "Read"}},
               {"type": "function", "function": {"name": "Write"}}])
    }

    #[test]
    fn tool_loop_json() {
        let h = claude_code_tool_loop("/tmp/a.txt", "hé\nllo", "Done!");
        let first = h(&request(
            json!({"messages": [{"role": "user", "content": "go"}], "tools": tools()}),
        ));
        let v: Value = serde_json::from_slice(&first.body_bytes()).unwrap();
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "Write");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            args,
            json!({"file_path": "/tmp/a.txt", "content": "hé\nllo"})
        );

        let second = h(&request(json!({"messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": []},
            {"role": "tool", "tool_call_id": WRITE_CALL_ID, "content": "ok"}], "tools": tools()})));
        let v: Value = serde_json::from_slice(&second.body_bytes()).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Done!");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");

        let side = h(&request(
            json!({"messages": [{"role": "user", "content": "title?"}]}),
        ));
        let v: Value = serde_json::from_slice(&side.body_bytes()).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], SIDE_REPLY);
    }

    #[test]
    fn tool_loop_streaming_shape() {
        let h = claude_code_tool_loop("/tmp/a.txt", "x", "Done!");
        let reply = h(&request(
            json!({"stream": true, "messages": [{"role": "user", "content": "go"}], "tools": tools()}),
        ));
        let body = String::from_utf8(reply.body_bytes().to_vec()).unwrap();
        let events: Vec<&str> = body.split_terminator("\n\n").collect();
        // role, name, 3 argument fragments, finish, usage, [DONE]
        assert_eq!(events.len(), 8, "{body}");
        assert_eq!(events[7], "data: [DONE]");
        let usage: Value = serde_json::from_str(events[6].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert!(usage["usage"]["prompt_tokens"].as_u64().unwrap() > 1);
    }

    #[test]
    fn anthropic_tool_loop_calls_then_answers() {
        let h = tool_loop(Protocol::Anthropic, "editor", json!({"path": "a"}), "Done!");
        let tools = json!([{"name": "editor", "input_schema": {"type": "object"}}]);
        let first = h(&request(
            json!({"messages": [{"role": "user", "content": "go"}], "tools": tools}),
        ));
        let v: Value = serde_json::from_slice(&first.body_bytes()).unwrap();
        assert_eq!(v["content"][0]["name"], "editor");
        assert_eq!(v["content"][0]["input"], json!({"path": "a"}));
        let second = h(&request(
            json!({"tools": tools, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": WRITE_CALL_ID, "content": "ok"}]}]}),
        ));
        let v: Value = serde_json::from_slice(&second.body_bytes()).unwrap();
        assert_eq!(v["content"][0]["text"], "Done!");
    }

    #[test]
    fn deepseek_refuses_tool_turns_without_their_reasoning() {
        let h = deepseek_tool_loop("run", json!({"cmd": "ls"}), "think first", "Done!");
        let tools = json!([{"type": "function", "function": {"name": "run"}}]);
        let first = h(&request(
            json!({"messages": [{"role": "user", "content": "go"}], "tools": tools}),
        ));
        let v: Value = serde_json::from_slice(&first.body_bytes()).unwrap();
        assert_eq!(
            v["choices"][0]["message"]["reasoning_content"],
            "think first"
        );
        let call = json!({"id": WRITE_CALL_ID, "type": "function",
                          "function": {"name": "run", "arguments": "{}"}});
        let turn = |assistant: Value| {
            request(
                json!({"tools": tools, "messages": [{"role": "user", "content": "go"},
                assistant, {"role": "tool", "tool_call_id": WRITE_CALL_ID, "content": "ok"}]}),
            )
        };
        let lost = h(&turn(json!({"role": "assistant", "tool_calls": [call]})));
        assert_eq!(lost.status(), 400);
        let kept = h(&turn(
            json!({"role": "assistant", "tool_calls": [call], "reasoning_content": "think first"}),
        ));
        let v: Value = serde_json::from_slice(&kept.body_bytes()).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Done!");
    }

    #[test]
    fn structured_output_requests_get_an_answer_that_fits() {
        let schema = json!({"type": "object", "properties": {
            "complexity_reasoning": {"type": "string"}, "complexity_score": {"type": "integer"}}});
        let h = tool_loop(Protocol::OpenAi, "x", json!({}), "");
        let r = h(&request(json!({"messages": [], "response_format":
            {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}})));
        let v: Value = serde_json::from_slice(&r.body_bytes()).unwrap();
        let answer: Value =
            serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
        assert_eq!(
            answer,
            json!({"complexity_reasoning": "simple", "complexity_score": 10})
        );
        let h = tool_loop(Protocol::Anthropic, "x", json!({}), "");
        let r = h(&request(
            json!({"messages": [], "tool_choice": {"type": "tool", "name": STRUCTURED_TOOL},
            "tools": [{"name": STRUCTURED_TOOL, "input_schema": schema}]}),
        ));
        let v: Value = serde_json::from_slice(&r.body_bytes()).unwrap();
        assert_eq!(v["content"][0]["input"]["complexity_score"], 10);
    }

    #[test]
    fn sequence_repeats_last() {
        let h = sequence(vec![
            Reply::text(503, "text/plain", "busy"),
            Reply::text(200, "text/plain", "ok"),
        ]);
        let r = request(json!({}));
        assert_eq!(h(&r).status(), 503);
        assert_eq!(h(&r).status(), 200);
        assert_eq!(h(&r).status(), 200);
    }
}
