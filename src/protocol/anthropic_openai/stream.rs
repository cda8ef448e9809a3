//! OpenAI chat-completion SSE → Anthropic Messages SSE, incrementally and sans-IO.
//!
//! Feed each upstream read to [`StreamTranslator::push`]; it appends whatever Anthropic frames
//! that read completes. End with [`finish`](StreamTranslator::finish) (clean end of stream) or
//! [`fail`](StreamTranslator::fail) (reset, timeout…). The output depends only on the bytes,
//! never on how they were split into reads.
//!
//! Invariants kept for the client: `message_start` first; block indexes from 0 up by one;
//! blocks never interleave or reopen; every delta belongs to the open block; `message_delta`
//! (with the provider's final usage) and `message_stop` last; never `[DONE]`.

use super::error::stream_error;
use super::response::{anthropic_usage, stop_reason};
use super::{ToolNames, sanitize_tool_id};
use crate::protocol::anthropic::{ErrorKind, EventWriter, StopReason, THINKING_SIGNATURE, Usage};
use crate::protocol::json::PartialObject;
use crate::protocol::openai::{ChatChunk, ChatUsage, ToolCallOut};
use crate::protocol::sse::{SseDecoder, SseEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing sent yet.
    Fresh,
    Streaming,
    /// `message_stop` or `error` sent; later input is ignored.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Thinking,
    Text,
    /// A tool-use block for `calls[n]`.
    Tool(usize),
}

#[derive(Debug, Clone, Copy)]
struct OpenBlock {
    index: u32,
    kind: BlockKind,
}

/// One tool call as it accumulates.
#[derive(Debug, Default)]
struct ToolCallState {
    /// The provider's `index` for this call.
    slot: u32,
    provider_id: Option<String>,
    name: Option<String>,
    /// All argument text received so far.
    arguments: String,
    /// How much of `arguments` has been sent to the client.
    sent: usize,
    /// The call has (had) a block; `closed` once that block ended.
    opened: bool,
    closed: bool,
    /// The JSON sent so far: always a prefix that can still become an object.
    sent_json: PartialObject,
    /// Fragments stopped making a JSON object: nothing more is sent for this call.
    poisoned: bool,
}

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

pub struct StreamTranslator {
    message_id: String,
    client_model: String,
    tool_names: ToolNames,
    input_tokens_estimate: u64,
    decoder: SseDecoder,
    phase: Phase,
    next_index: u32,
    open: Option<OpenBlock>,
    calls: Vec<ToolCallState>,
    finish_reason: Option<String>,
    saw_tool_use: bool,
    usage: Option<ChatUsage>,
    output_bytes: usize,
    summary: StreamSummary,
}

impl StreamTranslator {
    pub fn new(
        message_id: impl Into<String>,
        client_model: impl Into<String>,
        tool_names: ToolNames,
        input_tokens_estimate: u64,
    ) -> Self {
        StreamTranslator {
            message_id: message_id.into(),
            client_model: client_model.into(),
            tool_names,
            input_tokens_estimate,
            decoder: SseDecoder::new(),
            phase: Phase::Fresh,
            next_index: 0,
            open: None,
            calls: Vec::new(),
            finish_reason: None,
            saw_tool_use: false,
            usage: None,
            output_bytes: 0,
            summary: StreamSummary::default(),
        }
    }

