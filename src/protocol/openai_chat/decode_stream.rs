//! OpenAI chat-completion SSE (from an OpenAI-compatible source) → pivot [`Event`]s,
//! incrementally and sans-IO. Fed arbitrary slices; the events depend only on the bytes,
//! never on how they were split into reads.
//!
//! Chunks are read in this order: an `error` object ends the stream, whatever else the chunk
//! holds; usage is remembered wherever it appears and reported once at the end; reasoning
//! (`reasoning_content`, `reasoning`, or Mistral's `thinking` content parts), then text (a
//! string, text and refusal parts, or `refusal`), then tool calls open blocks as they come.
//! Tool calls are keyed by `index`, or by a new `id` when a provider reuses index 0; a call
//! streams live when it has a name, every earlier call has been opened and no other tool block is open — later
//! calls (whose fragments may interleave with the open one's) are held and sent whole when
//! the open one is done. Arguments that stop making a JSON object are cut there and completed
//! at the block's end, so a client always accumulates an object. `[DONE]` or the end of the
//! body ends the answer.

use super::wire::{ChatChunk, ChatUsage, FunctionOut, ToolCallOut, is_error};
use crate::protocol::anthropic::ErrorKind;
use crate::protocol::errors::stream_error;
use crate::protocol::json::{PartialObject, tool_input};
use crate::protocol::names::ToolNames;
use crate::protocol::pivot::{BlockKind, Event};
use crate::protocol::sse::{FrameDecoder, SseDriver, SseEvent};

use super::decode_response::{stop_reason, usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Reasoning,
    Text,
    /// A tool-call block for `calls[n]`.
    Tool(usize),
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
    /// How much of `arguments` has been sent on.
    sent: usize,
    /// The call has (had) a block; `closed` once that block ended.
    opened: bool,
    closed: bool,
    /// The JSON sent so far: always a prefix that can still become an object.
    sent_json: PartialObject,
    /// Fragments stopped making a JSON object: nothing more is sent for this call.
    poisoned: bool,
}

/// What the decoder had to mend, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeFacts {
    /// Argument fragments for a call whose block had already been closed (not sent).
    pub late_fragments: u32,
    /// Calls whose arguments were not valid JSON and had to be cut or repaired.
    pub repaired_arguments: u32,
}

/// The decoder's state between events.
pub struct StreamState {
    names: ToolNames,
    done: bool,
    open: Option<(u32, Open)>,
    next_index: u32,
    calls: Vec<ToolCallState>,
    finish_reason: Option<String>,
    usage: Option<ChatUsage>,
    facts: DecodeFacts,
}

/// The decoder: provider reads in, pivot events out, framed by [`SseDriver`].
pub type StreamDecoder = SseDriver<StreamState>;

impl StreamDecoder {
    /// `names`: the tool names the request encoder changed, restored in the events.
    pub fn new(names: ToolNames) -> Self {
        SseDriver::of(StreamState {
            names,
            done: false,
            open: None,
            next_index: 0,
            calls: Vec::new(),
            finish_reason: None,
            usage: None,
            facts: DecodeFacts::default(),
        })
    }

    pub fn facts(&self) -> DecodeFacts {
        self.decoder().facts
    }
}

