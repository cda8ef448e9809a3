//! Pivot [`Event`]s → the Responses SSE sequence for a Responses client (Codex CLI, the SDKs'
//! stream helpers): `response.created` and `response.in_progress`; per block an
//! `output_item.added`, its deltas (`output_text.delta` inside a `content_part`,
//! `reasoning_summary_text.delta` inside a summary part, `function_call_arguments.delta`),
//! the matching `.done` events and `output_item.done` with the whole item; at the end
//! `response.completed` (or `response.incomplete` when the output limit cut it) with every
//! item and the usage. Every event has a `sequence_number`. An error mid-stream ends it with
//! `response.failed`. Free-form (`custom`) calls are held until complete — their text is
//! the `input` inside the function arguments the source streams — then sent as one
//! `custom_tool_call_input.delta` and `.done`.

use super::{OutItem, ResponseObject, Status, error_code, item_id, write_event};
use crate::protocol::anthropic::ErrorKind;
use crate::protocol::json::Obj;
use crate::protocol::pivot::{AnswerFacts, BlockKind, Event, ExchangeContext, StopReason, Usage};

pub struct StreamEncoder {
    ctx: ExchangeContext,
    sequence: u64,
    started: bool,
    done: bool,
    /// Complete items, in output order.
    items: Vec<OutItem>,
    /// The item being streamed (its output index is `items.len()`).
    open: Option<OutItem>,
    /// A reasoning item's summary part was opened.
    summary_open: bool,
    stop: Option<StopReason>,
    facts: AnswerFacts,
}

impl StreamEncoder {
    pub fn new(ctx: ExchangeContext) -> Self {
        let facts = AnswerFacts {
            usage: Usage {
                input: ctx.input_tokens_estimate,
                ..Usage::default()
            },
            ..AnswerFacts::default()
        };
        StreamEncoder {
            ctx,
            sequence: 0,
            started: false,
            done: false,
            items: Vec::new(),
            open: None,
            summary_open: false,
            stop: None,
            facts,
        }
    }

    pub fn facts(&self) -> AnswerFacts {
        self.facts
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, fill: impl FnOnce(&mut Obj<'_>)) {
        write_event(out, kind, self.sequence, fill);
        self.sequence += 1;
    }

    fn emit_response(
        &mut self,
        out: &mut Vec<u8>,
        kind: &str,
        status: Status,
        error: Option<(&str, &str)>,
    ) {
        let usage = (status != Status::InProgress).then_some(self.facts.usage);
        let mut body = Vec::with_capacity(512);
        ResponseObject {
            ctx: &self.ctx,
            status,
            items: &self.items,
            usage,
            error,
        }
        .write(&mut body);
        self.emit(out, kind, |o| {
            o.raw("response", std::str::from_utf8(&body).unwrap_or("{}"))
        });
    }

    /// `response.created` and `response.in_progress`, once, before anything else.
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        if self.started || self.done {
            return;
        }
        self.started = true;
        self.emit_response(out, "response.created", Status::InProgress, None);
        self.emit_response(out, "response.in_progress", Status::InProgress, None);
    }

    pub fn event(&mut self, event: Event<'_>, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.begin(out);
        match event {
            Event::Start { .. } => {}
            Event::KeepAlive => out.extend_from_slice(b": keep-alive\n\n"),
            Event::End => self.finish(out),
            Event::BlockStart { kind, .. } => self.block_start(kind, out),
            Event::TextDelta { text, .. } => self.text_delta(text, out),
            Event::ReasoningDelta { text, .. } => self.reasoning_delta(text, out),
            Event::ReasoningSignature {
                origin, signature, ..
            } => {
                if let Some(OutItem::Reasoning { signature: s, .. }) = &mut self.open {
                    *s = Some((origin, signature.to_owned()));
                }
            }
            Event::ArgumentsDelta { json, .. } => self.arguments_delta(json, out),
            Event::BlockStop { .. } => self.close(out),
            Event::Usage(u) => {
                self.facts.usage = u;
                self.facts.usage_reported = true;
            }
            Event::Finish { stop, .. } => self.stop = Some(stop),
            Event::Error { kind, message } => self.fail(kind, message, out),
        }
    }

    fn output_index(&self) -> u64 {
        self.items.len() as u64
    }

    fn block_start(&mut self, kind: BlockKind<'_>, out: &mut Vec<u8>) {
        self.close(out);
        let n = self.items.len();
        let item = match kind {
            BlockKind::Text => self.message(n),
            BlockKind::ToolCall { name, .. }
                if Some(name) == self.ctx.structured_output_tool.as_deref() =>
            {
                self.message(n)
            }
            BlockKind::Reasoning => OutItem::Reasoning {
                id: item_id(&self.ctx, "rs", n),
                text: String::new(),
                signature: None,
                redacted: None,
                encrypted: None,
            },
            BlockKind::ToolCall { id, name } => OutItem::Call {
                id: item_id(&self.ctx, "fc", n),
                call_id: id.to_owned(),
                name: name.to_owned(),
                arguments: String::new(),
            },
        };
        let mut json = Vec::with_capacity(128);
        item.write(false, &self.ctx.client_tools, &mut json);
        let index = self.output_index();
        self.emit(out, "response.output_item.added", |o| {
            o.u64("output_index", index);
            o.raw("item", std::str::from_utf8(&json).unwrap_or("{}"));
        });
        if let OutItem::Message { id, .. } = &item {
            let id = id.clone();
            self.emit(out, "response.content_part.added", |o| {
                o.str("item_id", &id);
                o.u64("output_index", index);
                o.u64("content_index", 0);
                o.object("part", |p| super::output_text(p, ""));
            });
        }
        self.summary_open = false;
        self.open = Some(item);
    }

