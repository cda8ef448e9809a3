//! Web search the gateway runs for a client whose source cannot search (see
//! `docs/web-search.md`), as each protocol shows it: which requests ask for a hosted search
//! tool (Anthropic `web_search_*`, Gemini `googleSearch`), the function tool the provider gets
//! instead, the text the provider's model reads back as the tool's result, and the client's
//! native answer (Anthropic `server_tool_use` + `web_search_tool_result` blocks, citations and
//! `usage.server_tool_use`; Gemini `groundingMetadata`). Pure: the search loop
//! (`crate::websearch::emulate`) feeds it what happened.

use crate::protocol::anthropic::{EventWriter, StopReason as AnthropicStop, Usage as AUsage};
use crate::protocol::gemini::grounded_stream::GroundedStream;
use crate::protocol::json::{Text, tool_input};
use crate::protocol::names::sanitize_tool_id;
use crate::protocol::pair::Wire;
use crate::protocol::pivot::{
    ExchangeContext, Part, Response, ResponseError, StopReason, ToolCall, ToolSpec, Usage,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::borrow::Cow;

/// The function tool the provider's model calls to search.
pub const TOOL_NAME: &str = "web_search";

/// The default of Anthropic's `max_uses` when a client gives none.
pub const DEFAULT_MAX_USES: u32 = 5;

/// The longest query sent to a backend (Anthropic refuses longer ones: `query_too_long`).
pub const MAX_QUERY_CHARS: usize = 400;

const TOOL_DESCRIPTION: &str = "Search the web for current information. Returns result \
titles, URLs and snippets. Use it when the answer depends on recent or external facts; cite \
the URLs you use.";

const TOOL_PARAMETERS: &str = r#"{"type":"object","properties":{"query":{"type":"string","description":"The search query"}},"required":["query"]}"#;

/// A hosted search tool a client asked for, and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedSearch {
    pub client: Wire,
    /// Searches allowed in one answer.
    pub max_uses: u32,
    /// Only results from these domains (and their subdomains), when not empty.
    pub allowed_domains: Vec<String>,
    pub blocked_domains: Vec<String>,
}

impl HostedSearch {
    /// Whether a result URL passes the client's domain filters.
    pub fn allows(&self, url: &str) -> bool {
        let Some(host) = host_of(url) else {
            return false;
        };
        let matches = |d: &String| {
            let d = d.trim().trim_start_matches("*.").to_ascii_lowercase();
            host == d || host.ends_with(&format!(".{d}"))
        };
        (self.allowed_domains.is_empty() || self.allowed_domains.iter().any(matches))
            && !self.blocked_domains.iter().any(matches)
    }

    /// What the provider's model is told about the filters (appended to the tool's
    /// description).
    fn instructions(&self) -> String {
        let mut s = String::new();
        if !self.allowed_domains.is_empty() {
            s.push_str(" Only results from these domains are returned: ");
            s.push_str(&self.allowed_domains.join(", "));
            s.push('.');
        }
        if !self.blocked_domains.is_empty() {
            s.push_str(" Results from these domains are never returned: ");
            s.push_str(&self.blocked_domains.join(", "));
            s.push('.');
        }
        s
    }
}

/// The host of an `http(s)` URL, lower case; `None` for anything else.
fn host_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = host.split(':').next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The hosted search tool a client's request carries, if any: Anthropic
/// `{"type": "web_search_20250305", "max_uses", "allowed_domains", "blocked_domains"}`.
/// Cheap for requests without one (a byte search).
pub fn hosted_search(client: Wire, body: &[u8]) -> Option<HostedSearch> {
    match client {
        Wire::AnthropicMessages => {
            memchr::memmem::find(body, b"\"web_search_")?;
            #[derive(Deserialize)]
            struct Tools {
                #[serde(default)]
                tools: Vec<Value>,
            }
            let tools: Tools = serde_json::from_slice(body).ok()?;
            let tool = tools.tools.into_iter().find(|t| {
                t.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.starts_with("web_search_"))
            })?;
            let domains = |field: &str| -> Vec<String> {
                tool.get(field)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            Some(HostedSearch {
                client,
                max_uses: tool
                    .get("max_uses")
                    .and_then(Value::as_u64)
                    .map_or(DEFAULT_MAX_USES, |n| n.clamp(1, 50) as u32),
                allowed_domains: domains("allowed_domains"),
                blocked_domains: domains("blocked_domains"),
            })
        }
        Wire::Gemini => {
            if memchr::memmem::find(body, b"oogleSearch").is_none()
                && memchr::memmem::find(body, b"oogle_search").is_none()
            {
                return None;
            }
            #[derive(Deserialize)]
            struct Tools {
                #[serde(default)]
                tools: Vec<Value>,
            }
            let tools: Tools = serde_json::from_slice(body).ok()?;
            let searches = tools.tools.iter().any(|t| {
                [
                    "googleSearch",
                    "google_search",
                    "googleSearchRetrieval",
                    "google_search_retrieval",
                ]
                .iter()
                .any(|k| t.get(k).is_some())
            });
            searches.then_some(HostedSearch {
                client,
                max_uses: DEFAULT_MAX_USES,
                allowed_domains: Vec::new(),
                blocked_domains: Vec::new(),
            })
        }
        Wire::Responses => {
            memchr::memmem::find(body, b"\"web_search")?;
            #[derive(Deserialize)]
            struct Tools {
                #[serde(default)]
                tools: Vec<Value>,
            }
            let tools: Tools = serde_json::from_slice(body).ok()?;
            // `external_web_access: false` (Codex's default, "cached") asks for no live search.
            let tool = tools.tools.into_iter().find(|t| {
                t.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k == "web_search" || k.starts_with("web_search_"))
                    && t.get("external_web_access") != Some(&Value::Bool(false))
            })?;
            let allowed = tool
                .pointer("/filters/allowed_domains")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Some(HostedSearch {
                client,
                max_uses: DEFAULT_MAX_USES,
                allowed_domains: allowed,
                blocked_domains: Vec::new(),
            })
        }
        Wire::OpenAiChat => None,
    }
}

/// Whether a hosted tool a decoder dropped (as the access log names it) is a search tool.
pub fn is_search_tool(name: &str) -> bool {
    name.starts_with("web_search")
        || matches!(
            name,
            "googleSearch" | "google_search" | "googleSearchRetrieval" | "google_search_retrieval"
        )
}

/// The function tool the provider gets in place of the hosted one.
pub fn tool_spec(hosted: &HostedSearch) -> ToolSpec<'static> {
    let description = format!("{TOOL_DESCRIPTION}{}", hosted.instructions());
    ToolSpec {
        name: Cow::Borrowed(TOOL_NAME),
        description: Some(Text::from_plain(&description)),
        parameters: serde_json::value::RawValue::from_string(TOOL_PARAMETERS.to_owned())
            .ok()
            .map(Cow::Owned),
        strict: None,
    }
}

