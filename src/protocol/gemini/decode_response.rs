//! A Gemini `GenerateContentResponse` (from a `protocol: gemini` source) → a pivot
//! [`Response`]: the first candidate's parts as text, reasoning (`thought: true` text, with
//! the thought signature as opaque data of origin `Gemini`) and calls (ids made up where
//! Gemini gives none). A response with an `error` object is the provider's error.

use crate::protocol::errors::ProviderError;
use crate::protocol::json::{Str, Text};
use crate::protocol::pivot::{
    Origin, Part, Reasoning, Response, ResponseError, StopReason, ToolCall, Usage,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Chunk<'a> {
    #[serde(borrow, default)]
    pub candidates: Vec<Candidate<'a>>,
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(borrow)]
    pub response_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate<'a> {
    #[serde(borrow)]
    pub content: Option<CandidateContent<'a>>,
    #[serde(borrow)]
    pub finish_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(super) struct CandidateContent<'a> {
    #[serde(borrow, default)]
    pub parts: Vec<OutPart<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OutPart<'a> {
    #[serde(borrow)]
    pub text: Option<Text<'a>>,
    pub thought: Option<bool>,
    #[serde(borrow)]
    pub thought_signature: Option<Str<'a>>,
    #[serde(borrow)]
    pub function_call: Option<OutCall<'a>>,
}

#[derive(Deserialize)]
pub(super) struct OutCall<'a> {
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    #[serde(borrow)]
    pub args: Option<&'a RawValue>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
}

impl UsageMetadata {
    pub(super) fn to_pivot(self) -> Usage {
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        Usage {
            input: self.prompt_token_count,
            output: self.candidates_token_count + thoughts,
            cache_read: self.cached_content_token_count,
            cache_write: None,
            reasoning: self.thoughts_token_count,
        }
    }
}

pub(super) fn stop_reason(reason: &str, called: bool) -> StopReason {
    match reason {
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" => {
            StopReason::Refusal
        }
        _ if called => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    }
}

/// The provider's error object as a [`ProviderError`].
pub(super) fn provider_error(error: &RawValue) -> ProviderError {
    ProviderError::parse(format!("{{\"error\":{}}}", error.get()).as_bytes())
}

pub fn decode_response(body: &[u8]) -> Result<Response<'_>, ResponseError> {
    let chunk: Chunk<'_> = serde_json::from_slice(body)
        .map_err(|e| ResponseError::Malformed(format!("not a Gemini answer: {e}")))?;
    if let Some(error) = chunk.error {
        return Err(ResponseError::Provider(provider_error(error)));
    }
    let mut content: Vec<Part<'_>> = Vec::new();
    let mut thoughts = String::new();
    let mut signature: Option<String> = None;
    let mut finish = None;
    for (n, candidate) in chunk.candidates.into_iter().take(1).enumerate() {
        finish = candidate.finish_reason;
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            if let Some(s) = &part.thought_signature {
                signature.get_or_insert_with(|| s.to_string());
            }
            if part.thought == Some(true) {
                if let Some(t) = &part.text {
                    thoughts.push_str(t.escaped());
                }
            } else if let Some(call) = part.function_call {
                content.push(Part::ToolCall(ToolCall {
                    id: call.id.map_or_else(
                        || Cow::Owned(format!("call_{n}_{}", content.len())),
                        Str::into_cow,
                    ),
                    name: call.name.map(Str::into_cow).unwrap_or_default(),
                    arguments: call
                        .args
                        .map_or(Cow::Borrowed("{}"), |a| Cow::Borrowed(a.get())),
                }));
            } else if let Some(t) = part.text.filter(|t| !t.is_empty()) {
                content.push(Part::Text(t));
            }
        }
    }
    if !thoughts.is_empty() || signature.is_some() {
        content.insert(
            0,
            Part::Reasoning(Reasoning {
                text: Text::from_escaped(thoughts),
                signature: signature.map(|s| (Origin::Gemini, Cow::Owned(s))),
                redacted: None,
            }),
        );
    }
    let called = content.iter().any(|p| matches!(p, Part::ToolCall(_)));
    Ok(Response {
        id: chunk.response_id.map(Str::into_cow).unwrap_or_default(),
        content,
        stop: Some(stop_reason(finish.as_deref().unwrap_or("STOP"), called)),
        stop_sequence: None,
        usage: chunk.usage_metadata.map(UsageMetadata::to_pivot),
    })
}
