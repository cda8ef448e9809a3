//! An attacker-style suite, kept in CI: a logged-in non-admin user (with a provider of their
//! own reachable through `private_sources_allowed`) tries every management route with
//! hostile values — YAML line separators, control characters, `${VAR}`, internal addresses in
//! every form, overlong values — and the other holes of the security review: concurrent
//! login guessing, names that leak, cross-site login forms. Each finding is reproduced as it
//! was reported and asserted closed; nothing may change a file or reach any address but the
//! allowed provider.

use crate::harness::*;
use crate::management::*;
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The user's own provider: on 127.0.0.2, the one address the operator allows.
async fn own_provider() -> FakeProvider {
    let addr: SocketAddr = format!("127.0.0.2:{}", free_port()).parse().unwrap();
    FakeProvider::builder()
        .listen(addr)
        .start(|_| Reply::json(200, openai::chat_completion("from the allowed provider")))
        .await
        .unwrap()
}

/// Where an attacker would like the operator's secrets to go: on 127.0.0.1, not allowed.
async fn their_host() -> FakeProvider {
    FakeProvider::start(|_| Reply::json(200, openai::chat_completion("leaked"))).await
}

fn snapshot_files(proxy: &Proxy) -> BTreeMap<String, String> {
    std::fs::read_dir(proxy.adapters_dir())
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

async fn alice(proxy: &Proxy) -> Auth {
    let (cookie, csrf) = login(proxy, "alice", "alice-password").await;
    Auth::Session(cookie, Some(csrf))
}

/// Alice's adapter on her own provider, and the key it issued.
async fn alice_adapter(proxy: &Proxy, auth: &Auth, own: &FakeProvider) -> String {
    let (status, body) = call(
        proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("alice-a", &own.base_url())),
        auth,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["api_key"].as_str().unwrap().to_owned()
}

async fn chat(proxy: &Proxy, key: &str) -> u16 {
    client()
        .post(proxy.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

const ALLOW: &str = "private_sources_allowed: [\"127.0.0.2\"]\n";

#[tokio::test(flavor = "multi_thread")]
async fn finding_1_yaml_injection_through_line_separators_is_refused() {
    let (own, theirs) = (own_provider().await, their_host().await);
    let proxy = start(ALLOW);
    let auth = alice(&proxy).await;
    let key = alice_adapter(&proxy, &auth, &own).await;
    let before = snapshot_files(&proxy);
    let injected = format!(
        "a\nb\u{2029}fallbacks:\u{2029}- base_url: \"{}\"\u{2029}  api_key: \"${{HOME}}\"",
        theirs.base_url()
    );
    let line_sep = injected.replace('\u{2029}', "\u{2028}");
    let nel = injected.replace(['\u{2029}', '\n'], "\u{85}");
    for model in [&injected, &line_sep, &nel] {
        let (status, body) = call(
            &proxy,
            Method::PATCH,
            "/admin/api/adapters/alice-a",
            Some(json!({ "model": model })),
            &auth,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("model"),
            "{body}"
        );
    }
    assert_eq!(snapshot_files(&proxy), before, "no file changed");
    assert_eq!(chat(&proxy, &key).await, 200);
    assert_eq!(theirs.request_count(), 0, "nothing went to their host");
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_1_a_users_file_with_env_references_anywhere_does_not_load() {
    let theirs = their_host().await;
    let proxy = start(ALLOW);
    let user_key = "fp-alice-hand-written-0001";
    // As if the injection had worked: a fallback reading the operator's environment.
    let text = format!(
        "owner: alice\nsource:\n  base_url: http://127.0.0.2:9/v1\n  api_key: sk-alice\n  model: m\n  \
         fallbacks:\n    - base_url: {}\n      api_key: \"${{HOME}}\"\nkeys:\n  - sha256: {}\n",
        theirs.base_url(),
        sha256_hex(user_key)
    );
    proxy.write_adapter("alice-env", &text);
    // The operator's own file (no owner) with the same reference loads: it is theirs.
    let operator_key = "fp-operator-0001";
    let operator =
        adapter_yaml(&theirs.base_url(), &[operator_key], "").replace(PROVIDER_KEY, "${HOME}");
    proxy.write_adapter("operator", &operator);
    wait_status(
        DEADLINE,
        &proxy.url(""),
        operator_key,
        200,
        "the operator's adapter",
    )
    .await;
    assert_eq!(chat(&proxy, user_key).await, 401, "alice's file is refused");
    assert!(proxy.live.load().adapter("alice-env").is_none());
    // Only the operator's request reached that host, with the operator's key.
    let bearer = format!("Bearer {}", std::env::var("HOME").unwrap_or_default());
    let seen = theirs.requests();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|r| r.header("authorization") == Some(bearer.as_str()))
    );
    // An admin owner may: carol is one.
    proxy.write_adapter(
        "carol-env",
        &text
            .replace("owner: alice", "owner: carol")
            .replace(&sha256_hex(user_key), &sha256_hex("fp-carol-0001")),
    );
    wait_status(
        DEADLINE,
        &proxy.url(""),
        "fp-carol-0001",
        200,
        "carol's adapter loaded",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_2_concurrent_wrong_logins_get_exactly_five_checks() {
    let proxy = start("");
    let attempts = (0..100).map(|_| post_login(&proxy, "bob", "wrong-password"));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, limited), (5, 95), "{statuses:?}");
    // Per address too: other names from the same address are limited now.
    let r = post_login(&proxy, "alice", "alice-password").await;
    assert_eq!(r.status(), 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn names_are_bounded_and_never_tell_whose_they_are() {
    let own = own_provider().await;
    let proxy = start(ALLOW);
    let auth = alice(&proxy).await;
    alice_adapter(&proxy, &auth, &own).await;
    let (cookie, csrf) = login(&proxy, "bob", "bob-password").await;
    let bob = Auth::Session(cookie, Some(csrf));
    let long = "n".repeat(300);
    let mut answers = Vec::new();
    for name in ["alice-a", long.as_str(), "bad name!", "../x"] {
        let (status, body) = call(
            &proxy,
            Method::POST,
            "/admin/api/adapters",
            Some(create_body(name, &own.base_url())),
            &bob,
        )
        .await;
        let text = body.to_string();
        assert!(
            !text.contains('/') && !text.contains(&std::process::id().to_string()),
            "{text}"
        );
        answers.push((status, body));
    }
    assert_eq!(answers[0].0, 400);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    // The admin token is told what is wrong, with no path either.
    let (status, body) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body(&long, &own.base_url())),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("64"), "{body}");
    let (status, _) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("alice-a", &own.base_url())),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_forms_from_another_origin_are_refused() {
    let proxy = start("");
    let post = |headers: Vec<(&'static str, String)>| {
        let mut req = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(proxy.admin_url("/login"))
            .form(&[("user", "bob"), ("password", "bob-password")]);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let r = post(vec![("origin", origin.to_owned())]).await.unwrap();
        assert_eq!(r.status(), 403, "{origin}");
        assert!(r.headers().get("set-cookie").is_none());
    }
    let r = post(vec![("sec-fetch-site", "same-site".to_owned())])
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let own_origin = format!("http://{}", proxy.admin);
    let r = post(vec![("origin", own_origin)]).await.unwrap();
    assert_eq!(r.status(), 303, "the panel's own form logs in");
}

/// A create body with a pool and a route on the allowed provider: every string the new
/// fields take, at a pointer the hostile loop replaces.
fn routed_body(name: &str, url: &str) -> Value {
    json!({"name": name, "source": {"base_url": url, "api_keys": ["sk-a", {"key": "sk-b", "label": "b"}],
           "model": "m"},
           "routes": [{"name": "r", "when": {"model": "claude-*"}, "source": {"base_url": url,
           "api_key": "sk-r", "preset": "deepseek", "model": "m",
           "model_map": [{"match": "claude-*", "model": "m"}]}}]})
}

/// Every way of writing an address of the operator's network that the review found, plus
/// the classics.
fn internal_urls(port: u16) -> Vec<String> {
    [
        "[::127.0.0.1]",
        "[::ffff:0:7f00:1]",
        "[::ffff:127.0.0.1]",
        "[2002:7f00:1::1]",
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
        "[64:ff9b::7f00:1]",
        "[::1]",
        "198.18.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "169.254.169.254",
        "0.0.0.0",
        "127.0.0.1",
        "10.0.0.1",
    ]
    .iter()
    .map(|h| format!("http://{h}:{port}/v1"))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_hostile_values_and_changes_nothing() {
    let (own, theirs) = (own_provider().await, their_host().await);
    let proxy = start(ALLOW);
    let auth = alice(&proxy).await;
    let key = alice_adapter(&proxy, &auth, &own).await;
    let before = snapshot_files(&proxy);
    let overlong = "x".repeat(10_000);
    let hostile: Vec<String> = [
        "a\nfallbacks:",
        "a\r\nb",
        "a\u{2028}b",
        "a\u{2029}b",
        "a\u{85}b",
        "\0",
        "a\u{1b}[2J",
        "\u{7f}",
        "\u{feff}m",
        "m\u{202e}",
        "${HOME}",
        "x${PATH}y",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([overlong.clone()])
    .collect();
    let port = theirs.addr().port();
    let mut tried = 0;
    let mut expect_refused = |status: u16, body: &Value, what: &str| {
        tried += 1;
        assert!((400..500).contains(&status), "{what}: {status} {body}");
    };
    // Create: every string field.
    for value in &hostile {
        for field in [
            "/name",
            "/label",
            "/source/model",
            "/source/api_key",
            "/source/base_url",
            "/source/protocol",
            "/source/preset",
            "/source/model_map/0/match",
            "/source/model_map/0/model",
            "/owner",
        ] {
            let mut body = create_body("alice-b", &own.base_url());
            body["source"]["model_map"] = json!([{"match": "claude-*", "model": "m"}]);
            *body.pointer_mut(field).unwrap_or(&mut Value::Null) = json!(value);
            if body.pointer(field).is_none() {
                body["owner"] = json!(value);
            }
            let (status, resp) = call(
                &proxy,
                Method::POST,
                "/admin/api/adapters",
                Some(body),
                &auth,
            )
            .await;
            expect_refused(status, &resp, &format!("create {field}={value:?}"));
        }
        // The same for the pool and the routes.
        for field in [
            "/source/api_keys/0",
            "/source/api_keys/1/key",
            "/source/api_keys/1/label",
            "/routes/0/name",
            "/routes/0/when/model",
            "/routes/0/source/model",
            "/routes/0/source/api_key",
            "/routes/0/source/base_url",
            "/routes/0/source/preset",
            "/routes/0/source/model_map/0/match",
            "/routes/0/source/model_map/0/model",
        ] {
            let mut body = routed_body("alice-b", &own.base_url());
            *body.pointer_mut(field).unwrap() = json!(value);
            let (status, resp) = call(
                &proxy,
                Method::POST,
                "/admin/api/adapters",
                Some(body.clone()),
                &auth,
            )
            .await;
            expect_refused(status, &resp, &format!("create {field}={value:?}"));
            let patch = json!({"routes": body["routes"], "api_keys": body["source"]["api_keys"]});
            let (status, resp) = call(
                &proxy,
                Method::PATCH,
                "/admin/api/adapters/alice-a",
                Some(patch),
                &auth,
            )
            .await;
            expect_refused(status, &resp, &format!("patch {field}={value:?}"));
        }
        // Edit and rotate.
        for patch in [
            json!({"model": value}),
            json!({"api_key": value}),
            json!({"base_url": value}),
            json!({"model_map": [{"match": value, "model": "m"}]}),
            json!({"model_map": [{"match": "c*", "model": value}]}),
        ] {
            let (status, resp) = call(
                &proxy,
                Method::PATCH,
                "/admin/api/adapters/alice-a",
                Some(patch.clone()),
                &auth,
            )
            .await;
            expect_refused(status, &resp, &format!("patch {patch}"));
        }
        for rotate in [json!({"label": value}), json!({"grace": value})] {
            let (status, resp) = call(
                &proxy,
                Method::POST,
                "/admin/api/adapters/alice-a/keys",
                Some(rotate.clone()),
                &auth,
            )
            .await;
            expect_refused(status, &resp, &format!("rotate {rotate}"));
        }
    }
    // Internal addresses in every form, at create and at edit.
    for url in internal_urls(port) {
        let (status, resp) = call(
            &proxy,
            Method::POST,
            "/admin/api/adapters",
            Some(create_body("alice-b", &url)),
            &auth,
        )
        .await;
        expect_refused(status, &resp, &format!("create at {url}"));
        let (status, resp) = call(
            &proxy,
            Method::PATCH,
            "/admin/api/adapters/alice-a",
            Some(json!({ "base_url": url })),
            &auth,
        )
        .await;
        expect_refused(status, &resp, &format!("patch to {url}"));
        let mut body = routed_body("alice-b", &own.base_url());
        body["routes"][0]["source"]["base_url"] = json!(url);
        let (status, resp) = call(
            &proxy,
            Method::POST,
            "/admin/api/adapters",
            Some(body.clone()),
            &auth,
        )
        .await;
        expect_refused(status, &resp, &format!("create a route at {url}"));
        let (status, resp) = call(
            &proxy,
            Method::PATCH,
            "/admin/api/adapters/alice-a",
            Some(json!({"routes": body["routes"]})),
            &auth,
        )
        .await;
        expect_refused(status, &resp, &format!("patch a route to {url}"));
    }
    assert!(tried > 200, "{tried}");
    assert_eq!(snapshot_files(&proxy), before, "no file changed");
    assert_eq!(chat(&proxy, &key).await, 200);
    assert_eq!(
        theirs.request_count(),
        0,
        "nothing reached any other address"
    );
    // A plain edit still works: the suite refuses hostile values, not edits.
    let (status, body) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/adapters/alice-a",
        Some(json!({"model": "deepseek-v4-flash", "model_map": [{"match": "claude-*haiku*", "model": "a: \"b\" #c"}]})),
        &auth,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let text = std::fs::read_to_string(proxy.adapters_dir().join("alice-a.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(doc["source"]["model_map"][0]["model"], "a: \"b\" #c");
}
