//! The PostgreSQL usage store (`stats.backend: postgres`): the SQLite store's records, plus
//! the instance that served each, in one database every instance writes to. The writer runs
//! on its own thread with its own small runtime, takes batches from the same bounded queue
//! (a full queue drops and counts, never blocks a request), inserts each batch in one
//! statement (`UNNEST` of column arrays), and reconnects when the database comes back.
//! Migrations are numbered SQL steps applied at start under an advisory lock, so instances
//! starting together apply each step once.

use super::metrics::Metrics;
use super::usage::{GroupBy, Totals, UsageRecord};
use super::usage_view::{RecentRequest, UsageRow, UsageScope, scope_sql};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

/// The schema version a migrated database records last (one per step below).
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Schema steps, applied in order once each (their number is the schema version).
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS usage (
        time_ms BIGINT NOT NULL,
        instance TEXT NOT NULL,
        adapter TEXT NOT NULL,
        key_label TEXT NOT NULL,
        client_model TEXT NOT NULL,
        source_model TEXT NOT NULL,
        status INTEGER NOT NULL,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        cache_read_tokens BIGINT NOT NULL,
        estimated BOOLEAN NOT NULL,
        duration_ms BIGINT NOT NULL,
        ttfb_ms BIGINT,
        stream BOOLEAN NOT NULL
    );
    CREATE INDEX IF NOT EXISTS usage_time ON usage (time_ms);",
    // Searches the gateway ran for the request (docs/web-search.md).
    "ALTER TABLE usage ADD COLUMN IF NOT EXISTS web_searches INTEGER NOT NULL DEFAULT 0;",
    // The owner keeps a deleted adapter's history theirs; the error code explains failures.
    "ALTER TABLE usage ADD COLUMN IF NOT EXISTS owner TEXT NOT NULL DEFAULT '';
     ALTER TABLE usage ADD COLUMN IF NOT EXISTS error TEXT NOT NULL DEFAULT '';
     CREATE INDEX IF NOT EXISTS usage_owner_time ON usage (owner, time_ms);",
    // What each request cost (NULL: unknown).
    "ALTER TABLE usage ADD COLUMN IF NOT EXISTS cache_write_tokens BIGINT NOT NULL DEFAULT 0;
     ALTER TABLE usage ADD COLUMN IF NOT EXISTS cost DOUBLE PRECISION;",
    // The audit log (`audit`, `audit_pg`): who changed what, every sign-in.
    "CREATE TABLE IF NOT EXISTS audit (
        id BIGSERIAL PRIMARY KEY,
        time_ms BIGINT NOT NULL,
        instance TEXT NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        client TEXT NOT NULL,
        detail TEXT NOT NULL
     );
     CREATE INDEX IF NOT EXISTS audit_time ON audit (time_ms);
     CREATE INDEX IF NOT EXISTS audit_actor ON audit (actor, time_ms);",
];

const INSERT: &str = "INSERT INTO usage (time_ms, instance, adapter, key_label, client_model,
    source_model, status, input_tokens, output_tokens, cache_read_tokens, estimated,
    duration_ms, ttfb_ms, stream, web_searches, owner, error, cache_write_tokens, cost)
    SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
    $6::TEXT[], $7::INTEGER[], $8::BIGINT[], $9::BIGINT[], $10::BIGINT[], $11::BOOLEAN[],
    $12::BIGINT[], $13::BIGINT[], $14::BOOLEAN[], $15::INTEGER[], $16::TEXT[], $17::TEXT[], $18::BIGINT[],
    $19::DOUBLE PRECISION[])";

/// How long the writer waits before trying an unreachable database again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

