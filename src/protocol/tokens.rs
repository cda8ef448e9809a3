//! Local token counting for `POST /v1/messages/count_tokens` and for usage estimates when a
//! provider reports none: a real BPE tokenizer (o200k_base) over everything that costs input
//! tokens — system, messages, tool definitions — plus the small per-message framing overhead.

use crate::protocol::anthropic::{Block, Content, CountTokensRequest};
use crate::protocol::json::Text;

/// Framing tokens per message (role markers), as chat templates add them.
const PER_MESSAGE: u64 = 4;
/// Images are billed by size; without decoding the image, assume a typical ~1000×1000 picture.
const PER_IMAGE: u64 = 1_300;
/// A PDF page costs text plus an image; without parsing it, assume a few pages.
const PER_DOCUMENT: u64 = 3_000;

/// A cheap estimate of a request's input tokens from its size: about four bytes of JSON per
/// token for English text and code (the provider's count comes later).
pub fn estimate_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

/// The number of tokens `text` encodes to.
pub fn count_text(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len() as u64
}

fn count_json_text(text: &Text<'_>) -> u64 {
    count_text(&text.decoded())
}

pub fn count_request(req: &CountTokensRequest<'_>) -> u64 {
    let mut total = 0;
    if let Some(system) = &req.system {
        total += count_content(system) + PER_MESSAGE;
    }
    for message in &req.messages {
        total += PER_MESSAGE + count_content(&message.content);
    }
    for tool in req.tools.as_deref().unwrap_or_default() {
        total += PER_MESSAGE + count_text(&tool.name);
        total += tool.description.as_ref().map_or(0, count_json_text);
        total += tool.input_schema.map_or(0, |s| count_text(s.get()));
    }
    total
}

fn count_content(content: &Content<'_>) -> u64 {
    match content {
        Content::Text(t) => count_json_text(t),
        Content::Blocks(blocks) => blocks.iter().map(count_block).sum(),
    }
}

fn count_block(block: &Block<'_>) -> u64 {
    match block.kind.as_str() {
        "text" => block.text.as_ref().map_or(0, count_json_text),
        "thinking" => block.thinking.as_ref().map_or(0, count_json_text),
        "tool_use" => {
            block.name.as_deref().map_or(0, count_text)
                + block.input.map_or(0, |i| count_text(i.get()))
        }
        "tool_result" => block.content.as_ref().map_or(0, count_content) + 2,
        "image" => PER_IMAGE,
        "document" => match block.source.as_ref().map(|s| s.kind.as_str()) {
            Some("text") => block
                .source
                .as_ref()
                .and_then(|s| s.data.as_ref())
                .map_or(0, count_json_text),
            Some("content") => block
                .source
                .as_ref()
                .and_then(|s| s.content.as_ref())
                .map_or(0, count_content),
            _ => PER_DOCUMENT,
        },
        _ => 0,
    }
}

/// The input tokens of a pivot conversation (any client protocol's request).
pub fn count_conversation(c: &crate::protocol::pivot::Conversation<'_>) -> u64 {
    use crate::protocol::pivot::Part;
    fn part(p: &Part<'_>) -> u64 {
        match p {
            Part::Text(t) => count_json_text(t),
            Part::Image(_) => PER_IMAGE,
            Part::Document { .. } => PER_DOCUMENT,
            Part::ToolCall(call) => count_text(&call.name) + count_text(&call.arguments),
            Part::ToolResult { content, .. } => content.iter().map(part).sum::<u64>() + 2,
            Part::Reasoning(r) => count_json_text(&r.text),
        }
    }
    let mut total: u64 = c
        .system
        .iter()
        .map(|t| count_json_text(t) + PER_MESSAGE)
        .sum();
    for turn in &c.turns {
        total += PER_MESSAGE + turn.parts.iter().map(part).sum::<u64>();
    }
    for tool in &c.tools {
        total += PER_MESSAGE + count_text(&tool.name);
        total += tool.description.as_ref().map_or(0, count_json_text);
        total += tool.parameters.as_ref().map_or(0, |s| count_text(s.get()));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_real_tokens_not_characters() {
        // "hello world" is two tokens in o200k_base; characters/4 would say 3.
        assert_eq!(count_text("hello world"), 2);
        assert_eq!(count_text(""), 0);
    }

    #[test]
    fn request_count_grows_with_content() {
        let small: CountTokensRequest =
            serde_json::from_str(r#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        let big: CountTokensRequest = serde_json::from_str(
            r#"{"system":"You are a careful assistant.","messages":[{"role":"user","content":[{"type":"text","text":"hi there, how are you today?"}]}],
               "tools":[{"name":"Bash","description":"Run a command","input_schema":{"type":"object","properties":{"command":{"type":"string"}}}}]}"#,
        )
        .unwrap();
        let s = count_request(&small);
        let b = count_request(&big);
        assert!((5..10).contains(&s), "{s}");
        assert!(b > s + 20, "{b} vs {s}");
    }
}

/// The output tokens a request body asks for at most, in any client protocol: Anthropic and
/// Chat `max_tokens`, Chat `max_completion_tokens`, Responses `max_output_tokens`, Gemini
/// `generationConfig.maxOutputTokens`. `None` when the body sets none (or is not JSON).
pub fn requested_output_tokens(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Generation {
        #[serde(rename = "maxOutputTokens")]
        max_output_tokens: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct Limits {
        max_tokens: Option<u64>,
        max_completion_tokens: Option<u64>,
        max_output_tokens: Option<u64>,
        #[serde(rename = "generationConfig")]
        generation_config: Option<Generation>,
    }
    let l: Limits = serde_json::from_slice(body).ok()?;
    l.max_tokens
        .or(l.max_completion_tokens)
        .or(l.max_output_tokens)
        .or(l.generation_config.and_then(|g| g.max_output_tokens))
}

#[cfg(test)]
mod requested_tests {
    use super::requested_output_tokens as r;

    #[test]
    fn every_protocol_s_field() {
        assert_eq!(r(br#"{"max_tokens": 5, "messages": []}"#), Some(5));
        assert_eq!(r(br#"{"max_completion_tokens": 6}"#), Some(6));
        assert_eq!(r(br#"{"max_output_tokens": 7}"#), Some(7));
        assert_eq!(
            r(br#"{"generationConfig": {"maxOutputTokens": 8}}"#),
            Some(8)
        );
        assert_eq!(r(br#"{"model": "x"}"#), None);
        assert_eq!(r(b"not json"), None);
    }
}
