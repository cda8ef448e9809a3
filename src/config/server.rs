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
}

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
        Ok(ServerConfig {
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
        })
    }

    /// Timeouts that are not per adapter.
    pub fn default_shutdown_grace(&self) -> Duration {
        Duration::from_secs(30)
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
