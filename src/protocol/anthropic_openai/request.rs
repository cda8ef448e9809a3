//! Anthropic `POST /v1/messages` body → OpenAI `POST /chat/completions` body.
//!
//! Built from an allow-list: only fields with a known meaning reach the provider
//! (`context_management`, `container`, `mcp_servers`, `cache_control`, betas… are dropped).

use super::{Dialect, MaxTokensField, ReasoningStyle, ToolNames};
use crate::protocol::anthropic::{Block, Content, Message, MessagesRequest, Source, Tool};
use crate::protocol::openai::{
    ChatMessage, ChatRequest, ChatTool, ChatToolChoice, FileData, FunctionCall, FunctionDef,
    ImageUrl, NamedFunction, Part, StreamOptions, ThinkingSwitch, ToolCall, UserContent,
};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt;

/// The first system block Claude Code sends changes on every request
/// (`x-anthropic-billing-header: cc_version=…;`): forwarding it defeats provider prompt caches.
const BILLING_HEADER_PREFIX: &str = "x-anthropic-billing-header:";

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

/// Parses and translates a request body. `map_model` turns the client's model name into the
/// provider's.
pub fn translate_request(
    body: &[u8],
    map_model: impl FnOnce(&str) -> String,
    dialect: &Dialect,
) -> Result<TranslatedRequest, RequestError> {
    let req: MessagesRequest = serde_json::from_slice(body)
        .map_err(|e| RequestError(format!("invalid request body: {e}")))?;
    let source_model = map_model(&req.model);
    let mut tool_names = ToolNames::default();
    let chat = build_chat_request(&req, &source_model, dialect, &mut tool_names)?;
    let mut out = Vec::with_capacity(body.len() + body.len() / 8);
    serde_json::to_writer(&mut out, &chat)
        .map_err(|e| RequestError(format!("cannot encode the provider request: {e}")))?;
    Ok(TranslatedRequest {
        body: out,
        stream: chat.stream,
        client_model: req.model.as_str().to_owned(),
        tool_names,
        input_tokens_estimate: estimate_tokens(body.len()),
    })
}

/// About four bytes of JSON per token for English text and code.
pub fn estimate_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

fn build_chat_request<'a>(
    req: &'a MessagesRequest<'a>,
    source_model: &'a str,
    dialect: &Dialect,
    tool_names: &mut ToolNames,
) -> Result<ChatRequest<'a>, RequestError> {
    let tools = translate_tools(req.tools.as_deref().unwrap_or_default(), tool_names);
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = &req.system {
        let text = system_text(system);
        if !text.is_empty() {
            messages.push(ChatMessage::System { content: text });
        }
    }
    for message in &req.messages {
        translate_message(message, dialect, tool_names, &mut messages)?;
    }

    let max_tokens = match (req.max_tokens, dialect.max_tokens_limit) {
        (Some(m), Some(limit)) => Some(m.min(limit)),
        (m, _) => m,
    };
    let (max_tokens, max_completion_tokens) = match dialect.max_tokens_field {
        MaxTokensField::MaxTokens => (max_tokens, None),
        MaxTokensField::MaxCompletionTokens => (None, max_tokens),
    };

    let (tool_choice, parallel_tool_calls) = if tools.is_empty() {
        (None, None)
    } else {
        translate_tool_choice(req, tool_names)
    };

    let stream = req.stream == Some(true);
    let mut chat = ChatRequest {
        model: source_model,
        messages,
        max_tokens,
        max_completion_tokens,
        stop: req
            .stop_sequences
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| s.iter().map(|x| x.as_str()).collect()),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k.filter(|_| dialect.top_k),
        user: req
            .metadata
            .as_ref()
            .and_then(|m| m.user_id.as_ref())
            .map(|u| provider_user(u)),
        stream,
        stream_options: (stream && dialect.stream_usage).then_some(StreamOptions {
            include_usage: true,
        }),
        tools,
        tool_choice,
        parallel_tool_calls,
        reasoning_effort: None,
        thinking: None,
        enable_thinking: None,
        thinking_budget: None,
    };
    apply_reasoning(req, dialect, &mut chat);
    Ok(chat)
}

