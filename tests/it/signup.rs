//! Accounts not made at a shell (issue #27), over real HTTP to a real admin listener: sign-up
//! closed and open by form and by JSON, password rules, the sign-up rate limit per client
//! address, CSRF and cross-site refusals on the new forms, and a signed-up user's adapter
//! key working; `browser` walks sign-up in headless Chromium. Invitations, approval and
//! sessions are in `signup_admin`; canaries and random requests in `signup_hostile`. The
//! helpers here serve all of them.

use crate::harness::*;
use crate::management::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::net::IpAddr;

/// The same in a real browser.
#[path = "signup_browser.rs"]
mod browser;

/// A password zxcvbn rates safely unguessable.
pub(crate) const GOOD: &str = "tulip-carbon-orbit-97";

/// A client whose requests come from `ip` (any of 127.0.0.0/8 is this machine), not
/// following redirects: each address has its own sign-up allowance.
pub(crate) fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs `name` up by JSON with a good password, from `from`.
pub(crate) async fn signup_as(proxy: &Proxy, from: &str, name: &str) -> (u16, Value) {
    signup_json(
        proxy,
        from,
        json!({"username": name, "password": GOOD}),
        None,
    )
    .await
}

/// The sign-up form's fields for `name` with a good password.
pub(crate) fn good_fields(name: &str) -> [(&str, &str); 3] {
    [("username", name), ("password", GOOD), ("password2", GOOD)]
}

