//! One exchange as the inspector keeps it (docs/inspector.md), gathered hook by hook while the
//! request runs: the client's request, the request sent to the provider, the provider's
//! answer, the answer sent to the client, timings and the route, source and key chosen.
//!
//! Only adapters with `inspect:` get a [`Capture`] (the proxy holds `Option<Box<Capture>>`,
//! so nothing is copied otherwise). Each body is kept up to [`BODY_CAP`] bytes, the cut
//! marked; secrets are masked when the capture is finished ([`Capture::finish`]): provider
//! keys and the client's key wherever they appear, the values of credential and cookie
//! headers, and `key=` in query strings. Nothing here panics on any input.

use crate::protocol::secrets::{MASK, Secrets};
use serde::Serialize;
use std::borrow::Cow;
use std::time::{Instant, SystemTime};

/// The most of each body kept.
pub const BODY_CAP: usize = 256 * 1024;
/// Bytes read past the cap so a secret straddling it is still found and masked whole.
const MASK_SLACK: usize = 4 * 1024;
/// Headers whose values are credentials: always replaced by `***`.
const SECRET_HEADERS: [&str; 7] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "cookie",
    "set-cookie",
];

/// A body as kept: its text (lossy UTF-8, masked), its whole size, and whether it was cut.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KeptBody {
    pub text: String,
    /// Bytes the body had in full.
    pub size: usize,
    /// Only the first [`BODY_CAP`] bytes are in `text`.
    pub cut: bool,
}

impl KeptBody {
    /// The body's server-sent events (split at blank lines), for a stream.
    pub fn events(&self) -> Vec<&str> {
        self.text
            .split("\n\n")
            .map(|e| e.trim_matches(['\r', '\n']))
            .filter(|e| !e.is_empty())
            .collect()
    }
}

/// A body being gathered: the first bytes up to the cap (and the slack), the total counted.
#[derive(Debug, Default)]
struct Gathering {
    bytes: Vec<u8>,
    size: usize,
}

impl Gathering {
    fn push(&mut self, chunk: &[u8]) {
        self.size = self.size.saturating_add(chunk.len());
        let room = (BODY_CAP + MASK_SLACK).saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
    }

    fn keep(self, secrets: &Secrets) -> KeptBody {
        let masked = match secrets.mask(&self.bytes) {
            Cow::Owned(masked) => Some(masked),
            Cow::Borrowed(_) => None,
        };
        let mut masked = masked.unwrap_or(self.bytes);
        let cut = self.size > BODY_CAP || masked.len() > BODY_CAP;
        masked.truncate(BODY_CAP);
        // Bodies are almost always UTF-8: checked with the fast validator and kept without a
        // copy (a fifth of an inspected 75 KB request's CPU went to the lossy conversion);
        // the rare other one (or a cut in a character) is converted lossily.
        let text = String::from_utf8(masked)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        KeptBody {
            text,
            size: self.size,
            cut,
        }
    }
}

/// Times since the request was admitted, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    pub connected_ms: Option<u64>,
    pub first_byte_ms: Option<u64>,
    pub last_byte_ms: Option<u64>,
}

/// A request or response header section as kept.
pub type Headers = Vec<(String, String)>;

/// One finished exchange, secrets masked.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// Given by the inspector, increasing.
    pub id: u64,
    /// Unix time of admission, in milliseconds.
    pub time_ms: u64,
    /// The adapter's owner when it was kept (another owner later does not see it).
    #[serde(skip)]
    pub owner: Option<String>,
    pub method: String,
    pub path: String,
    pub duration_ms: u64,
    pub timings: Timings,
    #[serde(flatten)]
    pub facts: Facts,
    pub client_request: Message,
    pub provider_request: Option<ProviderRequest>,
    pub provider_response: Message,
    pub client_response: Message,
}

/// What the proxy decided and learned: models, statuses, the route, source and key chosen,
/// attempts, tokens.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    pub model: Option<String>,
    pub provider_model: Option<String>,
    pub status: u16,
    pub provider_status: Option<u16>,
    pub route: Option<String>,
    pub source_index: usize,
    pub key_index: Option<usize>,
    pub attempts: u32,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub stream: bool,
    /// What the translation changed (docs/inspector.md; none for passthrough).
    pub notes: Vec<crate::protocol::notes::Note>,
}

/// Headers and body of one side.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Message {
    pub headers: Headers,
    pub body: KeptBody,
}

/// What went to the provider on the last attempt.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProviderRequest {
    pub url: String,
    pub headers: Headers,
    pub body: KeptBody,
}

