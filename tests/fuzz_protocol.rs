//! Property-based fuzzing of the protocol layer on stable Rust, bounded for CI.
//!
//! Three kinds of input reach every translator: (a) arbitrary bytes; (b) mutations of valid
//! inputs (the Claude Code fixtures, hand-built requests, realistic OpenAI responses and
//! streams) — byte flips, insertions, deletions, truncation, splices of JSON fragments, and
//! type swaps / removals / insertions on `serde_json::Value` trees; (c) structure-aware
//! random OpenAI chunk sequences (content, reasoning, tool calls with random index / id / name
//! / argument fragments, finish reasons, usage, errors, comments, `[DONE]`, odd framing and
//! line endings) fed in random read splits.
//!
//! The properties live in `fuzz/src/checks.rs`, shared with the cargo-fuzz targets: no
//! panic; a translated request is JSON with allow-listed keys and JSON tool arguments; a
//! translated response is a `message`; stream output satisfies `check_stream` after `finish`
//! and after `fail`, and does not depend on read boundaries; `replace_model` changes only the
//! model.
//!
//! Case counts: `FLEXIPROXY_FUZZ_CASES=N` sets every property's count (the defaults keep the
//! whole file well under a minute in a debug build). Failures are persisted by proptest under
//! `proptest-regressions/` and replayed first on later runs.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use checks::StreamPlan;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Configuration

/// `FLEXIPROXY_FUZZ_CASES` overrides every default case count.
fn cases(default: u32) -> u32 {
    std::env::var("FLEXIPROXY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default_cases),
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

fn check(result: Result<(), String>) -> Result<(), TestCaseError> {
    result.map_err(TestCaseError::fail)
}

// ---------------------------------------------------------------------------------------------
// Seeds

const CLAUDE_CODE_REQUEST: &[u8] = include_bytes!("fixtures/claude_code_request.json");
const CLAUDE_CODE_SMALL_REQUEST: &[u8] = include_bytes!("fixtures/claude_code_small_request.json");

fn request_seeds() -> Vec<Vec<u8>> {
    let tools = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 4096, "stream": true,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=1;\nYou are helpful."},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
        ],
        "tools": [
            {"name": "Bash", "description": "Run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
            {"name": checks::ODD_TOOL, "input_schema": {"type": "object"}},
            {"name": checks::LONG_TOOL},
            {"type": "web_search_20250305", "name": "web_search"}
        ],
        "tool_choice": {"type": "tool", "name": checks::ODD_TOOL, "disable_parallel_tool_use": true},
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"],
        "metadata": {"user_id": "u".repeat(80)},
        "context_management": {"edits": []},
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "redacted_thinking", "data": "x"},
                {"type": "text", "text": "ok"},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
                {"type": "tool_use", "id": "toolu_2", "name": checks::LONG_TOOL, "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true, "content": [
                    {"type": "text", "text": "a"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                    {"type": "document", "source": {"type": "text", "data": "doc"}}
                ]},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "done"},
                {"type": "text", "text": "next"}
            ]},
            {"role": "system", "content": [{"type": "text", "text": "mid"}]}
        ]
    });
    let media = json!({
        "model": "m", "max_tokens": 10,
        "thinking": {"type": "adaptive"}, "output_config": {"effort": "max"},
        "tool_choice": {"type": "any"},
        "tools": [{"name": "t", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
            {"type": "document", "title": "t", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
            {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "c"}]}},
            {"type": "document", "source": {"type": "url", "url": "https://x/d.pdf"}}
        ]}, {"role": "assistant", "content": "plain"}, {"role": "assistant", "content": []}]
    });
    vec![
        CLAUDE_CODE_REQUEST.to_vec(),
        CLAUDE_CODE_SMALL_REQUEST.to_vec(),
        serde_json::to_vec(&tools).unwrap(),
        serde_json::to_vec(&media).unwrap(),
    ]
}

