//! The gateway's web search through the official Python SDKs (`anthropic`, `openai`'s
//! Responses API, `google-genai`): each client protocol on Chat, Anthropic-protocol,
//! Responses and Gemini sources, streamed and not. A translated source is given the
//! `web_search` function tool, the fake SearXNG answers, and the SDK parses the search blocks,
//! `web_search_call` items or grounding the gateway wrote; a same-protocol source searches
//! itself (the hosted tool passed through as sent) and the SDK parses the provider's own
//! shapes, untouched.

use crate::clients::{anthropic_sdk, openai_sdk, run_python};
use crate::harness::{KEY, Proxy};
use crate::pairs::{Source, adapter};
use crate::web_search::{QUERY, content_types, searxng};
use flexiproxy_testkit::{
    FakeProvider, RecordedRequest, Reply, anthropic, gemini, openai, responses,
};
use serde_json::{Value, json};

const CHANGELOG: &str = "https://docs.aiohttp.org/en/stable/changes.html";
const TITLE: &str = "Changelog - aiohttp documentation";
const ANSWER: &str =
    "The latest aiohttp release is 3.13.2 (https://docs.aiohttp.org/en/stable/changes.html).";

const SOURCES: [Source; 4] = [
    Source::OpenAi,
    Source::Anthropic,
    Source::Responses,
    Source::Gemini,
];

/// Whether the request carries a client's hosted search tool (a same-protocol source got it
/// as sent).
fn hosted(body: &Value) -> bool {
    body["tools"].as_array().into_iter().flatten().any(|t| {
        t["type"]
            .as_str()
            .is_some_and(|k| k.starts_with("web_search"))
            || t.get("googleSearch").is_some()
    })
}

/// A provider of `source`'s protocol: with the hosted tool it searches itself (answering in
/// its own shape); else it calls `web_search` and then answers from the result.
async fn provider(source: Source) -> FakeProvider {
    FakeProvider::start(move |req: &RecordedRequest| {
        let body = req.json();
        let stream = body["stream"] == true || req.path.contains("streamGenerateContent");
        let searched = body.to_string().contains(TITLE);
        let args = json!({ "query": QUERY }).to_string();
        match source {
            _ if hosted(&body) => native_answer(source, stream),
            Source::OpenAi if searched => Reply::json(200, openai::chat_completion(ANSWER)),
            Source::OpenAi => Reply::json(
                200,
                openai::tool_call_completion(&[("call_ws", "web_search", &args)]),
            ),
            Source::Anthropic if searched => Reply::json(200, anthropic::message(ANSWER)),
            Source::Anthropic => Reply::json(
                200,
                anthropic::tool_use_message(&[("toolu_ws", "web_search", &args)]),
            ),
            Source::Responses if searched => Reply::json(200, responses::text_response(ANSWER)),
            Source::Responses => Reply::json(
                200,
                responses::tool_call_response("call_ws", "web_search", &args),
            ),
            Source::Gemini if searched => Reply::json(200, gemini::text_response(ANSWER)),
            Source::Gemini => Reply::json(
                200,
                gemini::calls_response(&[("call_ws", "web_search", &args)]),
            ),
        }
    })
    .await
}

