//! The Pingora `ProxyHttp` implementation: thin glue from Pingora's hooks to `config` and
//! `protocol`. Every hook reads like a sentence; anything worth a unit test lives in
//! [`exchange`], [`route`], [`errors`] or the protocol layer.
//!
//! ```text
//! request_filter           `admit`: route; answer probes and local endpoints; sha256(key) →
//!                          adapter (one config snapshot per request); the plan — passthrough
//!                          or the (client, source) pair; size pre-check; then the exchange
//! upstream_peer            the source's resolved address, TLS + SNI, timeouts
//! upstream_request_filter  path, host, provider auth; every client header dropped
//! request_body_filter      collect the body (within the limit), translate it once at the end
//! upstream_response_filter status and headers for the client protocol; pick the shaper
//! response_body_filter     each upstream read through the shaper (stream translator, …)
//! fail_to_proxy            errors in the client's shape; mid-stream, an `error` event
//! logging                  access log, metrics
//! ```
//!
//! Translated non-streaming requests with small bodies leave the proxy loop in
//! `request_filter`: `direct.rs` makes their exchange with the same helpers and answers with
//! `Content-Length`.

mod admit;
pub mod budget;
mod direct;
mod dispatch;
pub mod errors;
pub mod exchange;
pub mod ids;
pub mod ingress;
mod inspect;
mod limits;
mod quota;
mod report;
pub mod route;
pub mod shared_health;
pub mod shared_limits;
pub mod upstream;
pub mod user_quota;
pub mod watchdog;
mod web_search;

use crate::config::adapter::{Adapter, Source};
use crate::config::snapshot::Snapshot;
use crate::config::watch::LiveConfig;
use crate::protocol::anthropic::{CountTokensRequest, ErrorKind};
use crate::protocol::pair::Wire;
use crate::protocol::tokens::count_request;
use crate::telemetry::Telemetry;
use admit::Admitted;
use async_trait::async_trait;
use bytes::Bytes;
use errors::{ClientProtocol, ProxyError};
use exchange::{BodyCollector, Plan, Prepared, ResponseShaper};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{ErrorSource, ErrorType};
use route::Route;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Settings of the proxy that do not change with adapter reloads.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub max_request_body: usize,
    /// Concurrent proxied requests across all adapters (0 = unlimited).
    pub max_concurrent_requests: usize,
    /// Largest request header section, in bytes.
    pub max_header_size: usize,
    /// Seals reasoning into Responses answers (`config::reasoning_key`).
    pub reasoning_key: crate::protocol::responses::seal::ReasoningKey,
    /// Panel accounts: a non-admin owner's adapter may not reach internal addresses.
    pub users: Arc<crate::config::users::UsersStore>,
    pub egress: crate::config::egress::EgressPolicy,
    /// Limits counted in Redis across instances (`limits.backend: redis`).
    pub shared: Option<Arc<shared_limits::SharedLimiter>>,
    /// Provider key health shared in Redis across instances (`limits.backend: redis`).
    pub shared_health: Option<Arc<shared_health::SharedHealth>>,
    /// The search backend for clients whose source cannot search (`web_search:`).
    pub web_search: Option<Arc<crate::websearch::Searcher>>,
    /// Per-user quotas over all of a user's adapters (`accounts.default_quota`, `quota:`).
    pub quotas: Arc<user_quota::Quotas>,
}

pub struct FlexiProxy {
    live: LiveConfig,
    settings: ProxySettings,
    dns: upstream::Dns,
    /// Set when shutdown begins; readiness turns 503.
    shutting_down: Arc<AtomicBool>,
    telemetry: Arc<Telemetry>,
    limiter: limits::Limiter,
    /// Requests in progress (for draining at shutdown).
    inflight: Arc<std::sync::atomic::AtomicUsize>,
    /// Provider timeouts of the requests in progress; ends what is left when the shutdown
    /// grace period is over.
    watchdogs: watchdog::WatchList,
    /// The shared limiter, when limits are counted in Redis.
    shared: Option<Arc<shared_limits::SharedLimiter>>,
    /// Token budgets counted in this process (the local backend).
    budgets: budget::LocalBudgets,
    /// Upstream connections for the exchanges made outside Pingora's proxy loop (`direct`),
    /// configured like the proxy loop's own connector.
    connector: pingora::connectors::http::v1::Connector,
}

/// What the proxy shares with the server's shutdown logic.
#[derive(Clone)]
pub struct Lifecycle {
    /// Set when shutdown begins; readiness turns 503.
    pub shutting_down: Arc<AtomicBool>,
    /// Requests in progress.
    pub inflight: Arc<std::sync::atomic::AtomicUsize>,
    /// Turns true when the grace period is over.
    pub terminate: tokio::sync::watch::Receiver<bool>,
}

