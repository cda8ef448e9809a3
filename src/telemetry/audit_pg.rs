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

/// Stores each event as it comes until the queue closes; an event met while the database
/// cannot be reached is logged as lost.
pub(super) fn writer_loop(url: &str, instance: &str, events: impl Iterator<Item = (i64, Event)>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        tracing::error!("audit: cannot start the PostgreSQL writer's runtime");
        return;
    };
    let open = || {
        runtime
            .block_on(async {
                let mut c = connect(url).await?;
                migrate(&mut c).await?;
                Ok::<_, String>(c)
            })
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
            Some(c) => runtime
                .block_on(c.execute(
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
                ))
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Err("not connected".into()),
        };
        if let Err(err) = written {
            tracing::error!(error = %err, kind = e.kind.as_str(), "audit event not stored");
        }
    }
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
