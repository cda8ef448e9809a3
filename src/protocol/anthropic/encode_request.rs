//! A pivot [`Conversation`] → an Anthropic `POST /v1/messages` body, for Anthropic-protocol
//! sources (Anthropic, DeepSeek's, Kimi's, GLM's and Qwen's Anthropic endpoints).
//!
//! What the Messages API demands and other protocols do not, made true here:
//! `max_tokens` is always set; roles alternate (consecutive turns of one role are merged,
//! tool results first in their user turn); no empty text blocks; mid-conversation system
//! text becomes user text (the standard API has no such role); thinking is only switched on
//! where the API accepts it (see [`thinking_for`]). Structured output is a forced tool whose
//! input is the answer ([`STRUCTURED_OUTPUT_TOOL`]).

use crate::protocol::json::{Obj, Text};
use crate::protocol::notes::{Change, Field, Notes};
use crate::protocol::pivot::{
    Conversation, ExchangeContext, Media, Part, Reasoning, Refusal, ResponseFormat, Role,
    ToolChoice, Turn,
};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The tool an Anthropic source is made to call for `response_format` JSON output.
pub const STRUCTURED_OUTPUT_TOOL: &str = "structured_output";
/// `max_tokens` when the client sets none (the Messages API requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// The smallest thinking budget the Messages API accepts.
const MIN_THINKING_BUDGET: u64 = 1024;

/// Per-adapter settings for this encoder.
#[derive(Debug, Clone, Copy, Default)]
pub struct EncodeOptions {
    /// The adapter's `max_tokens_limit`: larger requests are clamped.
    pub max_tokens_limit: Option<u64>,
    /// The client's body length: the provider's body is about as long, allocated once.
    pub size_hint: usize,
}

struct Body<'a> {
    model: &'a str,
    max_tokens: u64,
    system: Vec<&'a Text<'a>>,
    messages: Vec<Message<'a>>,
    tools: Vec<Tool<'a>>,
    tool_choice: Option<Choice<'a>>,
    stop_sequences: &'a [Cow<'a, str>],
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    thinking: Option<Thinking>,
    metadata: Option<&'a str>,
    stream: bool,
}

struct Message<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

/// A content block. Text stays in its escaped form from the client's request to the
/// provider's (never unescaped and escaped again).
enum Block<'a> {
    Text(Cow<'a, Text<'a>>),
    Image(Source<'a>),
    Document {
        source: Source<'a>,
        title: Option<&'a str>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Box<RawValue>,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: Vec<Block<'a>>,
        is_error: bool,
    },
    Thinking {
        thinking: &'a Text<'a>,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
}

enum Source<'a> {
    Base64 {
        media_type: &'a str,
        data: &'a Text<'a>,
    },
    Url {
        url: &'a str,
    },
}

struct Tool<'a> {
    name: &'a str,
    description: Option<Cow<'a, Text<'a>>>,
    input_schema: &'a RawValue,
}

struct Choice<'a> {
    kind: &'static str,
    name: Option<&'a str>,
    disable_parallel_tool_use: bool,
}

struct Thinking {
    budget_tokens: u64,
}

impl Body<'_> {
    /// The request body, written in one pass (fields in the Messages API's documented order).
    fn write(&self, out: &mut Vec<u8>) {
        let mut o = Obj::new(out);
        o.str("model", self.model);
        o.u64("max_tokens", self.max_tokens);
        if !self.system.is_empty() {
            o.array("system", |a| {
                for text in &self.system {
                    a.object(|o| {
                        o.str("type", "text");
                        o.text("text", text);
                    });
                }
            });
        }
        o.array("messages", |a| {
            for m in &self.messages {
                a.object(|o| {
                    o.str("role", m.role);
                    write_blocks(o, "content", &m.content);
                });
            }
        });
        if !self.tools.is_empty() {
            o.array("tools", |a| {
                for t in &self.tools {
                    a.object(|o| {
                        o.str("name", t.name);
                        if let Some(d) = &t.description {
                            o.text("description", d);
                        }
                        o.raw("input_schema", t.input_schema.get());
                    });
                }
            });
        }
        if let Some(c) = &self.tool_choice {
            o.object("tool_choice", |o| {
                o.str("type", c.kind);
                if let Some(name) = c.name {
                    o.str("name", name);
                }
                if c.disable_parallel_tool_use {
                    o.bool("disable_parallel_tool_use", true);
                }
            });
        }
        if !self.stop_sequences.is_empty() {
            o.array("stop_sequences", |a| {
                for s in self.stop_sequences {
                    a.str(s);
                }
            });
        }
        if let Some(t) = self.temperature {
            o.f64("temperature", t);
        }
        if let Some(p) = self.top_p {
            o.f64("top_p", p);
        }
        if let Some(k) = self.top_k {
            o.u64("top_k", k);
        }
        if let Some(t) = &self.thinking {
            o.object("thinking", |o| {
                o.str("type", "enabled");
                o.u64("budget_tokens", t.budget_tokens);
            });
        }
        if let Some(user_id) = self.metadata {
            o.object("metadata", |o| o.str("user_id", user_id));
        }
        if self.stream {
            o.bool("stream", true);
        }
        o.end();
    }
}

