//! Several instances, one set of limits and one usage store: three `flexiproxy serve`
//! processes sharing an adapters directory, a real Redis (limits) and a real PostgreSQL
//! (usage), all on loopback ports started by the test (`flexiproxy_testkit::services`).

use crate::harness::*;
use flexiproxy_testkit::services::{PostgresServer, RedisServer};
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);
const LEASE_TTL: Duration = Duration::from_secs(2);
pub(crate) const ADMIN_TOKEN: &str = "scale-admin-token";

/// Answers with usage `prompt = 10, completion = max_tokens` after `delay`, noting when
/// each request arrived.
pub(crate) async fn provider(delay: Duration, arrivals: Arc<Mutex<Vec<Instant>>>) -> FakeProvider {
    FakeProvider::start(move |req| {
        arrivals.lock().unwrap().push(Instant::now());
        let body = req.json();
        let max = body["max_tokens"]
            .as_u64()
            .or(body["max_completion_tokens"].as_u64())
            .unwrap_or(16);
        let mut answer = openai::chat_completion("ok");
        answer["usage"] = openai::usage(10, max);
        let prompt = body["messages"].to_string();
        let delay = if prompt.contains("hold") {
            Duration::from_secs(30)
        } else {
            delay
        };
        Reply::json(200, answer).delay_before_headers(delay)
    })
    .await
}

pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    instances: Vec<Option<ProcessProxy>>,
    pub(crate) admin_ports: Vec<u16>,
}

impl Cluster {
    /// `n` instances; `extra(i)` adds server config lines for instance `i`.
    pub(crate) fn start(
        n: usize,
        redis: &RedisServer,
        pg: Option<&PostgresServer>,
        timeout: &str,
        extra: &dyn Fn(usize) -> String,
        adapters: &[(&str, String)],
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("adapters")).unwrap();
        for (name, yaml) in adapters {
            std::fs::write(
                dir.path().join("adapters").join(format!("{name}.yaml")),
                yaml,
            )
            .unwrap();
        }
        let mut instances = Vec::new();
        let mut admin_ports = Vec::new();
        for i in 0..n {
            let port = free_port();
            let admin = free_port();
            let mut text = format!(
                "listen: 127.0.0.1:{port}\nthreads: 2\ninstance: i{i}\nadapters_dir: adapters\n\
                 admin:\n  listen: 127.0.0.1:{admin}\n  token_sha256: {token}\naccess_log:\n  enabled: false\n\
                 pid_file: i{i}.pid\nupgrade_sock: i{i}.sock\n\
                 limits:\n  backend: redis\nredis:\n  url: {}\n  timeout: {timeout}\n  lease_ttl: {}s\n",
                redis.url(),
                LEASE_TTL.as_secs(),
                token = sha256_hex(ADMIN_TOKEN),
            );
            if let Some(pg) = pg {
                text.push_str(&format!(
                    "stats:\n  enabled: true\n  backend: postgres\n  url: {}\n",
                    pg.url()
                ));
            }
            text.push_str(&extra(i));
            let config = dir.path().join(format!("i{i}.yaml"));
            std::fs::write(&config, text).unwrap();
            instances.push(Some(ProcessProxy::spawn(
                &config,
                port,
                &[("FLEXIPROXY_REASONING_KEY", "scale-test")],
            )));
            admin_ports.push(admin);
        }
        Cluster {
            dir,
            instances,
            admin_ports,
        }
    }

    pub(crate) fn url(&self, i: usize) -> String {
        self.instances[i].as_ref().unwrap().url("")
    }

    fn config(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("i{i}.yaml"))
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.instances[i].take() {
            p.child.kill().unwrap();
            p.child.wait().unwrap();
        }
    }

    async fn metrics(&self, i: usize) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.admin_ports[i]);
        client()
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn limited_adapter(base_url: &str, key: &str, limits: &str) -> String {
    let mut yaml = adapter_yaml(base_url, &[key], "");
    yaml.push_str("limits:\n");
    for line in limits.lines() {
        yaml.push_str(&format!("  {line}\n"));
    }
    yaml
}

