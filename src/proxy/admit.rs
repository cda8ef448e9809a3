//! `request_filter`'s decisions, in the order they are taken: which endpoint, headers within
//! the limit, endpoints answered without a key, the overall cap, the key (one config snapshot
//! per request), the adapter's limits, its provider key, and the plan — passthrough or the
//! (client, source) pair — for the exchange. Sync where it can be: only answering and
//! exchanging wait.

use super::errors::ClientProtocol;
use super::errors::ProxyError;
use super::exchange::{self, Plan};
use super::route::{self, Route};
use super::{Ctx, FlexiProxy, client_key, content_length};
use crate::config::adapter::{Adapter, ApiKey};
use crate::config::snapshot::KeyLookup;
use crate::protocol::anthropic::ErrorKind;
use crate::protocol::gemini::Method;
use crate::protocol::pair::Wire;
use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

/// What to do with a request.
pub(super) enum Admitted {
    /// Exchange it with the adapter's source.
    Exchange(Arc<Adapter>, Plan),
    /// Answer it here.
    Local(LocalAnswer),
    /// Refuse it, in the client's error shape.
    Refused(ProxyError),
}

pub(super) enum LocalAnswer {
    Probe,
    Health,
    Ready,
    Models(Arc<Adapter>),
    CountTokens,
    /// `POST /v1/responses/input_tokens` for a source that does not speak Responses.
    ResponsesInputTokens,
    /// Gemini `:countTokens` for a source that does not speak Gemini.
    GeminiCountTokens,
}

impl FlexiProxy {
    /// Decides what to do with a request from its header; fills the context as it goes.
    pub(super) fn admit(&self, req: &RequestHeader, ctx: &mut Ctx) -> Admitted {
        ctx.route = route::route(req.method.as_str(), req.uri.path());
        let anthropic_headers =
            req.headers.contains_key("anthropic-version") || req.headers.contains_key("x-api-key");
        ctx.protocol = route::client_protocol(ctx.route, anthropic_headers);
        if ctx.route == Route::Gemini {
            ctx.gemini = route::gemini_call(req.uri.path(), req.uri.query());
        }
        if let Some(e) = self.headers_too_large(req) {
            return Admitted::Refused(e);
        }
        match ctx.route {
            Route::Probe => return Admitted::Local(LocalAnswer::Probe),
            Route::Health => return Admitted::Local(LocalAnswer::Health),
            Route::Ready => return Admitted::Local(LocalAnswer::Ready),
            Route::NotFound => {
                let path = req.uri.path();
                let e = ProxyError::new(ErrorKind::NotFound, format!("no endpoint at {path}"));
                return Admitted::Refused(e);
            }
            Route::MethodNotAllowed => {
                let e = ProxyError::new(
                    ErrorKind::InvalidRequest,
                    format!("{} is not allowed here", req.method),
                )
                .with_status(405);
                return Admitted::Refused(e);
            }
            _ => {}
        }
        let adapter = match self.authenticate(req, ctx) {
            Ok(adapter) => adapter,
            Err(e) => return Admitted::Refused(e),
        };
        if let ApiKey::MissingEnv(var) = &adapter.source.api_key {
            let e = ProxyError::new(
                ErrorKind::Api,
                format!(
                    "adapter `{}` is not usable: environment variable {var} is not set on the proxy",
                    adapter.name
                ),
            )
            .with_status(503);
            return Admitted::Refused(e);
        }
        let source = super::dispatch::source_wire(adapter.source.protocol);
        let plan = match (ctx.route, source) {
            (Route::Models | Route::GeminiModels, _) => {
                return Admitted::Local(LocalAnswer::Models(adapter));
            }
            (Route::Gemini, source) => {
                let counting = ctx.gemini.as_ref().map(|g| g.method) == Some(Method::CountTokens);
                match source {
                    Wire::Gemini => Plan::Passthrough(ClientProtocol::Gemini),
                    _ if counting => return Admitted::Local(LocalAnswer::GeminiCountTokens),
                    source => Plan::for_pair(Wire::Gemini, source),
                }
            }
            (Route::CountTokens, Wire::OpenAiChat | Wire::Responses | Wire::Gemini) => {
                return Admitted::Local(LocalAnswer::CountTokens);
            }
            (Route::Messages | Route::CountTokens, source) => {
                Plan::for_pair(Wire::AnthropicMessages, source)
            }
            (Route::ChatCompletions, source) => Plan::for_pair(Wire::OpenAiChat, source),
            (Route::ResponsesInputTokens, Wire::Responses) => {
                Plan::Passthrough(super::errors::ClientProtocol::Responses)
            }
            (Route::ResponsesInputTokens, _) => {
                return Admitted::Local(LocalAnswer::ResponsesInputTokens);
            }
            (Route::Responses, source) => Plan::for_pair(Wire::Responses, source),
            _ => {
                let e = ProxyError::new(ErrorKind::NotFound, "no such endpoint");
                return Admitted::Refused(e);
            }
        };
        ctx.plan = Some(plan);
        if content_length(req).is_some_and(|n| n > self.settings.max_request_body) {
            return Admitted::Refused(exchange::too_large(self.settings.max_request_body));
        }
        Admitted::Exchange(adapter, plan)
    }

