//! OpenAI Responses (`POST /v1/responses`, Codex CLI's only protocol), one file per
//! direction like the other codecs: as a client protocol [`decode_request`],
//! [`encode_response`], [`encode_stream`]; as a source protocol [`encode_request`],
//! [`decode_response`], [`decode_stream`]. Reasoning a provider needs back travels sealed in
//! `encrypted_content` ([`seal`]). Errors are OpenAI's shape
//! ([`crate::protocol::openai_chat::openai_error_body`]). `docs/responses.md` has the
//! mapping.
//!
//! This file holds what the encoders share: the output items of an answer and how they,
//! usage and the response object are written.

pub mod decode_request;
pub mod decode_response;
pub mod decode_stream;
pub mod encode_request;
pub mod encode_response;
pub mod encode_stream;
pub mod seal;

use crate::protocol::json::Obj;
use crate::protocol::pivot::{ClientTools, ExchangeContext, Origin, StopReason, Usage};
use seal::{ReasoningKey, Sealed};

/// One output item of an answer, as the client will see it.
#[derive(Debug, Clone)]
pub(crate) enum OutItem {
    Message {
        id: String,
        text: String,
    },
    Reasoning {
        id: String,
        text: String,
        signature: Option<(Origin, String)>,
        redacted: Option<(Origin, String)>,
        /// The sealed blob, made once when the item is complete ([`OutItem::seal`]).
        encrypted: Option<String>,
    },
    /// A function call, or a free-form (`custom`) one when the client declared it so.
    Call {
        id: String,
        call_id: String,
        /// The name the source used (flattened for namespaced tools).
        name: String,
        arguments: String,
    },
}

/// Ids of the items in one answer: `<prefix>_<request id>_<n>`.
pub(crate) fn item_id(ctx: &ExchangeContext, prefix: &str, n: usize) -> String {
    let base = ctx
        .message_id
        .strip_prefix("resp_")
        .unwrap_or(&ctx.message_id);
    format!("{prefix}_{base}_{n}")
}

/// The text a free-form call carries: the `input` its function form was given (or the
/// arguments as they are when the model did not manage that).
pub(crate) fn custom_input(arguments: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Input {
        input: String,
    }
    serde_json::from_str::<Input>(arguments).map_or_else(|_| arguments.to_owned(), |i| i.input)
}

impl OutItem {
    /// Seals a complete reasoning item's data into its `encrypted_content` (once: every
    /// later write of the item shows the same blob).
    pub(crate) fn seal(&mut self, key: Option<&ReasoningKey>) {
        let (
            Some(key),
            OutItem::Reasoning {
                text,
                signature,
                redacted,
                encrypted,
                ..
            },
        ) = (key, self)
        else {
            return;
        };
        let origin = signature.as_ref().or(redacted.as_ref()).map(|(o, _)| *o);
        let sealed = Sealed {
            origin: origin.map(Into::into),
            text: text.clone(),
            signature: signature.as_ref().map(|(_, s)| s.clone()),
            redacted: redacted.as_ref().map(|(_, r)| r.clone()),
        };
        *encrypted = Some(key.seal(&sealed));
    }

    /// Writes the item; `done` decides its status (`in_progress` while it streams, with its
    /// content empty).
    pub(crate) fn write(&self, done: bool, tools: &ClientTools, out: &mut Vec<u8>) {
        let mut o = Obj::new(out);
        let status = if done { "completed" } else { "in_progress" };
        match self {
            OutItem::Message { id, text } => {
                o.str("type", "message");
                o.str("id", id);
                o.str("status", status);
                o.str("role", "assistant");
                o.array("content", |c| {
                    if done {
                        c.object(|p| output_text(p, text));
                    }
                });
            }
            OutItem::Reasoning {
                id,
                text,
                encrypted,
                ..
            } => {
                o.str("type", "reasoning");
                o.str("id", id);
                o.array("summary", |s| {
                    if done && !text.is_empty() {
                        s.object(|p| {
                            p.str("type", "summary_text");
                            p.str("text", text);
                        });
                    }
                });
                if done && let Some(blob) = encrypted {
                    o.str("encrypted_content", blob);
                }
            }
            OutItem::Call {
                id,
                call_id,
                name,
                arguments,
            } => {
                let (namespace, client_name) = match tools.namespaced(name) {
                    Some((ns, n)) => (Some(ns), n),
                    None => (None, name.as_str()),
                };
                if tools.is_custom(name) {
                    o.str("type", "custom_tool_call");
                    o.str("id", id);
                    o.str("status", status);
                    o.str("call_id", call_id);
                    o.str("name", client_name);
                    if let Some(ns) = namespace {
                        o.str("namespace", ns);
                    }
                    let input = if done {
                        custom_input(arguments)
                    } else {
                        String::new()
                    };
                    o.str("input", &input);
                } else {
                    o.str("type", "function_call");
                    o.str("id", id);
                    o.str("status", status);
                    o.str("call_id", call_id);
                    o.str("name", client_name);
                    if let Some(ns) = namespace {
                        o.str("namespace", ns);
                    }
                    o.str("arguments", if done { arguments } else { "" });
                }
            }
        }
        o.end();
    }
}

