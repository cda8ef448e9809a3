//! The audit log (issue #27): who created, changed, rotated or deleted an adapter, a key, a
//! user, an invitation or a quota, and every sign-in and failed sign-in — with the time, the
//! actor, the target and the client address — in the usage store (the `audit` table of the
//! SQLite file or the PostgreSQL database of `stats:`). With usage statistics off it still
//! works: it opens the default SQLite file (`flexiproxy-stats.db` next to the server config)
//! for itself alone, at the first event (so a proxy nobody administers creates no file).
//!
//! Anything answering an admin request may call [`record`]: it offers the event to the
//! server's log (a bounded queue, never waiting) and a writer thread stores it. The log and
//! the client address come from the admin request being answered ([`with_request`]), so
//! several servers in one process (the tests) each keep their own. A process that answers
//! no request — the CLI changing a file — stores its event at once with [`record_now`]. An
//! event holds only
//! names, fixed codes and short descriptions the caller builds from non-secret fields —
//! never a password, a code, a key or a cookie.

use super::usage::now_ms;
use rusqlite::{Connection, params};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

/// Where the audit log lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditStore {
    Sqlite(PathBuf),
    Postgres(String),
}

/// What happened. Its text (`as_str`) is stored and filtered on; the panel names it in the
/// user's language (`audit_kind_<text with _ for .>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SignIn,
    SignInFailed,
    SignUp,
    AdapterCreate,
    AdapterChange,
    AdapterDelete,
    KeyRotate,
    KeyRevoke,
    KeyChange,
    UserAdd,
    UserChange,
    UserDelete,
    QuotaSet,
    InviteCreate,
    InviteRevoke,
    PasswordChange,
    PasswordResetLink,
    PasswordReset,
    SessionEnd,
}

impl Kind {
    pub const ALL: [Kind; 19] = [
        Kind::SignIn,
        Kind::SignInFailed,
        Kind::SignUp,
        Kind::AdapterCreate,
        Kind::AdapterChange,
        Kind::AdapterDelete,
        Kind::KeyRotate,
        Kind::KeyRevoke,
        Kind::KeyChange,
        Kind::UserAdd,
        Kind::UserChange,
        Kind::UserDelete,
        Kind::QuotaSet,
        Kind::InviteCreate,
        Kind::InviteRevoke,
        Kind::PasswordChange,
        Kind::PasswordResetLink,
        Kind::PasswordReset,
        Kind::SessionEnd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SignIn => "sign_in",
            Kind::SignInFailed => "sign_in.failed",
            Kind::SignUp => "user.signup",
            Kind::AdapterCreate => "adapter.create",
            Kind::AdapterChange => "adapter.change",
            Kind::AdapterDelete => "adapter.delete",
            Kind::KeyRotate => "key.rotate",
            Kind::KeyRevoke => "key.revoke",
            Kind::KeyChange => "key.change",
            Kind::UserAdd => "user.add",
            Kind::UserChange => "user.change",
            Kind::UserDelete => "user.delete",
            Kind::QuotaSet => "quota.set",
            Kind::InviteCreate => "invite.create",
            Kind::InviteRevoke => "invite.revoke",
            Kind::PasswordChange => "password.change",
            Kind::PasswordResetLink => "password.reset_link",
            Kind::PasswordReset => "password.reset",
            Kind::SessionEnd => "session.end",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    /// Who did it: a user's name, `admin` for the admin token, `(anonymous)` before sign-in,
    /// `cli` for the `flexiproxy` command on the server's host.
    pub actor: String,
    /// What it was done to: an adapter's, a user's or an invitation's name or id.
    pub target: String,
    /// A short, non-secret description (`method=form`, `status=disabled`, `key=k-1a2b`).
    pub detail: String,
    /// The client address; empty takes the current admin request's ([`with_client`]).
    pub client: String,
}

impl Event {
    pub fn new(kind: Kind, actor: &str, target: &str) -> Event {
        Event {
            kind,
            actor: actor.to_owned(),
            target: target.to_owned(),
            detail: String::new(),
            client: String::new(),
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Event {
        self.detail = detail.into();
        self
    }

    pub fn client(mut self, client: &str) -> Event {
        self.client = client.to_owned();
        self
    }
}

/// One stored event, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: i64,
    pub time_ms: i64,
    /// RFC 3339, seconds.
    pub time: String,
    pub instance: String,
    pub actor: String,
    pub kind: String,
    pub target: String,
    pub client: String,
    pub detail: String,
}

/// What to list: newest first, `limit` from `offset`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub actor: Option<String>,
    /// A kind (`key.rotate`) or its group (`key`: every `key.*`).
    pub kind: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

/// The most entries one listing returns.
pub const MAX_LIMIT: usize = 500;

/// The admin request being answered: who sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub client: String,
    pub user_agent: String,
}

/// The request being answered and the log of the server answering it.
struct Scope {
    info: RequestInfo,
    log: Option<AuditLog>,
}

tokio::task_local! {
    static REQUEST: Scope;
}

/// Runs `fut` as the answer to a request from `info` by a server keeping `log` (events
/// recorded inside it go there with its address; sessions opened inside it get its address
/// and user agent).
pub async fn with_request<F: std::future::Future>(
    info: RequestInfo,
    log: Option<AuditLog>,
    fut: F,
) -> F::Output {
    REQUEST.scope(Scope { info, log }, fut).await
}

/// The request being answered (empty outside one).
pub fn current_request() -> RequestInfo {
    REQUEST.try_with(|s| s.info.clone()).unwrap_or_default()
}

/// A row as written.
struct Row {
    time_ms: i64,
    event: Event,
}

/// One server's audit log: where its events go.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<Row>,
}

