//! An OpenAI Responses `POST /v1/responses` body (Codex CLI, the SDKs' `responses.create`) →
//! a pivot [`Conversation`], borrowing its text and schemas.
//!
//! Items become turns: messages by role (leading developer/system messages are the system
//! prompt, later ones mid-conversation instructions), `reasoning`, `function_call` and
//! `custom_tool_call` items join the assistant turn they belong to, their outputs a user turn
//! of tool results. `reasoning` items only count when their `encrypted_content` is one this
//! proxy sealed ([`super::seal`]). Tools: `function` as is; `custom` (free-form, Codex's
//! `apply_patch`) as a function of one string `input`; functions inside a `namespace`
//! flattened to `<namespace>__<name>`; hosted tools (`web_search`, `tool_search`,
//! `file_search`, …) dropped — the source cannot run them — unless `tool_choice` forces one,
//! which is refused. `previous_response_id`, `store: true`, `item_reference` and
//! `background` need server-side state a translated source does not have: refused.

use super::seal::ReasoningKey;
use crate::protocol::json::{Str, Text};
use crate::protocol::pivot::{
    ClientTools, Conversation, Effort, Media, Part, Reasoning, ReasoningRequest, Refusal,
    ResponseFormat, Role, ToolCall, ToolChoice, ToolSpec, Turn,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Separates a namespace from a function's name once flattened (`[A-Za-z0-9_-]` only, as
/// OpenAI-compatible sources demand of tool names).
pub const NAMESPACE_SEPARATOR: &str = "__";

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    model: Option<Str<'a>>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    #[serde(borrow)]
    instructions: Option<Text<'a>>,
    #[serde(default, borrow)]
    tools: Vec<&'a RawValue>,
    #[serde(borrow)]
    tool_choice: Option<&'a RawValue>,
    parallel_tool_calls: Option<bool>,
    max_output_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stream: Option<bool>,
    #[serde(borrow)]
    reasoning: Option<ReasoningParam<'a>>,
    #[serde(borrow)]
    text: Option<TextParam<'a>>,
    #[serde(borrow)]
    previous_response_id: Option<Str<'a>>,
    #[serde(borrow)]
    conversation: Option<&'a RawValue>,
    store: Option<bool>,
    background: Option<bool>,
    #[serde(borrow)]
    user: Option<Str<'a>>,
    #[serde(borrow)]
    safety_identifier: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct ReasoningParam<'a> {
    #[serde(borrow)]
    effort: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct TextParam<'a> {
    #[serde(borrow)]
    format: Option<Format<'a>>,
}

#[derive(Deserialize)]
struct Format<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
}

/// One input item; every kind's fields, all optional (serde cannot borrow raw values
/// through an internally tagged enum).
#[derive(Deserialize)]
struct Item<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    role: Option<Str<'a>>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(borrow)]
    call_id: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    namespace: Option<Str<'a>>,
    #[serde(borrow)]
    arguments: Option<Str<'a>>,
    #[serde(borrow)]
    input: Option<Str<'a>>,
    #[serde(borrow)]
    output: Option<&'a RawValue>,
    #[serde(borrow)]
    encrypted_content: Option<Str<'a>>,
    #[serde(default, borrow)]
    tools: Vec<&'a RawValue>,
    /// A `web_search_call`'s action (`{type: search, query}`).
    #[serde(borrow)]
    action: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ContentPart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    text: Option<Text<'a>>,
    #[serde(borrow)]
    refusal: Option<Text<'a>>,
    #[serde(borrow)]
    image_url: Option<Str<'a>>,
    #[serde(borrow)]
    file_data: Option<Str<'a>>,
    #[serde(borrow)]
    file_url: Option<Str<'a>>,
    #[serde(borrow)]
    file_id: Option<Str<'a>>,
    #[serde(borrow)]
    filename: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    description: Option<Text<'a>>,
    #[serde(borrow)]
    parameters: Option<&'a RawValue>,
    strict: Option<bool>,
    #[serde(borrow)]
    format: Option<CustomFormat<'a>>,
    #[serde(default, borrow)]
    tools: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct CustomFormat<'a> {
    #[serde(borrow)]
    syntax: Option<Str<'a>>,
    #[serde(borrow)]
    definition: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct NamedChoice<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    mode: Option<Str<'a>>,
}

