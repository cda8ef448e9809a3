//! Every provider exchange, made here, from `request_filter`, instead of in Pingora's proxy
//! loop: one attempt per chosen (source, key) — see `dispatch` — until one answers, the
//! adapter's `max_attempts` is reached, or nothing is left to try.
//!
//! Why not the proxy loop: it is built for bodies it does not know in advance. It writes the
//! client's response header as soon as the provider's arrives, before any body filter has
//! seen a byte, so a translated response (another length than the provider's) goes out
//! chunked: header, body and terminator in three `sendto` calls where one does. It can
//! replay a request body only from its 64 KiB retry buffer, so a larger body (Claude Code's
//! requests are ~75 KB) can neither be read before the upstream request starts nor be sent
//! again to another source. Here the whole request body is read and prepared first and sent
//! with its length, to as many sources and keys as it takes, whatever its size; the provider's
//! answer is looked at before anything reaches the client, so a 401, 429 or 5xx (or a
//! connection refused or reset) moves the request on. A non-streaming answer is read and
//! shaped whole, then written with its length in one go; a stream (or an answer too big to
//! hold) is written as it arrives, what arrived together in one write (see
//! docs/benchmarks.md for what each costs). Once a byte has reached the client nothing is
//! retried.
//!
//! The upstream header (`upstream_header`), the response shaping (`start_response`,
//! `shape_body`) and the answers to failures (`answer_failure`) live in `mod.rs`. The
//! watchdog keeps the provider timeouts, ending our own waits (see `watchdog`), so no Pingora
//! read or write timeout is set here. The connection pool is Pingora's HTTP/1.1 connector.

use super::exchange::Gathered;
use super::watchdog::{Expiry, Timeout};
use super::{Ctx, FlexiProxy};
use crate::routing::Outcome;
use bytes::Bytes;
use pingora::ErrorSource;
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;

/// Attempts on pooled connections the provider turned out to have closed, before giving up
/// (each failure there is detected before anything was sent back).
const MAX_STALE_CONNECTIONS: usize = 3;

/// A non-streaming answer up to this size is held and sent with `Content-Length`; past it,
/// it is passed on as it arrives (chunked), so a huge answer does not sit in memory.
const HOLD_LIMIT: usize = 1024 * 1024;

/// How one attempt ended.
enum Attempt {
    /// The client has its answer.
    Answered,
    /// It failed before any byte reached the client; the next (source, key) is chosen.
    Again,
}

