//! A pivot [`Response`] → an OpenAI `chat.completion` for a Chat Completions client.
//!
//! Reasoning text goes in `reasoning_content` (DeepSeek's field, read by most OpenAI-style
//! clients that show reasoning); its opaque data has no place in this protocol and is
//! dropped. A call of the structured-output tool is the answer's text.

use crate::protocol::pivot::{ExchangeContext, Part, Response, StopReason, Usage};
use serde::Serialize;

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<WireUsage>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    finish_reason: &'static str,
    logprobs: Option<()>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Serialize)]
pub(super) struct ToolCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: Function<'a>,
}

#[derive(Serialize)]
pub(super) struct Function<'a> {
    pub name: &'a str,
    pub arguments: &'a str,
}

/// OpenAI's usage: `prompt_tokens` includes cached ones.
#[derive(Serialize)]
pub(super) struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedDetails,
    completion_tokens_details: ReasoningDetails,
}

#[derive(Serialize)]
struct CachedDetails {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningDetails {
    reasoning_tokens: u64,
}

impl From<Usage> for WireUsage {
    fn from(u: Usage) -> Self {
        WireUsage {
            prompt_tokens: u.input,
            completion_tokens: u.output,
            total_tokens: u.input + u.output,
            prompt_tokens_details: CachedDetails {
                cached_tokens: u.cache_read.unwrap_or(0),
            },
            completion_tokens_details: ReasoningDetails {
                reasoning_tokens: u.reasoning.unwrap_or(0),
            },
        }
    }
}

/// `finish_reason` for a stop reason; a structured-output call is a normal stop.
pub fn finish_reason(stop: Option<StopReason>, structured: bool) -> &'static str {
    match stop {
        Some(StopReason::MaxTokens) => "length",
        Some(StopReason::ToolUse) if !structured => "tool_calls",
        Some(StopReason::Refusal) => "content_filter",
        _ => "stop",
    }
}

pub fn encode_response(response: &Response<'_>, ctx: &ExchangeContext) -> Vec<u8> {
    let structured = ctx.structured_output_tool.as_deref();
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    let mut called_structured = false;
    for part in &response.content {
        match part {
            Part::Text(t) => text.get_or_insert_with(String::new).push_str(&t.decoded()),
            Part::Reasoning(r) if !r.text.is_empty() => reasoning
                .get_or_insert_with(String::new)
                .push_str(&r.text.decoded()),
            Part::ToolCall(call) if Some(call.name.as_ref()) == structured => {
                called_structured = true;
                text.get_or_insert_with(String::new)
                    .push_str(&call.arguments);
            }
            Part::ToolCall(call) => tool_calls.push(ToolCall {
                index: None,
                id: &call.id,
                kind: "function",
                function: Function {
                    name: &call.name,
                    arguments: &call.arguments,
                },
            }),
            _ => {}
        }
    }
    let stop = if !tool_calls.is_empty() {
        Some(StopReason::ToolUse)
    } else {
        response.stop
    };
    let completion = Completion {
        id: &ctx.message_id,
        object: "chat.completion",
        created: ctx.created,
        model: &ctx.client_model,
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: text,
                reasoning_content: reasoning,
                tool_calls,
            },
            finish_reason: finish_reason(stop, called_structured),
            logprobs: None,
        }],
        usage: response.usage.map(WireUsage::from),
    };
    serde_json::to_vec(&completion).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::json::Text;
    use crate::protocol::pivot::{Reasoning, ToolCall as PivotCall};
    use serde_json::Value;

    fn ctx() -> ExchangeContext {
        ExchangeContext {
            message_id: "chatcmpl-1".into(),
            created: 7,
            client_model: "gpt-4o".into(),
            ..ExchangeContext::default()
        }
    }

    #[test]
    fn text_reasoning_and_tools() {
        let response = Response {
            id: "msg_x".into(),
            content: vec![
                Part::Reasoning(Reasoning {
                    text: Text::from_plain("think"),
                    ..Reasoning::default()
                }),
                Part::Text(Text::from_plain("Hi")),
                Part::ToolCall(PivotCall {
                    id: "toolu_1".into(),
                    name: "Bash".into(),
                    arguments: r#"{"command":"ls"}"#.into(),
                }),
            ],
            stop: Some(StopReason::ToolUse),
            stop_sequence: None,
            usage: Some(Usage {
                input: 20,
                output: 5,
                cache_read: Some(8),
                ..Usage::default()
            }),
        };
        let v: Value = serde_json::from_slice(&encode_response(&response, &ctx())).unwrap();
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], "Hi");
        assert_eq!(m["reasoning_content"], "think");
        assert_eq!(m["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(
            m["tool_calls"][0]["function"]["arguments"],
            r#"{"command":"ls"}"#
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["usage"]["prompt_tokens"], 20);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 8);
        assert_eq!(v["model"], "gpt-4o");
        assert_eq!(v["object"], "chat.completion");
    }

    #[test]
    fn structured_output_call_is_the_text() {
        let mut c = ctx();
        c.structured_output_tool = Some("structured_output".into());
        let response = Response {
            content: vec![Part::ToolCall(PivotCall {
                id: "t".into(),
                name: "structured_output".into(),
                arguments: r#"{"a":1}"#.into(),
            })],
            stop: Some(StopReason::ToolUse),
            ..Response::default()
        };
        let v: Value = serde_json::from_slice(&encode_response(&response, &c)).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], r#"{"a":1}"#);
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
    }
}
