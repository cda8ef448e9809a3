//! Anthropic `POST /v1/messages` body → OpenAI `POST /chat/completions` body, through the
//! pivot: [`crate::protocol::anthropic::decode_request`] reads the client's request,
//! [`crate::protocol::openai_chat::encode_request`] writes the provider's.
//!
//! Built from an allow-list: only fields with a known meaning reach the provider
//! (`context_management`, `container`, `mcp_servers`, `cache_control`, betas… are dropped).

use super::{Dialect, ToolNames};
use crate::protocol::anthropic::decode_request::decode_request;
use crate::protocol::openai_chat::encode_request::encode_request;
use std::fmt;

// The tests build dialects field by field.
#[cfg(test)]
use super::{MaxTokensField, ReasoningStyle};

/// The translated request plus what the response translation needs to know about it.
#[derive(Debug)]
pub struct TranslatedRequest {
    pub body: Vec<u8>,
    pub stream: bool,
    /// The model the client asked for; responses report it back.
    pub client_model: String,
    pub tool_names: ToolNames,
    /// A cheap estimate of input tokens for `message_start` (the provider's count comes later).
    pub input_tokens_estimate: u64,
}

/// The client's request cannot be translated; becomes a 400 `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError(pub String);

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RequestError {}

/// About four bytes of JSON per token for English text and code.
pub fn estimate_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

/// Parses and translates a request body. `map_model` turns the client's model name into the
/// provider's.
pub fn translate_request(
    body: &[u8],
    map_model: impl FnOnce(&str) -> String,
    dialect: &Dialect,
) -> Result<TranslatedRequest, RequestError> {
    // One UTF-8 check for the whole body; parsing from a `str` then skips it per value.
    let text = std::str::from_utf8(body)
        .map_err(|e| RequestError(format!("invalid request body: not UTF-8: {e}")))?;
    let conversation = decode_request(text).map_err(|e| RequestError(e.0))?;
    let source_model = map_model(&conversation.model);
    let (out, tool_names) = encode_request(&conversation, &source_model, dialect, body.len());
    Ok(TranslatedRequest {
        body: out,
        stream: conversation.stream,
        client_model: conversation.model.into_owned(),
        tool_names,
        input_tokens_estimate: estimate_tokens(body.len()),
    })
}

#[cfg(test)]
mod tests;