/// `metadata.user_id` → `user`. Claude Code's value is a long JSON string; providers limit
/// `user` in length, so long values are replaced by a stable hash (which also keeps the
/// client's identifiers out of provider logs).
fn provider_user<'a>(user_id: &'a str) -> Cow<'a, str> {
    if user_id.len() <= 64 {
        Cow::Borrowed(user_id)
    } else {
        let digest = Sha256::digest(user_id.as_bytes());
        Cow::Owned(format!("user_{}", hex::encode(&digest[..16])))
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

fn apply_reasoning(req: &MessagesRequest, dialect: &Dialect, chat: &mut ChatRequest) {
    let (effort, budget) = requested_effort(req);
    match dialect.reasoning {
        ReasoningStyle::None => {}
        ReasoningStyle::Effort => {
            chat.reasoning_effort = match effort {
                Effort::Off => None,
                Effort::Low => Some("low"),
                Effort::Medium => Some("medium"),
                Effort::High | Effort::Max => Some("high"),
            };
        }
        ReasoningStyle::DeepSeek => {
            // DeepSeek thinks unless told not to, and rejects an effort with thinking off.
            if effort == Effort::Off {
                chat.thinking = Some(ThinkingSwitch { kind: "disabled" });
            } else {
                chat.thinking = Some(ThinkingSwitch { kind: "enabled" });
                chat.reasoning_effort = Some(match effort {
                    Effort::Low => "low",
                    Effort::Max => "max",
                    _ => "high",
                });
            }
        }
        ReasoningStyle::Qwen => {
            // DashScope refuses thinking on non-streaming calls.
            let on = effort != Effort::Off && chat.stream;
            chat.enable_thinking = Some(on);
            chat.thinking_budget = budget.filter(|_| on);
        }
    }
}

fn translate_tools<'a>(tools: &'a [Tool<'a>], names: &mut ToolNames) -> Vec<ChatTool<'a>> {
    tools
        .iter()
        .filter(|t| t.is_client_tool())
        .map(|t| ChatTool {
            kind: "function",
            function: FunctionDef {
                name: Cow::Owned(names.to_provider(&t.name)),
                description: t.description.as_deref().unwrap_or(""),
                parameters: match t.input_schema {
                    Some(schema) => schema,
                    None => empty_schema(),
                },
            },
        })
        .collect()
}

fn empty_schema() -> &'static RawValue {
    static EMPTY: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| {
        RawValue::from_string(r#"{"type":"object","properties":{}}"#.to_owned())
            .expect("static schema is valid JSON")
    })
}

fn translate_tool_choice<'a>(
    req: &'a MessagesRequest<'a>,
    names: &mut ToolNames,
) -> (Option<ChatToolChoice<'a>>, Option<bool>) {
    let Some(choice) = &req.tool_choice else {
        return (None, None);
    };
    let parallel = choice
        .disable_parallel_tool_use
        .filter(|d| *d)
        .map(|_| false);
    let mapped = match choice.kind.as_str() {
        "auto" => Some(ChatToolChoice::Mode("auto")),
        "any" => Some(ChatToolChoice::Mode("required")),
        "none" => Some(ChatToolChoice::Mode("none")),
        "tool" => choice.name.as_ref().map(|n| ChatToolChoice::Function {
            kind: "function",
            function: NamedFunction {
                name: Cow::Owned(names.to_provider(n)),
            },
        }),
        _ => None,
    };
    (mapped, parallel)
}

/// `system` as one string: text blocks joined by a blank line, the billing header removed.
fn system_text<'a>(system: &'a Content<'a>) -> Cow<'a, str> {
    let parts: Vec<&str> = system
        .texts()
        .map(strip_billing_header)
        .filter(|t| !t.is_empty())
        .collect();
    match parts.as_slice() {
        [] => Cow::Borrowed(""),
        [one] => Cow::Borrowed(one),
        many => Cow::Owned(many.join("\n\n")),
    }
}

/// Removes a leading `x-anthropic-billing-header: …` line.
fn strip_billing_header(text: &str) -> &str {
    if !text.starts_with(BILLING_HEADER_PREFIX) {
        return text;
    }
    match text.find('\n') {
        Some(i) => text[i + 1..].trim_start_matches('\n'),
        None => "",
    }
}