/// How many events may wait for the writer before new ones are refused (and logged).
const QUEUE: usize = 10_000;

/// Opens the store and starts its writer.
pub fn start(store: &AuditStore, instance: &str) -> Result<AuditLog, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    let instance = instance.to_owned();
    let builder = std::thread::Builder::new().name("flexiproxy-audit".into());
    match store {
        AuditStore::Sqlite(path) => {
            // Opened at the first event: a proxy nobody administers, with statistics off (the
            // default), creates no file.
            let path = path.clone();
            builder.spawn(move || {
                let Ok(first) = rx.recv() else { return };
                match open_writer(&path) {
                    Ok(conn) => sqlite_writer(conn, &instance, std::iter::once(first).chain(rx)),
                    Err(e) => tracing::error!(error = %e, "the audit log cannot be stored"),
                }
            })
        }
        AuditStore::Postgres(url) => {
            let url = url.clone();
            builder.spawn(move || super::audit_pg::writer_loop(&url, &instance, rx_events(rx)))
        }
    }
    .map_err(|e| format!("audit: cannot start the writer: {e}"))?;
    Ok(AuditLog { tx })
}

/// The queue as the PostgreSQL writer takes it: (time, event).
fn rx_events(rx: Receiver<Row>) -> impl Iterator<Item = (i64, Event)> {
    rx.into_iter().map(|r| (r.time_ms, r.event))
}

/// Records an event in the log of the server answering the current request (never
/// blocks). Outside one, or without a log, it only goes to the process log.
pub fn record(mut event: Event) {
    if event.client.is_empty() {
        event.client = current_request().client;
    }
    let log = REQUEST.try_with(|s| s.log.clone()).ok().flatten();
    tracing::info!(
        target: "flexiproxy::audit",
        kind = event.kind.as_str(),
        actor = %event.actor,
        target_name = %event.target,
        client = %event.client,
        detail = %event.detail,
        "audit"
    );
    let Some(log) = log else { return };
    let row = Row {
        time_ms: now_ms(),
        event,
    };
    if let Err(e) = log.tx.try_send(row) {
        let why = match e {
            TrySendError::Full(_) => "queue full",
            TrySendError::Disconnected(_) => "writer stopped",
        };
        tracing::error!(why, "audit event not stored");
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    instance TEXT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    client TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time_ms);
CREATE INDEX IF NOT EXISTS audit_actor ON audit (actor, time_ms);
";

fn open_writer(path: &std::path::Path) -> Result<Connection, String> {
    let conn = super::usage::open_wal(path)?;
    conn.execute_batch(SCHEMA)
        .map_err(|e| format!("audit: cannot create the table in {}: {e}", path.display()))?;
    Ok(conn)
}

fn sqlite_writer(conn: Connection, instance: &str, rows: impl Iterator<Item = Row>) {
    for row in rows {
        if let Err(err) = insert_sqlite(&conn, instance, &row) {
            tracing::error!(error = %err, kind = row.event.kind.as_str(), "audit event not stored");
        }
    }
}

fn insert_sqlite(conn: &Connection, instance: &str, row: &Row) -> Result<(), String> {
    let e = &row.event;
    conn.execute(
        "INSERT INTO audit (time_ms, instance, actor, kind, target, client, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            row.time_ms,
            instance,
            e.actor,
            e.kind.as_str(),
            e.target,
            e.client,
            e.detail
        ],
    )
    .map(|_| ())
    .map_err(|err| format!("audit: {err}"))
}

/// Stores one event before returning, for a process with no server and no writer thread
/// (the CLI): through the same store code as [`start`]'s writer. Why it was not stored,
/// otherwise (for PostgreSQL, after at most [`super::audit_pg::STORE_ONE_WAIT`]).
pub fn record_now(store: &AuditStore, instance: &str, event: Event) -> Result<(), String> {
    let row = Row {
        time_ms: now_ms(),
        event,
    };
    match store {
        AuditStore::Sqlite(path) => insert_sqlite(&open_writer(path)?, instance, &row),
        AuditStore::Postgres(url) => {
            super::audit_pg::store_one(url, instance, row.time_ms, &row.event)
        }
    }
}

/// `kind` matches itself, or its group when it has no dot.
pub(super) fn kind_pattern(kind: &str) -> (String, String) {
    (kind.to_owned(), format!("{kind}.%"))
}