pub(crate) async fn signup_json(
    proxy: &Proxy,
    from: &str,
    body: Value,
    lang: Option<&str>,
) -> (u16, Value) {
    let mut req = client_from(from)
        .post(proxy.admin_url("/admin/api/signup"))
        .json(&body);
    if let Some(l) = lang {
        req = req.header("accept-language", l);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Posts the sign-up form; the status, the `Location` and the page.
pub(crate) async fn signup_form(
    proxy: &Proxy,
    from: &str,
    fields: &[(&str, &str)],
    lang: &str,
) -> (u16, String, String) {
    let resp = client_from(from)
        .post(proxy.admin_url("/signup"))
        .header("accept-language", lang)
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, resp.text().await.unwrap())
}

/// `POST /admin/api/session`: the status, the cookie and the CSRF token.
pub(crate) async fn json_login(
    proxy: &Proxy,
    user: &str,
    password: &str,
) -> (u16, Option<String>, Option<String>) {
    let resp = client()
        .post(proxy.admin_url("/admin/api/session"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cookie = session_cookie(&resp);
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (
        status,
        cookie,
        body["csrf_token"].as_str().map(str::to_owned),
    )
}

pub(crate) async fn page(proxy: &Proxy, path: &str, cookie: Option<&str>) -> (u16, String) {
    let mut req = client_from("127.0.0.1").get(proxy.admin_url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", format!("fp_session={c}"));
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

pub(crate) fn users_file(proxy: &Proxy) -> String {
    std::fs::read_to_string(proxy.dir.path().join("users.yaml")).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_registration_refuses_every_sign_up_and_hides_the_link() {
    let proxy = start("");
    let before = users_file(&proxy);
    let (_, login_page) = page(&proxy, "/login", None).await;
    assert!(login_page.contains("id=\"login-form\""));
    assert!(
        !login_page.contains("/signup"),
        "no sign-up link when closed"
    );
    let (status, _) = page(&proxy, "/signup", None).await;
    assert_eq!(status, 404);
    let (status, body) = signup_as(&proxy, "127.0.0.1", "mallory").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("closed"), "{body}");
    let (status, _, text) =
        signup_form(&proxy, "127.0.0.1", &good_fields("mallory"), "zh-CN").await;
    assert_eq!(status, 404);
    assert!(text.contains("本服务器未开放注册"), "{text}");
    assert_eq!(users_file(&proxy), before, "nobody was added");
}

#[tokio::test(flavor = "multi_thread")]
async fn open_registration_by_json_and_form_then_the_user_s_key_works() {
    let p = provider().await;
    let proxy = start(
        "private_sources_allowed: [\"127.0.0.1\"]\naccounts:\n  registration: open\n  default_max_adapters: 1\n",
    );
    let (_, login_page) = page(&proxy, "/login", None).await;
    assert!(login_page.contains("href=\"/signup\""), "{login_page}");
    let (status, signup_page) = page(&proxy, "/signup", None).await;
    assert_eq!(status, 200);
    assert!(
        signup_page.contains("id=\"signup-form\"") && !signup_page.contains("name=\"invite\""),
        "open registration asks for no code"
    );

    // By JSON: 201, then a JSON login and the account as /me tells it.
    let (status, body) = signup_as(&proxy, "127.0.0.2", "dave").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body, json!({"username": "dave", "status": "active"}));
    let (status, cookie, csrf) = json_login(&proxy, "dave", GOOD).await;
    assert_eq!(status, 200);
    let dave = Auth::Session(cookie.unwrap(), csrf);
    let (status, me) = call(&proxy, Method::GET, "/admin/api/me", None, &dave).await;
    assert_eq!(status, 200);
    assert_eq!(
        me,
        json!({"username": "dave", "admin": false, "max_adapters": 1, "quota": null, "usage": null})
    );
    let stored = users_file(&proxy);
    assert!(
        stored.contains("name: dave") && !stored.contains(GOOD),
        "{stored}"
    );

    // The new user creates an adapter on a provider and the key works; their cap is 1.
    let (status, created) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("dave-a", &p.base_url())),
        &dave,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["adapter"]["owner"], "dave");
    let (status, text) = messages_status(&proxy, created["api_key"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{text}");
    let (status, _) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("dave-b", &p.base_url())),
        &dave,
    )
    .await;
    assert_eq!(status, 409, "default_max_adapters: 1");

    // By form: a redirect to the login page, which then logs in.
    let fields = good_fields("erin");
    let (status, location, _) = signup_form(&proxy, "127.0.0.3", &fields, "en").await;
    assert_eq!((status, location.as_str()), (303, "/login?welcome=1"));
    assert!(logs_in(&proxy, "erin", GOOD).await);

    // A taken name says "taken" and nothing else, in each language; nothing changes.
    let before = users_file(&proxy);
    let (status, body) = signup_as(&proxy, "127.0.0.4", "alice").await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "username: taken; choose another");
    let (status, _, text) = signup_form(&proxy, "127.0.0.4", &fields, "zh-CN").await;
    assert_eq!(status, 409);
    assert!(text.contains("用户名：该名称已被占用"), "{text}");
    assert_eq!(users_file(&proxy), before);
    assert!(
        logs_in(&proxy, "alice", "alice-password").await,
        "alice untouched"
    );

    // Malformed bodies and names are 400s naming the field.
    for (body, field) in [
        (json!({"username": "x y", "password": GOOD}), "username:"),
        (json!({"username": "", "password": GOOD}), "username:"),
        (json!({"username": "frank"}), "body:"),
        (
            json!({"username": "frank", "password": GOOD, "admin": true}),
            "admin: unknown field",
        ),
    ] {
        let (status, resp) = signup_json(&proxy, "127.0.0.5", body.clone(), None).await;
        assert_eq!(status, 400, "{body} → {resp}");
        assert!(
            resp["error"].as_str().unwrap().starts_with(field),
            "{body} → {resp}"
        );
    }
    assert!(!users_file(&proxy).contains("frank"));
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_must_be_long_and_not_guessable() {
    let proxy = start("accounts:\n  registration: open\n");
    for (password, word) in [
        ("short-1", "at least 10"),
        ("password123", "guess"),
        ("qwertyuiop12", "guess"),
        ("gracegrace1", "guess"),
        ("aaaaaaaaaaaaaaaa", "guess"),
    ] {
        let (status, body) = signup_json(
            &proxy,
            "127.0.0.6",
            json!({"username": "grace", "password": password}),
            None,
        )
        .await;
        assert_eq!(status, 400, "{password}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with("password:") && error.contains(word),
            "{password}: {error}"
        );
    }
    // The form says it in the page's language, the field by its label.
    let weak = [
        ("username", "grace"),
        ("password", "password123"),
        ("password2", "password123"),
    ];
    let (status, _, text) = signup_form(&proxy, "127.0.0.6", &weak, "zh-CN").await;
    assert_eq!(status, 400);
    assert!(text.contains("密码：太容易被猜到"), "{text}");
    let (_, _, text) = signup_form(&proxy, "127.0.0.6", &weak, "en").await;
    assert!(text.contains("Password: too easy to guess"), "{text}");
    let differ = [
        ("username", "grace"),
        ("password", GOOD),
        ("password2", "tulip-carbon-orbit-98"),
    ];
    let (status, _, text) = signup_form(&proxy, "127.0.0.6", &differ, "en").await;
    assert_eq!(status, 400);
    assert!(text.contains("The two passwords differ"), "{text}");
    assert!(!users_file(&proxy).contains("grace"));
    // Refused passwords did not use up the address's sign-ups.
    let (status, _) = signup_as(&proxy, "127.0.0.6", "grace").await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_ups_are_limited_per_client_address() {
    let proxy = start("accounts:\n  registration: open\n");
    for i in 0..5 {
        let (status, body) = signup_as(&proxy, "127.0.0.9", &format!("user{i}")).await;
        assert_eq!(status, 201, "{i}: {body}");
    }
    let (status, body) = signup_as(&proxy, "127.0.0.9", "user5").await;
    assert_eq!(status, 429, "{body}");
    let (status, _, text) = signup_form(&proxy, "127.0.0.9", &good_fields("user6"), "zh-CN").await;
    assert_eq!(status, 429);
    assert!(text.contains("来自您地址的注册过多"), "{text}");
    assert!(!users_file(&proxy).contains("user5"));
    // Another address is not affected.
    let (status, _) = signup_as(&proxy, "127.0.0.10", "user5").await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn new_forms_and_routes_refuse_other_sites_and_missing_csrf_tokens() {
    let proxy = start("accounts:\n  registration: open\n");
    let evil = [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("origin", "null"),
    ];
    for (header, value) in evil {
        let resp = client_from("127.0.0.19")
            .post(proxy.admin_url("/signup"))
            .header(header, value)
            .form(&good_fields("pete"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{header}: {value}");
        for path in ["/admin/api/signup", "/admin/api/session"] {
            let resp = client_from("127.0.0.19")
                .post(proxy.admin_url(path))
                .header(header, value)
                .header("content-type", "text/plain")
                .body(json!({"username": "pete", "password": GOOD}).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 403, "{path} {header}: {value}");
        }
    }
    assert!(!users_file(&proxy).contains("pete"));
    // The admin's invitation form needs the session's token.
    let (cookie, csrf) = login(&proxy, "carol", "carol-password").await;
    let post = |path: String, csrf: Option<String>| {
        let mut fields = vec![("uses", "1".to_owned()), ("expires", "7d".to_owned())];
        if let Some(c) = csrf {
            fields.push(("csrf", c));
        }
        client_from("127.0.0.1")
            .post(proxy.admin_url(&path))
            .header("cookie", format!("fp_session={cookie}"))
            .form(&fields)
            .send()
    };
    let resp = post("/invites".into(), Some("wrong".into())).await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(!proxy.dir.path().join("invites.yaml").exists());
    let resp = post("/invites".into(), Some(csrf.clone())).await.unwrap();
    assert_eq!(resp.status(), 201);
    let text = resp.text().await.unwrap();
    let code = text
        .split("id=\"new-invite-code\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the code, shown once")
        .to_owned();
    assert!(code.starts_with("inv-"));
    let (_, again) = page(&proxy, "/users", Some(&cookie)).await;
    assert!(!again.contains(&code), "shown once");
    let id = again
        .split("id=\"revoke-invite-")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let path = format!("/invites/{id}/revoke");
    assert_eq!(post(path.clone(), None).await.unwrap().status(), 403);
    assert_eq!(post(path, Some(csrf)).await.unwrap().status(), 303);
    let stored = std::fs::read_to_string(proxy.dir.path().join("invites.yaml")).unwrap();
    assert!(!stored.contains(&id), "revoked: {stored}");
}
