//! Native web search of providers that search behind another protocol (docs/web-search.md,
//! "Native search"): which sources have it, how the provider request asks for it, and what
//! the provider's answer says it found, read back into searches — so a client gets its own
//! search blocks, grounding or `web_search_call` items from the provider's search as it does
//! from the gateway's.
//!
//! - OpenRouter (Chat): the `openrouter:web_search` server tool (its successor to the
//!   deprecated `plugins: [{id: "web"}]`); the answer's `message.annotations` are
//!   `url_citation`s (url, title, content).
//! - DashScope (Qwen, Chat): `enable_search: true` with `search_options.enable_source`; the
//!   sources, when it returns them, in `search_info.search_results`.
//! - OpenAI and xAI Responses: the hosted `web_search` tool; `web_search_call` items (query,
//!   sources) and `url_citation` annotations.
//!
//! Everything is read leniently: a field missing or of another type is skipped.

use super::{MAX_SNIPPET_CHARS, clean_text, str_field};
use crate::config::adapter::{Source, SourceProtocol};
use crate::protocol::web_search::{Hit, HostedSearch};
use serde_json::{Map, Value, json};

/// How a source searches the web itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    OpenRouter,
    DashScope,
    Responses,
}

/// The source's own search, if its preset has one for `model` (a model whose facts say it
/// cannot search has none).
pub fn of(source: &Source, model: &str) -> Option<Native> {
    let preset = source.preset?;
    let cannot = crate::config::presets::by_name(preset)
        .and_then(|p| p.model(model).and_then(|m| m.web_search))
        == Some(false);
    match (source.protocol, preset) {
        _ if cannot => None,
        (SourceProtocol::OpenAi, "openrouter") => Some(Native::OpenRouter),
        (SourceProtocol::OpenAi, "dashscope") => Some(Native::DashScope),
        (SourceProtocol::Responses, "openai" | "xai") => Some(Native::Responses),
        _ => None,
    }
}

/// The provider request `body` with the source's search asked for; `None` when the body is
/// not a JSON object.
pub fn ask(native: Native, body: &[u8], hosted: &HostedSearch) -> Option<Vec<u8>> {
    let mut request: Value = serde_json::from_slice(body).ok()?;
    let object = request.as_object_mut()?;
    match native {
        Native::OpenRouter => push_tool(
            object,
            json!({"type": "openrouter:web_search", "parameters": {"max_uses": hosted.max_uses}}),
        ),
        Native::DashScope => {
            object.insert("enable_search".into(), json!(true));
            object.insert("search_options".into(), json!({"enable_source": true}));
        }
        Native::Responses => {
            let mut tool = json!({"type": "web_search"});
            if !hosted.allowed_domains.is_empty() {
                tool["filters"] = json!({ "allowed_domains": hosted.allowed_domains });
            }
            push_tool(object, tool);
        }
    }
    serde_json::to_vec(&request).ok()
}

fn push_tool(object: &mut Map<String, Value>, tool: Value) {
    match object.get_mut("tools").and_then(Value::as_array_mut) {
        Some(tools) => tools.push(tool),
        None => {
            object.insert("tools".into(), json!([tool]));
        }
    }
}

/// The searches the provider's answer `body` reports: (query, results) each, the results
/// within the client's domain filters. `query`: what to call a search whose query the
/// provider does not say (the client's question).
pub fn found(
    native: Native,
    body: &[u8],
    query: &str,
    hosted: &HostedSearch,
) -> Vec<(String, Vec<Hit>)> {
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let mut searches = match native {
        Native::OpenRouter => {
            let message = &answer["choices"][0]["message"];
            let hits = citations(message["annotations"].as_array());
            let asked = answer["usage"]["server_tool_use_details"]["web_search_requests"]
                .as_u64()
                .unwrap_or(0);
            one_search(query, hits, asked > 0)
        }
        Native::DashScope => {
            let results = answer["search_info"]["search_results"].as_array();
            let hits = results
                .into_iter()
                .flatten()
                .map(|r| hit(str_field(r, "url"), str_field(r, "title"), ""))
                .collect();
            one_search(query, hits, answer.get("search_info").is_some())
        }
        Native::Responses => responses_searches(&answer, query),
    };
    for (_, hits) in &mut searches {
        hits.retain(|h| {
            (h.url.starts_with("https://") || h.url.starts_with("http://")) && hosted.allows(&h.url)
        });
        let mut seen = std::collections::HashSet::new();
        hits.retain(|h| seen.insert(h.url.clone()));
    }
    searches
}

/// A search whose query the provider does not name: there when it found something or says
/// it searched.
fn one_search(query: &str, hits: Vec<Hit>, searched: bool) -> Vec<(String, Vec<Hit>)> {
    if hits.is_empty() && !searched {
        return Vec::new();
    }
    vec![(query.to_owned(), hits)]
}

fn hit(url: &str, title: &str, snippet: &str) -> Hit {
    Hit {
        url: url.to_owned(),
        title: clean_text(if title.is_empty() { url } else { title }, 300),
        snippet: clean_text(snippet, MAX_SNIPPET_CHARS),
        page_age: None,
    }
}

