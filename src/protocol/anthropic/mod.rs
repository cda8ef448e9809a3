//! Anthropic Messages API wire types: the request as clients send it (parsed without building
//! JSON trees; tool schemas and inputs stay raw), the response and SSE frames we produce, and
//! the error shape every Anthropic client understands.
//!
//! Its codecs, one file per direction (decode: wire → pivot, encode: pivot → wire):
//! as a client protocol [`decode_request`], [`encode_response`], [`encode_stream`]; as a
//! source protocol [`encode_request`], [`decode_response`], [`decode_stream`].

pub mod decode_request;
pub mod decode_response;
pub mod decode_stream;
pub mod encode_request;
pub mod encode_response;
pub mod encode_stream;

use super::json::{Str, Text, write_json_str};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// `POST /v1/messages` body. Unknown fields are ignored on purpose: the translator builds the
/// provider request from an allow-list, so new client fields can never leak upstream.
#[derive(Debug, Deserialize)]
pub struct MessagesRequest<'a> {
    #[serde(borrow)]
    pub model: Str<'a>,
    #[serde(borrow)]
    pub messages: Vec<Message<'a>>,
    #[serde(borrow, default)]
    pub system: Option<Content<'a>>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(borrow, default)]
    pub stop_sequences: Option<Vec<Str<'a>>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<u64>,
    #[serde(borrow, default)]
    pub metadata: Option<Metadata<'a>>,
    #[serde(borrow, default)]
    pub tools: Option<Vec<Tool<'a>>>,
    #[serde(borrow, default)]
    pub tool_choice: Option<ToolChoice<'a>>,
    #[serde(borrow, default)]
    pub thinking: Option<Thinking<'a>>,
    #[serde(borrow, default)]
    pub output_config: Option<OutputConfig<'a>>,
}

/// `POST /v1/messages/count_tokens` body: the subset of a request that costs input tokens.
#[derive(Debug, Deserialize)]
pub struct CountTokensRequest<'a> {
    #[serde(borrow, default)]
    pub model: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub messages: Vec<Message<'a>>,
    #[serde(borrow, default)]
    pub system: Option<Content<'a>>,
    #[serde(borrow, default)]
    pub tools: Option<Vec<Tool<'a>>>,
}

#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    #[serde(borrow)]
    pub role: Str<'a>,
    #[serde(borrow)]
    pub content: Content<'a>,
}

/// Message content, `system`, and tool-result content: either a plain string or blocks.
#[derive(Debug)]
pub enum Content<'a> {
    Text(Text<'a>),
    Blocks(Vec<Block<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content blocks")
            }
            // serde_json lends the input only for strings without escapes, so a borrowed
            // string is its own escaped form; others are escaped again.
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Text::from_escaped(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Text::from_plain(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::Blocks(Vec::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::Blocks(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(block) = seq.next_element::<Block<'de>>()? {
                    blocks.push(block);
                }
                Ok(Content::Blocks(blocks))
            }
            // One block where a list is expected: a failed web search's result content
            // (`{"type": "web_search_tool_result_error", "error_code": …}`).
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let block = Block::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Content::Blocks(vec![block]))
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

impl<'a> Content<'a> {
    /// Iterates over the text of text blocks (or the plain string).
    pub fn texts(&self) -> impl Iterator<Item = &Text<'a>> {
        let (single, blocks): (Option<&Text<'a>>, &[Block<'a>]) = match self {
            Content::Text(t) => (Some(t), &[]),
            Content::Blocks(b) => (None, b.as_slice()),
        };
        single.into_iter().chain(
            blocks
                .iter()
                .filter(|b| b.kind.as_str() == "text")
                .filter_map(|b| b.text.as_ref()),
        )
    }
}