/// The query in a `web_search` call's arguments (`{"query": …}`; a bare string is taken as
/// the query). `None` when there is none.
pub fn query_of(arguments: &str) -> Option<String> {
    let value: Value = match serde_json::from_str(arguments.trim()) {
        Ok(v) => v,
        Err(_) => serde_json::from_str(tool_input(arguments).0.get()).ok()?,
    };
    let query = match &value {
        Value::Object(o) => o
            .get("query")
            .or_else(|| o.get("q"))
            .and_then(Value::as_str)?,
        Value::String(s) => s.as_str(),
        _ => return None,
    };
    let query = query.trim();
    (!query.is_empty()).then(|| query.to_owned())
}

/// A complete answer of the provider, whatever its protocol, in the pivot.
pub fn decode_answer<'b>(
    source: Wire,
    body: &'b [u8],
    ctx: &ExchangeContext,
) -> Result<Response<'b>, ResponseError> {
    use crate::protocol::{anthropic, gemini, openai_chat, responses};
    match source {
        Wire::AnthropicMessages => anthropic::decode_response::decode_response(body),
        Wire::OpenAiChat => openai_chat::decode_response::decode_response(body, &ctx.tool_names),
        Wire::Responses => responses::decode_response::decode_response(body),
        Wire::Gemini => gemini::decode_response::decode_response(body),
    }
}

/// A provider's streamed answer read as it arrives: its text is handed on at once (a live
/// client sees it as it is written), the whole answer comes out at the end as a pivot
/// response, as [`decode_answer`] reads a JSON one.
pub struct AnswerReader {
    decoder: SourceDecoder,
    parts: Vec<Part<'static>>,
    open: Option<OpenBlock>,
    usage: Option<Usage>,
    stop: Option<StopReason>,
    error: Option<String>,
}

enum SourceDecoder {
    Anthropic(crate::protocol::anthropic::decode_stream::StreamDecoder),
    OpenAiChat(crate::protocol::openai_chat::decode_stream::StreamDecoder),
    Responses(crate::protocol::responses::decode_stream::StreamDecoder),
    Gemini(crate::protocol::gemini::decode_stream::StreamDecoder),
}

enum OpenBlock {
    Text(String),
    Reasoning(crate::protocol::pivot::Reasoning<'static>),
    Call(String, String, String),
}

/// What a read of a streamed answer gives a live client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forward {
    TextStart,
    TextDelta(String),
    TextStop,
}

impl AnswerReader {
    pub fn new(source: Wire, ctx: &ExchangeContext) -> AnswerReader {
        use crate::protocol::{anthropic, gemini, openai_chat, responses};
        let decoder = match source {
            Wire::AnthropicMessages => {
                SourceDecoder::Anthropic(anthropic::decode_stream::StreamDecoder::new())
            }
            Wire::OpenAiChat => SourceDecoder::OpenAiChat(
                openai_chat::decode_stream::StreamDecoder::new(ctx.tool_names.clone()),
            ),
            Wire::Responses => {
                SourceDecoder::Responses(responses::decode_stream::StreamDecoder::new())
            }
            Wire::Gemini => SourceDecoder::Gemini(gemini::decode_stream::StreamDecoder::new()),
        };
        AnswerReader {
            decoder,
            parts: Vec::new(),
            open: None,
            usage: None,
            stop: None,
            error: None,
        }
    }

    /// One read of the provider's stream.
    pub fn push(&mut self, input: &[u8], forward: &mut impl FnMut(Forward)) {
        let (parts, open, usage, stop, error) = (
            &mut self.parts,
            &mut self.open,
            &mut self.usage,
            &mut self.stop,
            &mut self.error,
        );
        let on_event = &mut |e: crate::protocol::pivot::Event<'_>| {
            event(e, parts, open, usage, stop, error, forward)
        };
        match &mut self.decoder {
            SourceDecoder::Anthropic(d) => d.push(input, on_event),
            SourceDecoder::OpenAiChat(d) => d.push(input, on_event),
            SourceDecoder::Responses(d) => d.push(input, on_event),
            SourceDecoder::Gemini(d) => d.push(input, on_event),
        }
    }

    /// The stream ended: the whole answer, or the error it ended with.
    pub fn finish(
        mut self,
        forward: &mut impl FnMut(Forward),
    ) -> Result<Response<'static>, ResponseError> {
        {
            let (parts, open, usage, stop, error) = (
                &mut self.parts,
                &mut self.open,
                &mut self.usage,
                &mut self.stop,
                &mut self.error,
            );
            let on_event = &mut |e: crate::protocol::pivot::Event<'_>| {
                event(e, parts, open, usage, stop, error, forward)
            };
            match &mut self.decoder {
                SourceDecoder::Anthropic(d) => d.finish(on_event),
                SourceDecoder::OpenAiChat(d) => d.finish(on_event),
                SourceDecoder::Responses(d) => d.finish(on_event),
                SourceDecoder::Gemini(d) => d.finish(on_event),
            }
        }
        close(&mut self.parts, &mut self.open, forward);
        if let Some(message) = self.error {
            return Err(ResponseError::Malformed(message));
        }
        Ok(Response {
            id: Cow::Borrowed(""),
            content: self.parts,
            stop: self.stop,
            stop_sequence: None,
            usage: self.usage,
        })
    }
}

fn close(
    parts: &mut Vec<Part<'static>>,
    open: &mut Option<OpenBlock>,
    forward: &mut impl FnMut(Forward),
) {
    match open.take() {
        Some(OpenBlock::Text(text)) => {
            forward(Forward::TextStop);
            parts.push(Part::Text(Text::from_plain(&text)));
        }
        Some(OpenBlock::Reasoning(r)) => parts.push(Part::Reasoning(r)),
        Some(OpenBlock::Call(id, name, arguments)) => parts.push(Part::ToolCall(ToolCall {
            id: Cow::Owned(id),
            name: Cow::Owned(name),
            arguments: Cow::Owned(arguments),
        })),
        None => {}
    }
}

