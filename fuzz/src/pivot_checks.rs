//! Properties of the pivot pairs' codecs, shared by the stable property tests
//! (`tests/fuzz_pivot.rs`) and the cargo-fuzz targets `pivot_request` / `pivot_stream`:
//! no panic on any input; an encoded Anthropic request is a JSON object with a model,
//! `max_tokens` and alternating roles; a Chat client's stream is the same whatever the read
//! split, every `data:` line is JSON or `[DONE]`, and it ends with `[DONE]` after `finish`
//! and after `fail`.

use flexiproxy::protocol::anthropic::ErrorKind;
use flexiproxy::protocol::openai_chat::dialect::Dialect;
use flexiproxy::protocol::pair::{Pair, PairStream, SourceOptions, Wire};
use flexiproxy::protocol::pivot::ExchangeContext;
use serde_json::Value;

const PAIR: Pair = Pair {
    client: Wire::OpenAiChat,
    source: Wire::AnthropicMessages,
};

fn ctx(stream_usage: bool) -> ExchangeContext {
    ExchangeContext {
        message_id: "chatcmpl-fuzz".into(),
        client_model: "gpt-fuzz".into(),
        stream: true,
        stream_usage,
        ..ExchangeContext::default()
    }
}

/// A Chat request through the pair: refused with a message, or a well-formed Messages body.
pub fn check_chat_request(body: &[u8]) -> Result<(), String> {
    let dialect = Dialect {
        max_tokens_limit: Some(8192),
        ..Dialect::default()
    };
    let options = SourceOptions {
        dialect: &dialect,
        omit_media_for: None,
    };
    let Ok(encoded) = PAIR.encode_request(body, |m| format!("{m}-src"), options, ctx(false)) else {
        return Ok(());
    };
    let v: Value = serde_json::from_slice(&encoded.body)
        .map_err(|e| format!("encoded request is not JSON: {e}"))?;
    if !v["model"].is_string()
        || !v["max_tokens"]
            .as_u64()
            .is_some_and(|n| (1..=8192).contains(&n))
    {
        return Err(format!("model and max_tokens are required: {v}"));
    }
    let mut previous = None;
    for m in v["messages"]
        .as_array()
        .ok_or("messages must be an array")?
    {
        let role = m["role"].as_str().ok_or("role must be a string")?;
        if previous == Some(role.to_owned()) {
            return Err(format!("roles must alternate: {v}"));
        }
        previous = Some(role.to_owned());
        let content = m["content"].as_array().ok_or("content must be blocks")?;
        if content.is_empty() {
            return Err("no empty messages".into());
        }
        for b in content {
            if b["type"] == "text" && b["text"].as_str().is_none_or(str::is_empty) {
                return Err(format!("no empty text blocks: {v}"));
            }
            if b["type"] == "tool_use" && !b["input"].is_object() {
                return Err(format!("tool input must be an object: {b}"));
            }
        }
    }
    Ok(())
}

/// A complete Anthropic answer for a Chat client: either an error or JSON / a stream.
pub fn check_anthropic_response(body: &[u8]) -> Result<(), String> {
    for as_stream in [false, true] {
        if let Ok((out, _)) = PAIR.encode_response(body, &ctx(true), as_stream) {
            if as_stream {
                check_chat_stream_output(&out, true)?;
            } else {
                serde_json::from_slice::<Value>(&out)
                    .map_err(|e| format!("response is not JSON: {e}"))?;
            }
        }
    }
    Ok(())
}

fn run(input: &[u8], sizes: &[usize], fail: Option<usize>) -> Vec<u8> {
    let mut stream = PairStream::new(PAIR, ctx(true));
    let mut out = Vec::new();
    stream.begin(&mut out);
    let (mut at, mut i) = (0, 0);
    let stop = fail.unwrap_or(input.len()).min(input.len());
    while at < stop {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(stop)
            .max(1);
        let end = (at + n).min(stop);
        stream.push(&input[at..end], &mut out);
        at = end;
        i += 1;
    }
    match fail {
        Some(_) => stream.fail(ErrorKind::Api, "upstream reset", &mut out),
        None => stream.finish(&mut out),
    }
    out
}

/// Every `data:` payload parses (comments aside), `[DONE]` comes once and last.
pub fn check_chat_stream_output(out: &[u8], finished: bool) -> Result<(), String> {
    let text = std::str::from_utf8(out).map_err(|e| format!("output is not UTF-8: {e}"))?;
    let frames: Vec<&str> = text.split_terminator("\n\n").collect();
    for (i, frame) in frames.iter().enumerate() {
        // Keep-alive comments pass through.
        if frame.starts_with(':') {
            continue;
        }
        let data = frame
            .strip_prefix("data: ")
            .ok_or_else(|| format!("not a data frame: {frame:?}"))?;
        if data == "[DONE]" {
            if i + 1 != frames.len() {
                return Err("[DONE] must be last".into());
            }
            continue;
        }
        serde_json::from_str::<Value>(data).map_err(|e| format!("bad chunk {data:?}: {e}"))?;
    }
    if finished && frames.last() != Some(&"data: [DONE]") {
        return Err(format!("stream must end with [DONE]: {text}"));
    }
    Ok(())
}

/// Anthropic SSE from a source, read in `sizes`, then failed at `fail_at`.
pub fn check_anthropic_stream(input: &[u8], sizes: &[usize], fail_at: usize) -> Result<(), String> {
    let whole = run(input, &[usize::MAX], None);
    check_chat_stream_output(&whole, true)?;
    if run(input, sizes, None) != whole {
        return Err(format!("output depends on read boundaries {sizes:?}"));
    }
    check_chat_stream_output(&run(input, sizes, Some(fail_at)), true)
}
