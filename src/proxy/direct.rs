//! Translated non-streaming requests answered with `Content-Length`: the provider exchange is
//! made here, from `request_filter`, instead of in Pingora's proxy loop.
//!
//! Why: a translated response has another length than the provider's, and Pingora writes the
//! client's response header as soon as the provider's arrives — before any body filter has
//! seen a byte. Without a length it flushes that header on its own, then flushes the body as a
//! chunk and the terminator separately: three `sendto` calls and three client wake-ups where
//! one does (~12 µs each on the benchmark machine; see docs/benchmarks.md). Here the whole
//! provider body is read and translated first, then header and body go out in one write.
//!
//! Only requests that need nothing else of the proxy loop come here: Anthropic → OpenAI,
//! `stream: false`, the body already read in `request_filter` (within the pre-read limit), and
//! an adapter without fallback sources (fail-over across sources stays with Pingora's retry
//! machinery). Everything else about the exchange is the same code as the proxy loop's hooks:
//! the upstream header (`upstream_header`), the watchdog's timeouts (`watch_upstream`), the
//! response shaping (`start_response`, `shape_body`) and the answers to failures
//! (`answer_failure`). The connection pool is Pingora's HTTP/1.1 connector, configured like
//! the proxy loop's.

use super::exchange::Plan;
use super::{Ctx, FlexiProxy};
use bytes::{Bytes, BytesMut};
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;

/// Attempts on pooled connections the provider turned out to have closed, before giving up
/// (each failure there is detected before anything was sent back).
const MAX_STALE_CONNECTIONS: usize = 3;

impl FlexiProxy {
    /// Whether [`Self::exchange_directly`] answers this request (see the module doc).
    pub(super) fn answers_directly(&self, ctx: &Ctx) -> bool {
        ctx.preread
            && matches!(ctx.plan, Some(Plan::AnthropicToOpenAi))
            && ctx.prepared.as_ref().is_some_and(|p| !p.stream)
            && ctx.adapter.as_ref().is_some_and(|a| a.fallbacks.is_empty())
    }

    /// Makes the provider exchange and answers the client; always answers (errors in the
    /// client's shape), so `request_filter` returns what this returns.
    pub(super) async fn exchange_directly(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Result<bool> {
        if let Err(e) = self.exchange(session, ctx).await {
            let answered = self.answer_failure(session, &e, ctx).await;
            if !answered.can_reuse_downstream {
                session.set_keepalive(None);
            }
        }
        Ok(true)
    }

    async fn exchange(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        let peer = self.peer_for_next_source(ctx).await?;
        let body = ctx
            .prepared
            .as_ref()
            .map(|p| p.body.clone())
            .unwrap_or_default();
        let header = self.upstream_header(session.req_header(), ctx, Some(body.len()))?;
        let mut stale = 0;
        loop {
            let (mut upstream, reused) = self.connect(&peer).await?;
            upstream.set_read_timeout(peer.options.read_timeout);
            upstream.set_write_timeout(peer.options.write_timeout);
            // The client leaving ends the exchange and closes the provider's connection, so
            // the provider stops generating (as the proxy loop does).
            let attempt = tokio::select! {
                biased;
                result = self.exchange_on(&mut upstream, &header, &body, ctx) => result,
                gone = client_gone(session) => Err(gone),
            };
            match attempt {
                Ok((response, shaped)) => {
                    if let HttpSession::H1(upstream) = upstream {
                        self.connector
                            .release_http_session(upstream, &*peer, peer.options.idle_timeout)
                            .await;
                    }
                    return answer(session, response, shaped).await;
                }
                Err(mut e) => {
                    upstream.shutdown().await;
                    // A pooled connection the provider had already closed: nothing was
                    // answered, so the request goes again on another one (as Pingora's proxy
                    // loop does). A timeout we enforced is final.
                    e.retry.decide_reuse(reused);
                    let timed_out = ctx.watchdog.as_ref().is_some_and(|w| w.fired().is_some());
                    stale += 1;
                    if e.retry()
                        && ctx.shaper.is_none()
                        && !timed_out
                        && stale < MAX_STALE_CONNECTIONS
                    {
                        if let Some(w) = ctx.watchdog.take() {
                            w.finish();
                        }
                        ctx.request_sent = false;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
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

    /// One attempt on one connection: the request out, the whole response in and shaped.
    async fn exchange_on(
        &self,
        upstream: &mut HttpSession,
        header: &RequestHeader,
        body: &Bytes,
        ctx: &mut Ctx,
    ) -> Result<(ResponseHeader, Bytes)> {
        if let Some(stream) = upstream.stream() {
            self.watch_upstream(stream.id(), ctx);
        }
        upstream
            .write_request_header(Box::new(header.clone()))
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
        let mut response = loop {
            upstream
                .read_response_header()
                .await
                .map_err(|e| e.into_up())?;
            let Some(header) = upstream.response_header() else {
                return Error::e_explain(ErrorType::InvalidHTTPHeader, "no response header");
            };
            if !header.status.is_informational() {
                break header.clone();
            }
        };
        self.start_response(&mut response, ctx)?;
        let mut out = BytesMut::new();
        loop {
            let mut chunk = upstream
                .read_response_body()
                .await
                .map_err(|e| e.into_up())?;
            let end = chunk.is_none() || upstream.response_done();
            self.shape_body(&mut chunk, end, ctx);
            if let Some(shaped) = chunk {
                out.extend_from_slice(&shaped);
            }
            if end {
                return Ok((response, out.freeze()));
            }
        }
    }
}

/// Resolves when the client has closed its connection (never while it is just waiting).
async fn client_gone(session: &mut Session) -> Box<Error> {
    match session.as_mut().read_body_or_idle(true).await {
        Err(e) => e.into_down(),
        // Bytes of a pipelined next request: that is not leaving; keep waiting.
        Ok(_) => std::future::pending().await,
    }
}

/// The shaped response to the client, header and body in one write.
async fn answer(session: &mut Session, mut response: ResponseHeader, body: Bytes) -> Result<()> {
    response.remove_header(&http::header::TRANSFER_ENCODING);
    response.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    session
        .write_response_header(Box::new(response), false)
        .await
        .map_err(|e| e.into_down())?;
    session
        .write_response_body(Some(body), true)
        .await
        .map_err(|e| e.into_down())
}
