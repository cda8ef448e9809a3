//! Per-request provider timeouts that Pingora's single read timeout cannot express: time to
//! the first byte, the longest silence between chunks, and the total time — each on its own.
//!
//! One task per proxy (not one per request: spawning, waking and aborting a task cost more than
//! the rest of a small request's own work) looks at every watched request's clocks each
//! [`TICK`]. When one runs out it cancels the request's wait for the provider, in one of two
//! ways:
//!
//! - In Pingora's proxy loop ([`WatchList::watch_socket`]) the wait is Pingora's, out of our
//!   reach: the watchdog shuts the upstream socket down, which makes the pending read fail.
//!   It holds its own duplicate of the socket, so the descriptor it shuts down can never be
//!   one the process has since reused; and it never touches a socket after the response is
//!   done (the connection may be back in the pool by then). Upstream connections are
//!   HTTP/1.1, one request each at a time, so this only ever cancels its own request.
//! - In the direct exchange ([`WatchList::watch_in_task`]) the waits are ours: each one also
//!   waits on [`Expiry::wait`], which the watchdog wakes. No socket is duplicated, and no
//!   per-read timer is needed (Pingora's read and write timeouts register one per I/O call),
//!   so a request costs two system calls and a few timer registrations less; the watchdog
//!   also bounds the sending of the request there (the idle timeout).
//!
//! Either way the answer to the client then names the timeout that fired: 504 `timeout_error`
//! before the response started, or an `error` event that ends the stream.

use crate::lock;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
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
    cancel: Cancel,
    limits: Limits,
}

/// How a fired timeout reaches the wait it ends.
enum Cancel {
    /// The upstream socket to shut down (taken when the response is done).
    Socket(Mutex<Option<OwnedFd>>),
    /// The waiter to wake: the direct exchange's own waits (see [`Expiry`]).
    Wake(tokio::sync::Notify),
}

pub struct Watchdog {
    shared: Arc<Shared>,
}

/// How often the watch list looks at its requests' clocks: how late a timeout can fire.
/// Pingora's own read timeout trails the watchdog by more than this (see `upstream`).
pub const TICK: Duration = Duration::from_millis(25);

struct ListInner {
    /// The requests watched; the ticker drops those finished or gone.
    entries: Mutex<Vec<Weak<Shared>>>,
    /// Wakes the ticker when the first request is added to an empty list (and when the list
    /// is dropped, so the ticker ends).
    added: Arc<tokio::sync::Notify>,
    ticker_started: AtomicBool,
    terminate: tokio::sync::watch::Receiver<bool>,
}

/// The requests being watched, and the one task that watches them all.
#[derive(Clone)]
pub struct WatchList {
    inner: Arc<ListInner>,
}

impl WatchList {
    /// `terminate` turning true ends every watched request at once (end of the shutdown grace
    /// period).
    pub fn new(terminate: tokio::sync::watch::Receiver<bool>) -> Self {
        WatchList {
            inner: Arc::new(ListInner {
                entries: Mutex::new(Vec::new()),
                added: Arc::new(tokio::sync::Notify::new()),
                ticker_started: AtomicBool::new(false),
                terminate,
            }),
        }
    }

    /// Starts watching the connection `fd` of a request (in Pingora's proxy loop) that began
    /// at `started`: a timeout shuts the socket down. Must be called within a Tokio runtime
    /// (the first call starts the ticker there).
    pub fn watch_socket(&self, fd: RawFd, started: Instant, limits: Limits) -> Option<Watchdog> {
        // SAFETY: `fd` is the open upstream socket Pingora handed to `connected_to_upstream`;
        // it stays open for the duration of this call, which only duplicates it.
        let socket = unsafe { BorrowedFd::borrow_raw(fd) }
            .try_clone_to_owned()
            .ok()?;
        Some(self.watch(started, 0, Cancel::Socket(Mutex::new(Some(socket))), limits))
    }

    /// Starts watching an attempt of the direct exchange, about to send its request now: a
    /// timeout wakes [`Expiry::wait`]. Sending is bounded by the idle timeout. Must be called
    /// within a Tokio runtime (the first call starts the ticker there).
    pub fn watch_in_task(&self, started: Instant, limits: Limits) -> Watchdog {
        let now = started.elapsed().as_millis() as u64;
        self.watch(
            started,
            now,
            Cancel::Wake(tokio::sync::Notify::new()),
            limits,
        )
    }

