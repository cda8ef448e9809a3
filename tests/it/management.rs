//! The management API (`/admin/api/*`) over real HTTP: every route, its errors, auth by the
//! admin token and by panel sessions (with CSRF), caps under concurrency, stale edits and the
//! files it writes. Accounts, ownership and egress are in `accounts`; both share the helpers
//! here.

use crate::harness::*;
use flexiproxy::config::users;
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use reqwest::Method;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

pub(crate) const TOKEN: &str = "management-admin-token";
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);
pub(crate) const CANARY_PROVIDER_KEY: &str = "sk-canary-panel-provider-5b1e";

pub(crate) async fn provider() -> FakeProvider {
    FakeProvider::start(|req| {
        let model = req.json()["model"].as_str().unwrap_or_default().to_owned();
        Reply::json(200, openai::chat_completion(&format!("model={model}")))
    })
    .await
}

/// A proxy with the admin token, users alice (cap 2), bob and admin carol.
pub(crate) fn start(extra: &str) -> Proxy {
    let text = format!(
        "admin:\n  listen: 127.0.0.1:{}\n  token_sha256: {}\n{extra}",
        free_port(),
        sha256_hex(TOKEN)
    );
    let dir = config_dir(&text, &[]);
    let users = dir.path().join("users.yaml");
    users::add(&users, "alice", "alice-password", false, Some(2)).unwrap();
    users::add(&users, "bob", "bob-password", false, None).unwrap();
    users::add(&users, "carol", "carol-password", true, None).unwrap();
    let port = free_port();
    let mut cfg = std::fs::read_to_string(dir.path().join("flexiproxy.yaml")).unwrap();
    cfg.push_str(&format!(
        "listen: 127.0.0.1:{port}\nthreads: 2\naccess_log:\n  path: access.log\n"
    ));
    std::fs::write(dir.path().join("flexiproxy.yaml"), cfg).unwrap();
    Proxy::start_in(dir)
}

/// A config directory with `server_yaml` and user alice: it and its config file.
pub(crate) fn config_with_alice(server_yaml: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = config_dir(server_yaml, &[]);
    users::add(
        &dir.path().join("users.yaml"),
        "alice",
        "alice-password",
        false,
        None,
    )
    .unwrap();
    let config = dir.path().join("flexiproxy.yaml");
    (dir, config)
}

