//! The proxy's side of the gateway's web search (`crate::websearch`): when a client asked
//! for a hosted search tool its source cannot run and `web_search:` is configured, the
//! direct exchange hands the request here. This file only does the I/O — provider calls on
//! the attempt's (source, key), backend searches, writing the client's answer — the loop is
//! `websearch::emulate`, the shapes `protocol::web_search`.
//!
//! A streaming Anthropic, Responses or Gemini (`?alt=sse`) client (a live one) gets its
//! stream's start with the provider's first bytes (or after `keep_alive` without any),
//! keep-alives while the provider works (not Gemini: it has none), the provider's text as it
//! is written (its calls are streamed; tool calls are held whole, searches among them run),
//! each search's blocks as it runs (not Gemini: grounding comes last), then the rest of the
//! answer. Other clients (JSON, a Gemini JSON array) get non-streamed calls and the whole
//! answer.
//! The first call fails over like any exchange while nothing has reached the client; a
//! client that leaves ends the loop; a provider that breaks off after the stream began ends
//! it with an error event.

use super::errors::ProxyError;
use super::exchange::{MAX_RESPONSE_BODY, Plan, ResponseFacts, ResponseShaper};
use super::route::Route;
use super::{Ctx, FlexiProxy};
use crate::protocol::anthropic::ErrorKind;
use crate::protocol::notes::Notes;
use crate::protocol::pair::{Pair, Wire};
use crate::protocol::pivot::{ExchangeContext, Response, ResponseError};
use crate::protocol::web_search::{self as shape, Outcome, SearchStream};
use crate::routing::Outcome as KeyOutcome;
use crate::websearch::WebSearchMode;
use crate::websearch::emulate::{Next, SearchLoop};
use bytes::Bytes;
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use std::time::{Duration, Instant};

/// A provider's complete answer to one call of the loop: its body, or (streamed to a live
/// client) the answer its stream made.
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
    streamed: Option<std::result::Result<Response<'static>, ResponseError>>,
}

impl FlexiProxy {
    /// The search loop for this request: its client asked for a hosted search tool, and
    /// either a translated source searches itself (`auto`, `native`: its own search asked
    /// for, `websearch::native`) or a backend is configured and the adapter's `web_search`
    /// lets the gateway run it — for a translated source (`auto`, `gateway`), or any source
    /// (`gateway`: a same-protocol source is then translated to itself).
    pub(super) fn search_loop(&self, ctx: &Ctx) -> Option<SearchLoop> {
        // Answers only: token counts go on as they are.
        let answers = match ctx.route {
            Route::Messages | Route::ChatCompletions | Route::Responses => true,
            Route::Gemini => ctx
                .gemini
                .as_ref()
                .is_some_and(|g| g.method != crate::protocol::gemini::Method::CountTokens),
            _ => false,
        };
        if !answers {
            return None;
        }
        let mode = ctx.adapter.as_ref().map(|a| a.web_search)?;
        let gateway = self.settings.web_search.is_some();
        let native = self.source(ctx).and_then(|source| {
            let model = ctx
                .prepared
                .as_ref()
                .map_or(source.model.as_str(), |p| p.source_model.as_str());
            crate::websearch::native::of(source, model)
        });
        let (pair, native) = match (ctx.plan?, mode) {
            (_, WebSearchMode::Off) => return None,
            (Plan::Pivot(pair), WebSearchMode::Auto | WebSearchMode::Native)
                if native.is_some() =>
            {
                (pair, native)
            }
            (_, WebSearchMode::Native) => return None,
            (Plan::Pivot(pair), _) if gateway => (pair, None),
            (plan @ Plan::Passthrough(_), WebSearchMode::Gateway) if gateway => (
                Pair {
                    client: plan.client_wire(),
                    source: plan.client_wire(),
                },
                None,
            ),
            _ => return None,
        };
        let hosted = shape::hosted_search(pair.client, ctx.raw_body.as_deref()?)?;
        let mut search = SearchLoop::new(pair, hosted, &ctx.request_id);
        search.native = native;
        Some(search)
    }

