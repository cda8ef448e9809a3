//! The provider check's requests: one at a time, at most [`MAX_REQUESTS`], each counted, its
//! status, timing and answer kept as evidence with every provider key masked. A streamed
//! answer is read whole and split into its events.

use crate::config::adapter::{Source, SourceProtocol};
use crate::protocol::secrets::mask_secrets_str;
use serde_json::Value;
use std::time::Instant;

/// The most requests one check sends, the model list included.
pub const MAX_REQUESTS: usize = 12;

/// One answer (or why none came).
#[derive(Debug, Default)]
pub struct Answer {
    /// `None` when no answer came (or the budget was spent).
    pub status: Option<u16>,
    pub ms: u64,
    /// The JSON body (`Null` when not JSON or streamed).
    pub json: Value,
    /// A streamed answer's events (`data:` payloads that are JSON).
    pub events: Vec<Value>,
    /// The provider's error (masked and shortened), or why no answer came.
    pub error: Option<String>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// Refused as a bad request (400 or 422), not for auth, rate or server reasons.
    pub fn refused(&self) -> bool {
        matches!(self.status, Some(400 | 422))
    }

    /// Refused, the error naming `word` (e.g. the field that was refused).
    pub fn refused_naming(&self, word: &str) -> bool {
        self.refused()
            && self
                .error
                .as_deref()
                .is_some_and(|e| e.to_ascii_lowercase().contains(word))
    }

    pub fn auth_failed(&self) -> bool {
        matches!(self.status, Some(401 | 403))
    }

    /// `200 in 12 ms`, `400 in 9 ms: <the provider's message>`, `no answer: …`.
    pub fn evidence(&self) -> String {
        let mut s = match self.status {
            Some(status) => format!("{status} in {} ms", self.ms),
            None => "no answer".to_owned(),
        };
        if let Some(e) = &self.error {
            s.push_str(": ");
            s.push_str(e);
        }
        s
    }
}

/// Sends the check's requests to one source.
pub struct Wire<'a> {
    pub source: &'a Source,
    client: reqwest::Client,
    base: String,
    secrets: Vec<String>,
    /// Every request sent so far.
    pub sent: usize,
    /// Tokens the provider reported using (input + output), over all answers.
    pub tokens: u64,
}

impl<'a> Wire<'a> {
    pub fn new(source: &'a Source, client: reqwest::Client) -> Wire<'a> {
        Wire {
            source,
            client,
            base: super::base_url(source),
            secrets: crate::proxy::errors::source_secrets(source)
                .map(str::to_owned)
                .collect(),
            sent: 0,
            tokens: 0,
        }
    }

    fn mask(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        mask_secrets_str(text, &secrets).into_owned()
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&mut self, path: &str, body: &Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn send(&mut self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Answer {
        if self.sent >= MAX_REQUESTS {
            return Answer {
                error: Some(format!("not sent: the check sends at most {MAX_REQUESTS}")),
                ..Answer::default()
            };
        }
        let Some(auth) = &self.source.auth else {
            return Answer {
                error: Some("the provider key is missing".to_owned()),
                ..Answer::default()
            };
        };
        self.sent += 1;
        let started = Instant::now();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header(auth.name.clone(), auth.value.clone());
        if self.source.protocol == SourceProtocol::Anthropic {
            request = request.header("anthropic-version", "2023-06-01");
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let (_, cause) = super::no_answer(&e);
                return Answer {
                    ms: started.elapsed().as_millis() as u64,
                    error: Some(self.mask(&cause)),
                    ..Answer::default()
                };
            }
        };
        let status = response.status().as_u16();
        let sse = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let text = response.text().await.unwrap_or_default();
        let mut answer = Answer {
            status: Some(status),
            ms: started.elapsed().as_millis() as u64,
            ..Answer::default()
        };
        if sse {
            answer.events = events(&text);
        } else {
            answer.json = serde_json::from_str(&text).unwrap_or(Value::Null);
        }
        if !(200..300).contains(&status) {
            answer.error = Some(super::shorten(
                &self.mask(&error_message(&answer.json, &text)),
            ));
        }
        self.tokens += used_tokens(&answer);
        answer
    }
}

/// The provider's message when its error body has one, else the body.
fn error_message(json: &Value, text: &str) -> String {
    let e = &json["error"];
    e["message"]
        .as_str()
        .or_else(|| e.as_str())
        .or_else(|| json["message"].as_str())
        .or_else(|| json["detail"].as_str())
        .map_or_else(|| text.trim().to_owned(), str::to_owned)
}

/// The JSON payloads of an SSE body's `data:` lines (`[DONE]` and non-JSON skipped).
pub fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

/// Input plus output tokens an answer reports, in any of the four protocols' usage shapes
/// (a stream's last report counts).
fn used_tokens(answer: &Answer) -> u64 {
    let of = |v: &Value| -> Option<u64> {
        let u = if v["usage"].is_object() {
            &v["usage"]
        } else if v["response"]["usage"].is_object() {
            &v["response"]["usage"]
        } else if v["message"]["usage"].is_object() {
            &v["message"]["usage"]
        } else if v["usageMetadata"].is_object() {
            return v["usageMetadata"]["totalTokenCount"].as_u64();
        } else {
            return None;
        };
        let n = |k: &str| u[k].as_u64().unwrap_or(0);
        let total = n("total_tokens");
        Some(if total > 0 {
            total
        } else {
            n("prompt_tokens") + n("completion_tokens") + n("input_tokens") + n("output_tokens")
        })
    };
    if answer.events.is_empty() {
        return of(&answer.json).unwrap_or(0);
    }
    // Anthropic reports input in message_start and output in message_delta.
    if answer.events.iter().any(|e| e["type"] == "message_start") {
        return answer.events.iter().filter_map(of).sum();
    }
    answer.events.iter().filter_map(of).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_skip_done_comments_and_non_json() {
        let text = ": keep-alive\ndata: {\"a\":1}\n\ndata:{\"b\":2}\r\n\r\ndata: [DONE]\n";
        assert_eq!(events(text), vec![json!({"a": 1}), json!({"b": 2})]);
    }

    #[test]
    fn tokens_are_read_from_each_protocols_usage() {
        let chat = Answer {
            json: json!({"usage": {"prompt_tokens": 7, "completion_tokens": 3}}),
            ..Answer::default()
        };
        assert_eq!(used_tokens(&chat), 10);
        let anthropic = Answer {
            events: vec![
                json!({"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}}),
                json!({"type": "message_delta", "usage": {"output_tokens": 4}}),
            ],
            ..Answer::default()
        };
        assert_eq!(used_tokens(&anthropic), 14);
        let gemini = Answer {
            events: vec![json!({"usageMetadata": {"totalTokenCount": 5}})],
            ..Answer::default()
        };
        assert_eq!(used_tokens(&gemini), 5);
    }

    #[test]
    fn the_message_is_taken_from_the_error_body() {
        let body = json!({"error": {"message": "stream_options is not supported"}});
        assert_eq!(error_message(&body, ""), "stream_options is not supported");
        assert_eq!(error_message(&Value::Null, " plain "), "plain");
    }
}
