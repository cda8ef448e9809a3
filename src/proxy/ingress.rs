//! Limits on reading a request's header section, for both listeners (client and admin).
//!
//! Pingora's HTTP/1 server reads a header with a 60 s timeout *per read* (so a client sending
//! a byte a minute is never cut) and buffers up to 1 MiB of it (`MAX_HEADER_SIZE` in
//! pingora-core's `protocols/http/v1/common.rs`); neither is configurable, and no hook runs
//! before the header is read. [`HeaderGuard`] wraps an app's connections instead: each
//! HTTP/1 connection's stream watches its own header bytes until the blank line that ends
//! them, and
//! - cuts the connection when the header is not complete within the timeout (counted from
//!   the connection's start, or from the first byte of a kept-alive connection's next
//!   request: an idle kept-alive connection is Pingora's keep-alive timeout's business);
//! - answers 431 (`connection: close`) once the header grows past the size limit, before
//!   Pingora buffers more of it.
//!
//! HTTP/2 connections (TLS with ALPN `h2`) pass through untouched: the `h2` crate bounds
//! header lists itself.
//!
//! It also counts the connections still waiting for their first header, so that shutdown does
//! not drop a connection accepted a moment before the listener closed (see
//! [`HeaderGuard::cleanup`]).

use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType,
};
use pingora::server::ShutdownWatch;
use prometheus::IntGauge;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The body of the 431 answer, from the request's method and target (as far as they were
/// read): the client listener answers in the client's error shape.
pub type TooLargeBody = Arc<dyn Fn(&str, &str) -> Vec<u8> + Send + Sync>;

/// How a listener reads request headers.
#[derive(Clone)]
pub struct HeaderLimits {
    /// Longest time to receive a header section.
    pub timeout: Duration,
    /// Largest header section (request line included), in bytes.
    pub max_size: usize,
    pub too_large: TooLargeBody,
}

/// An HTTP app whose HTTP/1 connections read headers within [`HeaderLimits`].
pub struct HeaderGuard<A> {
    inner: Arc<A>,
    limits: HeaderLimits,
    /// HTTP/1 connections whose first request header is not complete yet.
    awaiting_first_header: IntGauge,
}

/// The longest shutdown waits for connections already accepted to send their first request.
const FIRST_HEADER_WAIT: Duration = Duration::from_secs(2);

impl<A> HeaderGuard<A> {
    pub fn new(inner: A, limits: HeaderLimits) -> Self {
        HeaderGuard {
            inner: Arc::new(inner),
            limits,
            awaiting_first_header: IntGauge::new("awaiting_first_header", "not exported")
                .expect("a valid gauge"),
        }
    }

    /// Counts the accepted HTTP/1 connections that have not sent their first request header
    /// yet in `gauge` (a draining process is not idle while there are any).
    pub fn counting_first_headers_in(mut self, gauge: IntGauge) -> Self {
        self.awaiting_first_header = gauge;
        self
    }
}

#[async_trait]
impl<A> ServerApp for HeaderGuard<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    /// Pingora's own loop over a connection's requests (`ServerApp for HttpServerApp` in
    /// pingora-core's `apps/mod.rs`), with the guarded stream under each HTTP/1 session.
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let options = self.inner.server_options();
        let not_h1 = options.is_some_and(|o| o.h2c || o.force_custom)
            || matches!(
                stream.selected_alpn_proto(),
                Some(ALPN::H2) | Some(ALPN::Custom(_))
            );
        if not_h1 {
            return ServerApp::process_new(&self.inner, stream, shutdown).await;
        }
        let mut guarded = GuardedStream::new(stream, self.limits.clone());
        guarded.first_header = Some(FirstHeader::new(&self.awaiting_first_header));
        let mut session = ServerSession::new_http1(Box::new(guarded));
        session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        session.set_keepalive_reuses_remaining(options.and_then(|o| o.keepalive_request_limit));
        let mut result = self.inner.process_new_http(session, shutdown).await;
        while let Some((stream, settings)) = result.map(|r| r.consume()) {
            let Ok(mut guarded) = stream.into_any().downcast::<GuardedStream>() else {
                return None;
            };
            guarded.next_request();
            let mut session = ServerSession::new_http1(guarded);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
            result = self.inner.process_new_http(session, shutdown).await;
        }
        None
    }

    /// Runs once the listener stopped accepting. Pingora's cleanup drops every connection still
    /// waiting for a request header — meant for idle kept-alive ones, but it would also drop a
    /// connection accepted just before the listener closed whose client has not sent its request
    /// yet, and that request would be lost (in a zero-downtime upgrade, the client cannot tell
    /// it should resend). Those connections get a moment to send it first.
    async fn cleanup(&self) {
        let end = Instant::now() + FIRST_HEADER_WAIT.min(self.limits.timeout);
        while self.awaiting_first_header.get() > 0 && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.inner.http_cleanup().await;
    }
}

