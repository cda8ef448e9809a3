//! FlexiProxy: an LLM-API translation proxy on Pingora.
//!
//! - [`protocol`]: wire types and translation, sans-IO.
//! - [`config`]: file formats, validation, the live snapshot and hot reload.
//! - [`proxy`]: the Pingora `ProxyHttp` implementation.
//! - [`server`]: assembling and running the Pingora server.
pub mod config;
pub mod protocol;
pub mod proxy;
pub mod server;
