//! Native search of sources that search themselves behind another protocol
//! (docs/web-search.md, "Native search"): OpenRouter's `openrouter:web_search` server tool
//! and its `url_citation` annotations, DashScope's `enable_search` and `search_info`, and the
//! hosted `web_search` tool of an OpenAI Responses source with its `web_search_call` items.
//! The fake provider answers in each one's shape (OpenRouter's from
//! `test_openrouter_web_search_annotations_stream.yaml`); no search backend is configured,
//! so every result the client sees came from the provider.

use crate::harness::{KEY, Proxy, adapter_yaml, post_messages};
use crate::web_search::{
    QUERY, block_types, codex_request, content_types, events, gemini_search, post_responses,
    search_request,
};
use crate::web_search_limits::log_line;
use flexiproxy_testkit::{FakeProvider, RecordedRequest, Reply, openai, responses};
use serde_json::{Value, json};

const CHANGELOG: &str = "https://docs.aiohttp.org/en/stable/changes.html";
const ANSWER: &str =
    "aiohttp 3.13.2 is the latest release (https://docs.aiohttp.org/en/stable/changes.html).";

/// A proxy without a search backend, on one adapter whose source is `source_lines`.
fn proxy(provider: &FakeProvider, source_lines: &str) -> Proxy {
    Proxy::start(&[(
        "native",
        adapter_yaml(&provider.base_url(), &[KEY], source_lines),
    )])
}

/// OpenRouter's answer after its web search: the text, `url_citation` annotations (nested,
/// with the page content) and the search in its usage.
fn openrouter_answer() -> Value {
    let mut answer = openai::chat_completion(ANSWER);
    answer["choices"][0]["message"]["annotations"] = json!([
        {"type": "url_citation", "url_citation": {"url": CHANGELOG,
         "title": "Changelog - aiohttp documentation", "start_index": 0, "end_index": 0,
         "content": "# Changelog\n\n3.13.2 (2025-10-28): bug fixes"}},
        {"type": "url_citation", "url_citation": {"url": "https://pypi.org/project/aiohttp/",
         "title": "", "start_index": 0, "end_index": 0, "content": "Async http client/server"}}
    ]);
    answer["usage"]["server_tool_use_details"] =
        json!({"web_search_requests": 1, "tool_calls_requested": 1, "tool_calls_executed": 1});
    answer
}

/// The one request the provider got: no `web_search` function tool, not streamed.
fn asked_once(requests: &[RecordedRequest]) -> Value {
    assert_eq!(requests.len(), 1, "one call: the provider searches itself");
    let body = requests[0].json();
    let gateways = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["function"]["name"] == "web_search" || t["name"] == "web_search")
        .count();
    assert_eq!(gateways, 0, "not the gateway's function tool: {body}");
    assert_ne!(body["stream"], json!(true), "{body}");
    body
}

/// Claude Code's search answered from the provider's own search.
fn assert_anthropic_blocks(answer: &Value) {
    assert_eq!(
        content_types(answer),
        ["server_tool_use", "web_search_tool_result", "text"],
        "{answer}"
    );
    let content = &answer["content"];
    assert_eq!(content[0]["input"]["query"], QUERY, "the client's question");
    assert_eq!(content[1]["tool_use_id"], content[0]["id"]);
    assert_eq!(content[1]["content"][0]["url"], CHANGELOG);
    assert_eq!(
        content[1]["content"][0]["title"],
        "Changelog - aiohttp documentation"
    );
    assert_eq!(
        content[1]["content"][1]["title"], "https://pypi.org/project/aiohttp/",
        "an untitled result is named by its URL"
    );
    assert_eq!(content[2]["text"], ANSWER);
    assert_eq!(content[2]["citations"][0]["url"], CHANGELOG);
}

