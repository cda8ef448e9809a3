//! The page a password-reset link opens (issue #27): no session needed, the token in the
//! path is the credential. The form shows only while the link works; setting the password
//! uses the link up, ends every session of the user and sends them to the login page.

use super::{Ctx, Form, say, vars};
use crate::admin::account_ops::ResetRequest;
use http::Response;
use minijinja::Value;

fn reset_form(cx: &Ctx, token: &str, status: u16, error: Option<String>) -> Response<Vec<u8>> {
    let page = vars([
        ("token", Value::from(token)),
        ("valid", Value::from(cx.app.reset_valid(token))),
        ("error", Value::from(error)),
    ]);
    cx.render(status, "reset.html", "login", page)
}

pub(super) fn reset_page(cx: &Ctx, token: &str) -> Response<Vec<u8>> {
    let status = if cx.app.reset_valid(token) { 200 } else { 404 };
    reset_form(cx, token, status, None)
}

pub(super) async fn reset(cx: &Ctx<'_>, token: &str) -> Response<Vec<u8>> {
    let f = Form::parse(&cx.req.body);
    if f.get("new_password") != f.get("new_password2") {
        return reset_form(cx, token, 400, Some(cx.t("passwords_differ").into()));
    }
    let request = ResetRequest {
        token: token.to_owned(),
        password: f.get("new_password").to_owned(),
    };
    match cx.app.reset_password(request).await {
        Ok(_) => cx.message(200, cx.t("reset_title"), cx.t("reset_done")),
        Err(e) => reset_form(cx, token, e.status, Some(say(cx, &e))),
    }
}