/// One content block, flattened: the `type` says which fields matter. A flat struct (rather
/// than a tagged enum) keeps raw values and borrowed strings zero-copy through serde.
#[derive(Debug, Default, Deserialize)]
pub struct Block<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub text: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub source: Option<Source<'a>>,
    #[serde(borrow, default)]
    pub title: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub tool_use_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub content: Option<Content<'a>>,
    #[serde(default)]
    pub is_error: Option<bool>,
    #[serde(borrow, default)]
    pub thinking: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub signature: Option<Str<'a>>,
    /// A `tool_reference` block's tool (Claude Code's tool search loads tools with them).
    #[serde(borrow, default)]
    pub tool_name: Option<Str<'a>>,
    /// A `web_search_result`'s page.
    #[serde(borrow, default)]
    pub url: Option<Str<'a>>,
    /// A `web_search_tool_result_error`'s reason.
    #[serde(borrow, default)]
    pub error_code: Option<Str<'a>>,
    /// Anthropic's prompt cache marker: read only to note that it is dropped.
    #[serde(default)]
    pub cache_control: Option<serde::de::IgnoredAny>,
}

/// Where an image or document comes from.
#[derive(Debug, Default, Deserialize)]
pub struct Source<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub media_type: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub data: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub url: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub content: Option<Content<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Metadata<'a> {
    #[serde(borrow, default)]
    pub user_id: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Tool<'a> {
    /// Absent or `custom` for client tools; a versioned type (`web_search_20250305`,
    /// `bash_20250124`, …) for Anthropic server tools, which other providers cannot run.
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub name: Str<'a>,
    #[serde(borrow, default)]
    pub description: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub input_schema: Option<&'a RawValue>,
    /// Anthropic's prompt cache marker: read only to note that it is dropped.
    #[serde(default)]
    pub cache_control: Option<serde::de::IgnoredAny>,
}

impl Tool<'_> {
    pub fn is_client_tool(&self) -> bool {
        matches!(self.kind.as_deref(), None | Some("custom"))
    }
}

#[derive(Debug, Deserialize)]
pub struct ToolChoice<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    #[serde(default)]
    pub disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct Thinking<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(default)]
    pub budget_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct OutputConfig<'a> {
    #[serde(borrow, default)]
    pub effort: Option<Str<'a>>,
}

// ---------------------------------------------------------------------------------------------
// Responses

/// A non-streaming `message` response.
#[derive(Debug, Serialize)]
pub struct MessageResponse<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: &'a str,
    pub content: Vec<OutBlock<'a>>,
    pub stop_reason: StopReason,
    pub stop_sequence: Option<&'a str>,
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutBlock<'a> {
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    Text {
        text: &'a str,
    },
    ToolUse {
        id: String,
        name: &'a str,
        input: Box<RawValue>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    Refusal,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::MaxTokens => "max_tokens",
            StopReason::StopSequence => "stop_sequence",
            StopReason::ToolUse => "tool_use",
            StopReason::Refusal => "refusal",
        }
    }
}

/// Token usage as Anthropic reports it: `input_tokens` excludes cache reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

/// A stable, non-empty stand-in for thinking signatures: OpenAI-compatible providers give none,
/// and clients (Claude Code) only send back thinking blocks that carry one.
pub const THINKING_SIGNATURE: &str = "ZmxleGlwcm94eS10aGlua2luZy12MQ==";

// ---------------------------------------------------------------------------------------------
// Errors

/// Anthropic's error types, each with the HTTP status it normally travels with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Billing,
    Permission,
    NotFound,
    RequestTooLarge,
    RateLimit,
    Api,
    Timeout,
    Overloaded,
}

