//! The limits that need the request body or the shared backend, in the async hooks: the
//! shared requests-per-minute and concurrency checks (`limits.backend: redis`), and token
//! budgets — reserved before the request goes upstream, settled when it ends; the adapter
//! owner's per-user quota (`user_quota`), the same way; and the searches per day, one taken
//! by each search the gateway runs.

use super::budget::{self, DEFAULT_OUTPUT_RESERVATION};
use super::errors::ProxyError;
use super::limits::Refusal;
use super::shared_limits::Denied;
use super::{Ctx, FlexiProxy};
use crate::protocol::anthropic::Usage;

impl FlexiProxy {
    fn denied(&self, ctx: &Ctx, denied: Denied) -> ProxyError {
        let (e, which) = match denied {
            Denied::Limit(e, which) => (e, which),
            Denied::Unavailable(e) => (e, Refusal::Unavailable),
        };
        let adapter = ctx.adapter.as_ref().map_or("-", |a| a.name.as_str());
        self.telemetry
            .metrics
            .rate_limited
            .with_label_values(&[adapter, which.name()])
            .inc();
        e
    }

    /// The shared requests-per-minute and concurrency limits (nothing with the local backend,
    /// whose checks ran with the key lookup).
    pub(super) async fn admit_shared(&self, ctx: &mut Ctx) -> Result<(), ProxyError> {
        let (Some(shared), Some((scope, limits))) = (&self.shared, ctx.limits.clone()) else {
            return Ok(());
        };
        if limits.requests_per_minute.is_none() && limits.concurrent_requests.is_none() {
            return Ok(());
        }
        match shared
            .admit(
                &scope,
                limits.requests_per_minute,
                limits.concurrent_requests,
            )
            .await
        {
            Ok(lease) => {
                if let Some(a) = ctx.admission.as_mut() {
                    a.lease = lease;
                }
            }
            Err(d) => return Err(self.denied(ctx, d)),
        }
        Ok(())
    }

