//! OpenAI chat completion (non-streaming) → Anthropic `message`.

use super::{ToolNames, sanitize_tool_id};
use crate::protocol::anthropic::{
    MessageResponse, OutBlock, StopReason, THINKING_SIGNATURE, Usage,
};
use crate::protocol::json::repair_json_object;
use crate::protocol::openai::{ChatCompletion, ChatUsage, ProviderError};
use serde_json::value::RawValue;

/// What the response translation needs from the request.
#[derive(Debug, Clone)]
pub struct ResponseContext<'c> {
    /// The Anthropic id for this message (`msg_…`).
    pub message_id: &'c str,
    /// The model the client asked for.
    pub client_model: &'c str,
    pub tool_names: &'c ToolNames,
}

/// A translated response and the facts telemetry wants from it.
#[derive(Debug)]
pub struct TranslatedResponse {
    pub body: Vec<u8>,
    pub usage: Usage,
    /// False when the provider sent no usage and `usage` is our estimate.
    pub usage_reported: bool,
    /// Tool arguments that were not valid JSON and had to be repaired or replaced.
    pub repaired_arguments: u32,
}

/// Why a 2xx body could not be translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// The body is not a chat completion at all.
    Malformed(String),
    /// A 200 that carries an error object (some providers do this).
    Provider(ProviderError),
}

pub fn translate_response(
    body: &[u8],
    ctx: &ResponseContext<'_>,
) -> Result<TranslatedResponse, ResponseError> {
    let completion: ChatCompletion = serde_json::from_slice(body).map_err(|e| {
        ResponseError::Malformed(format!("the provider sent an unreadable response: {e}"))
    })?;
    if completion.choices.is_none()
        && let Some(err) = completion.error
    {
        {
            let parsed = serde_json::from_str::<serde_json::Value>(err.get())
                .ok()
                .and_then(|v| ProviderError::from_value(&serde_json::json!({ "error": v })))
                .unwrap_or_else(|| ProviderError::parse(err.get().as_bytes()));
            return Err(ResponseError::Provider(parsed));
        }
    }
    let choice = completion
        .choices
        .as_ref()
        .and_then(|c| c.first())
        .ok_or_else(|| ResponseError::Malformed("the provider response has no choices".into()))?;
    let message = choice.message.as_ref();

    let mut content = Vec::new();
    let mut output_chars = 0usize;
    if let Some(reasoning) = message.and_then(|m| m.reasoning_text()) {
        output_chars += reasoning.len();
        content.push(OutBlock::Thinking {
            thinking: reasoning,
            signature: THINKING_SIGNATURE,
        });
    }
    if let Some(text) = message
        .and_then(|m| m.content.as_ref())
        .filter(|t| !t.0.is_empty())
    {
        output_chars += text.0.len();
        content.push(OutBlock::Text { text: &text.0 });
    }
    let mut repaired_arguments = 0;
    let calls = message
        .and_then(|m| m.tool_calls.as_deref())
        .unwrap_or_default();
    let legacy_call = message.and_then(|m| m.function_call.as_deref());
    let functions = calls
        .iter()
        .map(|c| (c.id.as_deref(), c.function.as_ref()))
        .chain(legacy_call.map(|f| (None, Some(f))));
    for (position, (id, function)) in functions.enumerate() {
        let Some(function) = function else { continue };
        let name = function.name.as_deref().unwrap_or("");
        let arguments = function.arguments.as_deref().unwrap_or("");
        output_chars += arguments.len();
        let (input, repaired) = tool_input(arguments);
        repaired_arguments += u32::from(repaired);
        content.push(OutBlock::ToolUse {
            id: sanitize_tool_id(id, ctx.message_id, position),
            name: ctx.tool_names.to_client(name),
            input,
        });
    }

    let has_tool_use = content
        .iter()
        .any(|b| matches!(b, OutBlock::ToolUse { .. }));
    let stop_reason = stop_reason(choice.finish_reason.as_deref(), has_tool_use);
    let (usage, usage_reported) = match completion.usage {
        Some(u) => (anthropic_usage(&u), true),
        None => (
            Usage {
                output_tokens: super::request::estimate_tokens(output_chars),
                ..Usage::default()
            },
            false,
        ),
    };
    let response = MessageResponse {
        id: ctx.message_id,
        kind: "message",
        role: "assistant",
        model: ctx.client_model,
        content,
        stop_reason,
        stop_sequence: None,
        usage,
    };
    let body = serde_json::to_vec(&response)
        .map_err(|e| ResponseError::Malformed(format!("cannot encode the response: {e}")))?;
    Ok(TranslatedResponse {
        body,
        usage,
        usage_reported,
        repaired_arguments,
    })
}

