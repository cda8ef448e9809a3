//! Test harness: a real FlexiProxy (Pingora listener on 127.0.0.1) started in-process on its
//! own thread from a temporary config directory, plus helpers to write adapter files and
//! to wait on conditions with a deadline.

use flexiproxy::config::server::ServerConfig;
use flexiproxy::config::watch::LiveConfig;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The demo key every test adapter accepts unless told otherwise.
pub const KEY: &str = "fp-test-key-0001";
/// A provider key whose appearance anywhere (logs, errors) would be a leak.
pub const PROVIDER_KEY: &str = "sk-canary-provider-7f3a9c";

pub fn sha256_hex(s: &str) -> String {
    flexiproxy::config::keys::hash_hex(&flexiproxy::config::keys::hash_key(s))
}

/// An adapter file for an OpenAI-compatible source at `base_url`, accepting `keys`.
pub fn adapter_yaml(base_url: &str, keys: &[&str], extra_source: &str) -> String {
    let mut s = format!(
        "source:\n  base_url: {base_url}\n  api_key: {PROVIDER_KEY}\n  model: fake-model\n  model_map:\n    - {{ match: \"claude-*haiku*\", model: fake-small }}\n"
    );
    for line in extra_source.lines() {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s.push_str("keys:\n");
    for k in keys {
        s.push_str(&format!("  - sha256: {}\n    label: test\n", sha256_hex(k)));
    }
    s
}

struct OneShotSignal(Mutex<Option<oneshot::Receiver<ShutdownSignal>>>);

#[async_trait::async_trait]
impl ShutdownSignalWatch for OneShotSignal {
    async fn recv(&self) -> ShutdownSignal {
        let rx = self.0.lock().unwrap().take();
        match rx {
            Some(rx) => rx.await.unwrap_or(ShutdownSignal::FastShutdown),
            None => std::future::pending().await,
        }
    }
}

pub struct Proxy {
    pub addr: SocketAddr,
    /// The admin listener (metrics, /admin/*).
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub live: LiveConfig,
    /// The flag a shutdown signal sets (readiness reads it).
    pub shutting_down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    shutdown: Option<oneshot::Sender<ShutdownSignal>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub use flexiproxy_testkit::services::free_port;

/// Whether this process holds a listening TCP socket on `port`. The proxy's bind fails
/// (inside Pingora's service thread) when another process took the port first, and that
/// process's listener would then answer the test in its place.
fn listening_here(port: u16) -> bool {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    let sockets: std::collections::HashSet<String> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let local = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .any(|f| {
                const LISTEN: &str = "0A";
                f.len() > 9 && f[1].ends_with(&local) && f[3] == LISTEN && sockets.contains(f[9])
            })
    })
}

impl Proxy {
    /// Starts a proxy whose adapters directory holds `adapters` (file stem, YAML).
    pub fn start(adapters: &[(&str, String)]) -> Proxy {
        Self::start_with("", adapters)
    }

