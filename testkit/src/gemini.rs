//! Canned Gemini API answers, for the fake provider speaking `source.protocol: gemini`:
//! `GenerateContentResponse` objects and `?alt=sse` streams of them.

use serde_json::{Value, json};

fn usage(prompt: u64, candidates: u64) -> Value {
    json!({"promptTokenCount": prompt, "candidatesTokenCount": candidates,
           "totalTokenCount": prompt + candidates})
}

fn response(parts: Value, finish: Option<&str>, usage: Option<Value>) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(f) = finish {
        candidate["finishReason"] = json!(f);
    }
    let mut r = json!({"candidates": [candidate], "modelVersion": "fake-model",
                       "responseId": "gem-fake-1"});
    if let Some(u) = usage {
        r["usageMetadata"] = u;
    }
    r
}

/// An SSE event of one response (`data: …`, Google's CRLF framing).
pub fn event(data: &Value) -> String {
    format!("data: {data}\r\n\r\n")
}

/// A complete text answer.
pub fn text_response(text: &str) -> Value {
    response(json!([{"text": text}]), Some("STOP"), Some(usage(11, 5)))
}

/// A text answer streamed in `chunks` pieces; the last chunk finishes with usage.
pub fn text_stream(text: &str, chunks: usize) -> Vec<String> {
    let pieces = crate::split_text(text, chunks);
    let n = pieces.len();
    pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let last = i + 1 == n;
            event(&response(
                json!([{"text": p}]),
                last.then_some("STOP"),
                last.then(|| usage(11, 5)),
            ))
        })
        .collect()
}

/// An answer calling functions: `(id, name, args as JSON text)`.
pub fn calls_response(calls: &[(&str, &str, &str)]) -> Value {
    let parts: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| {
            let args: Value = serde_json::from_str(args).unwrap_or(json!({}));
            json!({"functionCall": {"id": id, "name": name, "args": args}})
        })
        .collect();
    response(Value::from(parts), Some("STOP"), Some(usage(11, 8)))
}

/// The same calls streamed, one chunk each, the last one finishing.
pub fn calls_stream(calls: &[(&str, &str, &str)]) -> Vec<String> {
    let n = calls.len();
    calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            let mut r = calls_response(&[*call]);
            if i + 1 < n {
                r["candidates"][0]
                    .as_object_mut()
                    .map(|c| c.remove("finishReason"));
                r.as_object_mut().map(|o| o.remove("usageMetadata"));
            }
            event(&r)
        })
        .collect()
}

/// Thoughts, then text signed with `signature`.
pub fn thinking_response(thought: &str, signature: &str, text: &str) -> Value {
    response(
        json!([{"text": thought, "thought": true}, {"text": text, "thoughtSignature": signature}]),
        Some("STOP"),
        Some(usage(11, 9)),
    )
}

/// [`thinking_response`] streamed: the thought, then the signed text with the finish.
pub fn thinking_stream(thought: &str, signature: &str, text: &str) -> Vec<String> {
    vec![
        event(&response(
            json!([{"text": thought, "thought": true}]),
            None,
            None,
        )),
        event(&response(
            json!([{"text": text, "thoughtSignature": signature}]),
            Some("STOP"),
            Some(usage(11, 9)),
        )),
    ]
}

/// Google's error object.
pub fn error_body(code: u16, status: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}
