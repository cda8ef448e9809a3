//! A Gemini SSE stream (`?alt=sse`, from a `protocol: gemini` source) → pivot [`Event`]s,
//! incrementally and sans-IO, framed by the shared [`SseDriver`]. Each chunk holds new
//! parts: thought text opens (or continues) a reasoning block, text a text block, every
//! `functionCall` is one whole call block. A thought signature is given to the reasoning
//! block (one is opened, empty, when Gemini signs without visible thoughts), so it can go back
//! to the source on the next turn. `finishReason` and `usageMetadata` end the answer; a chunk
//! with `error` is the provider's error.

use super::decode_response::{Chunk, provider_error, stop_reason};
use crate::protocol::anthropic::ErrorKind;
use crate::protocol::errors::stream_error;
use crate::protocol::pivot::{BlockKind, Event, Origin};
use crate::protocol::sse::{FrameDecoder, SseDriver, SseEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Reasoning,
}

/// The decoder's state between events.
#[derive(Default)]
pub struct StreamState {
    open: Option<(u32, Open)>,
    next_index: u32,
    calls: u32,
    finish: Option<String>,
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
        let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(data) else {
            self.done = true;
            on_event(Event::Error {
                kind: ErrorKind::Api,
                message: "the provider sent a malformed stream chunk",
            });
            return;
        };
        if !self.started {
            self.started = true;
            on_event(Event::Start {
                id: chunk.response_id.as_deref().unwrap_or_default(),
            });
        }
        if let Some(error) = chunk.error {
            let e = provider_error(error);
            let wrapped = serde_json::json!({"message": e.message, "code": e.code, "type": e.kind});
            let (kind, message) = stream_error(&wrapped.to_string());
            self.done = true;
            on_event(Event::Error {
                kind,
                message: &message,
            });
            return;
        }
        if let Some(usage) = chunk.usage_metadata {
            on_event(Event::Usage(usage.to_pivot()));
        }
        let Some(candidate) = chunk.candidates.into_iter().next() else {
            return;
        };
        if let Some(reason) = candidate.finish_reason {
            self.finish = Some(reason.to_string());
        }
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            if let Some(signature) = &part.thought_signature {
                let index = self.block(Open::Reasoning, on_event);
                on_event(Event::ReasoningSignature {
                    index,
                    origin: Origin::Gemini,
                    signature,
                });
            }
            if let Some(call) = part.function_call {
                self.close(on_event);
                let index = self.next_index;
                self.next_index += 1;
                self.calls += 1;
                let id = call
                    .id
                    .map_or_else(|| format!("call_{index}"), |i| i.to_string());
                let name = call.name.as_deref().unwrap_or_default();
                on_event(Event::BlockStart {
                    index,
                    kind: BlockKind::ToolCall { id: &id, name },
                });
                let args = call.args.map_or("{}", |a| a.get());
                on_event(Event::ArgumentsDelta { index, json: args });
                on_event(Event::BlockStop { index });
                continue;
            }
            let Some(text) = part.text.filter(|t| !t.is_empty()) else {
                continue;
            };
            let want = if part.thought == Some(true) {
                Open::Reasoning
            } else {
                Open::Text
            };
            let index = self.block(want, on_event);
            let text = text.decoded();
            on_event(match want {
                Open::Reasoning => Event::ReasoningDelta { index, text: &text },
                Open::Text => Event::TextDelta { index, text: &text },
            });
        }
    }

    /// The provider's body ended: what is open is closed and the answer ends (`STOP` unless
    /// Gemini said otherwise).
    fn end(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        if self.done {
            return;
        }
        self.close(on_event);
        let reason = self.finish.take().unwrap_or_else(|| "STOP".to_owned());
        on_event(Event::Finish {
            stop: stop_reason(&reason, self.calls > 0),
            stop_sequence: None,
        });
        self.done = true;
        on_event(Event::End);
    }

    /// The stream said it is over.
    fn is_done(&self) -> bool {
        self.done
    }
}

impl StreamState {
    fn close(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        if let Some((index, _)) = self.open.take() {
            on_event(Event::BlockStop { index });
        }
    }

    fn block(&mut self, want: Open, on_event: &mut impl FnMut(Event<'_>)) -> u32 {
        if let Some((index, open)) = self.open
            && open == want
        {
            return index;
        }
        self.close(on_event);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, want));
        let kind = match want {
            Open::Text => BlockKind::Text,
            Open::Reasoning => BlockKind::Reasoning,
        };
        on_event(Event::BlockStart { index, kind });
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Events as `kind:text` strings, the stream fed in 7-byte reads.
    fn decode(stream: &str) -> Vec<String> {
        let mut d = StreamDecoder::new();
        let mut out = Vec::new();
        let mut on = |e: Event<'_>| {
            out.push(match e {
                Event::ReasoningDelta { text, .. } => format!("thought:{text}"),
                Event::TextDelta { text, .. } => format!("text:{text}"),
                Event::ReasoningSignature { signature, .. } => format!("signature:{signature}"),
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
        for piece in stream.as_bytes().chunks(7) {
            d.push(piece, &mut on);
        }
        d.finish(&mut on);
        out.retain(|e| !e.is_empty());
        out
    }

    #[test]
    fn google_stream_shapes() {
        // `\r\n\r\n` between events, thought summaries, a signed call with an `id` (Gemini 3),
        // grounding metadata beside the text, thoughtsTokenCount in the usage.
        let events = [
            json!({"candidates":[{"content":{"role":"model","parts":[{"text":"**Planning**","thought":true}]}}],
                   "modelVersion":"gemini-3-pro-preview"}),
            json!({"candidates":[{"content":{"role":"model","parts":[
                {"functionCall":{"id":"fc_1","name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"CiQB0e2Kb"}]}}]}),
            json!({"candidates":[{"content":{"role":"model","parts":[{"text":"Sunny."}]},
                   "groundingMetadata":{"webSearchQueries":["paris weather"],"groundingChunks":[{"web":{"uri":"https://x","title":"x"}}]},
                   "finishReason":"STOP"}],
                   "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":3,"thoughtsTokenCount":40,"totalTokenCount":53}}),
        ];
        let stream: String = events
            .iter()
            .map(|e| format!("data: {e}\r\n\r\n"))
            .collect();
        assert_eq!(
            decode(&stream),
            [
                "thought:**Planning**",
                "signature:CiQB0e2Kb",
                "call:fc_1:get_weather",
                "args:{\"city\":\"Paris\"}",
                "text:Sunny.",
                // Gemini says STOP after a call; the answer asked for a tool.
                "finish:ToolUse",
            ]
        );
    }
}
