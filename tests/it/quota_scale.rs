//! Per-user quotas across three `flexiproxy serve` instances sharing a real Redis (issue #27):
//! 1,000 requests sent at once over every instance (all connections open first, then every
//! request written together) never exceed a user's `requests_per_day` (exactly that many are
//! served), and the
//! tokens and cost quotas are never overshot in two waves (the second spends what the
//! first's settled reservations gave back), as the token budget tests in `scale` do.

use crate::harness::*;
use crate::scale::{Cluster, provider, send};
use flexiproxy::config::accounts::QuotaFile;
use flexiproxy::config::users;
use flexiproxy_testkit::services::RedisServer;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ALICE_KEY: &str = "fp-quota-scale-alice";
const BOB_KEY: &str = "fp-quota-scale-bob";
const CAROL_KEY: &str = "fp-quota-scale-carol";
const REQUESTS_PER_DAY: usize = 100;
/// Requests the client keeps in flight at once: bounded so a loaded two-core machine's
/// sockets and the fake provider keep up, enough that every instance is asked at once.
const IN_FLIGHT: usize = 200;
const TOKENS_PER_MONTH: u64 = 6_000;
/// In USD; each request below costs 110 tokens × 1000 per million = 0.11.
const COST_PER_MONTH: f64 = 3.0;

/// Sends `n` requests with `key` spread over the instances, all at once: every connection is
/// open before any request is written, then a barrier lets them all go. Plain HTTP/1.1 with
/// `connection: close` (each answer ends with its connection): (status, retry-after, body).
async fn all_at_once(
    urls: &[String],
    key: &str,
    n: usize,
) -> Vec<(u16, Option<String>, serde_json::Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let mut connections = Vec::with_capacity(n);
    for i in 0..n {
        let address = urls[i % urls.len()]
            .trim_start_matches("http://")
            .to_owned();
        let request = format!(
            "POST /v1/messages HTTP/1.1\r\nhost: {address}\r\nx-api-key: {key}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        connections.push((stream, request));
    }
    let go = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|(mut stream, request)| {
            let go = go.clone();
            tokio::spawn(async move {
                go.wait().await;
                stream.write_all(request.as_bytes()).await.unwrap();
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).await.unwrap();
                let text = String::from_utf8_lossy(&answer).into_owned();
                let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
                let head = head.to_ascii_lowercase();
                assert!(!head.contains("transfer-encoding: chunked"), "{head}");
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                let retry = head
                    .lines()
                    .find_map(|l| l.strip_prefix("retry-after: "))
                    .map(str::to_owned);
                let body = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
                (status, retry, body)
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

/// Sends `n` requests of `max_tokens` with `key`, spread over the instances, [`IN_FLIGHT`]
/// at a time.
async fn wave(
    urls: &[String],
    key: &str,
    n: usize,
) -> Vec<(u16, Option<String>, serde_json::Value)> {
    use futures::StreamExt;
    futures::stream::iter((0..n).map(|i| send(&urls[i % urls.len()], key, "hi", 100)))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

fn tokens_of(body: &serde_json::Value) -> u64 {
    body["usage"]["input_tokens"].as_u64().unwrap()
        + body["usage"]["output_tokens"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn quotas_hold_across_three_instances_on_redis() {
    let redis = RedisServer::start();
    let p = provider(Duration::from_millis(50), Arc::new(Mutex::new(Vec::new()))).await;
    let accounts = tempfile::tempdir().unwrap();
    let users_file = accounts.path().join("users.yaml");
    for name in ["alice", "bob", "carol"] {
        users::add(&users_file, name, "quota-scale-password", false, None).unwrap();
    }
    let own = |q: QuotaFile| move |u: &mut users::User| u.quota = Some(q);
    users::edit(
        &users_file,
        "bob",
        own(QuotaFile {
            tokens_per_month: Some(TOKENS_PER_MONTH),
            ..QuotaFile::default()
        }),
    )
    .unwrap();
    users::edit(
        &users_file,
        "carol",
        own(QuotaFile {
            cost_per_month: Some(COST_PER_MONTH),
            ..QuotaFile::default()
        }),
    )
    .unwrap();
    let adapter = |owner: &str, key: &str| {
        format!(
            "owner: {owner}\n{}",
            adapter_yaml(&p.base_url(), &[key], "")
        )
    };
    let extra = format!(
        "users_file: {}\nprivate_sources_allowed: [\"127.0.0.1\"]\n\
         accounts:\n  default_quota: {{ requests_per_day: {REQUESTS_PER_DAY} }}\n\
         prices:\n  - {{ model: fake-model, input: 1000, output: 1000 }}\n",
        users_file.display()
    );
    let cluster = Cluster::start(
        3,
        &redis,
        None,
        "5s",
        &|_| extra.clone(),
        &[
            ("alice", adapter("alice", ALICE_KEY)),
            ("bob", adapter("bob", BOB_KEY)),
            ("carol", adapter("carol", CAROL_KEY)),
        ],
    );
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i)).collect();

    // Alice (the default quota): 1,000 at once over three instances, exactly her day's 100.
    let results = all_at_once(&urls, ALICE_KEY, 1_000).await;
    assert_eq!(results.len(), 1_000);
    let admitted = results.iter().filter(|r| r.0 == 200).count();
    for (status, retry, body) in &results {
        match status {
            200 => {}
            429 => {
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains("100 requests per day"), "{body}");
                assert!(retry.is_some(), "retry-after");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(admitted, REQUESTS_PER_DAY, "exactly the day's requests");
    assert_eq!(
        p.request_count(),
        REQUESTS_PER_DAY,
        "the rest never went upstream"
    );

    // Bob's tokens and carol's cost: two waves each, never overshot.
    for (key, n, what) in [
        (BOB_KEY, 150, "tokens per month"),
        (CAROL_KEY, 60, "USD per month"),
    ] {
        let mut spent = 0;
        let mut refused = 0;
        for _ in 0..2 {
            for (status, _, body) in wave(&urls, key, n).await {
                match status {
                    200 => spent += tokens_of(&body),
                    429 => {
                        refused += 1;
                        let message = body["error"]["message"].as_str().unwrap_or_default();
                        assert!(message.contains(what), "{body}");
                    }
                    other => panic!("unexpected {other}: {body}"),
                }
            }
        }
        assert!(refused > 0, "{what}: the quota was reached");
        let (limit, used) = if key == BOB_KEY {
            (TOKENS_PER_MONTH as f64, spent as f64)
        } else {
            // 1000 per million tokens, in USD.
            (COST_PER_MONTH, spent as f64 * 1000.0 / 1e6)
        };
        assert!(used <= limit + 1e-9, "{what}: used {used} of {limit}");
        assert!(
            used > limit / 2.0,
            "{what}: only {used} of {limit}: nothing given back?"
        );
    }
}
