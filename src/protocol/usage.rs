//! Token usage read out of a passthrough answer without changing a byte of it (usage
//! statistics for same-protocol adapters): only the events that mention usage are parsed.

use crate::protocol::anthropic::Usage;
use crate::protocol::pair::Wire;
use bytes::BytesMut;

/// The most of a non-streaming answer kept to read its usage.
const MAX_OBSERVED_BODY: usize = 64 * 1024 * 1024;

/// Reads token usage out of a passthrough response without changing a byte of it (usage
/// statistics for same-protocol adapters). Only the events that mention usage are parsed.
pub struct UsageObserver {
    protocol: Wire,
    decoder: crate::protocol::sse::SseDecoder,
    stream: bool,
    json: BytesMut,
    usage: Option<Usage>,
}

impl UsageObserver {
    pub fn new(protocol: Wire, stream: bool) -> Self {
        UsageObserver {
            protocol,
            decoder: crate::protocol::sse::SseDecoder::new(),
            stream,
            json: BytesMut::new(),
            usage: None,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.stream {
            if self.json.len() + chunk.len() <= MAX_OBSERVED_BODY {
                self.json.extend_from_slice(chunk);
            }
            return;
        }
        let (protocol, usage) = (self.protocol, &mut self.usage);
        self.decoder.push(chunk, &mut |event| {
            if let crate::protocol::sse::SseEvent::Data(data) = event
                && memchr::memmem::find(data, b"usage").is_some()
            {
                merge_usage(protocol, data, usage);
            }
        });
    }

    pub fn finish(&mut self) -> Option<Usage> {
        if !self.stream {
            let body = std::mem::take(&mut self.json);
            merge_usage(self.protocol, &body, &mut self.usage);
        }
        self.usage
    }
}

/// Folds the usage in one JSON document (a whole response or one stream event) into `usage`.
fn merge_usage(protocol: Wire, data: &[u8], usage: &mut Option<Usage>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let u = match protocol {
        Wire::AnthropicMessages => {
            // message_start carries it under `message`; message_delta and whole messages at top level.
            let u = if v["type"] == "message_start" {
                &v["message"]["usage"]
            } else {
                &v["usage"]
            };
            if !u.is_object() {
                return;
            }
            let mut acc = usage.unwrap_or_default();
            if let Some(n) = u["input_tokens"].as_u64() {
                acc.input_tokens = n;
            }
            if let Some(n) = u["output_tokens"].as_u64() {
                acc.output_tokens = n;
            }
            if let Some(n) = u["cache_read_input_tokens"].as_u64() {
                acc.cache_read_input_tokens = n;
            }
            if let Some(n) = u["cache_creation_input_tokens"].as_u64() {
                acc.cache_creation_input_tokens = n;
            }
            acc
        }
        Wire::OpenAiChat => {
            let Ok(u) = serde_json::from_value::<crate::protocol::openai_chat::wire::ChatUsage>(
                v["usage"].clone(),
            ) else {
                return;
            };
            crate::protocol::openai_chat::decode_response::usage(&u).to_anthropic()
        }
        Wire::Gemini => {
            let u = &v["usageMetadata"];
            let Some(input) = u["promptTokenCount"].as_u64() else {
                return;
            };
            crate::protocol::pivot::Usage {
                input,
                output: u["candidatesTokenCount"].as_u64().unwrap_or(0)
                    + u["thoughtsTokenCount"].as_u64().unwrap_or(0),
                cache_read: u["cachedContentTokenCount"].as_u64(),
                cache_write: None,
                reasoning: u["thoughtsTokenCount"].as_u64(),
            }
            .to_anthropic()
        }
        // `response.completed` carries it under `response`; whole responses at top level.
        Wire::Responses => {
            let u = if v["response"].is_object() {
                &v["response"]["usage"]
            } else {
                &v["usage"]
            };
            let Some(input) = u["input_tokens"].as_u64() else {
                return;
            };
            crate::protocol::pivot::Usage {
                input,
                output: u["output_tokens"].as_u64().unwrap_or(0),
                cache_read: u["input_tokens_details"]["cached_tokens"].as_u64(),
                cache_write: None,
                reasoning: u["output_tokens_details"]["reasoning_tokens"].as_u64(),
            }
            .to_anthropic()
        }
    };
    *usage = Some(u);
}

#[cfg(test)]
mod observer_tests {
    use super::*;
    use crate::protocol::pair::Wire;

    #[test]
    fn anthropic_stream_usage() {
        let mut o = UsageObserver::new(Wire::AnthropicMessages, true);
        let s = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":40}}\n\n";
        for piece in s.chunks(7) {
            o.feed(piece);
        }
        let u = o.finish().unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cache_read_input_tokens),
            (12, 40, 3)
        );
    }

    #[test]
    fn responses_stream_usage() {
        let mut o = UsageObserver::new(Wire::Responses, true);
        let s = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":20,\"input_tokens_details\":{\"cached_tokens\":5},\"output_tokens\":7}}}\n\n";
        for piece in s.chunks(5) {
            o.feed(piece);
        }
        let u = o.finish().unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cache_read_input_tokens),
            (15, 7, 5)
        );
    }

    #[test]
    fn openai_json_usage() {
        let mut o = UsageObserver::new(Wire::OpenAiChat, false);
        o.feed(br#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":6}}}"#);
        let u = o.finish().unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cache_read_input_tokens),
            (4, 4, 6)
        );
    }
}
