//! Translation fidelity across provider quirks, data-driven: each OpenAI stream in
//! `tests/fixtures/streams/` (one quirk each, see make_streams.py) goes through the running
//! proxy, written by the provider in awkward read sizes, and must come out as exactly the
//! expected Anthropic message — checked with our stream checker and with the official SDK's
//! own stream accumulator.

use crate::clients::anthropic_sdk;
use crate::harness::*;
use flexiproxy::protocol::stream_check::{accumulate, check_stream};
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

fn fixtures() -> Vec<(String, Vec<u8>, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/streams");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("sse") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let sse = std::fs::read(&path).unwrap();
        let expected: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("{name}.expected.json"))).unwrap(),
        )
        .unwrap();
        out.push((name, sse, expected));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 15, "fixtures missing: {}", out.len());
    out
}

/// A provider that streams the fixture named by the request's user message, in 5-byte reads.
async fn fixture_provider() -> FakeProvider {
    let all = fixtures();
    FakeProvider::start(move |req| {
        let body = req.json();
        let name = body["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        match all.iter().find(|(n, _, _)| *n == name) {
            Some((_, sse, _)) => Reply::sse_bytes(200, sse.clone()).split_writes(vec![5, 3, 11]),
            None => Reply::text(404, "text/plain", "no such fixture"),
        }
    })
    .await
}

/// Compares a final Anthropic message (ours or the SDK's) with a fixture's expectation.
fn assert_matches(name: &str, message: &Value, expected: &Value) {
    let got = message["content"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no content in {message}"));
    let want = expected["content"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{name}: blocks {message}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g["type"], w["type"], "{name}");
        match w["type"].as_str().unwrap() {
            "text" => assert_eq!(g["text"], w["text"], "{name}"),
            "thinking" => {
                assert_eq!(g["thinking"], w["thinking"], "{name}");
                assert!(
                    !g["signature"].as_str().unwrap_or("").is_empty(),
                    "{name}: unsigned thinking"
                );
            }
            "tool_use" => {
                assert_eq!(g["id"], w["id"], "{name}");
                assert_eq!(g["name"], w["name"], "{name}");
                assert_eq!(g["input"], w["input"], "{name}");
            }
            other => panic!("{name}: unexpected block {other}"),
        }
    }
    assert_eq!(message["stop_reason"], expected["stop_reason"], "{name}");
    if let Some(usage) = expected.get("usage") {
        for (k, v) in usage.as_object().unwrap() {
            assert_eq!(&message["usage"][k], v, "{name}: usage.{k}");
        }
    }
}