pub async fn connect(url: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("stats: cannot connect to PostgreSQL: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "stats: PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// Applies the migrations this database has not seen yet.
pub async fn migrate(client: &mut Client) -> Result<(), String> {
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(7467146); 
         CREATE TABLE IF NOT EXISTS flexiproxy_schema (version INTEGER NOT NULL);",
    )
    .await
    .map_err(|e| format!("stats: cannot lock the schema: {e}"))?;
    let current: i32 = tx
        .query_opt("SELECT MAX(version) FROM flexiproxy_schema", &[])
        .await
        .map_err(|e| e.to_string())?
        .and_then(|row| row.get::<_, Option<i32>>(0))
        .unwrap_or(0);
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        tx.batch_execute(step)
            .await
            .map_err(|e| format!("stats: migration {} failed: {e}", i + 1))?;
        tx.execute(
            "INSERT INTO flexiproxy_schema (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())
}

async fn write_batch(client: &Client, instance: &str, batch: &[UsageRecord]) -> Result<(), String> {
    let col = |f: &dyn Fn(&UsageRecord) -> i64| batch.iter().map(f).collect::<Vec<i64>>();
    let text = |f: &dyn Fn(&UsageRecord) -> &str| {
        batch
            .iter()
            .map(|r| f(r).to_owned())
            .collect::<Vec<String>>()
    };
    let time = col(&|r| r.time_ms);
    let instances = vec![instance.to_owned(); batch.len()];
    let adapter = text(&|r| &r.adapter);
    let label = text(&|r| &r.key_label);
    let client_model = text(&|r| &r.client_model);
    let source_model = text(&|r| &r.source_model);
    let status: Vec<i32> = batch.iter().map(|r| i32::from(r.status)).collect();
    let input = col(&|r| r.input_tokens as i64);
    let output = col(&|r| r.output_tokens as i64);
    let cached = col(&|r| r.cache_read_tokens as i64);
    let estimated: Vec<bool> = batch.iter().map(|r| r.estimated).collect();
    let duration = col(&|r| r.duration_ms as i64);
    let ttfb: Vec<Option<i64>> = batch.iter().map(|r| r.ttfb_ms.map(|t| t as i64)).collect();
    let stream: Vec<bool> = batch.iter().map(|r| r.stream).collect();
    let searches: Vec<i32> = batch
        .iter()
        .map(|r| i32::try_from(r.web_searches).unwrap_or(i32::MAX))
        .collect();
    let owner = text(&|r| &r.owner);
    let error = text(&|r| &r.error);
    let cache_write = col(&|r| r.cache_write_tokens as i64);
    let cost: Vec<Option<f64>> = batch.iter().map(|r| r.cost).collect();
    client
        .execute(
            INSERT,
            &[
                &time,
                &instances,
                &adapter,
                &label,
                &client_model,
                &source_model,
                &status,
                &input,
                &output,
                &cached,
                &estimated,
                &duration,
                &ttfb,
                &stream,
                &searches,
                &owner,
                &error,
                &cache_write,
                &cost,
            ],
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The writer thread's loop: batches from `rx` into the database until the queue closes.
pub fn writer_loop(
    url: String,
    instance: String,
    rx: Receiver<UsageRecord>,
    retention: Duration,
    metrics: Arc<Metrics>,
    batch_size: usize,
    batch_wait: Duration,
) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        tracing::error!("stats: cannot start the PostgreSQL writer's runtime");
        return;
    };
    let open = || {
        runtime
            .block_on(async {
                let mut c = connect(&url).await?;
                migrate(&mut c).await?;
                Ok::<_, String>(c)
            })
            .inspect_err(|e| tracing::warn!(error = %e, "stats: PostgreSQL unavailable"))
            .ok()
    };
    // Connected and migrated at start, so the schema is there before the first request
    // (instances starting together migrate once: `migrate` holds an advisory lock); a
    // database not reachable yet is tried again when the first batch is ready.
    let mut client: Option<Client> = open();
    let mut last_attempt: Option<Instant> = Some(Instant::now());
    let mut last_prune: Option<Instant> = None;
    let mut batch = Vec::with_capacity(batch_size);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        let deadline = Instant::now() + batch_wait;
        while batch.len() < batch_size {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if client.as_ref().is_none_or(Client::is_closed)
            && last_attempt.is_none_or(|t| t.elapsed() >= RECONNECT_EVERY)
        {
            last_attempt = Some(Instant::now());
            client = open();
        }
        let written = match &client {
            Some(c) => runtime.block_on(write_batch(c, &instance, &batch)),
            None => Err("not connected".into()),
        };
        match written {
            Ok(()) => metrics.stats_written.inc_by(batch.len() as u64),
            Err(e) => {
                metrics.stats_dropped.inc_by(batch.len() as u64);
                tracing::warn!(error = %e, records = batch.len(), "cannot write usage statistics to PostgreSQL; records dropped");
            }
        }
        batch.clear();
        if let Some(c) = &client
            && last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(3600))
        {
            last_prune = Some(Instant::now());
            let cutoff = super::usage::now_ms() - retention.as_millis() as i64;
            let _ = runtime.block_on(c.execute("DELETE FROM usage WHERE time_ms < $1", &[&cutoff]));
        }
    }
}

fn group_column(by: GroupBy) -> &'static str {
    match by {
        GroupBy::Adapter => "adapter",
        GroupBy::Key => "adapter || '/' || key_label",
        GroupBy::Model => "client_model || ' -> ' || source_model",
        GroupBy::Day => "to_char(to_timestamp(time_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        GroupBy::Instance => "instance",
    }
}

