//! Routes and provider-key pools through the management API and `flexiproxy adapter show`:
//! written in place, read back exactly, listed with each key's state but never its text,
//! replaced by PATCH (and the proxy follows the new routes at once), refused with the field
//! named when malformed.

use crate::harness::*;
use crate::management::*;
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use reqwest::Method;
use serde_json::{Value, json};

const POOL_KEY_2: &str = "sk-canary-pool-second-7c2a";
const ROUTE_KEY: &str = "sk-canary-route-key-91d0";

fn routed_body(name: &str, default: &str, routed: &str) -> Value {
    json!({
        "name": name,
        "source": {
            "base_url": default,
            "api_keys": [CANARY_PROVIDER_KEY, {"key": POOL_KEY_2, "label": "team-b"}],
            "model": "fake-model",
        },
        "routes": [
            {"name": "cheap", "when": {"model": "claude-*haiku*"},
             "source": {"base_url": routed, "api_key": ROUTE_KEY, "model": "cheap-model",
                        "model_map": [{"match": "claude-haiku-4-5", "model": "mapped-cheap"}]}},
            {"when": {"thinking": true, "min_input_tokens": 1},
             "source": {"base_url": routed, "api_keys": [ROUTE_KEY], "model": "thinker",
                        "protocol": "openai"}},
        ],
        "label": "laptop",
    })
}

pub(crate) fn yaml(v: &Value) -> serde_yaml_ng::Value {
    serde_yaml_ng::to_value(v).unwrap()
}