fn invalid(what: impl std::fmt::Display) -> Refusal {
    Refusal(format!("invalid request body: {what}"))
}

/// Parses a Responses request. `text` must outlive the conversation (it is borrowed);
/// `key` opens the reasoning this proxy sealed into earlier answers.
pub fn decode_request<'a>(
    text: &'a str,
    key: Option<&ReasoningKey>,
) -> Result<Conversation<'a>, Refusal> {
    if !crate::protocol::json::is_object_document(text) {
        return Err(invalid("expected a JSON object"));
    }
    let req: Request<'a> = serde_json::from_str(text).map_err(invalid)?;
    refuse_state(&req)?;
    let mut conversation = Conversation {
        model: req.model.clone().map(Str::into_cow).unwrap_or_default(),
        parallel_tool_calls: req.parallel_tool_calls,
        max_tokens: req.max_output_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        stream: req.stream == Some(true),
        // Responses streams always end with usage (`response.completed`).
        stream_usage: true,
        reasoning: req.reasoning.as_ref().and_then(reasoning),
        response_format: req.text.as_ref().and_then(response_format),
        user: req
            .user
            .clone()
            .or_else(|| req.safety_identifier.clone())
            .map(Str::into_cow),
        ..Conversation::default()
    };
    if let Some(instructions) = req.instructions.filter(|i| !i.is_empty()) {
        conversation.system.push(instructions);
    }
    let mut tools = Tools::default();
    for (i, tool) in req.tools.iter().enumerate() {
        let before = tools.client.dropped.len();
        tools.add(tool)?;
        if let Some(hosted) = tools.client.dropped.get(before) {
            conversation.notes.tool_dropped(i, hosted);
        }
    }
    match req.input {
        None => return Err(invalid("`input` is required")),
        Some(input) if input.get().starts_with('"') => {
            let text: Text<'a> = serde_json::from_str(input.get()).map_err(invalid)?;
            conversation.turns.push(Turn {
                role: Role::User,
                parts: vec![Part::Text(text)],
            });
        }
        Some(input) => {
            let items: Vec<Item<'a>> = serde_json::from_str(input.get())
                .map_err(|e| invalid(format_args!("input: {e}")))?;
            let mut turns = Turns {
                conversation: &mut conversation,
                key,
            };
            for (i, item) in items.into_iter().enumerate() {
                turns
                    .add(item, &mut tools)
                    .map_err(|e| Refusal(format!("input[{i}]: {}", e.0)))?;
            }
        }
    }
    conversation.tool_choice = match req.tool_choice {
        Some(choice) => tool_choice(choice, &tools)?,
        None => None,
    };
    conversation.tools = tools.specs;
    conversation.client_tools = tools.client;
    Ok(conversation)
}

fn refuse_state(req: &Request<'_>) -> Result<(), Refusal> {
    const WHY: &str = "FlexiProxy keeps no responses for this adapter's source; send the whole \
                       conversation in `input` (with `store: false`)";
    if req.previous_response_id.is_some() {
        return Err(Refusal(format!(
            "previous_response_id is not supported: {WHY}"
        )));
    }
    if req.conversation.is_some_and(|c| c.get() != "null") {
        return Err(Refusal(format!("conversation is not supported: {WHY}")));
    }
    if req.store == Some(true) {
        return Err(Refusal(format!("store: true is not supported: {WHY}")));
    }
    if req.background == Some(true) {
        return Err(Refusal(format!("background: true is not supported: {WHY}")));
    }
    Ok(())
}

fn reasoning(param: &ReasoningParam<'_>) -> Option<ReasoningRequest> {
    let effort = param.effort.as_deref()?;
    if effort == "none" {
        return Some(ReasoningRequest {
            enabled: false,
            effort: None,
            budget_tokens: None,
        });
    }
    Some(ReasoningRequest {
        enabled: true,
        effort: Effort::parse(effort),
        budget_tokens: None,
    })
}

