//! What the panel's usage page reads from the usage store: usage in time buckets per adapter,
//! owner, key and model, and the most recent requests — limited in the query to what one
//! user may see, so a deleted adapter's history stays its owner's and a `LIMIT` counts only
//! their rows. SQLite here; PostgreSQL in `usage_pg`, whichever the server writes to.

use super::usage::open_reader;
use crate::config::server::StatsConfig;
use rusqlite::params;
use serde::Serialize;
use std::time::Duration;

/// Whose records a query returns.
#[derive(Debug, Clone, Default)]
pub struct UsageScope {
    /// `None`: everyone's (an admin). Otherwise records this user owned when they were
    /// written, and records without an owner (written before records named one) of
    /// `adapters`.
    pub owner: Option<String>,
    pub adapters: Vec<String>,
}

impl UsageScope {
    /// The SQLite queries' parameters: the owner (NULL: everyone) and the adapters as a
    /// JSON array.
    fn params(&self) -> (Option<&str>, String) {
        let adapters = serde_json::to_string(&self.adapters).unwrap_or_else(|_| "[]".into());
        (self.owner.as_deref(), adapters)
    }
}

/// One time bucket of one adapter key's usage of one provider model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    /// Start of the bucket, milliseconds since the Unix epoch.
    pub bucket_start_ms: i64,
    pub adapter: String,
    pub owner: String,
    pub key_label: String,
    /// The provider's model (what a route or model map chose).
    pub model: String,
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub duration_ms_sum: u64,
    /// The priced requests' costs, in the server's currency.
    pub cost: f64,
    /// Requests whose cost is unknown.
    pub unpriced: u64,
}

/// One recent request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecentRequest {
    pub time_ms: i64,
    pub adapter: String,
    pub owner: String,
    pub key_label: String,
    pub client_model: String,
    pub source_model: String,
    pub status: u16,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub duration_ms: u64,
    pub stream: bool,
    /// [`super::usage::error_code`]; empty when the request did not fail.
    pub error: String,
    /// `None`: unknown.
    pub cost: Option<f64>,
}

/// The scope filter for either store: `owner` is the owner parameter (NULL: everyone),
/// `adapter_in` the store's test that `adapter` is one of the listed ones.
pub(super) fn scope_sql(owner: &str, adapter_in: &str) -> String {
    format!("({owner} IS NULL OR owner = {owner} OR (owner = '' AND {adapter_in}))")
}

