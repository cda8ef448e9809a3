//! Byte-level tests of the fake provider: request parsing (chunked, split, large),
//! keep-alive, every scripted misbehaviour, connection accounting and TLS.

mod common;

use std::io;
use std::time::{Duration, Instant};

use common::{DEADLINE, post, read_response, read_until_end};
use flexiproxy_testkit::{FakeProvider, Framing, Reply, openai, tls};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn ok_json() -> Reply {
    Reply::json(200, openai::chat_completion("hi"))
}

#[tokio::test]
async fn chunked_request_body_is_recorded_whole() {
    let provider = FakeProvider::start(|_| ok_json()).await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\
          content-type: application/json\r\n\r\n",
    )
    .await
    .unwrap();
    // Chunks in separate writes, one with an extension, a size line split across writes,
    // and a trailer section.
    let pieces: [&[u8]; 6] = [
        b"6\r\n{\"a\": \r\n",
        b"6;ext=1\r\n\"h\xc3\xa9\"}\r\n",
        b"0",
        b"\r\n",
        b"x-trailer: 1\r\n",
        b"\r\n",
    ];
    for p in pieces {
        s.write_all(p).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut buf = Vec::new();
    let resp = read_response(&mut s, &mut buf).await.unwrap();
    assert_eq!(resp.status, 200);
    let reqs = provider.wait_for_requests(1, DEADLINE).await;
    assert!(reqs[0].chunked);
    assert_eq!(reqs[0].body.as_ref(), "{\"a\": \"hé\"}".as_bytes());
    assert_eq!(reqs[0].json(), json!({"a": "hé"}));
    assert_eq!(reqs[0].header("Content-Type"), Some("application/json"));

    // The connection stays usable after a chunked request.
    s.write_all(&post("/v1/x", "{}")).await.unwrap();
    assert_eq!(read_response(&mut s, &mut buf).await.unwrap().status, 200);
    assert_eq!(provider.connections_accepted(), 1);
}

#[tokio::test]
async fn keep_alive_serves_100_sequential_requests_on_one_connection() {
    let provider = FakeProvider::start(|req| Reply::json(200, json!({"echo": req.json()}))).await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..100 {
        let body = json!({"i": i}).to_string();
        s.write_all(&post("/v1/chat/completions?n=1", &body))
            .await
            .unwrap();
        let resp = read_response(&mut s, &mut buf).await.unwrap();
        assert_eq!(resp.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(v["echo"]["i"], i);
    }
    assert_eq!(provider.connections_accepted(), 1);
    assert_eq!(provider.request_count(), 100);
    let reqs = provider.requests();
    assert!(reqs.iter().all(|r| r.connection_id == 0 && !r.chunked));
    assert_eq!(reqs[99].path, "/v1/chat/completions?n=1");
    assert_eq!(provider.open_connections(), 1);
    drop(s);
    provider.wait_for_open_connections(0, DEADLINE).await;
}

#[tokio::test]
async fn split_writes_arrive_as_separate_reads() {
    let text = "héllo wörld — ünïcode split across reads ✓";
    let provider = FakeProvider::start(move |_| {
        Reply::text(200, "text/plain; charset=utf-8", text)
            .split_writes(vec![1, 2])
            .delay_between_writes(Duration::from_millis(10))
    })
    .await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(&post("/", "")).await.unwrap();
    // Read raw until the whole body (content-length framing) arrived, counting reads.
    let mut all = Vec::new();
    let mut reads = 0;
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed early");
        reads += 1;
        all.extend_from_slice(&chunk[..n]);
        if all.ends_with("✓".as_bytes()) {
            break;
        }
    }
    let body_start = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(&all[body_start..], text.as_bytes());
    // 1,2,1,2,... bytes of a ~55-byte body: far more than one read.
    assert!(reads > 20, "only {reads} reads");
}

#[tokio::test]
async fn split_writes_with_chunked_framing_make_one_chunk_per_write() {
    let provider = FakeProvider::start(|_| {
        Reply::sse(vec!["data: ü\n\n".into(), "data: [DONE]\n\n".into()]).split_writes(vec![3])
    })
    .await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(&post("/", "")).await.unwrap();
    let (raw, end) = read_until_end_or_complete(&mut s).await;
    end.unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("\r\n\r\n3\r\ndat\r\n3\r\na: \r\n"), "{text}");
    assert!(text.ends_with("0\r\n\r\n"));
}

