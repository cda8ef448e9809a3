//! The management API, `/admin/api/*` on the admin listener: JSON in and out, for the CLI,
//! scripts and anything else that automates adapters. Authenticated by the admin token
//! (`Authorization: Bearer …`, an admin) or a panel session (then the session's CSRF token
//! must come in `X-CSRF-Token` on every change). Errors are `{"error": "<message>"}`.
//!
//! - `GET    /admin/api/adapters`              list (never a provider or issued key)
//! - `POST   /admin/api/adapters`              create (a key or a pool, `balance`,
//!   `fallbacks`, routes) → 201 with the new key, once
//! - `POST   /admin/api/adapters/{name}/keys`  rotate (`grace`, `label`, `new_label`) → 201
//!   with the new key, once
//! - `DELETE /admin/api/adapters/{name}/keys/{id}` revoke one key (not the last working one)
//! - `PATCH  /admin/api/adapters/{name}/keys/{id}` `{"label"}` (`null` removes it)
//! - `PATCH  /admin/api/adapters/{name}`       model, model map, limits, provider key or
//!   pool (`api_keys`), `balance` (`null`: sticky), `fallbacks` and routes (each the whole
//!   list; `null` or `[]` removes it)
//! - `DELETE /admin/api/adapters/{name}`       → 204
//! - `GET    /admin/api/adapters/{name}/exchanges[/{id}]` the inspector's (`api_inspect`)
//! - `POST   /admin/api/adapters/{name}/probe` the provider check (`{"apply", "route",
//!   "options"}`, all optional): checks, suggested options, the file diff, requests sent
//!
//! Accounts (sign-up, JSON login, invitations, users) are `api_accounts`'s.
//!
//! Changes to one adapter honour `If-Match: <version>` (from the listing): 409 when stale.

use super::manage::{Actor, ApiError};
use super::{AdminApp, AdminRequest, json_response};
use crate::config::keys::hash_key;
use http::{Method, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

pub(super) fn error(e: ApiError) -> Response<Vec<u8>> {
    json_response(e.status, json!({"error": e.message}))
}

/// Who is calling: the admin token, or a session (with its CSRF token on changes).
pub(super) fn authenticate(app: &AdminApp, req: &AdminRequest) -> Result<Actor, ApiError> {
    if let Some(auth) = req.header("authorization") {
        let token = auth.strip_prefix("Bearer ").map(str::trim);
        return match (app.token, token) {
            (Some(expected), Some(t)) if hash_key(t) == expected => Ok(Actor::token()),
            _ => Err(ApiError::new(401, "missing or wrong admin token")),
        };
    }
    let Some(session) = &req.session else {
        return Err(ApiError::new(
            401,
            "log in to the panel, or send Authorization: Bearer <admin token>",
        ));
    };
    if req.method != Method::GET
        && !super::auth::csrf_matches(&session.csrf, req.header("x-csrf-token"))
    {
        return Err(ApiError::new(403, "missing or wrong X-CSRF-Token"));
    }
    Ok(session.actor.clone())
}

/// The JSON body as `T`; an empty body is `T::default()` where allowed.
pub(super) fn body<T: DeserializeOwned + Default>(
    req: &AdminRequest,
    empty_ok: bool,
) -> Result<T, ApiError> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return if empty_ok {
            Ok(T::default())
        } else {
            Err(ApiError::new(400, "a JSON body is required"))
        };
    }
    // The error names the field it met (`source.fallbacks[0].balance: unknown variant …`).
    let mut json = serde_json::Deserializer::from_slice(&req.body);
    let value = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        match at.as_str() {
            "." | "" => ApiError::new(400, format!("body: {inner}")),
            _ => ApiError::new(400, format!("{at}: {inner}")),
        }
    })?;
    json.end()
        .map_err(|e| ApiError::new(400, format!("body: {e}")))?;
    Ok(value)
}

/// `If-Match: "abc"` / `W/"abc"` / `abc` → `abc`.
fn if_match(req: &AdminRequest) -> Option<String> {
    let v = req.header("if-match")?.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    Some(v.trim_matches('"').to_owned()).filter(|v| !v.is_empty() && v != "*")
}

