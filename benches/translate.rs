//! Criterion benchmarks of the protocol layer: what FlexiProxy does to every byte of a
//! request and a response, without sockets.
//!
//! - `request/*`: Anthropic `/v1/messages` body → OpenAI `/chat/completions` body
//!   (`translate_request`), for a one-line request and the ~75 KB Claude Code-shaped fixture
//!   (`tests/fixtures/claude_code_request.json`, made by `make_claude_code_fixture.py`).
//! - `passthrough/*`: the same-protocol path, which only swaps the model (`replace_model`).
//! - `response/*`: a non-streaming chat completion → Anthropic message (`translate_response`).
//! - `stream/*`: the stream translator fed a realistic OpenAI stream (role chunk, a thinking
//!   section, text deltas of a few words, a tool call whose arguments arrive in fragments,
//!   finish chunk, usage chunk, `[DONE]`; 150 events, ~37 KB) in several read patterns. Each
//!   iteration is one whole response: `StreamTranslator::new`, every `push` (each into a fresh
//!   output `Vec`, as `ResponseShaper::feed` does), `finish`. Throughput is reported as
//!   elements/s (= provider chunks/s) and bytes/s of provider input.
//!
//! - `pivot/*`: the OpenAI Chat client on an Anthropic-protocol source — a 75 KB Chat request
//!   (the Claude Code fixture as OpenAI would get it) → Messages body, and an Anthropic stream
//!   of the same shape as above (thinking, text, a tool call; ~150 events) → Chat chunks.
//!
//! - `responses/*`: the Responses codec (Codex's protocol) — its stream encoder alone (pivot
//!   events → Responses SSE), its stream decoder alone (Responses SSE from a source → pivot
//!   events, one event per read), the Anthropic stream above to a Responses client, and
//!   Codex's captured 45 KB tool-result request → Chat body.
//!
//! - `gemini/*`: the Gemini stream encoder alone (the same pivot events → Gemini SSE chunks)
//!   and the Anthropic stream above to a Gemini client.
//!
//! - `pairs/*`: every one of the twelve stream translators (`{client}_from_{source}`): the
//!   same answer (the pivot events above) as each source protocol streams it, made by that
//!   protocol's own stream encoder, fed through the pair in the `stream/*` read patterns
//!   (one event per read, 1–4 events per read, cuts of 1–64 bytes splitting events, the
//!   whole body in one read). Elements are the source's SSE events.
//!
//! Run: `cargo bench --bench translate` (add `-- stream/` to filter). See docs/benchmarks.md.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flexiproxy::protocol::anthropic::encode_stream::StreamEncoder as AnthropicEncoder;
use flexiproxy::protocol::gemini::encode_stream::StreamEncoder as GeminiEncoder;
use flexiproxy::protocol::names::ToolNames;
use flexiproxy::protocol::openai_chat::dialect::Dialect;
use flexiproxy::protocol::openai_chat::encode_stream::StreamEncoder as ChatEncoder;
use flexiproxy::protocol::pair::{
    Pair, PairStream, ResponseContext, SourceOptions, StreamTranslator, Wire, translate_request,
    translate_response,
};
use flexiproxy::protocol::passthrough::replace_model;
use flexiproxy::protocol::pivot::{BlockKind, Event, ExchangeContext, Origin, StopReason, Usage};
use flexiproxy::protocol::responses::decode_stream::StreamDecoder as ResponsesDecoder;
use flexiproxy::protocol::responses::encode_stream::StreamEncoder as ResponsesEncoder;
use flexiproxy::protocol::responses::seal::ReasoningKey;
use serde_json::{Value, json};

// The allocator the binary ships with (src/main.rs), so allocation costs are the real ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Provider payloads, shaped like OpenAI's / DeepSeek's (every field a real chunk carries).

const WORDS: &[&str] = &[
    "The",
    "proxy",
    "reads",
    "the",
    "request",
    "and",
    "then",
    "checks",
    "every",
    "tool",
    "schema",
    "before",
    "it",
    "forwards",
    "the",
    "stream",
    "to",
    "the",
    "client",
    "—",
    "fast",
    "and",
    "faithfully",
    "ok",
];

