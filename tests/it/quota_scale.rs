//! Per-user quotas across three `flexiproxy serve` instances sharing a real Redis (issue #27):
//! 1,000 concurrent requests over every instance never exceed a user's `requests_per_day`
//! (exactly that many are served), and the
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

    // Alice (the default quota): 1,000 over three instances, exactly her day's 100.
    let results = wave(&urls, ALICE_KEY, 1_000).await;
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