    /// Same, with extra lines for the server config.
    pub fn start_with(server_extra: &str, adapters: &[(&str, String)]) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("adapters")).unwrap();
        for (name, yaml) in adapters {
            std::fs::write(
                dir.path().join("adapters").join(format!("{name}.yaml")),
                yaml,
            )
            .unwrap();
        }
        // Another process may bind a port between our check and the proxy's bind: try
        // fresh ports then (ports come from a range the kernel never hands out itself).
        let mut dir = dir;
        for _ in 0..3 {
            let port = free_port();
            let admin_port = free_port();
            let mut text = format!("listen: 127.0.0.1:{port}\nthreads: 2\n{server_extra}");
            if !server_extra.contains("admin:") {
                text.push_str(&format!("admin:\n  listen: 127.0.0.1:{admin_port}\n"));
            }
            if !server_extra.contains("access_log:") {
                text.push_str("access_log:\n  path: access.log\n");
            }
            std::fs::write(dir.path().join("flexiproxy.yaml"), text).unwrap();
            match Self::try_start_in(dir) {
                Ok(proxy) => return proxy,
                Err(back) => dir = back,
            }
        }
        panic!("the proxy could not bind a free port in three tries");
    }

    /// Starts a proxy on an existing directory (holding `flexiproxy.yaml` and `adapters/`).
    pub fn start_in(dir: tempfile::TempDir) -> Proxy {
        Self::try_start_in(dir)
            .unwrap_or_else(|_| panic!("another process holds the proxy's configured port"))
    }

    /// Starts a proxy on `dir`; gives the directory back when another process holds one of
    /// its ports (so the caller may try other ports).
    fn try_start_in(dir: tempfile::TempDir) -> Result<Proxy, tempfile::TempDir> {
        let config_path = dir.path().join("flexiproxy.yaml");
        let config = ServerConfig::load(&config_path).unwrap();
        let addr = config.listeners[0].address;
        let app = flexiproxy::server::build(&config).unwrap();
        let live = app.live.clone();
        let shutting_down = app.shutting_down.clone();
        let (tx, rx) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            app.server.run(RunArgs {
                shutdown_signal: Box::new(OneShotSignal(Mutex::new(Some(rx)))),
            });
        });
        wait_until(
            Duration::from_secs(10),
            "the proxy accepts connections",
            || TcpStream::connect(addr).is_ok(),
        );
        let admin = config.admin.as_ref().map_or(addr, |a| a.address);
        // The admin listener starts on its own: a test's first admin call must not race it.
        wait_until(
            Duration::from_secs(10),
            "the admin listener accepts connections",
            || TcpStream::connect(admin).is_ok(),
        );
        let mut proxy = Proxy {
            addr,
            admin,
            dir,
            live,
            shutting_down,
            shutdown: Some(tx),
            thread: Some(thread),
        };
        if listening_here(addr.port()) && listening_here(admin.port()) {
            return Ok(proxy);
        }
        proxy.stop();
        Err(std::mem::replace(
            &mut proxy.dir,
            tempfile::tempdir().unwrap(),
        ))
    }

    /// Stops the proxy and starts a new one on the same files.
    pub fn restart(mut self) -> Proxy {
        self.stop();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::start_in(dir)
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(ShutdownSignal::FastShutdown);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The access log written so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until no request is in flight in the proxy. A client can read an answer a moment
    /// before the proxy lets go of the request's slot (its log line and counters come after),
    /// so a test of `max_concurrent_requests: 1` waits for this between requests.
    pub async fn wait_idle(&self) {
        wait_until_async(
            Duration::from_secs(20),
            "no request is in flight",
            || async {
                self.metrics_text()
                    .await
                    .lines()
                    .any(|line| line == "flexiproxy_inflight_requests 0")
            },
        )
        .await;
    }

    pub fn adapters_dir(&self) -> PathBuf {
        self.dir.path().join("adapters")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("flexiproxy.yaml")
    }

    /// Writes an adapter file atomically (temp file + rename), as careful tools do.
    pub fn write_adapter(&self, name: &str, yaml: &str) {
        write_atomic(&self.adapters_dir().join(format!("{name}.yaml")), yaml);
    }

    /// The config generation currently live.
    pub fn generation(&self) -> u64 {
        self.live.load().generation
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls `condition` until it holds, failing the test with `what` after `deadline`.
pub fn wait_until(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out after {deadline:?} waiting until {what}");
}

/// Async version of [`wait_until`] for conditions that need awaiting.
pub async fn wait_until_async<F, Fut>(deadline: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out after {deadline:?} waiting until {what}");
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A minimal Anthropic request.
/// A response's status, its `retry-after` and its JSON body (null when not JSON).
pub async fn status_retry_body(
    resp: reqwest::Response,
) -> (u16, Option<String>, serde_json::Value) {
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.json().await.unwrap_or_default())
}

pub fn messages_body(stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello"}]
    })
}

