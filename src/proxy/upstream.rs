//! Reaching a source: asynchronous, cached DNS (a worker never blocks on a lookup, and a
//! failed lookup is an error, not a panic as in `HttpPeer::new` with a host name), and the
//! [`HttpPeer`] with the adapter's timeouts, TLS and SNI.

use crate::config::adapter::{Endpoint, Timeouts};
use hickory_resolver::{Resolver, TokioResolver};
use pingora::upstreams::peer::{ALPN, HttpPeer};
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

/// Resolves host names with hickory (which caches answers for their TTL), falling back to
/// the system resolver (run off the worker threads) when hickory has no configuration or no
/// answer — e.g. names only /etc/hosts knows.
pub struct Dns {
    resolver: OnceLock<Option<TokioResolver>>,
}

impl Default for Dns {
    fn default() -> Self {
        Self::new()
    }
}

impl Dns {
    pub fn new() -> Self {
        Dns {
            resolver: OnceLock::new(),
        }
    }

    fn resolver(&self) -> Option<&TokioResolver> {
        self.resolver
            .get_or_init(|| match Resolver::builder_tokio().and_then(|b| b.build()) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "no DNS resolver configuration; using the system resolver");
                    None
                }
            })
            .as_ref()
    }

    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        if host.eq_ignore_ascii_case("localhost") {
            return Ok(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port));
        }
        if let Some(resolver) = self.resolver()
            && let Ok(lookup) = resolver.lookup_ip(host).await
            && let Some(ip) = lookup.iter().next()
        {
            return Ok(SocketAddr::new(ip, port));
        }
        tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("cannot resolve {host}: no addresses"))
    }
}

/// How long an idle pooled connection to a provider is kept: below the keep-alive timeout of
/// common servers (nginx 75 s), so we rarely pick a connection the provider is closing.
const POOL_IDLE: Duration = Duration::from_secs(50);

/// How far Pingora's read timeout trails the watchdog's first-byte and idle timeouts.
const READ_TIMEOUT_MARGIN: Duration = Duration::from_millis(500);

pub fn peer(addr: SocketAddr, endpoint: &Endpoint, timeouts: &Timeouts) -> HttpPeer {
    // An empty SNI would disable certificate verification; the host name is always set.
    let mut peer = HttpPeer::new(addr, endpoint.tls, endpoint.host.clone());
    let o = &mut peer.options;
    o.connection_timeout = Some(timeouts.connect);
    o.total_connection_timeout = Some(timeouts.connect + timeouts.tls);
    // Pingora's read timeout bounds every wait for upstream bytes, the response header
    // included, so it must allow for both the first byte and the gaps between chunks. The
    // watchdog enforces each of those precisely; this is a backstop a little behind it.
    o.read_timeout = Some(timeouts.first_byte.max(timeouts.idle) + READ_TIMEOUT_MARGIN);
    o.write_timeout = Some(timeouts.idle);
    o.idle_timeout = Some(POOL_IDLE);
    o.verify_cert = true;
    o.verify_hostname = true;
    // HTTP/1.1 upstream: one request per connection at a time, so a request's watchdog can
    // cancel it by closing its connection without touching other requests (see watchdog.rs).
    o.alpn = ALPN::H1;
    peer
}
