//! Realistic Anthropic Messages API payloads (a full message, a streamed text answer as
//! named SSE events, errors) for testing Anthropic passthrough.

use serde_json::{Value, json};

use crate::{estimate_tokens, split_text};

/// `model` in every payload built here.
pub const MODEL: &str = "claude-fake-model";
/// `id` in every payload built here.
pub const MESSAGE_ID: &str = "msg_fake0001";
/// `input_tokens` reported by these helpers.
pub const INPUT_TOKENS: u64 = 12;

/// A complete non-streaming Messages API response answering `text`.
pub fn message(text: &str) -> Value {
    json!({
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": estimate_tokens(text)},
    })
}

/// A streamed answer as Anthropic sends it: `message_start`, `ping`,
/// `content_block_start`, `chunks` text deltas, `content_block_stop`, `message_delta`
/// (stop reason and usage), `message_stop`. Ready for [`crate::Reply::sse`].
pub fn text_stream(text: &str, chunks: usize) -> Vec<String> {
    text_stream_from_pieces(&split_text(text, chunks))
}

/// Like [`text_stream`], with one `content_block_delta` per given piece.
pub fn text_stream_from_pieces<S: AsRef<str>>(pieces: &[S]) -> Vec<String> {
    let text: String = pieces.iter().map(AsRef::as_ref).collect();
    let mut events = vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": MESSAGE_ID,
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1},
            }}),
        ),
        event("ping", &json!({"type": "ping"})),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for piece in pieces {
        let piece = piece.as_ref();
        events.push(event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    events.push(event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "message_delta",
        &json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": estimate_tokens(&text)}}),
    ));
    events.push(event("message_stop", &json!({"type": "message_stop"})));
    events
}

fn message_start() -> String {
    event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": MESSAGE_ID, "type": "message", "role": "assistant", "model": MODEL,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": INPUT_TOKENS, "cache_read_input_tokens": 0, "output_tokens": 1},
        }}),
    )
}

fn message_end(stop_reason: &str, output_tokens: u64) -> [String; 2] {
    [
        event(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                    "usage": {"output_tokens": output_tokens}}),
        ),
        event("message_stop", &json!({"type": "message_stop"})),
    ]
}

fn block_start(index: usize, block: Value) -> String {
    event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": index, "content_block": block}),
    )
}

fn block_delta(index: usize, delta: Value) -> String {
    event(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

fn block_stop(index: usize) -> String {
    event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    )
}

/// A streamed answer that calls tools: one `tool_use` block per `(id, name, arguments)`,
/// each input sent as `fragments` `input_json_delta`s, then `stop_reason: tool_use`.
pub fn tool_use_stream(calls: &[(&str, &str, &str)], fragments: usize) -> Vec<String> {
    let mut events = vec![message_start()];
    for (index, (id, name, arguments)) in calls.iter().enumerate() {
        events.push(block_start(
            index,
            json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
        ));
        for piece in split_text(arguments, fragments) {
            events.push(block_delta(
                index,
                json!({"type": "input_json_delta", "partial_json": piece}),
            ));
        }
        events.push(block_stop(index));
    }
    let output: u64 = calls.iter().map(|c| estimate_tokens(c.2)).sum();
    events.extend(message_end("tool_use", output));
    events
}

/// A streamed answer with signed thinking first, then text.
pub fn thinking_stream(thinking: &str, signature: &str, text: &str) -> Vec<String> {
    let mut events = vec![
        message_start(),
        block_start(
            0,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
        ),
    ];
    for piece in split_text(thinking, 2) {
        events.push(block_delta(
            0,
            json!({"type": "thinking_delta", "thinking": piece}),
        ));
    }
    events.push(block_delta(
        0,
        json!({"type": "signature_delta", "signature": signature}),
    ));
    events.push(block_stop(0));
    events.push(block_start(1, json!({"type": "text", "text": ""})));
    events.push(block_delta(1, json!({"type": "text_delta", "text": text})));
    events.push(block_stop(1));
    events.extend(message_end(
        "end_turn",
        estimate_tokens(thinking) + estimate_tokens(text),
    ));
    events
}

/// A non-streaming answer that calls tools.
pub fn tool_use_message(calls: &[(&str, &str, &str)]) -> Value {
    let content: Vec<Value> = calls
        .iter()
        .map(|(id, name, arguments)| {
            let input: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        })
        .collect();
    let mut m = message("");
    m["content"] = Value::Array(content);
    m["stop_reason"] = json!("tool_use");
    m
}

/// A non-streaming answer with signed thinking, then text.
pub fn thinking_message(thinking: &str, signature: &str, text: &str) -> Value {
    let mut m = message(text);
    m["content"] = json!([
        {"type": "thinking", "thinking": thinking, "signature": signature},
        {"type": "text", "text": text},
    ]);
    m
}

/// An `error` event, as Anthropic sends mid-stream (e.g. `overloaded_error`).
pub fn error_event(error_type: &str, message: &str) -> String {
    event("error", &error_body(error_type, message))
}

/// The first events of a text stream, for a stream that fails after them.
pub fn text_stream_head(text: &str) -> Vec<String> {
    vec![
        message_start(),
        block_start(0, json!({"type": "text", "text": ""})),
        block_delta(0, json!({"type": "text_delta", "text": text})),
    ]
}

/// One named SSE event: `event: NAME\ndata: <json>\n\n`.
pub fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// Anthropic's error shape: `{"type": "error", "error": {"type", "message"}}`.
pub fn error_body(error_type: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type, "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_event_order_and_text() {
        let events = text_stream("Hello, wörld!", 3);
        let names: Vec<&str> = events
            .iter()
            .map(|e| e.lines().next().unwrap().trim_start_matches("event: "))
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let text: String = events
            .iter()
            .filter_map(|e| {
                let data: Value =
                    serde_json::from_str(e.lines().nth(1)?.strip_prefix("data: ")?).ok()?;
                data["delta"]["text"].as_str().map(str::to_string)
            })
            .collect();
        assert_eq!(text, "Hello, wörld!");
        assert!(events.iter().all(|e| e.ends_with("\n\n")));
    }

    #[test]
    fn tool_and_thinking_streams_carry_their_payloads() {
        let events = tool_use_stream(&[("t1", "Bash", r#"{"command":"ls"}"#)], 3);
        let partial: String = events
            .iter()
            .filter_map(|e| {
                let data: Value =
                    serde_json::from_str(e.lines().nth(1)?.strip_prefix("data: ")?).ok()?;
                data["delta"]["partial_json"].as_str().map(str::to_string)
            })
            .collect();
        assert_eq!(partial, r#"{"command":"ls"}"#);
        assert!(events.iter().any(|e| e.contains("\"tool_use\"")));
        let events = thinking_stream("hmm", "sig", "ok");
        assert!(events.iter().any(|e| e.contains("signature_delta")));
        assert_eq!(
            tool_use_message(&[("a", "b", "{}")])["stop_reason"],
            "tool_use"
        );
    }

    #[test]
    fn message_shape() {
        let m = message("hi");
        assert_eq!(m["content"][0]["text"], "hi");
        assert_eq!(m["stop_reason"], "end_turn");
    }
}
