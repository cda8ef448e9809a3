//! FlexiProxy: an LLM-API translation proxy on Pingora.
//!
//! - [`protocol`]: wire types and translation, sans-IO.
pub mod protocol;
