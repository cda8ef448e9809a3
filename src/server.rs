//! Assembles and runs the Pingora server from a [`ServerConfig`]: the proxy service on every
//! listener, the config watcher as a background service, and shutdown signals that also flip
//! readiness.

use crate::admin::AdminApp;
use crate::config::adapter::ApiKey;
use crate::config::server::ServerConfig;
use crate::config::snapshot::Loader;
use crate::config::watch::{ConfigWatcher, LiveConfig};
use crate::proxy::ingress::{HeaderGuard, HeaderLimits, TooLargeBody};
use crate::proxy::{FlexiProxy, Lifecycle, ProxySettings};
use crate::telemetry::Telemetry;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::usage::UsageSink;
use crate::tls::{CertWatcher, ReloadingCert};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{ExecutionPhase, RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A server ready to run, with handles to its live state.
pub struct App {
    pub server: Server,
    pub live: LiveConfig,
    pub shutting_down: Arc<AtomicBool>,
    pub telemetry: Arc<Telemetry>,
    /// Requests in progress.
    pub inflight: Arc<AtomicUsize>,
    /// Ends what is still in flight when the grace period is over.
    pub terminate: tokio::sync::watch::Sender<bool>,
    pub grace_period: Duration,
}

/// Loads the adapters (problems are logged, never fatal: a broken adapter file must not stop
/// the others) and builds the server.
pub fn build(config: &ServerConfig) -> anyhow::Result<App> {
    build_with(config, false)
}

/// Builds the server; `upgrade` takes the listening sockets over from a running process
/// (started the same way, sent SIGQUIT) instead of binding them.
pub fn build_with(config: &ServerConfig, upgrade: bool) -> anyhow::Result<App> {
    let mut loader = Loader::for_server(config);
    let report = loader.reload();
    for error in &report.errors {
        tracing::error!(target: "flexiproxy::config", "{error}");
    }
    for adapter in &report.snapshot.adapters {
        if let ApiKey::MissingEnv(var) = &adapter.source.api_key {
            tracing::warn!(
                target: "flexiproxy::config",
                "adapter `{}` ({}): environment variable {var} is not set; its requests will get 503 until it is",
                adapter.name,
                adapter.file.display()
            );
        }
    }
    tracing::info!(
        target: "flexiproxy::config",
        adapters = ?report.snapshot.adapters.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        dir = %config.adapters_dir.display(),
        "adapters loaded"
    );
    let live: LiveConfig = Arc::new(ArcSwap::new(report.snapshot.clone()));
    let metrics = Arc::new(Metrics::new());
    metrics.adapters.set(report.snapshot.adapters.len() as i64);
    metrics.config_errors.set(report.errors.len() as i64);
    let hook_metrics = metrics.clone();
    let watcher = ConfigWatcher::new(
        loader.with_settle(crate::config::watch::SETTLE),
        live.clone(),
    )
    .with_hook(Box::new(move |report| {
        if report.changed {
            hook_metrics.config_reloads.inc();
            hook_metrics
                .adapters
                .set(report.snapshot.adapters.len() as i64);
        }
        let errors = report.errors.len() as i64;
        if errors > hook_metrics.config_errors.get() {
            hook_metrics.config_reload_failures.inc();
        }
        hook_metrics.config_errors.set(errors);
    }));
    let access_log = AccessLog::open(&config.access_log)
        .map_err(|e| anyhow::anyhow!("access log {:?}: {e}", config.access_log))?;
    let usage = match &config.stats {
        Some(stats) => {
            let sink = UsageSink::start(stats, metrics.clone(), &config.instance)
                .map_err(|e| anyhow::anyhow!(e))?;
            tracing::info!(path = %stats.path.display(), "usage statistics enabled");
            Some(sink)
        }
        None => None,
    };
    let telemetry = Arc::new(Telemetry {
        metrics,
        access_log,
        usage,
        prices: config.prices.clone(),
        inspector: Arc::new(crate::telemetry::inspector::Inspector::new(
            config.inspect_memory.0,
            config.inspect_memory.1,
        )),
    });

    let conf = ServerConf {
        threads: config.threads,
        // Draining is ours (see `drain`): Pingora's own grace sleep is only a backstop.
        grace_period_seconds: Some(config.grace_period.as_secs() + 5),
        graceful_shutdown_timeout_seconds: Some(2),
        upgrade_sock: config.upgrade_sock.display().to_string(),
        pid_file: config.pid_file.display().to_string(),
        ..ServerConf::default()
    };
    let opt = pingora::server::configuration::Opt {
        upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();

    let shutting_down = Arc::new(AtomicBool::new(false));
    let inflight = Arc::new(AtomicUsize::new(0));
    let (terminate, terminate_rx) = tokio::sync::watch::channel(false);
    let users = crate::config::users::UsersStore::open(&config.users_file);
    let shared = match &config.redis {
        Some(redis) => Some(
            crate::proxy::shared_limits::SharedLimiter::new(
                redis.clone(),
                &config.instance,
                telemetry.metrics.clone(),
            )
            .map_err(|e| anyhow::anyhow!(e))?,
        ),
        None => None,
    };
    let shared_health = shared.as_ref().map(|limiter| {
        crate::proxy::shared_health::SharedHealth::new(
            limiter.clone(),
            live.clone(),
            telemetry.metrics.clone(),
        )
    });
    let quotas = crate::proxy::user_quota::Quotas::new(
        config.accounts.default_quota,
        users.clone(),
        shared.clone(),
        &config.prices.currency,
    );
    let proxy = FlexiProxy::new(
        live.clone(),
        ProxySettings {
            max_request_body: config.max_request_body,
            max_concurrent_requests: config.max_concurrent_requests,
            max_header_size: config.max_header_size,
            reasoning_key: crate::config::reasoning_key::load(&config.reasoning_key_file),
            users: users.clone(),
            egress: config.egress.clone(),
            shared: shared.clone(),
            shared_health: shared_health.clone(),
            web_search: match &config.web_search {
                Some(c) => Some(Arc::new(
                    crate::websearch::Searcher::new(c).map_err(|e| anyhow::anyhow!(e))?,
                )),
                None => None,
            },
            quotas: quotas.clone(),
        },
        Lifecycle {
            shutting_down: shutting_down.clone(),
            inflight: inflight.clone(),
            terminate: terminate_rx,
        },
        telemetry.clone(),
        &server.configuration,
    );
    // Both listeners read request headers within the same limits (`proxy::ingress`).
    let max_header_size = config.max_header_size;
    let header_limits = |too_large: TooLargeBody| HeaderLimits {
        timeout: config.header_timeout,
        max_size: max_header_size,
        too_large,
    };
    let mut http_proxy = pingora::proxy::HttpProxy::new(proxy, server.configuration.clone());
    http_proxy.handle_init_modules();
    let guarded_proxy = HeaderGuard::new(
        http_proxy,
        header_limits(Arc::new(move |method: &str, target: &str| {
            crate::proxy::oversized_header_body(method, target, max_header_size)
        })),
    )
    .counting_first_headers_in(telemetry.metrics.awaiting_first_request.clone());
    let mut service = Service::new("flexiproxy".to_owned(), guarded_proxy);
    let mut certs = Vec::new();
    for listener in &config.listeners {
        let addr = listener.address.to_string();
        match &listener.tls {
            None => service.add_tcp(&addr),
            Some((cert, key)) => {
                let (mut settings, reloading) = tls_settings(cert, key, &addr)?;
                // HTTP/2 and HTTP/1.1 on the same port, by ALPN.
                settings.enable_h2();
                service.add_tls_with_settings(&addr, None, settings);
                certs.push(reloading);
            }
        }
    }
    server.add_service(service);
    server.add_service(background_service("config watcher", watcher));
    if let Some(shared) = &shared {
        server.add_service(background_service("lease keeper", shared.keeper()));
    }
    if let Some(health) = &shared_health {
        server.add_service(background_service("key health sync", health.sync()));
    }
    if let Some(admin) = &config.admin {
        let mut app = AdminApp::new(config, telemetry.clone(), live.clone(), users.clone())
            .with_quotas(quotas.clone());
        match crate::telemetry::audit::start(&config.audit_store, &config.instance) {
            Ok(log) => app.audit_log = Some(log),
            // The proxy serves without it; the operator reads why (a read-only directory, …).
            Err(e) => {
                tracing::error!(error = %e, "audit log unavailable: events go to the process log only")
            }
        }
        // With shared limits, panel sessions are shared too: any instance serves any session.
        if let Some(limiter) = &shared {
            app.sessions = crate::admin::auth::Sessions::shared(limiter.clone());
            app.sso.share_flows(limiter.clone());
        }
        let too_large = serde_json::json!({
            "error": format!("request headers are larger than the limit of {max_header_size} bytes")
        })
        .to_string()
        .into_bytes();
        let guarded = HeaderGuard::new(
            app,
            header_limits(Arc::new(move |_: &str, _: &str| too_large.clone())),
        );
        let mut admin_service = Service::new("admin".to_owned(), guarded);
        let address = admin.address.to_string();
        match &admin.tls {
            None => admin_service.add_tcp(&address),
            Some((cert, key)) => {
                let (settings, reloading) = tls_settings(cert, key, &address)?;
                admin_service.add_tls_with_settings(&address, None, settings);
                certs.push(reloading);
            }
        }
        server.add_service(admin_service);
    }
    if !certs.is_empty() {
        server.add_service(background_service(
            "certificate watcher",
            CertWatcher { certs },
        ));
    }
    Ok(App {
        server,
        live,
        shutting_down,
        telemetry,
        inflight,
        terminate,
        grace_period: config.grace_period,
    })
}

/// TLS settings for a listener at `address` serving the certificate files (reloaded when
/// they change, through the returned handle).
fn tls_settings(
    cert: &std::path::Path,
    key: &std::path::Path,
    address: &str,
) -> anyhow::Result<(pingora::listeners::tls::TlsSettings, Arc<ReloadingCert>)> {
    let reloading = ReloadingCert::load(cert, key)
        .map_err(|e| anyhow::anyhow!("TLS listener {address}: {e}"))?;
    let mut settings = pingora::listeners::tls::TlsSettings::with_callbacks(Box::new(NoCallbacks))
        .map_err(|e| anyhow::anyhow!("TLS listener {address}: {e}"))?;
    settings.set_cert_resolver(reloading.clone());
    Ok((settings, reloading))
}

/// Unix signals, noting the start of shutdown so readiness can report it:
/// SIGTERM graceful stop, SIGQUIT graceful upgrade, SIGINT fast stop.
pub struct SignalWatch {
    pub shutting_down: Arc<AtomicBool>,
}

#[async_trait]
impl ShutdownSignalWatch for SignalWatch {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{SignalKind, signal};
        let signal = match (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut quit), Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = quit.recv() => ShutdownSignal::GracefulUpgrade,
                _ = term.recv() => ShutdownSignal::GracefulTerminate,
                _ = int.recv() => ShutdownSignal::FastShutdown,
            },
            _ => {
                tracing::error!("cannot install signal handlers; shutting down");
                ShutdownSignal::FastShutdown
            }
        };
        self.shutting_down.store(true, Ordering::SeqCst);
        signal
    }
}

