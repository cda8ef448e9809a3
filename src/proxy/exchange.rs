//! The body side of one exchange, free of Pingora so it can be tested on its own: collecting
//! the client's request body (within the size limit), turning it into the provider's, and
//! shaping the provider's response body — translated, re-framed, or passed through — read by
//! read as it arrives.

use super::errors::{ClientProtocol, ProxyError};
use crate::config::adapter::Source;
use crate::protocol::anthropic::{ErrorKind, EventWriter, Usage};
use crate::protocol::anthropic_openai::ToolNames;
use crate::protocol::anthropic_openai::error::provider_error;
use crate::protocol::anthropic_openai::request::{TranslatedRequest, translate_request};
use crate::protocol::anthropic_openai::response::{
    ResponseContext, ResponseError, translate_response,
};
use crate::protocol::anthropic_openai::stream::StreamTranslator;
use crate::protocol::json::write_json_str;
use crate::protocol::openai::ProviderError;
use crate::protocol::pair::{Pair, PairStream, SourceOptions, Wire};
use crate::protocol::pivot::ExchangeContext;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

/// How bodies travel for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Anthropic client, OpenAI-compatible source: translate both ways.
    AnthropicToOpenAi,
    /// Client and source speak the same protocol: only the model changes.
    Passthrough(ClientProtocol),
    /// Translated through the pivot: the pair's codecs do both ways.
    Pivot(Pair),
}

impl Plan {
    /// The protocol the client hears back in.
    pub fn client_protocol(self) -> ClientProtocol {
        match self {
            Plan::AnthropicToOpenAi => ClientProtocol::Anthropic,
            Plan::Passthrough(protocol) => protocol,
            Plan::Pivot(pair) => match pair.client {
                Wire::AnthropicMessages => ClientProtocol::Anthropic,
                Wire::OpenAiChat => ClientProtocol::OpenAi,
            },
        }
    }