/// Counts a request as in flight (for draining and the metric) for as long as its context lives.
pub struct InflightGuard(Arc<std::sync::atomic::AtomicUsize>, prometheus::IntGauge);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        self.1.dec();
    }
}

const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
const ANTHROPIC_VERSION: http::HeaderName = http::HeaderName::from_static("anthropic-version");
const ANTHROPIC_BETA: http::HeaderName = http::HeaderName::from_static("anthropic-beta");

impl FlexiProxy {
    pub fn new(
        live: LiveConfig,
        settings: ProxySettings,
        lifecycle: Lifecycle,
        telemetry: Arc<Telemetry>,
        server_conf: &pingora::server::configuration::ServerConf,
    ) -> Self {
        let Lifecycle {
            shutting_down,
            inflight,
            terminate,
        } = lifecycle;
        let shared = settings.shared.clone();
        FlexiProxy {
            inflight,
            watchdogs: watchdog::WatchList::new(terminate),
            limiter: limits::Limiter::new(settings.max_concurrent_requests),
            live,
            settings,
            dns: upstream::Dns::new(),
            shutting_down,
            telemetry,
            shared,
            budgets: budget::LocalBudgets::default(),
            connector: pingora::connectors::http::v1::Connector::new(Some(
                pingora::connectors::ConnectorOptions::from_server_conf(server_conf),
            )),
        }
    }
}

/// Everything one request carries from hook to hook.
pub struct Ctx {
    pub request_id: String,
    pub started: Instant,
    pub route: Route,
    pub protocol: ClientProtocol,
    /// The config snapshot this request uses from start to end.
    pub snapshot: Option<Arc<Snapshot>>,
    pub adapter: Option<Arc<Adapter>>,
    pub key_label: Option<String>,
    pub plan: Option<Plan>,
    pub request_body: BodyCollector,
    pub prepared: Option<Prepared>,
    /// The model and method of a Gemini request (they are in its path).
    pub gemini: Option<crate::protocol::gemini::GeminiCall>,
    pub shaper: Option<ResponseShaper>,
    /// Masks the adapter's provider keys out of the provider's bytes, before anything else
    /// reads them: set for error answers and streams (which may carry an error event).
    pub masker: Option<crate::protocol::secrets::SecretMasker>,
    /// The error to answer with when a hook fails (rendered by `fail_to_proxy`).
    pub error: Option<ProxyError>,
    pub upstream_status: Option<u16>,
    /// The status the client saw, when it differs from the header (an error inside a 200).
    pub effective_status: Option<u16>,
    pub first_byte: Option<Instant>,
    /// Concurrency slots held until the request ends.
    pub admission: Option<limits::Admission>,
    /// The limits that apply and the scope they count in.
    pub limits: Option<(String, crate::config::adapter::Limits)>,
    /// The token budget this request reserved, settled when it ends.
    pub budget: Option<budget::Reservation>,
    /// What this request reserved in its adapter owner's quota, settled when it ends.
    pub quota: Option<user_quota::QuotaReservation>,
    /// Counted in the open-streams gauge.
    pub stream_open: bool,
    /// Usage read from a passthrough response (when statistics are on).
    pub observer: Option<crate::protocol::usage::UsageObserver>,
    pub bytes_out: usize,
    /// What went wrong with the provider, for metrics and logs.
    pub error_kind: Option<&'static str>,
    /// First-byte, idle and total timeouts of the current upstream attempt.
    pub watchdog: Option<watchdog::Watchdog>,
    /// The source of the current attempt in its route's chain: 0 the route's (or the
    /// adapter's) own, then its fallbacks.
    pub source_index: usize,
    /// The route, the conversation and the keys this request tried (see `dispatch`).
    pub dispatch: dispatch::Dispatch,
    /// For the access log: the route's name and the last attempt's key (`source/key`).
    pub route_name: Option<String>,
    pub key_slot: Option<String>,
    /// The (route, source) `prepared` was built for.
    pub prepared_for: Option<(Option<usize>, usize)>,
    /// The client's body, kept to re-translate for a fallback source.
    pub raw_body: Option<Bytes>,
    /// The whole request body has gone to the provider (reset by a retry's replay).
    pub request_sent: bool,
    /// Searches the gateway ran for this request (`web_search`).
    pub web_searches: u32,
    /// The exchange as the inspector will keep it (adapters with `inspect:` only).
    pub capture: Option<Box<crate::telemetry::capture::Capture>>,
    _inflight: InflightGuard,
}

