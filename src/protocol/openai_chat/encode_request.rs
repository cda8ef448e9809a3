//! A pivot [`Conversation`] → an OpenAI `POST /chat/completions` body for an
//! OpenAI-compatible source, bent to its [`Dialect`].
//!
//! Written straight into a buffer from an allow-list of fields: message text, image data and
//! tool schemas are copied in their JSON form (never unescaped and escaped again), which keeps
//! a 75 KB Claude Code request well under a tenth of a millisecond. What the format demands:
//! tool results are `tool` messages right after the assistant turn (before the rest of their
//! user turn), images inside tool results move to a following user message (tool messages
//! carry only text), tool names are shortened to `^[A-Za-z0-9_-]{1,64}$` ([`ToolNames`]).

use super::dialect::{Dialect, MaxTokensField, ReasoningStyle};
use crate::protocol::json::{Arr, Obj, Text, escape};
use crate::protocol::names::ToolNames;
use crate::protocol::notes::{Change, Field, Notes};
use crate::protocol::pivot::{
    Conversation, Effort, Media, Part, Reasoning, ResponseFormat, Role, ToolChoice, ToolSpec, Turn,
};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Tools without a schema get this one (OpenAI requires `parameters`).
const EMPTY_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

/// Encodes the conversation; returns the body and the tool names it had to change, and
/// notes what it changed. `size_hint` is the client body's length (the output is about as
/// long).
pub fn encode_request(
    conv: &Conversation<'_>,
    source_model: &str,
    dialect: &Dialect,
    size_hint: usize,
    notes: &mut Notes,
) -> (Vec<u8>, ToolNames) {
    let mut names = ToolNames::default();
    let mut out = Vec::with_capacity(size_hint + size_hint / 8 + 256);
    let mut o = Obj::new(&mut out);
    o.str("model", source_model);
    o.array("messages", |a| {
        write_messages(a, conv, dialect, &mut names, notes)
    });
    write_limits(&mut o, conv, dialect, notes);
    if conv.stream {
        o.bool("stream", true);
        if dialect.stream_usage {
            o.object("stream_options", |s| s.bool("include_usage", true));
        }
    }
    if !conv.tools.is_empty() {
        o.array("tools", |a| {
            for (i, tool) in conv.tools.iter().enumerate() {
                a.object(|t| write_tool(t, tool, &mut names));
                if crate::protocol::names::needs_renaming(&tool.name) {
                    notes.push(
                        format!("tools[{i}].name"),
                        Some(tool.name.to_string().into()),
                        Change::Became(names.to_provider(&tool.name).into()),
                    );
                }
            }
        });
        write_tool_choice(&mut o, conv, &mut names);
    }
    write_reasoning(&mut o, conv, dialect, notes);
    o.end();
    (out, names)
}

fn write_limits(o: &mut Obj<'_>, conv: &Conversation<'_>, dialect: &Dialect, notes: &mut Notes) {
    notes.clamp_max_tokens(conv.max_tokens, dialect.max_tokens_limit);
    let max_tokens = match (conv.max_tokens, dialect.max_tokens_limit) {
        (Some(m), Some(limit)) => Some(m.min(limit)),
        (m, _) => m,
    };
    if let Some(m) = max_tokens {
        let field = match dialect.max_tokens_field {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => {
                notes.field(
                    Field::MaxTokens,
                    None,
                    Change::Became("max_completion_tokens".into()),
                );
                "max_completion_tokens"
            }
        };
        o.u64(field, m);
    }
    if !conv.stop.is_empty() {
        o.array("stop", |a| {
            for s in &conv.stop {
                a.str(s);
            }
        });
    }
    if let Some(t) = conv.temperature {
        o.f64("temperature", t);
    }
    if let Some(p) = conv.top_p {
        o.f64("top_p", p);
    }
    match conv.top_k {
        Some(k) if dialect.top_k => o.u64("top_k", k),
        Some(_) => notes.field(Field::TopK, None, Change::Dropped(None)),
        None => {}
    }
    if let Some(user) = &conv.user {
        let sent = provider_user(user);
        if matches!(sent, Cow::Owned(_)) {
            notes.field(
                Field::User,
                None,
                Change::Became("a hash (longer than 64 characters)".into()),
            );
        }
        o.str("user", &sent);
    }
    match &conv.response_format {
        Some(ResponseFormat::JsonSchema { name, schema }) if dialect.json_schema => {
            o.object("response_format", |f| {
                f.str("type", "json_schema");
                f.object("json_schema", |j| {
                    j.str("name", name);
                    j.raw("schema", schema.get());
                });
            });
        }
        Some(format) => {
            if matches!(format, ResponseFormat::JsonSchema { .. }) {
                notes.field(
                    Field::ResponseFormat,
                    Some("json_schema".into()),
                    Change::Became("json_object (json_schema: false)".into()),
                );
            }
            o.raw("response_format", "{\"type\":\"json_object\"}")
        }
        None => {}
    }
}