fn event(
    e: crate::protocol::pivot::Event<'_>,
    parts: &mut Vec<Part<'static>>,
    open: &mut Option<OpenBlock>,
    usage: &mut Option<Usage>,
    stop: &mut Option<StopReason>,
    error: &mut Option<String>,
    forward: &mut impl FnMut(Forward),
) {
    use crate::protocol::pivot::{BlockKind, Event};
    match e {
        Event::BlockStart { kind, .. } => {
            close(parts, open, forward);
            *open = Some(match kind {
                BlockKind::Text => {
                    forward(Forward::TextStart);
                    OpenBlock::Text(String::new())
                }
                BlockKind::Reasoning => OpenBlock::Reasoning(Default::default()),
                BlockKind::ToolCall { id, name } => {
                    OpenBlock::Call(id.to_owned(), name.to_owned(), String::new())
                }
            });
        }
        Event::TextDelta { text, .. } => {
            if let Some(OpenBlock::Text(t)) = open {
                t.push_str(text);
                forward(Forward::TextDelta(text.to_owned()));
            }
        }
        Event::ReasoningDelta { text, .. } => {
            if let Some(OpenBlock::Reasoning(r)) = open {
                let joined = format!("{}{text}", r.text.decoded());
                r.text = Text::from_plain(&joined);
            }
        }
        Event::ReasoningSignature {
            origin, signature, ..
        } => {
            if let Some(OpenBlock::Reasoning(r)) = open {
                r.signature = Some((origin, Cow::Owned(signature.to_owned())));
            }
        }
        Event::ArgumentsDelta { json, .. } => {
            if let Some(OpenBlock::Call(_, _, args)) = open {
                args.push_str(json);
            }
        }
        Event::BlockStop { .. } => close(parts, open, forward),
        Event::Usage(u) => {
            let before = usage.unwrap_or_default();
            *usage = Some(Usage {
                input: if u.input > 0 { u.input } else { before.input },
                output: if u.output > 0 {
                    u.output
                } else {
                    before.output
                },
                cache_read: u.cache_read.or(before.cache_read),
                cache_write: u.cache_write.or(before.cache_write),
                reasoning: u.reasoning.or(before.reasoning),
            });
        }
        Event::Finish { stop: s, .. } => *stop = Some(s),
        Event::Error { message, .. } => *error = Some(message.to_owned()),
        Event::Start { .. } | Event::KeepAlive | Event::End => {}
    }
}

/// One result of a search, as a backend found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hit {
    pub url: String,
    pub title: String,
    /// The page's text the backend returned (what the model reads).
    pub snippet: String,
    /// When the page was published or last changed, as the backend says it.
    pub page_age: Option<String>,
}

/// How one search ended; errors are Anthropic's `error_code`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Hits(Vec<Hit>),
    /// `unavailable`, `too_many_requests`, `invalid_input`, `max_uses_exceeded`,
    /// `query_too_long`.
    Error(&'static str),
}

/// One search the gateway ran for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The client's id for it (`srvtoolu_…`).
    pub id: String,
    pub query: String,
    pub outcome: Outcome,
}

/// The tool result the provider's model reads: the snippets as text (the only way page
/// content reaches it).
pub fn result_text(search: &Search) -> String {
    match &search.outcome {
        Outcome::Hits(hits) if hits.is_empty() => format!(
            "No web results for the query \"{}\". Answer from what you know and say so.",
            search.query
        ),
        Outcome::Hits(hits) => {
            let mut s = format!("Web search results for the query \"{}\":\n", search.query);
            for (i, hit) in hits.iter().enumerate() {
                s.push_str(&format!("\n[{}] {}\nURL: {}\n", i + 1, hit.title, hit.url));
                if let Some(age) = &hit.page_age {
                    s.push_str(&format!("Published: {age}\n"));
                }
                if !hit.snippet.is_empty() {
                    s.push_str(&hit.snippet);
                    s.push('\n');
                }
            }
            s.push_str("\nCite the sources you use with markdown links to their URLs.");
            s
        }
        Outcome::Error("max_uses_exceeded") => {
            "Web search error: max_uses_exceeded. No more searches are allowed; answer with \
             the results you have."
                .to_owned()
        }
        Outcome::Error(code) => format!(
            "Web search error: {code}. The search could not be run; answer from what you know \
             and say that the search failed."
        ),
    }
}

/// What the model said and did, in order: text before a search, the searches, then its
/// final answer.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    pub steps: Vec<Step>,
    /// The final answer's parts (text and client tool calls).
    pub answer: Vec<AnswerPart>,
    pub stop: Option<StopReason>,
    /// Summed over every provider call.
    pub usage: Usage,
    pub usage_reported: bool,
    /// The final answer's text already reached a live client as it streamed.
    pub answer_streamed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Text(String),
    Search(Search),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerPart {
    Text(String),
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
}

impl Transcript {
    pub fn searches(&self) -> impl Iterator<Item = &Search> {
        self.steps.iter().filter_map(|s| match s {
            Step::Search(search) => Some(search),
            Step::Text(_) => None,
        })
    }

    /// Searches that reached the backend (Anthropic's `web_search_requests`): not those past
    /// `max_uses` or refused as `too_many_requests` (the key's searches per day, or the
    /// backend's own limit).
    pub fn search_requests(&self) -> u64 {
        self.searches()
            .filter(|s| {
                !matches!(
                    s.outcome,
                    Outcome::Error("max_uses_exceeded" | "too_many_requests")
                )
            })
            .count() as u64
    }

    fn hits(&self) -> impl Iterator<Item = &Hit> {
        self.searches().flat_map(|s| match &s.outcome {
            Outcome::Hits(h) => h.as_slice(),
            Outcome::Error(_) => &[],
        })
    }

    /// Results whose URL the answer's text names (its citations), at most one per URL.
    fn cited(&self, text: &str) -> Vec<&Hit> {
        cited_in(self.hits(), text)
    }

    fn anthropic_usage(&self) -> AUsage {
        self.usage.to_anthropic()
    }

    fn anthropic_stop(&self) -> AnthropicStop {
        let tool_use = self
            .answer
            .iter()
            .any(|p| matches!(p, AnswerPart::ToolCall { .. }));
        crate::protocol::anthropic::encode_response::stop_reason(self.stop, tool_use)
    }
}

/// Of `hits`, those whose URL `text` names, at most one per URL.
fn cited_in<'h>(hits: impl Iterator<Item = &'h Hit>, text: &str) -> Vec<&'h Hit> {
    let mut cited: Vec<&Hit> = Vec::new();
    for hit in hits {
        if !hit.url.is_empty()
            && text.contains(hit.url.as_str())
            && !cited.iter().any(|c| c.url == hit.url)
        {
            cited.push(hit);
        }
    }
    cited
}

/// The results a stream has shown so far (what text streamed after them may cite).
fn found(hits: &mut Vec<Hit>, search: &Search) {
    if let Outcome::Hits(h) = &search.outcome {
        hits.extend(h.iter().cloned());
    }
}

/// The model's final answer as a pivot response, for the client protocol's own encoder.
pub fn final_response(t: &Transcript, id: &str) -> Response<'static> {
    let content = t
        .answer
        .iter()
        .map(|p| match p {
            AnswerPart::Text(text) => Part::Text(Text::from_plain(text)),
            AnswerPart::ToolCall {
                id,
                name,
                arguments,
            } => Part::ToolCall(ToolCall {
                id: Cow::Owned(id.clone()),
                name: Cow::Owned(name.clone()),
                arguments: Cow::Owned(arguments.clone()),
            }),
        })
        .collect();
    Response {
        id: Cow::Owned(id.to_owned()),
        content,
        stop: t.stop,
        stop_sequence: None,
        usage: t.usage_reported.then_some(t.usage),
    }
}

/// Every distinct result of the transcript's searches, in order.
fn distinct_hits(t: &Transcript) -> Vec<&Hit> {
    let mut hits: Vec<&Hit> = Vec::new();
    for hit in t.hits() {
        if !hits.iter().any(|h| h.url == hit.url) {
            hits.push(hit);
        }
    }
    hits
}

// ---------------------------------------------------------------------------------------------
// Gemini

