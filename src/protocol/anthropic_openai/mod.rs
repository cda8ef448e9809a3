//! Anthropic Messages ⇄ OpenAI Chat Completions: an Anthropic client in front of an
//! OpenAI-compatible provider. The entry points of this first pair — `request`, `response`,
//! `stream` — are compositions of the two protocols' codecs through the pivot (see
//! `docs/pivot.md`).
//!
//! Provider quirks are data, not code paths: a [`Dialect`] (built per adapter from its config)
//! says which fields this provider accepts and where reasoning goes.

pub mod request;
pub mod response;
pub mod stream;

pub use crate::protocol::names::{ToolNames, sanitize_tool_id, shorten_tool_name};
pub use crate::protocol::openai_chat::dialect::{Dialect, MaxTokensField, ReasoningStyle};