/// How a request authenticates.
#[derive(Clone)]
pub(crate) enum Auth {
    None,
    Token(&'static str),
    /// A panel session cookie and its CSRF token (sent unless `None`).
    Session(String, Option<String>),
}

pub(crate) async fn call(
    proxy: &Proxy,
    method: Method,
    path: &str,
    body: Option<Value>,
    auth: &Auth,
) -> (u16, Value) {
    call_with(proxy, method, path, body, auth, None).await
}

pub(crate) async fn call_with(
    proxy: &Proxy,
    method: Method,
    path: &str,
    body: Option<Value>,
    auth: &Auth,
    if_match: Option<&str>,
) -> (u16, Value) {
    let mut req = client().request(method, proxy.admin_url(path));
    match auth {
        Auth::None => {}
        Auth::Token(t) => req = req.bearer_auth(t),
        Auth::Session(cookie, csrf) => {
            req = req.header("cookie", format!("fp_session={cookie}"));
            if let Some(c) = csrf {
                req = req.header("x-csrf-token", c);
            }
        }
    }
    if let Some(v) = if_match {
        req = req.header("if-match", format!("\"{v}\""));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub(crate) fn create_body(name: &str, base_url: &str) -> Value {
    json!({"name": name, "source": {"base_url": base_url, "api_key": CANARY_PROVIDER_KEY,
           "model": "fake-model"}, "label": "laptop"})
}

/// A panel page as the session's user sees it, in English.
pub(crate) async fn page_as(proxy: &Proxy, path: &str, cookie: &str) -> String {
    client()
        .get(proxy.admin_url(path))
        .header("cookie", format!("fp_session={cookie}; lang=en"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Logs in through the panel's form; returns the session cookie and its CSRF token.
pub(crate) async fn login(proxy: &Proxy, user: &str, password: &str) -> (String, String) {
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = post_login(proxy, user, password).await;
    let cookie = session_cookie(&resp)
        .unwrap_or_else(|| panic!("no session cookie for {user}: {}", resp.status()));
    let page = no_redirects
        .get(proxy.admin_url("/adapters/new"))
        .header("cookie", format!("fp_session={cookie}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a form with the CSRF token")
        .to_owned();
    (cookie, csrf)
}

/// Posts the panel's login form (redirects not followed).
pub(crate) async fn post_login(proxy: &Proxy, user: &str, password: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(proxy.admin_url("/login"))
        .form(&[("user", user), ("password", password)])
        .send()
        .await
        .unwrap()
}

/// The value of the session cookie a response sets.
pub(crate) fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("fp_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// Whether logging in opens a session.
pub(crate) async fn logs_in(proxy: &Proxy, user: &str, password: &str) -> bool {
    session_cookie(&post_login(proxy, user, password).await).is_some()
}

pub(crate) async fn messages_status(proxy: &Proxy, key: &str) -> (u16, String) {
    let resp = client()
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", key)
        .json(&messages_body(false))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn token_creates_rotates_patches_and_deletes_an_adapter() {
    let p = provider().await;
    let proxy = start("");
    let admin = Auth::Token(TOKEN);
    let (status, created) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("ds", &p.base_url())),
        &admin,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("fp-"));
    assert_eq!(created["base_url"], proxy.url(""));
    assert_eq!(
        created["setup"]["claude_code"]["env"]["ANTHROPIC_AUTH_TOKEN"],
        key
    );
    assert!(created["setup"]["codex"]["config_toml"].is_string());
    assert_eq!(created["adapter"]["keys"][0]["label"], "laptop");

    // The file: the CLI's format, private, the provider key but only the hash of ours.
    let file = proxy.adapters_dir().join("ds.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(CANARY_PROVIDER_KEY) && !text.contains(&key));
    assert!(text.contains(&sha256_hex(&key)));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Live as soon as the call returned: no waiting.
    let (status, body) = messages_status(&proxy, &key).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("model=fake-model"), "{body}");

    // The listing never holds a secret.
    let (status, list) = call(&proxy, Method::GET, "/admin/api/adapters", None, &admin).await;
    assert_eq!(status, 200);
    let raw = list.to_string();
    assert!(
        !raw.contains(CANARY_PROVIDER_KEY) && !raw.contains(&key),
        "{raw}"
    );
    let row = &list["adapters"][0];
    assert_eq!(row["name"], "ds");
    assert_eq!(row["protocol"], "openai");
    assert_eq!(row["source_host"], p.addr().to_string());
    assert_eq!(row["status"], "ok");
    assert_eq!(row["base_url"], proxy.url(""));
    assert!(row["keys"][0]["created"].is_string());
    assert!(row["version"].as_str().unwrap().len() == 16);

    // Rotation without grace: the old key is refused when the call returns.
    let (status, rotated) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters/ds/keys",
        None,
        &admin,
    )
    .await;
    assert_eq!(status, 201, "{rotated}");
    let key2 = rotated["api_key"].as_str().unwrap().to_owned();
    assert_eq!(messages_status(&proxy, &key).await.0, 401);
    assert_eq!(messages_status(&proxy, &key2).await.0, 200);
    // With grace both work, and the old one shows its expiry.
    let (status, rotated) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters/ds/keys",
        Some(json!({"grace": "1h"})),
        &admin,
    )
    .await;
    assert_eq!(status, 201);
    let key3 = rotated["api_key"].as_str().unwrap().to_owned();
    assert_eq!(messages_status(&proxy, &key2).await.0, 200);
    assert_eq!(messages_status(&proxy, &key3).await.0, 200);
    assert!(
        rotated["adapter"]["keys"][0]["expires"].is_string(),
        "{rotated}"
    );

    // PATCH the model and limits; comments the API did not touch stay.
    let (status, view) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/adapters/ds",
        Some(json!({"model": "bigger-model", "limits": {"requests_per_minute": 100}})),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["model"], "bigger-model");
    let (_, body) = messages_status(&proxy, &key3).await;
    assert!(body.contains("model=bigger-model"), "{body}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# Adapter `ds`") && text.contains("requests_per_minute: 100"));

    // Delete: 204, the key stops, the file is gone; then 404s.
    let (status, _) = call(
        &proxy,
        Method::DELETE,
        "/admin/api/adapters/ds",
        None,
        &admin,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(messages_status(&proxy, &key3).await.0, 401);
    assert!(!file.exists());
    for (m, path) in [
        (Method::DELETE, "/admin/api/adapters/ds"),
        (Method::POST, "/admin/api/adapters/ds/keys"),
    ] {
        assert_eq!(call(&proxy, m, path, None, &admin).await.0, 404);
    }
    let (status, _) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/adapters/ds",
        Some(json!({"model": "x"})),
        &admin,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_required_and_checked() {
    let proxy = start("");
    for auth in [Auth::None, Auth::Token("wrong-token")] {
        let (status, body) = call(&proxy, Method::GET, "/admin/api/adapters", None, &auth).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["error"].is_string());
    }
    let bogus = Auth::Session("not-a-session".into(), Some("x".into()));
    assert_eq!(
        call(&proxy, Method::GET, "/admin/api/adapters", None, &bogus)
            .await
            .0,
        401
    );
    // A session works for reading, but a change needs its CSRF token.
    let (cookie, csrf) = login(&proxy, "alice", "alice-password").await;
    let no_csrf = Auth::Session(cookie.clone(), None);
    let wrong_csrf = Auth::Session(cookie.clone(), Some("forged".into()));
    assert_eq!(
        call(&proxy, Method::GET, "/admin/api/adapters", None, &no_csrf)
            .await
            .0,
        200
    );
    for auth in [&no_csrf, &wrong_csrf] {
        let (status, body) = call(
            &proxy,
            Method::POST,
            "/admin/api/adapters",
            Some(create_body("x", "https://api.deepseek.com/v1")),
            auth,
        )
        .await;
        assert_eq!(status, 403, "{body}");
    }
    let good = Auth::Session(cookie, Some(csrf));
    assert_eq!(
        call(
            &proxy,
            Method::POST,
            "/admin/api/adapters",
            Some(create_body("x", "https://api.deepseek.com/v1")),
            &good
        )
        .await
        .0,
        201
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_400_naming_the_field() {
    let proxy = start("");
    let admin = Auth::Token(TOKEN);
    let cases = [
        (
            json!({"name": "a", "source": {"base_url": "https://x.example/v1", "api_key": "k"}}),
            "source.model",
        ),
        (
            json!({"name": "a", "source": {"base_url": "https://x.example/v1", "model": "m"}}),
            "source.api_key",
        ),
        (
            json!({"name": "a", "source": {"api_key": "k", "model": "m"}}),
            "source.base_url",
        ),
        (
            json!({"name": "a", "source": {"base_url": "ftp://x", "api_key": "k", "model": "m"}}),
            "source.base_url",
        ),
        (
            json!({"name": "a", "source": {"base_url": "https://x.example/v1", "api_key": "k", "model": "m", "protocol": "soap"}}),
            "source.protocol",
        ),
        (
            json!({"name": "a", "source": {"preset": "nope", "api_key": "k", "model": "m"}}),
            "source.preset",
        ),
        (
            json!({"name": "../a", "source": {"base_url": "https://x.example/v1", "api_key": "k", "model": "m"}}),
            "adapter name",
        ),
        (
            json!({"name": "a", "colour": "red"}),
            "unknown field `colour`",
        ),
        (
            json!({"source": {"base_url": "https://x.example/v1", "api_key": "k", "model": "m"}}),
            "name",
        ),
    ];
    for (body, field) in cases {
        let (status, resp) = call(
            &proxy,
            Method::POST,
            "/admin/api/adapters",
            Some(body.clone()),
            &admin,
        )
        .await;
        assert_eq!(status, 400, "{body} → {resp}");
        let message = resp["error"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{body}: `{message}` should name {field}"
        );
    }
    // Not JSON at all.
    let resp = client()
        .post(proxy.admin_url("/admin/api/adapters"))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // A preset fills the base URL; a taken name is a conflict.
    let preset = json!({"name": "dsp", "source": {"preset": "deepseek", "api_key": "k", "model": "deepseek-v4-flash"}});
    let (status, created) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(preset.clone()),
        &admin,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["adapter"]["source_host"], "api.deepseek.com");
    let (status, resp) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(preset),
        &admin,
    )
    .await;
    assert_eq!(status, 409, "{resp}");
    let (status, resp) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters/dsp/keys",
        Some(json!({"grace": "soon"})),
        &admin,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        resp["error"].as_str().unwrap().starts_with("grace"),
        "{resp}"
    );
    let (status, _) = call(&proxy, Method::PUT, "/admin/api/adapters/dsp", None, &admin).await;
    assert_eq!(status, 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_edit_gets_409_and_nothing_is_lost() {
    let proxy = start("");
    let admin = Auth::Token(TOKEN);
    let body = json!({"name": "st", "source": {"preset": "deepseek", "api_key": "k", "model": "deepseek-v4-flash"}});
    assert_eq!(
        call(
            &proxy,
            Method::POST,
            "/admin/api/adapters",
            Some(body),
            &admin
        )
        .await
        .0,
        201
    );
    let (_, list) = call(&proxy, Method::GET, "/admin/api/adapters", None, &admin).await;
    let version = list["adapters"][0]["version"].as_str().unwrap().to_owned();

    // Someone edits the file by hand after the panel read it.
    let file = proxy.adapters_dir().join("st.yaml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("# a note from a human\n");
    write_atomic(&file, &text);
    let patch = json!({"model": "deepseek-v4-pro"});
    let (status, resp) = call_with(
        &proxy,
        Method::PATCH,
        "/admin/api/adapters/st",
        Some(patch.clone()),
        &admin,
        Some(&version),
    )
    .await;
    assert_eq!(status, 409, "{resp}");
    for (method, path) in [
        (Method::POST, "/admin/api/adapters/st/keys"),
        (Method::DELETE, "/admin/api/adapters/st"),
    ] {
        let (status, _) = call_with(&proxy, method, path, None, &admin, Some(&version)).await;
        assert_eq!(status, 409);
    }
    assert!(file.exists());

    // With the current version the edit applies, and the human's note is still there.
    let current = flexiproxy::config::edit::version_of(&std::fs::read_to_string(&file).unwrap());
    let (status, resp) = call_with(
        &proxy,
        Method::PATCH,
        "/admin/api/adapters/st",
        Some(patch),
        &admin,
        Some(&current),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("# a note from a human") && text.contains("deepseek-v4-pro"));

    // The CLI's edit in between (its own process takes the same lock) makes the old version stale.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
        .args(["adapter", "rotate", "st", "--json", "--config"])
        .arg(proxy.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = call_with(
        &proxy,
        Method::DELETE,
        "/admin/api/adapters/st",
        None,
        &admin,
        resp["version"].as_str(),
    )
    .await;
    assert_eq!(status, 409, "the CLI's rotation is not overwritten");
}

#[tokio::test(flavor = "multi_thread")]
async fn simultaneous_creates_admit_exactly_the_cap() {
    let proxy = start("max_adapters: 3\n");
    let admin = Auth::Token(TOKEN);
    let attempts = (0..8).map(|i| {
        let proxy = &proxy;
        let admin = admin.clone();
        async move {
            let body = json!({"name": format!("c{i}"), "source": {"preset": "deepseek", "api_key": "k", "model": "m"}});
            call(proxy, Method::POST, "/admin/api/adapters", Some(body), &admin).await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let refused: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 409)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(created, 3, "{results:?}");
    assert_eq!(refused.len(), 5, "{results:?}");
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .contains("maximum of 3")
    );
    assert_eq!(
        std::fs::read_dir(proxy.adapters_dir())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".yaml"))
            .count(),
        3
    );

    // A user's own cap, under the same race: alice may own 2.
    let (cookie, csrf) = login(&proxy, "alice", "alice-password").await;
    let (_, list) = call(&proxy, Method::GET, "/admin/api/adapters", None, &admin).await;
    for a in list["adapters"].as_array().unwrap() {
        let path = format!("/admin/api/adapters/{}", a["name"].as_str().unwrap());
        assert_eq!(
            call(&proxy, Method::DELETE, &path, None, &admin).await.0,
            204
        );
    }
    let alice = Auth::Session(cookie, Some(csrf));
    let attempts = (0..5).map(|i| {
        let proxy = &proxy;
        let alice = alice.clone();
        async move {
            let body = json!({"name": format!("a{i}"), "source": {"preset": "deepseek", "api_key": "k", "model": "m"}});
            call(proxy, Method::POST, "/admin/api/adapters", Some(body), &alice).await
        }
    });
    let results = futures::future::join_all(attempts).await;
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 201).count(),
        2,
        "{results:?}"
    );
    let refusal = results.iter().find(|(s, _)| *s == 409).unwrap();
    assert!(
        refusal.1["error"].as_str().unwrap().contains("at most 2"),
        "{refusal:?}"
    );
}

/// `flexiproxy presets` lists every preset's current models with their facts, and none of the
/// retired DeepSeek ids.
#[test]
fn presets_command_lists_current_models_and_their_facts() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
        .args(["presets", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let deepseek = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "deepseek")
        .unwrap();
    let ids: Vec<&str> = deepseek["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["deepseek-v4-flash", "deepseek-v4-pro"]);
    let pro = &deepseek["models"][1];
    assert_eq!(pro["context"], 1_000_000);
    assert_eq!(pro["images"], false);
    assert!(
        pro["source"]
            .as_str()
            .unwrap()
            .contains("api-docs.deepseek.com")
    );
    assert!(pro["reasoning"].as_str().unwrap().contains("thinking"));
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
        .arg("presets")
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    for name in [
        "deepseek",
        "dashscope",
        "xai",
        "openrouter",
        "openai",
        "ollama",
        "vllm",
    ] {
        assert!(text.contains(&format!("{name} (")), "{name}: {text}");
    }
    assert!(
        text.contains("unverified") && !text.contains("deepseek-chat"),
        "{text}"
    );
}

/// `flexiproxy adapter probe` (the provider check) names a model the provider's model list
/// does not know, and the provider's refusal.
#[tokio::test(flavor = "multi_thread")]
async fn adapter_probe_names_a_model_the_provider_does_not_list() {
    let p = FakeProvider::start(|req| {
        if req.path.ends_with("/models") {
            Reply::json(
                200,
                json!({"object": "list", "data": [{"id": "deepseek-v4-flash"}]}),
            )
        } else {
            Reply::json(400, json!({"error": {"message": "Model Not Exist"}}))
        }
    })
    .await;
    let proxy = Proxy::start(&[("pr", adapter_yaml(&p.base_url(), &["fp-k"], ""))]);
    let config = proxy.config_path();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
            .args(["adapter", "probe", "pr", "--config"])
            .arg(config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("FAILED  plain_answer"), "{stdout}");
    assert!(
        stdout.contains(
            "model `fake-model` is not in the provider's model list (retired or misspelled?)"
        ) && stdout.contains("`deepseek-v4-flash`")
            && stdout.contains("Model Not Exist"),
        "{stdout}"
    );
}