fn response_seeds() -> Vec<Vec<u8>> {
    let [long, odd] = checks::renamed_tools();
    [
        json!({"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}}),
        json!({"choices": [{"message": {"content": "Running.", "reasoning_content": "think", "tool_calls": [
            {"id": "functions.Bash:0", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": long, "arguments": ""}},
            {"type": "function", "function": {"name": odd, "arguments": "{\"a\":\"trunc"}},
            {"type": "function", "function": {"name": "Obj", "arguments": {"a": 1}}}
        ]}, "finish_reason": "tool_calls"}]}),
        json!({"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
               "reasoning": "r", "function_call": {"name": "f", "arguments": "{}"}}, "finish_reason": "length"}],
               "usage": {"prompt_tokens": 100, "completion_tokens": 1, "prompt_cache_hit_tokens": 60}}),
        json!({"error": {"message": "maximum context length is 10", "type": "invalid_request_error", "code": "context_length_exceeded"}}),
    ]
    .iter()
    .map(|v| serde_json::to_vec(v).unwrap())
    .collect()
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let c = json!({"id": "c", "object": "chat.completion.chunk", "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {c}\n\n")
}

fn tool_delta(index: u32, id: Option<&str>, name: Option<&str>, args: Option<&str>) -> Value {
    let mut f = json!({});
    if let Some(n) = name {
        f["name"] = json!(n);
    }
    if let Some(a) = args {
        f["arguments"] = json!(a);
    }
    let mut call = json!({"index": index, "type": "function", "function": f});
    if let Some(id) = id {
        call["id"] = json!(id);
    }
    json!({"tool_calls": [call]})
}

fn stream_seeds() -> Vec<Vec<u8>> {
    let [long, _] = checks::renamed_tools();
    let text = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hel"}), None),
        chunk(json!({"content": "lo é😀"}), None),
        chunk(json!({}), Some("stop")),
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n".into(),
        "data: [DONE]\n\n".into(),
    ]
    .concat();
    let tools = [
        ": keep-alive\n\n".into(),
        chunk(json!({"reasoning_content": "hmm"}), None),
        chunk(json!({"content": "ok"}), None),
        chunk(
            tool_delta(0, Some("functions.Bash:0"), Some("Bash"), Some("{\"comm")),
            None,
        ),
        chunk(
            tool_delta(1, Some("call_b"), Some(&long), Some("{\"a\"")),
            None,
        ),
        chunk(tool_delta(0, None, None, Some("and\":\"ls\"}")), None),
        chunk(tool_delta(1, None, None, Some(":[1,2")), None),
        chunk(json!({}), Some("tool_calls")),
        "data: [DONE]\n\n".into(),
    ]
    .concat();
    let crlf = [
        chunk(json!({"reasoning": "r"}), None),
        chunk(json!({"content": "x"}), None),
        chunk(json!({}), Some("length")),
    ]
    .concat()
    .replace("data: ", "data:")
    .replace('\n', "\r\n");
    let error = [
        chunk(json!({"content": "x"}), None),
        "data: {\"error\":{\"message\":\"slow down\",\"code\":429}}\n\n".into(),
    ]
    .concat();
    let late_name = [
        chunk(tool_delta(0, None, None, Some("{\"x\":")), None),
        chunk(tool_delta(0, Some("id1"), Some("Tool"), None), None),
        chunk(tool_delta(0, None, None, Some(" tru")), None),
        chunk(tool_delta(0, Some("id2"), Some("T2"), Some("{}")), None),
        chunk(json!({}), Some("stop")),
    ]
    .concat();
    [text, tools, crlf, error, late_name]
        .into_iter()
        .map(String::into_bytes)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Mutations

/// JSON fragments spliced into bodies.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "-0",
    "1e999",
    "\\u0000",
    "\\ud800",
    "\\",
    "\"type\":\"text\"",
    "\"role\":\"user\"",
    "{\"type\":\"tool_use\"}",
    "[{}]",
    "\"\"",
    "\n",
    "\r\n",
    "data: ",
    "[DONE]",
    "é",
    "😀",
    "\u{fffd}",
    "\0",
];

/// Keys inserted into objects: the fields the translators look at.
const KEYS: &[&str] = &[
    "type",
    "text",
    "content",
    "role",
    "model",
    "messages",
    "tools",
    "tool_choice",
    "thinking",
    "input",
    "id",
    "name",
    "tool_use_id",
    "source",
    "data",
    "url",
    "media_type",
    "is_error",
    "stream",
    "max_tokens",
    "budget_tokens",
    "system",
    "metadata",
    "user_id",
    "arguments",
    "tool_calls",
    "function",
    "index",
    "finish_reason",
    "delta",
    "choices",
    "message",
    "usage",
    "reasoning_content",
    "reasoning",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "function_call",
    "output_config",
    "effort",
    "stop_sequences",
    "temperature",
    "top_k",
    "signature",
    "title",
    "disable_parallel_tool_use",
    "code",
    "detail",
    "cached_tokens",
    "prompt_tokens_details",
    "prompt_cache_hit_tokens",
    "input_schema",
    "description",
];

fn fixed_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(1e300),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(""),
        json!("x"),
        json!("\u{0}\u{1f}\"\\"),
        json!("é😀\u{2028}"),
        json!("{"),
        json!("{\"a\":"),
        json!(" "),
        json!("x".repeat(300)),
        json!([]),
        json!([null]),
        json!({}),
        json!({"type": "text", "text": "t"}),
        json!({"type": "tool_use", "id": "a b", "name": "", "input": 5}),
        json!({"type": "tool_result", "content": [{"type": "image"}]}),
        json!({"type": "image", "source": {"type": "base64"}}),
        json!({"type": "document", "source": {"type": "content", "content": null}}),
        json!({"type": "enabled", "budget_tokens": 0}),
        json!({"type": "adaptive"}),
        json!({"type": "tool"}),
        json!({"role": "user", "content": "x"}),
        json!({"role": "assistant", "content": [{"type": "tool_use"}]}),
        json!({"role": "tool", "content": ""}),
        json!([{"index": 0, "function": {"name": "Bash", "arguments": "{"}}]),
        json!({"message": "m", "code": "429"}),
    ]
}

