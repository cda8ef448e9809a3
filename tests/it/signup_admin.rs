//! Accounts not made at a shell (issue #27), what admins and sessions do with them:
//! invitation codes (single use under concurrency, the CLI, revocation), approval, an admin
//! disabling and enabling a user (their sessions end at once), JSON login and logout, and a
//! user's own password change ending their other sessions.

use crate::harness::*;
use crate::management::*;
use crate::signup::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;

#[tokio::test(flavor = "multi_thread")]
async fn invite_codes_admit_as_many_sign_ups_as_they_have_uses_even_at_once() {
    let proxy = start("accounts:\n  registration: invite\n");
    let token = Auth::Token(TOKEN);
    let (_, signup_page) = page(&proxy, "/signup?invite=inv-from-link", None).await;
    assert!(
        signup_page.contains("name=\"invite\"") && signup_page.contains("value=\"inv-from-link\""),
        "the code field, filled from the link"
    );
    let (status, created) = call(
        &proxy,
        Method::POST,
        "/admin/api/invites",
        Some(json!({"uses": 1, "expires": "1h"})),
        &token,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let code = created["code"].as_str().unwrap().to_owned();
    let id = created["invite"]["id"].as_str().unwrap().to_owned();
    let (_, list) = call(&proxy, Method::GET, "/admin/api/invites", None, &token).await;
    assert_eq!(list["invites"][0]["id"], id.as_str());
    assert_eq!(list["invites"][0]["uses_left"], 1);
    assert!(!list.to_string().contains(&code), "never the code: {list}");
    let invites_path = proxy.dir.path().join("invites.yaml");
    let stored = std::fs::read_to_string(&invites_path).unwrap();
    assert!(!stored.contains(&code), "stored hashed: {stored}");
    let mode = std::fs::metadata(&invites_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // No code, a wrong code: refused, naming the field.
    for (body, code_word) in [
        (json!({"username": "hank", "password": GOOD}), "required"),
        (
            json!({"username": "hank", "password": GOOD, "invite": "inv-wrong"}),
            "not valid",
        ),
    ] {
        let (status, resp) = signup_json(&proxy, "127.0.0.11", body, None).await;
        assert_eq!(status, 400, "{resp}");
        let error = resp["error"].as_str().unwrap();
        assert!(
            error.starts_with("invite:") && error.contains(code_word),
            "{error}"
        );
    }

    // Two sign-ups at once with a one-use code: exactly one gets in.
    let attempts = ["ivan", "judy"].map(|name| {
        let body = json!({"username": name, "password": GOOD, "invite": code});
        let from = if name == "ivan" {
            "127.0.0.12"
        } else {
            "127.0.0.13"
        };
        let proxy = &proxy;
        async move { signup_json(proxy, from, body, None).await }
    });
    let [a, b] = attempts;
    let (a, b) = tokio::join!(a, b);
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [201, 400], "{a:?} {b:?}");
    let users = users_file(&proxy);
    assert_eq!(
        users.contains("name: ivan") as u8 + users.contains("name: judy") as u8,
        1,
        "{users}"
    );
    let (_, list) = call(&proxy, Method::GET, "/admin/api/invites", None, &token).await;
    assert_eq!(list["invites"][0]["uses_left"], 0);
    assert_eq!(list["invites"][0]["usable"], false);

    // The CLI makes codes for the same file; the form takes them.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
        .args([
            "invite",
            "create",
            "--uses",
            "2",
            "--expires",
            "7d",
            "--config",
        ])
        .arg(proxy.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(cli_code.starts_with("inv-"), "{cli_code}");
    let fields = [
        ("username", "kim"),
        ("password", GOOD),
        ("password2", GOOD),
        ("invite", cli_code.as_str()),
    ];
    let (status, location, text) = signup_form(&proxy, "127.0.0.14", &fields, "en").await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/login?welcome=1"),
        "{text}"
    );
    assert!(logs_in(&proxy, "kim", GOOD).await);

    // Revoked: its second use is refused.
    let (_, list) = call(&proxy, Method::GET, "/admin/api/invites", None, &token).await;
    let cli_id = list["invites"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list["invites"][0]["uses_left"], 1);
    let (status, _) = call(
        &proxy,
        Method::DELETE,
        &format!("/admin/api/invites/{cli_id}"),
        None,
        &token,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = signup_json(
        &proxy,
        "127.0.0.15",
        json!({"username": "liam", "password": GOOD, "invite": cli_code}),
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &proxy,
        Method::DELETE,
        &format!("/admin/api/invites/{cli_id}"),
        None,
        &token,
    )
    .await;
    assert_eq!(status, 404);

    // Only admins see or make codes.
    let (cookie, csrf) = login(&proxy, "bob", "bob-password").await;
    let bob = Auth::Session(cookie, Some(csrf));
    for (method, body) in [(Method::GET, None), (Method::POST, Some(json!({})))] {
        let (status, _) = call(&proxy, method, "/admin/api/invites", body, &bob).await;
        assert_eq!(status, 403);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_keeps_accounts_pending_and_admins_approve_disable_and_enable() {
    let proxy = start("accounts:\n  registration: open\n  approval: true\n");
    let (status, body) = signup_as(&proxy, "127.0.0.16", "mona").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "pending");
    let (status, cookie, _) = json_login(&proxy, "mona", GOOD).await;
    assert_eq!((status, cookie), (403, None), "pending: no session");
    let resp = post_login(&proxy, "mona", GOOD).await;
    assert_eq!(resp.status(), 403);
    assert!(session_cookie(&resp).is_none());
    assert!(resp.text().await.unwrap().contains("waits for an admin"));
    // A wrong password says only that it is wrong.
    let (status, _, _) = json_login(&proxy, "mona", "tulip-carbon-orbit-00").await;
    assert_eq!(status, 401);
    // The form says so too.
    let fields = good_fields("nina");
    let (status, _, text) = signup_form(&proxy, "127.0.0.17", &fields, "en").await;
    assert_eq!(status, 202);
    assert!(text.contains("waits for an admin"), "{text}");

    // The admin's users page lists them as pending and approves one by its form.
    let (a_cookie, a_csrf) = login(&proxy, "carol", "carol-password").await;
    let (_, users_page) = page(&proxy, "/users", Some(&a_cookie)).await;
    assert!(users_page.contains("id=\"approve-mona\""), "{users_page}");
    let admin_form = client_from("127.0.0.1");
    let post_status = |name: &str, status: &str, csrf: Option<&str>| {
        let mut fields = vec![("status", status.to_owned())];
        if let Some(c) = csrf {
            fields.push(("csrf", c.to_owned()));
        }
        admin_form
            .post(proxy.admin_url(&format!("/users/{name}/status")))
            .header("cookie", format!("fp_session={a_cookie}"))
            .form(&fields)
            .send()
    };
    let resp = post_status("mona", "active", None).await.unwrap();
    assert_eq!(resp.status(), 403, "CSRF on the status form");
    let (status, _, _) = json_login(&proxy, "mona", GOOD).await;
    assert_eq!(status, 403);
    let resp = post_status("mona", "active", Some(&a_csrf)).await.unwrap();
    assert_eq!(resp.status(), 303);
    let (status, cookie, csrf) = json_login(&proxy, "mona", GOOD).await;
    assert_eq!(status, 200);
    let mona = Auth::Session(cookie.unwrap(), csrf);
    let (status, _) = call(&proxy, Method::GET, "/admin/api/me", None, &mona).await;
    assert_eq!(status, 200);

    // Disabled: the open session ends at once, and no new one starts.
    let resp = post_status("mona", "disabled", Some(&a_csrf))
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let (status, _) = call(&proxy, Method::GET, "/admin/api/me", None, &mona).await;
    assert_eq!(status, 401);
    let (status, _, _) = json_login(&proxy, "mona", GOOD).await;
    assert_eq!(status, 403);
    let (_, users_page) = page(&proxy, "/users", Some(&a_cookie)).await;
    assert!(users_page.contains("id=\"enable-mona\""));

    // By the API: a session needs its CSRF token; the token needs none.
    let carol_no_csrf = Auth::Session(a_cookie.clone(), None);
    let (status, _) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/users/nina",
        Some(json!({"status": "active"})),
        &carol_no_csrf,
    )
    .await;
    assert_eq!(status, 403);
    let (status, user) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/users/nina",
        Some(json!({"status": "active", "max_adapters": 3})),
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(
        (user["status"].clone(), user["max_adapters"].clone()),
        (json!("active"), json!(3))
    );
    assert!(logs_in(&proxy, "nina", GOOD).await);
    let (_, list) = call(
        &proxy,
        Method::GET,
        "/admin/api/users",
        None,
        &Auth::Token(TOKEN),
    )
    .await;
    let status_of = |name: &str| {
        list["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .map(|u| u["status"].clone())
    };
    assert_eq!(status_of("mona"), Some(json!("disabled")));
    assert_eq!(status_of("alice"), Some(json!("active")));
    // A user cannot approve anyone; an admin cannot disable themselves.
    let (b_cookie, b_csrf) = login(&proxy, "bob", "bob-password").await;
    let (status, _) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/users/mona",
        Some(json!({"status": "active"})),
        &Auth::Session(b_cookie, Some(b_csrf)),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &proxy,
        Method::PATCH,
        "/admin/api/users/carol",
        Some(json!({"status": "disabled"})),
        &Auth::Session(a_cookie.clone(), Some(a_csrf.clone())),
    )
    .await;
    assert_eq!(status, 400);
    let resp = post_status("mona", "active", Some(&a_csrf)).await.unwrap();
    assert_eq!(resp.status(), 303);
    assert!(logs_in(&proxy, "mona", GOOD).await, "enabled again");

    // `flexiproxy user set --status` edits the same file; the running proxy follows it.
    let (_, cookie, csrf) = json_login(&proxy, "mona", GOOD).await;
    let mona = Auth::Session(cookie.unwrap(), csrf);
    let cli = |status: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
            .args(["user", "set", "mona", "--status", status, "--config"])
            .arg(proxy.config_path())
            .output()
            .unwrap()
    };
    assert!(cli("disabled").status.success());
    let (p, m) = (&proxy, &mona);
    wait_until_async(
        DEADLINE,
        "the disabled user's session ends",
        || async move { call(p, Method::GET, "/admin/api/me", None, m).await.0 == 401 },
    )
    .await;
    assert!(cli("active").status.success());
    wait_until_async(DEADLINE, "the enabled user logs in", || async move {
        logs_in(p, "mona", GOOD).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_sessions_end_at_logout_and_a_password_change_ends_the_others() {
    let proxy = start("accounts:\n  registration: open\n");
    let (status, _) = signup_as(&proxy, "127.0.0.18", "olga").await;
    assert_eq!(status, 201);
    let (_, a, a_csrf) = json_login(&proxy, "olga", GOOD).await;
    let (_, b, b_csrf) = json_login(&proxy, "olga", GOOD).await;
    let (_, c, c_csrf) = json_login(&proxy, "olga", GOOD).await;
    let a_cookie = a.unwrap();
    let a = Auth::Session(a_cookie.clone(), a_csrf);
    let (b_cookie, b_csrf) = (b.unwrap(), b_csrf.unwrap());
    let b = Auth::Session(b_cookie.clone(), Some(b_csrf.clone()));
    let c_cookie = c.unwrap();
    let c = Auth::Session(c_cookie.clone(), c_csrf.clone());
    // Logout needs the CSRF token, then ends that session only.
    let (status, _) = call(
        &proxy,
        Method::DELETE,
        "/admin/api/session",
        None,
        &Auth::Session(a_cookie.clone(), None),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(&proxy, Method::DELETE, "/admin/api/session", None, &a).await;
    assert_eq!(status, 204);
    assert_eq!(
        call(&proxy, Method::GET, "/admin/api/me", None, &a).await.0,
        401
    );
    assert_eq!(
        call(&proxy, Method::GET, "/admin/api/me", None, &b).await.0,
        200
    );

    // A wrong current password, a weak new one: refused, nothing changes.
    const NEW: &str = "saffron-glacier-lantern-42";
    for (body, field) in [
        (
            json!({"current_password": "tulip-carbon-orbit-00", "new_password": NEW}),
            "current_password:",
        ),
        (
            json!({"current_password": GOOD, "new_password": "olga12345678"}),
            "new_password:",
        ),
    ] {
        let (status, resp) = call(
            &proxy,
            Method::POST,
            "/admin/api/me/password",
            Some(body),
            &b,
        )
        .await;
        assert_eq!(status, 400, "{resp}");
        assert!(resp["error"].as_str().unwrap().starts_with(field), "{resp}");
    }
    assert_eq!(
        call(&proxy, Method::GET, "/admin/api/me", None, &c).await.0,
        200
    );
    // Changed through session b: b goes on with its new cookie, c ends.
    let resp = client()
        .post(proxy.admin_url("/admin/api/me/password"))
        .header("cookie", format!("fp_session={b_cookie}"))
        .header("x-csrf-token", &b_csrf)
        .json(&json!({"current_password": GOOD, "new_password": NEW}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let new_cookie = session_cookie(&resp).expect("a new session cookie");
    let new_csrf = resp.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let renewed = Auth::Session(new_cookie, Some(new_csrf));
    assert_eq!(
        call(&proxy, Method::GET, "/admin/api/me", None, &c).await.0,
        401
    );
    assert_eq!(
        call(&proxy, Method::GET, "/admin/api/me", None, &b).await.0,
        401
    );
    assert_eq!(
        call(&proxy, Method::GET, "/admin/api/me", None, &renewed)
            .await
            .0,
        200
    );
    assert!(!logs_in(&proxy, "olga", GOOD).await);
    assert!(logs_in(&proxy, "olga", NEW).await);

    // The panel's form: CSRF checked, then the same change.
    let (p_cookie, p_csrf) = login(&proxy, "olga", NEW).await;
    let form = |csrf: Option<&str>| {
        let mut fields = vec![
            ("current_password", NEW.to_owned()),
            ("new_password", GOOD.to_owned()),
            ("new_password2", GOOD.to_owned()),
        ];
        if let Some(c) = csrf {
            fields.push(("csrf", c.to_owned()));
        }
        client_from("127.0.0.1")
            .post(proxy.admin_url("/account/password"))
            .header("cookie", format!("fp_session={p_cookie}"))
            .form(&fields)
            .send()
    };
    assert_eq!(form(None).await.unwrap().status(), 403);
    assert!(logs_in(&proxy, "olga", NEW).await, "unchanged");
    let resp = form(Some(&p_csrf)).await.unwrap();
    assert_eq!(resp.status(), 303);
    assert!(session_cookie(&resp).is_some());
    assert_eq!(
        call(&proxy, Method::GET, "/admin/api/me", None, &renewed)
            .await
            .0,
        401
    );
    assert!(logs_in(&proxy, "olga", GOOD).await);
}
