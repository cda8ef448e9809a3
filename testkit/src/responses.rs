//! Canned OpenAI Responses API answers, for the fake provider speaking
//! `source.protocol: responses`: whole `response` objects and SSE streams with the event
//! sequence OpenAI sends (`response.created`, `output_item.added`, deltas, `.done` events,
//! `response.completed` with usage), each event with its `sequence_number`.

use serde_json::{Value, json};

use crate::{estimate_tokens, split_text};

const PROMPT_TOKENS: u64 = 11;

fn usage(input: u64, output: u64) -> Value {
    json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": 0},
           "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
           "total_tokens": input + output})
}

fn response(status: &str, output: Value, usage: Value) -> Value {
    json!({"id": "resp_fake_1", "object": "response", "created_at": 1_700_000_000,
           "status": status, "model": "fake-model", "output": output, "usage": usage,
           "error": null, "incomplete_details": null, "parallel_tool_calls": true,
           "tool_choice": "auto", "tools": []})
}

fn message_item(text: &str) -> Value {
    json!({"type": "message", "id": "msg_fake_1", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

fn call_item(call_id: &str, name: &str, arguments: &str) -> Value {
    json!({"type": "function_call", "id": format!("fc_{call_id}"), "status": "completed",
           "call_id": call_id, "name": name, "arguments": arguments})
}

/// A complete text answer.
pub fn text_response(text: &str) -> Value {
    response(
        "completed",
        json!([message_item(text)]),
        usage(PROMPT_TOKENS, estimate_tokens(text)),
    )
}

/// A complete answer calling one function.
pub fn tool_call_response(call_id: &str, name: &str, arguments: &str) -> Value {
    response(
        "completed",
        json!([call_item(call_id, name, arguments)]),
        usage(PROMPT_TOKENS, estimate_tokens(arguments)),
    )
}

/// SSE events with `sequence_number`s counted from 0.
struct Events(Vec<String>);

impl Events {
    fn push(&mut self, mut data: Value) {
        data["sequence_number"] = json!(self.0.len());
        let kind = data["type"].as_str().unwrap_or_default().to_owned();
        self.0.push(format!("event: {kind}\ndata: {data}\n\n"));
    }
}

/// A text answer streamed in `chunks` deltas.
pub fn text_stream(text: &str, chunks: usize) -> Vec<String> {
    let mut e = Events(Vec::new());
    let skeleton = response("in_progress", json!([]), Value::Null);
    e.push(json!({"type": "response.created", "response": skeleton}));
    let added = json!({"type": "message", "id": "msg_fake_1", "status": "in_progress",
                       "role": "assistant", "content": []});
    e.push(json!({"type": "response.output_item.added", "output_index": 0, "item": added}));
    e.push(
        json!({"type": "response.content_part.added", "item_id": "msg_fake_1",
                  "output_index": 0, "content_index": 0,
                  "part": {"type": "output_text", "text": "", "annotations": []}}),
    );
    for piece in split_text(text, chunks) {
        e.push(
            json!({"type": "response.output_text.delta", "item_id": "msg_fake_1",
                      "output_index": 0, "content_index": 0, "delta": piece}),
        );
    }
    e.push(
        json!({"type": "response.output_text.done", "item_id": "msg_fake_1",
                  "output_index": 0, "content_index": 0, "text": text}),
    );
    e.push(
        json!({"type": "response.output_item.done", "output_index": 0,
                  "item": message_item(text)}),
    );
    e.push(json!({"type": "response.completed", "response": text_response(text)}));
    e.0
}

/// One function call streamed with its arguments in `fragments` deltas.
pub fn tool_call_stream(
    call_id: &str,
    name: &str,
    arguments: &str,
    fragments: usize,
) -> Vec<String> {
    let mut e = Events(Vec::new());
    let skeleton = response("in_progress", json!([]), Value::Null);
    e.push(json!({"type": "response.created", "response": skeleton}));
    let mut added = call_item(call_id, name, "");
    added["status"] = json!("in_progress");
    let item_id = format!("fc_{call_id}");
    e.push(json!({"type": "response.output_item.added", "output_index": 0, "item": added}));
    for piece in split_text(arguments, fragments) {
        e.push(
            json!({"type": "response.function_call_arguments.delta", "item_id": item_id,
                      "output_index": 0, "delta": piece}),
        );
    }
    e.push(
        json!({"type": "response.function_call_arguments.done", "item_id": item_id,
                  "output_index": 0, "arguments": arguments}),
    );
    e.push(
        json!({"type": "response.output_item.done", "output_index": 0,
                  "item": call_item(call_id, name, arguments)}),
    );
    e.push(json!({"type": "response.completed",
                  "response": tool_call_response(call_id, name, arguments)}));
    e.0
}

fn reasoning_item(summary: &str, encrypted: &str) -> Value {
    json!({"type": "reasoning", "id": "rs_fake_1",
           "summary": [{"type": "summary_text", "text": summary}],
           "encrypted_content": encrypted})
}

/// A complete answer that reasoned (summary `summary`, opaque `encrypted`), then said `text`.
pub fn reasoning_response(summary: &str, encrypted: &str, text: &str) -> Value {
    response(
        "completed",
        json!([reasoning_item(summary, encrypted), message_item(text)]),
        usage(
            PROMPT_TOKENS,
            estimate_tokens(summary) + estimate_tokens(text),
        ),
    )
}

/// [`reasoning_response`] streamed: the reasoning item with one summary delta, then the
/// text as in [`text_stream`] (output index 1).
pub fn reasoning_stream(summary: &str, encrypted: &str, text: &str) -> Vec<String> {
    let mut e = Events(Vec::new());
    let skeleton = response("in_progress", json!([]), Value::Null);
    e.push(json!({"type": "response.created", "response": skeleton}));
    let added = json!({"type": "reasoning", "id": "rs_fake_1", "summary": []});
    e.push(json!({"type": "response.output_item.added", "output_index": 0, "item": added}));
    e.push(
        json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_fake_1",
                  "output_index": 0, "summary_index": 0,
                  "part": {"type": "summary_text", "text": ""}}),
    );
    e.push(
        json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_fake_1",
                  "output_index": 0, "summary_index": 0, "delta": summary}),
    );
    e.push(
        json!({"type": "response.output_item.done", "output_index": 0,
                  "item": reasoning_item(summary, encrypted)}),
    );
    e.push(
        json!({"type": "response.output_item.added", "output_index": 1,
                  "item": {"type": "message", "id": "msg_fake_1", "status": "in_progress",
                           "role": "assistant", "content": []}}),
    );
    e.push(
        json!({"type": "response.output_text.delta", "item_id": "msg_fake_1",
                  "output_index": 1, "content_index": 0, "delta": text}),
    );
    e.push(
        json!({"type": "response.output_item.done", "output_index": 1,
                  "item": message_item(text)}),
    );
    e.push(json!({"type": "response.completed",
                  "response": reasoning_response(summary, encrypted, text)}));
    e.0
}

