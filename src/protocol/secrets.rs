//! Provider keys masked out of what FlexiProxy relays: a provider (or a proxy in front of it)
//! may echo the `Authorization` it received in its error (`bad key Bearer sk-…`), and the
//! client's key holder is often not the provider key's owner.
//!
//! [`mask_secrets`] replaces every occurrence of a secret — as sent, and JSON-escaped when
//! that differs — by `***`. Secrets shorter than [`MIN_SECRET_LEN`] are ignored, so a short
//! or empty value never mangles a body. When nothing matches, the text is returned as it was
//! (no copy). [`SecretMasker`] does the same over a body that arrives read by read, holding
//! back the few bytes at the end of a read that could be the start of a secret split across
//! two reads.

use bytes::Bytes;
use memchr::memmem::Finder;
use std::borrow::Cow;
use std::ops::Range;

/// What a secret is replaced by.
pub const MASK: &str = "***";
/// Shorter secrets are not masked (they would match ordinary text).
pub const MIN_SECRET_LEN: usize = 8;

/// `text` with every secret replaced by `***`; borrowed when nothing matched.
pub fn mask_secrets<'a>(text: &'a [u8], secrets: &[&str]) -> Cow<'a, [u8]> {
    Secrets::new(secrets).mask(text)
}

/// [`mask_secrets`] for text.
pub fn mask_secrets_str<'a>(text: &'a str, secrets: &[&str]) -> Cow<'a, str> {
    match mask_secrets(text.as_bytes(), secrets) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // Whole secrets (valid UTF-8) were replaced by ASCII: still valid UTF-8.
        Cow::Owned(bytes) => Cow::Owned(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
    }
}

/// Secrets ready to be searched for, each in every form it may take in a body.
#[derive(Clone, Default)]
pub struct Secrets {
    finders: Vec<Finder<'static>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets themselves.
        write!(f, "Secrets({} forms)", self.finders.len())
    }
}

impl Secrets {
    pub fn new(secrets: &[&str]) -> Secrets {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for secret in secrets.iter().filter(|s| s.len() >= MIN_SECRET_LEN) {
            let escaped = serde_json::to_string(secret).unwrap_or_default();
            let escaped = escaped
                .get(1..escaped.len().saturating_sub(1))
                .unwrap_or_default();
            // `/` may be escaped as `\/` by some JSON writers.
            let slashed = escaped.replace('/', "\\/");
            for form in [*secret, escaped, &slashed] {
                if form.len() >= MIN_SECRET_LEN && !needles.iter().any(|n| n == form.as_bytes()) {
                    needles.push(form.as_bytes().to_vec());
                }
            }
        }
        Secrets {
            finders: needles
                .iter()
                .map(|n| Finder::new(n).into_owned())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.finders.is_empty()
    }

    /// `text` with every secret replaced by `***`; borrowed when nothing matched.
    pub fn mask<'a>(&self, text: &'a [u8]) -> Cow<'a, [u8]> {
        let ranges = self.ranges(text);
        if ranges.is_empty() {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(render(text, &ranges))
        }
    }

    /// Where secrets are in `text`: sorted, overlapping and touching matches merged (so two
    /// overlapping secrets leave no piece of either). Empty, without allocating, when none is.
    fn ranges(&self, text: &[u8]) -> Vec<Range<usize>> {
        let mut found: Vec<Range<usize>> = Vec::new();
        for finder in &self.finders {
            let len = finder.needle().len();
            let mut from = 0;
            while let Some(at) = text.get(from..).and_then(|rest| finder.find(rest)) {
                found.push(from + at..from + at + len);
                from += at + 1;
            }
        }
        if found.len() < 2 {
            return found;
        }
        found.sort_unstable_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(found.len());
        for r in found {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        merged
    }

    /// The length of the longest end of `text` that is the start of a secret (0 when none):
    /// what must wait for the next read to be masked whole.
    fn partial_tail(&self, text: &[u8]) -> usize {
        let mut longest = 0;
        for finder in &self.finders {
            let needle = finder.needle();
            let most = (needle.len() - 1).min(text.len());
            for k in (longest + 1..=most).rev() {
                if text.ends_with(&needle[..k]) {
                    longest = k;
                    break;
                }
            }
        }
        longest
    }
}