/// A few words, the way models stream text.
fn words(i: usize, n: usize) -> String {
    let mut s = String::new();
    for k in 0..n {
        if !s.is_empty() || i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[(i * 5 + k * 3) % WORDS.len()]);
    }
    s
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> String {
    let v = json!({
        "id": "chatcmpl-9f2c1e7a4b3d4e5f8a9b0c1d2e3f4a5b",
        "object": "chat.completion.chunk",
        "created": 1_767_225_600,
        "model": "deepseek-v4-flash",
        "system_fingerprint": "fp_8802369eaa_prod0623",
        "choices": [{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
    });
    format!("data: {v}\n\n")
}

/// The tool call's arguments, as the model would write an `Edit` call.
fn edit_arguments() -> String {
    json!({
        "file_path": "/home/dev/projects/flexiproxy/src/proxy/route.rs",
        "old_string": "        (\"GET\", \"/health\") => Route::Health,\n        (\"GET\", \"/ready\") => Route::Ready,",
        "new_string": "        (\"GET\", \"/health\") => Route::Health,\n        (\"GET\", \"/healthz\") => Route::Health,\n        (\"GET\", \"/ready\") => Route::Ready,",
        "replace_all": false
    })
    .to_string()
}

/// Cuts `s` into pieces of 3–9 characters (never inside a UTF-8 character), the way
/// providers stream tool arguments.
fn fragments(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < chars.len() {
        let n = 3 + (k * 5) % 7;
        out.push(chars[i..(i + n).min(chars.len())].iter().collect());
        i += n;
        k += 1;
    }
    out
}

struct Stream {
    /// The events, each `data: …\n\n`.
    events: Vec<String>,
    body: Vec<u8>,
}

/// Role chunk, 30 reasoning deltas, 70 text deltas, a tool call (header + argument
/// fragments), finish, usage, `[DONE]`.
fn openai_stream() -> Stream {
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": null, "reasoning_content": ""}),
        None,
    )];
    for i in 0..30 {
        events.push(chunk(
            json!({"content": null, "reasoning_content": words(i, 3)}),
            None,
        ));
    }
    for i in 0..70 {
        events.push(chunk(json!({"content": words(i + 30, 3)}), None));
    }
    events.push(chunk(
        json!({"tool_calls": [{
            "index": 0,
            "id": "call_00_kX3d9QwErTy7UiOpAsDfGh",
            "type": "function",
            "function": {"name": "Edit", "arguments": ""},
        }]}),
        None,
    ));
    for piece in fragments(&edit_arguments()) {
        events.push(chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            None,
        ));
    }
    events.push(chunk(json!({}), Some("tool_calls")));
    let usage = json!({
        "id": "chatcmpl-9f2c1e7a4b3d4e5f8a9b0c1d2e3f4a5b",
        "object": "chat.completion.chunk",
        "created": 1_767_225_600,
        "model": "deepseek-v4-flash",
        "system_fingerprint": "fp_8802369eaa_prod0623",
        "choices": [],
        "usage": {
            "prompt_tokens": 19_412, "completion_tokens": 412, "total_tokens": 19_824,
            "prompt_tokens_details": {"cached_tokens": 19_200},
            "prompt_cache_hit_tokens": 19_200, "prompt_cache_miss_tokens": 212
        },
    });
    events.push(format!("data: {usage}\n\n"));
    events.push("data: [DONE]\n\n".to_owned());
    let body = events.concat().into_bytes();
    Stream { events, body }
}

/// A tiny deterministic generator (xorshift64*), so read patterns are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

/// Upstream reads of 1–4 whole events each.
fn reads_by_events(s: &Stream, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    let mut reads = Vec::new();
    let mut i = 0;
    while i < s.events.len() {
        let n = rng.range(1, 4).min(s.events.len() - i);
        reads.push(s.events[i..i + n].concat().into_bytes());
        i += n;
    }
    reads
}

