//! An OpenAI `POST /v1/chat/completions` body → a pivot [`Conversation`].
//!
//! Fields with no meaning in the pivot are listed in [`IGNORED`] (sampling knobs other
//! protocols lack; documented in `docs/pivot.md`); fields the pivot cannot carry honestly
//! (`n > 1`, `logprobs`, audio) are refused with a message naming them. Unknown fields are
//! ignored, as the OpenAI API itself does for forward compatibility.

use crate::protocol::json::Text;
use crate::protocol::pivot::{
    Conversation, Effort, Media, Part, ReasoningRequest, Refusal, ResponseFormat, Role, ToolCall,
    ToolChoice, ToolSpec, Turn,
};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Conversations decoded here own their data (the Chat types are parsed into owned values).
type Owned = Conversation<'static>;

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

#[derive(Deserialize)]
struct ChatRequest {
    model: Option<String>,
    messages: Option<Vec<ChatMessage>>,
    #[serde(default)]
    tools: Vec<ChatTool>,
    #[serde(default)]
    functions: Vec<FunctionDef>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    stop: Option<Value>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    reasoning_effort: Option<String>,
    response_format: Option<Box<RawValue>>,
    n: Option<u64>,
    logprobs: Option<bool>,
    top_logprobs: Option<u64>,
    modalities: Option<Vec<String>>,
    audio: Option<Value>,
    prediction: Option<Value>,
    web_search_options: Option<Value>,
    user: Option<String>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<Box<RawValue>>,
    #[serde(default)]
    tool_calls: Vec<ChatToolCall>,
    function_call: Option<FunctionCall>,
    tool_call_id: Option<String>,
}

#[derive(Deserialize)]
struct ChatToolCall {
    id: Option<String>,
    function: FunctionCall,
}

