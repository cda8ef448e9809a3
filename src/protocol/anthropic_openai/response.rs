//! OpenAI chat completion (non-streaming) → Anthropic `message`, through the pivot:
//! [`crate::protocol::openai_chat::decode_response`] reads the provider's answer,
//! [`crate::protocol::anthropic::encode_response`] writes the client's.

use super::ToolNames;
#[cfg(test)]
use crate::protocol::anthropic::THINKING_SIGNATURE;
use crate::protocol::anthropic::encode_response::encode_response;
use crate::protocol::anthropic::{StopReason, Usage};
use crate::protocol::json::repair_json_object;
use crate::protocol::openai_chat::decode_response::decode_response;
use crate::protocol::openai_chat::wire::ChatUsage;
use crate::protocol::pivot::ExchangeContext;
use serde_json::value::RawValue;

pub use crate::protocol::pivot::ResponseError;

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

pub fn translate_response(
    body: &[u8],
    ctx: &ResponseContext<'_>,
) -> Result<TranslatedResponse, ResponseError> {
    let response = decode_response(body, ctx.tool_names)?;
    let exchange = ExchangeContext {
        message_id: ctx.message_id.to_owned(),
        client_model: ctx.client_model.to_owned(),
        ..ExchangeContext::default()
    };
    let encoded = encode_response(&response, &exchange)?;
    Ok(TranslatedResponse {
        body: encoded.body,
        usage: encoded.usage,
        usage_reported: encoded.usage_reported,
        repaired_arguments: encoded.repaired_arguments,
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
    crate::protocol::anthropic::encode_response::stop_reason(
        crate::protocol::openai_chat::decode_response::stop_reason(finish_reason),
        has_tool_use,
    )
}

/// `input_tokens` excludes cache reads, as Anthropic counts them.
pub fn anthropic_usage(u: &ChatUsage) -> Usage {
    crate::protocol::openai_chat::decode_response::usage(u).to_anthropic()
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
