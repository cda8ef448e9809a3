//! The panel's usage page and its CSV export over real HTTP: totals across a user's adapters
//! equal to what the provider reported, per model and per key, a deleted adapter's history
//! kept for its owner under "deleted", the latest requests with their failure explained in
//! the user's language, nobody seeing another user's traffic, each request's cost from the
//! configured prices (unknown for a model without one) — and the same scoped queries against
//! a real PostgreSQL.

use crate::harness::*;
use crate::management::*;
use flexiproxy::config::server::StatsConfig;
use flexiproxy::telemetry::metrics::Metrics;
use flexiproxy::telemetry::usage::{UsageRecord, UsageSink};
use flexiproxy::telemetry::usage_view::{self, UsageScope};
use flexiproxy_testkit::services::PostgresServer;
use flexiproxy_testkit::{FakeProvider, Reply};
use reqwest::Method;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the fake provider reports per answer: prompt tokens (of which cached) and output.
const PROMPT: u64 = 40;
const CACHED: u64 = 10;
const OUTPUT: u64 = 7;

/// Answers with fixed usage; a conversation saying "fail" gets a 500.
async fn counting_provider() -> FakeProvider {
    FakeProvider::start(|req| {
        if req.body_text().contains("fail") {
            return Reply::json(500, json!({"error": {"message": "upstream broke"}}));
        }
        Reply::json(
            200,
            json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "fake-model",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": PROMPT, "completion_tokens": OUTPUT,
                             "total_tokens": PROMPT + OUTPUT,
                             "prompt_tokens_details": {"cached_tokens": CACHED}}}),
        )
    })
    .await
}