pub(crate) fn read_doc(proxy: &Proxy, name: &str) -> serde_yaml_ng::Value {
    let text = std::fs::read_to_string(proxy.adapters_dir().join(format!("{name}.yaml"))).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// The text of a response to `model` with the given key.
pub(crate) async fn answer(proxy: &Proxy, key: &str, model: &str) -> String {
    let mut body = messages_body(false);
    body["model"] = json!(model);
    let resp = client()
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// A call to `/admin/api/adapters{path}` as the admin gets a 400 whose message starts with
/// `field`.
async fn refused_naming(proxy: &Proxy, method: Method, path: &str, body: Value, field: &str) {
    let path = format!("/admin/api/adapters{path}");
    let (status, resp) = call(
        proxy,
        method,
        &path,
        Some(body.clone()),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 400, "{body} → {resp}");
    let message = resp["error"].as_str().unwrap();
    assert!(
        message.starts_with(field),
        "`{message}` should name {field}"
    );
}

/// A request for `model` is answered by the provider model `want` (the fake provider says
/// which model it was asked for).
pub(crate) async fn assert_served(proxy: &Proxy, key: &str, model: &str, want: &str) {
    let text = answer(proxy, key, model).await;
    assert!(text.contains(&format!("model={want}")), "{model}: {text}");
}

fn show(proxy: &Proxy, name: &str, json: bool) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"));
    cmd.args(["adapter", "show", name, "--config"])
        .arg(proxy.config_path());
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_and_pools_are_created_listed_replaced_and_followed() {
    let (default, routed) = (provider().await, provider().await);
    let proxy = start("");
    let admin = Auth::Token(TOKEN);
    let body = routed_body("rt", &default.base_url(), &routed.base_url());
    let (status, created) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(body.clone()),
        &admin,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["api_key"].as_str().unwrap().to_owned();

    // The file reads back exactly as sent.
    let doc = read_doc(&proxy, "rt");
    assert_eq!(doc["source"]["api_keys"], yaml(&body["source"]["api_keys"]));
    assert!(doc["source"].get("api_key").is_none());
    assert_eq!(doc["routes"], yaml(&body["routes"]));

    // The listing: routes, every key's state, never a key.
    let (_, list) = call(&proxy, Method::GET, "/admin/api/adapters", None, &admin).await;
    let raw = list.to_string();
    for secret in [CANARY_PROVIDER_KEY, POOL_KEY_2, ROUTE_KEY, &key] {
        assert!(!raw.contains(secret), "{raw}");
    }
    let view = &list["adapters"][0];
    let routes = view["routes"].as_array().unwrap();
    assert_eq!(routes[0]["name"], "cheap");
    assert_eq!(routes[0]["when"], json!({"model": "claude-*haiku*"}));
    assert_eq!(routes[0]["conditions"], "model: claude-*haiku*");
    assert_eq!(routes[0]["source_host"], routed.addr().to_string());
    assert_eq!(routes[1]["name"], "1");
    assert_eq!(routes[1]["model"], "thinker");
    let keys: Vec<(String, u64, u64, Value, String)> = view["provider_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["route"].as_str().unwrap().to_owned(),
                k["source"].as_u64().unwrap(),
                k["key"].as_u64().unwrap(),
                k["label"].clone(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let healthy = |route: &str, key: u64, label: Value| {
        (route.to_owned(), 0, key, label, "healthy".to_owned())
    };
    assert_eq!(
        keys,
        [
            healthy("default", 0, Value::Null),
            healthy("default", 1, json!("team-b")),
            healthy("cheap", 0, Value::Null),
            healthy("1", 0, Value::Null),
        ]
    );

    // Requests follow the routes: haiku to the routed provider (mapped), the rest by default.
    assert_served(&proxy, &key, "claude-haiku-4-5", "mapped-cheap").await;
    assert_served(&proxy, &key, "claude-sonnet-4-5", "fake-model").await;
    let seen = routed.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {ROUTE_KEY}").as_str())
    );

    // `adapter show` prints the same, with no key either.
    let shown: Value = serde_json::from_str(&show(&proxy, "rt", true)).unwrap();
    assert_eq!(shown["routes"], view["routes"]);
    assert_eq!(shown["provider_keys"], view["provider_keys"]);
    let text = show(&proxy, "rt", false);
    for secret in [CANARY_PROVIDER_KEY, POOL_KEY_2, ROUTE_KEY, &key] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(text.contains("when model: claude-*haiku*"), "{text}");
    assert!(
        text.contains("team-b") && text.contains("healthy"),
        "{text}"
    );

    // The panel's list shows the routes and each key's state, in both languages.
    let (cookie, _) = login(&proxy, "carol", "carol-password").await;
    for (lang, healthy, when) in [("en", "healthy", "when"), ("zh", "正常", "条件")] {
        let page = client()
            .get(proxy.admin_url("/"))
            .header("cookie", format!("fp_session={cookie}; lang={lang}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for secret in [CANARY_PROVIDER_KEY, POOL_KEY_2, ROUTE_KEY, &key] {
            assert!(!page.contains(secret));
        }
        let routes = page.split("id=\"routes-rt\"").nth(1).expect("the routes");
        assert!(routes.contains("cheap") && routes.contains("model: claude-*haiku*"));
        assert!(routes.contains(when) && routes.contains("thinker"));
        let keys = page
            .split("id=\"provider-keys-rt\"")
            .nth(1)
            .expect("the keys");
        let keys = keys.split("</ul>").next().unwrap();
        assert_eq!(keys.matches(healthy).count(), 4, "{keys}");
        assert!(keys.contains("team-b"), "{keys}");
    }

    // PATCH replaces the whole list; the proxy follows the new route when the call returns.
    let new_routes = json!([{"name": "sonnet", "when": {"model": "claude-sonnet*"},
        "source": {"base_url": routed.base_url(), "api_key": ROUTE_KEY, "model": "new-route-model"}}]);
    let (status, patched) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/adapters/rt",
        Some(json!({"routes": new_routes, "api_keys": [{"key": "sk-new-pool", "label": "n"}]})),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["routes"][0]["name"], "sonnet");
    assert_eq!(patched["routes"].as_array().unwrap().len(), 1);
    let doc = read_doc(&proxy, "rt");
    assert_eq!(doc["routes"], yaml(&new_routes));
    assert_eq!(
        doc["source"]["api_keys"],
        yaml(&json!([{"key": "sk-new-pool", "label": "n"}]))
    );
    assert_served(&proxy, &key, "claude-sonnet-4-5", "new-route-model").await;
    assert_served(&proxy, &key, "claude-haiku-4-5", "fake-model").await;
    let last = default.requests().pop().unwrap();
    assert_eq!(last.header("authorization"), Some("Bearer sk-new-pool"));

    // `null` removes the routes; one key replaces the pool.
    let (status, patched) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/adapters/rt",
        Some(json!({"routes": null, "api_key": "sk-single"})),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["routes"], json!([]));
    let doc = read_doc(&proxy, "rt");
    assert!(doc.get("routes").is_none() && doc["source"].get("api_keys").is_none());
    assert_eq!(doc["source"]["api_key"], "sk-single");
    assert_served(&proxy, &key, "claude-sonnet-4-5", "fake-model").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_routes_and_pools_get_a_400_naming_the_field_and_change_nothing() {
    let p = provider().await;
    let proxy = start("");
    let admin = Auth::Token(TOKEN);
    let url = p.base_url();
    let base = routed_body("bad", &url, &url);
    let with = |pointer: &str, value: Value| {
        let mut b = base.clone();
        *b.pointer_mut(pointer).unwrap() = value;
        b
    };
    let without_when = {
        let mut b = base.clone();
        b["routes"][1].as_object_mut().unwrap().remove("when");
        b
    };
    let key_and_pool = {
        let mut b = base.clone();
        b["source"]["api_key"] = json!("k");
        b
    };
    let cases = [
        (
            with("/routes/1/when", json!({"colour": "red"})),
            "routes[1].when",
        ),
        (with("/routes/1/when", json!({})), "routes[1].when"),
        (
            with("/routes/0/when", json!({"model": ""})),
            "routes[0].when.model",
        ),
        (
            with("/routes/0/when", json!({"min_input_tokens": 0})),
            "routes[0].when",
        ),
        (without_when, "routes[1].when"),
        (with("/source/api_keys", json!([])), "source.api_keys"),
        (
            with("/source/api_keys/1/key", json!("")),
            "source.api_keys[1]",
        ),
        (
            with("/routes/1/source/api_keys", json!([])),
            "routes[1].source.api_keys",
        ),
        (
            with("/routes/0/source/model", json!("")),
            "routes[0].source.model",
        ),
        (
            with("/routes/1/source/protocol", json!("soap")),
            "routes[1].source.protocol",
        ),
        (
            with("/routes/0/source/base_url", json!("ftp://x")),
            "routes[0].source.base_url",
        ),
        (with("/routes/0/name", json!("")), "routes[0].name"),
        (key_and_pool, "source.api_keys"),
    ];
    for (body, field) in &cases {
        refused_naming(&proxy, Method::POST, "", body.clone(), field).await;
    }
    assert!(!proxy.adapters_dir().join("bad.yaml").exists());

    // The same through PATCH, on an adapter that exists: its file stays as it was.
    let (status, _) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("ok", &url)),
        &admin,
    )
    .await;
    assert_eq!(status, 201);
    let file = proxy.adapters_dir().join("ok.yaml");
    let before = std::fs::read_to_string(&file).unwrap();
    let patches = cases[..5]
        .iter()
        .map(|(body, field)| (json!({"routes": body["routes"]}), *field))
        .chain([
            (json!({"api_keys": []}), "api_keys"),
            (json!({"api_keys": ["k"], "api_key": "k"}), "api_keys"),
            (json!({"api_keys": [{"key": " "}]}), "api_keys[0]"),
        ]);
    for (patch, field) in patches {
        refused_naming(&proxy, Method::PATCH, "/ok", patch, field).await;
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn adapter_show_names_a_missing_env_var_and_refuses_an_unknown_adapter() {
    let p = provider().await;
    let proxy = start("");
    let body = json!({"name": "envs", "source": {"base_url": p.base_url(),
        "api_keys": ["sk-canary-present", {"key": "${FLEXIPROXY_TEST_UNSET_POOL_KEY}", "label": "from-env"}],
        "model": "m"}});
    let (status, resp) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(body),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 201, "{resp}");
    let text = show(&proxy, "envs", false);
    assert!(!text.contains("sk-canary-present"), "{text}");
    let line = text.lines().find(|l| l.contains("from-env")).unwrap();
    assert!(
        line.contains("env var FLEXIPROXY_TEST_UNSET_POOL_KEY missing"),
        "{text}"
    );
    assert!(text.contains("routes:    none"), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
        .args(["adapter", "show", "nope", "--config"])
        .arg(proxy.config_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no adapter named `nope`"));
}

const FALLBACK_KEY: &str = "sk-canary-fallback-key-5e1b";

#[tokio::test(flavor = "multi_thread")]
async fn fallbacks_and_balance_are_created_patched_and_followed() {
    let down =
        FakeProvider::start(|_| Reply::json(503, openai::error_body("down", "server_error", None)))
            .await;
    let fallback = provider().await;
    let proxy = start("");
    let admin = Auth::Token(TOKEN);
    let fallbacks = json!([{"base_url": fallback.base_url(), "api_key": FALLBACK_KEY}]);
    let body = json!({
        "name": "fb",
        "source": {"base_url": down.base_url(), "api_keys": [CANARY_PROVIDER_KEY, POOL_KEY_2],
                   "balance": "round_robin", "model": "fake-model", "fallbacks": fallbacks},
    });
    let (status, created) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(body),
        &admin,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["api_key"].as_str().unwrap().to_owned();
    let doc = read_doc(&proxy, "fb");
    assert_eq!(doc["source"]["fallbacks"], yaml(&fallbacks));
    assert_eq!(doc["source"]["balance"], "round_robin");

    // Listed with its balance and fallback, never the fallback's key.
    let view = &created["adapter"];
    assert_eq!(view["balance"], "round_robin");
    assert_eq!(
        view["fallbacks"][0]["source_host"],
        fallback.addr().to_string()
    );
    assert_eq!(
        view["fallbacks"][0]["model"], "fake-model",
        "a fallback takes its primary's model"
    );
    let (_, list) = call(&proxy, Method::GET, "/admin/api/adapters", None, &admin).await;
    assert!(!list.to_string().contains(FALLBACK_KEY));

    // Both pool keys answer 503; the fallback serves, with its own key and the inherited model.
    assert_served(&proxy, &key, "claude-sonnet-4-5", "fake-model").await;
    let seen = fallback.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {FALLBACK_KEY}").as_str())
    );

    // PATCH replaces the list (a fallback with its own model) and sets the balance back.
    let replaced =
        json!([{"base_url": fallback.base_url(), "api_key": FALLBACK_KEY, "model": "spare"}]);
    let (status, patched) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/adapters/fb",
        Some(json!({"fallbacks": replaced, "balance": null})),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["balance"], "sticky");
    let doc = read_doc(&proxy, "fb");
    assert_eq!(doc["source"]["fallbacks"], yaml(&replaced));
    assert!(doc["source"].get("balance").is_none());
    assert_served(&proxy, &key, "claude-sonnet-4-5", "spare").await;

    // `null` removes them: the provider's 503 reaches the client.
    let (status, patched) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/adapters/fb",
        Some(json!({"fallbacks": null})),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["fallbacks"], json!([]));
    assert!(read_doc(&proxy, "fb")["source"].get("fallbacks").is_none());
    assert_eq!(status_with(&proxy.url(""), &key).await, 503);
    assert_eq!(fallback.requests().len(), 2);

    // Malformed fallbacks are refused with the field named; the file stays as it was.
    let file = proxy.adapters_dir().join("fb.yaml");
    let before = std::fs::read_to_string(&file).unwrap();
    let nested = json!([{"base_url": fallback.base_url(), "api_key": "k",
        "fallbacks": [{"base_url": fallback.base_url(), "api_key": "k"}]}]);
    for (patch, field) in [
        (
            json!({"fallbacks": nested}),
            "source.fallbacks[0].fallbacks",
        ),
        (
            json!({"fallbacks": [{"api_key": "k"}]}),
            "source.fallbacks[0].base_url",
        ),
        (
            json!({"fallbacks": [{"base_url": fallback.base_url()}]}),
            "source.fallbacks[0].api_key",
        ),
        (
            json!({"balance": "random"}),
            "balance: unknown variant `random`",
        ),
    ] {
        let (status, resp) = call(
            &proxy,
            Method::PATCH,
            "/admin/api/adapters/fb",
            Some(patch.clone()),
            &admin,
        )
        .await;
        assert_eq!(status, 400, "{patch} → {resp}");
        let message = resp["error"].as_str().unwrap_or_default();
        assert!(message.contains(field), "`{message}` should name {field}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_fallbacks_pass_the_same_checks_as_the_source() {
    let proxy = start("");
    let (cookie, csrf) = login(&proxy, "alice", "alice-password").await;
    let alice = Auth::Session(cookie, Some(csrf));
    let with_fallback = |fallback: Value| {
        json!({"name": "mine", "source": {"base_url": "https://api.deepseek.com", "api_key": "sk-x",
            "model": "deepseek-v4-flash", "fallbacks": [fallback]}})
    };
    for (fallback, field, says) in [
        (
            json!({"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-y"}),
            "source.fallbacks[0].base_url",
            "internal",
        ),
        (
            json!({"base_url": "https://api.deepseek.com", "api_key": "${HOME}"}),
            "source.fallbacks[0].api_key",
            "admins only",
        ),
    ] {
        let (status, resp) = call(
            &proxy,
            Method::POST,
            "/admin/api/adapters",
            Some(with_fallback(fallback)),
            &alice,
        )
        .await;
        assert_eq!(status, 400, "{resp}");
        let message = resp["error"].as_str().unwrap();
        assert!(
            message.starts_with(field) && message.contains(says),
            "{message}"
        );
    }
    assert!(!proxy.adapters_dir().join("mine.yaml").exists());
}
