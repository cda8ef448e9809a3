//! Panel accounts (`users.yaml`, next to the adapters): each user has a name, an Argon2id
//! password hash (never the password), an admin flag and a cap on the adapters they may own.
//! The file is read again whenever it changes on disk (checked at most once a second), so
//! `flexiproxy user …`, hand edits and a Kubernetes Secret/ConfigMap swap all apply live.

use super::edit::{EditError, lock_dir, write_atomic};
use arc_swap::ArcSwap;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Adapters a user may own when `user add` is not given `--max-adapters`.
pub const DEFAULT_MAX_ADAPTERS: usize = 5;
/// The shortest password `user add` / `user passwd` accept.
pub const MIN_PASSWORD_LEN: usize = 8;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    #[serde(default)]
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// PHC string of the Argon2id hash; empty for an account made by single sign-on (no
    /// password can match it).
    #[serde(default)]
    pub password: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// `admin` came from a single sign-on provider's `admin_groups`: a later sign-in through
    /// that provider outside those groups takes it away (an admin's own grant stays).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin_from_group: bool,
    /// Adapters this user may own (admins are bound by `max_adapters` of the server only).
    #[serde(default = "default_cap")]
    pub max_adapters: usize,
    /// `pending` (signed up, waiting for an admin) and `disabled` accounts cannot log in.
    #[serde(default, skip_serializing_if = "UserStatus::is_active")]
    pub status: UserStatus,
    /// This user's own quota, in place of `accounts.default_quota` (`{}`: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<super::accounts::QuotaFile>,
    /// A verified email: single sign-on with this email links to this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Single sign-on identities that sign in as this user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<Identity>,
}

/// An identity at a single sign-on provider: `oidc:<name>` or `github`, and its subject
/// there (the ID token's `sub`, GitHub's numeric user id).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub provider: String,
    pub subject: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    #[default]
    Active,
    Pending,
    Disabled,
}

impl UserStatus {
    pub fn is_active(&self) -> bool {
        *self == UserStatus::Active
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Pending => "pending",
            UserStatus::Disabled => "disabled",
        }
    }
}

fn default_cap() -> usize {
    DEFAULT_MAX_ADAPTERS
}

impl UsersFile {
    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn is_admin(&self, name: &str) -> bool {
        self.get(name).is_some_and(|u| u.admin)
    }

    /// The user a single sign-on identity is linked to.
    pub fn by_identity(&self, provider: &str, subject: &str) -> Option<&User> {
        self.users.iter().find(|u| {
            u.identities
                .iter()
                .any(|i| i.provider == provider && i.subject == subject)
        })
    }

