//! Claims of the README and docs/operations.md that had no test of their own (issue #32):
//! an answer broken before anything reached the client, FlexiProxy's own errors in every
//! client's shape, the local monthly token budget, the `xai` preset's `reasoning: none`, and
//! the first tool call streaming live. Each test fails when the behaviour is absent.

use crate::harness::*;
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use serde_json::{Value, json};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

/// The four client protocols, each with the request it sends and where.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Client {
    Anthropic,
    OpenAi,
    Responses,
    Gemini,
}

const CLIENTS: [Client; 4] = [
    Client::Anthropic,
    Client::OpenAi,
    Client::Responses,
    Client::Gemini,
];

impl Client {
    fn path(self) -> &'static str {
        match self {
            Client::Anthropic => "/v1/messages",
            Client::OpenAi => "/v1/chat/completions",
            Client::Responses => "/v1/responses",
            Client::Gemini => "/v1beta/models/gemini-2.5-pro:generateContent",
        }
    }

    fn body(self, prompt: &str) -> Value {
        match self {
            Client::Anthropic => json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
                "messages": [{"role": "user", "content": prompt}]}),
            Client::OpenAi => json!({"model": "gpt-4.1", "max_tokens": 64,
                "messages": [{"role": "user", "content": prompt}]}),
            Client::Responses => json!({"model": "gpt-5", "max_output_tokens": 64,
                "input": prompt}),
            Client::Gemini => json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}],
                "generationConfig": {"maxOutputTokens": 64}}),
        }
    }

    async fn send(self, base: &str, key: &str, body: &Value) -> (u16, Option<String>, Value) {
        let mut request = client().post(format!("{base}{}", self.path()));
        request = match self {
            Client::Gemini => request.header("x-goog-api-key", key),
            _ => request.header("authorization", format!("Bearer {key}")),
        };
        let r = request.json(body).send().await.unwrap();
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{self:?}: {status} not JSON ({e}): {text}"));
        (status, retry, v)
    }

    /// Checks that `v` is an error of `status` in this client's own shape, of FlexiProxy's
    /// `kind` (Anthropic's error type names).
    fn assert_error(self, v: &Value, status: u16, kind: &str, what: &str) {
        let context = format!("{self:?} client, {what}: {v}");
        match self {
            Client::Anthropic => {
                assert_eq!(v["type"], "error", "{context}");
                assert_eq!(v["error"]["type"], kind, "{context}");
            }
            Client::OpenAi | Client::Responses => {
                // OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
                let (kind, code) = match kind {
                    "request_too_large" => ("invalid_request_error", "request_too_large"),
                    "rate_limit_error" => ("rate_limit_error", "rate_limit_exceeded"),
                    "api_error" => ("server_error", "server_error"),
                    "overloaded_error" => ("server_error", "overloaded"),
                    other => panic!("no OpenAI mapping for {other}"),
                };
                assert_eq!(v["error"]["type"], kind, "{context}");
                assert_eq!(v["error"]["code"], code, "{context}");
                assert!(v["error"]["message"].is_string(), "{context}");
                assert!(v.get("type").is_none(), "{context}");
            }
            Client::Gemini => {
                // Google's shape: {"error": {"code", "message", "status"}}.
                let name = match status {
                    413 => "INVALID_ARGUMENT",
                    429 => "RESOURCE_EXHAUSTED",
                    502 => "INTERNAL",
                    503 | 529 => "UNAVAILABLE",
                    other => panic!("no Gemini mapping for {other}"),
                };
                assert_eq!(v["error"]["code"], status, "{context}");
                assert_eq!(v["error"]["status"], name, "{context}");
                assert!(v["error"]["message"].is_string(), "{context}");
            }
        }
    }
}

