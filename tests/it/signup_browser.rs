//! Sign-up in a real browser (issue #27): `tests/e2e/signup_browser.py` drives headless
//! Chromium through an invitation made on the users page, the login page's sign-up link, a
//! refused weak password, approval, the new user's adapter (its key used with the official
//! `anthropic` SDK) and a password change on the account page — the forms as a browser sends
//! them, with its own `Origin` and `Sec-Fetch-Site`.

use crate::clients::{python, repo_root};
use crate::harness::*;
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

const ANSWER: &str = "Hello, new user!";
const NEWBIE_PASSWORD: &str = "marble-quiver-antenna-52";

#[tokio::test(flavor = "multi_thread")]
async fn sign_up_with_an_invitation_in_a_real_browser() {
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: run scripts/deps.sh"
        );
    }
    let provider =
        FakeProvider::start(|_req| Reply::json(200, openai::chat_completion(ANSWER))).await;
    let server = format!(
        "listen: 127.0.0.1:{}\nthreads: 2\nadmin:\n  listen: 127.0.0.1:{}\naccess_log:\n  path: access.log\n\
         private_sources_allowed: [\"127.0.0.1\"]\naccounts:\n  registration: invite\n  approval: true\n",
        free_port(),
        free_port()
    );
    let dir = config_dir(&server, &[]);
    flexiproxy::config::users::add(
        &dir.path().join("users.yaml"),
        "root",
        "root-password-333",
        true,
        None,
    )
    .unwrap();
    let proxy = Proxy::start_in(dir);
    let shots = repo_root().join("target/panel-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let config = json!({
        "panel": proxy.admin_url(""),
        "proxy": proxy.url(""),
        "source": provider.base_url(),
        "answer": ANSWER,
        "admin": ["root", "root-password-333"],
        "newbie": ["newbie", NEWBIE_PASSWORD],
        "new_password": "harbor-pickle-violet-17",
        "shots": shots,
    });
    let child = Command::new(python())
        .arg(repo_root().join("tests/e2e/signup_browser.py"))
        .arg(config.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        crate::clients::wait_bounded(child, "signup_browser.py", Duration::from_secs(300))
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "signup_browser.py failed:\n{stdout}\n{stderr}");
    let out: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("signup_browser.py printed no JSON ({e}):\n{stdout}\n{stderr}"));
    let seen = &out["seen"];
    assert_eq!(seen["answer"], ANSWER, "{out}");
    assert!(
        seen["weak"]
            .as_str()
            .unwrap()
            .starts_with("Password: too easy to guess"),
        "{out}"
    );
    assert!(
        seen["pending_login"].as_str().unwrap().contains("approval"),
        "{out}"
    );
    assert!(
        seen["status"].as_str().unwrap().starts_with("active"),
        "{out}"
    );
    assert!(
        seen["changed"]
            .as_str()
            .unwrap()
            .contains("Password changed"),
        "{out}"
    );
    let users = std::fs::read_to_string(proxy.dir.path().join("users.yaml")).unwrap();
    assert!(
        users.contains("name: newbie") && !users.contains("status:"),
        "{users}"
    );
    assert!(!proxy.access_log().contains(NEWBIE_PASSWORD));
}
