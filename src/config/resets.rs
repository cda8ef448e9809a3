//! One-time password-reset links (issue #27): `resets.yaml` next to the users file. An admin
//! makes one for a user (no e-mail server needed: the admin hands the link over); the token
//! is shown once and stored only as its SHA-256, with the user and when it expires (24 hours).
//! Taking a token removes it under the directory's lock, in the same step as the new
//! password is written: of two uses at once, whichever process serves them, one wins.

use super::edit::{EditError, lock_dir, write_atomic};
use super::keys::{hash_hex, hash_key};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long a link works.
pub const LIFETIME: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ResetsFile {
    #[serde(default)]
    pub resets: Vec<Reset>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Reset {
    /// Hex SHA-256 of the token.
    pub sha256: String,
    pub user: String,
    /// RFC 3339.
    pub expires: String,
    pub created_by: String,
}

/// The resets file beside a users file.
pub fn path_for(users_file: &Path) -> PathBuf {
    super::users::dir_of(users_file).join("resets.yaml")
}

fn read(path: &Path) -> Result<ResetsFile, EditError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(ResetsFile::default()),
        Ok(text) => serde_yaml_ng::from_str(&text)
            .map_err(|e| EditError::Invalid(super::ConfigError::yaml(path, &e).to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ResetsFile::default()),
        Err(e) => Err(EditError::Io(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn write(path: &Path, file: &ResetsFile) -> Result<(), EditError> {
    let body = serde_yaml_ng::to_string(file)
        .map_err(|e| EditError::Invalid(format!("cannot write password resets: {e}")))?;
    write_atomic(
        path,
        &format!("# FlexiProxy password-reset links; only each token's SHA-256 is kept.\n{body}"),
    )
}

fn expired(r: &Reset, now: SystemTime) -> bool {
    humantime::parse_rfc3339(&r.expires).map_or(true, |e| e <= now)
}

/// A new link's token for `user` (its only appearance) and when it expires. The user's
/// earlier links stop working; expired ones are forgotten.
pub fn create(path: &Path, user: &str, by: &str) -> Result<(String, String), EditError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| EditError::Io(format!("no random numbers from the OS: {e}")))?;
    let token = format!("rst-{}", URL_SAFE_NO_PAD.encode(bytes));
    let now = SystemTime::now();
    let expires = humantime::format_rfc3339_seconds(now + LIFETIME).to_string();
    let _lock = lock_dir(super::users::dir_of(path))?;
    let mut file = read(path)?;
    file.resets.retain(|r| r.user != user && !expired(r, now));
    file.resets.push(Reset {
        sha256: hash_hex(&hash_key(&token)),
        user: user.to_owned(),
        expires: expires.clone(),
        created_by: by.to_owned(),
    });
    write(path, &file)?;
    Ok((token, expires))
}

/// Takes `token` if it is valid at `now`: its user. The caller holds the directory's lock
/// (so the password is written in the same step); a taken token is gone.
pub fn take_locked(path: &Path, token: &str, now: SystemTime) -> Result<String, EditError> {
    let mut file = read(path)?;
    let sha = hash_hex(&hash_key(token.trim()));
    let found = file
        .resets
        .iter()
        .position(|r| r.sha256.eq_ignore_ascii_case(&sha));
    let Some(i) = found else {
        return Err(EditError::Invalid("reset: unknown or used".into()));
    };
    let reset = file.resets.remove(i);
    write(path, &file)?;
    if expired(&reset, now) {
        return Err(EditError::Invalid("reset: expired".into()));
    }
    Ok(reset.user)
}

/// The user `token` is for, when it would be taken now.
pub fn owner(path: &Path, token: &str, now: SystemTime) -> Option<String> {
    let sha = hash_hex(&hash_key(token.trim()));
    read(path)
        .ok()?
        .resets
        .into_iter()
        .find(|r| r.sha256.eq_ignore_ascii_case(&sha) && !expired(r, now))
        .map(|r| r.user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_stored_hashed_and_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resets.yaml");
        let (token, _) = create(&path, "alice", "root").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token) && text.contains("alice"), "{text}");
        let now = SystemTime::now();
        assert_eq!(owner(&path, &token, now).as_deref(), Some("alice"));
        assert_eq!(
            owner(&path, &token, now + LIFETIME + Duration::from_secs(1)),
            None
        );
        assert_eq!(take_locked(&path, &token, now).unwrap(), "alice");
        assert!(take_locked(&path, &token, now).is_err(), "used");
        let (old, _) = create(&path, "bob", "root").unwrap();
        let (new, _) = create(&path, "bob", "root").unwrap();
        assert!(take_locked(&path, &old, now).is_err(), "replaced");
        let late = now + LIFETIME + Duration::from_secs(1);
        assert!(take_locked(&path, &new, late).is_err(), "expired");
        assert!(
            take_locked(&path, &new, now).is_err(),
            "an expired token is gone"
        );
    }
}