impl FlexiProxy {
    fn source<'a>(&self, ctx: &'a Ctx) -> Option<&'a Source> {
        dispatch::at(ctx.adapter.as_ref()?, ctx.dispatch.route, ctx.source_index)
    }

    /// Sends a complete local response. HEAD gets the headers only.
    async fn respond(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        status: u16,
        content_type: &str,
        body: Bytes,
        extra: &[(&str, String)],
    ) -> Result<bool> {
        let is_head = session.req_header().method == http::Method::HEAD;
        let mut resp = ResponseHeader::build(status, Some(4 + extra.len()))?;
        resp.insert_header("content-type", content_type)?;
        resp.insert_header("content-length", body.len().to_string())?;
        resp.insert_header("x-request-id", ctx.request_id.as_str())?;
        for (name, value) in extra {
            resp.insert_header(name.to_string(), value.as_str())?;
        }
        session
            .write_response_header(Box::new(resp), is_head)
            .await?;
        if !is_head {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(true)
    }

    /// Answers with an error in the client's shape. The request body is drained first (when
    /// it is within the limit) so the client reads the answer rather than a reset.
    async fn respond_error(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        error: ProxyError,
    ) -> Result<bool> {
        let within_limit = content_length(session.req_header())
            .is_none_or(|n| n <= self.settings.max_request_body);
        if within_limit {
            if session.drain_request_body().await.is_err() {
                session.set_keepalive(None);
            }
        } else {
            session.set_keepalive(None);
        }
        let mut extra = Vec::new();
        if let Some(seconds) = &error.retry_after {
            extra.push(("retry-after", seconds.clone()));
        }
        let body = Bytes::from(error.body(ctx.protocol));
        self.respond(session, ctx, error.status, "application/json", body, &extra)
            .await
    }

    /// Reads the whole request body for endpoints answered locally.
    async fn read_body(&self, session: &mut Session) -> std::result::Result<Bytes, ProxyError> {
        let mut body = BodyCollector::default();
        body.expect(
            content_length(session.req_header()),
            self.settings.max_request_body,
        );
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => body.push(chunk, self.settings.max_request_body)?,
                Ok(None) => return Ok(body.take()),
                Err(e) => {
                    return Err(ProxyError::new(
                        ErrorKind::InvalidRequest,
                        format!("cannot read the request body: {}", e.etype().as_str()),
                    ));
                }
            }
        }
    }

    /// Reads the whole request body (within the limit) before anything goes upstream: the
    /// route is chosen from it, it is prepared for each attempt's source, and it goes out with
    /// its length. `None` when the client was answered (too large).
    async fn read_whole_body(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Option<Bytes>> {
        ctx.request_body.expect(
            content_length(session.req_header()),
            self.settings.max_request_body,
        );
        while let Some(chunk) = session.read_request_body().await? {
            if let Err(e) = ctx.request_body.push(chunk, self.settings.max_request_body) {
                self.respond_error(session, ctx, e).await?;
                return Ok(None);
            }
        }
        Ok(Some(ctx.request_body.take()))
    }

    /// Once the request is sent and the response has started, nothing will resend it, so
    /// its bodies (75 KB and more for Claude Code) need not live as long as a stream does.
    /// The usage statistics keep the prepared one to count its tokens when the provider
    /// reports none.
    /// Called once the client's response has started: until then another key or source may
    /// still need them (fail-over re-prepares from the raw body).
    fn release_request_bodies(&self, ctx: &mut Ctx) {
        ctx.raw_body = None;
        if self.telemetry.usage.is_none()
            && let Some(prepared) = ctx.prepared.as_mut()
        {
            prepared.body = Bytes::new();
        }
    }

    /// Where the current attempt's source is reached.
    async fn peer_for_current_source(&self, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let Some(source) = self.source(ctx) else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no adapter for upstream",
            ));
        };
        let endpoint = &source.endpoint;
        match self.dns.resolve(&endpoint.host, endpoint.port).await {
            Ok(addr) => {
                if let Some(refusal) = self.egress_refusal(ctx, &endpoint.host, addr.ip()) {
                    let e = ProxyError::new(ErrorKind::Permission, refusal).with_status(403);
                    return Err(fail(ctx, e));
                }
                Ok(Box::new(upstream::peer(addr, endpoint, &source.timeouts)))
            }
            Err(message) => {
                let e = ProxyError::new(
                    ErrorKind::Api,
                    format!("the provider is unreachable: {message}"),
                )
                .with_status(502);
                Err(fail(ctx, e))
            }
        }
    }

    /// Why this connection is refused: the adapter belongs to a non-admin user and the
    /// address just resolved is internal (checked per connect, so rebinding cannot pass).
    fn egress_refusal(&self, ctx: &Ctx, host: &str, ip: std::net::IpAddr) -> Option<String> {
        let owner = ctx.adapter.as_ref()?.owner.as_deref()?;
        if self.settings.users.current().is_admin(owner) {
            return None;
        }
        self.settings.egress.refusal(host, ip)
    }

    /// The request header for the provider: only what it needs, nothing of the client's but
    /// the Anthropic version and beta flags on a passthrough.
    fn upstream_header(
        &self,
        client: &RequestHeader,
        ctx: &Ctx,
        content_length: Option<usize>,
    ) -> Result<RequestHeader> {
        let (Some(source), Some(plan)) = (self.source(ctx), ctx.plan) else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no plan for upstream request",
            ));
        };
        let endpoint = &source.endpoint;
        // The client's query string stays here: it may carry its key (`?key=`), and no
        // provider needs it (a Gemini source's `alt=sse` is rebuilt from the parsed call).
        let mut path = String::with_capacity(endpoint.path.len() + 40);
        path.push_str(&endpoint.path);
        path.push_str(match (plan.source_wire(), ctx.route) {
            (Wire::AnthropicMessages, Route::CountTokens) => "/v1/messages/count_tokens",
            (Wire::AnthropicMessages, _) => "/v1/messages",
            (Wire::OpenAiChat, _) => "/chat/completions",
            (Wire::Responses, Route::ResponsesInputTokens) => "/responses/input_tokens",
            (Wire::Responses, _) => "/responses",
            (Wire::Gemini, _) => "",
        });
        if let (Wire::Gemini, Some(prepared)) = (plan.source_wire(), &ctx.prepared) {
            // A Gemini client's own call, or (other clients) the one its request makes.
            let own = crate::protocol::gemini::GeminiCall {
                model: String::new(),
                method: if prepared.stream {
                    crate::protocol::gemini::Method::Stream
                } else {
                    crate::protocol::gemini::Method::Generate
                },
                sse: true,
            };
            let call = ctx.gemini.as_ref().unwrap_or(&own);
            path.push_str(&call.upstream_path(&prepared.source_model));
        }
        let key = ctx.dispatch.lease.as_ref().map_or(0, |l| l.index());
        let Some(auth) = source.keys.get(key).and_then(|k| k.auth.as_ref()) else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "adapter without provider key",
            ));
        };
        // A new header with only what the provider needs, written straight into the
        // `HeaderMap`: Pingora's insert/remove re-parse every name and keep a case map
        // (~1,400 instructions an insert), and the client's headers are not forwarded anyway.
        let mut headers = http::HeaderMap::with_capacity(12);
        headers.insert(http::header::HOST, endpoint.host_value.clone());
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        // The body filters must see plain bytes.
        headers.insert(
            http::header::ACCEPT_ENCODING,
            http::HeaderValue::from_static("identity"),
        );
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(concat!("flexiproxy/", env!("CARGO_PKG_VERSION"))),
        );
        if let Ok(id) = http::HeaderValue::from_str(&ctx.request_id) {
            headers.insert(X_REQUEST_ID, id);
        }
        if let Some(len) = content_length {
            headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
        }
        headers.insert(auth.name.clone(), auth.value.clone());
        if plan.source_wire() == Wire::AnthropicMessages {
            let version = client
                .headers
                .get(ANTHROPIC_VERSION)
                .cloned()
                .unwrap_or_else(|| http::HeaderValue::from_static("2023-06-01"));
            headers.insert(ANTHROPIC_VERSION, version);
            // Beta flags are the client's to ask for, only when it speaks Anthropic itself.
            if let Some(beta) = client.headers.get(ANTHROPIC_BETA).filter(|_| {
                !source.strip_anthropic_beta && plan == Plan::Passthrough(ClientProtocol::Anthropic)
            }) {
                headers.insert(ANTHROPIC_BETA, beta.clone());
            }
        }
        let mut parts = http::Request::new(()).into_parts().0;
        parts.method = http::Method::POST;
        parts.uri = path
            .parse()
            .map_err(|_| Error::explain(ErrorType::InternalError, "invalid upstream path"))?;
        parts.headers = headers;
        Ok(RequestHeader::from(parts))
    }

    /// The provider's response header has arrived (and is final): record it, pick the shaper
    /// for the body, and rewrite the header for the client.
    fn start_response(&self, upstream_response: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
        let status = upstream_response.status.as_u16();
        ctx.upstream_status = Some(status);
        ctx.first_byte = Some(Instant::now());
        if let Some(w) = &ctx.watchdog {
            w.activity();
        }
        let (Some(plan), Some(prepared)) = (ctx.plan, ctx.prepared.as_ref()) else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "response without a prepared request",
            ));
        };
        let content_type = upstream_response
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let shaper = ResponseShaper::new(plan, status, &content_type, prepared);
        // An error answer, or a stream that may end in an error event, goes through the
        // masker before anything reads it; a success's JSON is left as it is.
        let masked = !(200..300).contains(&status)
            || prepared.stream
            || shaper.is_stream()
            || content_type.starts_with("text/event-stream");
        // Edited as plain `http` parts: see `upstream_header` for why.
        let mut parts = http::response::Parts::from(std::mem::replace(
            upstream_response,
            ResponseHeader::from(http::Response::new(()).into_parts().0),
        ));
        if shaper.rewrites_body() {
            let retry_after = parts.headers.remove(http::header::RETRY_AFTER);
            parts.headers.clear();
            if !(200..600).contains(&status) || (300..400).contains(&status) {
                parts.status = http::StatusCode::BAD_GATEWAY;
            }
            let content_type = if shaper.is_stream() && !shaper.is_json_array() {
                parts.headers.insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-cache"),
                );
                "text/event-stream; charset=utf-8"
            } else {
                "application/json"
            };
            parts.headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(content_type),
            );
            if let Some(v) = retry_after {
                parts.headers.insert(http::header::RETRY_AFTER, v);
            }
        } else {
            parts.headers.remove(http::header::SET_COOKIE);
            if masked {
                // A masked body may be shorter than the provider said.
                parts.headers.remove(http::header::CONTENT_LENGTH);
            }
        }
        if let Ok(id) = http::HeaderValue::from_str(&ctx.request_id) {
            parts.headers.insert(X_REQUEST_ID, id);
        }
        if let Some(count) = inspect::notes_header(ctx) {
            parts.headers.insert(inspect::X_FLEXIPROXY_NOTES, count);
        }
        *upstream_response = ResponseHeader::from(parts);
        let event_stream = shaper.is_stream() || content_type.starts_with("text/event-stream");
        if (200..300).contains(&status)
            && event_stream
            && let Some(adapter) = &ctx.adapter
        {
            {
                self.telemetry
                    .metrics
                    .open_streams
                    .with_label_values(&[adapter.name.as_str()])
                    .inc();
                ctx.stream_open = true;
            }
        }
        if status >= 400 {
            ctx.error_kind = Some(if status >= 500 {
                "status_5xx"
            } else {
                "status_4xx"
            });
        }
        if let Plan::Passthrough(_) = plan
            && (self.telemetry.usage.is_some() || ctx.budget.is_some() || ctx.quota.is_some())
            && (200..300).contains(&status)
        {
            ctx.observer = Some(crate::protocol::usage::UsageObserver::new(
                plan.source_wire(),
                event_stream,
            ));
        }
        ctx.shaper = Some(shaper);
        ctx.masker = ctx.adapter.as_deref().filter(|_| masked).map(|adapter| {
            crate::protocol::secrets::SecretMasker::new(&errors::provider_secrets(adapter))
        });
        Ok(())
    }

    /// One read of the provider's body (`None` at the end) through the shaper, in place.
    fn shape_body(&self, body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut Ctx) {
        if let Some(w) = &ctx.watchdog {
            if end_of_stream {
                w.finish();
            } else {
                w.activity();
            }
        }
        // The provider's bytes with its keys masked, before the shaper, the usage observer or
        // the client sees them (error answers and streams; see `start_response`).
        if let Some(masker) = ctx.masker.as_mut() {
            *body = masker.feed(body.take(), end_of_stream);
        }
        if let Some(capture) = ctx.capture.as_mut() {
            capture.provider_read(body.as_deref());
        }
        if let (Some(observer), Some(chunk)) = (ctx.observer.as_mut(), body.as_deref()) {
            observer.feed(chunk);
        }
        // A passthrough's bytes stay as they are (no copy).
        if let Some(shaper) = ctx.shaper.as_mut().filter(|s| s.rewrites_body()) {
            let shaped = shaper.feed(body.as_deref(), end_of_stream);
            *body = shaped.body;
            if shaped.error_status.is_some() {
                ctx.effective_status = shaped.error_status;
                // An error found inside a success's JSON (not masked on the way in).
                if ctx.masker.is_none()
                    && let (Some(adapter), Some(answer)) = (ctx.adapter.as_deref(), body.as_ref())
                    && let std::borrow::Cow::Owned(clean) = crate::protocol::secrets::mask_secrets(
                        answer,
                        &errors::provider_secrets(adapter),
                    )
                {
                    *body = Some(Bytes::from(clean));
                }
            }
        }
        ctx.bytes_out += body.as_ref().map_or(0, |b| b.len());
        if let (Some(capture), Some(chunk)) = (ctx.capture.as_mut(), body.as_deref()) {
            capture.client_write(chunk);
        }
    }

    /// Answers a failed exchange: the error in the client's shape, a timeout named as such, or
    /// (mid-response) a well-formed end of what the client is reading.
    async fn answer_failure(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let client_gone = e.esource() == &ErrorSource::Downstream
            && matches!(
                e.etype(),
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed
            );
        // Pingora's own read timeout is only a backstop behind the watchdog; should it win
        // the race anyway, name the timeout the request's phase was waiting on.
        let backstop_timeout =
            e.esource() == &ErrorSource::Upstream && e.etype() == &ErrorType::ReadTimedout;
        let timed_out = ctx.watchdog.as_ref().and_then(|w| {
            let phase_timeout = w.timeout_for_phase();
            w.finish();
            w.fired()
                .or_else(|| phase_timeout.filter(|_| backstop_timeout))
        });
        let error = match timed_out {
            Some((watchdog::Timeout::Shutdown, _)) => {
                ctx.error_kind = Some("shutdown");
                ProxyError::new(
                    ErrorKind::Overloaded,
                    watchdog::Timeout::Shutdown.describe(Default::default()),
                )
                .with_status(503)
            }
            Some((which, after)) => {
                ctx.error_kind = Some("timeout");
                ProxyError::new(ErrorKind::Timeout, which.describe(after)).with_status(504)
            }
            None => ctx
                .error
                .take()
                .unwrap_or_else(|| upstream_failure(e, self.source(ctx))),
        };
        let mut code = error.status;
        if ctx.error_kind.is_none() {
            ctx.error_kind = report::failure_kind(e);
        }
        let mut ended_cleanly = false;
        if client_gone {
            // The client left; report what it was sent, if anything.
            code = session.response_written().map_or(0, |r| r.status.as_u16());
        } else if let Some(sent) = session.response_written() {
            // Headers are out: end what the client is reading in a well-formed way.
            code = sent.status.as_u16();
            let tail = ctx.shaper.as_mut().and_then(|s| s.fail(&error));
            if let (Some(capture), Some(tail)) = (ctx.capture.as_mut(), tail.as_deref()) {
                capture.client_write(tail);
            }
            if let Some(tail) = tail {
                ended_cleanly = session.write_response_body(Some(tail), true).await.is_ok();
            }
        } else {
            session.set_keepalive(None);
            if let Some(capture) = ctx.capture.as_mut() {
                capture.client_write(&error.body(ctx.protocol));
            }
            let _ = self.respond_error(session, ctx, error.clone()).await;
        }
        if ctx.effective_status.is_none() {
            ctx.effective_status = Some(code);
        }
        ctx.error = Some(error);
        FailToProxy {
            error_code: code,
            // A response we ended well-formed, after the whole request was read, leaves the
            // connection usable: closing it would race the client's next request on it (the
            // client cannot know; its headers said keep-alive) and reset that request.
            can_reuse_downstream: ended_cleanly
                && session.as_mut().is_body_done()
                && !self.shutting_down.load(Ordering::Relaxed),
        }
    }

    /// Starts the timeouts of a direct exchange's attempt, about to send its request; its
    /// waits end on the returned expiry.
    fn watch_in_task(&self, ctx: &mut Ctx) -> Option<watchdog::Expiry> {
        let limits = self.watch_limits(ctx)?;
        let watchdog = self.watchdogs.watch_in_task(ctx.started, limits);
        let expiry = watchdog.expiry();
        ctx.watchdog = Some(watchdog);
        Some(expiry)
    }

    fn watch_limits(&self, ctx: &Ctx) -> Option<watchdog::Limits> {
        let t = &self.source(ctx)?.timeouts;
        Some(watchdog::Limits {
            first_byte: t.first_byte,
            idle: t.idle,
            total: t.total,
        })
    }

    async fn count_tokens_locally(&self, session: &mut Session, ctx: &Ctx) -> Result<bool> {
        let body = match self.read_body(session).await {
            Ok(b) => b,
            Err(e) => return self.respond_error(session, ctx, e).await,
        };
        let request: CountTokensRequest = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                let error = ProxyError::new(
                    ErrorKind::InvalidRequest,
                    format!("invalid request body: {e}"),
                );
                return self.respond_error(session, ctx, error).await;
            }
        };
        let tokens = count_request(&request);
        let body = Bytes::from(format!("{{\"input_tokens\":{tokens}}}"));
        self.respond(session, ctx, 200, "application/json", body, &[])
            .await
    }

    /// `POST /v1/responses/input_tokens` for a source without the Responses API: the
    /// request decoded as it would be sent, counted with the local tokenizer.
    async fn count_input_tokens_locally(&self, session: &mut Session, ctx: &Ctx) -> Result<bool> {
        let body = match self.read_body(session).await {
            Ok(b) => b,
            Err(e) => return self.respond_error(session, ctx, e).await,
        };
        let counted = std::str::from_utf8(&body)
            .map_err(|e| format!("invalid request body: not UTF-8: {e}"))
            .and_then(|text| {
                crate::protocol::responses::decode_request::decode_request(text, None)
                    .map_err(|e| e.0)
            })
            .map(|c| crate::protocol::tokens::count_conversation(&c));
        match counted {
            Ok(tokens) => {
                let body =
                    format!("{{\"object\":\"response.input_tokens\",\"input_tokens\":{tokens}}}");
                self.respond(
                    session,
                    ctx,
                    200,
                    "application/json",
                    Bytes::from(body),
                    &[],
                )
                .await
            }
            Err(message) => {
                let error = ProxyError::new(ErrorKind::InvalidRequest, message);
                self.respond_error(session, ctx, error).await
            }
        }
    }

    /// Gemini `:countTokens` for a source without the Gemini API: counted locally.
    async fn count_gemini_tokens_locally(&self, session: &mut Session, ctx: &Ctx) -> Result<bool> {
        let body = match self.read_body(session).await {
            Ok(b) => b,
            Err(e) => return self.respond_error(session, ctx, e).await,
        };
        let model = ctx.gemini.as_ref().map_or("", |g| g.model.as_str());
        let counted = std::str::from_utf8(&body)
            .map_err(|e| format!("invalid request body: not UTF-8: {e}"))
            .and_then(|text| {
                crate::protocol::gemini::decode_request::decode_request(text, model, false, None)
                    .map_err(|e| e.0)
            })
            .map(|c| crate::protocol::tokens::count_conversation(&c));
        match counted {
            Ok(tokens) => {
                let body = format!("{{\"totalTokens\":{tokens}}}");
                self.respond(
                    session,
                    ctx,
                    200,
                    "application/json",
                    Bytes::from(body),
                    &[],
                )
                .await
            }
            Err(message) => {
                let error = ProxyError::new(ErrorKind::InvalidRequest, message);
                self.respond_error(session, ctx, error).await
            }
        }
    }

    async fn list_models(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        adapter: &Adapter,
    ) -> Result<bool> {
        let models = adapter.listed_models();
        let body = match ctx.protocol {
            ClientProtocol::Anthropic => crate::protocol::anthropic::model_list(&models),
            ClientProtocol::Gemini => crate::protocol::gemini::model_list(&models),
            ClientProtocol::OpenAi | ClientProtocol::Responses => {
                crate::protocol::openai_chat::model_list(&models, &adapter.name)
            }
        };
        self.respond(
            session,
            ctx,
            200,
            "application/json",
            Bytes::from(body),
            &[],
        )
        .await
    }
}

