//! An OpenAI `POST /v1/chat/completions` body → a pivot [`Conversation`].
//!
//! Fields with no meaning in the pivot are listed in [`IGNORED`] (sampling knobs other
//! protocols lack; documented in `docs/pivot.md`); fields the pivot cannot carry honestly
//! (`n > 1`, `logprobs`, audio) are refused with a message naming them. Unknown fields are
//! ignored, as the OpenAI API itself does for forward compatibility.

use crate::protocol::json::{EscapedStr, Str, Text};
use crate::protocol::pivot::{
    Conversation, Effort, Media, Part, ReasoningRequest, Refusal, ResponseFormat, Role, ToolCall,
    ToolChoice, ToolSpec, Turn,
};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Accepted and dropped: tuning knobs without an equivalent elsewhere.
pub const IGNORED: &[&str] = &[
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "logit_bias",
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
    "verbosity",
];

// The wire types borrow from the client's body: text stays escaped ([`EscapedStr`]), schemas,
// arguments and content stay raw JSON, so a 75 KB request is parsed once and copied never.

#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    model: Option<Str<'a>>,
    #[serde(borrow)]
    messages: Option<Vec<ChatMessage<'a>>>,
    #[serde(default, borrow)]
    tools: Vec<ChatTool<'a>>,
    #[serde(default, borrow)]
    functions: Vec<FunctionDef<'a>>,
    #[serde(borrow)]
    tool_choice: Option<&'a RawValue>,
    parallel_tool_calls: Option<bool>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    #[serde(borrow)]
    stop: Option<&'a RawValue>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    #[serde(borrow)]
    reasoning_effort: Option<Str<'a>>,
    #[serde(borrow)]
    response_format: Option<&'a RawValue>,
    n: Option<u64>,
    logprobs: Option<bool>,
    top_logprobs: Option<u64>,
    #[serde(borrow)]
    modalities: Option<Vec<Str<'a>>>,
    // Only their presence matters (null counts as absent).
    #[serde(borrow)]
    audio: Option<&'a RawValue>,
    #[serde(borrow)]
    prediction: Option<&'a RawValue>,
    #[serde(borrow)]
    web_search_options: Option<&'a RawValue>,
    #[serde(borrow)]
    user: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct ChatMessage<'a> {
    #[serde(borrow)]
    role: Str<'a>,
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_calls: Vec<ChatToolCall<'a>>,
    #[serde(borrow)]
    function_call: Option<FunctionCall<'a>>,
    #[serde(borrow)]
    tool_call_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct ChatToolCall<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    function: FunctionCall<'a>,
}

#[derive(Deserialize)]
struct FunctionCall<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChatTool<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    function: Option<FunctionDef<'a>>,
}

#[derive(Deserialize)]
struct FunctionDef<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    description: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    parameters: Option<&'a RawValue>,
    strict: Option<bool>,
}

/// A content part; `kind` says which of the other fields it needs (a flat struct rather than
/// a tagged enum: serde buffers tagged enums, which raw and escaped values cannot go through).
#[derive(Deserialize)]
struct ContentPart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    text: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    refusal: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    image_url: Option<ImageUrl<'a>>,
    #[serde(borrow)]
    file: Option<FileData<'a>>,
}

#[derive(Deserialize)]
struct ImageUrl<'a> {
    #[serde(borrow)]
    url: Str<'a>,
}

#[derive(Deserialize)]
struct FileData<'a> {
    #[serde(borrow)]
    file_data: Option<Str<'a>>,
    #[serde(borrow)]
    file_id: Option<Str<'a>>,
    #[serde(borrow)]
    filename: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct JsonSchemaFormat<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
}

fn refuse(message: impl Into<String>) -> Refusal {
    Refusal(message.into())
}

