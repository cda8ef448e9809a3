//! A pivot [`Conversation`] → a Responses request for a `protocol: responses` source (OpenAI,
//! xAI, Azure OpenAI…), for clients of the other protocols.
//!
//! Stateless on purpose: `store: false`, the whole conversation in `input`, and
//! `include: ["reasoning.encrypted_content"]` when reasoning is on, so the source's own
//! reasoning items (kept by the decoders as opaque data of origin `Responses`) go back on
//! the next turn. Reasoning from other origins has no place here and is dropped. System
//! text is `instructions`; mid-conversation instructions are developer messages; tool
//! results are `function_call_output` items (text, or content parts when they hold images).

use crate::protocol::json::{Arr, Obj};
use crate::protocol::notes::{Change, Field, Notes};
use crate::protocol::pivot::{
    Conversation, Effort, Media, Origin, Part, ResponseFormat, Role, ToolChoice, Turn,
};

/// Encodes the conversation, noting what it changed.
pub fn encode_request(
    conversation: &Conversation<'_>,
    source_model: &str,
    max_tokens_limit: Option<u64>,
    notes: &mut Notes,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    let c = conversation;
    let mut o = Obj::new(&mut out);
    o.str("model", source_model);
    if !c.system.is_empty() {
        let out = o.key("instructions");
        out.push(b'"');
        for (i, text) in c.system.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\\n\\n");
            }
            out.extend_from_slice(text.escaped().as_bytes());
        }
        out.push(b'"');
    }
    o.array("input", |items| {
        for turn in &c.turns {
            write_turn(items, turn, notes);
        }
    });
    if !c.tools.is_empty() {
        o.array("tools", |tools| {
            for tool in &c.tools {
                tools.object(|t| {
                    t.str("type", "function");
                    t.str("name", &tool.name);
                    if let Some(d) = &tool.description {
                        t.text("description", d);
                    }
                    t.raw(
                        "parameters",
                        tool.parameters
                            .as_ref()
                            .map_or("{\"type\":\"object\",\"properties\":{}}", |p| p.get()),
                    );
                    if let Some(strict) = tool.strict {
                        t.bool("strict", strict);
                    }
                });
            }
        });
    }
    match &c.tool_choice {
        Some(ToolChoice::Auto) => o.str("tool_choice", "auto"),
        Some(ToolChoice::Required) => o.str("tool_choice", "required"),
        Some(ToolChoice::None) => o.str("tool_choice", "none"),
        Some(ToolChoice::Named(name)) => o.object("tool_choice", |t| {
            t.str("type", "function");
            t.str("name", name);
        }),
        None => {}
    }
    if let Some(p) = c.parallel_tool_calls {
        o.bool("parallel_tool_calls", p);
    }
    notes.clamp_max_tokens(c.max_tokens, max_tokens_limit);
    if c.top_k.is_some() {
        notes.field(Field::TopK, None, Change::Dropped(None));
    }
    if !c.stop.is_empty() {
        let why = Some("the Responses API has no stop sequences");
        notes.field(Field::Stop, None, Change::Dropped(why));
    }
    let max = match (c.max_tokens, max_tokens_limit) {
        (Some(m), Some(limit)) => Some(m.min(limit)),
        (m, _) => m,
    };
    if let Some(max) = max {
        o.u64("max_output_tokens", max);
    }
    if let Some(t) = c.temperature {
        o.f64("temperature", t);
    }
    if let Some(p) = c.top_p {
        o.f64("top_p", p);
    }
    if let Some(reasoning) = &c.reasoning {
        o.object("reasoning", |r| {
            if !reasoning.enabled {
                notes.reasoning_became(reasoning, "reasoning.effort none".into());
                r.str("effort", "none");
                return;
            }
            let effort = reasoning
                .effort
                .unwrap_or_else(|| Effort::from_budget(reasoning.budget_tokens));
            let to = format!("reasoning.effort {}", effort_name(effort));
            notes.reasoning_became(reasoning, to.into());
            r.str("effort", effort_name(effort));
            r.str("summary", "auto");
        });
        if reasoning.enabled {
            o.raw("include", "[\"reasoning.encrypted_content\"]");
        }
    }
    match &c.response_format {
        Some(ResponseFormat::JsonObject) => {
            o.raw("text", "{\"format\":{\"type\":\"json_object\"}}");
        }
        Some(ResponseFormat::JsonSchema { name, schema }) => o.object("text", |t| {
            t.object("format", |f| {
                f.str("type", "json_schema");
                f.str("name", name);
                f.raw("schema", schema.get());
            });
        }),
        None => {}
    }
    if let Some(user) = &c.user {
        o.str("user", user);
    }
    o.bool("store", false);
    o.bool("stream", c.stream);
    o.end();
    out
}

