//! The users page, for admins: every user with their status, adapter cap and quota —
//! approving a pending sign-up, disabling and enabling an account, changing the cap and the
//! user's own quota (`flexiproxy user set --quota`'s text) — and the sign-up
//! invitations: listed with the uses left and expiry, made (the code shown on that one
//! answer) and revoked, and one-time password-reset links, shown on that one answer
//! (issue #27).

use super::{Ctx, Form, query_value, redirect, urlencode, vars};
use crate::admin::PanelSession;
use crate::admin::accounts::{InviteRequest, UserPatch};
use crate::config::users::UserStatus;
use http::Response;
use minijinja::Value;

pub(super) fn users_page(
    cx: &Ctx,
    session: &PanelSession,
    status: u16,
    error: Option<String>,
) -> Response<Vec<u8>> {
    users_page_with(cx, session, status, error, None)
}

/// The page, with a new invitation code to show once.
fn users_page_with(
    cx: &Ctx,
    session: &PanelSession,
    status: u16,
    error: Option<String>,
    new_code: Option<String>,
) -> Response<Vec<u8>> {
    users_page_full(cx, session, status, error, new_code, None)
}

/// The page, with a new invitation code or a reset link to show once.
fn users_page_full(
    cx: &Ctx,
    session: &PanelSession,
    status: u16,
    error: Option<String>,
    new_code: Option<String>,
    reset: Option<(String, String, String)>,
) -> Response<Vec<u8>> {
    if !session.actor.admin {
        return cx.message(403, cx.t("admins_only"), "");
    }
    let users = cx.manager().users();
    let saved = query_value(&cx.req.query, "saved");
    let invites = cx.app.invites(&session.actor).unwrap_or_default();
    let status_saved = query_value(&cx.req.query, "status_saved")
        .map(|name| cx.lang.fill("status_saved", &[("name", &name)]));
    let invite_notice =
        query_value(&cx.req.query, "revoked").map(|_| cx.t("invite_revoked").to_owned());
    let notice = saved.and_then(|name| {
        let u = users.iter().find(|u| u.name == name)?;
        Some(cx.lang.fill(
            "cap_saved",
            &[("name", &u.name), ("max", &u.max_adapters.to_string())],
        ))
    });
    let quota_saved = query_value(&cx.req.query, "quota_saved")
        .map(|name| cx.lang.fill("quota_saved", &[("name", &name)]));
    let notice = notice.or(status_saved).or(invite_notice).or(quota_saved);
    let quota_specs: std::collections::BTreeMap<&str, String> = users
        .iter()
        .map(|u| {
            (
                u.name.as_str(),
                u.quota.map(|q| q.spec()).unwrap_or_default(),
            )
        })
        .collect();
    let page = vars([
        ("users", Value::from_serialize(&users)),
        ("quota_specs", Value::from_serialize(&quota_specs)),
        ("invites", Value::from_serialize(&invites)),
        ("new_code", Value::from(new_code)),
        (
            "reset",
            Value::from_serialize(reset.map(|(user, link, expires)| {
                serde_json::json!({"user": user, "link": link, "expires": expires})
            })),
        ),
        (
            "registration",
            Value::from(cx.app.manager.server.accounts.registration.as_str()),
        ),
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
    if let Some(text) = form.opt("quota") {
        return set_quota(cx, session, name, &text).await;
    }
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

/// Sets a user's own quota from its text (empty: back to the default quota).
async fn set_quota(
    cx: &Ctx<'_>,
    session: &PanelSession,
    name: &str,
    text: &str,
) -> Response<Vec<u8>> {
    let text = if text.trim().is_empty() {
        "default"
    } else {
        text
    };
    let quota = match crate::config::accounts::QuotaFile::parse_spec(text) {
        Ok(q) => q,
        Err(m) => {
            let e = crate::admin::manage::ApiError::bad("quota", m).coded("number");
            return users_page(cx, session, 400, Some(super::say(cx, &e)));
        }
    };
    let patch = UserPatch {
        status: None,
        max_adapters: None,
        quota: Some(quota),
    };
    match cx.app.patch_user(&session.actor, name, patch).await {
        Ok(()) => redirect(&format!("/users?quota_saved={}", urlencode(name)), &[]),
        Err(e) => users_page(cx, session, e.status, Some(super::say(cx, &e))),
    }
}

/// Approves, disables or enables a user (`status` of the form).
pub(super) async fn set_status(
    cx: &Ctx<'_>,
    session: &PanelSession,
    name: &str,
) -> Response<Vec<u8>> {
    let status = match Form::parse(&cx.req.body).get("status") {
        "active" => UserStatus::Active,
        "disabled" => UserStatus::Disabled,
        _ => return users_page(cx, session, 400, Some(cx.t("bad_request").into())),
    };
    let patch = UserPatch {
        status: Some(status),
        max_adapters: None,
        quota: None,
    };
    match cx.app.patch_user(&session.actor, name, patch).await {
        Ok(()) => redirect(&format!("/users?status_saved={}", urlencode(name)), &[]),
        Err(e) => users_page(cx, session, e.status, Some(super::say(cx, &e))),
    }
}

/// Makes an invitation and shows its code on this answer only (not a redirect: the code is
/// never in a URL).
pub(super) async fn create_invite(cx: &Ctx<'_>, session: &PanelSession) -> Response<Vec<u8>> {
    let form = Form::parse(&cx.req.body);
    let uses = match form.opt("uses").map(|u| u.parse::<u32>()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            let e = crate::admin::manage::ApiError::bad("uses", "a whole number").coded("number");
            return users_page(cx, session, 400, Some(super::say(cx, &e)));
        }
    };
    let request = InviteRequest {
        uses,
        expires: form.opt("expires"),
    };
    match cx.app.create_invite(&session.actor, request).await {
        Ok((code, _)) => users_page_with(cx, session, 201, None, Some(code)),
        Err(e) => users_page(cx, session, e.status, Some(super::say(cx, &e))),
    }
}

pub(super) async fn revoke_invite(
    cx: &Ctx<'_>,
    session: &PanelSession,
    id: &str,
) -> Response<Vec<u8>> {
    match cx.app.revoke_invite(&session.actor, id).await {
        Ok(()) => redirect("/users?revoked=1", &[]),
        Err(e) => users_page(cx, session, e.status, Some(super::say(cx, &e))),
    }
}

/// Makes a one-time password-reset link for `name` and shows it on this answer only.
pub(super) async fn reset_link(
    cx: &Ctx<'_>,
    session: &PanelSession,
    name: &str,
) -> Response<Vec<u8>> {
    match cx.app.reset_link(&session.actor, name).await {
        Ok((token, expires)) => {
            let host = cx.req.header("host").unwrap_or("localhost");
            let scheme = if cx.req.secure_cookies {
                "https"
            } else {
                "http"
            };
            let link = format!("{scheme}://{host}/reset/{token}");
            let reset = Some((name.to_owned(), link, expires));
            users_page_full(cx, session, 201, None, None, reset)
        }
        Err(e) => users_page(cx, session, e.status, Some(super::say(cx, &e))),
    }
}
