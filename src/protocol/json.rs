//! Small JSON building blocks shared by the wire types: a borrowed-when-possible string, lenient
//! "string or anything" values, and an escaping writer for hand-built output frames.
//!
//! serde's `Cow<str>` only borrows when it is the field's direct type; `Str` borrows inside
//! `Option`/`Vec` too, which keeps request parsing zero-copy for strings without escapes.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

/// A JSON string borrowed from the input when it has no escapes, owned otherwise.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Str<'a>(pub Cow<'a, str>);

impl<'a> Str<'a> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_cow(self) -> Cow<'a, str> {
        self.0
    }
}

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl<'a> From<&'a str> for Str<'a> {
    fn from(s: &'a str) -> Self {
        Str(Cow::Borrowed(s))
    }
}

impl Serialize for Str<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Str<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Str(Cow::Owned(v)))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor)
    }
}

/// A value providers send as a string but sometimes as raw JSON (tool arguments as an object,
/// a number where a string belongs). Strings are decoded; anything else keeps its JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lenient<'a>(pub Cow<'a, str>);

impl Deref for Lenient<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Lenient<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: &'de RawValue = Deserialize::deserialize(d)?;
        Ok(Lenient(decode_raw_text(raw)))
    }
}

/// The text of a raw JSON value: a string's content, `""` for null, otherwise the JSON itself.
pub fn decode_raw_text(raw: &RawValue) -> Cow<'_, str> {
    let text = raw.get();
    if text.starts_with('"') {
        // The common case, no escapes: the content is the raw text inside the quotes (the
        // raw value was already checked as a string), so no second parse.
        let inner = &text[1..text.len() - 1];
        if !inner.contains('\\') {
            return Cow::Borrowed(inner);
        }
        match serde_json::from_str::<Str<'_>>(text) {
            Ok(s) => s.0,
            Err(_) => Cow::Borrowed(""),
        }
    } else if text == "null" {
        Cow::Borrowed("")
    } else {
        Cow::Borrowed(text)
    }
}

/// A JSON string kept as it was written: its escaped content, without the quotes. Text
/// moves from one JSON document to another (client request → provider request, provider
/// chunk → client event) without being unescaped and escaped again; [`Text::decoded`] gives
/// the plain string where one is needed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Text<'a>(Cow<'a, str>);

impl Text<'static> {
    /// The empty string.
    pub const EMPTY: Text<'static> = Text(Cow::Borrowed(""));
}

impl<'a> Text<'a> {
    /// The escaped content (valid inside a JSON string as is).
    pub fn escaped(&self) -> &str {
        &self.0
    }

    /// From an escaped content known to be valid.
    pub fn from_escaped(escaped: impl Into<Cow<'a, str>>) -> Text<'a> {
        Text(escaped.into())
    }

    /// From a plain string (escapes it).
    pub fn from_plain(plain: &str) -> Text<'static> {
        Text(Cow::Owned(escape(plain)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The length of the escaped content.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The plain string; borrowed when there was nothing to unescape.
    pub fn decoded(&self) -> Cow<'_, str> {
        if !self.0.contains('\\') {
            return Cow::Borrowed(&self.0);
        }
        let mut quoted = String::with_capacity(self.0.len() + 2);
        quoted.push('"');
        quoted.push_str(&self.0);
        quoted.push('"');
        serde_json::from_str::<String>(&quoted).map_or(Cow::Borrowed(""), Cow::Owned)
    }

    /// Writes it as a quoted JSON string.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        out.extend_from_slice(self.0.as_bytes());
        out.push(b'"');
    }

    /// The escaped part after the first newline, leading newlines skipped, if there is a
    /// newline (escape-aware).
    pub fn after_first_newline(&self) -> Option<&str> {
        let s = self.0.as_ref();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' {
                if bytes.get(i + 1) == Some(&b'n') {
                    let mut rest = &s[i + 2..];
                    while let Some(r) = rest.strip_prefix("\\n") {
                        rest = r;
                    }
                    return Some(rest);
                }
                i += if bytes.get(i + 1) == Some(&b'u') {
                    6
                } else {
                    2
                };
            } else {
                i += 1;
            }
        }
        None
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Text(\"{}\")", self.0)
    }
}