/// The client's key: `x-api-key`, `x-goog-api-key` (Gemini), `Authorization: Bearer`, or —
/// on Gemini's routes only, where Google's clients put it — `?key=`.
pub fn client_key(req: &RequestHeader, route: Route) -> Option<&str> {
    for name in ["x-api-key", "x-goog-api-key"] {
        if let Some(v) = req.headers.get(name).and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            if !v.is_empty() {
                return Some(v);
            }
        }
    }
    let bearer = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    let gemini = matches!(route, Route::Gemini | Route::GeminiModels);
    bearer.or_else(|| query_key(req.uri.query().filter(|_| gemini)?))
}

/// The body of the 431 answer to a header section over `limit` bytes, in the shape of the
/// client the request line names (see `ingress`).
pub fn oversized_header_body(method: &str, target: &str, limit: usize) -> Vec<u8> {
    let path = target.split('?').next().unwrap_or("");
    let protocol = route::client_protocol(route::route(method, path), false);
    ProxyError::new(
        ErrorKind::InvalidRequest,
        format!("request headers are larger than the limit of {limit} bytes"),
    )
    .with_status(431)
    .body(protocol)
}

/// `key=` in a query string (Gemini's API key parameter); keys are URL-safe as issued.
fn query_key(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("key="))
        .filter(|k| !k.is_empty())
}

