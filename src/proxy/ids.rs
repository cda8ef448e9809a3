//! Request and message ids: random (Claude Code merges turns that share a message id), URL-
//! and log-safe.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// 96 random bits as 16 base64url characters, from the thread's ChaCha generator (seeded and
/// reseeded from the OS: a `getrandom` system call per request cost more than the rest of the
/// id). Falls back to time and a counter if seeding fails, so a request never fails for want
/// of an id.
pub fn request_id() -> String {
    use rand::TryRng;
    let mut bytes = [0u8; 12];
    if rand::rng().try_fill_bytes(&mut bytes).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes[..8].copy_from_slice(&t.to_le_bytes());
        bytes[8..].copy_from_slice(&(n as u32).to_le_bytes());
    }
    let mut text = [0u8; 16];
    let written = URL_SAFE_NO_PAD
        .encode_slice(bytes, &mut text)
        .unwrap_or_default();
    // `-` would make ids awkward to select and grep; `x` keeps them 16 characters.
    for b in &mut text {
        if *b == b'-' {
            *b = b'x';
        }
    }
    String::from_utf8_lossy(&text[..written]).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_safe() {
        let a = super::request_id();
        let b = super::request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'));
    }
}