/// A provider's 200 whose body is broken, to a non-streaming request: the answer is held
/// until its body ends, so nothing has reached the client and every client gets a 502 in
/// its own error shape — not a 200 with an error body. A 200 carrying an `error` object
/// gets that error's status. The same broken body to a streaming request, once the stream
/// began, ends it with an error event.
#[tokio::test(flavor = "multi_thread")]
async fn a_200_with_a_broken_body_is_a_502_in_every_clients_shape() {
    let provider = FakeProvider::start(|req| {
        let body = req.json().to_string();
        if body.contains("error-object") {
            Reply::json(
                200,
                json!({"error": {"message": "Rate limit exceeded upstream", "code": 429}}),
            )
        } else if req.json()["stream"] == true {
            let mut events = openai::text_stream("a stream that breaks", 4);
            events.truncate(3);
            events.push("data: {{{ not json\n\n".into());
            Reply::sse(events)
        } else {
            Reply::text(200, "application/json", "{\"id\": \"x\", \"choices\": [{{{")
        }
    })
    .await;
    // The OpenAI client on an OpenAI source would be a passthrough, whose success bodies are
    // relayed as they are (docs/operations.md); it is tested on an Anthropic source.
    let anthropic_source = adapter_yaml(
        &provider.base_url(),
        &["fp-on-anthropic"],
        "protocol: anthropic",
    );
    let proxy = Proxy::start(&[
        ("a", adapter_yaml(&provider.base_url(), &[KEY], "")),
        ("b", anthropic_source),
    ]);
    let base = proxy.url("");
    for client in CLIENTS {
        let key = if client == Client::OpenAi {
            "fp-on-anthropic"
        } else {
            KEY
        };
        let (status, _, v) = client.send(&base, key, &client.body("hi")).await;
        assert_eq!(status, 502, "{client:?}: {v}");
        client.assert_error(&v, 502, "api_error", "a 200 with a broken body");
        if client == Client::OpenAi {
            continue;
        }
        let (status, _, v) = client.send(&base, KEY, &client.body("error-object")).await;
        assert_eq!(status, 429, "{client:?}: {v}");
        client.assert_error(&v, 429, "rate_limit_error", "an error object in a 200");
    }
    // Streaming: the 200 and the first events were sent; the break is an error event.
    let r = post_messages(&proxy, &messages_body(true)).await;
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    let frames = flexiproxy::protocol::stream_check::check_stream(&body)
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&body)));
    assert!(frames.iter().any(|f| f.event == "content_block_delta"));
    let last = frames.last().unwrap();
    assert_eq!(last.event, "error", "{frames:?}");
    assert_eq!(last.data["error"]["type"], "api_error");
    // The access log records the status the client got.
    wait_until(DEADLINE, "the access log has every request", || {
        proxy.access_log().lines().count() >= 8
    });
    let log = proxy.access_log();
    let statuses: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["status"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 502).count(), 4, "{log}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3, "{log}");
}