fn request_for(name: &str) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": name}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn every_stream_fixture_translates_exactly() {
    let provider = fixture_provider().await;
    let proxy = Proxy::start(&[("fx", adapter_yaml(&provider.base_url(), &[KEY], ""))]);
    for (name, _, expected) in fixtures() {
        let r = post_messages(&proxy, &request_for(&name)).await;
        assert_eq!(r.status(), 200, "{name}");
        let body = r.bytes().await.unwrap();
        let frames = check_stream(&body)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", String::from_utf8_lossy(&body)));
        assert_matches(&name, &accumulate(&frames), &expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_sdk_accumulates_every_stream_fixture() {
    let provider = fixture_provider().await;
    let proxy = Proxy::start(&[("fx", adapter_yaml(&provider.base_url(), &[KEY], ""))]);
    let all = fixtures();
    let requests: Vec<Value> = all.iter().map(|(n, _, _)| request_for(n)).collect();
    let base = proxy.url("");
    let out = tokio::task::spawn_blocking(move || {
        anthropic_sdk(&base, KEY, "stream-many", &json!(requests))
    })
    .await
    .unwrap();
    let results = out.as_array().unwrap();
    assert_eq!(results.len(), all.len());
    for ((name, _, expected), result) in all.iter().zip(results) {
        assert!(result.get("error").is_none(), "{name}: {result}");
        assert_matches(name, &result["message"], expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_mid_stream_closes_the_provider_connection() {
    let provider = FakeProvider::start(|_| {
        let events: Vec<String> = (0..200)
            .map(|i| format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tick {i} \"}}}}]}}\n\n"))
            .collect();
        Reply::sse(events).delay_between_writes(Duration::from_millis(50))
    })
    .await;
    let proxy = Proxy::start(&[("p", adapter_yaml(&provider.base_url(), &[KEY], ""))]);
    let mut r = post_messages(&proxy, &messages_body(true)).await;
    let first = r.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    drop(r);
    // 200 events × 50 ms would take 10 s; the provider must see the close long before.
    assert_provider_saw_the_close(&provider).await;
    // And the proxy is fine.
    assert_healthy(&proxy).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_giving_up_on_a_non_streaming_request_closes_the_provider_connection() {
    // The provider takes 10 s to answer; the client gives up after a moment. The proxy reads
    // non-streaming answers whole before replying (src/proxy/direct.rs), and must still notice.
    let provider = FakeProvider::start(|_| {
        Reply::json(200, openai::chat_completion("too late"))
            .delay_before_headers(Duration::from_secs(10))
    })
    .await;
    let proxy = Proxy::start(&[("p", adapter_yaml(&provider.base_url(), &[KEY], ""))]);
    let body = messages_body(false);
    let request = post_messages(&proxy, &body);
    let gave_up = tokio::time::timeout(Duration::from_millis(500), request).await;
    assert!(gave_up.is_err(), "the provider answered early");
    provider.wait_for_requests(1, Duration::from_secs(5)).await;
    assert_provider_saw_the_close(&provider).await;
    assert_healthy(&proxy).await;
}

/// The replay tool (`fake-provider --replay`, `docs/replay.md`) serves cassettes of our own in
/// the three recorded formats, in random read splits, and the proxy reads them as it reads
/// the live providers.
#[tokio::test(flavor = "multi_thread")]
async fn recorded_cassettes_replay_through_the_proxy() {
    use flexiproxy_testkit::replay;
    let dir = tempfile::tempdir().unwrap();
    // VCR.py (pydantic-ai's recorder): Mistral's thinking parts, keep-alive comment first.
    let vcr_py = "interactions:\n- request:\n    method: POST\n    uri: https://api.mistral.ai/v1/chat/completions\n  response:\n    body:\n      string: |+\n        : keep-alive\n\n        data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":[{\"type\":\"thinking\",\"thinking\":[{\"type\":\"text\",\"text\":\"Think.\"}]}]}}]}\n\n        data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Grüße\"},\"finish_reason\":\"stop\"}]}\n\n        data: [DONE]\n\n    headers:\n      content-type:\n      - text/event-stream\n    status:\n      code: 200\n      message: OK\nversion: 1\n";
    // go-vcr v2 (fantasy, ai-gateway): an error inside a chunk that still has choices.
    let go_vcr = "---\nversion: 2\ninteractions:\n- id: 0\n  request:\n    url: https://openrouter.ai/api/v1/chat/completions\n    method: POST\n  response:\n    body: \"data: {\\\"choices\\\":[{\\\"index\\\":0,\\\"delta\\\":{\\\"content\\\":\\\"a\\\"},\\\"finish_reason\\\":\\\"length\\\"}]}\\n\\ndata: {\\\"error\\\":{\\\"code\\\":400,\\\"message\\\":\\\"Token limit reached\\\"},\\\"choices\\\":[{\\\"index\\\":0,\\\"delta\\\":{\\\"content\\\":\\\"\\\"}}]}\\n\\ndata: [DONE]\\n\\n\"\n    headers:\n      Content-Type:\n      - text/event-stream\n    status: 200 OK\n    code: 200\n";
    // One payload per line (vercel/ai's chunk files): the Responses API's quota error.
    let chunks = "{\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\"}}\n{\"type\":\"error\",\"error\":{\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\",\"message\":\"You exceeded your current quota\"}}\n";
    let cases = [
        ("mistral.yaml", vcr_py, "", "thinking_delta", "Grüße"),
        (
            "openrouter.yaml",
            go_vcr,
            "",
            "event: error",
            "Token limit reached",
        ),
        (
            "quota.chunks.txt",
            chunks,
            "protocol: responses",
            "billing_error",
            "You exceeded",
        ),
    ];
    for (name, text, source, first, second) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let answers = replay::load(&path).unwrap();
        let provider = FakeProvider::start(replay::handler(answers, 42)).await;
        let proxy = Proxy::start(&[("rp", adapter_yaml(&provider.base_url(), &[KEY], source))]);
        for _ in 0..3 {
            let r = post_messages(&proxy, &request_for("replay")).await;
            assert_eq!(r.status(), 200, "{name}");
            let body = String::from_utf8(r.bytes().await.unwrap().to_vec()).unwrap();
            assert!(
                body.contains(first) && body.contains(second),
                "{name}: {body}"
            );
        }
        assert_eq!(
            provider.request_count(),
            3,
            "{name}: one answer per request, again and again"
        );
    }
}
