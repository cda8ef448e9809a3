//! FlexiProxy: an LLM-API translation proxy on Pingora.
//!
//! - [`protocol`]: wire types and translation, sans-IO.
//! - [`config`]: file formats, validation, the live snapshot and hot reload.
pub mod config;
pub mod protocol;
