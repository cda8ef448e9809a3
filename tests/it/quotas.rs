//! Per-user quotas (issue #27) through a real listener: the default quota over all of a
//! user's adapters, a user's own quota in place of it, the 429 in each client protocol's
//! shape naming the quota and when it resets, one user over quota leaving another alone, and
//! `/admin/api/me`'s quota and usage. Several instances on a real Redis are in `scale`.

use crate::harness::*;
use crate::management::{Auth, DEADLINE, call, login, page_as, start};
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use reqwest::Method;
use serde_json::{Value, json};

const ALICE_KEY: &str = "fp-quota-alice-1";
const ALICE_OTHER_KEY: &str = "fp-quota-alice-2";
const BOB_KEY: &str = "fp-quota-bob";

fn owned(owner: &str, base_url: &str, key: &str) -> String {
    format!("owner: {owner}\n{}", adapter_yaml(base_url, &[key], ""))
}

/// One request in `protocol`'s own shape with `key`: its status, `retry-after` and body.
async fn ask(proxy: &Proxy, protocol: &str, key: &str) -> (u16, Option<String>, Value) {
    let c = client();
    let req = match protocol {
        "anthropic" => c
            .post(proxy.url("/v1/messages"))
            .header("x-api-key", key)
            .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 50,
                          "messages": [{"role": "user", "content": "hi"}]})),
        "openai" => c
            .post(proxy.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": "gpt-4o", "max_tokens": 50,
                          "messages": [{"role": "user", "content": "hi"}]})),
        "responses" => c
            .post(proxy.url("/v1/responses"))
            .bearer_auth(key)
            .json(&json!({"model": "gpt-5", "max_output_tokens": 50, "input": "hi"})),
        _ => c
            .post(proxy.url("/v1beta/models/gemini-2.5-pro:generateContent"))
            .header("x-goog-api-key", key)
            .json(
                &json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                          "generationConfig": {"maxOutputTokens": 50}}),
            ),
    };
    status_retry_body(req.send().await.unwrap()).await
}

