//! The body side of one exchange, free of Pingora so it can be tested on its own: collecting
//! the client's request body (within the size limit), turning it into the provider's through
//! the adapter's pair (`protocol::pair`) or the passthrough, and shaping the provider's
//! response body — translated, re-framed, or passed through — read by read as it arrives.

use super::errors::{ClientProtocol, ProxyError};
use crate::config::adapter::Source;
use crate::protocol::anthropic::{ErrorKind, Usage};
use crate::protocol::errors::{ProviderError, provider_error};
use crate::protocol::gemini::GeminiCall;
use crate::protocol::notes::Notes;
use crate::protocol::pair::{Pair, PairStream, SourceOptions, Wire};
use crate::protocol::passthrough::replace_model;
use crate::protocol::pivot::{Conversation, ExchangeContext, ResponseError};
use bytes::{Bytes, BytesMut};

/// How bodies travel for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Client and source speak the same protocol: only the model changes.
    Passthrough(ClientProtocol),
    /// Client and source differ: translated both ways through the pivot.
    Pivot(Pair),
}

impl Plan {
    /// The plan for a client protocol on a source protocol.
    pub fn for_pair(client: Wire, source: Wire) -> Plan {
        match Pair::pivoted(client, source) {
            Some(pair) => Plan::Pivot(pair),
            None => Plan::Passthrough(protocol_of(client)),
        }
    }

    /// The wire protocol the client speaks.
    pub fn client_wire(self) -> Wire {
        match self {
            Plan::Pivot(pair) => pair.client,
            Plan::Passthrough(_) => match self.client_protocol() {
                ClientProtocol::Anthropic => Wire::AnthropicMessages,
                ClientProtocol::OpenAi => Wire::OpenAiChat,
                ClientProtocol::Responses => Wire::Responses,
                ClientProtocol::Gemini => Wire::Gemini,
            },
        }
    }

    /// The protocol the client hears back in.
    pub fn client_protocol(self) -> ClientProtocol {
        match self {
            Plan::Passthrough(protocol) => protocol,
            Plan::Pivot(pair) => protocol_of(pair.client),
        }
    }

    /// The protocol the provider is spoken to in.
    pub fn source_wire(self) -> Wire {
        match self {
            Plan::Passthrough(ClientProtocol::Anthropic) => Wire::AnthropicMessages,
            Plan::Passthrough(ClientProtocol::OpenAi) => Wire::OpenAiChat,
            Plan::Passthrough(ClientProtocol::Responses) => Wire::Responses,
            Plan::Passthrough(ClientProtocol::Gemini) => Wire::Gemini,
            Plan::Pivot(pair) => pair.source,
        }
    }
}

fn protocol_of(wire: Wire) -> ClientProtocol {
    match wire {
        Wire::AnthropicMessages => ClientProtocol::Anthropic,
        Wire::OpenAiChat => ClientProtocol::OpenAi,
        Wire::Responses => ClientProtocol::Responses,
        Wire::Gemini => ClientProtocol::Gemini,
    }
}

/// The most of a provider error body we keep (the message is at the start).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The most of a non-streaming provider response we buffer.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

/// Reads of a body put together; a body that came in one read is kept as it is, without a
/// copy (most requests and non-streaming answers).
#[derive(Debug, Default)]
pub struct Gathered {
    single: Option<Bytes>,
    joined: BytesMut,
    /// The whole body's length when it is announced: joining reserves it at once instead of
    /// growing (and copying) as reads arrive.
    expected: usize,
}