impl ErrorKind {
    pub fn type_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Billing => "billing_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RequestTooLarge => "request_too_large",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Api => "api_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Overloaded => "overloaded_error",
        }
    }

    pub fn default_status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Billing => 402,
            ErrorKind::Permission => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::RateLimit => 429,
            ErrorKind::Api => 500,
            ErrorKind::Timeout => 504,
            ErrorKind::Overloaded => 529,
        }
    }

    /// The Anthropic error type for an HTTP status, per the translation reference.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            400 | 422 => ErrorKind::InvalidRequest,
            401 => ErrorKind::Authentication,
            402 => ErrorKind::Billing,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            408 | 504 => ErrorKind::Timeout,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimit,
            503 | 529 => ErrorKind::Overloaded,
            s if (400..500).contains(&s) => ErrorKind::InvalidRequest,
            _ => ErrorKind::Api,
        }
    }
}

/// `GET /v1/models` in Anthropic's shape.
pub fn model_list(models: &[String]) -> String {
    let data: Vec<serde_json::Value> = models
        .iter()
        .map(|m| {
            serde_json::json!({"type": "model", "id": m, "display_name": m,
                "created_at": "2025-01-01T00:00:00Z"})
        })
        .collect();
    serde_json::json!({"data": data, "has_more": false,
        "first_id": models.first(), "last_id": models.last()})
    .to_string()
}

/// `{"type":"error","error":{"type":…,"message":…}}`
pub fn error_body(kind: ErrorKind, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(b"{\"type\":\"error\",\"error\":{\"type\":\"");
    out.extend_from_slice(kind.type_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    write_json_str(&mut out, message);
    out.extend_from_slice(b"}}");
    out
}

// ---------------------------------------------------------------------------------------------
// SSE frames

/// Writes Anthropic SSE frames (`event: X\ndata: {…}\n\n`) into a byte buffer.
pub struct EventWriter<'o> {
    pub out: &'o mut Vec<u8>,
}

