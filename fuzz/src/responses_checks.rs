//! Properties of the Responses codec, shared by the stable property tests
//! (`tests/fuzz_responses.rs`) and the cargo-fuzz targets `responses_request` /
//! `responses_stream`: no panic on any input; a Responses request either is refused with a
//! message or becomes a Chat, Messages or (from the other clients) Responses body that is a
//! JSON object; a Responses client's stream is the same whatever the read split, every event
//! is `event:` + JSON `data:` with growing `sequence_number`s, and it ends in exactly one
//! terminal event (`response.completed`, `.incomplete` or `.failed`), after `finish` and
//! after `fail`; a Responses source's stream read by an Anthropic client never panics.

use flexiproxy::protocol::anthropic::ErrorKind;
use flexiproxy::protocol::openai_chat::dialect::Dialect;
use flexiproxy::protocol::pair::{Pair, PairStream, SourceOptions, Wire};
use flexiproxy::protocol::pivot::ExchangeContext;
use flexiproxy::protocol::responses::seal::ReasoningKey;
use serde_json::Value;

fn ctx() -> ExchangeContext {
    ExchangeContext {
        message_id: "resp_fuzz".into(),
        client_model: "gpt-fuzz".into(),
        stream: true,
        reasoning_key: Some(ReasoningKey::from_secret(b"fuzz")),
        ..ExchangeContext::default()
    }
}

/// A Responses request through every pair it takes part in, and any body as a request to a
/// Responses source from the other clients.
pub fn check_request(body: &[u8]) -> Result<(), String> {
    let dialect = Dialect {
        max_tokens_limit: Some(8192),
        ..Dialect::default()
    };
    let options = SourceOptions {
        dialect: &dialect,
        omit_media_for: None,
    };
    let pairs = [
        (Wire::Responses, Wire::OpenAiChat),
        (Wire::Responses, Wire::AnthropicMessages),
        (Wire::OpenAiChat, Wire::Responses),
        (Wire::AnthropicMessages, Wire::Responses),
    ];
    for (client, source) in pairs {
        let pair = Pair { client, source };
        let Ok(encoded) = pair.encode_request(body, |m| format!("{m}-src"), options, ctx()) else {
            continue;
        };
        let v: Value = serde_json::from_slice(&encoded.body)
            .map_err(|e| format!("{pair:?}: encoded request is not JSON: {e}"))?;
        if !v.is_object() || !v["model"].is_string() {
            return Err(format!("{pair:?}: no model in {v}"));
        }
        if source == Wire::Responses && !v["input"].is_array() {
            return Err(format!("{pair:?}: no input array in {v}"));
        }
    }
    Ok(())
}

fn run(pair: Pair, input: &[u8], sizes: &[usize], fail: Option<usize>) -> Vec<u8> {
    let mut stream = PairStream::new(pair, ctx());
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

/// Every event is `event: <type>` + a JSON `data:` of that type with a growing sequence
/// number; exactly one terminal event, last.
pub fn check_stream_output(out: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(out).map_err(|e| format!("output is not UTF-8: {e}"))?;
    let events: Vec<&str> = text
        .split_terminator("\n\n")
        .filter(|e| !e.starts_with(':'))
        .collect();
    let mut last_sequence = None;
    for (i, event) in events.iter().enumerate() {
        let mut lines = event.lines();
        let kind = lines
            .next()
            .and_then(|l| l.strip_prefix("event: "))
            .ok_or_else(|| format!("no event line: {event:?}"))?;
        let data = lines
            .next()
            .and_then(|l| l.strip_prefix("data: "))
            .ok_or_else(|| format!("no data line: {event:?}"))?;
        let v: Value = serde_json::from_str(data).map_err(|e| format!("bad data {data:?}: {e}"))?;
        if v["type"] != kind {
            return Err(format!("type {} under event {kind}", v["type"]));
        }
        let n = v["sequence_number"].as_u64().ok_or("no sequence_number")?;
        if last_sequence.is_some_and(|l| n <= l) {
            return Err(format!("sequence numbers must grow: {text}"));
        }
        last_sequence = Some(n);
        let terminal = matches!(
            kind,
            "response.completed" | "response.incomplete" | "response.failed"
        );
        if terminal != (i + 1 == events.len()) {
            return Err(format!("one terminal event, last: {text}"));
        }
    }
    if events.is_empty() {
        return Err("empty stream".into());
    }
    Ok(())
}

/// A source stream (Chat or Anthropic SSE, or anything) to a Responses client, read in
/// `sizes`, then failed at `fail_at`; and the same bytes as a Responses source's stream to an
/// Anthropic client (no panic, nothing else asked of it).
pub fn check_stream(input: &[u8], sizes: &[usize], fail_at: usize) -> Result<(), String> {
    for source in [Wire::OpenAiChat, Wire::AnthropicMessages] {
        let pair = Pair {
            client: Wire::Responses,
            source,
        };
        let whole = run(pair, input, &[usize::MAX], None);
        check_stream_output(&whole)?;
        // Sealed reasoning has fresh nonces: compare with the blobs cut out.
        if without_blobs(&run(pair, input, sizes, None)) != without_blobs(&whole) {
            return Err(format!("output depends on read boundaries {sizes:?}"));
        }
        check_stream_output(&run(pair, input, sizes, Some(fail_at)))?;
    }
    let back = Pair {
        client: Wire::AnthropicMessages,
        source: Wire::Responses,
    };
    run(back, input, sizes, Some(fail_at));
    run(back, input, sizes, None);
    Ok(())
}

fn without_blobs(out: &[u8]) -> String {
    let text = String::from_utf8_lossy(out);
    let mut kept = String::with_capacity(text.len());
    let mut rest = text.as_ref();
    while let Some(at) = rest.find("\"encrypted_content\":\"") {
        let (head, tail) = rest.split_at(at);
        kept.push_str(head);
        rest = tail.split_once("\",").map_or("", |(_, r)| r);
    }
    kept.push_str(rest);
    kept
}
