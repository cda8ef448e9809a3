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
    fn message_shape() {
        let m = message("hi");
        assert_eq!(m["content"][0]["text"], "hi");
        assert_eq!(m["stop_reason"], "end_turn");
    }
}