/// Errors FlexiProxy makes itself — 413 (body over `limits.max_request_body`), 429 (a
/// limit of the adapter), 503 (an unset `${VAR}`), 529 (over
/// `limits.max_concurrent_requests`) — come in every client's own error shape, with
/// `retry-after` where the docs promise one.
#[tokio::test(flavor = "multi_thread")]
async fn self_generated_errors_come_in_every_clients_shape() {
    let provider = FakeProvider::start(|req| {
        let reply = Reply::json(200, openai::chat_completion("ok"));
        if req.json().to_string().contains("hold") {
            reply.delay_before_headers(Duration::from_secs(20))
        } else {
            reply
        }
    })
    .await;
    let limited = format!(
        "{}limits:\n  requests_per_minute: 1\n",
        adapter_yaml(&provider.base_url(), &["fp-limited"], "")
    );
    let unset = adapter_yaml(&provider.base_url(), &["fp-unset"], "")
        .replace(PROVIDER_KEY, "${FLEXIPROXY_TEST_NEVER_SET_32}");
    let proxy = Proxy::start_with(
        "limits:\n  max_request_body: 4096\n  max_concurrent_requests: 1\n",
        &[
            ("a", adapter_yaml(&provider.base_url(), &[KEY], "")),
            ("limited", limited),
            ("unset", unset),
        ],
    );
    let base = proxy.url("");
    let big = "x".repeat(8192);
    for client in CLIENTS {
        // 413: the body is over the limit.
        proxy.wait_idle().await;
        let (status, _, v) = client.send(&base, KEY, &client.body(&big)).await;
        assert_eq!(status, 413, "{client:?}: {v}");
        client.assert_error(&v, 413, "request_too_large", "413");
        // A request under the limit is served (the limit is what refused the other).
        proxy.wait_idle().await;
        let (status, _, v) = client.send(&base, KEY, &client.body("hi")).await;
        assert_eq!(status, 200, "{client:?}: {v}");
    }
    // 429: one request a minute; the first (of any protocol) is admitted.
    proxy.wait_idle().await;
    let (status, _, v) = Client::Anthropic
        .send(&base, "fp-limited", &Client::Anthropic.body("hi"))
        .await;
    assert_eq!(status, 200, "{v}");
    for client in CLIENTS {
        proxy.wait_idle().await;
        let (status, retry, v) = client.send(&base, "fp-limited", &client.body("hi")).await;
        assert_eq!(status, 429, "{client:?}: {v}");
        client.assert_error(&v, 429, "rate_limit_error", "429");
        let retry: u64 = retry.expect("retry-after").parse().unwrap();
        assert!((1..=60).contains(&retry), "{client:?}: retry-after {retry}");
    }
    // 503: the adapter's key comes from a variable that is not set.
    for client in CLIENTS {
        proxy.wait_idle().await;
        let (status, _, v) = client.send(&base, "fp-unset", &client.body("hi")).await;
        assert_eq!(status, 503, "{client:?}: {v}");
        client.assert_error(&v, 503, "api_error", "503");
        assert!(
            v.to_string().contains("FLEXIPROXY_TEST_NEVER_SET_32"),
            "{client:?}: names the variable: {v}"
        );
    }
    // 529: the one request the proxy takes at a time is in flight.
    proxy.wait_idle().await;
    let held = {
        let base = base.clone();
        tokio::spawn(async move {
            Client::Anthropic
                .send(&base, KEY, &Client::Anthropic.body("hold"))
                .await
        })
    };
    wait_until(DEADLINE, "the held request reached the provider", || {
        provider
            .requests()
            .iter()
            .any(|r| r.json().to_string().contains("hold"))
    });
    for client in CLIENTS {
        let (status, retry, v) = client.send(&base, KEY, &client.body("hi")).await;
        assert_eq!(status, 529, "{client:?}: {v}");
        client.assert_error(&v, 529, "overloaded_error", "529");
        assert_eq!(retry.as_deref(), Some("1"), "{client:?}");
    }
    held.abort();
}