fn content_length(req: &RequestHeader) -> Option<usize> {
    req.headers
        .get("content-length")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Turns a Pingora error into the client's error (no secrets: Pingora's messages name hosts
/// and error kinds, never headers).
fn upstream_failure(e: &Error, source: Option<&Source>) -> ProxyError {
    let host = source.map_or_else(String::new, |s| format!(" {}", s.endpoint.host_header()));
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::TLSHandshakeTimedout => ProxyError::new(
            ErrorKind::Timeout,
            format!("timed out connecting to the provider{host}"),
        )
        .with_status(504),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => ProxyError::new(
            ErrorKind::Timeout,
            format!("the provider{host} did not answer in time"),
        )
        .with_status(504),
        ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
            ProxyError::new(
                ErrorKind::Api,
                format!(
                    "cannot connect to the provider{host}: {}",
                    e.etype().as_str()
                ),
            )
            .with_status(502)
        }
        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::HandshakeError => {
            ProxyError::new(
                ErrorKind::Api,
                format!("TLS with the provider{host} failed: {}", e.etype().as_str()),
            )
            .with_status(502)
        }
        ErrorType::HTTPStatus(code) => {
            ProxyError::new(ErrorKind::from_status(*code), "request failed").with_status(*code)
        }
        _ if e.esource() == &ErrorSource::Upstream => ProxyError::new(
            ErrorKind::Api,
            format!(
                "the connection to the provider{host} failed: {}",
                e.etype().as_str()
            ),
        )
        .with_status(502),
        _ => ProxyError::new(ErrorKind::Api, "internal error").with_status(500),
    }
}

