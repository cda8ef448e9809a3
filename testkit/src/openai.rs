//! Realistic OpenAI Chat Completions payloads for fake provider handlers: full responses,
//! streaming chunks (`data: ...\n\n`), whole event lists, and error bodies.

use serde_json::{Value, json};

use crate::{estimate_tokens, split_text};

/// `model` in every payload built here.
pub const MODEL: &str = "fake-model";
/// `id` in every payload built here.
pub const COMPLETION_ID: &str = "chatcmpl-fake0001";
/// `created` in every payload built here (fixed so tests can compare whole payloads).
pub const CREATED: u64 = 1_700_000_000;
/// `prompt_tokens` reported by the helpers that do not see the request.
pub const PROMPT_TOKENS: u64 = 12;
/// The stream terminator.
pub const SSE_DONE: &str = "data: [DONE]\n\n";

/// A complete non-streaming response answering `text` with `finish_reason: "stop"`.
pub fn chat_completion(text: &str) -> Value {
    completion(
        json!({"role": "assistant", "content": text, "refusal": null}),
        "stop",
        estimate_tokens(text),
    )
}

/// A complete non-streaming response with these tool calls `(id, name, arguments_json)`,
/// `content: null` and `finish_reason: "tool_calls"`.
pub fn tool_call_completion(calls: &[(&str, &str, &str)]) -> Value {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, arguments)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
        })
        .collect();
    let tokens = calls
        .iter()
        .map(|(_, name, args)| estimate_tokens(name) + estimate_tokens(args))
        .sum();
    completion(
        json!({"role": "assistant", "content": null, "tool_calls": tool_calls, "refusal": null}),
        "tool_calls",
        tokens,
    )
}

fn completion(message: Value, finish_reason: &str, completion_tokens: u64) -> Value {
    json!({
        "id": COMPLETION_ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_fake",
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": usage(PROMPT_TOKENS, completion_tokens),
    })
}

/// `{"prompt_tokens", "completion_tokens", "total_tokens"}`.
pub fn usage(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

/// One streaming chunk event, `data: {...}\n\n`, with this `delta` for choice 0.
pub fn sse_chunk(delta: Value, finish_reason: Option<&str>) -> String {
    data_event(&json!({
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_fake",
        "choices": [{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
    }))
}

/// The final usage chunk sent with `stream_options.include_usage`: `choices: []`.
pub fn sse_usage_chunk(prompt_tokens: u64, completion_tokens: u64) -> String {
    data_event(&json!({
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_fake",
        "choices": [],
        "usage": usage(prompt_tokens, completion_tokens),
    }))
}

/// A whole text stream: role chunk, `chunks` content deltas, `finish_reason: "stop"`,
/// usage chunk, `[DONE]`. Ready for [`crate::Reply::sse`].
pub fn text_stream(text: &str, chunks: usize) -> Vec<String> {
    text_stream_from_pieces(&split_text(text, chunks))
}

/// Like [`text_stream`], with one content delta per given piece.
pub fn text_stream_from_pieces<S: AsRef<str>>(pieces: &[S]) -> Vec<String> {
    let mut events = vec![sse_chunk(json!({"role": "assistant", "content": ""}), None)];
    for piece in pieces {
        events.push(sse_chunk(json!({"content": piece.as_ref()}), None));
    }
    events.push(sse_chunk(json!({}), Some("stop")));
    let text: String = pieces.iter().map(AsRef::as_ref).collect();
    events.push(sse_usage_chunk(PROMPT_TOKENS, estimate_tokens(&text)));
    events.push(SSE_DONE.to_string());
    events
}

/// A whole single-tool-call stream the way OpenAI sends it: role chunk, a chunk with the
/// call id and name (empty arguments), the arguments in `fragments` pieces,
/// `finish_reason: "tool_calls"`, usage chunk, `[DONE]`.
pub fn tool_call_stream(id: &str, name: &str, arguments: &str, fragments: usize) -> Vec<String> {
    let mut events = vec![sse_chunk(
        json!({"role": "assistant", "content": null}),
        None,
    )];
    events.push(sse_chunk(
        json!({"tool_calls": [{
            "index": 0,
            "id": id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }]}),
        None,
    ));
    for piece in split_text(arguments, fragments) {
        events.push(sse_chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            None,
        ));
    }
    events.push(sse_chunk(json!({}), Some("tool_calls")));
    events.push(sse_usage_chunk(
        PROMPT_TOKENS,
        estimate_tokens(name) + estimate_tokens(arguments),
    ));
    events.push(SSE_DONE.to_string());
    events
}

/// OpenAI's error shape: `{"error": {"message", "type", "param": null, "code"}}`.
/// `code` takes a `&str` or `None` (JSON null).
pub fn error_body<'a>(message: &str, error_type: &str, code: impl Into<Option<&'a str>>) -> Value {
    json!({
        "error": {
            "message": message,
            "type": error_type,
            "param": null,
            "code": code.into(),
        }
    })
}

/// `data: <json>\n\n`.
pub fn data_event(payload: &Value) -> String {
    format!("data: {payload}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(event: &str) -> Value {
        let json = event
            .strip_prefix("data: ")
            .and_then(|e| e.strip_suffix("\n\n"))
            .expect("data event framing");
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn chat_completion_shape() {
        let v = chat_completion("Hello there");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["content"], "Hello there");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        let u = &v["usage"];
        assert_eq!(
            u["total_tokens"].as_u64().unwrap(),
            u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
        );
    }

    #[test]
    fn tool_call_completion_shape() {
        let v = tool_call_completion(&[("call_1", "Write", r#"{"a":1}"#)]);
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["id"], "call_1");
        assert_eq!(call["function"]["name"], "Write");
        assert_eq!(call["function"]["arguments"], r#"{"a":1}"#);
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert!(v["choices"][0]["message"]["content"].is_null());
    }

    #[test]
    fn streams_reassemble() {
        let events = text_stream("Hello wörld, how are you?", 4);
        assert_eq!(events.last().unwrap(), SSE_DONE);
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| parse(e))
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello wörld, how are you?");
        assert_eq!(
            chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
        assert_eq!(chunks[chunks.len() - 1]["choices"], json!([]));

        let events = tool_call_stream("call_9", "Write", r#"{"file_path":"/x"}"#, 3);
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| parse(e))
            .collect();
        assert_eq!(chunks.len(), 1 + 1 + 3 + 1 + 1);
        let args: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(args, r#"{"file_path":"/x"}"#);
    }

    #[test]
    fn error_body_code_may_be_null() {
        assert_eq!(error_body("m", "t", "c")["error"]["code"], "c");
        assert!(error_body("m", "t", None)["error"]["code"].is_null());
    }
}
