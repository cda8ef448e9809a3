//! Pivot [`Event`]s → Anthropic Messages SSE for an Anthropic client, sans-IO.
//!
//! Invariants kept for the client: `message_start` (with an input estimate) and a `ping`
//! first; block indexes from 0 up by one; blocks never interleave or reopen; every delta
//! belongs to the open block; a thinking block always ends with a `signature_delta` (the
//! source's own when an Anthropic source signed it, else a stable placeholder, since clients
//! such as Claude Code drop unsigned thinking); `message_delta` (with the final usage,
//! estimated when the source reported none) and `message_stop` last; never `[DONE]`.

use crate::protocol::anthropic::{ErrorKind, EventWriter, THINKING_SIGNATURE, Usage};
use crate::protocol::names::sanitize_tool_id;
use crate::protocol::pivot::{self, BlockKind, Event, ExchangeContext, Origin};

use super::encode_response::stop_reason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing sent yet.
    Fresh,
    Streaming,
    /// `message_stop` or `error` sent; later events are ignored.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Thinking { signed: bool },
    Text,
    Tool,
}

/// What the encoded stream told the client, for logs, metrics and usage records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodeFacts {
    pub usage: Usage,
    /// False when the source reported no usage and `usage` is our estimate.
    pub usage_reported: bool,
    pub stop_reason: Option<crate::protocol::anthropic::StopReason>,
    /// The stream ended with an `error` event.
    pub errored: bool,
}

pub struct StreamEncoder {
    ctx: ExchangeContext,
    phase: Phase,
    next_index: u32,
    open: Option<(u32, Open)>,
    tool_calls: usize,
    stop: Option<pivot::StopReason>,
    usage: Option<pivot::Usage>,
    output_bytes: usize,
    facts: EncodeFacts,
}

impl StreamEncoder {
    pub fn new(ctx: ExchangeContext) -> Self {
        StreamEncoder {
            ctx,
            phase: Phase::Fresh,
            next_index: 0,
            open: None,
            tool_calls: 0,
            stop: None,
            usage: None,
            output_bytes: 0,
            facts: EncodeFacts::default(),
        }
    }

    /// Sends `message_start` and a `ping` now (otherwise they go out with the first event).
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        if self.phase != Phase::Fresh {
            return;
        }
        self.phase = Phase::Streaming;
        // Reported input when an answer's usage came first (a JSON answer sent as a stream).
        let usage = match self.usage {
            Some(u) => Usage {
                output_tokens: 1,
                ..u.to_anthropic()
            },
            None => Usage {
                input_tokens: self.ctx.input_tokens_estimate,
                output_tokens: 1,
                ..Usage::default()
            },
        };
        let mut w = EventWriter { out };
        w.message_start(&self.ctx.message_id, &self.ctx.client_model, &usage);
        w.ping();
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    pub fn facts(&self) -> EncodeFacts {
        let mut facts = self.facts;
        facts.usage = self.final_usage();
        facts.usage_reported = self.usage.is_some();
        facts
    }

    pub fn event(&mut self, event: Event<'_>, out: &mut Vec<u8>) {
        if self.phase == Phase::Done {
            return;
        }
        match event {
            // Nothing to send for these yet: `message_start` can still carry the usage.
            Event::Start { .. } => return,
            Event::Usage(u) if self.phase == Phase::Fresh => {
                self.usage = Some(u);
                return;
            }
            _ => {}
        }
        self.begin(out);
        match event {
            Event::Start { .. } => {}
            Event::KeepAlive => EventWriter { out }.ping(),
            Event::BlockStart { kind, .. } => self.open_block(kind, out),
            Event::TextDelta { text, .. } => {
                let index = self.ensure_open(Open::Text, out);
                self.output_bytes += text.len();
                EventWriter { out }.text_delta(index, text);
            }
            Event::ReasoningDelta { text, .. } => {
                let index = self.ensure_open(Open::Thinking { signed: false }, out);
                self.output_bytes += text.len();
                EventWriter { out }.thinking_delta(index, text);
            }
            Event::ReasoningSignature {
                origin: Origin::Anthropic,
                signature,
                ..
            } => {
                if let Some((index, Open::Thinking { .. })) = self.open {
                    self.open = Some((index, Open::Thinking { signed: true }));
                    EventWriter { out }.signature_delta(index, signature);
                }
            }
            Event::ReasoningSignature { .. } => {}
            Event::ArgumentsDelta { json, .. } => {
                if let Some((index, Open::Tool)) = self.open {
                    self.output_bytes += json.len();
                    EventWriter { out }.input_json_delta(index, json);
                }
            }
            Event::BlockStop { .. } => self.close_open_block(out),
            Event::Usage(u) => self.usage = Some(u),
            Event::Finish { stop, .. } => self.stop = Some(stop),
            Event::End => self.end_message(out),
            Event::Error { kind, message } => self.fail(kind, message, out),
        }
    }

