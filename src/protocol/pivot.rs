//! The one internal model every protocol maps to and from: a conversation (the request), a
//! response, and the events of a streamed response. A client protocol's codec decodes its
//! request into a [`Conversation`] and encodes [`Response`]s and [`Event`]s back; a source
//! protocol's codec does the opposite. A pair is two codecs composed (see `docs/pivot.md`).
//!
//! Rich enough for every protocol we serve: reasoning keeps its opaque provider data with its
//! origin (an Anthropic signature is only ever sent back to an Anthropic source), tools can be
//! functions or free-form, usage distinguishes cached and reasoning tokens. What a codec
//! cannot express is mapped (and documented there) or refused with [`Refusal`], never
//! silently dropped.

use crate::protocol::json::Text;
use crate::protocol::responses::seal::{ReasoningKey, Sealed, SealedOrigin};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Who produced a piece of opaque data: decoders stamp it, encoders only send data back to
/// the protocol that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Anthropic,
    OpenAiChat,
    /// An OpenAI Responses source (its own `encrypted_content`).
    Responses,
    /// A Gemini source (its own `thoughtSignature`).
    Gemini,
}

/// A request, whatever protocol it came in. Borrows from the client's body where it can:
/// text stays in its escaped JSON form ([`Text`]) and schemas and tool inputs stay raw JSON,
/// so a 75 KB request crosses the pivot without being unescaped and escaped again.
#[derive(Debug, Default)]
pub struct Conversation<'a> {
    /// The model the client asked for (the adapter maps it).
    pub model: Cow<'a, str>,
    /// Top-level instructions, in order (Anthropic `system`, leading system/developer messages).
    pub system: Vec<Text<'a>>,
    pub turns: Vec<Turn<'a>>,
    pub tools: Vec<ToolSpec<'a>>,
    pub tool_choice: Option<ToolChoice<'a>>,
    /// `false`: at most one tool call per answer.
    pub parallel_tool_calls: Option<bool>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Vec<Cow<'a, str>>,
    pub stream: bool,
    /// The client wants usage in the stream (OpenAI `stream_options.include_usage`).
    pub stream_usage: bool,
    pub reasoning: Option<ReasoningRequest>,
    pub response_format: Option<ResponseFormat<'a>>,
    /// An end-user id for the provider's abuse tracking.
    pub user: Option<Cow<'a, str>>,
    /// Client tools the pivot carries as plain functions, to be restored on the way out.
    pub client_tools: ClientTools,
    /// What decoding dropped of the client's request (encoders add theirs, [`Notes`]).
    pub notes: crate::protocol::notes::Notes,
}

/// Tools a client declared in a form the pivot has no room for (Responses `custom` free-form
/// tools, functions inside a `namespace`): they travel as functions and the client codec's
/// encoders turn calls back into the client's own shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTools {
    /// Free-form tools, sent as functions taking one string parameter `input`.
    pub custom: Vec<String>,
    /// Functions inside a namespace: (flat name the source sees, namespace, name).
    pub namespaced: Vec<(String, String, String)>,
    /// Hosted tools (run by the client's own provider) the source cannot run: dropped, and
    /// named in the access log.
    pub dropped: Vec<String>,
}

impl ClientTools {
    pub fn is_custom(&self, name: &str) -> bool {
        self.custom.iter().any(|c| c == name)
    }