/// `limits.tokens_per_month` with the local backend: each request reserves its input
/// estimate plus `max_tokens` up front and settles to the provider's usage, so with 100
/// tokens spent per request and a 1,000-token budget exactly nine are admitted; the tenth
/// gets 429 with `retry-after` at the month's end (UTC), another key keeps its own budget,
/// and a request whose `max_tokens` alone is over the budget never reaches the provider.
#[tokio::test(flavor = "multi_thread")]
async fn the_local_monthly_token_budget_admits_exactly_what_it_holds() {
    let provider = FakeProvider::start(|_| {
        let mut answer = openai::chat_completion("ok");
        answer["usage"] = openai::usage(10, 90);
        Reply::json(200, answer)
    })
    .await;
    let yaml = format!(
        "{}limits:\n  tokens_per_month: 1000\n",
        adapter_yaml(&provider.base_url(), &[KEY, "fp-other"], "")
    );
    let proxy = Proxy::start(&[("budget", yaml)]);
    let base = proxy.url("");
    let ask = |key: &'static str, max_tokens: u64| {
        let base = base.clone();
        async move {
            let mut body = Client::Anthropic.body("hi");
            body["max_tokens"] = json!(max_tokens);
            Client::Anthropic.send(&base, key, &body).await
        }
    };
    // Over the budget by itself: refused before the provider sees it.
    let (status, _, v) = ask(KEY, 5000).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(provider.request_count(), 0);
    // Reservation: ~5 input tokens + 100; each settles to 100 spent. 100·8 + reservation
    // fits in 1,000, 100·9 + reservation does not.
    let mut admitted = 0;
    loop {
        let (status, retry, v) = ask(KEY, 100).await;
        if status == 200 {
            admitted += 1;
            assert!(admitted <= 9, "over the budget: {admitted} admitted");
            continue;
        }
        assert_eq!(status, 429, "{v}");
        Client::Anthropic.assert_error(&v, 429, "rate_limit_error", "budget");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("token budget of 1000 per month"),
            "{message}"
        );
        // Seconds until the first of next month, 00:00 UTC.
        let now = time::OffsetDateTime::now_utc();
        let (y, m) = (now.year(), now.month());
        let next = if m == time::Month::December {
            time::Date::from_calendar_date(y + 1, time::Month::January, 1)
        } else {
            time::Date::from_calendar_date(y, m.next(), 1)
        }
        .unwrap();
        let expected = (next.midnight().assume_utc() - now).whole_seconds();
        let retry: i64 = retry.expect("retry-after").parse().unwrap();
        assert!(
            (retry - expected).abs() <= 5,
            "retry-after {retry}, the month ends in {expected} s"
        );
        break;
    }
    assert_eq!(admitted, 9);
    assert_eq!(provider.request_count(), 9);
    // Per key: another key has its own month.
    let (status, _, v) = ask("fp-other", 100).await;
    assert_eq!(status, 200, "{v}");
}

/// The quirks table's `xai` row: grok-4 rejects `reasoning_effort`, so the `xai` preset
/// (`reasoning: none`) never sends it, nor any other reasoning switch, whatever the client
/// asked — while the same requests to a plain OpenAI-compatible source do carry it.
#[tokio::test(flavor = "multi_thread")]
async fn the_xai_preset_never_sends_reasoning_effort() {
    let provider = FakeProvider::start(|_| Reply::json(200, openai::chat_completion("ok"))).await;
    let xai = adapter_yaml(&provider.base_url(), &["fp-xai"], "preset: xai");
    let plain = adapter_yaml(&provider.base_url(), &["fp-plain"], "");
    let proxy = Proxy::start(&[("xai", xai), ("plain", plain)]);
    let base = proxy.url("");
    let thinking = json!({"model": "claude-sonnet-4-5", "max_tokens": 8000,
        "thinking": {"type": "enabled", "budget_tokens": 4096},
        "messages": [{"role": "user", "content": "think"}]});
    let responses = json!({"model": "gpt-5", "reasoning": {"effort": "high"}, "input": "think"});
    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "think"}]}],
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 4096}}});
    // Translated clients (an OpenAI client on an OpenAI-compatible source is a passthrough:
    // its body goes as it is, the quirks table is about translation).
    let asks = [
        (Client::Anthropic, &thinking),
        (Client::Responses, &responses),
        (Client::Gemini, &gemini),
    ];
    for key in ["fp-plain", "fp-xai"] {
        for (client, body) in asks {
            let (status, _, v) = client.send(&base, key, body).await;
            assert_eq!(status, 200, "{key} {client:?}: {v}");
        }
    }
    let seen = provider.requests();
    assert_eq!(seen.len(), 6);
    for (i, r) in seen.iter().enumerate() {
        let body = r.json();
        let asked = [
            "reasoning_effort",
            "reasoning",
            "thinking",
            "enable_thinking",
        ]
        .iter()
        .any(|field| body.get(field).is_some());
        if i < 3 {
            assert!(
                body["reasoning_effort"].is_string(),
                "the plain source is asked for reasoning (else this test shows nothing): {body}"
            );
        } else {
            assert!(!asked, "the xai source got a reasoning switch: {body}");
        }
    }
}

