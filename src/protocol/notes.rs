//! What a translation changed (issue #29, docs/inspector.md): the codecs write a [`Note`] at
//! the place where they drop, clamp, rename or replace something of the client's request —
//! `tools[3] web_search_20250305 dropped: no server tools on this source`, `max_tokens 64000
//! clamped to 8192`, `thinking.budget_tokens 10000 → reasoning_effort high`.
//!
//! Cheap enough to stay on for every request: nothing is built unless something changes,
//! paths and changes are mostly `&'static str`, a repeated note only counts up (`×4`), and
//! at most [`MAX_NOTES`] distinct notes are kept (the rest only counted).

use crate::protocol::pair::Wire;
use crate::protocol::pivot::{Effort, ReasoningRequest};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use std::borrow::Cow;
use std::fmt;

/// Distinct notes kept per exchange; more are counted in [`Notes::count`] only.
pub const MAX_NOTES: usize = 32;

/// One change, with where it happened in the client's request (or the answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The client's field or block: `max_tokens`, `tools[3]`, `thinking.budget_tokens`.
    pub path: Cow<'static, str>,
    /// What was there, when it says something: `web_search_20250305`, `64000`.
    pub what: Option<Cow<'static, str>>,
    pub change: Change,
    /// How many times it happened (`×N` when more than once).
    pub count: u32,
}

/// What happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Not sent on, with why when it is not obvious.
    Dropped(Option<&'static str>),
    /// Lowered (or raised) to what the other side accepts.
    Clamped(u64),
    /// Sent as something else: `reasoning_effort high`, `a user message`.
    Became(Cow<'static, str>),
    /// An image or document left out (a note for the model in its place).
    Omitted,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if let Some(what) = &self.what {
            write!(f, " {what}")?;
        }
        match &self.change {
            Change::Dropped(None) => f.write_str(" dropped")?,
            Change::Dropped(Some(why)) => write!(f, " dropped: {why}")?,
            Change::Clamped(to) => write!(f, " clamped to {to}")?,
            Change::Became(to) => write!(f, " → {to}")?,
            Change::Omitted => f.write_str(" omitted")?,
        }
        if self.count > 1 {
            write!(f, " ×{}", self.count)?;
        }
        Ok(())
    }
}

impl Serialize for Note {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Note", 3)?;
        s.serialize_field("path", &self.path)?;
        s.serialize_field("text", &self.to_string())?;
        s.serialize_field("count", &self.count)?;
        s.end()
    }
}

/// A field of the pivot, named as the client's protocol names it (encoders only know the
/// pivot; the note must speak the client's language).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    MaxTokens,
    Temperature,
    TopP,
    TopK,
    Stop,
    Reasoning,
    ReasoningBudget,
    ResponseFormat,
    User,
    ParallelToolCalls,
    /// A system message in the middle of the conversation.
    SystemMessage,
    /// Earlier reasoning sent back on an assistant turn.
    EarlierReasoning,
    /// The opaque data that came with earlier reasoning (a signature, encrypted content).
    ReasoningSignature,
    Image,
    Document,
    /// A tool result's images or documents (where the source takes only text).
    ToolResultMedia,
    ToolName,
}

impl Field {
    /// The field's name in `client`'s protocol.
    pub fn path(self, client: Wire) -> &'static str {
        use Field::*;
        use Wire::*;
        match (self, client) {
            (MaxTokens, Responses) => "max_output_tokens",
            (MaxTokens, Gemini) => "generationConfig.maxOutputTokens",
            (MaxTokens, _) => "max_tokens",
            (Temperature, Gemini) => "generationConfig.temperature",
            (Temperature, _) => "temperature",
            (TopP, Gemini) => "generationConfig.topP",
            (TopP, _) => "top_p",
            (TopK, Gemini) => "generationConfig.topK",
            (TopK, _) => "top_k",
            (Stop, AnthropicMessages) => "stop_sequences",
            (Stop, Gemini) => "generationConfig.stopSequences",
            (Stop, _) => "stop",
            (Reasoning, AnthropicMessages) => "thinking",
            (Reasoning, OpenAiChat) => "reasoning_effort",
            (Reasoning, Responses) => "reasoning.effort",
            (Reasoning, Gemini) => "generationConfig.thinkingConfig",
            (ReasoningBudget, Gemini) => "generationConfig.thinkingConfig.thinkingBudget",
            (ReasoningBudget, _) => "thinking.budget_tokens",
            (ResponseFormat, Responses) => "text.format",
            (ResponseFormat, Gemini) => "generationConfig.responseJsonSchema",
            (ResponseFormat, _) => "response_format",
            (User, AnthropicMessages) => "metadata.user_id",
            (User, _) => "user",
            (ParallelToolCalls, AnthropicMessages) => "tool_choice.disable_parallel_tool_use",
            (ParallelToolCalls, _) => "parallel_tool_calls",
            (SystemMessage, Responses) => "input[].developer message",
            (SystemMessage, Gemini) => "contents[].system text",
            (SystemMessage, _) => "messages[].system message",
            (EarlierReasoning, AnthropicMessages) => "thinking block",
            (EarlierReasoning, OpenAiChat) => "reasoning_content",
            (EarlierReasoning, Responses) => "reasoning item",
            (EarlierReasoning, Gemini) => "thought",
            (ReasoningSignature, AnthropicMessages) => "thinking.signature",
            (ReasoningSignature, OpenAiChat) => "reasoning signature",
            (ReasoningSignature, Responses) => "reasoning.encrypted_content",
            (ReasoningSignature, Gemini) => "thoughtSignature",
            (Image, _) => "image",
            (Document, _) => "document",
            (ToolResultMedia, _) => "tool result image",
            (ToolName, _) => "tool name",
        }
    }
}

