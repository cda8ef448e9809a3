//! `FakeProvider`: an HTTP/1.1 (optionally TLS) server on 127.0.0.1 that records every
//! request and answers with whatever [`Reply`] the test's handler returns.
//!
//! It runs on its own thread with its own tokio runtime, so it keeps serving even while
//! the test thread blocks (blocking clients, `std::thread::sleep`), and dropping it shuts
//! everything down deterministically: the listener and every open connection are closed
//! before `drop` returns.

use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::reply::{Fault, Reply};
use crate::request::{MAX_BODY, MAX_HEAD, ReadError, RecordedRequest, read_request};

type Handler = Box<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

/// Bodies up to this size are sent in the same write as the headers.
const COALESCE_LIMIT: usize = 64 * 1024;
/// How long a graceful close waits for the peer to finish sending before giving up.
const LINGER: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(5);

/// A running fake provider. Dropping it stops the listener and closes all connections.
pub struct FakeProvider {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    handler: Handler,
    record: bool,
    requests: Mutex<Vec<RecordedRequest>>,
    handled: AtomicUsize,
    open: AtomicUsize,
    accepted: AtomicUsize,
    aborted: AtomicUsize,
}

/// Options for [`FakeProvider`]; `FakeProvider::start` uses the defaults.
#[derive(Clone, Debug)]
pub struct FakeProviderBuilder {
    listen: SocketAddr,
    record: bool,
    tls: Option<(String, String)>,
    worker_threads: usize,
}

impl Default for FakeProviderBuilder {
    fn default() -> Self {
        FakeProviderBuilder {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            record: true,
            tls: None,
            worker_threads: 1,
        }
    }
}

impl FakeProviderBuilder {
    /// Address to bind (default `127.0.0.1:0`, an ephemeral port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Keep received requests for [`FakeProvider::requests`] (default on). Benchmarks turn
    /// this off so memory stays flat; `request_count` still counts, but `requests` stays
    /// empty and `wait_for_requests` can only time out.
    pub fn record_requests(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// Serve HTTPS with this PEM certificate chain (leaf first) and PEM private key.
    pub fn tls(mut self, cert_chain_pem: &str, key_pem: &str) -> Self {
        self.tls = Some((cert_chain_pem.to_string(), key_pem.to_string()));
        self
    }

    /// Runtime worker threads (default 1: a single-threaded runtime).
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = n.max(1);
        self
    }