#[tokio::test(flavor = "multi_thread")]
async fn openrouter_searches_with_its_server_tool_and_its_annotations_become_search_blocks() {
    let provider = FakeProvider::start(|_| Reply::json(200, openrouter_answer())).await;
    let proxy = proxy(&provider, "preset: openrouter\n");

    let response = post_messages(&proxy, &search_request(false, 3)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_anthropic_blocks(&answer);
    assert_eq!(answer["usage"]["server_tool_use"]["web_search_requests"], 1);
    let body = asked_once(&provider.requests());
    assert_eq!(
        body["tools"],
        json!([{"type": "openrouter:web_search", "parameters": {"max_uses": 3}}])
    );

    // Streamed to Claude Code: the blocks, then the text with its citation.
    let response = post_messages(&proxy, &search_request(true, 3)).await;
    let events = events(&response.text().await.unwrap());
    assert_eq!(
        block_types(&events),
        ["server_tool_use", "web_search_tool_result", "text"]
    );
    assert!(
        events
            .iter()
            .any(|(_, d)| d["delta"]["citation"]["url"] == CHANGELOG),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_ne!(provider.requests()[1].json()["stream"], json!(true));

    // Gemini CLI: grounding from the annotations.
    let answer = gemini_search(&proxy).await;
    let grounding = &answer["candidates"][0]["groundingMetadata"];
    assert_eq!(
        grounding["groundingChunks"][0]["web"]["uri"], CHANGELOG,
        "{answer}"
    );
    assert_eq!(grounding["webSearchQueries"], json!([QUERY]));
    let line = log_line(&proxy, 3);
    assert_eq!(line["web_searches"], 1, "{line}");
    let metrics = proxy.metrics_text().await;
    assert!(
        metrics.contains("flexiproxy_web_searches_total{adapter=\"native\",outcome=\"native\"} 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dashscope_is_asked_with_enable_search_and_its_sources_reach_codex() {
    let provider = FakeProvider::start(|_| {
        let mut answer = openai::chat_completion(ANSWER);
        answer["search_info"] = json!({"search_results": [
            {"index": 1, "title": "Changelog - aiohttp documentation", "url": CHANGELOG,
             "site_name": "aiohttp", "icon": ""}
        ]});
        Reply::json(200, answer)
    })
    .await;
    let proxy = proxy(&provider, "preset: dashscope\n");

    let response = post_responses(&proxy, &codex_request(true, true)).await;
    assert_eq!(response.status(), 200);
    let events = events(&response.text().await.unwrap());
    let completed = &events.last().unwrap().1["response"];
    let output = completed["output"].as_array().unwrap();
    assert_eq!(output[0]["type"], "web_search_call", "{completed}");
    assert_eq!(
        output[0]["action"]["sources"],
        json!([{"type": "url", "url": CHANGELOG}])
    );
    assert_eq!(output[1]["content"][0]["text"], ANSWER);
    assert_eq!(output[1]["content"][0]["annotations"][0]["url"], CHANGELOG);
    let body = asked_once(&provider.requests());
    assert_eq!(body["enable_search"], true, "{body}");
    assert_eq!(body["search_options"]["enable_source"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_responses_source_runs_its_hosted_search_for_claude_code() {
    let provider = FakeProvider::start(|_| {
        let mut answer = responses::text_response(ANSWER);
        let output = answer["output"].as_array_mut().unwrap();
        output[0]["content"][0]["annotations"] = json!([{"type": "url_citation",
            "start_index": 38, "end_index": 85, "url": CHANGELOG,
            "title": "Changelog - aiohttp documentation"}]);
        output.insert(
            0,
            json!({"type": "web_search_call", "id": "ws_1", "status": "completed",
                   "action": {"type": "search", "query": "aiohttp release",
                              "sources": [{"type": "url", "url": CHANGELOG}]}}),
        );
        Reply::json(200, answer)
    })
    .await;
    let proxy = proxy(&provider, "preset: openai\nprotocol: responses\n");

    let response = post_messages(&proxy, &search_request(false, 3)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let content = answer["content"].as_array().unwrap();
    assert_eq!(
        content[0]["input"]["query"], "aiohttp release",
        "the provider's query"
    );
    assert_eq!(content[1]["content"][0]["url"], CHANGELOG, "{answer}");
    assert_eq!(
        content[1]["content"][0]["title"],
        "Changelog - aiohttp documentation"
    );
    assert_eq!(content[2]["citations"][0]["url"], CHANGELOG);
    let requests = provider.requests();
    assert_eq!(requests[0].path, "/v1/responses");
    assert_eq!(
        asked_once(&requests)["tools"],
        json!([{"type": "web_search"}])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_that_cannot_search_and_off_get_no_native_search() {
    let provider = FakeProvider::start(|_| Reply::json(200, openai::chat_completion("ok"))).await;
    // qwen3-coder-plus: DashScope's facts say it has no web search.
    let coder = adapter_yaml(&provider.base_url(), &[KEY], "preset: dashscope\n")
        .replace("model: fake-model", "model: qwen3-coder-plus");
    let off =
        adapter_yaml(&provider.base_url(), &[KEY], "preset: openrouter\n") + "web_search: off\n";
    for yaml in [coder, off] {
        let proxy = Proxy::start(&[("native", yaml)]);
        let answer: Value = post_messages(&proxy, &search_request(false, 3))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["content"][0]["type"], "text", "{answer}");
        let line = log_line(&proxy, 1);
        assert_eq!(
            line["dropped_tools"],
            json!(["web_search_20250305"]),
            "{line}"
        );
    }
    for request in provider.requests() {
        let body = request.json();
        assert!(
            body.get("enable_search").is_none() && body.get("tools").is_none(),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_keys_searches_per_day_the_source_is_not_asked_to_search() {
    let provider = FakeProvider::start(|req: &RecordedRequest| {
        // Without its search asked for, OpenRouter answers from memory.
        if hosted_by_openrouter(&req.json()) {
            Reply::json(200, openrouter_answer())
        } else {
            Reply::json(200, openai::chat_completion("From memory: 3.13."))
        }
    })
    .await;
    let adapter = adapter_yaml(&provider.base_url(), &[KEY], "preset: openrouter\n")
        + "limits:\n  searches_per_day: 1\n";
    let proxy = Proxy::start(&[("native", adapter)]);

    let first: Value = post_messages(&proxy, &search_request(false, 3))
        .await
        .json()
        .await
        .unwrap();
    assert_anthropic_blocks(&first);
    let response = post_messages(&proxy, &search_request(false, 3)).await;
    assert_eq!(response.status(), 200, "the request is answered");
    let second: Value = response.json().await.unwrap();
    assert_eq!(
        content_types(&second),
        ["server_tool_use", "web_search_tool_result", "text"],
        "{second}"
    );
    assert_eq!(
        second["content"][1]["content"],
        json!({"type": "web_search_tool_result_error", "error_code": "too_many_requests"})
    );
    assert_eq!(second["content"][2]["text"], "From memory: 3.13.");
    assert_eq!(second["usage"]["server_tool_use"]["web_search_requests"], 0);
    let requests = provider.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        !hosted_by_openrouter(&requests[1].json()),
        "not asked to search"
    );
    assert!(log_line(&proxy, 2).get("web_searches").is_none());
}

/// Whether a request asks OpenRouter for its web search.
fn hosted_by_openrouter(body: &Value) -> bool {
    body["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["type"] == "openrouter:web_search"))
}
