//! Recorded provider traffic played back as a fake provider: a cassette or chunk file given by
//! path, its answers served in order, each written in random read splits — so a new recording
//! can be checked against the proxy in one command (`fake-provider --replay FILE`,
//! `docs/replay.md`).
//!
//! Formats, told apart by their content:
//! - VCR.py YAML (pytest-recording; `interactions[].response` with `status.code`,
//!   `headers: {name: [value]}` and `body.string`, or a JSON body re-serialized as
//!   `parsed_body`);
//! - go-vcr v2 YAML (`version: 2`; `response.body` as a string, `code`, `headers`);
//! - a chunk file (`*.chunks.txt`): one SSE `data:` JSON payload per line — rebuilt as
//!   `event: <type>` (when the payload has a string `type`: Anthropic, Responses) and
//!   `data: <line>`, with `data: [DONE]` after Chat Completions chunks;
//! - anything else that parses as JSON: one non-streaming 200 answer.

use std::path::Path;

use crate::{RecordedRequest, Reply};

/// One recorded answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub status: u16,
    /// Headers worth replaying (content type, retry-after, request ids…); hop-by-hop and
    /// encoding headers are dropped, since the body is replayed decoded.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn is_sse(&self) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v.contains("event-stream"))
    }
}

/// Headers not replayed: framing and encoding are the fake provider's own, cookies and
/// transport policies mean nothing here.
const DROPPED: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "connection",
    "keep-alive",
    "set-cookie",
    "alt-svc",
    "strict-transport-security",
    "date",
    "server",
];

/// The answers recorded in `path`, in order.
pub fn load(path: &Path) -> Result<Vec<Recorded>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    parse(name, &text).map_err(|e| format!("{}: {e}", path.display()))
}

/// As [`load`], from the file's name and text.
pub fn parse(name: &str, text: &str) -> Result<Vec<Recorded>, String> {
    if name.ends_with(".yaml") || name.ends_with(".yml") || text.starts_with("interactions:") {
        return cassette(text);
    }
    if !name.ends_with(".chunks.txt") && serde_json::from_str::<serde_json::Value>(text).is_ok() {
        return Ok(vec![Recorded {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: text.trim().as_bytes().to_vec(),
        }]);
    }
    Ok(vec![chunks(text)?])
}

fn cassette(text: &str) -> Result<Vec<Recorded>, String> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let interactions = doc
        .get("interactions")
        .and_then(|i| i.as_sequence())
        .ok_or("no `interactions` list")?;
    interactions
        .iter()
        .enumerate()
        .map(|(i, interaction)| {
            let response = interaction
                .get("response")
                .ok_or_else(|| format!("interaction {i} has no response"))?;
            recorded(response).map_err(|e| format!("interaction {i}: {e}"))
        })
        .collect()
}

fn recorded(response: &serde_yaml_ng::Value) -> Result<Recorded, String> {
    // VCR.py: `status: {code, message}`; go-vcr: `code: 200`, `status: "200 OK"`.
    let status = response
        .get("status")
        .and_then(|s| s.get("code"))
        .or_else(|| response.get("code"))
        .and_then(|c| c.as_u64())
        .or_else(|| {
            response
                .get("status")
                .and_then(|s| s.as_str())
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
        })
        .ok_or("no status code")? as u16;
    let body = match response.get("body") {
        Some(serde_yaml_ng::Value::String(s)) => s.clone().into_bytes(),
        Some(b) if b.get("string").is_some() => b
            .get("string")
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .as_bytes()
            .to_vec(),
        _ => match response.get("parsed_body") {
            Some(parsed) => {
                let json: serde_json::Value = serde_yaml_ng::from_value(parsed.clone())
                    .map_err(|e| format!("parsed_body: {e}"))?;
                serde_json::to_vec(&json).map_err(|e| e.to_string())?
            }
            None => Vec::new(),
        },
    };
    let mut headers = Vec::new();
    if let Some(map) = response.get("headers").and_then(|h| h.as_mapping()) {
        for (name, values) in map {
            let Some(name) = name.as_str() else { continue };
            if DROPPED.iter().any(|d| d.eq_ignore_ascii_case(name)) {
                continue;
            }
            let values: Vec<&str> = match values {
                serde_yaml_ng::Value::Sequence(v) => v.iter().filter_map(|v| v.as_str()).collect(),
                serde_yaml_ng::Value::String(s) => vec![s.as_str()],
                _ => Vec::new(),
            };
            for value in values {
                headers.push((name.to_ascii_lowercase(), value.to_owned()));
            }
        }
    }
    if !headers.iter().any(|(n, _)| n == "content-type") {
        let looks_sse = body.starts_with(b"data:")
            || body.starts_with(b"event:")
            || body.starts_with(b":")
            || body.windows(6).any(|w| w == b"\ndata:");
        let kind = if looks_sse {
            "text/event-stream"
        } else {
            "application/json"
        };
        headers.push(("content-type".into(), kind.into()));
    }
    Ok(Recorded {
        status,
        headers,
        body,
    })
}

fn chunks(text: &str) -> Result<Recorded, String> {
    let mut body = String::new();
    let mut chat = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if let Some(kind) = v.get("type").and_then(|t| t.as_str()) {
            body.push_str(&format!("event: {kind}\n"));
        }
        chat |= v.get("object").and_then(|o| o.as_str()) == Some("chat.completion.chunk");
        body.push_str(&format!("data: {line}\n\n"));
    }
    if chat {
        body.push_str("data: [DONE]\n\n");
    }
    Ok(Recorded {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        body: body.into_bytes(),
    })
}

