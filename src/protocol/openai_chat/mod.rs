//! OpenAI Chat Completions, one file per direction (decode: wire → pivot, encode: pivot →
//! wire): as a client protocol [`decode_request`], [`encode_response`], [`encode_stream`];
//! as a source protocol [`encode_request`] (bent to a provider's [`dialect`]),
//! [`decode_response`], [`decode_stream`], which read what sources send back through the
//! lenient [`wire`] types. Errors in OpenAI's shape.

pub mod decode_request;
pub mod decode_response;
pub mod decode_stream;
pub mod dialect;
pub mod encode_request;
pub mod encode_response;
pub mod encode_stream;
pub mod wire;

use crate::protocol::anthropic::ErrorKind;
use crate::protocol::json::write_json_str;

/// `GET /v1/models` in OpenAI's shape (Chat and Responses clients), owned by `owned_by`.
pub fn model_list(models: &[String], owned_by: &str) -> String {
    let data: Vec<serde_json::Value> = models
        .iter()
        .map(
            |m| serde_json::json!({"id": m, "object": "model", "created": 0, "owned_by": owned_by}),
        )
        .collect();
    serde_json::json!({"object": "list", "data": data}).to_string()
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
