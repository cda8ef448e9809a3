//! Panel sessions across instances (`limits.backend: redis`): a session started on one
//! instance works on another, the key page after creating an adapter shows the new key on
//! whichever instance serves it (once, and Redis never holds it readable), and logging out on
//! one instance ends the session on the other.

use crate::harness::*;
use crate::scale::{ADMIN_TOKEN, Cluster};
use flexiproxy::config::users;
use flexiproxy_testkit::services::RedisServer;
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use std::time::{Duration, Instant};

const PASSWORD: &str = "alice-shared-password-7";
const PROVIDER_KEY: &str = "sk-canary-shared-sessions-91c2";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn admin(cluster: &Cluster, i: usize, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", cluster.admin_ports[i])
}

/// Logs in on instance `i`: the session cookie, once the users file has been read.
async fn login(cluster: &Cluster, i: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = http()
            .post(admin(cluster, i, "/login"))
            .form(&[("user", "alice"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        let cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("fp_session="))
            .map(|v| v.split(';').next().unwrap().to_owned())
            .filter(|v| !v.is_empty());
        if let Some(cookie) = cookie {
            return cookie;
        }
        assert!(Instant::now() < deadline, "alice never logged in on {i}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(cluster: &Cluster, i: usize, path: &str, cookie: &str) -> (u16, String) {
    let resp = http()
        .get(admin(cluster, i, path))
        .header("cookie", format!("fp_session={cookie}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a form with the CSRF token")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_from_one_instance_works_on_another_and_ends_everywhere() {
    let redis = RedisServer::start();
    let provider =
        FakeProvider::start(|_req| Reply::json(200, openai::chat_completion("shared"))).await;
    let cluster = Cluster::start(
        2,
        &redis,
        None,
        "2s",
        &|_| "private_sources_allowed: [\"127.0.0.1\"]\n".into(),
        &[],
    );
    users::add(
        &cluster.dir.path().join("users.yaml"),
        "alice",
        PASSWORD,
        false,
        Some(3),
    )
    .unwrap();
    let cookie = login(&cluster, 0).await;

    // Instance 1 knows the session instance 0 started.
    let (status, me) = get(&cluster, 1, "/admin/api/me", &cookie).await;
    assert_eq!(status, 200, "{me}");
    assert!(me.contains("\"alice\""), "{me}");

    // Create on instance 1; the key page, served by instance 0, shows the key once.
    let (_, form) = get(&cluster, 1, "/adapters/new", &cookie).await;
    let csrf = csrf_of(&form);
    let resp = http()
        .post(admin(&cluster, 1, "/adapters/new"))
        .header("cookie", format!("fp_session={cookie}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "shared"),
            ("preset", "custom"),
            ("protocol", "openai"),
            ("base_url", &provider.base_url()),
            ("api_key", PROVIDER_KEY),
            ("model", "fake-model"),
            ("label", "laptop"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let to = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/adapters/shared/key"), "{to}");

    // While it waits, Redis holds the new key only sealed.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("fp:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let flash_keys: Vec<&String> = keys.iter().filter(|k| k.starts_with("fp:flash:")).collect();
    assert_eq!(flash_keys.len(), 1, "{keys:?}");
    let sealed: Vec<u8> = redis::cmd("GET")
        .arg(flash_keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        !sealed.windows(3).any(|w| w == b"fp-"),
        "a readable key in Redis"
    );
    assert!(
        !keys.iter().any(|k| k.contains(&cookie)),
        "a cookie in Redis"
    );

    let (status, page) = get(&cluster, 0, &to, &cookie).await;
    assert_eq!(status, 200);
    let key = page
        .split("id=\"api-key\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the key, on the other instance")
        .to_owned();
    assert!(key.starts_with("fp-"), "{key}");
    let (_, again) = get(&cluster, 1, &to, &cookie).await;
    assert!(!again.contains(&key), "the key came back");
    // The key works through either instance.
    for i in 0..2 {
        let resp = client_for(&cluster, i, &key).await;
        assert_eq!(resp, 200, "instance {i}");
    }

    // Log out on instance 0: instance 1 no longer knows the session.
    let (_, list) = get(&cluster, 0, "/", &cookie).await;
    let resp = http()
        .post(admin(&cluster, 0, "/logout"))
        .header("cookie", format!("fp_session={cookie}"))
        .form(&[("csrf", csrf_of(&list).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let (status, _) = get(&cluster, 1, "/admin/api/me", &cookie).await;
    assert_eq!(
        status, 401,
        "the session outlived its logout on the other instance"
    );

    // Disabling alice (through instance 1's API) ends her new session on both at once.
    let cookie = login(&cluster, 0).await;
    assert_eq!(get(&cluster, 1, "/admin/api/me", &cookie).await.0, 200);
    let resp = http()
        .patch(admin(&cluster, 1, "/admin/api/users/alice"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"status": "disabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16() / 100, 2);
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("fp:sess*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "sessions left in Redis: {left:?}");
    for i in 0..2 {
        assert_eq!(get(&cluster, i, "/admin/api/me", &cookie).await.0, 401);
    }
}

/// A Messages call with `key` through instance `i`: its status.
async fn client_for(cluster: &Cluster, i: usize, key: &str) -> u16 {
    client()
        .post(format!("{}/v1/messages", cluster.url(i)))
        .header("x-api-key", key)
        .json(&serde_json::json!({"model": "m", "max_tokens": 8,
                                  "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
