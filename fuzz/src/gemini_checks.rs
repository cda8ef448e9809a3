//! Properties of the Gemini client codec, shared by the stable property tests
//! (`tests/fuzz_gemini.rs`) and the cargo-fuzz targets `gemini_request` / `gemini_stream`:
//! no panic on any input; a Gemini request is refused with a message or becomes a Chat,
//! Messages or Responses body that is a JSON object with the mapped model; a Gemini client's
//! stream (from a Chat or Anthropic source) is the same whatever the read split, every SSE
//! `data:` is a JSON object, the last one has a `finishReason` or an `error`; without
//! `alt=sse` the whole stream is one JSON array, after `finish` and after `fail`; other
//! clients' requests to a Gemini source have `contents`, and its streams never panic them.

use flexiproxy::protocol::anthropic::ErrorKind;
use flexiproxy::protocol::openai_chat::dialect::Dialect;
use flexiproxy::protocol::pair::{Pair, PairStream, SourceOptions, Wire};
use flexiproxy::protocol::pivot::ExchangeContext;
use flexiproxy::protocol::responses::seal::ReasoningKey;
use serde_json::Value;

fn ctx(array: bool) -> ExchangeContext {
    ExchangeContext {
        message_id: "fuzz".into(),
        client_model: "gemini-fuzz".into(),
        stream: true,
        stream_as_json_array: array,
        reasoning_key: Some(ReasoningKey::from_secret(b"fuzz")),
        ..ExchangeContext::default()
    }
}

pub fn check_request(body: &[u8]) -> Result<(), String> {
    let dialect = Dialect::default();
    let options = SourceOptions {
        dialect: &dialect,
        omit_media_for: None,
    };
    for source in [Wire::OpenAiChat, Wire::AnthropicMessages, Wire::Responses] {
        let pair = Pair {
            client: Wire::Gemini,
            source,
        };
        let Ok(encoded) = pair.encode_request(body, |m| format!("{m}-src"), options, ctx(false))
        else {
            continue;
        };
        let v: Value = serde_json::from_slice(&encoded.body)
            .map_err(|e| format!("{pair:?}: encoded request is not JSON: {e}"))?;
        if v["model"] != "gemini-fuzz-src" {
            return Err(format!("{pair:?}: model not mapped: {v}"));
        }
    }
    // Any body as another client's request to a Gemini source.
    for client in [Wire::OpenAiChat, Wire::AnthropicMessages, Wire::Responses] {
        let pair = Pair {
            client,
            source: Wire::Gemini,
        };
        let Ok(encoded) = pair.encode_request(body, |m| format!("{m}-src"), options, ctx(false))
        else {
            continue;
        };
        let v: Value = serde_json::from_slice(&encoded.body)
            .map_err(|e| format!("{pair:?}: encoded request is not JSON: {e}"))?;
        if !v["contents"].is_array() {
            return Err(format!("{pair:?}: no contents in {v}"));
        }
    }
    Ok(())
}

fn run(pair: Pair, array: bool, input: &[u8], sizes: &[usize], fail: Option<usize>) -> Vec<u8> {
    let mut stream = PairStream::new(pair, ctx(array));
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

fn check_sse(out: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(out).map_err(|e| format!("not UTF-8: {e}"))?;
    let frames: Vec<&str> = text.split_terminator("\r\n\r\n").collect();
    let mut last = None;
    for frame in &frames {
        let data = frame
            .strip_prefix("data: ")
            .ok_or_else(|| format!("not a data frame: {frame:?}"))?;
        let v: Value =
            serde_json::from_str(data).map_err(|e| format!("bad chunk {data:?}: {e}"))?;
        if !v.is_object() {
            return Err(format!("chunk is not an object: {data}"));
        }
        last = Some(v);
    }
    let last = last.ok_or("empty stream")?;
    if last["candidates"][0]["finishReason"].is_null() && last["error"].is_null() {
        return Err(format!("the last chunk neither finishes nor fails: {text}"));
    }
    Ok(())
}

fn check_array(out: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(out)
        .map_err(|e| format!("not one JSON array: {e}: {}", String::from_utf8_lossy(out)))?;
    match v.as_array() {
        Some(chunks) if !chunks.is_empty() => Ok(()),
        _ => Err(format!("not a non-empty array: {v}")),
    }
}

/// Sealed signatures have fresh nonces: compare outputs with them cut out.
fn without_signatures(out: &[u8]) -> String {
    let text = String::from_utf8_lossy(out);
    let mut kept = String::with_capacity(text.len());
    let mut rest = text.as_ref();
    while let Some(at) = rest.find("\"thoughtSignature\":\"") {
        let (head, tail) = rest.split_at(at);
        kept.push_str(head);
        rest = tail.split_once("\"}").map_or("", |(_, r)| r);
    }
    kept.push_str(rest);
    kept
}

/// Chat or Anthropic SSE from a source (or anything) to a Gemini client.
pub fn check_stream(input: &[u8], sizes: &[usize], fail_at: usize) -> Result<(), String> {
    for source in [Wire::OpenAiChat, Wire::AnthropicMessages] {
        let pair = Pair {
            client: Wire::Gemini,
            source,
        };
        let whole = run(pair, false, input, &[usize::MAX], None);
        check_sse(&whole)?;
        let split = run(pair, false, input, sizes, None);
        if without_signatures(&split) != without_signatures(&whole) {
            return Err(format!("output depends on read boundaries {sizes:?}"));
        }
        check_sse(&run(pair, false, input, sizes, Some(fail_at)))?;
        check_array(&run(pair, true, input, sizes, None))?;
        check_array(&run(pair, true, input, sizes, Some(fail_at)))?;
    }
    // The same bytes as a Gemini source's stream to the other clients: no panic.
    for client in [Wire::OpenAiChat, Wire::AnthropicMessages, Wire::Responses] {
        let pair = Pair {
            client,
            source: Wire::Gemini,
        };
        run(pair, false, input, sizes, None);
        run(pair, false, input, sizes, Some(fail_at));
    }
    Ok(())
}
