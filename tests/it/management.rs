//! The management API (`/admin/api/*`) over real HTTP: every route, its errors, auth by the
//! admin token and by panel sessions (with CSRF), per-user ownership and caps, caps under
//! concurrency, stale edits, the files it writes, and internal sources refused for users.

use crate::harness::*;
use flexiproxy::config::users;
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use reqwest::Method;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const TOKEN: &str = "management-admin-token";
const DEADLINE: Duration = Duration::from_secs(10);
const CANARY_PROVIDER_KEY: &str = "sk-canary-panel-provider-5b1e";

async fn provider() -> FakeProvider {
    FakeProvider::start(|req| {
        let model = req.json()["model"].as_str().unwrap_or_default().to_owned();
        Reply::json(200, openai::chat_completion(&format!("model={model}")))
    })
    .await
}

/// A proxy with the admin token, users alice (cap 2), bob and admin carol.
fn start(extra: &str) -> Proxy {
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

/// How a request authenticates.
#[derive(Clone)]
enum Auth {
    None,
    Token(&'static str),
    /// A panel session cookie and its CSRF token (sent unless `None`).
    Session(String, Option<String>),
}

async fn call(
    proxy: &Proxy,
    method: Method,
    path: &str,
    body: Option<Value>,
    auth: &Auth,
) -> (u16, Value) {
    call_with(proxy, method, path, body, auth, None).await
}

async fn call_with(
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

fn create_body(name: &str, base_url: &str) -> Value {
    json!({"name": name, "source": {"base_url": base_url, "api_key": CANARY_PROVIDER_KEY,
           "model": "fake-model"}, "label": "laptop"})
}

/// Logs in through the panel's form; returns the session cookie and its CSRF token.
pub async fn login(proxy: &Proxy, user: &str, password: &str) -> (String, String) {
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects
        .post(proxy.admin_url("/login"))
        .form(&[("user", user), ("password", password)])
        .send()
        .await
        .unwrap();
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("fp_session="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie for {user}: {}", resp.status()))
        .to_owned();
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

async fn messages_status(proxy: &Proxy, key: &str) -> (u16, String) {
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
    let preset = json!({"name": "dsp", "source": {"preset": "deepseek", "api_key": "k", "model": "deepseek-chat"}});
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
    let body = json!({"name": "st", "source": {"preset": "deepseek", "api_key": "k", "model": "deepseek-chat"}});
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
    let patch = json!({"model": "deepseek-reasoner"});
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
    assert!(text.contains("# a note from a human") && text.contains("deepseek-reasoner"));

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
        Some(&resp["version"].as_str().unwrap().to_owned()),
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

#[tokio::test(flavor = "multi_thread")]
async fn users_see_and_change_only_their_own_adapters() {
    let proxy = start("");
    let (a_cookie, a_csrf) = login(&proxy, "alice", "alice-password").await;
    let (b_cookie, b_csrf) = login(&proxy, "bob", "bob-password").await;
    let (c_cookie, c_csrf) = login(&proxy, "carol", "carol-password").await;
    let alice = Auth::Session(a_cookie, Some(a_csrf));
    let bob = Auth::Session(b_cookie, Some(b_csrf));
    let carol = Auth::Session(c_cookie, Some(c_csrf));
    let public = "https://api.deepseek.com/v1";
    for (auth, name) in [(&alice, "alice-a"), (&bob, "bob-b")] {
        let (status, body) = call(
            &proxy,
            Method::POST,
            "/admin/api/adapters",
            Some(create_body(name, public)),
            auth,
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["adapter"]["owner"], name.split('-').next().unwrap());
    }
    let text = std::fs::read_to_string(proxy.adapters_dir().join("alice-a.yaml")).unwrap();
    assert!(text.contains("owner: \"alice\""), "{text}");

    let names = |list: &Value| -> Vec<String> {
        list["adapters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, list) = call(&proxy, Method::GET, "/admin/api/adapters", None, &alice).await;
    assert_eq!(names(&list), ["alice-a"]);
    assert_eq!(
        (list["used"].clone(), list["max_adapters"].clone()),
        (json!(1), json!(2))
    );
    let (_, list) = call(&proxy, Method::GET, "/admin/api/adapters", None, &carol).await;
    assert_eq!(names(&list), ["alice-a", "bob-b"]);
    let (_, list) = call(
        &proxy,
        Method::GET,
        "/admin/api/adapters",
        None,
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(names(&list), ["alice-a", "bob-b"]);

    // Bob cannot touch Alice's adapter: it does not exist for him.
    for (method, path, body) in [
        (Method::POST, "/admin/api/adapters/alice-a/keys", None),
        (
            Method::PATCH,
            "/admin/api/adapters/alice-a",
            Some(json!({"model": "x"})),
        ),
        (Method::DELETE, "/admin/api/adapters/alice-a", None),
    ] {
        let (status, _) = call(&proxy, method, path, body, &bob).await;
        assert_eq!(status, 404);
    }
    assert!(proxy.adapters_dir().join("alice-a.yaml").exists());
    // An admin can.
    let (status, _) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters/alice-a/keys",
        None,
        &carol,
    )
    .await;
    assert_eq!(status, 201);

    // Users give the key itself: the proxy's environment is not theirs to read.
    let mut body = create_body("alice-env", public);
    body["source"]["api_key"] = json!("${HOME}");
    let (status, resp) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(body),
        &alice,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        resp["error"]
            .as_str()
            .unwrap()
            .starts_with("source.api_key"),
        "{resp}"
    );

    // Alice's cap is 2.
    let (status, _) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("alice-b", public)),
        &alice,
    )
    .await;
    assert_eq!(status, 201);
    let (status, resp) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("alice-c", public)),
        &alice,
    )
    .await;
    assert_eq!(status, 409, "{resp}");
    assert!(
        resp["error"].as_str().unwrap().contains("at most 2"),
        "{resp}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_sources_are_refused_for_users_at_create_and_at_connect() {
    let p = provider().await;
    let proxy = start("");
    let (cookie, csrf) = login(&proxy, "alice", "alice-password").await;
    let alice = Auth::Session(cookie, Some(csrf));
    let internal = [
        p.base_url(),
        "http://localhost:9/v1".to_owned(),
        "http://[::1]:9/v1".to_owned(),
        "http://10.1.2.3/v1".to_owned(),
        "http://172.16.0.1/v1".to_owned(),
        "http://192.168.1.1/v1".to_owned(),
        "http://169.254.169.254/latest".to_owned(),
        "http://[fd00::1]/v1".to_owned(),
        "http://[fe80::1]/v1".to_owned(),
        "http://[::ffff:127.0.0.1]/v1".to_owned(),
    ];
    for url in &internal {
        let (status, resp) = call(
            &proxy,
            Method::POST,
            "/admin/api/adapters",
            Some(create_body("inside", url)),
            &alice,
        )
        .await;
        assert_eq!(status, 400, "{url}: {resp}");
        let message = resp["error"].as_str().unwrap();
        assert!(
            message.starts_with("source.base_url") && message.contains("internal"),
            "{url}: {message}"
        );
    }
    // Editing a public adapter to point inside is refused too.
    let (status, _) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("outside", "https://api.deepseek.com/v1")),
        &alice,
    )
    .await;
    assert_eq!(status, 201);
    let (status, resp) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/adapters/outside",
        Some(json!({"base_url": p.base_url()})),
        &alice,
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    // Admins may use internal sources.
    let (status, _) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("ops", &p.base_url())),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 201);

    // A file that slipped past the API check (hand-written, or a name that resolved
    // elsewhere then) is refused when the proxy connects: nothing reaches the address.
    let mut yaml = adapter_yaml(&p.base_url(), &[KEY], "");
    yaml.insert_str(0, "owner: alice\n");
    proxy.write_adapter("sneaky", &yaml);
    wait_until(DEADLINE, "the sneaky adapter loads", || {
        proxy.live.load().adapter("sneaky").is_some()
    });
    p.clear_requests();
    let (status, body) = messages_status(&proxy, KEY).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("permission_error") && body.contains("internal"),
        "{body}"
    );
    assert_eq!(p.request_count(), 0, "nothing reached the internal address");

    // Once alice is an admin, the same adapter connects.
    users::update(
        &proxy.dir.path().join("users.yaml"),
        "alice",
        None,
        Some(true),
        None,
    )
    .unwrap();
    wait_status(
        DEADLINE,
        &proxy.url(""),
        KEY,
        200,
        "alice's adapter connects as an admin's",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_listed_internal_sources_work_for_users() {
    let p = provider().await;
    let proxy = start("private_sources_allowed: [\"127.0.0.1\"]\n");
    let (cookie, csrf) = login(&proxy, "bob", "bob-password").await;
    let bob = Auth::Session(cookie, Some(csrf));
    let (status, created) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("lan", &p.base_url())),
        &bob,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, body) = messages_status(&proxy, created["api_key"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    // Only what is listed: another loopback address is still refused.
    let (status, _) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("lan2", "http://127.0.0.2:9/v1")),
        &bob,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_manages_users_and_sessions_follow() {
    let proxy = start("");
    let cli = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
            .args(args)
            .arg("--config")
            .arg(proxy.config_path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = cli(
        &["user", "add", "dave", "--max-adapters", "1"],
        "dave-password-1\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(proxy.dir.path().join("users.yaml")).unwrap();
    assert!(!text.contains("dave-password-1") && text.contains("$argon2id$"));
    let out = cli(&["user", "add", "eve"], "short\n");
    assert!(!out.status.success(), "a short password is refused");

    let form_login = |user: &'static str, password: &'static str| {
        let url = proxy.admin_url("/login");
        async move {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .post(url)
                .form(&[("user", user), ("password", password)])
                .send()
                .await
                .unwrap()
                .headers()
                .get_all("set-cookie")
                .iter()
                .any(|v| v.to_str().unwrap_or("").starts_with("fp_session="))
        }
    };
    wait_until_async(DEADLINE, "dave can log in", || {
        form_login("dave", "dave-password-1")
    })
    .await;
    let (cookie, csrf) = login(&proxy, "dave", "dave-password-1").await;
    let dave = Auth::Session(cookie, Some(csrf));
    assert_eq!(
        call(&proxy, Method::GET, "/admin/api/adapters", None, &dave)
            .await
            .0,
        200
    );

    // A new password ends the old sessions and the old password.
    let out = cli(&["user", "passwd", "dave"], "dave-password-2\n");
    assert!(out.status.success());
    wait_until_async(DEADLINE, "the old session ends", || async {
        call(&proxy, Method::GET, "/admin/api/adapters", None, &dave)
            .await
            .0
            == 401
    })
    .await;
    assert!(!form_login("dave", "dave-password-1").await);
    assert!(form_login("dave", "dave-password-2").await);
    let out = cli(&["user", "delete", "dave"], "");
    assert!(out.status.success());
    wait_until_async(DEADLINE, "a deleted user cannot log in", || async {
        !form_login("dave", "dave-password-2").await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn login_attempts_are_rate_limited() {
    let proxy = start("");
    let attempt = |password: &'static str| {
        let url = proxy.admin_url("/login");
        async move {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .post(url)
                .form(&[("user", "bob"), ("password", password)])
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..5 {
        let r = attempt("wrong-password").await;
        assert!(r.headers().get("set-cookie").is_none());
    }
    // Now even the right password is turned away for a while.
    let r = attempt("bob-password").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("set-cookie").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_keys_appear_in_no_log_listing_or_page() {
    let p = provider().await;
    let admin_port = free_port();
    let port = free_port();
    let server = format!(
        "listen: 127.0.0.1:{port}\nadmin:\n  listen: 127.0.0.1:{admin_port}\n  token_sha256: {}\n\
         access_log:\n  path: access.log\nprivate_sources_allowed: [\"127.0.0.1\"]\n",
        sha256_hex(TOKEN)
    );
    let dir = config_dir(&server, &[]);
    users::add(
        &dir.path().join("users.yaml"),
        "alice",
        "alice-password",
        false,
        None,
    )
    .unwrap();
    let config = dir.path().join("flexiproxy.yaml");
    let process = ProcessProxy::spawn(&config, port, &[]);
    let admin = format!("http://127.0.0.1:{admin_port}");
    let http = client();
    let created: Value = http
        .post(format!("{admin}/admin/api/adapters"))
        .bearer_auth(TOKEN)
        .json(
            &json!({"name": "canary", "owner": "alice", "source": {"base_url": p.base_url(),
              "api_key": CANARY_PROVIDER_KEY, "model": "fake-model"}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["api_key"].as_str().expect("created").to_owned();
    let status = http
        .post(process.url("/v1/messages"))
        .header("x-api-key", &key)
        .json(&messages_body(false))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let listing = http
        .get(format!("{admin}/admin/api/adapters"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listing.contains("\"canary\""), "{listing}");

    // The owner's panel pages, after creation, hold neither key.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = no_redirects
        .post(format!("{admin}/login"))
        .form(&[("user", "alice"), ("password", "alice-password")])
        .send()
        .await
        .unwrap();
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("fp_session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let mut pages = String::new();
    for path in ["/", "/adapters/new", "/usage", "/adapters/canary/key"] {
        let page = no_redirects
            .get(format!("{admin}{path}"))
            .header("cookie", format!("fp_session={cookie}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        pages.push_str(&page);
    }
    assert!(pages.contains("canary"), "the list shows the adapter");

    // A failing login with the keys as user names must not log them either.
    let _ = no_redirects
        .post(format!("{admin}/login"))
        .form(&[("user", "nobody"), ("password", CANARY_PROVIDER_KEY)])
        .send()
        .await
        .unwrap();
    let log = process.log_text();
    let access = std::fs::read_to_string(dir.path().join("access.log")).unwrap_or_default();
    for (what, text) in [
        ("listing", &listing),
        ("pages", &pages),
        ("process log", &log),
        ("access log", &access),
    ] {
        assert!(
            !text.contains(CANARY_PROVIDER_KEY),
            "provider key in the {what}"
        );
        assert!(!text.contains(&key), "issued key in the {what}");
        assert!(!text.contains("alice-password"), "password in the {what}");
        assert!(!text.contains(&cookie), "session cookie in the {what}");
    }
    assert!(
        log.contains("adapter created"),
        "the change is logged: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn panel_over_tls_sets_secure_cookies() {
    let pki = flexiproxy_testkit::tls::test_ca_and_cert(&["localhost"]);
    let certs = tempfile::tempdir().unwrap();
    let (_, cert, key) = pki.write_to_dir(certs.path()).unwrap();
    let admin_port = free_port();
    let server = format!(
        "listen: 127.0.0.1:{}\nthreads: 2\nadmin:\n  listen: 127.0.0.1:{admin_port}\n  tls:\n    cert: {}\n    key: {}\n",
        free_port(),
        cert.display(),
        key.display()
    );
    let dir = config_dir(&server, &[]);
    users::add(
        &dir.path().join("users.yaml"),
        "alice",
        "alice-password",
        false,
        None,
    )
    .unwrap();
    let _proxy = Proxy::start_in(dir);
    let https = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_cert_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = https
        .post(format!("https://localhost:{admin_port}/login"))
        .form(&[("user", "alice"), ("password", "alice-password")])
        .send()
        .await
        .unwrap();
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("fp_session="))
        .expect("a session cookie")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    // Plain HTTP is not served on the TLS admin port.
    assert!(
        client()
            .get(format!("http://127.0.0.1:{admin_port}/health"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn random_requests_never_break_the_admin_listener() {
    use rand::{RngExt, SeedableRng};
    let proxy = start("");
    let (cookie, csrf) = login(&proxy, "alice", "alice-password").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_ad31);
    let paths = [
        "/",
        "/login",
        "/logout",
        "/adapters/new",
        "/adapters/x/key",
        "/adapters/x/rotate",
        "/adapters/x/delete",
        "/adapters/x/test",
        "/usage",
        "/users",
        "/users/bob",
        "/lang",
        "/static/panel.css",
        "/admin/api/adapters",
        "/admin/api/adapters/x",
        "/admin/api/adapters/x/keys",
        "/admin/api/adapters/%2e%2e%2fetc",
        "/admin/api/",
        "/adapters/%ff%fe/key",
        "/admin/api/adapters/a/b/c",
    ];
    let methods = [
        Method::GET,
        Method::POST,
        Method::PATCH,
        Method::DELETE,
        Method::PUT,
    ];
    let bodies: [&[u8]; 8] = [
        b"",
        b"{}",
        b"{\"name\": 5}",
        b"{\"name\":\"x\",\"source\":{\"base_url\":\"http://[::1\",\"api_key\":\"k\",\"model\":\"m\"}}",
        b"user=alice&password=x&csrf=y",
        b"name=x&base_url=%ff&api_key=k&model=m&protocol=soap&csrf=",
        b"\xff\xfe\x00garbage",
        b"{\"limits\": {\"requests_per_minute\": -1}, \"model_map\": [{}]}",
    ];
    for i in 0..300 {
        let mut path = paths[rng.random_range(0..paths.len())].to_owned();
        if rng.random_bool(0.3) {
            path.push_str(&format!(
                "?lang=zh&to={}&back=//evil.example",
                rng.random::<u32>()
            ));
        }
        let method = methods[rng.random_range(0..methods.len())].clone();
        let mut body = bodies[rng.random_range(0..bodies.len())].to_vec();
        if rng.random_bool(0.3) {
            let cut = rng.random_range(0..=body.len());
            body.truncate(cut);
            body.extend((0..rng.random_range(0..40)).map(|_| rng.random::<u8>()));
        }
        let mut req = client()
            .request(method.clone(), proxy.admin_url(&path))
            .body(body);
        match rng.random_range(0..4) {
            0 => req = req.bearer_auth(TOKEN),
            1 => {
                req = req
                    .header("cookie", format!("fp_session={cookie}"))
                    .header("x-csrf-token", &csrf)
            }
            2 => req = req.header("cookie", format!("fp_session={}", rng.random::<u64>())),
            _ => {}
        }
        if rng.random_bool(0.5) {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} {method} {path}: {e}"));
        let status = resp.status().as_u16();
        assert!(status < 500, "request {i}: {method} {path} → {status}");
        if let Some(location) = resp.headers().get("location") {
            let location = location.to_str().unwrap();
            assert!(
                location.starts_with('/') && !location.starts_with("//"),
                "open redirect: {location}"
            );
        }
    }
    assert_eq!(
        client()
            .get(proxy.admin_url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_file_mounted_like_a_config_map_is_picked_up_on_the_symlink_swap() {
    let text = format!(
        "listen: 127.0.0.1:{}\nthreads: 2\nadmin:\n  listen: 127.0.0.1:{}\n",
        free_port(),
        free_port()
    );
    let dir = config_dir(&text, &[]);
    let secret = dir.path();
    // Kubernetes: users.yaml -> ..data/users.yaml, ..data -> ..v1 (swapped by rename).
    std::fs::create_dir(secret.join("..v1")).unwrap();
    users::add(
        &secret.join("..v1/users.yaml"),
        "alice",
        "alice-password",
        false,
        None,
    )
    .unwrap();
    std::os::unix::fs::symlink("..v1", secret.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/users.yaml", secret.join("users.yaml")).unwrap();
    let proxy = Proxy::start_in(dir);
    let form_login = |user: &'static str, password: &'static str| {
        let url = proxy.admin_url("/login");
        async move {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .post(url)
                .form(&[("user", user), ("password", password)])
                .send()
                .await
                .unwrap()
                .headers()
                .get_all("set-cookie")
                .iter()
                .any(|v| v.to_str().unwrap_or("").starts_with("fp_session="))
        }
    };
    assert!(form_login("alice", "alice-password").await);
    std::fs::create_dir(proxy.dir.path().join("..v2")).unwrap();
    users::add(
        &proxy.dir.path().join("..v2/users.yaml"),
        "bob",
        "bob-password-2",
        false,
        None,
    )
    .unwrap();
    std::os::unix::fs::symlink("..v2", proxy.dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(
        proxy.dir.path().join("..data_tmp"),
        proxy.dir.path().join("..data"),
    )
    .unwrap();
    wait_until_async(DEADLINE, "bob from the new version can log in", || {
        form_login("bob", "bob-password-2")
    })
    .await;
    assert!(
        !form_login("alice", "alice-password").await,
        "alice is gone with the old version"
    );
}
