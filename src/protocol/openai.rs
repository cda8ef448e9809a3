//! OpenAI Chat Completions wire types we read: the responses, stream chunks and error bodies
//! OpenAI-compatible providers send back — parsed leniently, because every provider bends the
//! format somewhere. (The request is written directly by the translator.)

use super::json::{Lenient, Str};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

// ---------------------------------------------------------------------------------------------
// Response (non-streaming)

#[derive(Debug, Deserialize)]
pub struct ChatCompletion<'a> {
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    pub usage: Option<ChatUsage>,
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct Choice<'a> {
    #[serde(borrow, default)]
    pub message: Option<ChoiceMessage<'a>>,
    #[serde(borrow, default)]
    pub finish_reason: Option<Str<'a>>,
}

/// An assistant message; also the `delta` of a stream chunk (every field optional in both).
#[derive(Debug, Default, Deserialize)]
pub struct ChoiceMessage<'a> {
    #[serde(borrow, default)]
    pub content: Option<MessageText<'a>>,
    #[serde(borrow, default)]
    pub reasoning_content: Option<Lenient<'a>>,
    #[serde(borrow, default)]
    pub reasoning: Option<Lenient<'a>>,
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ToolCallOut<'a>>>,
    /// The legacy single `function_call` some older servers still send (boxed: rare, and this
    /// struct is moved several times per stream chunk).
    #[serde(borrow, default)]
    pub function_call: Option<Box<FunctionOut<'a>>>,
}

impl<'a> ChoiceMessage<'a> {
    /// Reasoning text, whichever field the provider uses (DeepSeek: `reasoning_content`,
    /// OpenRouter/vLLM: `reasoning`).
    pub fn reasoning_text(&self) -> Option<&str> {
        self.reasoning_content
            .as_deref()
            .filter(|s| !s.is_empty())
            .or_else(|| self.reasoning.as_deref().filter(|s| !s.is_empty()))
    }
}

/// Message text: a string, or (some providers) an array of `{"type":"text","text":…}` parts.
#[derive(Debug, Default)]
pub struct MessageText<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for MessageText<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: &'de RawValue = Deserialize::deserialize(d)?;
        let text = raw.get();
        if text.starts_with('[') {
            #[derive(Deserialize)]
            struct TextPart<'b> {
                #[serde(borrow, default)]
                text: Option<Str<'b>>,
            }
            let parts: Vec<TextPart<'de>> =
                serde_json::from_str(text).map_err(serde::de::Error::custom)?;
            let joined: String = parts.iter().filter_map(|p| p.text.as_deref()).collect();
            return Ok(MessageText(Cow::Owned(joined)));
        }
        Ok(MessageText(super::json::decode_raw_text(raw)))
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ToolCallOut<'a> {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub function: Option<FunctionOut<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct FunctionOut<'a> {
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub arguments: Option<Lenient<'a>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct ChatUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// DeepSeek's name for cached prompt tokens.
    #[serde(default)]
    pub prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

impl ChatUsage {
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .or(self.prompt_cache_hit_tokens)
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Stream chunks

#[derive(Debug, Deserialize)]
pub struct ChatChunk<'a> {
    #[serde(borrow, default)]
    pub choices: Option<FirstChoice<'a>>,
    /// Boxed, like the rare fields below: it comes once per stream, and a smaller chunk struct
    /// is cheaper to move through serde's generated code on every chunk.
    #[serde(default)]
    pub usage: Option<Box<ChatUsage>>,
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct ChunkChoice<'a> {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(borrow, default)]
    pub delta: Option<ChoiceMessage<'a>>,
    #[serde(borrow, default)]
    pub finish_reason: Option<Str<'a>>,
    /// Some providers (Groq-style) put usage on the choice.
    #[serde(default)]
    pub usage: Option<Box<ChatUsage>>,
}

/// A chunk's `choices` array reduced to what the translator uses: the choice with index 0
/// (Anthropic has no `n`). Read without collecting the array, since this runs per chunk.
#[derive(Debug, Default)]
pub struct FirstChoice<'a> {
    pub choice: Option<ChunkChoice<'a>>,
    /// The array had any elements at all.
    pub any: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for FirstChoice<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = FirstChoice<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of choices")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut first = FirstChoice::default();
                while let Some(choice) = seq.next_element::<ChunkChoice<'a>>()? {
                    first.any = true;
                    if first.choice.is_none() && choice.index.unwrap_or(0) == 0 {
                        first.choice = Some(choice);
                    }
                }
                Ok(first)
            }
        }
        d.deserialize_seq(Visit(std::marker::PhantomData))
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// What a provider said went wrong, pulled out of whichever error shape it uses:
/// `{"error":{"message","type","code"}}`, `{"error":"…"}`, `{"detail":…}`, `{"message":…}`,
/// or plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    pub message: String,
    pub code: Option<String>,
    pub kind: Option<String>,
}

