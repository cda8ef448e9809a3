//! Routing through real HTTP: one adapter key in front of several fake providers — routes by
//! model, images, input size and reasoning for every client protocol; key pools with health
//! (401 disables, 429 cools for retry-after, failures open a breaker that half-opens); sticky
//! conversations; fail-over of Claude Code's 77 KB request to a fallback of another protocol on
//! 429, 503, refused and reset connections, streaming or not, bounded by `max_attempts`, and
//! never after the first byte.

use crate::harness::*;
use flexiproxy_testkit::{FakeProvider, RecordedRequest, Reply, anthropic, openai};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

/// A Chat provider answering `from <name>` with the model it was asked for.
async fn named(name: &'static str) -> FakeProvider {
    FakeProvider::start(move |req| {
        let model = req.json()["model"].as_str().unwrap_or_default().to_owned();
        if req.json()["stream"] == json!(true) {
            return Reply::sse(openai::text_stream(&format!("from {name} as {model}"), 3));
        }
        Reply::json(
            200,
            openai::chat_completion(&format!("from {name} as {model}")),
        )
    })
    .await
}

/// The bearer key a request carried.
fn bearer(r: &RecordedRequest) -> String {
    r.header("authorization")
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_owned()
}

fn routed_adapter(
    a: &FakeProvider,
    b: &FakeProvider,
    vision: &FakeProvider,
    long: &FakeProvider,
) -> String {
    format!(
        "source:\n  base_url: {}\n  api_key: sk-a\n  model: strong-model\n  options: {{ images: false }}\n\
         routes:\n\
         \x20 - name: background\n    when: {{ model: \"claude-*haiku*\" }}\n    source: {{ base_url: \"{}\", api_key: sk-b, model: cheap-model }}\n\
         \x20 - name: vision\n    when: {{ images: true }}\n    source: {{ base_url: \"{}\", api_key: sk-v, model: vision-model }}\n\
         \x20 - name: long\n    when: {{ min_input_tokens: 2000 }}\n    source: {{ base_url: \"{}\", api_key: sk-l, model: long-model }}\n\
         \x20 - name: reasoning\n    when: {{ thinking: true }}\n    source: {{ base_url: \"{}\", api_key: sk-l, model: reasoning-model }}\n\
         keys:\n  - sha256: {}\n",
        a.base_url(),
        b.base_url(),
        vision.base_url(),
        long.base_url(),
        long.base_url(),
        sha256_hex(KEY)
    )
}

const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// The same request — model, an optional image, optional reasoning, a size — in each client
/// protocol: (path, body).
fn request(
    protocol: &str,
    model: &str,
    image: bool,
    thinking: bool,
    words: usize,
) -> (String, Value) {
    let text = "word ".repeat(words.max(1));
    match protocol {
        "anthropic" => {
            let mut content = vec![json!({"type": "text", "text": text})];
            if image {
                content.push(json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}));
            }
            let mut body = json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": content}]});
            if thinking {
                body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
            }
            ("/v1/messages".into(), body)
        }
        "chat" => {
            let mut content = vec![json!({"type": "text", "text": text})];
            if image {
                content.push(json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}}));
            }
            let mut body =
                json!({"model": model, "messages": [{"role": "user", "content": content}]});
            if thinking {
                body["reasoning_effort"] = json!("high");
            }
            ("/v1/chat/completions".into(), body)
        }
        "responses" => {
            let mut content = vec![json!({"type": "input_text", "text": text})];
            if image {
                content.push(json!({"type": "input_image", "image_url": format!("data:image/png;base64,{PNG}")}));
            }
            let mut body = json!({"model": model, "input": [{"role": "user", "content": content}]});
            if thinking {
                body["reasoning"] = json!({"effort": "high"});
            }
            ("/v1/responses".into(), body)
        }
        _ => {
            let mut parts = vec![json!({"text": text})];
            if image {
                parts.push(json!({"inlineData": {"mimeType": "image/png", "data": PNG}}));
            }
            let mut body = json!({"contents": [{"role": "user", "parts": parts}]});
            if thinking {
                body["generationConfig"] = json!({"thinkingConfig": {"thinkingBudget": 2048}});
            }
            (format!("/v1beta/models/{model}:generateContent"), body)
        }
    }
}

