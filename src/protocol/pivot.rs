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

use serde_json::value::RawValue;

/// Who produced a piece of opaque data: decoders stamp it, encoders only send data back to
/// the protocol that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Anthropic,
    OpenAiChat,
}

/// A request, whatever protocol it came in.
#[derive(Debug, Default)]
pub struct Conversation {
    /// The model the client asked for (the adapter maps it).
    pub model: String,
    /// Top-level instructions, in order (Anthropic `system`, leading system/developer messages).
    pub system: Vec<String>,
    pub turns: Vec<Turn>,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: Option<ToolChoice>,
    /// `false`: at most one tool call per answer.
    pub parallel_tool_calls: Option<bool>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    /// The client wants usage in the stream (OpenAI `stream_options.include_usage`).
    pub stream_usage: bool,
    pub reasoning: Option<ReasoningRequest>,
    pub response_format: Option<ResponseFormat>,
    /// An end-user id for the provider's abuse tracking.
    pub user: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions in the middle of a conversation (system or developer).
    System,
    User,
    Assistant,
}

#[derive(Debug)]
pub struct Turn {
    pub role: Role,
    pub parts: Vec<Part>,
}

/// One piece of a turn's content.
#[derive(Debug)]
pub enum Part {
    Text(String),
    Image(Media),
    Document {
        media: Media,
        title: Option<String>,
    },
    /// The model asked for a tool; `arguments` is JSON text (an object).
    ToolCall(ToolCall),
    ToolResult {
        call_id: String,
        content: Vec<Part>,
        is_error: bool,
    },
    Reasoning(Reasoning),
}

#[derive(Debug, Clone)]
pub enum Media {
    Base64 { media_type: String, data: String },
    Url(String),
}

impl Media {
    /// A `data:` URL for base64 media, or the URL as given.
    pub fn as_url(&self) -> String {
        match self {
            Media::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
            Media::Url(url) => url.clone(),
        }
    }

    /// Splits a `data:<type>;base64,<data>` URL; any other URL stays a URL.
    pub fn from_url(url: &str) -> Media {
        if let Some(rest) = url.strip_prefix("data:")
            && let Some((media_type, data)) = rest.split_once(";base64,")
        {
            return Media::Base64 {
                media_type: media_type.to_owned(),
                data: data.to_owned(),
            };
        }
        Media::Url(url.to_owned())
    }
}

#[derive(Debug, Clone)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// Reasoning the model did, with whatever opaque data its provider needs back.
#[derive(Debug, Clone, Default)]
pub struct Reasoning {
    pub text: String,
    /// An Anthropic signature and the like, only valid for `origin`.
    pub signature: Option<(Origin, String)>,
    /// Reasoning the provider encrypted (Anthropic `redacted_thinking`): data only.
    pub redacted: Option<(Origin, String)>,
}

#[derive(Debug)]
pub struct ToolSpec {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments (an object schema).
    pub parameters: Option<Box<RawValue>>,
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    /// At least one tool call.
    Required,
    None,
    Named(String),
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
}

#[derive(Debug)]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    JsonSchema {
        name: String,
        schema: Box<RawValue>,
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

/// A complete, non-streamed answer.
#[derive(Debug, Default)]
pub struct Response {
    pub id: String,
    /// Only `Text`, `ToolCall` and `Reasoning` parts.
    pub content: Vec<Part>,
    pub stop: Option<StopReason>,
    pub stop_sequence: Option<String>,
    pub usage: Option<Usage>,
}

/// What kind of block a stream opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    Text,
    Reasoning,
    ToolCall { id: String, name: String },
}

/// One step of a streamed answer. Blocks are numbered by the decoder from 0 and never
/// interleave: every delta belongs to the one open block. The client's own numbering (tool
/// call indexes, output indexes) is the encoder's business.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    Start {
        id: &'a str,
    },
    BlockStart {
        index: u32,
        kind: BlockKind,
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
    /// The provider reported an error mid-stream; nothing follows.
    Error {
        kind: crate::protocol::anthropic::ErrorKind,
        message: &'a str,
    },
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
                on_event(Event::TextDelta { index, text });
            }
            Part::Reasoning(r) if r.redacted.is_none() => {
                on_event(Event::BlockStart {
                    index,
                    kind: BlockKind::Reasoning,
                });
                if !r.text.is_empty() {
                    on_event(Event::ReasoningDelta {
                        index,
                        text: &r.text,
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
                        id: call.id.clone(),
                        name: call.name.clone(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_split_and_join() {
        let m = Media::from_url("data:image/png;base64,AAAA");
        assert!(
            matches!(&m, Media::Base64 { media_type, data } if media_type == "image/png" && data == "AAAA")
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
