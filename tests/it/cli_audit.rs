//! The `flexiproxy` command's changes in the audit log, and `user reset-link` (issue #27): the
//! real binary adds, changes and deletes a user, makes a reset link, makes and revokes an
//! invitation, creates, rotates, checks-and-applies and deletes an adapter against a server's
//! config; the server's `GET /admin/api/audit` then lists exactly those entries (actor `cli`,
//! client `local`) — in SQLite with statistics off and in PostgreSQL — with no password, code
//! or key in them or in the store file. A store that cannot be written leaves the change made
//! with a warning. The reset link the command prints opens the panel of a running server,
//! sets a password once, and the new password signs in.

use crate::audit::{triple, wait_for};
use crate::harness::*;
use crate::management::*;
use flexiproxy::config::invites;
use flexiproxy_testkit::FakeProvider;
use flexiproxy_testkit::quirks::{self, Quirks};
use flexiproxy_testkit::services::{PostgresServer, free_port};
use serde_json::{Value, json};
use std::path::Path;

const CANARY_PASSWORD: &str = "cli-canary-password-8d2f";
const CANARY_PASSWORD_2: &str = "cli-canary-password-4a7e";

/// Runs `flexiproxy ARGS --config CONFIG` with `stdin`; (success, stdout, stderr).
fn cli(config: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// [`cli`] that must succeed without a warning: its stdout.
fn cli_ok(config: &Path, args: &[&str], stdin: &str) -> String {
    let (ok, stdout, stderr) = cli(config, args, stdin);
    assert!(ok, "{args:?}: {stderr}");
    assert!(!stderr.contains("warning"), "{args:?}: {stderr}");
    stdout
}

/// The secrets the sequence made, to look for where they must not be.
struct Secrets(Vec<String>);

/// Runs every auditable command against `proxy`'s config and checks the log it leaves.
async fn cli_sequence_is_audited_exactly(proxy: &Proxy) -> Secrets {
    let config = proxy.config_path();
    let config = config.as_path();
    let provider = FakeProvider::start(quirks::chat(
        Quirks {
            refuse_images: true,
            ..Quirks::default()
        },
        None,
        "Done.",
    ))
    .await;
    cli_ok(
        config,
        &["user", "add", "dave"],
        &format!("{CANARY_PASSWORD}\n"),
    );
    cli_ok(
        config,
        &["user", "passwd", "dave"],
        &format!("{CANARY_PASSWORD_2}\n"),
    );
    let set = [
        "user",
        "set",
        "dave",
        "--status",
        "disabled",
        "--max-adapters",
        "3",
        "--quota",
        "requests_per_day=7",
    ];
    cli_ok(config, &set, "");
    let link = cli_ok(config, &["user", "reset-link", "bob"], "");
    cli_ok(config, &["user", "delete", "dave"], "");
    let code = cli_ok(config, &["invite", "create", "--uses", "2"], "");
    let invites = invites::read(&proxy.dir.path().join("invites.yaml")).unwrap();
    let id = invites.invites[0].id.clone();
    cli_ok(config, &["invite", "revoke", &id], "");
    let base_url = provider.base_url();
    let create = [
        "adapter",
        "create",
        "cliad",
        "--base-url",
        &base_url,
        "--api-key",
        CANARY_PROVIDER_KEY,
        "--model",
        "fake-model",
        "--json",
    ];
    let created: Value = serde_json::from_str(&cli_ok(config, &create, "")).unwrap();
    let rotate = ["adapter", "rotate", "cliad", "--grace", "1h", "--json"];
    let rotated: Value = serde_json::from_str(&cli_ok(config, &rotate, "")).unwrap();
    let (_, probed, stderr) = cli(config, &["adapter", "probe", "cliad", "--apply"], "");
    assert!(probed.contains("images: false"), "{probed}{stderr}");
    cli_ok(config, &["adapter", "delete", "cliad"], "");

    let got = wait_for(proxy, 13).await;
    let want = [
        ("adapter.delete", "cliad"),
        ("adapter.change", "cliad"),
        ("key.rotate", "cliad"),
        ("adapter.create", "cliad"),
        ("invite.revoke", id.as_str()),
        ("invite.create", id.as_str()),
        ("user.delete", "dave"),
        ("password.reset_link", "bob"),
        ("quota.set", "dave"),
        ("user.change", "dave"),
        ("user.change", "dave"),
        ("password.change", "dave"),
        ("user.add", "dave"),
    ]
    .map(|(k, t)| (k.to_owned(), "cli".to_owned(), t.to_owned()));
    assert_eq!(got.iter().map(triple).collect::<Vec<_>>(), want, "{got:?}");
    for e in &got {
        assert_eq!(e["client"], "local", "{e}");
    }
    let detail = |i: usize| got[i]["detail"].as_str().unwrap().to_owned();
    let key_id = |key: &Value| sha256_hex(key.as_str().unwrap())[..12].to_owned();
    assert_eq!(detail(0), "owner=");
    assert_eq!(detail(1), "options=images");
    assert_eq!(
        detail(2),
        format!("new_key={} grace=1h", key_id(&rotated["key"]))
    );
    assert_eq!(detail(3), format!("owner= key={}", key_id(&created["key"])));
    assert!(detail(5).starts_with("uses=2 expires="), "{}", detail(5));
    assert!(detail(7).starts_with("expires="), "{}", detail(7));
    assert_eq!(detail(8), "requests_per_day=7");
    assert_eq!(detail(9), "max_adapters=3");
    assert_eq!(detail(10), "status=disabled");
    assert_eq!(detail(12), "admin=false");

    let token = link.trim().rsplit('/').next().unwrap().to_owned();
    let secrets = vec![
        CANARY_PASSWORD.to_owned(),
        CANARY_PASSWORD_2.to_owned(),
        CANARY_PROVIDER_KEY.to_owned(),
        code.trim().to_owned(),
        token,
        created["key"].as_str().unwrap().to_owned(),
        rotated["key"].as_str().unwrap().to_owned(),
    ];
    let listing = serde_json::to_string(&got).unwrap();
    for secret in &secrets {
        assert!(!listing.contains(secret.as_str()), "{secret} in {listing}");
    }
    Secrets(secrets)
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_changes_are_audited_in_sqlite_with_statistics_off() {
    let proxy = start("");
    let Secrets(secrets) = cli_sequence_is_audited_exactly(&proxy).await;
    // The store file itself, with its write-ahead log, holds none of them.
    let mut stored = Vec::new();
    for file in ["flexiproxy-stats.db", "flexiproxy-stats.db-wal"] {
        if let Ok(bytes) = std::fs::read(proxy.dir.path().join(file)) {
            stored.extend(bytes);
        }
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(
        stored.contains("password.reset_link"),
        "the file holds the log"
    );
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "{secret} in the store file"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_changes_are_audited_in_postgresql() {
    let pg = PostgresServer::start();
    let proxy = start(&format!(
        "stats:\n  enabled: true\n  backend: postgres\n  url: {}\n",
        pg.url()
    ));
    let Secrets(secrets) = cli_sequence_is_audited_exactly(&proxy).await;
    let stored = pg.psql(
        "SELECT string_agg(instance || actor || kind || target || client || detail, ' ') FROM audit",
    );
    assert!(stored.contains("cliuser.adddave"), "{stored}");
    for secret in &secrets {
        assert!(!stored.contains(secret.as_str()), "{secret} in {stored}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_stays_made_when_its_audit_entry_cannot_be_stored() {
    // The statistics file's directory is a regular file: the store cannot be opened.
    let dir = config_dir("stats:\n  enabled: true\n  path: not-a-dir/stats.db\n", &[]);
    std::fs::write(dir.path().join("not-a-dir"), "a file").unwrap();
    let config = dir.path().join("flexiproxy.yaml");
    let (ok, code, stderr) = cli(&config, &["invite", "create"], "");
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: the change is made, but the audit log did not store it"),
        "{stderr}"
    );
    assert!(!stderr.contains(code.trim()), "{stderr}");
    let invites = std::fs::read_to_string(dir.path().join("invites.yaml")).unwrap();
    assert!(invites.contains("uses_left: 1"), "{invites}");
}

const NEW_PASSWORD: &str = "juniper-copper-valley-58";

#[tokio::test(flavor = "multi_thread")]
async fn a_cli_reset_link_sets_a_password_once_on_a_running_server() {
    let admin_port = free_port();
    let port = free_port();
    let (dir, config) = config_with_alice(&format!(
        "listen: 127.0.0.1:{port}\nadmin:\n  listen: 127.0.0.1:{admin_port}\n  token_sha256: {}\n",
        sha256_hex(TOKEN)
    ));
    let server = ProcessProxy::spawn(&config, port, &[]);

    let (ok, _, stderr) = cli(&config, &["user", "reset-link", "nobody"], "");
    assert!(!ok && stderr.contains("no user `nobody`"), "{stderr}");
    assert!(!dir.path().join("resets.yaml").exists());
    let link = cli_ok(&config, &["user", "reset-link", "alice"], "");
    let link = link.trim();
    let prefix = format!("http://127.0.0.1:{admin_port}/reset/rst-");
    assert!(link.starts_with(&prefix), "{link}");

    let form = client().get(link).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains("id=\"reset-form\""));
    let set = |password: &'static str| {
        client()
            .post(link)
            .form(&[("new_password", password), ("new_password2", password)])
            .send()
    };
    let done = set(NEW_PASSWORD).await.unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("Your password is set"));
    let login = |password: &'static str| {
        client()
            .post(format!("http://127.0.0.1:{admin_port}/admin/api/session"))
            .json(&json!({"username": "alice", "password": password}))
            .send()
    };
    assert_eq!(login(NEW_PASSWORD).await.unwrap().status(), 200);
    assert_eq!(login("alice-password").await.unwrap().status(), 401);
    // A second use is refused and changes nothing.
    let again = set("another-fine-phrase-73").await.unwrap();
    assert_eq!(again.status(), 400);
    assert_eq!(login(NEW_PASSWORD).await.unwrap().status(), 200);

    // The audit log of the running server names the link's maker and its use.
    let (status, body) = {
        let resp = client()
            .get(format!(
                "http://127.0.0.1:{admin_port}/admin/api/audit?kind=password"
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{body}");
    let got: Vec<_> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(triple)
        .collect();
    let want = [("password.reset", "alice"), ("password.reset_link", "cli")]
        .map(|(k, a)| (k.to_owned(), a.to_owned(), "alice".to_owned()));
    assert_eq!(got, want);
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cli_reset_link_points_at_the_panel_url_when_set() {
    let (_dir, config) = config_with_alice("accounts:\n  panel_url: https://panel.example.com/\n");
    let link = cli_ok(&config, &["user", "reset-link", "alice"], "");
    assert!(
        link.trim()
            .starts_with("https://panel.example.com/reset/rst-"),
        "{link}"
    );
    // Without a panel URL and with the admin listener off, no link is made.
    let (off, config) = config_with_alice("admin:\n  enabled: false\n");
    let (ok, _, stderr) = cli(&config, &["user", "reset-link", "alice"], "");
    assert!(!ok && stderr.contains("admin listener is off"), "{stderr}");
    assert!(!off.path().join("resets.yaml").exists());
}