fn translate_message<'a>(
    message: &'a Message<'a>,
    dialect: &Dialect,
    names: &mut ToolNames,
    out: &mut Vec<ChatMessage<'a>>,
) -> Result<(), RequestError> {
    match message.role.as_str() {
        "user" => translate_user(&message.content, out)?,
        "assistant" => translate_assistant(&message.content, dialect, names, out)?,
        "system" => {
            let text = joined_text(&message.content, "\n\n");
            if text.is_empty() {
            } else if dialect.system_mid_conversation {
                out.push(ChatMessage::System { content: text });
            } else {
                out.push(ChatMessage::User {
                    content: UserContent::Text(Cow::Owned(format!("[System message]\n{text}"))),
                });
            }
        }
        other => {
            return Err(RequestError(format!(
                "messages: unsupported role `{other}` (expected user, assistant or system)"
            )));
        }
    }
    Ok(())
}

fn joined_text<'a>(content: &'a Content<'a>, sep: &str) -> Cow<'a, str> {
    match content {
        Content::Text(t) => Cow::Borrowed(t.as_str()),
        Content::Blocks(_) => {
            let mut texts = content.texts();
            let first = texts.next().unwrap_or("");
            match texts.next() {
                None => Cow::Borrowed(first),
                Some(second) => {
                    let mut s = String::with_capacity(first.len() + second.len() + 16);
                    s.push_str(first);
                    s.push_str(sep);
                    s.push_str(second);
                    for t in texts {
                        s.push_str(sep);
                        s.push_str(t);
                    }
                    Cow::Owned(s)
                }
            }
        }
    }
}