impl ProviderError {
    pub fn parse(body: &[u8]) -> ProviderError {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => Self::from_value(&v).unwrap_or_else(|| Self::plain(body)),
            Err(_) => Self::plain(body),
        }
    }

    /// From a JSON value already parsed (also used for an `error` object inside a stream).
    pub fn from_value(v: &serde_json::Value) -> Option<ProviderError> {
        let text_of = |v: &serde_json::Value| -> Option<String> {
            match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }
        };
        let err = v.get("error").unwrap_or(v);
        if let serde_json::Value::String(s) = err {
            return Some(ProviderError {
                message: s.clone(),
                code: None,
                kind: None,
            });
        }
        let message = err
            .get("message")
            .or_else(|| err.get("detail"))
            .or_else(|| v.get("detail"))
            .or_else(|| v.get("message"))
            .and_then(text_of)?;
        Some(ProviderError {
            message,
            code: err.get("code").and_then(text_of),
            kind: err.get("type").and_then(text_of),
        })
    }

    fn plain(body: &[u8]) -> ProviderError {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        // An HTML error page says nothing useful to an API client beyond its status.
        let message = if text.is_empty() || text.starts_with('<') {
            String::new()
        } else {
            truncate_chars(text, 1000).to_owned()
        };
        ProviderError {
            message,
            code: None,
            kind: None,
        }
    }

    /// Context-window overflows, which Anthropic clients recognise by `prompt is too long`.
    pub fn is_context_overflow(&self) -> bool {
        let m = self.message.to_ascii_lowercase();
        self.code.as_deref() == Some("context_length_exceeded")
            || m.contains("context_length_exceeded")
            || m.contains("maximum context length")
            || m.contains("context length")
            || m.contains("context window")
            || m.contains("too many tokens")
            || m.contains("prompt is too long")
            || m.contains("input is too long")
    }
}

/// The longest prefix of `s` with at most `max` characters.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_error_shapes() {
        let e = ProviderError::parse(
            br#"{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        );
        assert_eq!(e.message, "bad key");
        assert_eq!(e.code.as_deref(), Some("invalid_api_key"));
        assert_eq!(ProviderError::parse(br#"{"error":"nope"}"#).message, "nope");
        assert_eq!(
            ProviderError::parse(br#"{"detail":"Not Found"}"#).message,
            "Not Found"
        );
        assert_eq!(
            ProviderError::parse(br#"{"message":"m","code":5}"#)
                .code
                .as_deref(),
            Some("5")
        );
        assert_eq!(
            ProviderError::parse(b"upstream exploded").message,
            "upstream exploded"
        );
        assert_eq!(ProviderError::parse(b"<html>502</html>").message, "");
    }

    #[test]
    fn context_overflow_detection() {
        let e = ProviderError::parse(
            br#"{"error":{"message":"This model's maximum context length is 65536 tokens","code":"context_length_exceeded"}}"#,
        );
        assert!(e.is_context_overflow());
        assert!(!ProviderError::parse(br#"{"error":"rate limited"}"#).is_context_overflow());
    }

    #[test]
    fn message_text_accepts_parts() {
        let m: ChoiceMessage = serde_json::from_str(
            r#"{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}"#,
        )
        .unwrap();
        assert_eq!(m.content.unwrap().0, "ab");
    }

    #[test]
    fn cached_tokens_from_either_field() {
        let u: ChatUsage =
            serde_json::from_str(r#"{"prompt_tokens":10,"prompt_cache_hit_tokens":4}"#).unwrap();
        assert_eq!(u.cached_tokens(), 4);
        let u: ChatUsage = serde_json::from_str(
            r#"{"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":6}}"#,
        )
        .unwrap();
        assert_eq!(u.cached_tokens(), 6);
    }
}