#[derive(Deserialize)]
struct FunctionCall {
    name: String,
    #[serde(default)]
    arguments: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct ChatTool {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    function: Option<FunctionDef>,
}

#[derive(Deserialize)]
struct FunctionDef {
    name: String,
    description: Option<String>,
    parameters: Option<Box<RawValue>>,
    strict: Option<bool>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    File {
        file: FileData,
    },
    InputAudio {},
    Refusal {
        refusal: String,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct ImageUrl {
    url: String,
}

#[derive(Deserialize)]
struct FileData {
    file_data: Option<String>,
    file_id: Option<String>,
    filename: Option<String>,
}

#[derive(Deserialize)]
struct JsonSchemaFormat {
    name: Option<String>,
    schema: Option<Box<RawValue>>,
}

fn refuse(message: impl Into<String>) -> Refusal {
    Refusal(message.into())
}

/// Parses a Chat Completions request into the pivot.
pub fn decode_request(body: &[u8]) -> Result<Owned, Refusal> {
    let text =
        std::str::from_utf8(body).map_err(|e| refuse(format!("request body is not UTF-8: {e}")))?;
    if !crate::protocol::json::is_object_document(text) {
        return Err(refuse("invalid request body: expected a JSON object"));
    }
    let req: ChatRequest =
        serde_json::from_str(text).map_err(|e| refuse(format!("invalid request body: {e}")))?;
    refuse_unsupported(&req)?;
    let model = req.model.ok_or_else(|| refuse("model: field required"))?;
    let messages = req
        .messages
        .ok_or_else(|| refuse("messages: field required"))?;
    let mut conversation = Conversation {
        model: Cow::Owned(model),
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
        user: req.user.map(Cow::Owned),
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
            .ok_or_else(|| refuse(format!("reasoning_effort: unknown value `{effort}`")))?;
        conversation.reasoning = Some(ReasoningRequest {
            enabled: effort != Effort::Minimal,
            effort: Some(effort),
            budget_tokens: None,
        });
    }
    conversation.response_format = match req.response_format {
        Some(raw) => decode_format(&raw)?,
        None => None,
    };
    Ok(conversation)
}

fn refuse_unsupported(req: &ChatRequest) -> Result<(), Refusal> {
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
        .is_some_and(|m| m.iter().any(|m| m == "audio"));
    if audio_out || req.audio.as_ref().is_some_and(|a| !a.is_null()) {
        return Err(refuse(
            "audio: this adapter's source does not produce audio",
        ));
    }
    if req.prediction.as_ref().is_some_and(|p| !p.is_null()) {
        return Err(refuse(
            "prediction: predicted outputs are not supported by this adapter's source",
        ));
    }
    if req
        .web_search_options
        .as_ref()
        .is_some_and(|w| !w.is_null())
    {
        return Err(refuse(
            "web_search_options: hosted web search is not available on this adapter's source",
        ));
    }
    Ok(())
}

fn stop_sequences(stop: Option<Value>) -> Result<Vec<String>, Refusal> {
    match stop {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(refuse("stop: expected strings")),
            })
            .collect(),
        Some(_) => Err(refuse("stop: expected a string or an array of strings")),
    }
}

fn decode_messages(messages: Vec<ChatMessage>, conv: &mut Owned) -> Result<(), Refusal> {
    for (i, message) in messages.into_iter().enumerate() {
        let at = |field: &str| format!("messages[{i}].{field}");
        match message.role.as_str() {
            "system" | "developer" => {
                let text = plain_text(message.content.as_deref(), &at("content"))?;
                // Leading instructions are the top-level system prompt; later ones stay put.
                if conv.turns.is_empty() {
                    conv.system.push(Text::from_plain(&text));
                } else {
                    conv.turns.push(Turn {
                        role: Role::System,
                        parts: vec![Part::Text(Text::from_plain(&text))],
                    });
                }
            }
            "user" => {
                let parts = content_parts(message.content.as_deref(), &at("content"))?;
                conv.turns.push(Turn {
                    role: Role::User,
                    parts,
                });
            }
            "assistant" => {
                let mut parts = content_parts(message.content.as_deref(), &at("content"))?;
                let legacy = message.function_call.map(|f| ChatToolCall {
                    id: None,
                    function: f,
                });
                for (n, call) in message.tool_calls.into_iter().chain(legacy).enumerate() {
                    parts.push(Part::ToolCall(ToolCall {
                        id: Cow::Owned(call.id.unwrap_or_else(|| format!("call_{i}_{n}"))),
                        name: Cow::Owned(call.function.name),
                        arguments: Cow::Owned(arguments_text(call.function.arguments.as_deref())),
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
                let content = content_parts(message.content.as_deref(), &at("content"))?;
                conv.turns.push(Turn {
                    role: Role::User,
                    parts: vec![Part::ToolResult {
                        call_id: Cow::Owned(call_id),
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
fn arguments_text(raw: Option<&RawValue>) -> String {
    match raw {
        None => "{}".to_owned(),
        Some(raw) => match serde_json::from_str::<String>(raw.get()) {
            Ok(s) => s,
            Err(_) => raw.get().to_owned(),
        },
    }
}

/// Content as text only (system and developer messages).
fn plain_text(content: Option<&RawValue>, at: &str) -> Result<String, Refusal> {
    let parts = content_parts(content, at)?;
    let mut text = String::new();
    for part in parts {
        match part {
            Part::Text(t) => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&t.decoded());
            }
            _ => return Err(refuse(format!("{at}: only text is allowed here"))),
        }
    }
    Ok(text)
}

fn content_parts(content: Option<&RawValue>, at: &str) -> Result<Vec<Part<'static>>, Refusal> {
    let Some(raw) = content else {
        return Ok(Vec::new());
    };
    let json = raw.get();
    if json == "null" {
        return Ok(Vec::new());
    }
    if json.starts_with('"') {
        let text: String = serde_json::from_str(json).map_err(|e| refuse(format!("{at}: {e}")))?;
        return Ok(if text.is_empty() {
            Vec::new()
        } else {
            vec![Part::Text(Text::from_plain(&text))]
        });
    }
    let items: Vec<ContentPart> = serde_json::from_str(json)
        .map_err(|e| refuse(format!("{at}: expected a string or an array of parts: {e}")))?;
    let mut parts = Vec::with_capacity(items.len());
    for (n, item) in items.into_iter().enumerate() {
        match item {
            ContentPart::Text { text } | ContentPart::Refusal { refusal: text } => {
                if !text.is_empty() {
                    parts.push(Part::Text(Text::from_plain(&text)));
                }
            }
            ContentPart::ImageUrl { image_url } => {
                parts.push(Part::Image(Media::from_url(&image_url.url)));
            }
            ContentPart::File { file } => {
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
                    title: file.filename.map(Cow::Owned),
                });
            }
            ContentPart::InputAudio {} => {
                return Err(refuse(format!(
                    "{at}[{n}]: audio input is not supported by this adapter's source"
                )));
            }
            ContentPart::Unknown => {
                return Err(refuse(format!("{at}[{n}].type: unsupported content part")));
            }
        }
    }
    Ok(parts)
}

fn decode_tools(
    tools: Vec<ChatTool>,
    functions: Vec<FunctionDef>,
) -> Result<Vec<ToolSpec<'static>>, Refusal> {
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

fn spec(f: FunctionDef) -> ToolSpec<'static> {
    ToolSpec {
        name: Cow::Owned(f.name),
        description: f.description.map(|d| Text::from_plain(&d)),
        parameters: f.parameters.map(Cow::Owned),
        strict: f.strict,
    }
}

fn decode_tool_choice(choice: Value) -> Result<ToolChoice<'static>, Refusal> {
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
fn decode_format(raw: &RawValue) -> Result<Option<ResponseFormat<'static>>, Refusal> {
    #[derive(Deserialize)]
    struct Format {
        #[serde(rename = "type")]
        kind: String,
        json_schema: Option<JsonSchemaFormat>,
    }
    let format: Format =
        serde_json::from_str(raw.get()).map_err(|e| refuse(format!("response_format: {e}")))?;
    match format.kind.as_str() {
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
                name: Cow::Owned(js.name.unwrap_or_else(|| "response".to_owned())),
                schema: Cow::Owned(schema),
            }))
        }
        other => Err(refuse(format!(
            "response_format.type: unknown value `{other}`"
        ))),
    }
}

#[cfg(test)]
mod tests;
