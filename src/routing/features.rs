//! What route conditions look at, read once per request from the pivot conversation, so every
//! client protocol is routed the same way.
//!
//! The token estimate is the one `count_tokens` uses (a real BPE over everything that costs
//! input); it costs up to milliseconds on a long conversation, so it runs lazily, at most once,
//! and only when a `min_input_tokens` condition is reached — and not even then when a cheap
//! upper bound (a token is at least one byte) already settles the comparison.

use super::BodyHints;
use crate::protocol::pivot::{Conversation, Effort, Part, ReasoningRequest, Role};
use crate::protocol::tokens::count_conversation;
use std::cell::OnceCell;

/// The facts of one request. Not `Sync` (the token estimate fills in lazily); build it where
/// the route is chosen.
pub struct RequestFeatures<'c> {
    /// The model the client asked for.
    pub model: &'c str,
    /// Images or documents anywhere in the messages, tool results included.
    pub has_images: bool,
    /// What the pivot says about reasoning; [`RequestFeatures::thinking`] adds the body hint.
    reasoning: bool,
    hints: Option<&'c BodyHints<'c>>,
    tokens: Tokens<'c>,
}

enum Tokens<'c> {
    Known(u64),
    Lazy {
        conversation: &'c Conversation<'c>,
        exact: OnceCell<u64>,
    },
}

impl<'c> RequestFeatures<'c> {
    /// The features of a decoded request. Anthropic's `output_config.effort` without
    /// `thinking` is not in the pivot: add it with [`RequestFeatures::with_hints`].
    pub fn of(conversation: &'c Conversation<'c>) -> Self {
        RequestFeatures {
            model: &conversation.model,
            has_images: has_images(&conversation.turns),
            reasoning: asks_for_reasoning(conversation.reasoning.as_ref()),
            hints: None,
            tokens: Tokens::Lazy {
                conversation,
                exact: OnceCell::new(),
            },
        }
    }

    /// Features given outright (tests, benchmarks, callers that counted already).
    pub fn new(model: &'c str, has_images: bool, thinking: bool, input_tokens: u64) -> Self {
        RequestFeatures {
            model,
            has_images,
            reasoning: thinking,
            hints: None,
            tokens: Tokens::Known(input_tokens),
        }
    }

    /// Adds what only the raw body says (Anthropic `output_config.effort`), read only if a
    /// `thinking` condition is reached and the pivot did not settle it.
    pub fn with_hints(mut self, hints: &'c BodyHints<'c>) -> Self {
        self.hints = Some(hints);
        self
    }

    /// The client asked for reasoning (see [`asks_for_reasoning`]), or for an effort in the
    /// body hints.
    pub fn thinking(&self) -> bool {
        self.reasoning || self.hints.is_some_and(BodyHints::asks_for_reasoning)
    }

    /// The estimated input tokens (counted on first use).
    pub fn input_tokens(&self) -> u64 {
        match &self.tokens {
            Tokens::Known(n) => *n,
            Tokens::Lazy {
                conversation,
                exact,
            } => *exact.get_or_init(|| count_conversation(conversation)),
        }
    }

    /// `input_tokens() >= min`, without counting when the upper bound is below `min`.
    pub fn input_tokens_at_least(&self, min: u64) -> bool {
        match &self.tokens {
            Tokens::Lazy {
                conversation,
                exact,
            } if exact.get().is_none() && token_upper_bound(conversation) < min => false,
            _ => self.input_tokens() >= min,
        }
    }

    /// Whether the token estimate has been computed (tests, access log).
    pub fn tokens_counted(&self) -> bool {
        match &self.tokens {
            Tokens::Known(_) => true,
            Tokens::Lazy { exact, .. } => exact.get().is_some(),
        }
    }
}

/// Reasoning requested at an effort above minimal. Decoders already turn Anthropic
/// `thinking: {type: disabled}`, Chat `reasoning_effort: none|minimal`, Responses
/// `reasoning.effort: none` and Gemini `thinkingBudget: 0` into `enabled: false`; "minimal"
/// (Responses, Gemini `thinkingLevel`) is treated the same so every protocol agrees.
pub fn asks_for_reasoning(r: Option<&ReasoningRequest>) -> bool {
    r.is_some_and(|r| r.enabled && r.effort != Some(Effort::Minimal))
}

