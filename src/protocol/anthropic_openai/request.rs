//! Anthropic `POST /v1/messages` body → OpenAI `POST /chat/completions` body.
//!
//! Built from an allow-list: only fields with a known meaning reach the provider
//! (`context_management`, `container`, `mcp_servers`, `cache_control`, betas… are dropped).

use super::{Dialect, MaxTokensField, ReasoningStyle, ToolNames};
use crate::protocol::anthropic::{Block, Content, MessagesRequest, Tool};
use crate::protocol::json::{Arr, Obj, Text, escape};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt;

/// The first system block Claude Code sends changes on every request
/// (`x-anthropic-billing-header: cc_version=…;`): forwarding it defeats provider prompt caches.
const BILLING_HEADER_PREFIX: &str = "x-anthropic-billing-header:";

/// Tools without a schema get this one (OpenAI requires `parameters`).
const EMPTY_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

/// The translated request plus what the response translation needs to know about it.
#[derive(Debug)]
pub struct TranslatedRequest {
    pub body: Vec<u8>,
    pub stream: bool,
    /// The model the client asked for; responses report it back.
    pub client_model: String,
    pub tool_names: ToolNames,
    /// A cheap estimate of input tokens for `message_start` (the provider's count comes later).
    pub input_tokens_estimate: u64,
}

/// The client's request cannot be translated; becomes a 400 `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError(pub String);

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RequestError {}

/// About four bytes of JSON per token for English text and code.
pub fn estimate_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

/// Parses and translates a request body. `map_model` turns the client's model name into the
/// provider's.
///
/// The provider body is written straight into a buffer: message text, image data and tool
/// schemas are copied in their JSON form (never unescaped and escaped again), which keeps a
/// 75 KB Claude Code request well under a tenth of a millisecond.
pub fn translate_request(
    body: &[u8],
    map_model: impl FnOnce(&str) -> String,
    dialect: &Dialect,
) -> Result<TranslatedRequest, RequestError> {
    // One UTF-8 check for the whole body; parsing from a `str` then skips it per value.
    let text = std::str::from_utf8(body)
        .map_err(|e| RequestError(format!("invalid request body: not UTF-8: {e}")))?;
    if !crate::protocol::json::is_object_document(text) {
        return Err(RequestError(
            "invalid request body: expected a JSON object".to_owned(),
        ));
    }
    let req: MessagesRequest = serde_json::from_str(text)
        .map_err(|e| RequestError(format!("invalid request body: {e}")))?;
    for message in &req.messages {
        let role = message.role.as_str();
        if !matches!(role, "user" | "assistant" | "system") {
            return Err(RequestError(format!(
                "messages: unsupported role `{role}` (expected user, assistant or system)"
            )));
        }
    }
    let source_model = map_model(&req.model);
    let mut names = ToolNames::default();
    let stream = req.stream == Some(true);
    let tools: Vec<&Tool> = req
        .tools
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|t| t.is_client_tool())
        .collect();

    let mut out = Vec::with_capacity(body.len() + body.len() / 8 + 256);
    let mut o = Obj::new(&mut out);
    o.str("model", &source_model);
    o.array("messages", |a| write_messages(a, &req, dialect, &mut names));
    write_limits(&mut o, &req, dialect);
    if stream {
        o.bool("stream", true);
        if dialect.stream_usage {
            o.object("stream_options", |s| s.bool("include_usage", true));
        }
    }
    if !tools.is_empty() {
        o.array("tools", |a| {
            for tool in &tools {
                a.object(|t| write_tool(t, tool, &mut names));
            }
        });
        write_tool_choice(&mut o, &req, &mut names);
    }
    write_reasoning(&mut o, &req, dialect, stream);
    o.end();

    Ok(TranslatedRequest {
        body: out,
        stream,
        client_model: req.model.as_str().to_owned(),
        tool_names: names,
        input_tokens_estimate: estimate_tokens(body.len()),
    })
}

