//! Wire formats and translation between them. Pure: no sockets, no files, no clock, no
//! Pingora — bytes or structs in, bytes or structs out — so every function here can be unit
//! tested, fuzzed and benchmarked on its own.
//!
//! - [`pivot`]: the one internal model of a conversation, a response and a stream that every
//!   protocol's codec maps to and from; [`pair`] drives a (client, source) pair through it
//!   (and names the first pair's entry points: Anthropic clients on OpenAI-compatible sources).
//! - [`anthropic`], [`openai_chat`], [`responses`], [`gemini`]: one folder per protocol — wire
//!   types, the codecs (request, response, stream) and the error body and model list of that
//!   protocol. `docs/pivot.md` has the map.
//! - [`errors`]: what providers say went wrong, read leniently, and its mapping for clients.
//! - [`names`]: tool names and ids that must change between protocols.
//! - [`notes`]: what a translation changed (dropped, clamped, replaced), made by the codecs.
//! - [`passthrough`]: same-protocol pairs (only the model changes); [`usage`]: token usage
//!   read out of passthrough answers.
//! - [`sse`]: the incremental Server-Sent Events decoder and the one driver of every stream
//!   decoder; [`json`]: fast JSON walks/writers.
//! - [`tokens`]: local token counting.
//! - [`secrets`]: provider keys masked out of relayed error bodies.
//! - [`stream_check`]: the invariants every translated stream keeps (tests and fuzzers).
//! - [`text_only`]: images and documents replaced by notes for text-only source models.
//! - [`web_search`]: hosted search tools and the native answers of a search the gateway ran.

pub mod anthropic;
pub mod errors;
pub mod gemini;
pub mod json;
pub mod names;
pub mod notes;
pub mod openai_chat;
pub mod pair;
pub mod passthrough;
pub mod pivot;
pub mod responses;
pub mod secrets;
pub mod sse;
pub mod stream_check;
pub mod text_only;
pub mod tokens;
pub mod usage;
pub mod web_search;
