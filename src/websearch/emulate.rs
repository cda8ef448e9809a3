//! The gateway's search loop, free of sockets: the client asked for a hosted search tool its
//! source cannot run, so the provider gets a function tool `web_search {query}` instead
//! ([`crate::protocol::web_search::tool_spec`]); each answer that calls it becomes searches
//! for the proxy to run ([`Next::Search`]), whose results go back to the provider as the
//! tool's result on the next call; an answer without a search call ends the loop, and the
//! [`Transcript`] holds what the client's native answer is built from.
//!
//! Bounded: at most the client's `max_uses` searches (further calls get
//! `max_uses_exceeded`, and the provider is told to answer without the tool), and at most
//! `max_uses + 2` provider calls. The proxy's glue (`proxy/web_search.rs`) does the I/O.
//!
//! A source that searches itself ([`SearchLoop::native`]) gets no function tool but its own
//! search asked for (`websearch::native`), one call, and the searches its answer reports
//! become the transcript's.

use crate::config::adapter::Source;
use crate::protocol::json::Text;
use crate::protocol::pair::{Pair, decode_request};
use crate::protocol::pivot::{
    ExchangeContext, Part, Reasoning, Response, ResponseError, Role, StopReason, ToolCall,
    ToolChoice, Turn,
};
use crate::protocol::web_search::{
    self as shape, AnswerPart, HostedSearch, Outcome, Search, Step, Transcript,
};
use crate::proxy::errors::ProxyError;
use crate::proxy::exchange::{ClientRequest, Plan, Prepared, prepare};
use crate::websearch::native::{self, Native};
use std::borrow::Cow;

/// One provider call that asked for searches, replayed on every later call.
#[derive(Debug)]
struct Round {
    text: String,
    reasoning: Vec<Reasoning<'static>>,
    /// (the provider's call id, its arguments, the result text once searched).
    calls: Vec<(String, String, Option<String>)>,
}

/// A search the proxy has to run (or, with `error` set, to report as failed without running).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The client's id for it (`srvtoolu_…`).
    pub id: String,
    pub query: String,
    /// Refused before reaching the backend: `invalid_input`, `query_too_long`,
    /// `max_uses_exceeded`.
    pub error: Option<&'static str>,
    round: usize,
    call: usize,
}

/// What the proxy does after a provider answer.
#[derive(Debug)]
pub enum Next {
    /// Run these searches (and [`SearchLoop::record`] each), then call the provider again.
    /// `text`: what the model said before them.
    Search {
        text: Option<String>,
        searches: Vec<Pending>,
    },
    /// The answer is complete: [`SearchLoop::transcript`].
    Done,
}

/// One request's search loop.
#[derive(Debug)]
pub struct SearchLoop {
    pub pair: Pair,
    pub hosted: HostedSearch,
    rounds: Vec<Round>,
    transcript: Transcript,
    provider_calls: u32,
    searches: u32,
    id_prefix: String,
    /// Provider calls are streamed (a live client waits for the answer's text).
    pub stream_calls: bool,
    /// The source searches itself: asked to, instead of being given the function tool.
    pub native: Option<Native>,
    /// The key's searches per day did not allow the source's search: it is not asked for,
    /// and the client sees one search failed with this code.
    pub native_refused: Option<&'static str>,
    /// The client's question (its last user text): the query of a native search whose
    /// provider does not say it.
    question: String,
}

impl SearchLoop {
    pub fn new(pair: Pair, hosted: HostedSearch, request_id: &str) -> SearchLoop {
        let id_prefix: String = request_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(24)
            .collect();
        SearchLoop {
            pair,
            hosted,
            rounds: Vec::new(),
            transcript: Transcript::default(),
            provider_calls: 0,
            searches: 0,
            id_prefix,
            stream_calls: false,
            native: None,
            native_refused: None,
            question: String::new(),
        }
    }

    /// The most provider calls one request makes.
    pub fn max_provider_calls(&self) -> u32 {
        self.hosted.max_uses + 2
    }

    /// Provider answers read so far.
    pub fn provider_calls(&self) -> u32 {
        self.provider_calls
    }

