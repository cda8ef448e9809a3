//! A Gemini `generateContent` / `streamGenerateContent` body (Gemini CLI, the `google-genai`
//! SDKs) → a pivot [`Conversation`], borrowing its text; the model and whether it streams
//! come from the path.
//!
//! `contents` become turns (`user`/`function` → user, `model` → assistant); `functionCall`
//! parts are calls (an id made up when absent), `functionResponse` parts their results,
//! matched by id or, without one, to the earliest unanswered call of that name. A
//! `thoughtSignature` this proxy sealed puts the reasoning it carries back before its part;
//! other signatures and `thought` parts in the history are dropped (Gemini itself ignores
//! them). `functionDeclarations` with `parametersJsonSchema` pass as they are, `parameters`
//! (the OpenAPI subset) are turned into JSON Schema; Google's own tools (`googleSearch`,
//! `codeExecution`, `urlContext`, …) are dropped and named in the access log. Refused with
//! a message naming the field: `candidateCount` > 1, `cachedContent`.

use super::to_json_schema;
use crate::protocol::json::{Str, Text};
use crate::protocol::pivot::{
    ClientTools, Conversation, Effort, Media, Part, Reasoning, ReasoningRequest, Refusal,
    ResponseFormat, Role, ToolCall, ToolChoice, ToolSpec, Turn,
};
use crate::protocol::responses::seal::ReasoningKey;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    #[serde(borrow, default)]
    contents: Vec<Content<'a>>,
    #[serde(borrow, alias = "system_instruction")]
    system_instruction: Option<Content<'a>>,
    #[serde(borrow, default)]
    tools: Vec<&'a RawValue>,
    #[serde(borrow, alias = "tool_config")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(borrow, alias = "generation_config")]
    generation_config: Option<GenerationConfig<'a>>,
    #[serde(borrow, alias = "cached_content")]
    cached_content: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow)]
    role: Option<Str<'a>>,
    #[serde(borrow, default)]
    parts: Vec<WirePart<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart<'a> {
    #[serde(borrow)]
    text: Option<Text<'a>>,
    thought: Option<bool>,
    #[serde(borrow, alias = "thought_signature")]
    thought_signature: Option<Str<'a>>,
    #[serde(borrow, alias = "inline_data")]
    inline_data: Option<Blob<'a>>,
    #[serde(borrow, alias = "file_data")]
    file_data: Option<FileData<'a>>,
    #[serde(borrow, alias = "function_call")]
    function_call: Option<FunctionCall<'a>>,
    #[serde(borrow, alias = "function_response")]
    function_response: Option<FunctionResponse<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'a> {
    #[serde(borrow, alias = "mime_type")]
    mime_type: Option<Str<'a>>,
    #[serde(borrow)]
    data: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileData<'a> {
    #[serde(borrow, alias = "mime_type")]
    mime_type: Option<Str<'a>>,
    #[serde(borrow, alias = "file_uri")]
    file_uri: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct FunctionCall<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    args: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct FunctionResponse<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tool<'a> {
    #[serde(borrow, default, alias = "function_declarations")]
    function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclaration<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    description: Option<Text<'a>>,
    #[serde(borrow)]
    parameters: Option<&'a RawValue>,
    #[serde(borrow, alias = "parameters_json_schema")]
    parameters_json_schema: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    #[serde(borrow, alias = "function_calling_config")]
    function_calling_config: Option<FunctionCallingConfig<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig<'a> {
    #[serde(borrow)]
    mode: Option<Str<'a>>,
    #[serde(borrow, default, alias = "allowed_function_names")]
    allowed_function_names: Vec<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    temperature: Option<f64>,
    #[serde(alias = "top_p")]
    top_p: Option<f64>,
    #[serde(alias = "top_k")]
    top_k: Option<f64>,
    #[serde(alias = "max_output_tokens")]
    max_output_tokens: Option<u64>,
    #[serde(borrow, default, alias = "stop_sequences")]
    stop_sequences: Vec<Str<'a>>,
    #[serde(alias = "candidate_count")]
    candidate_count: Option<u64>,
    #[serde(borrow, alias = "thinking_config")]
    thinking_config: Option<ThinkingConfig<'a>>,
    #[serde(borrow, alias = "response_mime_type")]
    response_mime_type: Option<Str<'a>>,
    #[serde(borrow, alias = "response_json_schema")]
    response_json_schema: Option<&'a RawValue>,
    #[serde(borrow, alias = "response_schema")]
    response_schema: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig<'a> {
    #[serde(alias = "thinking_budget")]
    thinking_budget: Option<i64>,
    #[serde(borrow, alias = "thinking_level")]
    thinking_level: Option<Str<'a>>,
}

fn invalid(what: impl std::fmt::Display) -> Refusal {
    Refusal(format!("invalid request body: {what}"))
}

