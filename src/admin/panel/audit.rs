//! The audit log page, for admins (issue #27): who did what to which adapter, key, user,
//! invitation or quota, and every sign-in, newest first, filtered by actor and kind, 50 a
//! page; each kind in the user's language.

use super::{Ctx, query_value, urlencode, vars};
use crate::admin::PanelSession;
use crate::telemetry::audit::{Filter, Kind};
use http::Response;
use minijinja::Value;

/// Entries on one page.
const PAGE: usize = 50;

/// A kind's words: `audit_kind_<code with _ for .>`.
fn kind_label(cx: &Ctx, code: &str) -> String {
    match cx.t(&format!("audit_kind_{}", code.replace('.', "_"))) {
        "?" => code.to_owned(),
        words => words.to_owned(),
    }
}

pub(super) async fn audit_page(cx: &Ctx<'_>, session: &PanelSession) -> Response<Vec<u8>> {
    if !session.actor.admin {
        return cx.message(403, cx.t("admins_only"), "");
    }
    let actor = query_value(&cx.req.query, "actor").filter(|a| !a.trim().is_empty());
    let kind = query_value(&cx.req.query, "kind").filter(|k| !k.is_empty());
    let page = query_value(&cx.req.query, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, 100_000);
    let filter = Filter {
        actor: actor.clone(),
        kind: kind.clone(),
        // One more than shown tells whether there is an older page.
        limit: PAGE + 1,
        offset: (page - 1) * PAGE,
    };
    let (mut entries, error) = match cx.app.audit(&session.actor, &filter).await {
        Ok(e) => (e, None),
        Err(e) => (Vec::new(), Some(super::say(cx, &e))),
    };
    let older = entries.len() > PAGE;
    entries.truncate(PAGE);
    let shown: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["label"] = kind_label(cx, &e.kind).into();
            v
        })
        .collect();
    let kinds: Vec<serde_json::Value> = Kind::ALL
        .iter()
        .map(|k| serde_json::json!({"code": k.as_str(), "label": kind_label(cx, k.as_str())}))
        .collect();
    // The filter, kept in the page links.
    let query: String = [("actor", &actor), ("kind", &kind)]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}&", urlencode(v))))
        .collect();
    let page_vars = vars([
        ("entries", Value::from_serialize(&shown)),
        ("kinds", Value::from_serialize(&kinds)),
        ("actor", Value::from(actor)),
        ("kind", Value::from(kind)),
        ("query", Value::from(query)),
        ("prev_page", Value::from((page > 1).then(|| page - 1))),
        ("next_page", Value::from(older.then_some(page + 1))),
        ("error", Value::from(error)),
    ]);
    cx.render(200, "audit.html", "audit", page_vars)
}
