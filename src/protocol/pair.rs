//! Drives one (client protocol, source protocol) pair through the pivot: the client codec
//! decodes the request, the source codec encodes it; on the way back the source codec
//! decodes answers and stream reads into pivot values and events, the client codec encodes
//! them. The proxy only picks the pair ([`Pair::pivoted`]) and feeds bytes; same-protocol
//! pairs never get here (they pass through, [`crate::protocol::passthrough`]).
//! `docs/pivot.md` shows how a protocol is added.

use crate::protocol::anthropic::ErrorKind;
use crate::protocol::names::ToolNames;
use crate::protocol::openai_chat::dialect::Dialect;
pub use crate::protocol::pivot::AnswerFacts;
use crate::protocol::pivot::{
    Conversation, Event, ExchangeContext, Refusal, ResponseError, Usage, unfold,
};
use crate::protocol::responses::seal::ReasoningKey;
use crate::protocol::tokens::estimate_tokens;
use crate::protocol::{anthropic, gemini, openai_chat, responses};

/// A wire protocol, on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    AnthropicMessages,
    OpenAiChat,
    /// OpenAI Responses (`/v1/responses`).
    Responses,
    /// Google Gemini (`/v1beta/models/{model}:generateContent`).
    Gemini,
}

/// A client protocol and a source protocol, translated through the pivot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub client: Wire,
    pub source: Wire,
}

/// Per-adapter settings the source encoders take.
#[derive(Debug, Clone, Copy)]
pub struct SourceOptions<'d> {
    /// How an OpenAI-compatible source bends the format (its `max_tokens_limit` applies to
    /// every source protocol).
    pub dialect: &'d Dialect,
    /// The source's model cannot read images or documents: they become notes naming it.
    pub omit_media_for: Option<&'d str>,
}

/// The provider-bound body, the mapped model and what the response side needs.
#[derive(Debug)]
pub struct EncodedRequest {
    pub body: Vec<u8>,
    pub source_model: String,
    pub ctx: ExchangeContext,
    /// Images and documents replaced by notes (see [`SourceOptions::omit_media_for`]).
    pub media_omitted: usize,
    /// What the translation changed: the client decoder's notes, then the source encoder's.
    pub notes: crate::protocol::notes::Notes,
}

/// Decodes a client request of protocol `client` into the pivot. Gemini takes the model and
/// whether to stream from the path (`gemini_call`; ignored by the others); Responses and
/// Gemini open the reasoning they sealed earlier with `reasoning_key`.
pub fn decode_request<'b>(
    client: Wire,
    body: &'b [u8],
    reasoning_key: Option<&ReasoningKey>,
    gemini_call: (&str, bool),
) -> Result<Conversation<'b>, Refusal> {
    let text = std::str::from_utf8(body)
        .map_err(|e| Refusal(format!("invalid request body: not UTF-8: {e}")))?;
    Ok(match client {
        Wire::OpenAiChat => openai_chat::decode_request::decode_request(body)?,
        Wire::AnthropicMessages => anthropic::decode_request::decode_request(text)?,
        Wire::Responses => responses::decode_request::decode_request(text, reasoning_key)?,
        Wire::Gemini => {
            let (model, stream) = gemini_call;
            gemini::decode_request::decode_request(text, model, stream, reasoning_key)?
        }
    })
}

impl Pair {
    /// The pair, when client and source differ.
    pub fn pivoted(client: Wire, source: Wire) -> Option<Pair> {
        (client != source).then_some(Pair { client, source })
    }

    /// Translates a client request body. `ctx` comes with the ids and clock the proxy owns.
    pub fn encode_request(
        self,
        body: &[u8],
        map_model: impl FnOnce(&str) -> String,
        options: SourceOptions<'_>,
        ctx: ExchangeContext,
    ) -> Result<EncodedRequest, Refusal> {
        let conversation = decode_request(
            self.client,
            body,
            ctx.reasoning_key.as_ref(),
            (&ctx.client_model, ctx.stream),
        )?;
        self.encode_decoded(conversation, body.len(), map_model, options, ctx)
    }