/// Tool arguments as an `input` object: `""` → `{}`, truncated JSON repaired, anything else
/// that is not an object → `{}`. The flag says whether the arguments needed help.
pub fn tool_input(arguments: &str) -> (Box<RawValue>, bool) {
    let trimmed = arguments.trim();
    if trimmed.starts_with('{')
        && let Ok(raw) = serde_json::from_str::<Box<RawValue>>(trimmed)
    {
        return (raw, false);
    }
    let repaired = repair_json_object(trimmed).unwrap_or_else(|| "{}".to_owned());
    let raw = RawValue::from_string(repaired)
        .unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).expect("static JSON"));
    (raw, !trimmed.is_empty())
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`; a response with tool calls always stops
/// for `tool_use` (some providers say `stop` there).
pub fn stop_reason(finish_reason: Option<&str>, has_tool_use: bool) -> StopReason {
    if has_tool_use {
        return StopReason::ToolUse;
    }
    match finish_reason {
        Some("length") => StopReason::MaxTokens,
        Some("tool_calls") | Some("function_call") => StopReason::ToolUse,
        Some("content_filter") => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

/// `input_tokens` excludes cache reads, as Anthropic counts them.
pub fn anthropic_usage(u: &ChatUsage) -> Usage {
    let cached = u.cached_tokens();
    let prompt = u.prompt_tokens.unwrap_or(0);
    Usage {
        input_tokens: prompt.saturating_sub(cached),
        output_tokens: u.completion_tokens.unwrap_or(0),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn translate(body: Value) -> (Value, TranslatedResponse) {
        let names = ToolNames::default();
        let ctx = ResponseContext {
            message_id: "msg_1",
            client_model: "claude-haiku-4-5",
            tool_names: &names,
        };
        let t = translate_response(&serde_json::to_vec(&body).unwrap(), &ctx).unwrap();
        (serde_json::from_slice(&t.body).unwrap(), t)
    }

    #[test]
    fn text_response() {
        let (v, t) = translate(
            json!({"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}),
        );
        assert_eq!(
            v,
            json!({"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5",
                "content":[{"type":"text","text":"Hi!"}],"stop_reason":"end_turn","stop_sequence":null,
                "usage":{"input_tokens":6,"output_tokens":2,"cache_creation_input_tokens":0,"cache_read_input_tokens":4}})
        );
        assert!(t.usage_reported);
    }

    #[test]
    fn thinking_text_and_tools_in_order() {
        let (v, _) = translate(
            json!({"choices":[{"message":{"content":"Running.","reasoning_content":"think",
            "tool_calls":[
                {"id":"functions.Bash:0","type":"function","function":{"name":"Bash","arguments":"{\"command\":\"ls\"}"}},
                {"id":"call_2","type":"function","function":{"name":"Read","arguments":""}},
                {"type":"function","function":{"name":"Edit","arguments":"{\"a\":\"trunc"}}
            ]},"finish_reason":"stop"}]}),
        );
        let c = &v["content"];
        assert_eq!(
            c[0],
            json!({"type":"thinking","thinking":"think","signature":THINKING_SIGNATURE})
        );
        assert_eq!(c[1], json!({"type":"text","text":"Running."}));
        assert_eq!(
            c[2],
            json!({"type":"tool_use","id":"functions_Bash_0","name":"Bash","input":{"command":"ls"}})
        );
        assert_eq!(c[3]["input"], json!({}));
        assert_eq!(c[4]["input"], json!({"a":"trunc"}));
        assert!(c[4]["id"].as_str().unwrap().starts_with("toolu_"));
        assert_eq!(
            v["stop_reason"], "tool_use",
            "tool calls win over finish_reason stop"
        );
        assert_eq!(v["usage"]["input_tokens"], 0, "usage always present");
    }

    #[test]
    fn openrouter_reasoning_field_and_empty_text() {
        let (v, _) = translate(
            json!({"choices":[{"message":{"content":"","reasoning":"r"},"finish_reason":"length"}]}),
        );
        assert_eq!(v["content"].as_array().unwrap().len(), 1);
        assert_eq!(v["content"][0]["type"], "thinking");
        assert_eq!(v["stop_reason"], "max_tokens");
    }

    #[test]
    fn deepseek_cache_hits() {
        let (v, _) = translate(
            json!({"choices":[{"message":{"content":"x"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":100,"completion_tokens":1,"prompt_cache_hit_tokens":60,"prompt_cache_miss_tokens":40}}),
        );
        assert_eq!(v["usage"]["input_tokens"], 40);
        assert_eq!(v["usage"]["cache_read_input_tokens"], 60);
    }

    #[test]
    fn errors_inside_a_200_and_garbage() {
        let names = ToolNames::default();
        let ctx = ResponseContext {
            message_id: "m",
            client_model: "c",
            tool_names: &names,
        };
        assert!(matches!(
            translate_response(br#"{"error":{"message":"quota","code":429}}"#, &ctx),
            Err(ResponseError::Provider(e)) if e.message == "quota"
        ));
        assert!(matches!(
            translate_response(b"<html>", &ctx),
            Err(ResponseError::Malformed(_))
        ));
        assert!(matches!(
            translate_response(br#"{"choices":[]}"#, &ctx),
            Err(ResponseError::Malformed(_))
        ));
    }
}