fn has_images(turns: &[crate::protocol::pivot::Turn<'_>]) -> bool {
    fn any(parts: &[Part<'_>]) -> bool {
        parts.iter().any(|p| match p {
            Part::Image(_) | Part::Document { .. } => true,
            Part::ToolResult { content, .. } => any(content),
            _ => false,
        })
    }
    // Only user turns carry input media (tool results are user turns in the pivot).
    turns
        .iter()
        .filter(|t| t.role != Role::Assistant)
        .any(|t| any(&t.parts))
}

/// An upper bound of `count_conversation`: the same sum with every text counted at its
/// escaped byte length (a BPE token is at least one byte, and unescaping only shortens).
/// Mirrors `protocol::tokens` constants; a unit test keeps it an upper bound.
fn token_upper_bound(c: &Conversation<'_>) -> u64 {
    const PER_MESSAGE: u64 = 4;
    const PER_IMAGE: u64 = 1_300;
    const PER_DOCUMENT: u64 = 3_000;
    fn part(p: &Part<'_>) -> u64 {
        match p {
            Part::Text(t) => t.len() as u64,
            Part::Image(_) => PER_IMAGE,
            Part::Document { .. } => PER_DOCUMENT,
            Part::ToolCall(call) => (call.name.len() + call.arguments.len()) as u64,
            Part::ToolResult { content, .. } => content.iter().map(part).sum::<u64>() + 2,
            Part::Reasoning(r) => r.text.len() as u64,
        }
    }
    let system: u64 = c.system.iter().map(|t| t.len() as u64 + PER_MESSAGE).sum();
    let turns: u64 = c
        .turns
        .iter()
        .map(|t| PER_MESSAGE + t.parts.iter().map(part).sum::<u64>())
        .sum();
    let tools: u64 = c
        .tools
        .iter()
        .map(|t| {
            PER_MESSAGE
                + t.name.len() as u64
                + t.description.as_ref().map_or(0, |d| d.len() as u64)
                + t.parameters.as_ref().map_or(0, |p| p.get().len() as u64)
        })
        .sum();
    system + turns + tools
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{anthropic, gemini, openai_chat, responses};

    fn anthropic_features(body: &str, check: impl FnOnce(&RequestFeatures<'_>)) {
        let c = anthropic::decode_request::decode_request(body).unwrap();
        check(&RequestFeatures::of(&c));
    }

    #[test]
    fn anthropic_images_documents_and_thinking() {
        anthropic_features(
            r#"{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
            |f| {
                assert_eq!(f.model, "claude-haiku-4-5");
                assert!(!f.has_images && !f.thinking());
            },
        );
        // An image inside a tool result (Claude Code reading a PNG file).
        anthropic_features(
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[
                {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]}]}"#,
            |f| assert!(f.has_images),
        );
        anthropic_features(
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[
                {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"}}]}]}"#,
            |f| assert!(f.has_images),
        );
        // A text document is text.
        anthropic_features(
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[
                {"type":"document","source":{"type":"text","media_type":"text/plain","data":"words"}}]}]}"#,
            |f| assert!(!f.has_images),
        );
        for (thinking, expected) in [
            (
                r#""thinking":{"type":"enabled","budget_tokens":2048}"#,
                true,
            ),
            (r#""thinking":{"type":"adaptive"}"#, true),
            (
                r#""thinking":{"type":"adaptive"},"output_config":{"effort":"low"}"#,
                true,
            ),
            (r#""thinking":{"type":"disabled"}"#, false),
        ] {
            let body = format!(
                r#"{{"model":"m","max_tokens":5,{thinking},"messages":[{{"role":"user","content":"x"}}]}}"#
            );
            anthropic_features(&body, |f| assert_eq!(f.thinking(), expected, "{thinking}"));
        }
    }

    #[test]
    fn anthropic_effort_without_thinking_comes_from_the_body() {
        let body = r#"{"model":"m","max_tokens":5,"output_config":{"effort":"high"},"messages":[{"role":"user","content":"x"}]}"#;
        let c = anthropic::decode_request::decode_request(body).unwrap();
        assert!(!RequestFeatures::of(&c).thinking());
        let hints = super::super::body_hints(body.as_bytes());
        let f = RequestFeatures::of(&c).with_hints(&hints);
        assert!(!hints.walked());
        assert!(f.thinking() && hints.walked());
        // Reasoning in the pivot settles it without walking the body.
        let body = r#"{"model":"m","max_tokens":5,"thinking":{"type":"adaptive"},"messages":[{"role":"user","content":"x"}]}"#;
        let c = anthropic::decode_request::decode_request(body).unwrap();
        let hints = super::super::body_hints(body.as_bytes());
        assert!(RequestFeatures::of(&c).with_hints(&hints).thinking());
        assert!(!hints.walked());
    }

    #[test]
    fn chat_images_in_tool_messages_and_reasoning_effort() {
        let image = br#"{"model":"gpt-x","messages":[{"role":"user","content":"hi"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]}]}"#;
        let c = openai_chat::decode_request::decode_request(image).unwrap();
        let f = RequestFeatures::of(&c);
        assert!(f.has_images && !f.thinking());
        for (effort, expected) in [
            ("high", true),
            ("low", true),
            ("minimal", false),
            ("none", false),
        ] {
            let body = format!(
                r#"{{"model":"m","reasoning_effort":"{effort}","messages":[{{"role":"user","content":"x"}}]}}"#
            );
            let c = openai_chat::decode_request::decode_request(body.as_bytes()).unwrap();
            assert_eq!(RequestFeatures::of(&c).thinking(), expected, "{effort}");
        }
    }

    #[test]
    fn responses_images_and_reasoning() {
        let body = r#"{"model":"gpt-5","reasoning":{"effort":"medium"},"input":[{"type":"message","role":"user","content":[
            {"type":"input_text","text":"what is this"},{"type":"input_image","image_url":"https://x/y.png"}]}]}"#;
        let c = responses::decode_request::decode_request(body, None).unwrap();
        let f = RequestFeatures::of(&c);
        assert!(f.has_images && f.thinking());
        for (reasoning, expected) in [
            (r#""reasoning":{"effort":"none"}"#, false),
            (r#""reasoning":{"effort":"minimal"}"#, false),
            (r#""reasoning":{"summary":"auto"}"#, false),
            (r#""reasoning":{"effort":"xhigh"}"#, true),
        ] {
            let body = format!(r#"{{"model":"m",{reasoning},"input":"hi"}}"#);
            let c = responses::decode_request::decode_request(&body, None).unwrap();
            let f = RequestFeatures::of(&c);
            assert_eq!(f.thinking(), expected, "{reasoning}");
            assert!(!f.has_images);
        }
    }

    #[test]
    fn gemini_inline_data_and_thinking_config() {
        let body = r#"{"contents":[{"role":"user","parts":[{"text":"see"},{"inlineData":{"mimeType":"image/jpeg","data":"AAAA"}}]}]}"#;
        let c = gemini::decode_request::decode_request(body, "models/gemini-3-pro", false, None)
            .unwrap();
        let f = RequestFeatures::of(&c);
        assert_eq!(f.model, "gemini-3-pro");
        assert!(f.has_images && !f.thinking());
        for (config, expected) in [
            (r#"{"thinkingBudget":0}"#, false),
            (r#"{"thinkingBudget":-1}"#, true),
            (r#"{"thinkingBudget":4096}"#, true),
            (r#"{"thinkingLevel":"HIGH"}"#, true),
            (r#"{"thinkingLevel":"minimal"}"#, false),
            (r#"{"includeThoughts":true}"#, false),
        ] {
            let body = format!(
                r#"{{"contents":[{{"role":"user","parts":[{{"text":"x"}}]}}],"generationConfig":{{"thinkingConfig":{config}}}}}"#
            );
            let c = gemini::decode_request::decode_request(&body, "g", false, None).unwrap();
            assert_eq!(RequestFeatures::of(&c).thinking(), expected, "{config}");
        }
    }

    #[test]
    fn tokens_are_counted_lazily_and_bounded_first() {
        let body = r#"{"model":"m","max_tokens":5,"system":"You are terse.","messages":[
            {"role":"user","content":"hello there \u00e9 \"quoted\""},
            {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"Read","input":{"path":"/a/b"}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"file text"},
                {"type":"image","source":{"type":"url","url":"https://x/y.png"}}]}],
            "tools":[{"name":"Read","description":"Reads","input_schema":{"type":"object"}}]}"#;
        let c = anthropic::decode_request::decode_request(body).unwrap();
        let f = RequestFeatures::of(&c);
        assert!(!f.input_tokens_at_least(100_000));
        assert!(!f.tokens_counted(), "the bound settles it");
        let exact = count_conversation(&c);
        assert!(token_upper_bound(&c) >= exact);
        assert!(f.input_tokens_at_least(exact));
        assert!(f.tokens_counted());
        assert!(!f.input_tokens_at_least(exact + 1));
        assert_eq!(f.input_tokens(), exact);
        let known = RequestFeatures::new("m", false, false, 7);
        assert!(known.input_tokens_at_least(7) && !known.input_tokens_at_least(8));
    }
}
