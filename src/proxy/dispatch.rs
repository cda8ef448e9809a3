//! Which route, source and provider key serve each attempt of a request, and what the
//! provider's answer does to that key — the proxy's side of `routing/`, in one place for
//! every exchange. The route is chosen once per request (the request is decoded for it only
//! when a route or a sticky pool needs to look inside); each attempt then takes the next
//! healthy key of the route's source, then of its fallbacks, skipping keys this request
//! already tried, up to the adapter's `max_attempts`.

use super::errors::ProxyError;
use super::exchange::Plan;
use super::{Ctx, FlexiProxy};
use crate::config::adapter::{Adapter, ImagePolicy, Source, SourceProtocol};
use crate::protocol::anthropic::ErrorKind;
use crate::protocol::pair::{Pair, Wire};
use crate::protocol::pivot::Conversation;
use crate::routing::{self, Change, ConversationHints, KeyLease, Outcome, Pick, RequestFeatures};
use std::time::Instant;

/// One request's way through its adapter's routes, sources and keys.
#[derive(Debug, Default)]
pub struct Dispatch {
    /// The route serving the request; `None`: the adapter's `source`.
    pub route: Option<usize>,
    /// The conversation's id, for sticky pools.
    pub conversation: u64,
    /// Whether the request carries images or documents (`None`: not looked at).
    pub media: Option<bool>,
    /// Upstream attempts started.
    pub attempts: u32,
    /// The key of the current attempt, held while the request uses it.
    pub lease: Option<KeyLease>,
    /// Images and documents replaced by notes for a text-only source.
    pub media_omitted: usize,
    /// (source position, key index) this request tried already.
    tried: Vec<(usize, usize)>,
}

/// The wire protocol a source speaks.
pub(super) fn source_wire(protocol: SourceProtocol) -> Wire {
    match protocol {
        SourceProtocol::OpenAi => Wire::OpenAiChat,
        SourceProtocol::Anthropic => Wire::AnthropicMessages,
        SourceProtocol::Responses => Wire::Responses,
        SourceProtocol::Gemini => Wire::Gemini,
    }
}

/// The route's source and fallbacks (the adapter's own for `None`).
pub fn chain(adapter: &Adapter, route: Option<usize>) -> (&Source, &[Source]) {
    match route.and_then(|i| adapter.routes.get(i)) {
        Some(r) => (&r.source, &r.fallbacks),
        None => (&adapter.source, &adapter.fallbacks),
    }
}

/// The source at `position` of a chain: 0 the primary, then the fallbacks.
pub fn at(adapter: &Adapter, route: Option<usize>, position: usize) -> Option<&Source> {
    let (primary, fallbacks) = chain(adapter, route);
    match position {
        0 => Some(primary),
        n => fallbacks.get(n - 1),
    }
}

/// What a provider's answer (status and headers) says about the key it was sent with.
pub fn outcome_of(status: u16, headers: &http::HeaderMap) -> Outcome {
    match status {
        401 | 403 => Outcome::Unauthorized(status),
        429 => Outcome::RateLimited(routing::retry_after(headers, std::time::SystemTime::now())),
        500..=599 => Outcome::Failure,
        _ => Outcome::Success,
    }
}

/// The body may hold an image or a document (cheap: a byte search; decoded only if so).
fn may_carry_media(body: &[u8]) -> bool {
    [
        &b"\"image"[..],
        b"\"input_image\"",
        b"\"document\"",
        b"\"file\"",
        b"\"input_file\"",
        b"inline_data",
        b"inlineData",
        b"fileData",
        b"file_data",
    ]
    .iter()
    .any(|needle| memchr::memmem::find(body, needle).is_some())
}

