//! The gateway's web search (docs/web-search.md): Claude Code's search request (a
//! `web_search_20250305` server tool) on an OpenAI-compatible source that cannot search. The
//! fake provider calls the `web_search` function tool, then answers from the tool's result;
//! a fake SearXNG over real HTTP answers the searches. Each test checks the three ends: the
//! backend saw the query, the provider saw the results, the client got Anthropic's blocks.

use crate::harness::{PROVIDER_KEY, Proxy, adapter_yaml, post_messages};
use flexiproxy_testkit::{FakeProvider, RecordedRequest, Reply, openai};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) const QUERY: &str = "aiohttp latest release";

/// The query of a SearXNG request (`/search?q=…&format=json`).
fn query_of(request: &RecordedRequest) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://backend{}", request.path)).ok()?;
    assert_eq!(url.path(), "/search");
    assert!(
        url.query_pairs().any(|(k, v)| k == "format" && v == "json"),
        "{}",
        request.path
    );
    url.query_pairs()
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.into_owned())
}

/// A SearXNG that finds two pages for any query (one from a domain tests may block).
pub(crate) async fn searxng() -> FakeProvider {
    FakeProvider::start(|req| {
        let q = query_of(req).unwrap_or_default();
        Reply::json(
            200,
            json!({"query": q, "number_of_results": 2, "results": [
                {"url": "https://docs.aiohttp.org/en/stable/changes.html",
                 "title": "Changelog - aiohttp documentation",
                 "content": "aiohttp 3.13.2 (2025-10-28): bug fixes for the client and the web server.",
                 "engine": "duckduckgo", "publishedDate": "2025-10-28T00:00:00"},
                {"url": "https://pypi.org/project/aiohttp/", "title": "aiohttp · PyPI",
                 "content": "Async http client/server framework (asyncio)", "engine": "bing"}
            ], "answers": [], "suggestions": [], "unresponsive_engines": []}),
        )
    })
    .await
}

/// Whether a Chat request already carries a tool result.
fn has_tool_result(body: &Value) -> bool {
    body["messages"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"))
}

/// A provider that searches once, then answers citing the changelog.
pub(crate) async fn searching_provider() -> FakeProvider {
    FakeProvider::start(|req| {
        let body = req.json();
        if has_tool_result(&body) {
            Reply::json(
                200,
                openai::chat_completion(
                    "The latest aiohttp release is 3.13.2 ([changelog](https://docs.aiohttp.org/en/stable/changes.html)).",
                ),
            )
        } else {
            let args = json!({ "query": QUERY }).to_string();
            Reply::json(
                200,
                openai::tool_call_completion(&[("call_ws_1", "web_search", &args)]),
            )
        }
    })
    .await
}

fn proxy_with_search(provider: &FakeProvider, backend_url: &str) -> Proxy {
    Proxy::start_with(
        &format!("web_search:\n  backend: searxng\n  url: {backend_url}\n  timeout: 2s\n"),
        &[(
            "ws",
            adapter_yaml(&provider.base_url(), &[crate::harness::KEY], ""),
        )],
    )
}

/// Claude Code's search request (`websearch-claude-code-2-search-subrequest.json`).
pub(crate) fn search_request(stream: bool, max_uses: u32) -> Value {
    json!({
        "model": "claude-opus-5-5",
        "messages": [{"role": "user", "content": [{"type": "text",
            "text": format!("Perform a web search for the query: {QUERY}")}]}],
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332.b11; cc_entrypoint=sdk-cli;"},
            {"type": "text", "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK."},
            {"type": "text", "text": "You run a web search for another Claude model, which is waiting on the result and can search again. Search once, then reply with a brief summary of the results."}
        ],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": max_uses}],
        "tool_choice": {"type": "auto"},
        "max_tokens": 32000,
        "stream": stream
    })
}

/// The provider's first request offered `web_search(query)`; its second carried the
/// backend's results as the tool's result.
fn assert_provider_searched(requests: &[RecordedRequest]) {
    assert_eq!(requests.len(), 2, "one call to search, one to answer");
    let first = requests[0].json();
    let tool = first["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["function"]["name"] == "web_search"))
        .unwrap_or_else(|| panic!("no web_search tool: {first}"));
    assert_eq!(tool["function"]["parameters"]["required"], json!(["query"]));
    assert!(!has_tool_result(&first));
    let second = requests[1].json();
    let result = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap_or_else(|| panic!("no tool result: {second}"));
    assert_eq!(result["tool_call_id"], "call_ws_1");
    let text = result["content"].to_string();
    assert!(text.contains("Changelog - aiohttp documentation"), "{text}");
    assert!(
        text.contains("bug fixes for the client"),
        "the snippet reaches the model: {text}"
    );
    assert!(text.contains("https://pypi.org/project/aiohttp/"), "{text}");
}

async fn assert_backend_saw_the_query(backend: &FakeProvider) {
    let seen = backend.wait_for_requests(1, Duration::from_secs(5)).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(query_of(&seen[0]).as_deref(), Some(QUERY));
    let raw = format!("{:?}", seen[0].headers);
    assert!(
        !raw.contains(PROVIDER_KEY),
        "the provider key never reaches the backend"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_codes_search_on_a_chat_source_is_run_by_the_gateway() {
    let backend = searxng().await;
    let provider = searching_provider().await;
    let proxy = proxy_with_search(&provider, &backend.origin());

    let response = post_messages(&proxy, &search_request(false, 8)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();

    assert_backend_saw_the_query(&backend).await;
    assert_provider_searched(&provider.requests());
    assert_ne!(
        provider.requests()[0].json()["stream"],
        json!(true),
        "a JSON client: its provider calls are not streamed"
    );
    assert_eq!(
        content_types(&answer),
        ["server_tool_use", "web_search_tool_result", "text"],
        "{answer}"
    );
    let call = &answer["content"][0];
    assert_eq!(call["name"], "web_search");
    assert_eq!(call["input"]["query"], QUERY);
    let id = call["id"].as_str().unwrap();
    assert!(id.starts_with("srvtoolu_"), "{id}");
    let result = &answer["content"][1];
    assert_eq!(result["tool_use_id"], id);
    assert_eq!(result["content"][0]["type"], "web_search_result");
    assert_eq!(
        result["content"][0]["title"],
        "Changelog - aiohttp documentation"
    );
    assert_eq!(
        result["content"][1]["url"],
        "https://pypi.org/project/aiohttp/"
    );
    let text = &answer["content"][2];
    assert!(text["text"].as_str().unwrap().contains("3.13.2"));
    assert_eq!(
        text["citations"][0]["url"],
        "https://docs.aiohttp.org/en/stable/changes.html"
    );
    assert_eq!(answer["usage"]["server_tool_use"]["web_search_requests"], 1);
    assert_eq!(answer["stop_reason"], "end_turn");
    assert_eq!(answer["model"], "claude-opus-5-5");
    // The access log counts the search (and does not call the tool dropped).
    let line = wait_for_log_line(&proxy);
    assert_eq!(line["web_searches"], 1, "{line}");
    assert!(line.get("dropped_tools").is_none(), "{line}");
}

/// The access log's one request line, once written.
fn wait_for_log_line(proxy: &Proxy) -> Value {
    crate::harness::wait_until(Duration::from_secs(5), "the access log line", || {
        !proxy.access_log().trim().is_empty()
    });
    serde_json::from_str(proxy.access_log().lines().last().unwrap()).unwrap()
}

/// Server-sent events as (event, data).
pub(crate) fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|frame| {
            let mut event = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap());
                }
            }
            Some((event?, data?))
        })
        .collect()
}

