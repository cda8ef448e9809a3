//! Logging in (the form, the password check with its rate limit) and logging out.

use super::{Ctx, Form, query_value, redirect, vars};
use crate::admin::{LoginError, auth};
use http::Response;
use minijinja::Value;

fn login_form(
    cx: &Ctx,
    status: u16,
    user: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response<Vec<u8>> {
    let registration = cx.app.manager.server.accounts.registration;
    let page = vars([
        (
            "signup_open",
            Value::from(registration != crate::config::accounts::Registration::Closed),
        ),
        ("login_user", Value::from(user)),
        ("sso_buttons", Value::from_serialize(cx.app.sso.buttons())),
        ("notice", Value::from(notice)),
        ("error", Value::from(error)),
    ]);
    cx.render(status, "login.html", "login", page)
}

pub(super) fn login_page(cx: &Ctx) -> Response<Vec<u8>> {
    if cx.req.session.is_some() {
        return redirect("/", &[]);
    }
    let notice = if query_value(&cx.req.query, "bye").is_some() {
        Some(cx.t("logged_out"))
    } else if query_value(&cx.req.query, "expired").is_some() {
        Some(cx.t("session_expired"))
    } else if query_value(&cx.req.query, "welcome").is_some() {
        Some(cx.t("signup_done"))
    } else {
        None
    };
    let sso_error = query_value(&cx.req.query, "sso_error");
    let error = sso_error.and_then(|code| super::sso::error_text(cx, &code));
    login_form(cx, 200, "", notice, error)
}

pub(super) async fn login(cx: &Ctx<'_>) -> Response<Vec<u8>> {
    let form = Form::parse(&cx.req.body);
    let user = form.get("user").trim();
    match cx
        .app
        .login(user, form.get("password"), &cx.req.client_ip)
        .await
    {
        Ok((cookie, _csrf)) => redirect("/", &[cookie]),
        Err(LoginError::Wrong) => login_form(cx, 401, user, None, Some(cx.t("login_failed"))),
        Err(LoginError::RateLimited(_)) => {
            login_form(cx, 429, user, None, Some(cx.t("login_limited")))
        }
        Err(LoginError::Pending) => login_form(cx, 403, user, None, Some(cx.t("login_pending"))),
        Err(LoginError::Disabled) => login_form(cx, 403, user, None, Some(cx.t("login_disabled"))),
    }
}

pub(super) async fn logout(cx: &Ctx<'_>) -> Response<Vec<u8>> {
    let Some(session) = &cx.req.session else {
        return redirect("/login", &[]);
    };
    if !auth::csrf_matches(&session.csrf, Some(Form::parse(&cx.req.body).get("csrf"))) {
        return cx.message(403, cx.t("csrf_failed"), "");
    }
    redirect("/login?bye=1", &[cx.app.logout(&session.cookie).await])
}
