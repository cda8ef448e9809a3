//! An Anthropic `POST /v1/messages` body (Claude Code, Cline, the SDKs) → a pivot
//! [`Conversation`], borrowing its text and schemas.
//!
//! Done here, because it is about what Anthropic clients send: Claude Code's per-request
//! billing header is cut from `system` (forwarding it defeats provider prompt caches);
//! `cache_control`, `context_management`, betas and server tools (`web_search_*`, `bash_*`,
//! … which other providers cannot run) are dropped; text documents become text; thinking
//! keeps its signature with origin Anthropic.

use crate::protocol::anthropic::{Block, Content, Message, MessagesRequest, Tool};
use crate::protocol::json::Text;
use crate::protocol::notes::{Change, Notes};
use crate::protocol::pivot::{
    Conversation, Effort, Media, Origin, Part, Reasoning, ReasoningRequest, Refusal, Role,
    ToolCall, ToolChoice, ToolSpec, Turn,
};
use std::borrow::Cow;

/// The first system block Claude Code sends changes on every request
/// (`x-anthropic-billing-header: cc_version=…;`).
const BILLING_HEADER_PREFIX: &str = "x-anthropic-billing-header:";

/// Parses a Messages request. `text` must outlive the conversation (it is borrowed).
pub fn decode_request(text: &str) -> Result<Conversation<'_>, Refusal> {
    if !crate::protocol::json::is_object_document(text) {
        return Err(Refusal(
            "invalid request body: expected a JSON object".to_owned(),
        ));
    }
    let req: MessagesRequest =
        serde_json::from_str(text).map_err(|e| Refusal(format!("invalid request body: {e}")))?;
    for message in &req.messages {
        let role = message.role.as_str();
        if !matches!(role, "user" | "assistant" | "system") {
            return Err(Refusal(format!(
                "messages: unsupported role `{role}` (expected user, assistant or system)"
            )));
        }
    }
    Ok(conversation(req))
}

fn conversation(req: MessagesRequest<'_>) -> Conversation<'_> {
    let reasoning = reasoning(&req);
    let (tool_choice, parallel_tool_calls) = match &req.tool_choice {
        None => (None, None),
        Some(choice) => {
            let parallel = (choice.disable_parallel_tool_use == Some(true)).then_some(false);
            let kind = match choice.kind.as_str() {
                "auto" => Some(ToolChoice::Auto),
                "any" => Some(ToolChoice::Required),
                "none" => Some(ToolChoice::None),
                "tool" => choice
                    .name
                    .as_ref()
                    .map(|n| ToolChoice::Named(Cow::Owned(n.as_str().to_owned()))),
                _ => None,
            };
            (kind, parallel)
        }
    };
    // Server tools (web search, code execution, …) no other provider runs: named in the
    // access log's `dropped_tools` (unless the gateway runs the search, docs/web-search.md).
    let mut notes = Notes::default();
    let mut dropped = Vec::new();
    for (i, tool) in req.tools.iter().flatten().enumerate() {
        if !tool.is_client_tool() {
            let kind = tool.kind.as_deref().unwrap_or_default().to_owned();
            notes.tool_dropped(i, &kind);
            dropped.push(kind);
        }
    }
    notes.push_times(
        "cache_control",
        None,
        Change::Dropped(None),
        cache_controls(&req),
    );
    let MessagesRequest {
        model,
        messages,
        system,
        max_tokens,
        stop_sequences,
        stream,
        temperature,
        top_p,
        top_k,
        metadata,
        tools,
        ..
    } = req;
    Conversation {
        model: model.into_cow(),
        system: system.map(system_texts).unwrap_or_default(),
        turns: messages.into_iter().map(|m| turn(m, &mut notes)).collect(),
        tools: tools
            .unwrap_or_default()
            .into_iter()
            .filter(Tool::is_client_tool)
            .map(|t| ToolSpec {
                name: t.name.into_cow(),
                description: t.description,
                parameters: t.input_schema.map(Cow::Borrowed),
                strict: None,
            })
            .collect(),
        tool_choice,
        parallel_tool_calls,
        max_tokens,
        temperature,
        top_p,
        top_k,
        stop: stop_sequences
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.into_cow())
            .collect(),
        stream: stream == Some(true),
        stream_usage: false,
        reasoning,
        response_format: None,
        user: metadata.and_then(|m| m.user_id).map(|u| u.into_cow()),
        client_tools: crate::protocol::pivot::ClientTools {
            dropped,
            ..Default::default()
        },
        notes,
    }
}

