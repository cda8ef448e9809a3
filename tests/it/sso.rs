//! Single sign-on with OpenID Connect (issue #27) through a real browser against real
//! OpenID providers: the npm `oidc-provider` run by `tests/e2e/oidc_provider.mjs` (installed
//! pinned by `tests/e2e/setup.sh oidc`), `tests/e2e/sso_browser.py` driving headless
//! Chromium, FlexiProxy as its own process (its log is read). First sign-in makes the
//! account, the second finds it; an ID token for another audience and an expired one are
//! refused on the login page, in the user's language; allowed_domains, admin_groups, linking a password account by its
//! verified email and a disabled account; the client secret and the ID tokens are in no log,
//! page or file.

use crate::clients::{e2e_dir, ensure, python, repo_root, wait_bounded};
use crate::harness::*;
use flexiproxy::config::users;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SECRET: &str = "oidc-secret-canary-5b1e77";
const OTHER_SECRET: &str = "oidc-other-canary-93d0aa";

/// A real OpenID provider (`oidc-provider` from npm) on 127.0.0.1 and a free port.
pub struct OpenIdProvider {
    pub issuer: String,
    child: Child,
}

impl OpenIdProvider {
    /// Starts `tests/e2e/oidc_provider.mjs` with `config` (see the script).
    pub fn start(config: &Value) -> OpenIdProvider {
        ensure("oidc").unwrap_or_else(|e| panic!("{e}"));
        // Node resolves the script's imports from its own directory: next to node_modules.
        let script = e2e_dir().join("oidc/oidc_provider.mjs");
        std::fs::copy(repo_root().join("tests/e2e/oidc_provider.mjs"), &script).unwrap();
        let mut child = Command::new("node")
            .arg(&script)
            .arg(config.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs (scripts/deps.sh installs it)");
        // Its first line, once listening; the rest is read on (and dropped) so that the
        // provider never writes into a closed or full pipe.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let issuer = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v["issuer"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("oidc_provider.mjs did not start: {line:?}"));
        OpenIdProvider { issuer, child }
    }
}

impl Drop for OpenIdProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn seed_user(path: &std::path::Path, name: &str, email: &str, status: users::UserStatus) {
    users::add(path, name, "a-password-of-theirs-41", false, None).unwrap();
    users::edit(path, name, |u| {
        u.email = Some(email.to_owned());
        u.status = status;
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn openid_connect_sign_in_in_a_real_browser() {
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: run scripts/deps.sh"
        );
    }
    let (port, admin) = (free_port(), free_port());
    let callback = |name: &str| format!("http://127.0.0.1:{admin}/sso/{name}/callback");
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("id-tokens.txt");
    std::fs::write(&tokens, "").unwrap();
    let op = OpenIdProvider::start(&json!({
        "clients": [
            {"client_id": "flexi", "client_secret": SECRET, "redirect_uris": [callback("company")]},
            {"client_id": "flexi-aud", "client_secret": OTHER_SECRET, "redirect_uris": [callback("other")]},
        ],
        "other_audience": ["flexi-aud"],
        "tokens_file": tokens,
    }));
    // A second provider ten minutes behind, whose ID tokens live a minute.
    let stale = OpenIdProvider::start(&json!({
        "clients": [{"client_id": "flexi", "client_secret": SECRET, "redirect_uris": [callback("stale")]}],
        "clock_offset": -600,
        "id_token_ttl": 60,
        "tokens_file": tokens,
    }));
    let config = dir.path().join("flexiproxy.yaml");
    std::fs::create_dir(dir.path().join("adapters")).unwrap();
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\nthreads: 2\nadmin:\n  listen: 127.0.0.1:{admin}\n\
             accounts:\n  registration: invite\n  oidc:\n\
             \x20   - {{ name: company, issuer: \"{iss}\", client_id: flexi, client_secret: \"${{OIDC_SECRET}}\", allowed_domains: [example.com], admin_groups: [llm-admins] }}\n\
             \x20   - {{ name: other, issuer: \"{iss}\", client_id: flexi-aud, client_secret: {OTHER_SECRET}, allowed_domains: [example.com] }}\n\
             \x20   - {{ name: stale, issuer: \"{stale_iss}\", client_id: flexi, client_secret: \"${{OIDC_SECRET}}\", allowed_domains: [example.com] }}\n",
            iss = op.issuer,
            stale_iss = stale.issuer,
        ),
    )
    .unwrap();
    let users_file = dir.path().join("users.yaml");
    seed_user(
        &users_file,
        "linda",
        "Linda@Example.com",
        users::UserStatus::Active,
    );
    seed_user(
        &users_file,
        "dora",
        "dora@example.com",
        users::UserStatus::Disabled,
    );
    let proxy = ProcessProxy::spawn(&config, port, &[("OIDC_SECRET", SECRET)]);
    let shots = repo_root().join("target/panel-screenshots");
    let child = Command::new(python())
        .arg(repo_root().join("tests/e2e/sso_browser.py"))
        .arg(
            json!({
                "panel": format!("http://127.0.0.1:{admin}"),
                "shots": shots,
                "tokens": tokens,
                "canaries": [SECRET, OTHER_SECRET],
            })
            .to_string(),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        wait_bounded(child, "sso_browser.py", Duration::from_secs(400))
    })
    .await
    .unwrap();
    let log = proxy.log_text();
    assert_eq!(
        code, 0,
        "sso_browser.py failed:\n{stdout}\n{stderr}\nproxy log:\n{log}"
    );
    let out: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("sso_browser.py printed no JSON ({e}):\n{stdout}\n{stderr}"));
    let seen = &out["seen"];
    let said = |key: &str| seen[key].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        seen["buttons"],
        json!([
            "Sign in with company",
            "Sign in with other",
            "Sign in with stale"
        ]),
        "{out}"
    );
    for key in ["first", "second"] {
        assert_eq!(said(key), "ana", "{key}: {out}");
    }
    for key in ["wrong_audience", "expired"] {
        assert!(said(key).contains("security checks"), "{key}: {out}");
    }
    assert!(said("expired_zh").contains("安全校验"), "{out}");
    // A replayed callback and an altered state are refused by the panel's flow (state used or
    // unknown); a used code with a genuine fresh state is refused by the provider.
    for key in ["replayed_callback", "tampered_state"] {
        assert!(said(key).contains("already used"), "{key}: {out}");
    }
    assert!(
        said("replayed_code").contains("refused this sign-in"),
        "{out}"
    );
    assert!(said("domain").contains("not in a domain allowed"), "{out}");
    assert!(said("disabled").contains("disabled"), "{out}");
    assert_eq!(said("linked"), "linda", "{out}");
    // The two token refusals were the checks they should be (the log says which).
    assert!(
        log.contains("ID token refused") && log.contains("audience"),
        "{log}"
    );
    assert!(log.to_lowercase().contains("expired"), "{log}");

    let file = users::read_or_empty(&users_file);
    let names: Vec<&str> = file.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        ["linda", "dora", "ana", "admin-joe"],
        "one account each: {file:?}"
    );
    let ana = file.get("ana").unwrap();
    assert_eq!(
        (
            ana.identities.len(),
            ana.email.as_deref(),
            ana.admin,
            ana.password.as_str()
        ),
        (1, Some("ana@example.com"), false, "")
    );
    assert!(
        file.get("admin-joe").unwrap().admin,
        "admin_groups made an admin"
    );
    let linda = file.get("linda").unwrap();
    assert_eq!(linda.identities[0].provider, "oidc:company");
    assert!(file.get("dora").unwrap().identities.len() == 1);

    let issued = std::fs::read_to_string(&tokens).unwrap();
    let users_text = std::fs::read_to_string(&users_file).unwrap();
    for secret in [SECRET, OTHER_SECRET]
        .into_iter()
        .chain(issued.lines().filter(|l| !l.is_empty()))
    {
        assert!(!log.contains(secret), "a secret or ID token in the log");
        assert!(
            !users_text.contains(secret),
            "a secret or ID token in users.yaml"
        );
        assert!(!stdout.contains(secret), "a secret or ID token on a page");
    }
}