    /// Runs the loop on the current (source, key) and answers the client.
    pub(super) async fn exchange_with_search(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        mut search: SearchLoop,
    ) -> Result<()> {
        ctx.dispatch.attempts += 1;
        let searcher = self.settings.web_search.clone();
        let (Some(raw), Some(adapter)) = (ctx.raw_body.clone(), ctx.adapter.clone()) else {
            return Err(Error::explain(ErrorType::InternalError, "no search loop"));
        };
        let Some(first) = ctx.prepared.as_ref() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no prepared request",
            ));
        };
        let client_stream = first.stream;
        let input_estimate = first.input_tokens_estimate;
        // The client's side of the exchange (its ids, model, stream framing); a passthrough
        // the gateway took over has none yet.
        let mut client_ctx = first.pivot.clone();
        let json_array = ctx.gemini.as_ref().is_some_and(|g| g.stream() && !g.sse);
        let client_call = ctx.gemini.clone();
        ctx.plan = Some(Plan::Pivot(search.pair));
        // Anthropic and Responses clients see each search as it runs, a Gemini SSE client the
        // text as it comes; a Gemini JSON array gets the whole answer.
        let mut live =
            SearchStream::for_client(search.pair.client, json_array).filter(|_| client_stream);
        // A live client sees the provider's text as it is written (a source searching itself
        // is asked once, for the whole answer and what it found).
        search.stream_calls = live.is_some() && search.native.is_none();
        // A Gemini client's calls are streamed only so (a Gemini source's path included).
        if let Some(call) = ctx.gemini.as_mut() {
            call.method = if search.stream_calls {
                call.sse = true;
                crate::protocol::gemini::Method::Stream
            } else {
                crate::protocol::gemini::Method::Generate
            };
        }
        // A source's own search takes one of the key's searches per day (however many it
        // runs); past them it is not asked to search.
        if search.native.is_some() {
            search.native_refused = self.take_search(ctx).await.err();
        }
        // Whatever the attempt's preparation decided for images stays so for every call.
        let omit_media_for = (ctx.dispatch.media_omitted > 0)
            .then(|| self.source(ctx).map(|s| s.model.clone()))
            .flatten();
        loop {
            let Some(source) = self.source(ctx) else {
                return Err(Error::explain(ErrorType::InternalError, "no source"));
            };
            let prepared = search
                .prepare(
                    &raw,
                    ctx.gemini.as_ref(),
                    source,
                    &ctx.request_id,
                    &self.settings.reasoning_key,
                    omit_media_for.as_deref(),
                )
                .map_err(|e| super::fail(ctx, e))?;
            // The hosted search tool is run here, not dropped.
            let mut prepared = prepared;
            if let Some(p) = prepared.pivot.as_mut() {
                p.client_tools.dropped.retain(|t| !shape::is_search_tool(t));
            }
            let search_tool = |n: &_| Notes::is_tool_dropped(n, shape::is_search_tool);
            prepared.notes.retain(|n| !search_tool(n));
            let own = prepared.pivot.clone();
            let round_ctx = client_ctx.get_or_insert_with(|| {
                let mut c = own.unwrap_or_default();
                c.stream = client_stream;
                c.stream_as_json_array = json_array;
                c
            });
            ctx.prepared = Some(prepared);
            // While nothing has reached the client, a failing first call moves the request
            // on, as any exchange does.
            let first_call = search.provider_calls() == 0;
            let waiting = live.as_mut().map(|s| (s, &*round_ctx, input_estimate));
            let answer = match self.provider_call(session, ctx, waiting).await {
                Ok(answer) => answer,
                Err(e)
                    if first_call
                        && session.response_written().is_none()
                        && ctx.error.is_none()
                        && e.esource() == &pingora::ErrorSource::Upstream =>
                {
                    let moved = self
                        .search_fail_over(session, ctx, KeyOutcome::Failure, client_call)
                        .await;
                    return moved.unwrap_or(Err(e));
                }
                // The provider broke off or timed out after the client's stream began: it
                // ends with an error event in its protocol.
                Err(e)
                    if e.esource() != &pingora::ErrorSource::Downstream
                        && session.response_written().is_some() =>
                {
                    let error = ctx.error.take().unwrap_or_else(|| {
                        ProxyError::new(ErrorKind::Api, "the provider's answer broke off")
                            .with_status(502)
                    });
                    self.report_attempt(ctx, KeyOutcome::Failure);
                    return self
                        .end_with_error(session, ctx, live.as_mut(), error)
                        .await;
                }
                Err(e) => return Err(e),
            };
            ctx.upstream_status = Some(answer.status);
            if !(200..300).contains(&answer.status) {
                let outcome = super::dispatch::outcome_of(answer.status, &answer.headers);
                if first_call
                    && session.response_written().is_none()
                    && outcome != KeyOutcome::Success
                    && let Some(moved) = self
                        .search_fail_over(session, ctx, outcome, client_call.clone())
                        .await
                {
                    return moved;
                }
                self.report_attempt(ctx, outcome);
                let masked = crate::protocol::secrets::mask_secrets(
                    &answer.body,
                    &super::errors::provider_secrets(&adapter),
                );
                let e = crate::protocol::errors::provider_error(answer.status, &masked);
                let error = ProxyError::new(e.kind, e.message).with_status(e.status);
                return self
                    .end_with_error(session, ctx, live.as_mut(), error)
                    .await;
            }
            let pivot = ctx
                .prepared
                .as_ref()
                .and_then(|p| p.pivot.clone())
                .unwrap_or_default();
            let next = match answer.streamed {
                Some(streamed) => streamed.map(|r| search.absorb(&r, true)),
                None => search.answer(&answer.body, &pivot),
            };
            let next = match next {
                Ok(next) => next,
                Err(e) => {
                    self.report_attempt(ctx, KeyOutcome::Success);
                    let error = match e {
                        crate::protocol::pivot::ResponseError::Malformed(m) => {
                            ProxyError::new(ErrorKind::Api, m).with_status(502)
                        }
                        crate::protocol::pivot::ResponseError::Provider(p) => {
                            ProxyError::new(ErrorKind::Api, p.message).with_status(502)
                        }
                    };
                    return self
                        .end_with_error(session, ctx, live.as_mut(), error)
                        .await;
                }
            };
            let Next::Search { text, searches } = next else {
                break;
            };
            if let Some(stream) = live.as_mut() {
                let mut out = Vec::new();
                stream.start(&mut out, round_ctx, input_estimate);
                if let Some(text) = &text {
                    stream.text(&mut out, text);
                }
                self.stream_out(session, ctx, out).await?;
            }
            for pending in searches {
                if let Some(stream) = live.as_mut() {
                    let mut out = Vec::new();
                    stream.search_call(&mut out, &pending.id, &pending.query);
                    self.stream_out(session, ctx, out).await?;
                }
                // A search past the key's searches per day is refused, never run.
                let refused = match pending.error {
                    Some(_) => None,
                    None => self.take_search(ctx).await.err(),
                };
                let outcome = match (pending.error.or(refused), &searcher) {
                    (Some(code), _) => Outcome::Error(code),
                    (None, None) => Outcome::Error("unavailable"),
                    (None, Some(searcher)) => {
                        let hosted = &search.hosted;
                        // A client that leaves ends the loop: nothing more is asked of
                        // the backend or the provider.
                        let found = tokio::select! {
                            biased;
                            found = searcher.search(&pending.query, |url| hosted.allows(url)) => found,
                            gone = super::direct::client_gone(session) => return Err(gone),
                        };
                        match found {
                            Ok(hits) => Outcome::Hits(hits),
                            Err(e) => {
                                // The reason, never the query.
                                if let crate::websearch::SearchError::Unavailable(why) = &e {
                                    tracing::warn!(request_id = %ctx.request_id, "web search failed: {why}");
                                }
                                Outcome::Error(e.error_code())
                            }
                        }
                    }
                };
                let label = match &outcome {
                    Outcome::Hits(_) => "ok",
                    Outcome::Error(code) => code,
                };
                self.telemetry
                    .metrics
                    .web_searches
                    .with_label_values(&[adapter.name.as_str(), label])
                    .inc();
                if pending.error != Some("max_uses_exceeded") && refused.is_none() {
                    ctx.web_searches += 1;
                }
                let done = search.record(&pending, outcome);
                if let Some(stream) = live.as_mut() {
                    let mut out = Vec::new();
                    stream.search_result(&mut out, done);
                    self.stream_out(session, ctx, out).await?;
                }
            }
        }
        if search.native.is_some() {
            let shown = live.as_mut().zip(client_ctx.as_ref());
            self.native_searches(session, ctx, &search, shown, input_estimate)
                .await?;
        }
        self.report_attempt(ctx, KeyOutcome::Success);
        let client_ctx = client_ctx.unwrap_or_default();
        let transcript = search.transcript();
        ctx.shaper = Some(ResponseShaper::Made(ResponseFacts {
            usage: Some(transcript.usage.to_anthropic()),
            usage_reported: transcript.usage_reported,
            errored: false,
        }));
        tracing::debug!(request_id = %ctx.request_id, searches = search.searches(), "web search answered by the gateway");
        if let Some(stream) = live.as_mut() {
            let mut out = Vec::new();
            stream.finish(&mut out, transcript, &client_ctx, input_estimate);
            self.stream_out(session, ctx, out).await?;
            return session
                .write_response_body(None, true)
                .await
                .map_err(|e| e.into_down());
        }
        let (content_type, body) = match search.pair.client {
            Wire::AnthropicMessages => (
                "application/json",
                shape::anthropic_message(
                    transcript,
                    &client_ctx.message_id,
                    &client_ctx.client_model,
                ),
            ),
            Wire::Responses => (
                "application/json",
                shape::responses_answer(transcript, &client_ctx),
            ),
            Wire::Gemini => (
                if client_stream && !client_ctx.stream_as_json_array {
                    "text/event-stream; charset=utf-8"
                } else {
                    "application/json"
                },
                shape::gemini_answer(transcript, &client_ctx, client_stream),
            ),
            Wire::OpenAiChat => {
                return Err(Error::explain(
                    ErrorType::InternalError,
                    "no web search answer for this client protocol",
                ));
            }
        };
        let body = Bytes::from(body);
        let mut header = ResponseHeader::build(200, Some(3))?;
        header.insert_header(http::header::CONTENT_TYPE, content_type)?;
        header.insert_header(http::header::CONTENT_LENGTH, body.len())?;
        header.insert_header(super::X_REQUEST_ID, ctx.request_id.as_str())?;
        if let Some(count) = super::inspect::notes_header(ctx) {
            header.insert_header(super::inspect::X_FLEXIPROXY_NOTES, count)?;
        }
        ctx.first_byte.get_or_insert_with(Instant::now);
        session
            .write_response_header(Box::new(header), false)
            .await
            .map_err(|e| e.into_down())?;
        session
            .write_response_body(Some(body), true)
            .await
            .map_err(|e| e.into_down())
    }

    /// The searches a source ran itself: counted (metric outcome `native`, or the error of
    /// one refused), and shown to a live client as the gateway's are, ahead of the answer.
    async fn native_searches(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        search: &SearchLoop,
        live: Option<(&mut SearchStream, &ExchangeContext)>,
        input_estimate: u64,
    ) -> Result<()> {
        let adapter = ctx.adapter.as_ref().map_or("-", |a| a.name.as_str());
        let found: Vec<&shape::Search> = search.transcript().searches().collect();
        for s in &found {
            let label = match s.outcome {
                Outcome::Hits(_) => "native",
                Outcome::Error(code) => code,
            };
            self.telemetry
                .metrics
                .web_searches
                .with_label_values(&[adapter, label])
                .inc();
        }
        ctx.web_searches += search.transcript().search_requests() as u32;
        let Some((stream, client_ctx)) = live else {
            return Ok(());
        };
        let mut out = Vec::new();
        stream.start(&mut out, client_ctx, input_estimate);
        for s in found {
            stream.search_call(&mut out, &s.id, &s.query);
            stream.search_result(&mut out, s);
        }
        self.stream_out(session, ctx, out).await
    }

    /// The first call failed before anything reached the client: the next (source, key), if
    /// the adapter allows one more attempt and one is left, serves the request from the
    /// start (searching again there if it has to). `None`: nothing is left to try.
    async fn search_fail_over(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        outcome: KeyOutcome,
        client_call: Option<crate::protocol::gemini::GeminiCall>,
    ) -> Option<Result<()>> {
        if !self.may_retry(ctx) {
            return None;
        }
        let failed = self.current_key_name(ctx);
        self.report_attempt(ctx, outcome);
        self.next_attempt(ctx).ok()?;
        self.telemetry.metrics.upstream_retries.inc();
        tracing::warn!(
            request_id = %ctx.request_id,
            from = failed.as_deref().unwrap_or("-"),
            to = self.current_key_name(ctx).as_deref().unwrap_or("-"),
            "provider call of a web search failed ({outcome:?}); trying the next key or source"
        );
        ctx.gemini = client_call;
        ctx.prepared = None;
        ctx.prepared_for = None;
        ctx.upstream_status = None;
        ctx.error_kind = None;
        if let Err(e) = self.prepare_for_attempt(ctx, None) {
            return Some(Err(super::fail(ctx, e)));
        }
        // The next attempt decides again whether the gateway searches (its source may search
        // itself), and answers whatever happens.
        Some(
            Box::pin(self.exchange_directly(session, ctx))
                .await
                .map(|_| ()),
        )
    }

    /// Ends the exchange with `error`: an `error` event when the client's stream has begun,
    /// else the error in the client's shape (through `answer_failure`).
    async fn end_with_error(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        stream: Option<&mut SearchStream>,
        error: ProxyError,
    ) -> Result<()> {
        let Some(stream) = stream.filter(|s| s.is_started()) else {
            return Err(super::fail(ctx, error));
        };
        ctx.effective_status = Some(error.status);
        let client_ctx = ctx
            .prepared
            .as_ref()
            .and_then(|p| p.pivot.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        stream.fail(&mut out, &client_ctx, error.kind, &error.message);
        ctx.error = Some(error);
        self.stream_out(session, ctx, out).await?;
        session
            .write_response_body(None, true)
            .await
            .map_err(|e| e.into_down())
    }

    /// Writes stream bytes, starting the client's event stream on the first.
    async fn stream_out(&self, session: &mut Session, ctx: &mut Ctx, out: Vec<u8>) -> Result<()> {
        if session.response_written().is_none() {
            let mut header = ResponseHeader::build(200, Some(4))?;
            header.insert_header(
                http::header::CONTENT_TYPE,
                "text/event-stream; charset=utf-8",
            )?;
            header.insert_header(http::header::CACHE_CONTROL, "no-cache")?;
            header.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
            header.insert_header(super::X_REQUEST_ID, ctx.request_id.as_str())?;
            if let Some(count) = super::inspect::notes_header(ctx) {
                header.insert_header(super::inspect::X_FLEXIPROXY_NOTES, count)?;
            }
            ctx.first_byte = Some(Instant::now());
            session
                .write_response_header(Box::new(header), false)
                .await
                .map_err(|e| e.into_down())?;
            self.release_request_bodies(ctx);
        }
        if out.is_empty() {
            return Ok(());
        }
        session
            .write_response_body(Some(Bytes::from(out)), false)
            .await
            .map_err(|e| e.into_down())
    }

    /// One provider call with the prepared body, within the source's timeouts (first byte
    /// plus idle for the whole answer, never past the request's total). A streamed answer
    /// (only asked for when a live client waits) has its text handed on as it comes.
    ///
    /// A streaming client that sees searches as they run hears from the proxy every
    /// `keep_alive` while the provider is busy (a first call that long starts its stream).
    async fn provider_call(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        mut waiting: Option<(&mut SearchStream, &ExchangeContext, u64)>,
    ) -> Result<Answer> {
        let peer = self.peer_for_current_source(ctx).await?;
        let (body, source_ctx) = match ctx.prepared.as_ref() {
            Some(p) => (p.body.clone(), p.pivot.clone().unwrap_or_default()),
            None => Default::default(),
        };
        let Some(timeouts) = self.source(ctx).map(|s| s.timeouts) else {
            return Err(Error::explain(ErrorType::InternalError, "no source"));
        };
        let mut limit = timeouts.first_byte + timeouts.idle;
        if let Some(total) = timeouts.total {
            limit = limit.min(total.saturating_sub(ctx.started.elapsed()));
        }
        let deadline = tokio::time::Instant::now() + limit.max(Duration::from_millis(1));
        let source_wire = ctx.plan.map_or(Wire::OpenAiChat, |p| p.source_wire());
        let header = self.upstream_header(session.req_header(), ctx, Some(body.len()))?;
        ctx.request_sent = true;
        let sent = async {
            // A pooled connection the provider closed fails before any answer: once more on
            // a fresh one.
            if let Some(pooled) = self.connector.reused_http_session(&*peer).await {
                let mut upstream = HttpSession::H1(pooled);
                match send_on(&mut upstream, header.clone(), &body).await {
                    Ok(response) => return Ok((upstream, response)),
                    Err(_) => upstream.shutdown().await,
                }
            }
            let (fresh, _) = Box::pin(self.connector.get_http_session(&*peer))
                .await
                .map_err(|e| e.into_up())?;
            let mut upstream = HttpSession::H1(fresh);
            match send_on(&mut upstream, header, &body).await {
                Ok(response) => Ok((upstream, response)),
                Err(e) => {
                    upstream.shutdown().await;
                    Err(e)
                }
            }
        };
        tokio::pin!(sent);
        let every = self
            .settings
            .web_search
            .as_ref()
            .map_or(crate::websearch::DEFAULT_KEEP_ALIVE, |s| s.keep_alive());
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let (mut upstream, response) = loop {
            tokio::select! {
                biased;
                sent = &mut sent => break sent?,
                gone = super::direct::client_gone(session) => return Err(gone),
                () = tokio::time::sleep_until(deadline) => return Err(self.call_timed_out(ctx, limit)),
                _ = ticks.tick() => self.keep_alive(session, ctx, waiting.as_mut()).await?,
            }
        };
        let status = response.status.as_u16();
        let streamed = (200..300).contains(&status)
            && waiting.is_some()
            && response
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/event-stream"));
        let mut reader = streamed.then(|| shape::AnswerReader::new(source_wire, &source_ctx));
        let mut whole = bytes::BytesMut::new();
        loop {
            let read = tokio::select! {
                biased;
                read = upstream.read_response_body() => read.map_err(|e| e.into_up()),
                gone = super::direct::client_gone(session) => return Err(gone),
                () = tokio::time::sleep_until(deadline) => return Err(self.call_timed_out(ctx, limit)),
                _ = ticks.tick() => {
                    self.keep_alive(session, ctx, waiting.as_mut()).await?;
                    continue;
                }
            };
            let chunk = match read {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    upstream.shutdown().await;
                    return Err(e);
                }
            };
            match (reader.as_mut(), waiting.as_mut()) {
                (Some(reader), Some((stream, client_ctx, estimate))) => {
                    let mut out = Vec::new();
                    stream.start(&mut out, client_ctx, *estimate);
                    reader.push(&chunk, &mut |piece| {
                        stream.forward(&mut out, client_ctx, piece)
                    });
                    self.stream_out(session, ctx, out).await?;
                }
                _ => {
                    if whole.len() + chunk.len() > MAX_RESPONSE_BODY {
                        upstream.shutdown().await;
                        return Error::e_explain(
                            ErrorType::InvalidHTTPHeader,
                            "provider answer too large",
                        );
                    }
                    whole.extend_from_slice(&chunk);
                }
            }
            if upstream.response_done() {
                break;
            }
        }
        self.release(upstream, &peer).await;
        let streamed = match (reader, waiting.as_mut()) {
            (Some(reader), Some((stream, client_ctx, _))) => {
                let mut out = Vec::new();
                let answer =
                    reader.finish(&mut |piece| stream.forward(&mut out, client_ctx, piece));
                self.stream_out(session, ctx, out).await?;
                Some(answer)
            }
            _ => None,
        };
        Ok(Answer {
            status,
            headers: response.headers.clone(),
            body: whole.freeze(),
            streamed,
        })
    }

    /// A keep-alive for a live client (its stream started if it had not yet).
    async fn keep_alive(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        waiting: Option<&mut (&mut SearchStream, &ExchangeContext, u64)>,
    ) -> Result<()> {
        let Some((stream, client_ctx, estimate)) = waiting else {
            return Ok(());
        };
        let mut out = Vec::new();
        stream.start(&mut out, client_ctx, *estimate);
        stream.keep_alive(&mut out);
        self.stream_out(session, ctx, out).await
    }

    fn call_timed_out(&self, ctx: &mut Ctx, limit: Duration) -> Box<Error> {
        let e = ProxyError::new(
            ErrorKind::Timeout,
            format!(
                "the provider did not answer within {} s",
                limit.as_secs_f64().ceil()
            ),
        )
        .with_status(504);
        super::fail(ctx, e)
    }

    async fn release(&self, upstream: HttpSession, peer: &pingora::upstreams::peer::HttpPeer) {
        match upstream {
            HttpSession::H1(h1) => {
                self.connector
                    .release_http_session(h1, peer, peer.options.idle_timeout)
                    .await
            }
            mut other => other.shutdown().await,
        }
    }
}

/// The request out and the provider's final response header in, on one connection.
async fn send_on(
    upstream: &mut HttpSession,
    header: RequestHeader,
    body: &Bytes,
) -> Result<ResponseHeader> {
    upstream
        .write_request_header(Box::new(header))
        .await
        .map_err(|e| e.into_up())?;
    upstream
        .write_request_body(body.clone(), true)
        .await
        .map_err(|e| e.into_up())?;
    upstream
        .finish_request_body()
        .await
        .map_err(|e| e.into_up())?;
    loop {
        upstream
            .read_response_header()
            .await
            .map_err(|e| e.into_up())?;
        let Some(header) = upstream.response_header() else {
            return Error::e_explain(ErrorType::InvalidHTTPHeader, "no response header");
        };
        if !header.status.is_informational() {
            return Ok(header.clone());
        }
    }
}
