//! The management API's account routes (issue #27), beside the adapter routes of `api`:
//!
//! - `POST   /admin/api/signup`   `{"username","password","invite"?}` → 201 (202: pending)
//! - `POST   /admin/api/session`  `{"username","password"}` → 200 `{"csrf_token"}` + cookie
//! - `DELETE /admin/api/session`  logs out → 204
//! - `GET    /admin/api/me`       `{"username","admin","max_adapters","quota","usage"}`
//! - `POST   /admin/api/me/password` `{"current_password","new_password"}` → 200
//!   `{"csrf_token"}` + a new cookie; every other session of the user ends
//! - `GET    /admin/api/users`, `PATCH /admin/api/users/{name}` `{"status","max_adapters"}`
//! - `GET    /admin/api/invites`, `POST` `{"uses","expires"}` → 201 `{"code"}` (once),
//!   `DELETE /admin/api/invites/{id}`
//! - `GET    /admin/api/sessions` the caller's sessions (`account_ops::SessionView`);
//!   `DELETE /admin/api/sessions/{id}` ends one, `DELETE /admin/api/sessions` all others
//! - `DELETE /admin/api/me` `{"username","password"}` deletes the caller's account → 204
//! - `POST   /admin/api/users/{name}/reset-link` → 201 `{"token","path","expires"}` (once);
//!   `POST /admin/api/reset` `{"token","password"}` → 200 `{"username"}`
//! - `GET    /admin/api/audit?actor=&kind=&limit=&offset=` → `{"entries"}` newest first
//!
//! Sign-up and login need no credentials, but like the panel's forms they are refused when
//! the browser says the request comes from another site.

use super::account_ops::{DeleteAccountRequest, ResetRequest};
use super::accounts::{InviteRequest, PasswordRequest, SignupRequest, UserPatch};
use super::api::{authenticate, body, error};
use super::manage::ApiError;
use super::{AdminApp, AdminRequest, LoginError, json_response};
use crate::telemetry::audit::Filter;
use http::{Method, Response};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

