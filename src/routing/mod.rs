//! Routing: which source and which provider key serve a request (issue #25).
//!
//! Pure and socket-free, like `protocol/`: the proxy hands in the decoded pivot request, a few
//! headers and the clock, and gets back a route index and a key lease. Everything here is cheap
//! per request (well under a microsecond for 10 routes and 10 keys, token counting aside, which
//! runs only when a route asks for it), `Send + Sync`, and does no I/O.
//!
//! - [`when`]: route conditions from the adapter file (`model`, `images`, `min_input_tokens`,
//!   `thinking`), compiled once, matched in order — first match wins.
//! - [`features`]: what those conditions look at, read from the pivot request.
//! - [`hints`]: the few body fields the pivot drops but routing needs (`prompt_cache_key`,
//!   Anthropic `output_config.effort`), found without a full parse.
//! - [`conversation`]: a stable id for the conversation a request belongs to, so `sticky` pools
//!   keep it on one key (and the provider's prompt cache warm).
//! - [`pool`]: a pool of provider keys with a balance strategy; [`health`]: each key's state
//!   (disabled after 401/403, cooling after 429, a circuit breaker for connect errors, timeouts
//!   and 5xx before any byte).

pub mod conversation;
pub mod features;
mod hash;
pub mod health;
pub mod hints;
pub mod pool;
pub mod when;

pub use conversation::{ConversationHints, ConversationId, IdSource, conversation_id};
pub use features::RequestFeatures;
pub use health::{
    Change, Health, HealthConfig, Outcome, SharedState, parse_retry_after, retry_after,
};
pub use hints::{BodyHints, body_hints};
pub use pool::{Balance, KeyLease, KeyPool, KeyState, Pick, PoolKey};
pub use when::{CompiledWhen, RouteWhen, first_match};
