//! A user's own account (issue #27): their usage against each quota as bars (a warning from
//! 80 %), changing the password, which ends every other session of theirs and keeps this
//! one (a new cookie), their sessions (ending one or all others), and deleting the account
//! after typing its name and password.

use super::{Ctx, Form, query_value, redirect, say, vars};
use crate::admin::PanelSession;
use crate::admin::accounts::PasswordRequest;
use http::Response;
use minijinja::Value;

/// Usage of this much of a quota, or more, is warned about.
const WARN_PERCENT: f64 = 80.0;

pub(super) async fn account_page(
    cx: &Ctx<'_>,
    status: u16,
    error: Option<String>,
) -> Response<Vec<u8>> {
    let notice = if query_value(&cx.req.query, "saved").is_some() {
        Some(cx.t("password_changed"))
    } else if query_value(&cx.req.query, "ended").is_some() {
        Some(cx.t("sessions_ended"))
    } else {
        None
    };
    let sessions = cx
        .app
        .my_sessions(cx.req.session.as_ref())
        .await
        .unwrap_or_default();
    let (bars, resets) = match &cx.req.session {
        Some(s) => quota_bars(cx, &s.actor).await,
        None => (Vec::new(), None),
    };
    let page = vars([
        ("notice", Value::from(notice)),
        ("error", Value::from(error)),
        ("quota_bars", Value::from_serialize(&bars)),
        ("quota_resets", Value::from(resets)),
        ("sessions", Value::from_serialize(&sessions)),
    ]);
    cx.render(status, "account.html", "account", page)
}

/// One bar: what of a quota is used.
#[derive(serde::Serialize)]
struct Bar {
    kind: String,
    label: &'static str,
    used: String,
    limit: String,
    /// 0 to 100, for the bar.
    percent: u64,
    warning: Option<String>,
}

fn bar(
    cx: &Ctx,
    kind: &str,
    key: &str,
    used: f64,
    limit: f64,
    text: &dyn Fn(f64) -> String,
) -> Bar {
    let share = if limit > 0.0 {
        used / limit * 100.0
    } else {
        100.0
    };
    let percent = share.clamp(0.0, 100.0);
    Bar {
        kind: kind.to_owned(),
        label: cx.t(key),
        used: text(used),
        limit: text(limit),
        percent: percent.round() as u64,
        warning: (share >= WARN_PERCENT).then(|| {
            cx.lang.fill(
                "quota_warning",
                &[("percent", &format!("{}", percent.floor()))],
            )
        }),
    }
}

/// The bars of `actor`'s quotas and when they reset (none without a quota).
async fn quota_bars(
    cx: &Ctx<'_>,
    actor: &crate::admin::manage::Actor,
) -> (Vec<Bar>, Option<String>) {
    let Some((quota, usage)) = cx.app.quota_usage(actor).await else {
        return (Vec::new(), None);
    };
    let count = |n: f64| format!("{}", n as u64);
    let money = |n: f64| format!("{n:.2} {}", usage.currency);
    type Row<'a> = (
        &'a str,
        &'a str,
        Option<f64>,
        f64,
        &'a dyn Fn(f64) -> String,
    );
    let rows: [Row; 3] = [
        (
            "requests_per_day",
            "quota_requests_day",
            quota.requests_per_day.map(|l| l as f64),
            usage.requests_today as f64,
            &count,
        ),
        (
            "tokens_per_month",
            "quota_tokens_month",
            quota.tokens_per_month.map(|l| l as f64),
            usage.tokens_this_month as f64,
            &count,
        ),
        (
            "cost_per_month",
            "quota_cost_month",
            quota.cost_per_month,
            usage.cost_this_month,
            &money,
        ),
    ];
    let bars = rows
        .into_iter()
        .filter_map(|(kind, key, limit, used, text)| Some(bar(cx, kind, key, used, limit?, text)))
        .collect();
    let resets = cx.lang.fill(
        "quota_resets",
        &[("day", &usage.day_resets), ("month", &usage.month_resets)],
    );
    (bars, Some(resets))
}

pub(super) async fn change_password(cx: &Ctx<'_>, session: &PanelSession) -> Response<Vec<u8>> {
    let f = Form::parse(&cx.req.body);
    if f.get("new_password") != f.get("new_password2") {
        return account_page(cx, 400, Some(cx.t("passwords_differ").into())).await;
    }
    let request = PasswordRequest {
        current_password: f.get("current_password").to_owned(),
        new_password: f.get("new_password").to_owned(),
    };
    match cx
        .app
        .change_password(&session.actor, request, &cx.req.client_ip)
        .await
    {
        Ok((cookie, _csrf)) => redirect("/account?saved=1", &[cookie]),
        Err(e) => account_page(cx, e.status, Some(say(cx, &e))).await,
    }
}

/// Ends one session of the caller's (`id`), or every other one (`None`).
pub(super) async fn end_sessions(cx: &Ctx<'_>, id: Option<&str>) -> Response<Vec<u8>> {
    let session = cx.req.session.as_ref();
    let result = match id {
        Some(id) => cx.app.end_session(session, id).await,
        None => cx.app.end_other_sessions(session).await.map(|_| ()),
    };
    match result {
        Ok(()) => redirect("/account?ended=1", &[]),
        Err(e) => account_page(cx, e.status, Some(say(cx, &e))).await,
    }
}

/// Deletes the caller's account (after typing its name and password) and logs out.
pub(super) async fn delete_account(cx: &Ctx<'_>, session: &PanelSession) -> Response<Vec<u8>> {
    let f = Form::parse(&cx.req.body);
    let request = crate::admin::account_ops::DeleteAccountRequest {
        username: f.get("confirm_username").to_owned(),
        password: f.get("confirm_password").to_owned(),
    };
    match cx
        .app
        .delete_account(&session.actor, request, &cx.req.client_ip)
        .await
    {
        Ok(()) => redirect(
            "/login?bye=1",
            &[crate::admin::auth::expired_session_cookie(
                cx.req.secure_cookies,
            )],
        ),
        Err(e) => account_page(cx, e.status, Some(say(cx, &e))).await,
    }
}
