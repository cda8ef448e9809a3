//! A stable id for the conversation a request belongs to. Providers cache prompt prefixes per
//! account, so a `sticky` pool keeps one conversation on one key; the id is what it hashes.
//!
//! Taken from what the client sends for it, most specific first:
//! 1. Claude Code's `x-claude-code-session-id` header,
//! 2. the session in Claude Code's `metadata.user_id` (`user_<hash>_account_<uuid>_session_<uuid>`,
//!    or since v2.1.78 a JSON string `{"device_id":…,"account_uuid":…,"session_id":…}`),
//! 3. Codex's `session_id` / `session-id` header, then its body `prompt_cache_key`,
//! 4. the end-user id: OpenAI `user` / `safety_identifier`, or any other `metadata.user_id`,
//! 5. else a hash of the system prompt and the first user turn, which stay the same for every
//!    request of a conversation. Claude Code's per-request billing line never enters it.
//!
//! Only the id's text is hashed, not where it came from: Claude Code sends the same session in
//! its header and in `metadata.user_id` (older versions only the latter), Codex the same id in
//! its header and `prompt_cache_key`, and each must land on the same key.

use super::BodyHints;
use super::hash::{Hasher, str_hash};
use crate::protocol::json::{Str, Text};
use crate::protocol::pivot::{Conversation, Media, Part, Role};

/// Claude Code's first system block, different on every request (the Anthropic decoder already
/// cuts it; other decoders may not).
const BILLING_HEADER_PREFIX: &str = "x-anthropic-billing-header:";

/// Where a conversation id came from (for the access log and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    ClaudeCodeSession,
    SessionHeader,
    PromptCacheKey,
    User,
    Prompt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationId {
    pub hash: u64,
    pub source: IdSource,
}

/// What the request carries outside the pivot. All borrowed: build it per request.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConversationHints<'a> {
    /// The `x-claude-code-session-id` header.
    pub claude_code_session: Option<&'a str>,
    /// Codex's `session_id` (or `session-id`) header.
    pub session_header: Option<&'a str>,
    /// The body's `prompt_cache_key` (Chat, Responses).
    pub prompt_cache_key: Option<&'a str>,
    /// The body's `safety_identifier` (Chat; the Responses decoder puts it in `user`).
    pub safety_identifier: Option<&'a str>,
    /// Where the two above come from when not given (walked only if reached).
    pub body: Option<&'a BodyHints<'a>>,
}

impl<'a> ConversationHints<'a> {
    /// The headers' part (names are case-insensitive in `HeaderMap`).
    pub fn from_headers(headers: &'a http::HeaderMap) -> Self {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        ConversationHints {
            claude_code_session: get("x-claude-code-session-id"),
            session_header: get("session_id").or_else(|| get("session-id")),
            ..ConversationHints::default()
        }
    }

    /// Adds the body's part (read only if no header or `metadata.user_id` session decides).
    pub fn with_body(mut self, body: &'a BodyHints<'a>) -> Self {
        self.body = Some(body);
        self
    }
}

/// The conversation id of a decoded request.
pub fn conversation_id(c: &Conversation<'_>, hints: &ConversationHints<'_>) -> ConversationId {
    let id = |s: &str, source| ConversationId {
        hash: str_hash(s),
        source,
    };
    let user = present(c.user.as_deref());
    if let Some(s) = present(hints.claude_code_session) {
        return id(s, IdSource::ClaudeCodeSession);
    }
    if let Some(s) = user.and_then(claude_code_session) {
        return id(&s, IdSource::ClaudeCodeSession);
    }
    if let Some(s) = present(hints.session_header) {
        return id(s, IdSource::SessionHeader);
    }
    let body = hints.body;
    let prompt_cache_key = hints
        .prompt_cache_key
        .or_else(|| body.and_then(BodyHints::prompt_cache_key));
    if let Some(s) = present(prompt_cache_key) {
        return id(s, IdSource::PromptCacheKey);
    }
    let safety_identifier = || {
        let s = hints
            .safety_identifier
            .or_else(|| body.and_then(BodyHints::safety_identifier));
        present(s)
    };
    if let Some(s) = user.or_else(safety_identifier) {
        return id(s, IdSource::User);
    }
    ConversationId {
        hash: prompt_hash(c),
        source: IdSource::Prompt,
    }
}