/// Totals since `since` ago, grouped, over every instance's records.
pub async fn query(url: &str, since: Duration, by: GroupBy) -> Result<Vec<Totals>, String> {
    let client = connect(url).await?;
    let cutoff = super::usage::now_ms() - since.as_millis() as i64;
    let sql = format!(
        "SELECT {g} AS grp, COUNT(*), COUNT(*) FILTER (WHERE status >= 400),
                SUM(input_tokens)::BIGINT, SUM(output_tokens)::BIGINT,
                SUM(cache_read_tokens)::BIGINT, COUNT(*) FILTER (WHERE estimated),
                AVG(duration_ms)::DOUBLE PRECISION, SUM(cost)::DOUBLE PRECISION,
                COUNT(*) FILTER (WHERE cost IS NULL)
         FROM usage WHERE time_ms >= $1 GROUP BY grp ORDER BY grp",
        g = group_column(by)
    );
    let rows = client
        .query(&sql, &[&cutoff])
        .await
        .map_err(|e| format!("stats: query failed: {e}"))?;
    Ok(rows
        .iter()
        .map(|row| Totals {
            group: row.get(0),
            requests: row.get::<_, i64>(1) as u64,
            errors: row.get::<_, i64>(2) as u64,
            input_tokens: row.get::<_, Option<i64>>(3).unwrap_or(0) as u64,
            output_tokens: row.get::<_, Option<i64>>(4).unwrap_or(0) as u64,
            cache_read_tokens: row.get::<_, Option<i64>>(5).unwrap_or(0) as u64,
            estimated: row.get::<_, i64>(6) as u64,
            avg_duration_ms: row.get::<_, Option<f64>>(7).unwrap_or(0.0),
            cost: row.get(8),
            unpriced: row.get::<_, i64>(9) as u64,
        })
        .collect())
}

/// Usage per bucket, adapter, owner, key and model within `scope`, over every instance's
/// records (`usage_view::buckets`).
pub async fn series(
    url: &str,
    since: Duration,
    bucket: Duration,
    scope: &UsageScope,
) -> Result<Vec<UsageRow>, String> {
    let client = connect(url).await?;
    let cutoff = super::usage::now_ms() - since.as_millis() as i64;
    let width = (bucket.as_millis() as i64).max(1);
    let sql = format!(
        "SELECT (time_ms / $2) * $2 AS b, adapter, owner, key_label, source_model, COUNT(*),
                COUNT(*) FILTER (WHERE status >= 400), SUM(input_tokens)::BIGINT,
                SUM(output_tokens)::BIGINT, SUM(cache_read_tokens)::BIGINT,
                SUM(duration_ms)::BIGINT, SUM(cost)::DOUBLE PRECISION,
                COUNT(*) FILTER (WHERE cost IS NULL)
         FROM usage WHERE time_ms >= $1 AND {scope}
         GROUP BY b, adapter, owner, key_label, source_model ORDER BY b",
        scope = scope_sql("$3::TEXT", "adapter = ANY($4)")
    );
    let rows = client
        .query(&sql, &[&cutoff, &width, &scope.owner, &scope.adapters])
        .await
        .map_err(|e| format!("stats: query failed: {e}"))?;
    let count = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
    Ok(rows
        .iter()
        .map(|row| UsageRow {
            bucket_start_ms: row.get(0),
            adapter: row.get(1),
            owner: row.get(2),
            key_label: row.get(3),
            model: row.get(4),
            requests: count(row.get(5)),
            errors: count(row.get(6)),
            input_tokens: count(row.get(7)),
            output_tokens: count(row.get(8)),
            cache_read_tokens: count(row.get(9)),
            duration_ms_sum: count(row.get(10)),
            cost: row.get::<_, Option<f64>>(11).unwrap_or(0.0),
            unpriced: count(row.get(12)),
        })
        .collect())
}

/// The latest `limit` requests within `scope`, newest first (`usage_view::recent`).
pub async fn recent(
    url: &str,
    limit: usize,
    scope: &UsageScope,
) -> Result<Vec<RecentRequest>, String> {
    let client = connect(url).await?;
    let sql = format!(
        "SELECT time_ms, adapter, owner, key_label, client_model, source_model, status,
                input_tokens, output_tokens, cache_read_tokens, duration_ms, stream, error, cost
         FROM usage WHERE {scope} ORDER BY time_ms DESC LIMIT $3",
        scope = scope_sql("$1::TEXT", "adapter = ANY($2)")
    );
    let rows = client
        .query(&sql, &[&scope.owner, &scope.adapters, &(limit as i64)])
        .await
        .map_err(|e| format!("stats: query failed: {e}"))?;
    let count = |v: i64| v.max(0) as u64;
    Ok(rows
        .iter()
        .map(|row| RecentRequest {
            time_ms: row.get(0),
            adapter: row.get(1),
            owner: row.get(2),
            key_label: row.get(3),
            client_model: row.get(4),
            source_model: row.get(5),
            status: row.get::<_, i32>(6).clamp(0, 999) as u16,
            input_tokens: count(row.get(7)),
            output_tokens: count(row.get(8)),
            cache_read_tokens: count(row.get(9)),
            duration_ms: count(row.get(10)),
            stream: row.get(11),
            error: row.get(12),
            cost: row.get(13),
        })
        .collect())
}
