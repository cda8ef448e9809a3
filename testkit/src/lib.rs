//! Test and benchmark support for FlexiProxy: a fake OpenAI- and Anthropic-compatible LLM
//! provider served over real HTTP on 127.0.0.1, which records what it received and can
//! misbehave the way real providers do (slow first byte, odd read boundaries, resets,
//! stalls, garbage).
//!
//! ```no_run
//! # async fn demo() {
//! use flexiproxy_testkit::{FakeProvider, Reply, openai};
//! let provider = FakeProvider::start(|_req| Reply::json(200, openai::chat_completion("hi"))).await;
//! // ... point the proxy at provider.base_url(), send a request through it ...
//! let seen = provider.wait_for_requests(1, std::time::Duration::from_secs(5)).await;
//! assert_eq!(seen[0].path, "/v1/chat/completions");
//! # }
//! ```
//!
//! The same server is available as the `fake-provider` binary for benchmarks and demos.
//! [`services`] starts real, throwaway Redis and PostgreSQL servers for integration tests.

pub mod anthropic;
pub mod gemini;
pub mod openai;
pub mod quirks;
pub mod replay;
mod reply;
mod request;
pub mod responses;
pub mod scenario;
mod server;
pub mod services;
pub mod tls;

pub use reply::{Framing, Reply};
pub use request::RecordedRequest;
pub use server::{FakeProvider, FakeProviderBuilder};

/// Split `text` into `parts` pieces of roughly equal length on character boundaries (never
/// inside a UTF-8 character); fewer pieces if the text is shorter, none if it is empty.
pub fn split_text(text: &str, parts: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let parts = parts.clamp(1, chars.len());
    (0..parts)
        .map(|i| {
            let start = i * chars.len() / parts;
            let end = (i + 1) * chars.len() / parts;
            chars[start..end].iter().collect()
        })
        .collect()
}

/// A rough token count (about four characters per token, at least one), so usage numbers
/// in fake responses grow with the text like real ones do.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_text_respects_char_boundaries() {
        assert_eq!(split_text("héllo wörld", 3).concat(), "héllo wörld");
        assert_eq!(split_text("héllo wörld", 3).len(), 3);
        assert_eq!(split_text("ab", 5), vec!["a", "b"]);
        assert!(split_text("", 3).is_empty());
    }
}
