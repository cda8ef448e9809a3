//! The body fields routing needs that the pivot request does not carry: the Chat and Responses
//! `prompt_cache_key` (Codex's conversation id), the Chat `safety_identifier`, and Anthropic's
//! `output_config.effort` (a reasoning request even without `thinking`).
//!
//! Found by walking the top level of the body without parsing it — still ~15 µs for a 75 KB
//! request, so the walk happens on first use only, and most requests never need it (Claude
//! Code and Codex send their session in a header; reasoning is usually in the pivot).

use crate::protocol::anthropic::OutputConfig;
use crate::protocol::json::{Str, walk_top_level};
use std::cell::OnceCell;

/// A request body's hints, read lazily. Build with [`body_hints`] per request (not `Sync`).
pub struct BodyHints<'b> {
    body: &'b [u8],
    found: OnceCell<Found>,
}

/// Owned, so `BodyHints` stays covariant (the strings are short and rarely read).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Found {
    prompt_cache_key: Option<String>,
    safety_identifier: Option<String>,
    effort: Option<String>,
}

/// The hints of a JSON request body of any client protocol. A body that is not a JSON
/// object, or a field of the wrong type, gives no hint (never an error: the decoder has
/// already judged the body).
pub fn body_hints(body: &[u8]) -> BodyHints<'_> {
    BodyHints {
        body,
        found: OnceCell::new(),
    }
}

impl BodyHints<'_> {
    /// The body's `prompt_cache_key`, if a non-empty string.
    pub fn prompt_cache_key(&self) -> Option<&str> {
        self.found().prompt_cache_key.as_deref()
    }

    /// The body's `safety_identifier`, if a non-empty string.
    pub fn safety_identifier(&self) -> Option<&str> {
        self.found().safety_identifier.as_deref()
    }

    /// Anthropic `output_config.effort`, unless `none`.
    pub fn effort(&self) -> Option<&str> {
        self.found().effort.as_deref()
    }

    /// The client asked for reasoning through `output_config.effort` (above minimal).
    pub fn asks_for_reasoning(&self) -> bool {
        self.effort().is_some_and(|e| e != "minimal")
    }

    /// Whether the body has been walked (tests, benchmarks).
    pub fn walked(&self) -> bool {
        self.found.get().is_some()
    }

    fn found(&self) -> &Found {
        self.found.get_or_init(|| walk(self.body))
    }
}

impl std::fmt::Debug for BodyHints<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyHints")
            .field("len", &self.body.len())
            .field("found", &self.found.get())
            .finish()
    }
}

fn walk(body: &[u8]) -> Found {
    let mut found = Found::default();
    walk_top_level(body, |key, value| {
        let value = &body[value];
        match key {
            b"prompt_cache_key" => found.prompt_cache_key = string(value),
            b"safety_identifier" => found.safety_identifier = string(value),
            b"output_config" => {
                found.effort = serde_json::from_slice::<OutputConfig<'_>>(value)
                    .ok()
                    .and_then(|o| o.effort)
                    .map(|e| e.as_str().to_owned())
                    .filter(|e| e != "none");
            }
            _ => {}
        }
        true
    });
    found
}

/// A non-empty JSON string.
fn string(value: &[u8]) -> Option<String> {
    serde_json::from_slice::<Str<'_>>(value)
        .ok()
        .map(|s| s.as_str().to_owned())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_top_level_fields_only_and_only_when_asked() {
        let body =
            br#"{"model":"m","prompt_cache_key":"01a2-b3","metadata":{"prompt_cache_key":"inner"},
            "safety_identifier":"u\u0031","output_config":{"effort":"high"}}"#;
        let h = body_hints(body);
        assert!(!h.walked());
        assert_eq!(h.prompt_cache_key(), Some("01a2-b3"));
        assert!(h.walked());
        assert_eq!(h.safety_identifier(), Some("u1"));
        assert_eq!(h.effort(), Some("high"));
        assert!(h.asks_for_reasoning());
    }

    #[test]
    fn nothing_from_odd_bodies() {
        for body in [
            &b"not json"[..],
            b"[1,2]",
            b"{}",
            br#"{"prompt_cache_key": 5, "output_config": "high", "safety_identifier": ""}"#,
            br#"{"output_config": {"effort": "none"}}"#,
            br#"{"prompt_cache_key": "cut"#,
        ] {
            let h = body_hints(body);
            assert_eq!(
                h.found(),
                &Found::default(),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert!(!h.asks_for_reasoning());
        }
        let low = body_hints(br#"{"output_config": {"effort": "minimal"}}"#);
        assert!(!low.asks_for_reasoning());
    }
}
