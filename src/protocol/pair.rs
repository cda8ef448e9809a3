//! Drives one (client protocol, source protocol) pair through the pivot: the client codec
//! decodes the request, the source codec encodes it; on the way back the source codec
//! decodes answers and stream reads into pivot values and events, the client codec encodes
//! them. The proxy only picks the pair ([`Pair::pivoted`]) and feeds bytes.
//!
//! Pairs on the pivot today: OpenAI Chat client → Anthropic source. Anthropic client →
//! OpenAI Chat source still runs on its measured direct translator (`anthropic_openai`),
//! and same-protocol pairs pass through (`proxy::exchange::replace_model`).
//! `docs/pivot.md` shows how a protocol is added.

use crate::protocol::anthropic;
use crate::protocol::anthropic::ErrorKind;
use crate::protocol::anthropic_openai::response::ResponseError;
use crate::protocol::openai_chat;
use crate::protocol::pivot::{Event, ExchangeContext, Refusal, Usage, unfold};

/// A wire protocol, on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    AnthropicMessages,
    OpenAiChat,
}

/// A client protocol and a source protocol with codecs on the pivot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub client: Wire,
    pub source: Wire,
}

/// Per-adapter settings the source encoders take.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceOptions {
    pub max_tokens_limit: Option<u64>,
}

/// The provider-bound body, the mapped model and what the response side needs.
#[derive(Debug)]
pub struct EncodedRequest {
    pub body: Vec<u8>,
    pub source_model: String,
    pub ctx: ExchangeContext,
}

impl Pair {
    /// The pair, when both sides have pivot codecs.
    pub fn pivoted(client: Wire, source: Wire) -> Option<Pair> {
        matches!(
            (client, source),
            (Wire::OpenAiChat, Wire::AnthropicMessages)
        )
        .then_some(Pair { client, source })
    }

    /// Translates a client request body. `ctx` comes with the ids and clock the proxy owns.
    pub fn encode_request(
        self,
        body: &[u8],
        map_model: impl FnOnce(&str) -> String,
        options: SourceOptions,
        mut ctx: ExchangeContext,
    ) -> Result<EncodedRequest, Refusal> {
        let conversation = match self.client {
            Wire::OpenAiChat => openai_chat::request::decode_request(body)?,
            Wire::AnthropicMessages => return Err(unsupported()),
        };
        ctx.client_model = conversation.model.clone();
        ctx.input_tokens_estimate =
            crate::protocol::anthropic_openai::request::estimate_tokens(body.len());
        let source_model = map_model(&conversation.model);
        let encoded = match self.source {
            Wire::AnthropicMessages => anthropic::request::encode_request(
                &conversation,
                &source_model,
                anthropic::request::EncodeOptions {
                    max_tokens_limit: options.max_tokens_limit,
                },
                &mut ctx,
            )?,
            Wire::OpenAiChat => return Err(unsupported()),
        };
        Ok(EncodedRequest {
            body: encoded,
            source_model,
            ctx,
        })
    }

    /// A complete 2xx answer for the client; `as_stream` when the client asked for a stream
    /// and the source answered JSON anyway. Returns the body and the usage it reported.
    pub fn encode_response(
        self,
        body: &[u8],
        ctx: &ExchangeContext,
        as_stream: bool,
    ) -> Result<(Vec<u8>, Option<Usage>), ResponseError> {
        let response = match self.source {
            Wire::AnthropicMessages => anthropic::response::decode_response(body)?,
            Wire::OpenAiChat => return Err(ResponseError::Malformed(unsupported().0)),
        };
        let usage = response.usage;
        if as_stream {
            let mut stream = PairStream::new(self, ctx.clone());
            let mut out = Vec::with_capacity(body.len() * 2);
            unfold(&response, &mut |e| stream.encoder.event(e, &mut out));
            stream.encoder.finish(&mut out);
            return Ok((out, usage));
        }
        let out = match self.client {
            Wire::OpenAiChat => openai_chat::response::encode_response(&response, ctx),
            Wire::AnthropicMessages => return Err(ResponseError::Malformed(unsupported().0)),
        };
        Ok((out, usage))
    }
}

fn unsupported() -> Refusal {
    Refusal("this protocol pair is not translated through the pivot".to_owned())
}

enum Decoder {
    Anthropic(anthropic::stream::StreamDecoder),
}

enum Encoder {
    OpenAiChat(openai_chat::stream::StreamEncoder),
}

impl Encoder {
    fn event(&mut self, event: Event<'_>, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAiChat(e) => e.event(event, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAiChat(e) => e.finish(out),
        }
    }
}

/// One streamed answer: provider reads in, client bytes out, whatever the split.
pub struct PairStream {
    decoder: Decoder,
    encoder: Encoder,
}

/// What a translated stream reported, for logs, metrics and usage records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamFacts {
    pub usage: Usage,
    pub usage_reported: bool,
    pub errored: bool,
}

impl PairStream {
    /// Panics never: a pair without stream codecs gets the Anthropic/Chat ones, which
    /// `Pair::pivoted` guarantees are the only pair.
    pub fn new(pair: Pair, ctx: ExchangeContext) -> PairStream {
        let _ = pair;
        PairStream {
            decoder: Decoder::Anthropic(anthropic::stream::StreamDecoder::new()),
            encoder: Encoder::OpenAiChat(openai_chat::stream::StreamEncoder::new(ctx)),
        }
    }

    /// What the client gets before the provider's first byte.
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        match &mut self.encoder {
            Encoder::OpenAiChat(e) => e.begin(out),
        }
    }

    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let (Decoder::Anthropic(decoder), encoder) = (&mut self.decoder, &mut self.encoder);
        decoder.push(input, &mut |e| encoder.event(e, out));
    }

    /// The provider's body ended cleanly.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let (Decoder::Anthropic(decoder), encoder) = (&mut self.decoder, &mut self.encoder);
        decoder.finish(&mut |e| encoder.event(e, out));
        encoder.finish(out);
    }

    /// The exchange failed mid-stream (reset, timeout).
    pub fn fail(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<u8>) {
        match &mut self.encoder {
            Encoder::OpenAiChat(e) => e.fail(kind, message, out),
        }
    }

    pub fn is_done(&self) -> bool {
        match &self.encoder {
            Encoder::OpenAiChat(e) => e.is_done(),
        }
    }

    pub fn facts(&self) -> StreamFacts {
        match &self.encoder {
            Encoder::OpenAiChat(e) => {
                let f = e.facts();
                StreamFacts {
                    usage: f.usage,
                    usage_reported: f.usage_reported,
                    errored: f.errored,
                }
            }
        }
    }
}