/// The error message of a refusal in `protocol`'s shape, checking the shape on the way.
fn refusal_message<'a>(protocol: &str, body: &'a Value) -> &'a str {
    match protocol {
        "anthropic" => {
            assert_eq!(body["type"], "error", "{body}");
            assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
        }
        "openai" | "responses" => {
            assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
            assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
        }
        _ => {
            assert_eq!(body["error"]["code"], 429, "{body}");
            assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED", "{body}");
        }
    }
    body["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_over_quota_gets_429_in_every_client_shape_and_others_go_on() {
    let p = FakeProvider::start(|_| {
        let mut answer = openai::chat_completion("ok");
        answer["usage"] = openai::usage(10, 5);
        Reply::json(200, answer)
    })
    .await;
    let proxy = start(
        "accounts:\n  default_quota: { requests_per_day: 3, tokens_per_month: 1000000 }\n\
         private_sources_allowed: [127.0.0.1]\n",
    );
    // Bob's own quota replaces the default (set by an admin through the API).
    let (status, bob) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/users/bob",
        Some(json!({"quota": {"requests_per_day": 100}})),
        &Auth::Token(crate::management::TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{bob}");
    assert_eq!(bob["quota"]["requests_per_day"], 100, "{bob}");
    let (status, body) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/users/bob",
        Some(json!({"quota": {"cost_per_month": -1}})),
        &Auth::Token(crate::management::TOKEN),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    proxy.write_adapter("alice-1", &owned("alice", &p.base_url(), ALICE_KEY));
    proxy.write_adapter("alice-2", &owned("alice", &p.base_url(), ALICE_OTHER_KEY));
    proxy.write_adapter("bob-1", &owned("bob", &p.base_url(), BOB_KEY));
    wait_until(DEADLINE, "the adapters load", || {
        let live = proxy.live.load();
        ["alice-1", "alice-2", "bob-1"]
            .iter()
            .all(|a| live.adapter(a).is_some())
    });
    // The users file is re-read within a second of changing: wait until bob's quota is seen.
    wait_until_async(DEADLINE, "bob's own quota is read", || async {
        let (_, list) = call(
            &proxy,
            Method::GET,
            "/admin/api/users",
            None,
            &Auth::Token(crate::management::TOKEN),
        )
        .await;
        list.to_string().contains("\"requests_per_day\":100")
    })
    .await;
    let (cookie, csrf) = login(&proxy, "alice", "alice-password").await;
    let alice_cookie = cookie.clone();
    let alice = Auth::Session(cookie, Some(csrf));
    let (status, me) = call(&proxy, Method::GET, "/admin/api/me", None, &alice).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["quota"]["requests_per_day"], 3, "{me}");
    assert_eq!(me["quota"]["tokens_per_month"], 1_000_000, "{me}");
    assert_eq!(me["usage"]["requests_today"], 0, "{me}");

    // Three requests over her two adapters use up alice's day.
    for (protocol, key) in [
        ("anthropic", ALICE_KEY),
        ("openai", ALICE_OTHER_KEY),
        ("gemini", ALICE_KEY),
    ] {
        let (status, _, body) = ask(&proxy, protocol, key).await;
        assert_eq!(status, 200, "{protocol}: {body}");
    }
    let tomorrow = time::OffsetDateTime::now_utc()
        .date()
        .next_day()
        .unwrap()
        .to_string();
    for protocol in ["anthropic", "openai", "responses", "gemini"] {
        for key in [ALICE_KEY, ALICE_OTHER_KEY] {
            let (status, retry, body) = ask(&proxy, protocol, key).await;
            assert_eq!(status, 429, "{protocol}: {body}");
            let message = refusal_message(protocol, &body);
            assert!(
                message.contains("user quota")
                    && message.contains("3 requests per day")
                    && message.contains(&format!("resets at {tomorrow}T00:00:00Z")),
                "{protocol}: {message}"
            );
            let left: u64 = retry.expect("retry-after").parse().unwrap();
            assert!((1..=86_400).contains(&left), "{left}");
        }
    }
    assert_eq!(
        p.request_count(),
        3,
        "no refused request reached the provider"
    );

    // Bob, under his own quota, is not affected by alice's.
    for protocol in ["anthropic", "openai", "responses", "gemini"] {
        let (status, _, body) = ask(&proxy, protocol, BOB_KEY).await;
        assert_eq!(status, 200, "bob, {protocol}: {body}");
    }
    assert_eq!(p.request_count(), 7);

    // Alice's usage: the day's three requests and their tokens (15 each, once settled —
    // after the answers went out).
    wait_until_async(DEADLINE, "alice's tokens are settled", || async {
        let (_, me) = call(&proxy, Method::GET, "/admin/api/me", None, &alice).await;
        me["usage"]["tokens_this_month"] == 45
    })
    .await;
    let (_, me) = call(&proxy, Method::GET, "/admin/api/me", None, &alice).await;
    assert_eq!(me["usage"]["requests_today"], 3, "{me}");
    assert_eq!(
        me["usage"]["day_resets"],
        format!("{tomorrow}T00:00:00Z"),
        "{me}"
    );
    // The panel shows each her usage against each quota, warning from 80 %.
    let page = page_as(&proxy, "/account", &alice_cookie).await;
    assert!(page.contains("data-quota=\"requests_per_day\""), "{page}");
    assert!(page.contains("Requests today: 3 / 3"), "{page}");
    assert!(page.contains("value=\"100\""), "{page}");
    assert!(page.contains("100 % used"), "the 80 % warning: {page}");
    assert!(page.contains("Tokens this month: 45 / 1000000"), "{page}");
    assert_eq!(
        page.matches("class=\"warning\"").count(),
        1,
        "tokens are far from it"
    );
    let (bob_cookie, _) = login(&proxy, "bob", "bob-password").await;
    let page = page_as(&proxy, "/account", &bob_cookie).await;
    assert!(page.contains("Requests today: 4 / 100"), "{page}");
    assert!(
        !page.contains("class=\"warning\""),
        "4 % is no warning: {page}"
    );
    let (carol_cookie, _) = login(&proxy, "carol", "carol-password").await;
    let page = page_as(&proxy, "/account", &carol_cookie).await;
    assert!(
        page.contains("Requests today: 0 / 3"),
        "the default quota: {page}"
    );
    // An admin raises alice's quota on the users page; her bar follows.
    let (carol_csrf_cookie, carol_csrf) = login(&proxy, "carol", "carol-password").await;
    let resp = client()
        .post(proxy.admin_url("/users/alice"))
        .header("cookie", format!("fp_session={carol_csrf_cookie}"))
        .form(&[
            ("csrf", carol_csrf.as_str()),
            ("quota", "requests_per_day=5"),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_redirection() || resp.status().is_success(),
        "{}",
        resp.status()
    );
    let users_page = page_as(&proxy, "/users", &carol_csrf_cookie).await;
    assert!(
        users_page.contains("value=\"requests_per_day=5\""),
        "{users_page}"
    );
    let page = page_as(&proxy, "/account", &alice_cookie).await;
    assert!(page.contains("Requests today: 3 / 5"), "{page}");
    assert!(!page.contains("% used"), "60 % is no warning: {page}");
    let (status, _, _) = ask(&proxy, "anthropic", ALICE_KEY).await;
    assert_eq!(status, 200, "alice may send again under her own quota");
    // The admin token has no quota of its own.
    let (_, me) = call(
        &proxy,
        Method::GET,
        "/admin/api/me",
        None,
        &Auth::Token(crate::management::TOKEN),
    )
    .await;
    assert_eq!(
        (me["quota"].clone(), me["usage"].clone()),
        (Value::Null, Value::Null)
    );
}

#[test]
fn flexiproxy_user_set_quota_writes_the_users_file() {
    let dir = config_dir("", &[]);
    let users_file = dir.path().join("users.yaml");
    flexiproxy::config::users::add(&users_file, "dave", "dave-password-1", false, None).unwrap();
    let set = |quota: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
            .args(["user", "set", "dave", "--quota", quota, "--config"])
            .arg(dir.path().join("flexiproxy.yaml"))
            .output()
            .unwrap()
    };
    let quota = || {
        flexiproxy::config::users::read_or_empty(&users_file)
            .get("dave")
            .unwrap()
            .quota
    };
    let out = set("requests_per_day=7,cost_per_month=2.5");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let q = quota().unwrap();
    assert_eq!(
        (q.requests_per_day, q.tokens_per_month, q.cost_per_month),
        (Some(7), None, Some(2.5))
    );
    let out = set("requests_per_day=lots");
    assert!(!out.status.success(), "a bad quota is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--quota"));
    assert_eq!(
        quota().unwrap().requests_per_day,
        Some(7),
        "and changes nothing"
    );
    assert!(set("unlimited").status.success());
    assert!(quota().unwrap().is_empty());
    assert!(set("default").status.success());
    assert_eq!(quota(), None);
}