pub async fn handle(app: &AdminApp, req: &AdminRequest) -> Response<Vec<u8>> {
    if let Some(response) = super::api_accounts::handle(app, req).await {
        return response;
    }
    let Some(rest) = req.path.strip_prefix("/admin/api/adapters") else {
        return json_response(404, json!({"error": "not found"}));
    };
    let actor = match authenticate(app, req) {
        Ok(a) => a,
        Err(e) => return error(e),
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let result = match (&req.method, segments.as_slice()) {
        (&Method::GET, []) => Ok(list(app, &actor)),
        (&Method::POST, []) => create(app, &actor, req).await,
        (&Method::POST, [name, "keys"]) => rotate(app, &actor, req, name).await,
        (&Method::PATCH, [name]) => patch(app, &actor, req, name).await,
        (&Method::DELETE, [name]) => delete(app, &actor, req, name).await,
        (&Method::DELETE, [name, "keys", id]) => revoke_key(app, &actor, req, name, id).await,
        (&Method::PATCH, [name, "keys", id]) => relabel_key(app, &actor, req, name, id).await,
        (&Method::GET, [name, "exchanges"]) => super::api_inspect::list(app, &actor, name),
        (&Method::GET, [name, "exchanges", id]) => super::api_inspect::one(app, &actor, name, id),
        (&Method::POST, [name, "probe"]) => check(app, &actor, req, name).await,
        (_, [] | [_] | [_, "keys"] | [_, "keys", _]) => {
            Err(ApiError::new(405, "method not allowed here"))
        }
        _ => Err(ApiError::new(404, "not found")),
    };
    result.unwrap_or_else(error)
}

async fn revoke_key(
    app: &AdminApp,
    actor: &Actor,
    req: &AdminRequest,
    name: &str,
    id: &str,
) -> Result<Response<Vec<u8>>, ApiError> {
    let view = app
        .manager
        .revoke_key(actor, name, id, if_match(req).as_deref())
        .await?;
    tracing::info!(actor = %actor.name, adapter = name, key = id, "adapter key revoked");
    Ok(json_response(
        200,
        serde_json::to_value(view).unwrap_or_default(),
    ))
}

async fn relabel_key(
    app: &AdminApp,
    actor: &Actor,
    req: &AdminRequest,
    name: &str,
    id: &str,
) -> Result<Response<Vec<u8>>, ApiError> {
    let request = body(req, false)?;
    let view = app
        .manager
        .relabel_key(actor, name, id, request, if_match(req).as_deref())
        .await?;
    Ok(json_response(
        200,
        serde_json::to_value(view).unwrap_or_default(),
    ))
}

fn list(app: &AdminApp, actor: &Actor) -> Response<Vec<u8>> {
    let (used, max) = app.manager.cap(actor);
    json_response(
        200,
        json!({"adapters": app.manager.list(actor), "used": used, "max_adapters": max}),
    )
}

async fn create(
    app: &AdminApp,
    actor: &Actor,
    req: &AdminRequest,
) -> Result<Response<Vec<u8>>, ApiError> {
    let request = body(req, false)?;
    let issued = app.manager.create(actor, request).await?;
    tracing::info!(actor = %actor.name, adapter = %issued.adapter.name, "adapter created");
    Ok(json_response(
        201,
        serde_json::to_value(issued).unwrap_or_default(),
    ))
}

async fn rotate(
    app: &AdminApp,
    actor: &Actor,
    req: &AdminRequest,
    name: &str,
) -> Result<Response<Vec<u8>>, ApiError> {
    let request = body(req, true)?;
    let issued = app
        .manager
        .rotate(actor, name, request, if_match(req).as_deref())
        .await?;
    tracing::info!(actor = %actor.name, adapter = name, "adapter key rotated");
    Ok(json_response(
        201,
        serde_json::to_value(issued).unwrap_or_default(),
    ))
}

async fn patch(
    app: &AdminApp,
    actor: &Actor,
    req: &AdminRequest,
    name: &str,
) -> Result<Response<Vec<u8>>, ApiError> {
    let request = body(req, false)?;
    let view = app
        .manager
        .patch(actor, name, request, if_match(req).as_deref())
        .await?;
    tracing::info!(actor = %actor.name, adapter = name, "adapter edited");
    Ok(json_response(
        200,
        serde_json::to_value(view).unwrap_or_default(),
    ))
}

async fn check(
    app: &AdminApp,
    actor: &Actor,
    req: &AdminRequest,
    name: &str,
) -> Result<Response<Vec<u8>>, ApiError> {
    let request = body(req, true)?;
    let answer = app
        .manager
        .check_provider(actor, name, request, if_match(req).as_deref())
        .await?;
    Ok(json_response(
        200,
        serde_json::to_value(answer).unwrap_or_default(),
    ))
}

async fn delete(
    app: &AdminApp,
    actor: &Actor,
    req: &AdminRequest,
    name: &str,
) -> Result<Response<Vec<u8>>, ApiError> {
    app.manager
        .delete(actor, name, if_match(req).as_deref())
        .await?;
    tracing::info!(actor = %actor.name, adapter = name, "adapter deleted");
    Ok(super::respond(204, "application/json", Vec::new()))
}
