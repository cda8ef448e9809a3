//! Optional usage statistics (off by default): one record per request in an embedded SQLite
//! database, written by a background thread in batches. The request path only offers a
//! record to a bounded queue and never waits; when the queue is full the record is dropped,
//! counted and logged — statistics never slow the proxy down.

use super::metrics::Metrics;
use crate::config::server::StatsConfig;
use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime};

/// One request's usage.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    pub adapter: String,
    pub key_label: String,
    pub client_model: String,
    pub source_model: String,
    pub status: u16,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    /// Token counts are our own estimate (the provider reported none).
    pub estimated: bool,
    pub duration_ms: u64,
    pub ttfb_ms: Option<u64>,
    pub stream: bool,
    /// Searches the gateway ran for the request (docs/web-search.md).
    pub web_searches: u32,
    /// The adapter's owner when the request was served, so its history stays theirs after
    /// the adapter is deleted; empty for adapters without one.
    pub owner: String,
    /// Why the request failed, as a fixed code ([`error_code`]); empty when it did not.
    pub error: String,
    pub cache_write_tokens: u64,
    /// In the server's `currency`; `None` when the model has no price (unknown, never 0).
    pub cost: Option<f64>,
}

/// A failed request's cause as the usage page explains it: the proxy's failure kind
/// (`connect`, `timeout`, `tls`, `reset`, `protocol`, `stream_error`, `shutdown`), else
/// `provider` when the provider answered with an error status, `gateway` when FlexiProxy
/// refused the request itself (a limit, a budget, a malformed request). Never a provider's
/// text, so it holds no secret.
pub fn error_code(
    status: u16,
    kind: Option<&'static str>,
    upstream_status: Option<u16>,
) -> &'static str {
    match kind {
        Some(k) if !k.starts_with("status_") => k,
        _ if status < 400 => "",
        _ if upstream_status.is_some_and(|s| s >= 400) => "provider",
        _ if upstream_status.is_none() => "gateway",
        _ => "protocol",
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage (
    time_ms INTEGER NOT NULL,
    adapter TEXT NOT NULL,
    key_label TEXT NOT NULL,
    client_model TEXT NOT NULL,
    source_model TEXT NOT NULL,
    status INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    estimated INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    ttfb_ms INTEGER,
    stream INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_time ON usage (time_ms);
";

/// Databases made before records named their instance get the column.
const ADD_INSTANCE: &str = "ALTER TABLE usage ADD COLUMN instance TEXT NOT NULL DEFAULT ''";
/// Databases made before the gateway searched get the column.
const ADD_WEB_SEARCHES: &str =
    "ALTER TABLE usage ADD COLUMN web_searches INTEGER NOT NULL DEFAULT 0";
/// Databases made before requests had a cost.
const ADD_COST: &str = "ALTER TABLE usage ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage ADD COLUMN cost REAL;";
/// Databases made before the usage page kept deleted adapters' history and errors.
const ADD_OWNER_AND_ERROR: &str = "ALTER TABLE usage ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    ALTER TABLE usage ADD COLUMN error TEXT NOT NULL DEFAULT '';
    CREATE INDEX IF NOT EXISTS usage_owner_time ON usage (owner, time_ms);";

/// The most records written in one transaction.
const BATCH: usize = 500;
/// How long the writer waits to fill a batch.
const BATCH_WAIT: Duration = Duration::from_millis(50);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The request side: offers records to the writer.
#[derive(Clone)]
pub struct UsageSink {
    tx: SyncSender<UsageRecord>,
    metrics: Arc<Metrics>,
}

/// The instance name this process writes into its records.
static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

impl UsageSink {
    /// Opens (creating if needed) the database and starts the writer thread.
    pub fn start(
        config: &StatsConfig,
        metrics: Arc<Metrics>,
        instance: &str,
    ) -> Result<UsageSink, String> {
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue);
        let retention = config.retention;
        let thread_metrics = metrics.clone();
        let instance = instance.to_owned();
        let builder = std::thread::Builder::new().name("flexiproxy-stats".into());
        let spawned = if let Some(url) = &config.postgres_url {
            let url = url.clone();
            builder.spawn(move || {
                super::usage_pg::writer_loop(
                    url,
                    instance,
                    rx,
                    retention,
                    thread_metrics,
                    BATCH,
                    BATCH_WAIT,
                )
            })
        } else {
            if let Some(dir) = config.path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("stats: cannot create {}: {e}", dir.display()))?;
            }
            let conn = open_writer(&config.path)?;
            let _ = INSTANCE.set(instance);
            builder.spawn(move || writer_loop(conn, rx, retention, thread_metrics))
        };
        spawned.map_err(|e| format!("stats: cannot start the writer: {e}"))?;
        Ok(UsageSink { tx, metrics })
    }

    /// Never blocks.
    pub fn record(&self, record: UsageRecord) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.metrics.stats_dropped.inc();
                // Log the first drop and then every thousandth, not every one.
                let dropped = self.metrics.stats_dropped.get();
                if dropped == 1 || dropped.is_multiple_of(1000) {
                    tracing::warn!(
                        dropped,
                        "usage statistics queue full: records dropped (the writer is behind)"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => self.metrics.stats_dropped.inc(),
        }
    }
}