impl FrameDecoder for StreamState {
    fn frame(&mut self, event: SseEvent<'_>, on_event: &mut impl FnMut(Event<'_>)) {
        if self.done {
            return;
        }
        match event {
            SseEvent::Comment => on_event(Event::KeepAlive),
            SseEvent::Data(data) => {
                let data = data.trim_ascii();
                if data.is_empty() {
                } else if data == b"[DONE]" {
                    self.end(on_event);
                } else {
                    self.on_chunk(data, on_event);
                }
            }
        }
    }

    /// The answer is over: close what is open, send held calls, then usage and why it ended.
    fn end(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        if self.done {
            return;
        }
        self.close_open_block(on_event);
        self.flush_pending_calls(on_event);
        if let Some(u) = &self.usage {
            on_event(Event::Usage(usage(u)));
        }
        if let Some(stop) = stop_reason(self.finish_reason.as_deref()) {
            on_event(Event::Finish {
                stop,
                stop_sequence: None,
            });
        }
        self.done = true;
        on_event(Event::End);
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

impl StreamState {
    fn fail(&mut self, kind: ErrorKind, message: &str, on_event: &mut impl FnMut(Event<'_>)) {
        self.done = true;
        on_event(Event::Error { kind, message });
    }

    fn on_chunk(&mut self, data: &[u8], on_event: &mut impl FnMut(Event<'_>)) {
        // One UTF-8 check for the line; parsing from a `str` then skips it per string.
        let Some(chunk) = std::str::from_utf8(data)
            .ok()
            .and_then(|text| serde_json::from_str::<ChatChunk>(text).ok())
        else {
            self.fail(
                ErrorKind::Api,
                "the provider sent a malformed stream event",
                on_event,
            );
            return;
        };
        // An error ends the answer whatever else the chunk holds: OpenRouter sends one inside
        // a chunk that still has `choices` (after `finish_reason: length`), and the official
        // OpenAI SDK raises on it — the client hears of it, not of a clean stop.
        if let Some(err) = chunk.error.filter(|e| is_error(e)) {
            let (kind, message) = stream_error(err.get());
            self.fail(kind, &message, on_event);
            return;
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(**u);
        }
        // Only the first choice. Borrowed, not moved: this runs per chunk.
        let Some(choice) = chunk.choices.as_ref().and_then(|c| c.choice.as_ref()) else {
            return;
        };
        if let Some(u) = &choice.usage {
            self.usage = Some(**u);
        }
        if let Some(delta) = &choice.delta {
            if let Some(reasoning) = delta.reasoning_text() {
                let index = self.block(Open::Reasoning, on_event);
                on_event(Event::ReasoningDelta {
                    index,
                    text: reasoning,
                });
            }
            if let Some(text) = delta.text() {
                let index = self.block(Open::Text, on_event);
                on_event(Event::TextDelta { index, text });
            }
            if let Some(calls) = &delta.tool_calls {
                for call in calls {
                    self.tool_call(call, on_event);
                }
            }
            if let Some(function) = &delta.function_call {
                let legacy = ToolCallOut {
                    index: Some(0),
                    id: None,
                    function: Some(FunctionOut {
                        name: function.name.clone(),
                        arguments: function.arguments.clone(),
                    }),
                };
                self.tool_call(&legacy, on_event);
            }
        }
        if let Some(reason) = choice.finish_reason.as_deref().filter(|r| !r.is_empty()) {
            self.finish_reason = Some(reason.to_owned());
            // Usage usually follows in its own chunk: close blocks now, report at the end.
            self.close_open_block(on_event);
            self.flush_pending_calls(on_event);
        }
    }

    /// The open block if it is of `kind`, or a new one.
    fn block(&mut self, kind: Open, on_event: &mut impl FnMut(Event<'_>)) -> u32 {
        match self.open {
            Some((index, open)) if open == kind => index,
            _ => self.open_block(kind, on_event),
        }
    }

    fn open_block(&mut self, kind: Open, on_event: &mut impl FnMut(Event<'_>)) -> u32 {
        self.close_open_block(on_event);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        let kind = match kind {
            Open::Reasoning => BlockKind::Reasoning,
            Open::Text => BlockKind::Text,
            Open::Tool(n) => {
                let call = &self.calls[n];
                BlockKind::ToolCall {
                    id: call.provider_id.as_deref().unwrap_or(""),
                    name: self.names.to_client(call.name.as_deref().unwrap_or("")),
                }
            }
        };
        on_event(Event::BlockStart { index, kind });
        index
    }

    fn close_open_block(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        let Some((index, kind)) = self.open.take() else {
            return;
        };
        if let Open::Tool(n) = kind {
            let call = &mut self.calls[n];
            call.closed = true;
            // Arguments cut short (token limit, broken provider) are completed by
            // appending, so the client always accumulates a JSON object.
            if call.sent > 0
                && !call.sent_json.is_complete()
                && let Some(suffix) = call.sent_json.completion().filter(|s| !s.is_empty())
            {
                self.facts.repaired_arguments += 1;
                on_event(Event::ArgumentsDelta {
                    index,
                    json: &suffix,
                });
            }
        }
        on_event(Event::BlockStop { index });
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

    fn tool_call(&mut self, delta: &ToolCallOut<'_>, on_event: &mut impl FnMut(Event<'_>)) {
        let n = self.call_for(delta);
        let function = delta.function.as_ref();
        let fragment = function.and_then(|f| f.arguments.as_deref()).unwrap_or("");
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
            self.facts.late_fragments += 1;
            return;
        }
        call.arguments.push_str(fragment);
        self.advance_calls(on_event);
    }

    /// Opens calls in order as soon as they can stream (see the module docs).
    fn advance_calls(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        if let Some((index, Open::Tool(n))) = self.open {
            self.send_arguments(n, index, on_event);
            return;
        }
        let Some(n) = self.calls.iter().position(|c| !c.opened) else {
            return;
        };
        if self.calls[n].name.is_none() {
            return;
        }
        self.calls[n].opened = true;
        let index = self.open_block(Open::Tool(n), on_event);
        self.send_arguments(n, index, on_event);
    }

    fn send_arguments(&mut self, n: usize, index: u32, on_event: &mut impl FnMut(Event<'_>)) {
        let call = &mut self.calls[n];
        if call.sent >= call.arguments.len() {
            return;
        }
        let fragment = &call.arguments[call.sent..];
        if !call.poisoned {
            let mut next = call.sent_json.clone();
            if next.feed(fragment) {
                call.sent_json = next;
                on_event(Event::ArgumentsDelta {
                    index,
                    json: fragment,
                });
            } else {
                call.poisoned = true;
                self.facts.repaired_arguments += 1;
            }
        }
        call.sent = call.arguments.len();
    }

    /// Sends every call that has not had a block yet, each as start / one delta / stop, with
    /// arguments repaired to a JSON object where needed.
    fn flush_pending_calls(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        for n in 0..self.calls.len() {
            if self.calls[n].opened {
                continue;
            }
            let call = &self.calls[n];
            if call.name.is_none() && call.arguments.trim().is_empty() {
                continue;
            }
            let (input, repaired) = tool_input(&call.arguments);
            self.facts.repaired_arguments += u32::from(repaired);
            let arguments = input.get().to_owned();
            self.calls[n].opened = true;
            let index = self.open_block(Open::Tool(n), on_event);
            if arguments != "{}" {
                on_event(Event::ArgumentsDelta {
                    index,
                    json: &arguments,
                });
            }
            let call = &mut self.calls[n];
            // Whole and repaired already: nothing for the block's close to complete.
            call.sent_json = PartialObject::new();
            call.sent_json.feed(&arguments);
            call.arguments = arguments;
            call.sent = call.arguments.len();
            self.close_open_block(on_event);
        }
    }
}

#[cfg(test)]
mod tests;
