//! The panel's edit page: the default source, the keys of each pool (added and removed, never
//! shown) and the routes (added, changed, reordered, removed) — each change written to the
//! file, followed by the proxy, refused with the reason when malformed or made on a stale page.

use crate::harness::*;
use crate::management::*;
use crate::management_routes::{assert_served, read_doc, yaml};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

const SOURCE_KEY: &str = "sk-canary-edit-source-3f1e";
const ROUTE_KEY: &str = "sk-canary-edit-route-82aa";
const ADDED_KEY: &str = "sk-canary-edit-added-c07d";
const VISION_KEY: &str = "sk-canary-edit-vision-44b9";
const SECRETS: [&str; 4] = [SOURCE_KEY, ROUTE_KEY, ADDED_KEY, VISION_KEY];

/// Creates an adapter with the admin token; the answer (with the key issued).
async fn create(proxy: &Proxy, body: serde_json::Value) -> serde_json::Value {
    let (status, created) = call(
        proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(body),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created
}

/// A logged-in panel user.
struct Panel<'a> {
    proxy: &'a Proxy,
    cookie: String,
    csrf: String,
}

impl Panel<'_> {
    fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// The edit page (in `lang`), checked to hold no key.
    async fn page(&self, lang: &str) -> String {
        let resp = Self::http()
            .get(self.proxy.admin_url("/adapters/ed/edit"))
            .header("cookie", format!("fp_session={}; lang={lang}", self.cookie))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let page = resp.text().await.unwrap();
        for secret in SECRETS {
            assert!(!page.contains(secret), "the page shows a key");
        }
        page
    }

    /// The version the page's forms carry.
    async fn version(&self) -> String {
        let page = self.page("en").await;
        page.split("name=\"version\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_owned()
    }

    /// Posts one of the page's forms with the current version: status and body.
    async fn post(&self, fields: &[(&str, &str)]) -> (u16, String) {
        let version = self.version().await;
        self.post_at(&version, fields).await
    }

    async fn post_at(&self, version: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut form: Vec<(&str, &str)> = vec![("csrf", &self.csrf), ("version", version)];
        form.extend_from_slice(fields);
        let resp = Self::http()
            .post(self.proxy.admin_url("/adapters/ed/edit"))
            .header("cookie", format!("fp_session={}; lang=en", self.cookie))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        if status == 303 {
            let to = resp.headers()["location"].to_str().unwrap();
            assert_eq!(to, "/adapters/ed/edit?saved=1");
        }
        let body = resp.text().await.unwrap();
        for secret in SECRETS {
            assert!(!body.contains(secret), "an answer shows a key");
        }
        (status, body)
    }

    async fn saved(&self, fields: &[(&str, &str)]) {
        let (status, body) = self.post(fields).await;
        assert_eq!(status, 303, "{fields:?}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_edits_pools_and_routes_in_the_panel() {
    let p = provider().await;
    let proxy = start("");
    let url = p.base_url();
    let body = json!({"name": "ed", "source": {"base_url": url, "api_key": SOURCE_KEY, "model": "fake-model"},
        "routes": [{"name": "cheap", "when": {"model": "claude-*haiku*"},
                    "source": {"base_url": url, "api_key": ROUTE_KEY, "model": "cheap-model",
                               "timeouts": {"connect": "3s"}}}]});
    let created = create(&proxy, body).await;
    let client_key = created["api_key"].as_str().unwrap().to_owned();
    let (cookie, csrf) = login(&proxy, "carol", "carol-password").await;
    let panel = Panel {
        proxy: &proxy,
        cookie,
        csrf,
    };

    // The list links to the page; the page lists the pool and the route, in both languages.
    let list = client()
        .get(proxy.admin_url("/"))
        .header("cookie", format!("fp_session={}", panel.cookie))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("href=\"/adapters/ed/edit\""));
    let en = panel.page("en").await;
    assert!(en.contains("id=\"pool-source\"") && en.contains("id=\"route-0\""));
    assert!(en.contains("model: claude-*haiku*") && en.contains("Routes"));
    assert!(panel.page("zh").await.contains("供应商密钥"));

    // A key joins the default pool.
    panel
        .saved(&[
            ("op", "key_add"),
            ("pool", "source"),
            ("api_key", ADDED_KEY),
            ("label", "second"),
        ])
        .await;
    let doc = read_doc(&proxy, "ed");
    assert_eq!(
        doc["source"]["api_keys"],
        yaml(&json!([SOURCE_KEY, {"key": ADDED_KEY, "label": "second"}]))
    );
    let page = panel.page("en").await;
    let pool = page
        .split("id=\"pool-source\"")
        .nth(1)
        .unwrap()
        .split("</ul>")
        .next()
        .unwrap();
    assert_eq!(pool.matches("class=\"pool-key\"").count(), 2);
    assert!(pool.contains("second") && pool.contains("healthy"));

    // A form from a page that is out of date changes nothing.
    let file = proxy.adapters_dir().join("ed.yaml");
    let before = std::fs::read_to_string(&file).unwrap();
    let (status, body) = panel
        .post_at(
            "0000000000000000",
            &[("op", "route_remove"), ("index", "0")],
        )
        .await;
    assert_eq!(status, 409);
    assert!(body.contains("changed since you loaded the page"), "{body}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // A route is added (a custom source), moved first, the other changed; keys and timeouts stay.
    panel
        .saved(&[
            ("op", "route_add"),
            ("route_name", "vision"),
            ("when_images", "yes"),
            ("preset", "custom"),
            ("base_url", &url),
            ("protocol", "openai"),
            ("api_key", VISION_KEY),
            ("model", "vl-model"),
        ])
        .await;
    panel.saved(&[("op", "route_up"), ("index", "1")]).await;
    panel
        .saved(&[
            ("op", "route_change"),
            ("index", "1"),
            ("route_name", "cheap"),
            ("when_model", "claude-*haiku*"),
            ("preset", "custom"),
            ("base_url", &url),
            ("protocol", "openai"),
            ("model", "cheaper"),
        ])
        .await;
    let doc = read_doc(&proxy, "ed");
    assert_eq!(
        doc["routes"],
        yaml(&json!([
            {"name": "vision", "when": {"images": true},
             "source": {"protocol": "openai", "base_url": url, "api_key": VISION_KEY, "model": "vl-model"}},
            {"name": "cheap", "when": {"model": "claude-*haiku*"},
             "source": {"protocol": "openai", "base_url": url, "api_key": ROUTE_KEY, "model": "cheaper",
                        "timeouts": {"connect": "3s"}}},
        ]))
    );
    assert_served(&proxy, &client_key, "claude-haiku-4-5", "cheaper").await;

    // Malformed input: the reason, the file untouched.
    let before = std::fs::read_to_string(&file).unwrap();
    for (fields, says) in [
        (
            vec![
                ("op", "route_change"),
                ("index", "1"),
                ("base_url", url.as_str()),
                ("model", "m"),
            ],
            "routes[1].when",
        ),
        (
            vec![
                ("op", "key_remove"),
                ("pool", "route"),
                ("index", "1"),
                ("key", "0"),
            ],
            "the only key",
        ),
        (
            vec![("op", "route_up"), ("index", "0")],
            "routes[0]: no such route",
        ),
        (
            vec![("op", "key_add"), ("pool", "source"), ("api_key", " ")],
            "required",
        ),
        (vec![("op", "explode")], "op: unknown change"),
    ] {
        let (status, body) = panel.post(&fields).await;
        assert_eq!(status, 400, "{fields:?}: {body}");
        assert!(body.contains(says), "{fields:?} should say {says}: {body}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // A route leaves; a key leaves the pool, and the proxy uses the one that stays.
    panel.saved(&[("op", "route_remove"), ("index", "0")]).await;
    panel
        .saved(&[("op", "key_remove"), ("pool", "source"), ("key", "0")])
        .await;
    let doc = read_doc(&proxy, "ed");
    assert_eq!(doc["routes"].as_sequence().unwrap().len(), 1);
    assert_eq!(
        doc["source"]["api_keys"],
        yaml(&json!([{"key": ADDED_KEY, "label": "second"}]))
    );
    assert_served(&proxy, &client_key, "claude-sonnet-4-5", "fake-model").await;
    let last = p.requests().pop().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {ADDED_KEY}").as_str())
    );

    // The default source's model and base URL.
    panel
        .saved(&[
            ("op", "source"),
            ("base_url", &url),
            ("model", "renamed-model"),
        ])
        .await;
    assert_served(&proxy, &client_key, "claude-sonnet-4-5", "renamed-model").await;
    let after = client()
        .get(proxy.admin_url("/adapters/ed/edit?saved=1"))
        .header("cookie", format!("fp_session={}", panel.cookie))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(after.contains("id=\"saved\""), "{after}");
    assert!(!panel.page("en").await.contains("id=\"saved\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_cannot_edit_another_users_adapter() {
    let proxy = start("");
    let body = json!({"name": "ed", "owner": "bob",
        "source": {"base_url": "https://api.deepseek.com", "api_key": SOURCE_KEY, "model": "deepseek-v4-flash"}});
    create(&proxy, body).await;
    let before = std::fs::read_to_string(proxy.adapters_dir().join("ed.yaml")).unwrap();
    let (cookie, csrf) = login(&proxy, "alice", "alice-password").await;
    let http = Panel::http();
    let page = http
        .get(proxy.admin_url("/adapters/ed/edit"))
        .header("cookie", format!("fp_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    let resp = http
        .post(proxy.admin_url("/adapters/ed/edit"))
        .header("cookie", format!("fp_session={cookie}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("op", "key_add"),
            ("pool", "source"),
            ("api_key", "sk-mine"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        std::fs::read_to_string(proxy.adapters_dir().join("ed.yaml")).unwrap(),
        before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_cap_the_list_says_so_and_the_form_is_disabled() {
    let proxy = start("");
    let (cookie, _) = login(&proxy, "alice", "alice-password").await;
    let get = |path: &'static str| {
        let (proxy, cookie) = (&proxy, cookie.clone());
        async move {
            client()
                .get(proxy.admin_url(path))
                .header("cookie", format!("fp_session={cookie}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    // Alice may own two adapters.
    for (i, name) in ["one", "two"].into_iter().enumerate() {
        let form = get("/adapters/new").await;
        assert!(
            !form.contains("id=\"create-fields\" disabled"),
            "{i}: {form}"
        );
        let body = json!({"name": name, "owner": "alice", "source": {"base_url": "https://api.deepseek.com",
            "api_key": SOURCE_KEY, "model": "deepseek-v4-flash"}});
        create(&proxy, body).await;
    }
    let list = get("/").await;
    assert!(
        list.contains("id=\"cap-full\"") && !list.contains("id=\"new-adapter\""),
        "{list}"
    );
    assert!(list.contains("2 of 2 adapters used"));
    let form = get("/adapters/new").await;
    assert!(form.contains("id=\"create-fields\" disabled"), "{form}");
    assert!(form.contains("delete one to create another"));
}

/// The adapter's issued keys as the listing shows them.
async fn client_keys(proxy: &Proxy) -> Vec<serde_json::Value> {
    let (_, list) = call(
        proxy,
        Method::GET,
        "/admin/api/adapters",
        None,
        &Auth::Token(TOKEN),
    )
    .await;
    list["adapters"][0]["keys"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn client_keys_show_a_prefix_and_last_use_and_are_relabelled_and_revoked_one_by_one() {
    let p = provider().await;
    let proxy = start("");
    let body = json!({"name": "ed", "label": "laptop",
        "source": {"base_url": p.base_url(), "api_key": SOURCE_KEY, "model": "fake-model"}});
    let created = create(&proxy, body).await;
    let first = created["api_key"].as_str().unwrap().to_owned();
    let keys = client_keys(&proxy).await;
    assert_eq!(keys[0]["prefix"], first[..7]);
    assert_eq!(keys[0]["id"].as_str().unwrap(), &sha256_hex(&first)[..12]);
    assert!(keys[0]["last_used"].is_null());

    // A request marks the key used.
    assert_eq!(status_with(&proxy.url(""), &first).await, 200);
    let used = client_keys(&proxy).await[0]["last_used"].clone();
    assert!(used.as_str().is_some_and(|t| t.starts_with("20")), "{used}");

    // Rotation with a grace period and a new label: two keys, told apart.
    let (status, rotated) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters/ed/keys",
        Some(json!({"grace": "1h", "new_label": "laptop-2"})),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 201, "{rotated}");
    let second = rotated["api_key"].as_str().unwrap().to_owned();
    let keys = client_keys(&proxy).await;
    let labels: Vec<&str> = keys.iter().map(|k| k["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["laptop", "laptop-2"]);
    assert_eq!(
        keys[0]["last_used"], used,
        "the kept key keeps its last use"
    );
    let first_id = keys[0]["id"].as_str().unwrap().to_owned();
    let second_id = keys[1]["id"].as_str().unwrap().to_owned();

    // In the panel: the prefixes, never a key; relabel the new key, revoke the old one.
    let (cookie, csrf) = login(&proxy, "carol", "carol-password").await;
    let panel = Panel {
        proxy: &proxy,
        cookie,
        csrf,
    };
    let page = panel.page("en").await;
    assert!(!page.contains(&first) && !page.contains(&second));
    assert!(page.contains(&format!("{}…", &second[..7])));
    panel
        .saved(&[
            ("op", "client_key_label"),
            ("key_id", &second_id),
            ("label", "desktop"),
        ])
        .await;
    assert_eq!(client_keys(&proxy).await[1]["label"], "desktop");
    panel
        .saved(&[("op", "client_key_revoke"), ("key_id", &first_id)])
        .await;
    assert_eq!(
        status_with(&proxy.url(""), &first).await,
        401,
        "revoked at once"
    );
    assert_eq!(status_with(&proxy.url(""), &second).await, 200);

    // The last working key stays; unknown ids are 404; a label can be removed.
    let (status, resp) = call(
        &proxy,
        Method::DELETE,
        &format!("/admin/api/adapters/ed/keys/{second_id}"),
        None,
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert!(resp["error"].as_str().unwrap().contains("only working key"));
    let (status, _) = call(
        &proxy,
        Method::DELETE,
        "/admin/api/adapters/ed/keys/000000000000",
        None,
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 404);
    let (status, view) = call(
        &proxy,
        Method::PATCH,
        &format!("/admin/api/adapters/ed/keys/{second_id}"),
        Some(json!({"label": null})),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert!(view["keys"][0]["label"].is_null());
    assert_eq!(status_with(&proxy.url(""), &second).await, 200);
}

/// The create form as `user` sees it.
async fn create_form(proxy: &Proxy, user: &str, password: &str) -> String {
    let (cookie, _) = login(proxy, user, password).await;
    crate::management::page_as(proxy, "/adapters/new", &cookie).await
}

#[tokio::test(flavor = "multi_thread")]
async fn users_see_the_local_server_presets_only_where_the_operator_allows_them() {
    let proxy = start("");
    let alice = create_form(&proxy, "alice", "alice-password").await;
    let carol = create_form(&proxy, "carol", "carol-password").await;
    for local in ["value=\"ollama\"", "value=\"vllm\""] {
        assert!(
            !alice.contains(local),
            "a user held to public sources sees {local}"
        );
        assert!(carol.contains(local), "an admin sees {local}");
    }
    assert!(alice.contains("value=\"deepseek\""));
    let allowed = start("private_sources_allowed: [\"127.0.0.1\"]\n");
    let alice = create_form(&allowed, "alice", "alice-password").await;
    assert!(alice.contains("value=\"ollama\"") && alice.contains("value=\"vllm\""));
}

/// The listed adapter `ed`.
async fn listed(proxy: &Proxy) -> serde_json::Value {
    let (_, list) = call(
        proxy,
        Method::GET,
        "/admin/api/adapters",
        None,
        &Auth::Token(TOKEN),
    )
    .await;
    list["adapters"][0].clone()
}

/// The listing once it has recorded the outcome of a request that just ended (the proxy
/// records it after the client has the answer).
async fn listed_after(proxy: &Proxy, at_least: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let view = listed(proxy).await;
        if view["last_outcome"]["at"]
            .as_str()
            .is_some_and(|t| t >= at_least)
        {
            return view;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no outcome recorded: {view}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Now, as the listing writes times (RFC 3339, seconds).
fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_says_failing_when_the_provider_refuses_connections_and_why() {
    // A privileged port nothing listens on (test servers bind ephemeral ports only).
    let dead = "127.0.0.1:9";
    let proxy = start("");
    let body = json!({"name": "ed", "source": {"base_url": format!("http://{dead}/v1"),
        "api_key": SOURCE_KEY, "model": "fake-model"}});
    let created = create(&proxy, body).await;
    let key = created["api_key"].as_str().unwrap().to_owned();
    assert_eq!(listed(&proxy).await["status"], "ok", "nothing tried yet");

    let before = now_rfc3339();
    assert_eq!(status_with(&proxy.url(""), &key).await, 502);
    let view = listed_after(&proxy, &before).await;
    assert_eq!(view["status"], "failing", "{view}");
    assert_eq!(view["last_outcome"]["ok"], false);
    assert_eq!(view["last_outcome"]["reason"], "connect");
    let since = view["last_outcome"]["since"].clone();
    let later = now_rfc3339();
    assert_eq!(status_with(&proxy.url(""), &key).await, 502);
    assert_eq!(
        listed_after(&proxy, &later).await["last_outcome"]["since"],
        since,
        "one run of failures"
    );

    // The panel says it in words, in both languages.
    let (cookie, csrf) = login(&proxy, "carol", "carol-password").await;
    for (lang, says) in [
        ("en", "the provider refuses connections"),
        ("zh", "供应商拒绝连接"),
    ] {
        let page = client()
            .get(proxy.admin_url("/"))
            .header("cookie", format!("fp_session={cookie}; lang={lang}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let status = page
            .split("id=\"status-ed\"")
            .nth(1)
            .unwrap()
            .split("</span>")
            .next()
            .unwrap();
        assert!(status.contains(says), "{lang}: {status}");
    }

    // Pointed at a provider that answers: the new version starts afresh, and answers are ok.
    let p = provider().await;
    let (status, _) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/adapters/ed",
        Some(json!({"base_url": p.base_url()})),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert!(listed(&proxy).await["last_outcome"].is_null());
    let before = now_rfc3339();
    assert_eq!(status_with(&proxy.url(""), &key).await, 200);
    let view = listed_after(&proxy, &before).await;
    assert_eq!(
        (
            view["status"].as_str(),
            view["last_outcome"]["ok"].as_bool()
        ),
        (Some("ok"), Some(true))
    );

    // The panel's Test counts too: back at the dead port, a Test alone turns it to failing.
    let (status, _) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/adapters/ed",
        Some(json!({"base_url": format!("http://{dead}/v1")})),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    let test = client()
        .post(proxy.admin_url("/adapters/ed/test"))
        .header("cookie", format!("fp_session={cookie}"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(test["ok"], false, "{test}");
    assert_eq!(test["reason"], "connect", "{test}");
    let said = test["error"].as_str().unwrap();
    assert!(
        said.starts_with("the provider refuses connections"),
        "{said}"
    );
    assert!(
        said.to_lowercase().contains("connection refused"),
        "admins get the cause: {said}"
    );
    assert!(!said.contains("error sending request"), "{said}");
    assert_eq!(listed(&proxy).await["status"], "failing");
    let zh = client()
        .post(proxy.admin_url("/adapters/ed/test"))
        .header("cookie", format!("fp_session={cookie}; lang=zh"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert!(
        zh["error"].as_str().unwrap().starts_with("供应商拒绝连接"),
        "{zh}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_map_and_the_limits_are_edited_in_the_panel() {
    let p = provider().await;
    let proxy = start("");
    let body = json!({"name": "ed", "source": {"base_url": p.base_url(), "api_key": SOURCE_KEY, "model": "fake-model"}});
    let created = create(&proxy, body).await;
    let key = created["api_key"].as_str().unwrap().to_owned();
    let (cookie, csrf) = login(&proxy, "carol", "carol-password").await;
    let panel = Panel {
        proxy: &proxy,
        cookie,
        csrf,
    };

    panel
        .saved(&[
            ("op", "map_add"),
            ("match", "claude-*haiku*"),
            ("model", "small-model"),
        ])
        .await;
    panel
        .saved(&[
            ("op", "map_add"),
            ("match", "claude-opus-*"),
            ("model", "big-model"),
        ])
        .await;
    assert_served(&proxy, &key, "claude-haiku-4-5", "small-model").await;
    assert_served(&proxy, &key, "claude-opus-4-1", "big-model").await;
    panel.saved(&[("op", "map_remove"), ("index", "0")]).await;
    assert_eq!(
        read_doc(&proxy, "ed")["source"]["model_map"],
        yaml(&json!([{"match": "claude-opus-*", "model": "big-model"}]))
    );
    assert_served(&proxy, &key, "claude-haiku-4-5", "fake-model").await;

    // Two requests a minute: the third is refused; empty fields remove the limits.
    let limits = [
        ("op", "limits"),
        ("requests_per_minute", "2"),
        ("concurrent_requests", ""),
        ("tokens_per_day", ""),
        ("tokens_per_month", "1000000"),
    ];
    panel.saved(&limits).await;
    assert_eq!(
        read_doc(&proxy, "ed")["limits"],
        yaml(&json!({"requests_per_minute": 2, "tokens_per_month": 1000000}))
    );
    assert!(panel.page("en").await.contains("value=\"1000000\""));
    let statuses = [
        status_with(&proxy.url(""), &key).await,
        status_with(&proxy.url(""), &key).await,
        status_with(&proxy.url(""), &key).await,
    ];
    assert_eq!(statuses, [200, 200, 429]);
    let (status, body) = panel
        .post(&[("op", "limits"), ("requests_per_minute", "lots")])
        .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("limits.requests_per_minute: a whole number"),
        "{body}"
    );
    panel
        .saved(&[
            ("op", "limits"),
            ("requests_per_minute", ""),
            ("concurrent_requests", ""),
            ("tokens_per_day", ""),
            ("tokens_per_month", ""),
        ])
        .await;
    assert!(read_doc(&proxy, "ed").get("limits").is_none());
    assert_eq!(status_with(&proxy.url(""), &key).await, 200);
}

/// The page's refusal (`id="error"`), checked to read as words for people: no backticks, no
/// config key or path, no Rust error, and Chinese on a Chinese page.
fn refusal(page: &str, lang: &str) -> String {
    let text = page
        .split("id=\"error\">")
        .nth(1)
        .and_then(|s| s.split("</p>").next())
        .unwrap_or_else(|| panic!("no refusal on the page: {page}"))
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    for developer_text in [
        "`",
        "source.",
        "routes[",
        "api_key",
        "base_url",
        "_",
        "Error",
        "error sending",
    ] {
        assert!(
            !text.contains(developer_text),
            "{lang}: `{text}` shows {developer_text:?}"
        );
    }
    if lang == "zh" {
        assert!(
            text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
            "not Chinese: {text}"
        );
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_in_the_users_language_and_never_developer_text() {
    let proxy = start("");
    let (cookie, csrf) = login(&proxy, "alice", "alice-password").await;
    let submit = |fields: Vec<(&'static str, String)>, lang: &'static str| {
        let (proxy, cookie, csrf) = (&proxy, cookie.clone(), csrf.clone());
        async move {
            let mut form: Vec<(&str, String)> = vec![
                ("csrf", csrf),
                ("preset", "custom".into()),
                ("protocol", "openai".into()),
                ("label", "laptop".into()),
            ];
            form.extend(fields);
            let resp = Panel::http()
                .post(proxy.admin_url("/adapters/new"))
                .header("cookie", format!("fp_session={cookie}; lang={lang}"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_ne!(resp.status(), 303, "{form:?} was accepted");
            resp.text().await.unwrap()
        }
    };
    let good = |name: &str| {
        vec![
            ("name", name.to_owned()),
            ("base_url", "https://api.deepseek.com".to_owned()),
            ("api_key", "sk-x".to_owned()),
            ("model", "deepseek-v4-flash".to_owned()),
        ]
    };
    let with = |field: &'static str, value: &str| {
        let mut f = good("mine");
        f.retain(|(k, _)| *k != field);
        f.push((field, value.to_owned()));
        f
    };
    let cases = [
        (with("base_url", "ftp://x"), "https://"),
        (with("base_url", "http://10.255.255.1:9/v1"), "network"),
        (with("api_key", "${HOME}"), "${NAME}"),
        (with("name", "no spaces please"), "letters"),
        (with("model", "a\u{2028}b"), "line breaks"),
        (with("model", ""), "required"),
    ];
    let mut seen = Vec::new();
    for (fields, says) in cases {
        let en = refusal(&submit(fields.clone(), "en").await, "en");
        assert!(en.contains(says), "{fields:?}: {en}");
        let zh = refusal(&submit(fields, "zh").await, "zh");
        assert_ne!(en, zh);
        seen.push(en);
    }
    assert!(
        seen.iter().any(|s| s.starts_with("Provider base URL: ")),
        "{seen:?}"
    );
    let refused = submit(with("base_url", "ftp://x"), "en").await;
    assert!(
        !refused.contains("id=\"error-detail\""),
        "no details for users"
    );

    // The cap, for a user at it.
    for name in ["one", "two"] {
        let body = json!({"name": name, "owner": "alice", "source": {"base_url": "https://api.deepseek.com",
            "api_key": "sk-x", "model": "deepseek-v4-flash"}});
        create(&proxy, body).await;
    }
    for lang in ["en", "zh"] {
        refusal(&submit(good("three"), lang).await, lang);
    }

    // Edit-page refusals, for an admin with the English detail folded away.
    let p = provider().await;
    let body = json!({"name": "ed", "source": {"base_url": p.base_url(), "api_key": SOURCE_KEY, "model": "m"}});
    create(&proxy, body).await;
    let (cookie, csrf) = login(&proxy, "carol", "carol-password").await;
    let panel = Panel {
        proxy: &proxy,
        cookie,
        csrf,
    };
    for fields in [
        vec![
            ("op", "route_add"),
            ("preset", "custom"),
            ("base_url", "https://x.example/v1"),
            ("protocol", "openai"),
            ("api_key", "k"),
            ("model", "m"),
        ],
        vec![("op", "key_remove"), ("pool", "source"), ("key", "0")],
        vec![("op", "limits"), ("tokens_per_day", "lots")],
    ] {
        let (status, page) = panel.post(&fields).await;
        assert_eq!(status, 400, "{fields:?}");
        refusal(&page, "en");
        assert!(
            page.contains("id=\"error-detail\""),
            "admins get the detail"
        );
    }
}