    /// The namespace and the client's name for a flat name.
    pub fn namespaced(&self, flat: &str) -> Option<(&str, &str)> {
        self.namespaced
            .iter()
            .find(|(f, _, _)| f == flat)
            .map(|(_, ns, name)| (ns.as_str(), name.as_str()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions in the middle of a conversation (system or developer).
    System,
    User,
    Assistant,
}

#[derive(Debug)]
pub struct Turn<'a> {
    pub role: Role,
    pub parts: Vec<Part<'a>>,
}

/// One piece of a turn's content.
#[derive(Debug)]
pub enum Part<'a> {
    Text(Text<'a>),
    Image(Media<'a>),
    /// A PDF or other file (text documents arrive as `Text`).
    Document {
        media: Media<'a>,
        title: Option<Cow<'a, str>>,
    },
    /// The model asked for a tool.
    ToolCall(ToolCall<'a>),
    ToolResult {
        call_id: Cow<'a, str>,
        content: Vec<Part<'a>>,
        is_error: bool,
    },
    Reasoning(Reasoning<'a>),
}

#[derive(Debug, Clone)]
pub enum Media<'a> {
    Base64 {
        media_type: Cow<'a, str>,
        /// The base64 data as JSON-escaped text (it never needs escaping in practice).
        data: Text<'a>,
    },
    Url(Cow<'a, str>),
}

impl Media<'_> {
    /// A `data:` URL for base64 media, or the URL as given (plain text, not escaped).
    pub fn as_url(&self) -> String {
        match self {
            Media::Base64 { media_type, data } => {
                format!("data:{media_type};base64,{}", data.decoded())
            }
            Media::Url(url) => url.to_string(),
        }
    }

    /// Splits a `data:<type>;base64,<data>` URL; any other URL stays a URL.
    pub fn from_url(url: &str) -> Media<'static> {
        if let Some(rest) = url.strip_prefix("data:")
            && let Some((media_type, data)) = rest.split_once(";base64,")
        {
            return Media::Base64 {
                media_type: Cow::Owned(media_type.to_owned()),
                data: Text::from_plain(data),
            };
        }
        Media::Url(Cow::Owned(url.to_owned()))
    }
}

#[derive(Debug, Clone)]
pub struct ToolCall<'a> {
    pub id: Cow<'a, str>,
    pub name: Cow<'a, str>,
    /// The arguments as JSON text (an object, or what the model managed).
    pub arguments: Cow<'a, str>,
}

/// Reasoning the model did, with whatever opaque data its provider needs back.
#[derive(Debug, Clone, Default)]
pub struct Reasoning<'a> {
    pub text: Text<'a>,
    /// An Anthropic signature and the like, only valid for its origin.
    pub signature: Option<(Origin, Cow<'a, str>)>,
    /// Reasoning the provider encrypted (Anthropic `redacted_thinking`): data only.
    pub redacted: Option<(Origin, Cow<'a, str>)>,
}

/// What of a reasoning part gets sealed (for a stateless client to send back).
impl From<&Reasoning<'_>> for Sealed {
    fn from(reasoning: &Reasoning<'_>) -> Sealed {
        let origin = reasoning
            .signature
            .as_ref()
            .or(reasoning.redacted.as_ref())
            .map(|(o, _)| (*o).into());
        Sealed {
            origin,
            text: reasoning.text.decoded().into_owned(),
            signature: reasoning.signature.as_ref().map(|(_, s)| s.to_string()),
            redacted: reasoning.redacted.as_ref().map(|(_, r)| r.to_string()),
        }
    }
}

/// The reasoning part again (its data only with a known origin).
impl From<Sealed> for Reasoning<'_> {
    fn from(sealed: Sealed) -> Self {
        let origin = sealed.origin.map(Origin::from);
        let signed = |data: Option<String>| Some((origin?, Cow::Owned(data?)));
        Reasoning {
            text: Text::from_plain(&sealed.text),
            signature: signed(sealed.signature),
            redacted: signed(sealed.redacted),
        }
    }
}

impl From<Origin> for SealedOrigin {
    fn from(o: Origin) -> Self {
        match o {
            Origin::Anthropic => SealedOrigin::Anthropic,
            Origin::OpenAiChat => SealedOrigin::OpenAiChat,
            Origin::Responses => SealedOrigin::Responses,
            Origin::Gemini => SealedOrigin::Gemini,
        }
    }
}

impl From<SealedOrigin> for Origin {
    fn from(o: SealedOrigin) -> Self {
        match o {
            SealedOrigin::Anthropic => Origin::Anthropic,
            SealedOrigin::OpenAiChat => Origin::OpenAiChat,
            SealedOrigin::Responses => Origin::Responses,
            SealedOrigin::Gemini => Origin::Gemini,
        }
    }
}

#[derive(Debug)]
pub struct ToolSpec<'a> {
    pub name: Cow<'a, str>,
    pub description: Option<Text<'a>>,
    /// JSON Schema of the arguments (an object schema).
    pub parameters: Option<Cow<'a, RawValue>>,
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice<'a> {
    Auto,
    /// At least one tool call.
    Required,
    None,
    Named(Cow<'a, str>),
}

/// How hard the model should think; `enabled: false` turns reasoning off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasoningRequest {
    pub enabled: bool,
    pub effort: Option<Effort>,
    pub budget_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Minimal,
    Low,
    Medium,
    High,
    Max,
}

