//! The inspector's hooks (docs/inspector.md): a request of an adapter with `inspect:` gets a
//! `Capture` once its body is read, the attempts and the answer add to it, and `logging`
//! hands it, masked, to the inspector. Other requests carry `None` and pay nothing else.
//! With `inspect: { header: true }` answers say how many translation notes they have.

use super::{Ctx, FlexiProxy, client_key, errors};
use crate::telemetry::capture::{Capture, Facts, Outcome, header_list};
use pingora::proxy::Session;

/// How many things the translation changed (`inspect: { header: true }`).
pub(super) const X_FLEXIPROXY_NOTES: http::HeaderName =
    http::HeaderName::from_static("x-flexiproxy-notes");

/// The notes count for the answer's header, when the adapter asks for it (0 for a
/// passthrough exchange).
pub(super) fn notes_header(ctx: &Ctx) -> Option<http::HeaderValue> {
    let inspect = ctx.adapter.as_ref()?.inspect?;
    inspect.header.then(|| {
        let count = ctx.prepared.as_ref().map_or(0, |p| p.notes.count());
        http::HeaderValue::from(count)
    })
}

impl FlexiProxy {
    /// Starts the capture of an inspected adapter's request, its body just read.
    pub(super) fn start_capture(&self, session: &Session, ctx: &mut Ctx, body: &[u8]) {
        let Some(inspect) = ctx.adapter.as_ref().and_then(|a| a.inspect) else {
            return;
        };
        let req = session.req_header();
        let mut capture = Capture::new(
            ctx.started,
            inspect.keep,
            req.as_ref(),
            client_key(req, ctx.route),
        );
        capture.client_body(body);
        ctx.capture = Some(Box::new(capture));
    }

    /// Keeps the finished exchange (from `logging`).
    pub(super) fn keep_exchange(
        &self,
        session: &Session,
        ctx: &mut Ctx,
        usage: Option<&crate::protocol::anthropic::Usage>,
    ) {
        let (Some(capture), Some(adapter)) = (ctx.capture.take(), ctx.adapter.as_ref()) else {
            return;
        };
        let written = session.response_written();
        let status = ctx
            .effective_status
            .or_else(|| written.map(|r| r.status.as_u16()))
            .unwrap_or(0);
        let keep = capture.keep();
        let exchange = capture.finish(Outcome {
            owner: adapter.owner.clone(),
            facts: Facts {
                model: ctx.prepared.as_ref().map(|p| p.client_model.clone()),
                provider_model: ctx.prepared.as_ref().map(|p| p.source_model.clone()),
                status,
                provider_status: ctx.upstream_status,
                route: ctx.route_name.clone(),
                source_index: ctx.source_index,
                key_index: ctx.dispatch.lease.as_ref().map(|l| l.index()),
                attempts: ctx.dispatch.attempts,
                input_tokens: usage.map(|u| u.input_tokens),
                output_tokens: usage.map(|u| u.output_tokens),
                stream: ctx.prepared.as_ref().is_some_and(|p| p.stream),
                notes: ctx
                    .prepared
                    .as_ref()
                    .map(|p| p.notes.to_vec())
                    .unwrap_or_default(),
            },
            client_response_headers: written.map(|r| header_list(&r.headers)).unwrap_or_default(),
            provider_secrets: errors::provider_secrets(adapter),
        });
        self.telemetry.inspector.keep(&adapter.name, keep, exchange);
    }
}
