//! Per-request provider timeouts that Pingora's single read timeout cannot express: time to
//! the first byte, the longest silence between chunks, and the total time — each on its own.
//!
//! A small task watches the request's clocks. When one runs out it shuts the upstream socket
//! down, which makes Pingora's pending read fail; `fail_to_proxy` then sees which timeout fired
//! and answers 504 `timeout_error` (before the response started) or ends the stream with an
//! `error` event. The watchdog holds its own duplicate of the socket, so the descriptor it
//! shuts down can never be one the process has since reused; and it never touches a socket
//! after the response is done (the connection may be back in the pool by then). Upstream
//! connections are HTTP/1.1, one request each at a time, so this only ever cancels its own
//! request.

use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    FirstByte,
    Idle,
    Total,
    /// Not a timeout of the request's own: the server's shutdown grace period ran out.
    Shutdown,
}

impl Timeout {
    pub fn describe(self, after: Duration) -> String {
        let after = humantime::format_duration(after);
        match self {
            Timeout::FirstByte => {
                format!("the provider sent nothing within {after} (first_byte timeout)")
            }
            Timeout::Idle => format!("the provider went silent for {after} (idle timeout)"),
            Timeout::Total => format!("the request took longer than {after} (total timeout)"),
            Timeout::Shutdown => "the proxy is shutting down; retry the request".to_owned(),
        }
    }
}

const PHASE_SENDING: u8 = 0;
const PHASE_WAITING: u8 = 1;
const PHASE_RECEIVING: u8 = 2;
const PHASE_DONE: u8 = 3;

struct Shared {
    origin: Instant,
    phase: AtomicU8,
    /// Milliseconds since `origin` of the last sign of life (request sent, or a chunk).
    last_activity: AtomicU64,
    fired: AtomicU8,
    socket: Mutex<Option<OwnedFd>>,
}

pub struct Watchdog {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    limits: Limits,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Option<Duration>,
}

impl Watchdog {
    /// Starts watching the connection `fd` of a request that began at `started`; `terminate`
    /// turning true ends the request at once (end of the shutdown grace period).
    pub fn start(
        fd: RawFd,
        started: Instant,
        limits: Limits,
        terminate: tokio::sync::watch::Receiver<bool>,
    ) -> Option<Watchdog> {
        // SAFETY: `fd` is the open upstream socket Pingora handed to `connected_to_upstream`;
        // it stays open for the duration of this call, which only duplicates it.
        let socket = unsafe { BorrowedFd::borrow_raw(fd) }
            .try_clone_to_owned()
            .ok()?;
        let shared = Arc::new(Shared {
            origin: started,
            phase: AtomicU8::new(PHASE_SENDING),
            last_activity: AtomicU64::new(0),
            fired: AtomicU8::new(0),
            socket: Mutex::new(Some(socket)),
        });
        let task = tokio::spawn(watch(shared.clone(), limits, terminate));
        Some(Watchdog {
            shared,
            task,
            limits,
        })
    }

    fn now_ms(&self) -> u64 {
        self.shared.origin.elapsed().as_millis() as u64
    }

    /// The request is on its way: the first-byte clock starts.
    pub fn request_sent(&self) {
        self.shared
            .last_activity
            .store(self.now_ms(), Ordering::Release);
        let _ = self.shared.phase.compare_exchange(
            PHASE_SENDING,
            PHASE_WAITING,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Bytes arrived from the provider.
    pub fn activity(&self) {
        self.shared
            .last_activity
            .store(self.now_ms(), Ordering::Release);
        let phase = self.shared.phase.load(Ordering::Acquire);
        if phase == PHASE_WAITING || phase == PHASE_SENDING {
            self.shared.phase.store(PHASE_RECEIVING, Ordering::Release);
        }
    }

    /// The response is complete (or failed): stand down and let go of the socket.
    pub fn finish(&self) {
        let mut socket = lock(&self.shared.socket);
        self.shared.phase.store(PHASE_DONE, Ordering::Release);
        socket.take();
        self.task.abort();
    }

    /// The timeout a read timeout from Pingora's backstop belongs to, given the phase the
    /// request was in; `None` once the response is done.
    pub fn timeout_for_phase(&self) -> Option<(Timeout, Duration)> {
        match self.shared.phase.load(Ordering::Acquire) {
            PHASE_SENDING | PHASE_WAITING => Some((Timeout::FirstByte, self.limits.first_byte)),
            PHASE_RECEIVING => Some((Timeout::Idle, self.limits.idle)),
            _ => None,
        }
    }

    /// Which timeout fired, and its length.
    pub fn fired(&self) -> Option<(Timeout, Duration)> {
        match self.shared.fired.load(Ordering::Acquire) {
            1 => Some((Timeout::FirstByte, self.limits.first_byte)),
            2 => Some((Timeout::Idle, self.limits.idle)),
            3 => Some((Timeout::Total, self.limits.total.unwrap_or_default())),
            4 => Some((Timeout::Shutdown, Duration::ZERO)),
            _ => None,
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.finish();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The next deadline and the timeout it belongs to, from the current phase.
fn next_deadline(shared: &Shared, limits: &Limits) -> Option<(Duration, u8)> {
    let phase = shared.phase.load(Ordering::Acquire);
    let last = Duration::from_millis(shared.last_activity.load(Ordering::Acquire));
    let silence = match phase {
        PHASE_WAITING => Some((last + limits.first_byte, 1)),
        PHASE_RECEIVING => Some((last + limits.idle, 2)),
        _ => None,
    };
    let total = limits.total.map(|t| (t, 3));
    match (silence, total) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

async fn watch(
    shared: Arc<Shared>,
    limits: Limits,
    mut terminate: tokio::sync::watch::Receiver<bool>,
) {
    // Without a sender (no shutdown logic, e.g. embedded in tests) there is nothing to watch.
    let mut terminate_open = true;
    loop {
        if shared.phase.load(Ordering::Acquire) == PHASE_DONE {
            return;
        }
        if *terminate.borrow() {
            fire(&shared, 4);
            return;
        }
        let elapsed = shared.origin.elapsed();
        // Still sending the request and no total limit: look again shortly.
        let (wait, which) = match next_deadline(&shared, &limits) {
            Some((deadline, which)) if elapsed >= deadline => (Duration::ZERO, which),
            Some((deadline, which)) => (deadline - elapsed, which),
            None => (Duration::from_millis(250), 0),
        };
        if !wait.is_zero() || which == 0 {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = terminate.changed(), if terminate_open => {
                    terminate_open = changed.is_ok();
                }
            }
            continue;
        }
        // A deadline passed; the phase may have moved on meanwhile (`fire` re-checks under
        // the lock that `finish` takes).
        match next_deadline(&shared, &limits) {
            Some((d, w)) if w == which && shared.origin.elapsed() >= d => {}
            _ => continue,
        }
        fire(&shared, which);
        return;
    }
}

/// Records why and shuts the upstream socket down, unless the response is already done.
fn fire(shared: &Shared, which: u8) {
    let mut socket = lock(&shared.socket);
    if shared.phase.load(Ordering::Acquire) == PHASE_DONE {
        return;
    }
    shared.fired.store(which, Ordering::Release);
    if let Some(fd) = socket.take() {
        let stream = std::net::TcpStream::from(fd);
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}