/// A non-blank id.
fn present(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// The session in a Claude Code `metadata.user_id`, old or JSON form.
fn claude_code_session(user_id: &str) -> Option<std::borrow::Cow<'_, str>> {
    if user_id.starts_with('{') {
        #[derive(serde::Deserialize)]
        struct Ids<'a> {
            #[serde(borrow)]
            session_id: Option<Str<'a>>,
        }
        let ids: Ids<'_> = serde_json::from_str(user_id).ok()?;
        return ids
            .session_id
            .map(Str::into_cow)
            .filter(|s| !s.trim().is_empty());
    }
    let (_, session) = user_id.split_once("_session_")?;
    (!session.is_empty()).then_some(std::borrow::Cow::Borrowed(session))
}

/// The system prompt and the first user turn (its text and media), billing line left out.
fn prompt_hash(c: &Conversation<'_>) -> u64 {
    /// Enough of an image to tell two apart without hashing megabytes.
    const MEDIA_PREFIX: usize = 1024;
    let mut h = Hasher::new();
    for text in &c.system {
        h.bytes(without_billing_line(text).as_bytes());
    }
    let first_user = c.turns.iter().find(|t| t.role == Role::User);
    for part in first_user.map_or(&[][..], |t| &t.parts) {
        match part {
            Part::Text(t) => h.bytes(t.escaped().as_bytes()),
            Part::Image(media) | Part::Document { media, .. } => {
                let bytes = match media {
                    Media::Base64 { data, .. } => data.escaped().as_bytes(),
                    Media::Url(url) => url.as_bytes(),
                };
                h.bytes(&bytes[..bytes.len().min(MEDIA_PREFIX)]);
            }
            _ => {}
        }
    }
    h.finish()
}