/// Gemini's `groundingMetadata` for the answer's text: the queries, every result as a
/// `groundingChunks[].web`, and `groundingSupports` tying each line of the text that names a
/// result (its URL or title) to it — or, when none does, the whole text to every result.
/// Offsets are UTF-8 bytes into the joined text (what Gemini CLI reads).
pub fn grounding_metadata(t: &Transcript) -> Value {
    let hits = distinct_hits(t);
    let text: String = t
        .answer
        .iter()
        .filter_map(|p| match p {
            AnswerPart::Text(text) => Some(text.as_str()),
            AnswerPart::ToolCall { .. } => None,
        })
        .collect();
    let mut supports = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let end = start + line.trim_end().len();
        let indices: Vec<usize> = hits
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                line.contains(h.url.as_str()) || (!h.title.is_empty() && line.contains(&h.title))
            })
            .map(|(i, _)| i)
            .collect();
        if !indices.is_empty() && end > start {
            supports.push(json!({"segment": {"startIndex": start, "endIndex": end,
                "text": &text[start..end]}, "groundingChunkIndices": indices}));
        }
        start += line.len();
    }
    let trimmed = text.trim_end().len();
    if supports.is_empty() && !hits.is_empty() && trimmed > 0 {
        supports.push(json!({"segment": {"startIndex": 0, "endIndex": trimmed,
            "text": &text[..trimmed]}, "groundingChunkIndices": (0..hits.len()).collect::<Vec<_>>()}));
    }
    json!({
        "webSearchQueries": t.searches().map(|s| s.query.as_str()).collect::<Vec<_>>(),
        "groundingChunks": hits.iter().map(|h| json!({"web": {"uri": h.url, "title": h.title}}))
            .collect::<Vec<_>>(),
        "groundingSupports": supports,
    })
}

/// A Gemini client's answer (`GenerateContentResponse`) with `groundingMetadata`: the JSON
/// object, or one stream chunk framed as the client asked (SSE or a JSON array).
pub fn gemini_answer(t: &Transcript, ctx: &ExchangeContext, as_stream: bool) -> Vec<u8> {
    let response = final_response(t, &ctx.message_id);
    let (body, _) = crate::protocol::gemini::encode_response::encode_response(&response, ctx);
    let mut answer: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
    if let Some(candidate) = answer
        .get_mut("candidates")
        .and_then(|c| c.get_mut(0))
        .and_then(Value::as_object_mut)
    {
        candidate.insert("groundingMetadata".into(), grounding_metadata(t));
    }
    let json = answer.to_string();
    match (as_stream, ctx.stream_as_json_array) {
        (false, _) => json.into_bytes(),
        (true, true) => format!("[{json}]").into_bytes(),
        (true, false) => format!("data: {json}\r\n\r\n").into_bytes(),
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAI Responses

/// A search as Codex shows it: a `web_search_call` output item.
fn web_search_call(search: &Search, status: &str) -> Value {
    let id = format!("ws_{}", search.id.trim_start_matches("srvtoolu_"));
    if status != "completed" {
        return json!({"type": "web_search_call", "id": id, "status": status});
    }
    let sources: Vec<Value> = match &search.outcome {
        Outcome::Hits(hits) => hits
            .iter()
            .map(|h| json!({"type": "url", "url": h.url}))
            .collect(),
        Outcome::Error(_) => Vec::new(),
    };
    json!({"type": "web_search_call", "id": id, "status": "completed",
           "action": {"type": "search", "query": search.query, "sources": sources}})
}

/// `url_citation` annotations for every `cited` result's URL in the text (character
/// offsets).
fn url_citations(cited: Vec<&Hit>, text: &str) -> Vec<Value> {
    cited
        .into_iter()
        .filter_map(|hit| {
            let at = text.find(hit.url.as_str())?;
            let start = text[..at].chars().count();
            Some(json!({"type": "url_citation", "start_index": start,
                "end_index": start + hit.url.chars().count(), "url": hit.url, "title": hit.title}))
        })
        .collect()
}

/// The final answer's output items (the client encoder's), with citations added.
fn responses_final(t: &Transcript, ctx: &ExchangeContext) -> Value {
    let response = final_response(t, &ctx.message_id);
    let (body, _) = crate::protocol::responses::encode_response::encode_response(&response, ctx);
    let mut answer: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
    if let Some(items) = answer.get_mut("output").and_then(Value::as_array_mut) {
        for item in items.iter_mut().filter(|i| i["type"] == "message") {
            let Some(parts) = item.get_mut("content").and_then(Value::as_array_mut) else {
                continue;
            };
            for part in parts.iter_mut().filter(|p| p["type"] == "output_text") {
                let text = part["text"].as_str().unwrap_or("");
                let citations = url_citations(t.cited(text), text);
                if !citations.is_empty() {
                    part["annotations"] = Value::Array(citations);
                }
            }
        }
    }
    answer
}

/// A Responses client's whole answer: a `web_search_call` item per search, then the answer.
pub fn responses_answer(t: &Transcript, ctx: &ExchangeContext) -> Vec<u8> {
    let mut answer = responses_final(t, ctx);
    let mut output: Vec<Value> = t
        .searches()
        .map(|s| web_search_call(s, "completed"))
        .collect();
    if let Some(items) = answer.get_mut("output").and_then(Value::as_array_mut) {
        output.append(items);
    }
    answer["output"] = Value::Array(output);
    answer.to_string().into_bytes()
}

/// A Responses event stream written as the loop goes: `response.created` once, each search
/// as a `web_search_call` item (added when it starts, done when it has run), the answer's
/// items, `response.completed`.
#[derive(Debug, Default)]
pub struct ResponsesStream {
    sequence: u64,
    items: Vec<Value>,
    started: bool,
    done: bool,
    /// The message being streamed: its id and text so far.
    open_text: Option<(String, String)>,
    /// The results shown so far, which streamed text may cite.
    hits: Vec<Hit>,
}

impl ResponsesStream {
    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        frame(out, kind, &data);
    }

    /// The response object as it stands (no usage until it is complete).
    fn snapshot(ctx: &ExchangeContext, status: &str, output: &[Value]) -> Value {
        let empty = Response::default();
        let (body, _) = crate::protocol::responses::encode_response::encode_response(&empty, ctx);
        let mut response: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
        response["status"] = json!(status);
        response["output"] = Value::Array(output.to_vec());
        response["usage"] = Value::Null;
        response
    }

    pub fn start(&mut self, out: &mut Vec<u8>, ctx: &ExchangeContext) {
        if self.started {
            return;
        }
        self.started = true;
        let response = Self::snapshot(ctx, "in_progress", &[]);
        self.emit(out, "response.created", json!({ "response": response }));
        self.emit(out, "response.in_progress", json!({ "response": response }));
    }

    pub fn search_call(&mut self, out: &mut Vec<u8>, search: &Search) {
        let item = web_search_call(search, "in_progress");
        let (index, id) = (self.items.len(), item["id"].clone());
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        );
        for kind in [
            "response.web_search_call.in_progress",
            "response.web_search_call.searching",
        ] {
            self.emit(out, kind, json!({"output_index": index, "item_id": id}));
        }
    }

    pub fn search_result(&mut self, out: &mut Vec<u8>, search: &Search) {
        let item = web_search_call(search, "completed");
        let index = self.items.len();
        self.emit(
            out,
            "response.web_search_call.completed",
            json!({"output_index": index, "item_id": item["id"]}),
        );
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.items.push(item);
        found(&mut self.hits, search);
    }

    /// A message the provider is streaming: its item added, its text as it comes, done.
    pub fn text_start(&mut self, out: &mut Vec<u8>, ctx: &ExchangeContext) {
        let id = format!(
            "msg_{}_{}",
            ctx.message_id.trim_start_matches("resp_"),
            self.items.len()
        );
        let index = self.items.len();
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": {"type": "message", "id": id,
                "status": "in_progress", "role": "assistant", "content": []}}),
        );
        self.emit(
            out,
            "response.content_part.added",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []}}),
        );
        self.open_text = Some((id, String::new()));
    }

    pub fn text_delta(&mut self, out: &mut Vec<u8>, text: &str) {
        let index = self.items.len();
        let Some((id, so_far)) = self.open_text.as_mut() else {
            return;
        };
        so_far.push_str(text);
        let data = json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text});
        self.emit(out, "response.output_text.delta", data);
    }

    pub fn text_stop(&mut self, out: &mut Vec<u8>) {
        let Some((id, text)) = self.open_text.take() else {
            return;
        };
        let index = self.items.len();
        // Its citations, now that the whole text is known.
        let annotations = url_citations(cited_in(self.hits.iter(), &text), &text);
        let at = |extra: Value| {
            let mut v = json!({"item_id": id, "output_index": index, "content_index": 0});
            if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
                v.extend(extra.clone());
            }
            v
        };
        for (i, annotation) in annotations.iter().enumerate() {
            self.emit(
                out,
                "response.output_text.annotation.added",
                at(json!({"annotation_index": i, "annotation": annotation})),
            );
        }
        let part = json!({"type": "output_text", "text": text, "annotations": annotations});
        self.emit(
            out,
            "response.output_text.done",
            at(json!({ "text": text })),
        );
        self.emit(
            out,
            "response.content_part.done",
            at(json!({ "part": part })),
        );
        let item = json!({"type": "message", "id": id, "status": "completed",
            "role": "assistant", "content": [part]});
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.items.push(item);
    }

    /// The answer's items (text as one delta each) and `response.completed`.
    pub fn finish(&mut self, out: &mut Vec<u8>, t: &Transcript, ctx: &ExchangeContext) {
        if self.done {
            return;
        }
        self.start(out, ctx);
        let mut answer = responses_final(t, ctx);
        let items = answer["output"].as_array().cloned().unwrap_or_default();
        // Streamed text is among the items already.
        let items = items
            .into_iter()
            .filter(|i| !(t.answer_streamed && i["type"] == "message"));
        for item in items {
            let index = self.items.len();
            let mut added = item.clone();
            if item["type"] == "message" {
                added["content"] = json!([]);
                added["status"] = json!("in_progress");
            }
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": added}),
            );
            if item["type"] == "message" {
                let parts = item["content"].as_array().cloned().unwrap_or_default();
                for (j, part) in parts.iter().enumerate() {
                    let id = &item["id"];
                    let text = part["text"].as_str().unwrap_or("");
                    let at = json!({"item_id": id, "output_index": index, "content_index": j});
                    let with = |mut v: Value, extra: Value| {
                        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
                            v.extend(extra.clone());
                        }
                        v
                    };
                    let empty = json!({"type": "output_text", "text": "", "annotations": []});
                    self.emit(
                        out,
                        "response.content_part.added",
                        with(at.clone(), json!({ "part": empty })),
                    );
                    self.emit(
                        out,
                        "response.output_text.delta",
                        with(at.clone(), json!({ "delta": text })),
                    );
                    self.emit(
                        out,
                        "response.output_text.done",
                        with(at.clone(), json!({ "text": text })),
                    );
                    self.emit(
                        out,
                        "response.content_part.done",
                        with(at, json!({ "part": part })),
                    );
                }
            }
            self.emit(
                out,
                "response.output_item.done",
                json!({"output_index": index, "item": item}),
            );
            self.items.push(item);
        }
        answer["output"] = Value::Array(std::mem::take(&mut self.items));
        self.emit(out, "response.completed", json!({ "response": answer }));
        self.done = true;
    }

    /// `response.failed` with the error.
    pub fn fail(&mut self, out: &mut Vec<u8>, ctx: &ExchangeContext, message: &str) {
        if self.done {
            return;
        }
        let mut response = Self::snapshot(ctx, "failed", &self.items);
        response["error"] = json!({"code": "server_error", "message": message});
        self.emit(out, "response.failed", json!({ "response": response }));
        self.done = true;
    }
}

