//! Anthropic Messages SSE (from an Anthropic-protocol source) → pivot [`Event`]s,
//! incrementally and sans-IO: fed arbitrary slices, framed by the shared [`SseDriver`]
//! (the `type` inside each event's JSON is what counts, not the `event:` line).
//!
//! Blocks are renumbered from 0 in the order they open; blocks the pivot has no use for
//! (`redacted_thinking`, server tool calls and their results) are skipped with their deltas.
//! A tool block whose `content_block_start` already carries a non-empty `input` (some
//! compatible servers send it whole) gets it as one arguments delta.

use super::decode_response::{WireUsage, stop_reason};
use crate::protocol::anthropic::ErrorKind;
use crate::protocol::errors::stream_error;
use crate::protocol::pivot::{BlockKind, Event, Origin, Usage};
use crate::protocol::sse::{FrameDecoder, SseDriver, SseEvent};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(borrow, default)]
    message: Option<StartMessage<'a>>,
    #[serde(borrow, default)]
    content_block: Option<StartBlock<'a>>,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StartMessage<'a> {
    #[serde(borrow, default)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct StartBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    signature: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    partial_json: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_reason: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_sequence: Option<std::borrow::Cow<'a, str>>,
}

/// The decoder's state between events.
#[derive(Debug, Default)]
pub struct StreamState {
    /// The provider's index of the open block and ours (`None`: a skipped block).
    open: Option<(u32, Option<u32>)>,
    next_index: u32,
    usage: Usage,
    started: bool,
    done: bool,
}

/// The decoder: provider reads in, pivot events out, framed by [`SseDriver`].
pub type StreamDecoder = SseDriver<StreamState>;

impl StreamDecoder {
    pub fn new() -> Self {
        SseDriver::of(StreamState::default())
    }
}

impl FrameDecoder for StreamState {
    fn frame(&mut self, event: SseEvent<'_>, on_event: &mut impl FnMut(Event<'_>)) {
        if self.done {
            return;
        }
        let SseEvent::Data(data) = event else {
            on_event(Event::KeepAlive);
            return;
        };
        let Ok(frame) = serde_json::from_slice::<Frame<'_>>(data) else {
            self.done = true;
            on_event(Event::Error {
                kind: ErrorKind::Api,
                message: "the provider sent a malformed stream event",
            });
            return;
        };
        self.apply(frame, on_event);
    }

    /// The provider's body ended; a block left open is closed and the answer ends.
    fn end(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        if !self.done {
            self.close_open(on_event);
            self.done = true;
            on_event(Event::End);
        }
    }

    /// The stream said it is over (`message_stop` or `error`).
    fn is_done(&self) -> bool {
        self.done
    }
}

impl StreamState {
    fn start(&mut self, id: Option<&str>, on_event: &mut impl FnMut(Event<'_>)) {
        if !self.started {
            self.started = true;
            on_event(Event::Start {
                id: id.unwrap_or_default(),
            });
        }
    }

    fn close_open(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        if let Some((_, Some(index))) = self.open.take() {
            on_event(Event::BlockStop { index });
        }
    }

    fn apply(&mut self, frame: Frame<'_>, on_event: &mut impl FnMut(Event<'_>)) {
        match frame.kind.as_ref() {
            "message_start" => {
                let message = frame.message;
                let id = message.as_ref().and_then(|m| m.id.as_deref());
                self.start(id, on_event);
                if let Some(u) = message.and_then(|m| m.usage) {
                    u.merge_into(&mut self.usage);
                    on_event(Event::Usage(self.usage));
                }
            }
            "content_block_start" => {
                self.start(None, on_event);
                self.close_open(on_event);
                let provider_index = frame.index.unwrap_or(self.next_index);
                let Some(block) = frame.content_block else {
                    self.open = Some((provider_index, None));
                    return;
                };
                let kind = match block.kind.as_ref() {
                    "text" => BlockKind::Text,
                    "thinking" => BlockKind::Reasoning,
                    "tool_use" => BlockKind::ToolCall {
                        id: block.id.as_deref().unwrap_or_default(),
                        name: block.name.as_deref().unwrap_or_default(),
                    },
                    _ => {
                        self.open = Some((provider_index, None));
                        return;
                    }
                };
                let index = self.next_index;
                self.next_index += 1;
                self.open = Some((provider_index, Some(index)));
                on_event(Event::BlockStart { index, kind });
                if let Some(text) = block.text.as_deref().filter(|t| !t.is_empty()) {
                    on_event(Event::TextDelta { index, text });
                }
                if let Some(text) = block.thinking.as_deref().filter(|t| !t.is_empty()) {
                    on_event(Event::ReasoningDelta { index, text });
                }
                if let Some(input) = block
                    .input
                    .map(RawValue::get)
                    .filter(|i| !is_empty_object(i))
                {
                    on_event(Event::ArgumentsDelta { index, json: input });
                }
            }
            "content_block_delta" => {
                let Some((_, Some(index))) = self.open else {
                    return;
                };
                let Some(delta) = frame.delta else { return };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(text) = delta.text.as_deref().filter(|t| !t.is_empty()) {
                            on_event(Event::TextDelta { index, text });
                        }
                    }
                    Some("thinking_delta") => {
                        if let Some(text) = delta.thinking.as_deref().filter(|t| !t.is_empty()) {
                            on_event(Event::ReasoningDelta { index, text });
                        }
                    }
                    Some("signature_delta") => {
                        if let Some(signature) = delta.signature.as_deref() {
                            on_event(Event::ReasoningSignature {
                                index,
                                origin: Origin::Anthropic,
                                signature,
                            });
                        }
                    }
                    Some("input_json_delta") => {
                        if let Some(json) = delta.partial_json.as_deref().filter(|j| !j.is_empty())
                        {
                            on_event(Event::ArgumentsDelta { index, json });
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => self.close_open(on_event),
            "message_delta" => {
                self.start(None, on_event);
                self.close_open(on_event);
                if let Some(u) = frame.usage {
                    u.merge_into(&mut self.usage);
                    on_event(Event::Usage(self.usage));
                }
                if let Some(delta) = frame.delta
                    && let Some(reason) = delta.stop_reason.as_deref()
                {
                    on_event(Event::Finish {
                        stop: stop_reason(reason),
                        stop_sequence: delta.stop_sequence.as_deref(),
                    });
                }
            }
            "ping" => on_event(Event::KeepAlive),
            "message_stop" => {
                self.close_open(on_event);
                self.done = true;
                on_event(Event::End);
            }
            "error" => {
                self.close_open(on_event);
                self.done = true;
                let error = frame.error.map_or("{}", RawValue::get);
                let (kind, message) = stream_error(error);
                on_event(Event::Error {
                    kind,
                    message: &message,
                });
            }
            _ => {}
        }
    }
}

fn is_empty_object(json: &str) -> bool {
    json.bytes().filter(|b| !b.is_ascii_whitespace()).eq(*b"{}")
}

#[cfg(test)]
mod tests;
