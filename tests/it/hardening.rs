//! What a client can make the proxy do with its request line and header (issue #24): `?key=`
//! only on Gemini routes, no query string in the logs or to a provider, and header size and
//! time limits on both listeners.

use crate::harness::*;
use flexiproxy_testkit::{FakeProvider, Reply, anthropic, openai};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(15);

/// Answers by what the request's text asks for: a cut stream, a reset, a late answer.
async fn faulty_provider() -> FakeProvider {
    FakeProvider::start(|req| {
        let text = req.body_text();
        let stream = req.json()["stream"] == true;
        if text.contains("reset") {
            Reply::json(200, openai::chat_completion("never")).reset_before_headers()
        } else if text.contains("cut") {
            Reply::sse(openai::text_stream("a stream cut short", 4)).reset_after_body_bytes(40)
        } else if text.contains("slow") {
            Reply::json(200, openai::chat_completion("late"))
                .delay_before_headers(Duration::from_secs(4))
        } else if stream {
            Reply::sse(openai::text_stream("ok", 2))
        } else {
            Reply::json(200, openai::chat_completion("ok"))
        }
    })
    .await
}

fn gemini_body(prompt: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]})
}

fn anthropic_body(prompt: &str) -> Value {
    let mut b = messages_body(true);
    b["messages"][0]["content"] = json!(prompt);
    b
}