// ---------------------------------------------------------------------------------------------
// Anthropic

/// A search as the `server_tool_use` block that asked for it.
fn server_tool_use(search: &Search) -> Value {
    json!({"type": "server_tool_use", "id": search.id, "name": TOOL_NAME,
           "input": {"query": search.query}})
}

/// A search's `web_search_tool_result` block (the snippet goes in `encrypted_content`).
fn web_search_tool_result(search: &Search) -> Value {
    let content = match &search.outcome {
        Outcome::Hits(hits) => Value::Array(
            hits.iter()
                .map(|h| {
                    json!({"type": "web_search_result", "url": h.url, "title": h.title,
                           "encrypted_content": encode_opaque(&h.snippet),
                           "page_age": h.page_age})
                })
                .collect(),
        ),
        Outcome::Error(code) => json!({"type": "web_search_tool_result_error", "error_code": code}),
    };
    json!({"type": "web_search_tool_result", "tool_use_id": search.id, "content": content})
}

fn encode_opaque(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

fn citation(hit: &Hit, index: usize) -> Value {
    let cited: String = hit.snippet.chars().take(150).collect();
    json!({"type": "web_search_result_location", "url": hit.url, "title": hit.title,
           "encrypted_index": encode_opaque(&index.to_string()), "cited_text": cited})
}

/// A text block's `citations_delta` events.
fn citations_deltas(out: &mut Vec<u8>, index: u32, cited: Vec<&Hit>) {
    for (i, hit) in cited.into_iter().enumerate() {
        frame(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "citations_delta", "citation": citation(hit, i)}}),
        );
    }
}

fn tool_use_id(id: &str, message_id: &str, position: usize) -> String {
    sanitize_tool_id(Some(id), message_id, position)
}

