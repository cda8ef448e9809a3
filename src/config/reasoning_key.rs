//! The secret reasoning is sealed with (`protocol::responses::seal`): the same on every
//! instance and across restarts, or a client's earlier reasoning stops opening. Taken from
//! `FLEXIPROXY_REASONING_KEY` when set (any string; share it across instances), else from
//! `reasoning_key_file` (default `reasoning.key` next to the server config), created with a
//! random secret and mode 0600 on first start. When neither works (a read-only config
//! mount without the variable), a random per-process key is used and a warning says so.

use crate::protocol::responses::seal::ReasoningKey;
use std::io::Write;
use std::path::Path;

pub const ENV: &str = "FLEXIPROXY_REASONING_KEY";

pub fn load(path: &Path) -> ReasoningKey {
    if let Ok(secret) = std::env::var(ENV)
        && !secret.is_empty()
    {
        return ReasoningKey::from_secret(secret.as_bytes());
    }
    match read_or_create(path) {
        Ok(secret) => ReasoningKey::from_secret(&secret),
        Err(e) => {
            tracing::warn!(
                path = %path.display(),
                error = %e,
                "cannot read or create the reasoning key file; reasoning sealed into Responses \
                 answers will not open after a restart or on other instances (set {ENV})"
            );
            ReasoningKey::from_secret(&random_secret())
        }
    }
}

fn random_secret() -> Vec<u8> {
    let mut secret = [0u8; 32];
    // Without an OS random source the key is predictable: better none than that.
    getrandom::fill(&mut secret).expect("the OS random source is available");
    hex::encode(secret).into_bytes()
}

fn read_or_create(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(secret) if !secret.trim_ascii().is_empty() => return Ok(secret.trim_ascii().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let secret = random_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(&secret)?;
            file.write_all(b"\n")?;
            Ok(secret)
        }
        // Another instance created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read(path)?.trim_ascii().to_vec())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::responses::seal::Sealed;

    #[test]
    fn the_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reasoning.key");
        let first = load(&path);
        let blob = first.seal(&Sealed {
            origin: None,
            text: "t".into(),
            signature: None,
            redacted: None,
        });
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A restart reads the same secret: earlier blobs still open.
        assert!(load(&path).open(&blob).is_some());
        let unwritable = Path::new("/proc/flexiproxy-no/reasoning.key");
        assert!(load(unwritable).open(&blob).is_none());
    }
}