    /// The user with this verified email (compared without case).
    pub fn by_email(&self, email: &str) -> Option<&User> {
        self.users.iter().find(|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    }
}

pub fn parse(path: &Path, text: &str) -> Result<UsersFile, String> {
    if text.trim().is_empty() {
        return Ok(UsersFile::default());
    }
    serde_yaml_ng::from_str(text).map_err(|e| super::ConfigError::yaml(path, &e).to_string())
}

/// The users file as it is now (empty when missing or unreadable).
pub fn read_or_empty(path: &Path) -> UsersFile {
    read(path).unwrap_or_default()
}

fn read(path: &Path) -> Result<UsersFile, EditError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text).map_err(EditError::Invalid),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UsersFile::default()),
        Err(e) => Err(EditError::Io(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn write(path: &Path, users: &UsersFile) -> Result<(), EditError> {
    let body = serde_yaml_ng::to_string(users)
        .map_err(|e| EditError::Invalid(format!("cannot write users: {e}")))?;
    let text = format!(
        "# FlexiProxy panel accounts, managed by `flexiproxy user …`. Passwords are Argon2id\n\
         # hashes; this file is read again whenever it changes.\n{body}"
    );
    write_atomic(path, &text)
}

/// Hashes a password with Argon2id (the crate's defaults: 19 MiB, 2 passes — OWASP's minimum).
pub fn hash_password(password: &str) -> Result<String, EditError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| EditError::Io(format!("no random numbers from the OS: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| EditError::Io(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| EditError::Io(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the stored PHC hash (false for a malformed hash).
pub fn verify_password(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

pub fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.')
}

fn check_password(password: &str) -> Result<(), EditError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(EditError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

pub fn dir_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

pub fn add(
    path: &Path,
    name: &str,
    password: &str,
    admin: bool,
    max_adapters: Option<usize>,
) -> Result<(), EditError> {
    if !valid_user_name(name) {
        return Err(EditError::Invalid(format!(
            "user name `{name}` may only contain letters, digits, `-`, `_` and `.`"
        )));
    }
    check_password(password)?;
    let hash = hash_password(password)?;
    let _lock = lock_dir(dir_of(path))?;
    let mut users = read(path)?;
    if users.get(name).is_some() {
        return Err(EditError::Invalid(format!(
            "a user named `{name}` already exists"
        )));
    }
    users.users.push(User {
        name: name.to_owned(),
        password: hash,
        admin,
        admin_from_group: false,
        max_adapters: max_adapters.unwrap_or(DEFAULT_MAX_ADAPTERS),
        status: UserStatus::Active,
        quota: None,
        email: None,
        identities: Vec::new(),
    });
    write(path, &users)
}

/// Adds a signed-up user (name already checked, password already hashed) under the users
/// directory's lock; `before_write` runs under that lock once the name is known to be free
/// (it consumes the invitation), and the user is written only when it succeeds.
pub fn sign_up(
    path: &Path,
    user: User,
    before_write: impl FnOnce() -> Result<(), EditError>,
) -> Result<(), EditError> {
    let _lock = lock_dir(dir_of(path))?;
    let mut users = read(path)?;
    if users.get(&user.name).is_some() {
        return Err(EditError::Exists(user.name));
    }
    before_write()?;
    users.users.push(user);
    write(path, &users)
}

/// Reads, changes and writes the whole file under the directory's lock; `change` says
/// whether it changed anything (nothing is written otherwise) and what to return.
pub fn update_file<T>(
    path: &Path,
    change: impl FnOnce(&mut UsersFile) -> Result<(bool, T), EditError>,
) -> Result<T, EditError> {
    let _lock = lock_dir(dir_of(path))?;
    let mut users = read(path)?;
    let (changed, out) = change(&mut users)?;
    if changed {
        write(path, &users)?;
    }
    Ok(out)
}

/// Changes one user under the directory's lock (status, password hash, …).
pub fn edit(path: &Path, name: &str, change: impl FnOnce(&mut User)) -> Result<(), EditError> {
    let _lock = lock_dir(dir_of(path))?;
    edit_locked(path, name, change)
}

/// [`edit`] for a caller already holding the directory's lock (to change another file of it
/// in the same step).
pub fn edit_locked(
    path: &Path,
    name: &str,
    change: impl FnOnce(&mut User),
) -> Result<(), EditError> {
    let mut users = read(path)?;
    let user = users
        .users
        .iter_mut()
        .find(|u| u.name == name)
        .ok_or_else(|| EditError::NotFound(name.to_owned(), path.display().to_string()))?;
    change(user);
    write(path, &users)
}

/// Changes what is given: the password, the admin flag, the cap.
pub fn update(
    path: &Path,
    name: &str,
    password: Option<&str>,
    admin: Option<bool>,
    max_adapters: Option<usize>,
) -> Result<(), EditError> {
    let hash = match password {
        Some(p) => {
            check_password(p)?;
            Some(hash_password(p)?)
        }
        None => None,
    };
    edit(path, name, |user| {
        if let Some(h) = hash {
            user.password = h;
        }
        if let Some(a) = admin {
            // An explicit grant or removal, no longer the provider's groups'.
            user.admin = a;
            user.admin_from_group = false;
        }
        if let Some(m) = max_adapters {
            user.max_adapters = m;
        }
    })
}

pub fn delete(path: &Path, name: &str) -> Result<(), EditError> {
    let _lock = lock_dir(dir_of(path))?;
    let mut users = read(path)?;
    let before = users.users.len();
    users.users.retain(|u| u.name != name);
    if users.users.len() == before {
        return Err(EditError::NotFound(
            name.to_owned(),
            path.display().to_string(),
        ));
    }
    write(path, &users)
}

/// The users file as the running proxy sees it, re-read when its metadata changes.
#[derive(Debug)]
pub struct UsersStore {
    path: PathBuf,
    current: ArcSwap<UsersFile>,
    checked: Mutex<(Instant, Option<(SystemTime, u64)>)>,
}

const RECHECK: Duration = Duration::from_secs(1);

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    // `metadata` follows symlinks: a ConfigMap's `..data` swap changes the target's stamp.
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
}

impl UsersStore {
    pub fn open(path: &Path) -> Arc<UsersStore> {
        let store = UsersStore {
            path: path.to_owned(),
            current: ArcSwap::from_pointee(UsersFile::default()),
            checked: Mutex::new((Instant::now() - RECHECK * 2, None)),
        };
        store.refresh(true);
        Arc::new(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The users, re-read first if the file changed (checked at most once a second).
    pub fn current(&self) -> Arc<UsersFile> {
        self.refresh(false);
        self.current.load_full()
    }

    /// Re-reads now if the file changed, whatever the time since the last check.
    pub fn refresh_now(&self) {
        self.refresh(true);
    }

    fn refresh(&self, force: bool) {
        let mut checked = crate::lock(&self.checked);
        if !force && checked.0.elapsed() < RECHECK {
            return;
        }
        checked.0 = Instant::now();
        let now = stamp(&self.path);
        if !force && now == checked.1 {
            return;
        }
        checked.1 = now;
        match read(&self.path) {
            Ok(users) => self.current.store(Arc::new(users)),
            // A broken file keeps the last good accounts, like a broken adapter file.
            Err(e) => tracing::warn!(error = %e, "users file not reloaded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_verify_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.yaml");
        add(&path, "alice", "correct horse", false, Some(2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("correct horse"), "never the password");
        assert!(text.contains("$argon2id$"), "{text}");
        let store = UsersStore::open(&path);
        let u = store.current().get("alice").cloned().unwrap();
        assert!(verify_password(&u.password, "correct horse"));
        assert!(!verify_password(&u.password, "wrong horse"));
        assert_eq!(u.max_adapters, 2);
        assert!(add(&path, "alice", "another one", false, None).is_err());
        assert!(add(&path, "bob", "short", false, None).is_err());
        update(&path, "alice", Some("battery staple"), Some(true), None).unwrap();
        store.refresh_now();
        let u = store.current().get("alice").cloned().unwrap();
        assert!(u.admin && verify_password(&u.password, "battery staple"));
        delete(&path, "alice").unwrap();
        assert!(matches!(
            delete(&path, "alice"),
            Err(EditError::NotFound(..))
        ));
    }
}
