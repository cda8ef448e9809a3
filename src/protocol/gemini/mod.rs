//! Google's Gemini API (`generateContent`, `streamGenerateContent`; Gemini CLI and the
//! `google-genai` SDKs), one file per direction: as a client protocol [`decode_request`],
//! [`encode_response`], [`encode_stream`]; as a source protocol (`source.protocol: gemini`,
//! for clients of the other protocols) [`encode_request`], [`decode_response`],
//! [`decode_stream`]. Gemini clients on a Gemini source pass through. The
//! model is in the path, not the body ([`GeminiCall`]). Errors are Google's
//! `{"error": {"code", "message", "status"}}` ([`error_body`]). Reasoning a provider needs
//! back travels sealed in `thoughtSignature` (the same sealing as Responses'
//! `encrypted_content`, `protocol::responses::seal`). `docs/gemini.md` has the mapping.

pub mod decode_request;
pub mod decode_response;
pub mod decode_stream;
pub mod encode_request;
pub mod encode_response;
pub mod encode_stream;
pub mod grounded_stream;

use crate::protocol::anthropic::ErrorKind;
use crate::protocol::json::{Obj, write_json_str};
use crate::protocol::pivot::{StopReason, Usage};
use serde_json::Value;

/// What a Gemini path asks for: `/v1beta/models/{model}:{method}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Generate,
    Stream,
    CountTokens,
}

/// A parsed Gemini model path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeminiCall {
    pub model: String,
    pub method: Method,
    /// `?alt=sse`: a stream as SSE (otherwise one JSON array).
    pub sse: bool,
}

impl GeminiCall {
    /// `models/{model}:{method}` after the version prefix (and the query, for `alt=sse`);
    /// `None` for any other path.
    pub fn parse(rest: &str, query: Option<&str>) -> Option<GeminiCall> {
        let (model, method) = rest.strip_prefix("/models/")?.rsplit_once(':')?;
        let method = match method {
            "generateContent" => Method::Generate,
            "streamGenerateContent" => Method::Stream,
            "countTokens" => Method::CountTokens,
            _ => return None,
        };
        if model.is_empty() || model.contains('/') {
            return None;
        }
        let model = percent_decode(model)?;
        let sse = query.is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
        Some(GeminiCall { model, method, sse })
    }

    pub fn stream(&self) -> bool {
        self.method == Method::Stream
    }

    /// The path a Gemini source is asked on, for `model`.
    pub fn upstream_path(&self, model: &str) -> String {
        let method = match self.method {
            Method::Generate => "generateContent",
            Method::Stream => "streamGenerateContent",
            Method::CountTokens => "countTokens",
        };
        let alt = if self.sse { "?alt=sse" } else { "" };
        format!("/models/{model}:{method}{alt}")
    }
}

/// Model names are plain, but a client may percent-encode them.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Google's status name for an HTTP status.
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 | 409 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 | 529 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// The model list (`GET /v1beta/models`) in Google's shape.
pub fn model_list(models: &[String]) -> String {
    let data: Vec<serde_json::Value> = models
        .iter()
        .map(|m| {
            serde_json::json!({"name": format!("models/{m}"), "displayName": m,
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]})
        })
        .collect();
    serde_json::json!({"models": data}).to_string()
}

/// `{"error": {"code", "message", "status"}}`.
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(b"{\"error\":{\"code\":");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.extend_from_slice(b",\"message\":");
    write_json_str(&mut out, message);
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(status_name(status).as_bytes());
    out.extend_from_slice(b"\"}}");
    out
}

/// The HTTP status a mid-stream error of this kind would have had.
pub fn kind_status(kind: ErrorKind) -> u16 {
    match kind {
        // Google reports an exhausted quota as 429 RESOURCE_EXHAUSTED.
        ErrorKind::Billing => 429,
        _ => kind.default_status(),
    }
}

pub(crate) fn finish_reason(stop: Option<StopReason>) -> &'static str {
    match stop {
        Some(StopReason::MaxTokens) => "MAX_TOKENS",
        Some(StopReason::Refusal) => "SAFETY",
        _ => "STOP",
    }
}

/// `usageMetadata`: `promptTokenCount` includes cached tokens, as Google counts them.
pub(crate) fn write_usage(usage: Usage, out: &mut Vec<u8>) {
    let mut u = Obj::new(out);
    u.u64("promptTokenCount", usage.input);
    u.u64("candidatesTokenCount", usage.output);
    if let Some(r) = usage.reasoning.filter(|r| *r > 0) {
        u.u64("thoughtsTokenCount", r);
    }
    if let Some(c) = usage.cache_read.filter(|c| *c > 0) {
        u.u64("cachedContentTokenCount", c);
    }
    u.u64("totalTokenCount", usage.input + usage.output);
    u.end();
}

/// A Gemini schema (the OpenAPI subset: upper-case `type`s, `nullable`, `format`) as JSON
/// Schema for the other protocols' sources. JSON Schema passes unchanged.
pub fn to_json_schema(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let nullable = map.remove("nullable").and_then(|n| n.as_bool()) == Some(true);
            if let Some(Value::String(t)) = map.get_mut("type") {
                t.make_ascii_lowercase();
                if t == "type_unspecified" {
                    map.remove("type");
                }
            }
            if nullable && let Some(Value::String(t)) = map.get("type").cloned() {
                map.insert("type".into(), Value::from(vec![t, "null".to_owned()]));
            }
            // Gemini-only keys other schemas reject.
            map.remove("propertyOrdering");
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    "properties" | "$defs" | "definitions" => {
                        if let Value::Object(props) = value {
                            props.values_mut().for_each(to_json_schema);
                        }
                    }
                    "items" | "anyOf" | "oneOf" | "allOf" | "not" | "additionalProperties" => {
                        to_json_schema(value)
                    }
                    _ => {}
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_json_schema),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn model_paths() {
        let call = GeminiCall::parse(
            "/models/gemini-3.5-flash:streamGenerateContent",
            Some("alt=sse"),
        );
        assert_eq!(
            call,
            Some(GeminiCall {
                model: "gemini-3.5-flash".into(),
                method: Method::Stream,
                sse: true,
            })
        );
        assert_eq!(
            call.unwrap().upstream_path("m"),
            "/models/m:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            GeminiCall::parse("/models/a%2Eb:countTokens", Some("key=k")).map(|c| (c.model, c.sse)),
            Some(("a.b".into(), false))
        );
        for bad in [
            "/models/x",
            "/models/:generateContent",
            "/models/x:other",
            "/x/y:generateContent",
            "/models/a/b:generateContent",
        ] {
            assert_eq!(GeminiCall::parse(bad, None), None, "{bad}");
        }
    }

    #[test]
    fn errors_in_googles_shape() {
        let v: Value = serde_json::from_slice(&error_body(429, "slow \"down\"")).unwrap();
        assert_eq!(
            v,
            json!({"error": {"code": 429, "message": "slow \"down\"", "status": "RESOURCE_EXHAUSTED"}})
        );
    }

    #[test]
    fn openapi_schemas_become_json_schema() {
        let mut s = json!({"type": "OBJECT", "properties": {
            "score": {"type": "INTEGER", "nullable": true},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}}},
            "propertyOrdering": ["score", "tags"], "required": ["score"]});
        to_json_schema(&mut s);
        assert_eq!(
            s,
            json!({"type": "object", "properties": {
            "score": {"type": ["integer", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["score"]})
        );
    }
}
