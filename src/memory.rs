//! Gives memory freed after a burst back to the operating system.
//!
//! mimalloc (the binary's allocator) returns freed pages to the OS only when some thread calls
//! into it and finds purges that are due; a proxy that goes quiet after a burst of 1,000
//! streams allocates almost nothing, so its RSS stayed at the burst's peak (218 MB an hour
//! after, docs/benchmarks.md). One thread asks mimalloc every few seconds to purge what has
//! been free for longer than its purge delay (`mi_collect`, not forced: memory freed a moment
//! ago and about to be reused is left alone, so a busy proxy pays nothing measurable).

use std::time::Duration;

/// How often the purge runs. RSS is back within a few of these after a burst ends.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the purge thread (once per process; only meaningful with mimalloc as the global
/// allocator, which `src/main.rs` sets).
pub fn start_purging() {
    let spawned = std::thread::Builder::new()
        .name("memory-purge".to_owned())
        .spawn(|| {
            loop {
                std::thread::sleep(PURGE_INTERVAL);
                purge();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "memory purge thread not started: RSS stays at its peak");
    }
}

/// Purges what mimalloc has kept free past its purge delay, in every thread's arenas.
pub fn purge() {
    // SAFETY: `mi_collect` only walks mimalloc's own structures; any thread may call it.
    unsafe { libmimalloc_sys::mi_collect(false) }
}