impl Exchange {
    /// Bytes this exchange is accounted for in the inspector's memory bound.
    pub fn cost(&self) -> usize {
        let headers = |h: &Headers| h.iter().map(|(n, v)| n.len() + v.len() + 48).sum::<usize>();
        let message = |m: &Message| headers(&m.headers) + m.body.text.len();
        let provider = self
            .provider_request
            .as_ref()
            .map_or(0, |p| p.url.len() + headers(&p.headers) + p.body.text.len());
        let notes: usize = self.facts.notes.iter().map(|n| n.path.len() + 96).sum();
        512 + self.path.len()
            + notes
            + message(&self.client_request)
            + provider
            + message(&self.provider_response)
            + message(&self.client_response)
    }
}

/// An exchange being gathered by the proxy's hooks.
#[derive(Debug)]
pub struct Capture {
    admitted: Instant,
    time: SystemTime,
    keep: usize,
    method: String,
    path: String,
    client_headers: Headers,
    client_key: Option<String>,
    client_request: Gathering,
    provider_url: Option<String>,
    provider_headers: Headers,
    provider_request: Gathering,
    provider_response_headers: Headers,
    provider_response: Gathering,
    client_response: Gathering,
    timings: Timings,
}

/// What the proxy knows at the end of the request.
#[derive(Debug, Default)]
pub struct Outcome<'a> {
    pub owner: Option<String>,
    pub facts: Facts,
    pub client_response_headers: Headers,
    /// Provider keys of the adapter (masked wherever they appear).
    pub provider_secrets: Vec<&'a str>,
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Capture {
    /// A capture for an adapter keeping `keep` exchanges, of a request with this line and
    /// these headers (the client's key, read from them, is masked wherever it appears).
    pub fn new(
        admitted: Instant,
        keep: usize,
        req: &http::request::Parts,
        client_key: Option<&str>,
    ) -> Capture {
        Capture {
            admitted,
            time: SystemTime::now(),
            keep,
            method: req.method.to_string(),
            path: req.uri.to_string(),
            client_headers: header_list(&req.headers),
            client_key: client_key.map(str::to_owned),
            client_request: Gathering::default(),
            provider_url: None,
            provider_headers: Vec::new(),
            provider_request: Gathering::default(),
            provider_response_headers: Vec::new(),
            provider_response: Gathering::default(),
            client_response: Gathering::default(),
            timings: Timings::default(),
        }
    }

    /// Exchanges the adapter keeps.
    pub fn keep(&self) -> usize {
        self.keep
    }

    pub fn client_body(&mut self, body: &[u8]) {
        self.client_request = Gathering::default();
        self.client_request.push(body);
    }

    /// The request of an attempt (a later attempt replaces an earlier one).
    pub fn provider_request(&mut self, url: &str, headers: &http::HeaderMap, body: &[u8]) {
        self.provider_url = Some(url.to_owned());
        self.provider_headers = header_list(headers);
        self.provider_request = Gathering::default();
        self.provider_request.push(body);
    }

    pub fn connected(&mut self) {
        self.timings.connected_ms = Some(millis(self.admitted));
    }

    /// The provider's response header of the attempt that answers.
    pub fn provider_response(&mut self, headers: &http::HeaderMap) {
        self.timings.first_byte_ms = Some(millis(self.admitted));
        self.provider_response_headers = header_list(headers);
        self.provider_response = Gathering::default();
        self.client_response = Gathering::default();
    }

    /// One read of the provider's body, and what of it went to the client.
    pub fn provider_read(&mut self, read: Option<&[u8]>) {
        if let Some(read) = read {
            self.provider_response.push(read);
            self.timings.last_byte_ms = Some(millis(self.admitted));
        }
    }

    pub fn client_write(&mut self, written: &[u8]) {
        self.client_response.push(written);
    }

    /// The exchange, masked, for the inspector.
    pub fn finish(self, outcome: Outcome<'_>) -> Exchange {
        let mut secrets: Vec<&str> = outcome.provider_secrets.clone();
        if let Some(key) = &self.client_key {
            secrets.push(key);
        }
        let secrets = Secrets::new(&secrets);
        let headers = |h: Headers| mask_headers(h, &secrets);
        let time_ms = self
            .time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        Exchange {
            id: 0,
            time_ms,
            owner: outcome.owner,
            method: self.method,
            path: mask_text(&mask_query(&self.path), &secrets),
            duration_ms: millis(self.admitted),
            timings: self.timings,
            facts: outcome.facts,
            client_request: Message {
                headers: headers(self.client_headers),
                body: self.client_request.keep(&secrets),
            },
            provider_request: self.provider_url.map(|url| ProviderRequest {
                url: mask_text(&mask_query(&url), &secrets),
                headers: headers(self.provider_headers),
                body: self.provider_request.keep(&secrets),
            }),
            provider_response: Message {
                headers: headers(self.provider_response_headers),
                body: self.provider_response.keep(&secrets),
            },
            client_response: Message {
                headers: headers(outcome.client_response_headers),
                body: self.client_response.keep(&secrets),
            },
        }
    }
}

