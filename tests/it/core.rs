//! The core proxy: probes, auth, request translation as the provider sees it, response
//! translation as the client sees it, provider errors, limits.

use crate::harness::*;
use flexiproxy::protocol::stream_check::{accumulate, check_stream};
use flexiproxy_testkit::{FakeProvider, Framing, Reply, openai};
use serde_json::{Value, json};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

async fn text_provider() -> FakeProvider {
    FakeProvider::start(|req| {
        let body = req.json();
        if body["stream"] == true {
            Reply::sse(openai::text_stream("Hello from the fake provider", 4))
        } else {
            Reply::json(200, openai::chat_completion("Hello from the fake provider"))
        }
    })
    .await
}

fn proxy_for(provider: &FakeProvider) -> Proxy {
    Proxy::start(&[("fake", adapter_yaml(&provider.base_url(), &[KEY], ""))])
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_answer_without_auth() {
    let provider = text_provider().await;
    let proxy = proxy_for(&provider);
    let c = client();
    let head = c.head(proxy.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(c.get(proxy.url("/")).send().await.unwrap().status(), 200);
    let health = c.get(proxy.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");
    assert_eq!(provider.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_unknown_keys_get_anthropic_401() {
    let provider = text_provider().await;
    let proxy = proxy_for(&provider);
    let c = client();
    for request in [
        c.post(proxy.url("/v1/messages"))
            .json(&messages_body(false)),
        c.post(proxy.url("/v1/messages"))
            .header("x-api-key", "fp-wrong")
            .json(&messages_body(false)),
        c.post(proxy.url("/v1/messages"))
            .bearer_auth("fp-wrong")
            .json(&messages_body(false)),
        c.get(proxy.url("/v1/models")).header("x-api-key", "nope"),
    ] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
    }
    assert_eq!(provider.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_and_x_api_key_both_work() {
    let provider = text_provider().await;
    let proxy = proxy_for(&provider);
    let r = client()
        .post(proxy.url("/v1/messages"))
        .bearer_auth(KEY)
        .json(&messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post_messages(&proxy, &messages_body(false)).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_sees_a_clean_openai_request() {
    let provider = text_provider().await;
    let proxy = proxy_for(&provider);
    let mut body = messages_body(false);
    body["model"] = json!("claude-haiku-4-5-20251001");
    body["system"] = json!([{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1;"},{"type":"text","text":"Be nice.","cache_control":{"type":"ephemeral"}}]);
    body["context_management"] = json!({"edits": []});
    let r = post_messages(&proxy, &body).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-request-id").is_some());

    let seen = provider.wait_for_requests(1, DEADLINE).await;
    let req = &seen[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(req.header("accept-encoding"), Some("identity"));
    assert_eq!(
        req.header("host"),
        Some(provider.addr().to_string().as_str())
    );
    for leaked in [
        "x-api-key",
        "anthropic-version",
        "anthropic-beta",
        "x-stainless-os",
    ] {
        assert!(
            req.header(leaked).is_none(),
            "{leaked} must not reach the provider"
        );
    }
    let sent = req.json();
    assert_eq!(sent["model"], "fake-small", "haiku mapped by the glob rule");
    assert_eq!(
        sent["messages"][0],
        json!({"role":"system","content":"Be nice."})
    );
    assert_eq!(
        sent["messages"][1],
        json!({"role":"user","content":"Say hello"})
    );
    assert!(sent.get("context_management").is_none());
    // A small body is translated before the upstream request starts, so it goes with its
    // length rather than chunked (some OpenAI-compatible servers refuse chunked requests).
    assert!(!req.chunked, "a small body goes with a content-length");
    assert_eq!(
        req.header("content-length"),
        Some(req.body.len().to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn non_streaming_response_is_translated() {
    let provider = text_provider().await;
    let proxy = proxy_for(&provider);
    let r = post_messages(&proxy, &messages_body(false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["content"][0]["text"], "Hello from the fake provider");
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn non_streaming_answers_carry_their_length_whatever_the_provider_framing() {
    // The provider's body arrives chunked, in small pieces, or ends with the connection; the
    // translated answer goes out whole with `Content-Length` (see src/proxy/direct.rs), also
    // for provider errors and on reused upstream connections.
    let provider = FakeProvider::start(|req| {
        match req.json()["messages"][0]["content"].as_str().unwrap_or("") {
            "close" => Reply::json(200, openai::chat_completion("Hello, until close"))
                .framing(Framing::CloseDelimited),
            "error" => Reply::json(429, json!({"error": {"message": "slow down"}}))
                .framing(Framing::Chunked)
                .header("retry-after", "7"),
            _ => Reply::json(
                200,
                openai::chat_completion("Hello from a chunked provider"),
            )
            .framing(Framing::Chunked)
            .split_writes(vec![7, 13, 5]),
        }
    })
    .await;
    let proxy = proxy_for(&provider);
    for (prompt, status, text) in [
        ("chunked", 200, "Hello from a chunked provider"),
        ("chunked again", 200, "Hello from a chunked provider"),
        ("close", 200, "Hello, until close"),
        ("error", 429, ""),
    ] {
        let mut body = messages_body(false);
        body["messages"][0]["content"] = json!(prompt);
        let r = post_messages(&proxy, &body).await;
        assert_eq!(r.status(), status, "{prompt}");
        assert!(
            r.headers().get("transfer-encoding").is_none(),
            "{prompt}: {:?}",
            r.headers()
        );
        let declared: usize = r.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if status == 429 {
            assert_eq!(r.headers()["retry-after"], "7");
        }
        let bytes = r.bytes().await.unwrap();
        assert_eq!(declared, bytes.len(), "{prompt}");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        if status == 200 {
            assert_eq!(v["content"][0]["text"], text, "{prompt}");
        } else {
            assert_eq!(v["error"]["type"], "rate_limit_error", "{prompt}: {v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_response_is_translated_incrementally() {
    // The provider writes its SSE in 7-byte pieces with pauses: reads end mid-line and
    // mid-character, and the client must see events before the provider is done.
    let provider = FakeProvider::start(|_| {
        let mut events = openai::text_stream("Grüße — 你好, world! ✓", 6);
        // Replace the stock usage chunk (and [DONE]) with our own numbers.
        events.truncate(events.len() - 2);
        events.push(openai::sse_usage_chunk(11, 7));
        events.push(openai::SSE_DONE.to_owned());
        Reply::sse(events)
            .split_writes(vec![7])
            .delay_between_writes(Duration::from_millis(2))
    })
    .await;
    let proxy = proxy_for(&provider);
    let r = post_messages(&proxy, &messages_body(true)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(r.headers().get("content-length").is_none());
    let body = r.bytes().await.unwrap();
    let frames =
        check_stream(&body).unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&body)));
    let msg = accumulate(&frames);
    assert_eq!(msg["content"][0]["text"], "Grüße — 你好, world! ✓");
    assert_eq!(msg["usage"]["input_tokens"], 11);
    assert_eq!(msg["usage"]["output_tokens"], 7);
    assert!(!String::from_utf8_lossy(&body).contains("[DONE]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn first_events_arrive_before_the_stream_ends() {
    // The provider sends its role chunk and first delta, then stalls (the connection open,
    // nothing more): the client must already have `message_start` and that delta, which
    // it could not if the proxy waited for more of the stream. No clock involved.
    let events = openai::text_stream("one two three", 3);
    let first_two: usize = events[..2].iter().map(String::len).sum();
    let provider =
        FakeProvider::start(move |_| Reply::sse(events.clone()).stall_after_body_bytes(first_two))
            .await;
    let proxy = proxy_for(&provider);
    let mut r = post_messages(&proxy, &messages_body(true)).await;
    assert_eq!(r.status(), 200);
    let mut seen = String::new();
    while !(seen.contains("message_start") && seen.contains("text_delta")) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk())
            .await
            .unwrap_or_else(|_| panic!("the first events did not arrive; got:\n{seen}"))
            .unwrap()
            .expect("the stream ended though the provider stalls");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"one "), "{seen}");
    assert!(!seen.contains("three"), "{seen}");
    drop(r);
    assert_provider_saw_the_close(&provider).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_errors_become_anthropic_errors() {
    let provider = FakeProvider::start(|req| {
        let body = req.json();
        let status: u16 = body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        match status {
            429 => Reply::json(
                429,
                openai::error_body(
                    "Rate limit reached",
                    "rate_limit_error",
                    "rate_limit_exceeded",
                ),
            )
            .header("retry-after", "7"),
            502 => Reply::text(502, "text/html", "<html>bad gateway</html>"),
            400 => Reply::json(
                400,
                openai::error_body(
                    "This model's maximum context length is 65536 tokens",
                    "invalid_request_error",
                    "context_length_exceeded",
                ),
            ),
            s => Reply::json(s, openai::error_body("provider says no", "error", None)),
        }
    })
    .await;
    let proxy = proxy_for(&provider);
    for (status, kind) in [
        (400u16, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (408, "timeout_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
    ] {
        for stream in [false, true] {
            let mut body = messages_body(stream);
            body["messages"][0]["content"] = json!(status.to_string());
            let r = post_messages(&proxy, &body).await;
            assert_eq!(r.status(), status, "status {status} stream {stream}");
            assert_eq!(r.headers()["content-type"], "application/json");
            if status == 429 {
                assert_eq!(r.headers()["retry-after"], "7");
            }
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], kind, "status {status}");
            let message = v["error"]["message"].as_str().unwrap();
            assert!(!message.is_empty());
            if status == 400 {
                assert!(message.starts_with("prompt is too long"), "{message}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn adapter_with_unset_env_var_answers_503_naming_it() {
    let provider = text_provider().await;
    let yaml = adapter_yaml(&provider.base_url(), &[KEY], "")
        .replace(PROVIDER_KEY, "${FLEXIPROXY_TEST_SURELY_UNSET_VAR}");
    let proxy = Proxy::start(&[("fake", yaml)]);
    let r = post_messages(&proxy, &messages_body(false)).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("FLEXIPROXY_TEST_SURELY_UNSET_VAR")
    );
    assert_eq!(provider.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_400_and_the_proxy_keeps_serving() {
    let provider = text_provider().await;
    let proxy = proxy_for(&provider);
    for bad in [
        "{not json",
        "",
        "{\"model\":5,\"messages\":[]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}",
    ] {
        let r = client()
            .post(proxy.url("/v1/messages"))
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    assert_eq!(
        post_messages(&proxy, &messages_body(false)).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_get_413() {
    let provider = text_provider().await;
    let proxy = Proxy::start_with(
        "limits:\n  max_request_body: 4096\n",
        &[("fake", adapter_yaml(&provider.base_url(), &[KEY], ""))],
    );
    let mut body = messages_body(false);
    body["messages"][0]["content"] = json!("x".repeat(10_000));
    let r = post_messages(&proxy, &body).await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "request_too_large");
    // Without a content-length (chunked upload), the limit is enforced while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(serde_json::to_vec(&body).unwrap())];
    let r = client()
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", KEY)
        .body(reqwest::Body::wrap_stream(futures_stream(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        post_messages(&proxy, &messages_body(false)).await.status(),
        200
    );
}

fn futures_stream(
    items: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    tokio_stream::iter(items)
}

#[tokio::test(flavor = "multi_thread")]
async fn count_tokens_and_models_are_local() {
    let provider = text_provider().await;
    let proxy = proxy_for(&provider);
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/claude_code_request.json")).unwrap();
    let r = client()
        .post(proxy.url("/v1/messages/count_tokens?beta=true"))
        .header("x-api-key", KEY)
        .json(&fixture)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens = r.json::<Value>().await.unwrap()["input_tokens"]
        .as_u64()
        .unwrap();
    // A ~75 KB request of English and JSON is roughly 15–25 thousand tokens.
    assert!((8_000..40_000).contains(&tokens), "{tokens}");

    let r = client()
        .get(proxy.url("/v1/models"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["type"] == "model")
    );
    assert_eq!(provider.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_sized_request_round_trips() {
    let provider = text_provider().await;
    let proxy = proxy_for(&provider);
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/claude_code_request.json")).unwrap();
    let r = post_messages(&proxy, &fixture).await;
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    check_stream(&body).unwrap();
    let seen = provider.wait_for_requests(1, DEADLINE).await;
    let sent = seen[0].json();
    assert!(
        !seen[0].chunked,
        "a body above Pingora's 64 KiB replay buffer still goes with its length"
    );
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert!(sent["tools"].as_array().unwrap().len() >= 20);
    let text = seen[0].body_text();
    assert!(!text.contains("cache_control") && !text.contains("x-anthropic-billing-header"));
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_mid_stream_ends_with_an_error_event() {
    let provider = FakeProvider::start(|_| {
        Reply::sse(openai::text_stream(
            "this will be cut off somewhere in the middle",
            8,
        ))
        .reset_after_body_bytes(300)
    })
    .await;
    let proxy = proxy_for(&provider);
    let frames = streamed_frames(&proxy).await;
    let last = frames.last().unwrap();
    assert_eq!(last.event, "error");
    assert_eq!(last.data["error"]["type"], "api_error");
    // The same cut-off answer to a non-streaming request: it is read whole before anything is
    // sent, so the client gets a clean error instead of a 200 with a broken body.
    let r = post_messages(&proxy, &messages_body(false)).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "api_error");
}

/// A streaming request's answer: 200 and a well-formed Anthropic stream, as frames.
async fn streamed_frames(proxy: &Proxy) -> Vec<flexiproxy::protocol::stream_check::Frame> {
    let r = post_messages(proxy, &messages_body(true)).await;
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    check_stream(&body).unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&body)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_stream_still_delivers_every_event_read_before_the_break() {
    // The role event and six text deltas, then a malformed chunk, all in one write: the proxy
    // reads them together and gathers them into one write to the client. Everything read
    // before the break must reach the client, then the error that ends its stream.
    let pieces = ["one ", "two ", "three ", "four ", "five ", "six "];
    let mut raw = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    for event in &openai::text_stream_from_pieces(&pieces)[..=pieces.len()] {
        raw += &format!("{:x}\r\n{event}\r\n", event.len());
    }
    raw += "zz\r\nnot a chunk";
    let provider = FakeProvider::start(move |_| Reply::garbage(raw.clone())).await;
    let proxy = proxy_for(&provider);
    let frames = streamed_frames(&proxy).await;
    assert_eq!(frames.last().unwrap().event, "error");
    let text: String = frames
        .iter()
        .filter(|f| f.event == "content_block_delta")
        .filter_map(|f| f.data["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, pieces.concat());
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_provider_gives_502_api_error() {
    let port = free_port();
    let proxy = Proxy::start(&[(
        "fake",
        adapter_yaml(&format!("http://127.0.0.1:{port}/v1"), &[KEY], ""),
    )]);
    let r = post_messages(&proxy, &messages_body(true)).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "api_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("cannot connect"), "{message}");
    assert!(!message.contains(PROVIDER_KEY));
}