/// Parses a Chat Completions request into the pivot, borrowing from `body`.
pub fn decode_request(body: &[u8]) -> Result<Conversation<'_>, Refusal> {
    let text =
        std::str::from_utf8(body).map_err(|e| refuse(format!("request body is not UTF-8: {e}")))?;
    if !crate::protocol::json::is_object_document(text) {
        return Err(refuse("invalid request body: expected a JSON object"));
    }
    let req: ChatRequest<'_> =
        serde_json::from_str(text).map_err(|e| refuse(format!("invalid request body: {e}")))?;
    refuse_unsupported(&req)?;
    let model = req.model.ok_or_else(|| refuse("model: field required"))?;
    let messages = req
        .messages
        .ok_or_else(|| refuse("messages: field required"))?;
    let mut conversation = Conversation {
        model: model.into_cow(),
        stream: req.stream.unwrap_or(false),
        stream_usage: req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        max_tokens: req.max_completion_tokens.or(req.max_tokens),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        parallel_tool_calls: req.parallel_tool_calls,
        user: req.user.map(Str::into_cow),
        stop: stop_sequences(req.stop)?
            .into_iter()
            .map(Cow::Owned)
            .collect(),
        ..Conversation::default()
    };
    decode_messages(messages, &mut conversation)?;
    conversation.tools = decode_tools(req.tools, req.functions)?;
    conversation.tool_choice = req.tool_choice.map(decode_tool_choice).transpose()?;
    if let Some(effort) = req.reasoning_effort {
        let effort = Effort::parse(&effort)
            .ok_or_else(|| refuse(format!("reasoning_effort: unknown value `{}`", &*effort)))?;
        conversation.reasoning = Some(ReasoningRequest {
            enabled: effort != Effort::Minimal,
            effort: Some(effort),
            budget_tokens: None,
        });
    }
    conversation.response_format = match req.response_format {
        Some(raw) => decode_format(raw)?,
        None => None,
    };
    Ok(conversation)
}

fn refuse_unsupported(req: &ChatRequest<'_>) -> Result<(), Refusal> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(refuse(
            "n: only one choice per request is supported by this adapter's source",
        ));
    }
    if req.logprobs == Some(true) || req.top_logprobs.is_some_and(|n| n > 0) {
        return Err(refuse(
            "logprobs: this adapter's source does not return log probabilities",
        ));
    }
    let audio_out = req
        .modalities
        .as_ref()
        .is_some_and(|m| m.iter().any(|m| &**m == "audio"));
    if audio_out || req.audio.is_some() {
        return Err(refuse(
            "audio: this adapter's source does not produce audio",
        ));
    }
    if req.prediction.is_some() {
        return Err(refuse(
            "prediction: predicted outputs are not supported by this adapter's source",
        ));
    }
    if req.web_search_options.is_some() {
        return Err(refuse(
            "web_search_options: hosted web search is not available on this adapter's source",
        ));
    }
    Ok(())
}

fn stop_sequences(stop: Option<&RawValue>) -> Result<Vec<String>, Refusal> {
    let Some(raw) = stop else {
        return Ok(Vec::new());
    };
    // Already validated by the request's parse.
    match serde_json::from_str(raw.get()).unwrap_or(Value::Null) {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(refuse("stop: expected strings")),
            })
            .collect(),
        _ => Err(refuse("stop: expected a string or an array of strings")),
    }
}