/// The types of an Anthropic message's content blocks, in order.
pub(crate) fn content_types(message: &Value) -> Vec<&str> {
    message["content"]
        .as_array()
        .unwrap_or_else(|| panic!("no content: {message}"))
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect()
}

/// The types of the content blocks an Anthropic stream starts, in order.
pub(crate) fn block_types(events: &[(String, Value)]) -> Vec<&str> {
    events
        .iter()
        .filter(|(e, _)| e == "content_block_start")
        .map(|(_, d)| d["content_block"]["type"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_client_gets_the_search_blocks_in_claude_codes_order() {
    let backend = searxng().await;
    let provider = searching_provider().await;
    let proxy = proxy_with_search(&provider, &backend.origin());

    let response = post_messages(&proxy, &search_request(true, 8)).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = response.text().await.unwrap();
    assert_backend_saw_the_query(&backend).await;
    assert_provider_searched(&provider.requests());

    let events = events(&body);
    assert_eq!(events.first().map(|e| e.0.as_str()), Some("message_start"));
    assert_eq!(events.last().map(|e| e.0.as_str()), Some("message_stop"));
    let blocks: Vec<&Value> = events
        .iter()
        .filter(|(e, _)| e == "content_block_start")
        .map(|(_, d)| &d["content_block"])
        .collect();
    let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["server_tool_use", "web_search_tool_result", "text"],
        "{body}"
    );
    // The query arrives as the server_tool_use block's input delta (the UI shows it).
    let query_delta = events
        .iter()
        .find(|(e, d)| e == "content_block_delta" && d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&query_delta).unwrap()["query"],
        QUERY
    );
    assert_eq!(
        blocks[1]["content"][0]["title"],
        "Changelog - aiohttp documentation"
    );
    assert_eq!(blocks[1]["tool_use_id"], blocks[0]["id"]);
    assert!(body.contains("citations_delta"));
    let text: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert!(text.contains("3.13.2"), "{text}");
    let delta = events
        .iter()
        .find(|(e, _)| e == "message_delta")
        .map(|(_, d)| d)
        .unwrap();
    assert_eq!(delta["usage"]["server_tool_use"]["web_search_requests"], 1);
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    // Every block started is stopped, in order.
    let starts: Vec<u64> = events
        .iter()
        .filter(|(e, _)| e == "content_block_start")
        .map(|(_, d)| d["index"].as_u64().unwrap())
        .collect();
    let stops: Vec<u64> = events
        .iter()
        .filter(|(e, _)| e == "content_block_stop")
        .map(|(_, d)| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(starts, [0, 1, 2]);
    assert_eq!(stops, starts);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_backend_is_a_search_error_not_a_failed_request() {
    let backend = FakeProvider::start(|_| Reply::json(500, json!({"error": "engine down"}))).await;
    let provider = FakeProvider::start(|req| {
        let body = req.json();
        if has_tool_result(&body) {
            Reply::json(
                200,
                openai::chat_completion("The search failed; from memory: 3.13."),
            )
        } else {
            let args = json!({ "query": QUERY }).to_string();
            Reply::json(
                200,
                openai::tool_call_completion(&[("call_ws_1", "web_search", &args)]),
            )
        }
    })
    .await;
    let proxy = proxy_with_search(&provider, &backend.origin());

    let response = post_messages(&proxy, &search_request(false, 8)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(backend.request_count(), 1);
    assert_eq!(
        answer["content"][1]["content"],
        json!({"type": "web_search_tool_result_error", "error_code": "unavailable"}),
        "{answer}"
    );
    let requests = provider.requests();
    assert_eq!(requests.len(), 2);
    let told = requests[1].body_text();
    assert!(told.contains("Web search error: unavailable"), "{told}");
    assert!(
        answer["content"][2]["text"]
            .as_str()
            .unwrap()
            .contains("from memory")
    );
    let metrics = proxy.metrics_text().await;
    assert!(
        metrics.contains("flexiproxy_web_searches_total{adapter=\"ws\",outcome=\"unavailable\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn max_uses_bounds_the_searches_and_then_the_model_must_answer() {
    let backend = searxng().await;
    // A provider that searches whenever it may.
    let provider = FakeProvider::start(|req| {
        let body = req.json();
        if body["tool_choice"] == "none" {
            Reply::json(200, openai::chat_completion("Enough searching."))
        } else {
            let n = body["messages"].as_array().map_or(0, Vec::len);
            let args = json!({ "query": format!("query {n}") }).to_string();
            Reply::json(
                200,
                openai::tool_call_completion(&[(&format!("call_{n}"), "web_search", &args)]),
            )
        }
    })
    .await;
    let proxy = proxy_with_search(&provider, &backend.origin());

    let response = post_messages(&proxy, &search_request(false, 2)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(backend.request_count(), 2, "max_uses: 2");
    let requests = provider.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[2].json()["tool_choice"], "none");
    assert_eq!(answer["usage"]["server_tool_use"]["web_search_requests"], 2);
    let types: Vec<&str> = answer["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "server_tool_use",
            "web_search_tool_result",
            "server_tool_use",
            "web_search_tool_result",
            "text"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_backend_the_tool_is_dropped_as_before() {
    let provider =
        FakeProvider::start(|_| Reply::json(200, openai::chat_completion("No search."))).await;
    let proxy = Proxy::start(&[(
        "ws",
        adapter_yaml(&provider.base_url(), &[crate::harness::KEY], ""),
    )]);
    let response = post_messages(&proxy, &search_request(false, 8)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["content"][0]["type"], "text");
    let sent = provider.requests()[0].json();
    assert!(sent.get("tools").is_none(), "{sent}");
    let line = wait_for_log_line(&proxy);
    assert_eq!(
        line["dropped_tools"],
        json!(["web_search_20250305"]),
        "{line}"
    );
    assert!(line.get("web_searches").is_none(), "{line}");
}

/// Gemini CLI's search request (`websearch-gemini-cli-2-search-subrequest.json`): the query
/// is the only user text, `tools: [{googleSearch: {}}]`, not streamed.
fn gemini_search_request() -> Value {
    json!({
        "contents": [{"parts": [{"text": QUERY}], "role": "user"}],
        "systemInstruction": {"parts": [{"text": "You are Gemini CLI."}]},
        "tools": [{"googleSearch": {}}],
        "generationConfig": {"temperature": 0, "topP": 1}
    })
}

/// Gemini CLI's search request, answered 200; the answer.
pub(crate) async fn gemini_search(proxy: &Proxy) -> Value {
    let response = post_gemini(
        proxy,
        "/v1beta/models/gemini-3-flash-preview:generateContent",
        &gemini_search_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn post_gemini(proxy: &Proxy, path: &str, body: &Value) -> reqwest::Response {
    crate::harness::client()
        .post(proxy.url(path))
        .header("x-goog-api-key", crate::harness::KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The `groundingMetadata` Gemini CLI reads: the query, the results as chunks, supports
/// whose `endIndex` is a UTF-8 byte offset into the text.
fn assert_grounded(answer: &Value) {
    let candidate = &answer["candidates"][0];
    let text: String = candidate["content"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect();
    assert!(text.contains("3.13.2"), "{answer}");
    let grounding = &candidate["groundingMetadata"];
    assert_eq!(grounding["webSearchQueries"], json!([QUERY]), "{answer}");
    assert_eq!(
        grounding["groundingChunks"][0]["web"],
        json!({"uri": "https://docs.aiohttp.org/en/stable/changes.html",
               "title": "Changelog - aiohttp documentation"})
    );
    assert_eq!(
        grounding["groundingChunks"][1]["web"]["title"],
        "aiohttp · PyPI"
    );
    let support = &grounding["groundingSupports"][0];
    let end = support["segment"]["endIndex"].as_u64().unwrap() as usize;
    assert!(end <= text.len() && text.is_char_boundary(end), "{support}");
    assert_eq!(support["segment"]["text"], text[..end]);
    assert_eq!(support["groundingChunkIndices"][0], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_clis_search_on_a_chat_source_gets_grounding_metadata() {
    let backend = searxng().await;
    let provider = searching_provider().await;
    let proxy = proxy_with_search(&provider, &backend.origin());

    let answer = gemini_search(&proxy).await;
    assert_backend_saw_the_query(&backend).await;
    assert_provider_searched(&provider.requests());
    assert_grounded(&answer);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_gemini_client_gets_the_grounded_answer_as_a_chunk() {
    let backend = searxng().await;
    let provider = searching_provider().await;
    let proxy = proxy_with_search(&provider, &backend.origin());

    let response = post_gemini(
        &proxy,
        "/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse",
        &gemini_search_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = response.text().await.unwrap();
    let chunk = body
        .strip_prefix("data: ")
        .and_then(|b| b.strip_suffix("\r\n\r\n"))
        .unwrap_or_else(|| panic!("one SSE chunk: {body:?}"));
    assert_provider_searched(&provider.requests());
    assert_grounded(&serde_json::from_str(chunk).unwrap());
}

/// Codex's turn with live search (`codex --search`): the hosted `web_search` tool next to its
/// own function tools, streamed.
pub(crate) fn codex_request(stream: bool, external_web_access: bool) -> Value {
    json!({
        "model": "gpt-5.5",
        "instructions": "You are Codex.",
        "input": [{"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "What is the latest aiohttp release?"}]}],
        "tools": [
            {"type": "function", "name": "shell", "description": "Runs a command",
             "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}},
            {"type": "web_search", "external_web_access": external_web_access}
        ],
        "tool_choice": "auto",
        "stream": stream
    })
}

pub(crate) async fn post_responses(proxy: &Proxy, body: &Value) -> reqwest::Response {
    crate::harness::client()
        .post(proxy.url("/v1/responses"))
        .bearer_auth(crate::harness::KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A `web_search_call` item as Codex reads it.
fn assert_web_search_call(item: &Value) {
    assert_eq!(item["type"], "web_search_call", "{item}");
    assert_eq!(item["status"], "completed");
    assert!(item["id"].as_str().unwrap().starts_with("ws_"));
    assert_eq!(item["action"]["type"], "search");
    assert_eq!(item["action"]["query"], QUERY);
    assert_eq!(
        item["action"]["sources"][0],
        json!({"type": "url", "url": "https://docs.aiohttp.org/en/stable/changes.html"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn codex_live_search_on_a_chat_source_gets_web_search_call_items() {
    let backend = searxng().await;
    let provider = searching_provider().await;
    let proxy = proxy_with_search(&provider, &backend.origin());

    let response = post_responses(&proxy, &codex_request(true, true)).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert_backend_saw_the_query(&backend).await;
    let requests = provider.requests();
    assert_provider_searched(&requests);
    let tools = requests[0].json()["tools"].to_string();
    assert!(
        tools.contains("\"shell\""),
        "Codex's own tools still reach the provider: {tools}"
    );

    let events = events(&body);
    let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"response.created"), "{body}");
    assert_eq!(kinds.last(), Some(&"response.completed"));
    // The search shows up (Codex prints `web search:` on added and done) before the answer.
    let added = kinds
        .iter()
        .position(|k| *k == "response.output_item.added")
        .unwrap();
    assert_eq!(events[added].1["item"]["type"], "web_search_call");
    assert_eq!(events[added].1["item"]["status"], "in_progress");
    let done: Vec<&Value> = events
        .iter()
        .filter(|(e, _)| e == "response.output_item.done")
        .map(|(_, d)| &d["item"])
        .collect();
    assert_eq!(done.len(), 2, "{body}");
    assert_web_search_call(done[0]);
    assert_eq!(done[1]["type"], "message");
    let text = done[1]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("3.13.2"), "{text}");
    let citation = &done[1]["content"][0]["annotations"][0];
    assert_eq!(citation["type"], "url_citation");
    assert_eq!(
        citation["url"],
        "https://docs.aiohttp.org/en/stable/changes.html"
    );
    let start = citation["start_index"].as_u64().unwrap() as usize;
    let end = citation["end_index"].as_u64().unwrap() as usize;
    let cited: String = text.chars().skip(start).take(end - start).collect();
    assert_eq!(cited, "https://docs.aiohttp.org/en/stable/changes.html");
    let sequence: Vec<u64> = events
        .iter()
        .map(|(_, d)| d["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(
        sequence.windows(2).all(|w| w[1] == w[0] + 1),
        "{sequence:?}"
    );
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["status"], "completed");
    assert_web_search_call(&completed["output"][0]);
    assert_eq!(completed["output"][1]["type"], "message");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_streaming_responses_client_gets_the_items_too() {
    let backend = searxng().await;
    let provider = searching_provider().await;
    let proxy = proxy_with_search(&provider, &backend.origin());

    let response = post_responses(&proxy, &codex_request(false, true)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_backend_saw_the_query(&backend).await;
    assert_provider_searched(&provider.requests());
    assert_web_search_call(&answer["output"][0]);
    assert_eq!(answer["output"][1]["type"], "message", "{answer}");
    assert_eq!(answer["status"], "completed");
}

#[tokio::test(flavor = "multi_thread")]
async fn codexs_cached_search_and_its_history_items_need_no_backend_call() {
    let backend = searxng().await;
    let provider =
        FakeProvider::start(|_| Reply::json(200, openai::chat_completion("From memory."))).await;
    let proxy = proxy_with_search(&provider, &backend.origin());

    // `external_web_access: false` (Codex's default) is not a live search; the history's
    // web_search_call item reaches the provider as context.
    let mut body = codex_request(false, false);
    body["input"].as_array_mut().unwrap().extend([
        json!({"type": "web_search_call", "id": "ws_0", "status": "completed",
               "action": {"type": "search", "query": "aiohttp changelog"}}),
        json!({"type": "message", "role": "assistant",
               "content": [{"type": "output_text", "text": "It is 3.13.2.", "annotations": []}]}),
        json!({"type": "message", "role": "user",
               "content": [{"type": "input_text", "text": "And before that?"}]}),
    ]);
    let response = post_responses(&proxy, &body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(backend.request_count(), 0);
    let sent = provider.requests()[0].json();
    assert!(
        sent.to_string()
            .contains("Searched the web for: aiohttp changelog"),
        "{sent}"
    );
    assert!(!sent["tools"].to_string().contains("web_search"), "{sent}");
}

/// The content of every `role: tool` message of a Chat request, joined.
fn tool_results(body: &Value) -> String {
    body["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|m| m["role"] == "tool")
                .map(|m| match &m["content"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// A provider playing Claude Code's model: the main loop loads WebSearch (tool search on),
/// calls it, and answers with what it got back; the search request (the gateway's loop,
/// offering `web_search`) searches, then summarises the results.
fn claude_code_searching_model(req: &RecordedRequest) -> Reply {
    let body = req.json();
    let names: Vec<String> = body["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let has = |n: &str| names.iter().any(|x| x == n);
    let results = tool_results(&body);
    let call = |id: &str, name: &str, args: Value| {
        Reply::json(
            200,
            openai::tool_call_completion(&[(id, name, &args.to_string())]),
        )
    };
    if has("web_search") {
        return if results.is_empty() {
            call("call_ws_1", "web_search", json!({ "query": QUERY }))
        } else {
            Reply::json(
                200,
                openai::chat_completion(
                    "aiohttp 3.13.2 (2025-10-28) is the latest release, a bug-fix release.",
                ),
            )
        };
    }
    if results.contains("Web search results for query") {
        return Reply::json(
            200,
            openai::chat_completion(&format!("FINAL ANSWER. I searched: {results}")),
        );
    }
    if has("WebSearch") {
        return call("call_cc_ws", "WebSearch", json!({ "query": QUERY }));
    }
    if has("ToolSearch") && !results.contains("WebSearch") {
        return call(
            "call_cc_ts",
            "ToolSearch",
            json!({"query": "select:WebSearch", "max_results": 1}),
        );
    }
    Reply::json(200, openai::chat_completion("OK."))
}

/// Runs `claude -p` with WebSearch allowed; `tool_search` sets ENABLE_TOOL_SEARCH.
fn run_claude_searching(base_url: &str, tool_search: bool) -> (i32, String, String) {
    let claude = crate::claude_code::npm_client("claude", "node/node_modules/.bin/claude");
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(claude)
        .args(["-p", "What is the latest aiohttp release? Search the web."])
        .args(["--allowedTools", "WebSearch"])
        .current_dir(work.path())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home.path())
        .env("ANTHROPIC_BASE_URL", base_url)
        .env("ANTHROPIC_AUTH_TOKEN", crate::harness::KEY)
        .env(
            "ENABLE_TOOL_SEARCH",
            if tool_search { "true" } else { "false" },
        )
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("claude starts");
    crate::clients::wait_bounded(child, "claude", Duration::from_secs(120))
}

async fn real_claude_code_searches(tool_search: bool) {
    let backend = searxng().await;
    let provider = FakeProvider::start(claude_code_searching_model).await;
    let proxy = proxy_with_search(&provider, &backend.origin());
    let base_url = proxy.url("");
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || run_claude_searching(&base_url, tool_search))
            .await
            .unwrap();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");

    // The backend saw the query the model asked for.
    assert_backend_saw_the_query(&backend).await;
    let requests: Vec<Value> = provider.requests().iter().map(|r| r.json()).collect();
    // The gateway's loop: the provider searched, then got the results as the tool's result.
    let summarised = requests
        .iter()
        .find(|b| tool_results(b).contains("Changelog - aiohttp documentation"))
        .unwrap_or_else(|| panic!("no search result reached the provider: {requests:#?}"));
    assert!(tool_results(summarised).contains("bug fixes for the client"));
    // Claude Code read our blocks: its WebSearch result names the links it found and the
    // summary text, and its answer carries them.
    let main = requests
        .iter()
        .map(tool_results)
        .find(|r| r.contains("Web search results for query"))
        .unwrap_or_else(|| panic!("Claude Code's WebSearch result never came back: {requests:#?}"));
    assert!(main.contains(QUERY), "{main}");
    assert!(main.contains("Links:"), "the results were counted: {main}");
    assert!(main.contains("Changelog - aiohttp documentation"), "{main}");
    assert!(main.contains("https://pypi.org/project/aiohttp/"), "{main}");
    assert!(main.contains("3.13.2 (2025-10-28)"), "the summary: {main}");
    let loaded_by_tool_search = requests
        .iter()
        .any(|b| tool_results(b).contains("WebSearch") && b.to_string().contains("ToolSearch"));
    assert_eq!(loaded_by_tool_search, tool_search, "{requests:#?}");
    assert!(stdout.contains("FINAL ANSWER"), "stdout:\n{stdout}");
    assert!(
        stdout.contains("Changelog - aiohttp documentation"),
        "stdout:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn real_claude_code_searches_through_the_gateway_with_tool_search() {
    real_claude_code_searches(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn real_claude_code_searches_through_the_gateway_without_tool_search() {
    real_claude_code_searches(false).await;
}

const BACKEND_KEY: &str = "tvly-canary-backend-key-51c2";

/// Claude Code's search through `backend` (a fake of its API at `fake`): the fake got the
/// query and the key, the client got the fake's results, and the key is nowhere else.
async fn search_through(
    backend: &str,
    fake: &FakeProvider,
    query_of: fn(&RecordedRequest) -> String,
) {
    let provider = searching_provider().await;
    let proxy = Proxy::start_with(
        &format!(
            "web_search:\n  backend: {backend}\n  url: {}\n  api_key: {BACKEND_KEY}\n  max_results: 1\n",
            fake.origin()
        ),
        &[(
            "ws",
            adapter_yaml(&provider.base_url(), &[crate::harness::KEY], ""),
        )],
    );
    let response = post_messages(&proxy, &search_request(false, 8)).await;
    assert_eq!(response.status(), 200);
    let answer = response.text().await.unwrap();
    let seen = fake.wait_for_requests(1, Duration::from_secs(5)).await;
    assert_eq!(query_of(&seen[0]), QUERY);
    let value: Value = serde_json::from_str(&answer).unwrap();
    let results = value["content"][1]["content"].as_array().unwrap();
    assert_eq!(results.len(), 1, "max_results: 1: {answer}");
    assert_eq!(results[0]["title"], "Changelog - aiohttp documentation");
    let told = tool_results(&provider.requests()[1].json());
    assert!(
        told.contains("bug fixes for the client and the web server"),
        "{told}"
    );
    assert!(!told.contains("pypi.org"), "max_results: 1: {told}");
    for place in [answer.as_str(), &proxy.access_log()] {
        assert!(
            !place.contains(BACKEND_KEY),
            "the backend's key leaked: {place}"
        );
    }
    let sent = provider
        .requests()
        .iter()
        .map(|r| r.body_text())
        .collect::<String>();
    assert!(!sent.contains(BACKEND_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn tavily_answers_the_search_with_its_key() {
    let tavily = FakeProvider::start(|req| {
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/search");
        if req.header("authorization") != Some(&format!("Bearer {BACKEND_KEY}")) {
            return Reply::json(401, json!({"detail": {"error": "Unauthorized"}}));
        }
        Reply::json(
            200,
            json!({"query": req.json()["query"], "results": [
            {"title": "Changelog - aiohttp documentation",
             "url": "https://docs.aiohttp.org/en/stable/changes.html",
             "content": "aiohttp 3.13.2 (2025-10-28): bug fixes for the client and the web server.",
             "score": 0.98},
            {"title": "aiohttp · PyPI", "url": "https://pypi.org/project/aiohttp/",
             "content": "Async http client/server framework", "score": 0.9}
        ], "response_time": 0.5}),
        )
    })
    .await;
    search_through("tavily", &tavily, |r| {
        r.json()["query"].as_str().unwrap_or_default().to_owned()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn brave_answers_the_search_with_its_key() {
    let brave = FakeProvider::start(|req| {
        assert_eq!(req.method, "GET");
        assert!(req.path.starts_with("/res/v1/web/search?"), "{}", req.path);
        if req.header("x-subscription-token") != Some(BACKEND_KEY) {
            return Reply::json(401, json!({"type": "ErrorResponse"}));
        }
        Reply::json(200, json!({"type": "search", "web": {"type": "search", "results": [
            {"title": "Changelog - aiohttp documentation",
             "url": "https://docs.aiohttp.org/en/stable/changes.html",
             "description": "aiohttp <strong>3.13.2</strong> (2025-10-28): bug fixes for the client and the web server.",
             "page_age": "2025-10-28T00:00:00"},
            {"title": "aiohttp · PyPI", "url": "https://pypi.org/project/aiohttp/",
             "description": "Async http client/server framework"}
        ]}}))
    })
    .await;
    search_through("brave", &brave, |r| {
        let url = reqwest::Url::parse(&format!("http://backend{}", r.path)).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "q")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_backend_times_out_into_a_search_error() {
    let slow = FakeProvider::start(|_| {
        Reply::json(200, json!({"results": []})).delay_before_headers(Duration::from_secs(5))
    })
    .await;
    let provider = searching_provider().await;
    let proxy = Proxy::start_with(
        &format!("web_search:\n  url: {}\n  timeout: 300ms\n", slow.origin()),
        &[(
            "ws",
            adapter_yaml(&provider.base_url(), &[crate::harness::KEY], ""),
        )],
    );
    let started = std::time::Instant::now();
    let response = post_messages(&proxy, &search_request(false, 8)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        answer["content"][1]["content"]["error_code"], "unavailable",
        "{answer}"
    );
    assert!(
        provider.requests()[1]
            .body_text()
            .contains("Web search error: unavailable")
    );
}

/// A provider playing Gemini CLI's model: the main loop calls `google_web_search`, the search
/// request (the gateway's loop) searches and summarises, the main loop answers with the
/// tool's output.
fn gemini_cli_searching_model(req: &RecordedRequest) -> Reply {
    let body = req.json();
    let names = function_names(&body);
    let results = tool_results(&body);
    if names.iter().any(|n| n == "web_search") {
        return searching_provider_reply(&body);
    }
    // Gemini CLI's router asks for a JSON verdict.
    if body["response_format"]["type"] == "json_schema" {
        let sample = sample_of(&body["response_format"]["json_schema"]["schema"]);
        return Reply::json(200, openai::chat_completion(&sample.to_string()));
    }
    // Gemini CLI's google_web_search output (`Web search results for "<q>"`).
    if results.contains("Web search results for") {
        return Reply::json(
            200,
            openai::chat_completion(&format!("FINAL ANSWER. {results}")),
        );
    }
    if names.iter().any(|n| n == "google_web_search") {
        let args = json!({ "query": QUERY }).to_string();
        return Reply::json(
            200,
            openai::tool_call_completion(&[("call_g_ws", "google_web_search", &args)]),
        );
    }
    Reply::json(200, openai::chat_completion("OK."))
}

/// A value that fits a JSON schema (the simple kinds).
fn sample_of(schema: &Value) -> Value {
    match schema["type"].as_str().unwrap_or("object") {
        "string" => schema["enum"][0]
            .clone()
            .as_str()
            .map_or(json!("simple"), |e| json!(e)),
        "integer" | "number" => json!(1),
        "boolean" => json!(true),
        "array" => json!([]),
        _ => Value::Object(
            schema["properties"]
                .as_object()
                .map(|p| p.iter().map(|(k, v)| (k.clone(), sample_of(v))).collect())
                .unwrap_or_default(),
        ),
    }
}

fn function_names(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// [`searching_provider`]'s answer to one request.
fn searching_provider_reply(body: &Value) -> Reply {
    if has_tool_result(body) {
        Reply::json(
            200,
            openai::chat_completion(
                "The latest aiohttp release is 3.13.2 ([changelog](https://docs.aiohttp.org/en/stable/changes.html)).",
            ),
        )
    } else {
        let args = json!({ "query": QUERY }).to_string();
        Reply::json(
            200,
            openai::tool_call_completion(&[("call_ws_1", "web_search", &args)]),
        )
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn real_gemini_cli_searches_through_the_gateway() {
    let bin = tokio::task::spawn_blocking(|| {
        crate::claude_code::npm_client("gemini", "gemini/node_modules/.bin/gemini")
    })
    .await
    .unwrap();
    let backend = searxng().await;
    let provider = FakeProvider::start(gemini_cli_searching_model).await;
    let proxy = proxy_with_search(&provider, &backend.origin());
    let base_url = proxy.url("");
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let home = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let settings = home.path().join(".gemini");
        std::fs::create_dir_all(&settings).unwrap();
        let mut config = flexiproxy::config::setup::gemini_settings();
        config["general"] =
            json!({"enableAutoUpdate": false, "enableAutoUpdateNotification": false});
        config["privacy"] = json!({"usageStatisticsEnabled": false});
        config["telemetry"] = json!({"enabled": false});
        std::fs::write(settings.join("settings.json"), config.to_string()).unwrap();
        let child = std::process::Command::new(bin)
            .args([
                "-p",
                "What is the latest aiohttp release? Search the web.",
                "--yolo",
            ])
            .current_dir(work.path())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", home.path())
            .env("GEMINI_API_KEY", crate::harness::KEY)
            .env("GOOGLE_GEMINI_BASE_URL", &base_url)
            .env("GEMINI_CLI_TRUST_WORKSPACE", "true")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("gemini starts");
        crate::clients::wait_bounded(child, "gemini", Duration::from_secs(120))
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_backend_saw_the_query(&backend).await;
    let requests: Vec<Value> = provider.requests().iter().map(|r| r.json()).collect();
    assert!(
        requests
            .iter()
            .any(|b| tool_results(b).contains("bug fixes for the client")),
        "the snippets reached the provider: {requests:#?}"
    );
    // Gemini CLI read our groundingMetadata: its tool output lists the sources.
    let output = requests
        .iter()
        .map(tool_results)
        .find(|r| r.contains("Web search results for") && !r.contains("for the query"))
        .unwrap_or_else(|| panic!("no google_web_search output came back: {requests:#?}"));
    assert!(output.contains("Sources:"), "{output}");
    assert!(
        output.contains(
            "Changelog - aiohttp documentation (https://docs.aiohttp.org/en/stable/changes.html)"
        ),
        "{output}"
    );
    assert!(output.contains("3.13.2"), "{output}");
    assert!(stdout.contains("FINAL ANSWER"), "stdout:\n{stdout}");
    assert!(
        stdout.contains("Changelog - aiohttp documentation"),
        "stdout:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn real_codex_cli_searches_through_the_gateway() {
    let bin = tokio::task::spawn_blocking(|| {
        crate::claude_code::npm_client("codex", "codex/node_modules/.bin/codex")
    })
    .await
    .unwrap();
    let backend = searxng().await;
    let provider = FakeProvider::start(|req| {
        let body = req.json();
        if function_names(&body).iter().any(|n| n == "web_search") {
            if has_tool_result(&body) {
                let results = tool_results(&body);
                return Reply::json(
                    200,
                    openai::chat_completion(&format!("FINAL ANSWER. {results}")),
                );
            }
            return searching_provider_reply(&body);
        }
        Reply::json(200, openai::chat_completion("OK."))
    })
    .await;
    let proxy = proxy_with_search(&provider, &backend.origin());
    let config = format!(
        "check_for_update_on_startup = false\nweb_search = \"live\"\n{}\
         stream_max_retries = 0\nrequest_max_retries = 0\n\n[features]\nplugins = false\n\
         apps = false\nremote_plugin = false\n\n[analytics]\nenabled = false\n\n[otel]\n\
         exporter = \"none\"\n",
        flexiproxy::config::setup::codex_config(&proxy.url(""))
    );
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let home = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let codex_home = home.path().join(".codex");
        std::fs::create_dir_all(&codex_home).unwrap();
        std::fs::write(codex_home.join("config.toml"), config).unwrap();
        let child = std::process::Command::new(bin)
            .args(["exec", "--skip-git-repo-check", "-s", "read-only"])
            .arg("What is the latest aiohttp release? Search the web.")
            .current_dir(work.path())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", home.path())
            .env("CODEX_HOME", &codex_home)
            .env(
                flexiproxy::config::setup::CODEX_KEY_ENV,
                crate::harness::KEY,
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("codex starts");
        crate::clients::wait_bounded(child, "codex", Duration::from_secs(120))
    })
    .await
    .unwrap();
    let all = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(code, 0, "{all}");
    assert_backend_saw_the_query(&backend).await;
    let requests: Vec<Value> = provider.requests().iter().map(|r| r.json()).collect();
    let told = requests
        .iter()
        .map(tool_results)
        .find(|r| r.contains("Changelog - aiohttp documentation"))
        .unwrap_or_else(|| panic!("no search result reached the provider: {requests:#?}"));
    assert!(told.contains("bug fixes for the client"), "{told}");
    // Codex showed the search (from our web_search_call item) and printed the answer.
    assert!(all.contains(&format!("web search: {QUERY}")), "{all}");
    assert!(stdout.contains("FINAL ANSWER"), "{all}");
}

fn proxy_with_adapter(backend: &FakeProvider, adapter: String) -> Proxy {
    Proxy::start_with(
        &format!("web_search:\n  url: {}\n", backend.origin()),
        &[("ws", adapter)],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn native_and_off_keep_the_gateway_out() {
    for mode in ["native", "off"] {
        let backend = searxng().await;
        let provider =
            FakeProvider::start(|_| Reply::json(200, openai::chat_completion("No search."))).await;
        let adapter = adapter_yaml(&provider.base_url(), &[crate::harness::KEY], "")
            + &format!("web_search: {mode}\n");
        let proxy = proxy_with_adapter(&backend, adapter);
        let response = post_messages(&proxy, &search_request(false, 8)).await;
        assert_eq!(response.status(), 200, "{mode}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["content"][0]["type"], "text", "{mode}: {answer}");
        assert_eq!(backend.request_count(), 0, "{mode}");
        let sent = provider.requests()[0].json();
        assert!(sent.get("tools").is_none(), "{mode}: {sent}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_leaves_an_anthropic_source_its_own_search_and_gateway_takes_it_over() {
    use flexiproxy_testkit::anthropic;
    // An Anthropic-protocol provider: with its own tool it would search itself; offered the
    // gateway's function tool, it calls it, then answers from the result.
    let provider = FakeProvider::start(|req| {
        let body = req.json();
        let text = body.to_string();
        if text.contains("web_search_20250305") {
            return Reply::json(200, anthropic::message("Searched natively."));
        }
        if text.contains("\"tool_result\"") {
            return Reply::json(
                200,
                anthropic::message("3.13.2 (https://docs.aiohttp.org/en/stable/changes.html)"),
            );
        }
        let input = json!({ "query": QUERY }).to_string();
        Reply::json(
            200,
            anthropic::tool_use_message(&[("toolu_ws_1", "web_search", &input)]),
        )
    })
    .await;
    let source = "protocol: anthropic";

    // auto: a same-protocol source gets the request as sent (its own search).
    let backend = searxng().await;
    let adapter = adapter_yaml(&provider.origin(), &[crate::harness::KEY], source);
    let proxy = proxy_with_adapter(&backend, adapter);
    let answer: Value = post_messages(&proxy, &search_request(false, 8))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["content"][0]["text"], "Searched natively.",
        "{answer}"
    );
    assert_eq!(backend.request_count(), 0);
    drop(proxy);

    // gateway: the same source gets the function tool, the backend searches.
    provider.clear_requests();
    let adapter =
        adapter_yaml(&provider.origin(), &[crate::harness::KEY], source) + "web_search: gateway\n";
    let proxy = proxy_with_adapter(&backend, adapter);
    let response = post_messages(&proxy, &search_request(true, 8)).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert_backend_saw_the_query(&backend).await;
    let requests: Vec<Value> = provider.requests().iter().map(|r| r.json()).collect();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let tool = &requests[0]["tools"][0];
    assert_eq!(tool["name"], "web_search", "{tool}");
    assert!(
        tool.get("type").is_none(),
        "a function tool, not the hosted one: {tool}"
    );
    assert_eq!(
        requests[0]["stream"],
        json!(true),
        "a live client: the call is streamed"
    );
    assert!(
        requests[1].to_string().contains("bug fixes for the client"),
        "{:#?}",
        requests[1]
    );
    let events = events(&body);
    let blocks = block_types(&events);
    assert_eq!(
        blocks,
        ["server_tool_use", "web_search_tool_result", "text"],
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_first_call_moves_the_search_to_the_fallback() {
    let backend = searxng().await;
    // The primary's key gets 503s; the fallback's answers (and searches).
    let provider = FakeProvider::start(|req| {
        if req.header("authorization") == Some(&format!("Bearer {PROVIDER_KEY}")) {
            return Reply::json(503, json!({"error": {"message": "overloaded"}}));
        }
        searching_provider_reply(&req.json())
    })
    .await;
    let adapter = adapter_yaml(
        &provider.base_url(),
        &[crate::harness::KEY],
        &format!(
            "fallbacks:\n  - {{ base_url: \"{}\", api_key: sk-fallback-key, model: fake-model }}",
            provider.base_url()
        ),
    );
    let proxy = proxy_with_adapter(&backend, adapter);
    let response = post_messages(&proxy, &search_request(false, 8)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["content"][1]["type"], "web_search_tool_result",
        "{answer}"
    );
    assert_backend_saw_the_query(&backend).await;
    let requests = provider.requests();
    let keys: Vec<&str> = requests
        .iter()
        .map(|r| r.header("authorization").unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            format!("Bearer {PROVIDER_KEY}").as_str(),
            "Bearer sk-fallback-key",
            "Bearer sk-fallback-key"
        ]
    );
    assert_provider_searched(&requests[1..]);
    let line = wait_for_log_line(&proxy);
    assert_eq!(line["attempts"], 2, "{line}");
    assert_eq!(line["web_searches"], 1, "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_search_answer_sent_back_in_history_reaches_the_provider_as_context() {
    let backend = searxng().await;
    let provider = searching_provider().await;
    let proxy = proxy_with_search(&provider, &backend.origin());
    let answer: Value = post_messages(&proxy, &search_request(false, 8))
        .await
        .json()
        .await
        .unwrap();
    // The next turn carries the search blocks back, as the SDKs do.
    let follow_up = json!({
        "model": "claude-opus-5-5", "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "What is the latest aiohttp release?"},
            {"role": "assistant", "content": answer["content"]},
            {"role": "user", "content": "And the one before?"}
        ]
    });
    provider.clear_requests();
    let response = post_messages(&proxy, &follow_up).await;
    assert_eq!(response.status(), 200);
    let sent = provider.requests()[0].json();
    let assistant = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap_or_else(|| panic!("{sent}"))
        .to_string();
    assert!(
        assistant.contains(&format!("(Searched the web for: {QUERY})")),
        "{assistant}"
    );
    assert!(
        assistant.contains(
            "Changelog - aiohttp documentation (https://docs.aiohttp.org/en/stable/changes.html)"
        ),
        "{assistant}"
    );
    assert!(assistant.contains("3.13.2"), "{assistant}");
}

#[tokio::test(flavor = "multi_thread")]
async fn token_counts_are_never_taken_over() {
    let backend = searxng().await;
    let provider = FakeProvider::start(|_| Reply::json(200, json!({"input_tokens": 42}))).await;
    let adapter = adapter_yaml(
        &provider.origin(),
        &[crate::harness::KEY],
        "protocol: anthropic",
    ) + "web_search: gateway\n";
    let proxy = proxy_with_adapter(&backend, adapter);
    let mut body = search_request(false, 8);
    body.as_object_mut().unwrap().remove("max_tokens");
    body.as_object_mut().unwrap().remove("stream");
    let response = crate::harness::client()
        .post(proxy.url("/v1/messages/count_tokens"))
        .header("x-api-key", crate::harness::KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let counted: Value = response.json().await.unwrap();
    assert_eq!(counted["input_tokens"], 42);
    assert_eq!(backend.request_count(), 0);
    let seen = provider.requests();
    assert_eq!(seen[0].path, "/v1/messages/count_tokens");
    assert!(seen[0].body_text().contains("web_search_20250305"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_ends_the_loop() {
    // The backend takes 3 s; the client gives up once the search is under way.
    let slow = FakeProvider::start(|_| {
        Reply::json(200, json!({"results": []})).delay_before_headers(Duration::from_secs(3))
    })
    .await;
    let provider = searching_provider().await;
    let proxy = proxy_with_search(&provider, &slow.origin());
    let (url, body) = (proxy.url("/v1/messages"), search_request(false, 8));
    let client = tokio::spawn(async move {
        crate::harness::client()
            .post(url)
            .header("x-api-key", crate::harness::KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
    });
    slow.wait_for_requests(1, Duration::from_secs(10)).await;
    client.abort();
    assert!(client.await.is_err(), "the client left before an answer");
    // The request ends when the proxy notices (its access log line), well before the
    // backend would have answered, and the provider is not asked again.
    let started = std::time::Instant::now();
    let line = wait_for_log_line(&proxy);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(slow.request_count(), 1);
    assert_eq!(provider.request_count(), 1, "{line}");
}

/// A search through a proxy whose usage statistics go to `stats` (server config lines).
async fn search_with_stats(stats: &str) -> (Proxy, FakeProvider, FakeProvider) {
    let backend = searxng().await;
    let provider = searching_provider().await;
    let proxy = Proxy::start_with(
        &format!("web_search:\n  url: {}\n{stats}", backend.origin()),
        &[(
            "ws",
            adapter_yaml(&provider.base_url(), &[crate::harness::KEY], ""),
        )],
    );
    let response = post_messages(&proxy, &search_request(false, 8)).await;
    assert_eq!(response.status(), 200);
    (proxy, provider, backend)
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_statistics_count_the_searches_in_sqlite() {
    let (proxy, _provider, _backend) =
        search_with_stats("stats:\n  enabled: true\n  path: stats.db\n").await;
    let db = proxy.dir.path().join("stats.db");
    let read = || -> Option<(i64, i64)> {
        let conn = rusqlite::Connection::open(&db).ok()?;
        conn.query_row(
            "SELECT web_searches, input_tokens FROM usage LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok()
    };
    crate::harness::wait_until(Duration::from_secs(10), "the usage record", || {
        read().is_some()
    });
    let (searches, input) = read().unwrap();
    assert_eq!(searches, 1);
    assert!(input > 0, "both provider calls' usage: {input}");
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_statistics_count_the_searches_in_postgres() {
    let pg = tokio::task::spawn_blocking(flexiproxy_testkit::services::PostgresServer::start)
        .await
        .unwrap();
    let stats = format!(
        "stats:\n  enabled: true\n  backend: postgres\n  url: \"{}\"\n",
        pg.url()
    );
    let (_proxy, _provider, _backend) = search_with_stats(&stats).await;
    crate::harness::wait_until(Duration::from_secs(10), "the usage record", || {
        pg.psql("SELECT web_searches FROM usage").trim() == "1"
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_client_hears_from_the_proxy_while_the_provider_thinks() {
    let backend = searxng().await;
    // The provider takes 1.5 s to ask for its search.
    let provider = FakeProvider::start(|req| {
        let reply = searching_provider_reply(&req.json());
        if has_tool_result(&req.json()) {
            reply
        } else {
            reply.delay_before_headers(Duration::from_millis(1500))
        }
    })
    .await;
    let proxy = Proxy::start_with(
        &format!(
            "web_search:\n  url: {}\n  keep_alive: 200ms\n",
            backend.origin()
        ),
        &[(
            "ws",
            adapter_yaml(&provider.base_url(), &[crate::harness::KEY], ""),
        )],
    );
    let started = std::time::Instant::now();
    let response = post_messages(&proxy, &search_request(true, 8)).await;
    let headers_after = started.elapsed();
    assert_eq!(response.status(), 200);
    assert!(
        headers_after < Duration::from_millis(1200),
        "the stream started before the provider answered: {headers_after:?}"
    );
    let body = response.text().await.unwrap();
    let before_search = &body[..body.find("server_tool_use").unwrap()];
    assert!(
        before_search.matches("event: ping").count() >= 3,
        "keep-alives while waiting:\n{before_search}"
    );
    assert!(
        body.contains("web_search_tool_result")
            && body.ends_with("{\"type\":\"message_stop\"}\n\n")
    );
}

/// The streamed answer: it names the changelog's URL, which the pieces split.
const STREAMED: &str = "The latest aiohttp release is 3.13.2 (https://docs.aiohttp.org/en/stable/changes.html), out since October 2025.";

/// A provider that searches once (JSON), then streams its answer in pieces.
async fn streaming_answer_provider() -> FakeProvider {
    FakeProvider::start(|req| {
        let body = req.json();
        if has_tool_result(&body) {
            assert_eq!(body["stream"], true, "a live client's calls are streamed");
            Reply::sse(openai::text_stream(STREAMED, 4))
        } else {
            searching_provider_reply(&body)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_clients_answer_streams_as_the_provider_writes_it() {
    let backend = searxng().await;
    let provider = streaming_answer_provider().await;
    let proxy = proxy_with_search(&provider, &backend.origin());

    // Anthropic: the answer's text comes as the provider's pieces, after the search blocks.
    let body = post_messages(&proxy, &search_request(true, 8))
        .await
        .text()
        .await
        .unwrap();
    let events = events(&body);
    let deltas: Vec<&str> = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert!(deltas.len() >= 4, "{body}");
    assert_eq!(deltas.concat(), STREAMED);
    // The URL it names is cited in its block, before the block ends.
    let at = |want: &dyn Fn(&(String, Value)) -> bool| events.iter().position(want).unwrap();
    let citation = at(&|(_, d)| d["delta"]["type"] == "citations_delta");
    let cited = &events[citation].1;
    assert_eq!(cited["index"], 2, "{body}");
    assert_eq!(
        cited["delta"]["citation"]["type"],
        "web_search_result_location"
    );
    assert_eq!(
        cited["delta"]["citation"]["url"],
        "https://docs.aiohttp.org/en/stable/changes.html"
    );
    assert!(citation < at(&|(e, d)| e == "content_block_stop" && d["index"] == 2));
    let blocks = block_types(&events);
    assert_eq!(
        blocks,
        ["server_tool_use", "web_search_tool_result", "text"],
        "{body}"
    );
    let delta = &events.iter().find(|(e, _)| e == "message_delta").unwrap().1;
    assert_eq!(delta["usage"]["server_tool_use"]["web_search_requests"], 1);
    assert_eq!(events.last().unwrap().0, "message_stop");

    // Responses: output_text deltas, then the message in response.completed once.
    let body = post_responses(&proxy, &codex_request(true, true))
        .await
        .text()
        .await
        .unwrap();
    let events = self::events(&body);
    let deltas = events
        .iter()
        .filter(|(e, _)| e == "response.output_text.delta")
        .count();
    assert!(deltas >= 4, "{body}");
    let completed = &events.last().unwrap().1["response"];
    let output = completed["output"].as_array().unwrap();
    assert_eq!(output.len(), 2, "{completed}");
    assert_eq!(output[0]["type"], "web_search_call");
    assert_eq!(output[1]["content"][0]["text"], STREAMED);
    let annotation = json!({"type": "url_citation", "start_index": 38, "end_index": 85,
        "url": "https://docs.aiohttp.org/en/stable/changes.html",
        "title": "Changelog - aiohttp documentation"});
    assert_eq!(output[1]["content"][0]["annotations"], json!([annotation]));
    let added = &events
        .iter()
        .find(|(e, _)| e == "response.output_text.annotation.added")
        .unwrap_or_else(|| panic!("no annotation event: {body}"))
        .1;
    assert_eq!(added["annotation"], annotation);
    let sequence: Vec<u64> = events
        .iter()
        .map(|(_, d)| d["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(
        sequence.windows(2).all(|w| w[1] == w[0] + 1),
        "{sequence:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_gemini_clients_answer_comes_in_pieces_with_the_grounding_last() {
    let backend = searxng().await;
    let provider = streaming_answer_provider().await;
    let proxy = proxy_with_search(&provider, &backend.origin());
    let response = post_gemini(
        &proxy,
        "/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse",
        &gemini_search_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let chunks: Vec<Value> = body
        .split("\r\n\r\n")
        .filter(|c| !c.is_empty())
        .map(|c| serde_json::from_str(c.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert!(
        chunks.len() >= 5,
        "the provider's pieces, then the last: {body}"
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(text, STREAMED);
    let (last, pieces) = chunks.split_last().unwrap();
    assert!(
        pieces
            .iter()
            .all(|c| c["candidates"][0].get("groundingMetadata").is_none())
    );
    let candidate = &last["candidates"][0];
    assert_eq!(candidate["finishReason"], "STOP", "{last}");
    let grounding = &candidate["groundingMetadata"];
    assert_eq!(grounding["webSearchQueries"], json!([QUERY]), "{last}");
    assert_eq!(
        grounding["groundingChunks"][0]["web"]["uri"],
        "https://docs.aiohttp.org/en/stable/changes.html"
    );
    let end = grounding["groundingSupports"][0]["segment"]["endIndex"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(end, STREAMED.len(), "offsets into the whole streamed text");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_that_breaks_off_ends_the_stream_with_an_error_event() {
    let backend = searxng().await;
    let provider = FakeProvider::start(|req| {
        let body = req.json();
        if has_tool_result(&body) {
            let events = openai::text_stream("The latest aiohttp release is 3.13.2.", 4);
            let first_two: usize = events.iter().take(2).map(String::len).sum();
            Reply::sse(events).reset_after_body_bytes(first_two)
        } else {
            searching_provider_reply(&body)
        }
    })
    .await;
    let proxy = proxy_with_search(&provider, &backend.origin());
    let body = post_messages(&proxy, &search_request(true, 8))
        .await
        .text()
        .await
        .unwrap();
    let events = events(&body);
    assert!(
        events
            .iter()
            .any(|(e, d)| e == "content_block_delta" && d["delta"]["type"] == "text_delta"),
        "{body}"
    );
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "error", "{body}");
    assert_eq!(data["error"]["type"], "api_error");
}