/// Read sizes from a small seeded generator (xorshift): 1 to 64 bytes, so reads end inside
/// lines, UTF-8 characters and `\r\n` alike.
pub fn random_splits(seed: u64, count: usize) -> Vec<usize> {
    let mut x = seed.max(1);
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 64) as usize + 1
        })
        .collect()
}

/// The reply for one recorded answer, its body written in the given read sizes.
pub fn reply(recorded: &Recorded, splits: Vec<usize>) -> Reply {
    let content_type = recorded
        .headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map_or("application/json", |(_, v)| v.as_str());
    let mut reply = if recorded.is_sse() {
        Reply::sse_bytes(recorded.status, recorded.body.clone())
    } else {
        Reply::text(recorded.status, content_type, recorded.body.clone())
    };
    for (name, value) in &recorded.headers {
        reply = if name == "content-type" {
            reply.header(name, value)
        } else {
            reply.append_header(name, value)
        };
    }
    reply.split_writes(splits)
}

/// A fake provider's handler serving `answers` in order, one per request (after the last it
/// starts again), each in fresh random read splits drawn from `seed`.
pub fn handler(
    answers: Vec<Recorded>,
    seed: u64,
) -> impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static {
    let next = std::sync::atomic::AtomicUsize::new(0);
    move |_req: &RecordedRequest| {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let recorded = &answers[n % answers.len()];
        reply(
            recorded,
            random_splits(seed.wrapping_add(n as u64).wrapping_mul(0x9E37_79B9), 64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VCR_PY: &str = r#"interactions:
- request:
    method: POST
    parsed_body:
      model: m
      stream: true
    uri: https://api.example.com/v1/chat/completions
  response:
    body:
      string: |+
        : PROCESSING

        data: {"choices":[{"index":0,"delta":{"content":"héllo"}}]}

        data: [DONE]

    headers:
      content-type:
      - text/event-stream
      content-encoding:
      - gzip
    status:
      code: 200
      message: OK
- request:
    method: POST
  response:
    headers:
      retry-after:
      - '3'
    parsed_body:
      error:
        message: Slow down
        code: 429
    status:
      code: 429
      message: Too Many Requests
version: 1
"#;

    const GO_VCR: &str = r#"---
version: 2
interactions:
- id: 0
  request:
    body: '{"model":"m"}'
    url: https://api.example.com/v1/messages
    method: POST
  response:
    body: "event: message_start\ndata: {\"type\":\"message_start\"}   \n\n"
    headers:
      Content-Type:
      - text/event-stream; charset=utf-8
    status: 200 OK
    code: 200
    duration: 1.5s
"#;

    #[test]
    fn vcr_py_cassettes() {
        let answers = parse("x.yaml", VCR_PY).unwrap();
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0].status, 200);
        assert!(answers[0].is_sse());
        let body = String::from_utf8(answers[0].body.clone()).unwrap();
        assert!(body.starts_with(": PROCESSING\n\ndata: {"), "{body}");
        assert!(body.ends_with("data: [DONE]\n\n"), "{body:?}");
        assert!(
            !answers[0]
                .headers
                .iter()
                .any(|(n, _)| n == "content-encoding"),
            "the body is replayed decoded"
        );
        assert_eq!(answers[1].status, 429);
        assert!(
            answers[1]
                .headers
                .contains(&("retry-after".into(), "3".into()))
        );
        let v: serde_json::Value = serde_json::from_slice(&answers[1].body).unwrap();
        assert_eq!(v["error"]["message"], "Slow down");
    }

    #[test]
    fn go_vcr_cassettes() {
        let answers = parse("y.yaml", GO_VCR).unwrap();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].status, 200);
        assert!(answers[0].is_sse());
        assert_eq!(
            answers[0].body,
            b"event: message_start\ndata: {\"type\":\"message_start\"}   \n\n"
        );
    }

    #[test]
    fn chunk_files() {
        let responses = "{\"type\":\"response.created\",\"response\":{}}\n{\"type\":\"error\",\"error\":{\"message\":\"m\"}}\n";
        let r = parse("a.chunks.txt", responses).unwrap();
        assert_eq!(
            String::from_utf8(r[0].body.clone()).unwrap(),
            "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"message\":\"m\"}}\n\n"
        );
        let chat = "{\"object\":\"chat.completion.chunk\",\"choices\":[]}\n\n{\"object\":\"chat.completion.chunk\",\"choices\":[]}\n";
        let r = parse("b.chunks.txt", chat).unwrap();
        assert!(
            String::from_utf8(r[0].body.clone())
                .unwrap()
                .ends_with("}\n\ndata: [DONE]\n\n")
        );
        let json = parse("c.json", "{\n  \"id\": \"x\"\n}\n").unwrap();
        assert_eq!((json[0].status, json[0].is_sse()), (200, false));
        assert!(parse("d.chunks.txt", "{\"a\":1}\nnot json\n").is_err());
    }

    #[test]
    fn splits_are_random_but_reproducible() {
        let a = random_splits(7, 32);
        assert_eq!(a, random_splits(7, 32));
        assert_ne!(a, random_splits(8, 32));
        assert!(a.iter().all(|n| (1..=64).contains(n)));
        assert!(a.iter().collect::<std::collections::HashSet<_>>().len() > 5);
    }
}
