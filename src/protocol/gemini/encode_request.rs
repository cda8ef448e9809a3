//! A pivot [`Conversation`] → a Gemini `generateContent` body for a `protocol: gemini`
//! source, for clients of the other protocols (the model and streaming go in the path,
//! [`super::GeminiCall`]).
//!
//! System text is `systemInstruction`; mid-conversation instructions become user text;
//! calls are `functionCall` parts with their ids, results `functionResponse` parts named after
//! their call (`{"output": …}`, as Gemini CLI sends them); schemas go as
//! `parametersJsonSchema`; reasoning is asked with `includeThoughts`, and Gemini's own thought
//! signatures (origin `Gemini`) go back on the part they came with. Other origins' reasoning
//! has no place here and is dropped.

use crate::protocol::json::{Arr, Obj};
use crate::protocol::notes::{Change, Field, Notes};
use crate::protocol::pivot::{
    Conversation, Effort, Media, Origin, Part, ResponseFormat, Role, ToolChoice, Turn,
};

/// Encodes the conversation, noting what it changed.
pub fn encode_request(
    c: &Conversation<'_>,
    max_tokens_limit: Option<u64>,
    notes: &mut Notes,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    let mut o = Obj::new(&mut out);
    o.array("contents", |contents| {
        for turn in &c.turns {
            write_turn(contents, turn, c, notes);
        }
    });
    if !c.system.is_empty() {
        o.object("systemInstruction", |s| {
            s.array("parts", |parts| {
                for text in &c.system {
                    parts.object(|p| p.text("text", text));
                }
            })
        });
    }
    if !c.tools.is_empty() {
        o.array("tools", |tools| {
            tools.object(|t| {
                t.array("functionDeclarations", |decls| {
                    for tool in &c.tools {
                        decls.object(|d| {
                            d.str("name", &tool.name);
                            if let Some(description) = &tool.description {
                                d.text("description", description);
                            }
                            if let Some(schema) = &tool.parameters {
                                d.raw("parametersJsonSchema", schema.get());
                            }
                        });
                    }
                })
            })
        });
    }
    if let Some(choice) = &c.tool_choice {
        o.object("toolConfig", |t| {
            t.object("functionCallingConfig", |f| match choice {
                ToolChoice::Auto => f.str("mode", "AUTO"),
                ToolChoice::None => f.str("mode", "NONE"),
                ToolChoice::Required => f.str("mode", "ANY"),
                ToolChoice::Named(name) => {
                    f.str("mode", "ANY");
                    f.array("allowedFunctionNames", |n| n.str(name));
                }
            })
        });
    }
    o.object("generationConfig", |g| {
        generation(g, c, max_tokens_limit, notes)
    });
    if c.user.is_some() {
        notes.field(
            Field::User,
            None,
            Change::Dropped(Some("Gemini has no end-user id")),
        );
    }
    if c.parallel_tool_calls.is_some() {
        let why = Some("Gemini has no such switch");
        notes.field(Field::ParallelToolCalls, None, Change::Dropped(why));
    }
    o.end();
    out
}

fn generation(
    g: &mut Obj<'_>,
    c: &Conversation<'_>,
    max_tokens_limit: Option<u64>,
    notes: &mut Notes,
) {
    notes.clamp_max_tokens(c.max_tokens, max_tokens_limit);
    if let Some(t) = c.temperature {
        g.f64("temperature", t);
    }
    if let Some(p) = c.top_p {
        g.f64("topP", p);
    }
    if let Some(k) = c.top_k {
        g.u64("topK", k);
    }
    let max = match (c.max_tokens, max_tokens_limit) {
        (Some(m), Some(limit)) => Some(m.min(limit)),
        (m, _) => m,
    };
    if let Some(max) = max {
        g.u64("maxOutputTokens", max);
    }
    if !c.stop.is_empty() {
        g.array("stopSequences", |s| c.stop.iter().for_each(|x| s.str(x)));
    }
    if let Some(r) = &c.reasoning {
        g.object("thinkingConfig", |t| {
            if !r.enabled {
                notes.reasoning_became(r, "thinkingConfig.thinkingBudget 0".into());
                t.u64("thinkingBudget", 0);
                return;
            }
            let budget = r
                .budget_tokens
                .or_else(|| r.effort.map(Effort::budget_tokens));
            let sent = budget.map_or("-1 (dynamic)".into(), |b| b.to_string());
            let to = format!("thinkingConfig.thinkingBudget {sent}");
            notes.reasoning_became(r, to.into());
            match budget {
                Some(b) => t.u64("thinkingBudget", b),
                None => t.raw("thinkingBudget", "-1"),
            }
            t.bool("includeThoughts", true);
        });
    }
    match &c.response_format {
        Some(ResponseFormat::JsonObject) => g.str("responseMimeType", "application/json"),
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            g.str("responseMimeType", "application/json");
            g.raw("responseJsonSchema", schema.get());
        }
        None => {}
    }
}