/// How a value is replaced.
#[derive(Debug, Clone)]
enum Replacement {
    Fixed(Index),
    /// string ↔ number ↔ object ↔ null ↔ array ↔ bool, derived from the old value.
    Swap,
    /// The value's JSON text as a string (e.g. tool arguments as an object vs a string).
    Stringify,
    /// A string's content parsed back into JSON, when it is JSON.
    Parse,
}

fn replace(old: &Value, how: &Replacement) -> Value {
    match how {
        Replacement::Fixed(i) => {
            let table = fixed_values();
            table[i.index(table.len())].clone()
        }
        Replacement::Swap => match old {
            Value::String(s) => json!(s.len()),
            Value::Number(n) => json!({ "n": n }),
            Value::Object(_) => Value::Null,
            Value::Null => json!([old]),
            Value::Array(a) => json!(!a.is_empty()),
            Value::Bool(b) => json!(b.to_string()),
        },
        Replacement::Stringify => Value::String(old.to_string()),
        Replacement::Parse => match old {
            Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
            other => other.clone(),
        },
    }
}

#[derive(Debug, Clone)]
enum ValueOp {
    Replace(Index, Replacement),
    Remove(Index),
    InsertKey(Index, Index, Replacement),
    /// Duplicates an array element (or wraps a value in an array).
    Duplicate(Index),
}

#[derive(Debug, Clone)]
enum ByteOp {
    Flip(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    Splice(Index, Index),
    Repeat(Index, usize),
}

fn replacement() -> impl Strategy<Value = Replacement> {
    prop_oneof![
        3 => any::<Index>().prop_map(Replacement::Fixed),
        2 => Just(Replacement::Swap),
        1 => Just(Replacement::Stringify),
        1 => Just(Replacement::Parse),
    ]
}

fn value_op() -> impl Strategy<Value = ValueOp> {
    prop_oneof![
        4 => (any::<Index>(), replacement()).prop_map(|(i, r)| ValueOp::Replace(i, r)),
        2 => any::<Index>().prop_map(ValueOp::Remove),
        2 => (any::<Index>(), any::<Index>(), replacement())
            .prop_map(|(i, k, r)| ValueOp::InsertKey(i, k, r)),
        1 => any::<Index>().prop_map(ValueOp::Duplicate),
    ]
}

fn byte_op() -> impl Strategy<Value = ByteOp> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| ByteOp::Flip(i, b)),
        2 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| ByteOp::Insert(i, b)),
        2 => (any::<Index>(), 1usize..32).prop_map(|(i, n)| ByteOp::Delete(i, n)),
        1 => any::<Index>().prop_map(ByteOp::Truncate),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, f)| ByteOp::Splice(i, f)),
        1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| ByteOp::Repeat(i, n)),
    ]
}

/// Every JSON pointer in `v`, the root included.
fn pointers(v: &Value, at: &mut String, out: &mut Vec<String>) {
    out.push(at.clone());
    let len = at.len();
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                pointers(child, at, out);
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push('/');
                at.push_str(&i.to_string());
                pointers(child, at, out);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

fn apply_value_op(root: &mut Value, op: &ValueOp) {
    let mut all = Vec::new();
    pointers(root, &mut String::new(), &mut all);
    let pick = |i: &Index| all[i.index(all.len())].clone();
    match op {
        ValueOp::Replace(i, how) => {
            let p = pick(i);
            if let Some(slot) = root.pointer_mut(&p) {
                *slot = replace(slot, how);
            }
        }
        ValueOp::Remove(i) => {
            let p = pick(i);
            let Some((parent, last)) = p.rsplit_once('/') else {
                return;
            };
            let key = last.replace("~1", "/").replace("~0", "~");
            match root.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&key);
                }
                Some(Value::Array(items)) => {
                    if let Ok(n) = key.parse::<usize>()
                        && n < items.len()
                    {
                        items.remove(n);
                    }
                }
                _ => {}
            }
        }
        ValueOp::InsertKey(i, k, how) => {
            let p = pick(i);
            let key = KEYS[k.index(KEYS.len())];
            if let Some(Value::Object(map)) = root.pointer_mut(&p) {
                let old = map.get(key).cloned().unwrap_or(Value::Null);
                map.insert(key.to_owned(), replace(&old, how));
            }
        }
        ValueOp::Duplicate(i) => {
            let p = pick(i);
            if let Some(slot) = root.pointer_mut(&p) {
                match slot {
                    Value::Array(items) if !items.is_empty() => {
                        let first = items[0].clone();
                        items.push(first);
                    }
                    other => *other = json!([other.clone(), other.clone()]),
                }
            }
        }
    }
}