    /// One search of the key's `searches_per_day`, taken for good (locally or in Redis).
    /// `Err(code)`: the search is not run and is answered with that search error —
    /// `too_many_requests` when the day's are used up, `unavailable` when the shared limiter
    /// did not answer and fails closed. Without the limit every search may run.
    pub(super) async fn take_search(&self, ctx: &Ctx) -> Result<(), &'static str> {
        let Some((scope, limits)) = ctx.limits.as_ref() else {
            return Ok(());
        };
        let now = time::OffsetDateTime::now_utc();
        let Some(window) = budget::search_window(scope, limits, now) else {
            return Ok(());
        };
        let windows = std::slice::from_ref(&window);
        let result = match &self.shared {
            Some(shared) => shared.reserve(windows, 1).await.map(|_| ()),
            None => self
                .budgets
                .reserve(windows, 1)
                .map(|_| ())
                .map_err(|e| Denied::Limit(e, Refusal::SearchesPerDay)),
        };
        let code = match result {
            Ok(()) => return Ok(()),
            Err(Denied::Limit(e, _)) => {
                tracing::info!(request_id = %ctx.request_id, limit = window.limit, "web search refused: searches_per_day reached");
                self.denied(ctx, Denied::Limit(e, Refusal::SearchesPerDay));
                "too_many_requests"
            }
            Err(d) => {
                self.denied(ctx, d);
                "unavailable"
            }
        };
        Err(code)
    }

    /// What a request may spend at most: its input (the local estimate) plus the output it
    /// asks for (or [`DEFAULT_OUTPUT_RESERVATION`]).
    fn reservation_for(ctx: &Ctx) -> u64 {
        let input = ctx.prepared.as_ref().map_or(0, |p| p.input_tokens_estimate);
        let output = ctx
            .raw_body
            .as_deref()
            .and_then(crate::protocol::tokens::requested_output_tokens)
            .unwrap_or(DEFAULT_OUTPUT_RESERVATION);
        input + output
    }

    /// Reserves the request's worst case in its token budget windows.
    pub(super) async fn reserve_budget(&self, ctx: &mut Ctx) -> Result<(), ProxyError> {
        let Some((scope, limits)) = ctx.limits.clone() else {
            return Ok(());
        };
        let windows = budget::windows(&scope, &limits, time::OffsetDateTime::now_utc());
        if windows.is_empty() {
            return Ok(());
        }
        let amount = Self::reservation_for(ctx);
        let result = match &self.shared {
            Some(shared) => shared.reserve(&windows, amount).await,
            None => self
                .budgets
                .reserve(&windows, amount)
                .map(Some)
                .map_err(|e| Denied::Limit(e, Refusal::TokenBudget)),
        };
        match result {
            Ok(reservation) => {
                ctx.budget = reservation;
                Ok(())
            }
            Err(d) => Err(self.denied(ctx, d)),
        }
    }

    /// Reserves one request, the worst-case tokens and cost in the adapter owner's quota.
    pub(super) async fn reserve_user_quota(&self, ctx: &mut Ctx) -> Result<(), ProxyError> {
        let Some(owner) = ctx.adapter.as_ref().and_then(|a| a.owner.clone()) else {
            return Ok(());
        };
        let quotas = &self.settings.quotas;
        if quotas.quota_of(&owner).is_none() {
            return Ok(());
        }
        let tokens = Self::reservation_for(ctx);
        // The worst case priced as it would be charged, all as uncached input and output.
        let cost = ctx.prepared.as_ref().and_then(|p| {
            let input = p.input_tokens_estimate;
            let tokens = crate::config::prices::Tokens {
                input,
                output: tokens.saturating_sub(input),
                cache_read: 0,
                cache_write: 0,
            };
            self.telemetry
                .prices
                .cost(&p.source_model, tokens, std::time::SystemTime::now())
        });
        match quotas.reserve(&owner, tokens, cost).await {
            Ok(reservation) => {
                ctx.quota = reservation;
                Ok(())
            }
            Err(d) => {
                tracing::info!(request_id = %ctx.request_id, user = %owner, "request refused: user quota reached");
                Err(self.denied(ctx, d))
            }
        }
    }

    /// Settles the owner's quota as the token budget is: tokens and cost to what the provider
    /// reported (a cost unknown for want of a price counts 0); the request itself stays
    /// counted when it went upstream.
    pub(super) async fn settle_user_quota(&self, ctx: &mut Ctx, usage: Option<Usage>) {
        let Some(reservation) = ctx.quota.take() else {
            return;
        };
        let answered = ctx.upstream_status.is_some_and(|s| s < 400);
        let (tokens, cost) = match usage {
            Some(u) => {
                let model = ctx
                    .prepared
                    .as_ref()
                    .map_or("", |p| p.source_model.as_str());
                (
                    Some(
                        u.input_tokens
                            + u.output_tokens
                            + u.cache_read_input_tokens
                            + u.cache_creation_input_tokens,
                    ),
                    Some(super::report::cost_of(&self.telemetry, model, &u)),
                )
            }
            None if !answered => (Some(0), Some(Some(0.0))),
            None => (None, None),
        };
        let sent = ctx.dispatch.attempts > 0;
        self.settings
            .quotas
            .settle(reservation, sent, tokens, cost)
            .await;
    }

    /// Settles the reservation to the usage the provider reported. Without a report, a
    /// request the provider refused or never answered cost nothing; one that was answered
    /// keeps its reservation (the safe side).
    pub(super) async fn settle_budget(&self, ctx: &mut Ctx, usage: Option<Usage>) {
        let Some(reservation) = ctx.budget.take() else {
            return;
        };
        let answered = ctx.upstream_status.is_some_and(|s| s < 400);
        let actual = match usage {
            Some(u) => {
                u.input_tokens
                    + u.output_tokens
                    + u.cache_read_input_tokens
                    + u.cache_creation_input_tokens
            }
            None if !answered => 0,
            None => reservation.amount,
        };
        if reservation.shared {
            if let Some(shared) = &self.shared {
                shared.settle(&reservation, actual).await;
            }
        } else {
            self.budgets.settle(&reservation, actual);
        }
    }
}
