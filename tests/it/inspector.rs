//! The inspector (docs/inspector.md, #29) over real HTTP: a proxy on a fake provider keeps the
//! last `inspect.keep` exchanges of an adapter in order, bodies capped with the cut marked, a
//! stream as its events, every secret masked (canary keys in headers, `?key=`, bodies and the
//! provider's echo), visible to the owner and admins only, within its memory bound.

use crate::harness::*;
use crate::management::{Auth, TOKEN, call, login};
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use reqwest::Method;
use serde_json::{Value, json};

/// A canary in the client's cookie header.
const COOKIE_CANARY: &str = "cookie-canary-4e1d";

/// A provider that answers the client's last message back, with the authorization it got.
async fn echo_provider() -> FakeProvider {
    FakeProvider::start(|req| {
        let body = req.json();
        let said = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .map(|m| m["content"].to_string())
            .unwrap_or_default();
        let auth = req.header("authorization").unwrap_or_default().to_owned();
        let text = format!("you said {said} with {auth}");
        if body["stream"] == true {
            Reply::sse(openai::text_stream(&text, 3))
        } else {
            Reply::json(200, openai::chat_completion(&text))
        }
    })
    .await
}

/// A proxy with the admin token, users alice (owner of `insp`) and bob, its server config
/// extended by `extra`.
fn start(provider: &FakeProvider, keep: usize, extra: &str) -> Proxy {
    let proxy = crate::management::start(&format!(
        "private_sources_allowed: [\"127.0.0.1\"]\n{extra}"
    ));
    let mut yaml = adapter_yaml(&provider.base_url(), &[KEY], "");
    yaml.insert_str(0, &format!("owner: alice\ninspect: {{ keep: {keep} }}\n"));
    proxy.write_adapter("insp", &yaml);
    wait_until(DEADLINE, "the inspected adapter loads", || {
        proxy.live.load().adapter("insp").is_some()
    });
    proxy
}

const DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

async fn list(proxy: &Proxy, auth: &Auth) -> (u16, Value) {
    call(
        proxy,
        Method::GET,
        "/admin/api/adapters/insp/exchanges",
        None,
        auth,
    )
    .await
}

async fn detail(proxy: &Proxy, id: &Value, auth: &Auth) -> (u16, Value) {
    call(
        proxy,
        Method::GET,
        &format!("/admin/api/adapters/insp/exchanges/{id}"),
        None,
        auth,
    )
    .await
}

fn say(text: &str, stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": text}]})
}

/// The exchanges are kept once `logging` ran, just after the answer: wait for `n`.
async fn wait_for(proxy: &Proxy, n: usize) -> Vec<Value> {
    let token = Auth::Token(TOKEN);
    for _ in 0..200 {
        let (status, body) = list(proxy, &token).await;
        assert_eq!(status, 200, "{body}");
        let rows = body["exchanges"].as_array().cloned().unwrap_or_default();
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} exchanges kept");
}

