//! The gateway's searches against a key's `limits.searches_per_day` (docs/web-search.md): a
//! search past the day's is answered as the client's search error and never reaches the
//! backend, while the request itself is answered; each key counts its own (or the adapter's,
//! `per_key: false`), in-process and through Redis across instances.

use crate::harness::{KEY, Proxy, adapter_yaml, post_messages_as, sha256_hex};
use crate::web_search::{
    QUERY, codex_request, events, gemini_search, post_responses, search_request,
    searching_provider, searxng,
};
use flexiproxy_testkit::FakeProvider;
use flexiproxy_testkit::services::RedisServer;
use serde_json::{Value, json};
use std::time::Duration;

const OTHER_KEY: &str = "fp-test-key-0002";

/// An adapter on `provider` with two keys and `limits` (indented lines under `limits:`).
fn limited_adapter(provider: &FakeProvider, limits: &str) -> String {
    let mut yaml = adapter_yaml(&provider.base_url(), &[KEY, OTHER_KEY], "");
    yaml.push_str("limits:\n");
    yaml.push_str(limits);
    yaml
}

fn proxy(backend: &FakeProvider, server_extra: &str, adapter: String) -> Proxy {
    Proxy::start_with(
        &format!(
            "web_search:\n  backend: searxng\n  url: {}\n  timeout: 2s\n{server_extra}",
            backend.origin()
        ),
        &[("ws", adapter)],
    )
}

/// Claude Code's search request with `key`; the answer's JSON.
async fn search_as(proxy: &Proxy, key: &str) -> Value {
    let response = post_messages_as(proxy, key, &search_request(false, 5)).await;
    assert_eq!(
        response.status(),
        200,
        "the request is answered, limit or not"
    );
    response.json().await.unwrap()
}

/// The search's result block: its results, or the error.
fn result_of(answer: &Value) -> &Value {
    &answer["content"][1]["content"]
}

fn refused() -> Value {
    json!({"type": "web_search_tool_result_error", "error_code": "too_many_requests"})
}

/// The access log's `n`th line, once written.
pub(crate) fn log_line(proxy: &Proxy, n: usize) -> Value {
    crate::harness::wait_until(Duration::from_secs(5), "the access log line", || {
        proxy.access_log().lines().count() >= n
    });
    let log = proxy.access_log();
    serde_json::from_str(log.lines().nth(n - 1).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_search_past_the_keys_day_is_a_search_error_not_a_failed_request() {
    let backend = searxng().await;
    let provider = searching_provider().await;
    let proxy = proxy(
        &backend,
        "",
        limited_adapter(&provider, "  searches_per_day: 2\n"),
    );

    for _ in 0..2 {
        let answer = search_as(&proxy, KEY).await;
        assert_eq!(
            result_of(&answer)[0]["type"],
            "web_search_result",
            "{answer}"
        );
    }
    assert_eq!(backend.request_count(), 2);

    // The third search of the day: refused, the model told so, the request answered.
    let before = provider.request_count();
    let answer = search_as(&proxy, KEY).await;
    assert_eq!(result_of(&answer), &refused(), "{answer}");
    assert_eq!(answer["content"][0]["input"]["query"], QUERY);
    assert_eq!(answer["content"][2]["type"], "text", "{answer}");
    assert_eq!(answer["stop_reason"], "end_turn");
    assert_eq!(
        answer["usage"]["server_tool_use"]["web_search_requests"], 0,
        "a refused search is no search request: {answer}"
    );
    assert_eq!(backend.request_count(), 2, "the backend is not asked");
    let requests = provider.requests();
    assert_eq!(
        requests.len(),
        before + 2,
        "one call to search, one to answer"
    );
    let told = requests.last().unwrap().body_text();
    assert!(
        told.contains("Web search error: too_many_requests"),
        "{told}"
    );
    let line = log_line(&proxy, 3);
    assert!(line.get("web_searches").is_none(), "{line}");
    assert_eq!(line["status"], 200, "{line}");
    let metrics = proxy.metrics_text().await;
    for counted in [
        "flexiproxy_web_searches_total{adapter=\"ws\",outcome=\"too_many_requests\"} 1",
        "flexiproxy_web_searches_total{adapter=\"ws\",outcome=\"ok\"} 2",
        "flexiproxy_rate_limited_total{adapter=\"ws\",limit=\"searches_per_day\"} 1",
    ] {
        assert!(metrics.contains(counted), "{counted}: {metrics}");
    }

    // Gemini and Responses clients of the same key: their own answers, no backend call.
    let answer = gemini_search(&proxy).await;
    let grounding = &answer["candidates"][0]["groundingMetadata"];
    assert_eq!(grounding["webSearchQueries"], json!([QUERY]), "{answer}");
    assert_eq!(grounding["groundingChunks"], json!([]), "{answer}");
    let response = post_responses(&proxy, &codex_request(true, true)).await;
    assert_eq!(response.status(), 200);
    let stream = events(&response.text().await.unwrap());
    let (kind, done) = stream.last().unwrap();
    assert_eq!(kind, "response.completed", "{stream:?}");
    let call = &done["response"]["output"][0];
    assert_eq!(call["type"], "web_search_call", "{done}");
    assert_eq!(call["action"]["sources"], json!([]), "{done}");
    assert_eq!(backend.request_count(), 2);

    // Another key has a day of its own.
    let answer = search_as(&proxy, OTHER_KEY).await;
    assert_eq!(
        result_of(&answer)[0]["type"],
        "web_search_result",
        "{answer}"
    );
    assert_eq!(backend.request_count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keys_own_limit_and_an_adapter_wide_one() {
    let backend = searxng().await;
    let provider = searching_provider().await;
    // The adapter's 1 search a day shared by its keys; the second key has its own 0.
    let mut adapter = limited_adapter(&provider, "  searches_per_day: 1\n  per_key: false\n");
    adapter = adapter.replace(
        &format!("  - sha256: {}\n    label: test\n", sha256_hex(OTHER_KEY)),
        &format!(
            "  - sha256: {}\n    label: test\n    limits:\n      searches_per_day: 0\n",
            sha256_hex(OTHER_KEY)
        ),
    );
    let proxy = proxy(&backend, "", adapter);

    assert_eq!(result_of(&search_as(&proxy, OTHER_KEY).await), &refused());
    assert_eq!(backend.request_count(), 0);
    let answer = search_as(&proxy, KEY).await;
    assert_eq!(
        result_of(&answer)[0]["type"],
        "web_search_result",
        "{answer}"
    );
    assert_eq!(result_of(&search_as(&proxy, KEY).await), &refused());
    assert_eq!(backend.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_sharing_redis_share_the_keys_day() {
    let redis = RedisServer::start();
    let backend = searxng().await;
    let provider = searching_provider().await;
    let shared = format!(
        "limits:\n  backend: redis\nredis:\n  url: {}\n  timeout: 2s\n",
        redis.url()
    );
    let limits = "  searches_per_day: 1\n";
    let first = proxy(&backend, &shared, limited_adapter(&provider, limits));
    let second = proxy(&backend, &shared, limited_adapter(&provider, limits));

    let answer = search_as(&first, KEY).await;
    assert_eq!(
        result_of(&answer)[0]["type"],
        "web_search_result",
        "{answer}"
    );
    assert_eq!(result_of(&search_as(&second, KEY).await), &refused());
    assert_eq!(result_of(&search_as(&first, KEY).await), &refused());
    assert_eq!(backend.request_count(), 1);
}
