//! The real Redis and PostgreSQL servers of `flexiproxy_testkit::services` start, answer,
//! and (Redis) come back on the same port after a stop. Needs `scripts/deps.sh`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use flexiproxy_testkit::services::{PostgresServer, RedisServer};

/// Sends one inline command and returns the reply (a bulk string's length line and value
/// joined by CRLF).
fn redis_command(port: u16, command: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    let complete = |r: &[u8]| {
        let lines = if r.starts_with(b"$") && !r.starts_with(b"$-1") {
            2
        } else {
            1
        };
        r.ends_with(b"\r\n") && r.windows(2).filter(|w| w == b"\r\n").count() >= lines
    };
    while !complete(&reply) {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&reply).trim_end().to_string())
}

#[test]
fn redis_answers_stops_and_restarts_on_the_same_port() {
    let t = Instant::now();
    let mut redis = RedisServer::start();
    eprintln!("redis start: {:?}", t.elapsed());
    let port = redis.port;
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/"));
    assert!(redis.is_running());
    assert_eq!(redis_command(port, "PING").unwrap(), "+PONG");
    assert_eq!(redis_command(port, "SET k v").unwrap(), "+OK");
    assert_eq!(redis_command(port, "GET k").unwrap(), "$1\r\nv");

    redis.stop();
    assert!(!redis.is_running());
    assert!(
        redis_command(port, "PING").is_err(),
        "still answering after stop"
    );
    redis.stop(); // stopping twice is fine

    let t = Instant::now();
    redis.restart();
    eprintln!("redis restart: {:?}", t.elapsed());
    assert_eq!(redis.port, port);
    assert!(redis.is_running());
    assert_eq!(redis_command(port, "PING").unwrap(), "+PONG");
    // Nothing is persisted across a restart.
    assert_eq!(redis_command(port, "GET k").unwrap(), "$-1");

    drop(redis);
    assert!(
        redis_command(port, "PING").is_err(),
        "still answering after drop"
    );
}

#[test]
fn postgres_starts_with_the_flexiproxy_database() {
    let t = Instant::now();
    let pg = PostgresServer::start();
    eprintln!("postgres start: {:?}", t.elapsed());
    let port = pg.port;
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{port}/flexiproxy")
    );
    assert_eq!(pg.psql("select 1"), "1");
    assert_eq!(pg.psql("select current_database()"), "flexiproxy");
    pg.psql("create table t (x int); insert into t values (41), (1)");
    assert_eq!(pg.psql("select sum(x) from t"), "42");

    // The plain psql from PATH, as an application would connect.
    let out = std::process::Command::new("psql")
        .args(["-X", "-At", &pg.url(), "-c", "select 1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");

    drop(pg);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening after drop"
    );
}

#[test]
fn two_of_each_run_side_by_side() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    assert_ne!(a.port, b.port);
    assert_eq!(redis_command(a.port, "PING").unwrap(), "+PONG");
    assert_eq!(redis_command(b.port, "PING").unwrap(), "+PONG");
    let p = PostgresServer::start();
    let q = PostgresServer::start();
    assert_ne!(p.port, q.port);
    assert_eq!(p.psql("select 1"), q.psql("select 1"));
}

#[test]
#[should_panic(expected = "Address already in use")]
fn restart_on_a_taken_port_panics_with_the_log() {
    let mut redis = RedisServer::start();
    redis.stop();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", redis.port)).unwrap();
    redis.restart();
}