/// `url_citation` annotations, flat (Responses) or nested (Chat: `{url_citation: {…}}`).
fn citations(annotations: Option<&Vec<Value>>) -> Vec<Hit> {
    annotations
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == "url_citation")
        .map(|a| {
            let c = a.get("url_citation").unwrap_or(a);
            hit(
                str_field(c, "url"),
                str_field(c, "title"),
                str_field(c, "content"),
            )
        })
        .collect()
}

/// A Responses answer's `web_search_call` items (their sources titled from the message's
/// citations), or one search for citations without an item.
fn responses_searches(answer: &Value, query: &str) -> Vec<(String, Vec<Hit>)> {
    let output = answer["output"].as_array().map_or(&[][..], Vec::as_slice);
    let cited: Vec<Hit> = output
        .iter()
        .filter(|i| i["type"] == "message")
        .filter_map(|i| i["content"].as_array())
        .flatten()
        .flat_map(|part| citations(part["annotations"].as_array()))
        .collect();
    let calls: Vec<&Value> = output
        .iter()
        .filter(|i| i["type"] == "web_search_call")
        .collect();
    if calls.is_empty() {
        return one_search(query, cited, false);
    }
    calls
        .into_iter()
        .map(|call| {
            let action = &call["action"];
            let asked = str_field(action, "query");
            let sources = action["sources"].as_array().into_iter().flatten();
            let mut hits: Vec<Hit> = sources
                .map(|s| {
                    let url = str_field(s, "url");
                    let title = cited.iter().find(|c| c.url == url).map_or("", |c| &c.title);
                    hit(url, title, "")
                })
                .collect();
            if hits.is_empty() {
                hits = cited.clone();
            }
            let asked = if asked.is_empty() { query } else { asked };
            (asked.to_owned(), hits)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::pair::Wire;

    fn hosted(blocked: &[&str]) -> HostedSearch {
        HostedSearch {
            client: Wire::AnthropicMessages,
            max_uses: 3,
            allowed_domains: Vec::new(),
            blocked_domains: blocked.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn each_source_is_asked_its_own_way() {
        let body = br#"{"model":"m","messages":[],"tools":[{"type":"function"}]}"#;
        let asked: Value =
            serde_json::from_slice(&ask(Native::OpenRouter, body, &hosted(&[])).unwrap()).unwrap();
        assert_eq!(asked["tools"][1]["type"], "openrouter:web_search");
        assert_eq!(asked["tools"][1]["parameters"]["max_uses"], 3);
        let asked: Value =
            serde_json::from_slice(&ask(Native::DashScope, body, &hosted(&[])).unwrap()).unwrap();
        assert_eq!(asked["enable_search"], true);
        let asked: Value =
            serde_json::from_slice(&ask(Native::Responses, b"{}", &hosted(&[])).unwrap()).unwrap();
        assert_eq!(asked["tools"], json!([{"type": "web_search"}]));
        assert!(ask(Native::DashScope, b"[1]", &hosted(&[])).is_none());
    }

    #[test]
    fn openrouter_annotations_are_the_results_within_the_filters() {
        let answer = json!({"choices": [{"message": {"content": "x", "annotations": [
            {"type": "url_citation", "url_citation": {"url": "https://a.example/1", "title": "A", "content": "<b>snip</b>"}},
            {"type": "url_citation", "url_citation": {"url": "https://a.example/1", "title": "A"}},
            {"type": "url_citation", "url_citation": {"url": "https://blocked.example/", "title": "B"}},
            {"type": "url_citation", "url_citation": {"url": "javascript:alert(1)"}},
            {"type": "file", "file": {}}
        ]}}]});
        let body = answer.to_string();
        let found = found(
            Native::OpenRouter,
            body.as_bytes(),
            "q",
            &hosted(&["blocked.example"]),
        );
        assert_eq!(found.len(), 1);
        let (query, hits) = &found[0];
        assert_eq!(query, "q");
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(
            (hits[0].title.as_str(), hits[0].snippet.as_str()),
            ("A", "snip")
        );
    }

    #[test]
    fn no_search_reported_is_no_search() {
        let plain = json!({"choices": [{"message": {"content": "hi"}}]}).to_string();
        assert!(found(Native::OpenRouter, plain.as_bytes(), "q", &hosted(&[])).is_empty());
        assert!(found(Native::DashScope, plain.as_bytes(), "q", &hosted(&[])).is_empty());
        assert!(found(Native::Responses, b"not json", "q", &hosted(&[])).is_empty());
    }

    #[test]
    fn responses_items_keep_their_queries_and_take_titles_from_citations() {
        let answer = json!({"output": [
            {"type": "web_search_call", "status": "completed",
             "action": {"type": "search", "query": "rust 2024", "sources": [{"type": "url", "url": "https://r.example/"}]}},
            {"type": "message", "content": [{"type": "output_text", "text": "t",
             "annotations": [{"type": "url_citation", "url": "https://r.example/", "title": "Rust", "start_index": 0, "end_index": 1}]}]}
        ]});
        let body = answer.to_string();
        let found = found(Native::Responses, body.as_bytes(), "q", &hosted(&[]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "rust 2024");
        assert_eq!(found[0].1[0].title, "Rust");
    }
}
