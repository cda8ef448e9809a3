//! Real Redis and PostgreSQL servers for integration tests: each test starts its own
//! throwaway server on a free 127.0.0.1 port with its files in a fresh temp dir, and the
//! server is killed (and the dir removed) when the handle is dropped. The system services
//! are never used.
//!
//! Needs the Debian packages `redis-server` and `postgresql` (`scripts/deps.sh` installs
//! them). PostgreSQL refuses to run as root, so as root its programs run as the `postgres`
//! user through `runuser`; otherwise as the current user.
//!
//! ```no_run
//! use flexiproxy_testkit::services::{PostgresServer, RedisServer};
//! let mut redis = RedisServer::start();
//! let pg = PostgresServer::start();
//! // ... configure the proxy with redis.url() and pg.url() ...
//! redis.stop(); // simulate an outage
//! redis.restart(); // same port, empty data
//! assert_eq!(pg.psql("select 1"), "1");
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to come up before `start` gives up.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How many fresh ports `start` tries (another process may take a free port before the
/// server binds it).
const PORT_ATTEMPTS: usize = 3;

/// A free TCP port on 127.0.0.1 for a server that binds it later (a proxy, Redis, PostgreSQL,
/// a child process).
///
/// The port comes from below the kernel's ephemeral range (32768–60999 by default), so once
/// checked and released it is never handed to someone's `bind(0)` or outgoing connection
/// before our server binds it — with ephemeral ports, a busy suite saw another test's listener
/// take the proxy's port and answer in its place. A process-wide counter never hands a port
/// out twice, and each process starts at a point of the range set by its pid, so concurrent
/// test processes walk different stretches.
pub fn free_port() -> u16 {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    let next =
        NEXT.get_or_init(|| AtomicU32::new(std::process::id().wrapping_mul(2_654_435_761) % SPAN));
    for _ in 0..SPAN {
        let port = (LOW + next.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {LOW} and {}", LOW + SPAN);
}

/// A fresh directory under the system temp dir, mode 0755 (so the `postgres` user can
/// reach a data dir inside it), removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(kind: &str) -> ScratchDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("flexiproxy-{kind}-{}-{n}-{nanos}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        ScratchDir(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The contents of a log file for a panic message (or why it could not be read).
fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log at {}: {e})", path.display()))
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// A `redis-server` of its own on 127.0.0.1 with no persistence. `port` stays the same
/// across [`stop`](Self::stop) and [`restart`](Self::restart).
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: ScratchDir,
}

impl RedisServer {
    /// Starts a server on a free port and returns once it answers `PING`; panics (with
    /// its log) if it does not within 30 s.
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: 0,
            child: None,
            dir: ScratchDir::new("redis"),
        };
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) => {
                    last_error = e;
                    server.stop();
                }
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL, so clients see connections drop as in a crash) and
    /// waits for it to exit. Does nothing if it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (stopping it first if it runs) and
    /// returns once it answers `PING`. The data is gone: nothing is persisted.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait() {
            self.stop();
            panic!("redis-server did not restart on port {}: {e}", self.port);
        }
    }

    /// Whether the server process is still alive (false after `stop` or a crash).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.0.join("redis.log")
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = self.log_path();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir.0)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn redis-server (run scripts/deps.sh?): {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!(
                    "exited with {status} on port {}; log:\n{}",
                    self.port,
                    read_log(&log)
                ));
            }
            if ping(self.port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no PONG on port {} within {START_DEADLINE:?}; log:\n{}",
                    self.port,
                    read_log(&log)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether something on 127.0.0.1:`port` answers `PING` with `+PONG`.
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let timeout = Duration::from_millis(500);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut buf = [0u8; 64];
    while !reply.ends_with(b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    reply.starts_with(b"+PONG")
}

/// A PostgreSQL cluster of its own on 127.0.0.1 (trust authentication, user `postgres`,
/// `fsync=off`) with an empty database `flexiproxy`. Stopped with `-m immediate` on drop.
pub struct PostgresServer {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    // Last, so the dir is removed after the server stops.
    dir: ScratchDir,
}

impl PostgresServer {
    /// Creates a cluster, starts it on a free port and creates the `flexiproxy`
    /// database; panics (with the server log) if any step fails.
    pub fn start() -> PostgresServer {
        let bin = postgres_bin_dir();
        let dir = ScratchDir::new("pg");
        // The dir was just created by this process, so its owner is our effective uid.
        let as_root = std::fs::metadata(&dir.0)
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let data = dir.0.join("data");
        std::fs::create_dir(&data).unwrap_or_else(|e| panic!("create {}: {e}", data.display()));
        if as_root {
            let out = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&data)
                .output()
                .unwrap_or_else(|e| panic!("run chown: {e}"));
            assert!(
                out.status.success(),
                "chown postgres {} (does the postgres user exist? run scripts/deps.sh): {}",
                data.display(),
                describe(&out)
            );
        }
        let mut server = PostgresServer {
            port: 0,
            bin,
            data,
            as_postgres: as_root,
            dir,
        };
        let data = server.data.display().to_string();
        server.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "-N"],
        );

        let mut last_error = String::new();
        let mut started = false;
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            match server.pg_ctl_start() {
                Ok(()) => {
                    started = true;
                    break;
                }
                Err(e) => last_error = e,
            }
        }
        assert!(started, "PostgreSQL did not start: {last_error}");

        let port = server.port.to_string();
        server.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "flexiproxy",
            ],
        );
        server
    }

    /// Starts the cluster on `self.port` and waits until it accepts connections.
    fn pg_ctl_start(&self) -> Result<(), String> {
        let data = self.data.display().to_string();
        let log = self.data.join("log");
        let log_arg = log.display().to_string();
        let opts = format!(
            "-p {} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        let out = self
            .command("pg_ctl")
            .args([
                "-D", &data, "-l", &log_arg, "-w", "-t", "30", "-o", &opts, "start",
            ])
            .output()
            .unwrap_or_else(|e| panic!("run pg_ctl: {e}"));
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{}\nlog:\n{}", describe(&out), read_log(&log)))
        }
    }

    /// Stops the server at once, as a crash would (`pg_ctl -m immediate`: every backend is
    /// killed, clients see their connections drop, no checkpoint); the data stays for
    /// [`restart`](Self::restart).
    pub fn kill(&mut self) {
        let data = self.data.display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    /// Starts the server again on the same port with the same data (crash recovery
    /// included) and returns once it accepts connections.
    pub fn restart(&mut self) {
        if let Err(e) = self.pg_ctl_start() {
            panic!("PostgreSQL did not restart on port {}: {e}", self.port);
        }
    }

    /// Freezes the server (SIGSTOP to the postmaster): a client's TCP connection is still
    /// accepted by the kernel, but nothing answers it until [`resume`](Self::resume), which
    /// then serves every connection made meanwhile at once. `psql` would wait too.
    pub fn pause(&self) {
        self.signal_postmaster("-STOP");
    }

    /// Lets a [`pause`](Self::pause)d server run again.
    pub fn resume(&self) {
        self.signal_postmaster("-CONT");
    }

    fn signal_postmaster(&self, signal: &str) {
        let pid_file = self.data.join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("read {}: {e}", pid_file.display()));
        let pid = text.lines().next().unwrap_or_default().trim().to_owned();
        let out = Command::new("kill")
            .args([signal, &pid])
            .output()
            .unwrap_or_else(|e| panic!("run kill: {e}"));
        assert!(
            out.status.success(),
            "kill {signal} {pid}: {}",
            describe(&out)
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT/flexiproxy`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/flexiproxy", self.port)
    }

    /// Runs `sql` in the `flexiproxy` database with `psql` over TCP and returns its
    /// unaligned, tuples-only output, trimmed (`select 1` gives `"1"`); panics on error.
    pub fn psql(&self, sql: &str) -> String {
        let port = self.port.to_string();
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args(["-p", &port, "-U", "postgres", "-d", "flexiproxy", "-c", sql])
            .env_remove("PGPASSWORD")
            .output()
            .unwrap_or_else(|e| panic!("run psql: {e}"));
        assert!(out.status.success(), "psql -c {sql:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A PostgreSQL program from `bin`, as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // initdb and pg_ctl want a working directory the postgres user can enter.
        cmd.current_dir(&self.dir.0).stdin(Stdio::null());
        cmd
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\nlog:\n{}",
            describe(&out),
            read_log(&self.data.join("log"))
        );
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Also after a failed start: a server that came up too late must not outlive us.
        // Harmless when none runs.
        let data = self.data.display().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The highest-versioned `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn postgres_bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let best = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    match best {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server in {}/*/bin (run scripts/deps.sh)",
            root.display()
        ),
    }
}
