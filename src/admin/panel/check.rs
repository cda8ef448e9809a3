//! The Check provider page of an adapter (docs/provider-check.md): a button that runs the
//! provider check (of the default source or a route's), the result as a table, the options it
//! suggests and the change they make to the adapter file, and an Apply button that writes
//! exactly what was shown (refused as stale when the file changed since). Only for the
//! adapter's owner and admins (others get 404); the manager keeps one check per adapter at a
//! time and a few per user.

use super::{Ctx, Form, Value, vars};
use crate::admin::PanelSession;
use crate::admin::manage::{CheckRequest, CheckResponse};
use http::Response;
use serde::Serialize;

#[derive(Serialize)]
struct Row {
    name: String,
    outcome: String,
    /// `ok`, `needs_option`, `failed`, `skipped`: the row's style.
    class: String,
    detail: String,
}

/// The page before a check: what it does, the sources to choose from, the Run button.
pub(super) fn check_page(cx: &Ctx, session: &PanelSession, name: &str) -> Response<Vec<u8>> {
    render(cx, session, name, None, 200, None)
}

/// Runs the check (`run`) or applies the options a check showed (`apply`).
pub(super) async fn check(
    cx: &Ctx<'_>,
    session: &PanelSession,
    name: &str,
    apply: bool,
) -> Response<Vec<u8>> {
    let form = Form::parse(&cx.req.body);
    let route = form.opt("route").and_then(|r| r.parse::<usize>().ok());
    let options = if apply {
        match serde_json::from_str(form.get("options")) {
            Ok(o) => Some(o),
            Err(_) => return render(cx, session, name, None, 400, Some(cx.t("err_generic"))),
        }
    } else {
        None
    };
    let request = CheckRequest {
        apply,
        route,
        options,
    };
    let version = form.opt("version");
    match cx
        .manager()
        .check_provider(&session.actor, name, request, version.as_deref())
        .await
    {
        Ok(answer) => render(cx, session, name, Some((route, answer)), 200, None),
        Err(e) if e.status == 404 && e.code.is_empty() => cx.not_found(),
        Err(e) => {
            let said = super::say(cx, &e);
            render(cx, session, name, None, e.status, Some(&said))
        }
    }
}

fn render(
    cx: &Ctx,
    session: &PanelSession,
    name: &str,
    result: Option<(Option<usize>, CheckResponse)>,
    status: u16,
    refusal: Option<&str>,
) -> Response<Vec<u8>> {
    let snapshot = cx.app.live.load();
    let visible = cx
        .manager()
        .list(&session.actor)
        .into_iter()
        .any(|a| a.name == name);
    let Some(adapter) = snapshot.adapter(name).filter(|_| visible) else {
        return cx.not_found();
    };
    let routes: Vec<String> = adapter.routes.iter().map(|r| r.name.clone()).collect();
    let (route, answer) = match result {
        Some((route, answer)) => (route, Some(answer)),
        None => (None, None),
    };
    let rows: Vec<Row> = answer
        .as_ref()
        .map(|a| {
            a.report
                .checks
                .iter()
                .map(|c| {
                    let class = serde_json::to_value(c.outcome)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    Row {
                        name: c.name.to_owned(),
                        outcome: cx.t(&format!("check_outcome_{class}")).to_owned(),
                        class,
                        detail: c.detail.clone(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let suggested = answer
        .as_ref()
        .map(|a| serde_json::Value::Object(a.report.suggested_options.clone()));
    let page = vars([
        (
            "title",
            Value::from(cx.lang.fill("check_title", &[("name", name)])),
        ),
        ("name", Value::from(name)),
        ("routes", Value::from_serialize(&routes)),
        ("route", Value::from_serialize(route)),
        ("refusal", Value::from(refusal)),
        ("ran", Value::from(answer.is_some())),
        ("rows", Value::from_serialize(&rows)),
        (
            "sent",
            Value::from(answer.as_ref().map(|a| {
                cx.lang
                    .fill("check_sent", &[("n", &a.report.requests_sent.to_string())])
            })),
        ),
        (
            "suggested",
            Value::from(
                suggested
                    .as_ref()
                    .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
                    .map(|s| s.to_string()),
            ),
        ),
        ("diff", Value::from(answer.as_ref().map(|a| a.diff.clone()))),
        (
            "applied",
            Value::from(answer.as_ref().is_some_and(|a| a.applied)),
        ),
        (
            "version",
            Value::from(answer.as_ref().map(|a| a.version.clone())),
        ),
    ]);
    cx.render(status, "check.html", "adapters", page)
}