fn sqlite_series(
    path: &std::path::Path,
    since: Duration,
    bucket: Duration,
    scope: &UsageScope,
) -> Result<Vec<UsageRow>, String> {
    let conn = open_reader(path)?;
    let cutoff = super::usage::now_ms() - since.as_millis() as i64;
    let width = (bucket.as_millis() as i64).max(1);
    let (owner, adapters) = scope.params();
    let sql = format!(
        "SELECT (time_ms / ?2) * ?2 AS b, adapter, owner, key_label, source_model, COUNT(*),
                SUM(status >= 400), SUM(input_tokens), SUM(output_tokens),
                SUM(cache_read_tokens), SUM(duration_ms), SUM(cost), SUM(cost IS NULL)
         FROM usage WHERE time_ms >= ?1 AND {scope}
         GROUP BY b, adapter, owner, key_label, source_model ORDER BY b",
        scope = scope_sql("?3", "adapter IN (SELECT value FROM json_each(?4))")
    );
    let mut stmt = conn.prepare(&sql).map_err(|e| e.to_string())?;
    let count = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
    let rows = stmt
        .query_map(params![cutoff, width, owner, adapters], |row| {
            Ok(UsageRow {
                bucket_start_ms: row.get(0)?,
                adapter: row.get(1)?,
                owner: row.get(2)?,
                key_label: row.get(3)?,
                model: row.get(4)?,
                requests: count(row.get(5)?),
                errors: count(row.get(6)?),
                input_tokens: count(row.get(7)?),
                output_tokens: count(row.get(8)?),
                cache_read_tokens: count(row.get(9)?),
                duration_ms_sum: count(row.get(10)?),
                cost: row.get::<_, Option<f64>>(11)?.unwrap_or(0.0),
                unpriced: count(row.get(12)?),
            })
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

fn sqlite_recent(
    path: &std::path::Path,
    limit: usize,
    scope: &UsageScope,
) -> Result<Vec<RecentRequest>, String> {
    let conn = open_reader(path)?;
    let (owner, adapters) = scope.params();
    let sql = format!(
        "SELECT time_ms, adapter, owner, key_label, client_model, source_model, status,
                input_tokens, output_tokens, cache_read_tokens, duration_ms, stream, error, cost
         FROM usage WHERE {scope} ORDER BY time_ms DESC LIMIT ?3",
        scope = scope_sql("?1", "adapter IN (SELECT value FROM json_each(?2))")
    );
    let mut stmt = conn.prepare(&sql).map_err(|e| e.to_string())?;
    let count = |v: i64| v.max(0) as u64;
    let rows = stmt
        .query_map(params![owner, adapters, limit as i64], |row| {
            Ok(RecentRequest {
                time_ms: row.get(0)?,
                adapter: row.get(1)?,
                owner: row.get(2)?,
                key_label: row.get(3)?,
                client_model: row.get(4)?,
                source_model: row.get(5)?,
                status: row.get::<_, i64>(6)?.clamp(0, 999) as u16,
                input_tokens: count(row.get(7)?),
                output_tokens: count(row.get(8)?),
                cache_read_tokens: count(row.get(9)?),
                duration_ms: count(row.get(10)?),
                stream: row.get(11)?,
                error: row.get(12)?,
                cost: row.get(13)?,
            })
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// Usage since `since` ago in `bucket`-wide buckets, oldest first, within `scope`.
pub async fn buckets(
    config: &StatsConfig,
    since: Duration,
    bucket: Duration,
    scope: &UsageScope,
) -> Result<Vec<UsageRow>, String> {
    match &config.postgres_url {
        Some(url) => super::usage_pg::series(url, since, bucket, scope).await,
        None => {
            let (path, scope) = (config.path.clone(), scope.clone());
            tokio::task::spawn_blocking(move || sqlite_series(&path, since, bucket, &scope))
                .await
                .map_err(|e| e.to_string())?
        }
    }
}

/// The latest `limit` requests within `scope`, newest first.
pub async fn recent(
    config: &StatsConfig,
    limit: usize,
    scope: &UsageScope,
) -> Result<Vec<RecentRequest>, String> {
    match &config.postgres_url {
        Some(url) => super::usage_pg::recent(url, limit, scope).await,
        None => {
            let (path, scope) = (config.path.clone(), scope.clone());
            tokio::task::spawn_blocking(move || sqlite_recent(&path, limit, &scope))
                .await
                .map_err(|e| e.to_string())?
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::Metrics;
    use crate::telemetry::usage::{UsageRecord, UsageSink, now_ms};
    use std::sync::Arc;
    use std::time::Instant;

    fn record(adapter: &str, owner: &str, status: u16, error: &str, at: i64) -> UsageRecord {
        UsageRecord {
            time_ms: at,
            adapter: adapter.into(),
            key_label: "laptop".into(),
            client_model: "claude-x".into(),
            source_model: "m".into(),
            status,
            input_tokens: 10,
            output_tokens: 2,
            cache_read_tokens: 0,
            estimated: false,
            duration_ms: 30,
            ttfb_ms: None,
            stream: false,
            web_searches: 0,
            owner: owner.into(),
            error: error.into(),
            cache_write_tokens: 0,
            cost: None,
        }
    }

    /// A database written before records named their owner, then records of alice, bob and
    /// the old unowned ones: each scope sees exactly its own.
    #[tokio::test]
    async fn scopes_see_their_own_records_and_old_unowned_ones_of_their_adapters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE usage (time_ms INTEGER NOT NULL, adapter TEXT NOT NULL,
             key_label TEXT NOT NULL, client_model TEXT NOT NULL, source_model TEXT NOT NULL,
             status INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
             cache_read_tokens INTEGER NOT NULL, estimated INTEGER NOT NULL,
             duration_ms INTEGER NOT NULL, ttfb_ms INTEGER, stream INTEGER NOT NULL);",
        )
        .unwrap();
        let now = now_ms();
        old.execute(
            "INSERT INTO usage VALUES (?1, 'old', 'k', 'c', 'm', 200, 1, 1, 0, 0, 5, NULL, 0)",
            [now - 1000],
        )
        .unwrap();
        drop(old);
        let config = StatsConfig {
            postgres_url: None,
            path: path.clone(),
            retention: Duration::from_secs(3600),
            queue: 100,
        };
        let metrics = Arc::new(Metrics::new());
        let sink = UsageSink::start(&config, metrics.clone(), "test").unwrap();
        sink.record(record("a", "alice", 200, "", now - 500));
        sink.record(record("gone", "alice", 502, "connect", now - 400));
        sink.record(record("b", "bob", 200, "", now - 300));
        let deadline = Instant::now() + Duration::from_secs(5);
        while metrics.stats_written.get() < 3 {
            assert!(Instant::now() < deadline, "records not written");
            std::thread::sleep(Duration::from_millis(10));
        }
        let alice = UsageScope {
            owner: Some("alice".into()),
            adapters: vec!["a".into(), "old".into()],
        };
        let rows = buckets(
            &config,
            Duration::from_secs(60),
            Duration::from_secs(3600),
            &alice,
        )
        .await
        .unwrap();
        let mut names: Vec<&str> = rows.iter().map(|r| r.adapter.as_str()).collect();
        names.sort();
        assert_eq!(names, ["a", "gone", "old"]);
        let latest = recent(&config, 2, &alice).await.unwrap();
        assert_eq!(latest.len(), 2);
        assert_eq!(
            (
                latest[0].adapter.as_str(),
                latest[0].status,
                latest[0].error.as_str()
            ),
            ("gone", 502, "connect")
        );
        assert_eq!(latest[1].adapter, "a");
        // Bob's scope: his record only, though "old" is unowned (not his adapter).
        let bob = UsageScope {
            owner: Some("bob".into()),
            adapters: vec!["b".into()],
        };
        let rows = recent(&config, 100, &bob).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].adapter, "b");
        // An admin: all four.
        let all = recent(&config, 100, &UsageScope::default()).await.unwrap();
        assert_eq!(all.len(), 4);
    }
}
