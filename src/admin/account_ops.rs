//! What users do to their own account and admins to others' beyond `accounts` (issue #27):
//! listing and ending one's panel sessions, deleting one's account (its adapters through the
//! same locked edits as the API, every session ended, usage history kept under the name),
//! admins' one-time password-reset links and their use, and the audit log's listing.

use super::auth::SessionMeta;
use super::manage::{Actor, ApiError};
use super::{AdminApp, PanelSession, password};
use crate::config::edit::{EditError, lock_dir};
use crate::config::resets;
use crate::config::users::{self, hash_password, verify_password};
use crate::telemetry::audit::{self, Entry, Event, Filter, Kind};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// A session as its user sees it: never the cookie, nor anything derived from it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: String,
    /// RFC 3339.
    pub started: String,
    pub last_seen: String,
    pub client: String,
    /// Browser and system (`Firefox on Linux`), or the client's first word.
    pub user_agent: String,
    /// The session of this request.
    pub current: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// The account's name, typed again.
    pub username: String,
    /// Its password (an account made by single sign-on has none to give).
    #[serde(default)]
    pub password: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub token: String,
    pub password: String,
}

/// `Mozilla/5.0 (X11; Linux x86_64) … Firefox/128.0` → `Firefox on Linux`.
pub fn short_agent(ua: &str) -> String {
    const BROWSERS: [(&str, &str); 6] = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Safari/", "Safari"),
    ];
    const SYSTEMS: [(&str, &str); 6] = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ];
    let browser = BROWSERS.iter().find(|(t, _)| ua.contains(t)).map(|b| b.1);
    let system = SYSTEMS.iter().find(|(t, _)| ua.contains(t)).map(|s| s.1);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        _ => ua
            .split_whitespace()
            .next()
            .unwrap_or("")
            .chars()
            .take(40)
            .collect(),
    }
}

fn view(meta: SessionMeta, current: &str) -> SessionView {
    SessionView {
        current: meta.id == current,
        started: audit::rfc3339(meta.created_ms),
        last_seen: audit::rfc3339(meta.last_seen_ms),
        user_agent: short_agent(&meta.user_agent),
        client: meta.client,
        id: meta.id,
    }
}

fn panel_user(session: Option<&PanelSession>) -> Result<&PanelSession, ApiError> {
    session.ok_or_else(|| {
        ApiError::new(
            400,
            "the admin token has no panel sessions; log in as a user",
        )
    })
}

fn io(e: EditError) -> ApiError {
    match e {
        EditError::Io(m) => {
            tracing::error!(target: "flexiproxy::admin", "account edit failed: {m}");
            ApiError::new(500, "the accounts could not be saved; the log says why")
        }
        other => ApiError::from(other),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EditError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(EditError::Io(format!("account edit failed: {e}"))))
        .map_err(io)
}

impl AdminApp {
    /// The caller's live sessions, newest first.
    pub async fn my_sessions(
        &self,
        session: Option<&PanelSession>,
    ) -> Result<Vec<SessionView>, ApiError> {
        let me = panel_user(session)?;
        let list = self.sessions.list(&me.actor.name).await;
        Ok(list.into_iter().map(|m| view(m, &me.session_id)).collect())
    }

    /// Ends one of the caller's sessions by its id (404 for any other id: someone else's
    /// sessions are not the caller's to learn about).
    pub async fn end_session(
        &self,
        session: Option<&PanelSession>,
        id: &str,
    ) -> Result<(), ApiError> {
        let me = panel_user(session)?;
        if !self.sessions.remove_id(&me.actor.name, id).await {
            return Err(ApiError::new(404, "no session of yours by this id").coded("not_found"));
        }
        audit::record(Event::new(Kind::SessionEnd, &me.actor.name, &me.actor.name));
        Ok(())
    }

    /// Ends every session of the caller but this one; how many.
    pub async fn end_other_sessions(
        &self,
        session: Option<&PanelSession>,
    ) -> Result<usize, ApiError> {
        let me = panel_user(session)?;
        let mut ended = 0;
        for meta in self.sessions.list(&me.actor.name).await {
            if meta.id != me.session_id && self.sessions.remove_id(&me.actor.name, &meta.id).await {
                ended += 1;
            }
        }
        audit::record(
            Event::new(Kind::SessionEnd, &me.actor.name, &me.actor.name)
                .detail(format!("others={ended}")),
        );
        Ok(ended)
    }

