//! FlexiProxy: an LLM-API translation proxy on Pingora.
//!
//! - [`protocol`]: wire types and translation, sans-IO.
//! - [`admin`]: the admin listener (metrics, health, admin endpoints).
//! - [`config`]: file formats, validation, the live snapshot and hot reload.
//! - [`memory`]: memory freed after a burst goes back to the OS.
//! - [`proxy`]: the Pingora `ProxyHttp` implementation.
//! - [`server`]: assembling and running the Pingora server.
//! - [`telemetry`]: metrics, access log, usage statistics.
//! - [`tls`]: client-facing TLS with certificate reload.
//! - [`websearch`]: web search the gateway runs for clients whose source cannot search.
pub mod admin;
pub mod config;
pub mod memory;
pub mod protocol;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod websearch;

/// Locks `m`, carrying on after a panic elsewhere poisoned it: everything the proxy keeps
/// behind a mutex (buffers, lists, caches) stays usable whatever was interrupted.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
