//! The panel's "test" button: one small request to an adapter's source in its own protocol
//! (one output token), reporting the status, the latency and the provider's error. A
//! non-admin's source is resolved and checked against the egress policy first, and the
//! request is pinned to the checked address.
//!
//! The provider check (docs/provider-check.md) lives in the modules below: a bounded set of
//! small requests that finds which adapter options the source needs.

mod chat;
pub mod guard;
mod native;
pub mod report;
mod wire;

pub use report::{CheckReport, run_check};

/// A 1×1 PNG, the check's image.
const PIXEL_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

use crate::config::adapter::{ApiKey, Source, SourceProtocol, UpstreamAuth};
use crate::config::egress::EgressPolicy;
use crate::protocol::secrets::mask_secrets_str;
use crate::telemetry::outcome::FailureReason;
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
    /// Why no answer came, when none did (the panel says it in the user's language).
    pub reason: Option<FailureReason>,
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
        reason: None,
    }
}

/// Why no answer came, from the client's error and its causes: the reason, and the cause's
/// own words (`Connection refused (os error 111)`) instead of "error sending request for url".
pub(crate) fn no_answer(e: &reqwest::Error) -> (FailureReason, String) {
    let mut innermost = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        innermost = c.to_string();
        cause = c.source();
    }
    let lower = innermost.to_ascii_lowercase();
    let reason = if e.is_timeout() || lower.contains("timed out") {
        FailureReason::Timeout
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("ssl") {
        FailureReason::Tls
    } else if e.is_connect() {
        FailureReason::Connect
    } else {
        FailureReason::Reset
    };
    (reason, innermost)
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
    let client = match client_for(source, policy).await {
        Ok(c) => c,
        Err(e) => return failed(started, None, e),
    };
    let (path, body) = request_for(source);
    let scheme = if endpoint.tls { "https" } else { "http" };
    let url = format!("{}{path}", base_url(source));
    let mut request = client
        .post(url)
        .header(auth.name.clone(), auth.value.clone())
        .json(&body);
    if source.protocol == SourceProtocol::Anthropic {
        request = request.header("anthropic-version", "2023-06-01");
    }
    // Providers sometimes echo the key they were given in their error: masked before it is
    // shortened (so no piece of a key cut in two remains) and shown.
    let secrets: Vec<&str> = crate::proxy::errors::source_secrets(source).collect();
    let mask = |text: &str| mask_secrets_str(text, &secrets).into_owned();
    match request.send().await {
        Err(e) => {
            let (reason, cause) = no_answer(&e);
            ProbeResult {
                reason: Some(reason),
                ..failed(started, None, mask(&format!("no answer: {cause}")))
            }
        }
        Ok(response) => {
            let status = response.status().as_u16();
            let ok = response.status().is_success();
            let text = response.text().await.unwrap_or_default();
            let latency_ms = started.elapsed().as_millis() as u64;
            let mut error = (!ok).then(|| shorten(&mask(&text)));
            // A model the provider no longer (or never) had is the likeliest cause of a 4xx.
            if let Some(e) = error.as_mut()
                && (400..500).contains(&status)
                && ![401, 403, 429].contains(&status)
                && let Some(models) = model_list(&client, source, scheme, auth).await
                && !models.contains(&source.model)
            {
                *e = format!(
                    "model `{}` is not in the provider's model list (retired or misspelled?); it has {}. {e}",
                    source.model,
                    some_of(&models)
                );
            }
            ProbeResult {
                ok,
                status: Some(status),
                latency_ms,
                error,
                reason: None,
            }
        }
    }
}

/// A client for `source`'s endpoint: no redirects, bounded; with `policy`, the host is
/// resolved and checked first and the client pinned to the checked address.
pub(crate) async fn client_for(
    source: &Source,
    policy: Option<&EgressPolicy>,
) -> Result<reqwest::Client, String> {
    let endpoint = &source.endpoint;
    let mut builder = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .connect_timeout(source.timeouts.connect)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(policy) = policy {
        match check_host(policy, &endpoint.host, endpoint.port).await {
            Ok(addrs) => builder = builder.resolve(&endpoint.host, addrs[0]),
            Err(HostCheck::Unresolved(e) | HostCheck::Refused(e)) => return Err(e),
        }
    }
    builder
        .build()
        .map_err(|e| format!("cannot make a client: {e}"))
}

/// `scheme://host[:port]/path` of the source, to which request paths are appended.
pub(crate) fn base_url(source: &Source) -> String {
    let endpoint = &source.endpoint;
    let scheme = if endpoint.tls { "https" } else { "http" };
    format!("{scheme}://{}{}", endpoint.host_header(), endpoint.path)
}

