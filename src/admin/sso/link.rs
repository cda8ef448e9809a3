//! From a verified identity to a panel account (issue #27). Under the users file's lock: the
//! account linked to (provider, subject) if there is one; else the account whose `email`
//! is the identity's verified email, which gets the link; else a new account, as
//! `accounts.registration` allows — never when `closed`; with `invite` only through a
//! provider that admits some people only (`allowed_domains`, `allowed_orgs`), which stands
//! for the invitation; pending when `approval` is on. A new account's name comes from the
//! provider (`preferred_username`, the email's local part, the GitHub login), made valid
//! and unique; it has no password. Membership of an `admin_groups` group makes the account
//! an admin; a later sign-in through a provider with `admin_groups` that no longer lists the
//! account takes that away again — unless an admin granted it (CLI `user set --admin`), or it
//! is the last active admin (kept, and logged). Pending and disabled
//! accounts get no session; the others one from the same `Sessions` as a password login.
//! Sign-ins and refusals go to the audit log (`method=sso`, the provider, the reason).

use super::{SsoError, Verified};
use crate::admin::AdminApp;
use crate::config::accounts::{AccountsConfig, Registration};
use crate::config::users::{self, Identity, User, UserStatus, UsersFile};
use crate::telemetry::audit::{self, Event, Kind};

/// A refused single sign-on in the audit log: the provider (a configured one's id), the
/// account if one was found, and the refusal's code — nothing the provider sent.
pub fn audit_refusal(provider: &str, target: &str, e: SsoError, client_ip: &str) {
    audit::record(
        Event::new(Kind::SignInFailed, "(anonymous)", target)
            .detail(format!(
                "method=sso provider={provider} reason={}",
                e.code()
            ))
            .client(client_ip),
    );
}

/// The account a verified identity signs in as, and whether it was made just now.
pub fn resolve(
    users: &mut UsersFile,
    who: &Verified,
    accounts: &AccountsConfig,
) -> Result<(bool, User, bool), SsoError> {
    let linked = users
        .by_identity(&who.provider, &who.subject)
        .map(|u| u.name.clone());
    let by_email = || {
        who.email
            .as_deref()
            .and_then(|e| users.by_email(e))
            .map(|u| u.name.clone())
    };
    if let Some(name) = linked.or_else(by_email) {
        let user = users
            .users
            .iter_mut()
            .find(|u| u.name == name)
            .ok_or(SsoError::Saving)?;
        let mut changed = false;
        let identity = Identity {
            provider: who.provider.clone(),
            subject: who.subject.clone(),
        };
        if !user.identities.contains(&identity) {
            user.identities.push(identity);
            changed = true;
        }
        match who.admin {
            Some(true) if !user.admin => {
                user.admin = true;
                user.admin_from_group = true;
                changed = true;
            }
            Some(false) if user.admin && user.admin_from_group => {
                let name = user.name.clone();
                let other_admins = users
                    .users
                    .iter()
                    .any(|u| u.name != name && u.admin && u.status.is_active());
                if other_admins {
                    let user = users.users.iter_mut().find(|u| u.name == name);
                    let user = user.ok_or(SsoError::Saving)?;
                    user.admin = false;
                    user.admin_from_group = false;
                    tracing::info!(user = %name, provider = %who.provider, "no longer in admin_groups: admin taken away");
                    return Ok((true, user.clone(), false));
                }
                tracing::warn!(user = %name, provider = %who.provider, "no longer in admin_groups, but the last active admin: kept");
                let user = users.users.iter().find(|u| u.name == name);
                return Ok((changed, user.cloned().ok_or(SsoError::Saving)?, false));
            }
            _ => {}
        }
        return Ok((changed, user.clone(), false));
    }
    match accounts.registration {
        Registration::Closed => return Err(SsoError::RegistrationClosed),
        Registration::Invite if !who.restricted => return Err(SsoError::InviteOnly),
        _ => {}
    }
    let user = User {
        name: free_name(users, &who.name_hint),
        password: String::new(),
        admin: who.admin == Some(true),
        admin_from_group: who.admin == Some(true),
        max_adapters: accounts.default_max_adapters,
        status: if accounts.approval {
            UserStatus::Pending
        } else {
            UserStatus::Active
        },
        quota: None,
        email: who.email.clone(),
        identities: vec![Identity {
            provider: who.provider.clone(),
            subject: who.subject.clone(),
        }],
    };
    users.users.push(user.clone());
    Ok((true, user, true))
}