/// Blocks and tools marked for Anthropic's prompt cache (no other protocol has one).
fn cache_controls(req: &MessagesRequest<'_>) -> u32 {
    fn in_content(content: &Content<'_>) -> u32 {
        match content {
            Content::Text(_) => 0,
            Content::Blocks(blocks) => blocks
                .iter()
                .map(|b| {
                    u32::from(b.cache_control.is_some()) + b.content.as_ref().map_or(0, in_content)
                })
                .sum(),
        }
    }
    let tools = req.tools.iter().flatten();
    req.system.as_ref().map_or(0, in_content)
        + req
            .messages
            .iter()
            .map(|m| in_content(&m.content))
            .sum::<u32>()
        + tools
            .map(|t| u32::from(t.cache_control.is_some()))
            .sum::<u32>()
}

/// `thinking` (and `output_config.effort` for adaptive thinking) as a reasoning request.
fn reasoning(req: &MessagesRequest<'_>) -> Option<ReasoningRequest> {
    let thinking = req.thinking.as_ref()?;
    let (effort, budget) = match thinking.kind.as_str() {
        "enabled" => (
            Effort::from_budget(thinking.budget_tokens),
            thinking.budget_tokens,
        ),
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
        _ => {
            return Some(ReasoningRequest {
                enabled: false,
                effort: None,
                budget_tokens: None,
            });
        }
    };
    Some(ReasoningRequest {
        enabled: true,
        effort: Some(effort),
        budget_tokens: budget,
    })
}