/// The proxy still answers its health probe (after whatever a test put it through).
pub async fn assert_healthy(proxy: &Proxy) {
    let status = client()
        .get(proxy.url("/health"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

/// Posts an Anthropic request with the test key.
pub async fn post_messages(proxy: &Proxy, body: &serde_json::Value) -> reqwest::Response {
    post_messages_as(proxy, KEY, body).await
}

/// [`post_messages`] with another client key.
pub async fn post_messages_as(
    proxy: &Proxy,
    key: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    client()
        .post(proxy.url("/v1/messages?beta=true"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .header("x-stainless-os", "Linux")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// FlexiProxy as a separate process (`flexiproxy serve`), for what only a real process shows:
/// its log output and signal handling.
pub struct ProcessProxy {
    pub addr: SocketAddr,
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl ProcessProxy {
    /// Starts `flexiproxy serve --config <config>`; stderr (the log) goes to a file.
    pub fn spawn(config: &Path, port: u16, env: &[(&str, &str)]) -> ProcessProxy {
        let log = config.with_file_name(format!("flexiproxy-{port}.log"));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"));
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // The panel's listener starts after the proxy's: a test that goes to the panel first
        // must not find it closed.
        let mut listeners = vec![addr];
        listeners.extend(admin_listener(config));
        for listener in listeners {
            wait_until(
                Duration::from_secs(30),
                &format!("the proxy process accepts connections on {listener}"),
                || {
                    if let Ok(Some(status)) = child.try_wait() {
                        let text = std::fs::read_to_string(&log).unwrap_or_default();
                        panic!("the proxy process exited ({status}) before listening:\n{text}");
                    }
                    TcpStream::connect(listener).is_ok()
                },
            );
        }
        ProcessProxy { addr, child, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal to the process.
    #[allow(dead_code)] // used by the shutdown tests to come
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// The panel's `admin.listen` address of a server config file, when it has one.
fn admin_listener(config: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(config).ok()?;
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).ok()?;
    value.get("admin")?.get("listen")?.as_str()?.parse().ok()
}

impl Drop for ProcessProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test's proxy log goes with its failure (the file goes with its temporary
        // directory): its warnings, errors and last lines.
        if std::thread::panicking() {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let notable = lines
                .iter()
                .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"));
            let last = lines.iter().skip(lines.len().saturating_sub(20));
            let shown: Vec<&&str> = notable.take(40).chain(last).collect();
            eprintln!(
                "--- log of the proxy on {} (warnings and errors, then the last lines) ---",
                self.addr
            );
            for line in shown {
                eprintln!("{line}");
            }
        }
    }
}

/// The status of a minimal non-streaming request with `key` to the proxy at `proxy_url`.
pub async fn status_with(proxy_url: &str, key: &str) -> u16 {
    client()
        .post(format!("{proxy_url}/v1/messages"))
        .header("x-api-key", key)
        .json(&messages_body(false))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until such a request gets `status`.
pub async fn wait_status(deadline: Duration, proxy_url: &str, key: &str, status: u16, what: &str) {
    let url = proxy_url.to_owned();
    let key = key.to_owned();
    wait_until_async(deadline, what, || {
        let (url, key) = (url.clone(), key.clone());
        async move { status_with(&url, &key).await == status }
    })
    .await;
}

/// A config directory: `flexiproxy.yaml` with `server_yaml`, and `adapters/<name>.yaml`.
pub fn config_dir(server_yaml: &str, adapters: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("adapters")).unwrap();
    std::fs::write(dir.path().join("flexiproxy.yaml"), server_yaml).unwrap();
    for (name, yaml) in adapters {
        std::fs::write(
            dir.path().join("adapters").join(format!("{name}.yaml")),
            yaml,
        )
        .unwrap();
    }
    dir
}

/// The provider's one reply was cut off by the proxy closing the connection, and no
/// connection to it is left open.
pub async fn assert_provider_saw_the_close(provider: &flexiproxy_testkit::FakeProvider) {
    let aborted = provider
        .wait_for_aborted_replies(1, Duration::from_secs(5))
        .await;
    assert_eq!(aborted, 1);
    provider
        .wait_for_open_connections(0, Duration::from_secs(5))
        .await;
}