    /// The protocol the provider is spoken to in.
    pub fn source_wire(self) -> Wire {
        match self {
            Plan::AnthropicToOpenAi | Plan::Passthrough(ClientProtocol::OpenAi) => Wire::OpenAiChat,
            Plan::Passthrough(ClientProtocol::Anthropic) => Wire::AnthropicMessages,
            Plan::Pivot(pair) => pair.source,
        }
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
    pub tool_names: ToolNames,
    pub input_tokens_estimate: u64,
    /// What a pivot pair's response codecs need (`Plan::Pivot` only).
    pub pivot: Option<ExchangeContext>,
}

/// Builds the provider request body from the client's; `request_id` names the answer.
pub fn prepare(
    plan: Plan,
    body: &[u8],
    source: &Source,
    request_id: &str,
) -> Result<Prepared, ProxyError> {
    match plan {
        Plan::Pivot(pair) => {
            let ctx = ExchangeContext {
                message_id: answer_id(pair.client, request_id),
                created: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                ..ExchangeContext::default()
            };
            let options = SourceOptions {
                max_tokens_limit: source.dialect.max_tokens_limit,
            };
            let encoded = pair
                .encode_request(body, |m| source.map_model(m).to_owned(), options, ctx)
                .map_err(|e| ProxyError::new(ErrorKind::InvalidRequest, e.0))?;
            Ok(Prepared {
                body: Bytes::from(encoded.body),
                stream: encoded.ctx.stream,
                client_model: encoded.ctx.client_model.clone(),
                source_model: encoded.source_model,
                tool_names: ToolNames::default(),
                input_tokens_estimate: encoded.ctx.input_tokens_estimate,
                pivot: Some(encoded.ctx),
            })
        }
        Plan::AnthropicToOpenAi => {
            let mut source_model = String::new();
            let TranslatedRequest {
                body,
                stream,
                client_model,
                tool_names,
                input_tokens_estimate,
            } = translate_request(
                body,
                |m| {
                    source_model = source.map_model(m).to_owned();
                    source_model.clone()
                },
                &source.dialect,
            )
            .map_err(|e| ProxyError::new(ErrorKind::InvalidRequest, e.0))?;
            Ok(Prepared {
                body: Bytes::from(body),
                stream,
                client_model,
                source_model,
                tool_names,
                input_tokens_estimate,
                pivot: None,
            })
        }
        Plan::Passthrough(_) => {
            let (body, client_model, source_model, stream) =
                replace_model(body, |m| source.map_model(m).to_owned())?;
            let estimate = crate::protocol::anthropic_openai::request::estimate_tokens(body.len());
            Ok(Prepared {
                body,
                stream,
                client_model,
                source_model,
                tool_names: ToolNames::default(),
                input_tokens_estimate: estimate,
                pivot: None,
            })
        }
    }
}

/// The id a client sees for one answer, in its protocol's style.
fn answer_id(client: Wire, request_id: &str) -> String {
    match client {
        Wire::AnthropicMessages => format!("msg_{request_id}"),
        Wire::OpenAiChat => format!("chatcmpl-{request_id}"),
    }
}

/// Replaces the top-level `model` value in a JSON body without re-serialising anything else:
/// the bytes before and after it are copied as the client sent them.
///
/// The body is walked, not parsed: the rest of it goes to a provider that speaks the client's
/// own protocol and answers a malformed document with an error in the client's shape, so
/// validating 75 KB here (~30 µs, most of what a passthrough costs over bare Pingora) buys
/// nothing. A body whose structure cannot be followed, or that is unusual (escaped keys,
/// repeated `model` or `stream`, a `stream` that is not a boolean), is parsed to say exactly
/// what is wrong with it.
pub fn replace_model(
    body: &[u8],
    map: impl FnOnce(&str) -> String,
) -> Result<(Bytes, String, String, bool), ProxyError> {
    let (model, stream) = match walk_for_model(body) {
        Some(found) => found,
        None => parse_for_model(body)?,
    };
    let model = model.ok_or_else(|| invalid("model: field required".to_owned()))?;
    let client_model: String = serde_json::from_slice(&body[model.clone()])
        .map_err(|_| invalid("model: expected a string".to_owned()))?;
    let source_model = map(&client_model);
    let mut out = Vec::with_capacity(body.len() + source_model.len());
    out.extend_from_slice(&body[..model.start]);
    write_json_str(&mut out, &source_model);
    out.extend_from_slice(&body[model.end..]);
    Ok((Bytes::from(out), client_model, source_model, stream))
}

type ModelAndStream = (Option<std::ops::Range<usize>>, bool);

fn invalid(message: String) -> ProxyError {
    ProxyError::new(ErrorKind::InvalidRequest, message)
}

/// The `model` value's place and the `stream` flag, found without parsing (see
/// [`replace_model`]); `None` leaves the body to [`parse_for_model`].
fn walk_for_model(body: &[u8]) -> Option<ModelAndStream> {
    let mut model = None;
    let mut stream = None;
    let followed = crate::protocol::json::walk_top_level(body, |key, value| {
        if key.contains(&b'\\') {
            return false;
        }
        match key {
            b"model" => model.replace(value).is_none(),
            b"stream" => {
                let flag = match &body[value] {
                    b"true" => true,
                    b"false" | b"null" => false,
                    _ => return false,
                };
                stream.replace(flag).is_none()
            }
            _ => true,
        }
    });
    followed.then(|| (model, stream == Some(true)))
}

/// The same found by parsing the whole document, for the bodies the walk leaves: its errors
/// say what is wrong.
fn parse_for_model(body: &[u8]) -> Result<ModelAndStream, ProxyError> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        model: Option<&'a RawValue>,
        #[serde(default)]
        stream: Option<bool>,
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| invalid(format!("request body is not UTF-8: {e}")))?;
    if !crate::protocol::json::is_object_document(text) {
        return Err(invalid(
            "invalid request body: expected a JSON object".to_owned(),
        ));
    }
    let head: Head =
        serde_json::from_str(text).map_err(|e| invalid(format!("invalid request body: {e}")))?;
    // `model` borrows from `text`, so its position is an offset into the body.
    let model = head.model.map(|raw| {
        let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        start..start + raw.get().len()
    });
    Ok((model, head.stream == Some(true)))
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
    /// OpenAI SSE → Anthropic SSE.
    Stream(Box<StreamTranslator>),
    /// A stream through a pivot pair's decoder and encoder.
    PivotStream(Box<PairStream>),
    /// OpenAI JSON → Anthropic JSON, translated once complete.
    Json(JsonState),
    /// The provider answered a streaming request with JSON: translate it and send it as SSE.
    JsonAsStream(JsonState),
    /// A provider error, rewritten in the client's error shape once complete.
    Error {
        status: u16,
        protocol: ClientProtocol,
        buf: BytesMut,
    },
    /// Bytes go through untouched.
    Passthrough,
}