/// The name of the call a result answers (Gemini wants it on the response).
fn call_name<'c>(c: &'c Conversation<'_>, call_id: &str) -> &'c str {
    c.turns
        .iter()
        .flat_map(|t| &t.parts)
        .find_map(|p| match p {
            Part::ToolCall(call) if call.id == call_id => Some(&*call.name),
            _ => None,
        })
        .unwrap_or("tool")
}

fn write_turn(contents: &mut Arr<'_>, turn: &Turn<'_>, c: &Conversation<'_>, notes: &mut Notes) {
    let role = match turn.role {
        Role::Assistant => "model",
        Role::User | Role::System => "user",
    };
    contents.object(|content| {
        content.str("role", role);
        content.array("parts", |parts| {
            // A Gemini signature waiting for the part it came with.
            let mut signature: Option<&str> = None;
            let mut written = 0;
            for part in &turn.parts {
                let sig = |p: &mut Obj<'_>, signature: &mut Option<&str>| {
                    if let Some(s) = signature.take() {
                        p.str("thoughtSignature", s);
                    }
                };
                match part {
                    Part::Reasoning(r) => {
                        if let Some((Origin::Gemini, s)) = &r.signature {
                            signature = Some(s);
                        } else {
                            let why = Some("only Gemini's own thought signatures go back");
                            notes.field(Field::EarlierReasoning, None, Change::Dropped(why));
                        }
                        continue;
                    }
                    Part::Text(text) if turn.role == Role::System => {
                        let to = Change::Became("user text (\"System instruction: …\")".into());
                        notes.field(Field::SystemMessage, None, to);
                        parts.object(|p| {
                            let mut t = String::from("System instruction: ");
                            t.push_str(&text.decoded());
                            p.str("text", &t);
                        })
                    }
                    Part::Text(text) => parts.object(|p| {
                        p.text("text", text);
                        sig(p, &mut signature);
                    }),
                    Part::Image(media) | Part::Document { media, .. } => {
                        parts.object(|p| write_media(p, media))
                    }
                    Part::ToolCall(call) => parts.object(|p| {
                        p.object("functionCall", |f| {
                            f.str("id", &call.id);
                            f.str("name", &call.name);
                            f.raw(
                                "args",
                                &super::encode_response::args_object(&call.arguments),
                            );
                        });
                        sig(p, &mut signature);
                    }),
                    Part::ToolResult {
                        call_id, content, ..
                    } => {
                        let media = content.iter().filter(|p| !matches!(p, Part::Text(_)));
                        let why = Some("functionResponse carries text only");
                        let dropped = u32::try_from(media.count()).unwrap_or(u32::MAX);
                        let (path, change) = (Field::ToolResultMedia, Change::Dropped(why));
                        notes.field_times(path, None, change, dropped);
                        parts.object(|p| {
                            p.object("functionResponse", |f| {
                                f.str("id", call_id);
                                f.str("name", call_name(c, call_id));
                                f.object("response", |r| {
                                    let mut text = String::new();
                                    for part in content {
                                        if let Part::Text(t) = part {
                                            text.push_str(&t.decoded());
                                        }
                                    }
                                    r.str("output", &text);
                                });
                            });
                        })
                    }
                }
                written += 1;
            }
            if written == 0 {
                parts.object(|p| p.str("text", ""));
            }
        });
    });
}

fn write_media(p: &mut Obj<'_>, media: &Media<'_>) {
    match media {
        Media::Base64 { media_type, data } => p.object("inlineData", |d| {
            d.str("mimeType", media_type);
            d.text("data", data);
        }),
        Media::Url(url) => p.object("fileData", |d| d.str("fileUri", url)),
    }
}