/// The escaped content of `plain` as a JSON string (without quotes).
pub fn escape(plain: &str) -> String {
    let mut out = Vec::with_capacity(plain.len() + 2);
    write_json_str(&mut out, plain);
    let quoted = String::from_utf8(out).unwrap_or_default();
    quoted[1..quoted.len().saturating_sub(1).max(1)].to_owned()
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: &'de RawValue = Deserialize::deserialize(d)?;
        let json = raw.get();
        if json.len() >= 2 && json.starts_with('"') {
            return Ok(Text(Cow::Borrowed(&json[1..json.len() - 1])));
        }
        // Not a string (providers bend this): null is empty, anything else keeps its JSON.
        if json == "null" {
            return Ok(Text::default());
        }
        Ok(Text(Cow::Owned(escape(json))))
    }
}

/// A JSON string field kept in its escaped form, like [`Text`], but refused like a `String`
/// field when it is anything else: for decoders whose clients must send text there.
pub struct EscapedStr<'a>(pub Text<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for EscapedStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: &'de RawValue = Deserialize::deserialize(d)?;
        let json = raw.get();
        if json.len() >= 2 && json.starts_with('"') {
            return Ok(EscapedStr(Text(Cow::Borrowed(&json[1..json.len() - 1]))));
        }
        // serde's own words for a non-string where a `String` belongs.
        let value: serde_json::Value = serde_json::from_str(json).map_err(de::Error::custom)?;
        let unexpected = match &value {
            serde_json::Value::Null => de::Unexpected::Unit,
            serde_json::Value::Bool(b) => de::Unexpected::Bool(*b),
            serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => de::Unexpected::Unsigned(u),
                (_, Some(i)) => de::Unexpected::Signed(i),
                _ => de::Unexpected::Float(n.as_f64().unwrap_or_default()),
            },
            serde_json::Value::Array(_) => de::Unexpected::Seq,
            serde_json::Value::Object(_) => de::Unexpected::Map,
            serde_json::Value::String(_) => de::Unexpected::Other("string"),
        };
        Err(de::Error::invalid_type(unexpected, &"a string"))
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.decoded())
    }
}