pub struct JsonState {
    buf: BytesMut,
    message_id: String,
    client_model: String,
    tool_names: ToolNames,
    input_tokens_estimate: u64,
    facts: ResponseFacts,
    /// Translated by a pivot pair instead of the Anthropic/OpenAI translator.
    pivot: Option<(Pair, ExchangeContext)>,
}

/// What shaping one read produced.
pub struct Shaped {
    pub body: Option<Bytes>,
    /// The body turned out to be an error; the status to log.
    pub error_status: Option<u16>,
}

impl ResponseShaper {
    /// Chooses the shaping for a response from its status and content type.
    pub fn new(
        plan: Plan,
        status: u16,
        content_type: &str,
        prepared: &Prepared,
        message_id: &str,
    ) -> ResponseShaper {
        if let Plan::Passthrough(_) = plan {
            return ResponseShaper::Passthrough;
        }
        let protocol = plan.client_protocol();
        let pivot = match plan {
            Plan::Pivot(pair) => prepared.pivot.clone().map(|ctx| (pair, ctx)),
            _ => None,
        };
        if !(200..300).contains(&status) {
            return ResponseShaper::Error {
                status,
                protocol,
                buf: BytesMut::new(),
            };
        }
        let json = || JsonState {
            buf: BytesMut::new(),
            message_id: message_id.to_owned(),
            client_model: prepared.client_model.clone(),
            tool_names: prepared.tool_names.clone(),
            input_tokens_estimate: prepared.input_tokens_estimate,
            facts: ResponseFacts::default(),
            pivot: pivot.clone(),
        };
        let is_json = content_type.starts_with("application/json");
        if let (Some((pair, ctx)), true, false) = (pivot.as_ref(), prepared.stream, is_json) {
            return ResponseShaper::PivotStream(Box::new(PairStream::new(*pair, ctx.clone())));
        }
        match (prepared.stream, is_json) {
            (true, false) => ResponseShaper::Stream(Box::new(StreamTranslator::new(
                message_id,
                prepared.client_model.clone(),
                prepared.tool_names.clone(),
                prepared.input_tokens_estimate,
            ))),
            (true, true) => ResponseShaper::JsonAsStream(json()),
            (false, _) => ResponseShaper::Json(json()),
        }
    }

    /// Whether the client gets SSE.
    pub fn is_stream(&self) -> bool {
        matches!(
            self,
            ResponseShaper::Stream(_)
                | ResponseShaper::PivotStream(_)
                | ResponseShaper::JsonAsStream(_)
        )
    }

    /// The response headers change (so length and encoding must go).
    pub fn rewrites_body(&self) -> bool {
        !matches!(self, ResponseShaper::Passthrough)
    }

    /// Sends `message_start` right away, before the provider's first byte.
    pub fn begin(&mut self) -> Option<Bytes> {
        let mut out = Vec::new();
        match self {
            ResponseShaper::Stream(t) => t.begin(&mut out),
            ResponseShaper::PivotStream(p) => p.begin(&mut out),
            _ => return None,
        }
        Some(Bytes::from(out))
    }