/// The database opened for writing beside other writers and readers (WAL), created if need
/// be: the usage writer's and the audit log's (`audit`).
pub(super) fn open_wal(path: &Path) -> Result<Connection, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let conn =
        Connection::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

fn open_writer(path: &Path) -> Result<Connection, String> {
    let conn = open_wal(path).map_err(|e| format!("stats: {e}"))?;
    conn.execute_batch(SCHEMA)
        .map_err(|e| format!("stats: cannot create the schema in {}: {e}", path.display()))?;
    let has_instance = conn.prepare("SELECT instance FROM usage LIMIT 0").is_ok();
    if !has_instance {
        conn.execute_batch(ADD_INSTANCE)
            .map_err(|e| format!("stats: cannot migrate {}: {e}", path.display()))?;
    }
    if conn
        .prepare("SELECT web_searches FROM usage LIMIT 0")
        .is_err()
    {
        conn.execute_batch(ADD_WEB_SEARCHES)
            .map_err(|e| format!("stats: cannot migrate {}: {e}", path.display()))?;
    }
    if conn.prepare("SELECT owner FROM usage LIMIT 0").is_err() {
        conn.execute_batch(ADD_OWNER_AND_ERROR)
            .map_err(|e| format!("stats: cannot migrate {}: {e}", path.display()))?;
    }
    if conn.prepare("SELECT cost FROM usage LIMIT 0").is_err() {
        conn.execute_batch(ADD_COST)
            .map_err(|e| format!("stats: cannot migrate {}: {e}", path.display()))?;
    }
    Ok(conn)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn prune(conn: &Connection, retention: Duration) {
    let cutoff = now_ms() - retention.as_millis() as i64;
    match conn.execute("DELETE FROM usage WHERE time_ms < ?1", params![cutoff]) {
        Ok(n) if n > 0 => tracing::info!(deleted = n, "usage statistics past retention deleted"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot delete old usage statistics"),
    }
}

fn writer_loop(
    mut conn: Connection,
    rx: Receiver<UsageRecord>,
    retention: Duration,
    metrics: Arc<Metrics>,
) {
    prune(&conn, retention);
    let mut last_prune = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        let deadline = Instant::now() + BATCH_WAIT;
        while batch.len() < BATCH {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        match write_batch(&mut conn, &batch) {
            Ok(()) => metrics.stats_written.inc_by(batch.len() as u64),
            Err(e) => {
                metrics.stats_dropped.inc_by(batch.len() as u64);
                tracing::warn!(error = %e, records = batch.len(), "cannot write usage statistics; records dropped");
            }
        }
        batch.clear();
        if last_prune.elapsed() > PRUNE_EVERY {
            prune(&conn, retention);
            last_prune = Instant::now();
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[UsageRecord]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO usage (time_ms, adapter, key_label, client_model, source_model, status,
             input_tokens, output_tokens, cache_read_tokens, estimated, duration_ms, ttfb_ms, stream,
             instance, web_searches, owner, error, cache_write_tokens, cost)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18, ?19)",
        )?;
        let instance = INSTANCE.get().map_or("", String::as_str);
        for r in batch {
            stmt.execute(params![
                r.time_ms,
                r.adapter,
                r.key_label,
                r.client_model,
                r.source_model,
                r.status,
                r.input_tokens as i64,
                r.output_tokens as i64,
                r.cache_read_tokens as i64,
                r.estimated,
                r.duration_ms as i64,
                r.ttfb_ms.map(|t| t as i64),
                r.stream,
                instance,
                r.web_searches,
                r.owner,
                r.error,
                r.cache_write_tokens as i64,
                r.cost,
            ])?;
        }
    }
    tx.commit()
}

// ---------------------------------------------------------------------------------------------
// Queries (the `stats` command and the admin endpoint)

/// What to group totals by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Adapter,
    Key,
    Model,
    Day,
    Instance,
}