    /// Searches run (or refused) so far.
    pub fn searches(&self) -> u32 {
        self.searches
    }

    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// The next provider request: the client's conversation with the `web_search` tool and
    /// every round so far, streamed when [`SearchLoop::stream_calls`] says so.
    pub fn prepare(
        &mut self,
        raw: &[u8],
        gemini: Option<&crate::protocol::gemini::GeminiCall>,
        source: &Source,
        request_id: &str,
        reasoning_key: &crate::protocol::responses::seal::ReasoningKey,
        omit_media_for: Option<&str>,
    ) -> Result<Prepared, ProxyError> {
        let stream = self.stream_calls;
        let gemini_call = gemini.map_or(("", false), |c| (c.model.as_str(), c.stream()));
        let mut conversation =
            decode_request(self.pair.client, raw, Some(reasoning_key), gemini_call).map_err(
                |e| ProxyError::new(crate::protocol::anthropic::ErrorKind::InvalidRequest, e.0),
            )?;
        conversation.stream = stream;
        conversation.stream_usage = stream;
        if self.native.is_none() {
            conversation.tools.push(shape::tool_spec(&self.hosted));
        } else if self.question.is_empty() {
            self.question = question_of(&conversation.turns);
        }
        if !self.rounds.is_empty() {
            // Searching was asked for and done: the model may answer now.
            if matches!(
                conversation.tool_choice,
                Some(ToolChoice::Required | ToolChoice::Named(_))
            ) {
                conversation.tool_choice = Some(ToolChoice::Auto);
            }
        }
        if self.searches >= self.hosted.max_uses {
            conversation.tool_choice = Some(ToolChoice::None);
        }
        for round in &self.rounds {
            let mut parts: Vec<Part<'_>> = round
                .reasoning
                .iter()
                .cloned()
                .map(Part::Reasoning)
                .collect();
            if !round.text.is_empty() {
                parts.push(Part::Text(Text::from_plain(&round.text)));
            }
            for (id, arguments, _) in &round.calls {
                parts.push(Part::ToolCall(ToolCall {
                    id: Cow::Owned(id.clone()),
                    name: Cow::Borrowed(shape::TOOL_NAME),
                    arguments: Cow::Owned(arguments.clone()),
                }));
            }
            conversation.turns.push(Turn {
                role: Role::Assistant,
                parts,
            });
            let results = round
                .calls
                .iter()
                .map(|(id, _, result)| Part::ToolResult {
                    call_id: Cow::Owned(id.clone()),
                    content: vec![Part::Text(Text::from_plain(
                        result
                            .as_deref()
                            .unwrap_or("Web search error: unavailable."),
                    ))],
                    is_error: false,
                })
                .collect();
            conversation.turns.push(Turn {
                role: Role::User,
                parts: results,
            });
        }
        let request = ClientRequest {
            body: raw,
            gemini,
            decoded: Some(conversation),
        };
        let mut prepared = prepare(
            Plan::Pivot(self.pair),
            request,
            source,
            request_id,
            reasoning_key,
            omit_media_for,
        )?;
        if let Some(asked) = self
            .native
            .filter(|_| self.native_refused.is_none())
            .and_then(|n| native::ask(n, &prepared.body, &self.hosted))
        {
            prepared.body = asked.into();
        }
        Ok(prepared)
    }

    /// Reads the provider's complete answer to the last request.
    pub fn answer(&mut self, body: &[u8], ctx: &ExchangeContext) -> Result<Next, ResponseError> {
        let response = shape::decode_answer(self.pair.source, body, ctx)?;
        if let Some(n) = self.native {
            let found: Vec<(String, Outcome)> = match self.native_refused {
                Some(code) => vec![(self.question.clone(), Outcome::Error(code))],
                None => native::found(n, body, &self.question, &self.hosted)
                    .into_iter()
                    .map(|(query, hits)| (query, Outcome::Hits(hits)))
                    .collect(),
            };
            for (query, outcome) in found {
                let id = format!("srvtoolu_{}n{:02}", self.id_prefix, self.searches);
                self.searches += 1;
                self.transcript
                    .steps
                    .push(Step::Search(Search { id, query, outcome }));
            }
        }
        Ok(self.absorb(&response, false))
    }