    fn watch(&self, started: Instant, now_ms: u64, cancel: Cancel, limits: Limits) -> Watchdog {
        let shared = Arc::new(Shared {
            origin: started,
            phase: AtomicU8::new(PHASE_SENDING),
            last_activity: AtomicU64::new(now_ms),
            fired: AtomicU8::new(0),
            cancel,
            limits,
        });
        let was_empty = {
            let mut entries = lock(&self.inner.entries);
            entries.push(Arc::downgrade(&shared));
            entries.len() == 1
        };
        if !self.inner.ticker_started.swap(true, Ordering::AcqRel) {
            tokio::spawn(tick(Arc::downgrade(&self.inner)));
        } else if was_empty {
            self.inner.added.notify_one();
        }
        Watchdog { shared }
    }

    /// Requests currently watched (including ones finished since the last tick).
    pub fn len(&self) -> usize {
        lock(&self.inner.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for ListInner {
    fn drop(&mut self) {
        self.added.notify_one();
    }
}

/// The ticker: every [`TICK`], fires what ran out and forgets what finished; sleeps while
/// nothing is watched. Ends when the list is dropped.
async fn tick(list: Weak<ListInner>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(inner) = list.upgrade() else { return };
        let terminate = *inner.terminate.borrow();
        let idle = {
            let mut entries = lock(&inner.entries);
            entries.retain(|watched| {
                let Some(shared) = watched.upgrade() else {
                    return false;
                };
                if shared.phase.load(Ordering::Acquire) == PHASE_DONE {
                    return false;
                }
                if terminate {
                    fire(&shared, 4);
                    return false;
                }
                match expired(&shared) {
                    Some(which) => {
                        fire(&shared, which);
                        false
                    }
                    None => true,
                }
            });
            entries.is_empty()
        };
        if idle {
            // Nothing to watch: sleep until a request arrives, without holding the list.
            let added = inner.added.clone();
            drop(inner);
            added.notified().await;
            interval.reset();
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Option<Duration>,
}

impl Watchdog {
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
        match &self.shared.cancel {
            Cancel::Socket(socket) => {
                let mut socket = lock(socket);
                self.shared.phase.store(PHASE_DONE, Ordering::Release);
                socket.take();
            }
            Cancel::Wake(_) => self.shared.phase.store(PHASE_DONE, Ordering::Release),
        }
    }

    /// What the direct exchange's waits select on, to end when a timeout fires.
    pub fn expiry(&self) -> Expiry {
        Expiry {
            shared: self.shared.clone(),
        }
    }

    /// The timeout a read timeout from Pingora's backstop belongs to, given the phase the
    /// request was in; `None` once the response is done.
    pub fn timeout_for_phase(&self) -> Option<(Timeout, Duration)> {
        match self.shared.phase.load(Ordering::Acquire) {
            PHASE_SENDING | PHASE_WAITING => {
                Some((Timeout::FirstByte, self.shared.limits.first_byte))
            }
            PHASE_RECEIVING => Some((Timeout::Idle, self.shared.limits.idle)),
            _ => None,
        }
    }

    /// Which timeout fired, and its length.
    pub fn fired(&self) -> Option<(Timeout, Duration)> {
        match self.shared.fired.load(Ordering::Acquire) {
            1 => Some((Timeout::FirstByte, self.shared.limits.first_byte)),
            2 => Some((Timeout::Idle, self.shared.limits.idle)),
            3 => Some((Timeout::Total, self.shared.limits.total.unwrap_or_default())),
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

/// A handle on a request watched in its task ([`WatchList::watch_in_task`]).
pub struct Expiry {
    shared: Arc<Shared>,
}

impl Expiry {
    /// Resolves once one of the request's timeouts has fired (at once if one has).
    pub async fn wait(&self) {
        let Cancel::Wake(wake) = &self.shared.cancel else {
            return std::future::pending().await;
        };
        loop {
            // Registered before the check, so a firing in between is not missed.
            let woken = wake.notified();
            if self.shared.fired.load(Ordering::Acquire) != 0 {
                return;
            }
            woken.await;
        }
    }
}

/// The next deadline and the timeout it belongs to, from the current phase.
fn next_deadline(shared: &Shared) -> Option<(Duration, u8)> {
    let limits = &shared.limits;
    let phase = shared.phase.load(Ordering::Acquire);
    let last = Duration::from_millis(shared.last_activity.load(Ordering::Acquire));
    let silence = match phase {
        // Only a request watched in its task has its whole body in hand when it starts
        // sending; in the proxy loop the client may still be uploading it.
        PHASE_SENDING if matches!(shared.cancel, Cancel::Wake(_)) => Some((last + limits.idle, 2)),
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

/// Which timeout (1 first byte, 2 idle, 3 total) has run out, if any.
fn expired(shared: &Shared) -> Option<u8> {
    let (deadline, which) = next_deadline(shared)?;
    (shared.origin.elapsed() >= deadline).then_some(which)
}

/// Records why and cancels the request's wait (shuts its socket down, or wakes it), unless
/// the response is already done.
fn fire(shared: &Shared, which: u8) {
    match &shared.cancel {
        Cancel::Socket(socket) => {
            let mut socket = lock(socket);
            if shared.phase.load(Ordering::Acquire) == PHASE_DONE {
                return;
            }
            shared.fired.store(which, Ordering::Release);
            if let Some(fd) = socket.take() {
                let stream = std::net::TcpStream::from(fd);
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
        Cancel::Wake(wake) => {
            if shared.phase.load(Ordering::Acquire) == PHASE_DONE {
                return;
            }
            shared.fired.store(which, Ordering::Release);
            // A permit is kept if the request is not waiting right now.
            wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use tokio::io::AsyncReadExt;

    /// A connected loopback pair: (our side, the peer's side).
    async fn pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ours, theirs) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        (ours.unwrap(), theirs.unwrap().0)
    }

    fn limits(first_byte_ms: u64, idle_ms: u64, total_ms: Option<u64>) -> Limits {
        Limits {
            first_byte: Duration::from_millis(first_byte_ms),
            idle: Duration::from_millis(idle_ms),
            total: total_ms.map(Duration::from_millis),
        }
    }

    /// Waits (with a deadline) until the peer sees our side shut down: EOF on its read.
    async fn peer_sees_shutdown(theirs: &mut tokio::net::TcpStream) -> bool {
        let mut buf = [0u8; 16];
        matches!(
            tokio::time::timeout(Duration::from_secs(10), theirs.read(&mut buf)).await,
            Ok(Ok(0))
        )
    }

    #[tokio::test]
    async fn first_byte_then_idle_timeouts_fire_and_shut_the_socket_down() {
        let (_, terminate) = tokio::sync::watch::channel(false);
        let list = WatchList::new(terminate);

        let (ours, mut theirs) = pair().await;
        let dog = list
            .watch_socket(ours.as_raw_fd(), Instant::now(), limits(50, 5_000, None))
            .unwrap();
        dog.request_sent();
        assert!(peer_sees_shutdown(&mut theirs).await);
        assert_eq!(dog.fired().map(|f| f.0), Some(Timeout::FirstByte));

        let (ours, mut theirs) = pair().await;
        let dog = list
            .watch_socket(ours.as_raw_fd(), Instant::now(), limits(5_000, 50, None))
            .unwrap();
        dog.request_sent();
        dog.activity();
        assert!(peer_sees_shutdown(&mut theirs).await);
        assert_eq!(dog.fired().map(|f| f.0), Some(Timeout::Idle));
    }

    /// Waits (with a deadline) for a request watched in its task to be woken.
    async fn woken(expiry: &Expiry) -> bool {
        tokio::time::timeout(Duration::from_secs(10), expiry.wait())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn in_task_timeouts_wake_the_wait_and_sending_is_bounded_by_idle() {
        let (_, terminate) = tokio::sync::watch::channel(false);
        let list = WatchList::new(terminate);

        // A provider that never reads the request: the idle clock runs while sending.
        let dog = list.watch_in_task(Instant::now(), limits(60_000, 50, None));
        assert!(woken(&dog.expiry()).await);
        assert_eq!(dog.fired().map(|f| f.0), Some(Timeout::Idle));

        // Sent, then nothing: first byte. The wait was entered before the firing.
        let dog = list.watch_in_task(Instant::now(), limits(50, 60_000, None));
        let expiry = dog.expiry();
        dog.request_sent();
        assert!(woken(&expiry).await);
        assert_eq!(dog.fired().map(|f| f.0), Some(Timeout::FirstByte));
        // A wait entered after the firing returns at once.
        assert!(woken(&expiry).await);

        // Watched long after the request began: the clocks start at the watch, not before.
        let long_ago = Instant::now() - Duration::from_secs(30);
        let dog = list.watch_in_task(long_ago, limits(60_000, 10_000, None));
        assert_eq!(expired(&dog.shared), None);
        dog.finish();
    }

    #[tokio::test]
    async fn total_timeout_fires_even_while_bytes_keep_coming() {
        let (_, terminate) = tokio::sync::watch::channel(false);
        let list = WatchList::new(terminate);
        let (ours, mut theirs) = pair().await;
        let dog = list
            .watch_socket(
                ours.as_raw_fd(),
                Instant::now(),
                limits(5_000, 5_000, Some(100)),
            )
            .unwrap();
        dog.request_sent();
        let keep_busy = async {
            loop {
                dog.activity();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            shut = peer_sees_shutdown(&mut theirs) => assert!(shut),
            _ = keep_busy => unreachable!(),
        }
        assert_eq!(dog.fired().map(|f| f.0), Some(Timeout::Total));
    }

    #[tokio::test]
    async fn a_finished_request_is_forgotten_and_never_fired() {
        let (_, terminate) = tokio::sync::watch::channel(false);
        let list = WatchList::new(terminate);
        let (ours, mut theirs) = pair().await;
        let dog = list
            .watch_socket(ours.as_raw_fd(), Instant::now(), limits(30, 30, Some(30)))
            .unwrap();
        dog.request_sent();
        dog.finish();
        let in_task = list.watch_in_task(Instant::now(), limits(30, 30, Some(30)));
        in_task.request_sent();
        in_task.finish();
        // The ticker drops finished entries; wait for that, then past every deadline.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !list.is_empty() {
            assert!(Instant::now() < deadline, "finished request still watched");
            tokio::time::sleep(TICK).await;
        }
        assert_eq!(dog.fired(), None);
        assert_eq!(in_task.fired(), None);
        // The socket is still open: the peer reads nothing (no EOF) and can write to it.
        use tokio::io::AsyncWriteExt;
        theirs.write_all(b"ping").await.unwrap();
        let mut ours = ours;
        let mut buf = [0u8; 4];
        ours.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[tokio::test]
    async fn terminate_ends_every_watched_request_and_the_ticker_wakes_after_idling() {
        let (end, terminate) = tokio::sync::watch::channel(false);
        let list = WatchList::new(terminate);
        // First request finishes at once: the list goes idle and the ticker sleeps.
        let (ours, _theirs) = pair().await;
        list.watch_socket(
            ours.as_raw_fd(),
            Instant::now(),
            limits(60_000, 60_000, None),
        )
        .unwrap()
        .finish();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !list.is_empty() {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(TICK).await;
        }
        // A request added to the idle list is watched again.
        let (a, mut a_peer) = pair().await;
        let (b, mut b_peer) = pair().await;
        let dog_a = list
            .watch_socket(a.as_raw_fd(), Instant::now(), limits(60_000, 60_000, None))
            .unwrap();
        let dog_b = list
            .watch_socket(b.as_raw_fd(), Instant::now(), limits(60_000, 60_000, None))
            .unwrap();
        let dog_c = list.watch_in_task(Instant::now(), limits(60_000, 60_000, None));
        end.send(true).unwrap();
        assert!(peer_sees_shutdown(&mut a_peer).await);
        assert!(peer_sees_shutdown(&mut b_peer).await);
        assert!(woken(&dog_c.expiry()).await);
        assert_eq!(dog_a.fired().map(|f| f.0), Some(Timeout::Shutdown));
        assert_eq!(dog_b.fired().map(|f| f.0), Some(Timeout::Shutdown));
        assert_eq!(dog_c.fired().map(|f| f.0), Some(Timeout::Shutdown));
    }
}
