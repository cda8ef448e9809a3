//! The panel's "test" button: one small request to an adapter's source in its own protocol
//! (one output token), reporting the status, the latency and the provider's error. A
//! non-admin's source is resolved and checked against the egress policy first, and the
//! request is pinned to the checked address.

use crate::config::adapter::{ApiKey, Source, SourceProtocol};
use crate::config::egress::EgressPolicy;
use serde::Serialize;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// The provider's error (its body, shortened), or why no answer came.
    pub error: Option<String>,
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
const ERROR_CHARS: usize = 500;

/// Why a host may not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCheck {
    /// It does not resolve (now).
    Unresolved(String),
    /// It resolves to an internal address the policy refuses.
    Refused(String),
}

/// Resolves `host` and refuses it when an address it resolves to is internal.
pub async fn check_host(
    policy: &EgressPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, HostCheck> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| HostCheck::Unresolved(format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(HostCheck::Unresolved(format!(
            "cannot resolve {host}: no addresses"
        )));
    }
    for a in &addrs {
        if let Some(refusal) = policy.refusal(host, a.ip()) {
            return Err(HostCheck::Refused(refusal));
        }
    }
    Ok(addrs)
}

/// The path and body of a one-token request in the source's protocol.
fn request_for(source: &Source) -> (String, serde_json::Value) {
    let model = &source.model;
    let ping = "Reply with one word: pong";
    match source.protocol {
        SourceProtocol::OpenAi => (
            "/chat/completions".into(),
            json!({"model": model, "max_tokens": 1,
                   "messages": [{"role": "user", "content": ping}]}),
        ),
        SourceProtocol::Anthropic => (
            "/v1/messages".into(),
            json!({"model": model, "max_tokens": 1,
                   "messages": [{"role": "user", "content": ping}]}),
        ),
        SourceProtocol::Responses => (
            "/responses".into(),
            json!({"model": model, "input": ping, "max_output_tokens": 16, "store": false}),
        ),
        SourceProtocol::Gemini => (
            format!("/models/{model}:generateContent"),
            json!({"contents": [{"role": "user", "parts": [{"text": ping}]}],
                   "generationConfig": {"maxOutputTokens": 1}}),
        ),
    }
}

fn failed(started: Instant, status: Option<u16>, error: String) -> ProbeResult {
    ProbeResult {
        ok: false,
        status,
        latency_ms: started.elapsed().as_millis() as u64,
        error: Some(error),
    }
}

/// Sends the request; `policy` is set when the source must be a public address.
pub async fn probe(source: &Source, policy: Option<&EgressPolicy>) -> ProbeResult {
    let started = Instant::now();
    let endpoint = &source.endpoint;
    let Some(auth) = &source.auth else {
        let why = match &source.api_key {
            ApiKey::MissingEnv(var) => format!("the provider key's variable {var} is not set"),
            ApiKey::Present(_) => "the provider key is not usable in a header".into(),
        };
        return failed(started, None, why);
    };
    let mut builder = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .connect_timeout(source.timeouts.connect)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(policy) = policy {
        match check_host(policy, &endpoint.host, endpoint.port).await {
            Ok(addrs) => builder = builder.resolve(&endpoint.host, addrs[0]),
            Err(HostCheck::Unresolved(e) | HostCheck::Refused(e)) => {
                return failed(started, None, e);
            }
        }
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => return failed(started, None, format!("cannot make a client: {e}")),
    };
    let (path, body) = request_for(source);
    let scheme = if endpoint.tls { "https" } else { "http" };
    let url = format!(
        "{scheme}://{}{}{path}",
        endpoint.host_header(),
        endpoint.path
    );
    let mut request = client
        .post(url)
        .header(auth.name.clone(), auth.value.clone())
        .json(&body);
    if source.protocol == SourceProtocol::Anthropic {
        request = request.header("anthropic-version", "2023-06-01");
    }
    let secret = match &source.api_key {
        ApiKey::Present(s) => s.expose().to_owned(),
        ApiKey::MissingEnv(_) => String::new(),
    };
    match request.send().await {
        Err(e) => failed(started, None, redact(&format!("no answer: {e}"), &secret)),
        Ok(response) => {
            let status = response.status().as_u16();
            let ok = response.status().is_success();
            let text = response.text().await.unwrap_or_default();
            let latency_ms = started.elapsed().as_millis() as u64;
            ProbeResult {
                ok,
                status: Some(status),
                latency_ms,
                error: (!ok).then(|| redact(&shorten(&text), &secret)),
            }
        }
    }
}

fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(ERROR_CHARS).collect();
    if text.chars().count() > ERROR_CHARS {
        s.push('…');
    }
    s
}

/// Providers sometimes echo the key they were given in their error.
fn redact(text: &str, secret: &str) -> String {
    if secret.len() < 4 {
        return text.to_owned();
    }
    text.replace(secret, "***")
}
