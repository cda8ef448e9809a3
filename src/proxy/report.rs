//! What one finished request tells the operator: metrics, the access log line, the usage
//! record. Runs in the `logging` hook, after the response is done.

use super::Ctx;
use crate::protocol::anthropic::Usage;
use crate::telemetry::Telemetry;
use crate::telemetry::access_log::AccessRecord;
use crate::telemetry::usage::{UsageRecord, error_code};
use pingora::prelude::*;
use pingora::proxy::Session;
use pingora::{ErrorSource, ErrorType};
use std::time::SystemTime;

/// Translation notes written out in full on an access log line (all of them: the inspector).
const NOTES_LOGGED: usize = 3;

/// The kind of provider failure behind a Pingora error, if it was the provider's.
pub fn failure_kind(e: &Error) -> Option<&'static str> {
    if e.esource() != &ErrorSource::Upstream {
        return None;
    }
    Some(match e.etype() {
        ErrorType::ConnectTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout
        | ErrorType::TLSHandshakeTimedout => "timeout",
        ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
            "connect"
        }
        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::HandshakeError => {
            "tls"
        }
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError => "reset",
        _ => "protocol",
    })
}

/// What `usage` of `model` cost now, in the server's currency; `None` when unknown.
pub(super) fn cost_of(telemetry: &Telemetry, model: &str, usage: &Usage) -> Option<f64> {
    let tokens = crate::config::prices::Tokens {
        input: usage.input_tokens,
        output: usage.output_tokens,
        cache_read: usage.cache_read_input_tokens,
        cache_write: usage.cache_creation_input_tokens,
    };
    telemetry.prices.cost(model, tokens, SystemTime::now())
}

