//! Signing up (issue #27): the form at `/signup`, open when `accounts.registration` is
//! `invite` or `open`, answered like the API's `POST /admin/api/signup` (the same checks,
//! the same rate limit) with the refusal in the page's language.

use super::{Ctx, Form, query_value, redirect, say, vars};
use crate::admin::accounts::SignupRequest;
use crate::config::accounts::Registration;
use http::Response;
use minijinja::Value;

fn form(
    cx: &Ctx,
    status: u16,
    username: &str,
    invite: &str,
    error: Option<String>,
) -> Response<Vec<u8>> {
    let registration = cx.app.manager.server.accounts.registration;
    let page = vars([
        ("signup_user", Value::from(username)),
        ("invite", Value::from(invite)),
        (
            "needs_invite",
            Value::from(registration == Registration::Invite),
        ),
        ("error", Value::from(error)),
    ]);
    cx.render(status, "signup.html", "login", page)
}

fn closed(cx: &Ctx) -> Response<Vec<u8>> {
    cx.message(404, cx.t("signup_closed_title"), cx.t("err_signup_closed"))
}

pub(super) fn signup_page(cx: &Ctx) -> Response<Vec<u8>> {
    if cx.app.manager.server.accounts.registration == Registration::Closed {
        return closed(cx);
    }
    if cx.req.session.is_some() {
        return redirect("/", &[]);
    }
    let invite = query_value(&cx.req.query, "invite").unwrap_or_default();
    form(cx, 200, "", &invite, None)
}

pub(super) async fn signup(cx: &Ctx<'_>) -> Response<Vec<u8>> {
    if cx.app.manager.server.accounts.registration == Registration::Closed {
        return closed(cx);
    }
    let f = Form::parse(&cx.req.body);
    let (username, invite) = (f.get("username").trim(), f.get("invite").trim());
    if f.get("password") != f.get("password2") {
        return form(
            cx,
            400,
            username,
            invite,
            Some(cx.t("passwords_differ").into()),
        );
    }
    let request = SignupRequest {
        username: username.to_owned(),
        password: f.get("password").to_owned(),
        invite: f.opt("invite"),
    };
    match cx.app.sign_up(request, &cx.req.client_ip).await {
        Ok(false) => redirect("/login?welcome=1", &[]),
        Ok(true) => cx.message(202, cx.t("signup_pending_title"), cx.t("signup_pending")),
        Err(e) => form(cx, e.status, username, invite, Some(say(cx, &e))),
    }
}
