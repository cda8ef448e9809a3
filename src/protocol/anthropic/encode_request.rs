//! A pivot [`Conversation`] → an Anthropic `POST /v1/messages` body, for Anthropic-protocol
//! sources (Anthropic, DeepSeek's, Kimi's, GLM's and Qwen's Anthropic endpoints).
//!
//! What the Messages API demands and other protocols do not, made true here:
//! `max_tokens` is always set; roles alternate (consecutive turns of one role are merged,
//! tool results first in their user turn); no empty text blocks; mid-conversation system
//! text becomes user text (the standard API has no such role); thinking is only switched on
//! where the API accepts it (see [`thinking_for`]). Structured output is a forced tool whose
//! input is the answer ([`STRUCTURED_OUTPUT_TOOL`]).

use crate::protocol::notes::{Change, Field, Notes};
use crate::protocol::pivot::{
    Conversation, ExchangeContext, Media, Part, Reasoning, Refusal, ResponseFormat, Role,
    ToolChoice, Turn,
};
use serde::Serialize;
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
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<TextBlock<'a>>,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Choice<'a>>,
    #[serde(skip_serializing_if = "<[Cow<'a, str>]>::is_empty")]
    stop_sequences: &'a [Cow<'a, str>],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
struct TextBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: Cow<'a, str>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: Cow<'a, str>,
    },
    Image {
        source: Source<'a>,
    },
    Document {
        source: Source<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
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
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    Thinking {
        thinking: Cow<'a, str>,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source<'a> {
    Base64 {
        media_type: &'a str,
        data: Cow<'a, str>,
    },
    Url {
        url: &'a str,
    },
}

#[derive(Serialize)]
struct Tool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Cow<'a, str>>,
    input_schema: &'a RawValue,
}

#[derive(Serialize)]
struct Choice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disable_parallel_tool_use: bool,
}

#[derive(Serialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u64,
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
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
                .map(|d| d.decoded()),
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
            description: Some(Cow::Borrowed(
                "Give the final answer by calling this tool with it.",
            )),
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
        system: conv
            .system
            .iter()
            .filter(|s| !s.is_empty())
            .map(|text| TextBlock {
                kind: "text",
                text: text.decoded(),
            })
            .collect(),
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
        metadata: conv.user.as_deref().map(|user_id| Metadata { user_id }),
        stream: conv.stream,
    };
    ctx.stream = conv.stream;
    ctx.stream_usage = conv.stream_usage;
    serde_json::to_vec(&body).map_err(|e| Refusal(format!("cannot encode the request: {e}")))
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
        kind: "enabled",
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
        Media::Base64 { media_type, data } => Source::Base64 {
            media_type,
            data: data.decoded(),
        },
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
            Block::Text {
                text: Cow::Owned(format!("System instruction: {}", text.decoded())),
            }
        }
        Part::Text(text) => Block::Text {
            text: text.decoded(),
        },
        Part::Image(media) => Block::Image {
            source: source(media),
        },
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
                    thinking: r.text.decoded(),
                    signature,
                }
            }
        }
    })
}

#[cfg(test)]
mod tests;