/// `system` text blocks without the billing header, empty ones dropped.
fn system_texts(system: Content<'_>) -> Vec<Text<'_>> {
    texts(system)
        .filter_map(|t| {
            if t.escaped().starts_with(BILLING_HEADER_PREFIX) {
                t.after_first_newline()
                    .map(|rest| Text::from_escaped(rest.to_owned()))
            } else {
                Some(t)
            }
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// The text of text blocks (or the plain string), in order.
fn texts(content: Content<'_>) -> impl Iterator<Item = Text<'_>> {
    let (single, blocks) = match content {
        Content::Text(t) => (Some(t), Vec::new()),
        Content::Blocks(b) => (None, b),
    };
    single.into_iter().chain(
        blocks
            .into_iter()
            .filter(|b| b.kind.as_str() == "text")
            .filter_map(|b| b.text),
    )
}

fn turn<'a>(message: Message<'a>, notes: &mut Notes) -> Turn<'a> {
    let role = match message.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        _ => Role::System,
    };
    let parts = match (role, message.content) {
        (Role::System, content) => texts(content).map(Part::Text).collect(),
        (_, Content::Text(t)) => vec![Part::Text(t)],
        (Role::User, Content::Blocks(blocks)) => blocks.into_iter().filter_map(user_part).collect(),
        (_, Content::Blocks(blocks)) => blocks
            .into_iter()
            .filter_map(|b| assistant_part(b, notes))
            .collect(),
    };
    Turn { role, parts }
}

fn user_part(block: Block<'_>) -> Option<Part<'_>> {
    match block.kind.as_str() {
        "tool_result" => Some(Part::ToolResult {
            call_id: block
                .tool_use_id
                .map_or(Cow::Borrowed(""), |id| id.into_cow()),
            content: match block.content {
                None => Vec::new(),
                Some(Content::Text(t)) => vec![Part::Text(t)],
                Some(Content::Blocks(inner)) => tool_result_parts(inner),
            },
            is_error: block.is_error == Some(true),
        }),
        _ => content_part(block),
    }
}

/// A tool result's blocks. `tool_reference` blocks (Claude Code's tool search answers with
/// them: the tools it loaded) mean nothing to other providers — an empty tool message — so
/// they become one text naming the tools.
fn tool_result_parts(blocks: Vec<Block<'_>>) -> Vec<Part<'_>> {
    let mut loaded: Vec<String> = Vec::new();
    let mut parts: Vec<Part<'_>> = Vec::new();
    for block in blocks {
        if block.kind.as_str() == "tool_reference" {
            if let Some(name) = block.tool_name.filter(|n| !n.is_empty()) {
                loaded.push(name.into_cow().into_owned());
            }
        } else if let Some(part) = user_part(block) {
            parts.push(part);
        }
    }
    if !loaded.is_empty() {
        let s = if loaded.len() == 1 { "" } else { "s" };
        let text = format!("Tool{s} loaded: {}", loaded.join(", "));
        parts.insert(0, Part::Text(Text::from_plain(&text)));
    }
    parts
}

/// Text, images and documents (as user content or inside tool results).
fn content_part(block: Block<'_>) -> Option<Part<'_>> {
    let kind = block.kind.as_str();
    if kind == "text" {
        return Some(Part::Text(block.text.unwrap_or_default()));
    }
    let source = block.source?;
    match (kind, source.kind.as_str()) {
        ("image", "base64") => Some(Part::Image(Media::Base64 {
            media_type: source
                .media_type
                .map_or(Cow::Borrowed("image/png"), |m| m.into_cow()),
            data: source.data.unwrap_or_default(),
        })),
        ("image", "url") => source.url.map(|u| Part::Image(Media::Url(u.into_cow()))),
        ("document", "base64") => Some(Part::Document {
            media: Media::Base64 {
                media_type: source
                    .media_type
                    .map_or(Cow::Borrowed("application/pdf"), |m| m.into_cow()),
                data: source.data.unwrap_or_default(),
            },
            title: block.title.map(|t| t.into_cow()),
        }),
        ("document", "text") => Some(Part::Text(source.data.unwrap_or_default())),
        ("document", "content") => {
            let joined: Vec<String> = source
                .content
                .map(|c| texts(c).map(|t| t.escaped().to_owned()).collect())
                .unwrap_or_default();
            Some(Part::Text(Text::from_escaped(joined.join("\\n"))))
        }
        ("document", "url") => Some(Part::Document {
            media: Media::Url(source.url.map_or(Cow::Borrowed(""), |u| u.into_cow())),
            title: block.title.map(|t| t.into_cow()),
        }),
        _ => None,
    }
}

fn assistant_part<'a>(block: Block<'a>, notes: &mut Notes) -> Option<Part<'a>> {
    match block.kind.as_str() {
        "text" => Some(Part::Text(block.text.unwrap_or_default())),
        "thinking" => Some(Part::Reasoning(Reasoning {
            text: block.thinking.unwrap_or_default(),
            signature: block.signature.map(|s| (Origin::Anthropic, s.into_cow())),
            redacted: None,
        })),
        "tool_use" => Some(Part::ToolCall(ToolCall {
            id: block.id.map_or(Cow::Borrowed(""), |id| id.into_cow()),
            name: block.name.map_or(Cow::Borrowed(""), |n| n.into_cow()),
            arguments: Cow::Borrowed(block.input.map_or("{}", |raw| raw.get())),
        })),
        // A web search Anthropic (or the gateway, docs/web-search.md) ran: plain context
        // for a source that cannot see server tools.
        "server_tool_use" => {
            let input: serde_json::Value = serde_json::from_str(block.input?.get()).ok()?;
            let query = input.get("query")?.as_str()?;
            Some(Part::Text(Text::from_plain(&format!(
                "(Searched the web for: {query})"
            ))))
        }
        "web_search_tool_result" => {
            Some(Part::Text(Text::from_plain(&search_results(block.content))))
        }
        // redacted_thinking and other server tools' blocks: no other protocol can take them.
        other => {
            notes.push(
                format!("{other} block"),
                None,
                Change::Dropped(Some("no other protocol takes it")),
            );
            None
        }
    }
}

/// A `web_search_tool_result`'s content as text: its results' titles and URLs, or its error.
fn search_results(content: Option<Content<'_>>) -> String {
    let blocks = match content {
        Some(Content::Blocks(blocks)) => blocks,
        _ => Vec::new(),
    };
    let mut text = String::from("(Web search results:");
    for block in &blocks {
        match (block.kind.as_str(), &block.url, &block.error_code) {
            ("web_search_result", Some(url), _) => {
                let title = block.title.as_ref().map_or("", |t| t.as_str());
                text.push_str(&format!("\n- {title} ({})", url.as_str()));
            }
            (_, _, Some(code)) => text.push_str(&format!(" failed: {}", code.as_str())),
            _ => {}
        }
    }
    if blocks.is_empty() {
        text.push_str(" none");
    }
    text.push(')');
    text
}