/// Writes a JSON object into a buffer field by field (the translators' output side: no
/// intermediate structs, raw values and escaped text copied straight through).
pub struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    pub fn new(out: &'o mut Vec<u8>) -> Obj<'o> {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// Starts a field: comma and `"key":`.
    pub fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    pub fn str(&mut self, key: &str, value: &str) {
        let out = self.key(key);
        write_json_str(out, value);
    }

    pub fn text(&mut self, key: &str, value: &Text<'_>) {
        let out = self.key(key);
        value.write(out);
    }

    /// A raw JSON value, written as is.
    pub fn raw(&mut self, key: &str, json: &str) {
        self.key(key).extend_from_slice(json.as_bytes());
    }

    pub fn u64(&mut self, key: &str, n: u64) {
        let out = self.key(key);
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    pub fn f64(&mut self, key: &str, n: f64) {
        let out = self.key(key);
        // Writing a float into a Vec cannot fail; non-finite values become null.
        let _ = serde_json::to_writer(&mut *out, &n);
    }

    pub fn bool(&mut self, key: &str, b: bool) {
        self.raw(key, if b { "true" } else { "false" });
    }

    pub fn object(&mut self, key: &str, fill: impl FnOnce(&mut Obj<'_>)) {
        let out = self.key(key);
        let mut inner = Obj::new(out);
        fill(&mut inner);
        inner.end();
    }

    pub fn array(&mut self, key: &str, fill: impl FnOnce(&mut Arr<'_>)) {
        let out = self.key(key);
        let mut inner = Arr::new(out);
        fill(&mut inner);
        inner.end();
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// Writes a JSON array element by element.
pub struct Arr<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Arr<'o> {
    pub fn new(out: &'o mut Vec<u8>) -> Arr<'o> {
        out.push(b'[');
        Arr { out, first: true }
    }

    fn next(&mut self) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out
    }

    pub fn object(&mut self, fill: impl FnOnce(&mut Obj<'_>)) {
        let out = self.next();
        let mut inner = Obj::new(out);
        fill(&mut inner);
        inner.end();
    }

    pub fn str(&mut self, value: &str) {
        let out = self.next();
        write_json_str(out, value);
    }

    pub fn text(&mut self, value: &Text<'_>) {
        let out = self.next();
        value.write(out);
    }

    pub fn end(self) {
        self.out.push(b']');
    }
}

/// Appends `s` to `out` as a quoted, escaped JSON string.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail, and a &str is always serialisable.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Walks the members of a top-level JSON object without parsing or validating their values:
/// `on_member` gets each key's raw bytes (between the quotes) and the byte range of its value,
/// and returns `false` to give up. Strings are skipped with `memchr` (a 75 KB Claude Code
/// request in a few µs, where a validating parse takes ~30 µs). Returns `false` when the
/// document is not an object whose structure can be followed (unbalanced, cut short, trailing
/// bytes); a `true` does **not** mean the values are valid JSON.
pub fn walk_top_level(
    body: &[u8],
    mut on_member: impl FnMut(&[u8], std::ops::Range<usize>) -> bool,
) -> bool {
    let mut at = skip_ws(body, 0);
    if body.get(at) != Some(&b'{') {
        return false;
    }
    at = skip_ws(body, at + 1);
    if body.get(at) == Some(&b'}') {
        return skip_ws(body, at + 1) == body.len();
    }
    loop {
        if body.get(at) != Some(&b'"') {
            return false;
        }
        let Some(key_end) = skip_string(body, at) else {
            return false;
        };
        let key = &body[at + 1..key_end - 1];
        at = skip_ws(body, key_end);
        if body.get(at) != Some(&b':') {
            return false;
        }
        let value_start = skip_ws(body, at + 1);
        let Some(value_end) = skip_value(body, value_start) else {
            return false;
        };
        if !on_member(key, value_start..value_end) {
            return false;
        }
        at = skip_ws(body, value_end);
        match body.get(at) {
            Some(b',') => at = skip_ws(body, at + 1),
            Some(b'}') => return skip_ws(body, at + 1) == body.len(),
            _ => return false,
        }
    }
}

fn skip_ws(body: &[u8], mut at: usize) -> usize {
    while matches!(body.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// From an opening quote to just past its closing quote.
fn skip_string(body: &[u8], open: usize) -> Option<usize> {
    let mut at = open + 1;
    loop {
        at += memchr::memchr2(b'"', b'\\', body.get(at..)?)?;
        if body[at] == b'"' {
            return Some(at + 1);
        }
        at += 2; // an escape: the next byte is never the closing quote
    }
}

/// From a value's first byte to just past it.
fn skip_value(body: &[u8], start: usize) -> Option<usize> {
    match *body.get(start)? {
        b'"' => skip_string(body, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = start;
            loop {
                match *body.get(at)? {
                    b'"' => {
                        at = skip_string(body, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        // A number or a literal: up to the next delimiter.
        _ => {
            let len = body[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(body.len() - start);
            (len > 0).then_some(start + len)
        }
    }
}

/// True if `s` is one complete JSON value (used to decide whether tool arguments need repair).
/// True when the document is a JSON object at the top level. Serde's derived structs also
/// accept an array of their fields in order, which no API means by a request body.
pub fn is_object_document(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

pub fn is_valid_json(s: &str) -> bool {
    serde_json::from_str::<de::IgnoredAny>(s).is_ok()
}

/// Tool arguments as an `input` object: `""` → `{}`, truncated JSON repaired, anything else
/// that is not an object → `{}`. The flag says whether the arguments needed help.
pub fn tool_input(arguments: &str) -> (Box<RawValue>, bool) {
    let trimmed = arguments.trim();
    if trimmed.starts_with('{')
        && let Ok(raw) = serde_json::from_str::<Box<RawValue>>(trimmed)
    {
        return (raw, false);
    }
    let repaired = repair_json_object(trimmed).unwrap_or_else(|| "{}".to_owned());
    let raw = RawValue::from_string(repaired)
        .unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).expect("static JSON"));
    (raw, !trimmed.is_empty())
}

/// Best-effort repair of tool-call arguments: empty → `{}`; a value cut short (the usual failure
/// when a provider hits its token limit) gets its open strings and brackets closed. Returns
/// `None` when the text cannot be made into a JSON object.
pub fn repair_json_object(s: &str) -> Option<String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Some("{}".to_owned());
    }
    if is_valid_json(trimmed) {
        return trimmed.starts_with('{').then(|| trimmed.to_owned());
    }
    if !trimmed.starts_with('{') {
        return None;
    }
    let mut closers: Vec<char> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in trimmed.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => closers.push('}'),
            '[' => closers.push(']'),
            '}' | ']' if closers.pop() != Some(c) => return None,
            _ => {}
        }
    }
    let mut repaired = trimmed.to_owned();
    if escaped {
        repaired.pop();
    }
    if in_string {
        repaired.push('"');
    }
    // A dangling separator or key cannot be closed as is: drop it before closing brackets.
    let cut = repaired.trim_end().trim_end_matches([',', ':']).len();
    repaired.truncate(cut);
    while let Some(c) = closers.pop() {
        repaired.push(c);
    }
    if is_valid_json(&repaired) {
        return Some(repaired);
    }
    None
}

/// Where a JSON object prefix stands, for [`PartialObject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// After `{`: a key or `}`.
    FirstKey,
    /// After `,` in an object: a key must follow.
    Key,
    Colon,
    /// After `:` or `,` in an array: a value must follow.
    Value,
    /// After `[`: a value or `]`.
    FirstItem,
    /// After a complete value: `,` or the closer.
    Next,
}

/// An incremental scanner for a JSON object arriving in pieces (streamed tool arguments).
/// It says whether what arrived so far can still become a valid object, and what to append
/// to finish it — appending only, because what was streamed to a client cannot be taken back.
#[derive(Debug, Clone, Default)]
pub struct PartialObject {
    /// (is_object, expectation) per open container.
    stack: Vec<(bool, Expect)>,
    /// Inside a string; `Some(true)` for a key.
    in_string: Option<bool>,
    escape: bool,
    unicode_left: u8,
    /// A number or `true`/`false`/`null` being read.
    literal: String,
    started: bool,
    complete: bool,
    invalid: bool,
}

impl PartialObject {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece; returns false once the text can no longer become an object.
    pub fn feed(&mut self, piece: &str) -> bool {
        for c in piece.chars() {
            if self.invalid {
                break;
            }
            self.invalid = !self.step(c);
        }
        !self.invalid
    }

    pub fn is_valid_prefix(&self) -> bool {
        !self.invalid
    }

    /// True once a whole object has been read.
    pub fn is_complete(&self) -> bool {
        self.complete && !self.invalid
    }

    fn top_mut(&mut self) -> Option<&mut (bool, Expect)> {
        self.stack.last_mut()
    }

    fn value_done(&mut self) {
        if let Some(top) = self.top_mut() {
            top.1 = Expect::Next;
        } else {
            self.complete = true;
        }
    }

    fn step(&mut self, c: char) -> bool {
        if let Some(is_key) = self.in_string {
            if self.unicode_left > 0 {
                self.unicode_left -= 1;
                return c.is_ascii_hexdigit();
            }
            if self.escape {
                self.escape = false;
                if c == 'u' {
                    self.unicode_left = 4;
                }
                return matches!(c, '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' | 'u');
            }
            match c {
                '\\' => self.escape = true,
                '"' => {
                    self.in_string = None;
                    if is_key {
                        if let Some(top) = self.top_mut() {
                            top.1 = Expect::Colon;
                        }
                    } else {
                        self.value_done();
                    }
                }
                c if (c as u32) < 0x20 => return false,
                _ => {}
            }
            return true;
        }
        if !self.literal.is_empty() {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-') {
                self.literal.push(c);
                return literal_prefix_ok(&self.literal);
            }
            if !is_valid_json(&self.literal) {
                return false;
            }
            self.literal.clear();
            self.value_done();
        }
        // JSON whitespace only: Unicode spaces are not allowed between tokens.
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            return true;
        }
        if self.complete {
            return false;
        }
        if !self.started {
            self.started = true;
            if c != '{' {
                return false;
            }
            self.stack.push((true, Expect::FirstKey));
            return true;
        }
        let expect = self.stack.last().map(|t| t.1);
        let is_object = self.stack.last().is_some_and(|t| t.0);
        let expects_value = matches!(expect, Some(Expect::Value | Expect::FirstItem));
        match c {
            '{' if expects_value => self.stack.push((true, Expect::FirstKey)),
            '[' if expects_value => self.stack.push((false, Expect::FirstItem)),
            '"' if expects_value => self.in_string = Some(false),
            '"' if matches!(expect, Some(Expect::FirstKey | Expect::Key)) => {
                self.in_string = Some(true)
            }
            ':' if expect == Some(Expect::Colon) => {
                if let Some(top) = self.top_mut() {
                    top.1 = Expect::Value;
                }
            }
            ',' if expect == Some(Expect::Next) => {
                if let Some(top) = self.top_mut() {
                    top.1 = if top.0 { Expect::Key } else { Expect::Value };
                }
            }
            '}' if is_object && matches!(expect, Some(Expect::FirstKey | Expect::Next)) => {
                self.stack.pop();
                self.value_done();
            }
            ']' if !is_object && matches!(expect, Some(Expect::FirstItem | Expect::Next)) => {
                self.stack.pop();
                self.value_done();
            }
            c if expects_value && (c.is_ascii_alphanumeric() || c == '-') => {
                self.literal.push(c);
                return literal_prefix_ok(&self.literal);
            }
            _ => return false,
        }
        true
    }

    /// What to append so the text read so far becomes a valid object; `None` if it cannot.
    pub fn completion(&self) -> Option<String> {
        if self.invalid {
            return None;
        }
        if !self.started {
            // Nothing but whitespace so far.
            return Some("{}".to_owned());
        }
        let mut stack = self.stack.clone();
        let mut suffix = String::new();
        if let Some(is_key) = self.in_string {
            if self.escape {
                suffix.push('\\');
            }
            for _ in 0..self.unicode_left {
                suffix.push('0');
            }
            suffix.push('"');
            if let Some(top) = stack.last_mut() {
                top.1 = if is_key { Expect::Colon } else { Expect::Next };
            }
        } else if !self.literal.is_empty() {
            let word = ["true", "false", "null"]
                .iter()
                .find(|w| w.starts_with(self.literal.as_str()));
            match word {
                Some(w) => suffix.push_str(&w[self.literal.len()..]),
                None if is_valid_json(&self.literal) => {}
                None => suffix.push('0'),
            }
            if let Some(top) = stack.last_mut() {
                top.1 = Expect::Next;
            }
        }
        while let Some((is_object, expect)) = stack.pop() {
            match expect {
                Expect::Key => suffix.push_str("\"\":null"),
                Expect::Colon => suffix.push_str(":null"),
                Expect::Value => suffix.push_str("null"),
                Expect::FirstKey | Expect::FirstItem | Expect::Next => {}
            }
            suffix.push(if is_object { '}' } else { ']' });
            if let Some(parent) = stack.last_mut() {
                parent.1 = Expect::Next;
            }
        }
        Some(suffix)
    }
}

/// Could `s` still grow into a JSON number or `true`/`false`/`null`?
fn literal_prefix_ok(s: &str) -> bool {
    if ["true", "false", "null"].iter().any(|w| w.starts_with(s)) {
        return true;
    }
    // -?digits(.digits)?([eE][+-]?digits)?, any prefix of it.
    let mut stage = 0; // 0 sign, 1 int, 2 frac-start, 3 frac, 4 exp-start, 5 exp-sign, 6 exp
    for (i, c) in s.chars().enumerate() {
        stage = match (stage, c) {
            (0, '-') if i == 0 => 1,
            (0 | 1, '0'..='9') => 1,
            (1, '.') => 2,
            (2 | 3, '0'..='9') => 3,
            (1 | 3, 'e' | 'E') => 4,
            (4, '+' | '-') => 5,
            (4..=6, '0'..='9') => 6,
            _ => return false,
        };
    }
    true
}

/// The text to append to `prefix` (a JSON object cut short) to make it valid JSON.
pub fn completion_suffix(prefix: &str) -> Option<String> {
    let mut scanner = PartialObject::new();
    if !scanner.feed(prefix) {
        return None;
    }
    let suffix = scanner.completion()?;
    let whole = format!("{prefix}{suffix}");
    is_valid_json(&whole).then_some(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The members `walk_top_level` reports, as (key, raw value) pairs.
    fn walked(body: &str) -> Option<Vec<(String, String)>> {
        let mut members = Vec::new();
        walk_top_level(body.as_bytes(), |k, v| {
            members.push((String::from_utf8(k.to_vec()).unwrap(), body[v].to_owned()));
            true
        })
        .then_some(members)
    }

    #[test]
    fn walk_finds_top_level_members_past_strings_that_look_like_structure() {
        let body = r#" { "a" : "}\"\\" , "b":[{"model":"inner"},"]",{}], "model":"m\"x" ,"n":-1.5e3,"t":true}  "#;
        let members = walked(body).unwrap();
        let pairs: Vec<(&str, &str)> = members
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("a", r#""}\"\\""#),
                ("b", r#"[{"model":"inner"},"]",{}]"#),
                ("model", r#""m\"x""#),
                ("n", "-1.5e3"),
                ("t", "true"),
            ]
        );
        assert_eq!(walked("{}").unwrap(), []);
        assert_eq!(walked(" {\n}\n").unwrap(), []);
    }

    #[test]
    fn walk_gives_up_on_what_it_cannot_follow() {
        for body in [
            "",
            "[]",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":\"open}",
            "{\"a\":\"ends in an escape\\",
            "{\"a\":[1,2}",
            "{\"a\":1} trailing",
            "{\"a\":1 \"b\":2}",
            "{a:1}",
        ] {
            assert!(walked(body).is_none(), "{body:?}");
        }
    }

    #[test]
    fn str_borrows_without_escapes_inside_option() {
        #[derive(Deserialize)]
        struct T<'a> {
            #[serde(borrow)]
            a: Option<Str<'a>>,
            #[serde(borrow)]
            b: Vec<Str<'a>>,
        }
        let input = r#"{"a":"plain","b":["x","with\nescape"]}"#;
        let t: T = serde_json::from_str(input).unwrap();
        assert!(matches!(t.a.unwrap().0, Cow::Borrowed("plain")));
        assert!(matches!(t.b[0].0, Cow::Borrowed("x")));
        assert_eq!(&*t.b[1], "with\nescape");
    }

    #[test]
    fn text_keeps_escapes_and_decodes_on_demand() {
        #[derive(Deserialize)]
        struct T<'a> {
            #[serde(borrow)]
            a: Text<'a>,
            #[serde(borrow, default)]
            b: Option<Text<'a>>,
            #[serde(borrow)]
            c: Text<'a>,
        }
        let t: T =
            serde_json::from_str(r#"{"a":"line\none \u00e9 \\n","b":null,"c":{"x":1}}"#).unwrap();
        assert_eq!(t.a.escaped(), r#"line\none \u00e9 \\n"#);
        assert_eq!(t.a.decoded(), "line\none é \\n");
        assert!(t.b.is_none());
        assert_eq!(t.c.decoded(), r#"{"x":1}"#);
        assert_eq!(t.a.after_first_newline().unwrap(), r"one \u00e9 \\n");
        let plain = Text::from_plain("no newline \\n here \"q\"");
        assert!(plain.after_first_newline().is_none());
        let mut out = Vec::new();
        let mut o = Obj::new(&mut out);
        o.text("t", &t.a);
        o.u64("n", 7);
        o.array("xs", |a| {
            a.str("p");
            a.object(|o| o.bool("ok", true));
        });
        o.f64("f", 0.5);
        o.end();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["t"], "line\none é \\n");
        assert_eq!(v["xs"][1]["ok"], true);
        assert_eq!(v["f"], 0.5);
    }

    #[test]
    fn lenient_accepts_string_object_and_null() {
        let s: Lenient = serde_json::from_str(r#""{\"a\":1}""#).unwrap();
        assert_eq!(&*s, r#"{"a":1}"#);
        let o: Lenient = serde_json::from_str(r#"{"a":1}"#).unwrap();
        assert_eq!(&*o, r#"{"a":1}"#);
        let n: Lenient = serde_json::from_str("null").unwrap();
        assert_eq!(&*n, "");
    }

    #[test]
    fn completion_suffix_only_appends() {
        for (prefix, suffix) in [
            (r#"{"k":"#, Some("null}")),
            (r#"{"k""#, Some(":null}")),
            (r#"{"k"#, Some("\":null}")),
            (r#"{"a":1,"#, Some("\"\":null}")),
            (r#"{"a":[1,"#, Some("null]}")),
            (r#"{"a":tr"#, Some("ue}")),
            (r#"{"a":-"#, Some("0}")),
            (r#"{"a":"x\"#, Some("\\\"}")),
            (r#"{"a":"\u00"#, Some("00\"}")),
            (r#"{"a":{"b":[{"#, Some("}]}}")),
            (r#"{"a":1}"#, Some("")),
            ("{", Some("}")),
            (" \n", Some("{}")),
            ("\u{2000}", None),
            ("[1", None),
            (r#"{"a":1}}"#, None),
            (r#"{"a" 1"#, None),
        ] {
            let got = completion_suffix(prefix);
            assert_eq!(got.as_deref(), suffix, "{prefix}");
        }
    }

    #[test]
    fn repair_closes_truncated_objects() {
        assert_eq!(repair_json_object("").as_deref(), Some("{}"));
        assert_eq!(
            repair_json_object(r#"{"a":"b"#).as_deref(),
            Some(r#"{"a":"b"}"#)
        );
        assert_eq!(
            repair_json_object(r#"{"a":[1,2"#).as_deref(),
            Some(r#"{"a":[1,2]}"#)
        );
        assert_eq!(
            repair_json_object(r#"{"a":1,"#).as_deref(),
            Some(r#"{"a":1}"#)
        );
        assert_eq!(repair_json_object("[1,2]"), None);
        assert_eq!(repair_json_object("not json"), None);
        assert_eq!(repair_json_object(r#"{"a":}"#), None);
    }
}
