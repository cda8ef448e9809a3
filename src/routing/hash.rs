//! A small, fast, stable 64-bit hash. Conversation ids and rendezvous weights must come out the
//! same on every instance and after every upgrade (several instances share one pool's keys),
//! which std's `DefaultHasher` does not promise.

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64's finaliser: every input bit reaches every output bit.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FxHash-style word-at-a-time state with a strong finish.
#[derive(Clone, Copy)]
pub(crate) struct Hasher(u64);

impl Hasher {
    pub(crate) fn new() -> Self {
        Hasher(K)
    }

    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }

    /// Adds `bytes` and their length (so "ab"+"c" and "a"+"bc" differ).
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        let rest = chunks.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(last));
        self.word(bytes.len() as u64);
    }

    pub(crate) fn finish(self) -> u64 {
        mix(self.0)
    }
}

/// The hash of one string.
pub(crate) fn str_hash(s: &str) -> u64 {
    let mut h = Hasher::new();
    h.bytes(s.as_bytes());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_length_aware() {
        // Pinned: instances of different builds must agree (also computed independently).
        assert_eq!(str_hash("session"), 0xa72c_ded5_e18d_5093);
        assert_eq!(
            str_hash("5f0c2a9e-7d41-4b8e-9c3a-1e2f3a4b5c6d"),
            0x1d6a_e029_daa5_8fd8
        );
        assert_ne!(str_hash("ab"), str_hash("ab\0"));
        let mut a = Hasher::new();
        a.bytes(b"ab");
        a.bytes(b"c");
        let mut b = Hasher::new();
        b.bytes(b"a");
        b.bytes(b"bc");
        assert_ne!(a.finish(), b.finish());
        assert_eq!(mix(0), 0);
        assert_ne!(mix(1), 1);
    }
}
