//! The server config file (`conf/flexiproxy.yaml`): listeners, where adapters live, limits.
//! Unknown keys are errors; paths are relative to the config file's directory.

use super::{ConfigError, line_of};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// One plaintext listener (shorthand); default 127.0.0.1:8787 when no `listeners` are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapters_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_adapters: Option<usize>,
    /// Worker threads (default: the number of CPUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// The base URL clients use, printed by `adapter create` (default: from the first listener).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<StatsFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<ShutdownFile>,
    /// The Unix socket a new process takes the listeners over through (zero-downtime upgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_sock: Option<PathBuf>,
    /// Where the process writes its PID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<PathBuf>,
    /// Where the secret that seals reasoning into Responses answers lives (created on first
    /// start; `FLEXIPROXY_REASONING_KEY` overrides it).
    #[serde(default)]
    pub reasoning_key_file: Option<PathBuf>,
    /// Panel accounts (default `users.yaml` next to this file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_file: Option<PathBuf>,
    /// Internal addresses, networks or host names non-admin users' adapters may reach anyway
    /// (e.g. a vLLM on the LAN). Empty by default: users' sources must be public.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_sources_allowed: Vec<String>,
    /// Shared limits (`limits.backend: redis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisFile>,
    /// This instance's name in usage records (default: host name and process id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The search backend the gateway uses for clients whose source cannot search
    /// (docs/web-search.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search: Option<crate::websearch::WebSearchFile>,
    /// Who may open a panel account (sign-up, invitations, approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<super::accounts::AccountsFile>,
    /// The currency of `prices` and of every cost (default USD; nothing is converted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Prices per provider model, before the shipped table (`config::prices`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prices: Vec<super::prices::PriceFile>,
    /// Memory for the exchanges adapters keep (`inspect:` in an adapter file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspect: Option<InspectMemoryFile>,
}

/// `inspect: { memory, per_adapter }`: bytes kept for inspected exchanges.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InspectMemoryFile {
    /// In total, across adapters (default 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<usize>,
    /// For one adapter (default: a quarter of the total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_adapter: Option<usize>,
}