/// The end-user id as `user`. Claude Code's `metadata.user_id` is a long JSON string;
/// providers limit `user` in length, so long values are replaced by a stable hash (which
/// also keeps the client's identifiers out of provider logs).
fn provider_user(user_id: &str) -> Cow<'_, str> {
    if user_id.len() <= 64 {
        Cow::Borrowed(user_id)
    } else {
        let digest = Sha256::digest(user_id.as_bytes());
        Cow::Owned(format!("user_{}", hex::encode(&digest[..16])))
    }
}

fn write_tool(t: &mut Obj<'_>, tool: &ToolSpec<'_>, names: &mut ToolNames) {
    t.str("type", "function");
    t.object("function", |f| {
        f.str("name", &names.to_provider(&tool.name));
        match &tool.description {
            Some(d) => f.text("description", d),
            None => f.str("description", ""),
        }
        f.raw(
            "parameters",
            tool.parameters.as_deref().map_or(EMPTY_SCHEMA, |s| s.get()),
        );
        if let Some(strict) = tool.strict {
            f.bool("strict", strict);
        }
    });
}

fn write_tool_choice(o: &mut Obj<'_>, conv: &Conversation<'_>, names: &mut ToolNames) {
    match &conv.tool_choice {
        None => {}
        Some(ToolChoice::Auto) => o.str("tool_choice", "auto"),
        Some(ToolChoice::Required) => o.str("tool_choice", "required"),
        Some(ToolChoice::None) => o.str("tool_choice", "none"),
        Some(ToolChoice::Named(name)) => {
            let mapped = names.to_provider(name);
            o.object("tool_choice", |c| {
                c.str("type", "function");
                c.object("function", |f| f.str("name", &mapped));
            });
        }
    }
    if conv.parallel_tool_calls == Some(false) {
        o.bool("parallel_tool_calls", false);
    }
}

fn write_reasoning(o: &mut Obj<'_>, conv: &Conversation<'_>, dialect: &Dialect, notes: &mut Notes) {
    let request = conv.reasoning.as_ref().filter(|r| r.enabled);
    let effort = request.map(|r| r.effort.unwrap_or(Effort::High));
    match dialect.reasoning {
        ReasoningStyle::None => {
            if let Some(asked) = &conv.reasoning {
                notes.reasoning_dropped(asked, "reasoning: none on this adapter");
            }
        }
        ReasoningStyle::Effort => {
            let value = match effort {
                None | Some(Effort::Minimal) => None,
                Some(Effort::Low) => Some("low"),
                Some(Effort::Medium) => Some("medium"),
                Some(Effort::High | Effort::Max) => Some("high"),
            };
            match (value, &conv.reasoning) {
                (Some(v), Some(asked)) => {
                    notes.reasoning_became(asked, format!("reasoning_effort {v}").into());
                    o.str("reasoning_effort", v);
                }
                (None, Some(asked)) => {
                    notes.reasoning_dropped(asked, "no reasoning_effort says it");
                }
                _ => {}
            }
        }
        ReasoningStyle::DeepSeek => match effort {
            // DeepSeek thinks unless told not to, and rejects an effort with thinking off.
            None => o.object("thinking", |t| t.str("type", "disabled")),
            Some(effort) => {
                o.object("thinking", |t| t.str("type", "enabled"));
                let value = match effort {
                    Effort::Minimal | Effort::Low => "low",
                    Effort::Max => "max",
                    _ => "high",
                };
                if let Some(asked) = request {
                    let to = format!("thinking enabled, reasoning_effort {value}");
                    notes.reasoning_became(asked, to.into());
                }
                o.str("reasoning_effort", value);
            }
        },
        ReasoningStyle::Qwen => {
            // DashScope refuses thinking on non-streaming calls.
            let on = effort.is_some() && conv.stream;
            match request {
                Some(asked) if !on => {
                    notes.reasoning_dropped(asked, "this source thinks only when streaming")
                }
                Some(asked) => notes.reasoning_became(asked, "enable_thinking".into()),
                None => {}
            }
            o.bool("enable_thinking", on);
            if let Some(b) = request.and_then(|r| r.budget_tokens).filter(|_| on) {
                o.u64("thinking_budget", b);
            }
        }
    }
}

