//! A pivot [`Response`] → an Anthropic `message` for an Anthropic client.
//!
//! Tool-use ids are made valid for Anthropic clients (`^[A-Za-z0-9_-]+$`, generated when
//! missing); tool inputs become JSON objects (truncated arguments repaired, anything else
//! `{}`). Thinking carries its signature when an Anthropic source made it, otherwise a
//! stable placeholder ([`THINKING_SIGNATURE`]): clients such as Claude Code only send back
//! thinking that is signed.

use crate::protocol::anthropic::{
    MessageResponse, OutBlock, StopReason, THINKING_SIGNATURE, Usage,
};
use crate::protocol::json::tool_input;
use crate::protocol::names::sanitize_tool_id;
use crate::protocol::pivot::{self, ExchangeContext, Origin, Part, Response, ResponseError};

/// The encoded message and what telemetry wants from it.
#[derive(Debug)]
pub struct EncodedResponse {
    pub body: Vec<u8>,
    pub usage: Usage,
    /// False when the source sent no usage and `usage` is our estimate.
    pub usage_reported: bool,
    /// Tool arguments that were not valid JSON and had to be repaired or replaced.
    pub repaired_arguments: u32,
}

/// A pivot stop reason in Anthropic's words; an answer with tool calls stops for `tool_use`.
pub fn stop_reason(stop: Option<pivot::StopReason>, has_tool_use: bool) -> StopReason {
    if has_tool_use {
        return StopReason::ToolUse;
    }
    match stop {
        Some(pivot::StopReason::MaxTokens) => StopReason::MaxTokens,
        Some(pivot::StopReason::ToolUse) => StopReason::ToolUse,
        Some(pivot::StopReason::Refusal) => StopReason::Refusal,
        Some(pivot::StopReason::StopSequence) => StopReason::StopSequence,
        _ => StopReason::EndTurn,
    }
}

pub fn encode_response(
    response: &Response<'_>,
    ctx: &ExchangeContext,
) -> Result<EncodedResponse, ResponseError> {
    let decoded: Vec<_> = response
        .content
        .iter()
        .map(|p| match p {
            Part::Text(t) => Some(t.decoded()),
            Part::Reasoning(r) => Some(r.text.decoded()),
            _ => None,
        })
        .collect();
    let mut content = Vec::with_capacity(response.content.len());
    let mut output_bytes = 0;
    let mut repaired_arguments = 0;
    let mut position = 0;
    for (part, text) in response.content.iter().zip(&decoded) {
        match (part, text) {
            (Part::Reasoning(r), Some(text)) => {
                output_bytes += text.len();
                let signature = match &r.signature {
                    Some((Origin::Anthropic, s)) => s.as_ref(),
                    _ => THINKING_SIGNATURE,
                };
                content.push(OutBlock::Thinking {
                    thinking: text,
                    signature,
                });
            }
            (Part::Text(_), Some(text)) => {
                output_bytes += text.len();
                content.push(OutBlock::Text { text });
            }
            (Part::ToolCall(call), _) => {
                output_bytes += call.arguments.len();
                let (input, repaired) = tool_input(&call.arguments);
                repaired_arguments += u32::from(repaired);
                content.push(OutBlock::ToolUse {
                    id: sanitize_tool_id(Some(&call.id), &ctx.message_id, position),
                    name: &call.name,
                    input,
                });
                position += 1;
            }
            _ => {}
        }
    }
    let has_tool_use = position > 0;
    let (usage, usage_reported) = match response.usage {
        Some(u) => (u.to_anthropic(), true),
        None => (
            Usage {
                output_tokens: crate::protocol::tokens::estimate_tokens(output_bytes),
                ..Usage::default()
            },
            false,
        ),
    };
    let message = MessageResponse {
        id: &ctx.message_id,
        kind: "message",
        role: "assistant",
        model: &ctx.client_model,
        content,
        stop_reason: stop_reason(response.stop, has_tool_use),
        stop_sequence: response.stop_sequence.as_deref(),
        usage,
    };
    let body = serde_json::to_vec(&message)
        .map_err(|e| ResponseError::Malformed(format!("cannot encode the response: {e}")))?;
    Ok(EncodedResponse {
        body,
        usage,
        usage_reported,
        repaired_arguments,
    })
}