fn write_limits(o: &mut Obj<'_>, req: &MessagesRequest<'_>, dialect: &Dialect) {
    let max_tokens = match (req.max_tokens, dialect.max_tokens_limit) {
        (Some(m), Some(limit)) => Some(m.min(limit)),
        (m, _) => m,
    };
    if let Some(m) = max_tokens {
        let field = match dialect.max_tokens_field {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        };
        o.u64(field, m);
    }
    if let Some(stop) = req.stop_sequences.as_ref().filter(|s| !s.is_empty()) {
        o.array("stop", |a| {
            for s in stop {
                a.str(s);
            }
        });
    }
    if let Some(t) = req.temperature {
        o.f64("temperature", t);
    }
    if let Some(p) = req.top_p {
        o.f64("top_p", p);
    }
    if let Some(k) = req.top_k.filter(|_| dialect.top_k) {
        o.u64("top_k", k);
    }
    if let Some(user) = req.metadata.as_ref().and_then(|m| m.user_id.as_ref()) {
        o.str("user", &provider_user(user));
    }
}

/// `metadata.user_id` → `user`. Claude Code's value is a long JSON string; providers limit
/// `user` in length, so long values are replaced by a stable hash (which also keeps the
/// client's identifiers out of provider logs).
fn provider_user(user_id: &str) -> Cow<'_, str> {
    if user_id.len() <= 64 {
        Cow::Borrowed(user_id)
    } else {
        let digest = Sha256::digest(user_id.as_bytes());
        Cow::Owned(format!("user_{}", hex::encode(&digest[..16])))
    }
}

fn write_tool(t: &mut Obj<'_>, tool: &Tool<'_>, names: &mut ToolNames) {
    t.str("type", "function");
    t.object("function", |f| {
        f.str("name", &names.to_provider(&tool.name));
        match &tool.description {
            Some(d) => f.text("description", d),
            None => f.str("description", ""),
        }
        f.raw(
            "parameters",
            tool.input_schema.map_or(EMPTY_SCHEMA, |s| s.get()),
        );
    });
}

fn write_tool_choice(o: &mut Obj<'_>, req: &MessagesRequest<'_>, names: &mut ToolNames) {
    let Some(choice) = &req.tool_choice else {
        return;
    };
    match choice.kind.as_str() {
        "auto" => o.str("tool_choice", "auto"),
        "any" => o.str("tool_choice", "required"),
        "none" => o.str("tool_choice", "none"),
        "tool" => {
            if let Some(name) = &choice.name {
                let mapped = names.to_provider(name);
                o.object("tool_choice", |c| {
                    c.str("type", "function");
                    c.object("function", |f| f.str("name", &mapped));
                });
            }
        }
        _ => {}
    }
    if choice.disable_parallel_tool_use == Some(true) {
        o.bool("parallel_tool_calls", false);
    }
}

/// The client's thinking request in the provider's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effort {
    Off,
    Low,
    Medium,
    High,
    Max,
}

fn requested_effort(req: &MessagesRequest) -> (Effort, Option<u64>) {
    let Some(thinking) = &req.thinking else {
        return (Effort::Off, None);
    };
    match thinking.kind.as_str() {
        "enabled" => {
            let budget = thinking.budget_tokens;
            let effort = match budget {
                Some(b) if b < 2048 => Effort::Low,
                Some(b) if b < 8192 => Effort::Medium,
                _ => Effort::High,
            };
            (effort, budget)
        }
        "adaptive" => {
            let effort = req
                .output_config
                .as_ref()
                .and_then(|o| o.effort.as_deref())
                .map_or(Effort::High, |e| match e {
                    "low" | "minimal" => Effort::Low,
                    "medium" => Effort::Medium,
                    "max" | "xhigh" => Effort::Max,
                    _ => Effort::High,
                });
            (effort, None)
        }
        _ => (Effort::Off, None),
    }
}