    fn headers_too_large(&self, req: &RequestHeader) -> Option<ProxyError> {
        let header_size: usize = req.uri.to_string().len()
            + req
                .headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 4)
                .sum::<usize>();
        (header_size > self.settings.max_header_size).then(|| {
            ProxyError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "request headers are larger than the limit of {} bytes",
                    self.settings.max_header_size
                ),
            )
            .with_status(431)
        })
    }

    /// The overall cap first, then the key against one config snapshot, then the adapter's
    /// own limits.
    fn authenticate(&self, req: &RequestHeader, ctx: &mut Ctx) -> Result<Arc<Adapter>, ProxyError> {
        match self.limiter.admit_overall() {
            Ok(admission) => ctx.admission = Some(admission),
            Err((e, which)) => {
                self.telemetry
                    .metrics
                    .rate_limited
                    .with_label_values(&["-", which.name()])
                    .inc();
                return Err(e);
            }
        }
        let snapshot = self.live.load_full();
        let Some(key) = client_key(req, ctx.route) else {
            return Err(ProxyError::new(
                ErrorKind::Authentication,
                "missing API key: send it as `x-api-key` or `Authorization: Bearer`",
            ));
        };
        let (adapter, label) = match snapshot.lookup(key, SystemTime::now()) {
            KeyLookup::Found(adapter, entry) => {
                note_use(&entry.last_used);
                // Only the shared limiter, token budgets and the searches per day need the
                // scope past this point.
                ctx.limits = super::limits::scope_of(adapter, entry).filter(|(_, l)| {
                    self.shared.is_some() || l.has_budget() || l.searches_per_day.is_some()
                });
                if self.shared.is_none()
                    && let Some(admission) = ctx.admission.as_mut()
                    && let Err((e, which)) = self.limiter.admit(adapter, entry, admission)
                {
                    self.telemetry
                        .metrics
                        .rate_limited
                        .with_label_values(&[adapter.name.as_str(), which.name()])
                        .inc();
                    ctx.adapter = Some(adapter.clone());
                    return Err(e);
                }
                (adapter.clone(), entry.label.clone())
            }
            KeyLookup::Expired => {
                return Err(ProxyError::new(
                    ErrorKind::Authentication,
                    "this API key has expired",
                ));
            }
            KeyLookup::Unknown => {
                return Err(ProxyError::new(
                    ErrorKind::Authentication,
                    "invalid API key",
                ));
            }
        };
        ctx.snapshot = Some(snapshot);
        ctx.key_label = label;
        ctx.adapter = Some(adapter.clone());
        Ok(adapter)
    }

    pub(super) async fn answer_locally(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        answer: LocalAnswer,
    ) -> Result<bool> {
        let json = "application/json";
        match answer {
            LocalAnswer::Probe => {
                let body = Bytes::from_static(b"ok\n");
                self.respond(session, ctx, 200, "text/plain", body, &[])
                    .await
            }
            LocalAnswer::Health => {
                let body = Bytes::from_static(b"{\"status\":\"ok\"}");
                self.respond(session, ctx, 200, json, body, &[]).await
            }
            LocalAnswer::Ready => {
                let (status, body) = if self.shutting_down.load(Ordering::Relaxed) {
                    (503, &b"{\"status\":\"shutting down\"}"[..])
                } else {
                    (200, &b"{\"status\":\"ready\"}"[..])
                };
                let body = Bytes::from_static(body);
                self.respond(session, ctx, status, json, body, &[]).await
            }
            LocalAnswer::Models(adapter) => self.list_models(session, ctx, &adapter).await,
            LocalAnswer::CountTokens => self.count_tokens_locally(session, ctx).await,
            LocalAnswer::ResponsesInputTokens => {
                self.count_input_tokens_locally(session, ctx).await
            }
            LocalAnswer::GeminiCountTokens => self.count_gemini_tokens_locally(session, ctx).await,
        }
    }

    /// Starts the exchange: reads the whole body, chooses the route and the first source
    /// and key, prepares the body for them, reserves a token budget, then makes the exchange
    /// (`direct`), which fails over to further keys and sources as needed.
    pub(super) async fn start_exchange(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        _adapter: &Adapter,
        _plan: Plan,
    ) -> Result<bool> {
        if let Err(e) = self.admit_shared(ctx).await {
            return self.respond_error(session, ctx, e).await;
        }
        let Some(raw) = self.read_whole_body(session, ctx).await? else {
            return Ok(true);
        };
        ctx.raw_body = Some(raw.clone());
        self.start_capture(session, ctx, &raw);
        let decoded = self.choose_route(ctx, &session.req_header().headers, &raw);
        let first = self
            .next_attempt(ctx)
            .and_then(|()| self.prepare_for_attempt(ctx, decoded));
        if let Err(e) = first {
            return self.respond_error(session, ctx, e).await;
        }
        // A token budget is reserved from the body (its max_tokens) before anything goes out.
        let budgeted = ctx.limits.as_ref().is_some_and(|(_, l)| l.has_budget());
        if budgeted && let Err(e) = self.reserve_budget(ctx).await {
            return self.respond_error(session, ctx, e).await;
        }
        // So is the adapter owner's quota (a refusal here gives the budget's back in `logging`).
        if let Err(e) = self.reserve_user_quota(ctx).await {
            return self.respond_error(session, ctx, e).await;
        }
        // Boxed: inline, its large state would be part of every request's future, which
        // Pingora boxes (a memcpy of the whole future) per request.
        Box::pin(self.exchange_directly(session, ctx)).await
    }
}

/// Records that a key was used now, writing the shared cell at most once a second.
fn note_use(last_used: &std::sync::atomic::AtomicU64) {
    use std::sync::atomic::Ordering::Relaxed;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if last_used.load(Relaxed) != now {
        last_used.store(now, Relaxed);
    }
}
