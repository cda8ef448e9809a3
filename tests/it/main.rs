//! Integration tests: a real Pingora listener, a fake provider over real HTTP, and real
//! clients. One test binary (Pingora links slowly), one module per area.

mod core;
mod harness;