/// The provider's own search, in its protocol's shape (JSON or its stream).
fn native_answer(source: Source, stream: bool) -> Reply {
    match source {
        Source::Anthropic => {
            let message = json!({"id": "msg_native", "type": "message", "role": "assistant",
                "model": "fake-model", "stop_reason": "end_turn", "stop_sequence": null,
                "content": [
                    {"type": "server_tool_use", "id": "srvtoolu_n1", "name": "web_search",
                     "input": {"query": QUERY}},
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_n1",
                     "content": [{"type": "web_search_result", "url": CHANGELOG, "title": TITLE,
                                  "encrypted_content": "ZW5j", "page_age": null}]},
                    {"type": "text", "text": ANSWER, "citations": [
                        {"type": "web_search_result_location", "url": CHANGELOG, "title": TITLE,
                         "encrypted_index": "MA==", "cited_text": "3.13.2"}]}],
                "usage": {"input_tokens": 10, "output_tokens": 5,
                          "server_tool_use": {"web_search_requests": 1}}});
            if !stream {
                return Reply::json(200, message);
            }
            let mut events = Vec::new();
            let mut start = message.clone();
            start["content"] = json!([]);
            events.push(anthropic::event(
                "message_start",
                &json!({"type": "message_start", "message": start}),
            ));
            for (index, block) in message["content"].as_array().unwrap().iter().enumerate() {
                let mut opened = block.clone();
                if block["type"] == "text" {
                    opened = json!({"type": "text", "text": ""});
                }
                events.push(anthropic::event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": index, "content_block": opened}),
                ));
                if block["type"] == "text" {
                    for delta in [
                        json!({"type": "citations_delta", "citation": block["citations"][0]}),
                        json!({"type": "text_delta", "text": ANSWER}),
                    ] {
                        events.push(anthropic::event(
                            "content_block_delta",
                            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                        ));
                    }
                }
                events.push(anthropic::event(
                    "content_block_stop",
                    &json!({"type": "content_block_stop", "index": index}),
                ));
            }
            events.push(anthropic::event(
                "message_delta",
                &json!({"type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                    "usage": {"output_tokens": 5, "server_tool_use": {"web_search_requests": 1}}}),
            ));
            events.push(anthropic::event(
                "message_stop",
                &json!({"type": "message_stop"}),
            ));
            Reply::sse(events)
        }
        Source::Responses => {
            let mut answer = responses::text_response(ANSWER);
            let output = answer["output"].as_array_mut().unwrap();
            output[0]["content"][0]["annotations"] = json!([{"type": "url_citation",
                "start_index": 38, "end_index": 85, "url": CHANGELOG, "title": TITLE}]);
            output.insert(
                0,
                json!({"type": "web_search_call", "id": "ws_n1", "status": "completed",
                       "action": {"type": "search", "query": QUERY,
                                  "sources": [{"type": "url", "url": CHANGELOG}]}}),
            );
            if !stream {
                return Reply::json(200, answer);
            }
            let mut created = answer.clone();
            created["status"] = json!("in_progress");
            created["output"] = json!([]);
            let event = |n: u64, kind: &str, data: Value| {
                let mut data = data;
                data["type"] = json!(kind);
                data["sequence_number"] = json!(n);
                format!("event: {kind}\ndata: {data}\n\n")
            };
            Reply::sse(vec![
                event(0, "response.created", json!({ "response": created })),
                event(1, "response.completed", json!({ "response": answer })),
            ])
        }
        Source::Gemini => {
            let mut answer = gemini::text_response(ANSWER);
            answer["candidates"][0]["groundingMetadata"] = json!({
                "webSearchQueries": [QUERY],
                "groundingChunks": [{"web": {"uri": CHANGELOG, "title": TITLE}}],
                "groundingSupports": [{"segment": {"startIndex": 0, "endIndex": 36,
                    "text": "The latest aiohttp release is 3.13.2"}, "groundingChunkIndices": [0]}]});
            if stream {
                Reply::sse(vec![gemini::event(&answer)])
            } else {
                Reply::json(200, answer)
            }
        }
        Source::OpenAi => Reply::json(500, json!({"error": "a Chat source has no hosted search"})),
    }
}

/// A proxy with the fake SearXNG as its backend, on one adapter whose source is `source`.
fn proxy(source: Source, provider: &FakeProvider, backend: &FakeProvider) -> Proxy {
    Proxy::start_with(
        &format!(
            "web_search:\n  backend: searxng\n  url: {}\n  timeout: 2s\n",
            backend.origin()
        ),
        &[("sdk", adapter(source, provider))],
    )
}

/// An SDK run (a blocking child process) off the runtime the fakes and the proxy use.
async fn off_runtime(run: impl FnOnce() -> Value + Send + 'static) -> Value {
    tokio::task::spawn_blocking(run).await.unwrap()
}

