//! The audit log in PostgreSQL (`stats.backend: postgres`): the `audit` table the usage
//! store's migrations create (`usage_pg`, schema step 5), written by the audit writer
//! thread with its own small runtime, read by the panel and `GET /admin/api/audit`.

use super::audit::{Entry, Event, Filter, kind_pattern, rfc3339};
use super::usage_pg::{connect, migrate};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

const INSERT: &str = "INSERT INTO audit (time_ms, instance, actor, kind, target, client, detail)
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// How long the writer waits before trying an unreachable database again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// The longest [`store_one`] waits for the database (the CLI must not hang on it).
pub const STORE_ONE_WAIT: Duration = Duration::from_secs(10);

/// A connection with the schema up to date.
async fn open(url: &str) -> Result<Client, String> {
    let mut c = connect(url).await?;
    migrate(&mut c).await?;
    Ok(c)
}

async fn insert(c: &Client, instance: &str, time_ms: i64, e: &Event) -> Result<(), String> {
    c.execute(
        INSERT,
        &[
            &time_ms,
            &instance,
            &e.actor,
            &e.kind.as_str(),
            &e.target,
            &e.client,
            &e.detail,
        ],
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("audit: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("audit: cannot start the PostgreSQL writer's runtime: {e}"))
}

/// Stores each event as it comes until the queue closes; an event met while the database
/// cannot be reached is logged as lost.
pub(super) fn writer_loop(url: &str, instance: &str, events: impl Iterator<Item = (i64, Event)>) {
    let Ok(runtime) = runtime().inspect_err(|e| tracing::error!("{e}")) else {
        return;
    };
    let open = || {
        runtime
            .block_on(open(url))
            .inspect_err(|e| tracing::warn!(error = %e, "audit: PostgreSQL unavailable"))
            .ok()
    };
    // Connected at the first event, not at start: the usage writer already migrated the
    // schema (the audit table is one of its steps), and an idle instance holds one
    // connection, not two.
    let mut client: Option<Client> = None;
    let mut last_attempt: Option<Instant> = None;
    for (time_ms, e) in events {
        if client.as_ref().is_none_or(Client::is_closed)
            && last_attempt.is_none_or(|t| t.elapsed() >= RECONNECT_EVERY)
        {
            last_attempt = Some(Instant::now());
            client = open();
        }
        let written = match &client {
            Some(c) => runtime.block_on(insert(c, instance, time_ms, &e)),
            None => Err("not connected".into()),
        };
        if let Err(err) = written {
            tracing::error!(error = %err, kind = e.kind.as_str(), "audit event not stored");
        }
    }
}

/// Stores one event before returning (the CLI's [`super::audit::record_now`]).
pub(super) fn store_one(url: &str, instance: &str, time_ms: i64, e: &Event) -> Result<(), String> {
    let runtime = runtime()?;
    let store = async { insert(&open(url).await?, instance, time_ms, e).await };
    runtime
        .block_on(async { tokio::time::timeout(STORE_ONE_WAIT, store).await })
        .unwrap_or_else(|_| Err("audit: PostgreSQL did not answer in time".into()))
}

/// Entries matching `filter`, newest first, over every instance's.
pub(super) async fn list(url: &str, filter: &Filter, limit: usize) -> Result<Vec<Entry>, String> {
    let client = connect(url).await?;
    let (kind, group) = kind_pattern(filter.kind.as_deref().unwrap_or(""));
    let rows = client
        .query(
            "SELECT id, time_ms, instance, actor, kind, target, client, detail FROM audit
             WHERE ($1::TEXT IS NULL OR actor = $1) AND ($2 = '' OR kind = $2 OR kind LIKE $3)
             ORDER BY time_ms DESC, id DESC LIMIT $4 OFFSET $5",
            &[
                &filter.actor,
                &kind,
                &group,
                &(limit as i64),
                &(filter.offset as i64),
            ],
        )
        .await
        .map_err(|e| format!("audit: query failed: {e}"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let time_ms: i64 = r.get(1);
            Entry {
                id: r.get(0),
                time_ms,
                time: rfc3339(time_ms),
                instance: r.get(2),
                actor: r.get(3),
                kind: r.get(4),
                target: r.get(5),
                client: r.get(6),
                detail: r.get(7),
            }
        })
        .collect())
}
