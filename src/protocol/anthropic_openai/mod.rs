//! Anthropic Messages ⇄ OpenAI Chat Completions: an Anthropic client in front of an
//! OpenAI-compatible provider. `request` turns the client's request into the provider's,
//! `response` and `stream` turn the provider's answer back, `error` maps provider errors.
//!
//! Provider quirks are data, not code paths: a [`Dialect`] (built per adapter from its config)
//! says which fields this provider accepts and where reasoning goes.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;

use sha2::{Digest, Sha256};

/// How one OpenAI-compatible provider bends the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialect {
    /// Send `stream_options: {"include_usage": true}` (some providers reject it).
    pub stream_usage: bool,
    /// Which field carries the output limit.
    pub max_tokens_field: MaxTokensField,
    /// Clamp the client's `max_tokens` to this (providers reject values above their maximum).
    pub max_tokens_limit: Option<u64>,
    /// Forward `top_k` (most OpenAI-compatible APIs reject or ignore it).
    pub top_k: bool,
    /// Where the client's thinking settings go.
    pub reasoning: ReasoningStyle,
    /// Send mid-conversation `system` messages as such; when false they become user text.
    pub system_mid_conversation: bool,
    /// Send earlier thinking back as `reasoning_content` on assistant turns.
    pub echo_reasoning: bool,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect {
            stream_usage: true,
            max_tokens_field: MaxTokensField::MaxTokens,
            max_tokens_limit: None,
            top_k: false,
            reasoning: ReasoningStyle::Effort,
            system_mid_conversation: true,
            echo_reasoning: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    MaxTokens,
    MaxCompletionTokens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningStyle {
    /// `reasoning_effort: low|medium|high` (OpenAI, xAI, OpenRouter, vLLM); nothing when off.
    Effort,
    /// DeepSeek: `thinking: {"type": "enabled"|"disabled"}` plus `reasoning_effort: low|high|max`.
    DeepSeek,
    /// Qwen/DashScope: `enable_thinking` and `thinking_budget`.
    Qwen,
    /// Send nothing about reasoning.
    None,
}

/// Tool names as the provider sees them. OpenAI-style APIs accept `^[A-Za-z0-9_-]{1,64}$`;
/// longer or odd names are shortened deterministically and restored in responses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ToolNames {
    /// (provider name, client name) for every name that had to change.
    renamed: Vec<(String, String)>,
}

const MAX_TOOL_NAME: usize = 64;

fn is_valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOOL_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl ToolNames {
    /// The provider-side name for a client tool name, remembering any change.
    pub fn to_provider(&mut self, name: &str) -> String {
        if is_valid_tool_name(name) {
            return name.to_owned();
        }
        if let Some((short, _)) = self.renamed.iter().find(|(_, full)| full == name) {
            return short.clone();
        }
        let short = shorten_tool_name(name);
        self.renamed.push((short.clone(), name.to_owned()));
        short
    }

    /// The client's name for a name the provider used.
    pub fn to_client<'n>(&'n self, name: &'n str) -> &'n str {
        self.renamed
            .iter()
            .find(|(short, _)| short == name)
            .map_or(name, |(_, full)| full.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.renamed.is_empty()
    }
}

/// `prefix_` + 8 hex digits of the SHA-256 of the full name: stable across requests, so a
/// conversation's history keeps matching its tools.
pub fn shorten_tool_name(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let hash = hex::encode(&digest[..4]);
    let prefix: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TOOL_NAME - 9)
        .collect();
    format!("{prefix}_{hash}")
}

/// Anthropic tool-use ids must match `^[A-Za-z0-9_-]+$`; providers send ids like
/// `functions.Bash:0` or none at all.
pub fn sanitize_tool_id(id: Option<&str>, message_id: &str, position: usize) -> String {
    match id {
        Some(id) if !id.is_empty() => {
            if id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                id.to_owned()
            } else {
                id.chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect()
            }
        }
        _ => {
            let base = message_id.strip_prefix("msg_").unwrap_or(message_id);
            format!("toolu_{base}_{position}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tool_names_round_trip() {
        let long = format!("mcp__server__{}", "x".repeat(80));
        let mut names = ToolNames::default();
        let short = names.to_provider(&long);
        assert!(short.len() <= 64, "{short}");
        assert!(is_valid_tool_name(&short));
        assert_eq!(names.to_provider(&long), short, "stable");
        assert_eq!(names.to_client(&short), long);
        assert_eq!(names.to_provider("Bash"), "Bash");
        assert_eq!(names.to_client("Bash"), "Bash");
    }

    #[test]
    fn odd_characters_are_renamed_and_restored() {
        let mut names = ToolNames::default();
        let short = names.to_provider("mcp.server/tool");
        assert!(is_valid_tool_name(&short));
        assert_eq!(names.to_client(&short), "mcp.server/tool");
    }

    #[test]
    fn tool_ids_are_sanitized() {
        assert_eq!(
            sanitize_tool_id(Some("functions.Bash:0"), "msg_x", 0),
            "functions_Bash_0"
        );
        assert_eq!(sanitize_tool_id(Some("call_abc"), "msg_x", 0), "call_abc");
        assert_eq!(sanitize_tool_id(None, "msg_x", 2), "toolu_x_2");
        assert_eq!(sanitize_tool_id(Some(""), "msg_x", 1), "toolu_x_1");
    }
}