    /// Takes the provider's answer to the last request; `streamed`: its text already reached
    /// a live client as it came (see `protocol::web_search::AnswerReader`).
    pub fn absorb(&mut self, response: &Response<'_>, streamed: bool) -> Next {
        self.provider_calls += 1;
        if let Some(u) = response.usage {
            let total = &mut self.transcript.usage;
            total.input += u.input;
            total.output += u.output;
            total.cache_read = add(total.cache_read, u.cache_read);
            total.cache_write = add(total.cache_write, u.cache_write);
            total.reasoning = add(total.reasoning, u.reasoning);
            self.transcript.usage_reported = true;
        }
        let mut text = String::new();
        let mut reasoning = Vec::new();
        let mut search_calls = Vec::new();
        let mut client_calls = Vec::new();
        for part in &response.content {
            match part {
                Part::Text(t) => text.push_str(&t.decoded()),
                Part::Reasoning(r) => reasoning.push(owned_reasoning(r)),
                Part::ToolCall(call) if call.name == shape::TOOL_NAME => {
                    search_calls.push((call.id.to_string(), call.arguments.to_string()));
                }
                Part::ToolCall(call) => client_calls.push(AnswerPart::ToolCall {
                    id: call.id.to_string(),
                    name: call.name.to_string(),
                    arguments: call.arguments.to_string(),
                }),
                _ => {}
            }
        }
        if search_calls.is_empty() || self.provider_calls >= self.max_provider_calls() {
            if !text.is_empty() {
                self.transcript.answer.push(AnswerPart::Text(text));
            }
            self.transcript.answer.extend(client_calls);
            let has_calls = self
                .transcript
                .answer
                .iter()
                .any(|p| matches!(p, AnswerPart::ToolCall { .. }));
            self.transcript.stop = match response.stop {
                Some(StopReason::ToolUse) if !has_calls => Some(StopReason::EndTurn),
                other => other,
            };
            self.transcript.answer_streamed = streamed;
            return Next::Done;
        }
        // Client tool calls made alongside a search are left out: the model calls them
        // again, if it still wants to, once it has the results.
        let round = self.rounds.len();
        let mut pending = Vec::with_capacity(search_calls.len());
        for (call, (_, arguments)) in search_calls.iter().enumerate() {
            let query = shape::query_of(arguments);
            let error = match &query {
                None => Some("invalid_input"),
                Some(q) if q.chars().count() > shape::MAX_QUERY_CHARS => Some("query_too_long"),
                Some(_) if self.searches >= self.hosted.max_uses => Some("max_uses_exceeded"),
                Some(_) => None,
            };
            if error != Some("max_uses_exceeded") {
                self.searches += 1;
            }
            pending.push(Pending {
                id: format!(
                    "srvtoolu_{}{:02}{:02}",
                    self.id_prefix,
                    round,
                    pending.len()
                ),
                query: query.unwrap_or_default(),
                error,
                round,
                call,
            });
        }
        let calls = search_calls
            .into_iter()
            .map(|(id, arguments)| (id, arguments, None))
            .collect();
        self.rounds.push(Round {
            text: text.clone(),
            reasoning,
            calls,
        });
        let text = (!text.trim().is_empty()).then_some(text);
        if let Some(t) = &text {
            self.transcript.steps.push(Step::Text(t.clone()));
        }
        Next::Search {
            // Streamed text is with the client already.
            text: text.filter(|_| !streamed),
            searches: pending,
        }
    }

    /// What one search found (or why it failed), for the provider's next call and the
    /// client's answer.
    pub fn record(&mut self, pending: &Pending, outcome: Outcome) -> &Search {
        let search = Search {
            id: pending.id.clone(),
            query: pending.query.clone(),
            outcome,
        };
        if let Some(call) = self
            .rounds
            .get_mut(pending.round)
            .and_then(|r| r.calls.get_mut(pending.call))
        {
            call.2 = Some(shape::result_text(&search));
        }
        self.transcript.steps.push(Step::Search(search));
        match self.transcript.steps.last() {
            Some(Step::Search(s)) => s,
            _ => unreachable!("a search was just pushed"),
        }
    }
}