/// Upstream reads cut at arbitrary byte offsets (inside events, inside JSON strings, inside
/// multi-byte characters): lengths drawn from `lo..=hi`.
fn reads_by_bytes(s: &Stream, seed: u64, lo: usize, hi: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    let mut reads = Vec::new();
    let mut rest = &s.body[..];
    while !rest.is_empty() {
        let n = rng.range(lo, hi).min(rest.len());
        reads.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    reads
}

/// One whole response through a fresh translator; returns the bytes sent to the client.
fn translate_stream(reads: &[Vec<u8>]) -> usize {
    let mut t = StreamTranslator::new(
        "msg_01BenchBenchBenchBench",
        "claude-opus-5-5",
        ToolNames::default(),
        19_000,
    );
    let mut sent = 0;
    for read in reads {
        // A fresh buffer per read, sized like `ResponseShaper::feed` sizes it.
        let mut out = Vec::with_capacity(read.len() * 2 + 64);
        t.push(read, &mut out);
        sent += black_box(out).len();
    }
    let mut out = Vec::new();
    t.finish(&mut out);
    sent + black_box(out).len()
}

/// The whole translated stream, for checking that every read pattern gives the same bytes.
fn translated_bytes(reads: &[Vec<u8>]) -> Vec<u8> {
    let mut t = StreamTranslator::new(
        "msg_01BenchBenchBenchBench",
        "claude-opus-5-5",
        ToolNames::default(),
        19_000,
    );
    let mut out = Vec::new();
    for read in reads {
        t.push(read, &mut out);
    }
    t.finish(&mut out);
    out
}

fn completion_with_tools() -> Vec<u8> {
    json!({
        "id": "chatcmpl-9f2c1e7a4b3d4e5f8a9b0c1d2e3f4a5b",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": "deepseek-v4-flash",
        "system_fingerprint": "fp_8802369eaa_prod0623",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "reasoning_content": (0..30).map(|i| words(i, 3)).collect::<String>(),
                "content": (0..70).map(|i| words(i + 30, 3)).collect::<String>(),
                "tool_calls": [
                    {"id": "call_00_kX3d9QwErTy7UiOpAsDfGh", "type": "function",
                     "function": {"name": "Edit", "arguments": edit_arguments()}},
                    {"id": "call_01_pL4m8NbVcXz2QwErTy6UiO", "type": "function",
                     "function": {"name": "Bash", "arguments":
                        "{\"command\":\"cargo test --all-targets\",\"description\":\"Run the tests\"}"}}
                ]
            },
            "logprobs": null,
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 19_412, "completion_tokens": 412, "total_tokens": 19_824}
    })
    .to_string()
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------

fn request(c: &mut Criterion) {
    let dialect = Dialect::default();
    let mut g = c.benchmark_group("request");
    for (name, file) in [
        ("small", "claude_code_small_request.json"),
        ("claude_code_75k", "claude_code_request.json"),
    ] {
        let body = fixture(file);
        let check = translate_request(&body, |_| "deepseek-v4-flash".to_owned(), &dialect)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!check.body.is_empty());
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                translate_request(
                    black_box(&body),
                    |_| "deepseek-v4-flash".to_owned(),
                    &dialect,
                )
                .map(|t| t.body.len())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("passthrough");
    for (name, file) in [
        ("replace_model_small", "claude_code_small_request.json"),
        ("replace_model_75k", "claude_code_request.json"),
    ] {
        let body = fixture(file);
        assert!(replace_model(&body, |_| "deepseek-v4-flash".to_owned()).is_ok());
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                replace_model(black_box(&body), |_| "deepseek-v4-flash".to_owned())
                    .map(|r| r.0.len())
                    .ok()
            })
        });
    }
    g.finish();
}

fn response(c: &mut Criterion) {
    let names = ToolNames::default();
    let ctx = ResponseContext {
        message_id: "msg_01BenchBenchBenchBench",
        client_model: "claude-opus-5-5",
        tool_names: &names,
    };
    let text = json!({
        "id": "chatcmpl-9f2c1e7a4b3d4e5f8a9b0c1d2e3f4a5b",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": "deepseek-v4-flash",
        "choices": [{"index": 0, "message": {"role": "assistant",
            "content": "Hello! This is a response from the FlexiProxy fake provider.",
            "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 15, "total_tokens": 27}
    })
    .to_string()
    .into_bytes();
    let tools = completion_with_tools();
    let mut g = c.benchmark_group("response");
    for (name, body) in [("text", &text), ("thinking_text_2_tools", &tools)] {
        assert!(translate_response(body, &ctx).is_ok());
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| translate_response(black_box(body), &ctx).map(|t| t.body.len()))
        });
    }
    g.finish();
}