fn apply_byte_op(bytes: &mut Vec<u8>, op: &ByteOp) {
    let at = |i: &Index, len: usize| i.index(len + 1);
    match op {
        ByteOp::Flip(i, bit) => {
            if !bytes.is_empty() {
                let n = i.index(bytes.len());
                bytes[n] ^= 1 << bit;
            }
        }
        ByteOp::Insert(i, new) => {
            let n = at(i, bytes.len());
            bytes.splice(n..n, new.iter().copied());
        }
        ByteOp::Delete(i, len) => {
            let n = at(i, bytes.len());
            let end = (n + len).min(bytes.len());
            bytes.drain(n..end);
        }
        ByteOp::Truncate(i) => {
            let n = at(i, bytes.len());
            bytes.truncate(n);
        }
        ByteOp::Splice(i, f) => {
            let n = at(i, bytes.len());
            let fragment = FRAGMENTS[f.index(FRAGMENTS.len())].as_bytes();
            bytes.splice(n..n, fragment.iter().copied());
        }
        ByteOp::Repeat(i, len) => {
            let n = at(i, bytes.len());
            let end = (n + len).min(bytes.len());
            let piece = bytes[n..end].to_vec();
            bytes.splice(n..n, piece);
        }
    }
}

/// A mutated copy of one of `seeds`: value-level operations first (when the seed is JSON),
/// then byte-level ones.
#[derive(Debug, Clone)]
struct Mutation {
    seed: Index,
    pretty: bool,
    value_ops: Vec<ValueOp>,
    byte_ops: Vec<ByteOp>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        any::<Index>(),
        any::<bool>(),
        proptest::collection::vec(value_op(), 0..6),
        proptest::collection::vec(byte_op(), 0..4),
    )
        .prop_map(|(seed, pretty, value_ops, byte_ops)| Mutation {
            seed,
            pretty,
            value_ops,
            byte_ops,
        })
}

fn mutate(seeds: &[Vec<u8>], m: &Mutation) -> Vec<u8> {
    let seed = &seeds[m.seed.index(seeds.len())];
    let mut bytes = if m.value_ops.is_empty() {
        seed.clone()
    } else {
        match serde_json::from_slice::<Value>(seed) {
            Ok(mut v) => {
                for op in &m.value_ops {
                    apply_value_op(&mut v, op);
                }
                if m.pretty {
                    serde_json::to_vec_pretty(&v).unwrap()
                } else {
                    serde_json::to_vec(&v).unwrap()
                }
            }
            Err(_) => seed.clone(),
        }
    };
    for op in &m.byte_ops {
        apply_byte_op(&mut bytes, op);
    }
    bytes
}

/// Value-level mutations of a stream's chunks: each `data:` line that is JSON is mutated with
/// the ops whose position picks it.
fn mutate_stream(seed: &[u8], ops: &[(Index, ValueOp)], byte_ops: &[ByteOp]) -> Vec<u8> {
    let text = String::from_utf8_lossy(seed);
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let data_lines: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start_matches("data:").trim_start().starts_with('{'))
        .map(|(i, _)| i)
        .collect();
    if !data_lines.is_empty() {
        for (which, op) in ops {
            let n = data_lines[which.index(data_lines.len())];
            let line = &lines[n];
            let body = line
                .trim_start_matches("data:")
                .trim_start()
                .trim_end_matches('\r');
            if let Ok(mut v) = serde_json::from_str::<Value>(body) {
                apply_value_op(&mut v, op);
                lines[n] = format!("data: {v}");
            }
        }
    }
    let mut bytes = lines.join("\n").into_bytes();
    for op in byte_ops {
        apply_byte_op(&mut bytes, op);
    }
    bytes
}

// ---------------------------------------------------------------------------------------------
// Structure-aware OpenAI streams

/// One upstream event before framing.
#[derive(Debug, Clone)]
enum Frame {
    Json(Value),
    /// Anything else on a `data:` line (`[DONE]`, garbage, empty).
    Data(String),
    Comment(String),
    /// A raw line (other SSE fields, junk).
    Line(String),
}

#[derive(Debug, Clone)]
struct Framing {
    no_space: bool,
    /// Line ending: `\n`, `\r\n`, `\r`.
    eol: u8,
    /// Leave out the blank line after the event.
    no_blank: bool,
    /// Pretty-print JSON over several `data:` lines.
    multiline: bool,
    /// An `event:`/`id:` line first.
    preface: Option<u8>,
}

