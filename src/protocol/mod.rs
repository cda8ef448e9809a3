//! Wire formats and translation between them. Pure: no sockets, no files, no clock, no
//! Pingora — bytes or structs in, bytes or structs out — so every function here can be unit
//! tested, fuzzed and benchmarked on its own.
//!
//! - [`pivot`]: the one internal model of a conversation, a response and a stream that every
//!   protocol's codec maps to and from; [`pair`] drives a (client, source) pair through it.
//! - [`anthropic`], [`openai_chat`]: one folder per protocol — wire types and the codecs
//!   (request, response, stream, errors) of that protocol.
//! - [`openai`]: what OpenAI-compatible sources send back, read leniently.
//! - [`anthropic_openai`]: Anthropic clients on OpenAI-compatible sources — the first pair,
//!   a direct translator kept as the measured fast path until it moves onto the pivot.
//! - [`sse`]: the incremental Server-Sent Events decoder; [`json`]: fast JSON walks/writers.
//! - [`tokens`]: local token counting.

pub mod anthropic;
pub mod anthropic_openai;
pub mod json;
pub mod openai;
pub mod openai_chat;
pub mod pair;
pub mod pivot;
pub mod sse;
pub mod stream_check;
pub mod tokens;
