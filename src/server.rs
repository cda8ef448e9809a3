//! Assembles and runs the Pingora server from a [`ServerConfig`]: the proxy service on every
//! listener, the config watcher as a background service, and shutdown signals that also flip
//! readiness.

use crate::admin::AdminApp;
use crate::config::adapter::ApiKey;
use crate::config::server::ServerConfig;
use crate::config::snapshot::Loader;
use crate::config::watch::{ConfigWatcher, LiveConfig};
use crate::proxy::{FlexiProxy, ProxySettings};
use crate::telemetry::Telemetry;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::usage::UsageSink;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A server ready to run, with handles to its live state.
pub struct App {
    pub server: Server,
    pub live: LiveConfig,
    pub shutting_down: Arc<AtomicBool>,
    pub telemetry: Arc<Telemetry>,
}

/// Loads the adapters (problems are logged, never fatal: a broken adapter file must not stop
/// the others) and builds the server.
pub fn build(config: &ServerConfig) -> anyhow::Result<App> {
    let mut loader = Loader::new(&config.adapters_dir, config.max_adapters);
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
            let sink = UsageSink::start(stats, metrics.clone()).map_err(|e| anyhow::anyhow!(e))?;
            tracing::info!(path = %stats.path.display(), "usage statistics enabled");
            Some(sink)
        }
        None => None,
    };
    let telemetry = Arc::new(Telemetry {
        metrics,
        access_log,
        usage,
    });

    let mut conf = ServerConf {
        threads: config.threads,
        grace_period_seconds: Some(config.default_shutdown_grace().as_secs()),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    conf.pid_file = std::env::temp_dir()
        .join(format!("flexiproxy-{}.pid", std::process::id()))
        .display()
        .to_string();
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let shutting_down = Arc::new(AtomicBool::new(false));
    let proxy = FlexiProxy::new(
        live.clone(),
        ProxySettings {
            max_request_body: config.max_request_body,
            max_concurrent_requests: config.max_concurrent_requests,
        },
        shutting_down.clone(),
        telemetry.clone(),
    );
    let mut service =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, proxy, "flexiproxy");
    for listener in &config.listeners {
        let addr = listener.address.to_string();
        match &listener.tls {
            None => service.add_tcp(&addr),
            Some((cert, key)) => {
                let mut settings = pingora::listeners::tls::TlsSettings::intermediate(
                    &cert.display().to_string(),
                    &key.display().to_string(),
                )
                .map_err(|e| anyhow::anyhow!("TLS listener {addr}: {e}"))?;
                settings.enable_h2();
                service.add_tls_with_settings(&addr, None, settings);
            }
        }
    }
    server.add_service(service);
    server.add_service(background_service("config watcher", watcher));
    if let Some(admin) = &config.admin {
        let app = AdminApp {
            telemetry: telemetry.clone(),
            live: live.clone(),
            token: admin.token_sha256,
            stats_path: config.stats.as_ref().map(|s| s.path.clone()),
        };
        let mut admin_service = pingora::services::listening::Service::new("admin".to_owned(), app);
        admin_service.add_tcp(&admin.address.to_string());
        server.add_service(admin_service);
    }
    Ok(App {
        server,
        live,
        shutting_down,
        telemetry,
    })
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

/// Runs until a signal stops the server.
pub fn run(app: App) {
    let watch = SignalWatch {
        shutting_down: app.shutting_down.clone(),
    };
    app.server.run(RunArgs {
        shutdown_signal: Box::new(watch),
    });
}