fn write_blocks(o: &mut Obj<'_>, key: &str, blocks: &[Block<'_>]) {
    o.array(key, |a| {
        for b in blocks {
            a.object(|o| b.write(o));
        }
    });
}

impl Block<'_> {
    fn write(&self, o: &mut Obj<'_>) {
        match self {
            Block::Text(text) => {
                o.str("type", "text");
                o.text("text", text);
            }
            Block::Image(source) => {
                o.str("type", "image");
                o.object("source", |o| source.write(o));
            }
            Block::Document { source, title } => {
                o.str("type", "document");
                o.object("source", |o| source.write(o));
                if let Some(title) = title {
                    o.str("title", title);
                }
            }
            Block::ToolUse { id, name, input } => {
                o.str("type", "tool_use");
                o.str("id", id);
                o.str("name", name);
                o.raw("input", input.get());
            }
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                o.str("type", "tool_result");
                o.str("tool_use_id", tool_use_id);
                write_blocks(o, "content", content);
                if *is_error {
                    o.bool("is_error", true);
                }
            }
            Block::Thinking {
                thinking,
                signature,
            } => {
                o.str("type", "thinking");
                o.text("thinking", thinking);
                o.str("signature", signature);
            }
            Block::RedactedThinking { data } => {
                o.str("type", "redacted_thinking");
                o.str("data", data);
            }
        }
    }
}

impl Source<'_> {
    fn write(&self, o: &mut Obj<'_>) {
        match self {
            Source::Base64 { media_type, data } => {
                o.str("type", "base64");
                o.str("media_type", media_type);
                o.text("data", data);
            }
            Source::Url { url } => {
                o.str("type", "url");
                o.str("url", url);
            }
        }
    }
}