impl FlexiProxy {
    /// Decodes the client's request as its protocol says, exactly as preparing it would (the
    /// first attempt reuses it). `None` when it does not decode: the default route then
    /// serves it, and preparing it answers the client's error.
    fn decode_for_routing<'b>(&self, ctx: &Ctx, body: &'b [u8]) -> Option<Conversation<'b>> {
        let client = ctx.plan?.client_wire();
        let call = ctx.gemini.as_ref();
        if client == Wire::Gemini && call.is_none() {
            return None;
        }
        let gemini_call = call.map_or(("", false), |c| (c.model.as_str(), c.stream()));
        let key = Some(&self.settings.reasoning_key);
        crate::protocol::pair::decode_request(client, body, key, gemini_call).ok()
    }

    /// Chooses the route, the conversation id and whether the request carries media — once
    /// per request, before its first attempt. The request decoded for it, if it was, goes on
    /// to the first attempt's [`Self::prepare_for_attempt`].
    pub(super) fn choose_route<'b>(
        &self,
        ctx: &mut Ctx,
        headers: &http::HeaderMap,
        body: &'b [u8],
    ) -> Option<Conversation<'b>> {
        let adapter = ctx.adapter.clone()?;
        let sticky_pool =
            |s: &Source| s.pool.len() > 1 && s.pool.balance() == routing::Balance::Sticky;
        let needs_decode = !adapter.routes.is_empty()
            || std::iter::once(&adapter.source)
                .chain(&adapter.fallbacks)
                .any(sticky_pool);
        if !needs_decode {
            return None;
        }
        let conversation = self.decode_for_routing(ctx, body)?;
        let hints = routing::body_hints(body);
        let features = RequestFeatures::of(&conversation).with_hints(&hints);
        ctx.dispatch.media = Some(features.has_images);
        ctx.dispatch.route = adapter
            .routes
            .iter()
            .position(|r| r.when.matches(&features));
        if ctx.dispatch.route.is_some() {
            ctx.route_name = Some(self.route_name(ctx));
        }
        let (primary, fallbacks) = chain(&adapter, ctx.dispatch.route);
        if std::iter::once(primary).chain(fallbacks).any(sticky_pool) {
            let hints = ConversationHints::from_headers(headers).with_body(&hints);
            ctx.dispatch.conversation = routing::conversation_id(&conversation, &hints).hash;
        }
        Some(conversation)
    }

    /// Takes the next (source, key) to try: the current source's next healthy key not tried
    /// yet, else the next source's. Refused in the client's shape when none is left: 429 with
    /// `retry-after` when every key is only cooling.
    pub(super) fn next_attempt(&self, ctx: &mut Ctx) -> Result<(), ProxyError> {
        let Some(adapter) = ctx.adapter.clone() else {
            return Err(ProxyError::new(ErrorKind::Api, "no adapter"));
        };
        if ctx.dispatch.attempts >= adapter.max_attempts {
            return Err(ProxyError::new(
                ErrorKind::Api,
                format!("gave up after {} attempts", ctx.dispatch.attempts),
            )
            .with_status(502));
        }
        let now = Instant::now();
        let route = ctx.dispatch.route;
        let (primary, fallbacks) = chain(&adapter, route);
        // One key and no fallback: nothing to choose, so no health to consult either — the
        // request goes, and the client gets the provider's own answer, as with a plain proxy.
        if fallbacks.is_empty() && primary.pool.len() == 1 {
            if ctx.dispatch.attempts > 0 {
                return Err(
                    ProxyError::new(ErrorKind::Api, "the only provider key failed")
                        .with_status(502),
                );
            }
            ctx.dispatch.lease = primary.pool.lease_anyway(0);
            ctx.key_slot = Some(key_name(0, 0, primary.keys[0].label.as_deref()));
            ctx.dispatch.tried.push((0, 0));
            ctx.source_index = 0;
            return Ok(());
        }
        let mut retry_at: Option<Instant> = None;
        let mut all_cooling = true;
        let mut position = ctx.source_index;
        while let Some(source) = at(&adapter, route, position) {
            if self.eligible(ctx, source) {
                let exclude: Vec<usize> = ctx
                    .dispatch
                    .tried
                    .iter()
                    .filter(|(p, _)| *p == position)
                    .map(|(_, k)| *k)
                    .collect();
                match source.pool.pick(ctx.dispatch.conversation, now, &exclude) {
                    Pick::Key(lease) => {
                        ctx.key_slot = Some(key_name(position, lease.index(), lease.label()));
                        ctx.dispatch.tried.push((position, lease.index()));
                        ctx.dispatch.lease = Some(lease);
                        ctx.source_index = position;
                        return Ok(());
                    }
                    Pick::Unavailable {
                        retry_at: at,
                        all_cooling: cooling,
                    } => {
                        // Keys this request tried already do not make the source "cooling".
                        let untried_left = exclude.len() < source.pool.len();
                        all_cooling &= cooling && untried_left;
                        if let Some(at) = at {
                            retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
                        }
                    }
                }
            }
            position += 1;
        }
        // Every key is revoked or failing: try one anyway (the first not tried yet), so the
        // client gets the provider's own answer rather than ours.
        if !(all_cooling && retry_at.is_some()) {
            let untried = (0..=fallbacks.len()).find_map(|p| {
                let source = at(&adapter, route, p)?;
                let key =
                    (0..source.pool.len()).find(|k| !ctx.dispatch.tried.contains(&(p, *k)))?;
                self.eligible(ctx, source).then_some((p, key))
            });
            if let Some((p, key)) = untried
                && let Some(source) = at(&adapter, route, p)
            {
                ctx.dispatch.lease = source.pool.lease_anyway(key);
                ctx.key_slot = Some(key_name(p, key, source.keys[key].label.as_deref()));
                ctx.dispatch.tried.push((p, key));
                ctx.source_index = p;
                return Ok(());
            }
        }
        let error = match retry_at {
            Some(at) if all_cooling && ctx.dispatch.attempts == 0 => {
                let secs = at.saturating_duration_since(now).as_secs_f64().ceil().max(1.0);
                ProxyError::new(
                    ErrorKind::RateLimit,
                    format!(
                        "every provider key of adapter `{}` is rate-limited by the provider; retry in {secs} s",
                        adapter.name
                    ),
                )
                .with_status(429)
                .with_retry_after(format!("{secs}"))
            }
            _ => ProxyError::new(
                ErrorKind::Api,
                format!(
                    "no provider key of adapter `{}` is usable now (revoked, rate-limited or failing)",
                    adapter.name
                ),
            )
            .with_status(503),
        };
        Err(error)
    }

    /// Whether a source can serve this request at all: token counting only on its own
    /// protocol's sources.
    fn eligible(&self, ctx: &Ctx, source: &Source) -> bool {
        use super::route::Route;
        match ctx.route {
            Route::CountTokens => source.protocol == SourceProtocol::Anthropic,
            Route::ResponsesInputTokens => source.protocol == SourceProtocol::Responses,
            _ => true,
        }
    }

    /// Whether another attempt may follow this one (the adapter's `max_attempts`).
    pub(super) fn may_retry(&self, ctx: &Ctx) -> bool {
        ctx.adapter
            .as_ref()
            .is_some_and(|a| ctx.dispatch.attempts < a.max_attempts)
    }

    /// The plan for the current source, the body prepared for it (again when it differs from
    /// what the body was prepared for), and its image policy applied. `decoded`: the client's
    /// request as [`Self::choose_route`] decoded it, saving a second decode.
    pub(super) fn prepare_for_attempt(
        &self,
        ctx: &mut Ctx,
        decoded: Option<Conversation<'_>>,
    ) -> Result<(), ProxyError> {
        let (Some(adapter), Some(plan), Some(raw)) =
            (ctx.adapter.clone(), ctx.plan, ctx.raw_body.clone())
        else {
            return Err(ProxyError::new(ErrorKind::Api, "no request to prepare"));
        };
        let Some(source) = at(&adapter, ctx.dispatch.route, ctx.source_index) else {
            return Err(ProxyError::new(ErrorKind::Api, "no source"));
        };
        let target = (ctx.dispatch.route, ctx.source_index);
        if ctx.prepared.is_some() && ctx.prepared_for == Some(target) {
            return Ok(());
        }
        let client = plan.client_wire();
        let mut plan = Plan::for_pair(client, source_wire(source.protocol));
        let mut omit_for = None;
        if source.images != ImagePolicy::Read && self.carries_media(ctx, &raw) {
            if source.images == ImagePolicy::Refuse {
                return Err(ProxyError::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "the model {} cannot read images or documents; send text only, or configure a route for images",
                        source.model
                    ),
                ));
            }
            omit_for = Some(source.model.as_str());
            // Media are dropped in the pivot: a same-protocol source is translated to itself.
            if let Plan::Passthrough(_) = plan {
                plan = Plan::Pivot(Pair {
                    client,
                    source: client,
                });
            }
        }
        let request = super::exchange::ClientRequest {
            body: &raw,
            gemini: ctx.gemini.as_ref(),
            decoded,
        };
        let prepared = super::exchange::prepare(
            plan,
            request,
            source,
            &ctx.request_id,
            &self.settings.reasoning_key,
            omit_for,
        )?;
        ctx.dispatch.media_omitted = prepared.media_omitted;
        ctx.prepared = Some(prepared);
        ctx.prepared_for = Some(target);
        ctx.plan = Some(plan);
        Ok(())
    }

    fn carries_media(&self, ctx: &mut Ctx, body: &[u8]) -> bool {
        if let Some(known) = ctx.dispatch.media {
            return known;
        }
        let media = may_carry_media(body)
            && self
                .decode_for_routing(ctx, body)
                .is_some_and(|c| RequestFeatures::of(&c).has_images);
        ctx.dispatch.media = Some(media);
        media
    }

    /// Ends the current attempt's lease with what the provider did; a key that changed state
    /// is logged once and counted.
    pub(super) fn report_attempt(&self, ctx: &mut Ctx, outcome: Outcome) {
        let Some(lease) = ctx.dispatch.lease.take() else {
            return;
        };
        let Some(adapter) = ctx.adapter.clone() else {
            return;
        };
        let key = lease.index();
        let label = lease.label().map(str::to_owned);
        let route = self.route_name(ctx);
        let key_name = key_name(ctx.source_index, key, label.as_deref());
        let outcome_name = match outcome {
            Outcome::Success => "ok",
            Outcome::Unauthorized(_) => "unauthorized",
            Outcome::RateLimited(_) => "rate_limited",
            Outcome::Failure => "failed",
        };
        let metrics = &self.telemetry.metrics;
        metrics
            .source_requests
            .with_label_values(&[adapter.name.as_str(), &route, &key_name, outcome_name])
            .inc();
        let Some(change) = lease.report(outcome, Instant::now()) else {
            return;
        };
        if let Some(shared) = &self.settings.shared_health {
            shared.publish(&adapter, ctx.dispatch.route, ctx.source_index, key, change);
        }
        let health = match change {
            Change::Disabled { .. } => -1,
            Change::Cooling { .. } | Change::BreakerOpened { .. } => 0,
            Change::BreakerClosed => 1,
        };
        metrics
            .key_health
            .with_label_values(&[adapter.name.as_str(), &route, &key_name])
            .set(health);
        // By index and label only: never the key's text.
        match change {
            Change::Disabled { status } => tracing::warn!(
                adapter = %adapter.name, route = %route, key_slot = %key_name,
                "provider key disabled after {status} until the adapter file changes"
            ),
            Change::Cooling { until } => tracing::info!(
                adapter = %adapter.name, route = %route, key_slot = %key_name,
                "provider key rate-limited; cooling for {:.0} s",
                until.saturating_duration_since(Instant::now()).as_secs_f64()
            ),
            Change::BreakerOpened { until } => tracing::warn!(
                adapter = %adapter.name, route = %route, key_slot = %key_name,
                "provider key failing; passed over for {:.0} s",
                until.saturating_duration_since(Instant::now()).as_secs_f64()
            ),
            Change::BreakerClosed => tracing::info!(
                adapter = %adapter.name, route = %route, key_slot = %key_name,
                "provider key answering again"
            ),
        }
    }

    /// How logs and metrics name the request's route (`default` for the adapter's source).
    pub(super) fn route_name(&self, ctx: &Ctx) -> String {
        match (ctx.dispatch.route, &ctx.adapter) {
            (Some(i), Some(a)) => a
                .routes
                .get(i)
                .map_or_else(|| i.to_string(), |r| r.name.clone()),
            _ => "default".to_owned(),
        }
    }

    /// The current key's name for logs and metrics (`source/key`).
    pub(super) fn current_key_name(&self, ctx: &Ctx) -> Option<String> {
        let lease = ctx.dispatch.lease.as_ref()?;
        Some(key_name(ctx.source_index, lease.index(), lease.label()))
    }
}