/// The first events of a text stream, up to its first delta `head`: for streams that then
/// fail, stall or reset.
pub fn text_stream_head(head: &str) -> Vec<String> {
    let mut events = text_stream(head, 1);
    events.truncate(4);
    events
}

/// One `response.output_text.delta` event (sequence number `n`) of the message begun by
/// [`text_stream_head`].
pub fn text_delta(n: usize, delta: &str) -> String {
    let data = json!({"type": "response.output_text.delta", "item_id": "msg_fake_1",
                      "output_index": 0, "content_index": 0, "delta": delta,
                      "sequence_number": n});
    format!("event: response.output_text.delta\ndata: {data}\n\n")
}

/// A stream that fails after its first text delta (`response.failed`).
pub fn failed_stream(head: &str, message: &str) -> Vec<String> {
    let mut e = Events(text_stream_head(head));
    let mut failed = response("failed", json!([]), Value::Null);
    failed["error"] = json!({"code": "server_error", "message": message});
    e.push(json!({"type": "response.failed", "response": failed}));
    e.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_number_their_events() {
        let events = tool_call_stream("c1", "f", "{\"a\":1}", 3);
        for (i, e) in events.iter().enumerate() {
            let data = e.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["sequence_number"], i);
        }
        assert!(events.last().unwrap().contains("response.completed"));
    }
}