impl Gathered {
    pub fn len(&self) -> usize {
        self.single.as_ref().map_or(0, Bytes::len) + self.joined.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body, `None` when nothing was read.
    pub fn into_bytes(self) -> Option<Bytes> {
        self.single
            .or_else(|| (!self.joined.is_empty()).then(|| self.joined.freeze()))
    }
}

impl Extend<Bytes> for Gathered {
    fn extend<I: IntoIterator<Item = Bytes>>(&mut self, reads: I) {
        for read in reads {
            if self.is_empty() {
                self.single = Some(read);
                continue;
            }
            if let Some(single) = self.single.take() {
                self.joined
                    .reserve(self.expected.max(single.len() + read.len()));
                self.joined.extend_from_slice(&single);
            }
            self.joined.extend_from_slice(&read);
        }
    }
}

/// The most a request body's announced length reserves before its bytes arrive (Claude
/// Code's requests are 75 KB to a few hundred).
const RESERVE_LIMIT: usize = 1024 * 1024;

/// Collects a request body up to a limit, never buffering past it.
#[derive(Debug, Default)]
pub struct BodyCollector {
    body: Gathered,
}

impl BodyCollector {
    /// The length the client announced (`Content-Length`), as a hint: a body of another
    /// length is still collected as it comes. At most [`RESERVE_LIMIT`] is reserved, so a
    /// client announcing a large body and sending little ties up no more than that.
    pub fn expect(&mut self, length: Option<usize>, limit: usize) {
        self.body.expected = length.unwrap_or(0).min(limit).min(RESERVE_LIMIT);
    }

    pub fn push(&mut self, chunk: Bytes, limit: usize) -> Result<(), ProxyError> {
        if self.body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        self.body.extend(Some(chunk));
        Ok(())
    }

