//! Users managing themselves and admins' reset links (issue #27), over real HTTP: listing and
//! ending one's panel sessions (never someone else's, never a cookie shown), deleting one's
//! account (adapters, keys and sessions go with it; the last admin stays), and one-time
//! password-reset links (stored hashed, single use under concurrency, expiring).

use crate::harness::*;
use crate::management::*;
use crate::signup::*;
use reqwest::Method;
use serde_json::{Value, json};

/// A JSON session of `user`: its cookie and CSRF token.
pub(crate) async fn session(proxy: &Proxy, user: &str, password: &str) -> Auth {
    let (status, cookie, csrf) = json_login(proxy, user, password).await;
    assert_eq!(status, 200, "{user} logs in");
    Auth::Session(cookie.unwrap(), csrf)
}

fn cookie_of(auth: &Auth) -> String {
    match auth {
        Auth::Session(c, _) => c.clone(),
        _ => unreachable!("a session"),
    }
}

fn without_csrf(auth: &Auth) -> Auth {
    Auth::Session(cookie_of(auth), None)
}

async fn alive(proxy: &Proxy, auth: &Auth) -> bool {
    call(proxy, Method::GET, "/admin/api/me", None, auth)
        .await
        .0
        == 200
}

#[tokio::test(flavor = "multi_thread")]
async fn users_list_and_end_their_own_sessions_only() {
    let proxy = start("");
    let first = session(&proxy, "alice", "alice-password").await;
    let second = session(&proxy, "alice", "alice-password").await;
    let bob = session(&proxy, "bob", "bob-password").await;
    let (status, listed) = call(&proxy, Method::GET, "/admin/api/sessions", None, &first).await;
    assert_eq!(status, 200, "{listed}");
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{listed}");
    let current: Vec<bool> = sessions.iter().map(|s| s["current"] == true).collect();
    assert_eq!(current.iter().filter(|c| **c).count(), 1, "{listed}");
    for s in sessions {
        assert_eq!(s["client"], "127.0.0.1");
        assert!(s["started"].as_str().unwrap().ends_with('Z'), "{s}");
    }
    // Never a cookie, nor its hash.
    let text = listed.to_string();
    for c in [cookie_of(&first), cookie_of(&second)] {
        assert!(
            !text.contains(&c) && !text.contains(&sha256_hex(&c)),
            "{text}"
        );
    }
    let other_id = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/admin/api/sessions/{other_id}");

    // Bob cannot end it (as if it did not exist), nor can a request without the CSRF token.
    assert_eq!(call(&proxy, Method::DELETE, &path, None, &bob).await.0, 404);
    let (status, _) = call(&proxy, Method::DELETE, &path, None, &without_csrf(&first)).await;
    assert_eq!(status, 403);
    assert!(alive(&proxy, &second).await);

    assert_eq!(
        call(&proxy, Method::DELETE, &path, None, &first).await.0,
        204
    );
    assert!(!alive(&proxy, &second).await, "the ended session is gone");
    assert!(alive(&proxy, &first).await && alive(&proxy, &bob).await);
    assert_eq!(
        call(&proxy, Method::DELETE, &path, None, &first).await.0,
        404
    );

    // All others: two more end, this one and bob's stay.
    let third = session(&proxy, "alice", "alice-password").await;
    let fourth = session(&proxy, "alice", "alice-password").await;
    let (status, ended) = call(&proxy, Method::DELETE, "/admin/api/sessions", None, &first).await;
    assert_eq!((status, ended["ended"].as_u64()), (200, Some(2)), "{ended}");
    assert!(!alive(&proxy, &third).await && !alive(&proxy, &fourth).await);
    assert!(alive(&proxy, &first).await && alive(&proxy, &bob).await);

    // The account page lists them and its forms need the CSRF token.
    let page = page_as(&proxy, "/account", &cookie_of(&first)).await;
    assert!(
        page.contains("id=\"session-list\"") && page.contains("This session"),
        "{page}"
    );
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let fifth = session(&proxy, "alice", "alice-password").await;
    let post = |form: Vec<(&'static str, String)>| {
        no_redirects
            .post(proxy.admin_url("/account/sessions"))
            .header("cookie", format!("fp_session={}", cookie_of(&first)))
            .form(&form)
            .send()
    };
    assert_eq!(post(vec![]).await.unwrap().status(), 403);
    assert!(alive(&proxy, &fifth).await);
    let Auth::Session(_, Some(csrf)) = &first else {
        unreachable!()
    };
    assert_eq!(
        post(vec![("csrf", csrf.clone())]).await.unwrap().status(),
        303
    );
    assert!(!alive(&proxy, &fifth).await && alive(&proxy, &first).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_account_takes_its_adapters_keys_and_sessions() {
    let provider = provider().await;
    let proxy = start("private_sources_allowed: [127.0.0.1]\n");
    let alice = session(&proxy, "alice", "alice-password").await;
    let other = session(&proxy, "alice", "alice-password").await;
    let (status, created) = call(
        &proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("alice-one", &provider.base_url())),
        &alice,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["api_key"].as_str().unwrap().to_owned();
    assert_eq!(messages_status(&proxy, &key).await.0, 200);
    let file = proxy.adapters_dir().join("alice-one.yaml");
    assert!(file.exists());

    for (body, auth, want) in [
        (
            json!({"username": "alice", "password": "alice-password"}),
            without_csrf(&alice),
            403,
        ),
        (
            json!({"username": "bob", "password": "alice-password"}),
            alice.clone(),
            400,
        ),
        (
            json!({"username": "alice", "password": "wrong-password"}),
            alice.clone(),
            400,
        ),
    ] {
        let (status, resp) = call(&proxy, Method::DELETE, "/admin/api/me", Some(body), &auth).await;
        assert_eq!(status, want, "{resp}");
        assert!(file.exists() && users_file(&proxy).contains("alice"));
    }
    let body = json!({"username": "alice", "password": "alice-password"});
    let (status, _) = call(&proxy, Method::DELETE, "/admin/api/me", Some(body), &alice).await;
    assert_eq!(status, 204);
    assert!(!file.exists(), "the adapter's file is removed");
    assert_eq!(
        messages_status(&proxy, &key).await.0,
        401,
        "its key stops at once"
    );
    assert!(!alive(&proxy, &other).await, "every session ends");
    assert!(!users_file(&proxy).contains("alice"));
    assert!(!logs_in(&proxy, "alice", "alice-password").await);

    // The only admin cannot delete theirs.
    let carol = session(&proxy, "carol", "carol-password").await;
    let body = json!({"username": "carol", "password": "carol-password"});
    let (status, resp) = call(&proxy, Method::DELETE, "/admin/api/me", Some(body), &carol).await;
    assert_eq!(status, 409, "{resp}");
    assert!(alive(&proxy, &carol).await);
}

/// `POST /admin/api/reset`.
async fn reset(proxy: &Proxy, token: &str, password: &str) -> (u16, Value) {
    let body = json!({"token": token, "password": password});
    call(
        proxy,
        Method::POST,
        "/admin/api/reset",
        Some(body),
        &Auth::None,
    )
    .await
}

async fn reset_link(proxy: &Proxy, user: &str) -> String {
    let path = format!("/admin/api/users/{user}/reset-link");
    let (status, made) = call(proxy, Method::POST, &path, None, &Auth::Token(TOKEN)).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        made["path"].as_str().unwrap(),
        format!("/reset/{}", made["token"].as_str().unwrap())
    );
    made["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_link_sets_a_password_once_and_expires() {
    let proxy = start("");
    let before = session(&proxy, "alice", "alice-password").await;
    let bob = session(&proxy, "bob", "bob-password").await;
    let (status, _) = call(
        &proxy,
        Method::POST,
        "/admin/api/users/alice/reset-link",
        None,
        &bob,
    )
    .await;
    assert_eq!(status, 403, "only admins");
    let token = reset_link(&proxy, "alice").await;
    let stored = std::fs::read_to_string(proxy.dir.path().join("resets.yaml")).unwrap();
    assert!(
        !stored.contains(&token) && stored.contains(&sha256_hex(&token)),
        "{stored}"
    );

    let (status, form) = page(&proxy, &format!("/reset/{token}"), None).await;
    assert!(
        status == 200 && form.contains("id=\"reset-form\""),
        "{form}"
    );
    let (status, resp) = reset(&proxy, &token, "password").await;
    assert_eq!(status, 400, "sign-up's rules: {resp}");
    let (status, resp) = reset(&proxy, &token, GOOD).await;
    assert_eq!(
        (status, resp["username"].as_str()),
        (200, Some("alice")),
        "{resp}"
    );
    assert!(!alive(&proxy, &before).await, "her sessions end");
    assert!(logs_in(&proxy, "alice", GOOD).await);
    let (status, resp) = reset(&proxy, &token, "another-fine-phrase-42").await;
    assert_eq!(status, 400, "used once: {resp}");
    assert!(logs_in(&proxy, "alice", GOOD).await);

    // Two uses at once: one wins.
    let token = reset_link(&proxy, "bob").await;
    let (a, b) = tokio::join!(
        reset(&proxy, &token, "maple-river-stone-81"),
        reset(&proxy, &token, "cobalt-lantern-fjord-63")
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 400], "{a:?} {b:?}");

    // An expired link is refused (the file says it expired a minute ago).
    let token = reset_link(&proxy, "carol").await;
    let path = proxy.dir.path().join("resets.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let expires = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("expires: "))
        .unwrap()
        .trim_matches('\'')
        .to_owned();
    let past = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() - std::time::Duration::from_secs(60),
    );
    std::fs::write(&path, text.replace(&expires, &past.to_string())).unwrap();
    let (status, refused) = page(&proxy, &format!("/reset/{token}"), None).await;
    assert!(
        status == 404 && refused.contains("id=\"reset-invalid\""),
        "{refused}"
    );
    let (status, _) = reset(&proxy, &token, "maple-river-stone-81").await;
    assert_eq!(status, 400);
    assert!(logs_in(&proxy, "carol", "carol-password").await);

    // A users file that cannot be read back (broken by hand) fails the reset, and the link
    // is not used up: it works once the file is good again.
    let token = reset_link(&proxy, "carol").await;
    let users_path = proxy.dir.path().join("users.yaml");
    let good = std::fs::read_to_string(&users_path).unwrap();
    std::fs::write(&users_path, "users: [ {name: broken").unwrap();
    let (status, resp) = reset(&proxy, &token, "maple-river-stone-81").await;
    assert_eq!(status, 500, "{resp}");
    std::fs::write(&users_path, &good).unwrap();
    let (status, resp) = reset(&proxy, &token, "maple-river-stone-81").await;
    assert_eq!(status, 200, "the link still works: {resp}");
    assert!(logs_in(&proxy, "carol", "maple-river-stone-81").await);

    // The form from another site is refused.
    let token = reset_link(&proxy, "carol").await;
    let resp = client()
        .post(proxy.admin_url(&format!("/reset/{token}")))
        .header("origin", "https://evil.example")
        .form(&[("new_password", GOOD), ("new_password2", GOOD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(logs_in(&proxy, "carol", "maple-river-stone-81").await);
}