fn write_reasoning(o: &mut Obj<'_>, req: &MessagesRequest<'_>, dialect: &Dialect, stream: bool) {
    let (effort, budget) = requested_effort(req);
    match dialect.reasoning {
        ReasoningStyle::None => {}
        ReasoningStyle::Effort => {
            let value = match effort {
                Effort::Off => None,
                Effort::Low => Some("low"),
                Effort::Medium => Some("medium"),
                Effort::High | Effort::Max => Some("high"),
            };
            if let Some(v) = value {
                o.str("reasoning_effort", v);
            }
        }
        ReasoningStyle::DeepSeek => {
            // DeepSeek thinks unless told not to, and rejects an effort with thinking off.
            if effort == Effort::Off {
                o.object("thinking", |t| t.str("type", "disabled"));
            } else {
                o.object("thinking", |t| t.str("type", "enabled"));
                o.str(
                    "reasoning_effort",
                    match effort {
                        Effort::Low => "low",
                        Effort::Max => "max",
                        _ => "high",
                    },
                );
            }
        }
        ReasoningStyle::Qwen => {
            // DashScope refuses thinking on non-streaming calls.
            let on = effort != Effort::Off && stream;
            o.bool("enable_thinking", on);
            if let Some(b) = budget.filter(|_| on) {
                o.u64("thinking_budget", b);
            }
        }
    }
}

/// Writes `parts` as one JSON string, joined by `separator` (given escaped, e.g. `\\n\\n`),
/// optionally after a plain-ASCII `prefix`.
fn write_joined(out: &mut Vec<u8>, prefix: &str, parts: &[&Text<'_>], separator: &str) {
    out.push(b'"');
    out.extend_from_slice(prefix.as_bytes());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(separator.as_bytes());
        }
        out.extend_from_slice(part.escaped().as_bytes());
    }
    out.push(b'"');
}

fn write_messages(
    a: &mut Arr<'_>,
    req: &MessagesRequest<'_>,
    dialect: &Dialect,
    names: &mut ToolNames,
) {
    if let Some(system) = &req.system {
        let parts = system_parts(system);
        if !parts.is_empty() {
            let refs: Vec<&Text> = parts.iter().collect();
            a.object(|m| {
                m.str("role", "system");
                write_joined(m.key("content"), "", &refs, "\\n\\n");
            });
        }
    }
    for message in &req.messages {
        match message.role.as_str() {
            "user" => write_user(a, &message.content),
            "assistant" => write_assistant(a, &message.content, dialect, names),
            _ => write_mid_system(a, &message.content, dialect),
        }
    }
}

/// `system` text blocks without the billing header, empty ones dropped.
fn system_parts<'t>(system: &'t Content<'t>) -> Vec<Text<'t>> {
    system
        .texts()
        .filter_map(|t| {
            if t.escaped().starts_with(BILLING_HEADER_PREFIX) {
                t.after_first_newline().map(Text::from_escaped)
            } else {
                Some(Text::from_escaped(t.escaped()))
            }
        })
        .filter(|t| !t.is_empty())
        .collect()
}

fn write_mid_system(a: &mut Arr<'_>, content: &Content<'_>, dialect: &Dialect) {
    let texts: Vec<&Text> = content.texts().collect();
    if texts.iter().all(|t| t.is_empty()) {
        return;
    }
    a.object(|m| {
        if dialect.system_mid_conversation {
            m.str("role", "system");
            write_joined(m.key("content"), "", &texts, "\\n\\n");
        } else {
            m.str("role", "user");
            write_joined(m.key("content"), "[System message]\\n", &texts, "\\n\\n");
        }
    });
}

