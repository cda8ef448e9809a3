//! A provider (or a proxy in front of it) that echoes the key it was sent in its error must
//! not hand it to FlexiProxy's clients: every error FlexiProxy relays — translated or passed
//! through, a JSON answer or an error event inside a stream that began with 200 — has the
//! adapter's provider keys masked as `***`, and no log line carries them either.
//!
//! All four client protocols on all four source protocols (same protocol: passthrough), on
//! an adapter without fallbacks (the direct exchange) and one with a fallback source (Pingora's
//! proxy loop, whose fallback echoes its own key), streaming and not, with the echoed key
//! split across two reads of the provider's body.

use crate::harness::*;
use flexiproxy_testkit::{
    FakeProvider, RecordedRequest, Reply, anthropic, gemini, openai, responses,
};
use serde_json::{Value, json};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);
/// The fallback source's key, as much a secret as the main one.
const FALLBACK_KEY: &str = "sk-canary-fallback-2b8d51";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Anthropic,
    Chat,
    Responses,
    Gemini,
}

const WIRES: [Wire; 4] = [Wire::Anthropic, Wire::Chat, Wire::Responses, Wire::Gemini];

impl Wire {
    fn name(self) -> &'static str {
        match self {
            Wire::Anthropic => "anthropic",
            Wire::Chat => "openai",
            Wire::Responses => "responses",
            Wire::Gemini => "gemini",
        }
    }

    /// The protocol a provider request speaks, from its path.
    fn of_path(path: &str) -> Wire {
        if path.contains("/v1/messages") {
            Wire::Anthropic
        } else if path.contains("/chat/completions") {
            Wire::Chat
        } else if path.contains("/responses") {
            Wire::Responses
        } else {
            Wire::Gemini
        }
    }

    /// The provider's error body in this protocol's shape.
    fn error_body(self, status: u16, message: &str) -> Value {
        match self {
            Wire::Anthropic => anthropic::error_body("authentication_error", message),
            Wire::Chat | Wire::Responses => {
                openai::error_body(message, "invalid_request_error", None)
            }
            Wire::Gemini => gemini::error_body(status, "UNAUTHENTICATED", message),
        }
    }

    /// A stream that starts well, then carries the provider's error event.
    fn failing_stream(self, message: &str) -> String {
        let events = match self {
            Wire::Anthropic => {
                let mut e = anthropic::text_stream_head("Hello");
                e.push(anthropic::error_event("api_error", message));
                e
            }
            Wire::Chat => vec![
                openai::sse_chunk(json!({"role": "assistant", "content": "Hello"}), None),
                openai::data_event(&openai::error_body(message, "server_error", None)),
            ],
            Wire::Responses => responses::failed_stream("Hello", message),
            Wire::Gemini => vec![
                gemini::text_stream("Hello there", 2).remove(0),
                gemini::event(&gemini::error_body(500, "INTERNAL", message)),
            ],
        };
        events.concat()
    }
}

/// Echoes the auth header it received: in an error of the status the prompt names
/// (`echo-401` …), in an error answered with 200 (`echo-in-200`), else in an error event
/// after a 200 stream start. The body is written in two pieces cut inside the key.
fn echo(req: &RecordedRequest) -> Reply {
    let sent = ["authorization", "x-api-key", "x-goog-api-key"]
        .into_iter()
        .find_map(|h| req.header(h))
        .unwrap_or_default()
        .to_owned();
    let bare = sent.strip_prefix("Bearer ").unwrap_or(&sent).to_owned();
    let message = format!("bad key {sent}");
    let wire = Wire::of_path(&req.path);
    let prompt = req.body_text();
    let status = [401, 429, 500]
        .into_iter()
        .find(|s| prompt.contains(&format!("echo-{s}")));
    let in_200 = prompt.contains("echo-in-200");
    let (reply, body) = match status.or(in_200.then_some(200)) {
        Some(status) => {
            let mut body = wire.error_body(status, &message);
            // The bare key too, where only a passthrough relays it.
            body["received"] = json!(bare);
            let body = body.to_string();
            let reply = Reply::text(status, "application/json", body.clone());
            (reply, body)
        }
        None => {
            let body = wire.failing_stream(&message);
            (Reply::sse_bytes(200, body.clone()), body)
        }
    };
    let at = body.find(&bare).expect("the key is in the body");
    reply
        .split_writes(vec![at + 5, body.len()])
        .delay_between_writes(Duration::from_millis(20))
}

fn adapter(source: Wire, provider: &FakeProvider, client_key: &str, fallback: bool) -> String {
    let base_url = match source {
        Wire::Anthropic => provider.origin(),
        Wire::Chat | Wire::Responses => provider.base_url(),
        Wire::Gemini => format!("{}/v1beta", provider.origin()),
    };
    let mut yaml = format!(
        "source:\n  protocol: {}\n  base_url: {base_url}\n  api_key: {PROVIDER_KEY}\n  model: fake-model\n",
        source.name()
    );
    if fallback {
        yaml.push_str(&format!(
            "  fallbacks:\n    - {{ base_url: {base_url}, api_key: {FALLBACK_KEY} }}\n"
        ));
    }
    yaml.push_str(&format!(
        "keys:\n  - sha256: {}\n    label: test\n",
        sha256_hex(client_key)
    ));
    yaml
}

