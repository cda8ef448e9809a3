//! The inspector's API (docs/inspector.md), for the adapter's owner and admins only (anyone
//! else gets 404, as for the adapter itself):
//!
//! - `GET /admin/api/adapters/{name}/exchanges`      the kept exchanges, newest first
//!   (id, time, model, status, duration, tokens, notes count), with the memory in use
//! - `GET /admin/api/adapters/{name}/exchanges/{id}` one exchange whole (bodies masked and
//!   capped; a stream also as its list of events)

use super::AdminApp;
use super::manage::{Actor, ApiError};
use crate::telemetry::capture::Exchange;
use http::Response;
use serde_json::{Value, json};

/// The exchange's summary line in a listing.
pub fn summary(e: &Exchange) -> Value {
    json!({
        "id": e.id,
        "time_ms": e.time_ms,
        "model": e.facts.model,
        "status": e.facts.status,
        "duration_ms": e.duration_ms,
        "input_tokens": e.facts.input_tokens,
        "output_tokens": e.facts.output_tokens,
        "stream": e.facts.stream,
        "attempts": e.facts.attempts,
        "notes": e.facts.notes.len(),
    })
}

/// The whole exchange; each answer of a stream also as its events.
pub fn detail(e: &Exchange) -> Value {
    let mut value = serde_json::to_value(e).unwrap_or_default();
    if e.facts.stream {
        for (side, body) in [
            ("provider_response", &e.provider_response.body),
            ("client_response", &e.client_response.body),
        ] {
            if let Some(message) = value.get_mut(side).and_then(Value::as_object_mut) {
                message.insert("events".into(), json!(body.events()));
            }
        }
    }
    value
}

/// The adapter's exchanges the actor may see (the adapter's, kept while it was theirs).
pub fn visible(
    app: &AdminApp,
    actor: &Actor,
    name: &str,
) -> Result<Vec<std::sync::Arc<Exchange>>, ApiError> {
    app.manager.check_visible(actor, name)?;
    Ok(app
        .telemetry
        .inspector
        .list(name)
        .into_iter()
        .filter(|e| actor.admin || e.owner.as_deref() == Some(actor.name.as_str()))
        .collect())
}

pub fn list(app: &AdminApp, actor: &Actor, name: &str) -> Result<Response<Vec<u8>>, ApiError> {
    let exchanges = visible(app, actor, name)?;
    let inspect = app
        .live
        .load()
        .adapter(name)
        .and_then(|a| a.inspect)
        .map(|i| json!({"keep": i.keep, "header": i.header}));
    Ok(super::json_response(
        200,
        json!({
            "inspect": inspect,
            "memory": app.telemetry.inspector.memory(name),
            "exchanges": exchanges.iter().map(|e| summary(e)).collect::<Vec<_>>(),
        }),
    ))
}

pub fn one(
    app: &AdminApp,
    actor: &Actor,
    name: &str,
    id: &str,
) -> Result<Response<Vec<u8>>, ApiError> {
    let exchange = id.parse::<u64>().ok().and_then(|id| {
        visible(app, actor, name)
            .ok()?
            .into_iter()
            .find(|e| e.id == id)
    });
    match exchange {
        Some(e) => Ok(super::json_response(200, detail(&e))),
        None => {
            app.manager.check_visible(actor, name)?;
            Err(ApiError::new(
                404,
                format!("no exchange `{id}` kept for `{name}`"),
            ))
        }
    }
}