/// Writes `parts` as one JSON string, joined by `separator` (given escaped, e.g. `\\n\\n`),
/// optionally after a plain-ASCII `prefix`.
fn write_joined<'t>(
    out: &mut Vec<u8>,
    prefix: &str,
    parts: impl IntoIterator<Item = &'t Text<'t>>,
    separator: &str,
) {
    out.push(b'"');
    out.extend_from_slice(prefix.as_bytes());
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(separator.as_bytes());
        }
        out.extend_from_slice(part.escaped().as_bytes());
    }
    out.push(b'"');
}

fn texts<'t>(parts: &'t [Part<'t>]) -> impl Iterator<Item = &'t Text<'t>> {
    parts.iter().filter_map(|p| match p {
        Part::Text(t) => Some(t),
        _ => None,
    })
}

fn write_messages(
    a: &mut Arr<'_>,
    conv: &Conversation<'_>,
    dialect: &Dialect,
    names: &mut ToolNames,
    notes: &mut Notes,
) {
    if !conv.system.is_empty() {
        a.object(|m| {
            m.str("role", "system");
            write_joined(m.key("content"), "", &conv.system, "\\n\\n");
        });
    }
    for turn in &conv.turns {
        match turn.role {
            Role::User => write_user(a, turn, notes),
            Role::Assistant => write_assistant(a, turn, dialect, names, notes),
            Role::System => write_mid_system(a, turn, dialect, notes),
        }
    }
}

fn write_mid_system(a: &mut Arr<'_>, turn: &Turn<'_>, dialect: &Dialect, notes: &mut Notes) {
    if texts(&turn.parts).all(|t| t.is_empty()) {
        return;
    }
    if !dialect.system_mid_conversation {
        notes.field(
            Field::SystemMessage,
            None,
            Change::Became("a user message (system_messages: false)".into()),
        );
    }
    a.object(|m| {
        if dialect.system_mid_conversation {
            m.str("role", "system");
            write_joined(m.key("content"), "", texts(&turn.parts), "\\n\\n");
        } else {
            m.str("role", "user");
            write_joined(
                m.key("content"),
                "[System message]\\n",
                texts(&turn.parts),
                "\\n\\n",
            );
        }
    });
}

/// A user turn: tool results first (OpenAI wants `tool` messages right after the assistant
/// turn that called them), then one user message with everything else, including images that
/// were inside tool results.
fn write_user(a: &mut Arr<'_>, turn: &Turn<'_>, notes: &mut Notes) {
    let mut parts: Vec<&Part> = Vec::new();
    for part in &turn.parts {
        if let Part::ToolResult {
            call_id,
            content,
            is_error,
        } = part
        {
            a.object(|m| {
                m.str("role", "tool");
                m.str("tool_call_id", call_id);
                write_tool_result_text(m.key("content"), content, *is_error);
            });
            parts.extend(content.iter().filter(|p| is_media(p)));
        }
    }
    parts.extend(turn.parts.iter().filter(|p| {
        !matches!(
            p,
            Part::ToolResult { .. } | Part::Reasoning(_) | Part::ToolCall(_)
        )
    }));
    match parts.as_slice() {
        [] => {}
        [Part::Text(only)] => a.object(|m| {
            m.str("role", "user");
            m.text("content", only);
        }),
        _ => a.object(|m| {
            m.str("role", "user");
            m.array("content", |c| {
                for part in &parts {
                    write_part(c, part, notes);
                }
            });
        }),
    }
}

/// Parts inside a tool result that cannot travel in a `tool` message.
fn is_media(part: &Part<'_>) -> bool {
    matches!(
        part,
        Part::Image(_)
            | Part::Document {
                media: Media::Base64 { .. },
                ..
            }
    )
}

