//! What operators see: Prometheus metrics, the access log, secrets kept out of both, opt-in
//! usage statistics, per-key rate limits, the admin endpoints.

use crate::harness::*;
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use serde_json::{Value, json};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

async fn provider() -> FakeProvider {
    FakeProvider::start(|req| {
        let body = req.json();
        let prompt = body["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str()).unwrap_or("").to_owned();
        match prompt.as_str() {
            "fail" => Reply::json(500, openai::error_body("boom", "server_error", None)),
            "slow" => Reply::json(200, openai::chat_completion("late")).delay_before_headers(Duration::from_secs(3)),
            _ if body["stream"] == true => {
                let mut events = openai::text_stream("streamed", 2);
                events.truncate(events.len() - 2);
                events.push(openai::sse_usage_chunk(21, 4));
                events.push(openai::SSE_DONE.into());
                Reply::sse(events)
            }
            _ => {
                let mut c = openai::chat_completion("plain");
                c["usage"] = json!({"prompt_tokens": 30, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 10}});
                Reply::json(200, c)
            }
        }
    })
    .await
}

fn body_with(prompt: &str, stream: bool) -> Value {
    let mut b = messages_body(stream);
    b["messages"][0]["content"] = json!(prompt);
    b
}

async fn metrics(proxy: &Proxy) -> prometheus_parse::Scrape {
    let text = client()
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("metrics parse as Prometheus text")
}