/// The whole Anthropic `message` for a non-streaming client.
pub fn anthropic_message(t: &Transcript, message_id: &str, model: &str) -> Vec<u8> {
    let mut content = Vec::new();
    for step in &t.steps {
        match step {
            Step::Text(text) => content.push(json!({"type": "text", "text": text})),
            Step::Search(search) => {
                content.push(server_tool_use(search));
                content.push(web_search_tool_result(search));
            }
        }
    }
    for (position, part) in t.answer.iter().enumerate() {
        match part {
            AnswerPart::Text(text) => {
                let cited = t.cited(text);
                let mut block = json!({"type": "text", "text": text});
                if !cited.is_empty() {
                    block["citations"] = Value::Array(
                        cited
                            .iter()
                            .enumerate()
                            .map(|(i, h)| citation(h, i))
                            .collect(),
                    );
                }
                content.push(block);
            }
            AnswerPart::ToolCall {
                id,
                name,
                arguments,
            } => {
                let (input, _) = tool_input(arguments);
                let input: Value = serde_json::from_str(input.get()).unwrap_or(json!({}));
                content.push(json!({"type": "tool_use",
                    "id": tool_use_id(id, message_id, position), "name": name, "input": input}));
            }
        }
    }
    let u = t.anthropic_usage();
    json!({
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": t.anthropic_stop().as_str(), "stop_sequence": null,
        "usage": {
            "input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "server_tool_use": {"web_search_requests": t.search_requests()}
        }
    })
    .to_string()
    .into_bytes()
}

/// An Anthropic SSE answer written as the search loop goes: `message_start` once, text and
/// searches as they happen, the final answer and `message_delta` at the end.
#[derive(Debug, Default)]
pub struct AnthropicStream {
    next: u32,
    started: bool,
    done: bool,
    /// The text block being streamed: its index and text so far.
    open_text: Option<(u32, String)>,
    /// The results shown so far, which streamed text may cite.
    hits: Vec<Hit>,
}

impl AnthropicStream {
    pub fn is_started(&self) -> bool {
        self.started
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// `message_start` (the input estimate as its usage).
    pub fn start(&mut self, out: &mut Vec<u8>, message_id: &str, model: &str, input: u64) {
        if self.started {
            return;
        }
        self.started = true;
        let mut w = EventWriter { out };
        w.message_start(
            message_id,
            model,
            &AUsage {
                input_tokens: input,
                output_tokens: 1,
                ..AUsage::default()
            },
        );
        w.ping();
    }

    pub fn text(&mut self, out: &mut Vec<u8>, text: &str) {
        let index = self.take_index();
        let mut w = EventWriter { out };
        w.text_start(index);
        w.text_delta(index, text);
        w.block_stop(index);
    }

    /// The `server_tool_use` block of a search about to run (the client shows its query).
    pub fn search_call(&mut self, out: &mut Vec<u8>, id: &str, query: &str) {
        let index = self.take_index();
        let block = json!({"type": "server_tool_use", "id": id, "name": TOOL_NAME, "input": {}});
        frame(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        let mut w = EventWriter { out };
        w.input_json_delta(index, &json!({ "query": query }).to_string());
        w.block_stop(index);
    }

    /// A text block the provider is streaming: opened, its pieces, closed.
    pub fn text_start(&mut self, out: &mut Vec<u8>) {
        let index = self.take_index();
        EventWriter { out }.text_start(index);
        self.open_text = Some((index, String::new()));
    }

    pub fn text_delta(&mut self, out: &mut Vec<u8>, text: &str) {
        if let Some((index, so_far)) = self.open_text.as_mut() {
            so_far.push_str(text);
            EventWriter { out }.text_delta(*index, text);
        }
    }

    /// The block's citations (known once its whole text is), then its end.
    pub fn text_stop(&mut self, out: &mut Vec<u8>) {
        if let Some((index, text)) = self.open_text.take() {
            citations_deltas(out, index, cited_in(self.hits.iter(), &text));
            EventWriter { out }.block_stop(index);
        }
    }

    /// The `web_search_tool_result` block of a search that ran (whole, in its start event).
    pub fn search_result(&mut self, out: &mut Vec<u8>, search: &Search) {
        let index = self.take_index();
        frame(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
                    "content_block": web_search_tool_result(search)}),
        );
        EventWriter { out }.block_stop(index);
        found(&mut self.hits, search);
    }

    /// The final answer, `message_delta` (with `server_tool_use`) and `message_stop`.
    pub fn finish(&mut self, out: &mut Vec<u8>, t: &Transcript, message_id: &str) {
        if self.done {
            return;
        }
        for (position, part) in t.answer.iter().enumerate() {
            if t.answer_streamed && matches!(part, AnswerPart::Text(_)) {
                continue;
            }
            let index = self.take_index();
            match part {
                AnswerPart::Text(text) => {
                    EventWriter { out: &mut *out }.text_start(index);
                    citations_deltas(out, index, t.cited(text));
                    let mut w = EventWriter { out: &mut *out };
                    w.text_delta(index, text);
                    w.block_stop(index);
                }
                AnswerPart::ToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    let (input, _) = tool_input(arguments);
                    let mut w = EventWriter { out: &mut *out };
                    w.tool_use_start(index, &tool_use_id(id, message_id, position), name);
                    w.input_json_delta(index, input.get());
                    w.block_stop(index);
                }
            }
        }
        let u = t.anthropic_usage();
        frame(
            out,
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": t.anthropic_stop().as_str(), "stop_sequence": null},
                "usage": {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                    "cache_creation_input_tokens": u.cache_creation_input_tokens,
                    "cache_read_input_tokens": u.cache_read_input_tokens,
                    "server_tool_use": {"web_search_requests": t.search_requests()}}}),
        );
        EventWriter { out }.message_stop();
        self.done = true;
    }

    /// The stream ends with an `error` event.
    pub fn fail(
        &mut self,
        out: &mut Vec<u8>,
        kind: crate::protocol::anthropic::ErrorKind,
        message: &str,
    ) {
        if self.done {
            return;
        }
        EventWriter { out }.error(kind, message);
        self.done = true;
    }

    fn take_index(&mut self) -> u32 {
        let index = self.next;
        self.next += 1;
        index
    }
}

/// The event stream of a streaming client: Anthropic and Responses clients see searches as
/// they run, a Gemini one (`?alt=sse`) the answer's text as it comes and the grounding last.
#[derive(Debug)]
pub enum SearchStream {
    Anthropic(AnthropicStream),
    Responses(ResponsesStream),
    Gemini(GroundedStream),
}

impl SearchStream {
    /// `None` for clients that get the whole answer at the end (a Gemini client that asked
    /// for a JSON array: `json_array`).
    pub fn for_client(client: Wire, json_array: bool) -> Option<SearchStream> {
        match client {
            Wire::AnthropicMessages => Some(SearchStream::Anthropic(AnthropicStream::default())),
            Wire::Responses => Some(SearchStream::Responses(ResponsesStream::default())),
            Wire::Gemini if !json_array => Some(SearchStream::Gemini(GroundedStream::default())),
            Wire::Gemini | Wire::OpenAiChat => None,
        }
    }

    pub fn is_started(&self) -> bool {
        match self {
            SearchStream::Anthropic(s) => s.is_started(),
            SearchStream::Responses(s) => s.started,
            SearchStream::Gemini(s) => s.is_started(),
        }
    }

