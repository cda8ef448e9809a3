//! A Responses `response` object (from a `protocol: responses` source) → a pivot
//! [`Response`]: `message` items as text, `reasoning` items as reasoning whose opaque data
//! is `<id> <encrypted_content>` of origin `Responses`, `function_call` items as calls.
//! `status: incomplete` is the output limit; an `error` object is the provider's error.

use crate::protocol::errors::ProviderError;
use crate::protocol::json::{Str, Text};
use crate::protocol::pivot::{
    Origin, Part, Reasoning, Response, ResponseError, StopReason, ToolCall, Usage,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    status: Option<Str<'a>>,
    #[serde(default, borrow)]
    output: Vec<WireItem<'a>>,
    usage: Option<WireUsage>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct WireItem<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub content: Vec<WirePart<'a>>,
    #[serde(default, borrow)]
    pub summary: Vec<WirePart<'a>>,
    #[serde(borrow)]
    pub encrypted_content: Option<Str<'a>>,
    #[serde(borrow)]
    pub call_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    #[serde(borrow)]
    pub arguments: Option<Str<'a>>,
    #[serde(borrow)]
    pub input: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(super) struct WirePart<'a> {
    #[serde(borrow)]
    pub text: Option<Text<'a>>,
    #[serde(borrow)]
    pub refusal: Option<Text<'a>>,
}

/// Responses usage: `input_tokens` includes cached ones.
#[derive(Deserialize, Default, Clone, Copy)]
pub(super) struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<Details>,
    #[serde(default)]
    output_tokens_details: Option<Details>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    pub(super) fn to_pivot(self) -> Usage {
        Usage {
            input: self.input_tokens,
            output: self.output_tokens,
            cache_read: self.input_tokens_details.and_then(|d| d.cached_tokens),
            cache_write: None,
            reasoning: self.output_tokens_details.and_then(|d| d.reasoning_tokens),
        }
    }
}

/// The opaque data a reasoning item needs to go back: `<id> <encrypted_content>`.
pub(super) fn reasoning_data(id: Option<&str>, encrypted: Option<&str>) -> Option<String> {
    Some(format!("{} {}", id.unwrap_or("rs_0"), encrypted?))
}

/// One output item as pivot parts (none for kinds the pivot has no use for).
pub(super) fn item_part<'a>(item: WireItem<'a>) -> Option<Part<'a>> {
    match item.kind.as_deref()? {
        "message" => {
            let mut text = String::new();
            for p in &item.content {
                if let Some(t) = p.text.as_ref().or(p.refusal.as_ref()) {
                    text.push_str(t.escaped());
                }
            }
            Some(Part::Text(Text::from_escaped(text)))
        }
        "reasoning" => {
            let mut text = String::new();
            for p in &item.summary {
                if let Some(t) = &p.text {
                    text.push_str(t.escaped());
                }
            }
            let data = reasoning_data(item.id.as_deref(), item.encrypted_content.as_deref());
            Some(Part::Reasoning(Reasoning {
                text: Text::from_escaped(text),
                signature: data.map(|d| (Origin::Responses, Cow::Owned(d))),
                redacted: None,
            }))
        }
        "function_call" | "custom_tool_call" => {
            let arguments = match (item.arguments, item.input) {
                (Some(a), _) => a.into_cow(),
                (None, Some(input)) => {
                    Cow::Owned(serde_json::json!({ "input": input.as_str() }).to_string())
                }
                (None, None) => Cow::Borrowed("{}"),
            };
            Some(Part::ToolCall(ToolCall {
                id: item.call_id.map(Str::into_cow).unwrap_or_default(),
                name: item.name.map(Str::into_cow).unwrap_or_default(),
                arguments,
            }))
        }
        _ => None,
    }
}

pub fn decode_response(body: &[u8]) -> Result<Response<'_>, ResponseError> {
    let wire: Wire<'_> = serde_json::from_slice(body)
        .map_err(|e| ResponseError::Malformed(format!("not a Responses answer: {e}")))?;
    if let Some(error) = wire.error.filter(|e| e.get() != "null") {
        let wrapped = format!("{{\"error\":{}}}", error.get());
        return Err(ResponseError::Provider(ProviderError::parse(
            wrapped.as_bytes(),
        )));
    }
    let content: Vec<Part<'_>> = wire.output.into_iter().filter_map(item_part).collect();
    let called = content.iter().any(|p| matches!(p, Part::ToolCall(_)));
    let stop = match wire.status.as_deref() {
        Some("incomplete") => StopReason::MaxTokens,
        _ if called => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    };
    Ok(Response {
        id: wire.id.map(Str::into_cow).unwrap_or_default(),
        content,
        stop: Some(stop),
        stop_sequence: None,
        usage: wire.usage.map(WireUsage::to_pivot),
    })
}