/// Where a connection is in its current request.
enum Phase {
    /// Reading a header section: bytes so far, the end-of-header scanner, the request line.
    Header {
        read: usize,
        scan: EndScan,
        line: Vec<u8>,
    },
    /// Past the header: no limits of ours.
    Body,
    /// Waiting for the next request on a kept-alive connection (no deadline until it starts).
    Idle,
    /// Header too large: writing the 431, then discarding what the client still sends (so
    /// closing does not reset the connection before it reads the answer).
    Rejecting {
        answer: Bytes,
        written: usize,
    },
    Draining {
        discarded: usize,
    },
}

/// Finds the blank line ending a header section: `\n\n` or `\n\r\n`, once the request line
/// has started (empty lines before it are allowed).
#[derive(Default)]
struct EndScan {
    started: bool,
    /// 0: in a line; 1: just after `\n`; 2: after `\n\r`.
    state: u8,
}

impl EndScan {
    /// The index in `bytes` just past the header's end, if it is there.
    fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            if !self.started {
                if b == b'\r' || b == b'\n' {
                    continue;
                }
                self.started = true;
            }
            self.state = match (self.state, b) {
                (1 | 2, b'\n') => return Some(i + 1),
                (_, b'\n') => 1,
                (1, b'\r') => 2,
                _ => 0,
            };
        }
        None
    }
}

/// The longest request line kept for the 431 answer.
const MAX_LINE: usize = 4096;
/// How much of an oversized request is read and discarded after the 431.
const MAX_DISCARD: usize = 4 * 1024 * 1024;
/// How long discarding may take.
const DISCARD_TIME: Duration = Duration::from_secs(2);

struct GuardedStream {
    inner: Stream,
    limits: HeaderLimits,
    phase: Phase,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Held until the connection's first header is complete (or the connection ends).
    first_header: Option<FirstHeader>,
}

/// Counts a connection in [`HeaderGuard`]'s `awaiting_first_header` while it lives.
struct FirstHeader(IntGauge);

impl FirstHeader {
    fn new(count: &IntGauge) -> Self {
        count.inc();
        FirstHeader(count.clone())
    }
}

impl Drop for FirstHeader {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl std::fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedStream")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl GuardedStream {
    /// A new connection: its first header is due within the timeout from now.
    fn new(inner: Stream, limits: HeaderLimits) -> Self {
        let deadline = Some(Box::pin(tokio::time::sleep(limits.timeout)));
        GuardedStream {
            inner,
            limits,
            phase: Phase::Header {
                read: 0,
                scan: EndScan::default(),
                line: Vec::new(),
            },
            deadline,
            first_header: None,
        }
    }

    /// The previous request is done (its body drained): the next bytes start a header.
    fn next_request(&mut self) {
        self.phase = Phase::Idle;
        self.deadline = None;
    }

