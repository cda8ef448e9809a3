//! Adapter lifecycle against a running proxy: keys issued, rotated and revoked through the
//! CLI's library functions and by hand-edited files; hot reload under load; broken files.

use crate::harness::*;
use flexiproxy::config::edit;
use flexiproxy::config::server::ServerConfig;
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How long a change may take to reach new requests: the README promises "within a second"
/// of the write, and the watcher's worst case is well inside it (an event, 100 ms of quiet —
/// at most 400 ms for a burst — then 100 ms for the file to settle, or the 1 s rescan when
/// events are lost). Each wait starts right after the write it measures.
const RELOAD: Duration = Duration::from_secs(1);

/// A provider that answers with the model and max_tokens it was sent, so a test can tell
/// which adapter version served a request.
async fn echo_provider() -> FakeProvider {
    FakeProvider::start(|req| {
        let body = req.json();
        let text = format!(
            "{}|{}",
            body["model"].as_str().unwrap_or(""),
            body["max_tokens"]
        );
        Reply::json(200, openai::chat_completion(&text))
    })
    .await
}

fn server_config(proxy: &Proxy) -> ServerConfig {
    ServerConfig::load(&proxy.config_path()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_rotate_delete_through_a_running_proxy() {
    let provider = echo_provider().await;
    let proxy = Proxy::start(&[]);
    let url = proxy.url("");
    let config = server_config(&proxy);
    let spec = edit::CreateSpec {
        name: "team".into(),
        base_url: Some(provider.base_url()),
        api_key: Some(PROVIDER_KEY.into()),
        model: "fake-model".into(),
        ..edit::CreateSpec::default()
    };
    let created = edit::create(&config, &spec).unwrap();
    let first = created.key.expose().to_owned();
    wait_status(RELOAD, &url, &first, 200, "the created key works").await;

    // Rotate without grace: the old key stops at once, the new one works.
    let (_, second) = edit::rotate(&config, "team", None, None).unwrap();
    wait_status(RELOAD, &url, &first, 401, "the rotated-out key is refused").await;
    assert_eq!(status_with(&url, second.expose()).await, 200);

    // Rotate with grace: both work until the old one expires.
    let (_, third) = edit::rotate(&config, "team", Some(Duration::from_secs(2)), None).unwrap();
    wait_status(RELOAD, &url, third.expose(), 200, "the newest key works").await;
    assert_eq!(
        status_with(&url, second.expose()).await,
        200,
        "old key still in its grace period"
    );
    wait_status(
        Duration::from_secs(2) + RELOAD,
        &url,
        second.expose(),
        401,
        "the old key expires after its grace period",
    )
    .await;

    edit::delete(&config, "team").unwrap();
    wait_status(
        RELOAD,
        &url,
        third.expose(),
        401,
        "a deleted adapter's keys are revoked",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_key_from_the_file_revokes_it() {
    let provider = echo_provider().await;
    let proxy = Proxy::start(&[(
        "a",
        adapter_yaml(&provider.base_url(), &[KEY, "fp-second"], ""),
    )]);
    let url = proxy.url("");
    assert_eq!(status_with(&url, "fp-second").await, 200);
    proxy.write_adapter("a", &adapter_yaml(&provider.base_url(), &[KEY], ""));
    wait_status(RELOAD, &url, "fp-second", 401, "the removed key is refused").await;
    assert_eq!(status_with(&url, KEY).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_file_keeps_old_behaviour_until_fixed() {
    let provider = echo_provider().await;
    let proxy = Proxy::start(&[("a", adapter_yaml(&provider.base_url(), &[KEY], ""))]);
    let url = proxy.url("");
    let generation = proxy.generation();
    // Written in place (not renamed), and broken.
    let path = proxy.adapters_dir().join("a.yaml");
    std::fs::write(&path, "source:\n  base_url: [this is not\n").unwrap();
    // Give the watcher every chance to (wrongly) act on it.
    let observed = Arc::new(AtomicUsize::new(0));
    for _ in 0..30 {
        assert_eq!(
            status_with(&url, KEY).await,
            200,
            "the last good version stays live"
        );
        observed.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        proxy.generation(),
        generation,
        "the broken file never took effect"
    );
    // A fixed file with a new key takes effect.
    std::fs::write(&path, adapter_yaml(&provider.base_url(), &["fp-fixed"], "")).unwrap();
    wait_status(RELOAD, &url, "fp-fixed", 200, "the fixed file is live").await;
    assert_eq!(status_with(&url, KEY).await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn editors_and_kubernetes_style_changes() {
    let provider = echo_provider().await;
    let proxy = Proxy::start(&[]);
    let url = proxy.url("");
    let dir = proxy.adapters_dir();

    // An editor: write a temp file, rename it over the target.
    write_atomic(
        &dir.join("ed.yaml"),
        &adapter_yaml(&provider.base_url(), &["fp-editor"], ""),
    );
    wait_status(RELOAD, &url, "fp-editor", 200, "the renamed file is live").await;
    // Editor leftovers (swap and backup files) are ignored.
    std::fs::write(dir.join(".ed.yaml.swp"), "garbage").unwrap();
    std::fs::write(dir.join("ed.yaml~"), "garbage").unwrap();

    // A slow writer: the file appears in two steps, the first of which is a valid adapter
    // without keys; it must not be taken half-written.
    let full = adapter_yaml(&provider.base_url(), &["fp-slow"], "");
    let (head, _) = full.split_at(full.find("keys:").unwrap());
    let slow_path = dir.join("slow.yaml");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&slow_path).unwrap();
        f.write_all(head.as_bytes()).unwrap();
        f.sync_all().unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        f.write_all(&full.as_bytes()[head.len()..]).unwrap();
    }
    wait_status(
        RELOAD,
        &url,
        "fp-slow",
        200,
        "the slowly written file is live",
    )
    .await;

    // Kubernetes ConfigMap: files are symlinks into `..data`, itself a symlink swapped
    // atomically to a new timestamped directory.
    let v1 = dir.join("..2026_11_28_v1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(
        v1.join("k8s.yaml"),
        adapter_yaml(&provider.base_url(), &["fp-k8s-1"], ""),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_28_v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/k8s.yaml", dir.join("k8s.yaml")).unwrap();
    wait_status(
        RELOAD,
        &url,
        "fp-k8s-1",
        200,
        "the ConfigMap adapter is live",
    )
    .await;
    let v2 = dir.join("..2026_11_28_v2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(
        v2.join("k8s.yaml"),
        adapter_yaml(&provider.base_url(), &["fp-k8s-2"], ""),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_28_v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();
    wait_status(
        RELOAD,
        &url,
        "fp-k8s-2",
        200,
        "the swapped ConfigMap version is live",
    )
    .await;
    assert_eq!(status_with(&url, "fp-k8s-1").await, 401);

    // Deleting a file revokes its keys.
    std::fs::remove_file(dir.join("ed.yaml")).unwrap();
    wait_status(
        RELOAD,
        &url,
        "fp-editor",
        401,
        "the deleted adapter's key is refused",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_keys_between_files_are_refused() {
    let provider = echo_provider().await;
    let proxy = Proxy::start(&[("a", adapter_yaml(&provider.base_url(), &[KEY], ""))]);
    let url = proxy.url("");
    // A new file claiming the live key must not take it over.
    proxy.write_adapter(
        "b",
        &adapter_yaml(&provider.base_url(), &[KEY, "fp-b"], "")
            .replace("fake-model", "other-model"),
    );
    proxy.write_adapter("c", &adapter_yaml(&provider.base_url(), &["fp-c"], ""));
    wait_status(RELOAD, &url, "fp-c", 200, "an unrelated new adapter loads").await;
    assert_eq!(
        status_with(&url, "fp-b").await,
        401,
        "the conflicting file is not loaded"
    );
    let r = post_messages(&proxy, &messages_body(false)).await;
    let v: Value = r.json().await.unwrap();
    assert!(
        v["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("fake-model|")
    );
}

/// Requests run continuously while the adapter is rewritten many times: none fails, and
/// each one is served wholly by one version (model and max_tokens limit from the same file).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_load_loses_nothing_and_never_mixes_versions() {
    let provider = echo_provider().await;
    let version = |n: u64| {
        adapter_yaml(
            &provider.base_url(),
            &[KEY],
            &format!("options:\n  max_tokens_limit: {}", 100 + n),
        )
        .replace("model: fake-model", &format!("model: model-v{n}"))
    };
    let proxy = Proxy::start(&[("a", version(0))]);
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, stop, served) = (proxy.url("/v1/messages"), stop.clone(), served.clone());
        clients.push(tokio::spawn(async move {
            let c = client();
            let mut versions = std::collections::BTreeSet::new();
            let mut body = messages_body(false);
            body["max_tokens"] = json!(100_000);
            while !stop.load(Ordering::Relaxed) {
                let r = c
                    .post(&url)
                    .header("x-api-key", KEY)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let v: Value = r.json().await.unwrap();
                let text = v["content"][0]["text"].as_str().unwrap().to_owned();
                let (model, max) = text.split_once('|').unwrap();
                let n: u64 = model.strip_prefix("model-v").unwrap().parse().unwrap();
                assert_eq!(
                    max.parse::<u64>().unwrap(),
                    100 + n,
                    "mixed versions: {text}"
                );
                versions.insert(n);
                served.fetch_add(1, Ordering::Relaxed);
            }
            versions
        }));
    }
    let dir = proxy.adapters_dir();
    // Slower than the 100 ms settling time, so most versions go live for a while.
    for n in 1..=20u64 {
        if n % 2 == 0 {
            write_atomic(&dir.join("a.yaml"), &version(n));
        } else {
            // In-place rewrite: truncate, then write.
            std::fs::write(dir.join("a.yaml"), version(n)).unwrap();
        }
        if n < 20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let last = 20;
    let url = proxy.url("");
    wait_until_async(RELOAD, "the last version is live", || {
        let url = url.clone();
        async move {
            let r = client()
                .post(format!("{url}/v1/messages"))
                .header("x-api-key", KEY)
                .json(&messages_body(false))
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            v["content"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with(&format!("model-v{last}|"))
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    for c in clients {
        seen.extend(c.await.unwrap());
    }
    assert!(
        served.load(Ordering::Relaxed) > 100,
        "{} requests",
        served.load(Ordering::Relaxed)
    );
    assert!(seen.len() > 3, "several versions served: {seen:?}");
}

#[test]
fn check_rejects_each_kind_of_invalid_file_with_file_and_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "syntax",
            "source:\n  base_url: [unclosed\n",
            "syntax.yaml:2:",
        ),
        (
            "unknown-key",
            "source:\n  base_url: http://x/v1\n  api_key: k\n  model: m\n  modle: typo\n",
            "syntax.yaml",
        ),
        (
            "bad-url",
            "source:\n  base_url: ftp://x\n  api_key: k\n  model: m\n",
            "bad-url.yaml:2:",
        ),
        (
            "bad-hash",
            "source:\n  base_url: http://x/v1\n  api_key: k\n  model: m\nkeys:\n  - sha256: nothex\n",
            "bad-hash.yaml:6:",
        ),
        (
            "bad-glob",
            "source:\n  base_url: http://x/v1\n  api_key: k\n  model: m\n  model_map:\n    - { match: \"a[\", model: b }\n",
            "bad-glob.yaml:6:",
        ),
        (
            "no-model",
            "source:\n  base_url: http://x/v1\n  api_key: k\n",
            "no-model.yaml:2:",
        ),
        (
            "bad-preset",
            "source:\n  preset: nowhere\n  api_key: k\n  model: m\n",
            "bad-preset.yaml:2:",
        ),
    ];
    for (name, text, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("adapters")).unwrap();
        std::fs::write(dir.path().join("flexiproxy.yaml"), "listen: 127.0.0.1:1\n").unwrap();
        std::fs::write(
            dir.path().join("adapters").join(format!("{name}.yaml")),
            text,
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
            .args(["check", "--config"])
            .arg(dir.path().join("flexiproxy.yaml"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: check passed");
        let expected = if *name == "unknown-key" {
            "unknown-key.yaml:5:"
        } else {
            expected
        };
        assert!(
            stderr.contains(expected),
            "{name}: expected {expected} in:\n{stderr}"
        );
    }
    // Two files with the same adapter name, and a clean directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("adapters")).unwrap();
    std::fs::write(dir.path().join("flexiproxy.yaml"), "").unwrap();
    let good = "name: same\nsource:\n  base_url: http://x/v1\n  api_key: k\n  model: m\n";
    std::fs::write(dir.path().join("adapters/one.yaml"), good).unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
            .args(["check", "--config"])
            .arg(dir.path().join("flexiproxy.yaml"))
            .output()
            .unwrap()
    };
    assert!(run().status.success());
    std::fs::write(dir.path().join("adapters/two.yaml"), good).unwrap();
    let out = run();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already used"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_process_logs_file_line_and_reason_for_a_broken_file() {
    let provider = echo_provider().await;
    let port = free_port();
    let dir = config_dir(
        &format!("listen: 127.0.0.1:{port}\nthreads: 1\n"),
        &[("a", adapter_yaml(&provider.base_url(), &[KEY], ""))],
    );
    let proc = ProcessProxy::spawn(&dir.path().join("flexiproxy.yaml"), port, &[]);
    std::fs::write(
        dir.path().join("adapters/a.yaml"),
        "source:\n  base_url: http://x/v1\n  api_key: k\n  model: m\n  modle: typo\n",
    )
    .unwrap();
    wait_until(RELOAD, "the error is logged", || {
        proc.log_text().contains("a.yaml:5:")
    });
    let log = proc.log_text();
    assert!(log.contains("modle"), "{log}");
    assert_eq!(
        status_with(&proc.url(""), KEY).await,
        200,
        "the old version still serves"
    );
}

/// A broken adapter file already there when the process starts: the process starts anyway,
/// serves the other adapters, names the file, line and reason in its log and in
/// `flexiproxy_config_errors`, and takes the file once it is fixed (within the second).
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_file_present_at_start_up_is_reported_and_the_rest_serves() {
    let provider = echo_provider().await;
    let (port, admin) = (free_port(), free_port());
    let dir = config_dir(
        &format!("listen: 127.0.0.1:{port}\nthreads: 1\nadmin:\n  listen: 127.0.0.1:{admin}\n"),
        &[
            ("good", adapter_yaml(&provider.base_url(), &[KEY], "")),
            (
                "broken",
                "source:\n  base_url: http://x/v1\n  api_key: k\n  model: m\n  modle: typo\n"
                    .to_owned(),
            ),
        ],
    );
    let proc = ProcessProxy::spawn(&dir.path().join("flexiproxy.yaml"), port, &[]);
    let url = proc.url("");
    assert_eq!(status_with(&url, KEY).await, 200, "the good adapter serves");
    let log = proc.log_text();
    assert!(
        log.contains("broken.yaml:5:") && log.contains("modle"),
        "{log}"
    );
    let metric = |name: &'static str| {
        let url = format!("http://127.0.0.1:{admin}/metrics");
        async move {
            let text = client()
                .get(url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        }
    };
    assert_eq!(metric("flexiproxy_config_errors").await, 1.0);
    assert_eq!(metric("flexiproxy_adapters").await, 1.0);
    // Fixed, with a key of its own: live within the second, and the error gone.
    std::fs::write(
        dir.path().join("adapters/broken.yaml"),
        adapter_yaml(&provider.base_url(), &["fp-repaired"], ""),
    )
    .unwrap();
    wait_status(RELOAD, &url, "fp-repaired", 200, "the fixed file is live").await;
    assert_eq!(metric("flexiproxy_config_errors").await, 0.0);
    assert_eq!(metric("flexiproxy_adapters").await, 2.0);
    assert_eq!(status_with(&url, KEY).await, 200);
}