    pub fn start(&mut self, out: &mut Vec<u8>, ctx: &ExchangeContext, input_estimate: u64) {
        match self {
            SearchStream::Anthropic(s) => {
                s.start(out, &ctx.message_id, &ctx.client_model, input_estimate)
            }
            SearchStream::Responses(s) => s.start(out, ctx),
            SearchStream::Gemini(s) => s.start(),
        }
    }

    /// Something for the client to read while the provider is busy (a Gemini stream has no
    /// such thing: its header is out, nothing more).
    pub fn keep_alive(&mut self, out: &mut Vec<u8>) {
        match self {
            SearchStream::Anthropic(_) => EventWriter { out }.ping(),
            SearchStream::Responses(_) => out.extend_from_slice(b": keep-alive\n\n"),
            SearchStream::Gemini(_) => {}
        }
    }

    /// The provider's text as it streams (see [`AnswerReader`]).
    pub fn forward(&mut self, out: &mut Vec<u8>, ctx: &ExchangeContext, piece: Forward) {
        match (self, piece) {
            (SearchStream::Anthropic(s), Forward::TextStart) => s.text_start(out),
            (SearchStream::Anthropic(s), Forward::TextDelta(t)) => s.text_delta(out, &t),
            (SearchStream::Anthropic(s), Forward::TextStop) => s.text_stop(out),
            (SearchStream::Responses(s), Forward::TextStart) => s.text_start(out, ctx),
            (SearchStream::Responses(s), Forward::TextDelta(t)) => s.text_delta(out, &t),
            (SearchStream::Responses(s), Forward::TextStop) => s.text_stop(out),
            (SearchStream::Gemini(s), Forward::TextDelta(t)) => s.text_delta(out, ctx, &t),
            (SearchStream::Gemini(_), Forward::TextStart | Forward::TextStop) => {}
        }
    }

    /// What the model said before a search (Responses clients only get the final answer).
    pub fn text(&mut self, out: &mut Vec<u8>, text: &str) {
        if let SearchStream::Anthropic(s) = self {
            s.text(out, text);
        }
    }

    pub fn search_call(&mut self, out: &mut Vec<u8>, id: &str, query: &str) {
        match self {
            SearchStream::Anthropic(s) => s.search_call(out, id, query),
            SearchStream::Responses(s) => {
                let search = Search {
                    id: id.to_owned(),
                    query: query.to_owned(),
                    outcome: Outcome::Hits(Vec::new()),
                };
                s.search_call(out, &search);
            }
            SearchStream::Gemini(_) => {}
        }
    }

    pub fn search_result(&mut self, out: &mut Vec<u8>, search: &Search) {
        match self {
            SearchStream::Anthropic(s) => s.search_result(out, search),
            SearchStream::Responses(s) => s.search_result(out, search),
            SearchStream::Gemini(_) => {}
        }
    }

    pub fn finish(
        &mut self,
        out: &mut Vec<u8>,
        t: &Transcript,
        ctx: &ExchangeContext,
        input_estimate: u64,
    ) {
        self.start(out, ctx, input_estimate);
        match self {
            SearchStream::Anthropic(s) => s.finish(out, t, &ctx.message_id),
            SearchStream::Responses(s) => s.finish(out, t, ctx),
            SearchStream::Gemini(s) => s.finish(out, t, ctx),
        }
    }

    pub fn fail(
        &mut self,
        out: &mut Vec<u8>,
        ctx: &ExchangeContext,
        kind: crate::protocol::anthropic::ErrorKind,
        message: &str,
    ) {
        match self {
            SearchStream::Anthropic(s) => s.fail(out, kind, message),
            SearchStream::Responses(s) => s.fail(out, ctx, message),
            SearchStream::Gemini(s) => s.fail(out, kind, message),
        }
    }
}