/// A user turn: tool results first (OpenAI wants `tool` messages right after the assistant
/// turn that called them), then one user message with everything else, including images that
/// were inside tool results (tool messages can only carry text).
fn translate_user<'a>(
    content: &'a Content<'a>,
    out: &mut Vec<ChatMessage<'a>>,
) -> Result<(), RequestError> {
    let blocks = match content {
        Content::Text(t) => {
            out.push(ChatMessage::User {
                content: UserContent::Text(Cow::Borrowed(t.as_str())),
            });
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts: Vec<Part<'a>> = Vec::new();
    for block in blocks {
        if block.kind.as_str() == "tool_result" {
            let (text, media) = tool_result_content(block);
            out.push(ChatMessage::Tool {
                tool_call_id: Cow::Borrowed(block.tool_use_id.as_deref().unwrap_or("")),
                content: text,
            });
            parts.extend(media);
        }
    }
    for block in blocks {
        if block.kind.as_str() != "tool_result" {
            parts.extend(user_part(block));
        }
    }
    match parts.len() {
        0 => {}
        1 if matches!(parts[0], Part::Text { .. }) => {
            if let Some(Part::Text { text }) = parts.pop() {
                out.push(ChatMessage::User {
                    content: UserContent::Text(text),
                });
            }
        }
        _ => out.push(ChatMessage::User {
            content: UserContent::Parts(parts),
        }),
    }
    Ok(())
}

/// A tool result's text (several parts joined; `is_error` prefixed with `Error: `) and the
/// media it carried.
fn tool_result_content<'a>(block: &'a Block<'a>) -> (Cow<'a, str>, Vec<Part<'a>>) {
    let mut media = Vec::new();
    let text = match &block.content {
        None => Cow::Borrowed(""),
        Some(Content::Text(t)) => Cow::Borrowed(t.as_str()),
        Some(Content::Blocks(inner)) => {
            let mut texts: Vec<Cow<'a, str>> = Vec::new();
            for b in inner {
                match b.kind.as_str() {
                    "text" => texts.push(Cow::Borrowed(b.text.as_deref().unwrap_or(""))),
                    "document" => match document_part(b) {
                        Some(Part::Text { text }) => texts.push(text),
                        Some(p) => media.push(p),
                        None => {}
                    },
                    _ => media.extend(user_part(b)),
                }
            }
            match texts.len() {
                0 => Cow::Borrowed(""),
                1 => texts.pop().unwrap_or_default(),
                _ => Cow::Owned(texts.join("\n")),
            }
        }
    };
    let text = if block.is_error == Some(true) {
        Cow::Owned(format!("Error: {text}"))
    } else {
        text
    };
    (text, media)
}

/// A user content block as an OpenAI content part; `None` for blocks with no OpenAI meaning.
fn user_part<'a>(block: &'a Block<'a>) -> Option<Part<'a>> {
    match block.kind.as_str() {
        "text" => Some(Part::Text {
            text: Cow::Borrowed(block.text.as_deref().unwrap_or("")),
        }),
        "image" => block.source.as_ref().and_then(image_part),
        "document" => document_part(block),
        _ => None,
    }
}

fn image_part<'a>(source: &'a Source<'a>) -> Option<Part<'a>> {
    let url = match source.kind.as_str() {
        "base64" => Cow::Owned(format!(
            "data:{};base64,{}",
            source.media_type.as_deref().unwrap_or("image/png"),
            source.data.as_deref().unwrap_or("")
        )),
        "url" => Cow::Borrowed(source.url.as_deref()?),
        _ => return None,
    };
    Some(Part::ImageUrl {
        image_url: ImageUrl { url },
    })
}

fn document_part<'a>(block: &'a Block<'a>) -> Option<Part<'a>> {
    let source = block.source.as_ref()?;
    match source.kind.as_str() {
        "base64" => Some(Part::File {
            file: FileData {
                file_data: format!(
                    "data:{};base64,{}",
                    source.media_type.as_deref().unwrap_or("application/pdf"),
                    source.data.as_deref().unwrap_or("")
                ),
                filename: Some(Cow::Borrowed(
                    block.title.as_deref().unwrap_or("document.pdf"),
                )),
            },
        }),
        "text" => Some(Part::Text {
            text: Cow::Borrowed(source.data.as_deref().unwrap_or("")),
        }),
        "content" => source.content.as_ref().map(|c| Part::Text {
            text: joined_text(c, "\n"),
        }),
        "url" => Some(Part::Text {
            text: Cow::Owned(format!(
                "[Document: {}]",
                source.url.as_deref().unwrap_or("")
            )),
        }),
        _ => None,
    }
}

fn translate_assistant<'a>(
    content: &'a Content<'a>,
    dialect: &Dialect,
    names: &mut ToolNames,
    out: &mut Vec<ChatMessage<'a>>,
) -> Result<(), RequestError> {
    let blocks = match content {
        Content::Text(t) => {
            out.push(ChatMessage::Assistant {
                content: Some(Cow::Borrowed(t.as_str())),
                tool_calls: Vec::new(),
                reasoning_content: None,
            });
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut text: Option<Cow<'a, str>> = None;
    let mut reasoning: Option<Cow<'a, str>> = None;
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.kind.as_str() {
            "text" => append(&mut text, block.text.as_deref().unwrap_or("")),
            "thinking" if dialect.echo_reasoning => {
                append(&mut reasoning, block.thinking.as_deref().unwrap_or(""))
            }
            "tool_use" => {
                let input = block.input.map_or("{}", |raw| raw.get());
                tool_calls.push(ToolCall {
                    id: Cow::Borrowed(block.id.as_deref().unwrap_or("")),
                    kind: "function",
                    function: FunctionCall {
                        name: Cow::Owned(names.to_provider(block.name.as_deref().unwrap_or(""))),
                        arguments: Cow::Borrowed(input),
                    },
                });
            }
            // redacted_thinking, server_tool_use, web_search_tool_result…: nothing to send.
            _ => {}
        }
    }
    if text.is_none() && tool_calls.is_empty() {
        // Providers reject an assistant message with neither content nor tool calls.
        text = Some(Cow::Borrowed(""));
    }
    out.push(ChatMessage::Assistant {
        content: text,
        tool_calls,
        reasoning_content: reasoning,
    });
    Ok(())
}

fn append<'a>(acc: &mut Option<Cow<'a, str>>, piece: &'a str) {
    match acc {
        None => *acc = Some(Cow::Borrowed(piece)),
        Some(existing) => existing.to_mut().push_str(piece),
    }
}

#[cfg(test)]
mod tests;
