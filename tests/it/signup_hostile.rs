//! The account routes of issue #27 against what should never work: canary passwords and
//! invitation codes must appear in no log line, page, listing or file, and random requests
//! to the new routes (any method, body, credentials, origin) never get a 5xx.

use crate::harness::*;
use crate::management::*;
use crate::signup::{client_from, json_login, signup_as, signup_json};
use flexiproxy::config::users;
use reqwest::Method;
use serde_json::{Value, json};

const CANARY_PASSWORD: &str = "canary-Pw-violet-harbor-8317";

#[tokio::test(flavor = "multi_thread")]
async fn canary_passwords_and_codes_appear_in_no_log_page_listing_or_file() {
    let admin_port = free_port();
    let port = free_port();
    let server = format!(
        "listen: 127.0.0.1:{port}\nadmin:\n  listen: 127.0.0.1:{admin_port}\n  token_sha256: {}\n\
         access_log:\n  path: access.log\naccounts:\n  registration: invite\n",
        sha256_hex(TOKEN)
    );
    let dir = config_dir(&server, &[]);
    let users_path = dir.path().join("users.yaml");
    users::add(&users_path, "carol", "carol-password", true, None).unwrap();
    let process = ProcessProxy::spawn(&dir.path().join("flexiproxy.yaml"), port, &[]);
    let admin = format!("http://127.0.0.1:{admin_port}");
    wait_until(DEADLINE, "the admin listener accepts connections", || {
        std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_ok()
    });
    let http = client();
    let created: Value = http
        .post(format!("{admin}/admin/api/invites"))
        .bearer_auth(TOKEN)
        .json(&json!({"uses": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = created["code"].as_str().expect("a code").to_owned();
    let signup = |name: &str, from: &str, invite: &str| {
        let body = json!({"username": name, "password": CANARY_PASSWORD, "invite": invite});
        client_from(from)
            .post(format!("{admin}/admin/api/signup"))
            .json(&body)
            .send()
    };
    assert_eq!(
        signup("quinn", "127.0.0.21", &code).await.unwrap().status(),
        201
    );
    // Refusals with the canaries in them: a taken name, a wrong code (the code's cousin).
    assert_eq!(
        signup("quinn", "127.0.0.22", &code).await.unwrap().status(),
        409
    );
    let wrong = format!("{code}x");
    assert_eq!(
        signup("rita", "127.0.0.22", &wrong).await.unwrap().status(),
        400
    );
    // Logins with the password, right and wrong, by JSON and form.
    let resp = http
        .post(format!("{admin}/admin/api/session"))
        .json(&json!({"username": "quinn", "password": CANARY_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let quinn = session_cookie(&resp).unwrap();
    let _ = http
        .post(format!("{admin}/admin/api/session"))
        .json(&json!({"username": CANARY_PASSWORD, "password": code}))
        .send()
        .await
        .unwrap();
    let no_redirects = client_from("127.0.0.1");
    let login = no_redirects
        .post(format!("{admin}/login"))
        .form(&[("user", "carol"), ("password", "carol-password")])
        .send()
        .await
        .unwrap();
    let carol = session_cookie(&login).unwrap();

    let mut pages = String::new();
    for (cookie, path) in [
        (None, "/login"),
        (None, "/signup"),
        (Some(&quinn), "/account"),
        (Some(&quinn), "/"),
        (Some(&carol), "/users"),
    ] {
        let mut req = no_redirects.get(format!("{admin}{path}"));
        if let Some(c) = cookie {
            req = req.header("cookie", format!("fp_session={c}"));
        }
        pages.push_str(&req.send().await.unwrap().text().await.unwrap());
    }
    assert!(pages.contains("quinn"), "the users page lists the new user");
    let mut listings = String::new();
    for path in ["/admin/api/invites", "/admin/api/users", "/admin/api/me"] {
        let text = http
            .get(format!("{admin}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        listings.push_str(&text);
    }
    assert!(listings.contains("\"uses_left\":1"), "{listings}");
    let files = ["users.yaml", "invites.yaml"]
        .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap())
        .join("\n");
    wait_until(DEADLINE, "the sign-up is logged", || {
        process.log_text().contains("panel sign-up")
    });
    let log = process.log_text();
    let access = std::fs::read_to_string(dir.path().join("access.log")).unwrap_or_default();
    for (what, text) in [
        ("pages", &pages),
        ("listings", &listings),
        ("account files", &files),
        ("process log", &log),
        ("access log", &access),
    ] {
        assert!(!text.contains(CANARY_PASSWORD), "password in the {what}");
        assert!(!text.contains(&code), "invitation code in the {what}");
        assert!(!text.contains(&quinn), "session cookie in the {what}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn random_requests_to_the_account_routes_never_get_a_5xx() {
    use rand::{RngExt, SeedableRng};
    // Single sign-on providers that do not answer (closed ports): their routes too.
    let down = format!("http://127.0.0.1:{}", free_port());
    let proxy = start(&format!(
        "accounts:\n  registration: invite\n  approval: true\n  oidc:\n    - {{ name: company, issuer: \"{down}\", client_id: c, client_secret: oidc-hostile-secret }}\n  github: {{ client_id: g, client_secret: gh-hostile-secret, web_url: \"{down}\", api_url: \"{down}\" }}\n"
    ));
    let (status, created) = call(
        &proxy,
        Method::POST,
        "/admin/api/invites",
        Some(json!({"uses": 3})),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 201);
    let code = created["code"].as_str().unwrap().to_owned();
    let (status, _) = signup_json(
        &proxy,
        "127.0.0.30",
        json!({"username": "sam", "password": crate::signup::GOOD, "invite": code}),
        None,
    )
    .await;
    assert_eq!(status, 202);
    let (cookie, csrf) = login(&proxy, "bob", "bob-password").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0051_9e0b);
    let paths = [
        "/signup",
        "/signup?invite=%ff%00",
        "/account",
        "/account/password",
        "/users/sam/status",
        "/users/%2e%2e/status",
        "/invites",
        "/invites/x/revoke",
        "/admin/api/signup",
        "/admin/api/session",
        "/admin/api/me",
        "/admin/api/me/password",
        "/admin/api/users",
        "/admin/api/users/sam",
        "/admin/api/users/nobody",
        "/admin/api/invites",
        "/admin/api/invites/0123456789ab",
        "/admin/api/invites/%2e%2e%2f",
        "/sso/company",
        "/sso/github",
        "/sso/nobody",
        "/sso/company/callback?code=x&state=y",
        "/sso/github/callback?state=%ff%00&code=",
        "/sso/company/callback?error=access_denied",
        "/sso/nobody/callback",
        "/sso/%2e%2e/callback?state=",
    ];
    let methods = [
        Method::GET,
        Method::POST,
        Method::PATCH,
        Method::DELETE,
        Method::PUT,
    ];
    let values = [
        json!(null),
        json!(-1),
        json!(4294967296u64),
        json!(1e308),
        json!(""),
        json!("\u{2028}\u{0}${HOME}"),
        json!("x".repeat(5000)),
        json!(["a"]),
        json!({"a": 1}),
        json!("pending"),
        json!("disabled"),
        json!("7d"),
        json!("-5s"),
        json!(code),
    ];
    let fields = [
        "username",
        "password",
        "invite",
        "uses",
        "expires",
        "status",
        "max_adapters",
        "current_password",
        "new_password",
        "admin",
    ];
    for i in 0..300 {
        let path = paths[rng.random_range(0..paths.len())];
        let method = methods[rng.random_range(0..methods.len())].clone();
        let body: Vec<u8> = match rng.random_range(0..4) {
            0 => {
                let mut object = serde_json::Map::new();
                for _ in 0..rng.random_range(0..5) {
                    let field = fields[rng.random_range(0..fields.len())];
                    object.insert(field.into(), values[rng.random_range(0..values.len())].clone());
                }
                Value::Object(object).to_string().into_bytes()
            }
            1 => (0..rng.random_range(0..64)).map(|_| rng.random::<u8>()).collect(),
            2 => format!(
                "username=u{}&password=%ff%fe&password2=x&invite={code}&csrf={csrf}&status=active&uses=-1&expires=9999999d",
                rng.random::<u16>()
            )
            .into_bytes(),
            _ => Vec::new(),
        };
        let from = format!("127.0.1.{}", rng.random_range(1..250));
        let mut req = client_from(&from)
            .request(method.clone(), proxy.admin_url(path))
            .body(body);
        match rng.random_range(0..4) {
            0 => req = req.bearer_auth(TOKEN),
            1 => {
                req = req
                    .header("cookie", format!("fp_session={cookie}"))
                    .header("x-csrf-token", &csrf)
            }
            2 => req = req.header("origin", "null"),
            _ => req = req.header("cookie", format!("fp_sso={}", rng.random::<u64>())),
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
    }
    // Still serving, still sane: bob's session, the pending account, the listing.
    assert_eq!(json_login(&proxy, "sam", crate::signup::GOOD).await.0, 403);
    let (status, _) = call(
        &proxy,
        Method::GET,
        "/admin/api/users",
        None,
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(signup_as(&proxy, "127.0.0.31", "tess").await.0, 400);
}
