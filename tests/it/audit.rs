//! The audit log (issue #27) over real HTTP: a scripted sequence of sign-ins (form and JSON,
//! failed and not), adapter, key, quota and invitation changes gives exactly its entries,
//! newest first, with actor, target and client address — in SQLite with usage statistics
//! off, and in PostgreSQL — filtered by actor and kind, paged, for admins only, on the API
//! and the panel (en, zh); never a password, code, key or cookie in it.

use crate::harness::*;
use crate::management::*;
use crate::self_service::session;
use flexiproxy_testkit::services::PostgresServer;
use reqwest::Method;
use serde_json::{Value, json};

const INVITE_CANARY_PASSWORD: &str = "wrong-canary-password-31c9";

pub(crate) async fn entries(proxy: &Proxy, query: &str) -> Vec<Value> {
    let path = format!("/admin/api/audit{query}");
    let (status, body) = call(proxy, Method::GET, &path, None, &Auth::Token(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    body["entries"].as_array().unwrap().clone()
}

/// (kind, actor, target) of each entry, newest first, once `n` are stored.
pub(crate) async fn wait_for(proxy: &Proxy, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let got = entries(proxy, "?limit=500").await;
        if got.len() >= n {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n}: {got:?}",
            got.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub(crate) fn triple(e: &Value) -> (String, String, String) {
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
    (s("kind"), s("actor"), s("target"))
}

/// Runs the sequence against `proxy` and checks the log it leaves.
async fn scripted_sequence_is_audited_exactly(proxy: &Proxy) {
    let provider = provider().await;
    // 1, 2: a failed JSON sign-in (a password typed as the name: not recorded), a failed form
    // sign-in of alice.
    assert!(!logs_in(proxy, INVITE_CANARY_PASSWORD, "x").await);
    assert!(!logs_in(proxy, "alice", INVITE_CANARY_PASSWORD).await);
    // 3: alice signs in (JSON).
    let alice = session(proxy, "alice", "alice-password").await;
    // 4-7: she creates, rotates, relabels-by-revoke and deletes an adapter.
    let (status, created) = call(
        proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(create_body("audited", &provider.base_url())),
        &alice,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let first_key = created["api_key"].as_str().unwrap().to_owned();
    let (status, rotated) = call(
        proxy,
        Method::POST,
        "/admin/api/adapters/audited/keys",
        Some(json!({"grace": "1h"})),
        &alice,
    )
    .await;
    assert_eq!(status, 201, "{rotated}");
    let second_key = rotated["api_key"].as_str().unwrap().to_owned();
    let (status, _) = call(
        proxy,
        Method::PATCH,
        "/admin/api/adapters/audited",
        Some(json!({"model": "other-model"})),
        &alice,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        proxy,
        Method::DELETE,
        "/admin/api/adapters/audited",
        None,
        &alice,
    )
    .await;
    assert_eq!(status, 204);
    // 8-10: the admin token sets bob's quota, makes and revokes an invitation.
    let token = Auth::Token(TOKEN);
    let quota = json!({"quota": {"requests_per_day": 5}});
    let (status, _) = call(
        proxy,
        Method::PATCH,
        "/admin/api/users/bob",
        Some(quota),
        &token,
    )
    .await;
    assert_eq!(status, 200);
    let (status, invite) = call(
        proxy,
        Method::POST,
        "/admin/api/invites",
        Some(json!({"uses": 2})),
        &token,
    )
    .await;
    assert_eq!(status, 201);
    let code = invite["code"].as_str().unwrap().to_owned();
    let id = invite["invite"]["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        proxy,
        Method::DELETE,
        &format!("/admin/api/invites/{id}"),
        None,
        &token,
    )
    .await;
    assert_eq!(status, 204);

    let got = wait_for(proxy, 10).await;
    let want = [
        ("invite.revoke", "admin", id.as_str()),
        ("invite.create", "admin", id.as_str()),
        ("quota.set", "admin", "bob"),
        ("adapter.delete", "alice", "audited"),
        ("adapter.change", "alice", "audited"),
        ("key.rotate", "alice", "audited"),
        ("adapter.create", "alice", "audited"),
        ("sign_in", "alice", "alice"),
        ("sign_in.failed", "(anonymous)", "alice"),
        ("sign_in.failed", "(anonymous)", "(unknown)"),
    ]
    .map(|(k, a, t)| (k.to_owned(), a.to_owned(), t.to_owned()));
    assert_eq!(got.iter().map(triple).collect::<Vec<_>>(), want, "{got:?}");
    for e in &got {
        assert_eq!(e["client"], "127.0.0.1", "{e}");
    }
    let detail = |i: usize| got[i]["detail"].as_str().unwrap().to_owned();
    assert_eq!(detail(2), "requests_per_day=5");
    assert_eq!(detail(4), "fields=model");
    assert_eq!(detail(7), "method=json");
    assert_eq!(detail(8), "method=form reason=wrong_password");

    // Filters and pages.
    let keys_of_alice = entries(proxy, "?actor=alice&kind=key").await;
    assert_eq!(
        keys_of_alice.iter().map(triple).collect::<Vec<_>>(),
        [want[5].clone()]
    );
    let adapter_kinds = entries(proxy, "?kind=adapter").await;
    assert_eq!(adapter_kinds.len(), 3);
    let page_two = entries(proxy, "?limit=3&offset=3").await;
    assert_eq!(
        page_two.iter().map(triple).collect::<Vec<_>>(),
        want[3..6].to_vec()
    );

    // Never a secret.
    let cookie = match &alice {
        Auth::Session(c, _) => c.clone(),
        _ => unreachable!(),
    };
    let all = serde_json::to_string(&got).unwrap();
    let cookie_page = session(proxy, "carol", "carol-password").await;
    let Auth::Session(carol_cookie, _) = &cookie_page else {
        unreachable!()
    };
    let page_en = page_as(proxy, "/audit", carol_cookie).await;
    for secret in [
        INVITE_CANARY_PASSWORD,
        "alice-password",
        &code,
        &first_key,
        &second_key,
        CANARY_PROVIDER_KEY,
        &cookie,
    ] {
        assert!(!all.contains(secret), "{secret} in {all}");
        assert!(!page_en.contains(secret), "{secret} on the page");
    }

    // Admins only; the page in both languages.
    let bob = session(proxy, "bob", "bob-password").await;
    assert_eq!(
        call(proxy, Method::GET, "/admin/api/audit", None, &bob)
            .await
            .0,
        403
    );
    assert!(
        page_en.contains("Key rotated") && page_en.contains("id=\"audit-log\""),
        "{page_en}"
    );
    let page_zh = client()
        .get(proxy.admin_url("/audit?actor=alice"))
        .header("cookie", format!("fp_session={carol_cookie}; lang=zh"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page_zh.contains("轮换密钥") && !page_zh.contains("邀请码</td>"),
        "{page_zh}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_is_exact_in_sqlite_with_statistics_off() {
    let proxy = start("private_sources_allowed: [127.0.0.1]\n");
    scripted_sequence_is_audited_exactly(&proxy).await;
    assert!(
        proxy.dir.path().join("flexiproxy-stats.db").exists(),
        "the default store file holds it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_is_exact_in_postgresql() {
    let pg = PostgresServer::start();
    let proxy = start(&format!(
        "private_sources_allowed: [127.0.0.1]\nstats:\n  enabled: true\n  backend: postgres\n  url: {}\n",
        pg.url()
    ));
    scripted_sequence_is_audited_exactly(&proxy).await;
    let rows = pg.psql("SELECT actor || ' ' || target FROM audit WHERE kind = 'key.rotate'");
    assert_eq!(rows, "alice audited");
}