    /// [`Pair::encode_request`] for a request already decoded by [`decode_request`] (the
    /// router decodes it to choose the route; one decode serves both). `body_len` is the
    /// client body's size.
    pub fn encode_decoded(
        self,
        mut conversation: Conversation<'_>,
        body_len: usize,
        map_model: impl FnOnce(&str) -> String,
        options: SourceOptions<'_>,
        mut ctx: ExchangeContext,
    ) -> Result<EncodedRequest, Refusal> {
        conversation.notes.set_client(self.client);
        let media_omitted = options.omit_media_for.map_or(0, |model| {
            crate::protocol::text_only::omit_media(&mut conversation, model)
        });
        let mut notes = std::mem::take(&mut conversation.notes);
        ctx.client_model = conversation.model.to_string();
        ctx.client_tools = conversation.client_tools.clone();
        ctx.input_tokens_estimate = estimate_tokens(body_len);
        ctx.stream = conversation.stream;
        ctx.stream_usage = conversation.stream_usage;
        let source_model = map_model(&conversation.model);
        let encoded = match self.source {
            Wire::AnthropicMessages => anthropic::encode_request::encode_request(
                &conversation,
                &source_model,
                anthropic::encode_request::EncodeOptions {
                    max_tokens_limit: options.dialect.max_tokens_limit,
                    size_hint: body_len,
                },
                &mut ctx,
                &mut notes,
            )?,
            Wire::OpenAiChat => {
                let (out, names) = openai_chat::encode_request::encode_request(
                    &conversation,
                    &source_model,
                    options.dialect,
                    body_len,
                    &mut notes,
                );
                ctx.tool_names = names;
                out
            }
            Wire::Responses => responses::encode_request::encode_request(
                &conversation,
                &source_model,
                options.dialect.max_tokens_limit,
                &mut notes,
            ),
            Wire::Gemini => gemini::encode_request::encode_request(
                &conversation,
                options.dialect.max_tokens_limit,
                &mut notes,
            ),
        };
        Ok(EncodedRequest {
            body: encoded,
            source_model,
            ctx,
            media_omitted,
            notes,
        })
    }

    /// A complete 2xx answer for the client; `as_stream` when the client asked for a stream
    /// and the source answered JSON anyway.
    pub fn encode_response(
        self,
        body: &[u8],
        ctx: &ExchangeContext,
        as_stream: bool,
    ) -> Result<(Vec<u8>, AnswerFacts), ResponseError> {
        let response = match self.source {
            Wire::AnthropicMessages => anthropic::decode_response::decode_response(body)?,
            Wire::OpenAiChat => {
                openai_chat::decode_response::decode_response(body, &ctx.tool_names)?
            }
            Wire::Responses => responses::decode_response::decode_response(body)?,
            Wire::Gemini => gemini::decode_response::decode_response(body)?,
        };
        if as_stream {
            let mut encoder = Encoder::new(self.client, ctx.clone());
            let mut out = Vec::with_capacity(body.len() * 2);
            unfold(&response, &mut |e| encoder.event(e, &mut out));
            encoder.finish(&mut out);
            return Ok((out, encoder.facts()));
        }
        match self.client {
            Wire::OpenAiChat => {
                let out = openai_chat::encode_response::encode_response(&response, ctx);
                let facts = AnswerFacts {
                    usage: response.usage.unwrap_or_default(),
                    usage_reported: response.usage.is_some(),
                    errored: false,
                };
                Ok((out, facts))
            }
            Wire::AnthropicMessages => {
                let e = anthropic::encode_response::encode_response(&response, ctx)?;
                let facts = AnswerFacts {
                    usage: from_anthropic(e.usage),
                    usage_reported: e.usage_reported,
                    errored: false,
                };
                Ok((e.body, facts))
            }
            Wire::Responses => Ok(responses::encode_response::encode_response(&response, ctx)),
            Wire::Gemini => Ok(gemini::encode_response::encode_response(&response, ctx)),
        }
    }
}

/// Anthropic usage back in pivot terms (input including cache reads).
fn from_anthropic(u: anthropic::Usage) -> Usage {
    Usage {
        input: u.input_tokens + u.cache_read_input_tokens,
        output: u.output_tokens,
        cache_read: Some(u.cache_read_input_tokens),
        cache_write: Some(u.cache_creation_input_tokens),
        reasoning: None,
    }
}