/// One SSE frame: `event: <name>\ndata: <json>\n\n`.
fn frame(out: &mut Vec<u8>, event: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosted(allowed: &[&str], blocked: &[&str]) -> HostedSearch {
        HostedSearch {
            client: Wire::AnthropicMessages,
            max_uses: 5,
            allowed_domains: allowed.iter().map(|s| s.to_string()).collect(),
            blocked_domains: blocked.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn finds_claude_codes_search_tool() {
        let body = br#"{"model":"m","messages":[],"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":8,"allowed_domains":["docs.rs"]}]}"#;
        let h = hosted_search(Wire::AnthropicMessages, body).unwrap();
        assert_eq!(h.max_uses, 8);
        assert_eq!(h.allowed_domains, ["docs.rs"]);
        let plain = br#"{"model":"m","messages":[],"tools":[{"name":"Bash","input_schema":{}}]}"#;
        assert_eq!(hosted_search(Wire::AnthropicMessages, plain), None);
        let no_max = br#"{"tools":[{"type":"web_search_20260209","name":"web_search"}]}"#;
        assert_eq!(
            hosted_search(Wire::AnthropicMessages, no_max)
                .unwrap()
                .max_uses,
            DEFAULT_MAX_USES
        );
    }

    #[test]
    fn domain_filters() {
        let h = hosted(&["docs.rs"], &["evil.docs.rs"]);
        assert!(h.allows("https://docs.rs/tokio"));
        assert!(h.allows("https://www.docs.rs/x"));
        assert!(!h.allows("https://evil.docs.rs/x"));
        assert!(!h.allows("https://notdocs.rs/x"));
        assert!(!h.allows("javascript:alert(1)"));
        assert!(hosted(&[], &[]).allows("http://user@example.com:8080/a?b"));
    }

    #[test]
    fn queries_from_arguments() {
        assert_eq!(query_of(r#"{"query":" rust "}"#).as_deref(), Some("rust"));
        assert_eq!(query_of(r#""rust""#).as_deref(), Some("rust"));
        assert_eq!(query_of(r#"{"query":"#), None);
        assert_eq!(query_of(r#"{"query":""}"#), None);
        assert_eq!(query_of("{}"), None);
    }

    fn transcript() -> Transcript {
        Transcript {
            steps: vec![
                Step::Text("Let me search.".into()),
                Step::Search(Search {
                    id: "srvtoolu_1".into(),
                    query: "aiohttp release".into(),
                    outcome: Outcome::Hits(vec![Hit {
                        url: "https://pypi.org/project/aiohttp/".into(),
                        title: "aiohttp - PyPI".into(),
                        snippet: "aiohttp 3.13.2".into(),
                        page_age: None,
                    }]),
                }),
            ],
            answer: vec![AnswerPart::Text(
                "3.13.2 ([PyPI](https://pypi.org/project/aiohttp/))".into(),
            )],
            stop: Some(StopReason::EndTurn),
            usage: Usage {
                input: 10,
                output: 5,
                ..Usage::default()
            },
            usage_reported: true,
            answer_streamed: false,
        }
    }

    #[test]
    fn a_streamed_answer_is_read_as_it_comes() {
        let ctx = ExchangeContext::default();
        let mut reader = AnswerReader::new(Wire::OpenAiChat, &ctx);
        let chunks = [
            r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"It is "}}]}"#,
            r#"data: {"choices":[{"index":0,"delta":{"content":"3.13.2."}}]}"#,
            r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#,
            "data: [DONE]",
        ];
        let mut seen = Vec::new();
        for c in chunks {
            reader.push(format!("{c}\n\n").as_bytes(), &mut |f| seen.push(f));
        }
        let answer = reader.finish(&mut |f| seen.push(f)).unwrap();
        assert_eq!(
            seen,
            [
                Forward::TextStart,
                Forward::TextDelta("It is ".into()),
                Forward::TextDelta("3.13.2.".into()),
                Forward::TextStop
            ]
        );
        assert!(matches!(&answer.content[..], [Part::Text(t)] if t.decoded() == "It is 3.13.2."));
        assert_eq!(answer.usage.map(|u| (u.input, u.output)), Some((7, 3)));
        assert_eq!(answer.stop, Some(StopReason::EndTurn));

        // A search call is held whole, never forwarded.
        let mut reader = AnswerReader::new(Wire::OpenAiChat, &ctx);
        let call = r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"web_search","arguments":"{\"query\":\"rust\"}"}}]},"finish_reason":"tool_calls"}]}"#;
        let mut seen = Vec::new();
        reader.push(format!("{call}\n\ndata: [DONE]\n\n").as_bytes(), &mut |f| {
            seen.push(f)
        });
        let answer = reader.finish(&mut |f| seen.push(f)).unwrap();
        assert!(seen.is_empty(), "{seen:?}");
        assert!(
            matches!(&answer.content[..], [Part::ToolCall(c)] if c.name == "web_search" && query_of(&c.arguments).as_deref() == Some("rust"))
        );
    }

    #[test]
    fn anthropic_message_carries_the_search_blocks() {
        let body = anthropic_message(&transcript(), "msg_1", "claude");
        let v: Value = serde_json::from_slice(&body).unwrap();
        let types: Vec<&str> = v["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["text", "server_tool_use", "web_search_tool_result", "text"]
        );
        assert_eq!(v["content"][1]["input"]["query"], "aiohttp release");
        assert_eq!(v["content"][2]["tool_use_id"], "srvtoolu_1");
        assert_eq!(v["content"][2]["content"][0]["title"], "aiohttp - PyPI");
        assert_eq!(
            v["content"][3]["citations"][0]["url"],
            "https://pypi.org/project/aiohttp/"
        );
        assert_eq!(v["usage"]["server_tool_use"]["web_search_requests"], 1);
        assert_eq!(v["stop_reason"], "end_turn");
    }

    #[test]
    fn anthropic_stream_keeps_the_block_invariants() {
        let t = transcript();
        let mut s = AnthropicStream::default();
        let mut out = Vec::new();
        s.start(&mut out, "msg_1", "claude", 10);
        s.text(&mut out, "Let me search.");
        s.search_call(&mut out, "srvtoolu_1", "aiohttp release");
        let Step::Search(search) = &t.steps[1] else {
            unreachable!()
        };
        s.search_result(&mut out, search);
        s.finish(&mut out, &t, "msg_1");
        let text = String::from_utf8(out).unwrap();
        let starts: Vec<Value> = text
            .split("\n\n")
            .filter_map(|f| f.split_once("data: ").map(|(_, d)| d))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let indexes: Vec<u64> = starts
            .iter()
            .filter(|e| e["type"] == "content_block_start")
            .map(|e| e["index"].as_u64().unwrap())
            .collect();
        assert_eq!(indexes, [0, 1, 2, 3]);
        assert!(text.contains("\"server_tool_use\""));
        assert!(text.contains("citations_delta"));
        assert!(text.contains("\"web_search_requests\":1"));
        assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    }

    #[test]
    fn grounding_offsets_are_utf8_bytes() {
        let mut t = transcript();
        t.answer = vec![AnswerPart::Text(
            "Intro ünïcode.\nSee aiohttp - PyPI for 3.13.2.\nDone.".into(),
        )];
        let g = grounding_metadata(&t);
        assert_eq!(g["webSearchQueries"], json!(["aiohttp release"]));
        let segment = &g["groundingSupports"][0]["segment"];
        let text = "Intro ünïcode.\nSee aiohttp - PyPI for 3.13.2.\nDone.";
        let start = text.find("See").unwrap();
        assert_eq!(segment["startIndex"], start);
        assert_eq!(
            segment["endIndex"],
            start + "See aiohttp - PyPI for 3.13.2.".len()
        );
        assert_eq!(g["groundingSupports"].as_array().unwrap().len(), 1);
        // Nothing named: the whole text is grounded on every result.
        t.answer = vec![AnswerPart::Text("ünïcode only ".into())];
        let g = grounding_metadata(&t);
        assert_eq!(
            g["groundingSupports"][0]["segment"]["endIndex"],
            "ünïcode only".len()
        );
        assert!(hosted_search(Wire::Gemini, br#"{"tools":[{"googleSearch":{}}]}"#).is_some());
        assert!(
            hosted_search(Wire::Gemini, br#"{"tools":[{"functionDeclarations":[]}]}"#).is_none()
        );
    }

    #[test]
    fn anthropic_search_blocks_in_history_become_context() {
        // What an Anthropic client sends back after a search (ours or Anthropic's), a failed
        // one included (its content is an object, not a list).
        let body = json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "latest aiohttp?"},
            {"role": "assistant", "content": [
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
                 "input": {"query": "aiohttp release"}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
                    {"type": "web_search_result", "url": "https://pypi.org/project/aiohttp/",
                     "title": "aiohttp - PyPI", "encrypted_content": "eA==", "page_age": null}]},
                {"type": "server_tool_use", "id": "srvtoolu_2", "name": "web_search",
                 "input": {"query": "aiohttp changelog"}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_2",
                 "content": {"type": "web_search_tool_result_error", "error_code": "unavailable"}},
                {"type": "text", "text": "3.13.2"}]},
            {"role": "user", "content": "thanks"}]})
        .to_string();
        let c = crate::protocol::pair::decode_request(
            Wire::AnthropicMessages,
            body.as_bytes(),
            None,
            ("", false),
        )
        .unwrap();
        let texts: Vec<String> = c.turns[1]
            .parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.decoded().into_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            texts,
            [
                "(Searched the web for: aiohttp release)",
                "(Web search results:\n- aiohttp - PyPI (https://pypi.org/project/aiohttp/))",
                "(Searched the web for: aiohttp changelog)",
                "(Web search results: failed: unavailable)",
                "3.13.2"
            ]
        );
    }

    #[test]
    fn result_text_carries_snippets_and_errors() {
        let t = transcript();
        let search = t.searches().next().unwrap();
        let text = result_text(search);
        assert!(text.contains("aiohttp - PyPI") && text.contains("aiohttp 3.13.2"));
        let failed = Search {
            outcome: Outcome::Error("unavailable"),
            ..search.clone()
        };
        assert!(result_text(&failed).contains("unavailable"));
    }
}