/// Scrapes until `ready` holds, failing after a deadline.
async fn wait_for_metrics(
    proxy: &Proxy,
    ready: impl Fn(&prometheus_parse::Scrape) -> bool,
) -> prometheus_parse::Scrape {
    let end = std::time::Instant::now() + DEADLINE;
    loop {
        let m = metrics(proxy).await;
        if ready(&m) {
            return m;
        }
        assert!(
            std::time::Instant::now() < end,
            "metrics never reached the expected values"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_move_as_requests_pass() {
    let p = provider().await;
    let proxy = Proxy::start(&[("obs", adapter_yaml(&p.base_url(), &[KEY], ""))]);
    let before = metrics(&proxy).await;
    assert_eq!(value(&before, "flexiproxy_build_info", &[]), 1.0);
    assert_eq!(value(&before, "flexiproxy_adapters", &[]), 1.0);
    assert_eq!(
        post_messages(&proxy, &body_with("hi", false))
            .await
            .status(),
        200
    );
    let r = post_messages(&proxy, &body_with("hi", true)).await;
    r.bytes().await.unwrap();
    assert_eq!(
        post_messages(&proxy, &body_with("fail", false))
            .await
            .status(),
        500
    );
    let r = client()
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", "fp-bad")
        .json(&messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Logging runs after the response is sent: wait for the counters rather than sleeping.
    let m = wait_for_metrics(&proxy, |m| {
        value(m, "flexiproxy_requests_total", &[]) >= 4.0
    })
    .await;
    let ok = [
        ("adapter", "obs"),
        ("route", "messages"),
        ("status", "200"),
        ("protocol", "anthropic"),
    ];
    assert_eq!(value(&m, "flexiproxy_requests_total", &ok), 2.0);
    assert_eq!(
        value(
            &m,
            "flexiproxy_requests_total",
            &[("adapter", "obs"), ("status", "500")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "flexiproxy_requests_total",
            &[("adapter", "-"), ("status", "401")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "flexiproxy_provider_errors_total",
            &[("adapter", "obs"), ("kind", "status_5xx")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "flexiproxy_tokens_total",
            &[("adapter", "obs"), ("kind", "input")]
        ),
        20.0 + 21.0
    );
    assert_eq!(
        value(
            &m,
            "flexiproxy_tokens_total",
            &[("adapter", "obs"), ("kind", "cache_read")]
        ),
        10.0
    );
    assert_eq!(
        value(&m, "flexiproxy_open_streams", &[("adapter", "obs")]),
        0.0
    );
    let hist = m.samples.iter().find(|s| {
        s.metric == "flexiproxy_request_duration_seconds" && s.labels.get("adapter") == Some("obs")
    });
    assert!(hist.is_some(), "latency histogram present");
    assert!(
        m.samples
            .iter()
            .any(|s| s.metric == "flexiproxy_time_to_first_byte_seconds")
    );

    // Reloads are counted, and so are broken files.
    proxy.write_adapter("obs", &adapter_yaml(&p.base_url(), &[KEY, "fp-2"], ""));
    std::fs::write(proxy.adapters_dir().join("broken.yaml"), "source: [").unwrap();
    let m = wait_for_metrics(&proxy, |m| {
        value(m, "flexiproxy_config_reloads_total", &[]) >= 1.0
            && value(m, "flexiproxy_config_errors", &[]) >= 1.0
    })
    .await;
    assert!(value(&m, "flexiproxy_config_reloads_total", &[]) >= 1.0);
    assert_eq!(value(&m, "flexiproxy_config_errors", &[]), 1.0);
    assert!(value(&m, "flexiproxy_config_reload_failures_total", &[]) >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_has_one_clean_json_line_per_request_and_ids_propagate() {
    let p = provider().await;
    let proxy = Proxy::start(&[("obs", adapter_yaml(&p.base_url(), &[KEY], ""))]);
    let r = post_messages(&proxy, &body_with("hi", false)).await;
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(r.status(), 200);
    let seen = p.wait_for_requests(1, DEADLINE).await;
    assert_eq!(
        seen[0].header("x-request-id"),
        Some(request_id.as_str()),
        "request id propagated to the provider"
    );
    wait_until(DEADLINE, "the access log line is written", || {
        proxy.access_log().contains(&request_id)
    });
    let line = proxy
        .access_log()
        .lines()
        .find(|l| l.contains(&request_id))
        .unwrap()
        .to_owned();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["adapter"], "obs");
    assert_eq!(v["key_label"], "test");
    assert_eq!(v["client_model"], "claude-sonnet-4-5");
    assert_eq!(v["source_model"], "fake-model");
    assert_eq!(v["status"], 200);
    assert_eq!(v["stream"], false);
    assert!(v["bytes_in"].as_u64().unwrap() > 0 && v["bytes_out"].as_u64().unwrap() > 0);
    assert!(v["duration_ms"].as_f64().unwrap() > 0.0 && v["ttfb_ms"].as_f64().is_some());
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
    assert!(
        !line.contains("Say hello") && !line.contains("plain"),
        "no prompt or completion text"
    );
}

/// Answers FlexiProxy writes itself (an auth refusal, a missing provider key's 503) count
/// their body in `bytes_out` like relayed ones.
#[tokio::test(flavor = "multi_thread")]
async fn access_log_counts_the_bytes_of_answers_the_proxy_writes() {
    let p = provider().await;
    let proxy = Proxy::start(&[
        ("obs", adapter_yaml(&p.base_url(), &[KEY], "")),
        (
            "nokey",
            adapter_yaml(&p.base_url(), &["fp-other-key"], "").replace(
                &format!("api_key: {PROVIDER_KEY}"),
                "api_key: ${FP_TEST_SURELY_UNSET_KEY}",
            ),
        ),
    ]);
    for (key, status) in [("fp-wrong-key", 401), ("fp-other-key", 503)] {
        let r = client()
            .post(proxy.url("/v1/messages"))
            .header("x-api-key", key)
            .json(&body_with("hi", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
        let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body = r.bytes().await.unwrap();
        assert!(!body.is_empty());
        wait_until(DEADLINE, "the access log line is written", || {
            proxy.access_log().contains(&request_id)
        });
        let log = proxy.access_log();
        let line = log.lines().find(|l| l.contains(&request_id)).unwrap();
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["status"], status, "{line}");
        assert_eq!(v["bytes_out"], body.len(), "{line}");
    }
}

/// A canary provider key and canary client keys never appear in logs, the access log or
/// metrics — across success, provider errors, auth failures and timeouts.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_logs_or_metrics() {
    const CLIENT_CANARY: &str = "fp-CANARY-client-key-5d1e";
    const WRONG_CANARY: &str = "fp-CANARY-wrong-key-77aa";
    let p = provider().await;
    let (port, admin_port) = (free_port(), free_port());
    let dir = config_dir(
        &format!(
            "listen: 127.0.0.1:{port}\nthreads: 1\nadmin:\n  listen: 127.0.0.1:{admin_port}\naccess_log:\n  path: access.log\nstats:\n  enabled: true\n"
        ),
        &[],
    );
    let adapter = adapter_yaml(
        &p.base_url(),
        &[CLIENT_CANARY],
        "timeouts:\n  first_byte: 1s",
    )
    .replace(PROVIDER_KEY, "${CANARY_PROVIDER_KEY}");
    std::fs::write(dir.path().join("adapters/c.yaml"), adapter).unwrap();
    let proc = ProcessProxy::spawn(
        &dir.path().join("flexiproxy.yaml"),
        port,
        &[
            ("CANARY_PROVIDER_KEY", "sk-CANARY-provider-91b3"),
            ("RUST_LOG", "debug"),
        ],
    );
    let c = client();
    let send = |key: &'static str, prompt: &'static str, stream: bool| {
        let c = c.clone();
        let url = proc.url("/v1/messages");
        async move {
            c.post(url)
                .header("x-api-key", key)
                .json(&body_with(prompt, stream))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(send(CLIENT_CANARY, "hi", false).await, 200);
    assert_eq!(send(CLIENT_CANARY, "hi", true).await, 200);
    assert_eq!(send(CLIENT_CANARY, "fail", false).await, 500);
    assert_eq!(send(CLIENT_CANARY, "slow", false).await, 504);
    assert_eq!(send(WRONG_CANARY, "hi", false).await, 401);
    let bearer = c
        .post(proc.url("/v1/messages"))
        .bearer_auth(WRONG_CANARY)
        .json(&messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
    // Gemini clients may send the key in the query string: kept out of logs too, on success,
    // on a provider timeout and on a refused key.
    for (key, prompt, status) in [
        (CLIENT_CANARY, "hi", 200),
        (CLIENT_CANARY, "slow", 504),
        (WRONG_CANARY, "hi", 401),
    ] {
        let r = c
            .post(proc.url(&format!(
                "/v1beta/models/gemini-pro:streamGenerateContent?alt=sse&key={key}"
            )))
            .json(&json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "gemini {prompt}");
        let _ = r.bytes().await;
    }
    // A provider that echoes the key back in its error must not leak it either.
    let metrics_text = c
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    wait_until(DEADLINE, "all nine requests are in the access log", || {
        std::fs::read_to_string(dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .count()
            >= 9
    });
    let access = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    let log = proc.log_text();
    assert!(log.contains("flexiproxy"), "the process log was captured");
    for (what, text) in [
        ("process log", &log),
        ("access log", &access),
        ("metrics", &metrics_text),
    ] {
        for canary in [
            "CANARY",
            "sk-CANARY-provider-91b3",
            CLIENT_CANARY,
            WRONG_CANARY,
        ] {
            assert!(
                !text.contains(canary),
                "{canary} leaked into the {what}:\n{text}"
            );
        }
    }
    // The provider did get the real key (so the canary was in play).
    assert!(
        p.requests()
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer sk-CANARY-provider-91b3"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_off_by_default_creates_nothing() {
    let p = provider().await;
    let proxy = Proxy::start(&[("obs", adapter_yaml(&p.base_url(), &[KEY], ""))]);
    assert_eq!(
        post_messages(&proxy, &body_with("hi", false))
            .await
            .status(),
        200
    );
    let files: Vec<String> = std::fs::read_dir(proxy.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !files
            .iter()
            .any(|f| f.contains("stats") || f.ends_with(".db")),
        "{files:?}"
    );
    let r = client()
        .get(proxy.admin_url("/admin/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "admin endpoints need a configured token");
}

pub(crate) fn stats_cli(config: &std::path::Path, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
        .arg("stats")
        .arg("--config")
        .arg(config)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_record_what_the_provider_reported_and_survive_restart() {
    let p = provider().await;
    const TOKEN: &str = "admin-token-for-tests";
    let extra = format!(
        "stats:\n  enabled: true\nadmin:\n  listen: 127.0.0.1:{}\n  token_sha256: {}\n",
        free_port(),
        sha256_hex(TOKEN)
    );
    let proxy = Proxy::start_with(&extra, &[("obs", adapter_yaml(&p.base_url(), &[KEY], ""))]);
    assert_eq!(
        post_messages(&proxy, &body_with("hi", false))
            .await
            .status(),
        200
    );
    post_messages(&proxy, &body_with("hi", true))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        post_messages(&proxy, &body_with("fail", false))
            .await
            .status(),
        500
    );
    let config = proxy.config_path();
    wait_until(DEADLINE, "three records are written", || {
        let v = stats_cli(&config, &["--by", "adapter"]);
        v["totals"][0]["requests"] == 3
    });
    let v = stats_cli(&config, &["--by", "adapter"]);
    let t = &v["totals"][0];
    assert_eq!(t["group"], "obs");
    assert_eq!(t["errors"], 1);
    // 20 uncached + 10 cached (JSON) and 21 (stream) from the provider's usage; the 500 was
    // an error the provider answered, which charges nothing: no tokens, nothing estimated.
    assert_eq!(t["cache_read_tokens"], 10);
    assert!(t["output_tokens"].as_u64().unwrap() >= 9);
    assert_eq!(t["estimated"], 0);
    assert_eq!(t["input_tokens"], 41);
    let by_model = stats_cli(&config, &["--by", "model"]);
    assert_eq!(
        by_model["totals"][0]["group"],
        "claude-sonnet-4-5 -> fake-model"
    );

    // The admin endpoint serves the same, with the token only.
    let url = proxy.admin_url("/admin/stats?since=1h&by=adapter");
    assert_eq!(client().get(&url).send().await.unwrap().status(), 401);
    let admin: Value = client()
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(admin["totals"], v["totals"]);

    // A restart keeps the data, and adds to it.
    let proxy = proxy.restart();
    let again = stats_cli(&config, &["--by", "adapter"]);
    assert_eq!(again["totals"], v["totals"]);
    assert_eq!(
        post_messages(&proxy, &body_with("hi", false))
            .await
            .status(),
        200
    );
    wait_until(DEADLINE, "the new record joins the old ones", || {
        stats_cli(&config, &["--by", "adapter"])["totals"][0]["requests"] == 4
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_database_does_not_slow_requests() {
    let p = provider().await;
    let proxy = Proxy::start_with(
        "stats:\n  enabled: true\n  queue: 5\n",
        &[("obs", adapter_yaml(&p.base_url(), &[KEY], ""))],
    );
    assert_eq!(
        post_messages(&proxy, &body_with("hi", false))
            .await
            .status(),
        200
    );
    let db = proxy.dir.path().join("flexiproxy-stats.db");
    wait_until(DEADLINE, "the database exists", || db.exists());
    // Another process holds the database locked: the writer stalls, the queue fills.
    let locker = rusqlite_lock(&db);
    let started = std::time::Instant::now();
    for _ in 0..60 {
        assert_eq!(
            post_messages(&proxy, &body_with("hi", false))
                .await
                .status(),
            200
        );
    }
    let elapsed = started.elapsed();
    // Full-queue drops are counted.
    wait_for_metrics(&proxy, |m| {
        value(m, "flexiproxy_stats_dropped_total", &[]) > 0.0
    })
    .await;
    // Sixty requests took far less than the writer's 2 s lock wait each would have.
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    drop(locker);
}

/// Holds an exclusive lock on a SQLite database until dropped.
fn rusqlite_lock(path: &std::path::Path) -> std::process::Child {
    let python = crate::clients::python();
    let mut child = std::process::Command::new(python)
        .arg("-c")
        .arg("import sqlite3,sys,time\nc=sqlite3.connect(sys.argv[1],isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked',flush=True)\ntime.sleep(60)")
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_simultaneous_requests_on_a_100_per_minute_key_admit_100() {
    let p = provider().await;
    let proxy = Proxy::start_with(
        "limits:\n  max_concurrent_requests: 0\n",
        &[(
            "obs",
            format!(
                "{}limits:\n  requests_per_minute: 100\n",
                adapter_yaml(&p.base_url(), &[KEY, "fp-other"], "")
            ),
        )],
    );
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let url = proxy.url("/v1/messages");
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let r = c
                .post(url)
                .header("x-api-key", KEY)
                .json(&body_with("hi", false))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let v: Value = r.json().await.unwrap();
            (status, retry_after, v)
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        let (status, retry_after, v) = t.await.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                limited += 1;
                assert_eq!(v["error"]["type"], "rate_limit_error");
                assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
            }
            s => panic!("unexpected status {s}: {v}"),
        }
    }
    assert_eq!(ok, 100);
    assert_eq!(limited, 900);
    // Per key: another key of the adapter has its own budget.
    let r = client()
        .post(&url)
        .header("x-api-key", "fp-other")
        .json(&body_with("hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = metrics(&proxy).await;
    assert_eq!(
        value(
            &m,
            "flexiproxy_rate_limited_total",
            &[("adapter", "obs"), ("limit", "rpm")]
        ),
        900.0
    );
    // Limits reload with the file: lifting it lets the key through again.
    proxy.write_adapter("obs", &adapter_yaml(&p.base_url(), &[KEY, "fp-other"], ""));
    let url2 = url.clone();
    wait_until_async(
        Duration::from_secs(5),
        "the lifted limit takes effect",
        || {
            let url = url2.clone();
            async move {
                client()
                    .post(url)
                    .header("x-api-key", KEY)
                    .json(&body_with("hi", false))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    == 200
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_stream_limit_per_key() {
    let p = FakeProvider::start(|req| {
        if req.json()["stream"] == true {
            Reply::sse(openai::text_stream("slow stream here", 4))
                .delay_between_writes(Duration::from_millis(300))
        } else {
            Reply::json(200, openai::chat_completion("ok"))
        }
    })
    .await;
    let proxy = Proxy::start(&[(
        "obs",
        format!(
            "{}limits:\n  concurrent_requests: 1\n",
            adapter_yaml(&p.base_url(), &[KEY], "")
        ),
    )]);
    let mut first = post_messages(&proxy, &messages_body(true)).await;
    assert_eq!(first.status(), 200);
    let _ = first.chunk().await.unwrap();
    let second = post_messages(&proxy, &messages_body(true)).await;
    assert_eq!(second.status(), 429);
    assert!(second.headers().get("retry-after").is_some());
    while first.chunk().await.unwrap().is_some() {}
    wait_status(DEADLINE, &proxy.url(""), KEY, 200, "the slot is released").await;
}
