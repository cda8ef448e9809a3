//! Pivot [`Event`]s → OpenAI `chat.completion.chunk` SSE for a Chat Completions client.
//!
//! The sequence a client and the official SDKs expect: a first chunk with `role`, then
//! content / `reasoning_content` / tool-call deltas (each call with its own `index`, counted
//! over tool calls only, its id and name first, then argument fragments), one chunk with the
//! `finish_reason`, a choices-less usage chunk when the client asked for
//! `stream_options.include_usage`, and `data: [DONE]`. An error mid-stream becomes an
//! OpenAI-shaped `{"error": …}` chunk followed by `[DONE]`.

use super::encode_response::{WireUsage, finish_reason};
use crate::protocol::anthropic::ErrorKind;
use crate::protocol::pivot::{AnswerFacts, BlockKind, Event, ExchangeContext, StopReason, Usage};
use serde::Serialize;

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<WireUsage>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Reasoning,
    /// A tool call with this client-side index.
    Tool(u32),
    /// The structured-output call: its arguments are the answer's text.
    StructuredText,
}

pub struct StreamEncoder {
    ctx: ExchangeContext,
    started: bool,
    done: bool,
    open: Option<Open>,
    tool_calls: u32,
    stop: Option<StopReason>,
    called_structured: bool,
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
            started: false,
            done: false,
            open: None,
            tool_calls: 0,
            stop: None,
            called_structured: false,
            facts,
        }
    }

    pub fn facts(&self) -> AnswerFacts {
        self.facts
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    fn chunk(&self, out: &mut Vec<u8>, delta: Delta<'_>, finish: Option<&'static str>) {
        let choices = [ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
        }];
        self.write(out, &choices, None);
    }

    fn write(&self, out: &mut Vec<u8>, choices: &[ChunkChoice<'_>], usage: Option<WireUsage>) {
        let chunk = Chunk {
            id: &self.ctx.message_id,
            object: "chat.completion.chunk",
            created: self.ctx.created,
            model: &self.ctx.client_model,
            choices,
            usage,
        };
        out.extend_from_slice(b"data: ");
        // Serialising into a Vec cannot fail for these types.
        let _ = serde_json::to_writer(&mut *out, &chunk);
        out.extend_from_slice(b"\n\n");
    }

    /// The role chunk, sent once before anything else.
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        if self.started || self.done {
            return;
        }
        self.started = true;
        let delta = Delta {
            role: Some("assistant"),
            content: Some(""),
            ..Delta::default()
        };
        self.chunk(out, delta, None);
    }

    pub fn event(&mut self, event: Event<'_>, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.begin(out);
        match event {
            Event::Start { .. } => {}
            // An SSE comment keeps idle connections (and proxies between) open.
            Event::KeepAlive => out.extend_from_slice(b": keep-alive\n\n"),
            Event::End => self.finish(out),
            Event::BlockStart { kind, .. } => self.block_start(kind, out),
            Event::TextDelta { text, .. } => self.text(Some(text), None, out),
            Event::ReasoningDelta { text, .. } => self.text(None, Some(text), out),
            Event::ReasoningSignature { .. } => {}
            Event::ArgumentsDelta { json, .. } => match self.open {
                Some(Open::Tool(index)) => self.tool_delta(index, None, json, out),
                Some(Open::StructuredText) => self.text(Some(json), None, out),
                _ => {}
            },
            Event::BlockStop { .. } => self.open = None,
            Event::Usage(u) => {
                self.facts.usage = u;
                self.facts.usage_reported = true;
            }
            Event::Finish { stop, .. } => self.stop = Some(stop),
            Event::Error { kind, message } => self.fail(kind, message, out),
        }
    }

    fn block_start(&mut self, kind: BlockKind<'_>, out: &mut Vec<u8>) {
        self.open = Some(match kind {
            BlockKind::Text => Open::Text,
            BlockKind::Reasoning => Open::Reasoning,
            BlockKind::ToolCall { name, .. }
                if Some(name) == self.ctx.structured_output_tool.as_deref() =>
            {
                self.called_structured = true;
                Open::StructuredText
            }
            BlockKind::ToolCall { id, name } => {
                let index = self.tool_calls;
                self.tool_calls += 1;
                self.tool_delta(index, Some((id, name)), "", out);
                Open::Tool(index)
            }
        });
    }

    fn text(&self, content: Option<&str>, reasoning: Option<&str>, out: &mut Vec<u8>) {
        let delta = Delta {
            content,
            reasoning_content: reasoning,
            ..Delta::default()
        };
        self.chunk(out, delta, None);
    }

    fn tool_delta(
        &self,
        index: u32,
        head: Option<(&str, &str)>,
        arguments: &str,
        out: &mut Vec<u8>,
    ) {
        let delta = Delta {
            tool_calls: Some([ToolCallDelta {
                index,
                id: head.map(|h| h.0),
                kind: head.map(|_| "function"),
                function: FunctionDelta {
                    name: head.map(|h| h.1),
                    arguments,
                },
            }]),
            ..Delta::default()
        };
        self.chunk(out, delta, None);
    }

    /// The provider's stream ended: the finish chunk, usage if asked for, `[DONE]`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.begin(out);
        let stop = if self.tool_calls > 0 {
            Some(StopReason::ToolUse)
        } else {
            self.stop
        };
        let reason = finish_reason(stop, self.called_structured);
        self.chunk(out, Delta::default(), Some(reason));
        if self.ctx.stream_usage {
            self.write(out, &[], Some(WireUsage::from(self.facts.usage)));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
    }

    /// Ends the stream with an error chunk (the official SDKs raise it) and `[DONE]`.
    pub fn fail(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        self.facts.errored = true;
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&super::openai_error_body(kind, message));
        out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
    }
}

#[cfg(test)]
mod tests;