impl FlexiProxy {
    /// Makes the provider exchange and answers the client; always answers (errors in the
    /// client's shape), so `request_filter` returns what this returns.
    pub(super) async fn exchange_directly(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Result<bool> {
        // A hosted web search the source cannot run: the gateway searches (`web_search`).
        let exchanged = match self.search_loop(ctx) {
            Some(search) => Box::pin(self.exchange_with_search(session, ctx, search)).await,
            None => self.exchange(session, ctx).await,
        };
        if let Err(e) = exchanged {
            // What Pingora's proxy loop logs for a failed exchange (a client that left is not
            // a failure of the proxy). Errors carry addresses and phases, never keys.
            if e.esource() != &ErrorSource::Downstream {
                tracing::warn!(request_id = %ctx.request_id, error = %e, "provider exchange failed");
            }
            let answered = self.answer_failure(session, &e, ctx).await;
            if !answered.can_reuse_downstream {
                session.set_keepalive(None);
            }
        }
        Ok(true)
    }

    /// Attempts until one answers; the first (source, key) was chosen and the body prepared
    /// for it in `start_exchange`.
    async fn exchange(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        loop {
            match self.attempt(session, ctx).await? {
                Attempt::Answered => return Ok(()),
                Attempt::Again => {
                    self.telemetry.metrics.upstream_retries.inc();
                    if let Err(e) = self.prepare_for_attempt(ctx, None) {
                        return Err(super::fail(ctx, e));
                    }
                }
            }
        }
    }

    /// Chooses the next (source, key) after a failed attempt, when the adapter allows one
    /// more and one is left; `false` leaves the current attempt's outcome to the client.
    fn fail_over(&self, ctx: &mut Ctx, outcome: Outcome) -> bool {
        if !self.may_retry(ctx) {
            self.report_attempt(ctx, outcome);
            return false;
        }
        let failed_at = ctx.source_index;
        let failed_key = self.current_key_name(ctx);
        self.report_attempt(ctx, outcome);
        match self.next_attempt(ctx) {
            Ok(()) => {
                if let Some(adapter) = &ctx.adapter {
                    tracing::warn!(
                        request_id = %ctx.request_id,
                        adapter = %adapter.name,
                        route = %self.route_name(ctx),
                        from = failed_key.as_deref().unwrap_or("-"),
                        to = self.current_key_name(ctx).as_deref().unwrap_or("-"),
                        source = failed_at,
                        "provider attempt failed ({outcome:?}); trying the next key or source"
                    );
                }
                ctx.upstream_status = None;
                ctx.error = None;
                ctx.error_kind = None;
                if let Some(w) = ctx.watchdog.take() {
                    w.finish();
                }
                true
            }
            Err(_) => false,
        }
    }

    /// One attempt on the current (source, key).
    async fn attempt(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Attempt> {
        ctx.dispatch.attempts += 1;
        let peer = match self.peer_for_current_source(ctx).await {
            Ok(peer) => peer,
            // An unreachable host fails over; a refused (internal) address does not.
            Err(e) if ctx.error.as_ref().is_some_and(|e| e.status == 502) => {
                return if self.fail_over(ctx, Outcome::Failure) {
                    Ok(Attempt::Again)
                } else {
                    Err(e)
                };
            }
            Err(e) => {
                self.report_attempt(ctx, Outcome::Success);
                return Err(e);
            }
        };
        let body = ctx
            .prepared
            .as_ref()
            .map(|p| p.body.clone())
            .unwrap_or_default();
        let mut header = Some(self.upstream_header(session.req_header(), ctx, Some(body.len()))?);
        if let (Some(capture), Some(header)) = (ctx.capture.as_mut(), header.as_ref()) {
            capture.provider_request(&header.uri.to_string(), &header.headers, &body);
        }
        let mut stale = 0;
        loop {
            let (mut upstream, reused) = match self.connect(&peer).await {
                Ok(c) => c,
                Err(e) if self.fail_over(ctx, Outcome::Failure) => {
                    tracing::debug!(request_id = %ctx.request_id, error = %e, "connect failed");
                    return Ok(Attempt::Again);
                }
                Err(e) => return Err(e),
            };
            if let Some(capture) = ctx.capture.as_mut() {
                capture.connected();
            }
            // The watchdog bounds every wait on the provider (see `watchdog`): this
            // connector's sessions never get a Pingora read or write timeout.
            let expiry = self.watch_in_task(ctx);
            // Sent as is the first time; rebuilt for the rare retry on another connection.
            let request = match header.take() {
                Some(header) => header,
                None => self.upstream_header(session.req_header(), ctx, Some(body.len()))?,
            };
            // The client leaving ends the exchange and closes the provider's connection, so
            // the provider stops generating (as the proxy loop does).
            let sent = tokio::select! {
                biased;
                result = self.send_request(&mut upstream, request, &body, ctx) => result,
                gone = client_gone(session) => Err(gone),
                timeout = expired(expiry.as_ref()) => Err(timeout),
            };
            match sent {
                Ok(response) => {
                    let status = response.status.as_u16();
                    let outcome = super::dispatch::outcome_of(status, &response.headers);
                    // Nothing has reached the client: a refused, limited or failing key or
                    // source hands the request on (its answer is dropped).
                    if outcome != Outcome::Success && self.fail_over(ctx, outcome) {
                        upstream.shutdown().await;
                        return Ok(Attempt::Again);
                    }
                    // Nothing resends the request now: its body (75 KB and more for Claude
                    // Code) need not live as long as a stream does.
                    drop(body);
                    let relayed = self
                        .relay(session, &mut upstream, response, ctx, expiry.as_ref())
                        .await;
                    match upstream {
                        HttpSession::H1(upstream) if relayed.is_ok() => {
                            self.connector
                                .release_http_session(upstream, &*peer, peer.options.idle_timeout)
                                .await;
                        }
                        mut upstream => upstream.shutdown().await,
                    }
                    if let Err(e) = &relayed
                        && e.esource() == &ErrorSource::Upstream
                        && session.response_written().is_none()
                        && !self.final_timeout(ctx)
                        && self.fail_over(ctx, Outcome::Failure)
                    {
                        // The answer broke before any of it was written to the client.
                        return Ok(Attempt::Again);
                    }
                    self.report_attempt(ctx, outcome);
                    return relayed.map(|()| Attempt::Answered);
                }
                Err(mut e) => {
                    upstream.shutdown().await;
                    // A pooled connection the provider had already closed: nothing was
                    // answered, so the request goes again on another one (as Pingora's proxy
                    // loop does). A timeout we enforced is final.
                    e.retry.decide_reuse(reused);
                    let timed_out = ctx.watchdog.as_ref().is_some_and(|w| w.fired().is_some());
                    stale += 1;
                    if e.retry() && !timed_out && stale < MAX_STALE_CONNECTIONS {
                        if let Some(w) = ctx.watchdog.take() {
                            w.finish();
                        }
                        ctx.request_sent = false;
                        continue;
                    }
                    // A reset, a refused connection or the first-byte timeout: another key or
                    // source may answer. Not when the client left or the total time is up.
                    if e.esource() != &ErrorSource::Downstream
                        && !self.final_timeout(ctx)
                        && self.fail_over(ctx, Outcome::Failure)
                    {
                        ctx.request_sent = false;
                        return Ok(Attempt::Again);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// The request's own time is up (total timeout, or shutdown): no further attempt.
    fn final_timeout(&self, ctx: &Ctx) -> bool {
        ctx.watchdog
            .as_ref()
            .and_then(|w| w.fired())
            .is_some_and(|(which, _)| matches!(which, Timeout::Total | Timeout::Shutdown))
    }

    /// A pooled connection to the source, or a new one. Upstream connections are HTTP/1.1
    /// (see `upstream::peer`). Connecting is boxed: its future (TCP and TLS handshakes) is
    /// large, and inline it would be copied with this exchange's future on every request.
    async fn connect(&self, peer: &HttpPeer) -> Result<(HttpSession, bool)> {
        if let Some(pooled) = self.connector.reused_http_session(peer).await {
            return Ok((HttpSession::H1(pooled), true));
        }
        let (fresh, _) = Box::pin(self.connector.get_http_session(peer))
            .await
            .map_err(|e| e.into_up())?;
        Ok((HttpSession::H1(fresh), false))
    }

    /// One attempt on one connection: the request out, the provider's final response header
    /// in.
    async fn send_request(
        &self,
        upstream: &mut HttpSession,
        header: RequestHeader,
        body: &Bytes,
        ctx: &mut Ctx,
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
        if let Some(w) = &ctx.watchdog {
            w.request_sent();
        }
        ctx.request_sent = true;
        // Informational responses (100 Continue) are not the answer.
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

    /// The provider's response to the client, shaped: a non-streaming answer whole, with its
    /// length; a stream (or an answer past [`HOLD_LIMIT`]) chunk by chunk as it arrives.
    async fn relay(
        &self,
        session: &mut Session,
        upstream: &mut HttpSession,
        mut response: ResponseHeader,
        ctx: &mut Ctx,
        expiry: Option<&Expiry>,
    ) -> Result<()> {
        if let Some(capture) = ctx.capture.as_mut() {
            capture.provider_response(&response.headers);
        }
        self.start_response(&mut response, ctx)?;
        // The header and what is held of the body, until they go out together.
        let mut held = if is_event_stream(&response) {
            start_stream(session, response).await?;
            self.release_request_bodies(ctx);
            None
        } else {
            Some((response, Gathered::default()))
        };
        loop {
            let read = tokio::select! {
                biased;
                read = upstream.read_response_body() => read.map_err(|e| e.into_up())?,
                gone = client_gone(session) => return Err(gone),
                timeout = expired(expiry) => return Err(timeout),
            };
            let (chunk, mut end) = self.shape_read(read, upstream, ctx);
            match held.take() {
                Some((response, mut body)) => {
                    body.extend(chunk);
                    if end {
                        let body = body.into_bytes().unwrap_or_default();
                        return answer(session, with_error_status(response, ctx), body).await;
                    }
                    if body.len() <= HOLD_LIMIT {
                        held = Some((response, body));
                    } else {
                        start_stream(session, response).await?;
                        self.release_request_bodies(ctx);
                        write_body(session, body.into_bytes(), false).await?;
                    }
                }
                None => {
                    // What the provider has sent already goes out in one write: a chunked
                    // provider body is read one chunk (often one event) at a time.
                    let mut batch = Gathered::default();
                    batch.extend(chunk);
                    let mut failed = None;
                    while !end {
                        let read = tokio::select! {
                            biased;
                            read = upstream.read_response_body() => read,
                            () = std::future::ready(()) => break,
                        };
                        match read {
                            Ok(read) => {
                                let (chunk, last) = self.shape_read(read, upstream, ctx);
                                batch.extend(chunk);
                                end = last;
                            }
                            Err(e) => {
                                // What was read and shaped goes out before the error's tail.
                                failed = Some(e.into_up());
                                break;
                            }
                        }
                    }
                    let body = batch.into_bytes();
                    if body.is_some() || end {
                        write_body(session, body, end).await?;
                    }
                    if let Some(e) = failed {
                        return Err(e);
                    }
                    if end {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// One read of the provider's body through the shaper, and whether it was the last.
    fn shape_read(
        &self,
        read: Option<Bytes>,
        upstream: &mut HttpSession,
        ctx: &mut Ctx,
    ) -> (Option<Bytes>, bool) {
        let end = read.is_none() || upstream.response_done();
        let mut chunk = read;
        self.shape_body(&mut chunk, end, ctx);
        (chunk, end)
    }
}

/// Whether the client gets an event stream (translated, or the provider's own).
fn is_event_stream(response: &ResponseHeader) -> bool {
    response
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes()
                .get(..17)
                .is_some_and(|t| t.eq_ignore_ascii_case(b"text/event-stream"))
        })
}

/// Resolves when the client has closed its connection (never while it is just waiting).
pub(super) async fn client_gone(session: &mut Session) -> Box<Error> {
    match session.as_mut().read_body_or_idle(true).await {
        Err(e) => e.into_down(),
        // Bytes of a pipelined next request: that is not leaving; keep waiting.
        Ok(_) => std::future::pending().await,
    }
}

/// Resolves when one of the attempt's timeouts has fired (never without a watchdog); the
/// watchdog's record of which one names it in the answer (`answer_failure`).
async fn expired(expiry: Option<&Expiry>) -> Box<Error> {
    match expiry {
        Some(expiry) => expiry.wait().await,
        None => std::future::pending().await,
    }
    Error::explain(ErrorType::ReadTimedout, "provider timeout").into_up()
}

/// Starts a response whose body is passed on as it arrives: chunked on HTTP/1.1 (each chunk
/// flushed), whatever length the provider announced for its own bytes.
async fn start_stream(session: &mut Session, mut response: ResponseHeader) -> Result<()> {
    response.remove_header(&http::header::CONTENT_LENGTH);
    response.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    session
        .write_response_header(Box::new(response), false)
        .await
        .map_err(|e| e.into_down())
}

async fn write_body(session: &mut Session, body: Option<Bytes>, end: bool) -> Result<()> {
    session
        .write_response_body(body, end)
        .await
        .map_err(|e| e.into_down())
}

/// A success whose body turned out to be an error (a provider's `error` object in a 200, a
/// body that does not parse): nothing has reached the client yet, so it gets the error's
/// status (502 for a broken body) with the error body in its own shape, never a 200.
fn with_error_status(mut response: ResponseHeader, ctx: &Ctx) -> ResponseHeader {
    if response.status.is_success()
        && let Some(status) = ctx.effective_status.filter(|s| *s >= 400)
    {
        let _ = response.set_status(status);
    }
    response
}

/// The shaped response to the client, header and body in one write.
async fn answer(session: &mut Session, mut response: ResponseHeader, body: Bytes) -> Result<()> {
    response.remove_header(&http::header::TRANSFER_ENCODING);
    response.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    session
        .write_response_header(Box::new(response), false)
        .await
        .map_err(|e| e.into_down())?;
    write_body(session, Some(body), true).await
}
