//! The web panel in a real browser: `tests/e2e/panel_browser.py` drives headless Chromium
//! (Selenium) through login, creating an adapter on the fake provider, the key shown once,
//! the key through the proxy with the official `anthropic` SDK, rotate, test, delete, the
//! language switch and logout, then checks that users see only their own adapters and an
//! admin sees all. Screenshots land in `target/panel-screenshots/`; the pages `docs/panel.md`
//! shows are copied to `docs/panel-*.png` when those are missing or `FLEXIPROXY_PANEL_DOCS=1`
//! is set. The key-shown-once part runs again in Firefox ESR through geckodriver.

use crate::clients::{python, repo_root};
use crate::harness::*;
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

const ANSWER: &str = "Hello from the fake provider!";

/// Debian's chromium and its driver, as `scripts/deps.sh` installs them.
pub(crate) fn browser_installed() -> Result<(), String> {
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !std::path::Path::new(bin).exists() {
            return Err(format!("{bin} is missing: run scripts/deps.sh"));
        }
    }
    Ok(())
}

/// A config directory with a proxy, an admin listener, statistics on, the fake provider's
/// loopback address allowed for users' sources, and three panel users.
fn panel_dir(users: &[(&str, &str, bool)]) -> tempfile::TempDir {
    let port = free_port();
    let admin_port = free_port();
    let server = format!(
        "listen: 127.0.0.1:{port}\nthreads: 2\nadmin:\n  listen: 127.0.0.1:{admin_port}\n\
         access_log:\n  path: access.log\nstats:\n  enabled: true\n\
         private_sources_allowed: [\"127.0.0.1\"]\n"
    );
    let dir = config_dir(&server, &[]);
    let users_file = dir.path().join("users.yaml");
    for (name, password, admin) in users {
        flexiproxy::config::users::add(&users_file, name, password, *admin, Some(3)).unwrap();
    }
    dir
}

/// What one run of `panel_browser.py` needs: a proxy with three users on a fake provider.
struct Walk {
    provider: FakeProvider,
    proxy: Proxy,
    shots: std::path::PathBuf,
}

impl Walk {
    async fn start(shots_dir: &str) -> Walk {
        let provider =
            FakeProvider::start(|_req| Reply::json(200, openai::chat_completion(ANSWER))).await;
        let proxy = Proxy::start_in(panel_dir(&USERS));
        let shots = repo_root().join("target").join(shots_dir);
        std::fs::create_dir_all(&shots).unwrap();
        for old in std::fs::read_dir(&shots).unwrap().flatten() {
            let _ = std::fs::remove_file(old.path());
        }
        Walk {
            provider,
            proxy,
            shots,
        }
    }

    /// Runs the script in `browser` (with `extra` config); what it saw, checked to be ok.
    async fn run(&self, browser: &str, extra: Value) -> Value {
        let mut config = json!({
            "panel": self.proxy.admin_url(""),
            "proxy": self.proxy.url(""),
            "source": self.provider.base_url(),
            "answer": ANSWER,
            "canary": PROVIDER_KEY,
            "users": USERS.iter().map(|(n, p, _)| (n.to_string(), json!(p))).collect::<serde_json::Map<_, _>>(),
            "shots": self.shots,
            "browser": browser,
        });
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        let script = repo_root().join("tests/e2e/panel_browser.py");
        let child = Command::new(python())
            .arg(script)
            .arg(config.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python runs");
        let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
            crate::clients::wait_bounded(child, "panel_browser.py", Duration::from_secs(300))
        })
        .await
        .unwrap();
        assert_eq!(
            code, 0,
            "panel_browser.py ({browser}) failed:\n{stdout}\n{stderr}"
        );
        let out: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!("panel_browser.py printed no JSON ({e}):\n{stdout}\n{stderr}")
        });
        assert_eq!(out["ok"], true, "{out}");
        assert_eq!(out["seen"]["answer"], ANSWER);
        // What the browser typed never reached a log.
        assert!(!self.proxy.access_log().contains(PROVIDER_KEY));
        out
    }
}

const USERS: [(&str, &str, bool); 3] = [
    ("alice", "alice-password-1", false),
    ("bob", "bob-password-22", false),
    ("root", "root-password-333", true),
];

#[tokio::test(flavor = "multi_thread")]
async fn panel_in_a_real_browser() {
    browser_installed().unwrap_or_else(|e| panic!("{e}"));
    let walk = Walk::start("panel-screenshots").await;
    let out = walk.run("chromium", json!({})).await;
    let (provider, shots) = (&walk.provider, &walk.shots);
    assert_eq!(
        out["seen"]["usage"], "on",
        "statistics are on in this config"
    );
    // The refusal in words (the field's label, what to do), not the config's field name.
    let create_error = out["seen"]["create_error"].as_str().unwrap();
    assert!(
        create_error.starts_with("Provider base URL:") && create_error.contains("admin"),
        "{out}"
    );
    assert!(!create_error.contains("base_url"), "{out}");

    // The provider got the SDK calls with both keys and the probe.
    assert!(provider.requests().len() >= 3);

    copy_docs_screenshots(shots);
}

