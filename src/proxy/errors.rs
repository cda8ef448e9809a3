//! Every error the proxy answers with, rendered in the client protocol's own shape — the one
//! place where errors become bytes for a client.

use crate::protocol::anthropic::{ErrorKind, error_body};
use crate::protocol::json::write_json_str;

/// Which API the client speaks (decides error shapes and model lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientProtocol {
    Anthropic,
    OpenAi,
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
            ClientProtocol::OpenAi => openai_error_body(self.kind, &self.message),
        }
    }
}

/// OpenAI's `{"error":{"message","type","param","code"}}`.
pub fn openai_error_body(kind: ErrorKind, message: &str) -> Vec<u8> {
    let (kind, code) = match kind {
        ErrorKind::InvalidRequest => ("invalid_request_error", "invalid_request"),
        ErrorKind::Authentication => ("authentication_error", "invalid_api_key"),
        ErrorKind::Billing => ("insufficient_quota", "insufficient_quota"),
        ErrorKind::Permission => ("permission_error", "permission_denied"),
        ErrorKind::NotFound => ("not_found_error", "not_found"),
        ErrorKind::RequestTooLarge => ("invalid_request_error", "request_too_large"),
        ErrorKind::RateLimit => ("rate_limit_error", "rate_limit_exceeded"),
        ErrorKind::Api => ("server_error", "server_error"),
        ErrorKind::Timeout => ("timeout_error", "timeout"),
        ErrorKind::Overloaded => ("server_error", "overloaded"),
    };
    let mut out = Vec::with_capacity(96 + message.len());
    out.extend_from_slice(b"{\"error\":{\"message\":");
    write_json_str(&mut out, message);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"param\":null,\"code\":\"");
    out.extend_from_slice(code.as_bytes());
    out.extend_from_slice(b"\"}}");
    out
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
}