impl Effort {
    pub fn parse(s: &str) -> Option<Effort> {
        Some(match s {
            "minimal" | "none" => Effort::Minimal,
            "low" => Effort::Low,
            "medium" => Effort::Medium,
            "high" => Effort::High,
            "xhigh" | "max" => Effort::Max,
            _ => return None,
        })
    }

    /// A thinking budget for protocols that take tokens rather than an effort.
    pub fn budget_tokens(self) -> u64 {
        match self {
            Effort::Minimal => 1024,
            Effort::Low => 2048,
            Effort::Medium => 8192,
            Effort::High => 16384,
            Effort::Max => 32768,
        }
    }

    /// The effort for a thinking budget (Anthropic's `budget_tokens`).
    pub fn from_budget(budget: Option<u64>) -> Effort {
        match budget {
            Some(b) if b < 2048 => Effort::Low,
            Some(b) if b < 8192 => Effort::Medium,
            _ => Effort::High,
        }
    }
}

#[derive(Debug)]
pub enum ResponseFormat<'a> {
    /// Any JSON object.
    JsonObject,
    JsonSchema {
        name: Cow<'a, str>,
        schema: Cow<'a, RawValue>,
    },
}

/// Why an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    Refusal,
}

/// Token usage, normalised once per codec: `input` counts every prompt token, cached ones
/// included; `None` means the provider did not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: Option<u64>,
    pub cache_write: Option<u64>,
    pub reasoning: Option<u64>,
}

impl Usage {
    /// The Anthropic view (input without cache reads), used for logs and usage records.
    pub fn to_anthropic(self) -> crate::protocol::anthropic::Usage {
        let cache_read = self.cache_read.unwrap_or(0);
        crate::protocol::anthropic::Usage {
            input_tokens: self.input.saturating_sub(cache_read),
            output_tokens: self.output,
            cache_creation_input_tokens: self.cache_write.unwrap_or(0),
            cache_read_input_tokens: cache_read,
        }
    }
}

/// What a translated answer reported, for logs, metrics and usage records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnswerFacts {
    /// Usage as reported, or estimated (`usage_reported: false`).
    pub usage: Usage,
    pub usage_reported: bool,
    pub errored: bool,
}

/// A complete, non-streamed answer.
#[derive(Debug, Default)]
pub struct Response<'a> {
    pub id: Cow<'a, str>,
    /// Only `Text`, `ToolCall` and `Reasoning` parts.
    pub content: Vec<Part<'a>>,
    pub stop: Option<StopReason>,
    pub stop_sequence: Option<Cow<'a, str>>,
    pub usage: Option<Usage>,
}

/// What kind of block a stream opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind<'a> {
    Text,
    Reasoning,
    ToolCall { id: &'a str, name: &'a str },
}

/// One step of a streamed answer. Blocks are numbered by the decoder from 0 and never
/// interleave: every delta belongs to the one open block. The client's own numbering (tool
/// call indexes, output indexes) is the encoder's business. Text is plain (unescaped).
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    Start {
        id: &'a str,
    },
    BlockStart {
        index: u32,
        kind: BlockKind<'a>,
    },
    TextDelta {
        index: u32,
        text: &'a str,
    },
    ReasoningDelta {
        index: u32,
        text: &'a str,
    },
    /// Opaque data for the open reasoning block (an Anthropic signature).
    ReasoningSignature {
        index: u32,
        origin: Origin,
        signature: &'a str,
    },
    ArgumentsDelta {
        index: u32,
        json: &'a str,
    },
    BlockStop {
        index: u32,
    },
    /// Usage so far (later ones replace earlier ones field by field).
    Usage(Usage),
    Finish {
        stop: StopReason,
        stop_sequence: Option<&'a str>,
    },
    /// The provider is alive but has nothing to say yet (an SSE comment).
    KeepAlive,
    /// The answer is complete (`[DONE]`, `message_stop`, or the end of the body).
    End,
    /// The provider reported an error mid-stream; nothing follows.
    Error {
        kind: crate::protocol::anthropic::ErrorKind,
        message: &'a str,
    },
}