/// The quirks table: argument fragments of two interleaved tool calls — the first call
/// streams live, the later one is held and sent whole. The provider sends the first call's
/// start and three fragments with the second call's start and a fragment in between, then
/// stalls: the client must already hold the first call's three fragments (nothing of it
/// waits for the end) and nothing of the second.
#[tokio::test(flavor = "multi_thread")]
async fn the_first_tool_call_streams_live() {
    let call = |index: u32, delta: Value| {
        openai::sse_chunk(
            json!({"tool_calls": [{"index": index, "function": delta}]}),
            None,
        )
    };
    let start = |index: u32, id: &str, name: &str| {
        openai::sse_chunk(
            json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
            None,
        )
    };
    let sent = vec![
        openai::sse_chunk(json!({"role": "assistant", "content": null}), None),
        start(0, "call_first", "read_file"),
        call(0, json!({"arguments": "{\"path\": "})),
        call(0, json!({"arguments": "\"src/ma"})),
        start(1, "call_second", "list_dir"),
        call(1, json!({"arguments": "{\"dir\": \"src\"}"})),
        call(0, json!({"arguments": "in.rs\"}"})),
    ];
    let live: usize = sent.iter().map(String::len).sum();
    let mut events = sent.clone();
    events.push(openai::sse_chunk(json!({}), Some("tool_calls")));
    events.push(openai::SSE_DONE.into());
    let provider =
        FakeProvider::start(move |_| Reply::sse(events.clone()).stall_after_body_bytes(live)).await;
    let proxy = Proxy::start(&[("a", adapter_yaml(&provider.base_url(), &[KEY], ""))]);
    let mut body = messages_body(true);
    body["tools"] = json!([
        {"name": "read_file", "input_schema": {"type": "object"}},
        {"name": "list_dir", "input_schema": {"type": "object"}}
    ]);
    let mut r = post_messages(&proxy, &body).await;
    assert_eq!(r.status(), 200);
    let mut text = String::new();
    let first_call_whole = "{\"path\": \"src/main.rs\"}";
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let partial: String = frames_of(&text)
            .iter()
            .filter(|(event, data)| {
                event == "content_block_delta" && data["delta"]["type"] == "input_json_delta"
            })
            .filter_map(|(_, data)| data["delta"]["partial_json"].as_str().map(str::to_owned))
            .collect();
        if partial == first_call_whole {
            break;
        }
        let chunk = tokio::time::timeout_at(deadline, r.chunk())
            .await
            .unwrap_or_else(|_| {
                panic!("the first call's fragments did not stream live; the client has:\n{text}")
            })
            .unwrap()
            .expect("the stream ended though the provider stalls");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let frames = frames_of(&text);
    let starts: Vec<&Value> = frames
        .iter()
        .filter(|(event, _)| event == "content_block_start")
        .map(|(_, data)| &data["content_block"])
        .collect();
    assert_eq!(starts.len(), 1, "{text}");
    assert_eq!(starts[0]["type"], "tool_use");
    assert_eq!(starts[0]["name"], "read_file");
    assert!(
        !text.contains("list_dir") && !text.contains("\\\"dir\\\""),
        "the second call is held until it is whole: {text}"
    );
    drop(r);
}

/// The complete SSE events in `text` as (event, data) pairs.
fn frames_of(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(end) = rest.find("\n\n") {
        let (frame, tail) = rest.split_at(end);
        rest = &tail[2..];
        let mut event = String::new();
        let mut data = String::new();
        for line in frame.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if let Ok(v) = serde_json::from_str(&data) {
            out.push((event, v));
        }
    }
    out
}
