//! An OpenAI `chat.completion` (the non-streaming answer of an OpenAI-compatible source) →
//! a pivot [`Response`]. Lenient as providers need: reasoning in `reasoning_content`,
//! `reasoning` or `thinking` content parts (Mistral), content as a string or parts (text,
//! refusal), OpenAI's `refusal`, the legacy `function_call`, an `error` object
//! inside a 200. Shortened tool names are restored here.

use super::wire::{ChatCompletion, ChatUsage, is_error};
use crate::protocol::errors::ProviderError;
use crate::protocol::json::Text;
use crate::protocol::names::ToolNames;
use crate::protocol::pivot::{
    Part, Reasoning, Response, ResponseError, StopReason, ToolCall, Usage,
};
use std::borrow::Cow;

/// `finish_reason` → why the answer ended (`None` for none or an unknown one).
pub fn stop_reason(finish_reason: Option<&str>) -> Option<StopReason> {
    Some(match finish_reason? {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::Refusal,
        "stop" => StopReason::EndTurn,
        _ => return None,
    })
}

/// OpenAI usage in pivot terms (`prompt_tokens` counts cached ones already).
pub fn usage(u: &ChatUsage) -> Usage {
    Usage {
        input: u.prompt_tokens.unwrap_or(0),
        output: u.completion_tokens.unwrap_or(0),
        cache_read: Some(u.cached_tokens()),
        cache_write: None,
        reasoning: None,
    }
}

pub fn decode_response<'a>(
    body: &'a [u8],
    names: &ToolNames,
) -> Result<Response<'a>, ResponseError> {
    let completion: ChatCompletion = serde_json::from_slice(body).map_err(|e| {
        ResponseError::Malformed(format!("the provider sent an unreadable response: {e}"))
    })?;
    if let Some(err) = completion.error.filter(|e| is_error(e)) {
        let parsed = serde_json::from_str::<serde_json::Value>(err.get())
            .ok()
            .and_then(|v| ProviderError::from_value(&serde_json::json!({ "error": v })))
            .unwrap_or_else(|| ProviderError::parse(err.get().as_bytes()));
        return Err(ResponseError::Provider(parsed));
    }
    let mut choices = completion.choices.unwrap_or_default();
    if choices.is_empty() {
        return Err(ResponseError::Malformed(
            "the provider response has no choices".into(),
        ));
    }
    let choice = choices.swap_remove(0);
    let mut content = Vec::new();
    if let Some(message) = choice.message {
        if let Some(reasoning) = message.reasoning_text() {
            content.push(Part::Reasoning(Reasoning {
                text: Text::from_plain(reasoning),
                ..Reasoning::default()
            }));
        }
        if let Some(text) = message.text() {
            content.push(Part::Text(Text::from_plain(text)));
        }
        let calls = message.tool_calls.unwrap_or_default();
        let functions = calls
            .into_iter()
            .map(|c| (c.id, c.function))
            .chain(message.function_call.map(|f| (None, Some(*f))));
        for (id, function) in functions {
            let Some(function) = function else { continue };
            let name = function.name.as_deref().unwrap_or("");
            content.push(Part::ToolCall(ToolCall {
                id: id.map_or(Cow::Borrowed(""), |id| id.into_cow()),
                name: Cow::Owned(names.to_client(name).to_owned()),
                arguments: function.arguments.map_or(Cow::Borrowed(""), |a| a.0),
            }));
        }
    }
    Ok(Response {
        id: completion.id.map_or(Cow::Borrowed(""), |id| id.into_cow()),
        content,
        stop: stop_reason(choice.finish_reason.as_deref()),
        stop_sequence: None,
        usage: completion.usage.as_ref().map(usage),
    })
}

#[cfg(test)]
mod tests {
    use crate::protocol::anthropic::THINKING_SIGNATURE;
    use crate::protocol::names::ToolNames;
    use crate::protocol::pair::{ResponseContext, TranslatedResponse, translate_response};
    use crate::protocol::pivot::ResponseError;
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
    fn mistral_thinking_parts_and_refusal() {
        let (v, _) = translate(json!({"choices":[{"message":{"role":"assistant","content":[
                {"type":"thinking","thinking":[{"type":"text","text":"Okay, "},{"type":"text","text":"cross."}]},
                {"type":"text","text":"Look both ways."}]},"finish_reason":"stop"}]}));
        assert_eq!(v["content"][0]["type"], "thinking", "{v}");
        assert_eq!(v["content"][0]["thinking"], "Okay, cross.");
        assert_eq!(
            v["content"][1],
            json!({"type":"text","text":"Look both ways."})
        );
        let (v, _) = translate(
            json!({"choices":[{"message":{"content":null,"refusal":"I can't."},"finish_reason":"stop"}]}),
        );
        assert_eq!(v["content"], json!([{"type":"text","text":"I can't."}]));
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
        // An error beside `choices` is still the provider's error; `error: null` is none.
        assert!(matches!(
            translate_response(
                br#"{"error":{"message":"Token limit reached","code":400},"choices":[{"message":{"content":""}}]}"#,
                &ctx
            ),
            Err(ResponseError::Provider(e)) if e.message == "Token limit reached"
        ));
        assert!(
            translate_response(
                br#"{"error":null,"choices":[{"message":{"content":"x"},"finish_reason":"stop"}]}"#,
                &ctx
            )
            .is_ok()
        );
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