fn effort_name(effort: Effort) -> &'static str {
    match effort {
        Effort::Minimal => "minimal",
        Effort::Low => "low",
        Effort::Medium => "medium",
        Effort::High => "high",
        Effort::Max => "xhigh",
    }
}

fn write_turn(items: &mut Arr<'_>, turn: &Turn<'_>, notes: &mut Notes) {
    let (role, text_kind) = match turn.role {
        Role::System => {
            let to = Change::Became("a developer message".into());
            notes.field(Field::SystemMessage, None, to);
            ("developer", "input_text")
        }
        Role::User => ("user", "input_text"),
        Role::Assistant => ("assistant", "output_text"),
    };
    // Tool results and calls are items of their own; the rest is one message.
    let mut message: Vec<&Part<'_>> = Vec::new();
    let flush = |items: &mut Arr<'_>, message: &mut Vec<&Part<'_>>| {
        if message.is_empty() {
            return;
        }
        items.object(|m| {
            m.str("type", "message");
            m.str("role", role);
            m.array("content", |parts| {
                for part in message.iter() {
                    write_content(parts, part, text_kind);
                }
            });
        });
        message.clear();
    };
    for part in &turn.parts {
        match part {
            Part::ToolResult {
                call_id, content, ..
            } => {
                flush(items, &mut message);
                items.object(|r| {
                    r.str("type", "function_call_output");
                    r.str("call_id", call_id);
                    write_output(r, content);
                });
            }
            Part::ToolCall(call) => {
                flush(items, &mut message);
                items.object(|f| {
                    f.str("type", "function_call");
                    f.str("call_id", &call.id);
                    f.str("name", &call.name);
                    f.str("arguments", &call.arguments);
                });
            }
            Part::Reasoning(r) => {
                // Only this protocol's own reasoning goes back: `<id> <encrypted_content>`.
                let own = match &r.signature {
                    Some((Origin::Responses, data)) => data.split_once(' '),
                    _ => None,
                };
                let Some((id, encrypted)) = own else {
                    let why = Some("only reasoning this source made goes back to it");
                    notes.field(Field::EarlierReasoning, None, Change::Dropped(why));
                    continue;
                };
                flush(items, &mut message);
                items.object(|i| {
                    i.str("type", "reasoning");
                    i.str("id", id);
                    i.array("summary", |s| {
                        if !r.text.is_empty() {
                            s.object(|p| {
                                p.str("type", "summary_text");
                                p.text("text", &r.text);
                            });
                        }
                    });
                    i.str("encrypted_content", encrypted);
                });
            }
            other => message.push(other),
        }
    }
    flush(items, &mut message);
}

fn write_content(parts: &mut Arr<'_>, part: &Part<'_>, text_kind: &str) {
    match part {
        Part::Text(text) => parts.object(|p| {
            p.str("type", text_kind);
            p.text("text", text);
        }),
        Part::Image(media) => parts.object(|p| {
            p.str("type", "input_image");
            p.str("image_url", &media.as_url());
        }),
        Part::Document { media, title } => parts.object(|p| {
            p.str("type", "input_file");
            match media {
                Media::Url(url) => p.str("file_url", url),
                Media::Base64 { .. } => p.str("file_data", &media.as_url()),
            }
            p.str("filename", title.as_deref().unwrap_or("document.pdf"));
        }),
        _ => {}
    }
}

/// A tool result's `output`: a string when it is all text, content parts otherwise.
fn write_output(r: &mut Obj<'_>, content: &[Part<'_>]) {
    if content.iter().all(|p| matches!(p, Part::Text(_))) {
        let out = r.key("output");
        out.push(b'"');
        for part in content {
            if let Part::Text(t) = part {
                out.extend_from_slice(t.escaped().as_bytes());
            }
        }
        out.push(b'"');
        return;
    }
    r.array("output", |parts| {
        for part in content {
            write_content(parts, part, "input_text");
        }
    });
}
