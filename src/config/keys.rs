//! Issued client keys and provider secrets. Keys come from the OS CSPRNG (256 bits, shown as
//! `fp-` + base64url); only their SHA-256 is ever stored, so checking a key costs one hash and
//! one map lookup. Secrets live in [`Secret`], whose `Debug`/`Display` never show the value.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::fmt;

/// The recognisable prefix of keys FlexiProxy issues.
pub const KEY_PREFIX: &str = "fp-";

/// A SHA-256 digest of an issued key.
pub type KeyHash = [u8; 32];

/// A secret string (provider API key, issued client key) that refuses to be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must send it (an upstream auth header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A new client key: `fp-` + 43 characters of base64url (32 random bytes).
pub fn generate_key() -> Result<Secret, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(Secret(format!(
        "{KEY_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes)
    )))
}

pub fn hash_key(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

pub fn hash_hex(hash: &KeyHash) -> String {
    hex::encode(hash)
}

/// Parses a hex SHA-256 as written in adapter files.
pub fn parse_hash_hex(text: &str) -> Option<KeyHash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_prefixed() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a, b);
        assert!(a.expose().starts_with(KEY_PREFIX));
        assert_eq!(a.expose().len(), 3 + 43);
        assert!(
            a.expose()[3..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-canary-123");
        assert_eq!(format!("{s}"), "***");
        assert!(!format!("{s:?}").contains("canary"));
    }

    #[test]
    fn hash_round_trips_through_hex() {
        let h = hash_key("fp-abc");
        assert_eq!(parse_hash_hex(&hash_hex(&h)), Some(h));
        assert_eq!(parse_hash_hex("zz"), None);
        assert_eq!(
            hash_hex(&hash_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