/// `0/1`: the primary's second key; `1/team`: the first fallback's key labelled `team`.
pub(super) fn key_name(source: usize, key: usize, label: Option<&str>) -> String {
    match label {
        Some(l) => format!("{source}/{l}"),
        None => format!("{source}/{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_by_status() {
        let h = http::HeaderMap::new();
        assert_eq!(outcome_of(200, &h), Outcome::Success);
        assert_eq!(outcome_of(400, &h), Outcome::Success, "the request's fault");
        assert_eq!(outcome_of(401, &h), Outcome::Unauthorized(401));
        assert_eq!(outcome_of(403, &h), Outcome::Unauthorized(403));
        assert_eq!(outcome_of(503, &h), Outcome::Failure);
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(
            outcome_of(429, &h),
            Outcome::RateLimited(Some(std::time::Duration::from_secs(7)))
        );
    }

    #[test]
    fn media_sniffing_finds_every_protocols_shape() {
        for body in [
            r#"{"content":[{"type":"image","source":{}}]}"#,
            r#"{"content":[{"type":"image_url","image_url":{}}]}"#,
            r#"{"input":[{"type":"input_image"}]}"#,
            r#"{"contents":[{"parts":[{"inlineData":{}}]}]}"#,
            r#"{"content":[{"type":"document"}]}"#,
        ] {
            assert!(may_carry_media(body.as_bytes()), "{body}");
        }
        assert!(!may_carry_media(
            br#"{"messages":[{"role":"user","content":"hi"}]}"#
        ));
    }
}