pub(crate) async fn send(
    url: &str,
    key: &str,
    prompt: &str,
    max_tokens: u64,
) -> (u16, Option<String>, Value) {
    let resp = client()
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", key)
        .json(
            &json!({"model": "claude-sonnet-4-5", "max_tokens": max_tokens,
                      "messages": [{"role": "user", "content": prompt}]}),
        )
        .send()
        .await
        .unwrap();
    status_retry_body(resp).await
}

/// The most arrivals within any `span`: with every reply taking `span`, a lower bound on
/// the requests in flight at the provider at once.
fn max_overlap(arrivals: &[Instant], span: Duration) -> usize {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            sorted[..=i]
                .iter()
                .filter(|t| sorted[i].duration_since(**t) < span)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_share_exact_request_and_concurrency_limits() {
    let redis = RedisServer::start();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let reply_time = Duration::from_millis(400);
    let p = provider(reply_time, arrivals.clone()).await;
    const RPM: u64 = 50;
    const CONCURRENT: usize = 4;
    let mut cluster = Cluster::start(
        3,
        &redis,
        None,
        // Generous: under a 1,000-request burst on two cores Redis answers late, and this
        // test is about exactness, not about failing open.
        "5s",
        &|_| String::new(),
        &[
            (
                "rpm",
                limited_adapter(
                    &p.base_url(),
                    "fp-rpm-key",
                    &format!("requests_per_minute: {RPM}"),
                ),
            ),
            (
                "conc",
                limited_adapter(
                    &p.base_url(),
                    "fp-conc-key",
                    &format!("concurrent_requests: {CONCURRENT}"),
                ),
            ),
        ],
    );

    // 1,000 concurrent requests spread over the three instances admit exactly N.
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i)).collect();
    let burst = (0..1000).map(|i| {
        let url = urls[i % 3].clone();
        async move { send(&url, "fp-rpm-key", "hi", 16).await }
    });
    let results = futures::future::join_all(burst).await;
    let ok = results.iter().filter(|r| r.0 == 200).count() as u64;
    let limited: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(ok, RPM, "exactly the limit is admitted across instances");
    assert_eq!(
        limited.len() as u64,
        1000 - RPM,
        "{:?}",
        results.iter().find(|r| r.0 != 200 && r.0 != 429)
    );
    for i in 0..3 {
        let m = cluster.metrics(i).await;
        assert!(
            !m.contains("flexiproxy_limiter_backend_failures_total{"),
            "Redis failed during the burst:\n{m}"
        );
    }
    let retry: u64 = limited[0].1.as_deref().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(limited[0].2["error"]["type"], "rate_limit_error");

    // A concurrency limit of C never has more than C at the provider at once.
    arrivals.lock().unwrap().clear();
    let wave = (0..48).map(|i| {
        let url = urls[i % 3].clone();
        async move {
            // Each client retries until admitted, so the limit stays saturated.
            loop {
                let (status, _, _) = send(&url, "fp-conc-key", "hi", 16).await;
                if status == 200 {
                    return;
                }
                assert_eq!(status, 429);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    futures::future::join_all(wave).await;
    let seen = arrivals.lock().unwrap().clone();
    assert_eq!(seen.len(), 48);
    let overlap = max_overlap(&seen, reply_time);
    assert!(
        overlap <= CONCURRENT,
        "{overlap} in flight at once, limit {CONCURRENT}"
    );
    assert_eq!(
        overlap, CONCURRENT,
        "the limit was reached (otherwise the test shows nothing)"
    );

    // A killed instance's slots come back within the lease TTL. The wave's last slots may
    // still be on their way back (a client reads its answer before the proxy releases the
    // slot): a holder refused with 429 asks again.
    let holders = (0..CONCURRENT).map(|_| {
        let url = urls[0].clone();
        tokio::spawn(async move {
            loop {
                let answer = send(&url, "fp-conc-key", "hold", 16).await;
                if answer.0 != 429 {
                    return answer;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    });
    let holders: Vec<_> = holders.collect();
    wait_until(DEADLINE, "instance 0 holds every slot", || {
        p.requests()
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains("hold"))
            .count()
            == CONCURRENT
    });
    assert_eq!(
        send(&urls[1], "fp-conc-key", "hi", 16).await.0,
        429,
        "no slot left"
    );
    cluster.kill(0);
    let killed = Instant::now();
    wait_until_async(DEADLINE, "the dead instance's slots come back", || {
        let url = urls[1].clone();
        async move { send(&url, "fp-conc-key", "hi", 16).await.0 == 200 }
    })
    .await;
    // Only the leases' expiry gives the slots back (the dead instance never releases them):
    // within the 2 s TTL, plus 3 s for a loaded machine's polling — far below the 30 s
    // default TTL that would mean the configured one was not applied.
    let back = killed.elapsed();
    assert!(
        back < LEASE_TTL + Duration::from_secs(3),
        "slots came back after {back:?}"
    );
    for h in holders {
        h.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_budget_is_never_overshot_and_usage_from_every_instance_is_in_postgres() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let p = provider(Duration::from_millis(50), arrivals.clone()).await;
    const BUDGET: u64 = 6_000;
    let cluster = Cluster::start(
        3,
        &redis,
        Some(&pg),
        "5s",
        &|_| String::new(),
        &[(
            "budget",
            limited_adapter(
                &p.base_url(),
                "fp-budget-key",
                &format!("tokens_per_day: {BUDGET}"),
            ),
        )],
    );
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i)).collect();
    let spent = Arc::new(AtomicU64::new(0));
    let mut admitted = 0;
    let mut refused = 0;
    // Two waves of 200: the second spends what the first's settled reservations gave back.
    for _ in 0..2 {
        let wave = (0..200).map(|i| {
            let url = urls[i % 3].clone();
            let spent = spent.clone();
            async move {
                let r = send(&url, "fp-budget-key", "hi", 100).await;
                if r.0 == 200 {
                    let u = &r.2["usage"];
                    spent.fetch_add(
                        u["input_tokens"].as_u64().unwrap() + u["output_tokens"].as_u64().unwrap(),
                        Ordering::Relaxed,
                    );
                }
                r
            }
        });
        for (status, retry, body) in futures::future::join_all(wave).await {
            match status {
                200 => admitted += 1,
                429 => {
                    refused += 1;
                    assert_eq!(body["error"]["type"], "rate_limit_error");
                    assert!(
                        body["error"]["message"]
                            .as_str()
                            .unwrap()
                            .contains("token budget"),
                        "{body}"
                    );
                    let left: u64 = retry.unwrap().parse().unwrap();
                    assert!(
                        (1..=86_400).contains(&left),
                        "retry-after at the day's end: {left}"
                    );
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
    }
    let spent = spent.load(Ordering::Relaxed);
    assert!(spent <= BUDGET, "spent {spent} of a budget of {BUDGET}");
    assert!(refused > 0, "the budget was reached");
    // Each request costs 110; the reservation is larger, so the budget is not all usable,
    // but settling returns the difference: more than one wave's worth got through.
    assert!(
        spent > BUDGET / 2,
        "only {spent} of {BUDGET} used: settling gives nothing back?"
    );

    // Usage from all three instances is in PostgreSQL; the totals match what was sent.
    let stats = |by: &str| -> Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
            .args(["stats", "--json", "--by", by, "--config"])
            .arg(cluster.config(1))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // Refused requests are recorded too (as errors, with no tokens: nothing was spent).
    wait_until(DEADLINE, "every request is recorded", || {
        stats("adapter")["totals"][0]["requests"] == admitted + refused
    });
    assert_eq!(stats("adapter")["totals"][0]["errors"], refused);
    let by_instance = stats("instance");
    let groups: Vec<&str> = by_instance["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["i0", "i1", "i2"], "{by_instance}");
    let total = &stats("adapter")["totals"][0];
    assert_eq!(
        total["input_tokens"].as_u64().unwrap() + total["output_tokens"].as_u64().unwrap(),
        spent
    );
    assert_eq!(
        p.request_count(),
        admitted,
        "nothing refused reached the provider"
    );
    // /admin/stats of any instance reads the same database.
    let url = format!(
        "http://127.0.0.1:{}/admin/stats?since=1h&by=instance",
        cluster.admin_ports[2]
    );
    let admin: Value = client()
        .get(url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let requests: u64 = admin["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests as usize, admitted + refused, "{admin}");
    assert_eq!(admin["totals"].as_array().unwrap().len(), 3, "{admin}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_outage_fails_open_or_closed_within_the_bound_and_limits_resume() {
    let mut redis = RedisServer::start();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let p = provider(Duration::from_millis(10), arrivals).await;
    let cluster = Cluster::start(
        2,
        &redis,
        None,
        "200ms",
        &|i| {
            if i == 1 {
                "  on_failure: fail_closed\n".to_owned()
            } else {
                String::new()
            }
        },
        &[
            (
                "open",
                limited_adapter(&p.base_url(), "fp-open-key", "requests_per_minute: 1000"),
            ),
            (
                "few",
                limited_adapter(&p.base_url(), "fp-few-key", "requests_per_minute: 3"),
            ),
        ],
    );
    let (open, closed) = (cluster.url(0), cluster.url(1));
    assert_eq!(send(&open, "fp-open-key", "hi", 16).await.0, 200);
    assert_eq!(send(&closed, "fp-open-key", "hi", 16).await.0, 200);

    // A slow Redis (clients paused for 10 s) is waited on for at most the timeout (200 ms),
    // then fails open or closed; once it answers again, requests are counted again. The
    // bound below, 5 s, is wide for a loaded machine and still tells a request that waited
    // for the paused Redis.
    let mut busy = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    std::io::Write::write_all(&mut busy, b"CLIENT PAUSE 10000 ALL\r\n").unwrap();
    let mut reply = [0u8; 5];
    std::io::Read::read_exact(&mut busy, &mut reply).unwrap();
    assert_eq!(&reply, b"+OK\r\n", "Redis pauses its clients");
    wait_until(DEADLINE, "Redis is busy", || {
        let mut probe = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        std::io::Write::write_all(&mut probe, b"PING\r\n").unwrap();
        std::io::Read::read(&mut probe, &mut [0u8; 7]).is_err()
    });
    let started = Instant::now();
    let (status, _, _) = send(&open, "fp-open-key", "hi", 16).await;
    assert_eq!(status, 200);
    let (status, _, _) = send(&closed, "fp-open-key", "hi", 16).await;
    assert_eq!(status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?} on a busy Redis",
        started.elapsed()
    );
    wait_until_async(DEADLINE, "fail_closed admits once Redis answers", || {
        let url = closed.clone();
        async move { send(&url, "fp-open-key", "hi", 16).await.0 == 200 }
    })
    .await;
    assert_eq!(send(&open, "fp-open-key", "hi", 16).await.0, 200);
    wait_until_async(DEADLINE, "instance 0 sees Redis again", || async {
        cluster
            .metrics(0)
            .await
            .contains("flexiproxy_limiter_backend_up 1")
    })
    .await;

    redis.stop();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(
            send(&open, "fp-open-key", "hi", 16).await.0,
            200,
            "fail_open lets requests through"
        );
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "a request waited {took:?} for a dead Redis"
        );
        let started = Instant::now();
        let (status, retry, body) = send(&closed, "fp-open-key", "hi", 16).await;
        assert_eq!(status, 503, "fail_closed refuses: {body}");
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    let m0 = cluster.metrics(0).await;
    assert!(
        m0.contains("flexiproxy_limiter_backend_failures_total{outcome=\"open\"}"),
        "{m0}"
    );
    assert!(m0.contains("flexiproxy_limiter_backend_up 0"), "{m0}");
    assert!(
        cluster
            .metrics(1)
            .await
            .contains("flexiproxy_limiter_backend_failures_total{outcome=\"closed\"}")
    );
    let log = cluster.instances[0].as_ref().unwrap().log_text();
    assert_eq!(
        log.matches("Redis does not answer").count(),
        2,
        "logged once per transition (busy, then stopped):\n{log}"
    );

    // Redis back: limits apply again.
    redis.restart();
    wait_until_async(DEADLINE, "fail_closed admits again", || {
        let url = closed.clone();
        async move { send(&url, "fp-open-key", "hi", 16).await.0 == 200 }
    })
    .await;
    let statuses: Vec<u16> = futures::future::join_all((0..6).map(|i| {
        let url = if i % 2 == 0 {
            open.clone()
        } else {
            closed.clone()
        };
        async move { send(&url, "fp-few-key", "hi", 16).await.0 }
    }))
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    wait_until(DEADLINE, "the log says Redis is back", || {
        cluster.instances[0]
            .as_ref()
            .unwrap()
            .log_text()
            .contains("Redis answers again")
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_cooled_on_one_instance_is_skipped_by_the_others() {
    let mut redis = RedisServer::start();
    // Key A is rate-limited for 30 s, key B answers.
    let p = FakeProvider::start(|req| {
        if req.header("authorization") == Some("Bearer sk-pool-a") {
            Reply::json(
                429,
                openai::error_body("slow down", "rate_limit_error", None),
            )
            .header("retry-after", "30")
        } else {
            Reply::json(200, openai::chat_completion("ok"))
        }
    })
    .await;
    let yaml = format!(
        "source:\n  base_url: {}\n  api_keys: [sk-pool-a, sk-pool-b]\n  balance: round_robin\n  model: fake-model\nkeys:\n  - sha256: {}\n",
        p.base_url(),
        sha256_hex("fp-pool-key")
    );
    let cluster = Cluster::start(
        3,
        &redis,
        None,
        "500ms",
        &|_| String::new(),
        &[("pool", yaml)],
    );
    let on_a = || {
        p.requests()
            .iter()
            .filter(|r| r.header("authorization") == Some("Bearer sk-pool-a"))
            .count()
    };
    let ok = |url: String| async move { send(&url, "fp-pool-key", "hi", 16).await.0 == 200 };

    // Instance 1 meets A's 429 (the client never does: B answers), then passes A over.
    wait_until_async(DEADLINE, "instance 1 tried key A", || {
        let answered = ok(cluster.url(0));
        async { answered.await && on_a() > 0 }
    })
    .await;
    for _ in 0..4 {
        assert!(ok(cluster.url(0)).await);
    }
    assert_eq!(on_a(), 1, "instance 1 tried key A exactly once");

    // Instances 2 and 3 learn it through Redis without trying A themselves.
    let cooling =
        "flexiproxy_provider_key_health{adapter=\"pool\",key=\"0/0\",route=\"default\"} 0";
    for i in [1, 2] {
        wait_until_async(
            DEADLINE,
            "the other instances see key A cooling",
            || async { cluster.metrics(i).await.contains(cooling) },
        )
        .await;
    }
    let requests = (0..40).map(|i| ok(cluster.url(1 + i % 2)));
    let answered = futures::future::join_all(requests).await;
    assert!(answered.iter().all(|ok| *ok), "{answered:?}");
    assert_eq!(
        on_a(),
        1,
        "no other instance tried key A once it was shared"
    );

    // Redis gone: each instance keeps its own health, and requests do not wait for Redis.
    redis.stop();
    let second = cluster.url(1);
    wait_until_async(DEADLINE, "instance 2 notices Redis is gone", || async {
        cluster
            .metrics(1)
            .await
            .contains("flexiproxy_key_health_sync_up 0")
    })
    .await;
    for _ in 0..5 {
        let started = Instant::now();
        assert!(ok(second.clone()).await);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    assert_eq!(on_a(), 1, "key A is still cooling locally");
    let m = cluster.metrics(1).await;
    assert!(
        m.contains("flexiproxy_key_health_sync_failures_total"),
        "{m}"
    );
    redis.restart();
    wait_until(DEADLINE, "instance 2 shares again", || {
        cluster.instances[1]
            .as_ref()
            .unwrap()
            .log_text()
            .contains("Redis reachable again")
    });
    let log = cluster.instances[1].as_ref().unwrap().log_text();
    assert_eq!(
        log.matches("shared key health: Redis unreachable").count(),
        1,
        "logged once per transition:\n{log}"
    );
}

/// `n` instances writing usage to `pg` (local limits), started at the same instant: each
/// process is spawned by its own thread, released together by a barrier.
fn start_together(
    n: usize,
    pg: &PostgresServer,
    adapter: &str,
) -> (tempfile::TempDir, Vec<ProcessProxy>, Vec<u16>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("adapters")).unwrap();
    std::fs::write(dir.path().join("adapters/usage.yaml"), adapter).unwrap();
    let mut configs = Vec::new();
    let mut admin_ports = Vec::new();
    for i in 0..n {
        let (port, admin) = (free_port(), free_port());
        let text = format!(
            "listen: 127.0.0.1:{port}\nthreads: 1\ninstance: i{i}\nadapters_dir: adapters\n\
             admin:\n  listen: 127.0.0.1:{admin}\naccess_log:\n  enabled: false\n\
             pid_file: i{i}.pid\nupgrade_sock: i{i}.sock\n\
             stats:\n  enabled: true\n  backend: postgres\n  url: {}\n",
            pg.url()
        );
        let config = dir.path().join(format!("i{i}.yaml"));
        std::fs::write(&config, text).unwrap();
        configs.push((config, port));
        admin_ports.push(admin);
    }
    let barrier = std::sync::Barrier::new(n);
    let instances = std::thread::scope(|s| {
        let spawned: Vec<_> = configs
            .iter()
            .map(|(config, port)| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    ProcessProxy::spawn(config, *port, &[])
                })
            })
            .collect();
        spawned.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (dir, instances, admin_ports)
}

/// Established client connections to 127.0.0.1:`port` (from `/proc/net/tcp`).
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"01")
        })
        .count()
}

/// A counter or gauge of one instance's metrics.
async fn metric(admin: u16, name: &str) -> u64 {
    let text = client()
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Rows in the usage table per instance (`i0`, `i1`, …).
fn rows_per_instance(pg: &PostgresServer, n: usize) -> Vec<u64> {
    let out = pg.psql("SELECT instance, COUNT(*) FROM usage GROUP BY instance");
    let mut rows = vec![0; n];
    for line in out.lines() {
        let (instance, count) = line.split_once('|').unwrap();
        let i: usize = instance.strip_prefix('i').unwrap().parse().unwrap();
        rows[i] = count.parse().unwrap();
    }
    rows
}

/// Three instances started at the same instant against an empty database: the schema is
/// created at start — before any request — and each migration step is applied once (the
/// advisory lock; without it the three would each record version 1, or fail creating the
/// same table); every instance then writes its usage. So that the three migrations really
/// run at once (process start-up alone spreads them by tens of milliseconds), the database
/// is paused until all three writers have connected, then released; a few rounds, each on
/// an emptied database.
#[tokio::test(flavor = "multi_thread")]
async fn three_instances_starting_together_migrate_an_empty_database_once() {
    let pg = PostgresServer::start();
    let p = FakeProvider::start(|_| Reply::json(200, openai::chat_completion("ok"))).await;
    let adapter = adapter_yaml(&p.base_url(), &[KEY], "");
    for round in 0..3 {
        assert_eq!(
            pg.psql("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'"),
            "0",
            "round {round}: an empty database"
        );
        pg.pause();
        let (_dir, instances, admins) = start_together(3, &pg, &adapter);
        wait_until(
            DEADLINE,
            "the three writers wait on the paused database",
            || connections_to(pg.port) == 3,
        );
        pg.resume();
        wait_until(DEADLINE, "the schema exists before any request", || {
            pg.psql("SELECT to_regclass('public.usage') IS NOT NULL") == "t"
        });
        assert_eq!(p.request_count(), round, "round {round}");
        let proc = &instances[round % 3];
        assert_eq!(status_with(&proc.url(""), KEY).await, 200, "round {round}");
        // Every instance is connected (its writer migrated first) and its record written.
        let connected = || {
            pg.psql("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = 'flexiproxy' AND pid <> pg_backend_pid()")
        };
        wait_until(DEADLINE, "the three writers are connected", || {
            connected() == "3"
        });
        wait_until(DEADLINE, "the record is written", || {
            pg.psql("SELECT COUNT(*) FROM usage") == "1"
        });
        assert_eq!(
            pg.psql(
                "SELECT string_agg(version::text, ',' ORDER BY version) FROM flexiproxy_schema"
            ),
            (1..=flexiproxy::telemetry::usage_pg::SCHEMA_VERSION)
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(","),
            "round {round}: each migration step recorded once"
        );
        for (i, admin) in admins.iter().enumerate() {
            assert_eq!(metric(*admin, "flexiproxy_stats_dropped_total").await, 0);
            let log = instances[i].log_text();
            assert!(
                !log.contains("PostgreSQL unavailable") && !log.contains("migration"),
                "round {round}, instance {i}:\n{log}"
            );
        }
        drop(instances);
        wait_until(DEADLINE, "the writers are gone", || connected() == "0");
        pg.psql("DROP TABLE usage, audit, flexiproxy_schema");
    }
}

/// PostgreSQL killed and restarted while three instances serve a steady load: no request
/// fails or waits on it, every record is either in the database or counted in
/// `flexiproxy_stats_dropped_total` (nothing else is lost), each writer reconnects once
/// the database is back, and from then on the numbers are exact again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_killed_under_load_loses_only_counted_records_and_recovers() {
    let mut pg = PostgresServer::start();
    let p = FakeProvider::start(|_| {
        let mut answer = openai::chat_completion("ok");
        answer["usage"] = openai::usage(10, 5);
        Reply::json(200, answer)
    })
    .await;
    let adapter = adapter_yaml(&p.base_url(), &[KEY], "");
    let (_dir, instances, admins) = start_together(3, &pg, &adapter);
    let urls: Vec<String> = instances.iter().map(|i| i.url("")).collect();
    let served: Arc<Vec<AtomicU64>> = Arc::new((0..3).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..3)
        .map(|i| {
            let (url, served, stop) = (urls[i].clone(), served.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(status_with(&url, KEY).await, 200, "instance {i}");
                    served[i].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let sum = |name: &'static str| {
        let admins = admins.clone();
        async move {
            let mut total = Vec::new();
            for admin in admins {
                total.push(metric(admin, name).await);
            }
            total
        }
    };
    wait_until_async(DEADLINE, "every instance writes usage", || async {
        sum("flexiproxy_stats_written_total")
            .await
            .iter()
            .all(|w| *w > 0)
    })
    .await;
    tokio::task::block_in_place(|| pg.kill());
    wait_until_async(
        DEADLINE,
        "every instance drops records while it is down",
        || async {
            sum("flexiproxy_stats_dropped_total")
                .await
                .iter()
                .all(|d| *d > 0)
        },
    )
    .await;
    let written_during = sum("flexiproxy_stats_written_total").await;
    tokio::task::block_in_place(|| pg.restart());
    wait_until_async(DEADLINE, "every writer reconnects", || {
        let before = written_during.clone();
        let sum = &sum;
        async move {
            let now = sum("flexiproxy_stats_written_total").await;
            now.iter().zip(&before).all(|(n, b)| n > b)
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let served: Vec<u64> = served.iter().map(|s| s.load(Ordering::Relaxed)).collect();
    // Every record is accounted for: written or counted as dropped, per instance.
    wait_until_async(DEADLINE, "every record is written or counted", || {
        let served = served.clone();
        let sum = &sum;
        async move {
            let (w, d) = (
                sum("flexiproxy_stats_written_total").await,
                sum("flexiproxy_stats_dropped_total").await,
            );
            (0..3).all(|i| w[i] + d[i] == served[i])
        }
    })
    .await;
    let written = sum("flexiproxy_stats_written_total").await;
    let dropped = sum("flexiproxy_stats_dropped_total").await;
    assert_eq!(
        rows_per_instance(&pg, 3),
        written,
        "the database holds what was written"
    );
    assert!(
        (0..3).all(|i| dropped[i] < served[i]),
        "served {served:?}, dropped {dropped:?}"
    );
    for (i, proc) in instances.iter().enumerate() {
        let log = proc.log_text();
        assert!(log.contains("records dropped"), "instance {i}:\n{log}");
    }
    // Back to exact: ten more requests per instance, ten more rows each, nothing dropped.
    for url in &urls {
        for _ in 0..10 {
            assert_eq!(status_with(url, KEY).await, 200);
        }
    }
    let expected: Vec<u64> = written.iter().map(|w| w + 10).collect();
    wait_until(DEADLINE, "the new records are in the database", || {
        rows_per_instance(&pg, 3) == expected
    });
    assert_eq!(sum("flexiproxy_stats_written_total").await, expected);
    assert_eq!(sum("flexiproxy_stats_dropped_total").await, dropped);
    let tokens = pg.psql("SELECT SUM(input_tokens), SUM(output_tokens) FROM usage");
    let rows: u64 = expected.iter().sum();
    assert_eq!(tokens, format!("{}|{}", rows * 10, rows * 5));
}
