//! A checker for the Anthropic stream invariants, shared by unit tests, property tests,
//! fuzz targets and integration tests: parse a complete Anthropic SSE body and say exactly
//! which rule it breaks, if any.

use serde_json::Value;

/// One parsed Anthropic SSE frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub event: String,
    pub data: Value,
}

/// Parses `event:`/`data:` frames separated by blank lines.
pub fn parse_frames(body: &[u8]) -> Result<Vec<Frame>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("stream is not UTF-8: {e}"))?;
    let mut frames = Vec::new();
    for raw in text.split("\n\n").filter(|f| !f.trim().is_empty()) {
        let mut event = None;
        let mut data = None;
        for line in raw.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = Some(e.to_owned());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data = Some(d);
            } else {
                return Err(format!("unexpected line {line:?}"));
            }
        }
        let event = event.ok_or_else(|| format!("frame without event: {raw:?}"))?;
        let data = data.ok_or_else(|| format!("frame without data: {raw:?}"))?;
        let data: Value =
            serde_json::from_str(data).map_err(|e| format!("data is not JSON ({e}): {data}"))?;
        if data["type"] != event.as_str() {
            return Err(format!("event {event} carries type {}", data["type"]));
        }
        frames.push(frame(event, data));
    }
    Ok(frames)
}

fn frame(event: String, data: Value) -> Frame {
    Frame { event, data }
}

/// Checks the invariants; returns the frames when they hold.
///
/// `message_start` first (unless the stream is a lone `error`); block indexes 0, 1, 2… each
/// started once, deltas only into the open block and of its kind, stopped before the next one
/// starts; `message_delta` then `message_stop` last, or an `error` last; tool-use input that
/// accumulates to valid JSON; a signature on every thinking block.
pub fn check_stream(body: &[u8]) -> Result<Vec<Frame>, String> {
    let frames = parse_frames(body)?;
    let mut open: Option<(u64, String)> = None;
    let mut next_index = 0u64;
    let mut tool_json = String::new();
    let mut thinking_signed = false;
    let mut state = "start";
    for (i, f) in frames.iter().enumerate() {
        let at = |msg: String| format!("frame {i} ({}): {msg}", f.event);
        if state == "done" {
            return Err(at("frame after the end of the message".into()));
        }
        match f.event.as_str() {
            "message_start" => {
                if state != "start" {
                    return Err(at("second message_start".into()));
                }
                state = "blocks";
            }
            "error" => {
                if f.data["error"]["type"].as_str().is_none() {
                    return Err(at("error without a type".into()));
                }
                state = "done";
            }
            _ if state == "start" => return Err(at("before message_start".into())),
            "ping" => {}
            "content_block_start" => {
                if state != "blocks" {
                    return Err(at("block after message_delta".into()));
                }
                if let Some((idx, _)) = &open {
                    return Err(at(format!("block {idx} still open")));
                }
                let idx = f.data["index"]
                    .as_u64()
                    .ok_or_else(|| at("no index".into()))?;
                if idx != next_index {
                    return Err(at(format!("index {idx}, expected {next_index}")));
                }
                next_index += 1;
                let kind = f.data["content_block"]["type"]
                    .as_str()
                    .ok_or_else(|| at("no block type".into()))?
                    .to_owned();
                if kind == "tool_use" {
                    let id = f.data["content_block"]["id"].as_str().unwrap_or("");
                    if id.is_empty()
                        || !id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    {
                        return Err(at(format!("bad tool_use id {id:?}")));
                    }
                }
                tool_json.clear();
                thinking_signed = false;
                open = Some((idx, kind));
            }
            "content_block_delta" => {
                let (idx, kind) = open.as_ref().ok_or_else(|| at("no open block".into()))?;
                if f.data["index"].as_u64() != Some(*idx) {
                    return Err(at(format!(
                        "delta for {} while {idx} is open",
                        f.data["index"]
                    )));
                }
                let delta_type = f.data["delta"]["type"].as_str().unwrap_or("");
                let ok = matches!(
                    (kind.as_str(), delta_type),
                    ("text", "text_delta")
                        | ("thinking", "thinking_delta")
                        | ("thinking", "signature_delta")
                        | ("tool_use", "input_json_delta")
                );
                if !ok {
                    return Err(at(format!("{delta_type} in a {kind} block")));
                }
                if delta_type == "input_json_delta" {
                    tool_json.push_str(f.data["delta"]["partial_json"].as_str().unwrap_or(""));
                }
                if delta_type == "signature_delta" {
                    thinking_signed = true;
                }
            }
            "content_block_stop" => {
                let (idx, kind) = open
                    .take()
                    .ok_or_else(|| at("stop with no open block".into()))?;
                if f.data["index"].as_u64() != Some(idx) {
                    return Err(at(format!(
                        "stop for {} while {idx} is open",
                        f.data["index"]
                    )));
                }
                if kind == "tool_use" && !tool_json.is_empty() {
                    let v: Value = serde_json::from_str(&tool_json)
                        .map_err(|e| at(format!("tool input {tool_json:?} is not JSON: {e}")))?;
                    if !v.is_object() {
                        return Err(at(format!("tool input {tool_json:?} is not an object")));
                    }
                }
                if kind == "thinking" && !thinking_signed {
                    return Err(at("thinking block without a signature".into()));
                }
            }
            "message_delta" => {
                if open.is_some() {
                    return Err(at("message_delta with a block open".into()));
                }
                if state != "blocks" {
                    return Err(at("second message_delta".into()));
                }
                if f.data["usage"]["output_tokens"].as_u64().is_none() {
                    return Err(at("message_delta without usage".into()));
                }
                state = "delta";
            }
            "message_stop" => {
                if state != "delta" {
                    return Err(at("message_stop without message_delta".into()));
                }
                state = "done";
            }
            other => return Err(at(format!("unknown event {other}"))),
        }
    }
    if state != "done" {
        return Err(format!("stream ended in state {state}"));
    }
    Ok(frames)
}

