//! A user's own account (issue #27): changing the password, which ends every other session
//! of theirs and keeps this one (a new cookie).

use super::{Ctx, Form, query_value, redirect, say, vars};
use crate::admin::PanelSession;
use crate::admin::accounts::PasswordRequest;
use http::Response;
use minijinja::Value;

pub(super) fn account_page(cx: &Ctx, status: u16, error: Option<String>) -> Response<Vec<u8>> {
    let notice = query_value(&cx.req.query, "saved").map(|_| cx.t("password_changed"));
    let page = vars([
        ("notice", Value::from(notice)),
        ("error", Value::from(error)),
    ]);
    cx.render(status, "account.html", "account", page)
}

pub(super) async fn change_password(cx: &Ctx<'_>, session: &PanelSession) -> Response<Vec<u8>> {
    let f = Form::parse(&cx.req.body);
    if f.get("new_password") != f.get("new_password2") {
        return account_page(cx, 400, Some(cx.t("passwords_differ").into()));
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
        Err(e) => account_page(cx, e.status, Some(say(cx, &e))),
    }
}
