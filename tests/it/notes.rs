//! Translation notes (docs/inspector.md, #29) through the real proxy: a Claude Code-style
//! request onto an OpenAI Chat source with `inspect: { keep, header: true }` answers with
//! `x-flexiproxy-notes`, its access log line carries the count and the first notes, and the
//! inspector keeps all of them with their paths (API, listing count); a passthrough exchange
//! (Anthropic onto an Anthropic source) has none.

use crate::harness::*;
use crate::management::{Auth, TOKEN, call, login, page_as};
use flexiproxy_testkit::{FakeProvider, Reply, anthropic, openai};
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// A proxy with two inspected adapters answering `x-flexiproxy-notes`: `chat` (an OpenAI
/// Chat source with `max_tokens_limit: 8192`) and `same` (an Anthropic-protocol source).
fn start(chat: &FakeProvider, same: &FakeProvider) -> Proxy {
    let proxy = crate::management::start("private_sources_allowed: [\"127.0.0.1\"]\n");
    let inspect = "owner: alice\ninspect: { keep: 10, header: true }\n";
    let chat_yaml = adapter_yaml(
        &chat.base_url(),
        &[KEY],
        "options:\n  max_tokens_limit: 8192",
    );
    proxy.write_adapter("chat", &format!("{inspect}{chat_yaml}"));
    let same_yaml = adapter_yaml(&same.origin(), &["same-key-1"], "protocol: anthropic");
    proxy.write_adapter("same", &format!("{inspect}{same_yaml}"));
    wait_until(DEADLINE, "both adapters load", || {
        let live = proxy.live.load();
        live.adapter("chat").is_some() && live.adapter("same").is_some()
    });
    proxy
}

/// What Claude Code sends, in small: cached system blocks, a server tool, a large max_tokens.
pub(crate) fn claude_code_request(marker: &str) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64000, "top_k": 5,
        "system": [{"type": "text", "text": "you are terse", "cache_control": {"type": "ephemeral"}}],
        "tools": [
            {"name": "read", "input_schema": {"type": "object", "properties": {}}},
            {"type": "web_search_20250305", "name": "web_search"}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": marker, "cache_control": {"type": "ephemeral"}}]}]})
}

async fn exchanges(proxy: &Proxy, adapter: &str) -> Vec<Value> {
    let path = format!("/admin/api/adapters/{adapter}/exchanges");
    let (status, body) = call(proxy, Method::GET, &path, None, &Auth::Token(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    body["exchanges"].as_array().cloned().unwrap_or_default()
}

async fn kept(proxy: &Proxy, adapter: &str) -> Value {
    let mut rows = Vec::new();
    for _ in 0..400 {
        rows = exchanges(proxy, adapter).await;
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let row = rows.first().expect("an exchange is kept").clone();
    let path = format!("/admin/api/adapters/{adapter}/exchanges/{}", row["id"]);
    let (status, whole) = call(proxy, Method::GET, &path, None, &Auth::Token(TOKEN)).await;
    assert_eq!(status, 200, "{whole}");
    json!({"row": row, "whole": whole})
}

fn log_line(proxy: &Proxy, marker: &str) -> Value {
    let mut line = None;
    wait_until(DEADLINE, "the access log line", || {
        line = proxy
            .access_log()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|l| l["adapter"] == marker);
        line.is_some()
    });
    line.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn notes_reach_the_header_the_access_log_and_the_inspector() {
    let chat = FakeProvider::start(|_| Reply::json(200, openai::chat_completion("done"))).await;
    let same = FakeProvider::start(|_| Reply::json(200, anthropic::message("same"))).await;
    let proxy = start(&chat, &same);

    let resp = post_messages(&proxy, &claude_code_request("translated")).await;
    assert_eq!(resp.status(), 200);
    let header = resp.headers()["x-flexiproxy-notes"]
        .to_str()
        .unwrap()
        .to_owned();
    resp.text().await.unwrap();
    // tools[1] web_search, cache_control ×2, max_tokens clamped, top_k dropped.
    assert_eq!(header, "4");
    let sent = chat.requests()[0].json();
    assert_eq!(
        sent["max_tokens"], 8192,
        "the clamp the note names happened"
    );

    let line = log_line(&proxy, "chat");
    assert_eq!(line["notes"], 4, "{line}");
    let first: Vec<&str> = line["notes_first"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(
        first,
        [
            "tools[1] web_search_20250305 dropped: no server tools on this source",
            "cache_control dropped ×2",
            "max_tokens 64000 clamped to 8192",
        ],
        "the first three, in order"
    );

    let exchange = kept(&proxy, "chat").await;
    assert_eq!(exchange["row"]["notes"], 4);
    let notes = exchange["whole"]["notes"].as_array().unwrap();
    let paths: Vec<&str> = notes.iter().map(|n| n["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["tools[1]", "cache_control", "max_tokens", "top_k"]);
    assert_eq!(notes[1]["count"], 2);
    assert_eq!(notes[3]["text"], "top_k dropped");

    // Passthrough: nothing translated, nothing noted.
    let resp = client()
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", "same-key-1")
        .header("anthropic-version", "2023-06-01")
        .json(&claude_code_request("passed through"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-flexiproxy-notes"], "0");
    resp.text().await.unwrap();
    let line = log_line(&proxy, "same");
    assert!(
        line.get("notes").is_none() && line.get("notes_first").is_none(),
        "{line}"
    );
    let exchange = kept(&proxy, "same").await;
    assert_eq!(exchange["row"]["notes"], 0);
    assert_eq!(exchange["whole"]["notes"], json!([]));
    assert_eq!(
        same.requests()[0].json()["tools"][1]["type"],
        "web_search_20250305",
        "the passthrough sent the server tool on"
    );
}

/// A note carries what the client sent (here a server tool's type): the access log writes it
/// as JSON and the Exchanges page as text, never as markup.
#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_value_in_a_note_is_text_on_the_exchanges_page() {
    const HOSTILE: &str = "<img src=x onerror=alert(1)>";
    let chat = FakeProvider::start(|_| Reply::json(200, openai::chat_completion("done"))).await;
    let same = FakeProvider::start(|_| Reply::json(200, anthropic::message("same"))).await;
    let proxy = start(&chat, &same);
    let mut request = claude_code_request("hostile");
    request["tools"][1]["type"] = json!(HOSTILE);
    let resp = post_messages(&proxy, &request).await;
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();

    let exchange = kept(&proxy, "chat").await;
    assert!(
        exchange["whole"]["notes"].to_string().contains(HOSTILE),
        "the note names what was dropped: {exchange}"
    );
    let line = log_line(&proxy, "chat");
    assert!(line["notes_first"].to_string().contains(HOSTILE), "{line}");

    let (cookie, _) = login(&proxy, "alice", "alice-password").await;
    let html = page_as(&proxy, "/adapters/chat/exchanges", &cookie).await;
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "shown, escaped: {html}"
    );
    assert!(!html.contains(HOSTILE), "never as markup");
}