    /// The source's body ended: finish the message if the decoder did not.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.end_message(out);
    }

    /// The exchange failed after the response started: an `error` event ends the stream.
    pub fn fail(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<u8>) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        self.facts.errored = true;
        EventWriter { out }.error(kind, message);
    }

    /// The open block of `kind`, or a new one (for decoders that send deltas unannounced).
    fn ensure_open(&mut self, kind: Open, out: &mut Vec<u8>) -> u32 {
        match self.open {
            Some((index, open))
                if std::mem::discriminant(&open) == std::mem::discriminant(&kind) =>
            {
                index
            }
            _ => {
                let kind = match kind {
                    Open::Text => BlockKind::Text,
                    _ => BlockKind::Reasoning,
                };
                self.open_block(kind, out);
                self.next_index - 1
            }
        }
    }

    fn open_block(&mut self, kind: BlockKind<'_>, out: &mut Vec<u8>) {
        self.close_open_block(out);
        let index = self.next_index;
        self.next_index += 1;
        let mut w = EventWriter { out };
        let open = match kind {
            BlockKind::Reasoning => {
                w.thinking_start(index);
                Open::Thinking { signed: false }
            }
            BlockKind::Text => {
                w.text_start(index);
                Open::Text
            }
            BlockKind::ToolCall { id, name } => {
                let id = sanitize_tool_id(Some(id), &self.ctx.message_id, self.tool_calls);
                self.tool_calls += 1;
                w.tool_use_start(index, &id, name);
                Open::Tool
            }
        };
        self.open = Some((index, open));
    }

    fn close_open_block(&mut self, out: &mut Vec<u8>) {
        let Some((index, open)) = self.open.take() else {
            return;
        };
        let mut w = EventWriter { out };
        if open == (Open::Thinking { signed: false }) {
            w.signature_delta(index, THINKING_SIGNATURE);
        }
        w.block_stop(index);
    }

    fn end_message(&mut self, out: &mut Vec<u8>) {
        if self.phase == Phase::Done {
            return;
        }
        self.begin(out);
        self.close_open_block(out);
        let reason = stop_reason(self.stop, self.tool_calls > 0);
        self.facts.stop_reason = Some(reason);
        let usage = self.final_usage();
        let mut w = EventWriter { out };
        w.message_delta(reason, &usage);
        w.message_stop();
        self.phase = Phase::Done;
    }

    fn final_usage(&self) -> Usage {
        match self.usage {
            Some(u) => u.to_anthropic(),
            None => Usage {
                input_tokens: self.ctx.input_tokens_estimate,
                output_tokens: crate::protocol::tokens::estimate_tokens(self.output_bytes),
                ..Usage::default()
            },
        }
    }
}

/// Renders a complete Anthropic message as the SSE events a streaming client expects.
pub fn message_as_events(message_json: &[u8], input_estimate: u64) -> Vec<u8> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        model: String,
    }
    let model =
        serde_json::from_slice::<Head>(message_json).map_or_else(|_| String::new(), |h| h.model);
    let response = super::decode_response::decode_response(message_json).unwrap_or_default();
    let ctx = ExchangeContext {
        message_id: response.id.to_string(),
        client_model: model,
        input_tokens_estimate: input_estimate,
        ..ExchangeContext::default()
    };
    let mut encoder = StreamEncoder::new(ctx);
    let mut out = Vec::with_capacity(message_json.len() * 2);
    pivot::unfold(&response, &mut |e| encoder.event(e, &mut out));
    encoder.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::stream_check::{accumulate, check_stream};

    #[test]
    fn json_message_as_stream_is_valid() {
        let msg = br#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[
            {"type":"thinking","thinking":"t","signature":"s"},{"type":"text","text":"hello"},
            {"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ls"}}],
            "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":4}}"#;
        let events = message_as_events(msg, 0);
        let frames = check_stream(&events).unwrap();
        let m = accumulate(&frames);
        assert_eq!(m["content"][1]["text"], "hello");
        assert_eq!(m["content"][2]["input"]["command"], "ls");
        assert_eq!(m["stop_reason"], "tool_use");
    }
}