/// The source side of a stream.
enum Decoder {
    Anthropic(anthropic::decode_stream::StreamDecoder),
    OpenAiChat(openai_chat::decode_stream::StreamDecoder),
    Responses(responses::decode_stream::StreamDecoder),
    Gemini(gemini::decode_stream::StreamDecoder),
}

/// The client side of a stream.
enum Encoder {
    Anthropic(anthropic::encode_stream::StreamEncoder),
    OpenAiChat(openai_chat::encode_stream::StreamEncoder),
    Responses(responses::encode_stream::StreamEncoder),
    Gemini(gemini::encode_stream::StreamEncoder),
}

impl Encoder {
    fn new(client: Wire, ctx: ExchangeContext) -> Encoder {
        match client {
            Wire::AnthropicMessages => {
                Encoder::Anthropic(anthropic::encode_stream::StreamEncoder::new(ctx))
            }
            Wire::OpenAiChat => {
                Encoder::OpenAiChat(openai_chat::encode_stream::StreamEncoder::new(ctx))
            }
            Wire::Responses => {
                Encoder::Responses(responses::encode_stream::StreamEncoder::new(ctx))
            }
            Wire::Gemini => Encoder::Gemini(gemini::encode_stream::StreamEncoder::new(ctx)),
        }
    }

    fn begin(&mut self, out: &mut Vec<u8>) {
        match self {
            Encoder::Anthropic(e) => e.begin(out),
            Encoder::OpenAiChat(e) => e.begin(out),
            Encoder::Responses(e) => e.begin(out),
            Encoder::Gemini(e) => e.begin(out),
        }
    }

    fn event(&mut self, event: Event<'_>, out: &mut Vec<u8>) {
        match self {
            Encoder::Anthropic(e) => e.event(event, out),
            Encoder::OpenAiChat(e) => e.event(event, out),
            Encoder::Responses(e) => e.event(event, out),
            Encoder::Gemini(e) => e.event(event, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Encoder::Anthropic(e) => e.finish(out),
            Encoder::OpenAiChat(e) => e.finish(out),
            Encoder::Responses(e) => e.finish(out),
            Encoder::Gemini(e) => e.finish(out),
        }
    }

    fn fail(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<u8>) {
        match self {
            Encoder::Anthropic(e) => e.fail(kind, message, out),
            Encoder::OpenAiChat(e) => e.fail(kind, message, out),
            Encoder::Responses(e) => e.fail(kind, message, out),
            Encoder::Gemini(e) => e.fail(kind, message, out),
        }
    }

    fn is_done(&self) -> bool {
        match self {
            Encoder::Anthropic(e) => e.is_done(),
            Encoder::OpenAiChat(e) => e.is_done(),
            Encoder::Responses(e) => e.is_done(),
            Encoder::Gemini(e) => e.is_done(),
        }
    }

    fn facts(&self) -> AnswerFacts {
        match self {
            Encoder::Anthropic(e) => {
                let f = e.facts();
                AnswerFacts {
                    usage: from_anthropic(f.usage),
                    usage_reported: f.usage_reported,
                    errored: f.errored,
                }
            }
            Encoder::OpenAiChat(e) => e.facts(),
            Encoder::Responses(e) => e.facts(),
            Encoder::Gemini(e) => e.facts(),
        }
    }
}

/// One streamed answer: provider reads in, client bytes out, whatever the split.
pub struct PairStream {
    decoder: Decoder,
    encoder: Encoder,
}

impl PairStream {
    pub fn new(pair: Pair, ctx: ExchangeContext) -> PairStream {
        let decoder = match pair.source {
            Wire::AnthropicMessages => {
                Decoder::Anthropic(anthropic::decode_stream::StreamDecoder::new())
            }
            Wire::OpenAiChat => Decoder::OpenAiChat(
                openai_chat::decode_stream::StreamDecoder::new(ctx.tool_names.clone()),
            ),
            Wire::Responses => Decoder::Responses(responses::decode_stream::StreamDecoder::new()),
            Wire::Gemini => Decoder::Gemini(gemini::decode_stream::StreamDecoder::new()),
        };
        PairStream {
            decoder,
            encoder: Encoder::new(pair.client, ctx),
        }
    }

