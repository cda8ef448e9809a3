//! The reasoning a provider needs back, sealed into a Responses `encrypted_content` so it
//! survives a stateless client (Codex sends `store: false` and echoes reasoning items
//! verbatim on the next turn).
//!
//! What is inside (documented in `docs/responses.md`): the reasoning's origin (which source
//! protocol produced it), its text (DeepSeek/Kimi want their `reasoning_content` echoed on
//! tool turns), and the opaque data its provider signed (an Anthropic thinking signature or
//! redacted thinking). It is encrypted and authenticated with ChaCha20-Poly1305 under the
//! proxy's reasoning key, so a client can neither read a signature nor forge reasoning the
//! proxy would vouch for; a blob that does not open (another key, a real OpenAI blob, a
//! forgery) is treated as absent, never as an error.
//!
//! A leaf: the pivot's reasoning parts become [`Sealed`] and back in `pivot.rs`.

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD,
};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Marks the first format's blobs (`fp1.` + base64url), still opened.
const PREFIX: &str = "fp1.";
/// The first bytes of a blob in the current format (standard base64 of `fp2` ‖ nonce ‖
/// ciphertext, so it starts `ZnAy`): plain base64, because Gemini SDKs hold a
/// `thoughtSignature` as bytes and refuse one that is not (google-genai validates it).
const MAGIC: &[u8] = b"fp2";
const NONCE_LEN: usize = 12;

/// The key reasoning is sealed with. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ReasoningKey(Arc<ChaCha20Poly1305>);

impl std::fmt::Debug for ReasoningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReasoningKey(..)")
    }
}

impl ReasoningKey {
    /// A key derived from a secret of any length (SHA-256 of it).
    pub fn from_secret(secret: &[u8]) -> ReasoningKey {
        let digest = Sha256::digest(secret);
        let key = Key::from_slice(digest.as_slice());
        ReasoningKey(Arc::new(ChaCha20Poly1305::new(key)))
    }

    /// base64(`fp2` ‖ nonce ‖ ciphertext+tag) of the reasoning as JSON.
    pub fn seal(&self, reasoning: &Sealed) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        // Without an OS random source a nonce could repeat: then seal nothing.
        if getrandom::fill(&mut nonce).is_err() {
            return String::new();
        }
        let plain = serde_json::to_vec(reasoning).unwrap_or_default();
        let Ok(sealed) = self.0.encrypt(Nonce::from_slice(&nonce), plain.as_slice()) else {
            return String::new();
        };
        let mut blob = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        blob.extend_from_slice(MAGIC);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        STANDARD.encode(blob)
    }

    /// The reasoning in a blob this proxy sealed; `None` for anything else.
    /// Clients may send it back in either base64 alphabet, padded or not (google-genai
    /// re-encodes the bytes URL-safe).
    pub fn open(&self, blob: &str) -> Option<Sealed> {
        let data = match blob.strip_prefix(PREFIX) {
            Some(old) => URL_SAFE_NO_PAD.decode(old).ok()?,
            None => {
                const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
                    .with_decode_padding_mode(DecodePaddingMode::Indifferent);
                let standard = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
                let url_safe = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
                let bytes = standard
                    .decode(blob)
                    .or_else(|_| url_safe.decode(blob))
                    .ok()?;
                bytes.strip_prefix(MAGIC)?.to_vec()
            }
        };
        if data.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        let plain = self.0.decrypt(Nonce::from_slice(nonce), sealed).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

/// The reasoning as sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Who signed `signature`/`redacted` (none for bare reasoning text).
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<SealedOrigin>,
    /// The reasoning text (plain).
    #[serde(rename = "t", default)]
    pub text: String,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<String>,
}

/// A reasoning part's origin (`pivot::Origin`) as it is written inside a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SealedOrigin {
    #[serde(rename = "a")]
    Anthropic,
    #[serde(rename = "c")]
    OpenAiChat,
    #[serde(rename = "r")]
    Responses,
    #[serde(rename = "g")]
    Gemini,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sealed {
        Sealed {
            origin: Some(SealedOrigin::Anthropic),
            text: "let me think ✓".into(),
            signature: Some("sig-abc".into()),
            redacted: None,
        }
    }

    #[test]
    fn seals_and_opens() {
        let key = ReasoningKey::from_secret(b"secret");
        let blob = key.seal(&sample());
        // Plain base64 (a Gemini SDK holds it as bytes), recognisably ours.
        assert!(blob.starts_with("ZnAy"), "{blob}");
        assert!(STANDARD.decode(&blob).is_ok());
        assert!(!blob.contains("sig-abc") && !blob.contains("think"));
        assert_eq!(key.open(&blob), Some(sample()));
        // Sent back URL-safe and unpadded (google-genai re-encodes the bytes) it still opens.
        let url_safe = URL_SAFE_NO_PAD.encode(STANDARD.decode(&blob).unwrap());
        assert_eq!(key.open(&url_safe), Some(sample()));
        // The first format still opens.
        let old = format!(
            "{PREFIX}{}",
            URL_SAFE_NO_PAD.encode(&STANDARD.decode(&blob).unwrap()[MAGIC.len()..])
        );
        assert_eq!(key.open(&old), Some(sample()));
        // Fresh nonces: the same reasoning never seals to the same blob.
        assert_ne!(blob, key.seal(&sample()));
    }

    #[test]
    fn other_keys_forgeries_and_foreign_blobs_do_not_open() {
        let key = ReasoningKey::from_secret(b"secret");
        let blob = key.seal(&sample());
        assert_eq!(ReasoningKey::from_secret(b"other").open(&blob), None);
        let mut tampered = blob.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.open(std::str::from_utf8(&tampered).unwrap()), None);
        for foreign in [
            "gAAAAMOCKENCRYPTEDBLOB",
            "fp1.",
            "fp1.%%%",
            "",
            "fp1.AAAA",
            "ZnAy",
            "ZnAyAAAA",
        ] {
            assert_eq!(key.open(foreign), None, "{foreign}");
        }
        assert_eq!(format!("{key:?}"), "ReasoningKey(..)");
    }
}