/// The provider's model ids (`GET …/models`), when it lists them.
async fn model_list(
    client: &reqwest::Client,
    source: &Source,
    scheme: &str,
    auth: &UpstreamAuth,
) -> Option<Vec<String>> {
    let endpoint = &source.endpoint;
    let path = match source.protocol {
        SourceProtocol::Anthropic => "/v1/models",
        _ => "/models",
    };
    let url = format!(
        "{scheme}://{}{}{path}",
        endpoint.host_header(),
        endpoint.path
    );
    let mut request = client
        .get(url)
        .header(auth.name.clone(), auth.value.clone());
    if source.protocol == SourceProtocol::Anthropic {
        request = request.header("anthropic-version", "2023-06-01");
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let v: serde_json::Value = response.json().await.ok()?;
    // OpenAI and Anthropic: `data[].id`; Google: `models[].name` as `models/<id>`.
    let ids: Vec<String> = v["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|m| m["id"].as_str())
                .collect::<Vec<_>>()
        })
        .or_else(|| {
            v["models"].as_array().map(|d| {
                d.iter()
                    .filter_map(|m| m["name"].as_str())
                    .map(|n| n.strip_prefix("models/").unwrap_or(n))
                    .collect()
            })
        })?
        .into_iter()
        .map(str::to_owned)
        .collect();
    (!ids.is_empty()).then_some(ids)
}

/// A few of the provider's models, for the message.
fn some_of(models: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut s = models
        .iter()
        .take(SHOWN)
        .map(|m| format!("`{m}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if models.len() > SHOWN {
        s.push_str(&format!(" and {} more", models.len() - SHOWN));
    }
    s
}

pub(crate) fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(ERROR_CHARS).collect();
    if text.chars().count() > ERROR_CHARS {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use flexiproxy_testkit::{FakeProvider, Reply};

    const KEY: &str = "sk-probe-canary-4d2e81";

    /// A provider that echoes the auth header it received in its error (401), after
    /// `padding` characters of text (456 puts the key across the 500-character cut).
    async fn echoing(padding: usize) -> FakeProvider {
        FakeProvider::start(move |req| {
            let auth = req
                .header("authorization")
                .or_else(|| req.header("x-api-key"))
                .or_else(|| req.header("x-goog-api-key"))
                .unwrap_or_default()
                .to_owned();
            let message = format!("{}bad key {auth}", "x".repeat(padding));
            Reply::json(401, json!({"error": {"message": message}}))
        })
        .await
    }

    fn source(base_url: &str, protocol: &str) -> Source {
        let text = format!(
            "source:\n  protocol: {protocol}\n  base_url: {base_url}\n  api_key: {KEY}\n  model: m\nkeys: []\n"
        );
        crate::config::adapter::parse_adapter(std::path::Path::new("p.yaml"), &text, &|_| None)
            .unwrap()
            .source
    }

    #[tokio::test]
    async fn a_model_the_provider_does_not_list_is_named() {
        // DeepSeek after 2026-07-24: `deepseek-chat` answers 400, the list has V4 models.
        let provider = FakeProvider::start(|req| {
            if req.path.ends_with("/models") {
                Reply::json(
                    200,
                    json!({"object": "list", "data": [{"id": "deepseek-v4-flash"}, {"id": "deepseek-v4-pro"}]}),
                )
            } else if req.json()["model"] == "deepseek-v4-pro" {
                Reply::json(400, json!({"error": {"message": "max_tokens too small"}}))
            } else {
                Reply::json(400, json!({"error": {"message": "Model Not Exist"}}))
            }
        })
        .await;
        let mut src = source(&provider.base_url(), "openai");
        src.model = "deepseek-chat".into();
        let result = probe(&src, None).await;
        let error = result.error.unwrap();
        assert!(
            error.starts_with(
                "model `deepseek-chat` is not in the provider's model list (retired or misspelled?)"
            ),
            "{error}"
        );
        assert!(
            error.contains("`deepseek-v4-pro`") && error.ends_with("Model Not Exist\"}}"),
            "{error}"
        );
        // A listed model's error is the provider's alone.
        src.model = "deepseek-v4-pro".into();
        let error = probe(&src, None).await.error.unwrap();
        assert!(!error.contains("model list"), "{error}");
    }

    #[tokio::test]
    async fn the_test_result_masks_an_echoed_provider_key() {
        for (protocol, padding) in [
            ("openai", 0),
            ("anthropic", 0),
            ("gemini", 0),
            ("openai", 456),
        ] {
            let provider = echoing(padding).await;
            let base = if protocol == "openai" {
                provider.base_url()
            } else {
                provider.origin()
            };
            let result = probe(&source(&base, protocol), None).await;
            assert_eq!(result.status, Some(401), "{protocol}");
            let error = result.error.unwrap();
            assert!(!error.contains(KEY), "{protocol}: {error}");
            // Not even the start of the key, where shortening would have cut it.
            assert!(!error.contains("sk-probe"), "{protocol}: {error}");
            if padding == 0 {
                assert!(error.contains("bad key ***"), "{protocol}: {error}");
            }
        }
    }
}
