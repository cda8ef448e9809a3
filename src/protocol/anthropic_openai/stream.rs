//! OpenAI chat-completion SSE → Anthropic Messages SSE, incrementally and sans-IO, through
//! the pivot: [`crate::protocol::openai_chat::decode_stream`] turns provider reads into pivot
//! events, [`crate::protocol::anthropic::encode_stream`] turns them into Anthropic frames.
//!
//! Feed each upstream read to [`StreamTranslator::push`]; it appends whatever Anthropic frames
//! that read completes. End with [`finish`](StreamTranslator::finish) (clean end of stream) or
//! [`fail`](StreamTranslator::fail) (reset, timeout…). The output depends only on the bytes,
//! never on how they were split into reads.

use super::ToolNames;
use crate::protocol::anthropic::{ErrorKind, StopReason, Usage};
use crate::protocol::pair::{Pair, PairStream, Wire};
use crate::protocol::pivot::ExchangeContext;

/// Facts about a translated stream, for logs, metrics and usage records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamSummary {
    pub usage: Usage,
    /// False when the provider sent no usage and `usage` is our estimate.
    pub usage_reported: bool,
    pub stop_reason: Option<StopReason>,
    /// The stream ended with an `error` event.
    pub errored: bool,
    /// Argument fragments for a tool whose block had already been closed (could not be sent).
    pub late_fragments: u32,
    /// Tool calls whose arguments were not valid JSON and had to be cut or repaired.
    pub repaired_arguments: u32,
}

/// The (Anthropic client, OpenAI-compatible source) pair's stream.
pub struct StreamTranslator(PairStream);

impl StreamTranslator {
    pub fn new(
        message_id: impl Into<String>,
        client_model: impl Into<String>,
        tool_names: ToolNames,
        input_tokens_estimate: u64,
    ) -> Self {
        let ctx = ExchangeContext {
            message_id: message_id.into(),
            client_model: client_model.into(),
            input_tokens_estimate,
            tool_names,
            ..ExchangeContext::default()
        };
        let pair = Pair {
            client: Wire::AnthropicMessages,
            source: Wire::OpenAiChat,
        };
        StreamTranslator(PairStream::new(pair, ctx))
    }

    /// Sends `message_start` and a `ping` now (otherwise they go out with the first data).
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        self.0.begin(out);
    }

    /// Translates one upstream read.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.0.push(input, out);
    }

    /// The upstream body ended cleanly (with or without `[DONE]`).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.0.finish(out);
    }

    /// The upstream failed after the response started: an `error` event ends the stream.
    pub fn fail(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<u8>) {
        self.0.fail(kind, message, out);
    }

    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }

    pub fn summary(&self) -> StreamSummary {
        let encoded = self.0.anthropic_facts().unwrap_or_default();
        let repairs = self.0.repairs();
        StreamSummary {
            usage: encoded.usage,
            usage_reported: encoded.usage_reported,
            stop_reason: encoded.stop_reason,
            errored: encoded.errored,
            late_fragments: repairs.late_fragments,
            repaired_arguments: repairs.repaired_arguments,
        }
    }
}

#[cfg(test)]
mod tests;
