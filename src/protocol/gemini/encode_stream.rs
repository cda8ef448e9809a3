//! Pivot [`Event`]s → a Gemini stream: each chunk a `GenerateContentResponse` holding the
//! new parts only — text deltas, `thought: true` reasoning deltas, and each `functionCall`
//! whole once its arguments are complete (Gemini never streams arguments) — and a last chunk
//! with `finishReason` and `usageMetadata`. Framed as SSE (`?alt=sse`, `data: …`) or, without
//! it, as one JSON array (`[` chunk `,` chunk … `]`). The reasoning is sealed into the
//! `thoughtSignature` of the part after it. An error mid-stream is Google's error object as
//! the last chunk.

use super::encode_response::{args_object, seal};
use super::{error_body, finish_reason, kind_status, write_usage};
use crate::protocol::anthropic::ErrorKind;
use crate::protocol::json::Obj;
use crate::protocol::pivot::{
    AnswerFacts, BlockKind, Event, ExchangeContext, Origin, StopReason, Usage,
};
use crate::protocol::responses::seal::Sealed;

enum Open {
    Text,
    Reasoning {
        text: String,
        signature: Option<(Origin, String)>,
    },
    Call {
        id: String,
        name: String,
        arguments: String,
    },
    /// The structured-output call: its arguments are the answer's text.
    Structured,
}

pub struct StreamEncoder {
    ctx: ExchangeContext,
    chunks: usize,
    done: bool,
    open: Option<Open>,
    /// A sealed signature waiting for the next part.
    signature: Option<String>,
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
            chunks: 0,
            done: false,
            open: None,
            signature: None,
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

    pub fn is_json_array(&self) -> bool {
        self.ctx.stream_as_json_array
    }

    /// Nothing goes out before the first part.
    pub fn begin(&mut self, _out: &mut Vec<u8>) {}

    fn frame_start(&mut self, out: &mut Vec<u8>) {
        if self.ctx.stream_as_json_array {
            out.extend_from_slice(if self.chunks == 0 { b"[" } else { b",\r\n" });
        } else {
            out.extend_from_slice(b"data: ");
        }
        self.chunks += 1;
    }

    fn frame_end(&self, out: &mut Vec<u8>) {
        if !self.ctx.stream_as_json_array {
            out.extend_from_slice(b"\r\n\r\n");
        }
    }

    /// One chunk with one part; `fill` writes the part's fields.
    fn chunk(&mut self, out: &mut Vec<u8>, fill: impl FnOnce(&mut Obj<'_>)) {
        self.frame_start(out);
        let signature = self.signature.take();
        let mut o = Obj::new(out);
        o.array("candidates", |c| {
            c.object(|cand| {
                cand.object("content", |content| {
                    content.str("role", "model");
                    content.array("parts", |parts| {
                        parts.object(|p| {
                            fill(p);
                            if let Some(s) = &signature {
                                p.str("thoughtSignature", s);
                            }
                        })
                    });
                });
                cand.u64("index", 0);
            });
        });
        o.str("modelVersion", &self.ctx.client_model);
        o.str("responseId", &self.ctx.message_id);
        o.end();
        self.frame_end(out);
    }

    pub fn event(&mut self, event: Event<'_>, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        match event {
            Event::Start { .. } | Event::KeepAlive => {}
            Event::End => self.finish(out),
            Event::BlockStart { kind, .. } => {
                self.close(out);
                self.open = Some(match kind {
                    BlockKind::Text => Open::Text,
                    BlockKind::Reasoning => Open::Reasoning {
                        text: String::new(),
                        signature: None,
                    },
                    BlockKind::ToolCall { name, .. }
                        if Some(name) == self.ctx.structured_output_tool.as_deref() =>
                    {
                        Open::Structured
                    }
                    BlockKind::ToolCall { id, name } => Open::Call {
                        id: id.to_owned(),
                        name: name.to_owned(),
                        arguments: String::new(),
                    },
                });
            }
            Event::TextDelta { text, .. } => self.chunk(out, |p| p.str("text", text)),
            Event::ReasoningDelta { text, .. } => {
                if let Some(Open::Reasoning { text: all, .. }) = &mut self.open {
                    all.push_str(text);
                }
                self.chunk(out, |p| {
                    p.str("text", text);
                    p.bool("thought", true);
                });
            }
            Event::ReasoningSignature {
                origin, signature, ..
            } => {
                if let Some(Open::Reasoning { signature: s, .. }) = &mut self.open {
                    *s = Some((origin, signature.to_owned()));
                }
            }
            Event::ArgumentsDelta { json, .. } => match &mut self.open {
                Some(Open::Call { arguments, .. }) => arguments.push_str(json),
                Some(Open::Structured) => self.chunk(out, |p| p.str("text", json)),
                _ => {}
            },
            Event::BlockStop { .. } => self.close(out),
            Event::Usage(u) => {
                self.facts.usage = u;
                self.facts.usage_reported = true;
            }
            Event::Finish { stop, .. } => self.stop = Some(stop),
            Event::Error { kind, message } => self.fail(kind, message, out),
        }
    }

    /// Ends the open block: a call goes out whole, reasoning is sealed for the next part.
    fn close(&mut self, out: &mut Vec<u8>) {
        match self.open.take() {
            Some(Open::Reasoning { text, signature }) => {
                let (origin, signature) = match signature {
                    Some((o, s)) => (Some(o.into()), Some(s)),
                    None => (None, None),
                };
                let sealed = Sealed {
                    origin,
                    text,
                    signature,
                    redacted: None,
                };
                self.signature = seal(&self.ctx, &sealed);
            }
            Some(Open::Call {
                id,
                name,
                arguments,
            }) => self.chunk(out, |p| {
                p.object("functionCall", |f| {
                    f.str("id", &id);
                    f.str("name", &name);
                    f.raw("args", &args_object(&arguments));
                });
            }),
            _ => {}
        }
    }

    /// The last chunk: `finishReason` and usage (and a signature no part took yet).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.close(out);
        self.frame_start(out);
        let signature = self.signature.take();
        let (stop, usage) = (self.stop, self.facts.usage);
        let mut o = Obj::new(out);
        o.array("candidates", |c| {
            c.object(|cand| {
                cand.object("content", |content| {
                    content.str("role", "model");
                    content.array("parts", |parts| {
                        parts.object(|p| {
                            p.str("text", "");
                            if let Some(s) = &signature {
                                p.str("thoughtSignature", s);
                            }
                        })
                    });
                });
                cand.str("finishReason", finish_reason(stop));
                cand.u64("index", 0);
            });
        });
        write_usage(usage, o.key("usageMetadata"));
        o.str("modelVersion", &self.ctx.client_model);
        o.str("responseId", &self.ctx.message_id);
        o.end();
        self.frame_end(out);
        if self.ctx.stream_as_json_array {
            out.push(b']');
        }
        self.done = true;
    }

    /// Ends the stream with Google's error object (the SDKs raise it).
    pub fn fail(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        self.facts.errored = true;
        self.frame_start(out);
        out.extend_from_slice(&error_body(kind_status(kind), message));
        self.frame_end(out);
        if self.ctx.stream_as_json_array {
            out.push(b']');
        }
    }
}

#[cfg(test)]
mod tests;