/// A Pingora error that carries a status for the logs; the client sees `ctx.error`.
fn fail(ctx: &mut Ctx, error: ProxyError) -> Box<Error> {
    let status = error.status;
    ctx.error = Some(error);
    Error::new(ErrorType::HTTPStatus(status))
}

#[async_trait]
impl ProxyHttp for FlexiProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            request_id: ids::request_id(),
            started: Instant::now(),
            route: Route::NotFound,
            protocol: ClientProtocol::Anthropic,
            snapshot: None,
            adapter: None,
            key_label: None,
            plan: None,
            request_body: BodyCollector::default(),
            prepared: None,
            gemini: None,
            shaper: None,
            masker: None,
            error: None,
            upstream_status: None,
            effective_status: None,
            first_byte: None,
            admission: None,
            limits: None,
            budget: None,
            quota: None,
            stream_open: false,
            observer: None,
            bytes_out: 0,
            error_kind: None,
            watchdog: None,
            source_index: 0,
            dispatch: dispatch::Dispatch::default(),
            route_name: None,
            key_slot: None,
            prepared_for: None,
            raw_body: None,
            request_sent: false,
            web_searches: 0,
            capture: None,
            _inflight: {
                self.inflight.fetch_add(1, Ordering::AcqRel);
                let gauge = self.telemetry.metrics.inflight.clone();
                gauge.inc();
                InflightGuard(self.inflight.clone(), gauge)
            },
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // Shutting down: answer, then close, so clients move to the new process or instance.
        if self.shutting_down.load(Ordering::Relaxed) {
            session.set_keepalive(None);
        }
        match self.admit(session.req_header(), ctx) {
            Admitted::Exchange(adapter, plan) => {
                self.start_exchange(session, ctx, &adapter, plan).await
            }
            Admitted::Local(answer) => self.answer_locally(session, ctx, answer).await,
            Admitted::Refused(e) => self.respond_error(session, ctx, e).await,
        }
    }

    /// What Pingora's own log lines say about a request: method and path, never the query
    /// string (a Gemini client's `?key=`), and the request id that finds it in the access log.
    fn request_summary(&self, session: &Session, ctx: &Ctx) -> String {
        let req = session.req_header();
        format!(
            "{} {}, request id: {}",
            req.method,
            req.uri.path(),
            ctx.request_id
        )
    }

    /// Never reached: every exchange is made in `request_filter` (see `direct`), where the
    /// route, the source and the key are chosen per attempt and any request can fail over.
    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        Err(Error::explain(
            ErrorType::InternalError,
            "exchanges are made in request_filter",
        ))
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        self.answer_failure(session, e, ctx).await
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if let Some(w) = ctx.watchdog.take() {
            w.finish();
        }
        let usage = report::report(&self.telemetry, session, e, ctx);
        if ctx.capture.is_some() {
            self.keep_exchange(session, ctx, usage.as_ref());
        }
        self.settle_user_quota(ctx, usage).await;
        self.settle_budget(ctx, usage).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_key_only_on_gemini_routes() {
        let req = |target: &str| RequestHeader::build("POST", target.as_bytes(), None).unwrap();
        let gemini = req("/v1beta/models/m:generateContent?alt=sse&key=k1");
        assert_eq!(client_key(&gemini, Route::Gemini), Some("k1"));
        let models = req("/v1beta/models?key=k2");
        assert_eq!(client_key(&models, Route::GeminiModels), Some("k2"));
        for route in [Route::Messages, Route::ChatCompletions, Route::Models] {
            assert_eq!(client_key(&req("/v1/messages?key=k3"), route), None);
        }
        let mut with_header = req("/v1/messages?key=k3");
        with_header.insert_header("x-api-key", "h").unwrap();
        assert_eq!(client_key(&with_header, Route::Messages), Some("h"));
    }

    #[test]
    fn oversized_header_answers_in_the_clients_shape() {
        let anthropic: serde_json::Value =
            serde_json::from_slice(&oversized_header_body("POST", "/v1/messages?x=1", 100))
                .unwrap();
        assert_eq!(anthropic["error"]["type"], "invalid_request_error");
        let gemini: serde_json::Value = serde_json::from_slice(&oversized_header_body(
            "POST",
            "/v1beta/models/m:generateContent",
            100,
        ))
        .unwrap();
        assert_eq!(gemini["error"]["code"], 431);
        assert!(gemini["error"]["message"].as_str().unwrap().contains("100"));
    }
}