fn write_part(c: &mut Arr<'_>, part: &Part<'_>, notes: &mut Notes) {
    match part {
        Part::Image(Media::Base64 { media_type, data }) => c.object(|p| {
            p.str("type", "image_url");
            p.object("image_url", |u| {
                write_data_url(u.key("url"), media_type, data)
            });
        }),
        Part::Image(Media::Url(url)) => c.object(|p| {
            p.str("type", "image_url");
            p.object("image_url", |u| u.str("url", url));
        }),
        Part::Document {
            media: Media::Base64 { media_type, data },
            title,
        } => c.object(|p| {
            p.str("type", "file");
            p.object("file", |f| {
                write_data_url(f.key("file_data"), media_type, data);
                f.str("filename", title.as_deref().unwrap_or("document.pdf"));
            });
        }),
        Part::Document {
            media: Media::Url(url),
            ..
        } => {
            notes.field(
                Field::Document,
                None,
                Change::Became("a text naming its URL".into()),
            );
            c.object(|p| {
                p.str("type", "text");
                p.str("text", &format!("[Document: {url}]"));
            })
        }
        Part::Text(text) => c.object(|p| {
            p.str("type", "text");
            p.text("text", text);
        }),
        Part::ToolCall(_) | Part::ToolResult { .. } | Part::Reasoning(_) => {}
    }
}

/// `data:<media type>;base64,<data>` with the data copied as it came.
fn write_data_url(out: &mut Vec<u8>, media_type: &str, data: &Text<'_>) {
    out.extend_from_slice(b"\"data:");
    out.extend_from_slice(escape(media_type).as_bytes());
    out.extend_from_slice(b";base64,");
    out.extend_from_slice(data.escaped().as_bytes());
    out.push(b'"');
}

/// A tool result's text: its text parts joined by newlines, `Error: ` first when it is an
/// error. Never absent: an empty result is `""`.
fn write_tool_result_text(out: &mut Vec<u8>, content: &[Part<'_>], is_error: bool) {
    write_joined(
        out,
        if is_error { "Error: " } else { "" },
        texts(content),
        "\\n",
    );
}

fn write_assistant(
    a: &mut Arr<'_>,
    turn: &Turn<'_>,
    dialect: &Dialect,
    names: &mut ToolNames,
    notes: &mut Notes,
) {
    for part in &turn.parts {
        if let Part::Reasoning(r) = part {
            reasoning_notes(r, dialect.echo_reasoning, notes);
        }
    }
    let has_text = turn.parts.iter().any(|p| matches!(p, Part::Text(_)));
    let calls: Vec<_> = turn
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall(call) => Some(call),
            _ => None,
        })
        .collect();
    let thinking: Vec<&Text> = if dialect.echo_reasoning {
        turn.parts
            .iter()
            .filter_map(|p| match p {
                Part::Reasoning(Reasoning { text, .. }) => Some(text),
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    a.object(|m| {
        m.str("role", "assistant");
        if !has_text && !calls.is_empty() {
            m.raw("content", "null");
        } else {
            // Providers reject an assistant message with neither content nor tool calls.
            write_joined(m.key("content"), "", texts(&turn.parts), "");
        }
        if !calls.is_empty() {
            m.array("tool_calls", |c| {
                for call in &calls {
                    c.object(|t| {
                        t.str("id", &call.id);
                        t.str("type", "function");
                        t.object("function", |f| {
                            f.str("name", &names.to_provider(&call.name));
                            // The arguments object as a JSON string, as OpenAI wants it.
                            f.str("arguments", &call.arguments);
                        });
                    });
                }
            });
        }
        if !thinking.is_empty() {
            write_joined(m.key("reasoning_content"), "", thinking, "");
        }
    });
}

/// What of an earlier reasoning part cannot go back to this source.
fn reasoning_notes(r: &Reasoning<'_>, echo: bool, notes: &mut Notes) {
    if !echo {
        let why = Some("echo_reasoning: false");
        notes.field(Field::EarlierReasoning, None, Change::Dropped(why));
    } else if r.signature.is_some() || r.redacted.is_some() {
        let why = Some("only its own provider reads it");
        notes.field(Field::ReasoningSignature, None, Change::Dropped(why));
    }
}

#[cfg(test)]
mod tests;