impl EventWriter<'_> {
    fn begin(&mut self, event: &str) {
        self.out.extend_from_slice(b"event: ");
        self.out.extend_from_slice(event.as_bytes());
        self.out.extend_from_slice(b"\ndata: ");
    }

    fn end(&mut self) {
        self.out.extend_from_slice(b"\n\n");
    }

    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn num(&mut self, n: u64) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    pub fn message_start(&mut self, id: &str, model: &str, usage: &Usage) {
        self.begin("message_start");
        self.raw("{\"type\":\"message_start\",\"message\":{\"id\":");
        write_json_str(self.out, id);
        self.raw(",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
        write_json_str(self.out, model);
        self.raw(",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
        self.usage(usage);
        self.raw("}}");
        self.end();
    }

    fn usage(&mut self, usage: &Usage) {
        self.raw("{\"input_tokens\":");
        self.num(usage.input_tokens);
        self.raw(",\"cache_creation_input_tokens\":");
        self.num(usage.cache_creation_input_tokens);
        self.raw(",\"cache_read_input_tokens\":");
        self.num(usage.cache_read_input_tokens);
        self.raw(",\"output_tokens\":");
        self.num(usage.output_tokens);
        self.raw("}");
    }

    pub fn ping(&mut self) {
        self.begin("ping");
        self.raw("{\"type\":\"ping\"}");
        self.end();
    }

    fn block_start_prefix(&mut self, index: u32) {
        self.begin("content_block_start");
        self.raw("{\"type\":\"content_block_start\",\"index\":");
        self.num(u64::from(index));
    }

    pub fn text_start(&mut self, index: u32) {
        self.block_start_prefix(index);
        self.raw(",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
        self.end();
    }

    pub fn thinking_start(&mut self, index: u32) {
        self.block_start_prefix(index);
        self.raw(
            ",\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}",
        );
        self.end();
    }

    pub fn tool_use_start(&mut self, index: u32, id: &str, name: &str) {
        self.block_start_prefix(index);
        self.raw(",\"content_block\":{\"type\":\"tool_use\",\"id\":");
        write_json_str(self.out, id);
        self.raw(",\"name\":");
        write_json_str(self.out, name);
        self.raw(",\"input\":{}}}");
        self.end();
    }

    /// `content_block_delta` of the given delta type, whose one string field is `field`.
    pub fn delta(&mut self, index: u32, delta_type: &str, field: &str, value: &str) {
        self.begin("content_block_delta");
        self.raw("{\"type\":\"content_block_delta\",\"index\":");
        self.num(u64::from(index));
        self.raw(",\"delta\":{\"type\":\"");
        self.raw(delta_type);
        self.raw("\",\"");
        self.raw(field);
        self.raw("\":");
        write_json_str(self.out, value);
        self.raw("}}");
        self.end();
    }

    pub fn text_delta(&mut self, index: u32, text: &str) {
        self.delta(index, "text_delta", "text", text);
    }

    pub fn thinking_delta(&mut self, index: u32, thinking: &str) {
        self.delta(index, "thinking_delta", "thinking", thinking);
    }

    pub fn signature_delta(&mut self, index: u32, signature: &str) {
        self.delta(index, "signature_delta", "signature", signature);
    }

    pub fn input_json_delta(&mut self, index: u32, partial_json: &str) {
        self.delta(index, "input_json_delta", "partial_json", partial_json);
    }

    pub fn block_stop(&mut self, index: u32) {
        self.begin("content_block_stop");
        self.raw("{\"type\":\"content_block_stop\",\"index\":");
        self.num(u64::from(index));
        self.raw("}");
        self.end();
    }

    pub fn message_delta(&mut self, stop_reason: StopReason, usage: &Usage) {
        self.begin("message_delta");
        self.raw("{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"");
        self.raw(stop_reason.as_str());
        self.raw("\",\"stop_sequence\":null},\"usage\":");
        self.usage(usage);
        self.raw("}");
        self.end();
    }

    pub fn message_stop(&mut self) {
        self.begin("message_stop");
        self.raw("{\"type\":\"message_stop\"}");
        self.end();
    }

    pub fn error(&mut self, kind: ErrorKind, message: &str) {
        self.begin("error");
        let body = error_body(kind, message);
        self.out.extend_from_slice(&body);
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_accepts_string_blocks_and_null() {
        let m: Message = serde_json::from_str(r#"{"role":"user","content":"hi"}"#).unwrap();
        assert!(matches!(m.content, Content::Text(ref t) if t.escaped() == "hi"));
        let m: Message = serde_json::from_str(
            r#"{"role":"user","content":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            m.content.texts().map(|t| t.decoded()).collect::<Vec<_>>(),
            vec!["a"]
        );
        let m: Message = serde_json::from_str(r#"{"role":"user","content":null}"#).unwrap();
        assert!(matches!(m.content, Content::Blocks(ref b) if b.is_empty()));
    }

    #[test]
    fn error_body_escapes_message() {
        let body = error_body(ErrorKind::RateLimit, "slow \"down\"");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["message"], "slow \"down\"");
    }

    #[test]
    fn status_mapping_follows_reference() {
        for (status, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (402, "billing_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (408, "timeout_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (504, "timeout_error"),
            (529, "overloaded_error"),
        ] {
            assert_eq!(ErrorKind::from_status(status).type_str(), kind, "{status}");
        }
    }

    #[test]
    fn event_frames_are_valid_json() {
        let mut out = Vec::new();
        let mut w = EventWriter { out: &mut out };
        w.message_start("msg_1", "claude", &Usage::default());
        w.tool_use_start(0, "toolu_1", "Bash");
        w.input_json_delta(0, "{\"a\":");
        w.block_stop(0);
        w.message_delta(
            StopReason::ToolUse,
            &Usage {
                output_tokens: 12345678901,
                ..Default::default()
            },
        );
        let text = String::from_utf8(out).unwrap();
        for frame in text.split("\n\n").filter(|f| !f.is_empty()) {
            let data = frame
                .lines()
                .nth(1)
                .unwrap()
                .strip_prefix("data: ")
                .unwrap();
            serde_json::from_str::<serde_json::Value>(data).unwrap();
        }
        assert!(text.contains("\"output_tokens\":12345678901"));
    }
}
