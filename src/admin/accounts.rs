//! Accounts that are not made at a shell (issue #27), for the panel and the API alike:
//! sign-up (as `accounts.registration` allows, limited per client address, with an
//! invitation code when asked for one, pending when `accounts.approval` is on), invitation
//! codes, an admin approving, disabling and enabling users, and a user changing their own
//! password. Sign-up never tells more about a name than that it is taken; passwords and
//! codes go into no log line and no answer but the code's one showing.

use super::manage::{Actor, ApiError, present};
use super::{AdminApp, auth, password};
use crate::config::accounts::Registration;
use crate::config::edit::EditError;
use crate::config::invites::{self, Invite};
use crate::config::users::{self, User, UserStatus, hash_password, verify_password};
use crate::telemetry::audit::{self, Event, Kind};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub invite: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// Sign-ups the code admits (default 1).
    #[serde(default)]
    pub uses: Option<u32>,
    /// How long it stays valid, `7d`, `12h` (default 7d).
    #[serde(default)]
    pub expires: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    pub status: Option<UserStatus>,
    #[serde(default)]
    pub max_adapters: Option<usize>,
    /// The user's own quota (`{}`: unlimited); `null` goes back to `accounts.default_quota`.
    #[serde(default, deserialize_with = "present")]
    pub quota: Option<Option<crate::config::accounts::QuotaFile>>,
}

/// An invitation as listed: never the code.
#[derive(Debug, Clone, Serialize)]
pub struct InviteView {
    pub id: String,
    pub uses_left: u32,
    pub expires: String,
    pub created: String,
    pub created_by: Option<String>,
    /// Uses left and not expired.
    pub usable: bool,
}

impl InviteView {
    fn of(i: &Invite, now: SystemTime) -> InviteView {
        InviteView {
            id: i.id.clone(),
            uses_left: i.uses_left,
            expires: i.expires.clone(),
            created: i.created.clone(),
            created_by: i.created_by.clone(),
            usable: i.usable(now),
        }
    }
}

/// The default lifetime of a code.
pub const DEFAULT_INVITE_LIFETIME: &str = "7d";

fn admin_only(actor: &Actor) -> Result<(), ApiError> {
    if actor.admin {
        Ok(())
    } else {
        Err(ApiError::new(403, "only an admin may do this").coded("admins_only"))
    }
}

/// Account file edits lock and fsync: off the async workers. I/O failures are the
/// operator's to read in the log, not the caller's.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EditError> + Send + 'static,
) -> Result<T, EditError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(EditError::Io(format!("account edit failed: {e}"))))
}

fn saved(e: EditError) -> ApiError {
    match e {
        EditError::Io(m) => {
            tracing::error!(target: "flexiproxy::admin", "account file edit failed: {m}");
            ApiError::new(500, "the accounts could not be saved; the log says why")
        }
        EditError::NotFound(..) => ApiError::new(404, "not found").coded("not_found"),
        other => ApiError::from(other),
    }
}

impl AdminApp {
    /// Opens an account as `accounts:` allows: `Ok(false)` active, `Ok(true)` pending.
    pub async fn sign_up(&self, req: SignupRequest, client_ip: &str) -> Result<bool, ApiError> {
        let accounts = self.manager.server.accounts.clone();
        if accounts.registration == Registration::Closed {
            return Err(ApiError::new(
                403,
                "sign-up is closed on this server; ask an admin for an account",
            )
            .coded("signup_closed"));
        }
        let name = req.username.trim().to_owned();
        if !users::valid_user_name(&name) {
            return Err(ApiError::bad(
                "username",
                "1 to 64 letters, digits, `-`, `_` and `.`, not starting with `.`",
            )
            .coded("name_unavailable"));
        }
        password::check("password", &req.password, &name)?;
        let invite = match accounts.registration {
            Registration::Invite => match req.invite.as_deref().map(str::trim) {
                Some(code) if !code.is_empty() => Some(code.to_owned()),
                _ => {
                    return Err(ApiError::bad("invite", "required").coded("invite_required"));
                }
            },
            _ => None,
        };
        // Counted from here on, success or not (a name found taken, a wrong code): a client
        // address gets a few sign-ups per window, and as many looks at which names exist.
        self.signups.reserve(client_ip, &name).map_err(|secs| {
            ApiError::new(
                429,
                format!("too many sign-ups from this address; try again in {secs} seconds"),
            )
            .coded("signup_limited")
        })?;
        let secret = req.password;
        let hash = blocking(move || hash_password(&secret))
            .await
            .map_err(saved)?;
        let pending = accounts.approval;
        let user = User {
            name: name.clone(),
            password: hash,
            admin: false,
            admin_from_group: false,
            max_adapters: accounts.default_max_adapters,
            status: if pending {
                UserStatus::Pending
            } else {
                UserStatus::Active
            },
            quota: None,
            email: None,
            identities: Vec::new(),
        };
        let path = self.manager.users.path().to_owned();
        let invites_path = invites::path_for(&path);
        let result = blocking(move || {
            users::sign_up(&path, user, || match &invite {
                Some(code) => invites::consume_locked(&invites_path, code, SystemTime::now()),
                None => Ok(()),
            })
        })
        .await;
        match result {
            Ok(()) => {}
            Err(EditError::Exists(_)) => {
                return Err(ApiError {
                    status: 409,
                    ..ApiError::bad("username", "taken; choose another")
                }
                .coded("name_taken"));
            }
            Err(EditError::Invalid(m)) if m.starts_with("invite:") => {
                return Err(ApiError::bad(
                    "invite",
                    "not valid (unknown, used up, expired or revoked)",
                )
                .coded("invite_invalid"));
            }
            Err(e) => return Err(saved(e)),
        }
        self.manager.users.refresh_now();
        tracing::info!(user = %name, client = client_ip, pending, "panel sign-up");
        let how = if accounts.registration == Registration::Invite {
            "invite"
        } else {
            "open"
        };
        audit::record(
            Event::new(Kind::SignUp, &name, &name)
                .detail(format!("registration={how} pending={pending}"))
                .client(client_ip),
        );
        Ok(pending)
    }

