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
    /// OpenAI's refusal text (`message.refusal`, `delta.refusal`): said to the user as text.
    #[serde(borrow, default)]
    pub refusal: Option<Lenient<'a>>,
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
    /// OpenRouter/vLLM: `reasoning`, Mistral: `thinking` parts inside `content`).
    pub fn reasoning_text(&self) -> Option<&str> {
        self.reasoning_content
            .as_deref()
            .filter(|s| !s.is_empty())
            .or_else(|| self.reasoning.as_deref().filter(|s| !s.is_empty()))
            .or_else(|| {
                self.content
                    .as_ref()
                    .map(|c| &*c.thinking)
                    .filter(|s| !s.is_empty())
            })
    }

    /// The answer's text: `content` (a string, or its text and refusal parts), else OpenAI's
    /// separate `refusal` field.
    pub fn text(&self) -> Option<&str> {
        self.content
            .as_ref()
            .map(|c| &*c.text)
            .filter(|s| !s.is_empty())
            .or_else(|| self.refusal.as_deref().filter(|s| !s.is_empty()))
    }
}

/// Message content: a string, or (Mistral, some OpenAI-compatible servers) an array of typed
/// parts — `{"type":"text","text":…}`, `{"type":"refusal","refusal":…}` and reasoning as
/// `{"type":"thinking","thinking":[{"type":"text","text":…}]}` (Magistral; `thinking` may
/// also be a plain string). Text and refusal parts join into `text`, thinking into
/// `thinking`; parts of other types (references, images) carry nothing to say.
#[derive(Debug, Default)]
pub struct MessageText<'a> {
    pub text: Cow<'a, str>,
    pub thinking: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ContentPart<'b> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'b>>,
    #[serde(borrow, default)]
    text: Option<Str<'b>>,
    #[serde(borrow, default)]
    refusal: Option<Str<'b>>,
    #[serde(borrow, default)]
    thinking: Option<&'b RawValue>,
}

impl<'b> ContentPart<'b> {
    /// Appends this part's words to `text` or `thinking`.
    fn collect(&self, text: &mut String, thinking: &mut String) -> Result<(), serde_json::Error> {
        match self.kind.as_deref() {
            Some("thinking" | "reasoning") => {
                if let Some(raw) = self.thinking {
                    push_parts_text(raw, thinking)?;
                } else if let Some(t) = &self.text {
                    thinking.push_str(t);
                }
            }
            Some("refusal") => {
                if let Some(r) = self.refusal.as_ref().or(self.text.as_ref()) {
                    text.push_str(r);
                }
            }
            Some("text" | "output_text") | None => {
                if let Some(t) = &self.text {
                    text.push_str(t);
                }
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// The text of a `thinking` value: a string, or an array of text parts.
fn push_parts_text(raw: &RawValue, out: &mut String) -> Result<(), serde_json::Error> {
    if raw.get().starts_with('[') {
        let parts: Vec<ContentPart<'_>> = serde_json::from_str(raw.get())?;
        for text in parts.iter().filter_map(|p| p.text.as_deref()) {
            out.push_str(text);
        }
    } else {
        out.push_str(&crate::protocol::json::decode_raw_text(raw));
    }
    Ok(())
}

impl<'de: 'a, 'a> Deserialize<'de> for MessageText<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: &'de RawValue = Deserialize::deserialize(d)?;
        let text = raw.get();
        if text.starts_with('[') {
            let parts: Vec<ContentPart<'de>> =
                serde_json::from_str(text).map_err(serde::de::Error::custom)?;
            let (mut joined, mut thinking) = (String::new(), String::new());
            for part in &parts {
                part.collect(&mut joined, &mut thinking)
                    .map_err(serde::de::Error::custom)?;
            }
            return Ok(MessageText {
                text: Cow::Owned(joined),
                thinking: Cow::Owned(thinking),
            });
        }
        Ok(MessageText {
            text: crate::protocol::json::decode_raw_text(raw),
            thinking: Cow::Borrowed(""),
        })
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

/// An `error` field that says something: not `null`, `{}`, `""` or `false` (which some
/// servers send on every answer).
pub fn is_error(raw: &RawValue) -> bool {
    !matches!(raw.get().trim(), "null" | "{}" | "\"\"" | "false" | "[]")
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
        assert_eq!(m.content.unwrap().text, "ab");
    }

    #[test]
    fn message_text_reads_thinking_and_refusal_parts() {
        // Magistral: thinking as nested text parts, then text.
        let m: ChoiceMessage = serde_json::from_str(
            r#"{"content":[{"type":"thinking","thinking":[{"type":"text","text":"Okay, "},{"type":"text","text":"the user"}]},{"type":"text","text":"Hi"}]}"#,
        )
        .unwrap();
        assert_eq!(m.reasoning_text(), Some("Okay, the user"));
        assert_eq!(m.text(), Some("Hi"));
        // Thinking as a string; a refusal part is said as text; unknown parts carry nothing.
        let m: ChoiceMessage = serde_json::from_str(
            r#"{"content":[{"type":"thinking","thinking":"hmm"},{"type":"refusal","refusal":"I can't."},{"type":"reference","reference_ids":[1]}]}"#,
        )
        .unwrap();
        assert_eq!(m.reasoning_text(), Some("hmm"));
        assert_eq!(m.text(), Some("I can't."));
        // OpenAI's separate refusal field.
        let m: ChoiceMessage = serde_json::from_str(r#"{"content":null,"refusal":"No."}"#).unwrap();
        assert_eq!(m.text(), Some("No."));
        // reasoning_content wins over thinking parts, a string content has no thinking.
        let m: ChoiceMessage =
            serde_json::from_str(r#"{"content":"x","reasoning_content":"r"}"#).unwrap();
        assert_eq!((m.reasoning_text(), m.text()), (Some("r"), Some("x")));
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
