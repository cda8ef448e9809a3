//! An Anthropic `message` (non-streaming answer of an Anthropic-protocol source) → a pivot
//! [`Response`]. Thinking keeps its signature (origin Anthropic); `redacted_thinking` keeps
//! its data; unknown block types (server tools) are skipped.

use crate::protocol::errors::ProviderError;
use crate::protocol::json::Text;
use crate::protocol::pivot::{
    Origin, Part, Reasoning, Response, ResponseError, StopReason, ToolCall, Usage,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Box<RawValue>>,
}

/// Usage as Anthropic reports it (input without cache reads and writes).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Folds these numbers into `usage` (a stream reports input first, output last).
    pub fn merge_into(&self, usage: &mut Usage) {
        if let Some(read) = self.cache_read_input_tokens {
            usage.cache_read = Some(read);
        }
        if let Some(write) = self.cache_creation_input_tokens {
            usage.cache_write = Some(write);
        }
        if let Some(input) = self.input_tokens {
            usage.input = input + usage.cache_read.unwrap_or(0) + usage.cache_write.unwrap_or(0);
        }
        if let Some(output) = self.output_tokens {
            usage.output = output;
        }
    }
}

pub fn stop_reason(s: &str) -> StopReason {
    match s {
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

/// Parses a complete message.
pub fn decode_response(body: &[u8]) -> Result<Response<'static>, ResponseError> {
    let message: Message = serde_json::from_slice(body).map_err(|e| {
        ResponseError::Malformed(format!("the provider sent an unreadable response: {e}"))
    })?;
    if message.kind.as_deref() == Some("error") || message.error.is_some() {
        return Err(ResponseError::Provider(ProviderError::parse(body)));
    }
    let mut content = Vec::with_capacity(message.content.len());
    for block in message.content {
        match block.kind.as_str() {
            "text" => {
                if let Some(text) = block.text.filter(|t| !t.is_empty()) {
                    content.push(Part::Text(Text::from_plain(&text)));
                }
            }
            "thinking" => content.push(Part::Reasoning(Reasoning {
                text: Text::from_plain(&block.thinking.unwrap_or_default()),
                signature: block.signature.map(|s| (Origin::Anthropic, Cow::Owned(s))),
                redacted: None,
            })),
            "redacted_thinking" => content.push(Part::Reasoning(Reasoning {
                redacted: block.data.map(|d| (Origin::Anthropic, Cow::Owned(d))),
                ..Reasoning::default()
            })),
            "tool_use" => content.push(Part::ToolCall(ToolCall {
                id: Cow::Owned(block.id.unwrap_or_default()),
                name: Cow::Owned(block.name.unwrap_or_default()),
                arguments: Cow::Owned(
                    block
                        .input
                        .map_or_else(|| "{}".to_owned(), |raw| raw.get().to_owned()),
                ),
            })),
            _ => {}
        }
    }
    let usage = message.usage.map(|u| {
        let mut usage = Usage::default();
        u.merge_into(&mut usage);
        usage
    });
    Ok(Response {
        id: Cow::Owned(message.id.unwrap_or_default()),
        content,
        stop: message.stop_reason.as_deref().map(stop_reason),
        stop_sequence: message.stop_sequence.map(Cow::Owned),
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_with_every_block() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[
            {"type":"thinking","thinking":"hmm","signature":"sig"},
            {"type":"redacted_thinking","data":"xyz"},
            {"type":"text","text":"Hi"},
            {"type":"server_tool_use","id":"s","name":"web_search","input":{}},
            {"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ls"}}],
            "stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":5,"cache_read_input_tokens":10,"output_tokens":7}}"#;
        let r = decode_response(body).unwrap();
        assert_eq!(r.content.len(), 4);
        assert!(
            matches!(&r.content[0], Part::Reasoning(x) if x.text.escaped() == "hmm" && x.signature == Some((Origin::Anthropic, "sig".into())))
        );
        assert!(matches!(&r.content[1], Part::Reasoning(x) if x.redacted.is_some()));
        assert!(
            matches!(&r.content[3], Part::ToolCall(c) if c.name == "Bash" && c.arguments == r#"{"command":"ls"}"#)
        );
        assert_eq!(r.stop, Some(StopReason::ToolUse));
        let u = r.usage.unwrap();
        assert_eq!((u.input, u.cache_read, u.output), (15, Some(10), 7));
    }

    #[test]
    fn errors_in_a_200_and_garbage() {
        let e = decode_response(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
        )
        .unwrap_err();
        assert!(matches!(e, ResponseError::Provider(p) if p.message == "busy"));
        assert!(matches!(
            decode_response(b"nope").unwrap_err(),
            ResponseError::Malformed(_)
        ));
    }
}
