//! The Exchanges page of an adapter (docs/inspector.md): its kept exchanges, newest first, and
//! one of them (`?id=`, else the newest) side by side, the client's and the provider's
//! requests and answers, streams as lists of events, and what the translation changed (its
//! notes, highlighted). The owner's and admins' only (404 else).

use super::{Ctx, Value, vars};
use crate::admin::PanelSession;
use crate::admin::api_inspect::{detail, visible};
use http::Response;
use serde::Serialize;

#[derive(Serialize)]
struct Row {
    id: u64,
    time: String,
    model: String,
    status: u16,
    duration_ms: u64,
    tokens: String,
    notes: usize,
}

pub(super) fn exchanges_page(cx: &Ctx, session: &PanelSession, name: &str) -> Response<Vec<u8>> {
    let Ok(kept) = visible(cx.app, &session.actor, name) else {
        return cx.not_found();
    };
    let rows: Vec<Row> = kept
        .iter()
        .map(|e| {
            let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.time_ms);
            let count = |n: Option<u64>| n.map_or_else(|| "–".to_owned(), |n| n.to_string());
            Row {
                id: e.id,
                time: humantime::format_rfc3339_seconds(time).to_string(),
                model: e.facts.model.clone().unwrap_or_default(),
                status: e.facts.status,
                duration_ms: e.duration_ms,
                tokens: format!(
                    "{} / {}",
                    count(e.facts.input_tokens),
                    count(e.facts.output_tokens)
                ),
                notes: e.facts.notes.len(),
            }
        })
        .collect();
    let wanted = super::query_value(&cx.req.query, "id").and_then(|id| id.parse::<u64>().ok());
    let shown = match wanted {
        Some(id) => kept.iter().find(|e| e.id == id),
        None => kept.first(),
    };
    let inspecting = cx
        .app
        .live
        .load()
        .adapter(name)
        .is_some_and(|a| a.inspect.is_some());
    let page = vars([
        (
            "title",
            Value::from(cx.lang.fill("exchanges_title", &[("name", name)])),
        ),
        ("name", Value::from(name)),
        ("inspecting", Value::from(inspecting)),
        ("rows", Value::from_serialize(&rows)),
        ("shown", Value::from_serialize(shown.map(|e| detail(e)))),
    ]);
    cx.render(200, "exchanges.html", "adapters", page)
}