/// A schema written here as a literal, borrowed for the request.
fn literal_schema(json: &'static str) -> &'static RawValue {
    // Parsing only fails on invalid JSON, which the literals below are not.
    serde_json::from_str(json).unwrap_or(RawValue::NULL)
}

/// Encodes the conversation for an Anthropic source, noting what it changed.
/// `source_model` is the mapped model.
pub fn encode_request(
    conv: &Conversation<'_>,
    source_model: &str,
    options: EncodeOptions,
    ctx: &mut ExchangeContext,
    notes: &mut Notes,
) -> Result<Vec<u8>, Refusal> {
    let mut max_tokens = conv.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).max(1);
    if conv.max_tokens.is_none() {
        let to = format!("{DEFAULT_MAX_TOKENS} (this source requires one)");
        notes.field(Field::MaxTokens, None, Change::Became(to.into()));
    }
    if let Some(limit) = options.max_tokens_limit {
        notes.clamp_max_tokens(conv.max_tokens, Some(limit.max(1)));
        max_tokens = max_tokens.min(limit.max(1));
    }
    let structured_schema = match &conv.response_format {
        None => None,
        Some(_) if !conv.tools.is_empty() => {
            return Err(Refusal(
                "response_format: JSON output together with tools is not supported on an Anthropic-protocol source; send one or the other".to_owned(),
            ));
        }
        Some(ResponseFormat::JsonObject) => Some(literal_schema(r#"{"type":"object"}"#)),
        Some(ResponseFormat::JsonSchema { schema, .. }) => Some(&**schema),
    };
    // The Messages API requires a schema for every tool.
    let default_schema = literal_schema(r#"{"type":"object","properties":{}}"#);
    let mut tools: Vec<Tool<'_>> = conv
        .tools
        .iter()
        .map(|t| Tool {
            name: &t.name,
            description: t
                .description
                .as_ref()
                .filter(|d| !d.is_empty())
                .map(Cow::Borrowed),
            input_schema: t.parameters.as_deref().unwrap_or(default_schema),
        })
        .collect();
    let mut tool_choice = tool_choice(conv);
    if let Some(schema) = structured_schema {
        notes.field(
            Field::ResponseFormat,
            None,
            Change::Became(format!("a forced {STRUCTURED_OUTPUT_TOOL} tool").into()),
        );
        tools.push(Tool {
            name: STRUCTURED_OUTPUT_TOOL,
            description: Some(Cow::Owned(Text::from_escaped(
                "Give the final answer by calling this tool with it.",
            ))),
            input_schema: schema,
        });
        tool_choice = Some(Choice {
            kind: "tool",
            name: Some(STRUCTURED_OUTPUT_TOOL),
            disable_parallel_tool_use: true,
        });
        ctx.structured_output_tool = Some(STRUCTURED_OUTPUT_TOOL.to_owned());
    }
    let thinking = thinking_for(conv, max_tokens, tool_choice.as_ref(), notes);
    sampling_notes(conv, thinking.is_some(), notes);
    let body = Body {
        model: source_model,
        max_tokens,
        system: conv.system.iter().filter(|s| !s.is_empty()).collect(),
        messages: messages(&conv.turns, notes),
        tools,
        tool_choice,
        stop_sequences: &conv.stop,
        // The Messages API takes 0–1; OpenAI's 0–2 is clamped. With thinking on, it accepts
        // neither temperature nor top_k changes.
        temperature: conv
            .temperature
            .map(|t| t.clamp(0.0, 1.0))
            .filter(|_| thinking.is_none()),
        top_p: conv.top_p.filter(|_| thinking.is_none()),
        top_k: conv.top_k.filter(|_| thinking.is_none()),
        thinking,
        metadata: conv.user.as_deref(),
        stream: conv.stream,
    };
    ctx.stream = conv.stream;
    ctx.stream_usage = conv.stream_usage;
    let mut out = Vec::with_capacity(options.size_hint + options.size_hint / 8 + 256);
    body.write(&mut out);
    Ok(out)
}

/// Temperature above the Messages API's 1, and sampling it refuses with thinking on.
fn sampling_notes(conv: &Conversation<'_>, thinking: bool, notes: &mut Notes) {
    let refused = Change::Dropped(Some("not accepted with thinking on"));
    if let Some(t) = conv.temperature {
        if thinking {
            notes.field(Field::Temperature, None, refused.clone());
        } else if t > 1.0 {
            notes.field(
                Field::Temperature,
                Some(t.to_string().into()),
                Change::Clamped(1),
            );
        }
    }
    if thinking && conv.top_p.is_some() {
        notes.field(Field::TopP, None, refused.clone());
    }
    if thinking && conv.top_k.is_some() {
        notes.field(Field::TopK, None, refused);
    }
}

fn tool_choice<'c>(conv: &'c Conversation<'_>) -> Option<Choice<'c>> {
    let single = conv.parallel_tool_calls == Some(false);
    let (kind, name) = match &conv.tool_choice {
        None if single && !conv.tools.is_empty() => ("auto", None),
        None => return None,
        Some(ToolChoice::Auto) => ("auto", None),
        Some(ToolChoice::Required) => ("any", None),
        Some(ToolChoice::None) => ("none", None),
        Some(ToolChoice::Named(n)) => ("tool", Some(n.as_ref())),
    };
    Some(Choice {
        kind,
        name,
        disable_parallel_tool_use: single && kind != "none",
    })
}

/// Extended thinking, when asked for and accepted: the Messages API refuses it with a forced
/// tool choice, below a 1,024-token budget, and when the last assistant turn called tools
/// without its (signed) thinking first — which clients that cannot carry signatures (OpenAI
/// Chat) always do. Then the request goes without thinking rather than failing.
fn thinking_for(
    conv: &Conversation<'_>,
    max_tokens: u64,
    choice: Option<&Choice<'_>>,
    notes: &mut Notes,
) -> Option<Thinking> {
    let request = conv.reasoning.as_ref().filter(|r| r.enabled)?;
    if choice.is_some_and(|c| c.kind == "any" || c.kind == "tool") {
        notes.reasoning_dropped(request, "not accepted with a forced tool choice");
        return None;
    }
    let wanted = request
        .budget_tokens
        .or_else(|| request.effort.map(|e| e.budget_tokens()))
        .unwrap_or(MIN_THINKING_BUDGET * 4);
    let budget = wanted.min(max_tokens.saturating_sub(1));
    if budget < MIN_THINKING_BUDGET {
        notes.reasoning_dropped(request, "max_tokens leaves less than a 1024-token budget");
        return None;
    }
    if last_tool_turn_lacks_signed_thinking(&conv.turns) {
        notes.reasoning_dropped(request, "the last tool call came without signed thinking");
        return None;
    }
    let to = format!("thinking.budget_tokens {budget}");
    notes.reasoning_became(request, to.into());
    Some(Thinking {
        budget_tokens: budget,
    })
}

fn last_tool_turn_lacks_signed_thinking(turns: &[Turn<'_>]) -> bool {
    let Some(last_assistant) = turns.iter().rev().find(|t| t.role == Role::Assistant) else {
        return false;
    };
    let calls_tools = last_assistant
        .parts
        .iter()
        .any(|p| matches!(p, Part::ToolCall(_)));
    let signed_first = matches!(
        last_assistant.parts.first(),
        Some(Part::Reasoning(r)) if anthropic_signature(r).is_some() || r.redacted.is_some()
    );
    calls_tools && !signed_first
}

fn anthropic_signature<'r>(r: &'r Reasoning<'_>) -> Option<&'r str> {
    match &r.signature {
        Some((crate::protocol::pivot::Origin::Anthropic, s)) => Some(s),
        _ => None,
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Assistant => "assistant",
        Role::User | Role::System => "user",
    }
}

/// Turns → messages with alternating roles; tool results lead their user message.
fn messages<'t>(turns: &'t [Turn<'_>], notes: &mut Notes) -> Vec<Message<'t>> {
    let mut out: Vec<Message<'_>> = Vec::with_capacity(turns.len());
    for turn in turns {
        let mut blocks = Vec::with_capacity(turn.parts.len());
        for part in &turn.parts {
            if let Some(block) = block(part, turn.role, notes) {
                blocks.push(block);
            }
        }
        if blocks.is_empty() {
            continue;
        }
        let role = role_name(turn.role);
        match out.last_mut() {
            Some(last) if last.role == role => {
                // Tool results first: a user turn that follows tool results keeps them ahead.
                last.content.extend(blocks);
                if role == "user" {
                    last.content
                        .sort_by_key(|b| !matches!(b, Block::ToolResult { .. }));
                }
            }
            _ => out.push(Message {
                role,
                content: blocks,
            }),
        }
    }
    out
}

fn source<'m>(media: &'m Media<'_>) -> Source<'m> {
    match media {
        Media::Base64 { media_type, data } => Source::Base64 { media_type, data },
        Media::Url(url) => Source::Url { url },
    }
}

fn block<'p>(part: &'p Part<'_>, role: Role, notes: &mut Notes) -> Option<Block<'p>> {
    Some(match part {
        Part::Text(text) if text.is_empty() => return None,
        // The standard Messages API has no system role mid-conversation: user text, marked.
        Part::Text(text) if role == Role::System => {
            let to = "user text (\"System instruction: …\")";
            notes.field(Field::SystemMessage, None, Change::Became(to.into()));
            // The prefix needs no escaping: the escaped text follows it as it is.
            let marked = format!("System instruction: {}", text.escaped());
            Block::Text(Cow::Owned(Text::from_escaped(marked)))
        }
        Part::Text(text) => Block::Text(Cow::Borrowed(text)),
        Part::Image(media) => Block::Image(source(media)),
        Part::Document { media, title } => Block::Document {
            source: source(media),
            title: title.as_deref(),
        },
        Part::ToolCall(call) => Block::ToolUse {
            id: &call.id,
            name: &call.name,
            input: crate::protocol::json::tool_input(&call.arguments).0,
        },
        Part::ToolResult {
            call_id,
            content,
            is_error,
        } => Block::ToolResult {
            tool_use_id: call_id,
            content: content
                .iter()
                .filter_map(|p| block(p, Role::User, notes))
                .collect(),
            is_error: *is_error,
        },
        Part::Reasoning(r) => {
            // Only a signature this protocol issued can go back; other reasoning is dropped
            // (the source would refuse a thinking block it cannot verify).
            if let Some((crate::protocol::pivot::Origin::Anthropic, data)) = &r.redacted {
                Block::RedactedThinking { data }
            } else {
                let Some(signature) = anthropic_signature(r) else {
                    let why = Some("no Anthropic signature to send it back with");
                    notes.field(Field::EarlierReasoning, None, Change::Dropped(why));
                    return None;
                };
                Block::Thinking {
                    thinking: &r.text,
                    signature,
                }
            }
        }
    })
}

#[cfg(test)]
mod tests;
