//! The users page, for admins: every user with their adapter cap, and the form that
//! changes it.

use super::{Ctx, Form, query_value, redirect, urlencode, vars};
use crate::admin::PanelSession;
use http::Response;
use minijinja::Value;

pub(super) fn users_page(
    cx: &Ctx,
    session: &PanelSession,
    status: u16,
    error: Option<String>,
) -> Response<Vec<u8>> {
    if !session.actor.admin {
        return cx.message(403, cx.t("admins_only"), "");
    }
    let users = cx.manager().users();
    let saved = query_value(&cx.req.query, "saved");
    let notice = saved.and_then(|name| {
        let u = users.iter().find(|u| u.name == name)?;
        Some(cx.lang.fill(
            "cap_saved",
            &[("name", &u.name), ("max", &u.max_adapters.to_string())],
        ))
    });
    let page = vars([
        ("users", Value::from_serialize(&users)),
        ("notice", Value::from(notice)),
        ("error", Value::from(error)),
    ]);
    cx.render(status, "users.html", "users", page)
}

pub(super) async fn set_cap(cx: &Ctx<'_>, session: &PanelSession, name: &str) -> Response<Vec<u8>> {
    if !session.actor.admin {
        return cx.message(403, cx.t("admins_only"), "");
    }
    let form = Form::parse(&cx.req.body);
    let Ok(max) = form.get("max_adapters").trim().parse::<usize>() else {
        return users_page(
            cx,
            session,
            400,
            Some(format!("max_adapters: {}", cx.t("bad_request"))),
        );
    };
    match cx.manager().set_cap(&session.actor, name, max).await {
        Ok(()) => redirect(&format!("/users?saved={}", urlencode(name)), &[]),
        Err(e) => users_page(cx, session, e.status, Some(super::say(cx, &e))),
    }
}