    fn message(&self, n: usize) -> OutItem {
        OutItem::Message {
            id: item_id(&self.ctx, "msg", n),
            text: String::new(),
        }
    }

    fn text_delta(&mut self, delta: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some(OutItem::Message { .. })) {
            self.block_start(BlockKind::Text, out);
        }
        let index = self.output_index();
        let Some(OutItem::Message { id, text }) = &mut self.open else {
            return;
        };
        text.push_str(delta);
        let id = id.clone();
        self.emit(out, "response.output_text.delta", |o| {
            o.str("item_id", &id);
            o.u64("output_index", index);
            o.u64("content_index", 0);
            o.str("delta", delta);
            o.raw("logprobs", "[]");
        });
    }

    fn reasoning_delta(&mut self, delta: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some(OutItem::Reasoning { .. })) {
            self.block_start(BlockKind::Reasoning, out);
        }
        let index = self.output_index();
        let Some(OutItem::Reasoning { id, text, .. }) = &mut self.open else {
            return;
        };
        text.push_str(delta);
        let id = id.clone();
        if !self.summary_open {
            self.summary_open = true;
            self.emit(out, "response.reasoning_summary_part.added", |o| {
                o.str("item_id", &id);
                o.u64("output_index", index);
                o.u64("summary_index", 0);
                o.object("part", |p| {
                    p.str("type", "summary_text");
                    p.str("text", "");
                });
            });
        }
        self.emit(out, "response.reasoning_summary_text.delta", |o| {
            o.str("item_id", &id);
            o.u64("output_index", index);
            o.u64("summary_index", 0);
            o.str("delta", delta);
        });
    }

    fn arguments_delta(&mut self, json: &str, out: &mut Vec<u8>) {
        match &mut self.open {
            // The structured-output call's arguments are the answer's text.
            Some(OutItem::Message { .. }) => self.text_delta(json, out),
            Some(OutItem::Call {
                id,
                name,
                arguments,
                ..
            }) => {
                arguments.push_str(json);
                if self.ctx.client_tools.is_custom(name) {
                    return;
                }
                let id = id.clone();
                let index = self.output_index();
                self.emit(out, "response.function_call_arguments.delta", |o| {
                    o.str("item_id", &id);
                    o.u64("output_index", index);
                    o.str("delta", json);
                });
            }
            _ => {}
        }
    }

    /// Ends the open item: its `.done` events and `output_item.done`.
    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(mut item) = self.open.take() else {
            return;
        };
        item.seal(self.ctx.reasoning_key.as_ref());
        let index = self.output_index();
        match &item {
            OutItem::Message { id, text } => {
                self.emit(out, "response.output_text.done", |o| {
                    o.str("item_id", id);
                    o.u64("output_index", index);
                    o.u64("content_index", 0);
                    o.str("text", text);
                    o.raw("logprobs", "[]");
                });
                self.emit(out, "response.content_part.done", |o| {
                    o.str("item_id", id);
                    o.u64("output_index", index);
                    o.u64("content_index", 0);
                    o.object("part", |p| super::output_text(p, text));
                });
            }
            OutItem::Reasoning { id, text, .. } if self.summary_open => {
                self.emit(out, "response.reasoning_summary_text.done", |o| {
                    o.str("item_id", id);
                    o.u64("output_index", index);
                    o.u64("summary_index", 0);
                    o.str("text", text);
                });
                self.emit(out, "response.reasoning_summary_part.done", |o| {
                    o.str("item_id", id);
                    o.u64("output_index", index);
                    o.u64("summary_index", 0);
                    o.object("part", |p| {
                        p.str("type", "summary_text");
                        p.str("text", text);
                    });
                });
            }
            OutItem::Reasoning { .. } => {}
            OutItem::Call {
                id,
                name,
                arguments,
                ..
            } if self.ctx.client_tools.is_custom(name) => {
                let input = super::custom_input(arguments);
                self.emit(out, "response.custom_tool_call_input.delta", |o| {
                    o.str("item_id", id);
                    o.u64("output_index", index);
                    o.str("delta", &input);
                });
                self.emit(out, "response.custom_tool_call_input.done", |o| {
                    o.str("item_id", id);
                    o.u64("output_index", index);
                    o.str("input", &input);
                });
            }
            OutItem::Call { id, arguments, .. } => {
                self.emit(out, "response.function_call_arguments.done", |o| {
                    o.str("item_id", id);
                    o.u64("output_index", index);
                    o.str("arguments", arguments);
                });
            }
        }
        let mut json = Vec::with_capacity(256);
        item.write(true, &self.ctx.client_tools, &mut json);
        self.emit(out, "response.output_item.done", |o| {
            o.u64("output_index", index);
            o.raw("item", std::str::from_utf8(&json).unwrap_or("{}"));
        });
        self.items.push(item);
    }

    /// The provider's stream ended: the open item closes, then `response.completed` (or
    /// `response.incomplete`) with the whole answer.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.begin(out);
        self.close(out);
        let status = Status::of(self.stop);
        let kind = match status {
            Status::Incomplete => "response.incomplete",
            _ => "response.completed",
        };
        self.emit_response(out, kind, status, None);
        self.done = true;
    }

    /// Ends the stream with `response.failed` (Codex and the SDKs report its error).
    pub fn fail(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.begin(out);
        self.open = None;
        self.facts.errored = true;
        self.emit_response(
            out,
            "response.failed",
            Status::Failed,
            Some((error_code(kind), message)),
        );
        self.done = true;
    }
}

#[cfg(test)]
mod tests;