/// Why a 2xx answer body could not be translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// The body is not an answer at all.
    Malformed(String),
    /// A 200 that carries an error object (some providers do this).
    Provider(crate::protocol::errors::ProviderError),
}

/// A request the target protocol cannot carry: a 400 in the client's shape, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// What the response side of an exchange needs to know about its request, built when the
/// request is encoded and handed to the response codecs (never re-read from the request).
#[derive(Debug, Clone, Default)]
pub struct ExchangeContext {
    /// The id the client sees for this answer (`msg_…`, `chatcmpl-…`).
    pub message_id: String,
    /// Unix seconds, for protocols that stamp answers (`protocol/` reads no clock).
    pub created: u64,
    pub client_model: String,
    pub stream: bool,
    pub stream_usage: bool,
    /// A tool the source was told to call to produce structured output: its call comes back
    /// as the answer's text.
    pub structured_output_tool: Option<String>,
    pub input_tokens_estimate: u64,
    /// Tool names the source encoder had to change, restored by its decoders.
    pub tool_names: crate::protocol::names::ToolNames,
    /// Client tools the client codec restores (free-form, namespaced).
    pub client_tools: ClientTools,
    /// Seals reasoning into Responses `encrypted_content` (and Gemini `thoughtSignature`)
    /// and opens it again.
    pub reasoning_key: Option<ReasoningKey>,
    /// A Gemini stream without `?alt=sse`: one JSON array of responses instead of SSE.
    pub stream_as_json_array: bool,
}

/// A complete response as the events a stream of it would have had (a JSON answer to a
/// streaming request; tests).
pub fn unfold(response: &Response, on_event: &mut impl FnMut(Event<'_>)) {
    on_event(Event::Start { id: &response.id });
    if let Some(usage) = response.usage {
        on_event(Event::Usage(usage));
    }
    let mut index = 0;
    for part in &response.content {
        match part {
            Part::Text(text) => {
                on_event(Event::BlockStart {
                    index,
                    kind: BlockKind::Text,
                });
                on_event(Event::TextDelta {
                    index,
                    text: &text.decoded(),
                });
            }
            Part::Reasoning(r) if r.redacted.is_none() => {
                on_event(Event::BlockStart {
                    index,
                    kind: BlockKind::Reasoning,
                });
                if !r.text.is_empty() {
                    on_event(Event::ReasoningDelta {
                        index,
                        text: &r.text.decoded(),
                    });
                }
                if let Some((origin, signature)) = &r.signature {
                    on_event(Event::ReasoningSignature {
                        index,
                        origin: *origin,
                        signature,
                    });
                }
            }
            Part::ToolCall(call) => {
                on_event(Event::BlockStart {
                    index,
                    kind: BlockKind::ToolCall {
                        id: &call.id,
                        name: &call.name,
                    },
                });
                on_event(Event::ArgumentsDelta {
                    index,
                    json: &call.arguments,
                });
            }
            _ => continue,
        }
        on_event(Event::BlockStop { index });
        index += 1;
    }
    if let Some(stop) = response.stop {
        on_event(Event::Finish {
            stop,
            stop_sequence: response.stop_sequence.as_deref(),
        });
    }
    on_event(Event::End);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_split_and_join() {
        let m = Media::from_url("data:image/png;base64,AAAA");
        assert!(
            matches!(&m, Media::Base64 { media_type, data } if media_type == "image/png" && data.escaped() == "AAAA")
        );
        assert_eq!(m.as_url(), "data:image/png;base64,AAAA");
        assert!(
            matches!(Media::from_url("https://x/y.png"), Media::Url(u) if u == "https://x/y.png")
        );
    }

    #[test]
    fn usage_in_anthropic_terms_excludes_cache_reads() {
        let u = Usage {
            input: 10,
            output: 3,
            cache_read: Some(4),
            ..Usage::default()
        };
        let a = u.to_anthropic();
        assert_eq!((a.input_tokens, a.cache_read_input_tokens), (6, 4));
    }

    #[test]
    fn efforts() {
        assert_eq!(Effort::parse("xhigh"), Some(Effort::Max));
        assert_eq!(Effort::parse("bogus"), None);
        assert!(Effort::Low.budget_tokens() < Effort::High.budget_tokens());
    }
}
