//! Wire formats and translation between them. Pure: no sockets, no files, no clock, no
//! Pingora — bytes or structs in, bytes or structs out — so every function here can be unit
//! tested, fuzzed and benchmarked on its own.
//!
//! - [`anthropic`], [`openai`]: the wire types of each API.
//! - [`sse`]: the incremental Server-Sent Events decoder.
//! - [`anthropic_openai`]: Anthropic clients on OpenAI-compatible providers.
//! - [`tokens`]: local token counting.

pub mod anthropic;
pub mod anthropic_openai;
pub mod json;
pub mod openai;
pub mod sse;
pub mod stream_check;
pub mod tokens;
