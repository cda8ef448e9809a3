//! A Gemini client's streamed answer to a web search the gateway runs (docs/web-search.md):
//! `streamGenerateContent?alt=sse` chunks with the model's text as the provider writes it
//! (Gemini has no search events, so nothing shows while a search runs), then a last chunk
//! with `finishReason`, `usageMetadata` and the `groundingMetadata` for the whole text —
//! as Gemini itself sends grounding with its last chunks. Text the provider did not stream
//! (it answered JSON) goes in that last chunk.

use crate::protocol::anthropic::ErrorKind;
use crate::protocol::pivot::ExchangeContext;
use crate::protocol::web_search::{Transcript, gemini_answer};
use serde_json::{Value, json};

#[derive(Debug, Default)]
pub struct GroundedStream {
    started: bool,
    done: bool,
}

impl GroundedStream {
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Nothing goes out before the first text.
    pub fn start(&mut self) {
        self.started = true;
    }

    /// A chunk with a piece of the model's text.
    pub fn text_delta(&mut self, out: &mut Vec<u8>, ctx: &ExchangeContext, text: &str) {
        if self.done || text.is_empty() {
            return;
        }
        self.started = true;
        frame(
            out,
            &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                    "index": 0}],
                    "modelVersion": ctx.client_model, "responseId": ctx.message_id}),
        );
    }

    /// The last chunk: the answer's parts not streamed yet, `finishReason`, usage and
    /// grounding.
    pub fn finish(&mut self, out: &mut Vec<u8>, t: &Transcript, ctx: &ExchangeContext) {
        if self.done {
            return;
        }
        let mut last: Value =
            serde_json::from_slice(&gemini_answer(t, ctx, false)).unwrap_or_else(|_| json!({}));
        if t.answer_streamed
            && let Some(parts) = last["candidates"][0]["content"]["parts"].as_array_mut()
        {
            // Text already went out as it came; calls (never streamed) stay.
            parts.retain(|p| p.get("text").is_none() || p.get("thought").is_some());
            if parts.is_empty() {
                parts.push(json!({"text": ""}));
            }
        }
        frame(out, &last);
        self.done = true;
    }

    /// Ends the stream with Google's error object (the SDKs raise it).
    pub fn fail(&mut self, out: &mut Vec<u8>, kind: ErrorKind, message: &str) {
        if self.done {
            return;
        }
        self.done = true;
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&super::error_body(super::kind_status(kind), message));
        out.extend_from_slice(b"\r\n\r\n");
    }
}

/// One SSE chunk as Gemini frames it.
fn frame(out: &mut Vec<u8>, chunk: &Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(chunk.to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::web_search::{AnswerPart, Hit, Outcome, Search, Step};

    fn transcript(streamed: bool) -> Transcript {
        Transcript {
            steps: vec![Step::Search(Search {
                id: "srvtoolu_1".into(),
                query: "q".into(),
                outcome: Outcome::Hits(vec![Hit {
                    url: "https://a.example/".into(),
                    title: "A".into(),
                    ..Hit::default()
                }]),
            })],
            answer: vec![AnswerPart::Text("See https://a.example/ .".into())],
            answer_streamed: streamed,
            ..Transcript::default()
        }
    }

    fn chunks(out: &[u8]) -> Vec<Value> {
        String::from_utf8_lossy(out)
            .split("\r\n\r\n")
            .filter_map(|c| c.strip_prefix("data: "))
            .map(|c| serde_json::from_str(c).unwrap())
            .collect()
    }

    #[test]
    fn streamed_text_then_the_grounding_in_the_last_chunk() {
        let ctx = ExchangeContext::default();
        let mut s = GroundedStream::default();
        let mut out = Vec::new();
        s.text_delta(&mut out, &ctx, "See https://a");
        s.text_delta(&mut out, &ctx, ".example/ .");
        s.finish(&mut out, &transcript(true), &ctx);
        let chunks = chunks(&out);
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            chunks[1]["candidates"][0]["content"]["parts"][0]["text"],
            ".example/ ."
        );
        let last = &chunks[2]["candidates"][0];
        assert_eq!(last["content"]["parts"], json!([{"text": ""}]), "{last}");
        assert_eq!(last["finishReason"], "STOP");
        assert_eq!(
            last["groundingMetadata"]["groundingChunks"][0]["web"]["uri"],
            "https://a.example/"
        );
        assert_eq!(
            last["groundingMetadata"]["groundingSupports"][0]["segment"]["endIndex"],
            24
        );
    }

    #[test]
    fn unstreamed_text_goes_in_the_last_chunk_and_errors_end_it() {
        let ctx = ExchangeContext::default();
        let mut s = GroundedStream::default();
        let mut out = Vec::new();
        s.finish(&mut out, &transcript(false), &ctx);
        let last = chunks(&out);
        assert_eq!(last.len(), 1);
        assert_eq!(
            last[0]["candidates"][0]["content"]["parts"][0]["text"],
            "See https://a.example/ ."
        );
        let mut s = GroundedStream::default();
        let mut out = Vec::new();
        s.fail(&mut out, ErrorKind::Api, "broke off");
        s.text_delta(&mut out, &ctx, "late");
        assert_eq!(chunks(&out).len(), 1);
        assert!(
            chunks(&out)[0]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("broke off")
        );
    }
}