fn render(text: &[u8], ranges: &[Range<usize>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    for r in ranges {
        out.extend_from_slice(&text[at..r.start]);
        out.extend_from_slice(MASK.as_bytes());
        at = r.end;
    }
    out.extend_from_slice(&text[at..]);
    out
}

/// Masks secrets in a body read by read: a secret split across reads is masked whole, the
/// start of it held back until the next read (or the end). Reads with nothing to mask pass
/// as they are, without a copy.
#[derive(Debug, Default)]
pub struct SecretMasker {
    secrets: Secrets,
    held: Vec<u8>,
}

impl SecretMasker {
    pub fn new(secrets: &[&str]) -> SecretMasker {
        SecretMasker {
            secrets: Secrets::new(secrets),
            held: Vec::new(),
        }
    }

    /// Takes one read (`None` for none) and returns what may go on; `end` flushes.
    pub fn feed(&mut self, chunk: Option<Bytes>, end: bool) -> Option<Bytes> {
        if self.secrets.is_empty() {
            return chunk;
        }
        let chunk = chunk.unwrap_or_default();
        if self.held.is_empty() {
            let ranges = self.secrets.ranges(&chunk);
            let keep = self.held_back(&chunk, &ranges, end);
            let cut = chunk.len() - keep;
            self.held.extend_from_slice(&chunk[cut..]);
            let out = if ranges.is_empty() {
                chunk.slice(..cut)
            } else {
                Bytes::from(render(&chunk[..cut], &ranges))
            };
            return (!out.is_empty()).then_some(out);
        }
        let mut data = std::mem::take(&mut self.held);
        data.extend_from_slice(&chunk);
        let ranges = self.secrets.ranges(&data);
        let keep = self.held_back(&data, &ranges, end);
        let cut = data.len() - keep;
        self.held.extend_from_slice(&data[cut..]);
        data.truncate(cut);
        let out = if ranges.is_empty() {
            data
        } else {
            render(&data, &ranges)
        };
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    /// How much of the end of `data` waits for the next read: a possible start of a secret
    /// after the last match, nothing at the end of the body.
    fn held_back(&self, data: &[u8], ranges: &[Range<usize>], end: bool) -> usize {
        if end {
            return 0;
        }
        let done = ranges.last().map_or(0, |r| r.end);
        self.secrets.partial_tail(&data[done..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-live-0123456789abcdef";

    fn masked(text: &str, secrets: &[&str]) -> String {
        mask_secrets_str(text, secrets).into_owned()
    }

    #[test]
    fn masks_every_occurrence_with_and_without_bearer() {
        let bearer = format!("Bearer {KEY}");
        let text = format!(
            r#"{{"error":{{"message":"bad key {bearer}; key {KEY} refused","k":"{KEY}"}}}}"#
        );
        let out = masked(&text, &[KEY, &bearer]);
        assert_eq!(
            out,
            r#"{"error":{"message":"bad key ***; key *** refused","k":"***"}}"#
        );
        // The bare key alone still hides the key of a Bearer value.
        assert_eq!(masked(&format!("got {bearer}"), &[KEY]), "got Bearer ***");
    }

    #[test]
    fn nothing_to_mask_borrows() {
        let text = r#"{"error":{"message":"model not found"}}"#;
        assert!(matches!(mask_secrets_str(text, &[KEY]), Cow::Borrowed(_)));
        assert!(matches!(
            mask_secrets(text.as_bytes(), &[KEY]),
            Cow::Borrowed(_)
        ));
        assert!(matches!(mask_secrets_str(text, &[]), Cow::Borrowed(_)));
        // A prefix of the key is not the key.
        assert!(matches!(
            mask_secrets_str("sk-live-0123", &[KEY]),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn short_and_empty_secrets_are_ignored() {
        let text = "a message with error and an x in it";
        for short in ["", "x", "error", "1234567"] {
            assert!(matches!(mask_secrets_str(text, &[short]), Cow::Borrowed(_)));
        }
        assert_eq!(masked("key 12345678 here", &["12345678"]), "key *** here");
    }

    #[test]
    fn overlapping_and_adjacent_secrets_leave_no_piece() {
        let (a, b) = ("abcdefgh1234", "1234wxyz5678");
        // b starts inside a: one mask over both.
        assert_eq!(masked("<abcdefgh1234wxyz5678>", &[a, b]), "<***>");
        // Overlapping occurrences of one secret.
        assert_eq!(masked("aaaaaaaaaa", &["aaaaaaaa"]), "***");
        assert_eq!(masked(&format!("{KEY}{KEY}"), &[KEY]), "***");
        // Longer and shorter forms of the same secret, in any order.
        let bearer = format!("Bearer {KEY}");
        assert_eq!(masked(&format!("[{bearer}]"), &[KEY, &bearer]), "[***]");
        assert_eq!(masked(&format!("[{bearer}]"), &[&bearer, KEY]), "[***]");
    }

    #[test]
    fn json_escaped_forms_are_masked() {
        let key = r#"sk/with"quote\and/slash"#;
        let escaped = r#"sk/with\"quote\\and/slash"#;
        let slashed = r#"sk\/with\"quote\\and\/slash"#;
        for form in [key, escaped, slashed] {
            assert_eq!(masked(&format!("x {form} y"), &[key]), "x *** y", "{form}");
        }
        // Keys made of URL-safe characters have a single form.
        assert_eq!(Secrets::new(&[KEY]).finders.len(), 1);
    }

    #[test]
    fn masker_masks_secrets_split_across_reads() {
        let body = format!("data: {{\"error\":{{\"message\":\"bad key Bearer {KEY}\"}}}}\n\n");
        // Every split point, and one byte at a time.
        for cut in 0..=body.len() {
            let mut m = SecretMasker::new(&[KEY]);
            let mut out = Vec::new();
            for (piece, end) in [(&body[..cut], false), (&body[cut..], true)] {
                if let Some(b) = m.feed(Some(Bytes::copy_from_slice(piece.as_bytes())), end) {
                    out.extend_from_slice(&b);
                }
            }
            let out = String::from_utf8(out).unwrap();
            assert_eq!(out, body.replace(KEY, "***"), "cut at {cut}");
        }
        let mut m = SecretMasker::new(&[KEY]);
        let mut out = Vec::new();
        for b in body.bytes() {
            out.extend(
                m.feed(Some(Bytes::from(vec![b])), false)
                    .unwrap_or_default(),
            );
        }
        out.extend(m.feed(None, true).unwrap_or_default());
        assert_eq!(String::from_utf8(out).unwrap(), body.replace(KEY, "***"));
    }

    #[test]
    fn masker_passes_clean_reads_without_a_copy_and_flushes_at_the_end() {
        let mut m = SecretMasker::new(&[KEY]);
        let clean = Bytes::from_static(b"event: ping\ndata: {}\n\n");
        let out = m.feed(Some(clean.clone()), false).unwrap();
        assert_eq!(out.as_ptr(), clean.as_ptr(), "the same bytes, not a copy");
        // A read ending in what could start the key waits; the end lets it go as it is.
        assert_eq!(
            m.feed(Some(Bytes::from_static(b"text sk-li")), false)
                .unwrap(),
            "text "
        );
        assert_eq!(m.feed(None, true).unwrap(), "sk-li");
        assert_eq!(m.feed(None, true), None);
        // No secrets: reads go through untouched.
        let mut none = SecretMasker::new(&["short"]);
        assert_eq!(
            none.feed(Some(Bytes::from_static(b"sk-li")), false)
                .unwrap(),
            "sk-li"
        );
    }
}