/// Runs until a signal stops the server, then drains (see [`drain`]) and exits the process.
pub fn run(app: App) {
    let watch = SignalWatch {
        shutting_down: app.shutting_down.clone(),
    };
    let phases = app.server.watch_execution_phase();
    let drainer = Drainer {
        inflight: app.inflight.clone(),
        awaiting_first_request: app.telemetry.metrics.awaiting_first_request.clone(),
        terminate: app.terminate,
        grace: app.grace_period,
        telemetry: app.telemetry.clone(),
    };
    std::thread::Builder::new()
        .name("flexiproxy-drain".into())
        .spawn(move || drain(phases, drainer))
        .expect("the drain thread starts");
    app.server.run(RunArgs {
        shutdown_signal: Box::new(watch),
    });
}

/// How long nothing must be in flight before a draining process exits.
const DRAIN_QUIET: Duration = Duration::from_millis(500);

struct Drainer {
    inflight: Arc<AtomicUsize>,
    /// Client connections accepted that have not sent their first request yet.
    awaiting_first_request: prometheus::IntGauge,
    terminate: tokio::sync::watch::Sender<bool>,
    grace: Duration,
    telemetry: Arc<Telemetry>,
}

/// Graceful shutdown, after SIGTERM (or SIGQUIT, once the listeners were handed to the new
/// process): Pingora has stopped accepting; requests in flight may finish within the grace
/// period; whatever is still open then is ended with an error event (not a reset); then the
/// process exits 0 — as soon as nothing is in flight, not after a fixed sleep.
fn drain(mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>, d: Drainer) {
    loop {
        match phases.blocking_recv() {
            Ok(ExecutionPhase::ShutdownGracePeriod) => break,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        }
    }
    let deadline = Instant::now() + d.grace;
    tracing::info!(
        inflight = d.inflight.load(Ordering::Acquire),
        grace = %humantime::format_duration(d.grace),
        "draining"
    );
    // Done when nothing has been in flight for a moment: kept-alive client connections may
    // still bring a request, which is answered with `connection: close`.
    let mut idle_since: Option<Instant> = None;
    // A connection accepted just before the listener closed counts too: its request is coming.
    while Instant::now() < deadline {
        if d.inflight.load(Ordering::Acquire) > 0 || d.awaiting_first_request.get() > 0 {
            idle_since = None;
        } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= DRAIN_QUIET {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = d.inflight.load(Ordering::Acquire);
    if left > 0 {
        tracing::warn!(
            requests = left,
            "grace period over: ending what is still in flight"
        );
        let _ = d.terminate.send(true);
        let end = Instant::now() + Duration::from_secs(2);
        while d.inflight.load(Ordering::Acquire) > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Give the access log and the statistics writer their last batch.
    d.telemetry.access_log.close();
    std::thread::sleep(Duration::from_millis(150));
    tracing::info!("drained; exiting");
    std::process::exit(0);
}

/// TLS handshakes need no per-connection callbacks; Pingora's resolver-based settings are
/// built through `with_callbacks`.
struct NoCallbacks;

#[async_trait]
impl pingora::listeners::TlsAccept for NoCallbacks {}