/// The first exchange kept after `after` (its id), whole.
async fn next_after(proxy: &Proxy, after: u64) -> Value {
    for _ in 0..200 {
        let rows = wait_for(proxy, 1).await;
        if let Some(id) = rows[0]["id"].as_u64().filter(|id| *id > after) {
            return detail(proxy, &json!(id), &Auth::Token(TOKEN)).await.1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no exchange kept after {after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keeps_the_last_n_in_order_capped_and_streams_as_events() {
    let provider = echo_provider().await;
    let proxy = start(&provider, 3, "");
    let mut last = 0;
    for i in 0..5 {
        let resp = post_messages(&proxy, &say(&format!("message-{i}"), false)).await;
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap();
        // Kept in `logging`, just after the answer.
        last = next_after(&proxy, last).await["id"].as_u64().unwrap();
    }
    let rows = wait_for(&proxy, 3).await;
    assert_eq!(rows.len(), 3, "keep: 3 keeps three");
    let ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    for (row, i) in rows.iter().zip([4, 3, 2]) {
        assert_eq!(row["status"], 200);
        assert_eq!(row["model"], "claude-sonnet-4-5");
        let (status, e) = detail(&proxy, &row["id"], &Auth::Token(TOKEN)).await;
        assert_eq!(status, 200);
        let needle = format!("message-{i}");
        assert!(
            e["client_request"]["body"]["text"]
                .as_str()
                .unwrap()
                .contains(&needle)
        );
        let sent = &e["provider_request"];
        assert!(sent["url"].as_str().unwrap().ends_with("/chat/completions"));
        assert!(sent["body"]["text"].as_str().unwrap().contains(&needle));
        assert!(
            e["provider_response"]["body"]["text"]
                .as_str()
                .unwrap()
                .contains("chat.completion")
        );
        let answer = e["client_response"]["body"]["text"].as_str().unwrap();
        assert!(
            answer.contains("\"type\":\"message\"") && answer.contains(&needle),
            "{answer}"
        );
        assert_eq!(e["attempts"], 1);
        assert_eq!(e["provider_model"], "fake-model");
        let t = &e["timings"];
        assert!(t["connected_ms"].as_u64().unwrap() <= t["first_byte_ms"].as_u64().unwrap());
        assert!(t["first_byte_ms"].as_u64().unwrap() <= t["last_byte_ms"].as_u64().unwrap());
    }

    // A body past 256 KiB: cut, marked, its size told.
    let big = "x".repeat(300 * 1024);
    let resp = post_messages(&proxy, &say(&big, false)).await;
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    let e = next_after(&proxy, ids[0]).await;
    let body = &e["client_request"]["body"];
    assert_eq!(body["cut"], true);
    assert!(body["size"].as_u64().unwrap() > 300 * 1024);
    assert_eq!(body["text"].as_str().unwrap().len(), 256 * 1024);
    assert_eq!(e["provider_request"]["body"]["cut"], true);

    // A stream: both answers as their events.
    let resp = post_messages(&proxy, &say("stream me", true)).await;
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    let e = next_after(&proxy, e["id"].as_u64().unwrap()).await;
    assert_eq!(e["stream"], true);
    let provider_events = e["provider_response"]["events"].as_array().unwrap();
    assert!(provider_events.len() >= 4, "{provider_events:?}");
    assert!(
        provider_events
            .iter()
            .all(|ev| ev.as_str().unwrap().starts_with("data:"))
    );
    let client_events: Vec<&str> = e["client_response"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        client_events[0].starts_with("event: message_start"),
        "{client_events:?}"
    );
    assert!(
        client_events
            .iter()
            .any(|ev| ev.starts_with("event: message_stop"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_masked_everywhere_kept() {
    let provider = echo_provider().await;
    let proxy = start(&provider, 10, "");
    // The client's key in x-api-key, a cookie, the body; the provider echoes its own.
    let resp = client()
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("authorization", format!("Bearer {KEY}"))
        .header("cookie", format!("session={COOKIE_CANARY}"))
        .header("anthropic-version", "2023-06-01")
        .json(&say(
            &format!("my key is {KEY} and theirs {PROVIDER_KEY}"),
            false,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    // A Gemini client with `?key=`, streamed.
    let resp = client()
        .post(proxy.url(&format!(
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse&key={KEY}"
        )))
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": format!("again {KEY}")}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    let rows = wait_for(&proxy, 2).await;
    let mut seen_query = false;
    for row in &rows {
        let (status, e) = detail(&proxy, &row["id"], &Auth::Token(TOKEN)).await;
        assert_eq!(status, 200);
        let text = e.to_string();
        for canary in [KEY, PROVIDER_KEY, COOKIE_CANARY] {
            assert!(!text.contains(canary), "{canary} kept in {text}");
        }
        // What was masked is still there, as ***.
        assert!(text.contains("***"));
        seen_query |= e["path"].as_str().unwrap().contains("key=***");
        let headers = e["provider_request"]["headers"].as_array().unwrap();
        assert!(
            headers
                .iter()
                .any(|h| h[0] == "authorization" && h[1] == "***"),
            "{headers:?}"
        );
    }
    assert!(seen_query, "the Gemini request's ?key= is kept masked");
    // The provider did get (and echo) the real key: masking is the inspector's own.
    assert!(
        provider
            .requests()
            .iter()
            .any(|r| r.header("authorization") == Some(&*format!("Bearer {PROVIDER_KEY}")))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_owner_and_admins_see_the_exchanges() {
    let provider = echo_provider().await;
    let proxy = start(&provider, 5, "");
    let resp = post_messages(&proxy, &messages_body(false)).await;
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    let rows = wait_for(&proxy, 1).await;
    let id = &rows[0]["id"];
    let (alice, _) = login(&proxy, "alice", "alice-password").await;
    let alice = Auth::Session(alice, None);
    assert_eq!(
        list(&proxy, &alice).await.1["exchanges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(detail(&proxy, id, &alice).await.0, 200);
    let (carol, _) = login(&proxy, "carol", "carol-password").await;
    assert_eq!(detail(&proxy, id, &Auth::Session(carol, None)).await.0, 200);
    let (bob, _) = login(&proxy, "bob", "bob-password").await;
    let bob = Auth::Session(bob, None);
    let (status, body) = list(&proxy, &bob).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = detail(&proxy, id, &bob).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(list(&proxy, &Auth::None).await.0, 401);

    // The panel's Exchanges page: the same visibility, in both languages.
    let page = |cookie: String, lang: &'static str, path: &'static str| {
        let proxy = &proxy;
        async move {
            let resp = client()
                .get(proxy.admin_url(path))
                .header("cookie", format!("fp_session={cookie}; lang={lang}"))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (alice, _) = login(&proxy, "alice", "alice-password").await;
    let (status, html) = page(alice.clone(), "en", "/adapters/insp/exchanges").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Exchanges of insp") && html.contains("id=\"exchange-list\""));
    assert!(html.contains("Client → proxy") && html.contains("Provider → proxy"));
    assert!(
        html.contains("chat.completion"),
        "the provider's answer is shown"
    );
    assert!(!html.contains(KEY) && !html.contains(PROVIDER_KEY));
    let (_, zh) = page(alice.clone(), "zh", "/adapters/insp/exchanges").await;
    assert!(
        zh.contains("insp 的请求记录") && zh.contains("服务商 → 代理"),
        "{zh}"
    );
    let (_, edit) = page(alice, "en", "/adapters/insp/edit").await;
    assert!(edit.contains("href=\"/adapters/insp/exchanges\""));
    let (bob, _) = login(&proxy, "bob", "bob-password").await;
    assert_eq!(page(bob, "en", "/adapters/insp/exchanges").await.0, 404);

    // The CLI reads the same from the running server with the admin token.
    let cli = |args: Vec<String>| {
        let config = proxy.config_path();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
                .args(["adapter", "inspect", "insp", "--config"])
                .arg(config)
                .args(args)
                .env("FLEXIPROXY_ADMIN_TOKEN", TOKEN)
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let lines = cli(vec![]).await;
    assert!(
        lines.contains(&format!("{id}")) && lines.contains("claude-sonnet-4-5"),
        "{lines}"
    );
    let whole: Value =
        serde_json::from_str(&cli(vec!["--id".into(), id.to_string()]).await).unwrap();
    assert_eq!(whole["id"], *id);
    assert!(
        whole["client_response"]["body"]["text"]
            .as_str()
            .unwrap()
            .contains("message")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_stays_within_the_bound() {
    const CAP: u64 = 700_000;
    let provider = echo_provider().await;
    let proxy = start(
        &provider,
        50,
        &format!("inspect:\n  memory: {CAP}\n  per_adapter: {CAP}\n"),
    );
    // 75 KB requests: the client's and the provider's request bodies, kept, ~150 KB each.
    let body = say(&"y".repeat(75_000), false);
    for i in 0..20 {
        let resp = post_messages(&proxy, &body).await;
        assert_eq!(resp.status(), 200, "request {i}");
        resp.text().await.unwrap();
    }
    let mut kept = 0;
    let mut last = json!(null);
    for _ in 0..200 {
        let (_, listing) = list(&proxy, &Auth::Token(TOKEN)).await;
        let memory = &listing["memory"];
        assert!(memory["used"].as_u64().unwrap() <= CAP, "{memory}");
        assert_eq!(memory["cap"].as_u64().unwrap(), CAP);
        let rows = listing["exchanges"].as_array().unwrap();
        kept = rows.len();
        last = rows.first().map_or(json!(null), |r| r["id"].clone());
        if last == json!(20) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(last, json!(20), "the newest exchange is kept");
    assert!(
        (2..20).contains(&kept),
        "older exchanges made room: {kept} kept"
    );
}