async fn ask(proxy: &Proxy, key: &str, text: &str) -> u16 {
    client()
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", key)
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 16,
                      "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Creates adapter `name` as the session's user; its client key.
async fn create_as(proxy: &Proxy, session: &(String, String), name: &str, url: &str) -> String {
    let auth = Auth::Session(session.0.clone(), Some(session.1.clone()));
    let (status, body) = call(
        proxy,
        Method::POST,
        "/admin/api/adapters",
        Some(json!({"name": name, "label": format!("{name}-laptop"),
                    "source": {"base_url": url, "api_key": CANARY_PROVIDER_KEY,
                               "model": format!("{name}-model")}})),
        &auth,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["api_key"].as_str().unwrap().to_owned()
}

async fn get(proxy: &Proxy, cookie: &str, path: &str, lang: &str) -> reqwest::Response {
    client()
        .get(proxy.admin_url(path))
        .header("cookie", format!("fp_session={cookie}; lang={lang}"))
        .send()
        .await
        .unwrap()
}

/// The text of the element with `id` (its first text, the page being server-rendered).
fn by_id<'p>(page: &'p str, id: &str) -> &'p str {
    let at = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let rest = &page[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap() + start;
    rest[start..end].trim()
}

/// The usage page once its totals show `requests` (records are written in the background).
async fn page_with(proxy: &Proxy, cookie: &str, requests: u64, lang: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let page = get(proxy, cookie, "/usage?since=24h", lang)
            .await
            .text()
            .await
            .unwrap();
        if page.contains("id=\"total-requests\"")
            && by_id(&page, "total-requests") == requests.to_string()
        {
            assert!(!page.contains(CANARY_PROVIDER_KEY));
            return page;
        }
        assert!(Instant::now() < deadline, "totals never reached {requests}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_totals_match_the_provider_and_stay_with_their_owner() {
    let p = counting_provider().await;
    // Per million tokens: a request's 30 fresh, 10 cached and 7 output tokens cost 0.135.
    let proxy = start(
        "stats:\n  enabled: true\nprivate_sources_allowed: [\"127.0.0.1\"]\n\
         prices:\n  - { model: kept-model, input: 2000, cache_read: 500, output: 10000 }\n",
    );
    let url = p.base_url();
    let alice = login(&proxy, "alice", "alice-password").await;
    let bob = login(&proxy, "bob", "bob-password").await;
    let carol = login(&proxy, "carol", "carol-password").await;
    let kept = create_as(&proxy, &alice, "kept", &url).await;
    let gone = create_as(&proxy, &alice, "gone", &url).await;
    let bobs = create_as(&proxy, &bob, "bobs", &url).await;
    for _ in 0..3 {
        assert_eq!(ask(&proxy, &kept, "hello").await, 200);
    }
    assert_eq!(ask(&proxy, &gone, "hello").await, 200);
    assert_eq!(ask(&proxy, &gone, "please fail").await, 500);
    assert_eq!(ask(&proxy, &bobs, "hello").await, 200);
    // Refused by the gateway itself: a key that is not one (not counted: no adapter).
    assert_eq!(ask(&proxy, "fp-not-a-key", "hello").await, 401);

    // Alice: five requests, one failed; the provider's counts, split into fresh and cached.
    let page = page_with(&proxy, &alice.0, 5, "en").await;
    assert_eq!(by_id(&page, "total-errors"), "1");
    let fresh: u64 = by_id(&page, "total-input").parse().unwrap();
    let cached: u64 = by_id(&page, "total-cached").parse().unwrap();
    assert_eq!(
        fresh + cached,
        4 * PROMPT,
        "input as the provider counted it"
    );
    assert_eq!(cached, 4 * CACHED);
    assert_eq!(by_id(&page, "total-output"), (4 * OUTPUT).to_string());
    for model in ["kept-model", "gone-model"] {
        assert!(page.contains(&format!(">{model}<")), "per model: {model}");
    }
    assert!(page.contains(">kept-laptop<") && page.contains(">gone-laptop<"));
    assert!(!page.contains("bobs"), "alice sees bob's adapter");
    // The recent table: five lines, the failure explained.
    let recent = &page[page.find("id=\"usage-recent\"").unwrap()..];
    assert_eq!(recent.matches("<tr").count() - 1, 5, "header + 5 lines");
    assert!(recent.contains("The provider answered with an error."));
    assert!(recent.contains("claude-sonnet-4-5 → gone-model"));
    // Cost: kept's three at 0.135; gone's model has no price, so the total says so.
    assert_eq!(by_id(&page, "total-cost"), "0.4050 + ?");
    assert!(recent.contains(">0.135000<") && recent.contains(">unknown<"));
    let logged = proxy.access_log();
    let costs: Vec<f64> = logged
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["adapter"] == "kept")
        .map(|r| r["cost"].as_f64().expect("a cost in the access log"))
        .collect();
    assert_eq!(costs.len(), 3);
    assert!(costs.iter().all(|c| (c - 0.135).abs() < 1e-9), "{costs:?}");
    let (status, stats) = call(
        &proxy,
        Method::GET,
        "/admin/stats?by=model&since=1h",
        None,
        &Auth::Token(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["currency"], "USD");
    for row in stats["totals"].as_array().unwrap() {
        match row["group"].as_str().unwrap() {
            "claude-sonnet-4-5 -> kept-model" => {
                assert!(
                    (row["cost"].as_f64().unwrap() - 0.405).abs() < 1e-9,
                    "{row}"
                );
                assert_eq!(row["unpriced"], 0);
            }
            _ => assert!(
                row["cost"].is_null() && row["unpriced"].as_u64() > Some(0),
                "{row}"
            ),
        }
    }

    // Deleted: its history stays, under "deleted", in both languages.
    let auth = Auth::Session(alice.0.clone(), Some(alice.1.clone()));
    let (status, _) = call(
        &proxy,
        Method::DELETE,
        "/admin/api/adapters/gone",
        None,
        &auth,
    )
    .await;
    assert_eq!(status, 204);
    let page = page_with(&proxy, &alice.0, 5, "en").await;
    let deleted = &page[page
        .find("id=\"usage-deleted\"")
        .expect("a deleted section")..];
    assert!(deleted.contains("id=\"usage-gone\"") && !deleted.contains("id=\"usage-kept\""));
    let zh = page_with(&proxy, &alice.0, 5, "zh").await;
    assert!(zh.contains("已删除的适配器") && zh.contains("供应商返回了错误。"));

    // The CSV: the same numbers, the deleted adapter marked.
    let resp = get(&proxy, &alice.0, "/usage.csv?since=7d", "en").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let text = resp.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (mut requests, mut gone_rows, mut cost) = (0, 0, 0.0);
    for record in reader.records() {
        let record = record.unwrap();
        requests += record[col("requests")].parse::<u64>().unwrap();
        if &record[col("adapter")] == "gone" {
            assert_eq!(&record[col("deleted")], "true");
            assert_eq!(&record[col("cost")], "", "unknown, not 0");
            gone_rows += 1;
        } else {
            cost += record[col("cost")].parse::<f64>().unwrap();
        }
    }
    assert!((cost - 0.405).abs() < 1e-6, "{cost}");
    assert_eq!((requests, gone_rows > 0), (5, true));
    assert!(!text.contains("bobs"));

    // Bob sees his one request only; the admin sees all six.
    let page = page_with(&proxy, &bob.0, 1, "en").await;
    assert!(!page.contains("kept") && !page.contains("gone"));
    page_with(&proxy, &carol.0, 6, "en").await;
}

/// A record `age_ms` old.
fn record(adapter: &str, owner: &str, age_ms: i64) -> UsageRecord {
    UsageRecord {
        time_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            - age_ms,
        adapter: adapter.into(),
        key_label: "k".into(),
        client_model: "c".into(),
        source_model: "m".into(),
        status: 200,
        input_tokens: 3,
        output_tokens: 1,
        cache_read_tokens: 0,
        estimated: false,
        duration_ms: 5,
        ttfb_ms: None,
        stream: false,
        web_searches: 0,
        owner: owner.into(),
        error: String::new(),
        cache_write_tokens: 0,
        cost: Some(0.25),
    }
}

/// The page's scoped queries on PostgreSQL: each user's own rows, an admin everyone's.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_usage_is_scoped_like_sqlite() {
    let pg = PostgresServer::start();
    let config = StatsConfig {
        postgres_url: Some(pg.url()),
        path: "unused.db".into(),
        retention: Duration::from_secs(3600),
        queue: 100,
    };
    let metrics = Arc::new(Metrics::new());
    let sink = UsageSink::start(&config, metrics.clone(), "pg-test").unwrap();
    sink.record(record("a", "alice", 3000));
    sink.record(record("gone", "alice", 2000));
    sink.record(record("b", "bob", 1000));
    let deadline = Instant::now() + DEADLINE;
    while metrics.stats_written.get() < 3 {
        assert!(Instant::now() < deadline, "records not written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alice = UsageScope {
        owner: Some("alice".into()),
        adapters: vec!["a".into()],
    };
    let rows = usage_view::buckets(
        &config,
        Duration::from_secs(600),
        Duration::from_secs(86_400),
        &alice,
    )
    .await
    .unwrap();
    let mut names: Vec<&str> = rows.iter().map(|r| r.adapter.as_str()).collect();
    names.sort();
    assert_eq!(names, ["a", "gone"]);
    assert_eq!(rows.iter().map(|r| r.input_tokens).sum::<u64>(), 6);
    assert_eq!(rows.iter().map(|r| r.cost).sum::<f64>(), 0.5);
    let latest = usage_view::recent(&config, 1, &alice).await.unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].adapter, "gone");
    let all = usage_view::recent(&config, 10, &UsageScope::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
}