    /// Bind and start serving; `handler` is called once per request.
    pub async fn start<H>(self, handler: H) -> io::Result<FakeProvider>
    where
        H: Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    {
        let acceptor = match &self.tls {
            Some((cert, key)) => Some(tls_acceptor(cert, key)?),
            None => None,
        };
        let runtime = if self.worker_threads == 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.worker_threads)
                .thread_name("fake-provider-worker")
                .enable_all()
                .build()?
        };
        // Bind here (not on the server thread) so bind errors reach the caller; the
        // listener must be registered with the server's runtime, hence `enter`.
        let listener = {
            let _guard = runtime.enter();
            let socket = if self.listen.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(self.listen)?;
            // A large backlog so a benchmark opening 1,000 connections at once is not
            // slowed by SYN retries.
            socket.listen(4096)?
        };
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            record: self.record,
            requests: Mutex::new(Vec::new()),
            handled: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            aborted: AtomicUsize::new(0),
        });
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-provider-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = accept_loop(listener, thread_shared, acceptor) => {}
                        _ = stop => {}
                    }
                });
                // Dropping the runtime drops every connection task, closing its socket.
                drop(runtime);
            })?;
        Ok(FakeProvider {
            addr,
            tls: self.tls.is_some(),
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

impl FakeProvider {
    /// Options beyond the defaults (listen address, TLS, recording, threads).
    pub fn builder() -> FakeProviderBuilder {
        FakeProviderBuilder::default()
    }

    /// Bind 127.0.0.1 on an ephemeral port and serve HTTP/1.1 with keep-alive, calling
    /// `handler` once per request. Panics if the port cannot be bound.
    pub async fn start<H>(handler: H) -> FakeProvider
    where
        H: Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    {
        FakeProvider::builder()
            .start(handler)
            .await
            .unwrap_or_else(|e| panic!("fake provider: failed to start: {e}"))
    }

    /// Like [`FakeProvider::start`], over TLS with this PEM certificate chain and key
    /// (see [`crate::tls::test_ca_and_cert`]). Panics on bad PEM.
    pub async fn start_tls<H>(handler: H, cert_chain_pem: &str, key_pem: &str) -> FakeProvider
    where
        H: Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    {
        FakeProvider::builder()
            .tls(cert_chain_pem, key_pem)
            .start(handler)
            .await
            .unwrap_or_else(|e| panic!("fake provider: failed to start TLS: {e}"))
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://localhost:PORT` with TLS, matching the test
    /// certificate), without a path: what Anthropic-style base URLs look like.
    pub fn origin(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// `http://127.0.0.1:PORT/v1` (`https://localhost:PORT/v1` with TLS): what
    /// OpenAI-style base URLs look like.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.origin())
    }

    /// Every request received so far, in order (empty if recording is off).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests().clone()
    }

    /// Forget the requests recorded so far.
    pub fn clear_requests(&self) {
        self.shared.requests().clear();
    }

    /// Number of requests handled so far (counted even when recording is off).
    pub fn request_count(&self) -> usize {
        self.shared.handled.load(Ordering::SeqCst)
    }

    /// Wait until at least `n` requests were recorded and return them all; panics with
    /// what did arrive if that takes longer than `deadline`.
    pub async fn wait_for_requests(&self, n: usize, deadline: Duration) -> Vec<RecordedRequest> {
        let start = Instant::now();
        loop {
            {
                let requests = self.shared.requests();
                if requests.len() >= n {
                    return requests.clone();
                }
                if start.elapsed() >= deadline {
                    let seen: Vec<String> = requests
                        .iter()
                        .map(|r| format!("{} {}", r.method, r.path))
                        .collect();
                    panic!(
                        "fake provider: timed out after {deadline:?} waiting for {n} request(s); \
                         received {}: {seen:?}",
                        requests.len()
                    );
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// TCP connections currently open.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Wait until exactly `n` connections are open; panics after `deadline`.
    pub async fn wait_for_open_connections(&self, n: usize, deadline: Duration) {
        let open = self
            .wait_until(deadline, || {
                let open = self.open_connections();
                (open == n).then_some(open)
            })
            .await;
        if open.is_none() {
            panic!(
                "fake provider: timed out after {deadline:?} waiting for {n} open connection(s); \
                 {} open",
                self.open_connections()
            );
        }
    }

    /// TCP connections accepted since start.
    pub fn connections_accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Replies cut short because the peer (the proxy) closed the connection while the reply
    /// was still being written, delayed or stalled.
    pub fn aborted_replies(&self) -> usize {
        self.shared.aborted.load(Ordering::SeqCst)
    }

    /// Wait until at least `n` replies were aborted by the peer and return the count;
    /// panics after `deadline`.
    pub async fn wait_for_aborted_replies(&self, n: usize, deadline: Duration) -> usize {
        let got = self
            .wait_until(deadline, || {
                let aborted = self.aborted_replies();
                (aborted >= n).then_some(aborted)
            })
            .await;
        got.unwrap_or_else(|| {
            panic!(
                "fake provider: timed out after {deadline:?} waiting for {n} aborted repl(ies); \
                 saw {} (open connections: {})",
                self.aborted_replies(),
                self.open_connections()
            )
        })
    }

    async fn wait_until<T>(
        &self,
        deadline: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let start = Instant::now();
        loop {
            if let Some(v) = check() {
                return Some(v);
            }
            if start.elapsed() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProvider")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("requests", &self.request_count())
            .field("open_connections", &self.open_connections())
            .finish()
    }
}

impl Shared {
    fn requests(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        // A panicking test thread must not make every later assertion panic too.
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn respond(&self, request: RecordedRequest) -> Reply {
        let reply = match catch_unwind(AssertUnwindSafe(|| (self.handler)(&request))) {
            Ok(reply) => reply,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Reply::json(
                    500,
                    crate::openai::error_body(
                        &format!("fake provider handler panicked: {message}"),
                        "server_error",
                        None,
                    ),
                )
            }
        };
        if self.record {
            self.requests().push(request);
        }
        self.handled.fetch_add(1, Ordering::SeqCst);
        reply
    }
}

/// Counts a connection as open for as long as its task lives (including when aborted).
struct OpenGuard(Arc<Shared>);

impl OpenGuard {
    fn new(shared: Arc<Shared>) -> OpenGuard {
        shared.open.fetch_add(1, Ordering::SeqCst);
        OpenGuard(shared)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn tls_acceptor(cert_chain_pem: &str, key_pem: &str) -> io::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
    let certs = CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("bad certificate PEM", &e))?;
    if certs.is_empty() {
        return Err(invalid("bad certificate PEM", &"no certificates found"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| invalid("bad private key PEM", &e))?;
    // Explicit provider: works whatever crypto features other crates enable in the build.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS config", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("TLS certificate/key", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A byte stream the server can talk over, with access to its TCP socket for RSTs.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {
    fn tcp(&self) -> &TcpStream;
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Conn for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tls: Option<TlsAcceptor>) {
    // Connection tasks live in this set, so dropping the loop aborts them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    let id = shared.accepted.fetch_add(1, Ordering::SeqCst);
                    let guard = OpenGuard::new(shared.clone());
                    let tls = tls.clone();
                    connections.spawn(async move {
                        let shared = guard.0.clone();
                        match tls {
                            None => serve_connection(tcp, &shared, id).await,
                            Some(acceptor) => {
                                if let Ok(stream) = acceptor.accept(tcp).await {
                                    serve_connection(stream, &shared, id).await;
                                }
                            }
                        }
                        drop(guard);
                    });
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// How a reply ended, i.e. what to do with the connection next.
enum Outcome {
    KeepAlive,
    Close,
    Reset,
    PeerGone,
}

async fn serve_connection<S: Conn>(mut stream: S, shared: &Shared, id: usize) {
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    loop {
        let incoming = match read_request(&mut stream, &mut rbuf, id).await {
            Ok(Some(incoming)) => incoming,
            Ok(None) | Err(ReadError::Gone) => return,
            Err(ReadError::Bad(status, message)) => {
                let reply = Reply::json(
                    status,
                    crate::openai::error_body(
                        &format!("fake provider: {message}"),
                        "invalid_request_error",
                        None,
                    ),
                );
                out.clear();
                reply.write_head(&mut out, true, false);
                out.extend_from_slice(&reply.body_bytes());
                if send(&mut stream, &out).await.is_ok() {
                    lingering_close(stream, &mut rbuf).await;
                }
                return;
            }
        };
        let reply = shared.respond(incoming.request);
        let outcome = send_reply(
            &mut stream,
            &mut rbuf,
            &mut out,
            &reply,
            incoming.keep_alive,
            incoming.http10_keep_alive,
            incoming.head,
        )
        .await;
        match outcome {
            Outcome::KeepAlive => {
                // Don't let one huge reply pin its buffer for the connection's lifetime.
                if out.capacity() > 4 * COALESCE_LIMIT {
                    out = BytesMut::with_capacity(16 * 1024);
                }
            }
            Outcome::Close => return lingering_close(stream, &mut rbuf).await,
            Outcome::Reset => {
                // SO_LINGER 0 makes the close below send RST instead of FIN.
                let _ = stream.tcp().set_zero_linger();
                return;
            }
            Outcome::PeerGone => {
                shared.aborted.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

async fn send_reply<S: Conn>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    out: &mut BytesMut,
    reply: &Reply,
    keep_alive: bool,
    http10_keep_alive: bool,
    head_only: bool,
) -> Outcome {
    if let Some(garbage) = &reply.garbage {
        return match send(stream, garbage).await {
            Ok(()) => Outcome::Close,
            Err(_) => Outcome::PeerGone,
        };
    }
    if let Some(delay) = reply.delay_before_headers
        && !idle(stream, rbuf, delay).await
    {
        return Outcome::PeerGone;
    }
    if reply.fault == Fault::ResetBeforeHeaders {
        return Outcome::Reset;
    }
    let close = reply.closes_connection() || !keep_alive;
    let done = if close {
        Outcome::Close
    } else {
        Outcome::KeepAlive
    };

    // Hot path for benchmarks: the whole response was serialized once.
    if let Some(prepared) = &reply.prepared
        && keep_alive
        && !http10_keep_alive
        && !head_only
    {
        return match send(stream, prepared).await {
            Ok(()) => done,
            Err(_) => Outcome::PeerGone,
        };
    }

    out.clear();
    reply.write_head(out, close, http10_keep_alive && !close);
    if reply.fault == Fault::ResetMidHeaders {
        let half = (out.len() / 2).max(1);
        return match send(stream, &out[..half]).await {
            Ok(()) => Outcome::Reset,
            Err(_) => Outcome::PeerGone,
        };
    }
    let budget = match reply.fault {
        Fault::ResetAfterBody(n) | Fault::StallAfterBody(n) => Some(n),
        _ => None,
    };
    let writes = if head_only {
        Vec::new()
    } else {
        reply.body_writes(budget)
    };
    let paced = !reply.split.is_empty() || reply.delay_between_writes.is_some();
    let total: usize = writes.iter().map(|w| w.len()).sum();
    if !paced && total <= COALESCE_LIMIT {
        for w in &writes {
            out.extend_from_slice(w);
        }
        if send(stream, out).await.is_err() {
            return Outcome::PeerGone;
        }
    } else {
        if send(stream, out).await.is_err() {
            return Outcome::PeerGone;
        }
        for (i, w) in writes.iter().enumerate() {
            if i > 0
                && let Some(delay) = reply.delay_between_writes
                && !idle(stream, rbuf, delay).await
            {
                return Outcome::PeerGone;
            }
            if send(stream, w).await.is_err() {
                return Outcome::PeerGone;
            }
        }
    }
    match reply.fault {
        Fault::ResetAfterBody(_) => Outcome::Reset,
        Fault::StallAfterBody(_) => {
            wait_for_peer_close(stream, rbuf).await;
            Outcome::PeerGone
        }
        _ => done,
    }
}

async fn send<S: Conn>(stream: &mut S, data: &[u8]) -> io::Result<()> {
    stream.write_all(data).await?;
    // A no-op for plain TCP; pushes buffered records out for TLS.
    stream.flush().await
}

/// Sleep for `d` while watching the socket, so a peer that hangs up during a delay is
/// noticed at once. Anything the peer sends meanwhile is kept in `rbuf`. Returns false if
/// the peer closed. (A peer that half-closes its sending side counts as gone.)
async fn idle<S: Conn>(stream: &mut S, rbuf: &mut BytesMut, d: Duration) -> bool {
    let sleep = tokio::time::sleep(d);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            read = stream.read_buf(rbuf) => match read {
                Ok(0) | Err(_) => return false,
                Ok(_) if rbuf.len() > MAX_HEAD + MAX_BODY => return false,
                Ok(_) => {}
            }
        }
    }
}

/// Hold the connection, sending nothing, until the peer closes it.
async fn wait_for_peer_close<S: Conn>(stream: &mut S, rbuf: &mut BytesMut) {
    loop {
        rbuf.clear();
        match stream.read_buf(rbuf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Close gracefully: send FIN (and TLS close_notify), then drain what the peer still sends
/// for a while, because closing with unread data makes the kernel send RST, which can
/// destroy the response before the peer reads it.
async fn lingering_close<S: Conn>(mut stream: S, rbuf: &mut BytesMut) {
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(LINGER, wait_for_peer_close(&mut stream, rbuf)).await;
}