/// The notes of one exchange, in the order they were made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes {
    /// The client's protocol (names the fields); encoders are given it by the pair.
    client: Option<Wire>,
    list: Vec<Note>,
    /// Distinct notes beyond [`MAX_NOTES`], counted only.
    more: u32,
}

impl Notes {
    /// Notes whose fields are named in `client`'s terms.
    pub fn for_client(client: Wire) -> Notes {
        Notes {
            client: Some(client),
            ..Notes::default()
        }
    }

    pub fn set_client(&mut self, client: Wire) {
        self.client = Some(client);
    }

    /// Adds a note, or counts it once more when the same note was made before.
    pub fn push(
        &mut self,
        path: impl Into<Cow<'static, str>>,
        what: Option<Cow<'static, str>>,
        change: Change,
    ) {
        self.push_times(path, what, change, 1);
    }

    /// [`Notes::push`] for a change made `times` times at once (none when 0).
    pub fn push_times(
        &mut self,
        path: impl Into<Cow<'static, str>>,
        what: Option<Cow<'static, str>>,
        change: Change,
        times: u32,
    ) {
        if times == 0 {
            return;
        }
        let path = path.into();
        if let Some(same) = self
            .list
            .iter_mut()
            .find(|n| n.path == path && n.what == what && n.change == change)
        {
            same.count = same.count.saturating_add(times);
        } else if self.list.len() < MAX_NOTES {
            self.list.push(Note {
                path,
                what,
                change,
                count: times,
            });
        } else {
            self.more += 1;
        }
    }

    /// A tool of the client's (`tools[i]`, of type `kind`) the source cannot run.
    pub fn tool_dropped(&mut self, index: usize, kind: &str) {
        self.push(
            format!("tools[{index}]"),
            Some(Cow::Owned(kind.to_owned())),
            Change::Dropped(Some("no server tools on this source")),
        );
    }

    /// Whether this is the note of a dropped tool of this kind.
    pub fn is_tool_dropped(note: &Note, kind: impl Fn(&str) -> bool) -> bool {
        note.path.starts_with("tools[")
            && matches!(note.change, Change::Dropped(_))
            && note.what.as_deref().is_some_and(kind)
    }

    /// A note about a pivot field, named in the client's terms.
    pub fn field(&mut self, field: Field, what: Option<Cow<'static, str>>, change: Change) {
        self.field_times(field, what, change, 1);
    }

    /// [`Notes::field`] made `times` times at once.
    pub fn field_times(
        &mut self,
        field: Field,
        what: Option<Cow<'static, str>>,
        change: Change,
        times: u32,
    ) {
        let client = self.client.unwrap_or(Wire::AnthropicMessages);
        self.push_times(field.path(client), what, change, times);
    }

    /// `max_tokens 64000 clamped to 8192`, when `limit` lowers the client's value.
    pub fn clamp_max_tokens(&mut self, asked: Option<u64>, limit: Option<u64>) {
        if let (Some(asked), Some(limit)) = (asked, limit)
            && asked > limit
        {
            self.field(
                Field::MaxTokens,
                Some(asked.to_string().into()),
                Change::Clamped(limit),
            );
        }
    }

    /// The client's reasoning request sent as `to` (`reasoning_effort high`).
    pub fn reasoning_became(&mut self, request: &ReasoningRequest, to: Cow<'static, str>) {
        let (field, what) = reasoning_source(request);
        self.field(field, what, Change::Became(to));
    }

    /// The client's reasoning request not sent, and why.
    pub fn reasoning_dropped(&mut self, request: &ReasoningRequest, why: &'static str) {
        let (field, what) = reasoning_source(request);
        self.field(field, what, Change::Dropped(Some(why)));
    }

    /// Distinct notes, counting those beyond the cap.
    pub fn count(&self) -> usize {
        self.list.len() + self.more as usize
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.more == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Note> {
        self.list.iter()
    }

    /// Keeps only the notes `keep` says yes to (a tool the gateway runs is not dropped after
    /// all).
    pub fn retain(&mut self, keep: impl FnMut(&Note) -> bool) {
        self.list.retain(keep);
    }

    /// The first `n` notes as text, for the access log.
    pub fn first_texts(&self, n: usize) -> Vec<String> {
        self.list.iter().take(n).map(Note::to_string).collect()
    }

    /// Every kept note, in order.
    pub fn to_vec(&self) -> Vec<Note> {
        self.list.clone()
    }
}

/// Which field of the client's carried its reasoning request, and its value.
fn reasoning_source(request: &ReasoningRequest) -> (Field, Option<Cow<'static, str>>) {
    match (request.enabled, request.budget_tokens, request.effort) {
        (true, Some(budget), _) => (Field::ReasoningBudget, Some(budget.to_string().into())),
        (true, None, Some(effort)) => (Field::Reasoning, Some(effort_name(effort).into())),
        (true, None, None) => (Field::Reasoning, None),
        (false, _, _) => (Field::Reasoning, Some("off".into())),
    }
}

/// An effort level's plain name.
pub fn effort_name(effort: Effort) -> &'static str {
    match effort {
        Effort::Minimal => "minimal",
        Effort::Low => "low",
        Effort::Medium => "medium",
        Effort::High => "high",
        Effort::Max => "max",
    }
}

#[cfg(test)]
mod tests;
