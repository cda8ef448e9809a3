//! The floor FlexiProxy is built on: a minimal Pingora reverse proxy that forwards every
//! request unchanged to one upstream — no routing, no auth, no body handling, no logging.
//! The load benchmark (`benches/load.sh`) runs it next to FlexiProxy so the cost of
//! FlexiProxy's own work shows as the difference between the two.
//!
//! ```sh
//! cargo run --release --example bare_passthrough -- \
//!     --listen 127.0.0.1:8790 --upstream 127.0.0.1:9100 --threads 1
//! ```
//!
//! Prints `listening on http://ADDR` once the listener is configured; stops on SIGINT or
//! SIGTERM.
//!
//! `--chunked` is a diagnostic: it drops `content-length` from the request and the response
//! headers, so both sides go out with chunked framing — what FlexiProxy must do when it
//! rewrites a body whose new length is unknown when the headers leave. The difference
//! between the two modes is the cost of that framing alone (more writes per exchange: Pingora
//! flushes a header without a length at once, and the last chunk separately).

use std::net::SocketAddr;

use async_trait::async_trait;
use clap::Parser;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service_with_name};
use pingora::server::configuration::ServerConf;

#[derive(Parser, Debug)]
#[command(
    name = "bare_passthrough",
    about = "A bare Pingora passthrough: every request forwarded unchanged"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8790")]
    listen: SocketAddr,
    /// The upstream (plain HTTP) every request goes to.
    #[arg(long)]
    upstream: SocketAddr,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Drop `content-length` both ways (chunked framing), as a body-rewriting proxy must.
    #[arg(long)]
    chunked: bool,
}

struct Bare {
    upstream: SocketAddr,
    chunked: bool,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        if self.chunked {
            upstream_request.remove_header("content-length");
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        if self.chunked {
            upstream_response.remove_header("content-length");
        }
        Ok(())
    }
}

fn main() {
    let args = Args::parse();
    let conf = ServerConf {
        threads: args.threads,
        // Shut down promptly when the benchmark script stops it.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        pid_file: std::env::temp_dir()
            .join(format!("bare-passthrough-{}.pid", std::process::id()))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service_with_name(
        &server.configuration,
        Bare {
            upstream: args.upstream,
            chunked: args.chunked,
        },
        "bare passthrough",
    );
    service.add_tcp(&args.listen.to_string());
    server.add_service(service);
    println!("listening on http://{}", args.listen);
    server.run_forever();
}