    /// Takes one upstream read (`None` for none) and returns what to send to the client.
    pub fn feed(&mut self, chunk: Option<&[u8]>, end: bool) -> Shaped {
        let chunk = chunk.unwrap_or_default();
        let as_stream = matches!(self, ResponseShaper::JsonAsStream(_));
        let mut shaped = Shaped {
            body: None,
            error_status: None,
        };
        match self {
            ResponseShaper::Passthrough => {
                shaped.body = (!chunk.is_empty()).then(|| Bytes::copy_from_slice(chunk));
            }
            ResponseShaper::Stream(t) => {
                let mut out = Vec::with_capacity(chunk.len() * 2 + 64);
                t.push(chunk, &mut out);
                if end {
                    t.finish(&mut out);
                }
                shaped.body = (!out.is_empty()).then(|| Bytes::from(out));
            }
            ResponseShaper::PivotStream(p) => {
                let mut out = Vec::with_capacity(chunk.len() * 2 + 64);
                p.push(chunk, &mut out);
                if end {
                    p.finish(&mut out);
                }
                shaped.body = (!out.is_empty()).then(|| Bytes::from(out));
            }
            ResponseShaper::Json(state) | ResponseShaper::JsonAsStream(state) => {
                if state.buf.len() + chunk.len() <= MAX_RESPONSE_BODY {
                    state.buf.extend_from_slice(chunk);
                } else {
                    state.facts.errored = true;
                }
                if end {
                    let (body, status) = finish_json(state, as_stream);
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
            ResponseShaper::Stream(t) => {
                if t.is_done() {
                    return None;
                }
                let mut out = Vec::new();
                t.fail(error.kind, &error.message, &mut out);
                Some(Bytes::from(out))
            }
            ResponseShaper::PivotStream(p) => {
                if p.is_done() {
                    return None;
                }
                let mut out = Vec::new();
                p.fail(error.kind, &error.message, &mut out);
                Some(Bytes::from(out))
            }
            ResponseShaper::JsonAsStream(state) => {
                state.facts.errored = true;
                Some(Bytes::from(stream_error_tail(state, error)))
            }
            _ => None,
        }
    }

    pub fn facts(&self) -> ResponseFacts {
        match self {
            ResponseShaper::Stream(t) => {
                let s = t.summary();
                ResponseFacts {
                    usage: Some(s.usage),
                    usage_reported: s.usage_reported,
                    errored: s.errored,
                }
            }
            ResponseShaper::PivotStream(p) => {
                let f = p.facts();
                ResponseFacts {
                    usage: Some(f.usage.to_anthropic()),
                    usage_reported: f.usage_reported,
                    errored: f.errored,
                }
            }
            ResponseShaper::Json(state) | ResponseShaper::JsonAsStream(state) => state.facts,
            ResponseShaper::Error { .. } => ResponseFacts {
                errored: true,
                ..ResponseFacts::default()
            },
            ResponseShaper::Passthrough => ResponseFacts::default(),
        }
    }
}

/// An error event that ends a stream the client is reading, in its protocol.
fn stream_error_tail(state: &JsonState, error: &ProxyError) -> Vec<u8> {
    let mut out = Vec::new();
    match &state.pivot {
        Some((pair, ctx)) => {
            PairStream::new(*pair, ctx.clone()).fail(error.kind, &error.message, &mut out)
        }
        None => EventWriter { out: &mut out }.error(error.kind, &error.message),
    }
    out
}

/// A complete JSON answer through a pivot pair.
fn finish_pivot_json(
    state: &mut JsonState,
    as_stream: bool,
) -> Option<Result<Vec<u8>, ResponseError>> {
    let (pair, ctx) = state.pivot.as_ref()?;
    let result = pair
        .encode_response(&state.buf, ctx, as_stream)
        .map(|(body, usage)| {
            state.facts.usage_reported = usage.is_some();
            state.facts.usage = Some(usage.unwrap_or_default().to_anthropic());
            body
        });
    Some(result)
}

/// Translates a complete JSON response; on failure, an error in its place.
fn finish_json(state: &mut JsonState, as_stream: bool) -> (Bytes, Option<u16>) {
    let protocol = state
        .pivot
        .as_ref()
        .map_or(ClientProtocol::Anthropic, |(pair, _)| {
            Plan::Pivot(*pair).client_protocol()
        });
    let pivot_result = if state.facts.errored {
        None
    } else {
        finish_pivot_json(state, as_stream)
    };
    let ctx = ResponseContext {
        message_id: &state.message_id,
        client_model: &state.client_model,
        tool_names: &state.tool_names,
    };
    let result = if state.facts.errored {
        Err(ResponseError::Malformed(format!(
            "the provider response is larger than {MAX_RESPONSE_BODY} bytes"
        )))
    } else if let Some(pivot_result) = pivot_result {
        match pivot_result {
            Ok(body) => return (Bytes::from(body), None),
            Err(e) => Err(e),
        }
    } else {
        translate_response(&state.buf, &ctx)
    };
    match result {
        Ok(t) => {
            state.facts.usage = Some(t.usage);
            state.facts.usage_reported = t.usage_reported;
            if as_stream {
                (
                    Bytes::from(message_as_events(&t.body, state.input_tokens_estimate)),
                    None,
                )
            } else {
                (Bytes::from(t.body), None)
            }
        }
        Err(e) => {
            state.facts.errored = true;
            let (kind, message, status) = match e {
                ResponseError::Malformed(m) => (ErrorKind::Api, m, 502),
                ResponseError::Provider(p) => provider_error_in_200(&p),
            };
            let error = ProxyError::new(kind, message).with_status(status);
            if as_stream {
                (Bytes::from(stream_error_tail(state, &error)), Some(status))
            } else {
                // The 200 header is already on its way; the body says what went wrong.
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
        .unwrap_or(502);
    let body = serde_json::json!({"error": {"message": p.message, "code": p.code}}).to_string();
    let e = provider_error(status, body.as_bytes());
    (e.kind, e.message, e.status)
}

/// Renders a complete Anthropic message as the SSE events a streaming client expects.
pub fn message_as_events(message_json: &[u8], input_estimate: u64) -> Vec<u8> {
    let message: serde_json::Value = serde_json::from_slice(message_json).unwrap_or_default();
    let mut out = Vec::with_capacity(message_json.len() * 2);
    let mut w = EventWriter { out: &mut out };
    let usage = Usage {
        input_tokens: message["usage"]["input_tokens"]
            .as_u64()
            .unwrap_or(input_estimate),
        output_tokens: message["usage"]["output_tokens"].as_u64().unwrap_or(0),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: message["usage"]["cache_read_input_tokens"]
            .as_u64()
            .unwrap_or(0),
    };
    let start_usage = Usage {
        output_tokens: 1,
        ..usage
    };
    w.message_start(
        message["id"].as_str().unwrap_or_default(),
        message["model"].as_str().unwrap_or_default(),
        &start_usage,
    );
    w.ping();
    for (i, block) in message["content"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let index = i as u32;
        match block["type"].as_str() {
            Some("thinking") => {
                w.thinking_start(index);
                w.thinking_delta(index, block["thinking"].as_str().unwrap_or_default());
                w.signature_delta(index, block["signature"].as_str().unwrap_or_default());
            }
            Some("text") => {
                w.text_start(index);
                w.text_delta(index, block["text"].as_str().unwrap_or_default());
            }
            Some("tool_use") => {
                w.tool_use_start(
                    index,
                    block["id"].as_str().unwrap_or_default(),
                    block["name"].as_str().unwrap_or_default(),
                );
                let input = block["input"].to_string();
                if input != "{}" {
                    w.input_json_delta(index, &input);
                }
            }
            _ => continue,
        }
        w.block_stop(index);
    }
    let stop = match message["stop_reason"].as_str() {
        Some("max_tokens") => crate::protocol::anthropic::StopReason::MaxTokens,
        Some("tool_use") => crate::protocol::anthropic::StopReason::ToolUse,
        Some("refusal") => crate::protocol::anthropic::StopReason::Refusal,
        _ => crate::protocol::anthropic::StopReason::EndTurn,
    };
    w.message_delta(stop, &usage);
    w.message_stop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::stream_check::{accumulate, check_stream};

    /// Found by fuzzing: serde's derived structs take an array of fields in order, so `[""]`
    /// passed as a request with model "".
    #[test]
    fn replace_model_refuses_a_body_that_is_not_an_object() {
        for body in [&b"[\"claude\"]"[..], b"  [\"\", true]", b"\"model\""] {
            let e = replace_model(body, |_| "x".to_owned()).unwrap_err();
            assert!(
                e.message.contains("expected a JSON object"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn replace_model_touches_only_the_model() {
        let body = br#"{ "stream" : true, "model":"claude-x",  "messages":[{"role":"user","content":"hi \u00e9"}]}"#;
        let (out, client, source, stream) =
            replace_model(body, |m| format!("{m}-mapped\"q")).unwrap();
        assert_eq!(client, "claude-x");
        assert_eq!(source, "claude-x-mapped\"q");
        assert!(stream);
        let expected = br#"{ "stream" : true, "model":"claude-x-mapped\"q",  "messages":[{"role":"user","content":"hi \u00e9"}]}"#;
        assert_eq!(&out[..], &expected[..]);
        assert!(replace_model(b"{}", |m| m.to_owned()).is_err());
        assert!(replace_model(b"{\"model\":5}", |m| m.to_owned()).is_err());
        assert!(replace_model(b"nope", |m| m.to_owned()).is_err());
    }

    #[test]
    fn replace_model_parses_unusual_bodies_and_forwards_unchecked_values() {
        let map = |m: &str| format!("{m}!");
        // Left to the parser: an escaped key, a repeated model, a stream that is no boolean.
        let (out, client, _, stream) =
            replace_model(br#"{"mod\u0065l":"c","stream":true}"#, map).unwrap();
        assert_eq!((client.as_str(), stream), ("c", true));
        assert_eq!(&out[..], br#"{"mod\u0065l":"c!","stream":true}"#);
        let e = replace_model(br#"{"model":"a","model":"b"}"#, map).unwrap_err();
        assert!(e.message.contains("duplicate field"), "{}", e.message);
        let e = replace_model(br#"{"model":"a","stream":"yes"}"#, map).unwrap_err();
        assert!(e.message.contains("invalid type"), "{}", e.message);
        // Walked, not validated: a bad value elsewhere is the provider's to refuse.
        let (out, ..) = replace_model(br#"{"model":"a","max_tokens":12x}"#, map).unwrap();
        assert_eq!(&out[..], br#"{"model":"a!","max_tokens":12x}"#);
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

    #[test]
    fn json_message_as_stream_is_valid() {
        let msg = br#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[
            {"type":"thinking","thinking":"t","signature":"s"},{"type":"text","text":"hello"},
            {"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ls"}}],
            "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":4}}"#;
        let events = message_as_events(msg, 0);
        let frames = check_stream(&events).unwrap();
        let m = accumulate(&frames);
        assert_eq!(m["content"][1]["text"], "hello");
        assert_eq!(m["content"][2]["input"]["command"], "ls");
        assert_eq!(m["stop_reason"], "tool_use");
    }
}

/// Reads token usage out of a passthrough response without changing a byte of it (usage
/// statistics for same-protocol adapters). Only the events that mention usage are parsed.
pub struct UsageObserver {
    protocol: ClientProtocol,
    decoder: crate::protocol::sse::SseDecoder,
    stream: bool,
    json: BytesMut,
    usage: Option<Usage>,
}

impl UsageObserver {
    pub fn new(protocol: ClientProtocol, stream: bool) -> Self {
        UsageObserver {
            protocol,
            decoder: crate::protocol::sse::SseDecoder::new(),
            stream,
            json: BytesMut::new(),
            usage: None,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.stream {
            if self.json.len() + chunk.len() <= MAX_RESPONSE_BODY {
                self.json.extend_from_slice(chunk);
            }
            return;
        }
        let (protocol, usage) = (self.protocol, &mut self.usage);
        self.decoder.push(chunk, &mut |event| {
            if let crate::protocol::sse::SseEvent::Data(data) = event
                && memchr::memmem::find(data, b"usage").is_some()
            {
                merge_usage(protocol, data, usage);
            }
        });
    }

    pub fn finish(&mut self) -> Option<Usage> {
        if !self.stream {
            let body = std::mem::take(&mut self.json);
            merge_usage(self.protocol, &body, &mut self.usage);
        }
        self.usage
    }
}

/// Folds the usage in one JSON document (a whole response or one stream event) into `usage`.
fn merge_usage(protocol: ClientProtocol, data: &[u8], usage: &mut Option<Usage>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let u = match protocol {
        ClientProtocol::Anthropic => {
            // message_start carries it under `message`; message_delta and whole messages at top level.
            let u = if v["type"] == "message_start" {
                &v["message"]["usage"]
            } else {
                &v["usage"]
            };
            if !u.is_object() {
                return;
            }
            let mut acc = usage.unwrap_or_default();
            if let Some(n) = u["input_tokens"].as_u64() {
                acc.input_tokens = n;
            }
            if let Some(n) = u["output_tokens"].as_u64() {
                acc.output_tokens = n;
            }
            if let Some(n) = u["cache_read_input_tokens"].as_u64() {
                acc.cache_read_input_tokens = n;
            }
            if let Some(n) = u["cache_creation_input_tokens"].as_u64() {
                acc.cache_creation_input_tokens = n;
            }
            acc
        }
        ClientProtocol::OpenAi => {
            let Ok(u) =
                serde_json::from_value::<crate::protocol::openai::ChatUsage>(v["usage"].clone())
            else {
                return;
            };
            crate::protocol::anthropic_openai::response::anthropic_usage(&u)
        }
    };
    *usage = Some(u);
}

#[cfg(test)]
mod observer_tests {
    use super::*;

    #[test]
    fn anthropic_stream_usage() {
        let mut o = UsageObserver::new(ClientProtocol::Anthropic, true);
        let s = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":40}}\n\n";
        for piece in s.chunks(7) {
            o.feed(piece);
        }
        let u = o.finish().unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cache_read_input_tokens),
            (12, 40, 3)
        );
    }

    #[test]
    fn openai_json_usage() {
        let mut o = UsageObserver::new(ClientProtocol::OpenAi, false);
        o.feed(br#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":6}}}"#);
        let u = o.finish().unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cache_read_input_tokens),
            (4, 4, 6)
        );
    }
}