    pub fn take(&mut self) -> Bytes {
        std::mem::take(&mut self.body)
            .into_bytes()
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

pub fn too_large(limit: usize) -> ProxyError {
    ProxyError::new(
        ErrorKind::RequestTooLarge,
        format!("request body is larger than the limit of {limit} bytes"),
    )
}

/// The provider-bound request and what the response side needs to know about it.
#[derive(Debug)]
pub struct Prepared {
    pub body: Bytes,
    pub stream: bool,
    pub client_model: String,
    pub source_model: String,
    pub input_tokens_estimate: u64,
    /// What the pair's response codecs need (`Plan::Pivot` only).
    pub pivot: Option<ExchangeContext>,
    /// Images and documents replaced by notes for a text-only source.
    pub media_omitted: usize,
    /// What the translation changed (none for passthrough).
    pub notes: Notes,
}

/// The client's request as an attempt prepares it.
pub struct ClientRequest<'a> {
    pub body: &'a [u8],
    /// The model and streaming from a Gemini path.
    pub gemini: Option<&'a GeminiCall>,
    /// The body already decoded (by the router), saving a second decode.
    pub decoded: Option<Conversation<'a>>,
}

/// Builds the provider request body from the client's; `request_id` names the answer.
pub fn prepare(
    plan: Plan,
    request: ClientRequest<'_>,
    source: &Source,
    request_id: &str,
    reasoning_key: &crate::protocol::responses::seal::ReasoningKey,
    omit_media_for: Option<&str>,
) -> Result<Prepared, ProxyError> {
    let ClientRequest {
        body,
        gemini,
        decoded,
    } = request;
    let invalid = |message: String| ProxyError::new(ErrorKind::InvalidRequest, message);
    match plan {
        // Gemini requests carry the model in the path; the body passes untouched.
        Plan::Passthrough(ClientProtocol::Gemini) => {
            let call = gemini.ok_or_else(|| invalid("not a Gemini model path".into()))?;
            let estimate = crate::protocol::tokens::estimate_tokens(body.len());
            Ok(Prepared {
                body: Bytes::copy_from_slice(body),
                stream: call.stream(),
                client_model: call.model.clone(),
                source_model: source.map_model(&call.model).to_owned(),
                input_tokens_estimate: estimate,
                pivot: None,
                media_omitted: 0,
                notes: Notes::default(),
            })
        }
        Plan::Pivot(pair) => {
            let ctx = ExchangeContext {
                client_model: gemini.map(|g| g.model.clone()).unwrap_or_default(),
                stream: gemini.is_some_and(GeminiCall::stream),
                stream_as_json_array: gemini.is_some_and(|g| g.stream() && !g.sse),
                message_id: answer_id(pair.client, request_id),
                created: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                reasoning_key: Some(reasoning_key.clone()),
                ..ExchangeContext::default()
            };
            let options = SourceOptions {
                dialect: &source.dialect,
                omit_media_for,
            };
            let map_model = |m: &str| source.map_model(m).to_owned();
            let encoded = match decoded {
                Some(c) => pair.encode_decoded(c, body.len(), map_model, options, ctx),
                None => pair.encode_request(body, map_model, options, ctx),
            }
            .map_err(|e| invalid(e.0))?;
            Ok(Prepared {
                body: Bytes::from(encoded.body),
                stream: encoded.ctx.stream,
                client_model: encoded.ctx.client_model.clone(),
                source_model: encoded.source_model,
                input_tokens_estimate: encoded.ctx.input_tokens_estimate,
                pivot: Some(encoded.ctx),
                media_omitted: encoded.media_omitted,
                notes: encoded.notes,
            })
        }
        Plan::Passthrough(_) => {
            let (body, client_model, source_model, stream) =
                replace_model(body, |m| source.map_model(m).to_owned())
                    .map_err(|e| invalid(e.0))?;
            let estimate = crate::protocol::tokens::estimate_tokens(body.len());
            Ok(Prepared {
                body,
                stream,
                client_model,
                source_model,
                input_tokens_estimate: estimate,
                pivot: None,
                media_omitted: 0,
                notes: Notes::default(),
            })
        }
    }
}

/// The id a client sees for one answer, in its protocol's style.
fn answer_id(client: Wire, request_id: &str) -> String {
    match client {
        Wire::AnthropicMessages => format!("msg_{request_id}"),
        Wire::OpenAiChat => format!("chatcmpl-{request_id}"),
        Wire::Responses => format!("resp_{request_id}"),
        Wire::Gemini => request_id.to_owned(),
    }
}

/// What the response side learned, for logs, metrics and usage records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseFacts {
    pub usage: Option<Usage>,
    /// Usage came from the provider (not estimated).
    pub usage_reported: bool,
    pub errored: bool,
}

/// Shapes the provider's response body for the client, one upstream read at a time.
pub enum ResponseShaper {
    /// A stream through the pair's decoder and encoder.
    Stream(Box<PairStream>),
    /// A JSON answer translated once complete; `as_stream` when the client asked for a
    /// stream and the provider answered JSON anyway (it is then sent as the client's SSE).
    Json(Box<JsonState>),
    /// A provider error, rewritten in the client's error shape once complete.
    Error {
        status: u16,
        protocol: ClientProtocol,
        buf: BytesMut,
    },
    /// Bytes go through untouched.
    Passthrough,
    /// An answer the proxy wrote itself (the gateway's web search): only its facts.
    Made(ResponseFacts),
}

pub struct JsonState {
    buf: BytesMut,
    pair: Pair,
    ctx: ExchangeContext,
    as_stream: bool,
    facts: ResponseFacts,
}

/// What shaping one read produced.
pub struct Shaped {
    pub body: Option<Bytes>,
    /// The body turned out to be an error; the status to log.
    pub error_status: Option<u16>,
}

impl ResponseShaper {
    /// Chooses the shaping for a response from its status and content type.
    pub fn new(plan: Plan, status: u16, content_type: &str, prepared: &Prepared) -> ResponseShaper {
        let (Plan::Pivot(pair), Some(ctx)) = (plan, prepared.pivot.as_ref()) else {
            return ResponseShaper::Passthrough;
        };
        if !(200..300).contains(&status) {
            return ResponseShaper::Error {
                status,
                protocol: plan.client_protocol(),
                buf: BytesMut::new(),
            };
        }
        let is_json = content_type.starts_with("application/json");
        if prepared.stream && !is_json {
            return ResponseShaper::Stream(Box::new(PairStream::new(pair, ctx.clone())));
        }
        ResponseShaper::Json(Box::new(JsonState {
            buf: BytesMut::new(),
            pair,
            ctx: ctx.clone(),
            as_stream: prepared.stream,
            facts: ResponseFacts::default(),
        }))
    }

    /// Whether the client gets SSE.
    pub fn is_stream(&self) -> bool {
        match self {
            ResponseShaper::Stream(_) => true,
            ResponseShaper::Json(state) => state.as_stream,
            _ => false,
        }
    }