fn framing() -> impl Strategy<Value = Framing> {
    (
        any::<bool>(),
        prop_oneof![6 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8)],
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.1, 0u8..3),
    )
        .prop_map(|(no_space, eol, no_blank, multiline, preface)| Framing {
            no_space,
            eol,
            no_blank,
            multiline,
            preface,
        })
}

fn render(frames: &[(Frame, Framing)]) -> Vec<u8> {
    let mut s = String::new();
    for (frame, f) in frames {
        let eol = ["\n", "\r\n", "\r"][usize::from(f.eol)];
        let data = if f.no_space { "data:" } else { "data: " };
        match f.preface {
            Some(0) => s.push_str(&format!("event: completion{eol}")),
            Some(1) => s.push_str(&format!("id: 7{eol}")),
            Some(_) => s.push_str(&format!("retry: 1000{eol}")),
            None => {}
        }
        match frame {
            Frame::Json(v) => {
                let text = if f.multiline {
                    serde_json::to_string_pretty(v).unwrap()
                } else {
                    v.to_string()
                };
                for line in text.split('\n') {
                    s.push_str(data);
                    s.push_str(line);
                    s.push_str(eol);
                }
            }
            Frame::Data(d) => {
                s.push_str(data);
                s.push_str(d);
                s.push_str(eol);
            }
            Frame::Comment(c) => {
                s.push(':');
                s.push_str(c);
                s.push_str(eol);
            }
            Frame::Line(l) => {
                s.push_str(l);
                s.push_str(eol);
            }
        }
        if !f.no_blank {
            s.push_str(eol);
        }
    }
    s.into_bytes()
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z .]{1,8}",
        2 => "\\PC{0,6}",
        1 => Just(String::new()),
        1 => Just("é😀\n\"\\\u{0}\u{2028}".to_owned()),
        1 => Just("\n\n".to_owned()),
    ]
}

/// Argument fragments: JSON-ish tokens, random text, or whole values.
fn args_fragment() -> impl Strategy<Value = Value> {
    let tokens = prop::sample::select(vec![
        "{",
        "}",
        "\"",
        "\"k\"",
        ":",
        ",",
        "1",
        "-",
        "tru",
        "e",
        "null",
        "[",
        "]",
        "\\",
        "\\u00",
        "4",
        " ",
        "\n",
        "{\"a\":",
        "\"x\\",
        "{}",
        "\"ü\"",
        "1e5",
        "0.",
        "{\"command\":\"ls\"}",
        "\"command\"",
        "\"ls -la\"",
        "{\"",
        "a\":[1,",
        "2]}",
        "\t",
    ]);
    prop_oneof![
        8 => tokens.prop_map(|t| json!(t)),
        2 => "\\PC{0,6}".prop_map(|t| json!(t)),
        1 => Just(json!({"a": 1})),
        1 => Just(json!(5)),
        1 => Just(Value::Null),
    ]
}

fn tool_id() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(vec![
        "call_1".to_owned(),
        "call_2".to_owned(),
        "functions.Bash:0".to_owned(),
        String::new(),
        "ü id".to_owned(),
        "::".to_owned(),
    ]))
}

fn tool_name() -> impl Strategy<Value = Option<String>> {
    let [long, odd] = checks::renamed_tools();
    prop::option::of(prop::sample::select(vec![
        "Bash".to_owned(),
        "Read".to_owned(),
        long,
        odd,
        String::new(),
        "bad name!".to_owned(),
    ]))
}

fn tool_index() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![
        2 => Just(None),
        8 => (0u32..4).prop_map(Some),
        1 => Just(Some(u32::MAX)),
    ]
}

fn usage_value() -> impl Strategy<Value = Value> {
    let n = prop_oneof![
        Just(Value::Null),
        (0u64..1000).prop_map(|n| json!(n)),
        Just(json!(u64::MAX))
    ];
    (n.clone(), n.clone(), n).prop_map(|(p, c, cached)| {
        json!({"prompt_tokens": p, "completion_tokens": c,
               "prompt_tokens_details": {"cached_tokens": cached}, "prompt_cache_hit_tokens": cached})
    })
}

fn finish_reason() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!("stop"),
        json!("length"),
        json!("tool_calls"),
        json!("function_call"),
        json!("content_filter"),
        json!(""),
        json!("weird"),
        Value::Null,
    ])
}

fn choice(delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]})
}

