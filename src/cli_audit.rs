//! The audit log entries of changes made with the `flexiproxy` command (issue #27): each
//! `adapter`, `user` and `invite` command that changes a file stores one entry per change in
//! the server's audit store, of the kind the panel records for the same change, with actor
//! `cli` and client `local`. The change is made first; when its entry cannot be stored the
//! command says so on stderr and still exits as the change went.

use flexiproxy::config::server::ServerConfig;
use flexiproxy::telemetry::audit::{self, Event, Kind};

/// Who the audit log names for a change made with the command (anyone who can run it can
/// write the files, so it proves no more than that).
pub const ACTOR: &str = "cli";

/// The client address of those entries: the server's own host.
const CLIENT: &str = "local";

/// Stores the entry of a change just made, or warns that it was not stored.
pub fn record(config: &ServerConfig, kind: Kind, target: &str, detail: impl Into<String>) {
    let event = Event::new(kind, ACTOR, target)
        .detail(detail)
        .client(CLIENT);
    if let Err(e) = audit::record_now(&config.audit_store, &config.instance, event) {
        eprintln!("warning: the change is made, but the audit log did not store it: {e}");
    }
}