fn decode_messages<'a>(
    messages: Vec<ChatMessage<'a>>,
    conv: &mut Conversation<'a>,
) -> Result<(), Refusal> {
    for (i, message) in messages.into_iter().enumerate() {
        let at = |field: &str| format!("messages[{i}].{field}");
        match &*message.role {
            "system" | "developer" => {
                let text = plain_text(message.content, &at("content"))?;
                // Leading instructions are the top-level system prompt; later ones stay put.
                if conv.turns.is_empty() {
                    conv.system.push(text);
                } else {
                    conv.turns.push(Turn {
                        role: Role::System,
                        parts: vec![Part::Text(text)],
                    });
                }
            }
            "user" => {
                let parts = content_parts(message.content, &at("content"))?;
                conv.turns.push(Turn {
                    role: Role::User,
                    parts,
                });
            }
            "assistant" => {
                let mut parts = content_parts(message.content, &at("content"))?;
                let legacy = message.function_call.map(|f| ChatToolCall {
                    id: None,
                    function: f,
                });
                for (n, call) in message.tool_calls.into_iter().chain(legacy).enumerate() {
                    parts.push(Part::ToolCall(ToolCall {
                        id: call
                            .id
                            .map_or_else(|| Cow::Owned(format!("call_{i}_{n}")), Str::into_cow),
                        name: call.function.name.into_cow(),
                        arguments: arguments_text(call.function.arguments),
                    }));
                }
                conv.turns.push(Turn {
                    role: Role::Assistant,
                    parts,
                });
            }
            "tool" => {
                let call_id = message
                    .tool_call_id
                    .ok_or_else(|| refuse(format!("{}: field required", at("tool_call_id"))))?;
                let content = content_parts(message.content, &at("content"))?;
                conv.turns.push(Turn {
                    role: Role::User,
                    parts: vec![Part::ToolResult {
                        call_id: call_id.into_cow(),
                        content,
                        is_error: false,
                    }],
                });
            }
            "function" => {
                return Err(refuse(format!(
                    "{}: the legacy `function` role is not supported; send tool results as `role: \"tool\"` with a `tool_call_id`",
                    at("role")
                )));
            }
            other => return Err(refuse(format!("{}: unknown role `{other}`", at("role")))),
        }
    }
    Ok(())
}

/// Arguments are a JSON string holding JSON text; some clients send the object itself.
fn arguments_text(raw: Option<&RawValue>) -> Cow<'_, str> {
    match raw {
        None => Cow::Borrowed("{}"),
        Some(raw) => match serde_json::from_str::<Str<'_>>(raw.get()) {
            Ok(s) => s.into_cow(),
            Err(_) => Cow::Borrowed(raw.get()),
        },
    }
}

/// Content as text only (system and developer messages): the parts' escaped texts joined by
/// newlines.
fn plain_text<'a>(content: Option<&'a RawValue>, at: &str) -> Result<Text<'a>, Refusal> {
    let mut texts = Vec::new();
    for part in content_parts(content, at)? {
        match part {
            Part::Text(t) => texts.push(t),
            _ => return Err(refuse(format!("{at}: only text is allowed here"))),
        }
    }
    if texts.len() <= 1 {
        return Ok(texts.pop().unwrap_or_default());
    }
    let joined: Vec<&str> = texts.iter().map(Text::escaped).collect();
    Ok(Text::from_escaped(joined.join("\\n")))
}

fn content_parts<'a>(content: Option<&'a RawValue>, at: &str) -> Result<Vec<Part<'a>>, Refusal> {
    let Some(raw) = content else {
        return Ok(Vec::new());
    };
    let json = raw.get();
    if json == "null" {
        return Ok(Vec::new());
    }
    if json.starts_with('"') {
        let text: EscapedStr<'a> =
            serde_json::from_str(json).map_err(|e| refuse(format!("{at}: {e}")))?;
        return Ok(if text.0.is_empty() {
            Vec::new()
        } else {
            vec![Part::Text(text.0)]
        });
    }
    let bad = |e: &dyn std::fmt::Display| {
        refuse(format!("{at}: expected a string or an array of parts: {e}"))
    };
    let items: Vec<ContentPart<'a>> = serde_json::from_str(json).map_err(|e| bad(&e))?;
    let missing = |field: &str| bad(&format!("missing field `{field}`"));
    let mut parts = Vec::with_capacity(items.len());
    for (n, item) in items.into_iter().enumerate() {
        match &*item.kind {
            "text" | "refusal" => {
                let text = if &*item.kind == "text" {
                    item.text.ok_or_else(|| missing("text"))?
                } else {
                    item.refusal.ok_or_else(|| missing("refusal"))?
                };
                if !text.0.is_empty() {
                    parts.push(Part::Text(text.0));
                }
            }
            "image_url" => {
                let image_url = item.image_url.ok_or_else(|| missing("image_url"))?;
                parts.push(Part::Image(Media::from_url(&image_url.url)));
            }
            "file" => {
                let file = item.file.ok_or_else(|| missing("file"))?;
                let Some(data) = file.file_data else {
                    let what = if file.file_id.is_some() {
                        "file_id references files stored at OpenAI, which this source cannot read; send file_data"
                    } else {
                        "file_data is required"
                    };
                    return Err(refuse(format!("{at}[{n}].file: {what}")));
                };
                let media = if data.starts_with("data:") {
                    Media::from_url(&data)
                } else {
                    Media::Base64 {
                        media_type: Cow::Borrowed("application/pdf"),
                        data: Text::from_plain(&data),
                    }
                };
                parts.push(Part::Document {
                    media,
                    title: file.filename.map(Str::into_cow),
                });
            }
            "input_audio" => {
                return Err(refuse(format!(
                    "{at}[{n}]: audio input is not supported by this adapter's source"
                )));
            }
            _ => {
                return Err(refuse(format!("{at}[{n}].type: unsupported content part")));
            }
        }
    }
    Ok(parts)
}