/// One upstream event (or several, for a whole tool call sent in pieces).
fn stream_event() -> impl Strategy<Value = Vec<Frame>> {
    let content =
        text().prop_map(|t| vec![Frame::Json(choice(json!({"content": t}), Value::Null))]);
    let parts = (text(), text()).prop_map(|(a, b)| {
        vec![Frame::Json(choice(
            json!({"content": [{"type": "text", "text": a}, {"type": "text", "text": b}]}),
            Value::Null,
        ))]
    });
    let reasoning = (any::<bool>(), text()).prop_map(|(field, t)| {
        let key = if field {
            "reasoning_content"
        } else {
            "reasoning"
        };
        vec![Frame::Json(choice(json!({ key: t }), Value::Null))]
    });
    let tool = (
        tool_index(),
        tool_id(),
        tool_name(),
        prop::option::of(args_fragment()),
    )
        .prop_map(|(index, id, name, args)| {
            let mut function = json!({});
            if let Some(n) = name {
                function["name"] = json!(n);
            }
            if let Some(a) = args {
                function["arguments"] = a;
            }
            let mut call = json!({"type": "function", "function": function});
            if let Some(i) = index {
                call["index"] = json!(i);
            }
            if let Some(id) = id {
                call["id"] = json!(id);
            }
            vec![Frame::Json(choice(
                json!({"tool_calls": [call]}),
                Value::Null,
            ))]
        });
    // A whole call: valid JSON arguments cut into pieces, id and name on the first piece.
    let burst = (
        0u32..3,
        tool_id(),
        tool_name(),
        prop::collection::btree_map("[a-z]{1,4}", text(), 0..3),
        prop::collection::vec(any::<Index>(), 0..4),
    )
        .prop_map(|(index, id, name, map, cuts)| {
            let args = serde_json::to_string(&map).unwrap();
            let mut points: Vec<usize> = cuts
                .iter()
                .map(|c| c.index(args.len() + 1))
                .filter(|p| args.is_char_boundary(*p))
                .collect();
            points.sort_unstable();
            points.dedup();
            let mut pieces = Vec::new();
            let mut last = 0;
            for p in points.into_iter().chain([args.len()]) {
                pieces.push(&args[last..p]);
                last = p;
            }
            pieces
                .iter()
                .enumerate()
                .map(|(i, piece)| {
                    let mut call = json!({"index": index, "function": {"arguments": piece}});
                    if i == 0 {
                        call["id"] = json!(id);
                        call["function"]["name"] = json!(name);
                        call["type"] = json!("function");
                    }
                    Frame::Json(choice(json!({"tool_calls": [call]}), Value::Null))
                })
                .collect()
        });
    let legacy = (tool_name(), prop::option::of(args_fragment())).prop_map(|(name, args)| {
        vec![Frame::Json(choice(
            json!({"function_call": {"name": name, "arguments": args}}),
            Value::Null,
        ))]
    });
    let finish = (finish_reason(), prop::option::of(usage_value())).prop_map(|(f, usage)| {
        let mut c = choice(json!({}), f);
        if let Some(u) = usage {
            c["choices"][0]["usage"] = u;
        }
        vec![Frame::Json(c)]
    });
    let usage = usage_value()
        .prop_map(|u| vec![Frame::Json(json!({"id": "c", "choices": [], "usage": u}))]);
    let error = prop::sample::select(vec![
        json!({"error": {"message": "slow down", "code": 429}}),
        json!({"error": {"message": "busy", "type": "overloaded_error"}}),
        json!({"error": "plain"}),
        json!({"error": 5}),
        json!({"error": null}),
        json!({"error": {"message": "context length exceeded"}, "choices": []}),
        json!({"error": {"message": "with choices"}, "choices": [{"index": 0, "delta": {"content": "x"}}]}),
    ])
    .prop_map(|e| vec![Frame::Json(e)]);
    let odd_chunks = prop::sample::select(vec![
        json!({}),
        json!({"choices": null}),
        json!({"choices": [{"index": 1, "delta": {"content": "other choice"}}, {"index": 0, "delta": {"content": "first"}}]}),
        json!({"choices": [{"index": 0, "delta": null, "finish_reason": null}]}),
        json!({"choices": [{"delta": {"role": "assistant"}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": null, "reasoning_content": null, "tool_calls": null}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": []}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "x", "function": null}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": 5}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "x"}}], "usage": null}),
        json!([1, 2]),
        json!("just a string"),
    ])
    .prop_map(|v| vec![Frame::Json(v)]);
    let misc = prop_oneof![
        Just(vec![Frame::Data("[DONE]".into())]),
        Just(vec![Frame::Data(String::new())]),
        Just(vec![Frame::Data("not json".into())]),
        Just(vec![Frame::Data(
            "{\"choices\":[{\"delta\":{\"content\":\"cut".into()
        )]),
        Just(vec![Frame::Comment(" keep-alive".into())]),
        Just(vec![Frame::Comment(String::new())]),
        Just(vec![Frame::Line("event: ping".into())]),
        Just(vec![Frame::Line("garbage line".into())]),
        Just(vec![Frame::Line(String::new())]),
    ];
    prop_oneof![
        6 => content,
        1 => parts,
        4 => reasoning,
        6 => tool,
        4 => burst,
        1 => legacy,
        3 => finish,
        2 => usage,
        1 => error,
        2 => odd_chunks,
        3 => misc,
    ]
}

fn openai_stream() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec((stream_event(), framing()), 0..24).prop_map(|events| {
        let frames: Vec<(Frame, Framing)> = events
            .into_iter()
            .flat_map(|(frames, f)| frames.into_iter().map(move |fr| (fr, f.clone())))
            .collect();
        render(&frames)
    })
}

fn stream_plan() -> impl Strategy<Value = StreamPlan> {
    (
        proptest::collection::vec(1usize..64, 1..6),
        proptest::collection::vec(1usize..8, 1..4),
        any::<bool>(),
        any::<Index>(),
        any::<Index>(),
        prop_oneof![Just(String::new()), "\\PC{0,12}"],
    )
        .prop_map(
            |(reads, other_reads, begin_first, fail_at, kind, message)| StreamPlan {
                reads,
                other_reads,
                begin_first,
                fail_at: fail_at.index(1 << 16),
                fail_kind: checks::ERROR_KINDS[kind.index(checks::ERROR_KINDS.len())],
                fail_message: message,
            },
        )
}

/// Picks `fail_at` within the input (the plan's value is scaled by the input's length).
fn fit_plan(mut plan: StreamPlan, input_len: usize) -> StreamPlan {
    plan.fail_at = (plan.fail_at * (input_len + 1)) >> 16;
    plan
}

// ---------------------------------------------------------------------------------------------
// Structure-aware OpenAI responses

fn openai_response() -> impl Strategy<Value = Vec<u8>> {
    let call = (tool_id(), tool_name(), prop::option::of(args_fragment()), any::<bool>()).prop_map(
        |(id, name, args, whole)| {
            let arguments = match (whole, args) {
                (true, _) => json!("{\"command\":\"ls\",\"n\":[1,2]}"),
                (false, a) => a.unwrap_or(Value::Null),
            };
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
        },
    );
    let message = (
        prop_oneof![
            text().prop_map(|t| json!(t)),
            Just(Value::Null),
            text().prop_map(|t| json!([{"type": "text", "text": t}, {"type": "image_url"}])),
        ],
        prop::option::of(text()),
        prop::option::of(text()),
        proptest::collection::vec(call, 0..4),
        prop::option::of((tool_name(), args_fragment())),
    )
        .prop_map(|(content, rc, r, calls, legacy)| {
            let mut m = json!({"role": "assistant", "content": content});
            if let Some(rc) = rc {
                m["reasoning_content"] = json!(rc);
            }
            if let Some(r) = r {
                m["reasoning"] = json!(r);
            }
            if !calls.is_empty() {
                m["tool_calls"] = json!(calls);
            }
            if let Some((name, args)) = legacy {
                m["function_call"] = json!({"name": name, "arguments": args});
            }
            m
        });
    (
        proptest::collection::vec((message, finish_reason()), 0..3),
        prop::option::of(usage_value()),
        prop::option::of(prop::sample::select(vec![
            json!({"message": "quota", "code": 429}),
            json!("plain"),
            json!(null),
            json!(7),
        ])),
        any::<bool>(),
    )
        .prop_map(|(choices, usage, error, choices_field)| {
            let mut v = json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "m"});
            if choices_field {
                v["choices"] = choices
                    .into_iter()
                    .enumerate()
                    .map(|(i, (m, f))| json!({"index": i, "message": m, "finish_reason": f}))
                    .collect();
            }
            if let Some(u) = usage {
                v["usage"] = u;
            }
            if let Some(e) = error {
                v["error"] = e;
            }
            serde_json::to_vec(&v).unwrap()
        })
}