fn client_key(source: Wire, fallback: bool) -> String {
    format!(
        "fp-relay-{}-{}",
        source.name(),
        if fallback { "loop" } else { "direct" }
    )
}

/// One client request in `client`'s protocol; the status and the whole body.
async fn ask(
    proxy: &ProcessProxy,
    client: Wire,
    key: &str,
    prompt: &str,
    stream: bool,
) -> (u16, String) {
    let http = crate::harness::client();
    let request = match client {
        Wire::Anthropic => http
            .post(proxy.url("/v1/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(
                &json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
                          "messages": [{"role": "user", "content": prompt}]}),
            ),
        Wire::Chat => http
            .post(proxy.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": "gpt-4o", "stream": stream,
                          "messages": [{"role": "user", "content": prompt}]})),
        Wire::Responses => http
            .post(proxy.url("/v1/responses"))
            .bearer_auth(key)
            .json(&json!({"model": "gpt-4o", "stream": stream, "input": prompt})),
        Wire::Gemini => {
            let method = if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            http.post(proxy.url(&format!("/v1beta/models/gemini-pro:{method}")))
                .header("x-goog-api-key", key)
                .json(&json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]}))
        }
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn echoed_provider_keys_are_masked_in_every_relayed_error_and_never_logged() {
    let provider = FakeProvider::start(echo).await;
    let (port, admin_port) = (free_port(), free_port());
    let mut adapters = Vec::new();
    for source in WIRES {
        for fallback in [false, true] {
            let name = format!(
                "{}-{}",
                source.name(),
                if fallback { "loop" } else { "direct" }
            );
            let key = client_key(source, fallback);
            adapters.push((name, adapter(source, &provider, &key, fallback)));
        }
    }
    let adapters: Vec<(&str, String)> = adapters
        .iter()
        .map(|(n, y)| (n.as_str(), y.clone()))
        .collect();
    let dir = config_dir(
        &format!(
            "listen: 127.0.0.1:{port}\nthreads: 1\nadmin:\n  listen: 127.0.0.1:{admin_port}\naccess_log:\n  path: access.log\n"
        ),
        &adapters,
    );
    let proc = ProcessProxy::spawn(
        &dir.path().join("flexiproxy.yaml"),
        port,
        &[("RUST_LOG", "debug")],
    );

    let mut requests = 0;
    for source in WIRES {
        for fallback in [false, true] {
            let key = client_key(source, fallback);
            for client in WIRES {
                let modes = [
                    ("echo-401", false, Some(401)),
                    ("echo-429", false, Some(429)),
                    ("echo-500", false, Some(500)),
                    ("echo-401", true, Some(401)),
                    ("echo-500", true, Some(500)),
                    ("echo-in-stream", true, Some(200)),
                    // A provider's error inside a 200 JSON answer: translated, it is an error
                    // (a passthrough relays a success's JSON as it is); asked as a stream, it
                    // is masked on every pair.
                    ("echo-in-200", false, None),
                    ("echo-in-200", true, None),
                ];
                for (prompt, stream, status) in modes {
                    if client == source && prompt == "echo-in-200" && !stream {
                        continue;
                    }
                    let what = format!(
                        "{client:?} client on a {source:?} source (fallback: {fallback}), {prompt}, stream: {stream}"
                    );
                    let (got, body) = ask(&proc, client, &key, prompt, stream).await;
                    requests += 1;
                    if let Some(status) = status {
                        assert_eq!(got, status, "{what}: {body}");
                    }
                    for canary in [PROVIDER_KEY, FALLBACK_KEY, "sk-canary"] {
                        assert!(!body.contains(canary), "{what}: {canary} relayed: {body}");
                    }
                    // The error itself is relayed, with the key masked where it was.
                    assert!(body.contains("bad key ***"), "{what}: {body}");
                    if client == source && status.is_some_and(|s| s != 200) {
                        assert!(
                            body.contains(r#""received":"***""#),
                            "{what}: the passthrough keeps the body: {body}"
                        );
                    }
                }
            }
        }
    }

    // The provider was sent both keys (so both canaries were in play) and echoed them.
    let seen = provider.requests();
    let sent = |key: &str| {
        seen.iter().any(|r| {
            ["authorization", "x-api-key", "x-goog-api-key"]
                .into_iter()
                .any(|h| r.header(h).is_some_and(|v| v.ends_with(key)))
        })
    };
    assert!(sent(PROVIDER_KEY) && sent(FALLBACK_KEY));

    let access_log = dir.path().join("access.log");
    wait_until(DEADLINE, "every request is in the access log", || {
        std::fs::read_to_string(&access_log)
            .unwrap_or_default()
            .lines()
            .count()
            >= requests
    });
    let access = std::fs::read_to_string(&access_log).unwrap();
    let log = proc.log_text();
    assert!(log.contains("flexiproxy"), "the process log was captured");
    for (what, text) in [("process log", &log), ("access log", &access)] {
        for line in text.lines() {
            assert!(
                !line.contains("sk-canary"),
                "a provider key leaked into the {what}: {line}"
            );
        }
    }
}
