//! The inspector's Exchanges page in a real browser: `tests/e2e/exchanges_browser.py` drives
//! headless Chromium (the setup `panel_browser.py` uses) on a proxy whose adapter kept a
//! translated exchange with notes and a streamed one: the list (time, model, status, duration,
//! tokens, notes count), one exchange with its notes highlighted and the two sides next to
//! each other, a stream as lists of events, and 404 for another user. Its screenshot is
//! `docs/panel-exchanges.png` (refreshed with `FLEXIPROXY_PANEL_DOCS=1`).

use crate::clients::repo_root;
use crate::harness::*;
use crate::management::{Auth, TOKEN, call};
use crate::panel_browser::{browser_installed, copy_to_docs};
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

const MODEL: &str = "claude-sonnet-4-5";

#[tokio::test(flavor = "multi_thread")]
async fn exchanges_page_in_a_real_browser() {
    browser_installed().unwrap_or_else(|e| panic!("{e}"));
    let provider = FakeProvider::start(|req| {
        if req.json()["stream"] == true {
            Reply::sse(openai::text_stream("streamed answer", 3))
        } else {
            Reply::json(200, openai::chat_completion("done"))
        }
    })
    .await;
    let proxy = crate::management::start("private_sources_allowed: [\"127.0.0.1\"]\n");
    let yaml = adapter_yaml(
        &provider.base_url(),
        &[KEY],
        "options:\n  max_tokens_limit: 8192",
    );
    proxy.write_adapter(
        "insp",
        &format!("owner: alice\ninspect: {{ keep: 10 }}\n{yaml}"),
    );
    wait_until(Duration::from_secs(10), "the adapter loads", || {
        proxy.live.load().adapter("insp").is_some()
    });
    let resp = post_messages(&proxy, &crate::notes::claude_code_request("noted")).await;
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    let resp = post_messages(&proxy, &messages_body(true)).await;
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();

    // Both kept (in `logging`, just after each answer).
    let path = "/admin/api/adapters/insp/exchanges";
    wait_until_async(Duration::from_secs(10), "both exchanges kept", || {
        let proxy = &proxy;
        async move {
            let (_, body) = call(proxy, Method::GET, path, None, &Auth::Token(TOKEN)).await;
            body["exchanges"].as_array().is_some_and(|r| r.len() >= 2)
        }
    })
    .await;
    let (_, body) = call(&proxy, Method::GET, path, None, &Auth::Token(TOKEN)).await;
    let rows = body["exchanges"].as_array().unwrap();
    let noted = rows.iter().find(|r| r["notes"].as_u64() > Some(0)).unwrap();
    let streamed = rows.iter().find(|r| r["stream"] == true).unwrap();
    let detail = format!("{path}/{}", noted["id"]);
    let (_, whole) = call(&proxy, Method::GET, &detail, None, &Auth::Token(TOKEN)).await;
    let notes: Vec<&str> = whole["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert_eq!(notes.len(), 4, "{whole}");

    let shots = repo_root().join("target/exchanges-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let config = json!({
        "panel": proxy.admin_url(""),
        "adapter": "insp",
        "owner": ["alice", "alice-password"],
        "other": ["bob", "bob-password"],
        "noted": noted["id"],
        "notes": notes,
        "streamed": streamed["id"],
        "model": MODEL,
        "shots": shots,
    });
    let out = tokio::task::spawn_blocking(move || {
        crate::clients::run_python("exchanges_browser.py", &[&config.to_string()])
    })
    .await
    .unwrap();
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["seen"]["notes"], json!(notes));
    assert_eq!(out["seen"]["listed"]["Notes"], "4");
    assert_eq!(out["seen"]["other_status"], 404);
    copy_to_docs(&shots, &[("-exchanges.png", "docs/panel-exchanges.png")]);
}