    /// A user's new password (after checking the current one, rate-limited like logins):
    /// every session of theirs ends, and a new one for this caller is returned (its
    /// `Set-Cookie` value and CSRF token).
    pub async fn change_password(
        &self,
        actor: &Actor,
        req: PasswordRequest,
        client_ip: &str,
    ) -> Result<(String, String), ApiError> {
        if !actor.is_user {
            return Err(ApiError::new(
                400,
                "the admin token has no password; log in as a user",
            ));
        }
        password::check("new_password", &req.new_password, &actor.name)?;
        let attempt = self
            .logins
            .reserve(client_ip, &actor.name)
            .map_err(too_many_attempts)?;
        let stored = self
            .manager
            .users
            .current()
            .get(&actor.name)
            .map(|u| u.password.clone())
            .unwrap_or_default();
        let (current, new) = (req.current_password, req.new_password);
        let hashed = blocking(move || {
            if verify_password(&stored, &current) {
                hash_password(&new).map(Some)
            } else {
                Ok(None)
            }
        })
        .await
        .map_err(saved)?;
        let Some(hash) = hashed else {
            tracing::warn!(user = %actor.name, client = client_ip, "password change: wrong current password");
            return Err(ApiError::bad("current_password", "wrong").coded("wrong_password"));
        };
        self.logins.succeeded(attempt);
        let (path, name, credential) = (
            self.manager.users.path().to_owned(),
            actor.name.clone(),
            hash.clone(),
        );
        blocking(move || users::edit(&path, &name, |u| u.password = credential))
            .await
            .map_err(saved)?;
        self.manager.users.refresh_now();
        self.sessions.remove_user(&actor.name).await;
        let (cookie, csrf) = self.sessions.create(&actor.name, &hash).await;
        tracing::info!(user = %actor.name, "password changed; other sessions ended");
        let event = Event::new(Kind::PasswordChange, &actor.name, &actor.name);
        audit::record(event.client(client_ip));
        Ok((auth::session_cookie(&cookie, self.secure_cookies), csrf))
    }

    /// Approves, disables or enables a user, or changes their cap (admins). A user no longer
    /// active loses every session at once.
    pub async fn patch_user(
        &self,
        actor: &Actor,
        name: &str,
        patch: UserPatch,
    ) -> Result<(), ApiError> {
        admin_only(actor)?;
        if patch.status.is_some_and(|s| s != UserStatus::Active) && actor.name == name {
            return Err(
                ApiError::bad("status", "you cannot disable your own account")
                    .coded("self_disable"),
            );
        }
        if patch.max_adapters.is_some_and(|m| m > 10_000) {
            return Err(ApiError::bad("max_adapters", "at most 10000").coded("number"));
        }
        if let Some(Some(q)) = &patch.quota
            && let Err(m) = q.check()
        {
            return Err(ApiError::bad("quota", m).coded("number"));
        }
        let (path, user) = (self.manager.users.path().to_owned(), name.to_owned());
        let change = patch.clone();
        blocking(move || {
            users::edit(&path, &user, |u| {
                if let Some(s) = change.status {
                    u.status = s;
                }
                if let Some(m) = change.max_adapters {
                    u.max_adapters = m;
                }
                if let Some(q) = change.quota {
                    u.quota = q;
                }
            })
        })
        .await
        .map_err(saved)?;
        self.manager.users.refresh_now();
        if let Some(status) = patch.status {
            if status != UserStatus::Active {
                self.sessions.remove_user(name).await;
            }
            tracing::info!(actor = %actor.name, user = name, status = status.as_str(), "user status set");
            audit::record(
                Event::new(Kind::UserChange, &actor.name, name)
                    .detail(format!("status={}", status.as_str())),
            );
        }
        if let Some(max) = patch.max_adapters {
            audit::record(
                Event::new(Kind::UserChange, &actor.name, name)
                    .detail(format!("max_adapters={max}")),
            );
        }
        if let Some(q) = patch.quota {
            tracing::info!(actor = %actor.name, user = name, quota = ?q, "user quota set");
            let spec = q.map_or("default".to_owned(), |q| q.spec());
            audit::record(Event::new(Kind::QuotaSet, &actor.name, name).detail(spec));
        }
        Ok(())
    }