impl GroupBy {
    fn column(self) -> &'static str {
        match self {
            GroupBy::Adapter => "adapter",
            GroupBy::Key => "adapter || '/' || key_label",
            GroupBy::Model => "client_model || ' -> ' || source_model",
            GroupBy::Day => "strftime('%Y-%m-%d', time_ms / 1000, 'unixepoch')",
            GroupBy::Instance => "instance",
        }
    }

    pub fn parse(s: &str) -> Option<GroupBy> {
        match s {
            "adapter" => Some(GroupBy::Adapter),
            "key" => Some(GroupBy::Key),
            "model" => Some(GroupBy::Model),
            "day" => Some(GroupBy::Day),
            "instance" => Some(GroupBy::Instance),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub group: String,
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    /// Requests whose tokens are our estimate.
    pub estimated: u64,
    pub avg_duration_ms: f64,
    /// The sum of the priced requests' costs; `None` when none was priced.
    pub cost: Option<f64>,
    /// Requests whose cost is unknown (no price for their model).
    pub unpriced: u64,
}

/// The database, read-only, for queries while the writer writes.
pub(super) fn open_reader(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Totals of the records since `since` ago, grouped. Opens the database read-only.
pub fn query(path: &Path, since: Duration, by: GroupBy) -> Result<Vec<Totals>, String> {
    let conn = open_reader(path)?;
    let cutoff = now_ms() - since.as_millis() as i64;
    let sql = format!(
        "SELECT {g} AS grp, COUNT(*), SUM(status >= 400), SUM(input_tokens), SUM(output_tokens),
                SUM(cache_read_tokens), SUM(estimated), AVG(duration_ms), SUM(cost),
                SUM(cost IS NULL)
         FROM usage WHERE time_ms >= ?1 GROUP BY grp ORDER BY grp",
        g = by.column()
    );
    let mut stmt = conn.prepare(&sql).map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map(params![cutoff], |row| {
            Ok(Totals {
                group: row.get(0)?,
                requests: row.get::<_, i64>(1)? as u64,
                errors: row.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
                input_tokens: row.get::<_, Option<i64>>(3)?.unwrap_or(0) as u64,
                output_tokens: row.get::<_, Option<i64>>(4)?.unwrap_or(0) as u64,
                cache_read_tokens: row.get::<_, Option<i64>>(5)?.unwrap_or(0) as u64,
                estimated: row.get::<_, Option<i64>>(6)?.unwrap_or(0) as u64,
                avg_duration_ms: row.get::<_, Option<f64>>(7)?.unwrap_or(0.0),
                cost: row.get(8)?,
                unpriced: row.get::<_, Option<i64>>(9)?.unwrap_or(0) as u64,
            })
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// Totals from the configured store (SQLite file or PostgreSQL), for async callers.
pub async fn totals(
    config: &StatsConfig,
    since: Duration,
    by: GroupBy,
) -> Result<Vec<Totals>, String> {
    match &config.postgres_url {
        Some(url) => super::usage_pg::query(url, since, by).await,
        None => query(&config.path, since, by),
    }
}

/// [`totals`] for callers without a runtime (the CLI).
pub fn totals_blocking(
    config: &StatsConfig,
    since: Duration,
    by: GroupBy,
) -> Result<Vec<Totals>, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(totals(config, since, by))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(adapter: &str, input: u64) -> UsageRecord {
        UsageRecord {
            time_ms: now_ms(),
            adapter: adapter.into(),
            key_label: "k".into(),
            client_model: "claude".into(),
            source_model: "m".into(),
            status: 200,
            input_tokens: input,
            output_tokens: 2,
            cache_read_tokens: 1,
            estimated: false,
            duration_ms: 10,
            ttfb_ms: Some(3),
            stream: true,
            web_searches: 0,
            owner: String::new(),
            error: String::new(),
            cache_write_tokens: 0,
            cost: None,
        }
    }

    #[test]
    fn records_are_written_and_totalled() {
        let dir = tempfile::tempdir().unwrap();
        let config = StatsConfig {
            postgres_url: None,
            path: dir.path().join("s.db"),
            retention: Duration::from_secs(3600),
            queue: 100,
        };
        let metrics = Arc::new(Metrics::new());
        let sink = UsageSink::start(&config, metrics.clone(), "test").unwrap();
        sink.record(record("a", 10));
        sink.record(record("a", 5));
        sink.record(record("b", 1));
        let deadline = Instant::now() + Duration::from_secs(5);
        while metrics.stats_written.get() < 3 {
            assert!(Instant::now() < deadline, "records not written");
            std::thread::sleep(Duration::from_millis(10));
        }
        let totals = query(&config.path, Duration::from_secs(60), GroupBy::Adapter).unwrap();
        assert_eq!(totals.len(), 2);
        assert_eq!(
            (
                totals[0].group.as_str(),
                totals[0].requests,
                totals[0].input_tokens
            ),
            ("a", 2, 15)
        );
        assert_eq!(totals[1].output_tokens, 2);
    }

    #[test]
    fn old_records_are_pruned_on_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut conn = open_writer(&path).unwrap();
        let mut old = record("a", 1);
        old.time_ms -= 10 * 86_400_000;
        write_batch(&mut conn, &[old, record("a", 1)]).unwrap();
        drop(conn);
        let config = StatsConfig {
            postgres_url: None,
            path: path.clone(),
            retention: Duration::from_secs(86400),
            queue: 10,
        };
        let _sink = UsageSink::start(&config, Arc::new(Metrics::new()), "test").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let t = query(&path, Duration::from_secs(30 * 86400), GroupBy::Adapter).unwrap();
            if t[0].requests == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "old record not pruned");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
