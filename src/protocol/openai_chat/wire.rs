//! OpenAI Chat Completions wire types we read: the responses and stream chunks
//! OpenAI-compatible providers send back — parsed leniently, because every provider bends the
//! format somewhere. (The request is written directly by the encoder; error bodies are read by
//! [`crate::protocol::errors::ProviderError`].)

use crate::protocol::json::{Lenient, Str};
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
        Ok(MessageText(crate::protocol::json::decode_raw_text(raw)))
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

#[cfg(test)]
mod tests {
    use super::*;

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