/// Parses a Gemini request for `model` (from the path). `text` must outlive the
/// conversation; `key` opens the reasoning this proxy sealed into earlier answers.
pub fn decode_request<'a>(
    text: &'a str,
    model: &str,
    stream: bool,
    key: Option<&ReasoningKey>,
) -> Result<Conversation<'a>, Refusal> {
    if !crate::protocol::json::is_object_document(text) {
        return Err(invalid("expected a JSON object"));
    }
    let req: Request<'a> = serde_json::from_str(text).map_err(invalid)?;
    if req.cached_content.is_some() {
        return Err(Refusal(
            "cachedContent is not supported: this adapter's source has no Gemini context cache"
                .into(),
        ));
    }
    let mut c = Conversation {
        model: Cow::Owned(model.strip_prefix("models/").unwrap_or(model).to_owned()),
        stream,
        stream_usage: true,
        ..Conversation::default()
    };
    if let Some(system) = req.system_instruction {
        c.system = system.parts.into_iter().filter_map(|p| p.text).collect();
    }
    let (tools, client_tools) = tools(req.tools, &mut c.notes)?;
    c.tools = tools;
    c.client_tools = client_tools;
    if let Some(config) = req.tool_config.and_then(|t| t.function_calling_config) {
        c.tool_choice = tool_choice(config);
    }
    if let Some(g) = req.generation_config {
        generation(&mut c, g)?;
    }
    c.turns = Turns::new(key).fold(req.contents)?;
    Ok(c)
}

fn tools<'a>(
    wire: Vec<&'a RawValue>,
    notes: &mut crate::protocol::notes::Notes,
) -> Result<(Vec<ToolSpec<'a>>, ClientTools), Refusal> {
    let mut specs = Vec::new();
    let mut client = ClientTools::default();
    for (i, raw) in wire.into_iter().enumerate() {
        let tool: Tool<'a> =
            serde_json::from_str(raw.get()).map_err(|e| invalid(format_args!("tools: {e}")))?;
        // Every other key is one of Google's own tools (googleSearch, codeExecution, …).
        let keys: std::collections::BTreeMap<String, serde::de::IgnoredAny> =
            serde_json::from_str(raw.get()).map_err(|e| invalid(format_args!("tools: {e}")))?;
        for google in keys
            .into_keys()
            .filter(|k| k != "functionDeclarations" && k != "function_declarations")
        {
            notes.tool_dropped(i, &google);
            client.dropped.push(google);
        }
        for f in tool.function_declarations {
            let parameters = match (f.parameters_json_schema, f.parameters) {
                (Some(schema), _) => Some(Cow::Borrowed(schema)),
                (None, Some(openapi)) => Some(Cow::Owned(json_schema_of(openapi)?)),
                (None, None) => None,
            };
            specs.push(ToolSpec {
                name: f.name.into_cow(),
                description: f.description,
                parameters,
                strict: None,
            });
        }
    }
    Ok((specs, client))
}

/// An OpenAPI-subset schema as JSON Schema.
fn json_schema_of(openapi: &RawValue) -> Result<Box<RawValue>, Refusal> {
    let mut v: serde_json::Value = serde_json::from_str(openapi.get()).map_err(invalid)?;
    to_json_schema(&mut v);
    RawValue::from_string(v.to_string()).map_err(invalid)
}

fn tool_choice(config: FunctionCallingConfig<'_>) -> Option<ToolChoice<'static>> {
    let mode = config
        .mode
        .as_deref()
        .unwrap_or("AUTO")
        .to_ascii_uppercase();
    Some(match mode.as_str() {
        "NONE" => ToolChoice::None,
        "ANY" if config.allowed_function_names.len() == 1 => {
            ToolChoice::Named(Cow::Owned(config.allowed_function_names[0].to_string()))
        }
        "ANY" => ToolChoice::Required,
        _ => ToolChoice::Auto,
    })
}

fn generation<'a>(c: &mut Conversation<'a>, g: GenerationConfig<'a>) -> Result<(), Refusal> {
    if g.candidate_count.is_some_and(|n| n > 1) {
        return Err(Refusal(
            "generationConfig.candidateCount: only 1 candidate is supported on this adapter's \
             source"
                .into(),
        ));
    }
    c.temperature = g.temperature;
    c.top_p = g.top_p;
    c.top_k = g.top_k.filter(|k| *k >= 1.0).map(|k| k as u64);
    c.max_tokens = g.max_output_tokens;
    c.stop = g.stop_sequences.into_iter().map(Str::into_cow).collect();
    if let Some(t) = g.thinking_config {
        c.reasoning = thinking(&t);
    }
    let json = g
        .response_mime_type
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case("application/json"));
    if json {
        c.response_format = Some(match (g.response_json_schema, g.response_schema) {
            (Some(schema), _) | (None, Some(schema)) => ResponseFormat::JsonSchema {
                name: Cow::Borrowed("response"),
                schema: Cow::Owned(json_schema_of(schema)?),
            },
            (None, None) => ResponseFormat::JsonObject,
        });
    }
    Ok(())
}

