//! An OpenAI `chat.completion` (the non-streaming answer of an OpenAI-compatible source) →
//! a pivot [`Response`]. Lenient as providers need: reasoning in `reasoning_content` or
//! `reasoning`, content as a string or parts, the legacy `function_call`, an `error` object
//! inside a 200. Shortened tool names are restored here.

use super::wire::{ChatCompletion, ChatUsage};
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
    if completion.choices.is_none()
        && let Some(err) = completion.error
    {
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
        if let Some(text) = message.content.filter(|t| !t.0.is_empty()) {
            content.push(Part::Text(Text::from_plain(&text.0)));
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