// ---------------------------------------------------------------------------------------------
// Properties

const MODELS: [&str; 5] = [
    "gpt-4o",
    "",
    "quote\" backslash\\ newline\n",
    "ünïcödé 😀",
    "\u{0}\u{1f}\u{7f}\u{2028}",
];

proptest! {
    #![proptest_config(config(256))]

    // -- (a) arbitrary bytes ------------------------------------------------------------------

    #[test]
    fn request_arbitrary_bytes(dialect in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(checks::check_request(&body, &checks::dialect_from_byte(dialect)))?;
    }

    #[test]
    fn response_arbitrary_bytes(status in any::<u16>(), body in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(checks::check_response(&body, &checks::tool_names(), status))?;
    }

    #[test]
    fn stream_arbitrary_bytes(plan in stream_plan(), body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let plan = fit_plan(plan, body.len());
        check(checks::check_stream_input(&body, &plan))?;
        check(checks::check_sse_decoder(&body, &plan.reads))?;
    }

    #[test]
    fn stream_arbitrary_data_lines(plan in stream_plan(), lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12)) {
        let mut body = Vec::new();
        for line in lines {
            body.extend_from_slice(b"data: ");
            body.extend_from_slice(&line);
            body.extend_from_slice(b"\n\n");
        }
        let plan = fit_plan(plan, body.len());
        check(checks::check_stream_input(&body, &plan))?;
    }

    #[test]
    fn replace_model_arbitrary_bytes(model in 0usize..MODELS.len(), body in proptest::collection::vec(any::<u8>(), 0..256)) {
        check(checks::check_replace_model(&body, MODELS[model]))?;
    }

    #[test]
    fn json_helpers_arbitrary_text(text in "\\PC{0,24}") {
        check(checks::check_json_helpers(&text))?;
    }

    // -- (b) mutations of valid inputs --------------------------------------------------------

    #[test]
    fn request_mutations(dialect in any::<u8>(), m in mutation()) {
        let body = mutate(&request_seeds(), &m);
        check(checks::check_request(&body, &checks::dialect_from_byte(dialect)))?;
    }

    #[test]
    fn response_mutations(status in any::<u16>(), base in openai_response(), m in mutation()) {
        let mut seeds = response_seeds();
        seeds.push(base);
        let body = mutate(&seeds, &m);
        check(checks::check_response(&body, &checks::tool_names(), status))?;
    }

    #[test]
    fn stream_mutations(
        plan in stream_plan(),
        seed in any::<Index>(),
        generated in openai_stream(),
        ops in proptest::collection::vec((any::<Index>(), value_op()), 0..6),
        byte_ops in proptest::collection::vec(byte_op(), 0..4),
    ) {
        let mut seeds = stream_seeds();
        seeds.push(generated);
        let body = mutate_stream(&seeds[seed.index(seeds.len())], &ops, &byte_ops);
        let plan = fit_plan(plan, body.len());
        check(checks::check_stream_input(&body, &plan))?;
    }

    #[test]
    fn replace_model_mutations(model in 0usize..MODELS.len(), m in mutation()) {
        let mut seeds = request_seeds();
        seeds.push(br#"{"messages":[{"role":"user","content":"h\u00e9"}],"model":"gpt","stream":false}"#.to_vec());
        seeds.push(br#" { "mod\u0065l" : "cl\u00e9" , "x":[1,2e3,{"model":1}], "stream" : true } "#.to_vec());
        let body = mutate(&seeds, &m);
        check(checks::check_replace_model(&body, MODELS[model]))?;
    }

    // -- (c) structure-aware streams and responses --------------------------------------------

    #[test]
    fn stream_structured(plan in stream_plan(), body in openai_stream()) {
        let plan = fit_plan(plan, body.len());
        check(checks::check_stream_input(&body, &plan))?;
        check(checks::check_sse_decoder(&body, &plan.reads))?;
    }

    #[test]
    fn response_structured(status in any::<u16>(), body in openai_response()) {
        check(checks::check_response(&body, &checks::tool_names(), status))?;
    }

    /// Every prefix of a JSON object (cut on a character boundary) can be completed by
    /// appending, as the stream translator relies on for truncated tool arguments.
    #[test]
    fn json_object_prefixes_complete(
        map in prop::collection::btree_map("\\PC{0,4}", prop_oneof![
            text().prop_map(|t| json!(t)),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
            Just(json!([true, false, null, {"a": [1.5e-7]}])),
        ], 0..4),
        pretty in any::<bool>(),
        cut in any::<Index>(),
    ) {
        let text = if pretty { serde_json::to_string_pretty(&map).unwrap() } else { serde_json::to_string(&map).unwrap() };
        let mut n = cut.index(text.len() + 1);
        while !text.is_char_boundary(n) {
            n -= 1;
        }
        let prefix = &text[..n];
        check(checks::check_json_helpers(prefix))?;
        if !prefix.trim().is_empty() {
            prop_assert!(
                flexiproxy::protocol::json::completion_suffix(prefix).is_some(),
                "no completion for the object prefix {:?}", prefix
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds pass untouched (a sanity check of the harness itself)

#[test]
fn seeds_pass_every_check() {
    for body in request_seeds() {
        for d in 0..=255u8 {
            checks::check_request(&body, &checks::dialect_from_byte(d)).unwrap();
        }
        let t = flexiproxy::protocol::pair::translate_request(
            &body,
            |m| m.to_owned(),
            &checks::dialect_from_byte(0),
        );
        assert!(t.is_ok(), "seed does not translate: {t:?}");
        checks::check_replace_model(&body, "gpt").unwrap();
    }
    for body in response_seeds() {
        checks::check_response(&body, &checks::tool_names(), 200).unwrap();
    }
    for body in stream_seeds() {
        let plan = StreamPlan {
            reads: vec![3, 1, 7],
            fail_at: body.len() / 2,
            ..StreamPlan::default()
        };
        checks::check_stream_input(&body, &plan).unwrap();
    }
}