/// The last user turn's text, as a search query (Claude Code's "Perform a web search for the
/// query: …" reduced to the query), at most [`shape::MAX_QUERY_CHARS`].
fn question_of(turns: &[Turn<'_>]) -> String {
    let text: String = turns
        .iter()
        .rev()
        .find(|t| t.role == Role::User)
        .map(|t| {
            t.parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text(t) => Some(t.decoded().into_owned()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let text = text.trim();
    let text = text
        .strip_prefix("Perform a web search for the query:")
        .unwrap_or(text)
        .trim();
    text.chars().take(shape::MAX_QUERY_CHARS).collect()
}

fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

fn owned_reasoning(r: &Reasoning<'_>) -> Reasoning<'static> {
    let own = |d: &Option<(crate::protocol::pivot::Origin, Cow<'_, str>)>| {
        d.as_ref().map(|(o, s)| (*o, Cow::Owned(s.to_string())))
    };
    Reasoning {
        text: Text::from_plain(&r.text.decoded()),
        signature: own(&r.signature),
        redacted: own(&r.redacted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::pair::Wire;
    use crate::protocol::web_search::Hit;

    fn chat_loop(max_uses: u32) -> SearchLoop {
        let hosted = HostedSearch {
            client: Wire::AnthropicMessages,
            max_uses,
            allowed_domains: vec![],
            blocked_domains: vec![],
        };
        let pair = Pair {
            client: Wire::AnthropicMessages,
            source: Wire::OpenAiChat,
        };
        SearchLoop::new(pair, hosted, "req-1")
    }

    fn tool_call(id: &str, query: &str) -> Vec<u8> {
        serde_json::json!({"id": "c", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [{"id": id, "type": "function", "function": {
                    "name": "web_search", "arguments": serde_json::json!({"query": query}).to_string()}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}})
        .to_string()
        .into_bytes()
    }

    fn text_answer(text: &str) -> Vec<u8> {
        serde_json::json!({"id": "c", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_search_round_then_an_answer() {
        let mut l = chat_loop(5);
        let ctx = ExchangeContext::default();
        let Next::Search { text, searches } =
            l.answer(&tool_call("call_1", "rust 1.90"), &ctx).unwrap()
        else {
            panic!("expected a search");
        };
        assert_eq!(text, None);
        assert_eq!(searches.len(), 1);
        assert_eq!(searches[0].query, "rust 1.90");
        assert!(searches[0].id.starts_with("srvtoolu_"));
        l.record(
            &searches[0],
            Outcome::Hits(vec![Hit {
                url: "https://blog.rust-lang.org/".into(),
                title: "Rust Blog".into(),
                snippet: "Rust 1.90 is out".into(),
                page_age: None,
            }]),
        );
        assert!(matches!(
            l.answer(&text_answer("It is out."), &ctx).unwrap(),
            Next::Done
        ));
        let t = l.transcript();
        assert_eq!(t.search_requests(), 1);
        assert_eq!(t.answer, [AnswerPart::Text("It is out.".into())]);
        assert_eq!(t.usage.input, 40);
        assert_eq!(t.stop, Some(StopReason::EndTurn));
    }

    #[test]
    fn searches_past_max_uses_are_refused_and_the_loop_ends() {
        let mut l = chat_loop(1);
        let ctx = ExchangeContext::default();
        let mut calls = 0;
        while let Next::Search { searches, .. } = l.answer(&tool_call("c", "again"), &ctx).unwrap()
        {
            calls += 1;
            for p in &searches {
                let outcome = match p.error {
                    Some(code) => Outcome::Error(code),
                    None => Outcome::Hits(vec![]),
                };
                l.record(p, outcome);
            }
            assert!(calls < 10, "the loop is bounded");
        }
        assert_eq!(l.provider_calls, l.max_provider_calls());
        assert_eq!(l.transcript().search_requests(), 1);
        assert!(
            l.transcript()
                .searches()
                .any(|s| s.outcome == Outcome::Error("max_uses_exceeded"))
        );
    }

    #[test]
    fn bad_arguments_are_invalid_input() {
        let mut l = chat_loop(5);
        let body = tool_call("c", "");
        let Next::Search { searches, .. } = l.answer(&body, &ExchangeContext::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(searches[0].error, Some("invalid_input"));
    }
}