/// A client key in `?key=` opens only Gemini routes; and whatever fails on the way to the
/// provider (connection refused on every source, a reset, a cut stream, a timeout), no log
/// line — Pingora's own included — carries a query string or a key.
#[tokio::test(flavor = "multi_thread")]
async fn query_keys_work_on_gemini_routes_only_and_never_reach_the_logs() {
    const OK_KEY: &str = "fp-CANARY-ok-3c1d";
    const REFUSED_KEY: &str = "fp-CANARY-refused-8e2b";
    const FAULTY_KEY: &str = "fp-CANARY-faulty-51aa";
    const QUERY_CANARY: &str = "qCANARYq";
    let ok = faulty_provider().await;
    let faulty = faulty_provider().await;
    let (dead, dead2) = (free_port(), free_port());
    let (port, admin_port) = (free_port(), free_port());
    let dead_url = |p: u16| format!("http://127.0.0.1:{p}/v1");
    let dir = config_dir(
        &format!(
            "listen: 127.0.0.1:{port}\nthreads: 2\nadmin:\n  listen: 127.0.0.1:{admin_port}\naccess_log:\n  path: access.log\n"
        ),
        &[
            ("ok", adapter_yaml(&ok.base_url(), &[OK_KEY], "")),
            (
                "refused",
                adapter_yaml(
                    &dead_url(dead),
                    &[REFUSED_KEY],
                    &format!(
                        "fallbacks:\n  - base_url: {}\n    api_key: sk-backup",
                        dead_url(dead2)
                    ),
                ),
            ),
            (
                "faulty",
                adapter_yaml(
                    &faulty.base_url(),
                    &[FAULTY_KEY],
                    &format!(
                        "timeouts:\n  first_byte: 1s\nfallbacks:\n  - base_url: {}\n    api_key: sk-backup",
                        dead_url(dead)
                    ),
                ),
            ),
        ],
    );
    let proc = ProcessProxy::spawn(
        &dir.path().join("flexiproxy.yaml"),
        port,
        &[("RUST_LOG", "debug")],
    );
    // A fresh connection per request: after a broken-off answer the proxy closes its
    // connection, and a pooled client may send the next request on it before it sees the close
    // (a loaded run failed with IncompleteMessage on a request the proxy never received).
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let gemini_path = "/v1beta/models/gemini-pro:streamGenerateContent";
    let mut requests = 0;

    // The key in the query: refused off Gemini's routes, accepted on them.
    for path in [
        "/v1/messages",
        "/v1/chat/completions",
        "/v1/messages/count_tokens",
    ] {
        let r = c
            .post(proc.url(&format!("{path}?beta=true&key={OK_KEY}")))
            .json(&anthropic_body("hi"))
            .send()
            .await
            .unwrap();
        requests += 1;
        assert_eq!(r.status(), 401, "{path}");
    }
    let models = c
        .get(proc.url(&format!("/v1/models?key={OK_KEY}")))
        .send()
        .await
        .unwrap();
    requests += 1;
    assert_eq!(models.status(), 401);
    let r = c
        .post(proc.url(&format!("{gemini_path}?alt=sse&key={OK_KEY}")))
        .json(&gemini_body("hi"))
        .send()
        .await
        .unwrap();
    requests += 1;
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await;
    let r = c
        .get(proc.url(&format!("/v1beta/models?key={OK_KEY}")))
        .send()
        .await
        .unwrap();
    requests += 1;
    assert_eq!(r.status(), 200);

    // Failures in Pingora's proxy loop (adapters with fallbacks), the key in the query on
    // Gemini's route and a query string on the others.
    let mut cases = vec![(REFUSED_KEY, "hi", 502)];
    // A first-byte timeout fails over too: its fallback (down) answers last.
    for (prompt, status) in [("reset", 502), ("cut", 200), ("slow", 502)] {
        cases.push((FAULTY_KEY, prompt, status));
    }
    for (key, prompt, status) in cases {
        let r = c
            .post(proc.url(&format!("{gemini_path}?alt=sse&key={key}")))
            .json(&gemini_body(prompt))
            .send()
            .await
            .unwrap();
        requests += 1;
        assert_eq!(r.status().as_u16(), status, "gemini {key} {prompt}");
        let _ = r.bytes().await;
        for path in ["/v1/messages", "/v1/chat/completions"] {
            let body = if path == "/v1/messages" {
                anthropic_body(prompt)
            } else {
                json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": prompt}]})
            };
            let r = c
                .post(proc.url(&format!("{path}?beta=true&trace={QUERY_CANARY}")))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{path} {key} {prompt}: {e:?}\n{}", proc.log_text()));
            requests += 1;
            assert_eq!(r.status().as_u16(), status, "{path} {key} {prompt}");
            let _ = r.bytes().await;
        }
    }

    wait_until(DEADLINE, "every request is in the access log", || {
        std::fs::read_to_string(dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .count()
            >= requests
    });
    let access = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    let log = proc.log_text();
    // The lines about the failed requests are there (exchange failures and fail-overs),
    // with what they may say.
    assert!(
        log.contains("provider exchange failed") && log.contains("trying the next key or source"),
        "the failure lines were captured:\n{log}"
    );
    for (what, text) in [("process log", &log), ("access log", &access)] {
        for canary in ["CANARY", "key=", QUERY_CANARY, "beta=true", "alt=sse"] {
            assert!(!text.contains(canary), "{canary} is in the {what}:\n{text}");
        }
    }
}

/// No client query string reaches a provider: not Claude Code's `?beta=true`, not a `key=`;
/// a Gemini source gets only the `alt=sse` its call needs.
#[tokio::test(flavor = "multi_thread")]
async fn providers_get_no_client_query_string() {
    let provider = FakeProvider::start(|req| {
        if req.path.contains("count_tokens") {
            Reply::json(200, json!({"input_tokens": 3}))
        } else if req.path.contains(":streamGenerateContent") {
            Reply::sse(flexiproxy_testkit::gemini::text_stream("hi", 1))
        } else {
            Reply::json(200, anthropic::message("hi"))
        }
    })
    .await;
    let proxy = Proxy::start(&[
        (
            "a",
            adapter_yaml(&provider.origin(), &[KEY], "protocol: anthropic"),
        ),
        (
            "g",
            adapter_yaml(
                &format!("{}/v1beta", provider.origin()),
                &["fp-gemini-key-2"],
                "protocol: gemini",
            ),
        ),
    ]);
    for (path, upstream) in [
        ("/v1/messages?beta=true&key=zz", "/v1/messages"),
        (
            "/v1/messages/count_tokens?beta=true&x=1",
            "/v1/messages/count_tokens",
        ),
    ] {
        provider.clear_requests();
        let r = client()
            .post(proxy.url(path))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&messages_body(false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let seen = provider.wait_for_requests(1, DEADLINE).await;
        assert_eq!(seen[0].path, upstream, "{path}");
    }
    provider.clear_requests();
    let r = client()
        .post(proxy.url(
            "/v1beta/models/gemini-pro:streamGenerateContent?alt=sse&key=fp-gemini-key-2&x=qq",
        ))
        .json(&gemini_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = provider.wait_for_requests(1, DEADLINE).await;
    assert_eq!(
        seen[0].path,
        "/v1beta/models/fake-model:streamGenerateContent?alt=sse"
    );
    assert_eq!(seen[0].header("x-goog-api-key"), Some(PROVIDER_KEY));
}

/// Waits until the server closes `stream` (EOF, a reset, or a write that fails), at most
/// `within`; returns how long it took.
fn wait_closed(stream: &mut TcpStream, within: Duration, trickle: bool) -> Duration {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < within {
        if trickle && stream.write_all(b"a").is_err() {
            return start.elapsed();
        }
        match stream.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return start.elapsed(),
        }
    }
    panic!("the connection is still open after {within:?}");
}

/// Sends a complete `GET path` on `stream` and reads its answer (by content-length).
fn get_on(stream: &mut TcpStream, path: &str) -> String {
    write!(stream, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the answer");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

/// A client that sends part of a header and stops (or trickles it a byte at a time) is cut
/// after `limits.header_timeout`, on a new and on a kept-alive connection, on both listeners;
/// other connections are served meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_are_cut_on_both_listeners() {
    let provider = faulty_provider().await;
    let proxy = Proxy::start_with(
        "limits:\n  header_timeout: 2s\n",
        &[("a", adapter_yaml(&provider.base_url(), &[KEY], ""))],
    );
    let timeout = Duration::from_secs(2);
    let within = timeout + Duration::from_secs(8);
    for (listener, addr, health) in [
        ("client", proxy.addr, proxy.url("/health")),
        ("admin", proxy.admin, proxy.admin_url("/health")),
    ] {
        for case in ["stops", "trickles", "kept alive, then stops"] {
            let slow = std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                if case.starts_with("kept alive") {
                    let answer = get_on(&mut s, "/health");
                    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
                    std::thread::sleep(Duration::from_millis(300));
                }
                s.write_all(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-")
                    .unwrap();
                wait_closed(&mut s, within, case == "trickles")
            });
            // Meanwhile, on other connections, requests are answered.
            let mut served = 0;
            while !slow.is_finished() {
                let r = client().get(&health).send().await.unwrap();
                assert_eq!(r.status(), 200, "{listener}: {case}");
                served += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let took = slow.join().unwrap();
            assert!(served > 0, "{listener}: {case}");
            assert!(
                took >= timeout / 2,
                "{listener}: {case}: closed after {took:?}, before the timeout"
            );
        }
        if listener == "client" {
            let r = post_messages(&proxy, &messages_body(false)).await;
            assert_eq!(r.status(), 200);
        }
    }
}

/// Reads the whole answer to what was written on `stream` (until the server closes).
fn answer_of(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// Headers past `limits.max_header_size` get 431 on both listeners — in the client's error
/// shape on the client listener — as soon as they pass it, without waiting for the end of a
/// header that never ends.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_get_431_on_both_listeners() {
    let provider = faulty_provider().await;
    let proxy = Proxy::start_with(
        "limits:\n  max_header_size: 16384\n",
        &[("a", adapter_yaml(&provider.base_url(), &[KEY], ""))],
    );
    let filler = "a".repeat(200 * 1024);
    let r = client()
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("x-filler", &filler)
        .json(&messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    let r = client()
        .post(proxy.url("/v1beta/models/gemini-pro:generateContent"))
        .header("x-goog-api-key", KEY)
        .header("x-filler", &filler)
        .json(&gemini_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 431, "{body}");
    let r = client()
        .get(proxy.admin_url("/health"))
        .header("x-filler", &filler)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    // Just under the limit is fine.
    let r = client()
        .get(proxy.admin_url("/health"))
        .header("x-filler", "a".repeat(12 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A header that keeps growing and never ends is answered when it passes the limit.
    for addr in [proxy.addr, proxy.admin] {
        let answer = tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect::<SocketAddr>(addr).unwrap();
            s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-filler: ")
                .unwrap();
            s.write_all(&[b'a'; 32 * 1024]).unwrap();
            answer_of(&mut s)
        })
        .await
        .unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 431"),
            "{addr}: {}",
            &answer[..answer.len().min(200)]
        );
    }
    assert_healthy(&proxy).await;
}
