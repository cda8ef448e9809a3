//! Route conditions: the `when:` of a route in the adapter file. All present conditions must
//! hold; routes are checked in order and the first match wins (else the adapter's `source`).
//!
//! ```yaml
//! routes:
//!   - when: { model: "claude-*haiku*" }    # glob on the client's model, any case
//!   - when: { images: true }               # image or document input anywhere
//!   - when: { min_input_tokens: 100000 }   # estimated input tokens
//!   - when: { thinking: true }             # the client asked for reasoning
//! ```

use super::RequestFeatures;
use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

/// A route's conditions as written. An unknown condition is a parse error; an empty one is
/// refused by [`RouteWhen::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteWhen {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<bool>,
}

impl RouteWhen {
    /// Refuses conditions that would match every request or cannot be compiled (the config
    /// adds file, line and column).
    pub fn validate(&self) -> Result<(), String> {
        self.compile().map(drop)
    }

    /// The form matched per request (the glob built once).
    pub fn compile(&self) -> Result<CompiledWhen, String> {
        if *self == RouteWhen::default() {
            return Err(
                "`when` needs at least one condition (model, images, min_input_tokens, \
                        thinking); the adapter's `source` already serves every other request"
                    .into(),
            );
        }
        if self.min_input_tokens == Some(0) {
            return Err("when.min_input_tokens: 0 holds for every request; use at least 1".into());
        }
        let model = match self.model.as_deref() {
            None => None,
            Some("") => return Err("when.model: empty pattern".into()),
            Some(pattern) => Some(ModelGlob::new(pattern)?),
        };
        Ok(CompiledWhen {
            model,
            images: self.images,
            min_input_tokens: self.min_input_tokens,
            thinking: self.thinking,
        })
    }
}

#[derive(Debug, Clone)]
pub struct CompiledWhen {
    model: Option<ModelGlob>,
    images: Option<bool>,
    min_input_tokens: Option<u64>,
    thinking: Option<bool>,
}

impl CompiledWhen {
    pub fn matches(&self, f: &RequestFeatures<'_>) -> bool {
        // Cheapest first; the token estimate last, as it may have to count.
        self.images.is_none_or(|want| f.has_images == want)
            && self.thinking.is_none_or(|want| f.thinking() == want)
            && self.model.as_ref().is_none_or(|g| g.is_match(f.model))
            && self
                .min_input_tokens
                .is_none_or(|min| f.input_tokens_at_least(min))
    }

    /// Whether matching may need the token estimate.
    pub fn needs_tokens(&self) -> bool {
        self.min_input_tokens.is_some()
    }
}

/// The index of the first route whose conditions hold.
pub fn first_match(routes: &[CompiledWhen], f: &RequestFeatures<'_>) -> Option<usize> {
    routes.iter().position(|r| r.matches(f))
}

/// A case-insensitive glob on a model name (`*` also crosses `/`, as in
/// `openrouter/anthropic/claude-*`). Patterns of literals and `*` only (nearly all) are matched
/// directly, a few times faster than globset's regex; the rest go to globset.
#[derive(Debug, Clone)]
enum ModelGlob {
    /// The lowercased pieces between the stars.
    Stars(Vec<String>),
    Glob(GlobMatcher),
}

impl ModelGlob {
    fn new(pattern: &str) -> Result<Self, String> {
        let glob = GlobBuilder::new(pattern)
            .case_insensitive(true)
            .literal_separator(false)
            .build()
            .map_err(|e| format!("when.model: {e}"))?;
        let simple = pattern.is_ascii() && !pattern.contains(['?', '[', ']', '{', '}', '\\']);
        Ok(if simple {
            ModelGlob::Stars(
                pattern
                    .to_ascii_lowercase()
                    .split('*')
                    .map(str::to_owned)
                    .collect(),
            )
        } else {
            ModelGlob::Glob(glob.compile_matcher())
        })
    }

    fn is_match(&self, model: &str) -> bool {
        match self {
            ModelGlob::Stars(pieces) => stars_match(pieces, model.as_bytes()),
            ModelGlob::Glob(g) => g.is_match(model),
        }
    }
}