/// A user turn: tool results first (OpenAI wants `tool` messages right after the assistant
/// turn that called them), then one user message with everything else, including images that
/// were inside tool results (tool messages can only carry text).
fn write_user(a: &mut Arr<'_>, content: &Content<'_>) {
    let blocks = match content {
        Content::Text(t) => {
            a.object(|m| {
                m.str("role", "user");
                m.text("content", t);
            });
            return;
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts: Vec<&Block> = Vec::new();
    for block in blocks.iter().filter(|b| b.kind.as_str() == "tool_result") {
        a.object(|m| {
            m.str("role", "tool");
            m.str("tool_call_id", block.tool_use_id.as_deref().unwrap_or(""));
            write_tool_result_text(m.key("content"), block);
        });
        if let Some(Content::Blocks(inner)) = &block.content {
            parts.extend(inner.iter().filter(|b| is_media(b)));
        }
    }
    parts.extend(
        blocks
            .iter()
            .filter(|b| b.kind.as_str() != "tool_result" && makes_part(b)),
    );
    match parts.as_slice() {
        [] => {}
        [only] if only.kind.as_str() == "text" => a.object(|m| {
            m.str("role", "user");
            m.text("content", only.text.as_ref().unwrap_or(&Text::EMPTY));
        }),
        _ => a.object(|m| {
            m.str("role", "user");
            m.array("content", |c| {
                for part in &parts {
                    write_part(c, part);
                }
            });
        }),
    }
}

/// Blocks inside a tool result that cannot travel in a `tool` message.
fn is_media(block: &Block<'_>) -> bool {
    match block.kind.as_str() {
        "image" => makes_part(block),
        "document" => block
            .source
            .as_ref()
            .is_some_and(|s| s.kind.as_str() == "base64"),
        _ => false,
    }
}

/// Whether a user block becomes an OpenAI content part.
fn makes_part(block: &Block<'_>) -> bool {
    let source_kind = block.source.as_ref().map(|s| s.kind.as_str());
    match block.kind.as_str() {
        "text" => true,
        "image" => block.source.as_ref().is_some_and(|s| {
            s.kind.as_str() == "base64" || (s.kind.as_str() == "url" && s.url.is_some())
        }),
        "document" => matches!(source_kind, Some("base64" | "text" | "content" | "url")),
        _ => false,
    }
}

fn write_part(c: &mut Arr<'_>, block: &Block<'_>) {
    let Some(source) = block
        .source
        .as_ref()
        .filter(|_| block.kind.as_str() != "text")
    else {
        c.object(|p| {
            p.str("type", "text");
            p.text("text", block.text.as_ref().unwrap_or(&Text::EMPTY));
        });
        return;
    };
    let media_type = source.media_type.as_deref();
    let data = source.data.as_ref();
    match (block.kind.as_str(), source.kind.as_str()) {
        ("image", "base64") => c.object(|p| {
            p.str("type", "image_url");
            p.object("image_url", |u| {
                write_data_url(u.key("url"), media_type.unwrap_or("image/png"), data);
            });
        }),
        ("image", _) => c.object(|p| {
            p.str("type", "image_url");
            p.object("image_url", |u| {
                u.str("url", source.url.as_deref().unwrap_or(""))
            });
        }),
        ("document", "base64") => c.object(|p| {
            p.str("type", "file");
            p.object("file", |f| {
                write_data_url(
                    f.key("file_data"),
                    media_type.unwrap_or("application/pdf"),
                    data,
                );
                f.str("filename", block.title.as_deref().unwrap_or("document.pdf"));
            });
        }),
        ("document", "text") => c.object(|p| {
            p.str("type", "text");
            p.text("text", data.unwrap_or(&Text::EMPTY));
        }),
        ("document", "content") => c.object(|p| {
            p.str("type", "text");
            let texts: Vec<&Text> = source
                .content
                .as_ref()
                .map(|c| c.texts().collect())
                .unwrap_or_default();
            write_joined(p.key("text"), "", &texts, "\\n");
        }),
        _ => c.object(|p| {
            p.str("type", "text");
            p.str(
                "text",
                &format!("[Document: {}]", source.url.as_deref().unwrap_or("")),
            );
        }),
    }
}

/// `data:<media type>;base64,<data>` with the data copied as it came.
fn write_data_url(out: &mut Vec<u8>, media_type: &str, data: Option<&Text<'_>>) {
    out.extend_from_slice(b"\"data:");
    out.extend_from_slice(escape(media_type).as_bytes());
    out.extend_from_slice(b";base64,");
    if let Some(d) = data {
        out.extend_from_slice(d.escaped().as_bytes());
    }
    out.push(b'"');
}

/// A tool result's text: its parts joined by newlines (documents given as text included),
/// `Error: ` first when `is_error`. Never absent: an empty result is `""`.
fn write_tool_result_text(out: &mut Vec<u8>, block: &Block<'_>) {
    out.push(b'"');
    if block.is_error == Some(true) {
        out.extend_from_slice(b"Error: ");
    }
    let mut first = true;
    let mut piece = |out: &mut Vec<u8>, text: &Text<'_>| {
        if !first {
            out.extend_from_slice(b"\\n");
        }
        first = false;
        out.extend_from_slice(text.escaped().as_bytes());
    };
    match &block.content {
        None => {}
        Some(Content::Text(t)) => piece(out, t),
        Some(Content::Blocks(inner)) => {
            for b in inner {
                let source = b.source.as_ref();
                match (b.kind.as_str(), source.map(|s| s.kind.as_str())) {
                    ("text", _) => piece(out, b.text.as_ref().unwrap_or(&Text::EMPTY)),
                    ("document", Some("text")) => piece(
                        out,
                        source.and_then(|s| s.data.as_ref()).unwrap_or(&Text::EMPTY),
                    ),
                    ("document", Some("content")) => {
                        for t in source
                            .and_then(|s| s.content.as_ref())
                            .into_iter()
                            .flat_map(|c| c.texts())
                        {
                            piece(out, t);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out.push(b'"');
}

fn write_assistant(
    a: &mut Arr<'_>,
    content: &Content<'_>,
    dialect: &Dialect,
    names: &mut ToolNames,
) {
    let blocks = match content {
        Content::Text(t) => {
            a.object(|m| {
                m.str("role", "assistant");
                m.text("content", t);
            });
            return;
        }
        Content::Blocks(blocks) => blocks,
    };
    let texts: Vec<&Text> = blocks
        .iter()
        .filter(|b| b.kind.as_str() == "text")
        .filter_map(|b| b.text.as_ref())
        .collect();
    let thinking: Vec<&Text> = if dialect.echo_reasoning {
        blocks
            .iter()
            .filter(|b| b.kind.as_str() == "thinking")
            .filter_map(|b| b.thinking.as_ref())
            .collect()
    } else {
        Vec::new()
    };
    let calls: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.kind.as_str() == "tool_use")
        .collect();
    a.object(|m| {
        m.str("role", "assistant");
        if texts.is_empty() && !calls.is_empty() {
            m.raw("content", "null");
        } else {
            // Providers reject an assistant message with neither content nor tool calls.
            write_joined(m.key("content"), "", &texts, "");
        }
        if !calls.is_empty() {
            m.array("tool_calls", |c| {
                for call in &calls {
                    c.object(|t| {
                        t.str("id", call.id.as_deref().unwrap_or(""));
                        t.str("type", "function");
                        t.object("function", |f| {
                            f.str(
                                "name",
                                &names.to_provider(call.name.as_deref().unwrap_or("")),
                            );
                            // The input object as a JSON string, as OpenAI wants it.
                            f.str("arguments", call.input.map_or("{}", |raw| raw.get()));
                        });
                    });
                }
            });
        }
        if !thinking.is_empty() {
            write_joined(m.key("reasoning_content"), "", &thinking, "");
        }
    });
}

#[cfg(test)]
mod tests;
