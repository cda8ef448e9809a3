//! The inspector's memory bound in a real process (#29, docs/inspector.md): `flexiproxy serve`
//! with `inspect: { keep: 50 }` on an adapter and a small total bound takes 1,000 requests of
//! 75 KB; its resident memory, read from `/proc/PID/status` throughout, stays within the
//! bound plus the baseline the same process reached on the same load through an adapter that
//! is not inspected.

use crate::harness::*;
use flexiproxy_testkit::{FakeProvider, Reply, openai};
use futures::StreamExt;
use serde_json::json;

/// The inspector's total bound, below what `keep: 50` of these exchanges would hold
/// (~150 KB each: the client's and the provider's request): the bound, not `keep`, decides.
const BOUND: u64 = 4 << 20;
/// Beyond the measured baseline and the bound: transient copies of the exchanges being
/// finished (each masked once, ~300 KB with 8 in flight ≈ 2.4 MB) and the allocator keeping
/// freed pages for reuse. Exchanges never let go (a leak) would cost 1,000 × ~150 KB ≈ 150 MB.
const SLACK: u64 = 16 << 20;
const REQUESTS: usize = 1_000;
const IN_FLIGHT: usize = 8;

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// Sends `REQUESTS` 75 KB requests with `key`, `IN_FLIGHT` at a time; the largest RSS seen
/// after each answer.
async fn load(proxy: &ProcessProxy, key: &str, pid: u32) -> u64 {
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": "y".repeat(75_000)}]});
    let http = client();
    let url = proxy.url("/v1/messages");
    futures::stream::iter(0..REQUESTS)
        .map(|i| {
            let (http, url, body) = (http.clone(), url.clone(), &body);
            async move {
                let resp = http
                    .post(url)
                    .header("x-api-key", key)
                    .header("anthropic-version", "2023-06-01")
                    .json(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "request {i}");
                resp.bytes().await.unwrap();
                rss(pid)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .fold(0, |peak, seen| async move { peak.max(seen) })
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn resident_memory_stays_within_the_inspector_bound() {
    let provider = FakeProvider::start(|_| Reply::json(200, openai::chat_completion("ok"))).await;
    let port = free_port();
    let server = format!(
        "listen: 127.0.0.1:{port}\nthreads: 2\ninspect:\n  memory: {BOUND}\n  per_adapter: {BOUND}\n"
    );
    const INSPECTED_KEY: &str = "inspected-client-key-1";
    let plain = adapter_yaml(&provider.base_url(), &[KEY], "");
    let inspected = format!(
        "inspect: {{ keep: 50 }}\n{}",
        adapter_yaml(&provider.base_url(), &[INSPECTED_KEY], "")
    );
    let dir = config_dir(&server, &[("plain", plain), ("insp", inspected)]);
    let proxy = ProcessProxy::spawn(&dir.path().join("flexiproxy.yaml"), port, &[]);
    let pid = proxy.child.id();

    // The same load without the inspector: what the process itself settles at.
    let baseline = load(&proxy, KEY, pid).await;
    let inspected_peak = load(&proxy, INSPECTED_KEY, pid).await;
    let after = rss(pid);
    let limit = baseline + BOUND + SLACK;
    eprintln!(
        "RSS: baseline {} MiB, inspected peak {} MiB, after {} MiB, limit {} MiB",
        baseline >> 20,
        inspected_peak >> 20,
        after >> 20,
        limit >> 20
    );
    assert!(
        inspected_peak <= limit && after <= limit,
        "RSS {inspected_peak} (after: {after}) past baseline {baseline} + bound {BOUND} + {SLACK}"
    );
    assert_eq!(provider.requests().len(), 2 * REQUESTS);
}