    /// What the client gets before the provider's first byte.
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        self.encoder.begin(out);
    }

    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.encoder.is_done() {
            return;
        }
        self.encoder.begin(out);
        let encoder = &mut self.encoder;
        let on_event = &mut |e: Event<'_>| encoder.event(e, out);
        match &mut self.decoder {
            Decoder::Anthropic(d) => d.push(input, on_event),
            Decoder::OpenAiChat(d) => d.push(input, on_event),
            Decoder::Responses(d) => d.push(input, on_event),
            Decoder::Gemini(d) => d.push(input, on_event),
        }
    }

    /// The provider's body ended cleanly.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.encoder.is_done() {
            return;
        }
        let encoder = &mut self.encoder;
        let on_event = &mut |e: Event<'_>| encoder.event(e, out);
        match &mut self.decoder {
            Decoder::Anthropic(d) => d.finish(on_event),
            Decoder::OpenAiChat(d) => d.finish(on_event),
            Decoder::Responses(d) => d.finish(on_event),
            Decoder::Gemini(d) => d.finish(on_event),
        }
        self.encoder.finish(out);
    }

    /// The exchange failed mid-stream (reset, timeout).
    pub fn fail(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<u8>) {
        self.encoder.fail(kind, message, out);
    }

    pub fn is_done(&self) -> bool {
        self.encoder.is_done()
    }

    /// The client gets one JSON array, not SSE (a Gemini stream without `?alt=sse`).
    pub fn is_json_array(&self) -> bool {
        matches!(&self.encoder, Encoder::Gemini(e) if e.is_json_array())
    }

    pub fn facts(&self) -> AnswerFacts {
        self.encoder.facts()
    }

    /// What the source decoder had to mend (OpenAI-compatible sources only).
    pub fn repairs(&self) -> openai_chat::decode_stream::DecodeFacts {
        match &self.decoder {
            Decoder::OpenAiChat(d) => d.facts(),
            Decoder::Anthropic(_) | Decoder::Responses(_) | Decoder::Gemini(_) => {
                Default::default()
            }
        }
    }

    /// The Anthropic client's view of the stream (its stop reason), when it is one.
    pub fn anthropic_facts(&self) -> Option<anthropic::encode_stream::EncodeFacts> {
        match &self.encoder {
            Encoder::Anthropic(e) => Some(e.facts()),
            Encoder::OpenAiChat(_) | Encoder::Responses(_) | Encoder::Gemini(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The first pair by name: an Anthropic client on an OpenAI-compatible source, as benches and
// property tests call it (the proxy goes through `Pair` and `PairStream` like every pair).

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

/// Anthropic `POST /v1/messages` body → OpenAI `POST /chat/completions` body, through the
/// pivot: [`anthropic::decode_request`] reads the client's request,
/// [`openai_chat::encode_request`] writes the provider's. Built from an allow-list: only
/// fields with a known meaning reach the provider (`context_management`, `container`,
/// `mcp_servers`, `cache_control`, betas… are dropped). `map_model` turns the client's model
/// name into the provider's; a request it cannot carry is refused (a 400
/// `invalid_request_error`).
pub fn translate_request(
    body: &[u8],
    map_model: impl FnOnce(&str) -> String,
    dialect: &Dialect,
) -> Result<TranslatedRequest, Refusal> {
    // One UTF-8 check for the whole body; parsing from a `str` then skips it per value.
    let text = std::str::from_utf8(body)
        .map_err(|e| Refusal(format!("invalid request body: not UTF-8: {e}")))?;
    let mut conversation = anthropic::decode_request::decode_request(text)?;
    let source_model = map_model(&conversation.model);
    let mut notes = std::mem::take(&mut conversation.notes);
    let (out, tool_names) = openai_chat::encode_request::encode_request(
        &conversation,
        &source_model,
        dialect,
        body.len(),
        &mut notes,
    );
    Ok(TranslatedRequest {
        body: out,
        stream: conversation.stream,
        client_model: conversation.model.into_owned(),
        tool_names,
        input_tokens_estimate: estimate_tokens(body.len()),
    })
}

/// What the response translation needs from the request.
#[derive(Debug, Clone)]
pub struct ResponseContext<'c> {
    /// The Anthropic id for this message (`msg_…`).
    pub message_id: &'c str,
    /// The model the client asked for.
    pub client_model: &'c str,
    pub tool_names: &'c ToolNames,
}

/// A translated response and the facts telemetry wants from it.
#[derive(Debug)]
pub struct TranslatedResponse {
    pub body: Vec<u8>,
    pub usage: anthropic::Usage,
    /// False when the provider sent no usage and `usage` is our estimate.
    pub usage_reported: bool,
    /// Tool arguments that were not valid JSON and had to be repaired or replaced.
    pub repaired_arguments: u32,
}

/// OpenAI chat completion (non-streaming) → Anthropic `message`, through the pivot:
/// [`openai_chat::decode_response`] reads the provider's answer, [`anthropic::encode_response`]
/// writes the client's.
pub fn translate_response(
    body: &[u8],
    ctx: &ResponseContext<'_>,
) -> Result<TranslatedResponse, ResponseError> {
    let response = openai_chat::decode_response::decode_response(body, ctx.tool_names)?;
    let exchange = ExchangeContext {
        message_id: ctx.message_id.to_owned(),
        client_model: ctx.client_model.to_owned(),
        ..ExchangeContext::default()
    };
    let encoded = anthropic::encode_response::encode_response(&response, &exchange)?;
    Ok(TranslatedResponse {
        body: encoded.body,
        usage: encoded.usage,
        usage_reported: encoded.usage_reported,
        repaired_arguments: encoded.repaired_arguments,
    })
}

/// Facts about a translated stream, for logs, metrics and usage records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamSummary {
    pub usage: anthropic::Usage,
    /// False when the provider sent no usage and `usage` is our estimate.
    pub usage_reported: bool,
    pub stop_reason: Option<anthropic::StopReason>,
    /// The stream ended with an `error` event.
    pub errored: bool,
    /// Argument fragments for a tool whose block had already been closed (could not be sent).
    pub late_fragments: u32,
    /// Tool calls whose arguments were not valid JSON and had to be cut or repaired.
    pub repaired_arguments: u32,
}

/// OpenAI chat-completion SSE → Anthropic Messages SSE, incrementally and sans-IO, through
/// the pivot: [`openai_chat::decode_stream`] turns provider reads into pivot events,
/// [`anthropic::encode_stream`] turns them into Anthropic frames.
///
/// Feed each upstream read to [`StreamTranslator::push`]; it appends whatever Anthropic frames
/// that read completes. End with [`finish`](StreamTranslator::finish) (clean end of stream) or
/// [`fail`](StreamTranslator::fail) (reset, timeout…). The output depends only on the bytes,
/// never on how they were split into reads.
pub struct StreamTranslator(PairStream);

impl StreamTranslator {
    pub fn new(
        message_id: impl Into<String>,
        client_model: impl Into<String>,
        tool_names: ToolNames,
        input_tokens_estimate: u64,
    ) -> Self {
        let ctx = ExchangeContext {
            message_id: message_id.into(),
            client_model: client_model.into(),
            input_tokens_estimate,
            tool_names,
            ..ExchangeContext::default()
        };
        let pair = Pair {
            client: Wire::AnthropicMessages,
            source: Wire::OpenAiChat,
        };
        StreamTranslator(PairStream::new(pair, ctx))
    }

    /// Sends `message_start` and a `ping` now (otherwise they go out with the first data).
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        self.0.begin(out);
    }

    /// Translates one upstream read.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.0.push(input, out);
    }

    /// The upstream body ended cleanly (with or without `[DONE]`).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.0.finish(out);
    }

    /// The upstream failed after the response started: an `error` event ends the stream.
    pub fn fail(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<u8>) {
        self.0.fail(kind, message, out);
    }

    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }

    pub fn summary(&self) -> StreamSummary {
        let encoded = self.0.anthropic_facts().unwrap_or_default();
        let repairs = self.0.repairs();
        StreamSummary {
            usage: encoded.usage,
            usage_reported: encoded.usage_reported,
            stop_reason: encoded.stop_reason,
            errored: encoded.errored,
            late_fragments: repairs.late_fragments,
            repaired_arguments: repairs.repaired_arguments,
        }
    }
}
