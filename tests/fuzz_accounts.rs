//! Property tests of the account files issue #27 writes: `invites.yaml` (create, take a use,
//! revoke) and `users.yaml` (sign-up, status and password edits), started from mutated
//! versions of realistic files. Nothing may panic; an edit either fails with an error and
//! leaves the file as it was, or leaves a file that reads back with the change.

#[path = "common/fuzz_support.rs"]
mod fuzz_support;

use flexiproxy::config::invites;
use flexiproxy::config::users::{self, User, UserStatus};
use fuzz_support::{check, config, mutate};
use proptest::prelude::*;
use std::time::{Duration, SystemTime};

const INVITES_SEED: &str = "# by hand\ninvites:\n- id: 0123456789ab\n  sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n  uses_left: 2\n  expires: 2099-01-01T00:00:00Z\n  created: 2026-01-01T00:00:00Z\n  created_by: carol\n";
const USERS_SEED: &str = "users:\n- name: alice\n  password: $argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA\n  max_adapters: 2\n- name: bob\n  password: x\n  status: pending\n";

fn invites_edits_keep_the_file_readable(text: &[u8], uses: u32) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("invites.yaml");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let unchanged = |what: &str| -> Result<(), String> {
        match std::fs::read(&path) {
            Ok(now) if now == text => Ok(()),
            _ => Err(format!("{what} failed but changed the file")),
        }
    };
    match invites::create(&path, uses, Duration::from_secs(3600), Some("c")) {
        Ok((code, invite)) => {
            let file = invites::read(&path).map_err(|e| format!("unreadable after create: {e}"))?;
            if !file.invites.contains(&invite) {
                return Err("the new invitation is missing".into());
            }
            invites::consume_locked(&path, &code, SystemTime::now())
                .map_err(|e| format!("a new code does not work: {e}"))?;
            let file = invites::read(&path).map_err(|e| format!("unreadable after use: {e}"))?;
            let left = file
                .invites
                .iter()
                .find(|i| i.id == invite.id)
                .map(|i| i.uses_left);
            if left != Some(uses - 1) {
                return Err(format!("uses left {left:?} after one of {uses}"));
            }
            invites::revoke(&path, &invite.id).map_err(|e| format!("cannot revoke: {e}"))?;
            invites::read(&path).map_err(|e| format!("unreadable after revoke: {e}"))?;
        }
        Err(_) => unchanged("create")?,
    }
    Ok(())
}

fn users_edits_keep_the_file_readable(text: &[u8], name: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("users.yaml");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let user = User {
        name: name.to_owned(),
        password: "$argon2id$fake".into(),
        admin: false,
        admin_from_group: false,
        max_adapters: 3,
        status: UserStatus::Pending,
        quota: None,
        // A single sign-on link and its email survive the file's edits too.
        email: Some(format!("{name}@example.com")),
        identities: vec![users::Identity {
            provider: "oidc:company".into(),
            subject: "248289761001".into(),
        }],
    };
    match users::sign_up(&path, user.clone(), || Ok(())) {
        Ok(()) => {
            let file = users::read_or_empty(&path);
            if file.get(name) != Some(&user) {
                return Err(format!("signed-up user not read back: {file:?}"));
            }
            users::edit(&path, name, |u| u.status = UserStatus::Disabled)
                .map_err(|e| format!("cannot edit: {e}"))?;
            if users::read_or_empty(&path).get(name).map(|u| u.status) != Some(UserStatus::Disabled)
            {
                return Err("status not saved".into());
            }
        }
        Err(_) => {
            if std::fs::read(&path).map_err(|e| e.to_string())? != text {
                return Err("a refused sign-up changed the file".into());
            }
        }
    }
    Ok(())
}

#[test]
fn the_seeds_themselves_edit() {
    invites_edits_keep_the_file_readable(INVITES_SEED.as_bytes(), 2).unwrap();
    users_edits_keep_the_file_readable(USERS_SEED.as_bytes(), "carol").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.yaml");
    std::fs::write(&path, USERS_SEED).unwrap();
    let taken = User {
        name: "alice".into(),
        password: "x".into(),
        admin: true,
        admin_from_group: false,
        max_adapters: 1,
        status: UserStatus::Active,
        quota: None,
        email: None,
        identities: Vec::new(),
    };
    assert!(users::sign_up(&path, taken, || Ok(())).is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), USERS_SEED);
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn invitation_edits_of_mutated_files_never_break_them(
        ops in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6),
        uses in 1u32..5,
    ) {
        check(invites_edits_keep_the_file_readable(&mutate(INVITES_SEED.as_bytes(), &ops), uses))?;
    }

    #[test]
    fn sign_ups_into_mutated_users_files_never_break_them(
        ops in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6),
        name in "[a-z][a-z0-9._-]{0,12}",
    ) {
        check(users_edits_keep_the_file_readable(&mutate(USERS_SEED.as_bytes(), &ops), &name))?;
    }

    #[test]
    fn any_code_is_refused_or_takes_exactly_one_use(code in "\\PC{0,40}") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("invites.yaml");
        std::fs::write(&path, INVITES_SEED).unwrap();
        prop_assert!(invites::consume_locked(&path, &code, SystemTime::now()).is_err());
        prop_assert_eq!(std::fs::read_to_string(&path).unwrap(), INVITES_SEED);
    }
}