/// Records the request in metrics, the access log and the usage statistics; returns the
/// usage the provider reported, if it did.
pub fn report(
    telemetry: &Telemetry,
    session: &Session,
    e: Option<&Error>,
    ctx: &mut Ctx,
) -> Option<crate::protocol::anthropic::Usage> {
    let metrics = &telemetry.metrics;
    let status = ctx
        .effective_status
        .or_else(|| session.response_written().map(|r| r.status.as_u16()))
        .unwrap_or(0);
    let adapter = ctx.adapter.as_ref().map(|a| a.name.as_str());
    let adapter_label = adapter.unwrap_or("-");
    let route = ctx.route.name();
    let protocol = match ctx.protocol {
        super::errors::ClientProtocol::Anthropic => "anthropic",
        super::errors::ClientProtocol::OpenAi => "openai",
        super::errors::ClientProtocol::Responses => "responses",
        super::errors::ClientProtocol::Gemini => "gemini",
    };
    let duration = ctx.started.elapsed();
    let ttfb = ctx.first_byte.map(|t| t.duration_since(ctx.started));

    let mut facts = ctx.shaper.as_ref().map(|s| s.facts()).unwrap_or_default();
    if let Some(observer) = ctx.observer.as_mut()
        && let Some(u) = observer.finish()
    {
        facts.usage = Some(u);
        facts.usage_reported = true;
    }
    if facts.errored && ctx.error_kind.is_none() && status < 400 {
        ctx.error_kind = Some("stream_error");
    }
    if ctx.error_kind.is_none()
        && let Some(e) = e
    {
        ctx.error_kind = failure_kind(e);
    }

    // What the panel's status says: only requests that reached (or tried) the provider.
    if let Some(a) = &ctx.adapter
        && ctx.dispatch.attempts > 0
        && !ctx.route.is_probe()
        && ctx.error_kind != Some("shutdown")
    {
        let failure = crate::telemetry::outcome::FailureReason::of(ctx.error_kind, status);
        a.outcome.record(failure, SystemTime::now());
    }

    let mut status_text = itoa::Buffer::new();
    metrics
        .requests
        .with_label_values(&[adapter_label, protocol, route, status_text.format(status)])
        .inc();
    if !ctx.route.is_probe() {
        metrics
            .duration
            .with_label_values(&[adapter_label, route])
            .observe(duration.as_secs_f64());
        if let Some(t) = ttfb {
            metrics
                .ttfb
                .with_label_values(&[adapter_label, route])
                .observe(t.as_secs_f64());
        }
    }
    if ctx.stream_open {
        metrics
            .open_streams
            .with_label_values(&[adapter_label])
            .dec();
        ctx.stream_open = false;
    }
    if let (Some(kind), Some(_)) = (ctx.error_kind, adapter) {
        metrics
            .provider_errors
            .with_label_values(&[adapter_label, kind])
            .inc();
    }
    if facts.usage_reported
        && let Some(u) = facts.usage
    {
        metrics
            .tokens
            .with_label_values(&[adapter_label, "input"])
            .inc_by(u.input_tokens);
        metrics
            .tokens
            .with_label_values(&[adapter_label, "output"])
            .inc_by(u.output_tokens);
        metrics
            .tokens
            .with_label_values(&[adapter_label, "cache_read"])
            .inc_by(u.cache_read_input_tokens);
    }

    let prepared = ctx.prepared.as_ref();
    let stream = prepared.is_some_and(|p| p.stream);
    if telemetry.access_log.is_enabled() {
        let req = session.req_header();
        telemetry.access_log.write(&AccessRecord {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            request_id: &ctx.request_id,
            method: req.method.as_str(),
            route,
            client_ip: session.client_addr().map(|a| match a.as_inet() {
                Some(inet) => inet.ip().to_string(),
                None => a.to_string(),
            }),
            adapter,
            key_label: ctx.key_label.as_deref(),
            client_model: prepared.map(|p| p.client_model.as_str()),
            source_model: prepared.map(|p| p.source_model.as_str()),
            status,
            upstream_status: ctx.upstream_status,
            bytes_in: session.body_bytes_read(),
            // What reached the client, relayed or written here (an error, a model list).
            bytes_out: session.body_bytes_sent(),
            duration_ms: duration.as_secs_f64() * 1000.0,
            ttfb_ms: ttfb.map(|t| t.as_secs_f64() * 1000.0),
            stream,
            error: ctx.error_kind,
            input_tokens: facts
                .usage
                .map(|u| u.input_tokens + u.cache_read_input_tokens),
            output_tokens: facts.usage.map(|u| u.output_tokens),
            dropped_tools: prepared
                .and_then(|p| p.pivot.as_ref())
                .map_or(&[], |c| c.client_tools.dropped.as_slice()),
            route_name: ctx
                .route_name
                .as_deref()
                .or((ctx.dispatch.attempts > 0).then_some("default")),
            provider_key: ctx.key_slot.as_deref(),
            attempts: (ctx.dispatch.attempts > 0).then_some(ctx.dispatch.attempts),
            media_omitted: (ctx.dispatch.media_omitted > 0).then_some(ctx.dispatch.media_omitted),
            notes: prepared.map(|p| p.notes.count()).filter(|n| *n > 0),
            notes_first: prepared.map_or_else(Vec::new, |p| p.notes.first_texts(NOTES_LOGGED)),
            web_searches: (ctx.web_searches > 0).then_some(ctx.web_searches),
            cost: prepared
                .zip(facts.usage.filter(|_| facts.usage_reported))
                .and_then(|(p, u)| cost_of(telemetry, &p.source_model, &u)),
        });
    }

    // Usage statistics: proxied requests only, when enabled.
    if let (Some(sink), Some(adapter), Some(prepared)) = (&telemetry.usage, adapter, prepared) {
        let (usage, estimated) = match facts.usage {
            Some(u) if facts.usage_reported => (u, false),
            // Refused before reaching the provider (a limit, a budget), or refused by it
            // with an error status: nothing was spent.
            _ if ctx.upstream_status.is_none_or(|s| s >= 400) => (Usage::default(), false),
            other => {
                // No usage from the provider: count the request with the real tokenizer;
                // output stays the translator's byte-based estimate.
                let input =
                    crate::protocol::tokens::count_text(&String::from_utf8_lossy(&prepared.body));
                let output = other.map_or(0, |u| u.output_tokens);
                (
                    Usage {
                        input_tokens: input,
                        output_tokens: output,
                        ..Usage::default()
                    },
                    true,
                )
            }
        };
        sink.record(UsageRecord {
            time_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            adapter: adapter.to_owned(),
            key_label: ctx.key_label.clone().unwrap_or_default(),
            client_model: prepared.client_model.clone(),
            source_model: prepared.source_model.clone(),
            status,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_read_tokens: usage.cache_read_input_tokens,
            cache_write_tokens: usage.cache_creation_input_tokens,
            cost: cost_of(telemetry, &prepared.source_model, &usage),
            estimated,
            duration_ms: duration.as_millis() as u64,
            ttfb_ms: ttfb.map(|t| t.as_millis() as u64),
            stream,
            web_searches: ctx.web_searches,
            owner: ctx
                .adapter
                .as_ref()
                .and_then(|a| a.owner.clone())
                .unwrap_or_default(),
            error: error_code(status, ctx.error_kind, ctx.upstream_status).to_owned(),
        });
    }
    facts.usage.filter(|_| facts.usage_reported)
}