/// Header names and values, values as lossy text.
pub fn header_list(headers: &http::HeaderMap) -> Headers {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Credential and cookie headers replaced by `***`; secrets masked in the others.
fn mask_headers(headers: Headers, secrets: &Secrets) -> Headers {
    headers
        .into_iter()
        .map(|(name, value)| {
            let secret = SECRET_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s));
            let value = if secret {
                MASK.to_owned()
            } else {
                mask_text(&value, secrets)
            };
            (name, value)
        })
        .collect()
}

fn mask_text(text: &str, secrets: &Secrets) -> String {
    String::from_utf8_lossy(&secrets.mask(text.as_bytes())).into_owned()
}

/// A path or URL with the value of every `key=` query parameter replaced by `***`.
pub fn mask_query(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("key") => format!("{name}={MASK}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts(target: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method("POST").uri(target);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bodies_are_capped_with_the_cut_marked() {
        let mut c = Capture::new(Instant::now(), 3, &parts("/v1/messages", &[]), None);
        c.client_body(&vec![b'a'; BODY_CAP + 10]);
        c.provider_response(&http::HeaderMap::new());
        for _ in 0..100 {
            c.provider_read(Some(&[b'b'; 4096]));
        }
        c.client_write(b"short");
        let e = c.finish(Outcome::default());
        assert!(e.client_request.body.cut);
        assert_eq!(e.client_request.body.text.len(), BODY_CAP);
        assert_eq!(e.client_request.body.size, BODY_CAP + 10);
        assert!(e.provider_response.body.cut);
        assert_eq!(e.provider_response.body.size, 409_600);
        assert!(!e.client_response.body.cut);
        assert_eq!(e.client_response.body.text, "short");
    }

    #[test]
    fn secrets_are_masked_in_headers_queries_and_bodies() {
        let req = parts(
            "/v1beta/models/m:generateContent?alt=sse&key=fp-client-canary-1",
            &[
                ("x-goog-api-key", "fp-client-canary-1"),
                ("cookie", "session=abc"),
                ("x-note", "provider sk-provider-canary-2 echoed"),
            ],
        );
        let mut c = Capture::new(Instant::now(), 1, &req, Some("fp-client-canary-1"));
        c.client_body(br#"{"text":"my key is fp-client-canary-1"}"#);
        let mut h = http::HeaderMap::new();
        h.insert(
            "authorization",
            "Bearer sk-provider-canary-2".parse().unwrap(),
        );
        c.provider_request(
            "/v1beta/models/x:streamGenerateContent?key=sk-provider-canary-2",
            &h,
            b"{}",
        );
        c.provider_response(&h);
        c.provider_read(Some(b"bad key sk-provider-canary-2"));
        c.client_write(b"bad key sk-provider-canary-2");
        let e = c.finish(Outcome {
            provider_secrets: vec!["sk-provider-canary-2"],
            ..Outcome::default()
        });
        let all = serde_json::to_string(&e).unwrap();
        assert!(!all.contains("canary"), "{all}");
        assert!(all.contains("key=***"));
        assert!(all.contains("\"cookie\",\"***\""));
    }

    #[test]
    fn a_secret_across_the_cap_is_masked() {
        let mut c = Capture::new(Instant::now(), 1, &parts("/", &[]), None);
        let mut body = vec![b'x'; BODY_CAP - 5];
        body.extend_from_slice(b"sk-provider-canary-3 and more");
        c.client_body(&body);
        let e = c.finish(Outcome {
            provider_secrets: vec!["sk-provider-canary-3"],
            ..Outcome::default()
        });
        assert!(!e.client_request.body.text.contains("sk-pro"));
        assert!(e.client_request.body.cut);
    }

    #[test]
    fn events_split_at_blank_lines() {
        let body = KeptBody {
            text: "event: a\ndata: 1\n\nevent: b\ndata: 2\n\n".into(),
            ..KeptBody::default()
        };
        assert_eq!(body.events(), ["event: a\ndata: 1", "event: b\ndata: 2"]);
    }

    proptest! {
        #[test]
        fn capture_never_panics(
            target in "/[ -~]{0,40}",
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            reads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..512), 0..8),
            key in "[ -~]{0,20}",
        ) {
            let req = match http::Request::builder().uri(target.as_str()).body(()) {
                Ok(r) => r.into_parts().0,
                Err(_) => parts("/", &[]),
            };
            let mut c = Capture::new(Instant::now(), 1, &req, Some(&key));
            c.client_body(&body);
            c.provider_request(&target, &http::HeaderMap::new(), &body);
            c.provider_response(&http::HeaderMap::new());
            for r in &reads {
                c.provider_read(Some(r));
                c.client_write(r);
            }
            c.provider_read(None);
            let e = c.finish(Outcome { provider_secrets: vec![key.as_str()], ..Outcome::default() });
            let _ = e.provider_response.body.events();
            prop_assert!(e.cost() > 0);
        }
    }
}