pub fn rfc3339(time_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(time_ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Entries matching `filter`, newest first.
pub async fn list(store: &AuditStore, filter: &Filter) -> Result<Vec<Entry>, String> {
    let limit = filter.limit.clamp(1, MAX_LIMIT);
    match store {
        AuditStore::Postgres(url) => super::audit_pg::list(url, filter, limit).await,
        AuditStore::Sqlite(path) => {
            let (path, filter) = (path.clone(), filter.clone());
            tokio::task::spawn_blocking(move || list_sqlite(&path, &filter, limit))
                .await
                .map_err(|e| e.to_string())?
        }
    }
}

fn list_sqlite(
    path: &std::path::Path,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<Entry>, String> {
    if !path.exists() {
        return Ok(Vec::new()); // nothing recorded yet: the file comes with the first event
    }
    let conn = super::usage::open_reader(path)?;
    // The usage writer's file, or one the audit writer is opening right now, may have no
    // table yet: nothing recorded either.
    let has_table: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| format!("audit: {e}"))?;
    if !has_table {
        return Ok(Vec::new());
    }
    let (kind, group) = kind_pattern(filter.kind.as_deref().unwrap_or(""));
    let mut stmt = conn
        .prepare(
            "SELECT id, time_ms, instance, actor, kind, target, client, detail FROM audit
             WHERE (?1 IS NULL OR actor = ?1) AND (?2 = '' OR kind = ?2 OR kind LIKE ?3)
             ORDER BY time_ms DESC, id DESC LIMIT ?4 OFFSET ?5",
        )
        .map_err(|e| format!("audit: {e}"))?;
    let rows = stmt
        .query_map(
            params![
                filter.actor,
                kind,
                group,
                limit as i64,
                filter.offset as i64
            ],
            |r| {
                let time_ms: i64 = r.get(1)?;
                Ok(Entry {
                    id: r.get(0)?,
                    time_ms,
                    time: rfc3339(time_ms),
                    instance: r.get(2)?,
                    actor: r.get(3)?,
                    kind: r.get(4)?,
                    target: r.get(5)?,
                    client: r.get(6)?,
                    detail: r.get(7)?,
                })
            },
        )
        .map_err(|e| format!("audit: {e}"))?;
    rows.collect::<Result<_, _>>()
        .map_err(|e| format!("audit: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_distinct_and_grouped() {
        let mut seen: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), Kind::ALL.len());
        assert_eq!(kind_pattern("key"), ("key".into(), "key.%".into()));
    }

    #[tokio::test]
    async fn sqlite_entries_are_listed_newest_first_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let conn = open_writer(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(10);
        let events = [
            (
                1_000,
                Event::new(Kind::SignIn, "alice", "alice").client("10.0.0.1"),
            ),
            (
                2_000,
                Event::new(Kind::KeyRotate, "alice", "a1").detail("key=k-1"),
            ),
            (3_000, Event::new(Kind::KeyRevoke, "bob", "b1")),
            (4_000, Event::new(Kind::AdapterDelete, "alice", "a1")),
        ];
        for (time_ms, event) in events {
            tx.send(Row { time_ms, event }).unwrap();
        }
        drop(tx);
        sqlite_writer(conn, "i1", rx.into_iter());
        let all = Filter {
            limit: 10,
            ..Filter::default()
        };
        let got = list(&AuditStore::Sqlite(path.clone()), &all).await.unwrap();
        let kinds: Vec<&str> = got.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["adapter.delete", "key.revoke", "key.rotate", "sign_in"]
        );
        assert_eq!(got[3].client, "10.0.0.1");
        assert_eq!(got[3].time, "1970-01-01T00:00:01Z");
        let keys_of_alice = Filter {
            actor: Some("alice".into()),
            kind: Some("key".into()),
            limit: 10,
            offset: 0,
        };
        let got = list(&AuditStore::Sqlite(path.clone()), &keys_of_alice)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].target.as_str(), got[0].detail.as_str()),
            ("a1", "key=k-1")
        );
        let second_page = Filter {
            limit: 2,
            offset: 2,
            ..Filter::default()
        };
        let got = list(&AuditStore::Sqlite(path), &second_page).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].kind, "key.rotate");
    }

    #[tokio::test]
    async fn a_store_without_the_table_yet_lists_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage-only.db");
        drop(super::super::usage::open_wal(&path).unwrap());
        let all = Filter {
            limit: 10,
            ..Filter::default()
        };
        assert_eq!(
            list(&AuditStore::Sqlite(path.clone()), &all).await,
            Ok(vec![])
        );
        record_now(
            &AuditStore::Sqlite(path.clone()),
            "i1",
            Event::new(Kind::UserAdd, "cli", "dave"),
        )
        .unwrap();
        let got = list(&AuditStore::Sqlite(path), &all).await.unwrap();
        assert_eq!(
            (got[0].kind.as_str(), got[0].instance.as_str()),
            ("user.add", "i1")
        );
    }

    #[tokio::test]
    async fn the_client_comes_from_the_request() {
        let info = RequestInfo {
            client: "192.0.2.7".into(),
            user_agent: "curl/8".into(),
        };
        let seen = with_request(info.clone(), None, async { current_request() }).await;
        assert_eq!(seen, info);
        assert_eq!(current_request(), RequestInfo::default());
    }
}