fn response_format<'a>(text: &TextParam<'a>) -> Option<ResponseFormat<'a>> {
    let format = text.format.as_ref()?;
    match format.kind.as_str() {
        "json_object" => Some(ResponseFormat::JsonObject),
        "json_schema" => Some(ResponseFormat::JsonSchema {
            name: format
                .name
                .clone()
                .map_or(Cow::Borrowed("response"), Str::into_cow),
            schema: Cow::Borrowed(format.schema?),
        }),
        _ => None,
    }
}

/// The tools the source sees, and what the client's encoders need to restore.
#[derive(Default)]
struct Tools<'a> {
    specs: Vec<ToolSpec<'a>>,
    client: ClientTools,
}

impl<'a> Tools<'a> {
    fn add(&mut self, raw: &'a RawValue) -> Result<(), Refusal> {
        let tool: Tool<'a> =
            serde_json::from_str(raw.get()).map_err(|e| invalid(format_args!("tools: {e}")))?;
        let name = || {
            tool.name.clone().map(Str::into_cow).ok_or_else(|| {
                invalid(format_args!(
                    "tools: a `{}` tool needs a name",
                    tool.kind.as_str()
                ))
            })
        };
        match tool.kind.as_str() {
            "function" => self.specs.push(ToolSpec {
                name: name()?,
                description: tool.description.clone(),
                parameters: tool.parameters.map(Cow::Borrowed),
                strict: tool.strict,
            }),
            "custom" => {
                let name = name()?;
                self.client.custom.push(name.to_string());
                self.specs.push(custom_as_function(name, &tool));
            }
            "namespace" => {
                let namespace = name()?;
                for inner in &tool.tools {
                    let mut nested = Tools::default();
                    nested.add(inner)?;
                    for mut spec in nested.specs {
                        let flat = flat_name(&namespace, &spec.name);
                        if nested.client.is_custom(&spec.name) {
                            self.client.custom.push(flat.clone());
                        }
                        self.client.namespaced.push((
                            flat.clone(),
                            namespace.to_string(),
                            spec.name.to_string(),
                        ));
                        spec.name = Cow::Owned(flat);
                        self.specs.push(spec);
                    }
                }
            }
            hosted => self.client.dropped.push(hosted.to_owned()),
        }
        Ok(())
    }
}

/// The name a namespaced function has for the source: `<namespace>__<name>`, or the name
/// alone in Codex's default namespace `functions`.
fn flat_name(namespace: &str, name: &str) -> String {
    if namespace == DEFAULT_NAMESPACE {
        name.to_owned()
    } else {
        format!("{namespace}{NAMESPACE_SEPARATOR}{name}")
    }
}

/// Codex's default namespace: its tools are called by their plain names too.
const DEFAULT_NAMESPACE: &str = "functions";

/// A free-form tool as a function taking its text in one string parameter; the grammar (or
/// other format) goes into that parameter's description so the model still sees it.
fn custom_as_function<'a>(name: Cow<'a, str>, tool: &Tool<'a>) -> ToolSpec<'a> {
    let mut input_description = String::from("The tool's free-form input, as plain text.");
    if let Some(format) = &tool.format
        && let Some(definition) = &format.definition
    {
        let syntax = format.syntax.as_deref().unwrap_or("grammar");
        input_description.push_str(&format!(
            " It must match this {syntax} grammar:\n{}",
            definition.as_str()
        ));
    }
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"input": {"type": "string", "description": input_description}},
        "required": ["input"],
        "additionalProperties": false,
    });
    ToolSpec {
        name,
        description: tool.description.clone(),
        parameters: RawValue::from_string(schema.to_string())
            .ok()
            .map(Cow::Owned),
        strict: None,
    }
}