    /// A stream the client gets as one JSON array (Gemini without `?alt=sse`).
    pub fn is_json_array(&self) -> bool {
        match self {
            ResponseShaper::Stream(s) => s.is_json_array(),
            ResponseShaper::Json(state) => state.as_stream && state.ctx.stream_as_json_array,
            _ => false,
        }
    }

    /// The response headers change (so length and encoding must go).
    pub fn rewrites_body(&self) -> bool {
        !matches!(self, ResponseShaper::Passthrough)
    }

    /// What a streaming client gets right away, before the provider's first byte
    /// (Anthropic's `message_start`).
    pub fn begin(&mut self) -> Option<Bytes> {
        let ResponseShaper::Stream(p) = self else {
            return None;
        };
        let mut out = Vec::new();
        p.begin(&mut out);
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    /// Takes one upstream read (`None` for none) and returns what to send to the client.
    pub fn feed(&mut self, chunk: Option<&[u8]>, end: bool) -> Shaped {
        let chunk = chunk.unwrap_or_default();
        let mut shaped = Shaped {
            body: None,
            error_status: None,
        };
        match self {
            ResponseShaper::Passthrough | ResponseShaper::Made(_) => {
                shaped.body = (!chunk.is_empty()).then(|| Bytes::copy_from_slice(chunk));
            }
            ResponseShaper::Stream(p) => {
                let mut out = Vec::with_capacity(chunk.len() * 2 + 64);
                p.push(chunk, &mut out);
                if end {
                    p.finish(&mut out);
                }
                shaped.body = (!out.is_empty()).then(|| Bytes::from(out));
            }
            ResponseShaper::Json(state) => {
                if state.buf.len() + chunk.len() <= MAX_RESPONSE_BODY {
                    state.buf.extend_from_slice(chunk);
                } else {
                    state.facts.errored = true;
                }
                if end {
                    let (body, status) = finish_json(state);
                    shaped.body = Some(body);
                    shaped.error_status = status;
                }
            }
            ResponseShaper::Error {
                status,
                protocol,
                buf,
            } => {
                let room = MAX_ERROR_BODY.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if end {
                    let e = provider_error(*status, buf);
                    let error = ProxyError::new(e.kind, e.message).with_status(e.status);
                    shaped.body = Some(Bytes::from(error.body(*protocol)));
                    shaped.error_status = Some(e.status);
                }
            }
        }
        shaped
    }

    /// The provider failed after the response began (reset, timeout): what to send so the
    /// client sees a well-formed end. `None` when nothing can be added.
    pub fn fail(&mut self, error: &ProxyError) -> Option<Bytes> {
        match self {
            ResponseShaper::Stream(p) => {
                if p.is_done() {
                    return None;
                }
                let mut out = Vec::new();
                p.fail(error.kind, &error.message, &mut out);
                Some(Bytes::from(out))
            }
            ResponseShaper::Json(state) if state.as_stream => {
                state.facts.errored = true;
                Some(Bytes::from(stream_error_tail(state, error)))
            }
            _ => None,
        }
    }

    pub fn facts(&self) -> ResponseFacts {
        match self {
            ResponseShaper::Stream(p) => {
                let f = p.facts();
                ResponseFacts {
                    usage: Some(f.usage.to_anthropic()),
                    usage_reported: f.usage_reported,
                    errored: f.errored,
                }
            }
            ResponseShaper::Json(state) => state.facts,
            ResponseShaper::Error { .. } => ResponseFacts {
                errored: true,
                ..ResponseFacts::default()
            },
            ResponseShaper::Passthrough => ResponseFacts::default(),
            ResponseShaper::Made(facts) => *facts,
        }
    }
}

/// An error that ends a stream the client is reading, in its protocol.
fn stream_error_tail(state: &JsonState, error: &ProxyError) -> Vec<u8> {
    let mut out = Vec::new();
    PairStream::new(state.pair, state.ctx.clone()).fail(error.kind, &error.message, &mut out);
    out
}

/// Translates a complete JSON response; on failure, an error in its place.
fn finish_json(state: &mut JsonState) -> (Bytes, Option<u16>) {
    let result = if state.facts.errored {
        Err(ResponseError::Malformed(format!(
            "the provider response is larger than {MAX_RESPONSE_BODY} bytes"
        )))
    } else {
        state
            .pair
            .encode_response(&state.buf, &state.ctx, state.as_stream)
    };
    match result {
        Ok((body, facts)) => {
            state.facts.usage = Some(facts.usage.to_anthropic());
            state.facts.usage_reported = facts.usage_reported;
            (Bytes::from(body), None)
        }
        Err(e) => {
            state.facts.errored = true;
            let (kind, message, status) = match e {
                ResponseError::Malformed(m) => (ErrorKind::Api, m, 502),
                ResponseError::Provider(p) => provider_error_in_200(&p),
            };
            let error = ProxyError::new(kind, message).with_status(status);
            if state.as_stream {
                (Bytes::from(stream_error_tail(state, &error)), Some(status))
            } else {
                // The body says what went wrong; the status goes with it (the direct path holds
                // a non-streaming answer's header until here and sends this status instead).
                let protocol = Plan::Pivot(state.pair).client_protocol();
                (Bytes::from(error.body(protocol)), Some(status))
            }
        }
    }
}

fn provider_error_in_200(p: &ProviderError) -> (ErrorKind, String, u16) {
    let status = p
        .code
        .as_deref()
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|s| (400..=599).contains(s))
        // Else its type or code says (`insufficient_quota` → 402, as in a stream).
        .or_else(|| {
            [p.kind.as_deref(), p.code.as_deref()]
                .into_iter()
                .flatten()
                .find_map(crate::protocol::errors::kind_of_type)
                .map(ErrorKind::default_status)
        })
        .unwrap_or(502);
    let body = serde_json::json!({"error": {"message": p.message, "code": p.code}}).to_string();
    let e = provider_error(status, body.as_bytes());
    (e.kind, e.message, e.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_in_a_200_gets_the_status_its_code_or_type_says() {
        let p = |code: Option<&str>, kind: Option<&str>| ProviderError {
            message: "m".into(),
            code: code.map(str::to_owned),
            kind: kind.map(str::to_owned),
        };
        assert_eq!(provider_error_in_200(&p(Some("429"), None)).2, 429);
        let (kind, _, status) = provider_error_in_200(&p(Some("insufficient_quota"), None));
        assert_eq!((kind, status), (ErrorKind::Billing, 402));
        assert_eq!(
            provider_error_in_200(&p(None, Some("rate_limit_error"))).2,
            429
        );
        assert_eq!(provider_error_in_200(&p(Some("whatever"), None)).2, 502);
    }

    #[test]
    fn collector_reserves_the_announced_length_once_and_keeps_every_byte() {
        let mut c = BodyCollector::default();
        c.expect(Some(100_000), 1 << 20);
        c.push(Bytes::from_static(b"first read, "), 1 << 20)
            .unwrap();
        c.push(Bytes::from_static(b"second read"), 1 << 20).unwrap();
        assert!(c.body.joined.capacity() >= 100_000, "reserved up front");
        assert_eq!(&c.take()[..], b"first read, second read");

        // An announced length reserves no more than the limit, nor more than RESERVE_LIMIT.
        for (announced, limit, most) in [(usize::MAX, 64, 1024), (usize::MAX, 1 << 30, 2 << 20)] {
            let mut c = BodyCollector::default();
            c.expect(Some(announced), limit);
            c.push(Bytes::from_static(b"a"), limit).unwrap();
            c.push(Bytes::from_static(b"b"), limit).unwrap();
            assert!(
                c.body.joined.capacity() < most,
                "{}",
                c.body.joined.capacity()
            );
            assert_eq!(&c.take()[..], b"ab");
        }
    }

    #[test]
    fn collector_refuses_past_the_limit() {
        let mut c = BodyCollector::default();
        c.push(Bytes::from_static(b"12345"), 8).unwrap();
        let e = c.push(Bytes::from_static(b"6789"), 8).unwrap_err();
        assert_eq!(e.status, 413);
        assert_eq!(c.len(), 5, "nothing buffered past the limit");
    }
}