/// An answer that also sets a cookie.
fn with_cookie(mut response: Response<Vec<u8>>, cookie: &str) -> Response<Vec<u8>> {
    if let Ok(v) = http::HeaderValue::from_str(cookie) {
        response.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    response
}

fn cross_site(req: &AdminRequest) -> Result<(), ApiError> {
    if super::panel::from_another_origin(req) {
        return Err(ApiError::new(
            403,
            "refused: the request comes from another site",
        ));
    }
    Ok(())
}

/// Answers the account routes; `None` for any other path.
pub async fn handle(app: &AdminApp, req: &AdminRequest) -> Option<Response<Vec<u8>>> {
    let rest = req.path.strip_prefix("/admin/api/")?;
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let known = matches!(
        segments.as_slice(),
        ["signup" | "session" | "me" | "users" | "invites" | "sessions" | "reset" | "audit"]
            | ["me", "password"]
            | ["users" | "invites" | "sessions", _]
            | ["users", _, "reset-link"]
    );
    if !known {
        return None;
    }
    Some(route(app, req, &segments).await.unwrap_or_else(error))
}

async fn route(
    app: &AdminApp,
    req: &AdminRequest,
    segments: &[&str],
) -> Result<Response<Vec<u8>>, ApiError> {
    let method = &req.method;
    match (method, segments) {
        (&Method::POST, ["signup"]) => {
            cross_site(req)?;
            let request: SignupRequest = body(req, false)?;
            let username = request.username.trim().to_owned();
            let pending = app.sign_up(request, &req.client_ip).await?;
            let (status, state) = if pending {
                (202, "pending")
            } else {
                (201, "active")
            };
            return Ok(json_response(
                status,
                json!({"username": username, "status": state}),
            ));
        }
        (&Method::POST, ["session"]) => {
            cross_site(req)?;
            let request: LoginRequest = body(req, false)?;
            let user = request.username.trim();
            return match app
                .login_via(user, &request.password, &req.client_ip, "json")
                .await
            {
                Ok((cookie, csrf)) => Ok(with_cookie(
                    json_response(200, json!({"csrf_token": csrf})),
                    &cookie,
                )),
                Err(LoginError::Wrong) => Err(ApiError::new(401, "wrong user name or password")),
                Err(LoginError::RateLimited(secs)) => Err(ApiError::new(
                    429,
                    format!("too many attempts; try again in {secs} seconds"),
                )),
                Err(LoginError::Pending) => Err(ApiError::new(
                    403,
                    "this account waits for an admin's approval",
                )),
                Err(LoginError::Disabled) => Err(ApiError::new(403, "this account is disabled")),
            };
        }
        (&Method::POST, ["reset"]) => {
            cross_site(req)?;
            let request: ResetRequest = body(req, false)?;
            let username = app.reset_password(request).await?;
            return Ok(json_response(200, json!({"username": username})));
        }
        (_, ["signup" | "reset"]) => return Err(ApiError::new(405, "method not allowed here")),
        _ => {}
    }
    let actor = authenticate(app, req)?;
    match (method, segments) {
        (&Method::DELETE, ["session"]) => {
            let cookie = match &req.session {
                Some(s) => app.logout(&s.cookie).await,
                None => {
                    return Err(ApiError::new(400, "no panel session to end (admin token)"));
                }
            };
            Ok(with_cookie(
                super::respond(204, "application/json", Vec::new()),
                &cookie,
            ))
        }
        (&Method::GET, ["me"]) => Ok(json_response(200, app.me(&actor).await)),
        (&Method::DELETE, ["me"]) => {
            let request: DeleteAccountRequest = body(req, false)?;
            app.delete_account(&actor, request, &req.client_ip).await?;
            Ok(with_cookie(
                super::respond(204, "application/json", Vec::new()),
                &super::auth::expired_session_cookie(app.secure_cookies),
            ))
        }
        (&Method::GET, ["sessions"]) => {
            let sessions = app.my_sessions(req.session.as_ref()).await?;
            Ok(json_response(200, json!({"sessions": sessions})))
        }
        (&Method::DELETE, ["sessions"]) => {
            let ended = app.end_other_sessions(req.session.as_ref()).await?;
            Ok(json_response(200, json!({"ended": ended})))
        }
        (&Method::DELETE, ["sessions", id]) => {
            app.end_session(req.session.as_ref(), id).await?;
            Ok(super::respond(204, "application/json", Vec::new()))
        }
        (&Method::POST, ["users", name, "reset-link"]) => {
            let (token, expires) = app.reset_link(&actor, name).await?;
            let path = format!("/reset/{token}");
            Ok(json_response(
                201,
                json!({"token": token, "path": path, "expires": expires}),
            ))
        }
        (&Method::GET, ["audit"]) => {
            if !actor.admin {
                return Err(ApiError::new(403, "only an admin may do this"));
            }
            let q = |name: &str| super::panel::query_value(&req.query, name);
            let number = |name: &str, default: usize| match q(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<usize>()
                    .map_err(|_| ApiError::bad(name, "a whole number")),
            };
            let filter = Filter {
                actor: q("actor").filter(|a| !a.is_empty()),
                kind: q("kind").filter(|k| !k.is_empty()),
                limit: number("limit", 100)?.min(crate::telemetry::audit::MAX_LIMIT),
                offset: number("offset", 0)?,
            };
            Ok(json_response(
                200,
                json!({"entries": app.audit(&actor, &filter).await?}),
            ))
        }
        (&Method::POST, ["me", "password"]) => {
            let request: PasswordRequest = body(req, false)?;
            let (cookie, csrf) = app.change_password(&actor, request, &req.client_ip).await?;
            Ok(with_cookie(
                json_response(200, json!({"csrf_token": csrf})),
                &cookie,
            ))
        }
        (&Method::GET, ["users"]) => {
            if !actor.admin {
                return Err(ApiError::new(403, "only an admin may do this"));
            }
            Ok(json_response(200, json!({"users": app.manager.users()})))
        }
        (&Method::PATCH, ["users", name]) => {
            let patch: UserPatch = body(req, false)?;
            app.patch_user(&actor, name, patch).await?;
            let user = app.manager.users().into_iter().find(|u| u.name == *name);
            Ok(json_response(200, json!(user)))
        }
        (&Method::GET, ["invites"]) => {
            Ok(json_response(200, json!({"invites": app.invites(&actor)?})))
        }
        (&Method::POST, ["invites"]) => {
            let request: InviteRequest = body(req, true)?;
            let (code, invite) = app.create_invite(&actor, request).await?;
            Ok(json_response(201, json!({"code": code, "invite": invite})))
        }
        (&Method::DELETE, ["invites", id]) => {
            app.revoke_invite(&actor, id).await?;
            Ok(super::respond(204, "application/json", Vec::new()))
        }
        _ => Err(ApiError::new(405, "method not allowed here")),
    }
}