fn tool_choice<'a>(
    raw: &'a RawValue,
    tools: &Tools<'a>,
) -> Result<Option<ToolChoice<'a>>, Refusal> {
    let json = raw.get();
    if json.starts_with('"') {
        let mode: Str<'_> = serde_json::from_str(json).map_err(invalid)?;
        return Ok(match mode.as_str() {
            "auto" => Some(ToolChoice::Auto),
            "required" => Some(ToolChoice::Required),
            "none" => Some(ToolChoice::None),
            other => return Err(Refusal(format!("tool_choice: unknown mode `{other}`"))),
        });
    }
    let choice: NamedChoice<'a> =
        serde_json::from_str(json).map_err(|e| invalid(format_args!("tool_choice: {e}")))?;
    match choice.kind.as_str() {
        "function" | "custom" => {
            let name = choice
                .name
                .ok_or_else(|| Refusal("tool_choice: a named choice needs `name`".into()))?;
            Ok(Some(ToolChoice::Named(name.into_cow())))
        }
        // The allowed set is what `tools` lists already; only the mode carries over.
        "allowed_tools" => Ok(Some(match choice.mode.as_deref() {
            Some("required") => ToolChoice::Required,
            _ => ToolChoice::Auto,
        })),
        hosted => Err(Refusal(format!(
            "tool_choice: `{hosted}` is a tool hosted by OpenAI, which this adapter's source \
             cannot run{}",
            if tools.client.dropped.iter().any(|h| h == hosted) {
                " (it is dropped from `tools`)"
            } else {
                ""
            }
        ))),
    }
}

/// Folds items into turns.
struct Turns<'c, 'a, 'k> {
    conversation: &'c mut Conversation<'a>,
    key: Option<&'k ReasoningKey>,
}

impl<'a> Turns<'_, 'a, '_> {
    /// Appends to the last turn when it has this role, else opens one.
    fn push(&mut self, role: Role, part: Part<'a>) {
        let turns = &mut self.conversation.turns;
        match turns.last_mut() {
            Some(turn) if turn.role == role && role != Role::System => turn.parts.push(part),
            _ => turns.push(Turn {
                role,
                parts: vec![part],
            }),
        }
    }

    fn add(&mut self, item: Item<'a>, tools: &mut Tools<'a>) -> Result<(), Refusal> {
        // Messages may omit `type` (the easy input message).
        let kind = item.kind.as_deref().unwrap_or("message");
        match kind {
            "message" => self.message(item),
            "reasoning" => {
                if let Some(reasoning) = self.open_reasoning(&item) {
                    self.push(Role::Assistant, Part::Reasoning(reasoning));
                }
                Ok(())
            }
            "function_call" | "custom_tool_call" => {
                let call_id = required(item.call_id, "call_id")?;
                let name = required(item.name, "name")?;
                let name = match item.namespace {
                    Some(ns) => Cow::Owned(flat_name(&ns, &name)),
                    None => name,
                };
                let arguments = if kind == "custom_tool_call" {
                    let input = item.input.map(Str::into_cow).unwrap_or_default();
                    Cow::Owned(serde_json::json!({ "input": input }).to_string())
                } else {
                    item.arguments.map_or(Cow::Borrowed("{}"), Str::into_cow)
                };
                self.push(
                    Role::Assistant,
                    Part::ToolCall(ToolCall {
                        id: call_id,
                        name,
                        arguments,
                    }),
                );
                Ok(())
            }
            "function_call_output" | "custom_tool_call_output" => {
                let call_id = required(item.call_id, "call_id")?;
                let content = match item.output {
                    Some(output) => content_parts(output)?,
                    None => Vec::new(),
                };
                self.push(
                    Role::User,
                    Part::ToolResult {
                        call_id,
                        content,
                        is_error: false,
                    },
                );
                Ok(())
            }
            // Codex's newer model slugs send their tools as an input item.
            "additional_tools" => {
                for tool in item.tools {
                    tools.add(tool)?;
                }
                Ok(())
            }
            // A search run earlier for the client (by its provider or by this gateway, see
            // docs/web-search.md): plain context for the source, which cannot see it.
            "web_search_call" => {
                if let Some(query) = item.action.and_then(search_query) {
                    let note = format!("(Searched the web for: {query})");
                    self.push(Role::Assistant, Part::Text(Text::from_plain(&note)));
                }
                Ok(())
            }
            "item_reference" => Err(Refusal(
                "`item_reference` needs stored responses, which this adapter's source does \
                 not keep; send the items themselves"
                    .into(),
            )),
            other => Err(Refusal(format!(
                "unsupported item type `{other}` (expected message, reasoning, function_call, \
                 function_call_output, custom_tool_call, custom_tool_call_output or \
                 web_search_call)"
            ))),
        }
    }

