//! Every error the proxy answers with, rendered in the client protocol's own shape (each
//! protocol's error body is in its folder of `protocol/`; this is where one is picked).

use crate::config::adapter::{Adapter, ApiKey, Source};
use crate::protocol::anthropic::{ErrorKind, error_body};

/// Which API the client speaks (decides error shapes and model lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientProtocol {
    Anthropic,
    OpenAi,
    /// OpenAI Responses (OpenAI's error shape; streams end in `response.failed`).
    Responses,
    /// Google Gemini (`{"error": {"code", "message", "status"}}`).
    Gemini,
}

/// An error for the client: status, Anthropic-style kind, human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    pub status: u16,
    pub kind: ErrorKind,
    pub message: String,
    /// Seconds, forwarded as `retry-after`.
    pub retry_after: Option<String>,
}

impl ProxyError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProxyError {
            status: kind.default_status(),
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with_retry_after(mut self, seconds: impl Into<String>) -> Self {
        self.retry_after = Some(seconds.into());
        self
    }

    pub fn body(&self, protocol: ClientProtocol) -> Vec<u8> {
        match protocol {
            ClientProtocol::Anthropic => error_body(self.kind, &self.message),
            ClientProtocol::OpenAi | ClientProtocol::Responses => {
                crate::protocol::openai_chat::openai_error_body(self.kind, &self.message)
            }
            ClientProtocol::Gemini => {
                crate::protocol::gemini::error_body(self.status, &self.message)
            }
        }
    }
}

/// What of one source's credentials FlexiProxy sends upstream and must never relay back:
/// every key of its pool and the auth header value made from each (`Bearer <key>`, or the
/// key itself).
pub fn source_secrets(source: &Source) -> impl Iterator<Item = &str> {
    source.keys.iter().flat_map(|k| {
        let key = match &k.api_key {
            ApiKey::Present(key) => Some(key.expose()),
            ApiKey::MissingEnv(_) => None,
        };
        let header = k.auth.as_ref().and_then(|a| a.value.to_str().ok());
        key.into_iter().chain(header)
    })
}

/// Every provider secret of an adapter — every key of every pool of its source, fallbacks
/// and routes — masked out of the provider errors relayed to clients (`protocol::secrets`).
pub fn provider_secrets(adapter: &Adapter) -> Vec<&str> {
    let routes = adapter
        .routes
        .iter()
        .flat_map(|r| std::iter::once(&r.source).chain(&r.fallbacks));
    std::iter::once(&adapter.source)
        .chain(&adapter.fallbacks)
        .chain(routes)
        .flat_map(source_secrets)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_per_protocol() {
        let e = ProxyError::new(ErrorKind::RateLimit, "slow").with_retry_after("3");
        assert_eq!(e.status, 429);
        let a: serde_json::Value =
            serde_json::from_slice(&e.body(ClientProtocol::Anthropic)).unwrap();
        assert_eq!(a["error"]["type"], "rate_limit_error");
        let o: serde_json::Value = serde_json::from_slice(&e.body(ClientProtocol::OpenAi)).unwrap();
        assert_eq!(o["error"]["message"], "slow");
        assert_eq!(o["error"]["code"], "rate_limit_exceeded");
    }

    #[test]
    fn provider_secrets_are_every_source_key_and_header_value() {
        let text = "source:\n  base_url: http://a.example/v1\n  api_key: sk-main-0000000001\n  model: m\n  fallbacks:\n    - { base_url: http://b.example/v1, api_key: sk-fallback-000002 }\nkeys: []\n";
        let adapter =
            crate::config::adapter::parse_adapter(std::path::Path::new("a.yaml"), text, &|_| None)
                .unwrap();
        assert_eq!(
            provider_secrets(&adapter),
            [
                "sk-main-0000000001",
                "Bearer sk-main-0000000001",
                "sk-fallback-000002",
                "Bearer sk-fallback-000002"
            ]
        );
        // Pools and routes: every key of each.
        let text = "source:\n  base_url: http://a.example/v1\n  api_keys: [sk-pool-00000001, sk-pool-00000002]\n  model: m\nroutes:\n  - when: { images: true }\n    source: { base_url: http://c.example/v1, api_key: sk-route-0000003, model: v }\nkeys: []\n";
        let adapter =
            crate::config::adapter::parse_adapter(std::path::Path::new("a.yaml"), text, &|_| None)
                .unwrap();
        let secrets = provider_secrets(&adapter);
        for key in ["sk-pool-00000001", "sk-pool-00000002", "sk-route-0000003"] {
            assert!(secrets.contains(&key), "{key}");
            assert!(secrets.contains(&format!("Bearer {key}").as_str()), "{key}");
        }
    }
}