    /// Accounts the header bytes just read; true when they break the size limit.
    fn header_bytes(&mut self, bytes: &[u8]) -> bool {
        if matches!(self.phase, Phase::Idle) {
            self.phase = Phase::Header {
                read: 0,
                scan: EndScan::default(),
                line: Vec::new(),
            };
            self.deadline = Some(Box::pin(tokio::time::sleep(self.limits.timeout)));
        }
        let Phase::Header { read, scan, line } = &mut self.phase else {
            return false;
        };
        if line.len() < MAX_LINE && !line.contains(&b'\n') {
            let room = MAX_LINE - line.len();
            line.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        let end = scan.feed(bytes);
        *read += end.unwrap_or(bytes.len());
        if *read > self.limits.max_size {
            return true;
        }
        if end.is_some() {
            self.phase = Phase::Body;
            self.deadline = None;
            self.first_header = None;
        }
        false
    }

    /// The 431 answer for what was read of the request line.
    fn rejection(&self) -> Bytes {
        let line = match &self.phase {
            Phase::Header { line, .. } => String::from_utf8_lossy(line).into_owned(),
            _ => String::new(),
        };
        let line = line.trim_start().lines().next().unwrap_or("").to_owned();
        let mut parts = line.split_ascii_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        let body = (self.limits.too_large)(method, target);
        let mut answer = format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&body);
        Bytes::from(answer)
    }

    fn timed_out() -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "request header not received in time",
        )
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Body => return Pin::new(&mut this.inner).poll_read(cx, buf),
                Phase::Header { .. } | Phase::Idle => {
                    let before = buf.filled().len();
                    match Pin::new(&mut this.inner).poll_read(cx, buf) {
                        Poll::Ready(Ok(())) => {
                            let new = buf.filled()[before..].to_vec();
                            if !new.is_empty() && this.header_bytes(&new) {
                                buf.set_filled(before);
                                let answer = this.rejection();
                                this.phase = Phase::Rejecting { answer, written: 0 };
                                continue;
                            }
                            return Poll::Ready(Ok(()));
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {
                            if let Some(deadline) = this.deadline.as_mut()
                                && deadline.as_mut().poll(cx).is_ready()
                            {
                                return Poll::Ready(Err(Self::timed_out()));
                            }
                            return Poll::Pending;
                        }
                    }
                }
                Phase::Rejecting { answer, written } => {
                    while *written < answer.len() {
                        match Pin::new(&mut this.inner).poll_write(cx, &answer[*written..]) {
                            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                                return Poll::Ready(Err(io::Error::new(
                                    io::ErrorKind::InvalidData,
                                    "request header too large",
                                )));
                            }
                            Poll::Ready(Ok(n)) => *written += n,
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                    if Pin::new(&mut this.inner).poll_flush(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.phase = Phase::Draining { discarded: 0 };
                    this.deadline = Some(Box::pin(tokio::time::sleep(DISCARD_TIME)));
                }
                Phase::Draining { discarded } => {
                    let mut scratch = [0u8; 16 * 1024];
                    loop {
                        let mut sink = ReadBuf::new(&mut scratch);
                        let polled = Pin::new(&mut this.inner).poll_read(cx, &mut sink);
                        match polled {
                            Poll::Ready(Ok(())) if !sink.filled().is_empty() => {
                                *discarded += sink.filled().len();
                                if *discarded < MAX_DISCARD {
                                    continue;
                                }
                            }
                            Poll::Pending => {
                                let expired = this
                                    .deadline
                                    .as_mut()
                                    .is_none_or(|d| d.as_mut().poll(cx).is_ready());
                                if !expired {
                                    return Poll::Pending;
                                }
                            }
                            _ => {}
                        }
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "request header too large",
                        )));
                    }
                }
            }
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_end_of_a_header_across_reads() {
        let mut scan = EndScan::default();
        assert_eq!(scan.feed(b"POST /v1/messages HTTP/1.1\r\nhost: x\r"), None);
        assert_eq!(scan.feed(b"\n\r"), None);
        assert_eq!(scan.feed(b"\n{\"body\""), Some(1));
        let mut bare = EndScan::default();
        assert_eq!(
            bare.feed(b"\r\n\r\nGET / HTTP/1.1\nhost: x\n\nrest"),
            Some(28)
        );
        let mut partial = EndScan::default();
        assert_eq!(partial.feed(b"GET / HTTP/1.1\r\nx-a: 1\r\n"), None);
    }
}