async fn send(proxy: &Proxy, path: &str, body: &Value) -> (u16, String) {
    let r = client()
        .post(proxy.url(path))
        .header("x-api-key", KEY)
        .header("x-goog-api-key", KEY)
        .bearer_auth(KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_client_protocol_is_routed_by_model_images_size_and_reasoning() {
    let (a, b, vision, long) = (
        named("a").await,
        named("b").await,
        named("vision").await,
        named("long").await,
    );
    let proxy = Proxy::start(&[("r", routed_adapter(&a, &b, &vision, &long))]);
    for protocol in ["anthropic", "chat", "responses", "gemini"] {
        for (model, image, thinking, words, expect) in [
            (
                "claude-sonnet-4-5",
                false,
                false,
                1,
                "from a as strong-model",
            ),
            ("claude-haiku-4-5", false, false, 1, "from b as cheap-model"),
            (
                "claude-sonnet-4-5",
                true,
                false,
                1,
                "from vision as vision-model",
            ),
            (
                "claude-sonnet-4-5",
                false,
                false,
                3000,
                "from long as long-model",
            ),
            (
                "claude-sonnet-4-5",
                false,
                true,
                1,
                "from long as reasoning-model",
            ),
        ] {
            let (path, body) = request(protocol, model, image, thinking, words);
            let (status, text) = send(&proxy, &path, &body).await;
            assert_eq!(status, 200, "{protocol} {model} {image} {thinking}: {text}");
            assert!(
                text.contains(expect),
                "{protocol} {model} image={image} thinking={thinking} words={words}: {text}"
            );
        }
    }
    // The vision route got the image itself.
    let seen = vision.requests();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|r| r.body_text().contains(PNG)));
    assert!(seen.iter().all(|r| bearer(r) == "sk-v"));
    assert!(b.requests().iter().all(|r| bearer(r) == "sk-b"));
    wait_until(DEADLINE, "the access log names the route", || {
        proxy.access_log().contains("\"route_name\":\"background\"")
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_only_source_gets_a_note_instead_of_the_image() {
    let a = named("a").await;
    // No image route: the default source is text-only (`images: false`).
    let yaml = format!(
        "source:\n  base_url: {}\n  api_key: sk-a\n  model: deepseek-v4-pro\n  options: {{ images: false }}\nkeys:\n  - sha256: {}\n",
        a.base_url(),
        sha256_hex(KEY)
    );
    let refuse = yaml.replace("images: false", "images: refuse");
    let proxy = Proxy::start(&[
        ("t", yaml),
        (
            "x",
            refuse.replace(&sha256_hex(KEY), &sha256_hex("fp-refuse-0001")),
        ),
    ]);
    for protocol in ["anthropic", "chat", "responses", "gemini"] {
        let (path, body) = request(protocol, "claude-sonnet-4-5", true, false, 1);
        let (status, text) = send(&proxy, &path, &body).await;
        assert_eq!(status, 200, "{protocol}: {text}");
        let sent = a.requests().pop().unwrap().body_text();
        assert!(
            !sent.contains(PNG),
            "{protocol}: the image did not go: {sent}"
        );
        assert!(
            sent.contains("[image omitted: deepseek-v4-pro cannot read images]"),
            "{protocol}: {sent}"
        );
    }
    wait_until(DEADLINE, "the access log names the omitted image", || {
        proxy.access_log().contains("\"media_omitted\":1")
    });
    // `images: refuse`: a clear 400 in the client's shape, nothing sent.
    let before = a.request_count();
    let (path, body) = request("anthropic", "claude-sonnet-4-5", true, false, 1);
    let r = client()
        .post(proxy.url(&path))
        .header("x-api-key", "fp-refuse-0001")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read images")
    );
    assert_eq!(a.request_count(), before);
}

/// A pool of three keys: `sk-revoked` answers 401, `sk-limited` 429 with retry-after, `sk-ok`
/// answers.
async fn pool_provider(retry_after: u64) -> FakeProvider {
    FakeProvider::start(move |req| match bearer(req).as_str() {
        "sk-revoked" => Reply::json(
            401,
            openai::error_body("invalid api key", "invalid_request_error", None),
        ),
        "sk-limited" => Reply::json(
            429,
            openai::error_body("slow down", "rate_limit_error", None),
        )
        .header("retry-after", &retry_after.to_string()),
        _ => Reply::json(200, openai::chat_completion("ok")),
    })
    .await
}

fn pool_yaml(provider: &FakeProvider, keys: &[&str], extra: &str) -> String {
    format!(
        "source:\n  base_url: {}\n  api_keys: [{}]\n  model: m\n{extra}keys:\n  - sha256: {}\n",
        provider.base_url(),
        keys.join(", "),
        sha256_hex(KEY)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_serves_every_request_while_one_key_is_revoked_and_one_limited() {
    // An hour: however slow a loaded machine runs the 200 requests, the key stays cooled.
    let p = pool_provider(3600).await;
    let proxy = Proxy::start(&[(
        "p",
        pool_yaml(
            &p,
            &["sk-revoked", "sk-limited", "sk-ok"],
            "  balance: round_robin\n",
        ),
    )]);
    // One request at a time until both bad keys have answered once (each request still gets
    // its 200 from the good key), so the 200 concurrent ones find them disabled and cooling.
    let tried = |k: &str| p.requests().iter().any(|r| bearer(r) == k);
    for _ in 0..4 {
        let (path, body) = request("chat", "m", false, false, 1);
        assert_eq!(send(&proxy, &path, &body).await.0, 200);
        if tried("sk-revoked") && tried("sk-limited") {
            break;
        }
    }
    let first = p.requests().iter().filter(|r| bearer(r) == "sk-ok").count();
    // Then 200 requests, 20 at a time.
    use futures::StreamExt;
    let statuses: Vec<u16> = futures::stream::iter(0..200)
        .map(|_| {
            let (path, body) = request("chat", "m", false, false, 1);
            let proxy = &proxy;
            async move { send(proxy, &path, &body).await.0 }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let by_key = |k: &str| p.requests().iter().filter(|r| bearer(r) == k).count();
    assert_eq!(by_key("sk-revoked"), 1, "the revoked key is tried once");
    assert_eq!(
        by_key("sk-limited"),
        1,
        "the limited key not again before its retry-after"
    );
    assert_eq!(by_key("sk-ok"), 200 + first);
    // The state is visible: metrics name the outcomes by key.
    let metrics = client()
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("flexiproxy_source_requests_total{adapter=\"p\",key=\"0/0\",outcome=\"unauthorized\",route=\"default\"} 1"), "{metrics}");
    assert!(metrics.contains(
        "flexiproxy_provider_key_health{adapter=\"p\",key=\"0/0\",route=\"default\"} -1"
    ));

    // Editing the file re-enables the key (a new pool, all healthy).
    p.clear_requests();
    let generation = proxy.generation();
    proxy.write_adapter(
        "p",
        &pool_yaml(
            &p,
            &["sk-revoked", "sk-limited", "sk-ok"],
            "  balance: round_robin\n# edited\n",
        ),
    );
    wait_until(DEADLINE, "the edit is live", || {
        proxy.generation() > generation
    });
    for _ in 0..3 {
        let (path, body) = request("chat", "m", false, false, 1);
        assert_eq!(send(&proxy, &path, &body).await.0, 200);
    }
    assert_eq!(
        p.requests()
            .iter()
            .filter(|r| bearer(r) == "sk-revoked")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_key_cooling_answers_429_with_retry_after_and_a_breaker_half_opens() {
    let p = pool_provider(30).await;
    let proxy = Proxy::start(&[("p", pool_yaml(&p, &["sk-limited", "sk-limited2"], ""))]);
    // Both keys answer 429 (the second by name too).
    let p2 = FakeProvider::start(|_| {
        Reply::json(
            429,
            openai::error_body("slow down", "rate_limit_error", None),
        )
        .header("retry-after", "30")
    })
    .await;
    proxy.write_adapter("p", &pool_yaml(&p2, &["sk-l1", "sk-l2"], ""));
    wait_status(DEADLINE, &proxy.url(""), KEY, 429, "the pool is live").await;
    let before = p2.request_count();
    let (path, body) = request("anthropic", "m", false, false, 1);
    let r = client()
        .post(proxy.url(&path))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&after), "{after}");
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["type"], "rate_limit_error");
    assert_eq!(
        p2.request_count(),
        before,
        "answered without asking the provider"
    );
    drop(p);

    // A provider outage: connections refused on both keys' source, then it comes back.
    let port = free_port();
    let down = format!("http://127.0.0.1:{port}/v1");
    let yaml = format!(
        "source:\n  base_url: {down}\n  api_keys: [sk-1, sk-2]\n  model: m\n  timeouts: {{ connect: 1s }}\nkeys:\n  - sha256: {}\n",
        sha256_hex(KEY)
    );
    proxy.write_adapter("p", &yaml);
    wait_status(DEADLINE, &proxy.url(""), KEY, 502, "the outage").await;
    for _ in 0..3 {
        assert_eq!(status_with(&proxy.url(""), KEY).await, 502);
    }
    let back = FakeProvider::builder()
        .listen(format!("127.0.0.1:{port}").parse().unwrap())
        .start(|_| Reply::json(200, openai::chat_completion("back")))
        .await
        .unwrap();
    // Breakers open (10 s pause): requests still get the provider's answer by trying anyway,
    // and the first success closes the breaker of its key.
    wait_status(
        Duration::from_secs(15),
        &proxy.url(""),
        KEY,
        200,
        "recovered",
    )
    .await;
    assert!(back.request_count() >= 1);
}

/// Claude Code's conversation id, as its `metadata.user_id` carries it.
fn session_body(session: &str) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 20,
           "metadata": {"user_id": format!("user_abc_account_def_session_{session}")},
           "messages": [{"role": "user", "content": format!("hi from {session}")}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn conversations_stay_on_one_key_and_move_together_when_it_is_revoked() {
    let revoked = Arc::new(std::sync::Mutex::new(String::new()));
    let r2 = revoked.clone();
    let p = FakeProvider::start(move |req| {
        if *r2.lock().unwrap() == bearer(req) {
            return Reply::json(
                401,
                openai::error_body("revoked", "invalid_request_error", None),
            );
        }
        Reply::json(200, openai::chat_completion("ok"))
    })
    .await;
    let proxy = Proxy::start(&[("s", pool_yaml(&p, &["sk-1", "sk-2", "sk-3"], ""))]);
    let keys_of = |session: &str, p: &FakeProvider| -> Vec<String> {
        p.requests()
            .iter()
            .filter(|r| r.body_text().contains(session))
            .map(bearer)
            .collect()
    };
    // Sessions whose keys differ, found among a few.
    let sessions: Vec<String> = (0..8)
        .map(|i| format!("5e55{i:04}-aaaa-bbbb-cccc-dddddddddddd"))
        .collect();
    for _ in 0..3 {
        for s in &sessions {
            let r = post_messages(&proxy, &session_body(s)).await;
            assert_eq!(r.status(), 200);
        }
    }
    let mut homes = Vec::new();
    for s in &sessions {
        let keys = keys_of(s, &p);
        assert_eq!(keys.len(), 3);
        assert!(keys.iter().all(|k| k == &keys[0]), "{s} moved: {keys:?}");
        homes.push(keys[0].clone());
    }
    let distinct: std::collections::BTreeSet<_> = homes.iter().collect();
    assert!(distinct.len() >= 2, "conversations are spread: {homes:?}");
    // Revoke the first session's key: each of its conversations moves to one other key and
    // stays there (all its later requests together); the others stay where they were.
    *revoked.lock().unwrap() = homes[0].clone();
    p.clear_requests();
    for s in &sessions {
        for _ in 0..3 {
            assert_eq!(post_messages(&proxy, &session_body(s)).await.status(), 200);
        }
    }
    let mut moved = 0;
    for (s, home) in sessions.iter().zip(&homes) {
        let keys: Vec<String> = keys_of(s, &p)
            .into_iter()
            .filter(|k| k != &homes[0])
            .collect();
        assert_eq!(keys.len(), 3, "{s}: every request answered once");
        assert!(
            keys.iter().all(|k| k == &keys[0]),
            "{s} is spread: {keys:?}"
        );
        if home == &homes[0] {
            moved += 1;
        } else {
            assert_eq!(&keys[0], home, "{s} left its healthy key");
        }
    }
    assert!(moved >= 1);
    // The revoked key was tried once, by the first request that met it.
    assert_eq!(
        p.requests()
            .iter()
            .filter(|r| bearer(r) == homes[0])
            .count(),
        1
    );
}

/// The provider's behaviour per attempt for the fail-over matrix.
#[derive(Clone, Copy, Debug)]
enum Fault {
    RateLimited,
    Unavailable,
    Reset,
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_codes_77_kb_request_fails_over_to_another_protocol_and_never_after_a_byte() {
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/claude_code_request.json")).unwrap();
    assert!(fixture.to_string().len() > 70_000);
    let backup = FakeProvider::start(|req| {
        assert!(req.path.ends_with("/v1/messages"), "{}", req.path);
        if req.json()["stream"] == json!(true) {
            return Reply::sse(anthropic::text_stream("from the anthropic backup", 3));
        }
        Reply::json(200, anthropic::message("from the anthropic backup"))
    })
    .await;
    let fault = Arc::new(std::sync::Mutex::new(Fault::Unavailable));
    let f2 = fault.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let primary = FakeProvider::start(move |_| {
        c2.fetch_add(1, Ordering::SeqCst);
        match *f2.lock().unwrap() {
            Fault::RateLimited => {
                Reply::json(429, openai::error_body("slow", "rate_limit_error", None))
            }
            Fault::Unavailable => {
                Reply::json(503, openai::error_body("overloaded", "server_error", None))
            }
            Fault::Reset => {
                Reply::json(200, openai::chat_completion("never")).reset_before_headers()
            }
        }
    })
    .await;
    let dead = format!("http://127.0.0.1:{}/v1", free_port());
    let adapter = |primary_url: &str| {
        format!(
            "source:\n  base_url: {primary_url}\n  api_key: sk-p\n  model: m\n  fallbacks:\n    - {{ base_url: \"{}\", protocol: anthropic, api_key: sk-backup, model: claude-backup }}\nkeys:\n  - sha256: {}\n",
            backup.base_url().trim_end_matches("/v1"),
            sha256_hex(KEY)
        )
    };
    let cases = [
        (Some(Fault::RateLimited), false),
        (Some(Fault::Unavailable), true),
        (Some(Fault::Reset), false),
        (None, true),
        (None, false),
        (Some(Fault::RateLimited), true),
    ];
    for (i, (which, stream)) in cases.into_iter().enumerate() {
        let url = match which {
            Some(f) => {
                *fault.lock().unwrap() = f;
                primary.base_url()
            }
            None => dead.clone(),
        };
        // A fresh adapter each time: no health carried over from the case before.
        let name = format!("f{i}");
        let key = format!("fp-failover-{i:04}");
        let proxy = Proxy::start(&[(
            &name,
            adapter(&url).replace(&sha256_hex(KEY), &sha256_hex(&key)),
        )]);
        let mut body = fixture.clone();
        body["stream"] = json!(stream);
        let backups = backup.request_count();
        let r = client()
            .post(proxy.url("/v1/messages"))
            .header("x-api-key", &key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{which:?} stream={stream}");
        let text = r.text().await.unwrap();
        let joined = if stream {
            text.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
                .collect::<String>()
        } else {
            serde_json::from_str::<Value>(&text).unwrap()["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            joined, "from the anthropic backup",
            "{which:?} stream={stream}"
        );
        assert_eq!(backup.request_count(), backups + 1);
        let sent = backup.requests().pop().unwrap();
        assert_eq!(sent.header("x-api-key"), Some("sk-backup"));
        assert_eq!(sent.json()["model"], "claude-backup");
        assert_eq!(
            sent.json()["messages"].as_array().unwrap().len(),
            fixture["messages"].as_array().unwrap().len()
        );
    }

    // max_attempts: 1 — the provider's own error, nothing else tried.
    *fault.lock().unwrap() = Fault::Unavailable;
    let yaml = adapter(&primary.base_url()).replace("keys:\n", "max_attempts: 1\nkeys:\n");
    let proxy = Proxy::start(&[("one", yaml)]);
    let backups = backup.request_count();
    let r = post_messages(&proxy, &messages_body(false)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(backup.request_count(), backups);

    // Never after the first byte: a stream that breaks midway ends with an error event.
    let breaking = FakeProvider::start(|_| {
        Reply::sse(openai::text_stream("starts then breaks off", 6)).reset_after_body_bytes(120)
    })
    .await;
    let proxy = Proxy::start(&[("b", adapter(&breaking.base_url()))]);
    let backups = backup.request_count();
    let r = post_messages(&proxy, &messages_body(true)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert_eq!(
        backup.request_count(),
        backups,
        "nothing retried after the first byte"
    );
}

/// A provider that, like DeepSeek or OpenAI, caches prompt prefixes per account: a
/// conversation's turn is a cache hit (90 of its 100 prompt tokens) only on a key that has
/// seen that conversation before.
async fn caching_provider() -> FakeProvider {
    let seen = std::sync::Mutex::new(std::collections::HashSet::<(String, String)>::new());
    FakeProvider::start(move |req| {
        let text = req.body_text();
        let conversation = text
            .split("conversation-")
            .nth(1)
            .map(|t| t.chars().take(2).collect::<String>())
            .unwrap_or_default();
        let hit = !seen.lock().unwrap().insert((bearer(req), conversation));
        let mut body = openai::chat_completion("ok");
        body["usage"] = json!({"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105,
                               "prompt_tokens_details": {"cached_tokens": if hit { 90 } else { 0 }}});
        Reply::json(200, body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn sticky_pools_keep_the_providers_prompt_cache_warm() {
    let (sticky, spread) = (caching_provider().await, caching_provider().await);
    let other_key = "fp-round-robin-0001";
    let extra = "stats:\n  enabled: true\n";
    let proxy = Proxy::start_with(
        extra,
        &[
            ("sticky", pool_yaml(&sticky, &["sk-1", "sk-2", "sk-3"], "")),
            (
                "spread",
                pool_yaml(
                    &spread,
                    &["sk-1", "sk-2", "sk-3"],
                    "  balance: round_robin\n",
                )
                .replace(&sha256_hex(KEY), &sha256_hex(other_key)),
            ),
        ],
    );
    // Four conversations of five turns each, interleaved.
    for _turn in 0..5 {
        for c in 0..4 {
            for key in [KEY, other_key] {
                let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 20,
                    "metadata": {"user_id": format!("user_x_account_y_session_aaaa{c}")},
                    "messages": [{"role": "user", "content": format!("conversation-{c:02}")}]});
                let r = client()
                    .post(proxy.url("/v1/messages"))
                    .header("x-api-key", key)
                    .header("anthropic-version", "2023-06-01")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        }
    }
    let config = proxy.config_path();
    wait_until(DEADLINE, "the 40 requests are in the statistics", || {
        let v = crate::observability::stats_cli(&config, &["--by", "adapter"]);
        v["totals"].as_array().is_some_and(|t| {
            t.iter()
                .map(|g| g["requests"].as_u64().unwrap_or(0))
                .sum::<u64>()
                == 40
        })
    });
    let v = crate::observability::stats_cli(&config, &["--by", "adapter"]);
    let cached = |adapter: &str| {
        v["totals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"] == adapter)
            .map(|g| g["cache_read_tokens"].as_u64().unwrap())
            .unwrap()
    };
    // Sticky: every turn after a conversation's first is a hit (4 × 4 × 90).
    assert_eq!(cached("sticky"), 1440);
    // In turn over the keys, a conversation's first three turns each meet a new key.
    assert!(cached("spread") <= 1440 * 6 / 10, "{}", cached("spread"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_that_breaks_before_the_client_saw_a_byte_goes_to_the_next_key_whole() {
    let p = FakeProvider::start(|req| {
        if bearer(req) == "sk-broken" {
            return Reply::json(200, openai::chat_completion("never seen"))
                .reset_after_body_bytes(20);
        }
        Reply::json(200, openai::chat_completion("from the next key"))
    })
    .await;
    let proxy = Proxy::start(&[(
        "b",
        pool_yaml(&p, &["sk-broken", "sk-ok"], "  balance: round_robin\n"),
    )]);
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/claude_code_request.json")).unwrap();
    let mut body = fixture.clone();
    body["stream"] = json!(false);
    for _ in 0..2 {
        let r = post_messages(&proxy, &body).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["content"][0]["text"], "from the next key");
    }
    // Each attempt on the next key carried the whole translated request.
    let ok: Vec<_> = p
        .requests()
        .into_iter()
        .filter(|r| bearer(r) == "sk-ok")
        .collect();
    assert_eq!(ok.len(), 2);
    let broken = p
        .requests()
        .into_iter()
        .find(|r| bearer(r) == "sk-broken")
        .unwrap();
    for r in &ok {
        assert_eq!(
            r.body.len(),
            broken.body.len(),
            "the same request, not an empty one"
        );
        assert!(r.body.len() > 50_000);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_sdks_of_every_protocol_are_routed_the_same_way() {
    use crate::clients::{anthropic_sdk, openai_sdk, run_python};
    let (a, b, vision, long) = (
        named("a").await,
        named("b").await,
        named("vision").await,
        named("long").await,
    );
    let proxy = Proxy::start(&[("r", routed_adapter(&a, &b, &vision, &long))]);
    let (base, v1) = (proxy.url(""), proxy.url("/v1"));
    let image_url = format!("data:image/png;base64,{PNG}");
    tokio::task::spawn_blocking(move || {
        for (model, image, expect) in [
            ("claude-sonnet-4-5", false, "from a as strong-model"),
            ("claude-haiku-4-5", false, "from b as cheap-model"),
            ("claude-sonnet-4-5", true, "from vision as vision-model"),
        ] {
            // Anthropic SDK (Claude Code's protocol).
            let mut content = vec![json!({"type": "text", "text": "hi"})];
            if image {
                content.push(json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}));
            }
            let r = anthropic_sdk(&base, KEY, "create", &json!({"model": model, "max_tokens": 50,
                "messages": [{"role": "user", "content": content}]}));
            assert!(r.to_string().contains(expect), "anthropic {model} {image}: {r}");
            // OpenAI SDK, Chat Completions.
            let mut content = vec![json!({"type": "text", "text": "hi"})];
            if image {
                content.push(json!({"type": "image_url", "image_url": {"url": image_url}}));
            }
            let r = openai_sdk(&v1, KEY, "create", &json!({"model": model,
                "messages": [{"role": "user", "content": content}]}));
            assert!(r.to_string().contains(expect), "chat {model} {image}: {r}");
            // OpenAI SDK, Responses (Codex's protocol).
            let mut content = vec![json!({"type": "input_text", "text": "hi"})];
            if image {
                content.push(json!({"type": "input_image", "image_url": image_url}));
            }
            let r = openai_sdk(&v1, KEY, "responses", &json!({"model": model,
                "input": [{"role": "user", "content": content}]}));
            assert!(r.to_string().contains(expect), "responses {model} {image}: {r}");
            // google-genai SDK (Gemini CLI's protocol).
            let mut parts = vec![json!({"text": "hi"})];
            if image {
                parts.push(json!({"inline_data": {"mime_type": "image/png", "data": PNG}}));
            }
            let r = run_python("gemini_client.py", &[&base, KEY, "generate",
                &json!({"model": model, "contents": [{"role": "user", "parts": parts}]}).to_string()]);
            assert_eq!(r["text"], expect, "gemini {model} {image}: {r}");
        }
    })
    .await
    .unwrap();
    assert_eq!(vision.request_count(), 4);
    assert!(
        vision
            .requests()
            .iter()
            .all(|r| r.body_text().contains(PNG))
    );
    assert_eq!(b.request_count(), 4);
}