fn decode_tools<'a>(
    tools: Vec<ChatTool<'a>>,
    functions: Vec<FunctionDef<'a>>,
) -> Result<Vec<ToolSpec<'a>>, Refusal> {
    let mut specs = Vec::with_capacity(tools.len() + functions.len());
    for (i, tool) in tools.into_iter().enumerate() {
        match (tool.kind.as_deref(), tool.function) {
            (None | Some("function"), Some(f)) => specs.push(spec(f)),
            (kind, _) => {
                return Err(refuse(format!(
                    "tools[{i}]: only function tools are supported (got type `{}`)",
                    kind.unwrap_or("none")
                )));
            }
        }
    }
    specs.extend(functions.into_iter().map(spec));
    Ok(specs)
}

fn spec(f: FunctionDef<'_>) -> ToolSpec<'_> {
    ToolSpec {
        name: f.name.into_cow(),
        description: f.description.map(|d| d.0),
        parameters: f.parameters.map(Cow::Borrowed),
        strict: f.strict,
    }
}

fn decode_tool_choice(raw: &RawValue) -> Result<ToolChoice<'static>, Refusal> {
    // Small, and already validated by the request's parse.
    let choice: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
    match &choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            "none" => Ok(ToolChoice::None),
            other => Err(refuse(format!("tool_choice: unknown value `{other}`"))),
        },
        Value::Object(_) => choice["function"]["name"]
            .as_str()
            .or_else(|| choice["name"].as_str())
            .map(|n| ToolChoice::Named(Cow::Owned(n.to_owned())))
            .ok_or_else(|| refuse("tool_choice.function.name: field required")),
        _ => Err(refuse("tool_choice: expected a string or an object")),
    }
}

/// `None` for plain text (`{"type": "text"}`), the default.
fn decode_format(raw: &RawValue) -> Result<Option<ResponseFormat<'_>>, Refusal> {
    #[derive(Deserialize)]
    struct Format<'a> {
        #[serde(rename = "type", borrow)]
        kind: Str<'a>,
        #[serde(borrow)]
        json_schema: Option<JsonSchemaFormat<'a>>,
    }
    let format: Format<'_> =
        serde_json::from_str(raw.get()).map_err(|e| refuse(format!("response_format: {e}")))?;
    match &*format.kind {
        "text" => Ok(None),
        "json_object" => Ok(Some(ResponseFormat::JsonObject)),
        "json_schema" => {
            let js = format
                .json_schema
                .ok_or_else(|| refuse("response_format.json_schema: field required"))?;
            let schema = js
                .schema
                .ok_or_else(|| refuse("response_format.json_schema.schema: field required"))?;
            Ok(Some(ResponseFormat::JsonSchema {
                name: js.name.map_or(Cow::Borrowed("response"), Str::into_cow),
                schema: Cow::Borrowed(schema),
            }))
        }
        other => Err(refuse(format!(
            "response_format.type: unknown value `{other}`"
        ))),
    }
}

#[cfg(test)]
mod tests;