fn stream(c: &mut Criterion) {
    let s = openai_stream();
    let chunks = s.events.len() as u64;
    assert!(chunks >= 100, "{chunks} events");

    let patterns: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("one_event_per_read", reads_by_events_fixed(&s, 1)),
        ("1_to_4_events_per_read", reads_by_events(&s, 0x5eed_0001)),
        (
            "byte_cuts_1_to_700",
            reads_by_bytes(&s, 0x5eed_0002, 1, 700),
        ),
        ("byte_cuts_1_to_64", reads_by_bytes(&s, 0x5eed_0003, 1, 64)),
        ("whole_body_one_read", vec![s.body.clone()]),
    ];
    // The output depends only on the bytes, never on how they were split into reads.
    let reference = translated_bytes(&patterns[0].1);
    let text = String::from_utf8_lossy(&reference);
    for needle in [
        "event: message_start",
        "\"thinking_delta\"",
        "\"text_delta\"",
        "\"input_json_delta\"",
        "\"stop_reason\":\"tool_use\"",
        "event: message_stop",
    ] {
        assert!(text.contains(needle), "translated stream lacks {needle}");
    }
    for (name, reads) in &patterns {
        assert_eq!(
            translated_bytes(reads),
            reference,
            "{name}: different output for the same bytes"
        );
    }

    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::ElementsAndBytes {
        elements: chunks,
        bytes: s.body.len() as u64,
    });
    for (name, reads) in &patterns {
        g.bench_function(*name, |b| b.iter(|| translate_stream(black_box(reads))));
    }
    g.finish();
}

fn reads_by_events_fixed(s: &Stream, n: usize) -> Vec<Vec<u8>> {
    s.events
        .chunks(n)
        .map(|c| c.concat().into_bytes())
        .collect()
}

const CHAT_ON_ANTHROPIC: Pair = Pair {
    client: Wire::OpenAiChat,
    source: Wire::AnthropicMessages,
};