fn without_billing_line<'t>(text: &'t Text<'_>) -> &'t str {
    if text.escaped().starts_with(BILLING_HEADER_PREFIX) {
        text.after_first_newline().unwrap_or("")
    } else {
        text.escaped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{anthropic, gemini, openai_chat, responses};
    use crate::routing::body_hints;

    const SESSION: &str = "5f0c2a9e-7d41-4b8e-9c3a-1e2f3a4b5c6d";

    fn anthropic_id(body: &str, hints: ConversationHints<'_>) -> ConversationId {
        let c = anthropic::decode_request::decode_request(body).unwrap();
        conversation_id(&c, &hints)
    }

    fn claude_body(user_id: &str, system: &str, first: &str) -> String {
        serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 5,
            "metadata": {"user_id": user_id},
            "system": [{"type": "text", "text": system}, {"type": "text", "text": "You are Claude Code."}],
            "messages": [{"role": "user", "content": first}]})
        .to_string()
    }

    #[test]
    fn claude_code_session_in_every_form_is_one_id() {
        let json_form =
            format!(r#"{{"device_id":"aca4","account_uuid":"","session_id":"{SESSION}"}}"#);
        let old_form = format!("user_aca4_account_0c1d_session_{SESSION}");
        let a = anthropic_id(&claude_body(&json_form, "s", "hi"), Default::default());
        let b = anthropic_id(&claude_body(&old_form, "t", "other"), Default::default());
        let header = ConversationHints {
            claude_code_session: Some(SESSION),
            ..Default::default()
        };
        let c = anthropic_id(&claude_body("user_x", "u", "third"), header);
        assert_eq!(a.source, IdSource::ClaudeCodeSession);
        assert_eq!((a, a), (b, c));
        let other = anthropic_id(
            &claude_body(&old_form.replace("5f0c", "0000"), "s", "hi"),
            Default::default(),
        );
        assert_ne!(other.hash, a.hash);
    }

    #[test]
    fn the_fixture_s_session_matches_its_header() {
        let body = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/claude_code_request.json"
        ))
        .unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("X-Claude-Code-Session-Id", SESSION.parse().unwrap());
        let hints = body_hints(body.as_bytes());
        let with = anthropic_id(
            &body,
            ConversationHints::from_headers(&headers).with_body(&hints),
        );
        assert!(
            !hints.walked(),
            "the header decides; the body is not walked"
        );
        let without = anthropic_id(&body, Default::default());
        assert_eq!(with, without);
        assert_eq!(with.hash, str_hash(SESSION));
    }

    #[test]
    fn other_user_ids_identify_the_user() {
        let a = anthropic_id(&claude_body("alice", "s", "one"), Default::default());
        let b = anthropic_id(&claude_body("alice", "t", "two"), Default::default());
        assert_eq!(a.source, IdSource::User);
        assert_eq!(a, b);
        // A JSON user id without a session is still the user.
        let j = anthropic_id(
            &claude_body(r#"{"device_id":"d"}"#, "s", "one"),
            Default::default(),
        );
        assert_eq!(j.source, IdSource::User);
    }

    #[test]
    fn without_ids_the_prompt_decides_and_billing_is_ignored() {
        let body = |billing: &str, first: &str| {
            serde_json::json!({"model": "m", "max_tokens": 5,
                "system": [{"type": "text", "text": format!("x-anthropic-billing-header: cc_version=2.1.{billing}; cc_entrypoint=cli;")},
                           {"type": "text", "text": "You are Claude Code."}],
                "messages": [{"role": "user", "content": first},
                             {"role": "assistant", "content": "ok"},
                             {"role": "user", "content": format!("turn {billing}")}]})
            .to_string()
        };
        let a = anthropic_id(&body("3.abc", "fix the bug"), Default::default());
        let b = anthropic_id(&body("9.xyz", "fix the bug"), Default::default());
        let c = anthropic_id(&body("3.abc", "write docs"), Default::default());
        assert_eq!(a.source, IdSource::Prompt);
        assert_eq!(a, b, "later turns and the billing line do not count");
        assert_ne!(a, c);
    }

    #[test]
    fn billing_line_in_a_chat_system_message_is_ignored_too() {
        let body = |billing: &str| {
            serde_json::json!({"model": "m", "messages": [
                {"role": "system", "content": format!("x-anthropic-billing-header: cc_version={billing};\nYou are helpful.")},
                {"role": "user", "content": "hi"}]})
            .to_string()
        };
        let id = |b: &str| {
            let body = body(b);
            let c = openai_chat::decode_request::decode_request(body.as_bytes()).unwrap();
            conversation_id(&c, &Default::default())
        };
        assert_eq!(id("1"), id("2"));
    }

    #[test]
    fn codex_header_and_prompt_cache_key_agree() {
        let body = r#"{"model":"gpt-5","input":"hi","prompt_cache_key":"01a232e3-b379"}"#;
        let c = responses::decode_request::decode_request(body, None).unwrap();
        let hints = body_hints(body.as_bytes());
        let from_body = conversation_id(&c, &ConversationHints::default().with_body(&hints));
        assert_eq!(from_body.source, IdSource::PromptCacheKey);
        let mut headers = http::HeaderMap::new();
        headers.insert("session_id", "01a232e3-b379".parse().unwrap());
        let from_header = conversation_id(&c, &ConversationHints::from_headers(&headers));
        assert_eq!(from_header.source, IdSource::SessionHeader);
        assert_eq!(from_body.hash, from_header.hash);
    }

    #[test]
    fn openai_user_and_safety_identifier() {
        let chat = br#"{"model":"m","user":"u-42","messages":[{"role":"user","content":"a"}]}"#;
        let c = openai_chat::decode_request::decode_request(chat).unwrap();
        let id = conversation_id(&c, &Default::default());
        assert_eq!((id.source, id.hash), (IdSource::User, str_hash("u-42")));

        let chat = br#"{"model":"m","safety_identifier":"u-42","messages":[{"role":"user","content":"b"}]}"#;
        let c = openai_chat::decode_request::decode_request(chat).unwrap();
        let hints = body_hints(chat);
        let via_body = conversation_id(&c, &ConversationHints::default().with_body(&hints));
        assert_eq!(via_body, id);

        let resp = r#"{"model":"m","safety_identifier":"u-42","input":"c"}"#;
        let c = responses::decode_request::decode_request(resp, None).unwrap();
        assert_eq!(conversation_id(&c, &Default::default()), id);
    }

    #[test]
    fn gemini_conversations_differ_by_first_turn() {
        let id = |first: &str| {
            let body = format!(
                r#"{{"systemInstruction":{{"parts":[{{"text":"sys"}}]}},"contents":[{{"role":"user","parts":[{{"text":"{first}"}}]}}]}}"#
            );
            let c = gemini::decode_request::decode_request(&body, "g", false, None).unwrap();
            conversation_id(&c, &Default::default())
        };
        assert_eq!(id("a").source, IdSource::Prompt);
        assert_eq!(id("a"), id("a"));
        assert_ne!(id("a"), id("b"));
    }

    #[test]
    fn blank_ids_are_ignored() {
        let c = Conversation::default();
        let hints = ConversationHints {
            claude_code_session: Some("  "),
            session_header: Some(""),
            ..Default::default()
        };
        assert_eq!(conversation_id(&c, &hints).source, IdSource::Prompt);
    }
}