/// `pieces` joined by `*` matches `s`, ASCII case-insensitively. Leftmost matching of each
/// middle piece is enough: a later match could only leave less room for the rest.
fn stars_match(pieces: &[String], s: &[u8]) -> bool {
    let eq = |a: &[u8], b: &str| a.eq_ignore_ascii_case(b.as_bytes());
    let [first, rest @ ..] = pieces else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return eq(s, first);
    };
    if s.len() < first.len() + last.len()
        || !eq(&s[..first.len()], first)
        || !eq(&s[s.len() - last.len()..], last)
    {
        return false;
    }
    let mut hay = &s[first.len()..s.len() - last.len()];
    for piece in middle.iter().filter(|p| !p.is_empty()) {
        match hay.windows(piece.len()).position(|w| eq(w, piece)) {
            Some(at) => hay = &hay[at + piece.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn when(yaml: &str) -> Result<RouteWhen, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
    }

    fn compiled(yaml: &str) -> CompiledWhen {
        when(yaml).unwrap().compile().unwrap()
    }

    #[test]
    fn parses_the_documented_conditions() {
        let w = when(r#"{ model: "claude-*haiku*", images: true, min_input_tokens: 100000, thinking: false }"#)
            .unwrap();
        assert_eq!(w.model.as_deref(), Some("claude-*haiku*"));
        assert_eq!(
            (w.images, w.min_input_tokens, w.thinking),
            (Some(true), Some(100_000), Some(false))
        );
        // Round-trips for the management API, without absent fields.
        let back = serde_json::to_string(&when("{ images: true }").unwrap()).unwrap();
        assert_eq!(back, r#"{"images":true}"#);
    }

    #[test]
    fn unknown_and_empty_conditions_are_errors() {
        let e = when("{ model: x, vision: true }").unwrap_err();
        assert!(e.contains("unknown field `vision`"), "{e}");
        assert!(when("{ images: yes please }").is_err());
        let e = when("{}").unwrap().validate().unwrap_err();
        assert!(e.contains("at least one condition"), "{e}");
        assert!(when("{ min_input_tokens: 0 }").unwrap().validate().is_err());
        assert!(when("{ model: '' }").unwrap().validate().is_err());
        let e = when("{ model: 'claude-[' }")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.starts_with("when.model:"), "{e}");
        assert!(when("{ thinking: true }").unwrap().validate().is_ok());
    }

    #[test]
    fn model_globs_ignore_case() {
        let haiku = compiled(r#"{ model: "claude-*haiku*" }"#);
        let m = |model| haiku.matches(&RequestFeatures::new(model, false, false, 0));
        assert!(m("claude-haiku-4-5-20251001"));
        assert!(m("Claude-3-5-HAIKU-latest"));
        assert!(!m("claude-sonnet-4-5"));
        assert!(!m("gpt-haiku"));
        let exact = compiled("{ model: gpt-5 }");
        assert!(exact.matches(&RequestFeatures::new("GPT-5", false, false, 0)));
        assert!(!exact.matches(&RequestFeatures::new("gpt-5-mini", false, false, 0)));
        let complex = compiled(r#"{ model: "gpt-5{,-mini}" }"#);
        assert!(complex.matches(&RequestFeatures::new("GPT-5-Mini", false, false, 0)));
        assert!(!complex.matches(&RequestFeatures::new("gpt-5-nano", false, false, 0)));
        let slash = compiled(r#"{ model: "*/claude-*" }"#);
        assert!(slash.matches(&RequestFeatures::new(
            "openrouter/anthropic/claude-x",
            false,
            false,
            0
        )));
    }

    #[test]
    fn all_conditions_must_hold_and_the_first_route_wins() {
        let routes = [
            compiled(r#"{ model: "claude-*haiku*" }"#),
            compiled("{ images: true }"),
            compiled("{ min_input_tokens: 100000 }"),
            compiled("{ thinking: true, model: 'claude-*' }"),
        ];
        let f = |model, images, thinking, tokens| {
            first_match(
                &routes,
                &RequestFeatures::new(model, images, thinking, tokens),
            )
        };
        assert_eq!(f("claude-haiku-4-5", true, true, 200_000), Some(0));
        assert_eq!(f("claude-opus-4-7", true, true, 200_000), Some(1));
        assert_eq!(f("claude-opus-4-7", false, true, 100_000), Some(2));
        assert_eq!(f("claude-opus-4-7", false, true, 99_999), Some(3));
        assert_eq!(
            f("gpt-5", false, true, 10),
            None,
            "thinking alone is not enough"
        );
        assert_eq!(f("claude-opus-4-7", false, false, 10), None);
        let no_images = compiled("{ images: false }");
        assert!(no_images.matches(&RequestFeatures::new("m", false, false, 0)));
        assert!(!no_images.matches(&RequestFeatures::new("m", true, false, 0)));
        assert!(routes[2].needs_tokens() && !routes[0].needs_tokens());
    }

    proptest::proptest! {
        /// The star fast path agrees with globset on patterns it takes.
        #[test]
        fn stars_agree_with_globset(pattern in "[aAbB*-]{0,8}", model in "[aAbB/-]{0,10}") {
            proptest::prop_assume!(!pattern.is_empty());
            let fast = ModelGlob::new(&pattern).unwrap();
            proptest::prop_assert!(matches!(fast, ModelGlob::Stars(_)));
            let slow = GlobBuilder::new(&pattern).case_insensitive(true).literal_separator(false)
                .build().unwrap().compile_matcher();
            proptest::prop_assert_eq!(fast.is_match(&model), slow.is_match(&model), "{} on {}", pattern, model);
        }
    }
}