/// `hint` as a valid user name not yet taken: `ana`, else `ana-2`, `ana-3`, …
fn free_name(users: &UsersFile, hint: &str) -> String {
    let mut base: String = hint
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(48)
        .collect();
    base = base.trim_start_matches('.').to_owned();
    if base.is_empty() {
        base = "user".into();
    }
    if users.get(&base).is_none() {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|name| users.get(name).is_none())
        .unwrap_or(base)
}

impl AdminApp {
    /// Signs in a verified identity: the session's `Set-Cookie` value.
    pub async fn sso_sign_in(&self, who: Verified, client_ip: &str) -> Result<String, SsoError> {
        let accounts = self.manager.server.accounts.clone();
        let path = self.manager.users.path().to_owned();
        let identity = who.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut refused = None;
            let result =
                users::update_file(&path, |file| match resolve(file, &identity, &accounts) {
                    Ok((changed, user, new)) => Ok((changed, Some((user, new)))),
                    Err(e) => {
                        refused = Some(e);
                        Ok((false, None))
                    }
                });
            match result {
                Ok(Some(found)) => Ok(found),
                Ok(None) => Err(refused.unwrap_or(SsoError::Saving)),
                Err(e) => {
                    tracing::error!(target: "flexiproxy::admin", "single sign-on: users file: {e}");
                    Err(SsoError::Saving)
                }
            }
        })
        .await
        .unwrap_or(Err(SsoError::Saving));
        let (user, new) = match outcome {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(provider = %who.provider, client = client_ip, refused = e.code(), "single sign-on refused");
                audit_refusal(&who.provider, "(unknown)", e, client_ip);
                return Err(e);
            }
        };
        self.manager.users.refresh_now();
        let refused = match user.status {
            UserStatus::Pending => Some(SsoError::Pending { new }),
            UserStatus::Disabled => Some(SsoError::Disabled),
            UserStatus::Active => None,
        };
        if let Some(e) = refused {
            tracing::warn!(user = %user.name, provider = %who.provider, client = client_ip, new, refused = e.code(), "single sign-on of an inactive account");
            audit_refusal(&who.provider, &user.name, e, client_ip);
            return Err(e);
        }
        let (cookie, _csrf) = self.sessions.create(&user.name, &user.password).await;
        tracing::info!(user = %user.name, provider = %who.provider, new, "panel login by single sign-on");
        audit::record(
            Event::new(Kind::SignIn, &user.name, &user.name)
                .detail(format!("method=sso provider={} new={new}", who.provider))
                .client(client_ip),
        );
        Ok(super::super::auth::session_cookie(
            &cookie,
            self.secure_cookies,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(subject: &str, email: Option<&str>, restricted: bool) -> Verified {
        Verified {
            provider: "oidc:company".into(),
            subject: subject.into(),
            email: email.map(str::to_owned),
            name_hint: "ana.lima".into(),
            admin: None,
            restricted,
        }
    }

    fn accounts(registration: Registration) -> AccountsConfig {
        AccountsConfig {
            registration,
            ..AccountsConfig::default()
        }
    }

    fn password_user(name: &str, email: Option<&str>) -> User {
        User {
            name: name.into(),
            password: "$argon2id$x".into(),
            admin: false,
            admin_from_group: false,
            max_adapters: 1,
            status: UserStatus::Active,
            quota: None,
            email: email.map(str::to_owned),
            identities: Vec::new(),
        }
    }

    #[test]
    fn admin_groups_grant_admin_and_take_back_only_their_own_grant() {
        let open = accounts(Registration::Open);
        let in_group = |admin| Verified {
            admin,
            ..who("s1", None, false)
        };
        let mut file = UsersFile::default();
        let mut boss = password_user("boss", Some("boss@example.com"));
        boss.admin = true;
        file.users.push(boss);
        let (_, ana, _) = resolve(&mut file, &in_group(Some(true)), &open).unwrap();
        assert!(ana.admin && ana.admin_from_group);
        // A provider without admin_groups says nothing: nothing changes.
        let (changed, ana, _) = resolve(&mut file, &in_group(None), &open).unwrap();
        assert!(!changed && ana.admin);
        // Out of the groups: taken away (boss is still an admin).
        let (changed, ana, _) = resolve(&mut file, &in_group(Some(false)), &open).unwrap();
        assert!(changed && !ana.admin && !ana.admin_from_group);
        // An admin's own grant is not the groups' to take: boss signs in outside them.
        let boss_out = Verified {
            subject: "s-boss".into(),
            email: Some("boss@example.com".into()),
            ..in_group(Some(false))
        };
        let (_, boss, _) = resolve(&mut file, &boss_out, &open).unwrap();
        assert!(boss.admin && !boss.admin_from_group);

        // The last active admin keeps it, whatever the groups say.
        let mut alone = UsersFile::default();
        resolve(&mut alone, &in_group(Some(true)), &open).unwrap();
        let (changed, ana, _) = resolve(&mut alone, &in_group(Some(false)), &open).unwrap();
        assert!(!changed && ana.admin);
    }

    #[test]
    fn first_sign_in_creates_the_second_finds() {
        let mut file = UsersFile::default();
        let open = accounts(Registration::Open);
        let (changed, user, new) =
            resolve(&mut file, &who("s1", Some("ana@example.com"), false), &open).unwrap();
        assert!(changed && new && user.name == "ana.lima" && user.password.is_empty());
        let (changed, again, new) = resolve(&mut file, &who("s1", None, false), &open).unwrap();
        assert!(!changed && !new && again.name == "ana.lima");
        // Another subject with the same hint gets a name of its own.
        let (_, other, _) = resolve(&mut file, &who("s2", None, false), &open).unwrap();
        assert_eq!(other.name, "ana.lima-2");
    }

    #[test]
    fn links_a_password_account_only_by_its_verified_email() {
        let mut file = UsersFile::default();
        file.users
            .push(password_user("ana", Some("Ana@Example.com")));
        let closed = accounts(Registration::Closed);
        let (changed, user, new) = resolve(
            &mut file,
            &who("s1", Some("ana@example.com"), false),
            &closed,
        )
        .unwrap();
        assert!(changed && !new && user.name == "ana" && user.identities.len() == 1);
        // No verified email (the provider's `email_verified` was not true): no link.
        assert_eq!(
            resolve(&mut file, &who("s9", None, false), &closed).unwrap_err(),
            SsoError::RegistrationClosed
        );
    }

    #[test]
    fn registration_modes() {
        let mut file = UsersFile::default();
        assert_eq!(
            resolve(
                &mut file,
                &who("s1", None, true),
                &accounts(Registration::Closed)
            )
            .unwrap_err(),
            SsoError::RegistrationClosed
        );
        let invite = accounts(Registration::Invite);
        assert_eq!(
            resolve(&mut file, &who("s1", None, false), &invite).unwrap_err(),
            SsoError::InviteOnly
        );
        assert!(resolve(&mut file, &who("s1", None, true), &invite).is_ok());
        let approval = AccountsConfig {
            approval: true,
            ..accounts(Registration::Open)
        };
        let (_, user, _) = resolve(&mut file, &who("s2", None, false), &approval).unwrap();
        assert_eq!(user.status, UserStatus::Pending);
        assert!(file.users.len() == 2);
    }

    #[test]
    fn names_from_any_hint_are_valid() {
        let file = UsersFile::default();
        for hint in ["", "..", "Zoë Müller", "a/b", &"x".repeat(200)] {
            let name = free_name(&file, hint);
            assert!(users::valid_user_name(&name), "{hint:?} → {name:?}");
        }
    }
}
