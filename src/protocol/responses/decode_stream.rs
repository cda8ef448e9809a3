//! Responses SSE (from a `protocol: responses` source) → pivot [`Event`]s, incrementally and
//! sans-IO, framed by the shared [`SseDriver`]; the `type` inside each event's JSON counts.
//!
//! Each output item is one block: `message` → text, `reasoning` → reasoning (summary deltas;
//! its `encrypted_content` from `output_item.done` becomes the opaque data),
//! `function_call` → a call. An item whose `.done` brings content no delta announced (some
//! servers only send the finished item) gets it as one delta. `response.completed` /
//! `response.incomplete` end the answer with usage; `error` (details nested in `error` or at
//! the top level) and `response.failed` (which repeats them) are the provider's error, its
//! type mapped to the client's kind (`insufficient_quota` → billing).

use super::decode_response::{WireItem, WireUsage, reasoning_data};
use crate::protocol::anthropic::ErrorKind;
use crate::protocol::errors::stream_error;
use crate::protocol::json::Str;
use crate::protocol::pivot::{BlockKind, Event, Origin, StopReason};
use crate::protocol::sse::{FrameDecoder, SseDriver, SseEvent};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    item: Option<WireItem<'a>>,
    #[serde(borrow)]
    delta: Option<Str<'a>>,
    #[serde(borrow)]
    response: Option<FrameResponse<'a>>,
    #[serde(borrow)]
    message: Option<Str<'a>>,
    #[serde(borrow)]
    code: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct FrameResponse<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    usage: Option<WireUsage>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Reasoning,
    Call,
}

/// The decoder's state between events.
#[derive(Default)]
pub struct StreamState {
    /// The open block: its index, kind, and whether a delta came.
    open: Option<(u32, Open, bool)>,
    next_index: u32,
    called: bool,
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
        if data == b"[DONE]" {
            return;
        }
        match serde_json::from_slice::<Frame<'_>>(data) {
            Ok(frame) => self.apply(frame, on_event),
            Err(_) => self.fail(
                ErrorKind::Api,
                "the provider sent a malformed stream event",
                on_event,
            ),
        }
    }

    /// The provider's body ended; a block left open is closed and the answer ends.
    fn end(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        if !self.done {
            self.close(on_event);
            self.done = true;
            on_event(Event::End);
        }
    }

    /// The stream said it is over.
    fn is_done(&self) -> bool {
        self.done
    }
}