/// Default total memory for inspected exchanges.
pub const DEFAULT_INSPECT_MEMORY: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    /// `redis://[:password@]host:port/db` (plain TCP; TLS is not built in).
    pub url: String,
    /// The longest a request waits for the limiter before `on_failure` applies (default 250ms).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// How long a concurrency slot outlives an instance that stopped renewing it (default 30s).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub lease_ttl: Option<Duration>,
    /// `fail_open` (default: admit when Redis cannot answer) or `fail_closed` (503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    #[default]
    FailOpen,
    FailClosed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitsBackend {
    /// In this process only (the default).
    #[default]
    Local,
    /// Shared by every instance through Redis (`redis:`).
    Redis,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatsBackend {
    /// An embedded SQLite file (the default).
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by every instance (`stats.url`).
    Postgres,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownFile {
    /// How long in-flight requests and streams may take to finish after SIGTERM/SIGQUIT
    /// (default 30s); what is still open then ends with an error event.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub grace_period: Option<Duration>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// `false` turns the admin listener off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Default 127.0.0.1:9787.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Hex SHA-256 of the admin token (`Authorization: Bearer <token>` on /admin/*).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// Serve the admin listener (panel, API, metrics) over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFile>,
    /// Mark panel cookies `Secure` (default: when `tls` is set). Set it when a TLS proxy in
    /// front serves the panel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_cookies: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogFile {
    /// `false` turns the access log off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `stdout` (default), `stderr`, or a file path (appended to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatsFile {
    /// Usage statistics are off unless this is true.
    #[serde(default)]
    pub enabled: bool,
    /// The SQLite database (default `flexiproxy-stats.db` next to this file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Records older than this are deleted (default 90d).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub retention: Option<Duration>,
    /// Records waiting for the writer before new ones are dropped (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<usize>,
    /// `sqlite` (default) or `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<StatsBackend>,
    /// The PostgreSQL connection string (`postgres://user@host:port/db`) for `backend: postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFile>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Largest request body accepted, in bytes (default 32 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body: Option<usize>,
    /// Concurrent proxied requests across all adapters; more get 529 (default 10000, 0 = no cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<usize>,
    /// Largest request header section accepted, in bytes (default 64 KiB); larger gets 431.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header_size: Option<usize>,
    /// How long a client may take to send a request's header section, on both listeners
    /// (default 10s): from the connection's start, or from a kept-alive connection's first
    /// byte of the next request. Slower clients are disconnected.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub header_timeout: Option<Duration>,
    /// Where per-key limits and token budgets are counted: `local` (default) or `redis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<LimitsBackend>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The validated server config.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub path: PathBuf,
    pub listeners: Vec<Listener>,
    pub adapters_dir: PathBuf,
    pub max_adapters: Option<usize>,
    pub threads: usize,
    pub public_base_url: String,
    pub max_request_body: usize,
    pub max_concurrent_requests: usize,
    pub max_header_size: usize,
    /// Longest time to receive a request's header section (both listeners).
    pub header_timeout: Duration,
    /// The admin listener (metrics, health, /admin/*), unless turned off.
    pub admin: Option<AdminConfig>,
    pub access_log: AccessLogTarget,
    pub stats: Option<StatsConfig>,
    pub grace_period: Duration,
    pub upgrade_sock: PathBuf,
    pub pid_file: PathBuf,
    pub reasoning_key_file: PathBuf,
    pub users_file: PathBuf,
    pub egress: crate::config::egress::EgressPolicy,
    /// Set for `limits.backend: redis`.
    pub redis: Option<RedisConfig>,
    pub instance: String,
    /// `web_search:`, when configured.
    pub web_search: Option<crate::websearch::WebSearchConfig>,
    /// `accounts:`: registration, approval, a new account's cap.
    pub accounts: super::accounts::AccountsConfig,
    /// `prices:` and the shipped table, for each request's cost.
    pub prices: std::sync::Arc<super::prices::PriceTable>,
    /// Bytes inspected exchanges may take: in total, and per adapter.
    pub inspect_memory: (usize, usize),
    /// Where the audit log lives: the usage store, or the default SQLite file when usage
    /// statistics are off (`telemetry::audit`).
    pub audit_store: crate::telemetry::audit::AuditStore,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub url: String,
    pub timeout: Duration,
    pub lease_ttl: Duration,
    pub on_failure: OnFailure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub address: SocketAddr,
    pub token_sha256: Option<crate::config::keys::KeyHash>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub secure_cookies: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    Stderr,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsConfig {
    pub path: PathBuf,
    pub retention: Duration,
    pub queue: usize,
    /// Set for `backend: postgres`: the connection string.
    pub postgres_url: Option<String>,
}

pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9787";

pub const DEFAULT_MAX_REQUEST_BODY: usize = 32 * 1024 * 1024;

impl ServerConfig {
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::at(path, None, format!("cannot read the server config: {e}"))
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<ServerConfig, ConfigError> {
        // An empty file is a valid config with every default.
        let file: ServerFile = if text.trim().is_empty() {
            ServerFile::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::yaml(path, &e))?
        };
        let err = |needle: &str, m: String| ConfigError::at(path, line_of(text, needle), m);
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base_dir.join(p)
            }
        };

        let mut listeners = Vec::new();
        if let Some(listen) = &file.listen {
            let address = listen.parse().map_err(|e| {
                err(
                    "listen:",
                    format!("listen: `{listen}` is not an address:port: {e}"),
                )
            })?;
            listeners.push(Listener { address, tls: None });
        }
        for l in &file.listeners {
            let address = l.address.parse().map_err(|e| {
                err(
                    &l.address,
                    format!("listeners: `{}` is not an address:port: {e}", l.address),
                )
            })?;
            let tls = l.tls.as_ref().map(|t| (resolve(&t.cert), resolve(&t.key)));
            listeners.push(Listener { address, tls });
        }
        if listeners.is_empty() {
            listeners.push(Listener {
                address: DEFAULT_LISTEN
                    .parse()
                    .expect("default listen address is valid"),
                tls: None,
            });
        }
        let threads = file
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if threads == 0 {
            return Err(err("threads:", "threads must be at least 1".into()));
        }
        let public_base_url = file.public_base_url.clone().unwrap_or_else(|| {
            let first = &listeners[0];
            let scheme = if first.tls.is_some() { "https" } else { "http" };
            let host = if first.address.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else if first.address.is_ipv6() {
                format!("[{}]", first.address.ip())
            } else {
                first.address.ip().to_string()
            };
            format!("{scheme}://{host}:{}", first.address.port())
        });
        let admin_file = file.admin.clone().unwrap_or_default();
        let admin = if admin_file.enabled == Some(false) {
            None
        } else {
            let listen = admin_file.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
            let address = listen.parse().map_err(|e| {
                err(
                    "admin:",
                    format!("admin.listen: `{listen}` is not an address:port: {e}"),
                )
            })?;
            let token_sha256 = match &admin_file.token_sha256 {
                Some(h) => Some(crate::config::keys::parse_hash_hex(h).ok_or_else(|| {
                    err(
                        "token_sha256:",
                        "admin.token_sha256 must be 64 hex digits (the SHA-256 of the token)"
                            .into(),
                    )
                })?),
                None => None,
            };
            let tls = admin_file
                .tls
                .as_ref()
                .map(|t| (resolve(&t.cert), resolve(&t.key)));
            Some(AdminConfig {
                address,
                token_sha256,
                secure_cookies: admin_file.secure_cookies.unwrap_or(tls.is_some()),
                tls,
            })
        };
        let log = file.access_log.clone().unwrap_or_default();
        let access_log = match (log.enabled, log.path.as_deref()) {
            (Some(false), _) => AccessLogTarget::Off,
            (_, None | Some("stdout")) => AccessLogTarget::Stdout,
            (_, Some("stderr")) => AccessLogTarget::Stderr,
            (_, Some(p)) => AccessLogTarget::File(resolve(Path::new(p))),
        };
        let stats = file
            .stats
            .as_ref()
            .filter(|s| s.enabled)
            .map(|s| StatsConfig {
                path: resolve(
                    s.path
                        .as_deref()
                        .unwrap_or(Path::new("flexiproxy-stats.db")),
                ),
                retention: s.retention.unwrap_or(Duration::from_secs(90 * 24 * 3600)),
                queue: s.queue.unwrap_or(10_000).max(1),
                postgres_url: (s.backend == Some(StatsBackend::Postgres))
                    .then(|| s.url.clone().unwrap_or_default()),
            });
        if stats
            .as_ref()
            .is_some_and(|s| s.postgres_url.as_deref() == Some(""))
        {
            return Err(err(
                "backend:",
                "stats.backend: postgres needs stats.url".into(),
            ));
        }
        let backend = file
            .limits
            .as_ref()
            .and_then(|l| l.backend)
            .unwrap_or_default();
        let redis = match (backend, &file.redis) {
            (LimitsBackend::Local, _) => None,
            (LimitsBackend::Redis, None) => {
                return Err(err(
                    "backend:",
                    "limits.backend: redis needs a `redis:` section with its url".into(),
                ));
            }
            (LimitsBackend::Redis, Some(r)) => Some(RedisConfig {
                url: r.url.clone(),
                timeout: r.timeout.unwrap_or(Duration::from_millis(250)),
                lease_ttl: r
                    .lease_ttl
                    .unwrap_or(Duration::from_secs(30))
                    .max(Duration::from_secs(1)),
                on_failure: r.on_failure.unwrap_or_default(),
            }),
        };
        let instance = file.instance.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "flexiproxy".into());
            format!("{host}-{}", std::process::id())
        });
        let web_search = match &file.web_search {
            Some(w) => Some(w.validate().map_err(|m| err("web_search:", m))?),
            None => None,
        };
        let accounts = match &file.accounts {
            Some(a) => a.validate().map_err(|(key, m)| err(key, m))?,
            None => Default::default(),
        };
        let prices =
            super::prices::PriceTable::new(file.currency.as_deref().unwrap_or("USD"), &file.prices)
                .map_err(|m| err("prices:", m))?;
        let total = file
            .inspect
            .as_ref()
            .and_then(|i| i.memory)
            .unwrap_or(DEFAULT_INSPECT_MEMORY);
        let per_adapter = file
            .inspect
            .as_ref()
            .and_then(|i| i.per_adapter)
            .unwrap_or(total / 4)
            .min(total);
        let audit_store = match &stats {
            Some(StatsConfig {
                postgres_url: Some(url),
                ..
            }) => crate::telemetry::audit::AuditStore::Postgres(url.clone()),
            Some(s) => crate::telemetry::audit::AuditStore::Sqlite(s.path.clone()),
            None => crate::telemetry::audit::AuditStore::Sqlite(resolve(Path::new(
                "flexiproxy-stats.db",
            ))),
        };
        Ok(ServerConfig {
            audit_store,
            inspect_memory: (total, per_adapter),
            web_search,
            accounts,
            prices: std::sync::Arc::new(prices),
            grace_period: file
                .shutdown
                .as_ref()
                .and_then(|s| s.grace_period)
                .unwrap_or(Duration::from_secs(30)),
            upgrade_sock: resolve(
                file.upgrade_sock
                    .as_deref()
                    .unwrap_or(Path::new("/tmp/flexiproxy-upgrade.sock")),
            ),
            pid_file: resolve(
                file.pid_file
                    .as_deref()
                    .unwrap_or(Path::new("/tmp/flexiproxy.pid")),
            ),
            reasoning_key_file: resolve(
                file.reasoning_key_file
                    .as_deref()
                    .unwrap_or(Path::new("reasoning.key")),
            ),
            redis,
            instance,
            users_file: resolve(
                file.users_file
                    .as_deref()
                    .unwrap_or(Path::new("users.yaml")),
            ),
            egress: crate::config::egress::EgressPolicy::parse(&file.private_sources_allowed)
                .map_err(|m| err("private_sources_allowed:", m))?,
            admin,
            access_log,
            stats,
            path: path.to_owned(),
            listeners,
            adapters_dir: resolve(
                file.adapters_dir
                    .as_deref()
                    .unwrap_or(Path::new("adapters")),
            ),
            max_adapters: file.max_adapters,
            threads,
            public_base_url: public_base_url.trim_end_matches('/').to_owned(),
            max_request_body: file
                .limits
                .as_ref()
                .and_then(|l| l.max_request_body)
                .unwrap_or(DEFAULT_MAX_REQUEST_BODY),
            max_concurrent_requests: file
                .limits
                .as_ref()
                .and_then(|l| l.max_concurrent_requests)
                .unwrap_or(10_000),
            max_header_size: file
                .limits
                .as_ref()
                .and_then(|l| l.max_header_size)
                .unwrap_or(64 * 1024),
            header_timeout: file
                .limits
                .as_ref()
                .and_then(|l| l.header_timeout)
                .unwrap_or(Duration::from_secs(10))
                .max(Duration::from_millis(100)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = ServerConfig::parse(Path::new("/etc/fp/flexiproxy.yaml"), "").unwrap();
        assert_eq!(c.listeners[0].address.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.adapters_dir, Path::new("/etc/fp/adapters"));
        assert_eq!(c.public_base_url, "http://127.0.0.1:8787");
        assert_eq!(c.max_request_body, DEFAULT_MAX_REQUEST_BODY);
        assert_eq!(c.admin.unwrap().address.to_string(), DEFAULT_ADMIN_LISTEN);
        assert_eq!(c.access_log, AccessLogTarget::Stdout);
        assert!(c.stats.is_none(), "usage statistics are off by default");
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        let c = ServerConfig::parse(
            Path::new("f.yaml"),
            "limits:\n  header_timeout: 3s\n  max_header_size: 8192\n",
        )
        .unwrap();
        assert_eq!(
            (c.header_timeout, c.max_header_size),
            (Duration::from_secs(3), 8192)
        );
    }

    #[test]
    fn stats_and_admin_options() {
        let c = ServerConfig::parse(
            Path::new("/etc/fp/f.yaml"),
            "stats:\n  enabled: true\n  retention: 7d\nadmin:\n  enabled: false\naccess_log:\n  path: logs/access.log\n",
        )
        .unwrap();
        let stats = c.stats.unwrap();
        assert_eq!(stats.path, Path::new("/etc/fp/flexiproxy-stats.db"));
        assert_eq!(stats.retention, Duration::from_secs(7 * 86400));
        assert!(c.admin.is_none());
        assert_eq!(
            c.access_log,
            AccessLogTarget::File("/etc/fp/logs/access.log".into())
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = ServerConfig::parse(Path::new("f.yaml"), "listen: 127.0.0.1:1\nadapter_dir: x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.yaml:2:") && e.contains("adapter_dir"), "{e}");
    }

    #[test]
    fn bad_listen_names_the_line() {
        let e = ServerConfig::parse(Path::new("f.yaml"), "max_adapters: 3\nlisten: nowhere\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.yaml:2"), "{e}");
    }
}