    /// Sends `message_start` and a `ping` now (otherwise they go out with the first data).
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        if self.phase == Phase::Fresh {
            self.phase = Phase::Streaming;
            let usage = Usage {
                input_tokens: self.input_tokens_estimate,
                output_tokens: 1,
                ..Usage::default()
            };
            let mut w = EventWriter { out };
            w.message_start(&self.message_id, &self.client_model, &usage);
            w.ping();
        }
    }

    /// Translates one upstream read.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.phase == Phase::Done {
            return;
        }
        self.begin(out);
        let mut decoder = std::mem::take(&mut self.decoder);
        decoder.push(input, &mut |event| self.on_event(event, out));
        self.decoder = decoder;
    }

    /// The upstream body ended cleanly (with or without `[DONE]`).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.phase == Phase::Done {
            return;
        }
        let mut decoder = std::mem::take(&mut self.decoder);
        decoder.finish(&mut |event| self.on_event(event, out));
        self.decoder = decoder;
        self.end_message(out);
    }

    /// The upstream failed after the response started: an `error` event ends the stream.
    pub fn fail(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<u8>) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        self.summary.errored = true;
        EventWriter { out }.error(kind, message);
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    pub fn summary(&self) -> StreamSummary {
        let mut summary = self.summary;
        summary.usage = self.final_usage();
        summary.usage_reported = self.usage.is_some();
        summary
    }

    fn on_event(&mut self, event: SseEvent<'_>, out: &mut Vec<u8>) {
        if self.phase == Phase::Done {
            return;
        }
        match event {
            SseEvent::Comment => EventWriter { out }.ping(),
            SseEvent::Data(data) => {
                let data = data.trim_ascii();
                if data.is_empty() {
                } else if data == b"[DONE]" {
                    self.end_message(out);
                } else {
                    self.on_chunk(data, out);
                }
            }
        }
    }

    fn on_chunk(&mut self, data: &[u8], out: &mut Vec<u8>) {
        // One UTF-8 check for the line; parsing from a `str` then skips it per string.
        let Some(chunk) = std::str::from_utf8(data)
            .ok()
            .and_then(|text| serde_json::from_str::<ChatChunk>(text).ok())
        else {
            self.fail(
                ErrorKind::Api,
                "the provider sent a malformed stream event",
                out,
            );
            return;
        };
        if let Some(err) = chunk.error
            && chunk.choices.as_ref().is_none_or(|c| !c.any)
        {
            let (kind, message) = stream_error(err.get());
            self.fail(kind, &message, out);
            return;
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(**u);
        }
        // Only the first choice: Anthropic has no `n`. Borrowed, not moved: this runs per chunk.
        let Some(choice) = chunk.choices.as_ref().and_then(|c| c.choice.as_ref()) else {
            return;
        };
        if let Some(u) = &choice.usage {
            self.usage = Some(**u);
        }
        if let Some(delta) = &choice.delta {
            if let Some(reasoning) = delta.reasoning_text() {
                self.thinking(reasoning, out);
            }
            if let Some(text) = delta.content.as_ref().filter(|t| !t.0.is_empty()) {
                self.text(&text.0, out);
            }
            if let Some(calls) = &delta.tool_calls {
                for call in calls {
                    self.tool_call(call, out);
                }
            }
            if let Some(function) = &delta.function_call {
                let legacy = ToolCallOut {
                    index: Some(0),
                    id: None,
                    function: Some(crate::protocol::openai::FunctionOut {
                        name: function.name.clone(),
                        arguments: function.arguments.clone(),
                    }),
                };
                self.tool_call(&legacy, out);
            }
        }
        if let Some(reason) = choice.finish_reason.as_deref().filter(|r| !r.is_empty()) {
            self.finish_reason = Some(reason.to_owned());
            // Usage usually follows in its own chunk: close blocks now, report at the end.
            self.close_open_block(out);
            self.flush_pending_calls(out);
        }
    }

    fn open_block(&mut self, kind: BlockKind, out: &mut Vec<u8>) -> u32 {
        self.close_open_block(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some(OpenBlock { index, kind });
        let mut w = EventWriter { out };
        match kind {
            BlockKind::Thinking => w.thinking_start(index),
            BlockKind::Text => w.text_start(index),
            BlockKind::Tool(n) => {
                let call = &self.calls[n];
                let id = sanitize_tool_id(call.provider_id.as_deref(), &self.message_id, n);
                let name = self
                    .tool_names
                    .to_client(call.name.as_deref().unwrap_or(""));
                w.tool_use_start(index, &id, name);
                self.saw_tool_use = true;
            }
        }
        index
    }

    fn close_open_block(&mut self, out: &mut Vec<u8>) {
        let Some(block) = self.open.take() else {
            return;
        };
        let mut w = EventWriter { out };
        match block.kind {
            BlockKind::Thinking => w.signature_delta(block.index, THINKING_SIGNATURE),
            BlockKind::Text => {}
            BlockKind::Tool(n) => {
                let call = &mut self.calls[n];
                call.closed = true;
                // Arguments cut short (token limit, broken provider) are completed by
                // appending, so the client always accumulates a JSON object.
                if call.sent > 0
                    && !call.sent_json.is_complete()
                    && let Some(suffix) = call.sent_json.completion().filter(|s| !s.is_empty())
                {
                    self.summary.repaired_arguments += 1;
                    w.input_json_delta(block.index, &suffix);
                }
            }
        }
        w.block_stop(block.index);
    }

    fn thinking(&mut self, text: &str, out: &mut Vec<u8>) {
        self.output_bytes += text.len();
        let index = match self.open {
            Some(OpenBlock {
                index,
                kind: BlockKind::Thinking,
            }) => index,
            _ => self.open_block(BlockKind::Thinking, out),
        };
        EventWriter { out }.thinking_delta(index, text);
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        self.output_bytes += text.len();
        let index = match self.open {
            Some(OpenBlock {
                index,
                kind: BlockKind::Text,
            }) => index,
            _ => self.open_block(BlockKind::Text, out),
        };
        EventWriter { out }.text_delta(index, text);
    }

    /// Finds (or starts) the call a delta belongs to. Calls are keyed by `index`; a new `id`
    /// on an index already in use means the provider reuses index 0 for every call.
    fn call_for(&mut self, delta: &ToolCallOut<'_>) -> usize {
        let id = delta.id.as_deref().filter(|s| !s.is_empty());
        let slot = match delta.index {
            Some(i) => i,
            None => match id {
                Some(id) => match self
                    .calls
                    .iter()
                    .position(|c| c.provider_id.as_deref() == Some(id))
                {
                    Some(n) => return n,
                    None => self.calls.len() as u32,
                },
                None => {
                    // No index and no id: a continuation of the latest call.
                    if self.calls.is_empty() {
                        self.calls.push(ToolCallState::default());
                    }
                    return self.calls.len() - 1;
                }
            },
        };
        if let Some(n) = self.calls.iter().rposition(|c| c.slot == slot) {
            let existing = &self.calls[n];
            let new_id =
                matches!((id, existing.provider_id.as_deref()), (Some(a), Some(b)) if a != b);
            if !new_id {
                return n;
            }
        }
        self.calls.push(ToolCallState {
            slot,
            ..ToolCallState::default()
        });
        self.calls.len() - 1
    }

    fn tool_call(&mut self, delta: &ToolCallOut<'_>, out: &mut Vec<u8>) {
        let n = self.call_for(delta);
        let function = delta.function.as_ref();
        let fragment = function.and_then(|f| f.arguments.as_deref()).unwrap_or("");
        {
            let call = &mut self.calls[n];
            if call.provider_id.is_none()
                && let Some(id) = delta.id.as_deref().filter(|s| !s.is_empty())
            {
                call.provider_id = Some(id.to_owned());
            }
            if call.name.is_none()
                && let Some(name) = function
                    .and_then(|f| f.name.as_deref())
                    .filter(|s| !s.is_empty())
            {
                call.name = Some(name.to_owned());
            }
            if call.closed && !fragment.is_empty() {
                self.summary.late_fragments += 1;
                return;
            }
            call.arguments.push_str(fragment);
        }
        self.output_bytes += fragment.len();
        self.advance_calls(out);
    }

    /// Opens calls in order as soon as they can stream: a call streams live when it has a
    /// name, every earlier call has been opened, and no other tool block is open. Later calls
    /// wait (their fragments may interleave with the open one's) and go out whole at the end.
    fn advance_calls(&mut self, out: &mut Vec<u8>) {
        if let Some(OpenBlock {
            index,
            kind: BlockKind::Tool(n),
        }) = self.open
        {
            self.send_arguments(n, index, out);
            return;
        }
        let Some(n) = self.calls.iter().position(|c| !c.opened) else {
            return;
        };
        if self.calls[n].name.is_none() {
            return;
        }
        self.calls[n].opened = true;
        let index = self.open_block(BlockKind::Tool(n), out);
        self.send_arguments(n, index, out);
    }

    fn send_arguments(&mut self, n: usize, index: u32, out: &mut Vec<u8>) {
        let call = &mut self.calls[n];
        if call.sent >= call.arguments.len() {
            return;
        }
        let fragment = &call.arguments[call.sent..];
        if !call.poisoned {
            let mut next = call.sent_json.clone();
            if next.feed(fragment) {
                call.sent_json = next;
                EventWriter { out }.input_json_delta(index, fragment);
            } else {
                call.poisoned = true;
                self.summary.repaired_arguments += 1;
            }
        }
        call.sent = call.arguments.len();
    }

    /// Emits every call that has not had a block yet, each as start / one delta / stop, with
    /// arguments repaired to a JSON object where needed.
    fn flush_pending_calls(&mut self, out: &mut Vec<u8>) {
        for n in 0..self.calls.len() {
            if self.calls[n].opened {
                continue;
            }
            let call = &self.calls[n];
            if call.name.is_none() && call.arguments.trim().is_empty() {
                continue;
            }
            let (input, repaired) = super::response::tool_input(&call.arguments);
            self.summary.repaired_arguments += u32::from(repaired);
            let arguments = input.get().to_owned();
            self.calls[n].opened = true;
            let index = self.open_block(BlockKind::Tool(n), out);
            if arguments != "{}" {
                EventWriter { out }.input_json_delta(index, &arguments);
            }
            let call = &mut self.calls[n];
            // Whole and repaired already: nothing for the block's close to complete.
            call.sent_json = PartialObject::new();
            call.sent_json.feed(&arguments);
            call.arguments = arguments;
            call.sent = call.arguments.len();
            self.close_open_block(out);
        }
    }

    fn end_message(&mut self, out: &mut Vec<u8>) {
        if self.phase == Phase::Done {
            return;
        }
        self.begin(out);
        self.close_open_block(out);
        self.flush_pending_calls(out);
        let reason = stop_reason(self.finish_reason.as_deref(), self.saw_tool_use);
        self.summary.stop_reason = Some(reason);
        let usage = self.final_usage();
        let mut w = EventWriter { out };
        w.message_delta(reason, &usage);
        w.message_stop();
        self.phase = Phase::Done;
    }

    fn final_usage(&self) -> Usage {
        match &self.usage {
            Some(u) => anthropic_usage(u),
            None => Usage {
                input_tokens: self.input_tokens_estimate,
                output_tokens: super::request::estimate_tokens(self.output_bytes),
                ..Usage::default()
            },
        }
    }
}

#[cfg(test)]
mod tests;