/// An `output_text` content part.
pub(crate) fn output_text(p: &mut Obj<'_>, text: &str) {
    p.str("type", "output_text");
    p.str("text", text);
    p.raw("annotations", "[]");
    p.raw("logprobs", "[]");
}

/// Responses usage: `input_tokens` includes cached ones.
pub(crate) fn write_usage(usage: Usage, out: &mut Vec<u8>) {
    let mut u = Obj::new(out);
    u.u64("input_tokens", usage.input);
    u.object("input_tokens_details", |d| {
        d.u64("cached_tokens", usage.cache_read.unwrap_or(0))
    });
    u.u64("output_tokens", usage.output);
    u.object("output_tokens_details", |d| {
        d.u64("reasoning_tokens", usage.reasoning.unwrap_or(0))
    });
    u.u64("total_tokens", usage.input + usage.output);
    u.end();
}

/// How an answer ended, in Responses terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    InProgress,
    Completed,
    /// Cut by the output limit.
    Incomplete,
    Failed,
}

impl Status {
    pub(crate) fn of(stop: Option<StopReason>) -> Status {
        match stop {
            Some(StopReason::MaxTokens) => Status::Incomplete,
            _ => Status::Completed,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Incomplete => "incomplete",
            Status::Failed => "failed",
        }
    }
}

/// The `response` object: what the answer is so far (`items` complete ones).
pub(crate) struct ResponseObject<'r> {
    pub ctx: &'r ExchangeContext,
    pub status: Status,
    pub items: &'r [OutItem],
    pub usage: Option<Usage>,
    /// `(code, message)` of a failed response.
    pub error: Option<(&'r str, &'r str)>,
}

impl ResponseObject<'_> {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let ctx = self.ctx;
        let mut o = Obj::new(out);
        o.str("id", &ctx.message_id);
        o.str("object", "response");
        o.u64("created_at", ctx.created);
        o.str("status", self.status.as_str());
        match self.error {
            Some((code, message)) => o.object("error", |e| {
                e.str("code", code);
                e.str("message", message);
            }),
            None => o.raw("error", "null"),
        }
        if self.status == Status::Incomplete {
            o.raw("incomplete_details", "{\"reason\":\"max_output_tokens\"}");
        } else {
            o.raw("incomplete_details", "null");
        }
        o.str("model", &ctx.client_model);
        let key = o.key("output");
        key.push(b'[');
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                key.push(b',');
            }
            item.write(true, &ctx.client_tools, key);
        }
        key.push(b']');
        o.bool("parallel_tool_calls", true);
        o.str("tool_choice", "auto");
        o.raw("tools", "[]");
        o.bool("store", false);
        match self.usage {
            Some(usage) => write_usage(usage, o.key("usage")),
            None => o.raw("usage", "null"),
        }
        o.end();
    }
}

/// The `(type, code)` of an error as OpenAI names them.
pub(crate) fn error_code(kind: crate::protocol::anthropic::ErrorKind) -> &'static str {
    use crate::protocol::anthropic::ErrorKind;
    match kind {
        ErrorKind::RateLimit => "rate_limit_exceeded",
        ErrorKind::Billing => "insufficient_quota",
        ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => "invalid_request_error",
        ErrorKind::Authentication => "invalid_api_key",
        ErrorKind::Timeout => "timeout",
        _ => "server_error",
    }
}

/// Writes one SSE event line pair: `event: <type>` and its data, with `type` and
/// `sequence_number` filled in around `fill`'s fields.
pub(crate) fn write_event(
    out: &mut Vec<u8>,
    kind: &str,
    sequence: u64,
    fill: impl FnOnce(&mut Obj<'_>),
) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let mut o = Obj::new(out);
    o.str("type", kind);
    fill(&mut o);
    o.u64("sequence_number", sequence);
    o.end();
    out.extend_from_slice(b"\n\n");
}
