//! Provider errors, for every pair: what a provider said went wrong ([`ProviderError`], read
//! out of whichever error shape it uses), and its mapping to a client error — the HTTP status
//! is kept, the type follows it, and the message is the provider's own (never a stack trace,
//! never a key). Context-window overflows say `prompt is too long`, the phrase Claude Code acts
//! on by compacting the conversation.

use crate::protocol::anthropic::{ErrorKind, error_body};

/// What a provider said went wrong, pulled out of whichever error shape it uses:
/// `{"error":{"message","type","code"}}`, `{"error":"…"}`, `{"detail":…}`, `{"message":…}`,
/// or plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    pub message: String,
    pub code: Option<String>,
    pub kind: Option<String>,
}

impl ProviderError {
    pub fn parse(body: &[u8]) -> ProviderError {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => Self::from_value(&v).unwrap_or_else(|| Self::plain(body)),
            Err(_) => Self::plain(body),
        }
    }

    /// From a JSON value already parsed (also used for an `error` object inside a stream).
    pub fn from_value(v: &serde_json::Value) -> Option<ProviderError> {
        let text_of = |v: &serde_json::Value| -> Option<String> {
            match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }
        };
        let err = v.get("error").unwrap_or(v);
        if let serde_json::Value::String(s) = err {
            return Some(ProviderError {
                message: s.clone(),
                code: None,
                kind: None,
            });
        }
        let message = err
            .get("message")
            .or_else(|| err.get("detail"))
            .or_else(|| v.get("detail"))
            .or_else(|| v.get("message"))
            .and_then(text_of)?;
        // OpenRouter says "Provider returned error" and puts the upstream provider's own words
        // in `metadata.raw`.
        let message = match err
            .pointer("/metadata/raw")
            .and_then(text_of)
            .map(|raw| raw.trim().to_owned())
            .filter(|raw| !raw.is_empty() && !message.contains(raw.as_str()))
        {
            Some(raw) => format!("{message}: {}", truncate_chars(&raw, 1000)),
            None => message,
        };
        Some(ProviderError {
            message,
            code: err.get("code").and_then(text_of),
            kind: err.get("type").and_then(text_of),
        })
    }

    fn plain(body: &[u8]) -> ProviderError {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        // An HTML error page says nothing useful to an API client beyond its status.
        let message = if text.is_empty() || text.starts_with('<') {
            String::new()
        } else {
            truncate_chars(text, 1000).to_owned()
        };
        ProviderError {
            message,
            code: None,
            kind: None,
        }
    }

    /// Context-window overflows, which Anthropic clients recognise by `prompt is too long`.
    pub fn is_context_overflow(&self) -> bool {
        let m = self.message.to_ascii_lowercase();
        self.code.as_deref() == Some("context_length_exceeded")
            || m.contains("context_length_exceeded")
            || m.contains("maximum context length")
            || m.contains("context length")
            || m.contains("context window")
            || m.contains("too many tokens")
            || m.contains("prompt is too long")
            || m.contains("input is too long")
    }
}

/// The longest prefix of `s` with at most `max` characters.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

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
    let kind = if parsed.is_context_overflow() {
        ErrorKind::InvalidRequest
    } else if let Some(s) = status {
        ErrorKind::from_status(s)
    } else {
        [parsed.kind.as_deref(), parsed.code.as_deref()]
            .into_iter()
            .flatten()
            .find_map(kind_of_type)
            .unwrap_or(ErrorKind::Api)
    };
    let message = client_message(status.unwrap_or(500), &parsed);
    (kind, message)
}