/// Read until the terminating chunk arrives (the connection stays open).
async fn read_until_end_or_complete(s: &mut TcpStream) -> (Vec<u8>, io::Result<()>) {
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) => return (all, Ok(())),
            Ok(n) => {
                all.extend_from_slice(&chunk[..n]);
                if all.ends_with(b"0\r\n\r\n") {
                    return (all, Ok(()));
                }
            }
            Err(e) => return (all, Err(e)),
        }
    }
}

#[tokio::test]
async fn reset_after_body_bytes_resets_the_client() {
    let events: Vec<String> = openai::text_stream("one two three four five", 5);
    let first_len = events[0].len();
    let provider = FakeProvider::start(move |_| {
        Reply::sse(events.clone()).reset_after_body_bytes(first_len + 4)
    })
    .await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(&post("/v1/chat/completions", "{}"))
        .await
        .unwrap();
    let (got, end) = read_until_end(&mut s).await;
    let err = end.expect_err("expected a connection reset");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    // Everything written before the RST arrived: the whole first event and 4 more bytes.
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("data: {"), "{text}");
    assert!(!text.ends_with("0\r\n\r\n"));
}

#[tokio::test]
async fn reset_before_headers_sends_nothing_but_rst() {
    let provider = FakeProvider::start(|_| ok_json().reset_before_headers()).await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(&post("/", "{\"x\":1}")).await.unwrap();
    let (got, end) = read_until_end(&mut s).await;
    assert!(got.is_empty());
    assert_eq!(end.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    // The request was still read and recorded.
    assert_eq!(
        provider.wait_for_requests(1, DEADLINE).await[0].json(),
        json!({"x": 1})
    );
}

#[tokio::test]
async fn reset_mid_headers_sends_a_partial_head() {
    let provider = FakeProvider::start(|_| ok_json().reset_mid_headers()).await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(&post("/", "")).await.unwrap();
    let (got, end) = read_until_end(&mut s).await;
    assert_eq!(end.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert!(!got.windows(4).any(|w| w == b"\r\n\r\n"));
}

#[tokio::test]
async fn stall_holds_the_connection_until_the_peer_closes() {
    let provider = FakeProvider::start(|_| {
        Reply::sse(openai::text_stream("a b c", 3)).stall_after_body_bytes(10)
    })
    .await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(&post("/", "")).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Head + 10 payload bytes arrive, then nothing.
    let stalled = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "provider closed instead of stalling");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(stalled.is_err(), "expected the read to hang");
    assert!(String::from_utf8_lossy(&buf).contains("transfer-encoding: chunked"));
    assert_eq!(provider.aborted_replies(), 0);
    assert_eq!(provider.open_connections(), 1);
    drop(s);
    assert_eq!(provider.wait_for_aborted_replies(1, DEADLINE).await, 1);
    provider.wait_for_open_connections(0, DEADLINE).await;
}

#[tokio::test]
async fn client_disconnect_mid_stream_counts_as_aborted() {
    let provider = FakeProvider::start(|_| {
        Reply::sse(openai::text_stream("many words arrive slowly here", 20))
            .delay_between_writes(Duration::from_millis(50))
    })
    .await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(&post("/", "")).await.unwrap();
    let mut chunk = [0u8; 4096];
    let n = s.read(&mut chunk).await.unwrap();
    assert!(n > 0);
    drop(s);
    let t = Instant::now();
    provider.wait_for_aborted_replies(1, DEADLINE).await;
    // Noticed during the delay, not only at the next write.
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn close_after_and_close_delimited() {
    let provider = FakeProvider::start(|req| {
        if req.path == "/close" {
            ok_json().close_after()
        } else {
            Reply::text(200, "text/plain", "until eof").framing(Framing::CloseDelimited)
        }
    })
    .await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(&post("/close", "")).await.unwrap();
    let mut buf = Vec::new();
    let resp = read_response(&mut s, &mut buf).await.unwrap();
    assert_eq!(resp.header("connection"), Some("close"));
    let (rest, end) = read_until_end(&mut s).await;
    assert!(rest.is_empty() && end.is_ok(), "expected a clean EOF");

    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(&post("/eof", "")).await.unwrap();
    let resp = read_response(&mut s, &mut Vec::new()).await.unwrap();
    assert_eq!(resp.header("content-length"), None);
    assert_eq!(resp.header("transfer-encoding"), None);
    assert_eq!(resp.text(), "until eof");
}

#[tokio::test]
async fn garbage_is_written_raw_then_closed() {
    let provider = FakeProvider::start(|_| Reply::garbage(&b"\x00\xffnot http at all"[..])).await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(&post("/", "")).await.unwrap();
    let (got, end) = read_until_end(&mut s).await;
    end.unwrap();
    assert_eq!(got, b"\x00\xffnot http at all");
}

#[tokio::test]
async fn delay_before_headers_delays_the_first_byte() {
    let provider =
        FakeProvider::start(|_| ok_json().delay_before_headers(Duration::from_millis(200))).await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    let t = Instant::now();
    s.write_all(&post("/", "")).await.unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(190),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
#[should_panic(expected = "timed out after 50ms waiting for 2 request(s); received 1")]
async fn wait_for_requests_panics_with_a_clear_message() {
    let provider = FakeProvider::start(|_| ok_json()).await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(&post("/v1/only-one", "")).await.unwrap();
    read_response(&mut s, &mut Vec::new()).await.unwrap();
    provider
        .wait_for_requests(2, Duration::from_millis(50))
        .await;
}

#[tokio::test]
async fn requests_split_into_single_bytes_and_big_headers() {
    let provider = FakeProvider::start(|_| ok_json()).await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    let big = "x".repeat(60 * 1024);
    let body = "{\"k\":\"é\"}";
    let req = format!(
        "POST /v1/a?b=c HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Head byte by byte for the first 200 bytes, then the rest at once.
    for b in &req.as_bytes()[..200] {
        s.write_all(std::slice::from_ref(b)).await.unwrap();
    }
    s.write_all(&req.as_bytes()[200..]).await.unwrap();
    assert_eq!(
        read_response(&mut s, &mut Vec::new()).await.unwrap().status,
        200
    );
    let r = &provider.wait_for_requests(1, DEADLINE).await[0];
    assert_eq!(r.header("x-big").map(str::len), Some(big.len()));
    assert_eq!(r.headers[0], ("host".to_string(), "x".to_string()));
    assert_eq!(r.body_text(), body);
}

#[tokio::test]
async fn fifty_megabyte_bodies() {
    let provider =
        FakeProvider::start(|req| Reply::json(200, json!({"len": req.body.len()}))).await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    let len = 50 * 1000 * 1000;
    let head = format!("POST /big HTTP/1.1\r\nhost: x\r\ncontent-length: {len}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b'a'; len]).await.unwrap();
    let resp = read_response(&mut s, &mut Vec::new()).await.unwrap();
    assert_eq!(resp.text(), format!("{{\"len\":{len}}}"));

    // The same size chunked, in 1 MB chunks.
    s.write_all(b"POST /big HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![b'b'; 1_000_000];
    for _ in 0..50 {
        s.write_all(b"f4240\r\n").await.unwrap();
        s.write_all(&chunk).await.unwrap();
        s.write_all(b"\r\n").await.unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let resp = read_response(&mut s, &mut Vec::new()).await.unwrap();
    assert_eq!(resp.text(), format!("{{\"len\":{len}}}"));
}

#[tokio::test]
async fn bad_requests_get_an_error_status() {
    let provider = FakeProvider::start(|_| ok_json()).await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(b"NOT HTTP\r\n\r\n").await.unwrap();
    let resp = read_response(&mut s, &mut Vec::new()).await.unwrap();
    assert_eq!(resp.status, 400);

    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\ncontent-length: 999999999999\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_response(&mut s, &mut Vec::new()).await.unwrap().status,
        413
    );
    assert_eq!(provider.request_count(), 0);
}

#[tokio::test]
async fn handler_panic_becomes_a_500() {
    let provider = FakeProvider::start(|_| panic!("boom in handler")).await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(&post("/", "")).await.unwrap();
    let resp = read_response(&mut s, &mut Vec::new()).await.unwrap();
    assert_eq!(resp.status, 500);
    assert!(resp.text().contains("boom in handler"));
}

#[tokio::test]
async fn expect_continue_and_http10() {
    let provider = FakeProvider::start(|_| ok_json()).await;
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"{}").await.unwrap();
    assert_eq!(
        read_response(&mut s, &mut Vec::new()).await.unwrap().status,
        200
    );

    // HTTP/1.0 without keep-alive: answered, then closed.
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(b"GET /v1/models HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let resp = read_response(&mut s, &mut buf).await.unwrap();
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(read_until_end(&mut s).await.0.is_empty());

    // HTTP/1.0 with keep-alive (ab -k): told so, connection reused.
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .await
            .unwrap();
        let resp = read_response(&mut s, &mut buf).await.unwrap();
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }
}

#[tokio::test]
async fn drop_closes_open_connections() {
    let provider = FakeProvider::start(|_| ok_json()).await;
    let addr = provider.addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&post("/", "")).await.unwrap();
    read_response(&mut s, &mut Vec::new()).await.unwrap();
    drop(provider);
    let (rest, _) = read_until_end(&mut s).await;
    assert!(rest.is_empty());
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener still accepting"
    );
}

#[tokio::test]
async fn blocking_clients_work_on_a_current_thread_test_runtime() {
    // The provider has its own thread, so a blocking client cannot starve it.
    let provider = FakeProvider::start(|_| ok_json()).await;
    let mut s = std::net::TcpStream::connect(provider.addr()).unwrap();
    std::io::Write::write_all(&mut s, &post("/", "")).unwrap();
    let mut b = [0u8; 12];
    std::io::Read::read_exact(&mut s, &mut b).unwrap();
    assert_eq!(&b, b"HTTP/1.1 200");
}

#[tokio::test]
async fn multi_threaded_provider_serves_parallel_clients() {
    let provider = FakeProvider::builder()
        .worker_threads(2)
        .start(|_| ok_json())
        .await
        .unwrap();
    let addr = provider.addr();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let mut buf = Vec::new();
                for _ in 0..25 {
                    s.write_all(&post("/", "")).await.unwrap();
                    assert_eq!(read_response(&mut s, &mut buf).await.unwrap().status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(provider.request_count(), 200);
    assert_eq!(provider.connections_accepted(), 8);
}

#[tokio::test]
async fn tls_provider_serves_https_for_localhost() {
    let pki = tls::test_ca_and_cert(&["provider.test"]);
    let provider = FakeProvider::start_tls(|_| ok_json(), &pki.cert_chain_pem, &pki.key_pem).await;
    assert_eq!(
        provider.base_url(),
        format!("https://localhost:{}/v1", provider.addr().port())
    );
    let connector = tokio_rustls::TlsConnector::from(pki.client_config());
    for name in ["localhost", "provider.test", "127.0.0.1"] {
        let tcp = TcpStream::connect(provider.addr()).await.unwrap();
        let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut s = connector.connect(server_name, tcp).await.unwrap();
        let mut buf = Vec::new();
        for _ in 0..3 {
            s.write_all(&post("/v1/chat/completions", "{}"))
                .await
                .unwrap();
            let resp = read_response(&mut s, &mut buf).await.unwrap();
            assert_eq!(resp.status, 200);
        }
    }
    assert_eq!(provider.request_count(), 9);
    assert_eq!(provider.connections_accepted(), 3);

    // A client that does not trust the test CA is refused.
    let other = tls::test_ca_and_cert(&[]);
    let connector = tokio_rustls::TlsConnector::from(other.client_config());
    let tcp = TcpStream::connect(provider.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    assert!(connector.connect(name, tcp).await.is_err());
}

#[tokio::test]
async fn tls_reset_after_body_bytes() {
    let pki = tls::test_ca_and_cert(&[]);
    let provider = FakeProvider::start_tls(
        |_| Reply::sse(openai::text_stream("a b c d", 4)).reset_after_body_bytes(20),
        &pki.cert_chain_pem,
        &pki.key_pem,
    )
    .await;
    let connector = tokio_rustls::TlsConnector::from(pki.client_config());
    let tcp = TcpStream::connect(provider.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = connector.connect(name, tcp).await.unwrap();
    s.write_all(&post("/", "")).await.unwrap();
    let (got, end) = read_until_end(&mut s).await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200 OK"));
    assert!(end.is_err(), "expected an error, not a clean close");
}

#[tokio::test]
async fn random_input_never_kills_the_server() {
    let provider = FakeProvider::start(|_| ok_json()).await;
    // Deterministic xorshift so failures reproduce.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let prefixes: [&[u8]; 4] = [
        b"",
        b"POST / HTTP/1.1\r\n",
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\n",
    ];
    for i in 0..200 {
        let mut s = TcpStream::connect(provider.addr()).await.unwrap();
        let mut bytes = prefixes[i % prefixes.len()].to_vec();
        let len = (next() % 300) as usize;
        bytes.extend((0..len).map(|_| next() as u8));
        let _ = s.write_all(&bytes).await;
        // Half the time hang up without reading, half the time read whatever comes.
        if i % 2 == 0 {
            let _ = s.shutdown().await;
            let _ = tokio::time::timeout(Duration::from_millis(50), read_until_end(&mut s)).await;
        }
    }
    let mut s = TcpStream::connect(provider.addr()).await.unwrap();
    s.write_all(&post("/", "")).await.unwrap();
    assert_eq!(
        read_response(&mut s, &mut Vec::new()).await.unwrap().status,
        200
    );
    drop(s);
    provider.wait_for_open_connections(0, DEADLINE).await;
}
