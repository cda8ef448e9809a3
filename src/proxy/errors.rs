//! Every error the proxy answers with, rendered in the client protocol's own shape — the one
//! place where errors become bytes for a client.

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
                openai_error_body(self.kind, &self.message)
            }
            ClientProtocol::Gemini => {
                crate::protocol::gemini::error_body(self.status, &self.message)
            }
        }
    }
}

pub use crate::protocol::openai_chat::openai_error_body;

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