/// Firefox ESR (Debian's package) with geckodriver (`scripts/deps.sh` builds it with cargo,
/// Debian has no package): the key page never comes back from its back/forward cache or a
/// reload, the language switch warns, Back to the form restores no provider key.
#[tokio::test(flavor = "multi_thread")]
async fn key_shown_once_in_firefox() {
    let geckodriver = geckodriver().unwrap_or_else(|e| panic!("{e}"));
    let walk = Walk::start("panel-screenshots-firefox").await;
    let out = walk
        .run("firefox", json!({"geckodriver": geckodriver}))
        .await;
    assert!(
        out["seen"]["lang_warning"]
            .as_str()
            .unwrap()
            .contains("key"),
        "{out}"
    );
}

/// Firefox and geckodriver, as `scripts/deps.sh` installs them.
fn geckodriver() -> Result<std::path::PathBuf, String> {
    if !std::path::Path::new("/usr/bin/firefox-esr").exists() {
        return Err("/usr/bin/firefox-esr is missing: run scripts/deps.sh".into());
    }
    let built = repo_root().join("target/tools/bin/geckodriver");
    if built.exists() {
        return Ok(built);
    }
    Err(format!(
        "{} is missing: run scripts/deps.sh",
        built.display()
    ))
}

/// The list and the key page for the README (`docs/`), when missing or asked for.
fn copy_docs_screenshots(shots: &std::path::Path) {
    copy_to_docs(
        shots,
        &[
            ("-list.png", "docs/panel-list.png"),
            ("-key-once.png", "docs/panel-key.png"),
            ("-edit-routes.png", "docs/panel-edit.png"),
            ("-usage.png", "docs/panel-usage.png"),
            ("-usage-phone.png", "docs/panel-usage-phone.png"),
            ("-login.png", "docs/panel-login.png"),
            ("-new-adapter.png", "docs/panel-new.png"),
            ("-list-zh.png", "docs/panel-list-zh.png"),
            ("-list-phone.png", "docs/panel-list-phone.png"),
            ("-list-dark.png", "docs/panel-list-dark.png"),
            ("-users.png", "docs/panel-users.png"),
        ],
    );
}

/// Copies the screenshot ending in each suffix to its `docs/` file, when that is missing or
/// `FLEXIPROXY_PANEL_DOCS=1` asks for fresh ones.
pub(crate) fn copy_to_docs(shots: &std::path::Path, docs: &[(&str, &str)]) {
    let refresh = std::env::var("FLEXIPROXY_PANEL_DOCS").is_ok_and(|v| v == "1");
    let find = |suffix: &str| {
        std::fs::read_dir(shots)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_string_lossy().ends_with(suffix))
            .unwrap_or_else(|| panic!("no screenshot *{suffix}"))
    };
    for (suffix, doc) in docs {
        let target = repo_root().join(doc);
        if refresh || !target.exists() {
            std::fs::copy(find(suffix), &target).unwrap();
        }
    }
}

/// The same pages over plain HTTP, for what a browser run does not show: statistics off,
/// CSRF and cross-site refusals, redirects, the language from `Accept-Language`.
#[tokio::test(flavor = "multi_thread")]
async fn panel_over_plain_http() {
    let port = free_port();
    let admin_port = free_port();
    let server =
        format!("listen: 127.0.0.1:{port}\nthreads: 2\nadmin:\n  listen: 127.0.0.1:{admin_port}\n");
    let dir = config_dir(&server, &[]);
    flexiproxy::config::users::add(
        &dir.path().join("users.yaml"),
        "carol",
        "carol-password-1",
        false,
        None,
    )
    .unwrap();
    let proxy = Proxy::start_in(dir);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let location = |r: &reqwest::Response| r.headers()["location"].to_str().unwrap().to_owned();

    // No session: the pages send you to the login form, in the browser's language.
    let r = http.get(proxy.admin_url("/usage")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), location(&r).as_str()),
        (303, "/login")
    );
    let r = http
        .get(proxy.admin_url("/login"))
        .header("accept-language", "zh-CN,zh;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("lang=\"zh-CN\"") && page.contains("用户名"),
        "{page}"
    );

    // The language switch only goes back to this site.
    let r = http
        .get(proxy.admin_url("/lang?to=en&back=//evil.example/"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/");
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("lang=en") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // A cross-site login is refused; a wrong password re-renders the form.
    let login = |password: &'static str, site: &'static str| {
        http.post(proxy.admin_url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", site)
            .body(format!("user=carol&password={password}"))
            .send()
    };
    assert_eq!(
        login("carol-password-1", "cross-site")
            .await
            .unwrap()
            .status(),
        403
    );
    let r = login("wrong-password", "same-origin").await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Wrong user name or password")
    );
    let r = login("carol-password-1", "same-origin").await.unwrap();
    assert_eq!(r.status(), 303);
    let session = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // Statistics are off by default: the usage page says how to turn them on.
    let page = http
        .get(proxy.admin_url("/usage"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("id=\"stats-off\"") && page.contains("enabled: true"),
        "{page}"
    );
    assert!(
        !page.contains("id=\"nav-users\""),
        "no users page for a plain user"
    );

    // Changes without the session's CSRF token are refused, and nothing is created.
    let r = http
        .post(proxy.admin_url("/adapters/new"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=forged&name=x&base_url=http%3A%2F%2F127.0.0.1%3A9%2Fv1&api_key=k&model=m")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(proxy.admin_url("/adapters/x/test"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        std::fs::read_dir(proxy.adapters_dir())
            .unwrap()
            .next()
            .is_none()
    );
    let r = http
        .get(proxy.admin_url("/users"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the users page is for admins");
    let css = http
        .get(proxy.admin_url("/static/panel.css"))
        .send()
        .await
        .unwrap();
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}