/// An Anthropic stream like `Stream`'s: thinking, text deltas of a few words, a tool call in
/// fragments; one event per element.
fn anthropic_events() -> Vec<String> {
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let delta = |i: u32, d: Value| {
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": i, "delta": d}),
        )
    };
    let mut events = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_b", "type": "message",
            "role": "assistant", "model": "m", "content": [], "stop_reason": null,
            "usage": {"input_tokens": 900, "output_tokens": 1}}}),
    )];
    events.push(event(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0,
        "content_block": {"type": "thinking", "thinking": ""}}),
    ));
    for w in WORDS.iter().cycle().take(40) {
        events.push(delta(
            0,
            json!({"type": "thinking_delta", "thinking": format!("{w} ")}),
        ));
    }
    events.push(delta(
        0,
        json!({"type": "signature_delta", "signature": "c2lnbmF0dXJl"}),
    ));
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "content_block_start",
        json!({"type": "content_block_start", "index": 1,
        "content_block": {"type": "text", "text": ""}}),
    ));
    for w in WORDS.iter().cycle().take(90) {
        events.push(delta(
            1,
            json!({"type": "text_delta", "text": format!("{w} ")}),
        ));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 1}),
    ));
    events.push(event(
        "content_block_start",
        json!({"type": "content_block_start", "index": 2,
        "content_block": {"type": "tool_use", "id": "toolu_b1", "name": "Bash", "input": {}}}),
    ));
    for piece in [
        "{\"command\":",
        " \"ls -la",
        " /tmp\",",
        " \"description\":",
        " \"list\"}",
    ] {
        events.push(delta(
            2,
            json!({"type": "input_json_delta", "partial_json": piece}),
        ));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 2}),
    ));
    events.push(event("message_delta", json!({"type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 420}})));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    events
}

/// One whole streamed answer through a pair, each read into a fresh output buffer (as the
/// proxy's shaper does, `growth` × the read reserved); the bytes written.
fn drive(mut stream: PairStream, reads: &[Vec<u8>], growth: usize) -> usize {
    let mut total = 0;
    for read in reads {
        let mut out = Vec::with_capacity(read.len() * growth + 64);
        stream.push(read, &mut out);
        total += out.len();
    }
    let mut out = Vec::new();
    stream.finish(&mut out);
    total + out.len()
}

fn pivot(c: &mut Criterion) {
    // The Claude Code fixture as an OpenAI client would send it.
    let chat_request = translate_request(
        &fixture("claude_code_request.json"),
        |_| "gpt-4o".to_owned(),
        &Dialect::default(),
    )
    .expect("fixture translates")
    .body;
    let dialect = Dialect::default();
    let encode = |body: &[u8]| {
        CHAT_ON_ANTHROPIC
            .encode_request(
                body,
                |_| "claude-src".to_owned(),
                SourceOptions {
                    dialect: &dialect,
                    omit_media_for: None,
                },
                ExchangeContext::default(),
            )
            .expect("chat request encodes")
    };
    assert!(encode(&chat_request).body.len() > 50_000);
    let events = anthropic_events();
    let reads: Vec<Vec<u8>> = events.iter().map(|e| e.clone().into_bytes()).collect();
    let bytes: usize = reads.iter().map(Vec::len).sum();
    let run = |reads: &[Vec<u8>]| {
        let ctx = ExchangeContext {
            message_id: "chatcmpl-b".into(),
            client_model: "gpt-4o".into(),
            stream: true,
            stream_usage: true,
            ..ExchangeContext::default()
        };
        drive(PairStream::new(CHAT_ON_ANTHROPIC, ctx), reads, 2)
    };
    assert!(run(&reads) > bytes / 2);

    let mut g = c.benchmark_group("pivot");
    g.throughput(Throughput::Bytes(chat_request.len() as u64));
    g.bench_function("chat_request_75k_to_anthropic", |b| {
        b.iter(|| encode(black_box(&chat_request)))
    });
    g.throughput(Throughput::ElementsAndBytes {
        elements: reads.len() as u64,
        bytes: bytes as u64,
    });
    g.bench_function("anthropic_stream_to_chat_one_event_per_read", |b| {
        b.iter(|| run(black_box(&reads)))
    });
    g.finish();
}

/// The pivot events of a streamed answer like the others: reasoning (40 deltas and a
/// signature), 90 text deltas, a tool call in 5 fragments, usage, finish, end.
fn pivot_events() -> Vec<Event<'static>> {
    let mut events = vec![
        Event::Start { id: "msg_b" },
        Event::BlockStart {
            index: 0,
            kind: BlockKind::Reasoning,
        },
    ];
    let words: Vec<&'static str> = WORDS
        .iter()
        .map(|w| &*Box::leak(format!("{w} ").into_boxed_str()))
        .collect();
    events.extend(
        words
            .iter()
            .cycle()
            .take(40)
            .map(|w| Event::ReasoningDelta { index: 0, text: w }),
    );
    events.push(Event::ReasoningSignature {
        index: 0,
        origin: Origin::Anthropic,
        signature: "c2lnbmF0dXJl",
    });
    events.push(Event::BlockStop { index: 0 });
    events.push(Event::BlockStart {
        index: 1,
        kind: BlockKind::Text,
    });
    events.extend(
        words
            .iter()
            .cycle()
            .take(90)
            .map(|w| Event::TextDelta { index: 1, text: w }),
    );
    events.push(Event::BlockStop { index: 1 });
    events.push(Event::BlockStart {
        index: 2,
        kind: BlockKind::ToolCall {
            id: "call_b1",
            name: "exec_command",
        },
    });
    for json in [
        "{\"cmd\":",
        " \"ls -la",
        " /tmp\",",
        " \"yield_time_ms\":",
        " 1000}",
    ] {
        events.push(Event::ArgumentsDelta { index: 2, json });
    }
    events.push(Event::BlockStop { index: 2 });
    events.push(Event::Usage(Usage {
        input: 900,
        output: 420,
        ..Usage::default()
    }));
    events.push(Event::Finish {
        stop: StopReason::ToolUse,
        stop_sequence: None,
    });
    events.push(Event::End);
    events
}

fn responses_ctx() -> ExchangeContext {
    ExchangeContext {
        message_id: "resp_b".into(),
        client_model: "gpt-5.5".into(),
        stream: true,
        reasoning_key: Some(ReasoningKey::from_secret(b"bench")),
        ..ExchangeContext::default()
    }
}

fn responses(c: &mut Criterion) {
    let events = pivot_events();
    let encode = |events: &[Event<'_>]| {
        let mut encoder = ResponsesEncoder::new(responses_ctx());
        let mut out = Vec::with_capacity(64 * 1024);
        for e in events {
            encoder.event(e.clone(), &mut out);
        }
        encoder.finish(&mut out);
        out
    };
    let encoded = encode(&events);
    // The encoder's own output, one SSE event per read, is what a Responses source sends.
    let reads: Vec<Vec<u8>> = String::from_utf8(encoded.clone())
        .unwrap()
        .split_inclusive("\n\n")
        .map(|e| e.as_bytes().to_vec())
        .collect();
    let decode = |reads: &[Vec<u8>]| {
        let mut decoder = ResponsesDecoder::new();
        let mut n = 0usize;
        for read in reads {
            decoder.push(read, &mut |_| n += 1);
        }
        decoder.finish(&mut |_| n += 1);
        n
    };
    assert!(
        decode(&reads) >= events.len() - 2,
        "the decoder sees every event"
    );
    let anthropic: Vec<Vec<u8>> = anthropic_events()
        .into_iter()
        .map(String::into_bytes)
        .collect();
    let anthropic_bytes: usize = anthropic.iter().map(Vec::len).sum();
    let pair = Pair {
        client: Wire::Responses,
        source: Wire::AnthropicMessages,
    };
    let to_responses = |reads: &[Vec<u8>]| drive(PairStream::new(pair, responses_ctx()), reads, 3);
    let codex = {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/codex/codex-exec-command-tool-result.json");
        std::fs::read(path).expect("Codex fixture")
    };
    let dialect = Dialect::default();
    let on_chat = Pair {
        client: Wire::Responses,
        source: Wire::OpenAiChat,
    };
    let codex_to_chat = |body: &[u8]| {
        on_chat
            .encode_request(
                body,
                |_| "deepseek-v4-flash".to_owned(),
                SourceOptions {
                    dialect: &dialect,
                    omit_media_for: None,
                },
                responses_ctx(),
            )
            .expect("Codex request encodes")
    };
    assert!(codex_to_chat(&codex).body.len() > 30_000);

    let mut g = c.benchmark_group("responses");
    g.throughput(Throughput::ElementsAndBytes {
        elements: events.len() as u64,
        bytes: encoded.len() as u64,
    });
    g.bench_function("stream_encoder", |b| b.iter(|| encode(black_box(&events))));
    g.throughput(Throughput::ElementsAndBytes {
        elements: reads.len() as u64,
        bytes: encoded.len() as u64,
    });
    g.bench_function("stream_decoder_one_event_per_read", |b| {
        b.iter(|| decode(black_box(&reads)))
    });
    g.throughput(Throughput::ElementsAndBytes {
        elements: anthropic.len() as u64,
        bytes: anthropic_bytes as u64,
    });
    g.bench_function("anthropic_stream_to_responses", |b| {
        b.iter(|| to_responses(black_box(&anthropic)))
    });
    g.throughput(Throughput::Bytes(codex.len() as u64));
    g.bench_function("codex_request_45k_to_chat", |b| {
        b.iter(|| codex_to_chat(black_box(&codex)))
    });
    g.finish();
}

fn gemini(c: &mut Criterion) {
    let events = pivot_events();
    let encode = |events: &[Event<'_>]| {
        let ctx = ExchangeContext {
            message_id: "b".into(),
            client_model: "gemini-3.5-flash".into(),
            ..responses_ctx()
        };
        let mut encoder = GeminiEncoder::new(ctx);
        let mut out = Vec::with_capacity(64 * 1024);
        for e in events {
            encoder.event(e.clone(), &mut out);
        }
        encoder.finish(&mut out);
        out
    };
    let encoded = encode(&events);
    assert!(encoded.len() > 10_000);
    let anthropic: Vec<Vec<u8>> = anthropic_events()
        .into_iter()
        .map(String::into_bytes)
        .collect();
    let anthropic_bytes: usize = anthropic.iter().map(Vec::len).sum();
    let pair = Pair {
        client: Wire::Gemini,
        source: Wire::AnthropicMessages,
    };
    let to_gemini = |reads: &[Vec<u8>]| drive(PairStream::new(pair, responses_ctx()), reads, 2);
    let mut g = c.benchmark_group("gemini");
    g.throughput(Throughput::ElementsAndBytes {
        elements: events.len() as u64,
        bytes: encoded.len() as u64,
    });
    g.bench_function("stream_encoder", |b| b.iter(|| encode(black_box(&events))));
    g.throughput(Throughput::ElementsAndBytes {
        elements: anthropic.len() as u64,
        bytes: anthropic_bytes as u64,
    });
    g.bench_function("anthropic_stream_to_gemini", |b| {
        b.iter(|| to_gemini(black_box(&anthropic)))
    });
    g.finish();
}

const WIRES: [Wire; 4] = [
    Wire::AnthropicMessages,
    Wire::OpenAiChat,
    Wire::Responses,
    Wire::Gemini,
];

fn wire_name(wire: Wire) -> &'static str {
    match wire {
        Wire::AnthropicMessages => "anthropic",
        Wire::OpenAiChat => "chat",
        Wire::Responses => "responses",
        Wire::Gemini => "gemini",
    }
}

/// The pivot events as `source` streams them, one SSE event per element: that protocol's
/// own client-side stream encoder writes them.
fn source_stream(source: Wire) -> Stream {
    let ctx = ExchangeContext {
        stream_usage: true,
        ..responses_ctx()
    };
    let mut out = Vec::with_capacity(64 * 1024);
    let mut feed = |event: &mut dyn FnMut(Event<'static>, &mut Vec<u8>)| {
        for e in pivot_events() {
            event(e, &mut out);
        }
    };
    match source {
        Wire::AnthropicMessages => {
            let mut encoder = AnthropicEncoder::new(ctx);
            feed(&mut |e, out| encoder.event(e, out));
            encoder.finish(&mut out);
        }
        Wire::OpenAiChat => {
            let mut encoder = ChatEncoder::new(ctx);
            feed(&mut |e, out| encoder.event(e, out));
            encoder.finish(&mut out);
        }
        Wire::Responses => {
            let mut encoder = ResponsesEncoder::new(ctx);
            feed(&mut |e, out| encoder.event(e, out));
            encoder.finish(&mut out);
        }
        Wire::Gemini => {
            let mut encoder = GeminiEncoder::new(ctx);
            feed(&mut |e, out| encoder.event(e, out));
            encoder.finish(&mut out);
        }
    }
    // Gemini ends its events with CRLF pairs, the others with LF pairs.
    let text = String::from_utf8(out.clone()).expect("UTF-8 stream");
    let end = if text.contains("\r\n\r\n") {
        "\r\n\r\n"
    } else {
        "\n\n"
    };
    let events: Vec<String> = text.split_inclusive(end).map(str::to_owned).collect();
    assert!(events.len() > 20, "{source:?}: {} events", events.len());
    Stream { events, body: out }
}

fn pairs(c: &mut Criterion) {
    let mut g = c.benchmark_group("pairs");
    for source in WIRES {
        let s = source_stream(source);
        let patterns: Vec<(&str, Vec<Vec<u8>>)> = vec![
            ("one_event_per_read", reads_by_events_fixed(&s, 1)),
            ("1_to_4_events_per_read", reads_by_events(&s, 0x5eed_0001)),
            ("byte_cuts_1_to_64", reads_by_bytes(&s, 0x5eed_0003, 1, 64)),
            ("whole_body_one_read", vec![s.body.clone()]),
        ];
        g.throughput(Throughput::ElementsAndBytes {
            elements: s.events.len() as u64,
            bytes: s.body.len() as u64,
        });
        for client in WIRES.into_iter().filter(|c| *c != source) {
            let pair = Pair { client, source };
            let run = |reads: &[Vec<u8>]| drive(PairStream::new(pair, responses_ctx()), reads, 3);
            let reference = run(&patterns[0].1);
            assert!(reference > s.body.len() / 4, "{client:?} from {source:?}");
            for (name, reads) in &patterns {
                assert_eq!(run(reads), reference, "{name}: a different answer");
                let id = format!("{}_from_{}/{name}", wire_name(client), wire_name(source));
                g.bench_function(id, |b| b.iter(|| run(black_box(reads))));
            }
        }
    }
    g.finish();
}

criterion_group!(
    benches, request, response, stream, pivot, responses, gemini, pairs
);
criterion_main!(benches);