/// A provider's error type or code (OpenAI's, Anthropic's, Google's status names) in the
/// client's terms: `insufficient_quota` is a billing error (retrying does not help), not a
/// server error.
pub fn kind_of_type(t: &str) -> Option<ErrorKind> {
    let t = t.to_ascii_lowercase();
    let has = |w: &str| t.contains(w);
    Some(
        if has("insufficient_quota") || has("billing") || has("quota_exceeded") {
            ErrorKind::Billing
        } else if has("rate_limit") || has("resource_exhausted") || has("too_many_requests") {
            ErrorKind::RateLimit
        } else if has("overloaded") || has("unavailable") {
            ErrorKind::Overloaded
        } else if has("authentication") || has("invalid_api_key") || has("unauthenticated") {
            ErrorKind::Authentication
        } else if has("permission") {
            ErrorKind::Permission
        } else if has("not_found") {
            ErrorKind::NotFound
        } else if has("timeout") || has("deadline_exceeded") {
            ErrorKind::Timeout
        } else if has("invalid_request")
            || has("invalid_argument")
            || has("invalid_prompt")
            || has("tool_use_failed")
        {
            ErrorKind::InvalidRequest
        } else {
            return None;
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_error_shapes() {
        let e = ProviderError::parse(
            br#"{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        );
        assert_eq!(e.message, "bad key");
        assert_eq!(e.code.as_deref(), Some("invalid_api_key"));
        assert_eq!(ProviderError::parse(br#"{"error":"nope"}"#).message, "nope");
        assert_eq!(
            ProviderError::parse(br#"{"detail":"Not Found"}"#).message,
            "Not Found"
        );
        assert_eq!(
            ProviderError::parse(br#"{"message":"m","code":5}"#)
                .code
                .as_deref(),
            Some("5")
        );
        assert_eq!(
            ProviderError::parse(b"upstream exploded").message,
            "upstream exploded"
        );
        assert_eq!(ProviderError::parse(b"<html>502</html>").message, "");
    }

    #[test]
    fn real_error_bodies_keep_their_message() {
        // OpenAI, pretty-printed as sent.
        let e = provider_error(
            400,
            b"{\n  \"error\": {\n    \"message\": \"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.\",\n    \"type\": \"invalid_request_error\",\n    \"param\": \"max_tokens\",\n    \"code\": \"unsupported_parameter\"\n  }\n}",
        );
        assert_eq!((e.status, e.kind), (400, ErrorKind::InvalidRequest));
        assert!(
            e.message.starts_with("Unsupported parameter"),
            "{}",
            e.message
        );
        // Anthropic, with its request id beside the error.
        let e = provider_error(
            400,
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"effort xhigh is not supported"},"request_id":"req_011"}"#,
        );
        assert_eq!(e.message, "effort xhigh is not supported");
        // OpenRouter, the upstream provider's own words in `metadata.raw`.
        let e = provider_error(
            429,
            br#"{"error":{"message":"Provider returned error","code":429,"metadata":{"raw":"google/gemini-2.0-flash-exp:free is temporarily rate-limited upstream","provider_name":"Google"}},"user_id":"u"}"#,
        );
        assert_eq!((e.status, e.kind), (429, ErrorKind::RateLimit));
        assert_eq!(
            e.message,
            "Provider returned error: google/gemini-2.0-flash-exp:free is temporarily rate-limited upstream"
        );
    }

    #[test]
    fn context_overflow_detection() {
        let e = ProviderError::parse(
            br#"{"error":{"message":"This model's maximum context length is 65536 tokens","code":"context_length_exceeded"}}"#,
        );
        assert!(e.is_context_overflow());
        assert!(!ProviderError::parse(br#"{"error":"rate limited"}"#).is_context_overflow());
    }

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
        // The Responses API's quota error (its `type` and `code`), Groq's failed tool call.
        let (kind, msg) = stream_error(
            r#"{"type":"insufficient_quota","code":"insufficient_quota","message":"You exceeded your current quota","param":null}"#,
        );
        assert_eq!(
            (kind, msg.as_str()),
            (ErrorKind::Billing, "You exceeded your current quota")
        );
        assert_eq!(
            stream_error(
                r#"{"message":"m","type":"invalid_request_error","code":"tool_use_failed"}"#
            )
            .0,
            ErrorKind::InvalidRequest
        );
        assert_eq!(
            stream_error(r#"{"message":"m","code":"server_error"}"#).0,
            ErrorKind::Api
        );
        let (kind, msg) = stream_error(r#""plain""#);
        assert_eq!((kind, msg.as_str()), (ErrorKind::Api, "plain"));
    }
}