    /// Deletes the caller's account once they typed its name (and password): its adapters
    /// (files removed through the management edits: their keys stop at once), then the
    /// account, then every session. Usage records keep the name as owner. The last admin
    /// cannot go.
    pub async fn delete_account(
        &self,
        actor: &Actor,
        req: DeleteAccountRequest,
        client_ip: &str,
    ) -> Result<(), ApiError> {
        if !actor.is_user {
            return Err(ApiError::new(
                400,
                "the admin token has no account; log in as a user",
            ));
        }
        if req.username.trim() != actor.name {
            return Err(
                ApiError::bad("username", "type your user name to confirm").coded("confirm_name")
            );
        }
        let users = self.manager.users.current();
        let Some(me) = users.get(&actor.name).cloned() else {
            return Err(ApiError::new(404, "not found").coded("not_found"));
        };
        let admins = users
            .users
            .iter()
            .filter(|u| u.admin && u.status.is_active())
            .count();
        if me.admin && admins <= 1 {
            return Err(
                ApiError::new(409, "the last admin cannot delete their account")
                    .coded("last_admin"),
            );
        }
        if !me.password.is_empty() {
            let attempt = self
                .logins
                .reserve(client_ip, &actor.name)
                .map_err(super::accounts::too_many_attempts)?;
            let (stored, given) = (me.password.clone(), req.password);
            let ok = tokio::task::spawn_blocking(move || verify_password(&stored, &given))
                .await
                .unwrap_or(false);
            if !ok {
                return Err(ApiError::bad("password", "wrong").coded("wrong_password"));
            }
            self.logins.succeeded(attempt);
        }
        let owned: Vec<String> = self
            .manager
            .list(actor)
            .into_iter()
            .filter(|a| a.owner.as_deref() == Some(actor.name.as_str()))
            .map(|a| a.name)
            .collect();
        for name in &owned {
            self.manager.delete(actor, name, None).await?;
        }
        let (path, name) = (self.manager.users.path().to_owned(), actor.name.clone());
        blocking(move || users::delete(&path, &name)).await?;
        self.manager.users.refresh_now();
        self.sessions.remove_user(&actor.name).await;
        tracing::info!(user = %actor.name, adapters = owned.len(), "account deleted by its user");
        audit::record(
            Event::new(Kind::UserDelete, &actor.name, &actor.name)
                .detail(format!("adapters={}", owned.join(","))),
        );
        Ok(())
    }

    /// A one-time link for `user` to set a new password (admins): the token, shown this
    /// once, and when it expires.
    pub async fn reset_link(
        &self,
        actor: &Actor,
        user: &str,
    ) -> Result<(String, String), ApiError> {
        if !actor.admin {
            return Err(ApiError::new(403, "only an admin may do this").coded("admins_only"));
        }
        if self.manager.users.current().get(user).is_none() {
            return Err(ApiError::new(404, "no such user").coded("not_found"));
        }
        let path = resets::path_for(self.manager.users.path());
        let (target, by) = (user.to_owned(), actor.name.clone());
        let made = blocking(move || resets::create(&path, &target, &by)).await?;
        audit::record(
            Event::new(Kind::PasswordResetLink, &actor.name, user)
                .detail(format!("expires={}", made.1)),
        );
        Ok(made)
    }

    /// Whether a reset token would work now.
    pub fn reset_valid(&self, token: &str) -> bool {
        let path = resets::path_for(self.manager.users.path());
        resets::owner(&path, token, SystemTime::now()).is_some()
    }

    /// Sets a new password through a reset link (sign-up's strength rules), once: the token
    /// is gone after, and every session of the user ends. The user's name.
    pub async fn reset_password(&self, req: ResetRequest) -> Result<String, ApiError> {
        let refused = || ApiError::bad("token", "unknown, used or expired").coded("reset_invalid");
        let path = resets::path_for(self.manager.users.path());
        // Checked before the token is taken: a weak password does not use the link up.
        let user = resets::owner(&path, &req.token, SystemTime::now()).ok_or_else(refused)?;
        password::check("password", &req.password, &user)?;
        let secret = req.password;
        let hash = blocking(move || hash_password(&secret)).await?;
        let token = req.token;
        let users_path = self.manager.users.path().to_owned();
        // One step under the directory's lock: the password is written first and the link
        // taken after, so a failed write leaves the link usable (and of two uses at once, the
        // second finds it gone).
        let taken = blocking(move || {
            let _lock = lock_dir(users::dir_of(&path))?;
            let Some(owner) = resets::owner(&path, &token, SystemTime::now()) else {
                return Err(EditError::Invalid("reset: unknown, used or expired".into()));
            };
            // Whatever stops the write (a file broken by hand, a full disk) is ours, not the
            // link's: a 500, and the link stays.
            users::edit_locked(&users_path, &owner, |u| u.password = hash)
                .map_err(|e| EditError::Io(e.to_string()))?;
            resets::take_locked(&path, &token, SystemTime::now())
        })
        .await;
        let owner = match taken {
            Ok(owner) => owner,
            Err(e) if e.status == 500 => return Err(e),
            Err(_) => return Err(refused()),
        };
        self.manager.users.refresh_now();
        self.sessions.remove_user(&owner).await;
        tracing::info!(user = %owner, "password set through a reset link; sessions ended");
        audit::record(Event::new(Kind::PasswordReset, &owner, &owner));
        Ok(owner)
    }

    /// Audit entries (admins).
    pub async fn audit(&self, actor: &Actor, filter: &Filter) -> Result<Vec<Entry>, ApiError> {
        if !actor.admin {
            return Err(ApiError::new(403, "only an admin may do this").coded("admins_only"));
        }
        audit::list(&self.manager.server.audit_store, filter)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "audit log unreadable");
                ApiError::new(500, "the audit log cannot be read; the log says why")
                    .coded("audit_unavailable")
            })
    }
}