/// Rebuilds the final message the way the SDKs' stream accumulators do: content blocks with
/// their text, thinking and parsed tool input, plus stop reason and usage.
pub fn accumulate(frames: &[Frame]) -> Value {
    let mut message = Value::Null;
    let mut blocks: Vec<Value> = Vec::new();
    let mut json_parts: Vec<String> = Vec::new();
    for f in frames {
        match f.event.as_str() {
            "message_start" => message = f.data["message"].clone(),
            "content_block_start" => {
                blocks.push(f.data["content_block"].clone());
                json_parts.push(String::new());
            }
            "content_block_delta" => {
                let (Some(b), Some(j)) = (blocks.last_mut(), json_parts.last_mut()) else {
                    continue;
                };
                let d = &f.data["delta"];
                let append = |b: &mut Value, field: &str, piece: &Value| {
                    let s = format!(
                        "{}{}",
                        b[field].as_str().unwrap_or(""),
                        piece.as_str().unwrap_or("")
                    );
                    b[field] = Value::String(s);
                };
                match d["type"].as_str() {
                    Some("text_delta") => append(b, "text", &d["text"]),
                    Some("thinking_delta") => append(b, "thinking", &d["thinking"]),
                    Some("signature_delta") => append(b, "signature", &d["signature"]),
                    Some("input_json_delta") => {
                        j.push_str(d["partial_json"].as_str().unwrap_or(""))
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let (Some(b), Some(j)) = (blocks.last_mut(), json_parts.last())
                    && b["type"] == "tool_use"
                {
                    b["input"] = if j.is_empty() {
                        Value::Object(Default::default())
                    } else {
                        serde_json::from_str(j).unwrap_or(Value::Null)
                    };
                }
            }
            "message_delta" => {
                message["stop_reason"] = f.data["delta"]["stop_reason"].clone();
                message["usage"] = f.data["usage"].clone();
            }
            _ => {}
        }
    }
    if message.is_object() {
        message["content"] = Value::Array(blocks);
    }
    message
}