    fn message(&mut self, item: Item<'a>) -> Result<(), Refusal> {
        let role = match item.role.as_deref() {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some("developer" | "system") => Role::System,
            Some(other) => return Err(Refusal(format!("unsupported role `{other}`"))),
            None => return Err(Refusal("a message needs a `role`".into())),
        };
        let parts = match item.content {
            Some(content) => content_parts(content)?,
            None => Vec::new(),
        };
        if role == Role::System && self.conversation.turns.is_empty() {
            for part in parts {
                if let Part::Text(text) = part {
                    self.conversation.system.push(text);
                }
            }
            return Ok(());
        }
        for part in parts {
            self.push(role, part);
        }
        Ok(())
    }

    /// The reasoning sealed in an item's `encrypted_content`, if this proxy sealed it.
    fn open_reasoning(&self, item: &Item<'a>) -> Option<Reasoning<'a>> {
        Some(self.key?.open(item.encrypted_content.as_deref()?)?.into())
    }
}

/// The query of a `web_search_call`'s action (`search` with `query` or `queries`).
fn search_query(action: &RawValue) -> Option<String> {
    let action: serde_json::Value = serde_json::from_str(action.get()).ok()?;
    let query = match action.get("query").and_then(|q| q.as_str()) {
        Some(q) => q.to_owned(),
        None => action
            .get("queries")?
            .as_array()?
            .iter()
            .filter_map(|q| q.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    };
    (!query.trim().is_empty()).then_some(query)
}
fn required<'a>(value: Option<Str<'a>>, field: &str) -> Result<Cow<'a, str>, Refusal> {
    value
        .map(Str::into_cow)
        .ok_or_else(|| Refusal(format!("`{field}` is required")))
}

/// Message content or tool output: a string, or content parts.
fn content_parts<'a>(raw: &'a RawValue) -> Result<Vec<Part<'a>>, Refusal> {
    let json = raw.get();
    if json.starts_with('"') {
        let text: Text<'a> = serde_json::from_str(json).map_err(invalid)?;
        return Ok(vec![Part::Text(text)]);
    }
    if json == "null" {
        return Ok(Vec::new());
    }
    let parts: Vec<ContentPart<'a>> =
        serde_json::from_str(json).map_err(|e| invalid(format_args!("content: {e}")))?;
    parts.into_iter().filter_map(content_part).collect()
}

fn content_part(part: ContentPart<'_>) -> Option<Result<Part<'_>, Refusal>> {
    Some(Ok(match part.kind.as_str() {
        "input_text" | "output_text" | "text" | "summary_text" | "reasoning_text" => {
            Part::Text(part.text.unwrap_or_default())
        }
        "refusal" => Part::Text(part.refusal.or(part.text).unwrap_or_default()),
        "input_image" => match part.image_url {
            Some(url) => Part::Image(media(url)),
            None => return Some(Err(no_file_ids("input_image"))),
        },
        "input_file" => match (part.file_data, part.file_url) {
            (Some(data), _) => Part::Document {
                media: media(data),
                title: part.filename.map(Str::into_cow),
            },
            (None, Some(url)) => Part::Document {
                media: Media::Url(url.into_cow()),
                title: part.filename.map(Str::into_cow),
            },
            (None, None) if part.file_id.is_some() => return Some(Err(no_file_ids("input_file"))),
            (None, None) => return None,
        },
        other => return Some(Err(Refusal(format!("unsupported content part `{other}`")))),
    }))
}

fn no_file_ids(kind: &str) -> Refusal {
    Refusal(format!(
        "{kind}: only inline data or URLs are supported (file ids refer to OpenAI's file store)"
    ))
}

/// A `data:` URL split into type and data; other URLs stay URLs.
fn media(url: Str<'_>) -> Media<'_> {
    match url.0 {
        Cow::Borrowed(s) => match s
            .strip_prefix("data:")
            .and_then(|r| r.split_once(";base64,"))
        {
            Some((media_type, data)) => Media::Base64 {
                media_type: Cow::Borrowed(media_type),
                data: Text::from_escaped(data),
            },
            None => Media::Url(Cow::Borrowed(s)),
        },
        Cow::Owned(s) => Media::from_url(&s),
    }
}

#[cfg(test)]
mod tests;
