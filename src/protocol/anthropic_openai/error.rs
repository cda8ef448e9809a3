//! Provider errors → Anthropic errors: the HTTP status is kept, the type follows it, and the
//! message is the provider's own (never a stack trace, never a key). Context-window overflows
//! say `prompt is too long`, the phrase Claude Code acts on by compacting the conversation.

use crate::protocol::anthropic::{ErrorKind, error_body};
use crate::protocol::openai::{ProviderError, truncate_chars};

/// An error ready for an Anthropic client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub status: u16,
    pub kind: ErrorKind,
    pub message: String,
}

impl ClientError {
    pub fn body(&self) -> Vec<u8> {
        error_body(self.kind, &self.message)
    }
}

/// Translates a non-2xx provider response.
pub fn provider_error(status: u16, body: &[u8]) -> ClientError {
    let parsed = ProviderError::parse(body);
    let kind = ErrorKind::from_status(status);
    ClientError {
        status: client_status(status),
        kind,
        message: client_message(status, &parsed),
    }
}

/// Statuses Anthropic clients know; odd ones (e.g. 418, 502) become the nearest known one so
/// clients apply the right retry policy.
fn client_status(status: u16) -> u16 {
    match status {
        400..=599 => status,
        _ => 502,
    }
}

fn client_message(status: u16, e: &ProviderError) -> String {
    let message = truncate_chars(e.message.trim(), 2000);
    if e.is_context_overflow() {
        return if message.is_empty() {
            "prompt is too long".to_owned()
        } else {
            format!("prompt is too long: {message}")
        };
    }
    if message.is_empty() {
        return format!("the provider answered HTTP {status} without an error message");
    }
    message.to_owned()
}

/// An `error` object inside a stream (`{"error":{…}}` as a data event): its kind and message.
pub fn stream_error(error_json: &str) -> (ErrorKind, String) {
    let value: serde_json::Value = serde_json::from_str(error_json).unwrap_or_default();
    let parsed = ProviderError::from_value(&serde_json::json!({ "error": value })).unwrap_or(
        ProviderError {
            message: String::new(),
            code: None,
            kind: None,
        },
    );
    // Streams carry no status; some providers put one in `code`.
    let status = parsed
        .code
        .as_deref()
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|s| (400..=599).contains(s));
    let kind = match (status, parsed.kind.as_deref(), parsed.code.as_deref()) {
        _ if parsed.is_context_overflow() => ErrorKind::InvalidRequest,
        (Some(s), _, _) => ErrorKind::from_status(s),
        (_, Some(t), _) | (_, _, Some(t)) if t.contains("rate_limit") => ErrorKind::RateLimit,
        (_, Some(t), _) | (_, _, Some(t)) if t.contains("overloaded") => ErrorKind::Overloaded,
        _ => ErrorKind::Api,
    };
    let message = client_message(status.unwrap_or(500), &parsed);
    (kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_type_are_kept() {
        for (status, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (402, "billing_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (408, "timeout_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (503, "overloaded_error"),
            (529, "overloaded_error"),
        ] {
            let e = provider_error(status, br#"{"error":{"message":"boom"}}"#);
            assert_eq!(e.status, status);
            assert_eq!(e.kind.type_str(), kind);
            assert_eq!(e.message, "boom");
        }
    }

    #[test]
    fn non_json_bodies_keep_their_text() {
        let e = provider_error(502, b"Bad Gateway");
        assert_eq!(
            (e.status, e.kind, e.message.as_str()),
            (502, ErrorKind::Api, "Bad Gateway")
        );
        let e = provider_error(503, b"<html><body>503</body></html>");
        assert!(e.message.contains("503"), "{}", e.message);
    }

    #[test]
    fn context_overflow_says_prompt_is_too_long() {
        let e = provider_error(
            400,
            br#"{"error":{"message":"This model's maximum context length is 131072 tokens. However, you requested 200000 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
        );
        assert!(e.message.starts_with("prompt is too long"), "{}", e.message);
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
    }

    #[test]
    fn stream_errors_map_codes() {
        assert_eq!(
            stream_error(r#"{"message":"slow down","code":429}"#).0,
            ErrorKind::RateLimit
        );
        assert_eq!(
            stream_error(r#"{"message":"busy","type":"overloaded_error"}"#).0,
            ErrorKind::Overloaded
        );
        let (kind, msg) = stream_error(r#""plain""#);
        assert_eq!((kind, msg.as_str()), (ErrorKind::Api, "plain"));
    }
}