    /// Makes an invitation code (admins): the code, shown this once, and its listing.
    pub async fn create_invite(
        &self,
        actor: &Actor,
        req: InviteRequest,
    ) -> Result<(String, InviteView), ApiError> {
        admin_only(actor)?;
        let uses = req.uses.unwrap_or(1);
        if !(1..=invites::MAX_USES).contains(&uses) {
            return Err(ApiError::bad(
                "uses",
                format!("a whole number from 1 to {}", invites::MAX_USES),
            )
            .coded("number"));
        }
        let text = req.expires.as_deref().unwrap_or(DEFAULT_INVITE_LIFETIME);
        let lifetime = humantime::parse_duration(text.trim())
            .ok()
            .filter(|d| !d.is_zero() && *d <= invites::MAX_LIFETIME)
            .ok_or_else(|| {
                ApiError::bad("expires", "a duration like 7d or 12h, at most 366 days")
                    .coded("duration")
            })?;
        let path = invites::path_for(self.manager.users.path());
        let by = actor.name.clone();
        let (code, invite) = blocking(move || invites::create(&path, uses, lifetime, Some(&by)))
            .await
            .map_err(saved)?;
        tracing::info!(actor = %actor.name, invite = %invite.id, uses, "invitation created");
        audit::record(
            Event::new(Kind::InviteCreate, &actor.name, &invite.id)
                .detail(format!("uses={uses} expires={}", invite.expires)),
        );
        Ok((code, InviteView::of(&invite, SystemTime::now())))
    }

    /// Every invitation, newest first (admins); never a code.
    pub fn invites(&self, actor: &Actor) -> Result<Vec<InviteView>, ApiError> {
        admin_only(actor)?;
        let file = invites::read(&invites::path_for(self.manager.users.path())).map_err(saved)?;
        let now = SystemTime::now();
        Ok(file
            .invites
            .iter()
            .rev()
            .map(|i| InviteView::of(i, now))
            .collect())
    }

    pub async fn revoke_invite(&self, actor: &Actor, id: &str) -> Result<(), ApiError> {
        admin_only(actor)?;
        let path = invites::path_for(self.manager.users.path());
        let target = id.to_owned();
        blocking(move || invites::revoke(&path, &target))
            .await
            .map_err(saved)?;
        tracing::info!(actor = %actor.name, invite = id, "invitation revoked");
        audit::record(Event::new(Kind::InviteRevoke, &actor.name, id));
        Ok(())
    }
}

impl AdminApp {
    /// `actor`'s quota and usage of the current day and month (`None`: no quota).
    pub async fn quota_usage(
        &self,
        actor: &Actor,
    ) -> Option<(
        crate::config::accounts::QuotaFile,
        crate::proxy::user_quota::QuotaUsage,
    )> {
        if !actor.is_user {
            return None;
        }
        self.quotas.as_ref()?.usage(&actor.name).await
    }

    /// `GET /admin/api/me`'s answer: `quota` and `usage` are null without a quota.
    pub async fn me(&self, actor: &Actor) -> serde_json::Value {
        let (quota, usage) = self.quota_usage(actor).await.unzip();
        serde_json::json!({
            "username": actor.name,
            "admin": actor.admin,
            "max_adapters": actor.max_adapters,
            "quota": quota,
            "usage": usage,
        })
    }
}

/// The refusal when the login limiter has no password check left for this address or name.
pub(crate) fn too_many_attempts(secs: u64) -> ApiError {
    ApiError::new(
        429,
        format!("too many attempts; try again in {secs} seconds"),
    )
    .coded("too_many")
}
