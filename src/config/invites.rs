//! Invitation codes for sign-up (`accounts.registration: invite`, issue #27): `invites.yaml`
//! next to the users file. A code is shown once when it is made and stored only as its
//! SHA-256, with how many sign-ups it has left and when it expires. Written like the users
//! file (temporary file renamed into place, mode 0600, under the directory's lock), so a
//! code with one use left admits exactly one of two simultaneous sign-ups, whichever process
//! serves them.

use super::edit::{EditError, lock_dir, write_atomic};
use super::keys::{hash_hex, hash_key};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The most uses one code may have.
pub const MAX_USES: u32 = 10_000;
/// The longest a code may stay valid.
pub const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InvitesFile {
    #[serde(default)]
    pub invites: Vec<Invite>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    /// How listings and revocation name it: the first 12 hex digits of the code's SHA-256.
    pub id: String,
    /// Hex SHA-256 of the code.
    pub sha256: String,
    pub uses_left: u32,
    /// RFC 3339.
    pub expires: String,
    /// RFC 3339.
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl Invite {
    /// Whether it still admits a sign-up at `now`.
    pub fn usable(&self, now: SystemTime) -> bool {
        self.uses_left > 0
            && humantime::parse_rfc3339(&self.expires).is_ok_and(|expires| expires > now)
    }
}

/// The invitations file beside a users file.
pub fn path_for(users_file: &Path) -> PathBuf {
    super::users::dir_of(users_file).join("invites.yaml")
}

pub fn parse(path: &Path, text: &str) -> Result<InvitesFile, EditError> {
    if text.trim().is_empty() {
        return Ok(InvitesFile::default());
    }
    serde_yaml_ng::from_str(text)
        .map_err(|e| EditError::Invalid(super::ConfigError::yaml(path, &e).to_string()))
}

/// The file as it is (empty when missing).
pub fn read(path: &Path) -> Result<InvitesFile, EditError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(InvitesFile::default()),
        Err(e) => Err(EditError::Io(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn write(path: &Path, file: &InvitesFile) -> Result<(), EditError> {
    let body = serde_yaml_ng::to_string(file)
        .map_err(|e| EditError::Invalid(format!("cannot write invitations: {e}")))?;
    write_atomic(
        path,
        &format!(
            "# FlexiProxy sign-up invitations, managed by `flexiproxy invite …` and the panel.\n\
             # Only each code's SHA-256 is kept.\n{body}"
        ),
    )
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn new_code() -> Result<String, EditError> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes)
        .map_err(|e| EditError::Io(format!("no random numbers from the OS: {e}")))?;
    Ok(format!("inv-{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Makes a code for `uses` sign-ups, valid for `lifetime`: the code (its only appearance)
/// and what is stored.
pub fn create(
    path: &Path,
    uses: u32,
    lifetime: Duration,
    by: Option<&str>,
) -> Result<(String, Invite), EditError> {
    if !(1..=MAX_USES).contains(&uses) {
        return Err(EditError::Invalid(format!(
            "uses: between 1 and {MAX_USES}"
        )));
    }
    if lifetime.is_zero() || lifetime > MAX_LIFETIME {
        return Err(EditError::Invalid(
            "expires: between 1s and 366 days".into(),
        ));
    }
    let code = new_code()?;
    let sha = hash_hex(&hash_key(&code));
    let now = SystemTime::now();
    let invite = Invite {
        id: sha[..12].to_owned(),
        sha256: sha,
        uses_left: uses,
        expires: rfc3339(now + lifetime),
        created: rfc3339(now),
        created_by: by.map(str::to_owned),
    };
    let _lock = lock_dir(super::users::dir_of(path))?;
    let mut file = read(path)?;
    file.invites.push(invite.clone());
    write(path, &file)?;
    Ok((code, invite))
}

/// Removes the invitation with this id.
pub fn revoke(path: &Path, id: &str) -> Result<(), EditError> {
    let _lock = lock_dir(super::users::dir_of(path))?;
    let mut file = read(path)?;
    let before = file.invites.len();
    file.invites.retain(|i| i.id != id);
    if file.invites.len() == before {
        return Err(EditError::NotFound(
            format!("invitation {id}"),
            path.display().to_string(),
        ));
    }
    write(path, &file)
}

/// Takes one use of `code` if it is usable now. The caller holds the directory's lock
/// (`users::sign_up` does): the read, the check and the write are one step.
pub fn consume_locked(path: &Path, code: &str, now: SystemTime) -> Result<(), EditError> {
    let mut file = read(path)?;
    let sha = hash_hex(&hash_key(code.trim()));
    let Some(invite) = file
        .invites
        .iter_mut()
        .find(|i| i.sha256.eq_ignore_ascii_case(&sha) && i.usable(now))
    else {
        return Err(EditError::Invalid(
            "invite: not valid (unknown, used up, expired or revoked)".into(),
        ));
    };
    invite.uses_left -= 1;
    write(path, &file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_stored_hashed_and_used_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("invites.yaml");
        let (code, invite) = create(&path, 2, Duration::from_secs(60), Some("root")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(&code) && text.contains(&invite.sha256),
            "{text}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let now = SystemTime::now();
        consume_locked(&path, &code, now).unwrap();
        consume_locked(&path, &code, now).unwrap();
        assert!(consume_locked(&path, &code, now).is_err(), "used up");
        let (code2, invite2) = create(&path, 1, Duration::from_secs(60), None).unwrap();
        assert!(
            consume_locked(&path, &code2, now + Duration::from_secs(61)).is_err(),
            "expired"
        );
        revoke(&path, &invite2.id).unwrap();
        assert!(consume_locked(&path, &code2, now).is_err(), "revoked");
        assert!(revoke(&path, &invite2.id).is_err());
        assert!(consume_locked(&path, "inv-nothing", now).is_err());
    }

    #[test]
    fn bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("invites.yaml");
        assert!(create(&path, 0, Duration::from_secs(60), None).is_err());
        assert!(create(&path, 1, Duration::ZERO, None).is_err());
        assert!(create(&path, 1, MAX_LIFETIME * 2, None).is_err());
        assert!(!path.exists());
    }
}
