//! How one OpenAI-compatible provider bends the Chat Completions format: a [`Dialect`], built
//! per adapter from its config and presets, is data the Chat encoder reads — provider quirks
//! are never code paths.

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
    /// Structured output as `response_format: json_schema`; when false, `json_object` (DeepSeek
    /// takes only that).
    pub json_schema: bool,
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
            json_schema: true,
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
