//! Criterion benchmarks of `routing`: what choosing a route and a provider key costs per
//! request, with 10 routes and a pool of 10 keys (target: ≤ 1 µs, token counting aside).
//!
//! - `routing/choose`: features given, all 10 routes checked (none matches), a sticky key
//!   picked and its lease dropped.
//! - `routing/claude_code/*`: the ~75 KB Claude Code fixture, decoded once outside the loop;
//!   per iteration what the proxy does: features read from the pivot, all 10 routes checked
//!   (none matches), the conversation id taken from the `x-claude-code-session-id` header, a
//!   key picked. `bounded`: the last route's `min_input_tokens: 100000` is settled by the
//!   cheap byte bound; `counted`: `min_input_tokens: 1000` makes it count tokens (BPE) every
//!   time (the route then matches).
//! - `routing/body_hints`, `routing/prompt_id`: the top-level walk for `prompt_cache_key` and
//!   effort (done only when needed), and the conversation id from the system prompt and first
//!   turn (when the client sends no id).
//!
//! Run: `cargo bench --bench routing`. See docs/benchmarks.md.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use flexiproxy::protocol::anthropic::decode_request::decode_request;
use flexiproxy::routing::{
    Balance, CompiledWhen, ConversationHints, HealthConfig, KeyPool, PoolKey, RequestFeatures,
    RouteWhen, body_hints, conversation_id, first_match,
};

// The allocator the binary ships with (src/main.rs), so allocation costs are the real ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn routes(min_tokens: u64) -> Vec<CompiledWhen> {
    let yaml = [
        r#"{ model: "claude-*haiku*" }"#,
        r#"{ model: "gpt-4*" }"#,
        r#"{ model: "o3*", thinking: true }"#,
        r#"{ model: "gemini-*-flash*" }"#,
        r#"{ model: "*deepseek*" }"#,
        r#"{ model: "qwen3-{max,plus}" }"#,
        "{ images: true }",
        "{ thinking: true, model: 'claude-sonnet-*' }",
        r#"{ model: "kimi-*", images: false }"#,
    ];
    let mut routes: Vec<CompiledWhen> = yaml
        .iter()
        .map(|y| {
            serde_yaml_ng::from_str::<RouteWhen>(y)
                .unwrap()
                .compile()
                .unwrap()
        })
        .collect();
    let tokens = RouteWhen {
        min_input_tokens: Some(min_tokens),
        ..RouteWhen::default()
    };
    routes.push(tokens.compile().unwrap());
    routes
}

fn pool() -> KeyPool {
    let keys = (0..10)
        .map(|i| PoolKey::new(Some(format!("k{i}")), &format!("sk-{i}")))
        .collect();
    KeyPool::new(keys, Balance::Sticky, HealthConfig::default())
}

fn fixture() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/claude_code_request.json"
    );
    std::fs::read_to_string(path).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing");
    let pool = pool();
    let now = Instant::now();

    let bounded = routes(100_000);
    g.bench_function("choose", |b| {
        let mut conversation = 0u64;
        b.iter(|| {
            conversation = conversation.wrapping_add(0x9E37_79B9);
            let f = RequestFeatures::new("claude-sonnet-4-5", false, true, 20_000);
            let route = first_match(&bounded, black_box(&f));
            let lease = pool.pick(conversation, now, &[]);
            black_box((route, lease))
        })
    });

    let body = fixture();
    let mut conversation = decode_request(&body).unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-claude-code-session-id",
        "5f0c2a9e-7d41-4b8e-9c3a-1e2f3a4b5c6d".parse().unwrap(),
    );
    // What the proxy does per request once the body is decoded.
    let request = |b: &mut criterion::Bencher<'_>, routes: &[CompiledWhen]| {
        b.iter(|| {
            let hints = body_hints(body.as_bytes());
            let f = RequestFeatures::of(black_box(&conversation)).with_hints(&hints);
            let route = first_match(routes, &f);
            let ids = ConversationHints::from_headers(&headers).with_body(&hints);
            let id = conversation_id(&conversation, &ids);
            let lease = pool.pick(id.hash, now, &[]);
            black_box((route, lease))
        })
    };
    g.bench_function("claude_code/bounded", |b| request(b, &bounded));
    let counted = routes(1_000);
    g.bench_function("claude_code/counted", |b| request(b, &counted));

    g.bench_function("body_hints", |b| {
        b.iter(|| {
            black_box(
                body_hints(black_box(body.as_bytes()))
                    .prompt_cache_key()
                    .is_some(),
            )
        })
    });
    conversation.user = None;
    g.bench_function("prompt_id", |b| {
        b.iter(|| {
            black_box(conversation_id(
                black_box(&conversation),
                &ConversationHints::default(),
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