impl StreamState {
    fn fail(&mut self, kind: ErrorKind, message: &str, on_event: &mut impl FnMut(Event<'_>)) {
        self.done = true;
        on_event(Event::Error { kind, message });
    }

    fn start(&mut self, id: &str, on_event: &mut impl FnMut(Event<'_>)) {
        if !self.started {
            self.started = true;
            on_event(Event::Start { id });
        }
    }

    fn close(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        if let Some((index, _, _)) = self.open.take() {
            on_event(Event::BlockStop { index });
        }
    }

    fn open(
        &mut self,
        open: Open,
        kind: BlockKind<'_>,
        on_event: &mut impl FnMut(Event<'_>),
    ) -> u32 {
        self.close(on_event);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, open, false));
        on_event(Event::BlockStart { index, kind });
        index
    }

    /// The open block of this kind, opened when a delta comes first.
    fn block(&mut self, want: Open, on_event: &mut impl FnMut(Event<'_>)) -> Option<u32> {
        match self.open {
            Some((index, open, _)) if open == want => {
                self.open = Some((index, open, true));
                Some(index)
            }
            _ if want == Open::Call => None,
            _ => {
                let kind = if want == Open::Text {
                    BlockKind::Text
                } else {
                    BlockKind::Reasoning
                };
                let index = self.open(want, kind, on_event);
                self.open = Some((index, want, true));
                Some(index)
            }
        }
    }

    fn apply(&mut self, frame: Frame<'_>, on_event: &mut impl FnMut(Event<'_>)) {
        let kind = frame.kind.as_str();
        match kind {
            "response.created" | "response.in_progress" => {
                let id = frame.response.as_ref().and_then(|r| r.id.as_deref());
                self.start(id.unwrap_or_default(), on_event);
            }
            "response.output_item.added" => {
                self.start("", on_event);
                let Some(item) = frame.item else { return };
                match item.kind.as_deref() {
                    Some("message") => {
                        self.open(Open::Text, BlockKind::Text, on_event);
                    }
                    Some("reasoning") => {
                        self.open(Open::Reasoning, BlockKind::Reasoning, on_event);
                    }
                    Some("function_call" | "custom_tool_call") => {
                        self.called = true;
                        let id = item.call_id.as_deref().unwrap_or_default();
                        let name = item.name.as_deref().unwrap_or_default();
                        self.open(Open::Call, BlockKind::ToolCall { id, name }, on_event);
                    }
                    _ => self.close(on_event),
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                if let Some(delta) = frame.delta.as_deref().filter(|d| !d.is_empty())
                    && let Some(index) = self.block(Open::Text, on_event)
                {
                    on_event(Event::TextDelta { index, text: delta });
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(delta) = frame.delta.as_deref().filter(|d| !d.is_empty())
                    && let Some(index) = self.block(Open::Reasoning, on_event)
                {
                    on_event(Event::ReasoningDelta { index, text: delta });
                }
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                if let Some(delta) = frame.delta.as_deref().filter(|d| !d.is_empty())
                    && let Some(index) = self.block(Open::Call, on_event)
                {
                    on_event(Event::ArgumentsDelta { index, json: delta });
                }
            }
            "response.output_item.done" => {
                if let Some(item) = frame.item {
                    self.item_done(item, on_event);
                }
                self.close(on_event);
            }
            "response.completed" | "response.incomplete" => {
                self.close(on_event);
                if let Some(usage) = frame.response.as_ref().and_then(|r| r.usage) {
                    on_event(Event::Usage(usage.to_pivot()));
                }
                let stop = match kind {
                    "response.incomplete" => StopReason::MaxTokens,
                    _ if self.called => StopReason::ToolUse,
                    _ => StopReason::EndTurn,
                };
                on_event(Event::Finish {
                    stop,
                    stop_sequence: None,
                });
                self.done = true;
                on_event(Event::End);
            }
            "response.failed" => {
                let error = frame.response.as_ref().and_then(|r| r.error);
                let (kind, message) = stream_error(
                    error.map_or("{\"message\":\"the response failed\"}", RawValue::get),
                );
                self.fail(kind, &message, on_event);
            }
            "error" => {
                // OpenAI nests the details (`{"type":"error","error":{"type","code",
                // "message"}}`); the documented shape has them at the top level.
                let (kind, message) = match frame.error.filter(|e| e.get() != "null") {
                    Some(nested) => stream_error(nested.get()),
                    None => stream_error(
                        &serde_json::json!({
                            "message": frame.message.as_deref(),
                            "code": frame.code.map(|c| c.get().trim_matches('"').to_owned()),
                        })
                        .to_string(),
                    ),
                };
                let message = if message.starts_with("the provider answered HTTP") {
                    "the provider reported an error".to_owned()
                } else {
                    message
                };
                self.fail(kind, &message, on_event);
            }
            _ => {}
        }
    }

    /// Content the finished item has that no delta brought, and reasoning's opaque data.
    fn item_done(&mut self, item: WireItem<'_>, on_event: &mut impl FnMut(Event<'_>)) {
        let Some((index, open, saw_delta)) = self.open else {
            return;
        };
        match open {
            Open::Text if !saw_delta => {
                for part in &item.content {
                    if let Some(text) = part.text.as_ref().or(part.refusal.as_ref()) {
                        on_event(Event::TextDelta {
                            index,
                            text: &text.decoded(),
                        });
                    }
                }
            }
            Open::Reasoning => {
                if !saw_delta {
                    for part in &item.summary {
                        if let Some(text) = &part.text {
                            on_event(Event::ReasoningDelta {
                                index,
                                text: &text.decoded(),
                            });
                        }
                    }
                }
                let data = reasoning_data(item.id.as_deref(), item.encrypted_content.as_deref());
                if let Some(signature) = data {
                    on_event(Event::ReasoningSignature {
                        index,
                        origin: Origin::Responses,
                        signature: &signature,
                    });
                }
            }
            Open::Call if !saw_delta => {
                let arguments = match (&item.arguments, &item.input) {
                    (Some(a), _) => a.to_string(),
                    (None, Some(input)) => {
                        serde_json::json!({ "input": input.as_str() }).to_string()
                    }
                    (None, None) => String::new(),
                };
                if !arguments.is_empty() {
                    on_event(Event::ArgumentsDelta {
                        index,
                        json: &arguments,
                    });
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The errors a stream ends with, and whether any text came.
    fn errors_of(events: &[serde_json::Value]) -> Vec<(ErrorKind, String)> {
        let sse: String = events
            .iter()
            .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
            .collect();
        let mut d = StreamDecoder::new();
        let mut errors = Vec::new();
        let mut on_event = |e: Event<'_>| {
            if let Event::Error { kind, message } = e {
                errors.push((kind, message.to_owned()));
            }
        };
        d.push(sse.as_bytes(), &mut on_event);
        d.finish(&mut on_event);
        errors
    }

    #[test]
    fn openai_stream_shapes() {
        // Reasoning summary deltas with `obfuscation`, its encrypted content on `.done`, a
        // hosted `web_search_call` item (nothing for the client), text with url_citation
        // annotations, a function call's argument deltas.
        let events = [
            json!({"type":"response.created","sequence_number":0,"response":{"id":"resp_1","status":"in_progress"}}),
            json!({"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}}),
            json!({"type":"response.reasoning_summary_text.delta","sequence_number":2,"item_id":"rs_1","delta":"**Search**","obfuscation":"x1"}),
            json!({"type":"response.output_item.done","sequence_number":3,"output_index":0,"item":{"id":"rs_1","type":"reasoning","encrypted_content":"gAAAAB","summary":[{"type":"summary_text","text":"**Search**"}]}}),
            json!({"type":"response.output_item.added","sequence_number":4,"output_index":1,"item":{"id":"ws_1","type":"web_search_call","status":"in_progress"}}),
            json!({"type":"response.web_search_call.completed","sequence_number":5,"item_id":"ws_1"}),
            json!({"type":"response.output_item.done","sequence_number":6,"output_index":1,"item":{"id":"ws_1","type":"web_search_call","status":"completed","action":{"type":"search","query":"rust"}}}),
            json!({"type":"response.output_item.added","sequence_number":7,"output_index":2,"item":{"id":"msg_1","type":"message","role":"assistant","content":[]}}),
            json!({"type":"response.output_text.delta","sequence_number":8,"item_id":"msg_1","delta":"Rust.","obfuscation":"abc"}),
            json!({"type":"response.output_text.annotation.added","sequence_number":9,"item_id":"msg_1","annotation":{"type":"url_citation","url":"https://www.rust-lang.org","start_index":0,"end_index":5}}),
            json!({"type":"response.output_item.done","sequence_number":10,"output_index":2,"item":{"id":"msg_1","type":"message","content":[{"type":"output_text","text":"Rust.","annotations":[]}]}}),
            json!({"type":"response.output_item.added","sequence_number":11,"output_index":3,"item":{"id":"fc_1","type":"function_call","call_id":"call_1","name":"lookup","arguments":""}}),
            json!({"type":"response.function_call_arguments.delta","sequence_number":12,"item_id":"fc_1","delta":"{\"q\":","obfuscation":"z"}),
            json!({"type":"response.function_call_arguments.delta","sequence_number":13,"item_id":"fc_1","delta":"1}"}),
            json!({"type":"response.output_item.done","sequence_number":14,"output_index":3,"item":{"id":"fc_1","type":"function_call","call_id":"call_1","name":"lookup","arguments":"{\"q\":1}"}}),
            json!({"type":"response.completed","sequence_number":15,"response":{"id":"resp_1","status":"completed","usage":{"input_tokens":9,"output_tokens":4,"output_tokens_details":{"reasoning_tokens":2}}}}),
        ];
        let sse: String = events
            .iter()
            .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
            .collect();
        let mut d = StreamDecoder::new();
        let mut seen = Vec::new();
        let mut on = |e: Event<'_>| {
            seen.push(match e {
                Event::ReasoningDelta { text, .. } => format!("thought:{text}"),
                Event::ReasoningSignature { .. } => "signature".to_owned(),
                Event::TextDelta { text, .. } => format!("text:{text}"),
                Event::BlockStart {
                    kind: BlockKind::ToolCall { id, name },
                    ..
                } => format!("call:{id}:{name}"),
                Event::ArgumentsDelta { json, .. } => format!("args:{json}"),
                Event::Finish { stop, .. } => format!("finish:{stop:?}"),
                Event::Error { message, .. } => format!("error:{message}"),
                _ => String::new(),
            })
        };
        for piece in sse.as_bytes().chunks(11) {
            d.push(piece, &mut on);
        }
        d.finish(&mut on);
        seen.retain(|e| !e.is_empty());
        assert_eq!(
            seen,
            [
                "thought:**Search**",
                "signature",
                "text:Rust.",
                "call:call_1:lookup",
                "args:{\"q\":",
                "args:1}",
                "finish:ToolUse",
            ]
        );
    }

    #[test]
    fn error_event_with_nested_details_keeps_message_and_type() {
        // OpenAI's real event nests the details, then `response.failed` repeats them.
        let quota = "You exceeded your current quota, please check your plan and billing details.";
        let errors = errors_of(&[
            json!({"type":"response.created","sequence_number":0,"response":{"id":"resp_1","status":"in_progress","error":null}}),
            json!({"type":"error","sequence_number":1,"error":{"type":"insufficient_quota","code":"insufficient_quota","message":quota,"param":null}}),
            json!({"type":"response.failed","sequence_number":2,"response":{"id":"resp_1","status":"failed","error":{"code":"insufficient_quota","message":quota}}}),
        ]);
        assert_eq!(errors, [(ErrorKind::Billing, quota.to_owned())]);
    }

    #[test]
    fn error_event_with_top_level_details_and_failed_alone() {
        let errors = errors_of(&[
            json!({"type":"error","code":"rate_limit_exceeded","message":"Slow down","param":null}),
        ]);
        assert_eq!(errors, [(ErrorKind::RateLimit, "Slow down".to_owned())]);
        let errors = errors_of(&[json!({"type":"error","sequence_number":1})]);
        assert_eq!(
            errors,
            [(ErrorKind::Api, "the provider reported an error".to_owned())]
        );
        let errors = errors_of(&[
            json!({"type":"response.failed","response":{"status":"failed","error":{"code":"insufficient_quota","message":"No quota"}}}),
        ]);
        assert_eq!(errors, [(ErrorKind::Billing, "No quota".to_owned())]);
    }
}