/// The backend searched once for a translated source, never for a same-protocol one.
fn assert_searched_by(same_protocol: bool, backend: &FakeProvider, what: &str) {
    let expected = usize::from(!same_protocol);
    assert_eq!(
        backend.request_count(),
        expected,
        "{what}: backend searches"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_anthropic_sdk_gets_search_blocks_from_every_source() {
    let request = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 1024,
        "messages": [{"role": "user", "content": "What is the latest aiohttp release?"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]
    });
    for source in SOURCES {
        for mode in ["create", "stream"] {
            let what = format!("{source:?} source, {mode}");
            let (backend, provider) = (searxng().await, provider(source).await);
            let proxy = proxy(source, &provider, &backend);
            let (base, req) = (proxy.url(""), request.clone());
            let out = off_runtime(move || anthropic_sdk(&base, KEY, mode, &req)).await;
            let message = &out["message"];
            assert_eq!(
                content_types(message),
                ["server_tool_use", "web_search_tool_result", "text"],
                "{what}: {out}"
            );
            let content = &message["content"];
            assert_eq!(content[0]["input"]["query"], QUERY, "{what}");
            assert_eq!(content[1]["content"][0]["url"], CHANGELOG, "{what}");
            assert_eq!(content[1]["content"][0]["title"], TITLE, "{what}");
            assert_eq!(content[2]["text"], ANSWER, "{what}");
            assert_eq!(
                content[2]["citations"][0]["url"], CHANGELOG,
                "{what}: {out}"
            );
            assert_eq!(
                message["usage"]["server_tool_use"]["web_search_requests"], 1,
                "{what}"
            );
            assert_searched_by(source == Source::Anthropic, &backend, &what);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openai_sdk_gets_web_search_calls_from_every_source() {
    let request = json!({
        "model": "gpt-5.5",
        "input": "What is the latest aiohttp release?",
        "tools": [{"type": "web_search"}]
    });
    for source in SOURCES {
        for mode in ["responses", "responses_stream"] {
            let what = format!("{source:?} source, {mode}");
            let (backend, provider) = (searxng().await, provider(source).await);
            let proxy = proxy(source, &provider, &backend);
            let (base, req) = (proxy.url("/v1"), request.clone());
            let out = off_runtime(move || openai_sdk(&base, KEY, mode, &req)).await;
            let output = out["response"]["output"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: {out}"));
            let call = &output[0];
            assert_eq!(call["type"], "web_search_call", "{what}: {out}");
            assert_eq!(call["status"], "completed", "{what}");
            assert_eq!(call["action"]["query"], QUERY, "{what}");
            assert_eq!(
                call["action"]["sources"][0]["url"], CHANGELOG,
                "{what}: {out}"
            );
            assert_eq!(out["output_text"], ANSWER, "{what}");
            let annotation = &output[1]["content"][0]["annotations"][0];
            assert_eq!(annotation["type"], "url_citation", "{what}: {out}");
            assert_eq!(annotation["url"], CHANGELOG, "{what}");
            assert_eq!(
                (
                    annotation["start_index"].as_u64(),
                    annotation["end_index"].as_u64()
                ),
                (Some(38), Some(85)),
                "{what}"
            );
            assert_searched_by(source == Source::Responses, &backend, &what);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_genai_sdk_gets_grounding_from_every_source() {
    let request = json!({
        "model": "gemini-3-flash-preview",
        "contents": "What is the latest aiohttp release?",
        "config": {"tools": [{"google_search": {}}]}
    });
    for source in SOURCES {
        for mode in ["generate", "stream"] {
            let what = format!("{source:?} source, {mode}");
            let (backend, provider) = (searxng().await, provider(source).await);
            let proxy = proxy(source, &provider, &backend);
            let (base, req) = (proxy.url(""), request.to_string());
            let out =
                off_runtime(move || run_python("gemini_client.py", &[&base, KEY, mode, &req]))
                    .await;
            assert_eq!(out["text"], ANSWER, "{what}: {out}");
            let grounding = &out["grounding"];
            assert_eq!(
                grounding["web_search_queries"],
                json!([QUERY]),
                "{what}: {out}"
            );
            assert_eq!(
                grounding["grounding_chunks"][0]["web"],
                json!({"uri": CHANGELOG, "title": TITLE}),
                "{what}: {out}"
            );
            let support = &grounding["grounding_supports"][0];
            assert_eq!(
                support["grounding_chunk_indices"],
                json!([0]),
                "{what}: {out}"
            );
            assert_searched_by(source == Source::Gemini, &backend, &what);
        }
    }
}