/// `thinkingBudget` (0 off, -1 dynamic, else tokens) or `thinkingLevel`.
fn thinking(t: &ThinkingConfig<'_>) -> Option<ReasoningRequest> {
    if let Some(level) = &t.thinking_level {
        let effort = Effort::parse(&level.to_ascii_lowercase());
        return Some(ReasoningRequest {
            enabled: true,
            effort,
            budget_tokens: None,
        });
    }
    match t.thinking_budget? {
        0 => Some(ReasoningRequest {
            enabled: false,
            effort: None,
            budget_tokens: None,
        }),
        b if b < 0 => Some(ReasoningRequest {
            enabled: true,
            effort: None,
            budget_tokens: None,
        }),
        b => Some(ReasoningRequest {
            enabled: true,
            effort: Some(Effort::from_budget(Some(b as u64))),
            budget_tokens: Some(b as u64),
        }),
    }
}

/// Folds `contents` into turns, pairing responses with calls.
struct Turns<'k> {
    key: Option<&'k ReasoningKey>,
    /// Calls not answered yet: (id, name).
    pending: Vec<(String, String)>,
    calls: usize,
}

impl<'k> Turns<'k> {
    fn new(key: Option<&'k ReasoningKey>) -> Self {
        Turns {
            key,
            pending: Vec::new(),
            calls: 0,
        }
    }

    fn fold<'a>(mut self, contents: Vec<Content<'a>>) -> Result<Vec<Turn<'a>>, Refusal> {
        let mut turns: Vec<Turn<'a>> = Vec::new();
        for (i, content) in contents.into_iter().enumerate() {
            let role = match content.role.as_deref() {
                None | Some("user" | "function" | "tool") => Role::User,
                Some("model" | "assistant") => Role::Assistant,
                Some(other) => {
                    return Err(Refusal(format!(
                        "contents[{i}].role: unsupported role `{other}` (expected user or model)"
                    )));
                }
            };
            let mut parts = Vec::with_capacity(content.parts.len());
            for part in content.parts {
                self.part(part, role, &mut parts);
            }
            match turns.last_mut() {
                Some(last) if last.role == role => last.parts.extend(parts),
                _ if parts.is_empty() => {}
                _ => turns.push(Turn { role, parts }),
            }
        }
        Ok(turns)
    }

    fn part<'a>(&mut self, part: WirePart<'a>, role: Role, out: &mut Vec<Part<'a>>) {
        if role == Role::Assistant
            && let Some(reasoning) = part.thought_signature.as_deref().and_then(|s| self.open(s))
        {
            out.push(Part::Reasoning(reasoning));
        }
        if part.thought == Some(true) {
            return;
        }
        if let Some(text) = part.text {
            out.push(Part::Text(text));
        }
        if let Some(blob) = part.inline_data {
            let media_type = blob
                .mime_type
                .map_or(Cow::Borrowed("application/octet-stream"), Str::into_cow);
            let image = media_type.starts_with("image/");
            let media = Media::Base64 {
                media_type,
                data: blob.data.unwrap_or_default(),
            };
            out.push(if image {
                Part::Image(media)
            } else {
                Part::Document { media, title: None }
            });
        }
        if let Some(file) = part.file_data {
            let image = file
                .mime_type
                .as_deref()
                .is_some_and(|m| m.starts_with("image/"));
            let media = Media::Url(file.file_uri.map(Str::into_cow).unwrap_or_default());
            out.push(if image {
                Part::Image(media)
            } else {
                Part::Document { media, title: None }
            });
        }
        if let Some(call) = part.function_call {
            let name = call.name.map(Str::into_cow).unwrap_or_default();
            let id = match call.id {
                Some(id) => id.into_cow(),
                None => Cow::Owned(format!("call_{}", self.calls)),
            };
            self.calls += 1;
            self.pending.push((id.to_string(), name.to_string()));
            out.push(Part::ToolCall(ToolCall {
                id,
                name,
                arguments: call
                    .args
                    .map_or(Cow::Borrowed("{}"), |a| Cow::Borrowed(a.get())),
            }));
        }
        if let Some(response) = part.function_response {
            let call_id = self.answer(response.id.as_deref(), response.name.as_deref());
            let content = response
                .response
                .map(|r| Text::from_plain(r.get()))
                .unwrap_or_default();
            out.push(Part::ToolResult {
                call_id: Cow::Owned(call_id),
                content: vec![Part::Text(content)],
                is_error: false,
            });
        }
    }

    /// The call a response answers: its id, else the earliest unanswered call of that name.
    fn answer(&mut self, id: Option<&str>, name: Option<&str>) -> String {
        let position = match id {
            Some(id) => self.pending.iter().position(|(i, _)| i == id),
            None => self
                .pending
                .iter()
                .position(|(_, n)| Some(n.as_str()) == name)
                .or((!self.pending.is_empty()).then_some(0)),
        };
        match (position, id) {
            (Some(p), _) => self.pending.remove(p).0,
            (None, Some(id)) => id.to_owned(),
            (None, None) => format!("call_unmatched_{}", name.unwrap_or("tool")),
        }
    }

    fn open<'a>(&self, signature: &str) -> Option<Reasoning<'a>> {
        Some(self.key?.open(signature)?.into())
    }
}

#[cfg(test)]
mod tests;
