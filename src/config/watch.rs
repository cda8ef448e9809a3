//! Hot reload: watches the adapters directory and swaps each new [`Snapshot`] into the shared
//! [`LiveConfig`]. Requests already in flight keep the snapshot they loaded; new requests see
//! the new one within about a second of the write.
//!
//! File-system events (notify) trigger a reload after a short quiet period, so bursts from
//! editors (write temp file, rename) and Kubernetes (`..data` symlink swap) cause one reload.
//! A rescan every second backs the events up: they can be lost on some file systems, and a
//! file written in several steps is picked up once it is whole.

use super::snapshot::{Loader, ReloadReport, Snapshot};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use notify::{RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The configuration every request reads from.
pub type LiveConfig = Arc<ArcSwap<Snapshot>>;

/// How long the directory must be quiet after an event before reloading.
const QUIET: Duration = Duration::from_millis(100);
/// The longest a burst of events can postpone a reload.
const MAX_DELAY: Duration = Duration::from_millis(400);
/// The safety-net rescan interval.
const RESCAN: Duration = Duration::from_secs(1);
/// A changed file must be left alone this long before it is read (see [`Loader::with_settle`]).
pub const SETTLE: Duration = Duration::from_millis(100);

/// Observers of reloads (metrics); called after each reload with its report.
pub type ReloadHook = Box<dyn Fn(&ReloadReport) + Send + Sync>;

pub struct ConfigWatcher {
    loader: Mutex<Loader>,
    live: LiveConfig,
    hook: Option<ReloadHook>,
}

impl ConfigWatcher {
    /// Takes a loader that already produced the initial snapshot in `live`.
    pub fn new(loader: Loader, live: LiveConfig) -> Self {
        ConfigWatcher {
            loader: Mutex::new(loader),
            live,
            hook: None,
        }
    }

    pub fn with_hook(mut self, hook: ReloadHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Reloads now and logs what changed; returns whether some file was too fresh to read
    /// (the caller reloads again shortly).
    pub fn reload(&self, reported: &mut HashSet<String>) -> bool {
        let report = crate::lock(&self.loader).reload();
        log_report(&report, reported);
        if report.changed {
            self.live.store(report.snapshot.clone());
        }
        if let Some(hook) = &self.hook {
            hook(&report);
        }
        report.unsettled
    }

    /// Watches until `shutdown` turns true.
    pub async fn run(&self, mut shutdown: ShutdownWatch) {
        let dir = crate::lock(&self.loader).dir().to_owned();
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| changes_content(&e.kind)) {
                let _ = tx.send(());
            }
        })
        .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
        let _watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the adapters directory; rescanning every second instead");
                None
            }
        };
        let mut reported = HashSet::new();
        let mut rescan = tokio::time::interval(RESCAN);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recheck: Option<tokio::time::Instant> = None;
        loop {
            let recheck_at = recheck.unwrap_or_else(|| tokio::time::Instant::now() + RESCAN * 3600);
            tokio::select! {
                _ = tokio::time::sleep_until(recheck_at), if recheck.is_some() => {
                    recheck = None;
                    if self.reload(&mut reported) {
                        recheck = Some(tokio::time::Instant::now() + SETTLE);
                    }
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        return;
                    }
                }
                Some(()) = rx.recv() => {
                    let deadline = tokio::time::Instant::now() + MAX_DELAY;
                    // Debounce: wait for a quiet moment, but not forever.
                    loop {
                        match tokio::time::timeout_at(
                            deadline.min(tokio::time::Instant::now() + QUIET),
                            rx.recv(),
                        )
                        .await
                        {
                            Ok(Some(())) if tokio::time::Instant::now() < deadline => continue,
                            _ => break,
                        }
                    }
                    if self.reload(&mut reported) {
                        recheck = Some(tokio::time::Instant::now() + SETTLE);
                    }
                }
                _ = rescan.tick() => {
                    if self.reload(&mut reported) {
                        recheck = Some(tokio::time::Instant::now() + SETTLE);
                    }
                }
            }
        }
    }
}

/// Whether an event can mean a changed adapter set. Opening and reading are not: the reload
/// itself opens and reads every file, and reacting to those events reloaded the directory in
/// a loop, about ten times a second. A file closed after writing is (the write is complete).
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        notify::EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        notify::EventKind::Access(_) => false,
        _ => true,
    }
}

/// Logs each problem once (not on every rescan) and each change of the live set.
fn log_report(report: &ReloadReport, reported: &mut HashSet<String>) {
    let current: HashSet<String> = report.errors.iter().map(|e| e.to_string()).collect();
    for error in current.difference(reported) {
        tracing::error!(target: "flexiproxy::config", "{error} (the previous version of this adapter, if any, stays live)");
    }
    for fixed in reported.difference(&current) {
        tracing::info!(target: "flexiproxy::config", "resolved: {fixed}");
    }
    *reported = current;
    if report.changed {
        let names: Vec<&str> = report
            .snapshot
            .adapters
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        tracing::info!(
            target: "flexiproxy::config",
            generation = report.snapshot.generation,
            adapters = ?names,
            "configuration reloaded"
        );
    }
}

#[async_trait]
impl BackgroundService for ConfigWatcher {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.run(shutdown).await;
    }
}

#[cfg(test)]
mod tests {
    use super::changes_content;
    use notify::EventKind;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RemoveKind, RenameMode,
    };

    #[test]
    fn reads_do_not_trigger_a_reload_but_writes_renames_and_removals_do() {
        assert!(!changes_content(&EventKind::Access(AccessKind::Read)));
        assert!(!changes_content(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(changes_content(&EventKind::Create(CreateKind::File)));
        assert!(changes_content(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(changes_content(&EventKind::Modify(ModifyKind::Name(
            RenameMode::Both
        ))));
        assert!(changes_content(&EventKind::Remove(RemoveKind::File)));
        assert!(changes_content(&EventKind::Any));
    }
}
