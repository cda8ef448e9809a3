//! Panel accounts through the management API: users see and change only their own adapters,
//! caps, internal sources refused for users (at create, edit and connect), the user CLI and
//! sessions, login limits, TLS cookies, canary secrets, random requests, a users file
//! mounted like a Kubernetes Secret.

use crate::harness::*;
use crate::management::*;
use flexiproxy::config::users;
use reqwest::Method;
use serde_json::{Value, json};

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

    wait_until_async(DEADLINE, "dave can log in", || {
        logs_in(&proxy, "dave", "dave-password-1")
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
    assert!(!logs_in(&proxy, "dave", "dave-password-1").await);
    assert!(logs_in(&proxy, "dave", "dave-password-2").await);
    let out = cli(&["user", "delete", "dave"], "");
    assert!(out.status.success());
    wait_until_async(DEADLINE, "a deleted user cannot log in", || async {
        !logs_in(&proxy, "dave", "dave-password-2").await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn login_attempts_are_rate_limited() {
    let proxy = start("");
    for _ in 0..5 {
        let r = post_login(&proxy, "bob", "wrong-password").await;
        assert!(r.headers().get("set-cookie").is_none());
    }
    // Now even the right password is turned away for a while.
    let r = post_login(&proxy, "bob", "bob-password").await;
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
    let (dir, config) = config_with_alice(&server);
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
    let cookie = session_cookie(&login).unwrap();
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
    let (dir, _) = config_with_alice(&server);
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
    assert!(logs_in(&proxy, "alice", "alice-password").await);
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
        logs_in(&proxy, "bob", "bob-password-2")
    })
    .await;
    assert!(
        !logs_in(&proxy, "alice", "alice-password").await,
        "alice is gone with the old version"
    );
}
